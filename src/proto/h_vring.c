/* SPDX-License-Identifier: MIT */
/*
 * Vring messages and the ring / device lifecycle ("Ring states" in the
 * spec): rings start stopped and disabled; SET_VRING_KICK (fd or NOFD)
 * starts a ring once it has a size, addresses and a memory table;
 * GET_VRING_BASE stops it; SET_VRING_ENABLE toggles enabled. A ring is up
 * for the device when started and enabled: ops.queue_start, then (device
 * running) vring_state_changed(q, 1). The device runs (new_device) once its
 * first max(1, min_queues) rings are up and, with PROTOCOL_F_STATUS,
 * DRIVER_OK is set.
 *
 * conn_settle() compares what the flags ask for with what the device was
 * told and closes the gap step by step. A device op that answers
 * VHK_OP_PENDING stops it; the op's completion runs it again.
 */
#include <errno.h>

#include "proto/conn.h"
#include "util/fd.h"
#include "util/log.h"

/* What the flags of @r ask for: processed by the device or not. */
static bool ring_wants_up(const struct ring *r)
{
	return r->kicked && r->vq_started && r->enabled && !r->failed;
}

/* Set the vq's enabled flag with the datapath held off. */
static void vq_enable_quiesced(struct vq *vq, bool enabled)
{
	vq_quiesce(vq);
	vq_set_enabled(vq, enabled);
	vq_unquiesce(vq);
}

/* The vq of ring @q, allocated on first use with the ring's enable state. */
static struct vq *ring_vq(struct conn *c, uint32_t q)
{
	struct vq *vq = vdev_vq(c->dev, q);

	if (vq)
		return vq;
	vq = vdev_vq_get_or_alloc(c->dev, q);
	if (vq && c->rings[q].enabled)
		vq_enable_quiesced(vq, true);
	return vq;
}

/* Tell the app about ring @q if the device is running. */
static void notify_ring(struct conn *c, uint32_t q, int enable)
{
	if (c->dev->running && c->cb.vring_state_changed)
		(void)c->cb.vring_state_changed(c->vid, (uint16_t)q, enable);
}

/* Take ring @q down for the device. False when an op is pending or @c died. */
static bool ring_down(struct conn *c, uint32_t q)
{
	struct ring *r = &c->rings[q];

	r->up = false;
	if (r->notified) {
		r->notified = false;
		notify_ring(c, q, 0);
		if (c->dead)
			return false;
	}
	if (c->dev->ops.queue_stop) {
		conn_op_begin(c);
		int rc = conn_op_result(c, c->dev->ops.queue_stop(c->vid, (uint16_t)q));
		if (rc < 0)
			log_warn("vid %d: queue_stop(%u) failed: %d", c->vid, q, rc);
	}
	return !c->dead && c->ops_outstanding == 0;
}

/* Bring ring @q up for the device. False when an op is pending or @c died. */
static bool ring_up(struct conn *c, uint32_t q)
{
	struct ring *r = &c->rings[q];

	r->up = true;
	if (c->dev->ops.queue_start) {
		conn_op_begin(c);
		int rc = conn_op_result(c, c->dev->ops.queue_start(c->vid, (uint16_t)q));
		if (rc < 0)
			conn_ring_start_failed(c, q, rc);
		else if (c->ops_outstanding)
			c->op_start_ring = (int)q; /* its completion may still fail it */
	}
	return !c->dead && c->ops_outstanding == 0;
}

void conn_ring_start_failed(struct conn *c, uint32_t q, int rc)
{
	log_warn("vid %d: queue_start(%u) failed: %d", c->vid, q, rc);
	c->rings[q].up = false;
	c->rings[q].failed = true;
	if (!c->ops_err)
		c->ops_err = rc; /* NACK the message that started the ring */
}

