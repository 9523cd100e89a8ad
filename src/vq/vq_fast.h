/* SPDX-License-Identifier: MIT */
/*
 * Inline fast paths of vq_pop() and vq_push() for devices' packet loops:
 * the format dispatch. The paths themselves live beside their format, in
 * vq_split_fast.h and vq_packed_fast.h.
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
 * range translated in one region (mem.h: mem_gpa_to_hva, or the span of
 * the hint region in the bursts).
 *
 * Includes: vq.h and the two format headers. Datapath owner only (between
 * vq_enter and vq_leave).
 */
#ifndef VHK_VQ_VQ_FAST_H
#define VHK_VQ_VQ_FAST_H

#include <stdbool.h>
#include <stdint.h>

#include "vq/vq.h"
#include "vq/vq_packed_fast.h"
#include "vq/vq_split_fast.h"

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
 * pointers, the hint region's span) stay in registers. The checks per
 * chain are vq_pop_one()'s: head / id < size (clamped), not in flight, one
 * laundered fetch of the descriptor, neither NEXT nor INDIRECT, non-empty,
 * [addr, addr + len) inside the region. Returns the number popped; the
 * last ones can be given back with vq_rewind().
 */
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

/* The chain of one piece @o in vq_pop()'s form (c->iov set, c->iov_max >= 1). */
static inline void vq_one_to_chain(const struct vq_one *o, struct vq_chain *c)
{
	c->id = o->id;
	c->ndesc = 1;
	c->iov[0].iov_base = o->base;
	c->iov[0].iov_len = o->len;
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
	if (vq->packed)
		vqf_packed_push_one(vq, id, len);
	else
		vqf_split_push_one(vq, id, len);
}

/*
 * Push the chains @o[0 .. @n) popped by vq_pop_burst_one(), each with
 * o[i].len bytes written, in order, in one loop; with IN_ORDER the
 * batching bookkeeping of vq_push_fast() runs in a second loop, on locals.
 * A shadow that could overflow (device bug) takes vq_push_fast().
 */
static inline void vq_push_burst(struct vq *vq, const struct vq_one *o, uint16_t n)
{
	if (unlikely((uint32_t)vq->shadow_count + n > vq->size)) {
		for (uint16_t i = 0; i < n; i++)
			vq_push_fast(vq, o[i].id, o[i].len);
		return;
	}
	if (vq->packed)
		vqf_packed_push_burst(vq, o, n);
	else
		vqf_split_push_burst(vq, o, n);
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
