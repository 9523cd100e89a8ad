/* SPDX-License-Identifier: MIT */
/*
 * Inline fast paths of vq_pop() and vq_push() for devices' packet loops.
 *
 * The common case runs without a call per packet: chains of one
 * descriptor whose buffer lies in one region, popped one at a time
 * (vq_pop_one) or as a burst (vq_pop_burst_one, ring pointers and the
 * region bounds in registers), used entries recorded one at a time
 * (vq_push_fast) or per burst (vq_push_burst). Anything else goes to the
 * out-of-line vq_pop() / vq_push(), which start from scratch: a fast
 * attempt changes no state before it commits, and the slow path fetches
 * and validates everything again itself (so a guest that changes a ring
 * entry between the two reads only gets the slow path's view). Chains a
 * burst popped but the device cannot use go back with vq_rewind_one().
 *
 * The checks are the slow path's for this shape: head / id < size (then
 * clamped with index_nospec), not in flight, one fetch of the descriptor
 * into a laundered local, neither NEXT nor INDIRECT, non-empty, the whole
 * range translated in one region.
 *
 * Includes: vq.h, chain_walk.h. Datapath owner only (between vq_enter and
 * vq_leave).
 */
#ifndef VHK_VQ_VQ_FAST_H
#define VHK_VQ_VQ_FAST_H

#include <errno.h>
#include <string.h>

#include "vq/vq.h"
#include "vq/chain_walk.h"
#include "vq/vq_rules.h"

/* A chain of one descriptor, as the fast pop returns it. */
struct vq_one {
	uint8_t *base; /* translated buffer, len bytes in one region */
	uint32_t len;  /* > 0 */
	uint16_t id;   /* head (split) or buffer id (packed), < size */
	bool write;    /* device-writable */
};

/* Split: pop a one-descriptor chain into @o, or false (nothing changed). */
static inline bool vqf_split_pop_one(struct vq *vq, struct vq_one *o)
{
	uint16_t idx = vq->last_avail_idx;
	struct vring_desc d;

	/* Only entries counted by the last acquire load of avail->idx (vq_split_avail_count). */
	if (unlikely(idx == vq->shadow_avail_idx))
		return false;
	uint16_t head = READ_ONCE(vq->avail->ring[idx & (vq->size - 1)]);
	if (unlikely(head >= vq->size))
		return false;
	head = (uint16_t)index_nospec(head, vq->size);
	struct vqr_ibit ib = vqr_inflight_at(vq->inflight, head);
	if (unlikely(vqr_ibit_busy(ib)))
		return false;
	memcpy(&d, &vq->desc[head], sizeof(d));
	CHAIN_LAUNDER(d);
	if (unlikely(!chain_one_xlate(vq->mem, &vq->mem_hint, d.addr, d.len, d.flags, &o->base)))
		return false;
	o->len = d.len;
	o->id = head;
	o->write = d.flags & VRING_DESC_F_WRITE;
	vqr_ibit_set(ib);
	vq->pk_state[head] = vqr_split_rec(idx, o->write);
	vq->last_avail_idx = (uint16_t)(idx + 1);
	return true;
}

/* Packed: pop a one-descriptor chain into @o, or false (nothing changed). */
static inline bool vqf_packed_pop_one(struct vq *vq, struct vq_one *o)
{
	uint16_t pos = vq->last_avail_idx;
	bool wrap = vq->avail_wrap;
	struct vring_packed_desc d;

	/* Acquire pairs with the driver's release (or wmb) before its flags store. */
	uint16_t flags = load_acquire(&vq->pdesc[pos].flags);
	if (!vqr_packed_avail(flags, wrap))
		return false;
	memcpy(&d, &vq->pdesc[pos], sizeof(d));
	CHAIN_LAUNDER(d);
	if (unlikely(d.id >= vq->size))
		return false;
	uint16_t id = (uint16_t)index_nospec(d.id, vq->size);
	struct vqr_ibit ib = vqr_inflight_at(vq->inflight, id);
	if (unlikely(vqr_ibit_busy(ib)))
		return false;
	if (unlikely(!chain_one_xlate(vq->mem, &vq->mem_hint, d.addr, d.len, flags, &o->base)))
		return false;
	o->len = d.len;
	o->id = id;
	o->write = flags & VRING_DESC_F_WRITE;
	vqr_ibit_set(ib);
	vq->pk_state[id] = vqr_packed_rec(1, o->write, pos, wrap);
	(void)vqr_packed_next(vq->size, &pos, &wrap);
	vq->last_avail_idx = pos;
	vq->avail_wrap = wrap;
	return true;
}

