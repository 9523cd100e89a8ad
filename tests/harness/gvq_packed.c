/* SPDX-License-Identifier: MIT */
/*
 * The packed format of the guest virtqueue driver (see gvq.h). Ordering
 * follows the virtio spec's driver rules: every descriptor of a chain is
 * written before the head's flags (release); used entries are detected by
 * their flags (acquire) before id and len are read; the event structures
 * are read after a full barrier.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gvq_priv.h"

int gvq_packed_layout(struct gvq *q, const uint64_t *areas)
{
	void *d = NULL, *drv = NULL, *dev = NULL;
	if (areas) {
		d = gmem_ptr(q->mem, areas[0], 16ull * q->size);
		drv = gmem_ptr(q->mem, areas[1], 4);
		dev = gmem_ptr(q->mem, areas[2], 4);
		if (!d || !drv || !dev)
			return -EFAULT;
		memset(d, 0, 16ull * q->size);
		memset(drv, 0, 4);
		memset(dev, 0, 4);
		q->desc_gpa = areas[0];
		q->avail_gpa = areas[1];
		q->used_gpa = areas[2];
	} else {
		q->desc_gpa = gvq_zalloc(q->mem, 16ull * q->size, 16, &d);
		q->avail_gpa = q->desc_gpa ? gvq_zalloc(q->mem, 4, 4, &drv) : 0;
		q->used_gpa = q->avail_gpa ? gvq_zalloc(q->mem, 4, 4, &dev) : 0;
		if (!q->used_gpa)
			return -ENOMEM;
	}
	q->pdesc = d;
	q->drv = drv;
	q->dev = dev;
	return 0;
}

int gvq_packed_init(struct gvq *q)
{
	struct gvq_priv *p = q->priv;
	uint16_t n = q->size;
	p->free_ids = calloc(n, sizeof(*p->free_ids));
	p->raw_len = calloc(n, sizeof(*p->raw_len));
	if (!p->free_ids || !p->raw_len)
		return -ENOMEM;
	for (uint16_t i = 0; i < n; i++)
		p->free_ids[i] = (uint16_t)(n - 1 - i); /* id 0 is popped first */
	p->nfree_ids = n;
	q->avail_wrap = q->used_wrap = p->kicked_wrap = true;
	q->raw.wrap = q->raw.uwrap = true;
	return 0;
}

void gvq_packed_step(uint16_t size, uint16_t *pos, bool *wrap, uint32_t n)
{
	uint32_t p = (uint32_t)*pos + n;
	if (p >= size) {
		p -= size;
		*wrap = !*wrap;
	}
	*pos = (uint16_t)p;
}

/* Fill (a cached) indirect table for @id; returns its gpa or 0. */
static uint64_t fill_indirect(struct gvq *q, uint16_t id, const struct gbuf *out, int nout,
			      const struct gbuf *in, int nin)
{
	struct gvq_priv *p = q->priv;
	int total = nout + nin;
	if (!p->indirect_gpa[id] || p->icap[id] < total) {
		uint16_t cap = total <= (int)GVQ_INDIRECT_CACHE ? GVQ_INDIRECT_CACHE : (uint16_t)total;
		p->indirect_gpa[id] = gmem_alloc(q->mem, 16ull * cap, 16);
		p->icap[id] = cap;
		if (!p->indirect_gpa[id])
			return 0;
	}
	for (int i = 0; i < total; i++) {
		const struct gbuf *b = i < nout ? &out[i] : &in[i - nout];
		struct vring_packed_desc e = {.addr = b->gpa, .len = b->len, .id = 0,
					      .flags = i >= nout ? VRING_DESC_F_WRITE : 0};
		if (gmem_write(q->mem, p->indirect_gpa[id] + 16ull * (uint64_t)i, &e, sizeof(e)))
			return 0;
	}
	return p->indirect_gpa[id];
}

/* Write one ring descriptor; its flags are stored now unless it is the head. */
static void put(struct gvq *q, uint16_t pos, const struct vring_packed_desc *e, bool head)
{
	struct vring_packed_desc *d = &q->pdesc[pos];
	d->addr = e->addr;
	d->len = e->len;
	d->id = e->id;
	if (!head)
		__atomic_store_n(&d->flags, e->flags, __ATOMIC_RELEASE);
}

