/* SPDX-License-Identifier: MIT */
/*
 * Guest memory: the region table and the only address translation in the
 * library.
 *
 * Security model: region descriptions come from the frontend and are
 * validated in mem_region_map() (sizes, overflow, fd size) and
 * mem_table_new() (overlaps in GPA and QVA space). Translation is checked
 * over the whole requested range: it returns the contiguous length that
 * is mapped starting at the address, never more than asked. Callers loop
 * over pieces; they never use more bytes than a translation returned.
 *
 * A table is immutable once built. Changing the layout builds a new table
 * (sharing the unchanged mappings) that the owner swaps in while the
 * datapath is quiesced (see vq/vdev.h), then frees the old one.
 *
 * Includes: util only.
 */
#ifndef VHK_MEM_MEM_H
#define VHK_MEM_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "util/compiler.h"

/* One region. The mapping is shared by every table that holds the region. */
struct mem_map; /* refcounted mapping, private to mem.c */

struct mem_region {
	uint64_t gpa;         /* guest physical address of byte 0 */
	uint64_t size;        /* bytes, > 0 */
	uint64_t qva;         /* frontend user address of byte 0 */
	uint64_t mmap_offset; /* offset in the fd */
	uint8_t *hva;         /* our address of byte 0 (mapping base + offset) */
	struct mem_map *map;  /* owning mapping (refcounted) */
};

struct mem_table {
	uint32_t nregions;
	/* Sorted by gpa; non-overlapping in gpa and in qva. */
	struct mem_region *regions;
	/* Indices of regions sorted by qva. */
	uint32_t *by_qva;
	/* Indices of regions sorted by hva (our mappings never overlap). */
	uint32_t *by_hva;
};

/* Frontend-supplied description of one region (SET_MEM_TABLE / ADD_MEM_REG). */
struct mem_region_desc {
	uint64_t gpa;
	uint64_t size;
	uint64_t qva;
	uint64_t mmap_offset;
};

/*
 * Validate @d and map it from @fd (MAP_SHARED, PROT_READ|WRITE,
 * MADV_DONTDUMP). @fd is always consumed (closed) whether or not this
 * succeeds: the mapping keeps the memory alive.
 * Returns 0 and fills @ret, or -EINVAL (zero size, overflow, fd too small,
 * not mappable), -ENOMEM.
 */
int mem_region_map(const struct mem_region_desc *d, int fd, struct mem_region *ret);

/* Drop @r's reference on its mapping (munmap on the last one). */
void mem_region_put(struct mem_region *r);

/*
 * Build a table from @n regions (ownership of their mappings moves into the
 * table on success; on failure the caller still owns them).
 * Returns 0, -EINVAL (overlap in gpa or qva, n > VHK_MEM_MAX_REGIONS),
 * -ENOMEM. n == 0 is allowed (empty table).
 */
#define MEM_MAX_REGIONS 509
int mem_table_new(struct mem_region *regions, uint32_t n, struct mem_table **ret);

/*
 * New table = @old plus @r (which is moved in on success). @old is not
 * changed. Returns 0, -EINVAL (overlap), -ENOSPC (full), -ENOMEM.
 */
int mem_table_add(const struct mem_table *old, struct mem_region *r, struct mem_table **ret);

/*
 * New table = @old minus the region matching (gpa, qva, size) exactly
 * (mmap_offset is ignored, as the spec says). Returns 0, -ENOENT, -ENOMEM.
 */
int mem_table_remove(const struct mem_table *old, uint64_t gpa, uint64_t qva, uint64_t size,
		     struct mem_table **ret);

/* Free a table and drop its references on the mappings. NULL-safe. */
void mem_table_free(struct mem_table *t);

/* Highest gpa + size over all regions (0 for an empty table). */
uint64_t mem_table_gpa_end(const struct mem_table *t);

/*
 * Out-of-line slow path: binary search. Returns the region containing @gpa
 * or NULL.
 */
const struct mem_region *mem_find_gpa(const struct mem_table *t, uint64_t gpa);
const struct mem_region *mem_find_qva(const struct mem_table *t, uint64_t qva);
/* The region whose mapping holds our address @hva, or NULL. */
const struct mem_region *mem_find_hva(const struct mem_table *t, const void *hva);

/* Pointer to @off bytes into region @r, *len clipped to the region's end. */
static inline void *mem_region_at(const struct mem_region *r, uint64_t off, uint64_t *len)
{
	if (*len > r->size - off)
		*len = r->size - off;
	return r->hva + off;
}

/*
 * Translate guest physical [gpa, gpa + *len) to a host pointer.
 * On success returns the pointer and sets *len to the number of bytes that
 * are contiguous in one region (1 <= *len <= requested). Returns NULL if
 * gpa is not mapped or *len == 0. Never fails partially silently: a caller
 * that needs N bytes must loop until N bytes are covered.
 * @hint: caller-owned cache of the last region index used (may be NULL).
 */
