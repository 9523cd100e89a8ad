/* SPDX-License-Identifier: MIT */
/*
 * Guest memory regions: mapping, refcounted sharing between tables, table
 * construction (sorted, overlap-checked) and the out-of-line lookups.
 *
 * Security model: every field of a region description comes from the
 * frontend. mem_region_map() rejects zero sizes, every 64-bit wrap
 * (gpa + size, qva + size, mmap_offset + size, and the page-aligned mapping
 * length), and fds whose file is smaller than the range. Tables reject
 * regions that overlap in GPA or QVA space, so a lookup has one answer.
 * Range translations are checked against one region with overflow-safe
 * arithmetic; nothing here ever returns more bytes than are mapped.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fd.h"
#include "mem/mem.h"

/* One mmap() of a frontend fd, shared by every table holding the region. */
struct mem_map {
	void *base;
	size_t len;
	atomic_uint refs;
};

/* Alignment for the mapping offset: the fd's block size (hugetlbfs) or the page size. */
static uint64_t map_align(const struct stat *st)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t blk = st->st_blksize > 0 ? (uint64_t)st->st_blksize : pg;

	if (blk < pg || (blk & (blk - 1)))
		blk = pg;
	return blk;
}

/* Check the description for zero size and 64-bit wrap of every range end. */
static bool desc_valid(const struct mem_region_desc *d)
{
	uint64_t end;

	if (d->size == 0)
		return false;
	if (add_overflows(d->gpa, d->size, &end) || add_overflows(d->qva, d->size, &end) ||
	    add_overflows(d->mmap_offset, d->size, &end))
		return false;
	return true;
}

/* Map [off_aligned, off_aligned + len) of @fd; returns MAP_FAILED or the base. */
static void *map_fd(int fd, uint64_t off_aligned, uint64_t len)
{
	void *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off_aligned);

	if (p != MAP_FAILED)
		(void)madvise(p, (size_t)len, MADV_DONTDUMP); /* keep guest data out of cores */
	return p;
}

int mem_region_map(const struct mem_region_desc *d, int fd, struct mem_region *ret)
{
	struct mem_region_desc dc = *d;
	struct mem_map *m;
	struct stat st;
	uint64_t align, off_aligned, len;
	void *base;
	int rc = -EINVAL;

	if (fd < 0 || !desc_valid(&dc))
		goto err_close_fd;
	if (fstat(fd, &st) < 0 || st.st_size < 0 ||
	    (uint64_t)st.st_size < dc.mmap_offset + dc.size)
		goto err_close_fd;
	align = map_align(&st);
	off_aligned = dc.mmap_offset & ~(align - 1);
	/* Length from the aligned offset, rounded up: re-check for wrap after aligning. */
	len = dc.mmap_offset - off_aligned + dc.size;
	if (len < dc.size || add_overflows(len, align - 1, &len) || (len & ~(align - 1)) == 0)
		goto err_close_fd;
	len &= ~(align - 1);
	if (len > SIZE_MAX || off_aligned > (uint64_t)INT64_MAX)
		goto err_close_fd;
	base = map_fd(fd, off_aligned, len);
	if (base == MAP_FAILED) {
		rc = errno == ENOMEM ? -ENOMEM : -EINVAL;
		goto err_close_fd;
	}
	m = malloc(sizeof(*m));
	if (!m) {
		rc = -ENOMEM;
		goto err_unmap;
	}
	m->base = base;
	m->len = (size_t)len;
	atomic_init(&m->refs, 1);
	fd_close(&fd);
	ret->gpa = dc.gpa;
	ret->size = dc.size;
	ret->qva = dc.qva;
	ret->mmap_offset = dc.mmap_offset;
	ret->hva = (uint8_t *)base + (dc.mmap_offset - off_aligned);
	ret->map = m;
	return 0;

err_unmap:
	munmap(base, (size_t)len);
err_close_fd:
	fd_close(&fd);
	return rc;
}

