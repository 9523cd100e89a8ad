/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the inflight unit tests (test_inflight_split.c,
 * test_inflight_packed.c): a queue region as the frontend keeps it, a
 * "crash" (the vq is reset: our private state is gone, the region and the
 * guest's memory stay), and a guest-write observer that copies the region
 * at a chosen guest write, to restart from the state a kill at that point
 * would have left.
 */
#ifndef INFLIGHT_UTIL_H
#define INFLIGHT_UTIL_H

#include <stdlib.h>

#include "unit_vq.h"
#include "vq/vq_guest.h"
#include "vq/vq_inflight.h"

/* The frontend's copy of one queue's region (64-byte aligned, zeroed: never used). */
struct rgn {
	uint8_t *p;
	uint64_t len;
};

static inline void rgn_new(struct rgn *r, uint16_t qsize, bool packed)
{
	r->len = vq_ifl_queue_size(qsize, packed);
	r->p = aligned_alloc(64, r->len);
	CHECK(r->p != NULL);
	memset(r->p, 0, r->len);
}

static inline void rgn_free(struct rgn *r)
{
	free(r->p);
	r->p = NULL;
}

/*
 * Copy of the region taken by the observer at the @at-th guest write of
 * kind @kind (1 = the first) during the next flush.
 */
struct crash_point {
	struct vq_write_observer wo;
	struct rgn *r;
	enum vq_write_kind kind;
	int at;     /* which write of that kind */
	int seen;
	uint8_t *copy; /* the region as it was right after that write */
	const void *hva; /* where that write went */
	size_t hlen;
};

static inline void crash_write(void *ctx, const void *hva, size_t len, enum vq_write_kind kind)
{
	struct crash_point *cp = ctx;

	if (kind != cp->kind || ++cp->seen != cp->at)
		return;
	memcpy(cp->copy, cp->r->p, cp->r->len);
	cp->hva = hva;
	cp->hlen = len;
}

static inline void crash_arm(struct crash_point *cp, struct vq *vq, struct rgn *r,
			     enum vq_write_kind kind, int at)
{
	memset(cp, 0, sizeof(*cp));
	cp->wo.write = crash_write;
	cp->wo.ctx = cp;
	cp->r = r;
	cp->kind = kind;
	cp->at = at;
	cp->copy = malloc(r->len);
	CHECK(cp->copy != NULL);
	vq_set_write_observer(vq, &cp->wo);
}

/* Put the region back as the observer saw it (the process died right after that write). */
static inline void crash_apply(struct crash_point *cp, struct vq *vq)
{
	CHECK(cp->seen >= cp->at);
	memcpy(cp->r->p, cp->copy, cp->r->len);
	vq_set_write_observer(vq, NULL);
	free(cp->copy);
	cp->copy = NULL;
}

/* The process dies: nothing of the vq survives but what it wrote to the region and the guest. */
static inline void crash(struct vq *vq)
{
	vq_quiesce(vq);
	vq_reset(vq);
	vq_unquiesce(vq);
}

/* Pop through the tracking layer into @c (as the element API does). */
static inline int ipop(struct vq *vq, struct vq_chain *c)
{
	return vq_ifl_pop(vq, c, VQ_POP_RW);
}

/* Guest RAM of one region of @size bytes (frontend addresses gpa + UVQ_QVA_OFF) and its table. */
static inline struct gmem *ifl_mem(uint64_t size, struct mem_table **t)
{
	return uvq_mem(1, size, t);
}

/* Drop the guest RAM, its table and the guest ring @q (NULL-safe). */
static inline void ifl_mem_free(struct gmem *m, struct mem_table *t, struct gvq *q)
{
	gvq_free(q);
	mem_table_free(t);
	gmem_free(m);
}

#endif
