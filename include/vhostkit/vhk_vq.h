/* SPDX-License-Identifier: MIT */
/**
 * @file vhk_vq.h
 * Virtqueues of a device: state, notifications, and (for devices built on
 * the library) the element API that pops requests and pushes completions
 * through the library's own validated ring walkers.
 *
 * Queues are named by (vid, qid); qid < VHK_MAX_QUEUES. Conventions are
 * those of vhk_dev.h: negative errno returns, stale vids give -ENODEV.
 *
 * Threads (every function below except vhk_vq_get_info() and
 * vhk_vq_wait_kick()): one thread at a time per queue. A call made while
 * another thread is inside a call on the same queue returns -EAGAIN and
 * changes nothing; different queues may be driven from different threads
 * at the same time. Staying on one thread per queue keeps every call free
 * of locks and syscalls; the first call from a new thread takes the queue
 * over with one membarrier(2). Requests popped on one thread may be pushed
 * on another as long as the calls do not overlap.
 *
 * Lifetime: a queue serves requests between its device's queue_start and
 * queue_stop operations (struct vhk_device_ops) while the device is
 * running (new_device .. destroy_device of struct vhk_callbacks). Once it
 * stops (GET_VRING_BASE, reset, disconnect) every call here returns
 * -EAGAIN or -ENODEV. Requests still in flight then are dropped: the host
 * addresses of their pieces must not be touched after queue_stop or
 * destroy_device returns (a memory-table change runs destroy_device
 * before the old memory goes away).
 *
 * Inflight tracking: when the socket offers INFLIGHT_SHMFD
 * (vhk_socket_set_protocol_features()) and the frontend negotiates it and
 * hands over a region, every pop, push and flush below is also recorded
 * in that region (frontend memory that survives a restart of this
 * process). When a queue starts on a region that holds requests a
 * previous process (or this one, before the queue stopped) popped and did
 * not complete, vhk_vq_pop() returns those first, in the order they were
 * popped, walked and checked again like new ones; then new requests. A
 * device only has to process what it pops, as always.
 */
#ifndef VHOSTKIT_VHK_VQ_H
#define VHOSTKIT_VHK_VQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <vhostkit/vhk_dev.h>

