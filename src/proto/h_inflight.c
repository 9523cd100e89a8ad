/* SPDX-License-Identifier: MIT */
/*
 * GET_INFLIGHT_FD and SET_INFLIGHT_FD (gated by INFLIGHT_SHMFD). The
 * dispatcher has checked the payload size (24 bytes: the struct is not
 * packed in QEMU, DPDK or libvhost-user) and the fd count; the core checks
 * the values and owns the region (core/inflight.c).
 */
#include "proto/conn.h"

int h_get_inflight_fd(struct conn *c, struct msg_ctx *m)
{
	const struct vhost_user_inflight *in = &m->msg->payload.inflight;
	struct vhost_user_inflight *out = &m->reply->payload.inflight;
	uint64_t size = 0;
	int fd = -1, rc;

	rc = core_dev_get_inflight(c->dev, in->num_queues, in->queue_size, &fd, &size);
	if (rc < 0)
		return rc;
	out->mmap_size = size;
	out->mmap_offset = 0;
	out->num_queues = in->num_queues;
	out->queue_size = in->queue_size;
	m->reply->hdr.size = sizeof(*out);
	c->reply_fd = fd; /* goes out with the reply */
	return 0;
}

int h_set_inflight_fd(struct conn *c, struct msg_ctx *m)
{
	const struct vhost_user_inflight *in = &m->msg->payload.inflight;
	int fd = m->fds[0];

	m->fds[0] = -1;
	return core_dev_set_inflight(c->dev, fd, in->mmap_size, in->mmap_offset, in->num_queues,
				     in->queue_size);
}
