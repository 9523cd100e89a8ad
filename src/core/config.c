/* SPDX-License-Identifier: MIT */
/*
 * What a transport changes on a device: queue configuration (size,
 * addresses, base, eventfds, enable, stop), negotiated features, status,
 * reset, the memory table, config space and device-specific messages.
 * Values arrive checked for form by the transport (sizes, indices); the
 * checks of meaning are here and in vq/ and mem/. Every change a running
 * datapath could observe is made with the queue quiesced (vq.h); changes
 * that need a queue down are left to core_dev_settle() (lifecycle.c).
 */
#include <errno.h>
#include <linux/vhost_types.h>

#include "core/core.h"
#include "util/fd.h"
#include "util/log.h"

/* VHOST_USER_F_PROTOCOL_FEATURES counts as negotiated (see core_dev_set_pf_handshake). */
static bool pf_negotiated(const struct vdev *d)
{
	return d->pf_handshake || (d->features & (1ull << VHK_F_PROTOCOL_FEATURES));
}

/* Set the vq's enabled flag with the datapath held off. */
static void vq_enable_quiesced(struct vq *vq, bool enabled)
{
	vq_quiesce(vq);
	vq_set_enabled(vq, enabled);
	vq_unquiesce(vq);
}

/* The vq of queue @q, allocated on first use with the queue's enable state. */
static struct vq *ring_vq(struct vdev *d, uint32_t q)
{
	struct vq *vq = vdev_vq(d, q);

	if (vq)
		return vq;
	vq = vdev_vq_get_or_alloc(d, q);
	if (vq && d->rings[q].enabled)
		vq_enable_quiesced(vq, true);
	return vq;
}

int core_ring_set_num(struct vdev *d, uint32_t q, uint32_t num)
{
	struct vq *vq = ring_vq(d, q);

	if (!vq)
		return -ENOMEM;
	vq_quiesce(vq);
	int rc = vq_set_num(vq, num);
	vq_unquiesce(vq);
	d->rings[q].failed = false;
	return rc;
}

int core_ring_set_addr(struct vdev *d, uint32_t q, const struct vq_addr *a)
{
	struct vdev_ring *r = &d->rings[q];
	struct vq *vq = ring_vq(d, q);
	int rc;

	if (!vq)
		return -ENOMEM;
	if (a->flags & ~(1u << VHOST_VRING_F_LOG))
		return -EINVAL;
	/* The spec: the last byte of the used ring must fall inside the log. */
	if (!vq_log_ring_fits(vq, a, d->features, d->log)) {
		log_warn("vid %d: vring %u log address 0x%llx outside the dirty log",
			 atomic_load(&d->vid), q, (unsigned long long)a->log);
		return -EINVAL;
	}
	r->failed = false;
	if (r->up || r->addr_pending) {
		/* The device is told queue_stop / queue_start around the change (settle). */
		r->pending_addr = *a;
		r->addr_pending = true;
		return 0;
	}
	vq_quiesce(vq);
	rc = vq_set_addr(vq, a);
	vq_unquiesce(vq);
	if (rc < 0 && r->vq_started && !vq->started) {
		r->vq_started = false;
		r->failed = true;
	}
	return rc;
}

int core_ring_set_base(struct vdev *d, uint32_t q, uint32_t base)
{
	struct vq *vq = ring_vq(d, q);

	if (!vq)
		return -ENOMEM;
	vq_quiesce(vq);
	int rc = vq_set_base(vq, base);
	vq_unquiesce(vq);
	d->rings[q].failed = false;
	return rc;
}

/* Which eventfd of a vq a message replaces. */
enum ring_fd { RING_KICK, RING_CALL, RING_ERR };

