/* SPDX-License-Identifier: MIT */
/*
 * Connections: creation (server accept, client connect and reconnect) and
 * teardown. Each connection owns one device of the core (core_dev_new);
 * closing the connection closes the device there, which finishes the
 * device's teardown (queue stops awaited, callbacks, memory) on its own.
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
#define ACCEPT_BACKOFF_MIN_MS 50u
#define ACCEPT_BACKOFF_MAX_MS 1000u
/* Replies queued for a frontend that does not read: one is enough (input stops meanwhile). */
#define CONN_OUT_MSGS	   4u
#define CONN_OUT_BYTES	   (4u * (12u + VHOST_USER_MAX_PAYLOAD))

/* The core asks us to drop the connection (an app callback refused the device). */
static void conn_refused(void *owner, const char *why)
{
	conn_close(owner, why);
}

static const struct core_owner_ops conn_owner_ops = {
    .op_done = conn_ops_done,
    .close = conn_refused,
    .backend_send = conn_backend_send,
};

/* Link @c into its socket's list. */
static void conn_link(struct conn *c)
{
	c->next = c->ps->conns;
	c->ps->conns = c;
}

/* Remove @c from its socket's list. */
static void conn_unlink(struct conn *c)
{
	if (!c->ps)
		return;
	for (struct conn **pp = &c->ps->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
}

/* The handshake deadline passed: a connection that never negotiates holds a slot for nothing. */
static void handshake_timeout(void *ctx)
{
	struct conn *c = ctx;

	core_lock();
	c->handshake_timer = NULL;
	if (!c->dead && !c->negotiated)
		conn_close(c, "no negotiation in time");
	core_unlock();
}

void conn_negotiated(struct conn *c)
{
	if (c->negotiated)
		return;
	c->negotiated = true;
	if (c->ps)
		c->ps->unnegotiated--;
	loop_timer_del(core_loop(), c->handshake_timer);
	c->handshake_timer = NULL;
}

/* Over the bound of unnegotiated connections: the oldest one goes (never @keep). */
static void close_oldest_unnegotiated(struct psock *ps, const struct conn *keep)
{
	struct conn *oldest = NULL;

	for (struct conn *o = ps->conns; o; o = o->next)
		if (!o->negotiated && o != keep && (!oldest || o->seq < oldest->seq))
			oldest = o;
	if (oldest)
		conn_close(oldest, "too many unnegotiated connections: the oldest goes");
}

/* Count @c as unnegotiated, with its deadline, and keep the socket within its bound. */
static void track_unnegotiated(struct psock *ps, struct conn *c)
{
	const struct vhk_socket_limits *l = &ps->cs->limits;

	ps->unnegotiated++;
	if (loop_timer_add(core_loop(), l->handshake_timeout_ms, handshake_timeout, c,
			   &c->handshake_timer) < 0)
		log_err("vid %d: cannot arm the handshake deadline", c->vid);
	while (ps->unnegotiated > l->max_unnegotiated && !c->dead) {
		unsigned before = ps->unnegotiated;
		close_oldest_unnegotiated(ps, c);
		if (ps->unnegotiated == before)
			break;
	}
}

int conn_new(struct psock *ps, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	int rc;

	if (!c) {
		fd_close(&fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->reply_fd = -1;
	c->pc_ufd = -1;
	c->ps = ps;
	outq_init(&c->out, CONN_OUT_MSGS, CONN_OUT_BYTES);
	c->offered_pf = core_sock_offered_pf(ps->cs);
	rc = core_dev_new(ps->cs, &conn_owner_ops, c, &c->dev);
	if (rc < 0)
		goto err_free;
	c->vid = atomic_load(&c->dev->vid);
	rc = loop_watch_add(core_loop(), fd, EPOLLIN, conn_input, c, &c->watch);
	if (rc < 0)
		goto err_close_dev;
	c->watch_ev = EPOLLIN;
	conn_link(c);
	c->seq = ++ps->conn_seq;
	track_unnegotiated(ps, c);
	log_info("%s: new connection, vid %d", ps->cs->path, c->vid);
	rc = core_dev_announce(c->dev);
	if (rc == -ECONNREFUSED && !c->dead)
		conn_close(c, "refused by dev_init or new_connection");
	return 0;

err_close_dev:
	core_dev_close(c->dev);
err_free:
	log_err("%s: cannot set up a connection: %d", ps->cs->path, rc);
	fd_close(&c->fd);
	free(c);
	return rc;
}

/* Loop post: free a closed connection. */
static void conn_free(void *ctx)
{
	free(ctx);
}

void conn_close(struct conn *c, const char *why)
{
	struct psock *ps = c->ps;
	struct vdev *d = c->dev;

	if (c->dead)
		return;
	c->dead = true;
	conn_unlink(c);
	if (!c->negotiated && ps)
		ps->unnegotiated--;
	loop_timer_del(core_loop(), c->handshake_timer);
	loop_timer_del(core_loop(), c->reply_timer);
	c->handshake_timer = c->reply_timer = NULL;
	log_info("%s: vid %d closed: %s", ps ? ps->cs->path : "?", c->vid, why);
	loop_watch_del(core_loop(), c->watch);
	c->watch = NULL;
	fd_close(&c->fd);
	fd_close_all(c->rx_fds, c->rx_nfds);
	c->rx_nfds = 0;
	fd_close(&c->reply_fd);
	outq_clear(&c->out);
	conn_backend_close(c);
	conn_inband_free(c);
	pc_free(c);
	c->dev = NULL;
	core_dev_close(d); /* may finish later, on its own, if a queue_stop is pending */
	if (ps && !ps->dead && (ps->cs->flags & VHK_CLIENT) && !(ps->cs->flags & VHK_NO_RECONNECT))
		psock_schedule_reconnect(ps);
	if (loop_post(core_loop(), conn_free, c) < 0)
		log_err("vid %d: cannot free connection memory (leaked)", c->vid);
}

/* Reconnect timer: try once, schedule the next try on failure. */
static void reconnect_timer(void *ctx)
{
	struct psock *ps = ctx;

	core_lock();
	ps->retry = NULL;
	if (!ps->dead) {
		int fd = uds_connect(ps->cs->path);
		if (fd >= 0) {
			ps->backoff_ms = RECONNECT_MIN_MS;
			(void)conn_new(ps, fd);
		} else {
			log_dbg("%s: connect failed (%d), retrying", ps->cs->path, fd);
			psock_schedule_reconnect(ps);
		}
	}
	core_unlock();
}

void psock_schedule_reconnect(struct psock *ps)
{
	if (ps->retry || ps->dead)
		return;
	if (ps->backoff_ms < RECONNECT_MIN_MS)
		ps->backoff_ms = RECONNECT_MIN_MS;
	if (loop_timer_add(core_loop(), ps->backoff_ms, reconnect_timer, ps, &ps->retry) < 0)
		log_err("%s: cannot schedule a reconnect", ps->cs->path);
	ps->backoff_ms =
	    ps->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : ps->backoff_ms * 2;
}

/* Accepting resumes after a pause (the process was out of fds or memory). */
static void accept_resume(void *ctx)
{
	struct psock *ps = ctx;

	core_lock();
	ps->accept_retry = NULL;
	if (!ps->dead && !ps->lwatch &&
	    loop_watch_add(core_loop(), ps->lfd, EPOLLIN, psock_accept, ps, &ps->lwatch) < 0)
		psock_pause_accept(ps, -ENOMEM);
	core_unlock();
}

void psock_pause_accept(struct psock *ps, int why)
{
	/*
	 * The listening socket stays readable while the connection waits in
	 * the backlog: watching it now would spin the control thread. Stop
	 * watching, try again later (50 ms, doubling up to 1 s).
	 */
	log_err_rl("%s: cannot accept (%d): pausing %u ms", ps->cs->path, why,
		   ps->accept_backoff_ms ? ps->accept_backoff_ms : ACCEPT_BACKOFF_MIN_MS);
	loop_watch_del(core_loop(), ps->lwatch);
	ps->lwatch = NULL;
	if (ps->accept_backoff_ms < ACCEPT_BACKOFF_MIN_MS)
		ps->accept_backoff_ms = ACCEPT_BACKOFF_MIN_MS;
	if (!ps->accept_retry &&
	    loop_timer_add(core_loop(), ps->accept_backoff_ms, accept_resume, ps, &ps->accept_retry) < 0)
		log_err("%s: cannot schedule accepting again", ps->cs->path);
	ps->accept_backoff_ms = MIN(ps->accept_backoff_ms * 2, ACCEPT_BACKOFF_MAX_MS);
}

void psock_accept(void *ctx, int fd, uint32_t events)
{
	struct psock *ps = ctx;

	core_lock();
	for (int n = 0; n < ACCEPTS_PER_WAKEUP && !ps->dead && ps->lwatch; n++) {
		int cfd = uds_accept(ps->lfd);
		if (cfd == -EAGAIN)
			break;
		if (cfd == -EMFILE || cfd == -ENFILE || cfd == -ENOBUFS || cfd == -ENOMEM) {
			psock_pause_accept(ps, cfd);
			break;
		}
		if (cfd < 0) {
			log_err_rl("%s: accept failed: %d", ps->cs->path, cfd);
			break;
		}
		ps->accept_backoff_ms = 0;
		(void)conn_new(ps, cfd);
	}
	core_unlock();
}
