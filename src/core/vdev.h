/* SPDX-License-Identifier: MIT */
/*
 * The core device object shared by proto (which configures it from
 * vhost-user messages) and devices (which move data through its vrings).
 * It knows nothing of sockets or messages.
 *
 * Handles: a vid is (generation << VDEV_SLOT_BITS) | slot. Slots and their
 * vq structures are allocated once and never freed while the library is
 * loaded, so a datapath thread holding a stale vid or vq pointer touches
 * valid memory and sees "not ready" instead of a use-after-free.
 *
 * Includes: util, mem, vq, and the public vhk_dev.h for the ops table.
 */
#ifndef VHK_VQ_VDEV_H
#define VHK_VQ_VDEV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhostkit/vhk_dev.h"
#include "vhostkit/vhk_vq.h"
#include "mem/mem.h"
#include "vq/vq.h"

struct vq_api;

#define VDEV_SLOT_BITS 10
#define VDEV_MAX_SLOTS (1u << VDEV_SLOT_BITS)

struct vdev {
	_Atomic int vid;        /* current handle; -1 when the slot is free */
	uint32_t slot;
	uint32_t gen;
	uint64_t features;      /* negotiated virtio features */
	uint64_t protocol_features;
	uint32_t max_vrings;    /* virtqueues offered */
	uint32_t nr_vrings;     /* highest configured vring index + 1 */
	struct vq *_Atomic vqs[VHK_MAX_QUEUES]; /* allocated on first use, kept */
	struct mem_table *mem;  /* current table (swapped while quiesced) */
	uint16_t mtu;
	bool mtu_set;
	uint8_t status;         /* SET_STATUS value */
	bool running;           /* new_device delivered, destroy_device not yet */
	char path[108];
	void *app_ctx;
	struct vhk_device_ops ops; /* copy of the socket's device ops */
	void *dev_priv;         /* device's per-device data (net) */
	void *owner;            /* proto's connection (opaque here) */
	/*
	 * Element API bookkeeping per queue (vq_api.c): allocated on a queue's
	 * first vhk_vq_pop(), used only by the thread inside that vq
	 * (vq_enter/vq_leave), kept like the vqs across slot reuse.
	 */
	struct vq_api *vq_api[VHK_MAX_QUEUES];
};

/* Take a free slot, give it a new vid. Returns 0, -ENOSPC, -ENOMEM. */
int vdev_alloc(struct vdev **ret);
/*
 * Quiesce and reset every vq, free the memory table, invalidate the vid and
 * return the slot. The struct memory stays valid (see file comment).
 */
void vdev_release(struct vdev *d);

/* Datapath-safe lookup; NULL for a stale or malformed vid. */
struct vdev *vdev_get(int vid);

/* The vq for @qid (allocating it on first use, control thread only). */
struct vq *vdev_vq_get_or_alloc(struct vdev *d, uint32_t qid);
/* Datapath lookup: NULL if qid out of range or never allocated. */
static inline struct vq *vdev_vq(struct vdev *d, uint32_t qid)
{
	if (unlikely(qid >= VHK_MAX_QUEUES))
		return NULL;
	qid = (uint32_t)index_nospec(qid, VHK_MAX_QUEUES);
	return atomic_load_explicit(&d->vqs[qid], memory_order_acquire);
}

/*
 * Install a new memory table: quiesce all vqs, swap, remap started rings,
 * unquiesce, then free the old table. Rings that no longer translate are
 * stopped and marked broken.
 */
void vdev_set_mem(struct vdev *d, struct mem_table *t);

/* Set negotiated features and propagate the ring-relevant bits to the vqs. */
void vdev_set_features(struct vdev *d, uint64_t features);

/*
 * Datapath entry of the public queue functions (vq_api.c): resolve (vid,
 * qid) and vq_enter() it like a burst. 0 with *ret_d / *ret_vq set (the
 * caller must vq_leave()); -ENODEV stale vid (also when the vid went stale
 * while entering); -EINVAL qid out of range; -EAGAIN never configured, not
 * ready or another thread inside.
 */
int vdev_enter_vq(int vid, uint16_t qid, struct vdev **ret_d, struct vq **ret_vq);

#endif
