/* SPDX-License-Identifier: MIT */
/* Test harness, guest RAM (see gmem.h): memfd regions and a bump allocator. */
#include "gmem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Map one memfd region of @size bytes at @gpa into @reg. */
static int region_create(struct gmem_region *reg, uint64_t gpa, uint64_t size)
{
	int fd = memfd_create("gmem", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		goto err_close_fd;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto err_close_fd;
	reg->fd = fd;
	reg->gpa = gpa;
	reg->size = size;
	reg->hva = p;
	reg->qva = (uint64_t)(uintptr_t)p;
	return 0;

err_close_fd:;
	int e = -errno;
	close(fd);
	return e;
}

int gmem_new(uint32_t nregions, uint64_t region_size, uint64_t gpa_base, uint64_t gap,
	     struct gmem **ret)
{
	if (!ret || nregions == 0 || nregions > GMEM_MAX_REGIONS || region_size == 0 ||
	    region_size % 4096 || gap % 4096 || gpa_base % 4096)
		return -EINVAL;
	struct gmem *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	uint64_t gpa = gpa_base;
	for (uint32_t i = 0; i < nregions; i++) {
		int rc = region_create(&m->r[i], gpa, region_size);
		if (rc < 0) {
			gmem_free(m);
			return rc;
		}
		m->nregions++;
		gpa += region_size + gap;
	}
	m->alloc_gpa = gpa_base;
	m->alloc_region = 0;
	*ret = m;
	return 0;
}

int gmem_add(struct gmem *m, uint64_t gpa, uint64_t size)
{
	const struct gmem_region *last = &m->r[m->nregions - 1];
	if (m->nregions >= GMEM_MAX_REGIONS || size == 0 || size % 4096 || gpa % 4096 ||
	    gpa < last->gpa + last->size)
		return -EINVAL;
	int rc = region_create(&m->r[m->nregions], gpa, size);
	if (rc == 0)
		m->nregions++;
	return rc;
}

void gmem_free(struct gmem *m)
{
	if (!m)
		return;
	for (uint32_t i = 0; i < m->nregions; i++) {
		munmap(m->r[i].hva, m->r[i].size);
		close(m->r[i].fd);
	}
	free(m);
}

/* Region holding @gpa, or NULL. */
static struct gmem_region *region_of(struct gmem *m, uint64_t gpa)
{
	for (uint32_t i = 0; i < m->nregions; i++)
		if (gpa >= m->r[i].gpa && gpa - m->r[i].gpa < m->r[i].size)
			return &m->r[i];
	return NULL;
}

void *gmem_ptr(struct gmem *m, uint64_t gpa, uint64_t len)
{
	struct gmem_region *reg = region_of(m, gpa);
	if (!reg || len > reg->size - (gpa - reg->gpa))
		return NULL;
	return reg->hva + (gpa - reg->gpa);
}

uint64_t gmem_alloc(struct gmem *m, uint64_t len, uint64_t align)
{
	if (align == 0 || (align & (align - 1)) || len == 0)
		return 0;
	while (m->alloc_region < m->nregions) {
		struct gmem_region *reg = &m->r[m->alloc_region];
		uint64_t cur = m->alloc_gpa < reg->gpa ? reg->gpa : m->alloc_gpa;
		uint64_t a = (cur + align - 1) & ~(align - 1);
		if (a == 0) /* 0 means failure: never hand out GPA 0 */
			a = align;
		uint64_t end = reg->gpa + reg->size;
		if (a >= reg->gpa && a < end && len <= end - a) {
			m->alloc_gpa = a + len;
			return a;
		}
		m->alloc_region++;
		if (m->alloc_region < m->nregions)
			m->alloc_gpa = m->r[m->alloc_region].gpa;
	}
	return 0;
}

uint64_t gmem_alloc_straddle(struct gmem *m, uint32_t region, uint64_t len)
{
	if (len < 2 || region + 1 >= m->nregions)
		return 0;
	struct gmem_region *a = &m->r[region], *b = &m->r[region + 1];
	uint64_t boundary = a->gpa + a->size;
	uint64_t first = len / 2;
	if (b->gpa != boundary || first > a->size || len - first > b->size)
		return 0;
	uint64_t start = boundary - first;
	/* Keep the bump allocator from handing the same bytes out again. */
	if (m->alloc_region > region + 1 || (m->alloc_region >= region && m->alloc_gpa > start))
		return 0;
	m->alloc_region = region + 1;
	m->alloc_gpa = boundary + (len - first);
	return start;
}

/* Copy between guest memory and @buf, piece by piece across adjacent regions. */
static int gmem_copy(struct gmem *m, uint64_t gpa, uint8_t *buf, uint64_t len, bool to_guest)
{
	while (len) {
		struct gmem_region *reg = region_of(m, gpa);
		if (!reg)
			return -EFAULT;
		uint64_t off = gpa - reg->gpa;
		uint64_t n = reg->size - off < len ? reg->size - off : len;
		if (to_guest)
			memcpy(reg->hva + off, buf, n);
		else
			memcpy(buf, reg->hva + off, n);
		gpa += n;
		buf += n;
		len -= n;
	}
	return 0;
}

int gmem_write(struct gmem *m, uint64_t gpa, const void *src, uint64_t len)
{
	return gmem_copy(m, gpa, (uint8_t *)(uintptr_t)src, len, true);
}

int gmem_read(struct gmem *m, uint64_t gpa, void *dst, uint64_t len)
{
	return gmem_copy(m, gpa, dst, len, false);
}

uint64_t gmem_qva(struct gmem *m, uint64_t gpa)
{
	struct gmem_region *reg = region_of(m, gpa);
	if (!reg)
		return 0;
	return reg->qva + (gpa - reg->gpa);
}

void gmem_set_qva_base(struct gmem *m, uint64_t base)
{
	for (uint32_t i = 0; i < m->nregions; i++)
		m->r[i].qva = base + m->r[i].gpa;
}
