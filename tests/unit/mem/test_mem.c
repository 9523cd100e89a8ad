/* SPDX-License-Identifier: MIT */
/* Guest memory regions: mapping validation, tables, translation. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test.h"
#include "mem/mem.h"
#include "util/fd.h"

#define QVA_OFF 0x100000000000ull /* qva = gpa + QVA_OFF */

/*
 * One memfd the test maps whole, regions of it mapped by the library at
 * chosen file offsets (the layouts the mem layer must handle; the guest
 * RAM of the test harness has one file per region).
 */
struct mfile {
	int fd;
	uint8_t *p;    /* the test's view of the whole file */
	uint64_t size; /* file size */
	struct mem_table *t;
};

/* Create a memfd of @size bytes mapped at f->p, no table yet. */
static void mf_create(struct mfile *f, uint64_t size)
{
	f->fd = memfd_create("mf", MFD_CLOEXEC);
	CHECK(f->fd >= 0);
	CHECK(ftruncate(f->fd, (off_t)size) == 0);
	f->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
	CHECK(f->p != MAP_FAILED);
	f->size = size;
	f->t = NULL;
}

/* Map one region of the file: gpa, size, file offset (qva = gpa + QVA_OFF). */
static int mf_region(struct mfile *f, uint64_t gpa, uint64_t size, uint64_t off,
		     struct mem_region *r)
{
	struct mem_region_desc d = {gpa, size, gpa + QVA_OFF, off};
	int fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);

	CHECK(fd >= 0);
	return mem_region_map(&d, fd, r);
}

static void mf_fini(struct mfile *f)
{
	mem_table_free(f->t);
	munmap(f->p, f->size);
	close(f->fd);
}

/* Is @hva the same memory as the test's view @view? (separate mappings of one file) */
static bool same_mem(const uint8_t *hva, uint8_t *view)
{
	*view = (uint8_t)(*view + 0x5b);
	return *(const volatile uint8_t *)hva == *view;
}

/* Try to map @d from a fresh memfd of @fsize bytes; return the result code. */
static int try_map(uint64_t fsize, const struct mem_region_desc *d, struct mem_region *r)
{
	int fd = memfd_create("t", MFD_CLOEXEC);

	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)fsize) == 0);
	return mem_region_map(d, fd, r);
}

static void t_map_rejects(void)
{
	struct mem_region r;
	int before = fd_count_open();
	const struct mem_region_desc bad[] = {
		{0, 0, 0, 0},                                /* zero size */
		{UINT64_MAX - 100, 4096, 0, 0},              /* gpa + size wraps */
		{0, 4096, UINT64_MAX - 100, 0},              /* qva + size wraps */
		{0, 4096, 0, UINT64_MAX - 100},              /* offset + size wraps */
		{0, 8192, 0, 0},                             /* fd too small */
		{0, 4097, 0, 4096},                          /* offset past the end */
		{0, 1, 0, 8192},                             /* offset past the end */
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&r, 0, sizeof(r));
		CHECK_EQ(try_map(8192 - (i == 4) * 4096, &bad[i], &r), -EINVAL);
		CHECK(r.map == NULL);
	}
	/* Invalid fd is rejected too. */
	CHECK_EQ(mem_region_map(&bad[4], -1, &r), -EINVAL);
	/* Every fd was closed. */
	CHECK_EQ(fd_count_open(), before);
}

static void t_map_unaligned_offset(void)
{
	struct mfile g;
	struct mem_region r;

	mf_create(&g, 3 * 4096);
	for (uint32_t i = 0; i < 3 * 4096; i++)
		g.p[i] = (uint8_t)(i * 7);
	CHECK_EQ(mf_region(&g, 0x10000, 5000, 4196, &r), 0);
	CHECK_EQ(r.hva[0], (uint8_t)(4196 * 7));
	CHECK_EQ(r.hva[4999], (uint8_t)((4196 + 4999) * 7));
	r.hva[10] = 0xaa; /* MAP_SHARED: the guest sees it */
	CHECK_EQ(g.p[4206], 0xaa);
	/* Exactly to the end of the file is fine, one more byte is not. */
	struct mem_region r2;
	CHECK_EQ(mf_region(&g, 0x100000, 3 * 4096 - 4196, 4196, &r2), 0);
	mem_region_put(&r2);
	CHECK_EQ(mf_region(&g, 0x100000, 3 * 4096 - 4196 + 1, 4196, &r2), -EINVAL);
	mem_region_put(&r);
	CHECK(r.map == NULL);
	mem_region_put(&r); /* idempotent */
	mf_fini(&g);
}

