/* SPDX-License-Identifier: MIT */
/*
 * The backend request channel (SET_BACKEND_REQ_FD): backend -> frontend
 * messages (config change, and the plumbing host notifiers and IOTLB
 * misses use), sent without ever blocking the control thread.
 *
 * Messages are queued (bounded, transport/outq.c) and sent as the socket
 * takes them; the socket is watched for EPOLLOUT while something is
 * queued. With REPLY_ACK negotiated a message asks for a reply
 * (NEED_REPLY); replies come back in order on the same socket and are
 * matched to the oldest message waiting for one. Waits are bounded: a
 * frontend that does not answer within BACKEND_REPLY_MS, answers out of
 * order, sends anything but replies, or lets the queue fill loses the
 * channel (every waiting sender is told the error); the connection itself
 * stays up, and a new SET_BACKEND_REQ_FD opens a new channel.
 *
 * Security model: everything read here comes from the frontend: the
 * header is checked (version, REPLY flag, known size) before the payload
 * is read, at most 8 payload bytes are ever accepted, and fds sent along
 * are closed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "proto/conn.h"
#include "util/fd.h"
#include "util/log.h"

#define BACKEND_REPLY_MS   5000u
#define BACKEND_QUEUE_MSGS 64u
#define BACKEND_QUEUE_BYTES (64u * 1024u)
#define HDR_SIZE	   sizeof(struct vhost_user_header)

/* One message waiting for its reply. */
struct bwait {
	uint32_t request;
	core_bmsg_done_fn done;
	void *arg;
};

struct bchan {
	struct conn *c;
	int fd;
	struct loop_watch *watch;
	struct loop_timer *timer; /* deadline of the oldest waiter */
	struct outq out;
	struct bwait wait[BACKEND_QUEUE_MSGS];
	unsigned whead, nwait; /* ring of waiters, oldest at whead */
	struct vhost_user_msg rx;
	size_t rx_got;
};

static void bchan_input(void *ctx, int fd, uint32_t events);

/* Tell a waiter how its message ended. */
static void finish(const struct bwait *w, int rc)
{
	if (w->done)
		w->done(w->arg, rc);
}

/* Close the channel: every waiter learns @rc. Lock held. */
static void bchan_close(struct conn *c, int rc, const char *why)
{
	struct bchan *b = c->backend;

	if (!b)
		return;
	c->backend = NULL;
	if (why)
		log_warn("vid %d: backend channel closed: %s", c->vid, why);
	loop_watch_del(core_loop(), b->watch);
	loop_timer_del(core_loop(), b->timer);
	outq_clear(&b->out);
	fd_close(&b->fd);
	while (b->nwait) {
		struct bwait w = b->wait[b->whead];
		b->whead = (b->whead + 1) % BACKEND_QUEUE_MSGS;
		b->nwait--;
		finish(&w, rc);
	}
	/* A loop round may still hold the watch's context: free after it. */
	if (loop_post(core_loop(), free, b) < 0)
		log_err("vid %d: backend channel memory leaked", c->vid);
}

/* The oldest waiter's deadline passed: the frontend did not answer in time. */
static void reply_timeout(void *ctx)
{
	struct bchan *b = ctx;

	core_lock();
	b->timer = NULL;
	if (b->c->backend == b)
		bchan_close(b->c, -ETIMEDOUT, "no reply in time");
	core_unlock();
}

/* Arm the reply deadline when a first waiter appears. */
static void arm_timer(struct bchan *b)
{
	if (b->timer || !b->nwait)
		return;
	if (loop_timer_add(core_loop(), BACKEND_REPLY_MS, reply_timeout, b, &b->timer) < 0)
		log_err("vid %d: cannot arm the backend reply timer", b->c->vid);
}

/* Watch for what the channel needs: replies (if waiting), room (if queued). */
static void watch_update(struct bchan *b)
{
	uint32_t ev = EPOLLIN | (outq_empty(&b->out) ? 0 : EPOLLOUT);

	if (loop_watch_mod(core_loop(), b->watch, ev) < 0)
		bchan_close(b->c, -EIO, "cannot watch the socket");
}

void conn_backend_set(struct conn *c, int fd)
{
	struct bchan *b;

	bchan_close(c, -ECONNRESET, NULL);
	b = calloc(1, sizeof(*b));
	if (!b || fd_set_nonblock(fd) < 0) {
		free(b);
		fd_close(&fd);
		log_err("vid %d: cannot set up the backend channel", c->vid);
		return;
	}
	b->c = c;
	b->fd = fd;
	outq_init(&b->out, BACKEND_QUEUE_MSGS, BACKEND_QUEUE_BYTES);
	if (loop_watch_add(core_loop(), fd, EPOLLIN, bchan_input, b, &b->watch) < 0) {
		fd_close(&b->fd);
		free(b);
		log_err("vid %d: cannot watch the backend channel", c->vid);
		return;
	}
	c->backend = b;
}

