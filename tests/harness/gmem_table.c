/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM as a library memory table (see gmem.h), for unit tests that
 * configure vqs and devices without a frontend. A file of its own: only the
 * binaries that call it need the mem layer.
 */
#include "gmem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "mem/mem.h"

int gmem_table(const struct gmem *m, uint32_t first, uint32_t n, struct mem_table **ret)
{
	if (!m || !ret || first > m->nregions || n > m->nregions - first)
		return -EINVAL;
	struct mem_region *r = calloc(n ? n : 1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	uint32_t done = 0;
	int rc = 0;
	for (; done < n; done++) {
		const struct gmem_region *g = &m->r[first + done];
		struct mem_region_desc d = {g->gpa, g->size, g->qva, 0};
		int fd = fcntl(g->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			rc = -errno;
			break;
		}
		if ((rc = mem_region_map(&d, fd, &r[done])) < 0) /* consumes fd */
			break;
	}
	if (rc == 0)
		rc = mem_table_new(r, n, ret);
	if (rc < 0)
		for (uint32_t i = 0; i < done; i++)
			mem_region_put(&r[i]);
	free(r);
	return rc;
}
