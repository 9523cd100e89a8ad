/* SPDX-License-Identifier: MIT */
/*
 * Negotiation and device-wide state messages: features, protocol
 * features, owner, queue count and virtio status. Sizes, gating and fd
 * counts were checked by the dispatcher; these check values.
 */
#include <errno.h>

#include "proto/conn.h"
#include "util/log.h"

int h_get_features(struct conn *c, struct msg_ctx *m)
{
	m->reply->payload.u64 = c->offered;
	return 0;
}

/* True when any vring of @d has been started (and not stopped since). */
static bool any_ring_started(struct vdev *d)
{
	for (uint32_t i = 0; i < VHK_MAX_QUEUES; i++) {
		const struct vq *vq = vdev_vq(d, i);
		if (vq && vq->started)
			return true;
	}
	return false;
}

int h_set_features(struct conn *c, struct msg_ctx *m)
{
	uint64_t f = m->msg->payload.u64;

	if (f & ~c->offered)
		return -ENOTSUP;
	/*
	 * The packed layout exists only for VIRTIO 1.x devices; a legacy
	 * driver's feature word has 32 bits and cannot even carry bit 34.
	 */
	if ((f & (1ull << VHK_F_RING_PACKED)) && !(f & (1ull << VHK_F_VERSION_1))) {
		log_warn("SET_FEATURES 0x%llx: RING_PACKED without VERSION_1 refused",
			 (unsigned long long)f);
		return -EINVAL;
	}
	/*
	 * A started ring keeps the layout it was started with; switching the
	 * format under it would leave the app told one format while the ring
	 * runs the other. The frontend stops the rings (GET_VRING_BASE) first.
	 */
	if (((f ^ c->dev->features) & (1ull << VHK_F_RING_PACKED)) && any_ring_started(c->dev)) {
		log_warn("SET_FEATURES: ring format change with started rings refused");
		return -EBUSY;
	}
	/* A running device must be re-announced with its new features. */
	if (c->dev->running && f != c->dev->features)
		conn_destroy_device(c);
	if (c->dead)
		return -ENOTCONN;
	vdev_set_features(c->dev, f);
	if (!conn_pf_negotiated(c))
		conn_enable_all_rings(c);
	if (c->cb.features_changed)
		return c->cb.features_changed(c->vid, f);
	return 0;
}

int h_get_protocol_features(struct conn *c, struct msg_ctx *m)
{
	m->reply->payload.u64 = c->offered_pf;
	return 0;
}

int h_set_protocol_features(struct conn *c, struct msg_ctx *m)
{
	uint64_t pf = m->msg->payload.u64;

	if (pf & ~c->offered_pf)
		return -ENOTSUP;
	c->dev->protocol_features = pf;
	c->pf_handshake = true;
	return 0;
}

int h_set_owner(struct conn *c, struct msg_ctx *m)
{
	/* One connection is one session: nothing to take over. */
	return 0;
}

int h_reset_owner(struct conn *c, struct msg_ctx *m)
{
	/* Deprecated: stop and disable every ring, keep the connection state. */
	conn_stop_all_rings(c, true);
	return 0;
}

int h_get_queue_num(struct conn *c, struct msg_ctx *m)
{
	uint32_t unit = c->dev->ops.queue_num_unit ? c->dev->ops.queue_num_unit : 1;

	m->reply->payload.u64 = c->max_queues / unit;
	return 0;
}

int h_set_status(struct conn *c, struct msg_ctx *m)
{
	uint64_t v = m->msg->payload.u64;

	if (v > UINT8_MAX)
		return -EINVAL;
	/* Writing 0 resets the device: stop every ring. */
	if (v == 0 && c->dev->status != 0)
		conn_stop_all_rings(c, false);
	c->dev->status = (uint8_t)v;
	return 0;
}

int h_get_status(struct conn *c, struct msg_ctx *m)
{
	m->reply->payload.u64 = c->dev->status;
	return 0;
}