/* Make the vq match the ring flags: vq_stop() or vq_start() as needed. */
static void sync_vq(struct conn *c, uint32_t q)
{
	struct ring *r = &c->rings[q];
	struct vq *vq = vdev_vq(c->dev, q);

	if (!vq)
		return;
	if (!r->kicked && r->vq_started) {
		vq_quiesce(vq);
		vq_stop(vq);
		vq_unquiesce(vq);
		r->vq_started = false;
	} else if (r->kicked && !r->vq_started && !r->failed && c->dev->mem) {
		vq_quiesce(vq);
		vq_set_enabled(vq, r->enabled);
		int rc = vq_start(vq, c->dev->mem, c->dev->features);
		vq_unquiesce(vq);
		if (rc == 0) {
			r->vq_started = true;
		} else {
			log_err_rl("vid %d: vring %u cannot start: %d", c->vid, q, rc);
			r->failed = true;
		}
	}
}

/* The device's minimum rings are up (and the driver said DRIVER_OK). */
static bool device_ready(const struct conn *c)
{
	uint32_t need = c->dev->ops.min_queues ? c->dev->ops.min_queues : 1;

	if (need > conn_nvrings(c))
		need = conn_nvrings(c);
	for (uint32_t q = 0; q < need; q++)
		if (!c->rings[q].up)
			return false;
	if ((c->dev->protocol_features & (1ull << VHK_PF_STATUS)) &&
	    !(c->dev->status & VIRTIO_STATUS_DRIVER_OK))
		return false;
	return true;
}

/* new_device, then vring_state_changed(1) for every up ring. */
static bool device_start(struct conn *c)
{
	if (!c->dev->running && device_ready(c)) {
		c->dev->running = true;
		int rc = c->cb.new_device ? c->cb.new_device(c->vid) : 0;
		if (c->dead)
			return false;
		if (rc < 0) {
			c->dev->running = false;
			conn_close(c, "new_device refused the device");
			return false;
		}
	}
	if (!c->dev->running)
		return true;
	for (uint32_t q = 0; q < conn_nvrings(c); q++) {
		if (c->rings[q].up && !c->rings[q].notified) {
			c->rings[q].notified = true;
			notify_ring(c, q, 1);
			if (c->dead)
				return false;
		}
	}
	return true;
}

bool conn_settle(struct conn *c)
{
	uint32_t nv = conn_nvrings(c);

	if (c->dead || c->ops_outstanding)
		return false;
	for (uint32_t q = 0; q < nv; q++)
		if (c->rings[q].up && !ring_wants_up(&c->rings[q]) && !ring_down(c, q))
			return false;
	if (c->destroy_req) {
		c->destroy_req = false;
		conn_destroy_device(c);
		if (c->dead)
			return false;
	}
	for (uint32_t q = 0; q < nv; q++)
		sync_vq(c, q);
	for (uint32_t q = 0; q < nv; q++)
		if (!c->rings[q].up && ring_wants_up(&c->rings[q]) && !ring_up(c, q))
			return false;
	return device_start(c);
}

void conn_destroy_device(struct conn *c)
{
	if (!c->dev->running)
		return;
	c->dev->running = false;
	for (uint32_t q = 0; q < VHK_MAX_QUEUES; q++)
		c->rings[q].notified = false;
	if (c->cb.destroy_device)
		c->cb.destroy_device(c->vid);
}

void conn_rings_teardown(struct conn *c)
{
	conn_destroy_device(c);
	for (uint32_t q = 0; q < conn_nvrings(c); q++) {
		struct ring *r = &c->rings[q];
		if (!r->up)
			continue;
		r->up = false;
		if (c->dev->ops.queue_stop &&
		    c->dev->ops.queue_stop(c->vid, (uint16_t)q) == VHK_OP_PENDING)
			log_warn("vid %d: queue_stop(%u) pending at close", c->vid, q);
	}
	c->ops_outstanding = 0;
}

void conn_stop_all_rings(struct conn *c, bool disable)
{
	for (uint32_t q = 0; q < conn_nvrings(c); q++) {
		struct ring *r = &c->rings[q];
		struct vq *vq = vdev_vq(c->dev, q);
		r->kicked = false;
		r->failed = false;
		if (disable) {
			r->enabled = false;
			if (vq)
				vq_enable_quiesced(vq, false);
		}
	}
	c->destroy_req = true;
}