int gvq_packed_add(struct gvq *q, const struct gbuf *out, int nout, const struct gbuf *in,
		   int nin, bool indirect, void *token)
{
	struct gvq_priv *p = q->priv;
	int total = nout + nin, slots = indirect ? 1 : total;
	if (q->num_free < slots || !p->nfree_ids)
		return -ENOSPC;
	uint16_t id = p->free_ids[--p->nfree_ids];
	uint16_t pos = q->avail_pos, hpos = pos, hflags = 0;
	bool wrap = q->avail_wrap;
	if (indirect) {
		uint64_t t = fill_indirect(q, id, out, nout, in, nin);
		if (!t) {
			p->nfree_ids++;
			return -ENOMEM;
		}
		struct vring_packed_desc e = {t, (uint32_t)(16 * total), id,
					      (uint16_t)(VRING_DESC_F_INDIRECT | gvq_avail_bits(wrap))};
		put(q, pos, &e, true);
		hflags = e.flags;
		gvq_packed_step(q->size, &pos, &wrap, 1);
	} else {
		for (int k = 0; k < total; k++) {
			const struct gbuf *b = k < nout ? &out[k] : &in[k - nout];
			uint16_t fl = (uint16_t)((k >= nout ? VRING_DESC_F_WRITE : 0) |
						 (k + 1 < total ? VRING_DESC_F_NEXT : 0) |
						 gvq_avail_bits(wrap));
			struct vring_packed_desc e = {b->gpa, b->len, id, fl};
			put(q, pos, &e, k == 0);
			if (k == 0)
				hflags = fl;
			gvq_packed_step(q->size, &pos, &wrap, 1);
		}
	}
	p->tokens[id] = token;
	if (p->order)
		p->order[hpos] = id;
	p->chain_len[id] = (uint16_t)slots;
	q->num_free = (uint16_t)(q->num_free - slots);
	q->avail_pos = pos;
	q->avail_wrap = wrap;
	/* The head last: pairs with the device's acquire load of the flags. */
	__atomic_store_n(&q->pdesc[hpos].flags, hflags, __ATOMIC_RELEASE);
	return id;
}

int gvq_packed_next_id(const struct gvq *q)
{
	const struct gvq_priv *p = q->priv;
	if (!q->num_free || !p->nfree_ids)
		return -ENOSPC;
	return p->free_ids[p->nfree_ids - 1];
}

/* Slots from (@fp, @fw) forward to (@p, @w); UINT32_MAX when behind. */
static uint32_t dist(uint16_t size, uint16_t fp, bool fw, uint32_t p, bool w)
{
	if (w == fw)
		return p >= fp ? p - fp : UINT32_MAX;
	return p < fp ? p + size - fp : (p == fp ? size : UINT32_MAX);
}

