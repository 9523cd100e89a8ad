/* SPDX-License-Identifier: MIT */
/*
 * Guest-side packed virtqueue driver for the tests (see gring_packed.h).
 * Ordering follows the virtio spec's driver rules: every descriptor of a
 * chain is written before the head's flags (release); used entries are
 * detected by their flags (acquire) before id/len are read; the event
 * structures are read after a full barrier.
 */
#include "gring_packed.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vuf.h"

#define PR_F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define PR_F_USED (1u << VRING_PACKED_DESC_F_USED)
#define PR_WRAP (1u << VRING_PACKED_EVENT_F_WRAP_CTR)
#define PR_INDIRECT_CACHE 64u

/* Zeroed guest allocation; returns gpa (and the frontend pointer) or 0. */
static uint64_t pr_zalloc(struct gmem *m, uint64_t len, uint64_t align, void **ptr)
{
	uint64_t gpa = gmem_alloc(m, len, align);
	if (!gpa)
		return 0;
	*ptr = gmem_ptr(m, gpa, len);
	memset(*ptr, 0, len);
	return gpa;
}

/* Per-id arrays and the id stack. */
static int pr_alloc_ids(struct pring *r)
{
	uint16_t n = r->size;
	r->free_ids = calloc(n, sizeof(*r->free_ids));
	r->chain_len = calloc(n, sizeof(*r->chain_len));
	r->tokens = calloc(n, sizeof(*r->tokens));
	r->indirect_gpa = calloc(n, sizeof(*r->indirect_gpa));
	r->icap = calloc(n, sizeof(*r->icap));
	if (!r->free_ids || !r->chain_len || !r->tokens || !r->indirect_gpa || !r->icap)
		return -ENOMEM;
	for (uint16_t i = 0; i < n; i++)
		r->free_ids[i] = (uint16_t)(n - 1 - i); /* id 0 is popped first */
	r->nfree_ids = n;
	return 0;
}

int pring_new(struct gmem *m, uint16_t size, bool event_idx, struct pring **ret)
{
	void *d = NULL, *drv = NULL, *dev = NULL;
	int rc = -ENOMEM;

	if (!m || !ret || size == 0 || size > 32768)
		return -EINVAL;
	struct pring *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->mem = m;
	r->size = size;
	r->event_idx = event_idx;
	r->kick_fd = r->call_fd = -1;
	r->desc_gpa = pr_zalloc(m, 16ull * size, 16, &d);
	r->drv_gpa = r->desc_gpa ? pr_zalloc(m, 4, 4, &drv) : 0;
	r->dev_gpa = r->drv_gpa ? pr_zalloc(m, 4, 4, &dev) : 0;
	if (!r->dev_gpa)
		goto err_free;
	r->desc = d;
	r->drv = drv;
	r->dev = dev;
	if ((rc = pr_alloc_ids(r)) < 0)
		goto err_free;
	r->avail_wrap = r->used_wrap = r->kicked_wrap = true;
	r->num_free = size;
	r->irq_on = true;
	r->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->kick_fd < 0 || r->call_fd < 0) {
		rc = -errno;
		goto err_free;
	}
	*ret = r;
	return 0;

err_free:
	pring_free(r);
	return rc;
}

void pring_free(struct pring *r)
{
	if (!r)
		return;
	if (r->kick_fd >= 0)
		close(r->kick_fd);
	if (r->call_fd >= 0)
		close(r->call_fd);
	free(r->free_ids);
	free(r->chain_len);
	free(r->tokens);
	free(r->indirect_gpa);
	free(r->icap);
	free(r->order);
	free(r);
}

int pring_set_in_order(struct pring *r)
{
	r->order = calloc(r->size, sizeof(*r->order));
	r->batch_last = UINT32_MAX;
	return r->order ? 0 : -ENOMEM;
}

uint16_t pring_avail_bits(bool wrap)
{
	return (uint16_t)(wrap ? PR_F_AVAIL : PR_F_USED);
}

