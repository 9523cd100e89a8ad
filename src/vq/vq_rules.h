/* SPDX-License-Identifier: MIT */
/*
 * The ring rules, each spelled once. Every pop, push, rewind, flush, fast
 * path and walker of both formats uses these helpers instead of its own
 * copy of the bit layout or predicate:
 *
 *  - the pop record (vq->pk_state[id]): what a pop remembers per chain in
 *    flight so that push, rewind and IN_ORDER batching never depend on
 *    guest data again:
 *      split  (per head):      bits 0..15 avail position it was popped at,
 *                              bit 16 the chain has writable pieces;
 *      packed (per buffer id): bits 0..14 ring slots the chain takes
 *                              minus one (1..32768 slots: a chain may
 *                              fill a ring of 32768), bit 15 the chain
 *                              has writable pieces,
 *                              bits 16..30 ring position of its first
 *                              slot, bit 31 the wrap counter there;
 *  - the packed shadow used id: buffer id in bits 0..15, the chain's slot
 *    count (1..32768) in bits 16..31, captured at push;
 *  - the in-flight bitmap (vq->inflight): heads (split) or buffer ids
 *    (packed) popped and not yet pushed;
 *  - packed availability: a descriptor is available in lap w when its
 *    AVAIL flag equals w and its USED flag differs. Loops keep the "want"
 *    form (the two bits as they must read in the current lap), which
 *    flips between laps;
 *  - the packed ring position: < size, the wrap counter flips on a lap;
 *    the used flags of a lap; the position/wrap word of the base and the
 *    event structures;
 *  - the IN_ORDER step: how one push moves the next expected in-order
 *    position and whether the batch can still be written as one entry
 *    (only chains popped in order, read-only and used with length 0).
 *
 * No guest memory is read or written here: the helpers work on values the
 * caller fetched once and on the vq's own arrays. Includes: vq.h.
 */
#ifndef VHK_VQ_VQ_RULES_H
#define VHK_VQ_VQ_RULES_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_ring.h>

#include "vq/vq.h"

/* ---- in-flight bitmap ---- */

/*
 * The bitmap word and bit of one id, the word loaded once: a pop tests it,
 * validates the rest of the chain and then sets the bit without loading
 * the word again (nothing else stores to the bitmap in between).
 */
struct vqr_ibit {
	uint64_t *w;
	uint64_t bit;
	uint64_t word;
};

static inline struct vqr_ibit vqr_inflight_at(uint64_t *map, uint16_t id)
{
	struct vqr_ibit b = {&map[id >> 6], 1ull << (id & 63), 0};

	b.word = *b.w;
	return b;
}

/* Was the id of @b popped and not yet pushed? */
static inline bool vqr_ibit_busy(struct vqr_ibit b)
{
	return b.word & b.bit;
}

/* Mark the id of @b in flight (the bitmap is unchanged since vqr_inflight_at()). */
static inline void vqr_ibit_set(struct vqr_ibit b)
{
	*b.w = b.word | b.bit;
}

/* Is @id (< size) popped and not yet pushed? */
static inline bool vqr_inflight_test(uint64_t *map, uint16_t id)
{
	return vqr_ibit_busy(vqr_inflight_at(map, id));
}

static inline void vqr_inflight_set(uint64_t *map, uint16_t id)
{
	vqr_ibit_set(vqr_inflight_at(map, id));
}

static inline void vqr_inflight_clear(uint64_t *map, uint16_t id)
{
	map[id >> 6] &= ~(1ull << (id & 63));
}

/* ---- split pop record ---- */

#define VQR_SPLIT_REC_WRITE (1u << 16)

/* Record of a head popped at avail position @pos; @write: it has writable pieces. */
static inline uint32_t vqr_split_rec(uint16_t pos, bool write)
{
	return pos | (uint32_t)write << 16;
}

static inline uint16_t vqr_split_rec_pos(uint32_t rec)
{
	return (uint16_t)rec;
}

static inline bool vqr_split_rec_write(uint32_t rec)
{
	return rec & VQR_SPLIT_REC_WRITE;
}

/* ---- packed pop record and shadow id ---- */

#define VQR_PACKED_REC_WRITE (1u << 15)
#define VQR_PACKED_REC_WRAP  (1u << 31)

/* The part of a packed pop record that depends on the lap only (its wrap bit). */
static inline uint32_t vqr_packed_rec_lap(bool wrap)
{
	return (uint32_t)wrap << 31;
}

/*
 * Record of a chain of @slots (1..size) ring slots popped at ring position
 * @pos (< size) in the lap whose vqr_packed_rec_lap() is @lap; @write: it
 * has writable pieces. Loops keep @lap per lap.
 */
static inline uint32_t vqr_packed_rec_in_lap(uint32_t lap, uint32_t slots, bool write,
					     uint16_t pos)
{
	return (slots - 1) | (uint32_t)write << 15 | (uint32_t)pos << 16 | lap;
}

/* The same in lap @wrap. */
static inline uint32_t vqr_packed_rec(uint32_t slots, bool write, uint16_t pos, bool wrap)
{
	return vqr_packed_rec_in_lap(vqr_packed_rec_lap(wrap), slots, write, pos);
}

static inline uint16_t vqr_packed_rec_slots(uint32_t rec)
{
	return (uint16_t)((rec & 0x7fffu) + 1);
}

static inline bool vqr_packed_rec_write(uint32_t rec)
{
	return rec & VQR_PACKED_REC_WRITE;
}

static inline uint16_t vqr_packed_rec_pos(uint32_t rec)
{
	return (uint16_t)((rec >> 16) & 0x7fffu);
}

static inline bool vqr_packed_rec_wrap(uint32_t rec)
{
	return rec >> 31;
}

