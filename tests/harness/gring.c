/* SPDX-License-Identifier: MIT */
/*
 * Test harness, guest side (see gring.h): memfd-backed guest RAM with a bump
 * allocator, and a split virtqueue driver that behaves like a Linux virtio
 * driver (free list, chains, indirect tables, avail publish with release,
 * EVENT_IDX / NO_NOTIFY kick suppression, used consumption with acquire).
 *
 * The device (the library under test) maps the same memfd files in the same
 * process, so every ring field it may read or write concurrently is accessed
 * here with __atomic builtins.
 */
#include "gring.h"

#include "vuf.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

/* Entries of the per-head cached indirect table (bigger ones are allocated fresh). */
#define GRING_INDIRECT_CACHE 64u

/* Driver-private state kept outside guest memory, like Linux's desc_extra. */
struct gring_priv {
	struct gring pub;
	uint16_t *next;	     /* free list / chain links (shadow of desc.next) */
	uint16_t *icap;	     /* capacity of indirect_gpa[head], entries */
	uint16_t kicked_idx; /* avail idx at the last kick decision */
	bool irq_on;	     /* the driver wants used notifications */
	uint16_t *order;     /* IN_ORDER: head per avail slot, or NULL */
	uint32_t batch_last; /* IN_ORDER: id of the used entry being expanded, or UINT32_MAX */
	uint32_t batch_len;
};

static struct gring_priv *priv_of(struct gring *r)
{
	return (struct gring_priv *)(void *)((char *)r - offsetof(struct gring_priv, pub));
}

/* ----------------------------------------------------------------- gring */

/* Allocate and zero @len bytes of guest memory; returns gpa (0 on failure). */
static uint64_t zalloc(struct gmem *m, uint64_t len, uint64_t align, void **ptr)
{
	uint64_t gpa = gmem_alloc(m, len, align);
	if (!gpa)
		return 0;
	*ptr = gmem_ptr(m, gpa, len);
	memset(*ptr, 0, len);
	return gpa;
}

/* Allocate the driver-private arrays of @r (size entries each). */
static int alloc_shadow(struct gring_priv *p, uint16_t size)
{
	struct gring *r = &p->pub;
	r->tokens = calloc(size, sizeof(*r->tokens));
	r->chain_len = calloc(size, sizeof(*r->chain_len));
	r->indirect_gpa = calloc(size, sizeof(*r->indirect_gpa));
	p->next = calloc(size, sizeof(*p->next));
	p->icap = calloc(size, sizeof(*p->icap));
	if (!r->tokens || !r->chain_len || !r->indirect_gpa || !p->next || !p->icap)
		return -ENOMEM;
	for (uint16_t i = 0; i < size; i++)
		p->next[i] = (uint16_t)(i + 1);
	return 0;
}

int gring_new(struct gmem *m, uint16_t size, bool event_idx, struct gring **ret)
{
	if (!m || !ret || size == 0 || (size & (size - 1)))
		return -EINVAL;
	struct gring_priv *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	struct gring *r = &p->pub;
	r->mem = m;
	r->size = size;
	r->event_idx = event_idx;
	r->kick_fd = r->call_fd = -1;
	int rc = -ENOMEM;
	void *d, *a, *u;
	r->desc_gpa = zalloc(m, 16ull * size, 16, &d);
	r->avail_gpa = r->desc_gpa ? zalloc(m, 6ull + 2ull * size, 2, &a) : 0;
	r->used_gpa = r->avail_gpa ? zalloc(m, 6ull + 8ull * size, 4096, &u) : 0;
	if (!r->used_gpa)
		goto err_free;
	r->desc = d;
	r->avail = a;
	r->used = u;
	if ((rc = alloc_shadow(p, size)) < 0)
		goto err_free;
	r->free_head = 0;
	r->num_free = size;
	p->irq_on = true;
	r->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->kick_fd < 0 || r->call_fd < 0) {
		rc = -errno;
		goto err_free;
	}
	*ret = r;
	return 0;

err_free:
	gring_free(r);
	return rc;
}