static void t_table_overlaps(void)
{
	struct mfile g;
	struct mem_region r[3];
	struct mem_table *t = NULL;
	struct mem_region_desc d;

	mf_create(&g, 4 * 4096);
	/* GPA overlap: [0x1000, 0x3000) and [0x2fff, ...) */
	CHECK_EQ(mf_region(&g, 0x1000, 0x2000, 0, &r[0]), 0);
	CHECK_EQ(mf_region(&g, 0x2fff, 0x1000, 0x1000, &r[1]), 0);
	CHECK_EQ(mem_table_new(r, 2, &t), -EINVAL);
	CHECK(r[0].map && r[1].map); /* caller still owns them */
	mem_region_put(&r[1]);
	/* QVA overlap with disjoint GPAs. */
	d = (struct mem_region_desc){0x100000, 0x1000, 0x1000 + QVA_OFF + 0x1fff, 0};
	CHECK_EQ(mem_region_map(&d, fcntl(g.fd, F_DUPFD_CLOEXEC, 0), &r[1]), 0);
	CHECK_EQ(mem_table_new(r, 2, &t), -EINVAL);
	mem_region_put(&r[1]);
	/* Adjacent (touching) regions are fine, in any order. */
	CHECK_EQ(mf_region(&g, 0x3000, 0x1000, 0x2000, &r[1]), 0);
	CHECK_EQ(mf_region(&g, 0x0, 0x1000, 0x3000, &r[2]), 0);
	CHECK_EQ(mem_table_new(r, 3, &t), 0);
	CHECK(r[0].map == NULL); /* moved */
	CHECK_EQ(t->nregions, 3);
	CHECK_EQ(t->regions[0].gpa, 0);
	CHECK_EQ(t->regions[1].gpa, 0x1000);
	CHECK_EQ(t->regions[2].gpa, 0x3000);
	CHECK_EQ(mem_table_gpa_end(t), 0x4000);
	mem_table_free(t);
	/* Too many regions. */
	CHECK_EQ(mem_table_new(r, MEM_MAX_REGIONS + 1, &t), -EINVAL);
	/* Empty table is allowed and translates nothing. */
	CHECK_EQ(mem_table_new(NULL, 0, &t), 0);
	uint64_t len = 1;
	CHECK(mem_gpa_to_hva(t, 0, &len, NULL) == NULL);
	CHECK_EQ(mem_table_gpa_end(t), 0);
	mem_table_free(t);
	mf_fini(&g);
}

static void t_table_add_remove(void)
{
	struct mfile g;
	struct mem_region r[2], extra;
	struct mem_table *t1, *t2, *t3;

	mf_create(&g, 4 * 4096);
	memset(g.p, 0x5a, 4 * 4096);
	CHECK_EQ(mf_region(&g, 0x0, 0x1000, 0, &r[0]), 0);
	CHECK_EQ(mf_region(&g, 0x1000, 0x1000, 0x1000, &r[1]), 0);
	CHECK_EQ(mem_table_new(r, 2, &t1), 0);
	/* Add an overlapping region: rejected, region still ours. */
	CHECK_EQ(mf_region(&g, 0x1800, 0x1000, 0x2000, &extra), 0);
	CHECK_EQ(mem_table_add(t1, &extra, &t2), -EINVAL);
	mem_region_put(&extra);
	CHECK_EQ(mf_region(&g, 0x8000, 0x1000, 0x2000, &extra), 0);
	CHECK_EQ(mem_table_add(t1, &extra, &t2), 0);
	CHECK_EQ(t2->nregions, 3);
	/* Free the old table: the shared mappings stay alive for t2. */
	mem_table_free(t1);
	uint64_t len = 0x1000;
	uint8_t *p = mem_gpa_to_hva(t2, 0x1000, &len, NULL);
	CHECK(p && len == 0x1000 && p[0xfff] == 0x5a);
	/* Remove: must match gpa, qva and size exactly. */
	CHECK_EQ(mem_table_remove(t2, 0x1000, 0x1000 + QVA_OFF, 0x800, &t3), -ENOENT);
	CHECK_EQ(mem_table_remove(t2, 0x1000, 0x1000, 0x1000, &t3), -ENOENT);
	CHECK_EQ(mem_table_remove(t2, 0x1000, 0x1000 + QVA_OFF, 0x1000, &t3), 0);
	CHECK_EQ(t3->nregions, 2);
	len = 1;
	CHECK(mem_gpa_to_hva(t3, 0x1000, &len, NULL) == NULL);
	mem_table_free(t2);
	len = 0x1000;
	p = mem_gpa_to_hva(t3, 0x8000, &len, NULL);
	CHECK(p && len == 0x1000 && p[0] == 0x5a);
	mem_table_free(t3);
	mf_fini(&g);
}

