/* SPDX-License-Identifier: MIT */
/*
 * Device-routed messages: SEND_RARP, NET_SET_MTU, GET/SET_CONFIG, and the
 * backend request channel fd. The device sees them only through struct
 * vhk_device_ops; a missing op rejects the message.
 */
#include <errno.h>
#include <string.h>

#include "proto/conn.h"
#include "util/fd.h"

#define MTU_MIN 68u
#define MTU_MAX 65535u

/* Call a device op that may answer VHK_OP_PENDING. */
#define DEVICE_OP(c, call) (conn_op_begin(c), conn_op_result((c), (call)))

int h_send_rarp(struct conn *c, struct msg_ctx *m)
{
	uint8_t mac[6];

	if (!c->dev->ops.send_rarp)
		return -ENOTSUP;
	memcpy(mac, m->msg->payload.bytes, sizeof(mac));
	return DEVICE_OP(c, c->dev->ops.send_rarp(c->vid, mac));
}

int h_net_set_mtu(struct conn *c, struct msg_ctx *m)
{
	uint64_t mtu = m->msg->payload.u64;
	int rc;

	if (mtu < MTU_MIN || mtu > MTU_MAX)
		return -EINVAL;
	if (!c->dev->ops.set_mtu)
		return -ENOTSUP;
	rc = DEVICE_OP(c, c->dev->ops.set_mtu(c->vid, (uint16_t)mtu));
	if (rc < 0)
		return rc;
	c->dev->mtu = (uint16_t)mtu;
	c->dev->mtu_set = true;
	return 0;
}

int h_set_backend_req_fd(struct conn *c, struct msg_ctx *m)
{
	fd_close(&c->backend_fd);
	c->backend_fd = m->fds[0];
	m->fds[0] = -1;
	return 0;
}

int msg_size_config(const struct vhost_user_msg *msg)
{
	if (msg->hdr.size < VHOST_USER_CONFIG_HDR_SIZE)
		return -EINVAL;
	if (msg->payload.config.size > VHOST_USER_MAX_CONFIG_SIZE)
		return -EINVAL;
	if (msg->hdr.size != VHOST_USER_CONFIG_HDR_SIZE + msg->payload.config.size)
		return -EINVAL;
	return 0;
}

/* Offset, size and flags of a config message against the device's space. */
static int check_config(const struct conn *c, const struct vhost_user_config *cfg)
{
	uint32_t space = c->dev->ops.config_size;

	if (cfg->flags > VHOST_SET_CONFIG_TYPE_MIGRATION)
		return -EINVAL;
	if (cfg->offset > space || cfg->size > space - cfg->offset)
		return -EINVAL;
	return 0;
}

int h_get_config(struct conn *c, struct msg_ctx *m)
{
	const struct vhost_user_config *cfg = &m->msg->payload.config;
	struct vhost_user_config *out = &m->reply->payload.config;
	uint32_t offset = cfg->offset, size = cfg->size;
	int rc;

	if (!c->dev->ops.get_config)
		return -ENOTSUP;
	rc = check_config(c, cfg);
	if (rc < 0)
		return rc;
	out->offset = offset;
	out->size = size;
	out->flags = cfg->flags;
	m->reply->hdr.size = VHOST_USER_CONFIG_HDR_SIZE + size;
	return DEVICE_OP(c, c->dev->ops.get_config(c->vid, out->region, offset, size));
}

int h_set_config(struct conn *c, struct msg_ctx *m)
{
	const struct vhost_user_config *cfg = &m->msg->payload.config;
	int rc;

	if (!c->dev->ops.set_config)
		return -ENOTSUP;
	rc = check_config(c, cfg);
	if (rc < 0)
		return rc;
	return DEVICE_OP(
	    c, c->dev->ops.set_config(c->vid, cfg->region, cfg->offset, cfg->size, cfg->flags));
}