void gring_free(struct gring *r)
{
	if (!r)
		return;
	struct gring_priv *p = priv_of(r);
	if (r->kick_fd >= 0)
		close(r->kick_fd);
	if (r->call_fd >= 0)
		close(r->call_fd);
	free(r->tokens);
	free(r->chain_len);
	free(r->indirect_gpa);
	free(p->next);
	free(p->icap);
	free(p->order);
	free(p);
}

int gring_set_in_order(struct gring *r)
{
	struct gring_priv *p = priv_of(r);
	p->order = calloc(r->size, sizeof(*p->order));
	p->batch_last = UINT32_MAX;
	return p->order ? 0 : -ENOMEM;
}

/* Store one descriptor into guest memory. */
static void put_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/* Indirect table for @head with room for @n entries (cached per head). */
static uint64_t indirect_table(struct gring *r, uint16_t head, int n)
{
	struct gring_priv *p = priv_of(r);
	if (r->indirect_gpa[head] && p->icap[head] >= n)
		return r->indirect_gpa[head];
	uint16_t cap = n <= (int)GRING_INDIRECT_CACHE ? GRING_INDIRECT_CACHE : (uint16_t)n;
	uint64_t gpa = gmem_alloc(r->mem, 16ull * cap, 16);
	if (!gpa)
		return 0;
	r->indirect_gpa[head] = gpa;
	p->icap[head] = cap;
	return gpa;
}

/* Fill an indirect table for @head and point descriptor @head at it. */
static int add_indirect(struct gring *r, uint16_t head, const struct gbuf *out, int nout,
			const struct gbuf *in, int nin)
{
	int total = nout + nin;
	uint64_t tgpa = indirect_table(r, head, total);
	struct vring_desc *t = tgpa ? gmem_ptr(r->mem, tgpa, 16ull * total) : NULL;
	if (!t)
		return -ENOMEM;
	for (int i = 0; i < total; i++) {
		const struct gbuf *b = i < nout ? &out[i] : &in[i - nout];
		uint16_t fl = (uint16_t)((i >= nout ? VRING_DESC_F_WRITE : 0) |
					 (i + 1 < total ? VRING_DESC_F_NEXT : 0));
		put_desc(&t[i], b->gpa, b->len, fl, (uint16_t)(i + 1 < total ? i + 1 : 0));
	}
	put_desc(&r->desc[head], tgpa, (uint32_t)(16 * total), VRING_DESC_F_INDIRECT, 0);
	r->free_head = priv_of(r)->next[head];
	r->num_free--;
	r->chain_len[head] = 1;
	return 0;
}

/* Fill @nout + @nin ring descriptors from the free list, starting at free_head. */
static void add_direct(struct gring *r, const struct gbuf *out, int nout, const struct gbuf *in,
		       int nin)
{
	struct gring_priv *p = priv_of(r);
	int total = nout + nin;
	uint16_t head = r->free_head, i = head;
	for (int k = 0; k < total; k++) {
		const struct gbuf *b = k < nout ? &out[k] : &in[k - nout];
		uint16_t fl = (uint16_t)((k >= nout ? VRING_DESC_F_WRITE : 0) |
					 (k + 1 < total ? VRING_DESC_F_NEXT : 0));
		put_desc(&r->desc[i], b->gpa, b->len, fl, p->next[i]);
		if (k + 1 < total)
			i = p->next[i];
	}
	r->free_head = p->next[i];
	r->num_free = (uint16_t)(r->num_free - total);
	r->chain_len[head] = (uint16_t)total;
}

int gring_add(struct gring *r, const struct gbuf *out, int nout, const struct gbuf *in, int nin,
	      bool indirect, void *token)
{
	if (nout < 0 || nin < 0 || nout + nin == 0 || nout + nin > 65535 || !token)
		return -EINVAL;
	int total = nout + nin;
	if (r->num_free < (indirect ? 1 : total))
		return -ENOSPC;
	uint16_t head = r->free_head;
	if (indirect) {
		int rc = add_indirect(r, head, out, nout, in, nin);
		if (rc < 0)
			return rc;
	} else {
		add_direct(r, out, nout, in, nin);
	}
	r->tokens[head] = token;
	if (priv_of(r)->order)
		priv_of(r)->order[r->avail_idx & (r->size - 1)] = (uint16_t)head;
	/* Descriptors are plain stores; the release in gring_publish orders them. */
	__atomic_store_n(&r->avail->ring[r->avail_idx & (r->size - 1)], head, __ATOMIC_RELAXED);
	r->avail_idx++;
	return head;
}