/* Step ring position *@pos, flipping *@wrap at the end of the ring. */
static void pr_step(const struct pring *r, uint16_t *pos, bool *wrap, uint16_t n)
{
	uint32_t p = (uint32_t)*pos + n;
	if (p >= r->size) {
		p -= r->size;
		*wrap = !*wrap;
	}
	*pos = (uint16_t)p;
}

/* Fill (a cached) indirect table for @id; returns its gpa or 0. */
static uint64_t pr_indirect(struct pring *r, uint16_t id, const struct gbuf *out, int nout,
			    const struct gbuf *in, int nin)
{
	int total = nout + nin;
	if (!r->indirect_gpa[id] || r->icap[id] < total) {
		uint16_t cap = total <= (int)PR_INDIRECT_CACHE ? PR_INDIRECT_CACHE : (uint16_t)total;
		r->indirect_gpa[id] = gmem_alloc(r->mem, 16ull * cap, 16);
		r->icap[id] = cap;
		if (!r->indirect_gpa[id])
			return 0;
	}
	for (int i = 0; i < total; i++) {
		const struct gbuf *b = i < nout ? &out[i] : &in[i - nout];
		struct vring_packed_desc e = {.addr = b->gpa, .len = b->len, .id = 0,
					      .flags = i >= nout ? VRING_DESC_F_WRITE : 0};
		if (gmem_write(r->mem, r->indirect_gpa[id] + 16ull * (uint64_t)i, &e, sizeof(e)))
			return 0;
	}
	return r->indirect_gpa[id];
}

/* Write one ring descriptor; its flags are stored now unless it is the head. */
static void pr_put(struct pring *r, uint16_t pos, const struct vring_packed_desc *e, bool head)
{
	struct vring_packed_desc *d = &r->desc[pos];
	d->addr = e->addr;
	d->len = e->len;
	d->id = e->id;
	if (!head)
		__atomic_store_n(&d->flags, e->flags, __ATOMIC_RELEASE);
}

int pring_add(struct pring *r, const struct gbuf *out, int nout, const struct gbuf *in, int nin,
	      bool indirect, void *token)
{
	int total = nout + nin;
	if (nout < 0 || nin < 0 || total == 0 || total > 65535 || !token)
		return -EINVAL;
	int slots = indirect ? 1 : total;
	if (r->num_free < slots || !r->nfree_ids)
		return -ENOSPC;
	uint16_t id = r->free_ids[--r->nfree_ids];
	uint16_t pos = r->next_avail, hpos = pos, hflags = 0;
	bool wrap = r->avail_wrap;
	if (indirect) {
		uint64_t t = pr_indirect(r, id, out, nout, in, nin);
		if (!t) {
			r->nfree_ids++;
			return -ENOMEM;
		}
		struct vring_packed_desc e = {t, (uint32_t)(16 * total), id,
					      (uint16_t)(VRING_DESC_F_INDIRECT | pring_avail_bits(wrap))};
		pr_put(r, pos, &e, true);
		hflags = e.flags;
		pr_step(r, &pos, &wrap, 1);
	} else {
		for (int k = 0; k < total; k++) {
			const struct gbuf *b = k < nout ? &out[k] : &in[k - nout];
			uint16_t fl = (uint16_t)((k >= nout ? VRING_DESC_F_WRITE : 0) |
						 (k + 1 < total ? VRING_DESC_F_NEXT : 0) |
						 pring_avail_bits(wrap));
			struct vring_packed_desc e = {b->gpa, b->len, id, fl};
			pr_put(r, pos, &e, k == 0);
			if (k == 0)
				hflags = fl;
			pr_step(r, &pos, &wrap, 1);
		}
	}
	r->tokens[id] = token;
	if (r->order)
		r->order[hpos] = id;
	r->chain_len[id] = (uint16_t)slots;
	r->num_free = (uint16_t)(r->num_free - slots);
	r->next_avail = pos;
	r->avail_wrap = wrap;
	/* The head last: pairs with the device's acquire load of the flags. */
	__atomic_store_n(&r->desc[hpos].flags, hflags, __ATOMIC_RELEASE);
	return id;
}

