/* SPDX-License-Identifier: MIT */
/*
 * Connections: creation (server accept, client connect and reconnect),
 * teardown, and the completion of asynchronous device ops.
 *
 * Call order for the app: new_connection comes first for a vid, then any
 * of new_device / vring_state_changed / features_changed / destroy_device,
 * and destroy_connection last. A closed connection is marked dead at
 * once and freed by a loop post, so a callback or loop event still holding
 * it sees `dead` instead of freed memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "proto/conn.h"
#include "util/fd.h"
#include "util/log.h"

#define RECONNECT_MIN_MS   100u
#define RECONNECT_MAX_MS   2000u
#define ACCEPTS_PER_WAKEUP 64

/* Protocol features offered when the app set none. */
static uint64_t default_pf(const struct vhk_device_ops *ops)
{
	uint64_t pf = (1ull << VHK_PF_MQ) | (1ull << VHK_PF_REPLY_ACK) |
		      (1ull << VHK_PF_BACKEND_REQ) | (1ull << VHK_PF_CONFIGURE_MEM_SLOTS) |
		      (1ull << VHK_PF_STATUS);

	if (ops->config_size && ops->get_config)
		pf |= 1ull << VHK_PF_CONFIG;
	if (ops->send_rarp)
		pf |= 1ull << VHK_PF_RARP;
	if (ops->set_mtu)
		pf |= 1ull << VHK_PF_NET_MTU;
	return pf;
}

uint64_t vsock_offered_pf(const struct vsock *vs)
{
	return vs->pf_set ? vs->pfeatures : default_pf(&vs->ops);
}

/* Give @c a device slot configured from its socket. */
static int conn_attach_vdev(struct conn *c, const struct vsock *vs)
{
	struct vdev *d;
	int rc = vdev_alloc(&d);

	if (rc < 0)
		return rc;
	d->max_vrings = vs->max_queues;
	memcpy(d->path, vs->path, sizeof(d->path));
	d->app_ctx = vs->cb_ctx;
	d->ops = vs->ops;
	d->owner = c;
	c->dev = d;
	c->vid = atomic_load(&d->vid);
	return 0;
}

/* Run dev_init and new_connection; a refusal closes the connection. */
static void conn_announce(struct conn *c)
{
	int rc;

	if (c->dev->ops.dev_init) {
		rc = c->dev->ops.dev_init(c->vid);
		if (c->dead)
			return;
		if (rc < 0) {
			conn_close(c, "device init failed");
			return;
		}
	}
	c->dev_inited = true;
	c->announced = true;
	rc = c->cb.new_connection ? c->cb.new_connection(c->vid) : 0;
	if (!c->dead && rc < 0)
		conn_close(c, "new_connection refused it");
}