/*
 * Pop the next chain if it is one descriptor in one region (true, @o
 * filled). False: nothing changed, use vq_pop().
 */
static inline bool vq_pop_one(struct vq *vq, struct vq_one *o)
{
	return vq->packed ? vqf_packed_pop_one(vq, o) : vqf_split_pop_one(vq, o);
}

/*
 * Burst form of vq_pop_one(): pop up to @max chains in a row that are one
 * descriptor each, with the buffer inside the region of the translation
 * hint (the common case: one region, or locality). Stops at the first
 * chain of any other shape, leaving it to vq_pop(). Per-burst values (ring
 * pointers, the hint region's bounds) stay in registers. The checks per
 * chain are vq_pop_one()'s: head / id < size (clamped), not in flight, one
 * laundered fetch of the descriptor, neither NEXT nor INDIRECT, non-empty,
 * [addr, addr + len) inside the region. Returns the number popped; the
 * last ones can be given back with vq_rewind().
 */
static inline uint16_t vqf_split_pop_burst(struct vq *vq, struct vq_one *o, uint16_t max)
{
	const struct mem_table *t = vq->mem;
	const uint32_t h = vq->mem_hint;
	uint16_t idx = vq->last_avail_idx, n;

	if (unlikely(!t || h >= t->nregions))
		return 0;
	if ((uint16_t)(vq->shadow_avail_idx - idx) < max) {
		(void)vq_split_avail_count(vq); /* acquire load of avail->idx */
		if (unlikely(vq->broken))
			return 0;
	}
	max = MIN(max, (uint16_t)(vq->shadow_avail_idx - idx));
	const struct mem_region *r = &t->regions[h];
	const uint64_t rgpa = r->gpa, rsize = r->size;
	uint8_t *const rhva = r->hva;
	const uint16_t size = vq->size, mask = (uint16_t)(size - 1);
	const struct vring_desc *desc = vq->desc;
	const uint16_t *ring = vq->avail->ring;
	uint64_t *inflight = vq->inflight;
	uint32_t *state = vq->pk_state;

	for (n = 0; n < max; n++) {
		/* Ordered after the acquire load of avail->idx that counted it. */
		uint16_t head = READ_ONCE(ring[(uint16_t)(idx + n) & mask]);
		struct vring_desc d;
		if (unlikely(head >= size))
			break;
		head = (uint16_t)index_nospec(head, size);
		if (unlikely(vqr_inflight_test(inflight, head)))
			break;
		memcpy(&d, &desc[head], sizeof(d));
		CHAIN_LAUNDER(d);
		uint64_t off = d.addr - rgpa;
		if (unlikely((d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) || d.len == 0 ||
			     off >= rsize || rsize - off < d.len))
			break;
		bool wr = d.flags & VRING_DESC_F_WRITE;
		vqr_inflight_set(inflight, head);
		state[head] = vqr_split_rec((uint16_t)(idx + n), wr);
		o[n].base = rhva + off;
		o[n].len = d.len;
		o[n].id = head;
		o[n].write = wr;
	}
	vq->last_avail_idx = (uint16_t)(idx + n);
	return n;
}

