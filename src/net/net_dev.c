/* SPDX-License-Identifier: MIT */
/*
 * The virtio-net device: its operations table (registered on a socket with
 * vhk_net_attach()), per-device state (pending RARP announcement) and the
 * per-vring queries (statistics, available entries).
 *
 * Per-device state lives in a static array indexed by the device slot. Like
 * the vdev slots themselves it is never freed, so a datapath thread racing
 * with device teardown reads valid (if stale) memory, never freed memory.
 */
#include <errno.h>
#include <string.h>

#include "net/net.h"
#include "core/vdev.h"
#include "vq/vq.h"

#define NET_MTU_MIN 68u
#define NET_MTU_MAX 65535u

static struct net_priv g_net_priv[VDEV_MAX_SLOTS];

struct net_priv *net_priv_of_slot(uint32_t slot)
{
	return &g_net_priv[index_nospec(slot, VDEV_MAX_SLOTS)];
}

/* dev_init: reset the per-device state and hang it on the vdev. */
static int net_dev_init(int vid)
{
	struct vdev *d = vdev_get(vid);

	if (!d)
		return -ENODEV;
	struct net_priv *np = net_priv_of_slot(d->slot);
	atomic_store_explicit(&np->rarp_pending, false, memory_order_relaxed);
	memset(np->mac, 0, sizeof(np->mac));
	store_relaxed(&np->mtu, 0);
	store_release(&d->dev_priv, np);
	return 0;
}

/* dev_fini: forget any pending announcement (the state itself stays). */
static void net_dev_fini(int vid)
{
	struct vdev *d = vdev_get(vid);

	if (!d)
		return;
	atomic_store_explicit(&net_priv_of_slot(d->slot)->rarp_pending, false,
			      memory_order_relaxed);
	store_relaxed(&d->dev_priv, NULL); /* vhk_net_get_mtu() reads it from any thread */
}

/* vhost-user requests of the net device (spec numbering): SEND_RARP, NET_SET_MTU. */
#define MSG_SEND_RARP 19u
#define MSG_NET_SET_MTU 20u

/* SEND_RARP: remember the MAC (first 6 bytes); the next dequeue burst announces it. */
static int net_send_rarp(struct net_priv *np, const struct vhk_msg *msg)
{
	if (msg->size < 6)
		return -EINVAL;
	memcpy(np->mac, msg->payload, sizeof(np->mac));
	/* Pairs with the acquire exchange in the dequeue path. */
	atomic_store_explicit(&np->rarp_pending, true, memory_order_release);
	return 0;
}

/* NET_SET_MTU: 68 (the IPv4 minimum) up to 65535 (the u16 range). */
static int net_set_mtu(struct net_priv *np, const struct vhk_msg *msg)
{
	uint64_t mtu;

	if (msg->size != sizeof(mtu))
		return -EINVAL;
	memcpy(&mtu, msg->payload, sizeof(mtu));
	if (mtu < NET_MTU_MIN || mtu > NET_MTU_MAX)
		return -EINVAL;
	store_relaxed(&np->mtu, (uint16_t)mtu);
	return 0;
}

/* The device-message hook: the net requests; anything else is not ours. */
static int net_handle_msg(int vid, struct vhk_msg *msg)
{
	struct vdev *d = vdev_get(vid);

	if (!d)
		return -ENODEV;
	struct net_priv *np = net_priv_of_slot(d->slot);
	if (msg->request == MSG_SEND_RARP)
		return net_send_rarp(np, msg);
	if (msg->request == MSG_NET_SET_MTU)
		return net_set_mtu(np, msg);
	return VHK_MSG_NOT_HANDLED;
}

/* queue_start / queue_stop: the datapath is synchronous, nothing to do. */
static int net_queue_start(int vid, uint16_t qid)
{
	return vdev_get(vid) ? 0 : -ENODEV;
}

static int net_queue_stop(int vid, uint16_t qid)
{
	return 0;
}

static const struct vhk_device_ops g_net_ops = {
    .name = "net",
    .min_queues = 2,
    .queue_num_unit = 2,
    .config_size = 0,
    .queue_start = net_queue_start,
    .queue_stop = net_queue_stop,
    .handle_msg = net_handle_msg,
    .dev_init = net_dev_init,
    .dev_fini = net_dev_fini,
};

