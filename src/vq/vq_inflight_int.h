/* SPDX-License-Identifier: MIT */
/*
 * Private to vq_inflight.c (split, shared) and vq_inflight_packed.c: the
 * per-vq tracking state and the helpers both formats use.
 */
#ifndef VHK_VQ_VQ_INFLIGHT_INT_H
#define VHK_VQ_VQ_INFLIGHT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "vq/vq.h"
#include "vq/vq_inflight.h"

struct vq_ifl {
	/* ---- configuration (vq_set_inflight) ---- */
	uint8_t *region;   /* this queue's slice of the frontend's region, or NULL */
	uint64_t len;      /* its bytes */
	uint16_t qsize;    /* the frontend's queue_size: the ring may not be larger */

	/* ---- the started ring (vq_ifl_start .. vq_ifl_stop) ---- */
	uint32_t cap;      /* entries of the per-descriptor arrays below */
	uint64_t counter;  /* counter of the next pop */
	uint16_t *resub;   /* to resubmit, in pop order: heads (split) / head entries (packed) */
	uint32_t nresub;
	uint32_t resub_pos; /* next one to pop */
	bool last_resub;   /* the last pop was a resubmission */
	uint64_t *pend;    /* per head / buffer id: pushed, completion not yet flushed */
	/* split */
	uint16_t last_batch_head;
	/* packed: a private mirror of what we wrote; the region is never read back */
	uint32_t free_head; /* first free entry; size when none */
	uint32_t nfree;     /* entries on the free list */
	uint16_t *next;     /* per entry: free-list / chain link */
	uint16_t *head;     /* per buffer id in flight: its head entry */
	uint16_t *last;     /* per buffer id in flight: its last entry */
	struct vqi_packed_region *snap; /* validated snapshot, for resubmissions */
	struct vring_packed_desc *walk; /* one resubmitted chain, laid out for the walker */
};

/* A compiler barrier: region stores are emitted in program order (see vq_inflight.h). */
static inline void vqi_order(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* One live request found at restart: its sort key and its head (entry). */
struct vqi_live {
	uint64_t key;
	uint16_t idx;
};

/*
 * Sort @n live requests by pop order. Counters are free-running 64-bit
 * values: they are compared relative to the first one found (key =
 * counter - ref, ref half the counter space below it), which orders any
 * set that fits in a window of 2^63 whatever the wrap point; equal counters
 * keep the order of their index. A hostile region gets some total order,
 * never an inconsistent comparison. Returns the counter after the largest.
 */
uint64_t vqi_sort_live(struct vqi_live *live, uint32_t n);

/* The packed half (vq_inflight_packed.c). */
int vqi_packed_start(struct vq *vq, struct vq_ifl *f, const char **why);
int vqi_packed_record(struct vq *vq, struct vq_ifl *f, const struct vq_chain *c);
int vqi_packed_resubmit(struct vq *vq, struct vq_ifl *f, struct vq_chain *c,
			enum vq_pop_mode mode);
void vqi_packed_unpop(struct vq *vq, struct vq_ifl *f, uint16_t id);
void vqi_packed_flush(struct vq *vq, struct vq_ifl *f);

#endif