void conn_backend_close(struct conn *c)
{
	bchan_close(c, -ECONNRESET, NULL);
}

int conn_backend_send(void *owner, const struct core_bmsg *m)
{
	struct conn *c = owner;
	struct bchan *b = c->backend;
	struct vhost_user_msg msg;
	int fds[OUTQ_MAX_FDS], rc;
	bool ack = c->dev && (c->dev->protocol_features & (1ull << VHK_PF_REPLY_ACK));

	if (!b)
		return -ENOTCONN;
	if (m->size > VHOST_USER_MAX_PAYLOAD || m->nfds > OUTQ_MAX_FDS)
		return -EINVAL;
	if (ack && b->nwait >= BACKEND_QUEUE_MSGS)
		return -EBUSY;
	for (uint32_t i = 0; i < m->nfds; i++) {
		fds[i] = fd_dup_cloexec(m->fds[i]);
		if (fds[i] < 0) {
			fd_close_all(fds, i);
			return -EBADF;
		}
	}
	memset(&msg.hdr, 0, sizeof(msg.hdr));
	msg.hdr.request = m->request;
	msg.hdr.flags = VHOST_USER_VERSION | (ack ? VHOST_USER_NEED_REPLY_MASK : 0);
	msg.hdr.size = m->size;
	if (m->size)
		memcpy(&msg.payload, m->payload, m->size);
	rc = outq_push(&b->out, &msg, HDR_SIZE + m->size, fds, m->nfds);
	if (rc < 0) {
		/* A frontend that reads nothing of its channel loses it. */
		bchan_close(c, rc, "queue full");
		return rc;
	}
	if (ack) {
		struct bwait *w = &b->wait[(b->whead + b->nwait) % BACKEND_QUEUE_MSGS];
		w->request = m->request;
		w->done = m->done;
		w->arg = m->arg;
		b->nwait++;
		arm_timer(b);
	}
	rc = outq_flush(&b->out, b->fd);
	if (rc < 0 && rc != -EAGAIN) {
		bchan_close(c, rc, "send failed");
		return ack ? 0 : rc; /* a waiter was told already */
	}
	if (!ack && m->done)
		m->done(m->arg, 0); /* no reply to wait for: queued is done */
	watch_update(b);
	return 0;
}

/* One complete reply is buffered: match it to the oldest waiter. */
static int take_reply(struct bchan *b)
{
	const struct vhost_user_msg *r = &b->rx;

	if (!b->nwait || r->hdr.request != b->wait[b->whead].request || r->hdr.size != 8)
		return -EPROTO;
	struct bwait w = b->wait[b->whead];
	b->whead = (b->whead + 1) % BACKEND_QUEUE_MSGS;
	b->nwait--;
	loop_timer_del(core_loop(), b->timer);
	b->timer = NULL;
	arm_timer(b); /* the next waiter gets a full deadline of its own */
	finish(&w, r->payload.u64 ? -EIO : 0);
	return 0;
}

/* Read what the socket holds: replies only. 0, or negative errno (close). */
static int read_replies(struct bchan *b)
{
	for (;;) {
		int fds[VHOST_USER_MAX_FDS];
		size_t nfds = 0;
		size_t total = HDR_SIZE + (b->rx_got >= HDR_SIZE ? b->rx.hdr.size : 0);
		ssize_t r = fdmsg_recv(b->fd, (uint8_t *)&b->rx + b->rx_got, total - b->rx_got, fds,
				       &nfds, VHOST_USER_MAX_FDS);
		fd_close_all(fds, nfds); /* replies carry no fds */
		if (r == -EAGAIN)
			return 0;
		if (r == 0)
			return -ECONNRESET;
		if (r < 0)
			return (int)r;
		b->rx_got += (size_t)r;
		if (b->rx_got == HDR_SIZE) {
			const struct vhost_user_header *h = &b->rx.hdr;
			if ((h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
			    !(h->flags & VHOST_USER_REPLY_MASK) || h->size != 8)
				return -EPROTO; /* only u64 replies travel this way */
		}
		if (b->rx_got == HDR_SIZE + b->rx.hdr.size && b->rx_got > HDR_SIZE) {
			b->rx_got = 0;
			if (take_reply(b) < 0)
				return -EPROTO;
		}
	}
}

static void bchan_input(void *ctx, int fd, uint32_t events)
{
	struct bchan *b = ctx;
	struct conn *c = b->c;
	int rc = 0;

	core_lock();
	if (c->backend != b)
		goto out_unlock; /* closed in this round */
	if (!outq_empty(&b->out)) {
		rc = outq_flush(&b->out, b->fd);
		if (rc < 0 && rc != -EAGAIN) {
			bchan_close(c, rc, "send failed");
			goto out_unlock;
		}
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		rc = read_replies(b);
		if (rc < 0) {
			bchan_close(c, rc, rc == -EPROTO ? "unexpected message" : "peer closed");
			goto out_unlock;
		}
	}
	watch_update(b);
out_unlock:
	core_unlock();
}
