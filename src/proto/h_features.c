/* SPDX-License-Identifier: MIT */
/*
 * Negotiation and device-wide state messages: features, protocol
 * features, owner, queue count and virtio status. Sizes, gating and fd
 * counts were checked by the dispatcher; the core checks values.
 */
#include <errno.h>

#include "proto/conn.h"

int h_get_features(struct conn *c, struct msg_ctx *m)
{
	m->reply->payload.u64 = c->dev->offered;
	return 0;
}

int h_set_features(struct conn *c, struct msg_ctx *m)
{
	return core_dev_set_features(c->dev, m->msg->payload.u64);
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
	/*
	 * In-band notifications need the backend channel and acks; the spec
	 * says the backend has no other way to refuse them than to close.
	 */
	const uint64_t inband_needs = (1ull << VHK_PF_BACKEND_REQ) | (1ull << VHK_PF_REPLY_ACK);
	if ((pf & (1ull << VHK_PF_INBAND_NOTIFICATIONS)) && (pf & inband_needs) != inband_needs) {
		conn_close(c, "INBAND_NOTIFICATIONS without BACKEND_REQ and REPLY_ACK");
		return -EPROTO;
	}
	vdev_set_protocol_features(c->dev, pf);
	/*
	 * QEMU (7.2 at least) runs the protocol-feature handshake but does not
	 * echo VHOST_USER_F_PROTOCOL_FEATURES in SET_FEATURES; the handshake
	 * itself is what "negotiated" means for ring enabling and
	 * SET_VRING_ENABLE (as DPDK and libvhost-user treat it).
	 */
	core_dev_set_pf_handshake(c->dev);
	return 0;
}

int h_set_owner(struct conn *c, struct msg_ctx *m)
{
	/* One connection is one session: nothing to take over. */
	return 0;
}

int h_reset_owner(struct conn *c, struct msg_ctx *m)
{
	/* Deprecated: stop and disable every queue, keep the connection state. */
	core_dev_stop_all(c->dev, true);
	return 0;
}

int h_get_queue_num(struct conn *c, struct msg_ctx *m)
{
	uint32_t unit = c->dev->ops.queue_num_unit ? c->dev->ops.queue_num_unit : 1;

	m->reply->payload.u64 = conn_nvrings(c) / unit;
	return 0;
}

int h_set_status(struct conn *c, struct msg_ctx *m)
{
	uint64_t v = m->msg->payload.u64;

	if (v > UINT8_MAX)
		return -EINVAL;
	return core_dev_set_status(c->dev, (uint8_t)v);
}

int h_get_status(struct conn *c, struct msg_ctx *m)
{
	m->reply->payload.u64 = c->dev->status;
	return 0;
}
