/* SPDX-License-Identifier: MIT */
/*
 * The dirty log of live migration (vhost-user "Migration"): a bitmap the
 * frontend shares with us (SET_LOG_BASE, one fd, with LOG_SHMFD), one bit
 * per 4 KiB page of guest physical address space, starting at GPA 0: page
 * p is bit (p % 8) of byte (p / 8). The frontend reads and clears it
 * concurrently, so bits are only ever set, with atomic OR, and only after
 * the guest memory they stand for was written (release).
 *
 * Security model: size and offset come from the frontend. mem_log_map()
 * maps exactly [offset, offset + size) of the fd (checked against the
 * file size, no 64-bit wrap, through mem_region_map()); every byte index
 * is checked against the size before it is touched, so a write outside
 * the log is never made whatever address is marked. Whether the log covers
 * the guest's memory and rings is the caller's check (mem_log_covers*).
 *
 * Includes: util, mem.
 */
#ifndef VHK_MEM_MEM_LOG_H
#define VHK_MEM_MEM_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "mem/mem.h"

#define MEM_LOG_PAGE_SHIFT 12 /* VHOST_LOG_PAGE: 4 KiB */

/* One mapped log. Immutable once mapped; replaced whole (see vdev_set_log). */
struct mem_log {
	uint8_t *bits; /* byte 0 of the bitmap (our address) */
	uint64_t size; /* bytes of bitmap, > 0 */
	struct mem_region map; /* the mapping (gpa / qva unused) */
};

/*
 * Map @size bytes at @offset of @fd (MAP_SHARED, read/write, not
 * populated). @fd is always consumed. Returns 0 and the log in *@ret;
 * -EINVAL zero size, offset + size wraps, fd smaller than offset + size,
 * not mappable; -ENOMEM.
 */
int mem_log_map(int fd, uint64_t size, uint64_t offset, struct mem_log **ret);

/* Unmap and free. NULL-safe. */
void mem_log_free(struct mem_log *l);

/* Does the log hold a bit for every page below guest physical @gpa_end? */
bool mem_log_covers(const struct mem_log *l, uint64_t gpa_end);

/*
 * Does it hold a bit for the page of the last byte of [@gpa, @gpa + @len)
 * (the spec's rule for a ring's log address)? False for @len 0 or a
 * range that wraps.
 */
bool mem_log_covers_range(const struct mem_log *l, uint64_t gpa, uint64_t len);

/*
 * Set the bits @mask of byte @i (checked: nothing happens past the end).
 * Release: the guest writes these bits stand for are visible first.
 */
static inline void mem_log_or(const struct mem_log *l, uint64_t i, uint8_t mask)
{
	if (likely(i < l->size))
		__atomic_fetch_or(&l->bits[i], mask, __ATOMIC_RELEASE);
}

#endif
