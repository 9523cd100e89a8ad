/* SPDX-License-Identifier: MIT */
/*
 * Mapping and bounds of the dirty log (see mem_log.h). The mapping is made
 * like a guest region's (mem_region_map: file size, offset and wrap checks,
 * never populated, so nothing touches the memory before it is used).
 */
#include <errno.h>
#include <stdlib.h>

#include "util/fd.h"
#include "mem/mem_log.h"

int mem_log_map(int fd, uint64_t size, uint64_t offset, struct mem_log **ret)
{
	struct mem_region_desc d = {.gpa = 0, .size = size, .qva = 0, .mmap_offset = offset};
	struct mem_log *l;
	int rc;

	if (size == 0) {
		fd_close(&fd);
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		fd_close(&fd);
		return -ENOMEM;
	}
	rc = mem_region_map(&d, fd, &l->map); /* consumes fd */
	if (rc < 0) {
		free(l);
		return rc;
	}
	l->bits = l->map.hva;
	l->size = size;
	*ret = l;
	return 0;
}

void mem_log_free(struct mem_log *l)
{
	if (!l)
		return;
	mem_region_put(&l->map);
	free(l);
}

/* Byte index of the bit of the page holding guest physical @gpa. */
static inline uint64_t log_byte(uint64_t gpa)
{
	return gpa >> MEM_LOG_PAGE_SHIFT >> 3;
}

bool mem_log_covers(const struct mem_log *l, uint64_t gpa_end)
{
	return gpa_end == 0 || log_byte(gpa_end - 1) < l->size;
}

bool mem_log_covers_range(const struct mem_log *l, uint64_t gpa, uint64_t len)
{
	uint64_t last;

	if (len == 0 || add_overflows(gpa, len - 1, &last))
		return false;
	return log_byte(last) < l->size;
}
