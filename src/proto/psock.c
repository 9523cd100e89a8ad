/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user transport's side of registered sockets: starting one
 * (listen in server mode, connect in client mode) and unregistering it.
 * The registry and the settings live in the core (core/sock.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/conn.h"
#include "util/fd.h"
#include "util/log.h"

/* Loop post: free a socket's transport state after the current round. */
static void psock_free(void *ctx)
{
	free(ctx);
}

/* Remove the socket file if it is still the one we created. */
static void unlink_ours(const struct psock *ps)
{
	struct stat st;

	if (lstat(ps->cs->path, &st) == 0 && st.st_dev == ps->file_dev &&
	    st.st_ino == ps->file_ino)
		(void)unlink(ps->cs->path);
}

/* Stop listening / reconnecting and close every connection of @cs. Lock held. */
static void unregister_locked(struct core_sock *cs)
{
	struct psock *ps = cs->transport;

	core_sock_unlink(cs);
	cs->ndevs++; /* keep @cs while its devices are released below */
	if (ps) {
		ps->dead = true;
		if (core_loop()) {
			loop_watch_del(core_loop(), ps->lwatch);
			loop_timer_del(core_loop(), ps->retry);
			loop_timer_del(core_loop(), ps->accept_retry);
		}
		ps->lwatch = NULL;
		ps->retry = NULL;
		ps->accept_retry = NULL;
		fd_close(&ps->lfd);
		fd_close(&ps->pending_fd);
		while (ps->conns)
			conn_close(ps->conns, "socket unregistered");
		if (ps->created_file)
			unlink_ours(ps);
		cs->transport = NULL;
		if (!core_loop() || loop_post(core_loop(), psock_free, ps) < 0)
			free(ps); /* no loop: nothing can reference it */
	}
	cs->ndevs--;
	core_sock_maybe_free(cs);
}

VHK_EXPORT int vhk_socket_unregister(const char *path)
{
	struct core_sock *cs;

	core_lock();
	cs = core_sock_find(path);
	if (cs)
		unregister_locked(cs);
	core_unlock();
	return cs ? 0 : -ENOENT;
}

VHK_EXPORT int vhk_socket_unregister_async(const char *path, void (*done)(void *arg), void *arg)
{
	struct core_sock *cs;
	int rc;

	if (!done)
		return -EINVAL;
	core_lock();
	cs = core_sock_find(path);
	if (!cs) {
		rc = -ENOENT;
		goto out_unlock;
	}
	/*
	 * The completion is posted to the loop: make sure there is one and
	 * that something runs it (the control thread, unless the app drives
	 * the loop), also for a socket that was never started.
	 */
	rc = core_thread_ensure();
	if (rc < 0)
		goto out_unlock;
	cs->unreg_done = done;
	cs->unreg_arg = arg;
	unregister_locked(cs);
out_unlock:
	core_unlock();
	return rc;
}

/* Loop post (client mode): the first connection made by vhk_socket_start(). */
static void client_attach(void *ctx)
{
	struct psock *ps = ctx;

	core_lock();
	if (!ps->dead && ps->pending_fd >= 0) {
		int fd = ps->pending_fd;
		ps->pending_fd = -1;
		(void)conn_new(ps, fd);
	}
	core_unlock();
}

/* Server mode: listen and watch. Lock held. */
static int start_server(struct psock *ps)
{
	const struct core_sock *cs = ps->cs;
	struct stat st;
	int fd = uds_listen(cs->path, cs->mode, cs->uid, cs->gid);
	int rc;

	if (fd < 0)
		return fd;
	if (stat(cs->path, &st) == 0) {
		ps->file_dev = st.st_dev;
		ps->file_ino = st.st_ino;
		ps->created_file = true;
	}
	rc = loop_watch_add(core_loop(), fd, EPOLLIN, psock_accept, ps, &ps->lwatch);
	if (rc < 0)
		goto err_unlink;
	ps->lfd = fd;
	return 0;

err_unlink:
	unlink_ours(ps);
	ps->created_file = false;
	fd_close(&fd);
	return rc;
}

/* Client mode: connect now; retry later unless VHK_NO_RECONNECT. Lock held. */
static int start_client(struct psock *ps)
{
	int fd = uds_connect(ps->cs->path);
	int rc;

	if (fd < 0) {
		if (ps->cs->flags & VHK_NO_RECONNECT)
			return fd;
		psock_schedule_reconnect(ps);
		return ps->retry ? 0 : -ENOMEM;
	}
	ps->pending_fd = fd;
	/* Callbacks run on the loop: the connection is announced from there. */
	rc = loop_post(core_loop(), client_attach, ps);
	if (rc < 0)
		fd_close(&ps->pending_fd);
	return rc;
}

/*
 * Start @cs. The loop and the control thread come first: once the socket
 * listens or connects, nothing can fail any more, so a failed start leaves
 * nothing behind (no file, no fd, not marked started). Lock held.
 */
static int start_locked(struct core_sock *cs)
{
	struct psock *ps;
	int rc;

	if (cs->started)
		return -EALREADY;
	rc = core_loop_ensure();
	if (rc < 0)
		return rc;
	rc = core_thread_ensure();
	if (rc < 0) {
		log_err("%s: cannot start the control thread: %d", cs->path, rc);
		return rc;
	}
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ps->cs = cs;
	ps->lfd = -1;
	ps->pending_fd = -1;
	rc = (cs->flags & VHK_CLIENT) ? start_client(ps) : start_server(ps);
	if (rc < 0) {
		free(ps);
		return rc;
	}
	cs->transport = ps;
	cs->started = true;
	return 0;
}

VHK_EXPORT int vhk_socket_start(const char *path)
{
	struct core_sock *cs;
	int rc;

	core_lock();
	cs = core_sock_find(path);
	rc = cs ? start_locked(cs) : -ENOENT;
	core_unlock();
	return rc;
}