/* Shadow used id of buffer @id whose chain takes @slots ring slots. */
static inline uint32_t vqr_packed_shadow_id(uint16_t id, uint16_t slots)
{
	return id | (uint32_t)slots << 16;
}

static inline uint16_t vqr_packed_shadow_buf(uint32_t sid)
{
	return (uint16_t)sid;
}

static inline uint16_t vqr_packed_shadow_slots(uint32_t sid)
{
	return (uint16_t)(sid >> 16);
}

/* ---- packed availability, positions, used flags ---- */

#define VQR_PK_AVAIL ((uint16_t)(1u << VRING_PACKED_DESC_F_AVAIL))
#define VQR_PK_USED  ((uint16_t)(1u << VRING_PACKED_DESC_F_USED))
#define VQR_PK_LAP   ((uint16_t)(VQR_PK_AVAIL | VQR_PK_USED))
#define VQR_PK_WRAP_BIT (1u << VRING_PACKED_EVENT_F_WRAP_CTR)

/* The AVAIL and USED bits of a descriptor available in lap @wrap. */
static inline uint16_t vqr_packed_want(bool wrap)
{
	return wrap ? VQR_PK_AVAIL : VQR_PK_USED;
}

/* The same two bits (a "want" or the used flags of a lap) for the next lap. */
static inline uint16_t vqr_packed_lap_flip(uint16_t bits)
{
	return bits ^ VQR_PK_LAP;
}

/* Non-zero unless @flags are available for @want (ORed over several, one test). */
static inline uint16_t vqr_packed_miss(uint16_t flags, uint16_t want)
{
	return (flags & VQR_PK_LAP) ^ want;
}

/* Is a descriptor with @flags available, in the lap whose want is @want? */
static inline bool vqr_packed_avail_want(uint16_t flags, uint16_t want)
{
	return (flags & VQR_PK_LAP) == want;
}

/* Is a descriptor with @flags available in lap @wrap (AVAIL == wrap, USED != wrap)? */
static inline bool vqr_packed_avail(uint16_t flags, bool wrap)
{
	return vqr_packed_avail_want(flags, vqr_packed_want(wrap));
}

/* Flags that mark a descriptor used in lap @wrap (WRITE when data was written). */
static inline uint16_t vqr_packed_used_flags(bool wrap, bool written)
{
	return (uint16_t)((wrap ? VQR_PK_LAP : 0) | (written ? VRING_DESC_F_WRITE : 0));
}

/*
 * Advance ring position *@pos (< size) by @n (<= size), flipping *@wrap on
 * a lap. Returns true when it did (loops flip their lap-dependent bits).
 */
static inline bool vqr_packed_advance(uint16_t size, uint16_t *pos, bool *wrap, uint32_t n)
{
	uint32_t p = (uint32_t)*pos + n;
	bool lap = p >= size;

	if (lap) {
		p -= size;
		*wrap = !*wrap;
	}
	*pos = (uint16_t)p;
	return lap;
}

/* vqr_packed_advance() by one slot (the form loops use). */
static inline bool vqr_packed_next(uint16_t size, uint16_t *pos, bool *wrap)
{
	if (unlikely(++*pos == size)) {
		*pos = 0;
		*wrap = !*wrap;
		return true;
	}
	return false;
}

/* Position and wrap counter as one 16-bit word (base halves, event offsets). */
static inline uint16_t vqr_packed_pos_wrap(uint16_t pos, bool wrap)
{
	return (uint16_t)(pos | (wrap ? VQR_PK_WRAP_BIT : 0));
}

/* The position (not checked against the size) and the wrap counter of such a word. */
static inline uint16_t vqr_packed_pw_pos(uint32_t pw)
{
	return (uint16_t)(pw & 0x7fffu);
}

static inline bool vqr_packed_pw_wrap(uint32_t pw)
{
	return pw & VQR_PK_WRAP_BIT;
}

/* ---- IN_ORDER step of one push ---- */

/*
 * Split: the chain with pop record @rec is used with @len bytes. Still one
 * batch (*@ok) only if it was popped at *@next, is read-only and @len is 0;
 * the next in-order chain was popped right after it.
 */
static inline void vqr_split_io_step(uint16_t *next, bool *ok, uint32_t rec, uint32_t len)
{
	*ok &= vqr_split_rec_pos(rec) == *next && !vqr_split_rec_write(rec) && !len;
	*next = (uint16_t)(vqr_split_rec_pos(rec) + 1);
}

/*
 * Packed: the same test with positions and wrap counters; *@next, *@wrap
 * become the chain's own position (the caller then advances past it).
 */
static inline void vqr_packed_io_check(uint16_t *next, bool *wrap, bool *ok, uint32_t rec,
				       uint32_t len)
{
	uint16_t at = vqr_packed_rec_pos(rec);
	bool w = vqr_packed_rec_wrap(rec);

	*ok &= at == *next && w == *wrap && !vqr_packed_rec_write(rec) && !len;
	*next = at;
	*wrap = w;
}

/* Packed IN_ORDER step: the next in-order chain starts after this chain's slots. */
static inline void vqr_packed_io_step(uint16_t size, uint16_t *next, bool *wrap, bool *ok,
				      uint32_t rec, uint32_t len)
{
	vqr_packed_io_check(next, wrap, ok, rec, len);
	vqr_packed_advance(size, next, wrap, vqr_packed_rec_slots(rec));
}

/* The same for a chain known to take one slot (the fast pops' chains). */
static inline void vqr_packed_io_step1(uint16_t size, uint16_t *next, bool *wrap, bool *ok,
				       uint32_t rec, uint32_t len)
{
	vqr_packed_io_check(next, wrap, ok, rec, len);
	(void)vqr_packed_next(size, next, wrap);
}

#endif