/* Packed form of vqf_split_pop_burst() (availability from each descriptor's flags). */
static inline uint16_t vqf_packed_pop_burst(struct vq *vq, struct vq_one *o, uint16_t max)
{
	const struct mem_table *t = vq->mem;
	const uint32_t h = vq->mem_hint;
	uint16_t pos = vq->last_avail_idx, n;
	bool wrap = vq->avail_wrap;

	if (unlikely(!t || h >= t->nregions))
		return 0;
	const struct mem_region *r = &t->regions[h];
	const uint64_t rgpa = r->gpa, rsize = r->size;
	uint8_t *const rhva = r->hva;
	const uint16_t size = vq->size;
	struct vring_packed_desc *ring = vq->pdesc;
	uint64_t *inflight = vq->inflight;
	uint32_t *state = vq->pk_state;
	/* The lap-dependent bits, flipped on a lap: availability test and pop record. */
	uint16_t want = vqr_packed_want(wrap);
	uint32_t rlap = vqr_packed_rec_lap(wrap);

	for (n = 0; n < max; n++) {
		struct vring_packed_desc d;
		/* Acquire pairs with the driver's release (or wmb) before its flags store. */
		uint16_t flags = load_acquire(&ring[pos].flags);
		if (!vqr_packed_avail_want(flags, want))
			break;
		memcpy(&d, &ring[pos], sizeof(d));
		CHAIN_LAUNDER(d);
		if (unlikely(d.id >= size))
			break;
		uint16_t id = (uint16_t)index_nospec(d.id, size);
		struct vqr_ibit ib = vqr_inflight_at(inflight, id);
		if (unlikely(vqr_ibit_busy(ib)))
			break;
		uint64_t off = d.addr - rgpa;
		if (unlikely((flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) || d.len == 0 ||
			     off >= rsize || rsize - off < d.len))
			break;
		bool wr = flags & VRING_DESC_F_WRITE;
		vqr_ibit_set(ib);
		state[id] = vqr_packed_rec_in_lap(rlap, 1, wr, pos);
		o[n].base = rhva + off;
		o[n].len = d.len;
		o[n].id = id;
		o[n].write = wr;
		if (unlikely(vqr_packed_next(size, &pos, &wrap))) {
			want = vqr_packed_lap_flip(want);
			rlap = vqr_packed_rec_lap(wrap);
		}
	}
	vq->last_avail_idx = pos;
	vq->avail_wrap = wrap;
	return n;
}

/* See vqf_split_pop_burst(). */
static inline uint16_t vq_pop_burst_one(struct vq *vq, struct vq_one *o, uint16_t max)
{
	return vq->packed ? vqf_packed_pop_burst(vq, o, max) : vqf_split_pop_burst(vq, o, max);
}

/* Give back the chains @o[0 .. @n), the last popped (vq_rewind() in pop order). */
static inline void vq_rewind_one(struct vq *vq, const struct vq_one *o, uint16_t n)
{
	uint16_t ids[64];

	while (n) {
		/* In chunks from the end: each chunk is the last popped when it is given back. */
		uint16_t k = MIN(n, (uint16_t)64);
		for (uint16_t i = 0; i < k; i++)
			ids[i] = o[n - k + i].id;
		vq_rewind(vq, ids, k);
		n = (uint16_t)(n - k);
	}
}

/* The chain of one piece @o in vq_pop()'s form. */
static inline void vq_one_to_chain(const struct vq_one *o, struct vq_chain *c)
{
	c->id = o->id;
	c->ndesc = 1;
	c->iov[0].base = o->base;
	c->iov[0].len = o->len;
	c->nout = o->write ? 0 : 1;
	c->nin = o->write ? 1 : 0;
	c->out_len = o->write ? 0 : o->len;
	c->in_len = o->write ? o->len : 0;
}

/* Prefetch a line we will write (prefetchw: fetched exclusive, no later upgrade). */
static inline void vqf_prefetch_w(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
#else
	__builtin_prefetch(p, 1, 3);
#endif
}