static inline void *mem_gpa_to_hva(const struct mem_table *t, uint64_t gpa, uint64_t *len,
				   uint32_t *hint)
{
	if (unlikely(!t || *len == 0))
		return NULL;
	/* Last region hit first: with one region (or locality) the lookup is one compare. */
	if (likely(hint != NULL) && likely(*hint < t->nregions)) {
		const struct mem_region *h = &t->regions[*hint];
		if (likely(gpa - h->gpa < h->size))
			return mem_region_at(h, gpa - h->gpa, len);
	}
	const struct mem_region *r = mem_find_gpa(t, gpa);
	if (unlikely(!r))
		return NULL;
	if (hint)
		*hint = (uint32_t)(r - t->regions);
	return mem_region_at(r, gpa - r->gpa, len);
}

/*
 * The reverse of mem_gpa_to_hva(): the guest physical address of our
 * address @hva, which a translation through @t returned. On success
 * returns true, *gpa and *len clipped to the bytes left in the region
 * (1 <= *len <= requested). False if @hva is not in a region of @t or *len
 * is 0. @hint: caller-owned cache of the last region index used (the dirty
 * log keeps one per vq: with one region, or locality, the lookup is one
 * compare).
 */
static inline bool mem_hva_to_gpa(const struct mem_table *t, const void *hva, uint64_t *gpa,
				  uint64_t *len, uint32_t *hint)
{
	const struct mem_region *r = NULL;

	if (unlikely(!t || *len == 0))
		return false;
	if (likely(*hint < t->nregions)) {
		const struct mem_region *h = &t->regions[*hint];
		if (likely((uintptr_t)hva - (uintptr_t)h->hva < h->size))
			r = h;
	}
	if (unlikely(!r)) {
		r = mem_find_hva(t, hva);
		if (!r)
			return false;
		*hint = (uint32_t)(r - t->regions);
	}
	uint64_t off = (uintptr_t)hva - (uintptr_t)r->hva;
	if (*len > r->size - off)
		*len = r->size - off;
	*gpa = r->gpa + off;
	return true;
}

/*
 * One region's guest range and host base, held in registers by loops that
 * translate many buffers against the same region (the datapath's burst
 * pops try the region of the translation hint): mem_span_hint() once per
 * burst, then per buffer mem_span_off(), mem_span_outside() and, if the
 * buffer is inside, mem_span_ptr(). The same translation as
 * mem_gpa_to_hva() without the search: a buffer outside the span is simply
 * not taken here. (Three steps rather than one call: the loops test the
 * range together with their own checks in one branch and keep the offset
 * in a register; measured, the one-call forms cost the packed burst pop
 * 4 instructions per chain.)
 */
struct mem_span {
	uint64_t gpa;  /* guest physical address of byte 0 */
	uint64_t size; /* bytes, > 0 */
	uint8_t *hva;  /* our address of byte 0 */
};

/* The span of the region @hint names in @t; false if @t is NULL or @hint is stale. */
static inline bool mem_span_hint(const struct mem_table *t, uint32_t hint, struct mem_span *s)
{
	if (unlikely(!t || hint >= t->nregions))
		return false;
	const struct mem_region *r = &t->regions[hint];
	s->gpa = r->gpa;
	s->size = r->size;
	s->hva = r->hva;
	return true;
}

/* Offset of guest physical @gpa in @s (any value: test it with mem_span_outside). */
static inline uint64_t mem_span_off(const struct mem_span *s, uint64_t gpa)
{
	return gpa - s->gpa;
}

/*
 * Does [off, off + len) of @s reach outside the span (a byte past its end,
 * or a range that wraps)? False: the whole range is inside.
 */
static inline bool mem_span_outside(const struct mem_span *s, uint64_t off, uint64_t len)
{
	return unlikely(off >= s->size) || unlikely(s->size - off < len);
}

/* Host address of offset @off of @s; only after mem_span_outside() said no. */
static inline uint8_t *mem_span_ptr(const struct mem_span *s, uint64_t off)
{
	return s->hva + off;
}

/* Same for frontend user addresses (ring addresses without IOMMU). */
void *mem_qva_to_hva(const struct mem_table *t, uint64_t qva, uint64_t *len);

/*
 * Translate a range that must be contiguous in host memory (vring parts).
 * Returns the pointer or NULL if any byte of [qva, qva+len) is unmapped or
 * the range crosses a region boundary or overflows.
 */
void *mem_qva_range(const struct mem_table *t, uint64_t qva, uint64_t len);
void *mem_gpa_range(const struct mem_table *t, uint64_t gpa, uint64_t len);

#endif
