/* SPDX-License-Identifier: MIT */
/*
 * Unit-test glue between the harness guest (gmem.h, gvq.h) and a library
 * vq configured directly, without a frontend (tests/unit/vq, unit/core):
 * guest RAM whose frontend addresses are gpa + UVQ_QVA_OFF, its memory
 * table, and a vq started on a guest ring. The rings themselves are written
 * with the harness (its driver or its raw writers).
 */
#ifndef VHK_TEST_UNIT_VQ_H
#define VHK_TEST_UNIT_VQ_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gmem.h"
#include "gvq.h"
#include "test.h"
#include "mem/mem.h"
#include "vq/vq.h"

#define UVQ_QVA_OFF 0x100000000000ull /* frontend address = gpa + UVQ_QVA_OFF */
#define F_INDIRECT  (1ull << 28)
#define F_EVENT_IDX (1ull << 29)
#define F_PACKED    (1ull << 34)
#define F_IN_ORDER  (1ull << 35)
/* Pieces the fixtures' chains can hold (the net device's general paths take as many). */
#define UVQ_IOV 256u

/*
 * Guest RAM of @n adjacent regions of @each bytes from GPA 0, frontend
 * addresses gpa + UVQ_QVA_OFF (one flat space), and its memory table in *@t.
 */
static inline struct gmem *uvq_mem(uint32_t n, uint64_t each, struct mem_table **t)
{
	struct gmem *m = NULL;

	CHECK_EQ(gmem_new(n, each, 0, 0, &m), 0);
	gmem_set_qva_base(m, UVQ_QVA_OFF);
	CHECK_EQ(gmem_table(m, 0, n, t), 0);
	return m;
}

/* The test's pointer to guest bytes [@gpa, @gpa + @len), which must lie in one region. */
static inline void *uvq_ptr(struct gmem *m, uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(m, gpa, len);

	CHECK(p != NULL);
	return p;
}

/* The frontend addresses of @q's ring areas, as SET_VRING_ADDR carries them. */
static inline struct vq_addr uvq_addr(const struct gvq *q)
{
	struct vq_addr a = {0, gmem_qva(q->mem, q->desc_gpa), gmem_qva(q->mem, q->avail_gpa),
			    gmem_qva(q->mem, q->used_gpa), 0};
	return a;
}

/*
 * Point @vq (initialised) at guest ring @q and start it over @t with
 * @features (RING_PACKED for a packed ring) and SET_VRING_BASE @base, then
 * enable it, as the control path would. Returns vq_start()'s result.
 */
static inline int uvq_start(struct vq *vq, const struct gvq *q, const struct mem_table *t,
			    uint64_t features, uint32_t base)
{
	struct vq_addr a = uvq_addr(q);

	vq->features = features; /* as vdev_set_features() does: packed sizes and bases */
	CHECK_EQ(vq_set_num(vq, q->size), 0);
	CHECK_EQ(vq_set_addr(vq, &a), 0);
	CHECK_EQ(vq_set_base(vq, base), 0);
	int rc = vq_start(vq, t, features);
	vq_set_enabled(vq, true);
	return rc;
}

/*
 * The usual fixture: guest RAM of two 1 MiB regions, a ring at GPA 0x1000,
 * a vq started on it, call and err eventfds (the vq has duplicates). The
 * fixtures live in static storage: each case runs in its own forked child,
 * and everything they own stays reachable (no leak reports under ASan).
 */
struct uvq_fx {
	struct gmem *m;
	struct mem_table *t;
	struct gvq *q;
	struct vq vq;
	struct vq_chain c;
	struct iovec iov[UVQ_IOV]; /* c's pieces */
	int err_fd, call_fd;
};

/* A fresh fixture from the static pool, c's pieces pointing at iov. */
static inline struct uvq_fx *uvq_fx_alloc(void)
{
	static struct uvq_fx pool[20];
	static unsigned used;

	CHECK(used < sizeof(pool) / sizeof(pool[0]));
	pool[used].c.iov = pool[used].iov;
	pool[used].c.iov_max = UVQ_IOV;
	return &pool[used++];
}

/*
 * Fixture with a ring of @size in the format of @features, started with
 * those features at SET_VRING_BASE @base (split: the raw guest, avail->idx
 * and used->idx start there too).
 */
static inline struct uvq_fx *uvq_fx_new(uint16_t size, uint64_t features, uint32_t base)
{
	struct uvq_fx *f = uvq_fx_alloc();

	f->m = uvq_mem(2, 0x100000, &f->t);
	CHECK_EQ(gvq_new_at(f->m, 0x1000, size, features, &f->q), 0);
	if (!f->q->packed) {
		f->q->raw.pos = (uint16_t)base;
		f->q->avail->idx = (uint16_t)base;
		f->q->used->idx = (uint16_t)base;
	}
	vq_init(&f->vq, 0);
	CHECK_EQ(uvq_start(&f->vq, f->q, f->t, features, base), 0);
	CHECK(f->vq.ready && f->vq.packed == f->q->packed);
	f->err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(f->err_fd >= 0 && f->call_fd >= 0);
	vq_set_err_fd(&f->vq, dup(f->err_fd));
	vq_set_call_fd(&f->vq, dup(f->call_fd));
	return f;
}

/* Is @hva the same memory as the test's view @view? (separate mappings of one file) */
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