/*
 * vq_push() inline; the same bookkeeping as vq_split_push() /
 * vq_packed_push(), IN_ORDER batching included. Out of range (a device
 * bug) goes to vq_push(), which ignores it.
 */
static inline void vq_push_fast(struct vq *vq, uint16_t id, uint32_t len)
{
	const uint16_t size = vq->size;

	if (unlikely(id >= size || vq->shadow_count >= size)) {
		vq_push(vq, id, len);
		return;
	}
	id = (uint16_t)index_nospec(id, size);
	struct vring_used_elem *e = &vq->shadow_used[vq->shadow_count++];
	vqr_inflight_clear(vq->inflight, id);
	e->len = len;
	if (!vq->packed && !vq->in_order) {
		e->id = id;
		return;
	}
	uint32_t st = vq->pk_state[id];
	if (vq->packed) {
		if (vq->in_order)
			vqr_packed_io_step(size, &vq->io_next, &vq->io_wrap, &vq->io_batch_ok, st,
					   len);
		e->id = vqr_packed_shadow_id(id, vqr_packed_rec_slots(st));
	} else {
		if (vq->in_order)
			vqr_split_io_step(&vq->io_next, &vq->io_batch_ok, st, len);
		e->id = id;
	}
}

/*
 * Push the chains @o[0 .. @n) popped by vq_pop_burst_one(), each with
 * o[i].len bytes written, in order, in one loop (a one-descriptor chain
 * takes one slot: bits 16..31 of a packed shadow id = 1). With IN_ORDER the
 * batching bookkeeping of vq_push_fast() runs in the same loop, on locals.
 * A shadow that could overflow (device bug) takes vq_push_fast().
 */
static inline void vq_push_burst(struct vq *vq, const struct vq_one *o, uint16_t n)
{
	const uint16_t sc = vq->shadow_count, size = vq->size;

	if (unlikely((uint32_t)sc + n > size)) {
		for (uint16_t i = 0; i < n; i++)
			vq_push_fast(vq, o[i].id, o[i].len);
		return;
	}
	struct vring_used_elem *e = vq->shadow_used + sc;
	uint64_t *inflight = vq->inflight;
	const bool packed = vq->packed;
	const uint32_t slots = packed ? vqr_packed_shadow_id(0, 1) : 0; /* packed: one slot each */
	for (uint16_t i = 0; i < n; i++) {
		uint16_t id = o[i].id; /* < size: checked and clamped by the pop */
		vqr_inflight_clear(inflight, id);
		e[i].id = id | slots;
		e[i].len = o[i].len;
	}
	vq->shadow_count = (uint16_t)(sc + n);
	if (!vq->in_order)
		return;
	/* IN_ORDER: batchable only if popped in order, len 0 and read-only. */
	const uint32_t *state = vq->pk_state;
	uint16_t next = vq->io_next;
	bool wrap = vq->io_wrap, ok = vq->io_batch_ok;
	for (uint16_t i = 0; i < n; i++) {
		if (packed)
			vqr_packed_io_step1(size, &next, &wrap, &ok, state[o[i].id], o[i].len);
		else
			vqr_split_io_step(&next, &ok, state[o[i].id], o[i].len);
	}
	vq->io_next = next;
	vq->io_wrap = wrap;
	vq->io_batch_ok = ok;
}

/*
 * End of a device's fast section: push the first @used chains of @o
 * (vq_push_burst) and give back the other @popped - @used (vq_rewind_one).
 * Returns true when the section may pop again: every chain popped was used
 * and the pop returned all @want asked for (else the ring is empty or the
 * next chain needs vq_pop()).
 */
static inline bool vq_fast_section_end(struct vq *vq, const struct vq_one *o, uint16_t used,
				       uint16_t popped, uint16_t want)
{
	vq_push_burst(vq, o, used);
	if (used < popped) {
		vq_rewind_one(vq, o + used, (uint16_t)(popped - used));
		return false;
	}
	return popped == want;
}

#endif
