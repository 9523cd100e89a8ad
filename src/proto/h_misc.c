/* SPDX-License-Identifier: MIT */
/*
 * Device-routed messages: GET/SET_CONFIG (the device's config space), the
 * messages the core does not implement (offered to the device's
 * handle_msg: SEND_RARP, NET_SET_MTU, unknown codes), and the backend
 * request channel fd.
 */
#include <errno.h>
#include <string.h>

#include "proto/conn.h"
#include "util/fd.h"

int h_device(struct conn *c, struct msg_ctx *m)
{
	struct vhk_msg dm = {
	    .request = m->msg->hdr.request,
	    .flags = m->msg->hdr.flags,
	    .size = m->msg->hdr.size,
	    .nfds = (uint32_t)m->nfds,
	    .payload = &m->msg->payload,
	    .fds = m->fds,
	    .reply = &m->reply->payload,
	};
	int rc = core_dev_msg(c->dev, &dm);

	if (rc == VHK_MSG_NOT_HANDLED)
		return -ENOSYS;
	if (rc >= 0)
		m->reply->hdr.size = dm.reply_size > VHK_MSG_REPLY_MAX ? 0 : dm.reply_size;
	return rc;
}

int h_set_backend_req_fd(struct conn *c, struct msg_ctx *m)
{
	int fd = m->fds[0];

	m->fds[0] = -1;
	conn_backend_set(c, fd);
	return c->backend ? 0 : -ENOMEM;
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

int h_get_config(struct conn *c, struct msg_ctx *m)
{
	const struct vhost_user_config *cfg = &m->msg->payload.config;
	struct vhost_user_config *out = &m->reply->payload.config;
	uint32_t offset = cfg->offset, size = cfg->size;

	out->offset = offset;
	out->size = size;
	out->flags = cfg->flags;
	m->reply->hdr.size = VHOST_USER_CONFIG_HDR_SIZE + size;
	return core_dev_get_config(c->dev, out->region, offset, size, cfg->flags);
}

int h_set_config(struct conn *c, struct msg_ctx *m)
{
	const struct vhost_user_config *cfg = &m->msg->payload.config;

	return core_dev_set_config(c->dev, cfg->region, cfg->offset, cfg->size, cfg->flags);
}
