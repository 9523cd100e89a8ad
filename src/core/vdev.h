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
#include "mem/mem_log.h"
#include "vq/vq.h"

struct vq_api;

#define VDEV_SLOT_BITS 10
#define VDEV_MAX_SLOTS (1u << VDEV_SLOT_BITS)

/* Where one queue stands towards the device (ops) and the app (callbacks). */
struct vdev_ring {
	bool kicked;	  /* started by the frontend (kick fd / NOFD), not stopped since */
	bool vq_started;  /* vq_start() succeeded, vq_stop() not yet called */
	bool enabled;	  /* SET_VRING_ENABLE (or implicit) */
	bool up;	  /* ops.queue_start issued, queue_stop not yet */
	bool notified;	  /* vring_state_changed(1) delivered */
	bool failed;	  /* queue_start or vq_start failed: wait for new configuration */
	bool addr_pending; /* new ring addresses wait for the queue to be down */
	struct vq_addr pending_addr;
};

struct core_sock;
struct core_owner_ops;

/*
 * The inflight region of a device (INFLIGHT_SHMFD, core/inflight.c): one
 * shared mapping of the frontend's memfd, one slice per queue. Frontend
 * memory, not guest memory; the frontend keeps it across our restarts.
 */
struct vdev_inflight {
	void *map;           /* mapping (page-aligned), NULL when the device has none */
	size_t map_len;
	uint8_t *base;       /* queue 0's region inside it */
	uint64_t len;        /* bytes usable from base */
	uint16_t num_queues; /* as the frontend gave them */
	uint16_t queue_size;
};

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
	struct mem_log *log;    /* dirty log (SET_LOG_BASE), NULL when none; swapped while quiesced */
	int log_fd;             /* SET_LOG_FD eventfd, -1 when none */
	uint8_t status;         /* SET_STATUS value */
	bool running;           /* new_device delivered, destroy_device not yet */
	char path[108];
	void *app_ctx;
	struct vhk_device_ops ops; /* copy of the socket's device ops */
	void *dev_priv;         /* the device implementation's pointer (vhk_dev_set_priv) */

	/* ---- lifecycle (core/lifecycle.c), control thread under core_lock ---- */
	struct core_sock *sock;           /* the socket it came from */
	const struct core_owner_ops *oo;  /* the transport's hooks, NULL once closing */
	void *owner;                      /* the transport's connection */
	struct vhk_callbacks cb;          /* copy taken at connect time */
	uint64_t offered;                 /* offered virtio features (copy) */
	bool pf_handshake;                /* SET_PROTOCOL_FEATURES accepted */
	bool dev_inited;                  /* ops.dev_init succeeded: dev_fini at release */
	bool announced;                   /* new_connection ran: destroy_connection at release */
	bool destroy_req;                 /* destroy_device once queues are down */
	bool closing;                     /* core_dev_close(): release when ops are done */
	struct mem_table *pending_mem;    /* installed once every queue is down */
	unsigned ops_outstanding;         /* device ops issued and not completed */
	unsigned ops_posted;              /* completions queued to the loop */
	int ops_err;                      /* first error of a completed op */
	int op_start_ring;                /* queue whose queue_start is pending, or -1 */
	struct vdev_ring rings[VHK_MAX_QUEUES];
	struct vdev_inflight inflight;    /* GET/SET_INFLIGHT_FD; unmapped at release */
	/*
	 * Element API bookkeeping per queue (vq_api.c): allocated on a queue's
	 * first vhk_vq_pop(), used only by the thread inside that vq
	 * (vq_enter/vq_leave), kept like the vqs across slot reuse.
	 */
	struct vq_api *vq_api[VHK_MAX_QUEUES];
};

/* Unmap an inflight region (no vq may use it any more); NULL-safe. */
void vdev_inflight_unmap(struct vdev_inflight *r);

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

/*
 * Install a new dirty log (NULL: none): quiesce all vqs, point them at it
 * (bits still pending go to the old one first), unquiesce, then unmap the
 * old log.
 */
void vdev_set_log(struct vdev *d, struct mem_log *log);

/*
 * Set negotiated features and propagate the ring-relevant bits to the vqs
 * (a change of VHOST_F_LOG_ALL is applied to each vq quiesced: it switches
 * the logging of buffer writes).
 */
void vdev_set_features(struct vdev *d, uint64_t features);
/* Set the negotiated protocol features. */
void vdev_set_protocol_features(struct vdev *d, uint64_t pf);
/* Name the device after its socket path (truncated to the field). */
void vdev_set_path(struct vdev *d, const char *path);

/*
 * The fields the public queries read (features, protocol features, path,
 * queue count) change under the registry lock, a leaf lock: held for field
 * copies only, never across a device callback or a wait for a thread. A
 * query taken from a device's own thread therefore never waits for the
 * control thread, which may itself be waiting for that thread inside a
 * callback (a queue_stop joining its worker). Returns the device with the
 * lock held, or NULL (lock released) for a stale vid.
 */
struct vdev *vdev_query_begin(int vid);
void vdev_query_end(void);

/*
 * After vq_enter() on a vq of @d found through @vid: is @d still that
 * device? The slot may have been released and given to a new device
 * between the lookup and the enter. Releasing invalidates the vid first and
 * then quiesces every vq, and a later device's configuration reached us
 * through the enter: a vid that still matches here is the device whose ring
 * we now hold. One load per burst.
 */
static inline bool vdev_still(const struct vdev *d, int vid)
{
	return likely(atomic_load_explicit(&d->vid, memory_order_acquire) == vid);
}

/*
 * Datapath entry of the public queue functions (vq_api.c): resolve (vid,
 * qid) and vq_enter() it like a burst. 0 with *ret_d / *ret_vq set (the
 * caller must vq_leave()); -ENODEV stale vid (also when the vid went stale
 * while entering); -EINVAL qid out of range; -EAGAIN never configured, not
 * ready or another thread inside.
 */
int vdev_enter_vq(int vid, uint16_t qid, struct vdev **ret_d, struct vq **ret_vq);

#endif