static void t_translate_split(void)
{
	struct mfile g;
	uint32_t hint = 0;
	uint64_t len;
	uint8_t *p;

	/* Two adjacent regions [0, 8K) [8K, 16K) backed by different file offsets. */
	mf_create(&g, 4 * 4096);
	struct mem_region r[2];
	CHECK_EQ(mf_region(&g, 0, 0x2000, 0x2000, &r[0]), 0);
	CHECK_EQ(mf_region(&g, 0x2000, 0x2000, 0, &r[1]), 0);
	CHECK_EQ(mem_table_new(r, 2, &g.t), 0);
	len = 0x1000;
	p = mem_gpa_to_hva(g.t, 0x1800, &len, &hint);
	CHECK(same_mem(p, g.p + 0x3800));
	CHECK_EQ(len, 0x800); /* clamped at the region end */
	len = 0x1000;
	p = mem_gpa_to_hva(g.t, 0x2000, &len, &hint);
	CHECK(same_mem(p, g.p));
	CHECK_EQ(len, 0x1000);
	CHECK_EQ(hint, 1);
	/* Stale hint (points at the wrong region) still gives the right answer. */
	len = 16;
	p = mem_gpa_to_hva(g.t, 0x10, &len, &hint);
	CHECK(same_mem(p, g.p + 0x2010) && len == 16 && hint == 0);
	hint = 12345;
	len = 16;
	CHECK(same_mem(mem_gpa_to_hva(g.t, 0x2010, &len, &hint), g.p + 0x10));
	len = 16;
	CHECK(mem_gpa_to_hva(g.t, 0x4000, &len, &hint) == NULL);
	len = 0;
	CHECK(mem_gpa_to_hva(g.t, 0x10, &len, &hint) == NULL);
	/* qva translation mirrors it. */
	len = 0x1000;
	p = mem_qva_to_hva(g.t, 0x1800 + QVA_OFF, &len);
	CHECK(same_mem(p, g.p + 0x3800) && len == 0x800);
	/* Whole-range translation refuses to cross the boundary. */
	CHECK(same_mem(mem_qva_range(g.t, 0x1800 + QVA_OFF, 0x800), g.p + 0x3800));
	CHECK(mem_qva_range(g.t, 0x1800 + QVA_OFF, 0x801) == NULL);
	CHECK(mem_gpa_range(g.t, 0x1800, 0x801) == NULL);
	CHECK(same_mem(mem_gpa_range(g.t, 0x2000, 0x2000), g.p));
	CHECK(mem_gpa_range(g.t, 0x2000, 0x2001) == NULL);
	CHECK(mem_gpa_range(g.t, 0x2000, 0) == NULL);
	CHECK(mem_gpa_range(g.t, 0x10, UINT64_MAX) == NULL);
	CHECK(mem_qva_range(g.t, UINT64_MAX, 2) == NULL);
	CHECK(mem_qva_range(NULL, QVA_OFF, 1) == NULL);
	mf_fini(&g);
}

