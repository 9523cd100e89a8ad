/* SPDX-License-Identifier: MIT */
/*
 * Public per-device queries, guest address translation and the queue
 * state / notification helpers for apps that run their own datapath
 * (declared and documented in vhostkit/vhk_dev.h and vhostkit/vhk_vq.h).
 * The element API (pop / push / flush) is in vq_api.c.
 * Every entry validates the vid (generation checked), the queue id and the
 * pointers; stale handles get -ENODEV.
 */
#include <errno.h>
#include <stddef.h>
#include <poll.h>
#include <string.h>

#include "util/fd.h"
#include "vhostkit/vhk_vq.h"
#include "core/core.h"
#include "core/vdev.h"
#include "vq/vq_inflight.h"

/* Resolve (vid, qid) to an allocated vq; -ENODEV / -EINVAL / -EAGAIN (never set up). */
static int lookup_vq(int vid, uint16_t qid, struct vq **ret)
{
	struct vdev *d = vdev_get(vid);

	if (!d)
		return -ENODEV;
	if (qid >= VHK_MAX_QUEUES)
		return -EINVAL;
	*ret = vdev_vq(d, qid);
	return *ret ? 0 : -EAGAIN;
}

VHK_EXPORT void *vhk_dev_get_ctx(int vid)
{
	struct vdev *d = vdev_get(vid);

	return d ? d->app_ctx : NULL;
}

/*
 * The queries read what the control thread changes under the registry's
 * leaf lock (vdev_query_begin): never the control lock, which a callback
 * may hold while it waits for the very thread asking.
 */

/* Read one 64-bit field of the device (features or protocol features). */
static int query_u64(int vid, size_t off, uint64_t *ret)
{
	struct vdev *d;

	if (!ret)
		return vdev_get(vid) ? -EINVAL : -ENODEV;
	d = vdev_query_begin(vid);
	if (!d)
		return -ENODEV;
	memcpy(ret, (const char *)d + off, sizeof(*ret));
	vdev_query_end();
	return 0;
}

VHK_EXPORT int vhk_dev_get_features(int vid, uint64_t *ret_features)
{
	return query_u64(vid, offsetof(struct vdev, features), ret_features);
}

VHK_EXPORT int vhk_dev_get_protocol_features(int vid, uint64_t *ret_protocol_features)
{
	return query_u64(vid, offsetof(struct vdev, protocol_features), ret_protocol_features);
}

VHK_EXPORT int vhk_dev_get_path(int vid, char *buf, size_t len)
{
	struct vdev *d;
	size_t n;
	int rc = 0;

	if (!buf)
		return vdev_get(vid) ? -EINVAL : -ENODEV;
	d = vdev_query_begin(vid);
	if (!d)
		return -ENODEV;
	n = strnlen(d->path, sizeof(d->path) - 1);
	if (len < n + 1) {
		rc = -ENOSPC;
	} else {
		memcpy(buf, d->path, n);
		buf[n] = '\0';
	}
	vdev_query_end();
	return rc;
}

VHK_EXPORT int vhk_dev_get_vq_count(int vid)
{
	struct vdev *d = vdev_query_begin(vid);
	int n;

	if (!d)
		return -ENODEV;
	n = (int)d->nr_vrings;
	vdev_query_end();
	return n;
}

VHK_EXPORT int vhk_dev_set_priv(int vid, void *priv)
{
	struct vdev *d = vdev_get(vid);

	if (!d)
		return -ENODEV;
	store_release(&d->dev_priv, priv);
	return 0;
}

VHK_EXPORT void *vhk_dev_get_priv(int vid)
{
	struct vdev *d = vdev_get(vid);

	return d ? load_acquire(&d->dev_priv) : NULL;
}

VHK_EXPORT int vhk_vq_get_info(int vid, uint16_t qid, struct vhk_vq_info *info)
{
	struct vq *vq;
	int rc;

	if (!info)
		return -EINVAL;
	rc = lookup_vq(vid, qid, &vq);
	if (rc == -EAGAIN) {
		/* Never configured: report an empty, stopped ring. */
		memset(info, 0, sizeof(*info));
		info->kick_fd = info->call_fd = -1;
		return 0;
	}
	if (rc)
		return rc;
	/*
	 * A consistent snapshot: the control thread changes the ring only
	 * while it holds the vq quiesced, the datapath owner only inside a
	 * burst. Not the control lock: a device's worker asks this while the
	 * control thread may be waiting for it in queue_stop.
	 */
	vq_quiesce(vq);
	memset(info, 0, sizeof(*info));
	info->size = vq->num_set ? vq->size : 0;
	info->packed = vq->packed;
	info->started = vq->started;
	info->enabled = vq->enabled;
	info->broken = vq->broken;
	info->desc = vq->desc;
	info->avail = vq->avail;
	info->used = vq->used;
	info->kick_fd = vq->kick_fd;
	info->call_fd = vq->call_fd;
	info->last_avail_idx = vq->last_avail_idx;
	info->last_used_idx = vq->last_used_idx;
	vq_unquiesce(vq);
	return 0;
}

/* Datapath calls: owned like a burst (vq_enter), so no syscall when this thread owns the vq. */
VHK_EXPORT int vhk_vq_set_notification(int vid, uint16_t qid, bool enable)
{
	struct vdev *d;
	struct vq *vq;
	int rc = vdev_enter_vq(vid, qid, &d, &vq);

	if (rc)
		return rc;
	(void)vq_set_notification(vq, enable);
	vq_leave(vq);
	return 0;
}

VHK_EXPORT int vhk_vq_wait_kick(int vid, uint16_t qid, int timeout_ms)
{
	struct pollfd pfd;
	struct vq *vq;
	int rc = lookup_vq(vid, qid, &vq);

	if (rc)
		return rc;
	pfd.fd = READ_ONCE(vq->kick_fd);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (pfd.fd < 0)
		return -EAGAIN;
	rc = poll(&pfd, 1, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	if (rc == 0)
		return 0;
	if (!(pfd.revents & POLLIN))
		return -EIO; /* POLLERR / POLLNVAL: the fd went away */
	rc = fd_eventfd_drain(pfd.fd);
	if (rc < 0)
		return rc;
	store_relaxed(&vq->stats.kicks, load_relaxed(&vq->stats.kicks) + 1); /* read by any thread */
	return 1;
}

VHK_EXPORT int vhk_vq_avail_count(int vid, uint16_t qid)
{
	struct vdev *d;
	struct vq *vq;
	int rc = vdev_enter_vq(vid, qid, &d, &vq);

	if (rc)
		return rc;
	rc = vq_avail_count(vq);
	if (unlikely(vq->ifl) && !vq->broken)
		rc += vq_ifl_pending(vq); /* requests to resubmit come first */
	vq_leave(vq);
	return rc;
}

VHK_EXPORT int vhk_vq_notify(int vid, uint16_t qid)
{
	struct vdev *d;
	struct vq *vq;
	int rc = vdev_enter_vq(vid, qid, &d, &vq);

	if (rc)
		return rc;
	rc = vq_notify(vq) ? 1 : 0;
	vq_leave(vq);
	return rc;
}