void gring_publish(struct gring *r)
{
	/* Pairs with the device's acquire load of avail->idx. */
	__atomic_store_n(&r->avail->idx, r->avail_idx, __ATOMIC_RELEASE);
}

/* Whether the device wants a kick for the entries published since the last kick. */
static bool kick_needed(struct gring *r)
{
	uint16_t old = priv_of(r)->kicked_idx, new_idx = r->avail_idx;
	priv_of(r)->kicked_idx = new_idx;
	/* Full barrier: avail->idx store before the avail_event / flags load
	 * (pairs with the device's barrier between writing avail_event and
	 * re-reading avail->idx). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (r->event_idx) {
		/* avail_event sits right after the used ring entries. */
		uint16_t *evp = (uint16_t *)(void *)&r->used->ring[r->size];
		uint16_t ev = __atomic_load_n(evp, __ATOMIC_RELAXED);
		return vring_need_event(ev, new_idx, old);
	}
	return !(__atomic_load_n(&r->used->flags, __ATOMIC_RELAXED) & VRING_USED_F_NO_NOTIFY);
}

void gring_kick(struct gring *r)
{
	gring_publish(r);
	if (kick_needed(r))
		gring_kick_force(r);
}

void gring_kick_force(struct gring *r)
{
	uint64_t one = 1;
	if (write(r->kick_fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
		r->kicks_sent++;
}

/* Return the descriptors of chain @head to the free list. */
static void detach(struct gring *r, uint16_t head)
{
	struct gring_priv *p = priv_of(r);
	uint16_t last = head;
	for (uint16_t k = 1; k < r->chain_len[head]; k++)
		last = p->next[last];
	p->next[last] = r->free_head;
	r->free_head = head;
	r->num_free = (uint16_t)(r->num_free + r->chain_len[head]);
	r->tokens[head] = NULL;
	r->chain_len[head] = 0;
}

int gring_get_used(struct gring *r, void **token, uint32_t *len)
{
	/* Pairs with the device's release store of used->idx. */
	uint16_t idx = __atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE);
	if (idx == r->last_used)
		return 0;
	struct vring_used_elem *e = &r->used->ring[r->last_used & (r->size - 1)];
	struct gring_priv *p = priv_of(r);
	uint32_t id, l;
	if (p->order) {
		/* IN_ORDER: the entry at the batch start names its last buffer. */
		if (p->batch_last == UINT32_MAX) {
			p->batch_last = __atomic_load_n(&e->id, __ATOMIC_RELAXED);
			p->batch_len = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
			if (p->batch_last >= r->size || !r->tokens[p->batch_last]) {
				p->batch_last = UINT32_MAX;
				return -EIO;
			}
		}
		id = p->order[r->last_used & (r->size - 1)];
		l = 0; /* a skipped buffer: its length is not reported */
		if (id == p->batch_last) {
			l = p->batch_len;
			p->batch_last = UINT32_MAX;
		}
	} else {
		id = __atomic_load_n(&e->id, __ATOMIC_RELAXED);
		l = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
	}
	if (id >= r->size || !r->tokens[id])
		return -EIO; /* device returned a head we never made available */
	r->last_used++;
	if (token)
		*token = r->tokens[id];
	if (len)
		*len = l;
	detach(r, (uint16_t)id);
	/* With interrupts on under EVENT_IDX, ask for the next entry (as Linux
	 * does after each buffer): store, then a full barrier. */
	if (r->event_idx && priv_of(r)->irq_on) {
		__atomic_store_n(&r->avail->ring[r->size], r->last_used, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	return 1;
}

void gring_set_interrupts(struct gring *r, bool enable)
{
	priv_of(r)->irq_on = enable;
	if (r->event_idx) {
		/* used_event: notify once the device uses entry last_used; when
		 * disabled, one behind last_used so it only fires after a wrap.
		 * flags stay 0: the device ignores them under EVENT_IDX. */
		uint16_t ev = enable ? r->last_used : (uint16_t)(r->last_used - 1);
		__atomic_store_n(&r->avail->ring[r->size], ev, __ATOMIC_RELAXED);
	} else {
		uint16_t fl = enable ? 0 : VRING_AVAIL_F_NO_INTERRUPT;
		__atomic_store_n(&r->avail->flags, fl, __ATOMIC_RELAXED);
	}
	/* Make the new setting visible before any following used-ring check. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void gring_raw_desc(struct gring *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		    uint16_t next)
{
	put_desc(&r->desc[i & (r->size - 1)], addr, len, flags, next);
}

void gring_raw_avail(struct gring *r, uint16_t slot, uint16_t head)
{
	__atomic_store_n(&r->avail->ring[slot & (r->size - 1)], head, __ATOMIC_RELAXED);
}

void gring_raw_avail_idx(struct gring *r, uint16_t idx)
{
	__atomic_store_n(&r->avail->idx, idx, __ATOMIC_RELEASE);
}

/* ------------------------------------------------- additions for the tests */

uint64_t gring_read_calls(struct gring *r)
{
	uint64_t v = 0;
	if (read(r->call_fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

bool gring_wait_call(struct gring *r, int timeout_ms)
{
	struct pollfd pfd = {.fd = r->call_fd, .events = POLLIN};
	int n;
	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n == 1 && (pfd.revents & POLLIN);
}

void gring_raw_used_event(struct gring *r, uint16_t v)
{
	__atomic_store_n(&r->avail->ring[r->size], v, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

uint16_t gring_used_flags(const struct gring *r)
{
	return __atomic_load_n(&r->used->flags, __ATOMIC_ACQUIRE);
}

uint16_t gring_avail_event(const struct gring *r)
{
	const uint16_t *evp = (const uint16_t *)(const void *)&r->used->ring[r->size];
	return __atomic_load_n(evp, __ATOMIC_ACQUIRE);
}

uint16_t gring_used_idx(const struct gring *r)
{
	return __atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE);
}

/* Transitional: vring start-up over vuf for a gring (the tests move to gvq). */
int vuf_set_gring_addr(struct vuf *v, uint32_t index, const struct gring *r)
{
	struct vhost_user_vring_addr a = {
		.index = index,
		.flags = 0,
		.desc_user_addr = gmem_qva(r->mem, r->desc_gpa),
		.used_user_addr = gmem_qva(r->mem, r->used_gpa),
		.avail_user_addr = gmem_qva(r->mem, r->avail_gpa),
		.log_guest_addr = 0,
	};
	if (!a.desc_user_addr || !a.used_user_addr || !a.avail_user_addr)
		return -EINVAL;
	return vuf_request(v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL);
}

int vuf_start_gring(struct vuf *v, uint32_t index, struct gring *r)
{
	int rc;
	if ((rc = vuf_set_vring_state(v, VHOST_USER_SET_VRING_NUM, index, r->size)) < 0)
		return rc;
	if ((rc = vuf_set_vring_state(v, VHOST_USER_SET_VRING_BASE, index, 0)) < 0)
		return rc;
	if ((rc = vuf_set_gring_addr(v, index, r)) < 0)
		return rc;
	if ((rc = vuf_set_vring_fd(v, VHOST_USER_SET_VRING_KICK, index, r->kick_fd)) < 0)
		return rc;
	if ((rc = vuf_set_vring_fd(v, VHOST_USER_SET_VRING_CALL, index, r->call_fd)) < 0)
		return rc;
	if (v->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))
		rc = vuf_set_vring_state(v, VHOST_USER_SET_VRING_ENABLE, index, 1);
	return rc;
}