bool gvq_packed_kick_needed(struct gvq *q)
{
	struct gvq_priv *p = q->priv;
	uint16_t old = p->kicked_pos;
	bool old_wrap = p->kicked_wrap;
	p->kicked_pos = q->avail_pos;
	p->kicked_wrap = q->avail_wrap;
	/* Full barrier: descriptors published before the event structure is read. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t fl = __atomic_load_n(&q->dev->flags, __ATOMIC_RELAXED);
	uint16_t ow = __atomic_load_n(&q->dev->off_wrap, __ATOMIC_RELAXED);
	if (fl == VRING_PACKED_EVENT_FLAG_DISABLE)
		return false;
	if (fl != VRING_PACKED_EVENT_FLAG_DESC || !q->event_idx)
		return true;
	uint32_t span = dist(q->size, old, old_wrap, q->avail_pos, q->avail_wrap);
	return dist(q->size, old, old_wrap, ow & 0x7fffu, ow & GVQ_WRAP) < span;
}

/* With EVENT_IDX and interrupts on: ask for a call at the next used slot. */
static void rearm(struct gvq *q)
{
	uint16_t ow = (uint16_t)(q->used_pos | (q->used_wrap ? GVQ_WRAP : 0));
	__atomic_store_n(&q->drv->off_wrap, ow, __ATOMIC_RELAXED);
	__atomic_store_n(&q->drv->flags, (uint16_t)VRING_PACKED_EVENT_FLAG_DESC, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Is ring slot @pos marked used by the device in lap @wrap? (acquire) */
static bool slot_used(const struct gvq *q, uint16_t pos, bool wrap)
{
	uint16_t fl = __atomic_load_n(&q->pdesc[pos].flags, __ATOMIC_ACQUIRE);
	return !!(fl & GVQ_F_AVAIL) == wrap && !!(fl & GVQ_F_USED) == wrap;
}

/* IN_ORDER: the next buffer in ring order, expanding a batched used descriptor. */
static int get_used_in_order(struct gvq *q, uint16_t *idp, uint32_t *lp)
{
	struct gvq_priv *p = q->priv;
	if (p->batch_last == UINT32_MAX) {
		if (!slot_used(q, q->used_pos, q->used_wrap))
			return 0;
		struct vring_packed_desc *d = &q->pdesc[q->used_pos];
		uint16_t bid = __atomic_load_n(&d->id, __ATOMIC_RELAXED);
		if (bid >= q->size || !p->tokens[bid])
			return -EIO;
		p->batch_last = bid;
		p->batch_len = __atomic_load_n(&d->len, __ATOMIC_RELAXED);
	}
	uint16_t id = p->order[q->used_pos];
	if (id >= q->size || !p->tokens[id])
		return -EIO;
	*idp = id;
	*lp = 0; /* a skipped buffer: its length is not reported */
	if (id == p->batch_last) {
		*lp = p->batch_len;
		p->batch_last = UINT32_MAX;
	}
	return 1;
}

int gvq_packed_get_used(struct gvq *q, void **token, uint32_t *len)
{
	struct gvq_priv *p = q->priv;
	uint16_t id;
	uint32_t l;
	if (p->order) {
		int rc = get_used_in_order(q, &id, &l);
		if (rc <= 0)
			return rc;
	} else {
		if (!slot_used(q, q->used_pos, q->used_wrap))
			return 0;
		struct vring_packed_desc *d = &q->pdesc[q->used_pos];
		id = __atomic_load_n(&d->id, __ATOMIC_RELAXED);
		l = __atomic_load_n(&d->len, __ATOMIC_RELAXED);
		if (id >= q->size || !p->tokens[id])
			return -EIO; /* the device returned an id we never made available */
	}
	if (token)
		*token = p->tokens[id];
	if (len)
		*len = l;
	gvq_packed_step(q->size, &q->used_pos, &q->used_wrap, p->chain_len[id]);
	q->num_free = (uint16_t)(q->num_free + p->chain_len[id]);
	p->tokens[id] = NULL;
	p->chain_len[id] = 0;
	p->free_ids[p->nfree_ids++] = id;
	if (q->event_idx && p->irq_on)
		rearm(q);
	return 1;
}

/*
 * IN_ORDER: walk the buffers of a batch in ring order from (@pos, @wrap)
 * up to and including buffer @last, at most @budget of them. Returns how
 * many, or -EIO for a ring slot that holds no outstanding buffer.
 */
static int walk_batch(const struct gvq *q, uint16_t *pos, bool *wrap, uint32_t last,
		      uint32_t budget)
{
	const struct gvq_priv *p = q->priv;
	uint32_t n = 0, id = UINT32_MAX;
	while (id != last && n < budget) {
		id = p->order[*pos];
		if (id >= q->size || !p->chain_len[id])
			return -EIO;
		gvq_packed_step(q->size, pos, wrap, p->chain_len[id]);
		n++;
	}
	return (int)n;
}

int gvq_packed_used_pending(const struct gvq *q)
{
	const struct gvq_priv *p = q->priv;
	uint16_t pos = q->used_pos;
	bool wrap = q->used_wrap;
	uint32_t outstanding = (uint32_t)q->size - p->nfree_ids;
	int n = 0, k;
	if (p->order && p->batch_last != UINT32_MAX) {
		/* Part of a batch was read already: the rest of it is used too. */
		if ((k = walk_batch(q, &pos, &wrap, p->batch_last, outstanding)) < 0)
			return k;
		n += k;
	}
	while ((uint32_t)n < outstanding && slot_used(q, pos, wrap)) {
		uint16_t last = __atomic_load_n(&q->pdesc[pos].id, __ATOMIC_RELAXED);
		if (last >= q->size || !p->chain_len[last])
			return -EIO; /* not outstanding: gvq_get_used will say so too */
		if (p->order) { /* IN_ORDER: this entry completes every buffer up to @last */
			if ((k = walk_batch(q, &pos, &wrap, last, outstanding - (uint32_t)n)) < 0)
				return k;
			n += k;
			continue;
		}
		n++;
		gvq_packed_step(q->size, &pos, &wrap, p->chain_len[last]);
	}
	return n;
}

void gvq_packed_set_interrupts(struct gvq *q, bool enable)
{
	q->priv->irq_on = enable;
	if (enable && q->event_idx) {
		rearm(q);
		return;
	}
	uint16_t fl = enable ? VRING_PACKED_EVENT_FLAG_ENABLE : VRING_PACKED_EVENT_FLAG_DISABLE;
	__atomic_store_n(&q->drv->flags, fl, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}
