/* SPDX-License-Identifier: MIT */
/*
 * Vring messages. The dispatcher has checked sizes, fd counts and the
 * vring index (< the connection's queue count, masked against
 * speculation); the core applies them (core/config.c) and its lifecycle
 * decides what the device and the app are told (core/lifecycle.c).
 */
#include <errno.h>

#include "proto/conn.h"
#include "util/fd.h"

int h_set_vring_num(struct conn *c, struct msg_ctx *m)
{
	return core_ring_set_num(c->dev, m->msg->payload.state.index, m->msg->payload.state.num);
}

int h_set_vring_addr(struct conn *c, struct msg_ctx *m)
{
	const struct vhost_user_vring_addr *a = &m->msg->payload.addr;
	struct vq_addr va = {
	    .flags = a->flags,
	    .desc = a->desc_user_addr,
	    .avail = a->avail_user_addr,
	    .used = a->used_user_addr,
	    .log = a->log_guest_addr,
	};

	return core_ring_set_addr(c->dev, a->index, &va);
}

int h_set_vring_base(struct conn *c, struct msg_ctx *m)
{
	return core_ring_set_base(c->dev, m->msg->payload.state.index, m->msg->payload.state.num);
}

/* GET_VRING_BASE, once the queue is down and stopped: reply {index, base}. */
static int finish_get_vring_base(struct conn *c)
{
	c->reply.payload.state.index = c->finish_q;
	c->reply.payload.state.num = core_ring_base(c->dev, c->finish_q);
	c->reply.hdr.size = sizeof(struct vhost_user_vring_state);
	return 0;
}

int h_get_vring_base(struct conn *c, struct msg_ctx *m)
{
	uint32_t q = m->msg->payload.state.index;

	/*
	 * num is reserved in the request. DPDK's virtio-user sends whatever its
	 * stack held there, so a non-zero value is ignored (it is never used),
	 * not refused: refusing it breaks a real frontend's clean shutdown.
	 */
	core_ring_stop(c->dev, q);
	c->finish = finish_get_vring_base;
	c->finish_q = q;
	return 0;
}

/*
 * SET_VRING_KICK/CALL/ERR: the vring index and the fd (taken). Without an
 * fd (NOFD) the queue gets none (polling), or with in-band notifications
 * an eventfd of ours that carries them (inband.c).
 */
static int vring_fd_msg(struct conn *c, struct msg_ctx *m, enum inband_kind kind, uint32_t *q,
			int *fd)
{
	uint64_t v = m->msg->payload.u64;

	*q = (uint32_t)(v & VHOST_USER_VRING_IDX_MASK);
	*fd = -1;
	if (!(v & VHOST_USER_VRING_NOFD_MASK)) {
		*fd = m->fds[0];
		m->fds[0] = -1;
		conn_inband_forget(c, *q, kind);
		return 0;
	}
	if (conn_inband(c))
		return conn_inband_fd(c, *q, kind, fd);
	conn_inband_forget(c, *q, kind);
	return 0;
}

int h_set_vring_kick(struct conn *c, struct msg_ctx *m)
{
	uint32_t q;
	int fd, rc = vring_fd_msg(c, m, INBAND_KICK, &q, &fd);

	return rc < 0 ? rc : core_ring_set_kick(c->dev, q, fd);
}

int h_set_vring_call(struct conn *c, struct msg_ctx *m)
{
	uint32_t q;
	int fd, rc = vring_fd_msg(c, m, INBAND_CALL, &q, &fd);

	return rc < 0 ? rc : core_ring_set_call(c->dev, q, fd);
}

int h_set_vring_err(struct conn *c, struct msg_ctx *m)
{
	uint32_t q;
	int fd, rc = vring_fd_msg(c, m, INBAND_ERR, &q, &fd);

	return rc < 0 ? rc : core_ring_set_err(c->dev, q, fd);
}

int h_set_vring_enable(struct conn *c, struct msg_ctx *m)
{
	uint32_t num = m->msg->payload.state.num;

	if (num > 1)
		return -EINVAL;
	return core_ring_enable(c->dev, m->msg->payload.state.index, num == 1);
}
