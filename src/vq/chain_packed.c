/* SPDX-License-Identifier: MIT */
/*
 * The bounded packed-ring descriptor chain walker.
 *
 * Security model: the descriptor ring and every indirect table are written
 * by the guest, possibly while we read them. Rules enforced here:
 *  - a ring descriptor is taken only when its AVAIL flag equals the wrap
 *    counter expected at its position and its USED flag differs; the flags
 *    are loaded with acquire ordering before addr/len/id are copied;
 *  - fetch once: every descriptor is copied to a local (laundered so the
 *    compiler cannot re-read guest memory) and only the copy is used; the
 *    flags used are the ones the availability check saw;
 *  - a chain takes at most size ring slots (TTL); the position wraps at the
 *    ring size flipping the expected wrap counter, and every descriptor of
 *    the chain must be available (the driver publishes the head last);
 *  - the buffer id comes from the last descriptor and must be < size;
 *  - INDIRECT only when negotiated, only as a chain of one descriptor (never
 *    inside a NEXT list, never with NEXT), len a non-zero multiple of 16 and
 *    at most 32768 entries, checked before anything is read from the table;
 *    inside the table only WRITE counts (NEXT and id are ignored, INDIRECT
 *    is a nested table and refused), and on a VQ_POP_DEV_READS pop not even
 *    WRITE: every entry is device-readable, so such a chain has no
 *    writable piece;
 *  - a table crossing regions is read entry by entry through its gpa;
 *  - lengths summed in 64 bits, at most 2^32; writable after readable;
 *  - buffers translated through mem_gpa_to_hva() piece by piece (a buffer
 *    crossing regions becomes several iovs); an unmapped byte is -EIO.
 * No allocation, no syscall and no lock happens here.
 */
#include <errno.h>
#include <string.h>

#include "vq/vq.h"
#include "vq/chain_walk.h"
#include "vq/vq_rules.h"

#define PK_INDIRECT_MAX 32768u

/* Walk state. */
/* Make the local copy opaque so the compiler never re-reads guest memory for it. */
static inline void pdesc_launder(struct vring_packed_desc *d)
{
	__asm__ volatile("" : "+m"(*d));
}

/* Copy entry @i of an indirect table that crosses regions, piece by piece. */
static cold_path int pk_fetch_gpa(const struct chain_walk *w, uint64_t gpa,
				  struct vring_packed_desc *d)
{
	uint8_t *dst = (uint8_t *)d;
	uint64_t left = sizeof(*d);

	while (left) {
		uint64_t l = left;
		const void *p = mem_gpa_to_hva(w->mem, gpa, &l, w->hint);
		if (!p)
			return -EIO;
		memcpy(dst, p, l);
		dst += l;
		gpa += l;
		left -= l;
	}
	pdesc_launder(d);
	return 0;
}

/* The ring descriptor @d (a chain of one) points at an indirect table: walk it. */
static int pk_walk_indirect(struct chain_walk *w, const struct vring_packed_desc *d)
{
	const struct vring_packed_desc *host;
	struct vring_packed_desc e;
	uint64_t end, gpa = d->addr;
	uint32_t n, len = d->len;

	if (unlikely(len == 0 || len % sizeof(e) || len / sizeof(e) > PK_INDIRECT_MAX))
		return -EIO;
	if (unlikely(add_overflows(gpa, (uint64_t)len - 1, &end)))
		return -EIO;
	n = len / (uint32_t)sizeof(e);
	host = mem_gpa_range(w->mem, gpa, len);
	for (uint32_t i = 0; i < n; i++) {
		if (likely(host)) {
			memcpy(&e, &host[i], sizeof(e));
			pdesc_launder(&e);
		} else if (unlikely(pk_fetch_gpa(w, gpa + (uint64_t)i * sizeof(e), &e))) {
			return -EIO;
		}
		if (unlikely(e.flags & VRING_DESC_F_INDIRECT))
			return -EIO; /* nested table */
		int rc = chain_add_buffer(w, e.addr, e.len,
					  (e.flags & VRING_DESC_F_WRITE) && !w->tables_ro);
		if (unlikely(rc))
			return rc;
	}
	return 0;
}

/* Copy ring descriptor @pos if available for @wrap; its checked flags in d->flags. */
static inline bool pk_fetch_ring(const struct vring_packed_desc *ring, uint16_t pos, bool wrap,
				 struct vring_packed_desc *d)
{
	/* Acquire pairs with the driver's release (or wmb) before its flags store. */
	uint16_t flags = load_acquire(&ring[pos].flags);

	if (!vqr_packed_avail(flags, wrap))
		return false;
	memcpy(d, &ring[pos], sizeof(*d));
	pdesc_launder(d);
	d->flags = flags;
	return true;
}

int chain_walk_packed(const struct mem_table *mem, uint32_t *hint,
		      const struct vring_packed_desc *ring, uint16_t size, uint16_t head, bool wrap,
		      bool indirect_ok, enum vq_pop_mode mode, struct vq_chain *c)
{
	struct chain_walk w = {.mem = mem, .hint = hint, .c = c,
			       .tables_ro = mode == VQ_POP_DEV_READS};
	struct vring_packed_desc d;
	uint16_t pos;
	int rc;

	c->id = 0;
	c->ndesc = 0;
	c->nout = c->nin = 0;
	c->out_len = c->in_len = 0;
	if (unlikely(!ring || head >= size))
		return -EIO;
	pos = (uint16_t)index_nospec(head, size);
	if (!pk_fetch_ring(ring, pos, wrap, &d))
		return -ENOENT;
	for (;;) {
		c->ndesc++;
		if (unlikely(d.flags & VRING_DESC_F_INDIRECT)) {
			if (unlikely(!indirect_ok || c->ndesc != 1 || (d.flags & VRING_DESC_F_NEXT)))
				return -EIO;
			rc = pk_walk_indirect(&w, &d);
		} else {
			rc = chain_add_buffer(&w, d.addr, d.len, d.flags & VRING_DESC_F_WRITE);
		}
		if (unlikely(rc))
			return rc;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (unlikely(c->ndesc >= size))
			return -EIO; /* longer than the ring: a loop through stale entries */
		vqr_packed_advance(size, &pos, &wrap, 1);
		pos = (uint16_t)index_nospec(pos, size);
		if (unlikely(!pk_fetch_ring(ring, pos, wrap, &d)))
			return -EIO; /* the head was published before the rest of its chain */
	}
	if (unlikely(d.id >= size))
		return -EIO;
	c->id = d.id;
	return unlikely(w.overflow) ? -E2BIG : 0;
}