/* Slots from (@fp, @fw) forward to (@p, @w); UINT32_MAX when behind. */
static uint32_t pr_dist(uint16_t size, uint16_t fp, bool fw, uint32_t p, bool w)
{
	if (w == fw)
		return p >= fp ? p - fp : UINT32_MAX;
	return p < fp ? p + size - fp : (p == fp ? size : UINT32_MAX);
}

/* Does the device want a kick for the descriptors made available since the last one? */
static bool pr_kick_needed(struct pring *r)
{
	uint16_t old = r->kicked_pos;
	bool old_wrap = r->kicked_wrap;
	r->kicked_pos = r->next_avail;
	r->kicked_wrap = r->avail_wrap;
	/* Full barrier: descriptors published before the event structure is read. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t fl = __atomic_load_n(&r->dev->flags, __ATOMIC_RELAXED);
	uint16_t ow = __atomic_load_n(&r->dev->off_wrap, __ATOMIC_RELAXED);
	if (fl == VRING_PACKED_EVENT_FLAG_DISABLE)
		return false;
	if (fl != VRING_PACKED_EVENT_FLAG_DESC || !r->event_idx)
		return true;
	uint32_t span = pr_dist(r->size, old, old_wrap, r->next_avail, r->avail_wrap);
	return pr_dist(r->size, old, old_wrap, ow & 0x7fffu, ow & PR_WRAP) < span;
}

void pring_kick(struct pring *r)
{
	if (pr_kick_needed(r))
		pring_kick_force(r);
}

void pring_kick_force(struct pring *r)
{
	uint64_t one = 1;
	if (write(r->kick_fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
		r->kicks_sent++;
}

/* With EVENT_IDX and interrupts on: ask for a call at the next used slot. */
static void pr_rearm(struct pring *r)
{
	uint16_t ow = (uint16_t)(r->last_used | (r->used_wrap ? PR_WRAP : 0));
	__atomic_store_n(&r->drv->off_wrap, ow, __ATOMIC_RELAXED);
	__atomic_store_n(&r->drv->flags, (uint16_t)VRING_PACKED_EVENT_FLAG_DESC, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* IN_ORDER: the next buffer in ring order, expanding a batched used descriptor. */
static int pr_get_used_in_order(struct pring *r, uint16_t *idp, uint32_t *lp)
{
	if (r->batch_last == UINT32_MAX) {
		struct vring_packed_desc *d = &r->desc[r->last_used];
		uint16_t fl = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
		if (!!(fl & PR_F_AVAIL) != r->used_wrap || !!(fl & PR_F_USED) != r->used_wrap)
			return 0;
		uint16_t bid = __atomic_load_n(&d->id, __ATOMIC_RELAXED);
		if (bid >= r->size || !r->tokens[bid])
			return -EIO;
		r->batch_last = bid;
		r->batch_len = __atomic_load_n(&d->len, __ATOMIC_RELAXED);
	}
	uint16_t id = r->order[r->last_used];
	if (id >= r->size || !r->tokens[id])
		return -EIO;
	*idp = id;
	*lp = 0; /* a skipped buffer: its length is not reported */
	if (id == r->batch_last) {
		*lp = r->batch_len;
		r->batch_last = UINT32_MAX;
	}
	return 1;
}

int pring_get_used(struct pring *r, void **token, uint32_t *len)
{
	uint16_t id;
	uint32_t l;
	if (r->order) {
		int rc = pr_get_used_in_order(r, &id, &l);
		if (rc <= 0)
			return rc;
	} else {
		struct vring_packed_desc *d = &r->desc[r->last_used];
		uint16_t fl = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
		if (!!(fl & PR_F_AVAIL) != r->used_wrap || !!(fl & PR_F_USED) != r->used_wrap)
			return 0;
		id = __atomic_load_n(&d->id, __ATOMIC_RELAXED);
		l = __atomic_load_n(&d->len, __ATOMIC_RELAXED);
		if (id >= r->size || !r->tokens[id])
			return -EIO; /* the device returned an id we never made available */
	}
	if (token)
		*token = r->tokens[id];
	if (len)
		*len = l;
	pr_step(r, &r->last_used, &r->used_wrap, r->chain_len[id]);
	r->num_free = (uint16_t)(r->num_free + r->chain_len[id]);
	r->tokens[id] = NULL;
	r->chain_len[id] = 0;
	r->free_ids[r->nfree_ids++] = id;
	if (r->event_idx && r->irq_on)
		pr_rearm(r);
	return 1;
}

void pring_set_interrupts(struct pring *r, bool enable)
{
	r->irq_on = enable;
	if (enable && r->event_idx) {
		pr_rearm(r);
		return;
	}
	uint16_t fl = enable ? VRING_PACKED_EVENT_FLAG_ENABLE : VRING_PACKED_EVENT_FLAG_DISABLE;
	__atomic_store_n(&r->drv->flags, fl, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void pring_raw_drv_event(struct pring *r, uint16_t flags, uint16_t off_wrap)
{
	__atomic_store_n(&r->drv->off_wrap, off_wrap, __ATOMIC_RELAXED);
	__atomic_store_n(&r->drv->flags, flags, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void pring_raw_desc(struct pring *r, uint16_t pos, uint64_t addr, uint32_t len, uint16_t id,
		    uint16_t flags)
{
	struct vring_packed_desc e = {addr, len, id, flags};
	pos = (uint16_t)(pos % r->size);
	pr_put(r, pos, &e, true);
	__atomic_store_n(&r->desc[pos].flags, flags, __ATOMIC_RELEASE);
}

uint16_t pring_dev_flags(const struct pring *r)
{
	return __atomic_load_n(&r->dev->flags, __ATOMIC_ACQUIRE);
}

uint16_t pring_dev_off_wrap(const struct pring *r)
{
	return __atomic_load_n(&r->dev->off_wrap, __ATOMIC_ACQUIRE);
}

uint64_t pring_read_calls(struct pring *r)
{
	uint64_t v = 0;
	if (read(r->call_fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

bool pring_wait_call(struct pring *r, int timeout_ms)
{
	struct pollfd pfd = {.fd = r->call_fd, .events = POLLIN};
	int n;
	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n == 1 && (pfd.revents & POLLIN);
}

int pring_start_vring(struct vuf *v, uint32_t index, struct pring *r, uint32_t base)
{
	struct vhost_user_vring_addr a = {
		.index = index,
		.flags = 0,
		.desc_user_addr = gmem_qva(r->mem, r->desc_gpa),
		.used_user_addr = gmem_qva(r->mem, r->dev_gpa),
		.avail_user_addr = gmem_qva(r->mem, r->drv_gpa),
		.log_guest_addr = 0,
	};
	int rc;
	if (!a.desc_user_addr || !a.used_user_addr || !a.avail_user_addr)
		return -EINVAL;
	if ((rc = vuf_set_vring_state(v, VHOST_USER_SET_VRING_NUM, index, r->size)) < 0)
		return rc;
	if ((rc = vuf_set_vring_state(v, VHOST_USER_SET_VRING_BASE, index, base)) < 0)
		return rc;
	if ((rc = vuf_request(v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL)) < 0)
		return rc;
	if ((rc = vuf_set_vring_fd(v, VHOST_USER_SET_VRING_KICK, index, r->kick_fd)) < 0)
		return rc;
	if ((rc = vuf_set_vring_fd(v, VHOST_USER_SET_VRING_CALL, index, r->call_fd)) < 0)
		return rc;
	if (v->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))
		rc = vuf_set_vring_state(v, VHOST_USER_SET_VRING_ENABLE, index, 1);
	return rc;
}

uint32_t pring_base(const struct pring *r)
{
	uint32_t avail = r->next_avail | (r->avail_wrap ? PR_WRAP : 0);
	uint32_t used = r->last_used | (r->used_wrap ? PR_WRAP : 0);
	return avail | used << 16;
}
