/* SPDX-License-Identifier: MIT */
/*
 * Transport: Unix sockets (listen, accept, connect), message I/O with
 * SCM_RIGHTS fds, and the epoll event loop with timers that the control
 * thread (or the app, in app-driven mode) runs. Knows nothing of vhost-user.
 *
 * Every fd created or received here is O_CLOEXEC.
 * Includes: util only.
 */
#ifndef VHK_TRANSPORT_TRANSPORT_H
#define VHK_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- sockets ---- */

/*
 * Create a listening socket at @path. An existing file is replaced only if
 * it is a socket nobody listens on (stale, left by a dead process); a live
 * socket gives -EADDRINUSE, a non-socket file -EEXIST. Applies @mode,
 * @uid, @gid when not (x)-1. Returns the fd (>= 0) or -errno.
 */
int uds_listen(const char *path, mode_t mode, uid_t uid, gid_t gid);
/* Accept one connection (non-blocking, CLOEXEC). Returns fd, -EAGAIN, -errno. */
int uds_accept(int lfd);
/*
 * Connect to @path without blocking (non-blocking, CLOEXEC). Returns the fd,
 * -EAGAIN when the listener's backlog is full (retry later), or -errno
 * (-ENOENT, -ECONNREFUSED: nobody listens).
 */
int uds_connect(const char *path);

/* ---- messages with fds ---- */

/*
 * recvmsg() up to @len bytes into @buf from non-blocking @fd, harvesting up
 * to @max_fds fds into @fds (with MSG_CMSG_CLOEXEC) and adding their count
 * to *@nfds. New fds are stored from fds[*nfds] on; @max_fds is the
 * capacity of the whole array, so repeated calls for one message
 * accumulate. Received fds beyond @max_fds, or on MSG_CTRUNC, are closed
 * and reported as -EPROTO (the ones stored are still the caller's to
 * close). Returns bytes read (0 = EOF), -EAGAIN, -EPROTO, -errno.
 */
ssize_t fdmsg_recv(int fd, void *buf, size_t len, int *fds, size_t *nfds, size_t max_fds);
/*
 * Send @len bytes with @nfds fds attached to the first byte, retrying on
 * EINTR and waiting (poll, bounded by @timeout_ms) while the socket is
 * full. MSG_NOSIGNAL. Returns 0 or -errno (-ETIMEDOUT).
 */
int fdmsg_send(int fd, const void *buf, size_t len, const int *fds, size_t nfds, int timeout_ms);
/*
 * One non-blocking sendmsg() of up to @len bytes, @nfds fds attached to the
 * first byte. Returns the bytes sent (>= 0), -EAGAIN (socket full: nothing
 * sent, fds not sent either), -errno.
 */
ssize_t fdmsg_send_nb(int fd, const void *buf, size_t len, const int *fds, size_t nfds);

/* ---- output queues (outq.c) ---- */

#define OUTQ_MAX_FDS 8
struct outmsg;
/* A bounded FIFO of messages for a non-blocking socket. Embed; no locking. */
struct outq {
	struct outmsg *head, *tail;
	size_t nmsgs, bytes;
	size_t max_msgs, max_bytes;
};
/* Empty queue holding at most @max_msgs messages and @max_bytes bytes. */
void outq_init(struct outq *q, size_t max_msgs, size_t max_bytes);
/*
 * Queue a copy of @len bytes and the @nfds fds (ownership moves to the
 * queue: each fds[i] is set to -1; on failure they are closed). 0,
 * -ENOBUFS over the bound, -ENOMEM, -EINVAL.
 */
int outq_push(struct outq *q, const void *buf, size_t len, int *fds, size_t nfds);
/* Send what the socket takes: 0 all sent, -EAGAIN more left, -errno broken. */
int outq_flush(struct outq *q, int sock);
/* Drop every queued message (closing their fds). */
void outq_clear(struct outq *q);
static inline bool outq_empty(const struct outq *q)
{
	return q->head == NULL;
}

/* ---- event loop ---- */

struct loop;
struct loop_watch;
struct loop_timer;
typedef void (*loop_fd_fn)(void *ctx, int fd, uint32_t events);
typedef void (*loop_timer_fn)(void *ctx);

int loop_new(struct loop **ret);
/* Frees watches and timers (closing nothing but its own epoll/timer fds). */
void loop_free(struct loop *l);
/* The epoll fd: readable when loop_dispatch() has work. */
int loop_fd(const struct loop *l);
/* Watch @fd for @events (EPOLLIN ...). The loop does not own @fd. */
int loop_watch_add(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *ctx,
		   struct loop_watch **ret);
/* Change the events @w waits for (0: none but errors). */
int loop_watch_mod(struct loop *l, struct loop_watch *w, uint32_t events);
/* Stop watching; safe from inside any callback of the same loop. NULL-safe. */
void loop_watch_del(struct loop *l, struct loop_watch *w);
/* One-shot timer after @ms milliseconds. */
int loop_timer_add(struct loop *l, uint64_t ms, loop_timer_fn fn, void *ctx,
		   struct loop_timer **ret);
/* Cancel a pending timer; safe from callbacks. NULL-safe. */
void loop_timer_del(struct loop *l, struct loop_timer *t);
/* Run @fn(@ctx) on the loop's thread at the next dispatch (any thread). */
int loop_post(struct loop *l, loop_timer_fn fn, void *ctx);
/* Wait up to @timeout_ms and run ready callbacks. Returns count or -errno. */
int loop_dispatch(struct loop *l, int timeout_ms);

#endif
