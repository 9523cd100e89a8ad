/* SPDX-License-Identifier: MIT */
/*
 * Device and queue lifecycle ("Ring states" in the vhost-user spec), keyed
 * by device: queues start stopped and disabled; a kick (fd, or NOFD for
 * polling) starts a queue once it has a size, addresses and a memory
 * table; GET_VRING_BASE stops it; SET_VRING_ENABLE toggles enabled. A queue
 * is up for the device when started and enabled: ops.queue_start, then (if
 * the device runs) vring_state_changed(q, 1). The device runs (new_device)
 * once its first max(1, min_queues) queues are up and, with the STATUS
 * protocol feature, DRIVER_OK is set.
 *
 * core_dev_settle() compares what the flags ask for with what the device
 * was told and closes the gap step by step: queues that must go down go
 * down first (queue_stop), then changes that need them down are applied (a
 * new memory table, new ring addresses), then queues come up. A device op
 * that answers VHK_OP_PENDING stops it; the op's completion (posted to the
 * control loop) continues through the transport's op_done hook.
 *
 * Teardown (core_dev_close) takes every queue down the same way and
 * releases the slot, and so unmaps guest memory, only once every pending
 * operation of the device has completed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "util/fd.h"
#include "util/log.h"

/* Number of queues the device may use. */
static uint32_t nvrings(const struct vdev *d)
{
	return d->max_vrings > VHK_MAX_QUEUES ? VHK_MAX_QUEUES : d->max_vrings;
}

/* What the flags of queue @q ask for: processed by the device or not. */
static bool ring_wants_up(const struct vdev *d, uint32_t q)
{
	const struct vdev_ring *r = &d->rings[q];

	return r->kicked && r->vq_started && r->enabled && !r->failed && !r->addr_pending &&
	       !d->pending_mem;
}

/* Tell the app about queue @q if the device is running. */
static void notify_ring(struct vdev *d, uint32_t q, int enable)
{
	if (d->running && d->cb.vring_state_changed)
		(void)d->cb.vring_state_changed(atomic_load(&d->vid), (uint16_t)q, enable);
}

void core_op_begin(struct vdev *d)
{
	d->ops_outstanding++;
}

int core_op_result(struct vdev *d, int rc)
{
	if (rc == VHK_OP_PENDING)
		return 0; /* stays outstanding until vhk_dev_op_complete() */
	if (d->ops_outstanding)
		d->ops_outstanding--;
	return rc;
}

int core_op_take_error(struct vdev *d)
{
	int rc = d->ops_err;

	d->ops_err = 0;
	return rc;
}

/* queue_start of @q failed (now or on completion): it stays down until reconfigured. */
static void ring_start_failed(struct vdev *d, uint32_t q, int rc)
{
	log_warn("vid %d: queue_start(%u) failed: %d", atomic_load(&d->vid), q, rc);
	d->rings[q].up = false;
	d->rings[q].failed = true;
	if (!d->ops_err)
		d->ops_err = rc; /* NACK the message that started the queue */
}

/* Take queue @q down for the device. False when an op is pending or the device closed. */
static bool ring_down(struct vdev *d, uint32_t q)
{
	struct vdev_ring *r = &d->rings[q];
	int vid = atomic_load(&d->vid);

	r->up = false;
	if (r->notified) {
		r->notified = false;
		notify_ring(d, q, 0);
		if (d->closing)
			return false;
	}
	if (d->ops.queue_stop) {
		core_op_begin(d);
		int rc = core_op_result(d, d->ops.queue_stop(vid, (uint16_t)q));
		if (rc < 0)
			log_warn("vid %d: queue_stop(%u) failed: %d", vid, q, rc);
	}
	return !d->closing && d->ops_outstanding == 0;
}

/* Bring queue @q up for the device. False when an op is pending or the device closed. */
static bool ring_up(struct vdev *d, uint32_t q)
{
	struct vdev_ring *r = &d->rings[q];

	r->up = true;
	if (d->ops.queue_start) {
		core_op_begin(d);
		int rc = core_op_result(d, d->ops.queue_start(atomic_load(&d->vid), (uint16_t)q));
		if (rc < 0)
			ring_start_failed(d, q, rc);
		else if (d->ops_outstanding)
			d->op_start_ring = (int)q; /* its completion may still fail it */
	}
	return !d->closing && d->ops_outstanding == 0;
}

