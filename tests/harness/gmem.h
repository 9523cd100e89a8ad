/* SPDX-License-Identifier: MIT */
/*
 * Test harness, guest RAM: memfd-backed regions laid out in guest physical
 * address (GPA) space, a bump allocator for guest buffers, and copies in
 * and out across region boundaries. The rings of gvq.h live in it, vuf.h
 * sends it as the memory table, and unit tests that configure the library
 * directly turn it into a library memory table (gmem_table()).
 *
 * Every region is its own memfd mapped once by the test; the device maps
 * the same file again, so the two views share bytes but not addresses.
 */
#ifndef VHK_TEST_GMEM_H
#define VHK_TEST_GMEM_H

#include <stdbool.h>
#include <stdint.h>

#define GMEM_MAX_REGIONS 512

struct mem_table;

/* One region of guest RAM. */
struct gmem_region {
	int fd;       /* memfd, owned by the gmem */
	uint64_t gpa; /* guest physical address of byte 0 */
	uint64_t size;
	uint8_t *hva; /* the test's mapping of the whole region */
	uint64_t qva; /* frontend address sent for it (userspace_addr); hva by default */
};

/* Guest RAM: regions in GPA order (gaps allowed). */
struct gmem {
	uint32_t nregions;
	struct gmem_region r[GMEM_MAX_REGIONS];
	uint64_t alloc_gpa; /* bump allocator cursor */
	uint32_t alloc_region;
};

/*
 * Create @nregions regions of @region_size bytes each, starting at GPA
 * @gpa_base, separated by @gap bytes of unmapped GPA (sizes, gap and base
 * multiples of 4096). Returns 0 or -errno.
 */
int gmem_new(uint32_t nregions, uint64_t region_size, uint64_t gpa_base, uint64_t gap,
	     struct gmem **ret);
void gmem_free(struct gmem *m);
/*
 * Append one region of @size bytes at GPA @gpa, above the last one (any gap;
 * multiples of 4096), for layouts gmem_new() cannot make. 0 or -errno.
 */
int gmem_add(struct gmem *m, uint64_t gpa, uint64_t size);
/*
 * Frontend addresses of every region (added so far) become @base + gpa
 * (contiguous across adjacent regions, unlike the default hva), for unit
 * tests that want the library's user-address checks to see one flat
 * address space.
 */
void gmem_set_qva_base(struct gmem *m, uint64_t base);
/* Test pointer for [gpa, gpa + len) if it lies inside one region, else NULL. */
void *gmem_ptr(struct gmem *m, uint64_t gpa, uint64_t len);
/* Allocate @len bytes aligned to @align (a power of two) inside one region: gpa, or 0. */
uint64_t gmem_alloc(struct gmem *m, uint64_t len, uint64_t align);
/*
 * Allocate @len bytes straddling the boundary between region @region and
 * the next (which must follow it with no gap): gpa, or 0.
 */
uint64_t gmem_alloc_straddle(struct gmem *m, uint32_t region, uint64_t len);
/* Copy to / from guest memory at @gpa (may span adjacent regions): 0 or -EFAULT. */
int gmem_write(struct gmem *m, uint64_t gpa, const void *src, uint64_t len);
int gmem_read(struct gmem *m, uint64_t gpa, void *dst, uint64_t len);
/* Frontend address (QVA) of @gpa, for SET_VRING_ADDR and the like; 0 if unmapped. */
uint64_t gmem_qva(struct gmem *m, uint64_t gpa);

/*
 * A library memory table (src/mem/mem.h) of regions @first .. @first + @n - 1
 * (each mapped again from a duplicate of its fd, frontend addresses as
 * gmem_qva()), for unit tests that configure a vq or device directly. The
 * caller frees it with mem_table_free() or hands it to the device. Needs the
 * mem layer linked. Returns 0 or -errno.
 */
int gmem_table(const struct gmem *m, uint32_t first, uint32_t n, struct mem_table **ret);

#endif
