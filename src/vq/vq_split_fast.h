/* SPDX-License-Identifier: MIT */
/*
 * Split-ring fast paths (see vq_fast.h for the contract they share with
 * the packed ones): a one-descriptor chain popped alone or in a burst, and
 * used entries recorded alone or per burst, with the split pop record and
 * IN_ORDER step of vq_rules.h. Used only through the format dispatch in
 * vq_fast.h.
 *
 * Includes: vq.h, vq_rules.h, chain_walk.h, mem.h. Datapath owner only.
 */
#ifndef VHK_VQ_VQ_SPLIT_FAST_H
#define VHK_VQ_VQ_SPLIT_FAST_H

#include <string.h>

#include "mem/mem.h"
#include "vq/vq.h"
#include "vq/chain_walk.h"
#include "vq/vq_rules.h"

/* Pop a one-descriptor chain into @o, or false (nothing changed). */
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

/* Burst pop (see vq_pop_burst_one()); avail->idx is read again when fewer than @max are known. */
static inline uint16_t vqf_split_pop_burst(struct vq *vq, struct vq_one *o, uint16_t max)
{
	uint16_t idx = vq->last_avail_idx, n;
	struct mem_span span;

	if (unlikely(!mem_span_hint(vq->mem, vq->mem_hint, &span)))
		return 0;
	if ((uint16_t)(vq->shadow_avail_idx - idx) < max) {
		(void)vq_split_avail_count(vq); /* acquire load of avail->idx */
		if (unlikely(vq->broken))
			return 0;
	}
	max = MIN(max, (uint16_t)(vq->shadow_avail_idx - idx));
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
		uint64_t off = mem_span_off(&span, d.addr);
		if (unlikely((d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) || d.len == 0 ||
			     mem_span_outside(&span, off, d.len)))
			break;
		bool wr = d.flags & VRING_DESC_F_WRITE;
		vqr_inflight_set(inflight, head);
		state[head] = vqr_split_rec((uint16_t)(idx + n), wr);
		o[n].base = mem_span_ptr(&span, off);
		o[n].len = d.len;
		o[n].id = head;
		o[n].write = wr;
	}
	vq->last_avail_idx = (uint16_t)(idx + n);
	return n;
}

/* vq_push_fast() after its bounds check: @id < size (clamped), room in the shadow. */
static inline void vqf_split_push_one(struct vq *vq, uint16_t id, uint32_t len)
{
	struct vring_used_elem *e = &vq->shadow_used[vq->shadow_count++];

	vqr_inflight_clear(vq->inflight, id);
	e->len = len;
	e->id = id;
	if (vq->in_order)
		vqr_split_io_step(&vq->io_next, &vq->io_batch_ok, vq->pk_state[id], len);
}

/* vq_push_burst() after its room check: chains @o[0 .. @n) of vqf_split_pop_burst(). */
static inline void vqf_split_push_burst(struct vq *vq, const struct vq_one *o, uint16_t n)
{
	struct vring_used_elem *e = vq->shadow_used + vq->shadow_count;
	uint64_t *inflight = vq->inflight;

	for (uint16_t i = 0; i < n; i++) {
		uint16_t id = o[i].id; /* < size: checked and clamped by the pop */
		vqr_inflight_clear(inflight, id);
		e[i].id = id;
		e[i].len = o[i].len;
	}
	vq->shadow_count = (uint16_t)(vq->shadow_count + n);
	if (!vq->in_order)
		return;
	const uint32_t *state = vq->pk_state;
	uint16_t next = vq->io_next;
	bool ok = vq->io_batch_ok;
	for (uint16_t i = 0; i < n; i++)
		vqr_split_io_step(&next, &ok, state[o[i].id], o[i].len);
	vq->io_next = next;
	vq->io_batch_ok = ok;
}

#endif
