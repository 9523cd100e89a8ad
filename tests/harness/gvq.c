/* SPDX-License-Identifier: MIT */
/*
 * The guest virtqueue (see gvq.h): life cycle, the calls common to both
 * formats, the raw writers and the raw guest. The format drivers are in
 * gvq_split.c and gvq_packed.c.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gvq_priv.h"

#define F_EVENT_IDX (1ull << 29)
#define F_RING_PACKED (1ull << 34)
#define F_IN_ORDER (1ull << 35)

uint64_t gvq_zalloc(struct gmem *m, uint64_t len, uint64_t align, void **ptr)
{
	uint64_t gpa = gmem_alloc(m, len, align);
	if (!gpa)
		return 0;
	*ptr = gmem_ptr(m, gpa, len);
	memset(*ptr, 0, len);
	return gpa;
}

/* Driver state common to both formats. */
static int priv_init(struct gvq *q)
{
	struct gvq_priv *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	q->priv = p;
	uint16_t n = q->size;
	p->tokens = calloc(n, sizeof(*p->tokens));
	p->chain_len = calloc(n, sizeof(*p->chain_len));
	p->indirect_gpa = calloc(n, sizeof(*p->indirect_gpa));
	p->icap = calloc(n, sizeof(*p->icap));
	if (!p->tokens || !p->chain_len || !p->indirect_gpa || !p->icap)
		return -ENOMEM;
	p->irq_on = true;
	p->batch_last = UINT32_MAX;
	if (q->in_order && !(p->order = calloc(n, sizeof(*p->order))))
		return -ENOMEM;
	return 0;
}

static int gvq_create(struct gmem *m, const uint64_t *areas, uint16_t size, uint64_t features,
		      struct gvq **ret)
{
	bool packed = features & F_RING_PACKED;
	if (!m || !ret || size == 0 || size > 32768 || (!packed && (size & (size - 1))))
		return -EINVAL;
	struct gvq *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->mem = m;
	q->size = size;
	q->packed = packed;
	q->event_idx = features & F_EVENT_IDX;
	q->in_order = features & F_IN_ORDER;
	q->kick_fd = q->call_fd = -1;
	q->num_free = size;
	int rc = packed ? gvq_packed_layout(q, areas) : gvq_split_layout(q, areas);
	if (rc == 0)
		rc = priv_init(q);
	if (rc == 0)
		rc = packed ? gvq_packed_init(q) : gvq_split_init(q);
	if (rc < 0)
		goto err_free;
	q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->kick_fd < 0 || q->call_fd < 0) {
		rc = -errno;
		goto err_free;
	}
	*ret = q;
	return 0;

err_free:
	gvq_free(q);
	return rc;
}

int gvq_new(struct gmem *m, uint16_t size, uint64_t features, struct gvq **ret)
{
	return gvq_create(m, NULL, size, features, ret);
}

int gvq_new_at(struct gmem *m, uint64_t gpa, uint16_t size, uint64_t features, struct gvq **ret)
{
	uint64_t areas[3] = {gpa, gpa + 16ull * size, 0};
	if (features & F_RING_PACKED) /* ring, driver event, device event */
		areas[2] = areas[1] + 4;
	else /* table, avail ring with used_event, used ring 4-aligned */
		areas[2] = (areas[1] + 6 + 2ull * size + 2 + 3) & ~3ull;
	return gvq_create(m, areas, size, features, ret);
}

int gvq_new_placed(struct gmem *m, uint64_t desc, uint64_t avail, uint64_t used, uint16_t size,
		   uint64_t features, struct gvq **ret)
{
	uint64_t areas[3] = {desc, avail, used};
	return gvq_create(m, areas, size, features, ret);
}

void gvq_free(struct gvq *q)
{
	if (!q)
		return;
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	if (q->call_fd >= 0)
		close(q->call_fd);
	struct gvq_priv *p = q->priv;
	if (p) {
		free(p->tokens);
		free(p->chain_len);
		free(p->indirect_gpa);
		free(p->icap);
		free(p->next);
		free(p->free_ids);
		free(p->order);
		free(p->raw_len);
		free(p);
	}
	free(q);
}

uint32_t gvq_base(const struct gvq *q)
{
	if (!q->packed)
		return q->used_pos;
	uint32_t used = q->used_pos | (q->used_wrap ? GVQ_WRAP : 0);
	return used | used << 16;
}

void gvq_set_base(struct gvq *q, uint32_t base)
{
	struct gvq_priv *p = q->priv;
	if (!q->packed) {
		q->avail_pos = q->used_pos = p->kicked_pos = (uint16_t)base;
		return;
	}
	q->avail_pos = p->kicked_pos = (uint16_t)(base & 0x7fffu);
	q->avail_wrap = p->kicked_wrap = base & GVQ_WRAP;
	q->used_pos = (uint16_t)(base >> 16 & 0x7fffu);
	q->used_wrap = (base >> 16) & GVQ_WRAP;
}

/* ---- driver ---- */

