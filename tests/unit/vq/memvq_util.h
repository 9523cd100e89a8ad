/* SPDX-License-Identifier: MIT */
/*
 * In-test helpers for the memvq suite: memfd-backed "guest memory" with a
 * region table, and a hand-built split ring driven from the guest side.
 */
#ifndef MEMVQ_UTIL_H
#define MEMVQ_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "test.h"
#include "mem/mem.h"
#include "vq/vq.h"

#define GM_QVA_OFF 0x100000000000ull /* qva = gpa + GM_QVA_OFF */
#define GM_F_INDIRECT (1ull << 28)
#define GM_F_EVENT_IDX (1ull << 29)
/* Pieces the fixtures' chains can hold (the net device's general paths take as many). */
#define MEMVQ_IOV 256u

/* Guest memory: one memfd mapped once by the test; regions cut out of it. */
struct gmem {
	int fd;
	uint8_t *p;    /* the test's (guest's) view of the whole file */
	uint64_t size; /* file size */
	struct mem_table *t;
};

/* Create a memfd of @size bytes mapped at g->p, no table yet. */
static inline void gm_create(struct gmem *g, uint64_t size)
{
	g->fd = memfd_create("gm", MFD_CLOEXEC);
	CHECK(g->fd >= 0);
	CHECK(ftruncate(g->fd, (off_t)size) == 0);
	g->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
	CHECK(g->p != MAP_FAILED);
	g->size = size;
	g->t = NULL;
}

/* Map one region of the file: gpa, size, file offset (qva = gpa + GM_QVA_OFF). */
static inline int gm_region(struct gmem *g, uint64_t gpa, uint64_t size, uint64_t off,
			    struct mem_region *r)
{
	struct mem_region_desc d = {gpa, size, gpa + GM_QVA_OFF, off};
	int fd = fcntl(g->fd, F_DUPFD_CLOEXEC, 0);

	CHECK(fd >= 0);
	return mem_region_map(&d, fd, r);
}

/* Identity layout: n regions of equal size, gpa == file offset, contiguous. */
static inline void gm_init(struct gmem *g, uint64_t size, uint32_t n)
{
	struct mem_region r[8];
	uint64_t each = size / n;

	CHECK(n <= 8);
	gm_create(g, size);
	for (uint32_t i = 0; i < n; i++)
		CHECK_EQ(gm_region(g, i * each, each, i * each, &r[i]), 0);
	CHECK_EQ(mem_table_new(r, n, &g->t), 0);
}

static inline void *gm_ptr(struct gmem *g, uint64_t gpa)
{
	return g->p + gpa;
}

static inline void gm_fini(struct gmem *g)
{
	mem_table_free(g->t);
	munmap(g->p, g->size);
	close(g->fd);
}

/* A split ring laid out in guest memory, driven as the guest would. */
struct tring {
	struct gmem *g;
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx;
};

/* Lay the ring out at @gpa (desc, avail, used with room for event fields). */
static inline void tr_init(struct tring *r, struct gmem *g, uint16_t size, uint64_t gpa)
{
	r->g = g;
	r->size = size;
	r->desc_gpa = gpa;
	r->avail_gpa = gpa + 16ull * size;
	r->used_gpa = (r->avail_gpa + 6 + 2ull * size + 2 + 3) & ~3ull;
	r->desc = gm_ptr(g, r->desc_gpa);
	r->avail = gm_ptr(g, r->avail_gpa);
	r->used = gm_ptr(g, r->used_gpa);
	memset(r->desc, 0, (r->used_gpa + 6 + 8ull * size + 2) - gpa);
	r->avail_idx = 0;
}

static inline void tr_desc(struct tring *r, uint16_t i, uint64_t addr, uint32_t len,
			   uint16_t flags, uint16_t next)
{
	r->desc[i].addr = addr;
	r->desc[i].len = len;
	r->desc[i].flags = flags;
	r->desc[i].next = next;
}

/* Make @head available (guest side: ring entry, then release the index). */
static inline void tr_avail(struct tring *r, uint16_t head)
{
	r->avail->ring[r->avail_idx & (r->size - 1)] = head;
	r->avail_idx++;
	__atomic_store_n(&r->avail->idx, r->avail_idx, __ATOMIC_RELEASE);
}

/* Configure and start @vq on ring @r with @features; base 0, enabled. */
static inline void tr_start(struct tring *r, struct vq *vq, uint64_t features)
{
	struct vq_addr a = {0, r->desc_gpa + GM_QVA_OFF, r->avail_gpa + GM_QVA_OFF,
			    r->used_gpa + GM_QVA_OFF, 0};

	vq_init(vq, 0);
	CHECK_EQ(vq_set_num(vq, r->size), 0);
	CHECK_EQ(vq_set_addr(vq, &a), 0);
	CHECK_EQ(vq_set_base(vq, r->avail_idx), 0);
	CHECK_EQ(vq_start(vq, r->g->t, features), 0);
	vq_set_enabled(vq, true);
	CHECK(vq->ready);
}

/* Is @hva the same memory as the guest's view @view? (separate mappings of one file) */
static inline bool same_mem(const uint8_t *hva, uint8_t *view)
{
	*view = (uint8_t)(*view + 0x5b);
	return *(const volatile uint8_t *)hva == *view;
}

/* Count (and consume) signals on an eventfd. */
static inline uint64_t efd_count(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

#endif