int conn_new(struct vsock *vs, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	int rc;

	if (!c) {
		fd_close(&fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->backend_fd = -1;
	c->op_start_ring = -1;
	c->vs = vs;
	c->cb = vs->cb;
	c->offered = vs->features;
	c->offered_pf = vsock_offered_pf(vs);
	c->max_queues = vs->max_queues;
	rc = conn_attach_vdev(c, vs);
	if (rc < 0)
		goto err_free;
	rc = loop_watch_add(proto_loop(), fd, EPOLLIN, conn_input, c, &c->watch);
	if (rc < 0)
		goto err_release;
	c->next = vs->conns;
	vs->conns = c;
	log_info("%s: new connection, vid %d", vs->path, c->vid);
	conn_announce(c);
	return 0;

err_release:
	vdev_release(c->dev);
err_free:
	log_err("%s: cannot set up a connection: %d", vs->path, rc);
	fd_close(&c->fd);
	free(c);
	return rc;
}

/* Loop post: free a closed connection. */
static void conn_free(void *ctx)
{
	free(ctx);
}

/* Remove @c from its socket's list. */
static void conn_unlink(struct conn *c)
{
	if (!c->vs)
		return;
	for (struct conn **pp = &c->vs->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
}

void conn_close(struct conn *c, const char *why)
{
	struct vsock *vs = c->vs;

	if (c->dead)
		return;
	c->dead = true;
	conn_unlink(c);
	log_info("%s: vid %d closed: %s", vs ? vs->path : "?", c->vid, why);
	loop_watch_del(proto_loop(), c->watch);
	c->watch = NULL;
	conn_rings_teardown(c);
	if (c->dev_inited && c->dev->ops.dev_fini)
		c->dev->ops.dev_fini(c->vid);
	if (c->announced && c->cb.destroy_connection)
		c->cb.destroy_connection(c->vid);
	vdev_release(c->dev);
	fd_close(&c->fd);
	fd_close_all(c->rx_fds, c->rx_nfds);
	c->rx_nfds = 0;
	fd_close(&c->backend_fd);
	if (vs && !vs->dead && (vs->flags & VHK_CLIENT) && !(vs->flags & VHK_NO_RECONNECT))
		vsock_schedule_reconnect(vs);
	if (loop_post(proto_loop(), conn_free, c) < 0)
		log_err("vid %d: cannot free connection memory (leaked)", c->vid);
}

/* Reconnect timer: try once, schedule the next try on failure. */
static void reconnect_timer(void *ctx)
{
	struct vsock *vs = ctx;

	proto_lock();
	vs->retry = NULL;
	if (!vs->dead) {
		int fd = uds_connect(vs->path);
		if (fd >= 0) {
			vs->backoff_ms = RECONNECT_MIN_MS;
			(void)conn_new(vs, fd);
		} else {
			log_dbg("%s: connect failed (%d), retrying", vs->path, fd);
			vsock_schedule_reconnect(vs);
		}
	}
	proto_unlock();
}

void vsock_schedule_reconnect(struct vsock *vs)
{
	if (vs->retry || vs->dead)
		return;
	if (vs->backoff_ms < RECONNECT_MIN_MS)
		vs->backoff_ms = RECONNECT_MIN_MS;
	if (loop_timer_add(proto_loop(), vs->backoff_ms, reconnect_timer, vs, &vs->retry) < 0)
		log_err("%s: cannot schedule a reconnect", vs->path);
	vs->backoff_ms =
	    vs->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : vs->backoff_ms * 2;
}

void vsock_accept(void *ctx, int fd, uint32_t events)
{
	struct vsock *vs = ctx;

	proto_lock();
	for (int n = 0; n < ACCEPTS_PER_WAKEUP && !vs->dead; n++) {
		int cfd = uds_accept(vs->lfd);
		if (cfd == -EAGAIN)
			break;
		if (cfd < 0) {
			log_err_rl("%s: accept failed: %d", vs->path, cfd);
			break;
		}
		(void)conn_new(vs, cfd);
	}
	proto_unlock();
}

/* Completion of an async op, delivered on the loop thread. */
struct op_done {
	int vid;
	int rc;
};

/* Loop post: hand a completion to its connection if it still exists. */
static void op_done_post(void *ctx)
{
	struct op_done *o = ctx;

	proto_lock();
	struct vdev *d = vdev_get(o->vid);
	if (d && d->owner)
		conn_op_done(d->owner, o->rc);
	proto_unlock();
	free(o);
}

VHK_EXPORT int vhk_dev_op_complete(int vid, int result)
{
	struct op_done *o;
	struct vdev *d;
	struct conn *c;
	int rc = 0;

	proto_lock();
	d = vdev_get(vid);
	c = d ? d->owner : NULL;
	if (!c || c->dead) {
		rc = -ENODEV;
		goto out_unlock;
	}
	if (c->ops_outstanding <= c->ops_posted) {
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
	rc = loop_post(proto_loop(), op_done_post, o);
	if (rc < 0)
		free(o);
	else
		c->ops_posted++;
out_unlock:
	proto_unlock();
	return rc;
}