#ifdef __cplusplus
extern "C" {
#endif

/** State of one virtqueue, for apps that run their own datapath. */
struct vhk_vq_info {
	uint32_t size;       /**< entries; 0 if never set */
	bool packed;         /**< packed layout (VIRTIO_F_RING_PACKED) */
	bool started;        /**< kick fd received and not stopped */
	bool enabled;        /**< SET_VRING_ENABLE state */
	bool broken;         /**< marked broken after a guest error */
	void *desc;          /**< host address of the descriptor table */
	void *avail;         /**< avail ring (split) or driver event area (packed) */
	void *used;          /**< used ring (split) or device event area (packed) */
	int kick_fd;         /**< owned by the library; -1 when polling */
	int call_fd;         /**< owned by the library; -1 when none */
	uint16_t last_avail_idx;
	uint16_t last_used_idx;
	uint64_t reserved[6]; /**< zero */
};

/**
 * Fill @p info for queue @p qid: a consistent snapshot. Any thread,
 * including a device's worker while the control thread waits for it in a
 * callback (it never takes the control lock; it waits at most for a burst
 * on the queue to end). @return 0; -ENODEV; -EINVAL bad qid/NULL.
 */
int vhk_vq_get_info(int vid, uint16_t qid, struct vhk_vq_info *info);

/**
 * Ask the guest to notify (kick) us on new buffers in vring @p qid
 * (interrupt mode), or stop asking (polling). After enabling, re-check the
 * ring before sleeping on the kick fd: buffers may have arrived already.
 * With EVENT_IDX, enabling asks for a kick after the current position, so
 * an interrupt-mode loop calls this again before every sleep (the classic
 * "enable, re-check, sleep" sequence). With notifications disabled under
 * EVENT_IDX the guest may still send one last kick.
 * Thread-safety: the queue's datapath rule (file comment).
 * @return 0; -ENODEV; -EINVAL bad qid; -EAGAIN ring not ready, or another
 *         thread is inside a call on this queue.
 */
int vhk_vq_set_notification(int vid, uint16_t qid, bool enable);

/**
 * Sleep until the guest kicks vring @p qid or @p timeout_ms passes, then
 * consume the kick. @return 1 kicked; 0 timeout; -ENODEV; -EINVAL;
 * -EAGAIN no kick fd (polling mode).
 */
int vhk_vq_wait_kick(int vid, uint16_t qid, int timeout_ms);

/**
 * Interrupt the guest for vring @p qid if the guest asked for it (EVENT_IDX
 * or flags), for used entries published outside vhk_vq_flush() (which
 * notifies by itself). Thread-safety: the queue's datapath rule.
 * @return 1 notified; 0 suppressed (or no call fd); -ENODEV; -EINVAL bad
 *         qid; -EAGAIN ring not ready, or another thread is inside a call
 *         on this queue.
 */
int vhk_vq_notify(int vid, uint16_t qid);

/**
 * Number of descriptor chains the guest has made available in vring @p qid
 * and the device has not consumed (rte_vhost_avail_entries), plus, with
 * inflight tracking, the requests still to be resubmitted.
 * @return count; -ENODEV; -EINVAL bad qid; -EAGAIN ring not ready, or
 *         another thread is running a burst on this queue right now.
 */
int vhk_vq_avail_count(int vid, uint16_t qid);

/* ---- the element API: requests and completions ---- */

/**
 * One request popped from a queue: a validated, translated descriptor chain.
 * Set @c iov and @c iov_max before vhk_vq_pop(); it fills the rest.
 *
 * The pieces are host addresses of guest memory. The guest can change the
 * bytes of the readable part at any time, also while the device reads
 * them: copy what you validate and use only the copy. They stay valid
 * until the request is pushed (or given back with vhk_vq_unpop()), and at
 * most until queue_stop or destroy_device (see the file comment).
 */
struct vhk_vq_elem {
	uint16_t id;          /**< head (split) / buffer id (packed): give it back to vhk_vq_push() */
	uint16_t reserved0;   /**< zero */
	uint32_t iov_max;     /**< in: capacity of iov[] (set before popping) */
	uint32_t out_num;     /**< iov[0 .. out_num): device-readable (the request) */
	uint32_t in_num;      /**< iov[out_num .. out_num + in_num): device-writable (the response) */
	uint64_t out_len;     /**< bytes readable in all */
	uint64_t in_len;      /**< bytes writable in all */
	struct iovec *iov;    /**< in: caller's array of iov_max entries; out: the pieces */
	uint64_t reserved[4]; /**< zero */
};

/**
 * Translate guest address @p addr (a guest physical address; an I/O
 * virtual address once IOMMU support lands) that a request of queue @p qid
 * points to, to a host pointer (rte_vhost_va_from_guest_pa). The lookup
 * runs as a datapath call on the queue, so the memory table cannot be
 * replaced or released under it.
 *
 * @param len  in: bytes wanted (> 0); out: bytes mapped contiguously from
 *             the returned pointer, never more than asked (a range that
 *             crosses a region boundary is clipped there: translate the
 *             rest separately); 0 when NULL is returned.
 * @return the host pointer; NULL if @p addr is not mapped, *@p len is 0,
 *         @p len is NULL, @p vid is stale, or the queue is not ready or in
 *         use by another thread right now (the queue's datapath rule).
 * Lifetime: the pointer is valid until the device's next queue_stop
 * (struct vhk_device_ops) or destroy_device (struct vhk_callbacks): a
 * memory-table change runs them before the old memory goes away. The guest
 * may change the memory at any time: read what you check once.
 * Thread-safety: the queue's datapath rule (file comment).
 */
void *vhk_vq_translate(int vid, uint16_t qid, uint64_t addr, uint64_t *len);

/**
 * Pop the next request the guest made available in queue @p qid. The
 * chain was walked and checked by the library (bounds, loops, indirect
 * tables, every byte mapped); its pieces go to @p elem->iov in order,
 * device-readable first. Each popped request must be completed with
 * vhk_vq_push() (or given back with vhk_vq_unpop()). With inflight
 * tracking, requests to resubmit after a restart come first (file
 * comment).
 *
 * @param elem  iov and iov_max set by the caller; the rest is written.
 * @return 0;
 *         -ENOENT nothing available;
 *         -EAGAIN queue not ready (never started, stopped, disabled,
 *                 broken) or another thread is inside a call on it;
 *         -EIO the guest broke the ring: the queue is now marked broken
 *              (vhk_vq_info::broken) and its error fd signalled; only this
 *              queue is affected;
 *         -E2BIG a valid chain of more pieces than @c iov_max: it is
 *                consumed, @c id (and the lengths) are valid but the
 *                element describes no piece (out_num and in_num are 0; the
 *                array's contents are unspecified): complete it with
 *                vhk_vq_push(len 0);
 *         -ENODEV stale vid; -EINVAL NULL @p elem or iov, iov_max 0, bad
 *         qid; -ENOMEM the per-queue bookkeeping could not be allocated
 *         (first pop on a queue of a new size, or, on a device that offers
 *         VHK_F_LOG_ALL, room for the request's writable pieces): nothing
 *         was consumed, the request is popped again next time. With
 *         inflight tracking, -EIO also when the guest re-posts a request
 *         whose completion was not yet flushed, or makes more descriptors
 *         outstanding than a packed ring holds (the queue is broken).
 * Thread-safety: the queue's datapath rule (file comment).
 */
int vhk_vq_pop(int vid, uint16_t qid, struct vhk_vq_elem *elem);

/**
 * Give back the most recently popped request of queue @p qid unconsumed
 * (e.g. the device is out of resources): the next vhk_vq_pop() returns it
 * again. Only the last pop can be undone, and only while nothing else was
 * popped since.
 * @return 0; -EINVAL @p elem is not the request popped last or it is not in
 *         flight (pushed, or given back already), NULL @p elem, bad qid;
 *         -EAGAIN; -ENODEV.
 * Thread-safety: the queue's datapath rule.
 */
int vhk_vq_unpop(int vid, uint16_t qid, const struct vhk_vq_elem *elem);

/**
 * Complete request @p id of queue @p qid with @p len bytes written into its
 * writable part. The used entry is shadowed until vhk_vq_flush() (if the
 * guest made the device hold more completions than the ring has entries,
 * the shadowed ones are published first). @p len is clamped to the
 * request's writable length (0 for a request popped with -E2BIG).
 *
 * Live migration: on a device that offers VHK_F_LOG_ALL the library
 * remembers each request's writable pieces from its pop, and while the
 * frontend logs dirty pages this call marks the pages of the first
 * @p len writable bytes as written. So write the response before pushing
 * (as the used entry requires anyway), write only those first @p len
 * bytes, and report guest writes outside requests with vhk_vq_log_write().
 * @return 0; -EINVAL @p id is not in flight (never popped, pushed already,
 *         or given back) -- the ring is left untouched; -EAGAIN; -ENODEV.
 * Thread-safety: the queue's datapath rule.
 */
int vhk_vq_push(int vid, uint16_t qid, uint16_t id, uint32_t len);

/**
 * Publish the completions pushed on queue @p qid (the used ring) and
 * interrupt the guest if it asked for it (EVENT_IDX or flags). Call once
 * per batch of pushes.
 * @return the number of completions published (0 if none); -EAGAIN;
 *         -ENODEV; -EINVAL bad qid.
 * Thread-safety: the queue's datapath rule.
 */
int vhk_vq_flush(int vid, uint16_t qid);

/**
 * Tell the library that the application wrote @p len bytes of guest memory
 * at @p addr for queue @p qid outside the element API (rte_vhost_log_write
 * and rte_vhost_log_used_vring in one): while the frontend logs dirty
 * pages (live migration), their pages are marked, now. Requests completed
 * with vhk_vq_push() need no call: their writes are logged by the push.
 * An app that writes rings itself (vhk_vq_get_info) reports its used-ring
 * writes here too (an address inside the ring is logged as the ring's).
 * Call it after the write.
 * @param addr  our address of the first byte written: inside guest memory
 *              (a piece of a popped request, vhk_dev_translate(), the ring)
 * @return 0 (also when nothing is logged at the moment); -EFAULT a byte of
 *         the range is not guest memory; -EINVAL NULL @p addr, @p len 0,
 *         bad qid; -EAGAIN; -ENODEV.
 * Thread-safety: the queue's datapath rule.
 */
int vhk_vq_log_write(int vid, uint16_t qid, const void *addr, size_t len);

/**
 * Number of requests of queue @p qid popped and not yet pushed (nor given
 * back). @return count; -EAGAIN; -ENODEV; -EINVAL bad qid.
 * Thread-safety: the queue's datapath rule.
 */
int vhk_vq_inflight_count(int vid, uint16_t qid);

/**
 * Ring positions of queue @p qid, for apps that parse rings themselves
 * (rte_vhost_get_vring_base). Split: free-running 16-bit indices. Packed:
 * ring position in bits 0..14, wrap counter in bit 15.
 * @param ret_last_avail  next request the device will take
 * @param ret_last_used   next used entry the device will write
 * @return 0; -EAGAIN; -ENODEV; -EINVAL bad qid or NULL pointer.
 * Thread-safety: the queue's datapath rule.
 */
int vhk_vq_get_base(int vid, uint16_t qid, uint16_t *ret_last_avail, uint16_t *ret_last_used);

/**
 * Set the ring positions of started queue @p qid (rte_vhost_set_vring_base),
 * encoded as vhk_vq_get_base() returns them. What is set is what a later
 * GET_VRING_BASE answers the frontend. Packed: each position must be below
 * the ring size. Split: indices are free-running, so any values whose
 * distance (last_avail - last_used, modulo 2^16) is at most the ring size.
 * @return 0; -EINVAL out of range, bad qid; -EBUSY requests popped through
 *         vhk_vq_pop() are in flight or completions are not flushed;
 *         -ENOTSUP the queue does inflight tracking (its positions come
 *         from the region at the next start); -EAGAIN; -ENODEV.
 * Thread-safety: the queue's datapath rule.
 */
int vhk_vq_set_base(int vid, uint16_t qid, uint16_t last_avail, uint16_t last_used);

#ifdef __cplusplus
}
#endif
#endif