/* Without VHOST_USER_F_PROTOCOL_FEATURES every ring is enabled at once. */
void conn_enable_all_rings(struct conn *c)
{
	for (uint32_t q = 0; q < conn_nvrings(c); q++) {
		struct vq *vq = vdev_vq(c->dev, q);
		c->rings[q].enabled = true;
		if (vq)
			vq_enable_quiesced(vq, true);
	}
}

/* ---- handlers (the dispatcher has checked size and index) ---- */

int h_set_vring_num(struct conn *c, struct msg_ctx *m)
{
	uint32_t q = m->msg->payload.state.index;
	struct vq *vq = ring_vq(c, q);

	if (!vq)
		return -ENOMEM;
	vq_quiesce(vq);
	int rc = vq_set_num(vq, m->msg->payload.state.num);
	vq_unquiesce(vq);
	c->rings[q].failed = false;
	return rc;
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
	struct vq *vq = ring_vq(c, a->index);

	if (!vq)
		return -ENOMEM;
	vq_quiesce(vq);
	int rc = vq_set_addr(vq, &va);
	vq_unquiesce(vq);
	c->rings[a->index].failed = false;
	return rc;
}

int h_set_vring_base(struct conn *c, struct msg_ctx *m)
{
	uint32_t q = m->msg->payload.state.index;
	struct vq *vq = ring_vq(c, q);

	if (!vq)
		return -ENOMEM;
	vq_quiesce(vq);
	int rc = vq_set_base(vq, m->msg->payload.state.num);
	vq_unquiesce(vq);
	c->rings[q].failed = false;
	return rc;
}

/* GET_VRING_BASE, after the ring is down and stopped: reply {index, base}. */
static int finish_get_vring_base(struct conn *c)
{
	struct vq *vq = vdev_vq(c->dev, c->finish_q);

	c->reply.payload.state.index = c->finish_q;
	c->reply.payload.state.num = vq ? vq_get_base(vq) : 0;
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
	c->rings[q].kicked = false;
	c->finish = finish_get_vring_base;
	c->finish_q = q;
	return 0;
}

/* Common part of SET_VRING_KICK/CALL/ERR: the vq and the fd (taken). */
static struct vq *vring_fd_msg(struct conn *c, struct msg_ctx *m, int *fd)
{
	uint64_t v = m->msg->payload.u64;
	struct vq *vq = ring_vq(c, (uint32_t)(v & VHOST_USER_VRING_IDX_MASK));

	*fd = -1;
	if (vq && !(v & VHOST_USER_VRING_NOFD_MASK)) {
		*fd = m->fds[0];
		m->fds[0] = -1;
	}
	return vq;
}

int h_set_vring_kick(struct conn *c, struct msg_ctx *m)
{
	int fd;
	struct vq *vq = vring_fd_msg(c, m, &fd);
	struct ring *r = &c->rings[m->msg->payload.u64 & VHOST_USER_VRING_IDX_MASK];

	if (!vq)
		return -ENOMEM;
	vq_quiesce(vq);
	vq_set_kick_fd(vq, fd);
	vq_unquiesce(vq);
	r->kicked = true;
	r->failed = false;
	return 0;
}

int h_set_vring_call(struct conn *c, struct msg_ctx *m)
{
	int fd;
	struct vq *vq = vring_fd_msg(c, m, &fd);

	if (!vq)
		return -ENOMEM;
	vq_quiesce(vq);
	vq_set_call_fd(vq, fd);
	vq_unquiesce(vq);
	return 0;
}

int h_set_vring_err(struct conn *c, struct msg_ctx *m)
{
	int fd;
	struct vq *vq = vring_fd_msg(c, m, &fd);

	if (!vq)
		return -ENOMEM;
	vq_quiesce(vq);
	vq_set_err_fd(vq, fd);
	vq_unquiesce(vq);
	return 0;
}

int h_set_vring_enable(struct conn *c, struct msg_ctx *m)
{
	uint32_t q = m->msg->payload.state.index;
	uint32_t num = m->msg->payload.state.num;
	struct vq *vq;

	if (num > 1)
		return -EINVAL;
	vq = ring_vq(c, q);
	if (!vq)
		return -ENOMEM;
	c->rings[q].enabled = num == 1;
	vq_enable_quiesced(vq, num == 1);
	return 0;
}
