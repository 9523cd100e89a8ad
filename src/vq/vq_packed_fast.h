/* SPDX-License-Identifier: MIT */
/*
 * Packed-ring fast paths (see vq_fast.h for the contract they share with
 * the split ones): a one-descriptor chain popped alone or in a burst
 * (availability from each descriptor's flags, the wrap counter carried
 * across laps), and used entries recorded alone or per burst, with the
 * packed pop record, shadow id and IN_ORDER step of vq_rules.h. Used only
 * through the format dispatch in vq_fast.h.
 *
 * Includes: vq.h, vq_rules.h, chain_walk.h, mem.h. Datapath owner only.
 */
#ifndef VHK_VQ_VQ_PACKED_FAST_H
#define VHK_VQ_VQ_PACKED_FAST_H

#include <string.h>

#include "mem/mem.h"
#include "vq/vq.h"
#include "vq/chain_walk.h"
#include "vq/vq_rules.h"

/* Pop a one-descriptor chain into @o, or false (nothing changed). */
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

/* Burst pop (see vq_pop_burst_one()). */
static inline uint16_t vqf_packed_pop_burst(struct vq *vq, struct vq_one *o, uint16_t max)
{
	uint16_t pos = vq->last_avail_idx, n;
	bool wrap = vq->avail_wrap;
	struct mem_span span;

	if (unlikely(!mem_span_hint(vq->mem, vq->mem_hint, &span)))
		return 0;
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
		uint64_t off = mem_span_off(&span, d.addr);
		if (unlikely((flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) || d.len == 0 ||
			     mem_span_outside(&span, off, d.len)))
			break;
		bool wr = flags & VRING_DESC_F_WRITE;
		vqr_ibit_set(ib);
		state[id] = vqr_packed_rec_in_lap(rlap, 1, wr, pos);
		o[n].base = mem_span_ptr(&span, off);
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

/* vq_push_fast() after its bounds check: @id < size (clamped), room in the shadow. */
static inline void vqf_packed_push_one(struct vq *vq, uint16_t id, uint32_t len)
{
	struct vring_used_elem *e = &vq->shadow_used[vq->shadow_count++];
	uint32_t st = vq->pk_state[id];

	vqr_inflight_clear(vq->inflight, id);
	e->len = len;
	if (vq->in_order)
		vqr_packed_io_step(vq->size, &vq->io_next, &vq->io_wrap, &vq->io_batch_ok, st, len);
	e->id = vqr_packed_shadow_id(id, vqr_packed_rec_slots(st));
}

/*
 * vq_push_burst() after its room check: chains @o[0 .. @n) of
 * vqf_packed_pop_burst(), one ring slot each.
 */
static inline void vqf_packed_push_burst(struct vq *vq, const struct vq_one *o, uint16_t n)
{
	struct vring_used_elem *e = vq->shadow_used + vq->shadow_count;
	uint64_t *inflight = vq->inflight;

	for (uint16_t i = 0; i < n; i++) {
		uint16_t id = o[i].id; /* < size: checked and clamped by the pop */
		vqr_inflight_clear(inflight, id);
		e[i].id = vqr_packed_shadow_id(id, 1);
		e[i].len = o[i].len;
	}
	vq->shadow_count = (uint16_t)(vq->shadow_count + n);
	if (!vq->in_order)
		return;
	const uint32_t *state = vq->pk_state;
	const uint16_t size = vq->size;
	uint16_t next = vq->io_next;
	bool wrap = vq->io_wrap, ok = vq->io_batch_ok;
	for (uint16_t i = 0; i < n; i++)
		vqr_packed_io_step1(size, &next, &wrap, &ok, state[o[i].id], o[i].len);
	vq->io_next = next;
	vq->io_wrap = wrap;
	vq->io_batch_ok = ok;
}

#endif
