/* SPDX-License-Identifier: MIT */
/**
 * @file vhk_vq.h
 * Virtqueues of a device: state, notifications, and (for devices built on
 * the library) the element API that pops requests and pushes completions
 * through the library's own validated ring walkers.
 *
 * Queues are named by (vid, qid); qid < VHK_MAX_QUEUES. Conventions are
 * those of vhk_dev.h: negative errno returns, stale vids give -ENODEV.
 */
#ifndef VHOSTKIT_VHK_VQ_H
#define VHOSTKIT_VHK_VQ_H

#include <stdbool.h>
#include <stdint.h>
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

/** Fill @p info for queue @p qid. @return 0; -ENODEV; -EINVAL bad qid/NULL. */
int vhk_vq_get_info(int vid, uint16_t qid, struct vhk_vq_info *info);

/**
 * Ask the guest to notify (kick) us on new buffers in vring @p qid
 * (interrupt mode), or stop asking (polling). After enabling, re-check the
 * ring before sleeping on the kick fd: buffers may have arrived already.
 * With EVENT_IDX, enabling asks for a kick after the current position, so
 * an interrupt-mode loop calls this again before every sleep (the classic
 * "enable, re-check, sleep" sequence). With notifications disabled under
 * EVENT_IDX the guest may still send one last kick.
 * @return 0; -ENODEV; -EINVAL bad qid; -EAGAIN ring not ready.
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
 * or flags). @return 1 notified; 0 suppressed; -ENODEV; -EINVAL.
 */
int vhk_vq_notify(int vid, uint16_t qid);

/**
 * Number of descriptor chains the guest has made available in vring @p qid
 * and the device has not consumed (rte_vhost_avail_entries).
 * @return count; -ENODEV; -EINVAL bad qid; -EAGAIN ring not ready, or
 *         another thread is running a burst on this queue right now.
 */
int vhk_vq_avail_count(int vid, uint16_t qid);

#ifdef __cplusplus
}
#endif
#endif