static int ring_set_fd(struct vdev *d, uint32_t q, int fd, enum ring_fd which)
{
	struct vq *vq = ring_vq(d, q);

	if (!vq) {
		fd_close(&fd);
		return -ENOMEM;
	}
	vq_quiesce(vq);
	if (which == RING_KICK)
		vq_set_kick_fd(vq, fd);
	else if (which == RING_CALL)
		vq_set_call_fd(vq, fd);
	else
		vq_set_err_fd(vq, fd);
	vq_unquiesce(vq);
	if (which == RING_KICK) {
		d->rings[q].kicked = true;
		d->rings[q].failed = false;
	}
	return 0;
}

int core_ring_set_kick(struct vdev *d, uint32_t q, int fd)
{
	return ring_set_fd(d, q, fd, RING_KICK);
}

int core_ring_set_call(struct vdev *d, uint32_t q, int fd)
{
	return ring_set_fd(d, q, fd, RING_CALL);
}

int core_ring_set_err(struct vdev *d, uint32_t q, int fd)
{
	return ring_set_fd(d, q, fd, RING_ERR);
}

int core_ring_enable(struct vdev *d, uint32_t q, bool enable)
{
	struct vq *vq = ring_vq(d, q);

	if (!vq)
		return -ENOMEM;
	d->rings[q].enabled = enable;
	vq_enable_quiesced(vq, enable);
	return 0;
}

void core_ring_stop(struct vdev *d, uint32_t q)
{
	d->rings[q].kicked = false;
}

uint32_t core_ring_base(struct vdev *d, uint32_t q)
{
	struct vq *vq = vdev_vq(d, q);

	return vq ? vq_get_base(vq) : 0;
}

void core_dev_stop_all(struct vdev *d, bool disable)
{
	for (uint32_t q = 0; q < d->max_vrings && q < VHK_MAX_QUEUES; q++) {
		struct vdev_ring *r = &d->rings[q];
		struct vq *vq = vdev_vq(d, q);
		r->kicked = false;
		r->failed = false;
		if (disable) {
			r->enabled = false;
			if (vq)
				vq_enable_quiesced(vq, false);
		}
	}
	d->destroy_req = true;
}

/* Without VHOST_USER_F_PROTOCOL_FEATURES every queue is enabled at once. */
static void enable_all(struct vdev *d)
{
	for (uint32_t q = 0; q < d->max_vrings && q < VHK_MAX_QUEUES; q++) {
		struct vq *vq = vdev_vq(d, q);
		d->rings[q].enabled = true;
		if (vq)
			vq_enable_quiesced(vq, true);
	}
}

/* True when any vq of @d has been started (and not stopped since). */
static bool any_ring_started(struct vdev *d)
{
	for (uint32_t i = 0; i < VHK_MAX_QUEUES; i++) {
		const struct vq *vq = vdev_vq(d, i);
		if (vq && vq->started)
			return true;
	}
	return false;
}

int core_dev_set_features(struct vdev *d, uint64_t f)
{
	if (f & ~d->offered)
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
	 * A started queue keeps the layout it was started with; switching the
	 * format under it would leave the app told one format while the ring
	 * runs the other. The frontend stops the queues (GET_VRING_BASE) first.
	 */
	if (((f ^ d->features) & (1ull << VHK_F_RING_PACKED)) && any_ring_started(d)) {
		log_warn("SET_FEATURES: ring format change with started rings refused");
		return -EBUSY;
	}
	/*
	 * A running device must be re-announced with its new features, except
	 * for VHOST_F_LOG_ALL: the frontend toggles it around a migration, on
	 * a device that keeps running (the queues log from now on, and the
	 * app hears of it through features_changed).
	 */
	if (d->running && ((f ^ d->features) & ~(1ull << VHK_F_LOG_ALL)))
		core_dev_destroy(d);
	if (d->closing)
		return -ENOTCONN;
	vdev_set_features(d, f);
	if (!pf_negotiated(d))
		enable_all(d);
	if (d->cb.features_changed)
		return d->cb.features_changed(atomic_load(&d->vid), f);
	return 0;
}

void core_dev_set_pf_handshake(struct vdev *d)
{
	d->pf_handshake = true;
}