/* Make the vq match the ring flags: vq_stop() or vq_start() as needed. */
static void sync_vq(struct vdev *d, uint32_t q)
{
	struct vdev_ring *r = &d->rings[q];
	struct vq *vq = vdev_vq(d, q);

	if (!vq)
		return;
	if (!r->kicked && r->vq_started) {
		vq_quiesce(vq);
		vq_stop(vq);
		vq_unquiesce(vq);
		r->vq_started = false;
	} else if (r->kicked && !r->vq_started && !r->failed && d->mem) {
		vq_quiesce(vq);
		vq_set_enabled(vq, r->enabled);
		int rc = core_inflight_attach(d, q, vq);
		if (rc == 0)
			rc = vq_start(vq, d->mem, d->features);
		vq_unquiesce(vq);
		if (rc == 0) {
			r->vq_started = true;
		} else {
			log_err_rl("vid %d: vring %u cannot start: %d", atomic_load(&d->vid), q, rc);
			r->failed = true;
		}
	}
}

/*
 * Changes that wait for the queues to be down: ring addresses of a queue
 * that was up, and a new memory table (every queue down). Queues that no
 * longer translate under the new table were stopped and marked broken by
 * vdev_set_mem(): they wait for new configuration.
 */
static void apply_pending(struct vdev *d)
{
	for (uint32_t q = 0; q < nvrings(d); q++) {
		struct vdev_ring *r = &d->rings[q];
		struct vq *vq = vdev_vq(d, q);
		if (!r->addr_pending || r->up || !vq)
			continue;
		r->addr_pending = false;
		vq_quiesce(vq);
		int rc = vq_set_addr(vq, &r->pending_addr); /* re-translates a started ring */
		vq_unquiesce(vq);
		if (rc < 0) {
			r->vq_started = vq->started;
			r->failed = true;
		}
	}
	if (!d->pending_mem)
		return;
	for (uint32_t q = 0; q < nvrings(d); q++)
		if (d->rings[q].up)
			return; /* not yet */
	vdev_set_mem(d, d->pending_mem);
	d->pending_mem = NULL;
	for (uint32_t q = 0; q < nvrings(d); q++) {
		struct vdev_ring *r = &d->rings[q];
		struct vq *vq = vdev_vq(d, q);
		if (r->vq_started && vq && !vq->started) {
			r->vq_started = false;
			r->failed = true;
		} else if (!r->vq_started) {
			r->failed = false; /* retry a start the old table could not map */
		}
	}
}

/* The device's minimum queues are up (and the driver said DRIVER_OK). */
static bool device_ready(const struct vdev *d)
{
	uint32_t need = d->ops.min_queues ? d->ops.min_queues : 1;

	if (need > nvrings(d))
		need = nvrings(d);
	for (uint32_t q = 0; q < need; q++)
		if (!d->rings[q].up)
			return false;
	if ((d->protocol_features & (1ull << VHK_PF_STATUS)) &&
	    !(d->status & VIRTIO_STATUS_DRIVER_OK))
		return false;
	return true;
}

void core_dev_destroy(struct vdev *d)
{
	if (!d->running)
		return;
	d->running = false;
	for (uint32_t q = 0; q < VHK_MAX_QUEUES; q++)
		d->rings[q].notified = false;
	if (d->cb.destroy_device)
		d->cb.destroy_device(atomic_load(&d->vid));
}

/* Ask the transport to drop the device (an app callback refused it). */
static void refuse(struct vdev *d, const char *why)
{
	if (d->oo && d->oo->close)
		d->oo->close(d->owner, why);
	else
		core_dev_close(d);
}

/* new_device, then vring_state_changed(1) for every queue that is up. */
static bool device_start(struct vdev *d)
{
	if (!d->running && device_ready(d)) {
		d->running = true;
		int rc = d->cb.new_device ? d->cb.new_device(atomic_load(&d->vid)) : 0;
		if (d->closing)
			return false;
		if (rc < 0) {
			d->running = false;
			refuse(d, "new_device refused the device");
			return false;
		}
	}
	if (!d->running)
		return true;
	for (uint32_t q = 0; q < nvrings(d); q++) {
		if (d->rings[q].up && !d->rings[q].notified) {
			d->rings[q].notified = true;
			notify_ring(d, q, 1);
			if (d->closing)
				return false;
		}
	}
	return true;
}

bool core_dev_settle(struct vdev *d)
{
	uint32_t nv = nvrings(d);

	if (d->closing || d->ops_outstanding)
		return false;
	for (uint32_t q = 0; q < nv; q++)
		if (d->rings[q].up && !ring_wants_up(d, q) && !ring_down(d, q))
			return false;
	if (d->destroy_req) {
		d->destroy_req = false;
		core_dev_destroy(d);
		if (d->closing)
			return false;
	}
	apply_pending(d);
	for (uint32_t q = 0; q < nv; q++)
		sync_vq(d, q);
	for (uint32_t q = 0; q < nv; q++)
		if (!d->rings[q].up && ring_wants_up(d, q) && !ring_up(d, q))
			return false;
	return device_start(d);
}