int gvq_add(struct gvq *q, const struct gbuf *out, int nout, const struct gbuf *in, int nin,
	    bool indirect, void *token)
{
	if (nout < 0 || nin < 0 || nout + nin == 0 || nout + nin > 65535 || !token)
		return -EINVAL;
	return q->packed ? gvq_packed_add(q, out, nout, in, nin, indirect, token)
			 : gvq_split_add(q, out, nout, in, nin, indirect, token);
}

int gvq_post(struct gvq *q, const struct gbuf *out, int nout, const struct gbuf *in, int nin,
	     bool indirect, void *token)
{
	int id = gvq_add(q, out, nout, in, nin, indirect, token);
	if (id >= 0)
		gvq_publish(q);
	return id;
}

int gvq_next_id(const struct gvq *q)
{
	return q->packed ? gvq_packed_next_id(q) : gvq_split_next_id(q);
}

void gvq_publish(struct gvq *q)
{
	if (!q->packed) /* packed: each head's flags published its chain */
		gvq_split_publish(q);
}

void gvq_kick(struct gvq *q)
{
	gvq_publish(q);
	if (q->packed ? gvq_packed_kick_needed(q) : gvq_split_kick_needed(q))
		gvq_kick_force(q);
}

void gvq_kick_force(struct gvq *q)
{
	uint64_t one = 1;
	if (write(q->kick_fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
		q->kicks_sent++;
}

int gvq_get_used(struct gvq *q, void **token, uint32_t *len)
{
	return q->packed ? gvq_packed_get_used(q, token, len) : gvq_split_get_used(q, token, len);
}

int gvq_used_pending(const struct gvq *q)
{
	return q->packed ? gvq_packed_used_pending(q) : gvq_split_used_pending(q);
}

void gvq_set_interrupts(struct gvq *q, bool enable)
{
	if (q->packed)
		gvq_packed_set_interrupts(q, enable);
	else
		gvq_split_set_interrupts(q, enable);
}

uint64_t gvq_read_calls(struct gvq *q)
{
	uint64_t v = 0;
	if (read(q->call_fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

bool gvq_wait_call(struct gvq *q, int timeout_ms)
{
	struct pollfd pfd = {.fd = q->call_fd, .events = POLLIN};
	int n;
	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n == 1 && (pfd.revents & POLLIN);
}

/* ---- device-written fields ---- */

uint16_t gvq_used_idx(const struct gvq *q)
{
	return __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);
}

uint16_t gvq_used_flags(const struct gvq *q)
{
	return __atomic_load_n(&q->used->flags, __ATOMIC_ACQUIRE);
}

uint16_t gvq_avail_event(const struct gvq *q)
{
	const uint16_t *evp = (const uint16_t *)(const void *)&q->used->ring[q->size];
	return __atomic_load_n(evp, __ATOMIC_ACQUIRE);
}

uint16_t gvq_dev_flags(const struct gvq *q)
{
	return __atomic_load_n(&q->dev->flags, __ATOMIC_ACQUIRE);
}

uint16_t gvq_dev_off_wrap(const struct gvq *q)
{
	return __atomic_load_n(&q->dev->off_wrap, __ATOMIC_ACQUIRE);
}

/* ---- raw writers ---- */

void gvq_raw_desc(struct gvq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next)
{
	struct vring_desc *d = &q->desc[i & (q->size - 1)];
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

void gvq_raw_avail(struct gvq *q, uint16_t slot, uint16_t head)
{
	__atomic_store_n(&q->avail->ring[slot & (q->size - 1)], head, __ATOMIC_RELAXED);
}

void gvq_raw_avail_idx(struct gvq *q, uint16_t idx)
{
	__atomic_store_n(&q->avail->idx, idx, __ATOMIC_RELEASE);
}

void gvq_raw_used_event(struct gvq *q, uint16_t v)
{
	__atomic_store_n(&q->avail->ring[q->size], v, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void gvq_raw_slot(struct gvq *q, uint16_t pos, uint64_t addr, uint32_t len, uint16_t id,
		  uint16_t flags)
{
	struct vring_packed_desc *d = &q->pdesc[pos % q->size];
	d->addr = addr;
	d->len = len;
	d->id = id;
	__atomic_store_n(&d->flags, flags, __ATOMIC_RELEASE);
}

void gvq_raw_drv_event(struct gvq *q, uint16_t flags, uint16_t off_wrap)
{
	__atomic_store_n(&q->drv->off_wrap, off_wrap, __ATOMIC_RELAXED);
	__atomic_store_n(&q->drv->flags, flags, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

uint16_t gvq_avail_bits(bool wrap)
{
	return (uint16_t)(wrap ? GVQ_F_AVAIL : GVQ_F_USED);
}

__u64 *gvq_desc_addr(struct gvq *q, uint16_t i)
{
	if (q->packed)
		return &q->pdesc[i % q->size].addr;
	return &q->desc[i & (q->size - 1)].addr;
}

uint32_t *gvq_desc_len(struct gvq *q, uint16_t i)
{
	if (q->packed)
		return &q->pdesc[i % q->size].len;
	return &q->desc[i & (q->size - 1)].len;
}

/* ---- raw guest ---- */

void gvq_raw_push(struct gvq *q, uint16_t head)
{
	__atomic_store_n(&q->avail->ring[q->raw.pos & (q->size - 1)], head, __ATOMIC_RELAXED);
	q->raw.pos++;
	__atomic_store_n(&q->avail->idx, q->raw.pos, __ATOMIC_RELEASE);
}

uint16_t gvq_raw_post(struct gvq *q, const struct gvq_rawbuf *b, int n, uint16_t id)
{
	if (!q->packed) {
		for (int k = 0; k < n; k++) {
			uint16_t i = (uint16_t)(id + k);
			bool more = k + 1 < n;
			gvq_raw_desc(q, i, b[k].addr, b[k].len,
				     (uint16_t)(b[k].flags | (more ? VRING_DESC_F_NEXT : 0)),
				     more ? (uint16_t)((i + 1) & (q->size - 1)) : 0);
		}
		gvq_raw_push(q, id);
		return (uint16_t)(id & (q->size - 1));
	}
	uint16_t hpos = q->raw.pos, hflags = 0;
	for (int k = 0; k < n; k++) {
		uint16_t fl = (uint16_t)(b[k].flags | (k + 1 < n ? VRING_DESC_F_NEXT : 0) |
					 gvq_avail_bits(q->raw.wrap));
		struct vring_packed_desc *d = &q->pdesc[q->raw.pos];
		d->addr = b[k].addr;
		d->len = b[k].len;
		d->id = id;
		if (k == 0)
			hflags = fl;
		else
			__atomic_store_n(&d->flags, fl, __ATOMIC_RELEASE);
		gvq_packed_step(q->size, &q->raw.pos, &q->raw.wrap, 1);
	}
	if (id < q->size)
		q->priv->raw_len[id] = (uint16_t)n;
	__atomic_store_n(&q->pdesc[hpos].flags, hflags, __ATOMIC_RELEASE);
	return hpos;
}

uint16_t gvq_raw_republish(struct gvq *q, uint16_t id, uint16_t flags)
{
	if (!q->packed) {
		gvq_raw_push(q, id);
		return (uint16_t)(id & (q->size - 1));
	}
	uint16_t slot = q->raw.pos;
	__atomic_store_n(&q->pdesc[slot].id, id, __ATOMIC_RELAXED);
	__atomic_store_n(&q->pdesc[slot].flags, (uint16_t)(flags | gvq_avail_bits(q->raw.wrap)),
			 __ATOMIC_RELEASE);
	if (id < q->size)
		q->priv->raw_len[id] = 1;
	gvq_packed_step(q->size, &q->raw.pos, &q->raw.wrap, 1);
	return slot;
}

int gvq_raw_used(struct gvq *q, uint16_t *id, uint32_t *len)
{
	if (!q->packed) {
		if (__atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE) == q->raw.upos)
			return 0;
		struct vring_used_elem *e = &q->used->ring[q->raw.upos & (q->size - 1)];
		*id = (uint16_t)__atomic_load_n(&e->id, __ATOMIC_RELAXED);
		*len = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
		q->raw.upos++;
		return 1;
	}
	struct vring_packed_desc *d = &q->pdesc[q->raw.upos];
	uint16_t fl = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
	if (!!(fl & GVQ_F_AVAIL) != q->raw.uwrap || !!(fl & GVQ_F_USED) != q->raw.uwrap)
		return 0;
	*id = __atomic_load_n(&d->id, __ATOMIC_RELAXED);
	*len = __atomic_load_n(&d->len, __ATOMIC_RELAXED);
	uint16_t slots = *id < q->size && q->priv->raw_len[*id] ? q->priv->raw_len[*id] : 1;
	gvq_packed_step(q->size, &q->raw.upos, &q->raw.uwrap, slots);
	return 1;
}

/* ---- the run's ring format ---- */

bool gvq_run_packed;

uint64_t gvq_run_features(void)
{
	return gvq_run_packed ? F_RING_PACKED : 0;
}

bool gvq_parse_format(int *argc, char **argv)
{
	const char *fmt = getenv("VHK_RING");
	int out = 1;
	for (int i = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--packed") || !strcmp(argv[i], "--split"))
			fmt = argv[i] + 2;
		else if (!strncmp(argv[i], "--", 2))
			fmt = argv[i]; /* an unknown option: refused below */
		else
			argv[out++] = argv[i];
	}
	*argc = out;
	argv[out] = NULL;
	if (fmt && strcmp(fmt, "packed") && strcmp(fmt, "split")) {
		fprintf(stderr, "unknown ring format '%s' (--packed or --split)\n", fmt);
		return false;
	}
	gvq_run_packed = fmt && !strcmp(fmt, "packed");
	/* stderr: the TAP stream must start with its version line. */
	fprintf(stderr, "# ring format: %s\n", gvq_run_packed ? "packed" : "split");
	return true;
}