void mem_region_put(struct mem_region *r)
{
	struct mem_map *m = r->map;

	r->map = NULL;
	r->hva = NULL;
	if (!m)
		return;
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
		munmap(m->base, m->len);
		free(m);
	}
}

/* Take one more reference on @r's mapping (the region is being copied). */
static void region_get(const struct mem_region *r)
{
	if (r->map)
		atomic_fetch_add_explicit(&r->map->refs, 1, memory_order_relaxed);
}

static int cmp_gpa(const void *a, const void *b)
{
	const struct mem_region *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static int cmp_qva_idx(const void *a, const void *b, void *ctx)
{
	const struct mem_region *r = ctx;
	uint64_t x = r[*(const uint32_t *)a].qva, y = r[*(const uint32_t *)b].qva;

	return x < y ? -1 : x > y;
}

static int cmp_hva_idx(const void *a, const void *b, void *ctx)
{
	const struct mem_region *r = ctx;
	uintptr_t x = (uintptr_t)r[*(const uint32_t *)a].hva, y = (uintptr_t)r[*(const uint32_t *)b].hva;

	return x < y ? -1 : x > y;
}

/* Do the ranges [a, a+as) and [b, b+bs) with a <= b overlap? (no overflow: validated) */
static bool overlaps(uint64_t a, uint64_t as, uint64_t b)
{
	return b - a < as;
}

/* Re-validate a region handed to a table builder (defence in depth). */
static bool region_sane(const struct mem_region *r)
{
	struct mem_region_desc d = {r->gpa, r->size, r->qva, r->mmap_offset};

	return r->hva && desc_valid(&d);
}

/*
 * Build a table from a copy of @src[0..n): sort, index by qva, reject
 * overlaps. References are not touched: the caller decides who owns them.
 */
static int table_build(const struct mem_region *src, uint32_t n, struct mem_table **ret)
{
	struct mem_table *t;
	int rc = -ENOMEM;

	if (n > MEM_MAX_REGIONS)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		if (!region_sane(&src[i]))
			return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->regions = calloc(n ? n : 1, sizeof(*t->regions));
	t->by_qva = calloc(n ? n : 1, sizeof(*t->by_qva));
	t->by_hva = calloc(n ? n : 1, sizeof(*t->by_hva));
	if (!t->regions || !t->by_qva || !t->by_hva)
		goto err_free;
	if (n)
		memcpy(t->regions, src, n * sizeof(*src));
	t->nregions = n;
	qsort(t->regions, n, sizeof(*t->regions), cmp_gpa);
	for (uint32_t i = 0; i < n; i++)
		t->by_qva[i] = t->by_hva[i] = i;
	qsort_r(t->by_qva, n, sizeof(*t->by_qva), cmp_qva_idx, t->regions);
	qsort_r(t->by_hva, n, sizeof(*t->by_hva), cmp_hva_idx, t->regions);
	for (uint32_t i = 1; i < n; i++) {
		const struct mem_region *pg = &t->regions[i - 1], *cg = &t->regions[i];
		const struct mem_region *pq = &t->regions[t->by_qva[i - 1]];
		const struct mem_region *cq = &t->regions[t->by_qva[i]];
		if (overlaps(pg->gpa, pg->size, cg->gpa) || overlaps(pq->qva, pq->size, cq->qva)) {
			rc = -EINVAL;
			goto err_free;
		}
	}
	*ret = t;
	return 0;

err_free:
	free(t->regions);
	free(t->by_qva);
	free(t->by_hva);
	free(t);
	return rc;
}

int mem_table_new(struct mem_region *regions, uint32_t n, struct mem_table **ret)
{
	int rc;

	if (n && !regions)
		return -EINVAL;
	rc = table_build(regions, n, ret);
	if (rc == 0)
		for (uint32_t i = 0; i < n; i++)
			regions[i].map = NULL; /* moved into the table */
	return rc;
}

int mem_table_add(const struct mem_table *old, struct mem_region *r, struct mem_table **ret)
{
	uint32_t n = old ? old->nregions : 0;
	struct mem_region *tmp;
	int rc;

	if (n >= MEM_MAX_REGIONS)
		return -ENOSPC;
	tmp = malloc((n + 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	if (n)
		memcpy(tmp, old->regions, n * sizeof(*tmp));
	tmp[n] = *r;
	rc = table_build(tmp, n + 1, ret);
	free(tmp);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < n; i++)
		region_get(&old->regions[i]);
	r->map = NULL; /* moved into the table */
	return 0;
}

int mem_table_remove(const struct mem_table *old, uint64_t gpa, uint64_t qva, uint64_t size,
		     struct mem_table **ret)
{
	uint32_t n = old ? old->nregions : 0, k = 0, found = 0;
	struct mem_region *tmp;
	int rc;

	tmp = malloc((n ? n : 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const struct mem_region *r = &old->regions[i];
		if (!found && r->gpa == gpa && r->qva == qva && r->size == size)
			found = 1;
		else
			tmp[k++] = *r;
	}
	rc = found ? table_build(tmp, k, ret) : -ENOENT;
	if (rc == 0)
		for (uint32_t i = 0; i < k; i++)
			region_get(&tmp[i]);
	free(tmp);
	return rc;
}

void mem_table_free(struct mem_table *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->nregions; i++)
		mem_region_put(&t->regions[i]);
	free(t->regions);
	free(t->by_qva);
	free(t->by_hva);
	free(t);
}

uint64_t mem_table_gpa_end(const struct mem_table *t)
{
	if (!t || !t->nregions)
		return 0;
	const struct mem_region *r = &t->regions[t->nregions - 1];
	return r->gpa + r->size;
}

const struct mem_region *mem_find_gpa(const struct mem_table *t, uint64_t gpa)
{
	uint32_t lo = 0, hi = t ? t->nregions : 0;

	/* Last region with start <= gpa. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (t->regions[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct mem_region *r = &t->regions[lo - 1];
	return gpa - r->gpa < r->size ? r : NULL;
}

const struct mem_region *mem_find_qva(const struct mem_table *t, uint64_t qva)
{
	uint32_t lo = 0, hi = t ? t->nregions : 0;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (t->regions[t->by_qva[mid]].qva <= qva)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct mem_region *r = &t->regions[t->by_qva[lo - 1]];
	return qva - r->qva < r->size ? r : NULL;
}

const struct mem_region *mem_find_hva(const struct mem_table *t, const void *hva)
{
	uint32_t lo = 0, hi = t ? t->nregions : 0;
	uintptr_t a = (uintptr_t)hva;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if ((uintptr_t)t->regions[t->by_hva[mid]].hva <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct mem_region *r = &t->regions[t->by_hva[lo - 1]];
	return a - (uintptr_t)r->hva < r->size ? r : NULL;
}

void *mem_qva_to_hva(const struct mem_table *t, uint64_t qva, uint64_t *len)
{
	const struct mem_region *r;

	if (!t || *len == 0)
		return NULL;
	r = mem_find_qva(t, qva);
	if (!r)
		return NULL;
	return mem_region_at(r, qva - r->qva, len);
}

/* The whole of [addr, addr + len) inside @r (addr >= r's start), overflow-safe. */
static void *range_in(const struct mem_region *r, uint64_t start, uint64_t addr, uint64_t len)
{
	uint64_t off = addr - start;

	if (!r || len == 0 || len > r->size - off)
		return NULL;
	return r->hva + off;
}

void *mem_qva_range(const struct mem_table *t, uint64_t qva, uint64_t len)
{
	const struct mem_region *r = mem_find_qva(t, qva);

	return r ? range_in(r, r->qva, qva, len) : NULL;
}

void *mem_gpa_range(const struct mem_table *t, uint64_t gpa, uint64_t len)
{
	const struct mem_region *r = mem_find_gpa(t, gpa);

	return r ? range_in(r, r->gpa, gpa, len) : NULL;
}
