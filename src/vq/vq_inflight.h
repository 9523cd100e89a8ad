/* SPDX-License-Identifier: MIT */
/*
 * Inflight I/O tracking (vhost-user INFLIGHT_SHMFD, the spec's "Inflight
 * I/O tracking"): per queue, a region of memory the frontend keeps across
 * our restarts records which requests were popped and not yet completed,
 * so that a restarted backend resubmits exactly those, in the order they
 * were popped.
 *
 * The region is frontend memory, not guest memory: nothing here is
 * guest-visible. The core maps it (core/inflight.c) and gives each queue
 * its slice with vq_set_inflight() before the ring starts; vq_start()
 * validates the slice (vq_ifl_start) and, when it holds tracking data from
 * before, recovers from it: an in-progress used-ring update is rolled back
 * or committed as the spec says, the ring positions are derived from it
 * and the requests still in flight become the resubmit list.
 *
 * Security model: the region is as hostile as a message. It is copied
 * once (a snapshot), only the snapshot is validated and used, and what we
 * keep from it is rewritten into the region in normalised form. On the
 * datapath the region is only written, never read: every index we follow
 * (the packed free list, chain heads and ends) lives in private arrays
 * that mirror what we wrote. Resubmitted requests are walked by the same
 * chain walkers as new ones (chain.c, chain_packed.c).
 *
 * Crash consistency: the region is written in the spec's order, with a
 * compiler barrier between steps. A killed process retires every store it
 * issued before the kill and none after it, so the order the compiler
 * emits is the order a restarted backend finds (no CPU fence is needed).
 *
 * Only the element API (core/vq_api.c) pops and completes through the
 * vq_ifl_* functions below; devices that drive vq.h directly (net) never
 * track, and their paths carry no inflight code at all.
 *
 * Includes: vq.h.
 */
#ifndef VHK_VQ_VQ_INFLIGHT_H
#define VHK_VQ_VQ_INFLIGHT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "vq/vq.h"

#define VQI_VERSION 1u
#define VQI_ALIGN 64u /* each queue's region starts on a 64-byte boundary */

/* ---- region layout, as the spec gives it (native byte order) ---- */

struct vqi_split_desc {
	uint8_t inflight;   /* 1: head popped and not completed */
	uint8_t padding[5];
	uint16_t next;      /* last-batch list link (used side) */
	uint64_t counter;   /* pop order */
};

struct vqi_split_region {
	uint64_t features;
	uint16_t version;   /* 0: uninitialised, 1: ours */
	uint16_t desc_num;  /* ring size */
	uint16_t last_batch_head;
	uint16_t used_idx;  /* used->idx once the last batch was fully recorded */
	struct vqi_split_desc desc[];
};

struct vqi_packed_desc {
	uint8_t inflight;   /* head entries: 1 while the chain is in flight */
	uint8_t padding;
	uint16_t next;      /* free-list link, or the next entry of a chain */
	uint16_t last;      /* head entries: the chain's last entry */
	uint16_t num;       /* head entries: descriptors in the chain */
	uint64_t counter;   /* head entries: pop order */
	uint16_t id;        /* the descriptor as popped */
	uint16_t flags;
	uint32_t len;
	uint64_t addr;
};

struct vqi_packed_region {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t free_head;
	uint16_t old_free_head;
	uint16_t used_idx;
	uint16_t old_used_idx;
	uint8_t used_wrap_counter;
	uint8_t old_used_wrap_counter;
	uint8_t padding[7];
	struct vqi_packed_desc desc[];
};

static_assert(sizeof(struct vqi_split_desc) == 16, "DescStateSplit");
static_assert(offsetof(struct vqi_split_region, desc) == 16, "QueueRegionSplit");
static_assert(sizeof(struct vqi_packed_desc) == 32, "DescStatePacked");
static_assert(offsetof(struct vqi_packed_desc, id) == 16, "DescStatePacked.id");
static_assert(offsetof(struct vqi_packed_region, old_used_wrap_counter) == 21,
	      "QueueRegionPacked header");
static_assert(offsetof(struct vqi_packed_region, desc) == 32, "QueueRegionPacked");

/*
 * Bytes of one queue's region for @queue_size (1..32768) descriptors in
 * the split or packed layout, rounded up to VQI_ALIGN. At most
 * 32 + 32 * 32768 rounded: no overflow.
 */
static inline uint64_t vq_ifl_queue_size(uint32_t queue_size, bool packed)
{
	uint64_t hdr = packed ? sizeof(struct vqi_packed_region) : sizeof(struct vqi_split_region);
	uint64_t per = packed ? sizeof(struct vqi_packed_desc) : sizeof(struct vqi_split_desc);

	return (hdr + per * queue_size + VQI_ALIGN - 1) & ~(uint64_t)(VQI_ALIGN - 1);
}

/* ---- control side (control thread, the vq quiesced and not started) ---- */

/*
 * Give @vq the inflight region slice [@region, @region + @len) for a
 * frontend queue_size of @queue_size, or detach it (@region NULL). Takes
 * effect at the next vq_start(), which validates it. Returns 0, -EBUSY
 * (the ring is started), -ENOMEM.
 */
int vq_set_inflight(struct vq *vq, void *region, uint64_t len, uint16_t queue_size);

/*
 * Called by vq_start() once the ring is translated and its positions are
 * set from the base: initialise an unused slice, or validate and recover a
 * used one (positions re-derived from it, resubmit list built). Returns 0
 * (vq->ifl set: tracking) or -EINVAL with a reason in *@why (nothing was
 * written to the region).
 */
int vq_ifl_start(struct vq *vq, const char **why);
/* vq_stop(): tracking ends with the ring (the region keeps what it holds). */
void vq_ifl_stop(struct vq *vq);
/* vq_reset(): free everything. */
void vq_ifl_free(struct vq *vq);

/* ---- datapath (element API), vq entered and vq->ifl set ---- */

/*
 * vq_pop_mode() with tracking: the requests to resubmit first (in pop
 * order, each walked again like a new chain), then new ones, recorded in
 * the region as the spec says. Same returns as vq_pop(); -EIO also when
 * more descriptors would be in flight than the packed ring holds.
 */
int vq_ifl_pop(struct vq *vq, struct vq_chain *c, enum vq_pop_mode mode);
/*
 * vq_push() with tracking: until the next flush publishes the completion,
 * a pop that returns the same id again (a guest re-posting a buffer it was
 * not yet given back) breaks the ring.
 */
void vq_ifl_push(struct vq *vq, uint16_t id, uint32_t len);
/* Give back the request popped last (vq_rewind() with tracking). */
void vq_ifl_unpop(struct vq *vq, uint16_t id);
/* vq_flush() with tracking: the region around the used-ring update. */
void vq_ifl_flush(struct vq *vq);
/* Requests of the resubmit list not popped yet. */
uint16_t vq_ifl_pending(const struct vq *vq);

#endif