const struct vhk_device_ops *net_device_ops(void)
{
	return &g_net_ops;
}

VHK_EXPORT int vhk_net_attach(const char *path)
{
	/* QEMU's vhost-user net sends DRIVER_OK (SET_STATUS) for its last queue pair. */
	const uint64_t pf = (1ull << VHK_PF_MQ) | (1ull << VHK_PF_RARP) | (1ull << VHK_PF_NET_MTU) |
			    (1ull << VHK_PF_STATUS);
	uint64_t cur = 0;
	int ret;

	if (!path)
		return -EINVAL;
	ret = vhk_socket_set_device_ops(path, &g_net_ops);
	if (ret < 0)
		return ret;
	ret = vhk_socket_enable_features(path, VHK_NET_DEFAULT_FEATURES);
	if (ret < 0)
		return ret;
	ret = vhk_socket_get_protocol_features(path, &cur);
	if (ret < 0)
		return ret;
	/* Inflight tracking belongs to the element API, which net does not use. */
	return vhk_socket_set_protocol_features(path,
						(cur | pf) & ~(1ull << VHK_PF_INFLIGHT_SHMFD));
}

VHK_EXPORT int vhk_net_get_mtu(int vid, uint16_t *ret_mtu)
{
	struct vdev *d = vdev_get(vid);
	uint16_t mtu;

	if (!d)
		return -ENODEV;
	if (!ret_mtu)
		return -EINVAL;
	const struct net_priv *np = net_priv_of_slot(d->slot);
	if (load_acquire(&d->dev_priv) != np)
		return -ENODEV; /* not a net device */
	mtu = load_relaxed(&np->mtu);
	if (!mtu)
		return -ENOENT;
	*ret_mtu = mtu;
	return 0;
}

VHK_EXPORT int vhk_net_set_queue_pairs(const char *path, uint32_t pairs)
{
	if (pairs < 1 || pairs > VHK_NET_MAX_QUEUE_PAIRS) {
		uint32_t q;
		int rc = vhk_socket_get_max_queues(path, &q);
		return rc < 0 ? rc : -EINVAL;
	}
	return vhk_socket_set_max_queues(path, 2 * pairs);
}

VHK_EXPORT int vhk_net_get_queue_pairs(const char *path, uint32_t *ret_pairs)
{
	uint32_t q;
	int rc;

	if (!ret_pairs)
		return -EINVAL;
	rc = vhk_socket_get_max_queues(path, &q);
	if (rc == 0)
		*ret_pairs = q / 2;
	return rc;
}

/* Look up vring @qid of @vid; -ENODEV / -EINVAL. *ret_vq may be NULL (never configured). */
static int lookup_vq(int vid, uint16_t qid, struct vq **ret_vq)
{
	struct vdev *d = vdev_get(vid);

	if (!d)
		return -ENODEV;
	if (qid >= VHK_MAX_QUEUES)
		return -EINVAL;
	*ret_vq = vdev_vq(d, qid);
	return 0;
}

VHK_EXPORT int vhk_net_get_stats(int vid, uint16_t qid, struct vhk_net_stats *stats)
{
	struct vq *vq;
	int ret;

	if (!stats)
		return -EINVAL;
	ret = lookup_vq(vid, qid, &vq);
	if (ret < 0)
		return ret;
	memset(stats, 0, sizeof(*stats));
	if (!vq)
		return 0;
	stats->packets = load_relaxed(&vq->stats.packets);
	stats->bytes = load_relaxed(&vq->stats.bytes);
	stats->drops = load_relaxed(&vq->stats.drops);
	stats->errors = load_relaxed(&vq->stats.errors);
	stats->kicks = load_relaxed(&vq->stats.kicks);
	stats->calls = load_relaxed(&vq->stats.calls);
	return 0;
}

VHK_EXPORT int vhk_net_reset_stats(int vid, uint16_t qid)
{
	struct vq *vq;
	int ret = lookup_vq(vid, qid, &vq);

	if (ret < 0 || !vq)
		return ret;
	store_relaxed(&vq->stats.packets, 0);
	store_relaxed(&vq->stats.bytes, 0);
	store_relaxed(&vq->stats.drops, 0);
	store_relaxed(&vq->stats.errors, 0);
	store_relaxed(&vq->stats.kicks, 0);
	store_relaxed(&vq->stats.calls, 0);
	return 0;
}
