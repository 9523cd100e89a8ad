/* SPDX-License-Identifier: MIT */
/*
 * In-band notifications (VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS): the
 * frontend kicks with VHOST_USER_VRING_KICK messages instead of a kick
 * eventfd, and we call and report ring errors with
 * VHOST_USER_BACKEND_VRING_CALL / _VRING_ERR on the backend channel.
 *
 * The datapath does not change: when the frontend sends SET_VRING_KICK /
 * CALL / ERR without an fd on a connection that negotiated in-band
 * notifications, the queue gets an eventfd of ours instead of none. A
 * VRING_KICK message signals the kick eventfd (so vhk_vq_wait_kick() and
 * apps polling the kick fd work unchanged); the control loop watches the
 * call and err eventfds the datapath signals and turns each into one
 * message. The spec asks REPLY_ACK to be negotiated with in-band
 * notifications so that a message is processed before the next: while one
 * is waiting for its ack the eventfd is not watched, and signals meanwhile
 * coalesce into the next message.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "proto/conn.h"
#include "util/fd.h"
#include "util/log.h"

/* The back-end messages of the spec used here. */
#define BACKEND_VRING_CALL 4u
#define BACKEND_VRING_ERR  5u

/* One watched eventfd of a queue (call or err). */
struct inband_sig {
	struct conn *c;
	uint16_t q;
	uint32_t request; /* BACKEND_VRING_CALL or _ERR */
	int fd;		  /* our copy; the queue holds its own */
	struct loop_watch *watch;
	bool busy; /* a message is waiting for its ack */
};

/* In-band state of one queue. */
struct inband_ring {
	int kick_fd; /* our copy of the queue's kick eventfd, or -1 */
	struct inband_sig call, err;
};

bool conn_inband(const struct conn *c)
{
	return c->dev && (c->dev->protocol_features & (1ull << VHK_PF_INBAND_NOTIFICATIONS));
}

static void sig_input(void *ctx, int fd, uint32_t events);

/* Stop watching and close our copy of a signal eventfd. */
static void sig_drop(struct inband_sig *s)
{
	loop_watch_del(core_loop(), s->watch);
	s->watch = NULL;
	fd_close(&s->fd);
	s->busy = false;
}

/* The ring's in-band state, allocated on first use. */
static struct inband_ring *ring_of(struct conn *c, uint32_t q)
{
	if (!c->inband) {
		c->inband = calloc(VHK_MAX_QUEUES, sizeof(*c->inband));
		if (!c->inband)
			return NULL;
		for (uint32_t i = 0; i < VHK_MAX_QUEUES; i++) {
			c->inband[i].kick_fd = c->inband[i].call.fd = c->inband[i].err.fd = -1;
			c->inband[i].call.c = c->inband[i].err.c = c;
			c->inband[i].call.q = c->inband[i].err.q = (uint16_t)i;
			c->inband[i].call.request = BACKEND_VRING_CALL;
			c->inband[i].err.request = BACKEND_VRING_ERR;
		}
	}
	return &c->inband[q];
}

/* A new eventfd and a CLOEXEC duplicate of it for the queue. -errno on failure. */
static int new_pair(int *ours, int *theirs)
{
	*ours = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (*ours < 0)
		return -errno;
	*theirs = fd_dup_cloexec(*ours);
	if (*theirs < 0) {
		int rc = *theirs;
		fd_close(ours);
		return rc;
	}
	return 0;
}

int conn_inband_fd(struct conn *c, uint32_t q, enum inband_kind kind, int *ret_fd)
{
	struct inband_ring *r = ring_of(c, q);
	struct inband_sig *s;
	int rc, theirs;

	if (!r)
		return -ENOMEM;
	if (kind == INBAND_KICK) {
		fd_close(&r->kick_fd);
		rc = new_pair(&r->kick_fd, &theirs);
		if (rc == 0)
			*ret_fd = theirs;
		return rc;
	}
	s = kind == INBAND_CALL ? &r->call : &r->err;
	sig_drop(s);
	rc = new_pair(&s->fd, &theirs);
	if (rc < 0)
		return rc;
	rc = loop_watch_add(core_loop(), s->fd, EPOLLIN, sig_input, s, &s->watch);
	if (rc < 0) {
		fd_close(&s->fd);
		fd_close(&theirs);
		return rc;
	}
	*ret_fd = theirs;
	return 0;
}

void conn_inband_forget(struct conn *c, uint32_t q, enum inband_kind kind)
{
	struct inband_ring *r = c->inband ? &c->inband[q] : NULL;

	if (!r)
		return;
	if (kind == INBAND_KICK)
		fd_close(&r->kick_fd);
	else
		sig_drop(kind == INBAND_CALL ? &r->call : &r->err);
}

void conn_inband_free(struct conn *c)
{
	if (!c->inband)
		return;
	for (uint32_t q = 0; q < VHK_MAX_QUEUES; q++) {
		conn_inband_forget(c, q, INBAND_KICK);
		conn_inband_forget(c, q, INBAND_CALL);
		conn_inband_forget(c, q, INBAND_ERR);
	}
	free(c->inband);
	c->inband = NULL;
}

/* The ack of a VRING_CALL / _ERR came (or the channel went): watch again. */
static void sig_done(void *arg, int rc)
{
	struct inband_sig *s = arg;

	s->busy = false;
	if (s->c->dead || s->fd < 0)
		return;
	if (rc < 0)
		log_warn_rl("vid %d: in-band %s of vring %u not delivered: %d", s->c->vid,
			    s->request == BACKEND_VRING_CALL ? "call" : "error", s->q, rc);
	if (!s->watch &&
	    loop_watch_add(core_loop(), s->fd, EPOLLIN, sig_input, s, &s->watch) < 0)
		log_err("vid %d: cannot watch the in-band signal of vring %u", s->c->vid, s->q);
}

/* The datapath signalled a call or an error: one message, then wait for its ack. */
static void sig_input(void *ctx, int fd, uint32_t events)
{
	struct inband_sig *s = ctx;
	struct vhost_user_vring_state st = {.index = s->q, .num = 0};
	struct core_bmsg m = {.request = s->request, .size = sizeof(st), .payload = &st,
			      .done = sig_done, .arg = s};

	core_lock();
	if (s->c->dead || s->fd < 0 || s->busy)
		goto out_unlock;
	if (fd_eventfd_drain(s->fd) <= 0)
		goto out_unlock;
	/* Not watched while the message waits: signals meanwhile make the next one. */
	loop_watch_del(core_loop(), s->watch);
	s->watch = NULL;
	s->busy = true;
	if (conn_backend_send(s->c, &m) < 0) {
		s->busy = false;
		sig_done(s, -ENOTCONN);
	}
out_unlock:
	core_unlock();
}

int h_vring_kick(struct conn *c, struct msg_ctx *m)
{
	uint32_t q = m->msg->payload.state.index;

	if (m->msg->payload.state.num != 0)
		return -EINVAL; /* reserved */
	if (c->inband && c->inband[q].kick_fd >= 0)
		return fd_eventfd_write(c->inband[q].kick_fd);
	return 0; /* the queue has a kick fd of the frontend's, or polls: nothing to wake */
}