int core_dev_new(struct core_sock *s, const struct core_owner_ops *oo, void *owner,
		 struct vdev **ret)
{
	struct vdev *d;
	int rc = vdev_alloc(&d);

	if (rc < 0)
		return rc;
	d->max_vrings = s->max_queues;
	vdev_set_path(d, s->path);
	d->app_ctx = s->cb_ctx;
	d->ops = s->ops;
	d->cb = s->cb;
	d->offered = s->features;
	d->sock = s;
	d->oo = oo;
	d->owner = owner;
	d->op_start_ring = -1;
	s->ndevs++;
	*ret = d;
	return 0;
}

int core_dev_announce(struct vdev *d)
{
	int vid = atomic_load(&d->vid), rc;

	if (d->ops.dev_init) {
		rc = d->ops.dev_init(vid);
		if (d->closing)
			return -ECONNRESET;
		if (rc < 0)
			return -ECONNREFUSED;
	}
	d->dev_inited = true;
	d->announced = true;
	rc = d->cb.new_connection ? d->cb.new_connection(vid) : 0;
	if (d->closing)
		return -ECONNRESET;
	return rc < 0 ? -ECONNREFUSED : 0;
}

/* Everything of a closed device once no op is pending: callbacks, then the slot. */
static void dev_release(struct vdev *d)
{
	struct core_sock *s = d->sock;
	int vid = atomic_load(&d->vid);

	if (d->dev_inited && d->ops.dev_fini)
		d->ops.dev_fini(vid);
	if (d->announced && d->cb.destroy_connection)
		d->cb.destroy_connection(vid);
	mem_table_free(d->pending_mem);
	d->pending_mem = NULL;
	vdev_release(d); /* quiesces and resets the vqs, unmaps the memory */
	/* Callers up the stack (an app callback that closed it) must still see it closed. */
	d->closing = true;
	if (s) {
		s->ndevs--;
		core_sock_maybe_free(s);
	}
}

void core_dev_close(struct vdev *d)
{
	int vid;

	if (!d || d->closing)
		return;
	vid = atomic_load(&d->vid);
	d->closing = true;
	d->oo = NULL;
	d->owner = NULL;
	core_dev_destroy(d);
	for (uint32_t q = 0; q < nvrings(d); q++) {
		struct vdev_ring *r = &d->rings[q];
		if (!r->up)
			continue;
		r->up = false;
		r->notified = false;
		if (d->ops.queue_stop) {
			core_op_begin(d);
			if (core_op_result(d, d->ops.queue_stop(vid, (uint16_t)q)) == 0 &&
			    d->ops_outstanding)
				log_info("vid %d: waiting for queue_stop(%u) before unmapping", vid, q);
		}
	}
	if (d->ops_outstanding == 0)
		dev_release(d);
}

/* A pending op finished (on the loop thread, lock held). */
static void op_done(struct vdev *d, int rc)
{
	if (d->ops_posted)
		d->ops_posted--;
	if (!d->ops_outstanding)
		return;
	d->ops_outstanding--;
	if (rc < 0 && d->op_start_ring >= 0 && !d->closing)
		ring_start_failed(d, (uint32_t)d->op_start_ring, rc);
	else if (rc < 0 && !d->ops_err)
		d->ops_err = rc;
	if (d->ops_outstanding)
		return;
	d->op_start_ring = -1;
	if (d->closing) {
		dev_release(d);
		return;
	}
	if (d->oo && d->oo->op_done)
		d->oo->op_done(d->owner);
}

/* Completion of an async op, delivered on the loop thread. */
struct op_completion {
	int vid;
	int rc;
};

/* Loop post: hand a completion to its device if it still exists. */
static void op_completion_post(void *ctx)
{
	struct op_completion *o = ctx;

	core_lock();
	struct vdev *d = vdev_get(o->vid);
	if (d)
		op_done(d, o->rc);
	core_unlock();
	free(o);
}

VHK_EXPORT int vhk_dev_op_complete(int vid, int result)
{
	struct op_completion *o;
	struct vdev *d;
	int rc = 0;

	core_lock();
	d = vdev_get(vid);
	if (!d) {
		rc = -ENODEV;
		goto out_unlock;
	}
	if (d->ops_outstanding <= d->ops_posted) {
		rc = -EALREADY;
		goto out_unlock;
	}
	o = malloc(sizeof(*o));
	if (!o) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	o->vid = vid;
	o->rc = result > 0 ? -EIO : result;
	rc = loop_post(core_loop(), op_completion_post, o);
	if (rc < 0)
		free(o);
	else
		d->ops_posted++;
out_unlock:
	core_unlock();
	return rc;
}
