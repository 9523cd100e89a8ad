/* SPDX-License-Identifier: MIT */
/*
 * The bounded split-ring descriptor chain walker.
 *
 * Security model: the descriptor table, every descriptor in it and every
 * indirect table are written by the guest, possibly while we read them.
 * Everything above this file sees only the translated, bounded vq_chain
 * this walker produces. The rules enforced here:
 *  - fetch once: each descriptor is copied to a local and only the copy is
 *    validated and used (the copy is made opaque to the compiler so it
 *    cannot re-read guest memory in its place);
 *  - next < table size, and at most table-size descriptors per table (a
 *    TTL that bounds loops and over-long chains);
 *  - the total length of the chain is summed in 64 bits and must not exceed
 *    2^32; zero-length descriptors are allowed but count against the TTL;
 *  - device-writable descriptors must follow all device-readable ones;
 *    on a VQ_POP_DEV_READS pop the entries of an indirect table are all
 *    device-readable (their WRITE flag is ignored; ring descriptors keep
 *    it), so the chain gets no writable piece from a table;
 *  - INDIRECT only when negotiated and not inside an indirect table, never
 *    together with NEXT, with a non-zero length that is a multiple of 16 and
 *    at most 32768 entries; the WRITE flag of the pointing descriptor is
 *    ignored; a chain may have normal descriptors followed by one indirect;
 *  - an indirect table that is not contiguous in host memory (it crosses a
 *    region boundary) is read descriptor by descriptor, each one copied
 *    piecewise into a local, so legal guests work without a large buffer;
 *  - every buffer is translated through mem_gpa_to_hva() in a loop; each
 *    contiguous piece becomes one iovec in the caller's storage. An unmapped
 *    byte is a guest error (-EIO). More pieces than the caller's iov_max is
 *    -E2BIG, reported only after the whole chain was validated, so the
 *    caller can return it to the guest.
 * No allocation, no syscall and no lock happens here.
 */
#include <errno.h>
#include <string.h>

#include "vq/vq.h"
#include "vq/chain_walk.h"

#define INDIRECT_MAX_ENTRIES 32768u

/* Walk state shared by the ring table and an indirect table. */
/* A descriptor table: contiguous in host memory (host), or read through its gpa. */
struct dtab {
	const struct vring_desc *host;
	uint64_t gpa;
	uint32_t n;
	bool ring; /* the ring's own table (counts ndesc) */
	bool ro;   /* an indirect table on a VQ_POP_DEV_READS pop: WRITE ignored */
};

/* Make the local copy opaque so the compiler never re-reads guest memory for it. */
static inline void desc_launder(struct vring_desc *d)
{
	__asm__ volatile("" : "+m"(*d));
}

/* Slow path: copy descriptor @i of a table that crosses regions, piece by piece. */
static cold_path int fetch_desc_gpa(const struct chain_walk *w, const struct dtab *t, uint32_t i,
				    struct vring_desc *d)
{
	uint8_t *dst = (uint8_t *)d;
	uint64_t gpa = t->gpa + (uint64_t)i * sizeof(*d); /* no wrap: checked by the caller */
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
	desc_launder(d);
	return 0;
}

/* Copy descriptor @i (< t->n) to @d. */
static inline int fetch_desc(const struct chain_walk *w, const struct dtab *t, uint32_t i,
			     struct vring_desc *d)
{
	if (likely(t->host)) {
		memcpy(d, &t->host[i], sizeof(*d));
		desc_launder(d);
		return 0;
	}
	return fetch_desc_gpa(w, t, i, d);
}

static int walk_table(struct chain_walk *w, const struct dtab *t, uint32_t head, bool indirect_ok);

/* Descriptor @d points at an indirect table: check it and walk the table. */
static int walk_indirect(struct chain_walk *w, const struct vring_desc *d, bool indirect_ok)
{
	uint64_t end;
	struct dtab t;

	if (unlikely(!indirect_ok || (d->flags & VRING_DESC_F_NEXT)))
		return -EIO;
	if (unlikely(d->len == 0 || d->len % sizeof(struct vring_desc) ||
		     d->len / sizeof(struct vring_desc) > INDIRECT_MAX_ENTRIES))
		return -EIO;
	if (unlikely(add_overflows(d->addr, (uint64_t)d->len - 1, &end)))
		return -EIO;
	t.gpa = d->addr;
	t.n = d->len / (uint32_t)sizeof(struct vring_desc);
	t.ring = false;
	t.ro = w->tables_ro;
	/* No alignment requirement: fetch_desc copies with memcpy. */
	t.host = mem_gpa_range(w->mem, d->addr, d->len);
	return walk_table(w, &t, 0, false);
}

/* Follow the chain from @head in table @t, at most t->n descriptors. */
static int walk_table(struct chain_walk *w, const struct dtab *t, uint32_t head, bool indirect_ok)
{
	struct vring_desc d;
	uint32_t i = head, ttl = t->n;
	int rc;

	for (;;) {
		if (unlikely(ttl-- == 0))
			return -EIO; /* loop, or longer than the table */
		rc = fetch_desc(w, t, i, &d);
		if (unlikely(rc))
			return rc;
		if (t->ring)
			w->c->ndesc++;
		if (unlikely(d.flags & VRING_DESC_F_INDIRECT))
			return walk_indirect(w, &d, indirect_ok); /* always the last one */
		rc = chain_add_buffer(w, d.addr, d.len, (d.flags & VRING_DESC_F_WRITE) && !t->ro);
		if (unlikely(rc))
			return rc;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (unlikely(d.next >= t->n))
			return -EIO;
		i = (uint32_t)index_nospec(d.next, t->n);
	}
}

int chain_walk_split(const struct mem_table *mem, uint32_t *hint, const struct vring_desc *desc,
		     uint16_t size, uint16_t head, bool indirect_ok, enum vq_pop_mode mode,
		     struct vq_chain *c)
{
	struct chain_walk w = {.mem = mem, .hint = hint, .c = c,
			       .tables_ro = mode == VQ_POP_DEV_READS};
	struct dtab t = {.host = desc, .n = size, .ring = true};
	int rc;

	c->id = head;
	c->ndesc = 0;
	c->nout = c->nin = 0;
	c->out_len = c->in_len = 0;
	if (unlikely(head >= size || !desc))
		return -EIO;
	rc = walk_table(&w, &t, (uint32_t)index_nospec(head, size), indirect_ok);
	if (unlikely(rc))
		return rc;
	return unlikely(w.overflow) ? -E2BIG : 0;
}
