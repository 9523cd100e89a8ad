/* SPDX-License-Identifier: MIT */
/* Postcopy's userfaultfd: creation and registration of mapped regions (mem_uffd.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mem/mem_uffd.h"
#include "util/fd.h"

#define PAGE_MASK_4K 4095ull

int mem_uffd_open(int *ret_fd)
{
	struct uffdio_api api = {.api = UFFD_API, .features = 0};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int rc = -errno;
		fd_close(&fd);
		return rc;
	}
	*ret_fd = fd;
	return 0;
}

/* The whole pages of our mapping that hold region @r. */
static struct uffdio_range region_range(const struct mem_region *r)
{
	uint64_t start = (uint64_t)(uintptr_t)r->hva & ~PAGE_MASK_4K;
	uint64_t end = ((uint64_t)(uintptr_t)r->hva + r->size + PAGE_MASK_4K) & ~PAGE_MASK_4K;
	struct uffdio_range range = {.start = start, .len = end - start};

	return range;
}

int mem_region_uffd_register(const struct mem_region *r, int ufd)
{
	struct uffdio_register reg = {.range = region_range(r), .mode = UFFDIO_REGISTER_MODE_MISSING};

	if (ufd < 0)
		return -EINVAL;
	return ioctl(ufd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

int mem_table_uffd_register(const struct mem_table *t, int ufd)
{
	uint32_t done = 0;

	if (!t || ufd < 0)
		return -EINVAL;
	for (; done < t->nregions; done++) {
		int rc = mem_region_uffd_register(&t->regions[done], ufd);
		if (rc < 0) {
			while (done > 0) {
				struct uffdio_range u = region_range(&t->regions[--done]);
				(void)ioctl(ufd, UFFDIO_UNREGISTER, &u);
			}
			return rc;
		}
	}
	return 0;
}

void mem_table_uffd_unregister(const struct mem_table *t, int ufd)
{
	if (!t || ufd < 0)
		return;
	for (uint32_t i = 0; i < t->nregions; i++) {
		struct uffdio_range u = region_range(&t->regions[i]);
		(void)ioctl(ufd, UFFDIO_UNREGISTER, &u);
	}
}
