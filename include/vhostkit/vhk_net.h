/* SPDX-License-Identifier: MIT */
/**
 * @file vhk_net.h
 * The virtio-net device: burst enqueue (host to guest) and dequeue (guest to
 * host) between guest rings and struct vhk_pkt buffers.
 *
 * Queue numbering follows the virtio-net layout (and rte_vhost): vring 2*i
 * is the guest's receive queue of pair i (use vhk_net_enqueue_burst on it),
 * vring 2*i+1 its transmit queue (vhk_net_dequeue_burst).
 *
 * Thread-safety: any number of threads may run bursts, on different vrings.
 * Two threads on the same vring do not corrupt it: the loser of the per-vring
 * ownership flag gets 0 packets. No lock is taken per packet.
 */
#ifndef VHOSTKIT_VHK_NET_H
#define VHOSTKIT_VHK_NET_H

#include <stdint.h>
#include <vhostkit/vhk_dev.h>
#include <vhostkit/vhk_pkt.h>

#ifdef __cplusplus
extern "C" {
#endif

/** virtio-net feature bits (spec numbering). */
#define VHK_NET_F_CSUM 0
#define VHK_NET_F_GUEST_CSUM 1
#define VHK_NET_F_MTU 3
#define VHK_NET_F_MAC 5
#define VHK_NET_F_GUEST_TSO4 7
#define VHK_NET_F_GUEST_TSO6 8
#define VHK_NET_F_GUEST_ECN 9
#define VHK_NET_F_GUEST_UFO 10
#define VHK_NET_F_HOST_TSO4 11
#define VHK_NET_F_HOST_TSO6 12
#define VHK_NET_F_HOST_ECN 13
#define VHK_NET_F_HOST_UFO 14
#define VHK_NET_F_MRG_RXBUF 15
#define VHK_NET_F_STATUS 16
#define VHK_NET_F_CTRL_VQ 17
#define VHK_NET_F_GUEST_ANNOUNCE 21
#define VHK_NET_F_MQ 22

/** Largest number of queue pairs (two virtqueues each, VHK_MAX_QUEUES in all). */
#define VHK_NET_MAX_QUEUE_PAIRS (VHK_MAX_QUEUES / 2)

/** The feature set vhk_net_attach() offers. */
#define VHK_NET_DEFAULT_FEATURES                                                              \
	((1ull << VHK_NET_F_CSUM) | (1ull << VHK_NET_F_GUEST_CSUM) | (1ull << VHK_NET_F_MTU) |  \
	 (1ull << VHK_NET_F_GUEST_TSO4) | (1ull << VHK_NET_F_GUEST_TSO6) |                     \
	 (1ull << VHK_NET_F_GUEST_UFO) | (1ull << VHK_NET_F_HOST_TSO4) |                       \
	 (1ull << VHK_NET_F_HOST_TSO6) | (1ull << VHK_NET_F_HOST_UFO) |                        \
	 (1ull << VHK_NET_F_MRG_RXBUF) | (1ull << VHK_NET_F_MQ) |                              \
	 (1ull << 27 /* ANY_LAYOUT */) |                                                      \
	 (1ull << 28 /* INDIRECT_DESC */) | (1ull << 29 /* EVENT_IDX */) |                     \
	 (1ull << 30 /* PROTOCOL_FEATURES */) | (1ull << 32 /* VERSION_1 */) |                 \
	 (1ull << 34 /* RING_PACKED */) | (1ull << 35 /* IN_ORDER */) |                      \
	 (1ull << 26 /* LOG_ALL: live migration, every guest write logged */))

/**
 * Make @p path (already vhk_socket_register()ed, not started) serve a virtio-net
 * device: installs the net device operations, offers
 * VHK_NET_DEFAULT_FEATURES and the MQ, RARP, NET_MTU and STATUS protocol features.
 * Adjust the offer afterwards with vhk_socket_disable_features() and friends.
 * INFLIGHT_SHMFD is taken out of the offer: inflight tracking is done by the
 * element API of vhk_vq.h, which the net bursts do not use (and a network
 * device does not resubmit packets after a restart); do not add it back.
 * @return 0; -ENOENT unknown path; -EBUSY started.
 */
int vhk_net_attach(const char *path);

/**
 * Offer @p pairs queue pairs (1..VHK_NET_MAX_QUEUE_PAIRS) on @p path: the
 * socket's maximum number of queues becomes 2 * @p pairs, and GET_QUEUE_NUM
 * answers @p pairs (virtio-net counts pairs). Before vhk_socket_start().
 * @return 0; -ENOENT unknown path; -EINVAL out of range; -EBUSY started.
 */
int vhk_net_set_queue_pairs(const char *path, uint32_t pairs);

/**
 * MTU the frontend set with NET_SET_MTU (the guest's host_mtu).
 * @return 0; -ENODEV stale vid; -EINVAL NULL; -ENOENT never set.
 */
int vhk_net_get_mtu(int vid, uint16_t *ret_mtu);

/** Read the number of queue pairs offered on @p path. @return 0; -ENOENT; -EINVAL NULL. */
int vhk_net_get_queue_pairs(const char *path, uint32_t *ret_pairs);

/**
 * Copy @p count packets into the guest's receive vring @p qid (even).
 * Packets are not freed: the caller still owns them.
 * Offload metadata is written to the virtio-net header; with MRG_RXBUF a
 * packet may use several descriptor chains. The guest is notified once per
 * burst if it asked for it.
 * @return the number of packets enqueued (0..count); packets that do not
 *         fit (ring full) are not counted and stay with the caller.
 */
uint16_t vhk_net_enqueue_burst(int vid, uint16_t qid, struct vhk_pkt **pkts, uint16_t count);

/**
 * Take up to @p count packets from the guest's transmit vring @p qid (odd)
 * into buffers from @p pool (chained when larger than one buffer).
 * Offload metadata is taken from the virtio-net header (validated: bad
 * headers drop the packet and count an error). After SEND_RARP, the first
 * packet returned is a RARP announcement for the guest's MAC.
 * @return the number of packets stored in @p pkts; the caller owns them.
 */
uint16_t vhk_net_dequeue_burst(int vid, uint16_t qid, struct vhk_pool *pool,
			       struct vhk_pkt **pkts, uint16_t count);

/** Per-vring statistics. */
struct vhk_net_stats {
	uint64_t packets; /**< packets moved */
	uint64_t bytes;   /**< bytes moved (without virtio-net header) */
	uint64_t drops;   /**< enqueue: packets offered but not enqueued (ring full) */
	uint64_t errors;  /**< malformed chains or headers (the packet is dropped) */
	uint64_t kicks;   /**< guest kicks consumed by vhk_vq_wait_kick() */
	uint64_t calls;   /**< guest interrupts written to the call fd */
	uint64_t reserved[6]; /**< zero */
};

/**
 * Read the statistics of vring @p qid. Values are updated by the datapath
 * thread without locks; a reader on another thread sees each counter
 * atomically but not all of them at one instant.
 * @return 0; -ENODEV; -EINVAL bad qid or NULL.
 */
int vhk_net_get_stats(int vid, uint16_t qid, struct vhk_net_stats *stats);

/** Zero the statistics of vring @p qid. @return 0; -ENODEV; -EINVAL. */
int vhk_net_reset_stats(int vid, uint16_t qid);

#ifdef __cplusplus
}
#endif
#endif
