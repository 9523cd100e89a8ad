/* SPDX-License-Identifier: MIT */
/*
 * The part of descriptor-chain walking both ring formats share: turning one
 * guest buffer [addr, addr + len) into translated pieces while enforcing the
 * chain-wide rules (writable after readable, 2^32 total bytes, overflow-
 * checked ranges, every byte mapped, at most c->iov_max pieces). chain.c
 * (split) and chain_packed.c (packed) walk their formats and feed every
 * buffer through chain_add_buffer(); nothing else interprets buffers.
 */
#ifndef VHK_VQ_CHAIN_WALK_H
#define VHK_VQ_CHAIN_WALK_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/compiler.h"
#include "mem/mem.h"
#include "vq/vq.h"

/* A chain may not describe more than 2^32 bytes (virtio spec, split and packed). */
#define CHAIN_MAX_LEN (1ull << 32)

/* State of one chain walk. */
struct chain_walk {
	const struct mem_table *mem;
	uint32_t *hint;
	struct vq_chain *c;
	uint64_t total;  /* bytes over all descriptors, 64-bit */
	bool seen_write; /* a device-writable descriptor was seen */
	bool overflow;   /* more pieces than c->iov_max */
	bool tables_ro;  /* VQ_POP_DEV_READS: WRITE inside indirect tables is ignored */
};

/*
 * Append one translated piece to the caller's storage; past c->iov_max
 * only remember the overflow (the pieces counted so far stay counted).
 */
static inline void chain_add_piece(struct chain_walk *w, uint8_t *p, uint64_t l, bool write)
{
	struct vq_chain *c = w->c;
	uint32_t n = c->nout + c->nin;

	if (unlikely(n >= c->iov_max)) {
		w->overflow = true;
		return;
	}
	c->iov[n].iov_base = p;
	c->iov[n].iov_len = (size_t)l;
	if (write)
		c->nin++;
	else
		c->nout++;
}

/* Validate and translate one buffer [addr, addr + len). 0 or -EIO (guest error). */
static inline int chain_add_buffer(struct chain_walk *w, uint64_t addr, uint32_t len, bool write)
{
	uint64_t end;

	if (write)
		w->seen_write = true;
	else if (unlikely(w->seen_write))
		return -EIO; /* readable after writable */
	w->total += len;
	if (unlikely(w->total > CHAIN_MAX_LEN))
		return -EIO;
	if (write)
		w->c->in_len += len;
	else
		w->c->out_len += len;
	if (len == 0)
		return 0;
	if (unlikely(add_overflows(addr, (uint64_t)len - 1, &end)))
		return -EIO;
	for (uint64_t left = len; left;) {
		uint64_t l = left;
		uint8_t *p = mem_gpa_to_hva(w->mem, addr, &l, w->hint);
		if (unlikely(!p))
			return -EIO;
		chain_add_piece(w, p, l, write);
		addr += l;
		left -= l;
	}
	return 0;
}

/*
 * Fast path for the commonest chain: a single descriptor (neither NEXT nor
 * INDIRECT; split and packed share these flag values) with a non-empty
 * buffer that lies entirely inside one region. @addr, @len and @flags come
 * from the caller's single fetch of the descriptor. Fills @c (all but id)
 * and returns true; false means "take the general walker", which fetches
 * and validates the descriptor again on its own, so nothing of this attempt
 * is kept. The checks equal the walker's for this shape: len <= 2^32 by
 * type, and the translation covered [addr, addr + len) in one region, so
 * the range neither wraps nor touches an unmapped byte.
 */
static inline bool chain_one_xlate(const struct mem_table *mem, uint32_t *hint, uint64_t addr,
				   uint32_t len, uint16_t flags, uint8_t **base)
{
	uint64_t l = len;

	if (unlikely((flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) || len == 0))
		return false;
	uint8_t *p = mem_gpa_to_hva(mem, addr, &l, hint);
	if (unlikely(!p || l != len))
		return false;
	*base = p;
	return true;
}

/*
 * chain_one_xlate() and, on success, @c filled with the one piece (all but
 * id); false also when the caller gave no storage (the walker then reports
 * -E2BIG).
 */
static inline bool chain_one_fast(const struct mem_table *mem, uint32_t *hint, uint64_t addr,
				  uint32_t len, uint16_t flags, struct vq_chain *c)
{
	uint8_t *p;

	if (unlikely(!c->iov_max) || !chain_one_xlate(mem, hint, addr, len, flags, &p))
		return false;
	c->ndesc = 1;
	c->iov[0].iov_base = p;
	c->iov[0].iov_len = len;
	if (flags & VRING_DESC_F_WRITE) {
		c->nout = 0;
		c->nin = 1;
		c->out_len = 0;
		c->in_len = len;
	} else {
		c->nout = 1;
		c->nin = 0;
		c->out_len = len;
		c->in_len = 0;
	}
	return true;
}

/* Make a local descriptor copy opaque so the compiler never re-reads guest memory for it. */
#define CHAIN_LAUNDER(d) __asm__ volatile("" : "+m"(d))

#endif