int core_dev_set_status(struct vdev *d, uint8_t status)
{
	/* Writing 0 resets the device: stop every queue. */
	if (status == 0 && d->status != 0)
		core_dev_stop_all(d, false);
	d->status = status;
	return 0;
}

int core_dev_set_mem(struct vdev *d, struct mem_table *t)
{
	/*
	 * The log must cover every region: a frontend grows it (SET_LOG_BASE)
	 * before it grows the memory.
	 */
	if (d->log && !mem_log_covers(d->log, mem_table_gpa_end(t))) {
		log_warn("vid %d: memory table ends at 0x%llx, past the dirty log",
			 atomic_load(&d->vid), (unsigned long long)mem_table_gpa_end(t));
		mem_table_free(t);
		return -EINVAL;
	}
	/* destroy_device before the swap; new_device again once the queues are back. */
	core_dev_destroy(d);
	mem_table_free(d->pending_mem); /* a newer table replaces one still waiting */
	d->pending_mem = t;
	return 0;
}

/* Does @log cover the memory and every ring that logs at its log address? */
static bool log_fits(struct vdev *d, const struct mem_log *log)
{
	if (!mem_log_covers(log, mem_table_gpa_end(d->mem)) ||
	    !mem_log_covers(log, mem_table_gpa_end(d->pending_mem)))
		return false;
	for (uint32_t q = 0; q < d->max_vrings && q < VHK_MAX_QUEUES; q++) {
		const struct vq *vq = vdev_vq(d, q);
		const struct vdev_ring *r = &d->rings[q];
		if (vq && !vq_log_ring_fits(vq, r->addr_pending ? &r->pending_addr : &vq->addr,
					    d->features, log))
			return false;
	}
	return true;
}

int core_dev_set_log(struct vdev *d, struct mem_log *log)
{
	if (!log_fits(d, log)) {
		log_warn("vid %d: dirty log of %llu bytes does not cover the guest's memory and rings",
			 atomic_load(&d->vid), (unsigned long long)log->size);
		mem_log_free(log);
		return -EINVAL;
	}
	vdev_set_log(d, log);
	return 0;
}

void core_dev_set_log_fd(struct vdev *d, int fd)
{
	fd_close(&d->log_fd);
	d->log_fd = fd;
}

/* Offset, size and flags of a config access against the device's space. */
static int check_config(const struct vdev *d, uint32_t offset, uint32_t len, uint32_t flags)
{
	uint32_t space = d->ops.config_size;

	if (flags > 1u) /* VHOST_SET_CONFIG_TYPE_FRONTEND / _MIGRATION */
		return -EINVAL;
	if (offset > space || len > space - offset)
		return -EINVAL;
	return 0;
}

int core_dev_get_config(struct vdev *d, uint8_t *buf, uint32_t offset, uint32_t len,
			uint32_t flags)
{
	int rc;

	if (!d->ops.get_config)
		return -ENOTSUP;
	rc = check_config(d, offset, len, flags);
	if (rc < 0)
		return rc;
	core_op_begin(d);
	return core_op_result(d, d->ops.get_config(atomic_load(&d->vid), buf, offset, len));
}

int core_dev_set_config(struct vdev *d, const uint8_t *buf, uint32_t offset, uint32_t len,
			uint32_t flags)
{
	int rc;

	if (!d->ops.set_config)
		return -ENOTSUP;
	rc = check_config(d, offset, len, flags);
	if (rc < 0)
		return rc;
	core_op_begin(d);
	return core_op_result(d, d->ops.set_config(atomic_load(&d->vid), buf, offset, len, flags));
}

int core_dev_msg(struct vdev *d, struct vhk_msg *msg)
{
	int rc;

	if (!d->ops.handle_msg)
		return VHK_MSG_NOT_HANDLED;
	core_op_begin(d);
	rc = core_op_result(d, d->ops.handle_msg(atomic_load(&d->vid), msg));
	if (rc == VHK_MSG_NOT_HANDLED || rc <= 0)
		return rc;
	return -EIO; /* a positive answer the contract does not know */
}