static void t_many_regions(void)
{
	enum { N = 300 };
	struct mfile g;
	struct mem_region *r = calloc(N, sizeof(*r));
	int fd;

	CHECK(r);
	mf_create(&g, N * 4096ull);
	for (uint32_t i = 0; i < N; i++) {
		/* Gaps in gpa; qva in the reverse order of gpa. */
		struct mem_region_desc d = {0x100000ull * (i + 1), 4096,
					    QVA_OFF + 0x10000ull * (N - i), 4096ull * i};
		fd = fcntl(g.fd, F_DUPFD_CLOEXEC, 0);
		CHECK_EQ(mem_region_map(&d, fd, &r[(i * 7) % N]), 0);
		*(uint32_t *)(g.p + 4096ull * i) = i;
	}
	CHECK_EQ(mem_table_new(r, N, &g.t), 0);
	for (uint32_t i = 0; i < N; i++) {
		uint64_t len = 8192;
		uint32_t *p = mem_gpa_to_hva(g.t, 0x100000ull * (i + 1), &len, NULL);
		CHECK(p && *p == i && len == 4096);
		len = 1;
		CHECK(mem_gpa_to_hva(g.t, 0x100000ull * (i + 1) + 4096, &len, NULL) == NULL);
		CHECK(mem_gpa_to_hva(g.t, 0x100000ull * (i + 1) - 1, &len, NULL) == NULL);
		p = mem_qva_range(g.t, QVA_OFF + 0x10000ull * (N - i), 4);
		CHECK(p && *p == i);
		CHECK(mem_find_qva(g.t, QVA_OFF + 0x10000ull * (N - i) + 4096) == NULL);
	}
	CHECK_EQ(mem_table_gpa_end(g.t), 0x100000ull * N + 4096);
	mf_fini(&g);
	free(r);
}

static void t_full_table(void)
{
	struct mfile g;
	struct mem_region *r = calloc(MEM_MAX_REGIONS, sizeof(*r));
	struct mem_region extra;
	struct mem_table *t2;

	CHECK(r);
	mf_create(&g, 4096);
	for (uint32_t i = 0; i < MEM_MAX_REGIONS; i++)
		CHECK_EQ(mf_region(&g, 0x1000ull * i, 0x1000, 0, &r[i]), 0);
	CHECK_EQ(mem_table_new(r, MEM_MAX_REGIONS, &g.t), 0);
	CHECK_EQ(mf_region(&g, 0x1000ull * MEM_MAX_REGIONS, 0x1000, 0, &extra), 0);
	CHECK_EQ(mem_table_add(g.t, &extra, &t2), -ENOSPC);
	mem_region_put(&extra);
	mf_fini(&g);
	free(r);
}

static void t_no_fd_leak(void)
{
	struct mfile g;
	int before;

	mf_create(&g, 2 * 4096);
	before = fd_count_open();
	for (int i = 0; i < 3000; i++) {
		struct mem_region r[2], x;
		struct mem_table *t, *t2;
		CHECK_EQ(mf_region(&g, 0, 4096, 0, &r[0]), 0);
		CHECK_EQ(mf_region(&g, 4096, 4096, 4096, &r[1]), 0);
		CHECK_EQ(mem_table_new(r, 2, &t), 0);
		CHECK_EQ(mf_region(&g, 0x10000, 4096, 0, &x), 0);
		CHECK_EQ(mem_table_add(t, &x, &t2), 0);
		mem_table_free(t);
		CHECK_EQ(mem_table_remove(t2, 0, QVA_OFF, 4096, &t), 0);
		mem_table_free(t2);
		mem_table_free(t);
		/* failing paths close too */
		struct mem_region_desc bad = {0, 0, 0, 0};
		CHECK_EQ(mem_region_map(&bad, fcntl(g.fd, F_DUPFD_CLOEXEC, 0), &x), -EINVAL);
	}
	CHECK_EQ(fd_count_open(), before);
	mf_fini(&g);
}

TEST_MAIN(TEST(t_map_rejects), TEST(t_map_unaligned_offset), TEST(t_table_overlaps),
	  TEST(t_table_add_remove), TEST(t_translate_split), TEST(t_many_regions),
	  TEST(t_full_table), TEST(t_no_fd_leak))
