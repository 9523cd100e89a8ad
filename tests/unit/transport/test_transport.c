/* SPDX-License-Identifier: MIT */
/* Unit tests of src/transport: unix sockets, fd passing, event loop. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "test.h"
#include "transport/transport.h"
#include "util/fd.h"

/* A fresh socket path under /tmp for this process. */
static const char *tmp_path(const char *tag)
{
	static char buf[108];

	snprintf(buf, sizeof(buf), "/tmp/vhk-tt-%d-%s.sock", (int)getpid(), tag);
	unlink(buf);
	return buf;
}

/* Bind a socket at @path and close it without unlinking: a stale file. */
static void make_stale(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, path);
	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
}

static bool has_flags(int fd)
{
	return (fcntl(fd, F_GETFD) & FD_CLOEXEC) && (fcntl(fd, F_GETFL) & O_NONBLOCK);
}

static void t_stale_socket_replaced(void)
{
	const char *p = tmp_path("stale");

	make_stale(p);
	int lfd = uds_listen(p, (mode_t)-1, (uid_t)-1, (gid_t)-1);
	CHECK(lfd >= 0);
	CHECK(has_flags(lfd));
	int cfd = uds_connect(p);
	CHECK(cfd >= 0);
	CHECK(fcntl(cfd, F_GETFD) & FD_CLOEXEC);
	int afd = uds_accept(lfd);
	CHECK(afd >= 0);
	CHECK(has_flags(afd));
	CHECK_EQ(uds_accept(lfd), -EAGAIN);
	close(afd);
	close(cfd);
	close(lfd);
	unlink(p);
}

static void t_live_socket_refused(void)
{
	const char *p = tmp_path("live");
	int lfd = uds_listen(p, (mode_t)-1, (uid_t)-1, (gid_t)-1);

	CHECK(lfd >= 0);
	CHECK_EQ(uds_listen(p, (mode_t)-1, (uid_t)-1, (gid_t)-1), -EADDRINUSE);
	/* The first listener still works. */
	int cfd = uds_connect(p);
	CHECK(cfd >= 0);
	int afd = uds_accept(lfd);
	CHECK(afd >= 0);
	close(afd);
	close(cfd);
	close(lfd);
	unlink(p);
}

static void t_non_socket_refused(void)
{
	const char *p = tmp_path("file");
	int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	struct stat st;

	CHECK(fd >= 0);
	CHECK(write(fd, "x", 1) == 1);
	close(fd);
	CHECK_EQ(uds_listen(p, (mode_t)-1, (uid_t)-1, (gid_t)-1), -EEXIST);
	CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 1);
	unlink(p);
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	CHECK(uds_listen(longp, (mode_t)-1, (uid_t)-1, (gid_t)-1) < 0);
	CHECK(uds_connect(longp) < 0);
	CHECK(uds_connect(tmp_path("absent")) == -ENOENT);
}

static void t_perms_applied(void)
{
	const char *p = tmp_path("perm");
	struct stat st;
	int lfd = uds_listen(p, 0600, (uid_t)-1, getgid());

	CHECK(lfd >= 0);
	CHECK(stat(p, &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK_EQ(st.st_gid, getgid());
	close(lfd);
	unlink(p);
	lfd = uds_listen(p, 0660, (uid_t)-1, (gid_t)-1);
	CHECK(lfd >= 0);
	CHECK(stat(p, &st) == 0);
	CHECK_EQ(st.st_mode & 0777, 0660);
	close(lfd);
	unlink(p);
}

/* A connected non-blocking stream pair. */
static void pair(int sv[2])
{
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
}

static void t_fd_passing(void)
{
	int sv[2], efd[3], got[8];
	size_t n = 0;
	char buf[16];

	pair(sv);
	for (int i = 0; i < 3; i++)
		efd[i] = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(fdmsg_send(sv[0], "hello", 5, efd, 3, 100), 0);
	CHECK_EQ(fdmsg_recv(sv[1], buf, sizeof(buf), got, &n, 8), 5);
	CHECK(!memcmp(buf, "hello", 5));
	CHECK_EQ(n, 3);
	for (size_t i = 0; i < n; i++) {
		CHECK(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
		/* Same eventfd: a write on ours is seen on theirs. */
		CHECK_EQ(fd_eventfd_write(efd[i]), 0);
		CHECK_EQ(fd_eventfd_drain(got[i]), 1);
	}
	CHECK_EQ(fdmsg_recv(sv[1], buf, sizeof(buf), got, &n, 8), -EAGAIN);
	/* Accumulation: fds of a second recvmsg are stored after the first ones. */
	CHECK_EQ(fdmsg_send(sv[0], "ab", 2, efd, 1, 100), 0);
	CHECK_EQ(fdmsg_recv(sv[1], buf, 1, got, &n, 8), 1);
	CHECK_EQ(n, 4);
	CHECK_EQ(fdmsg_recv(sv[1], buf, 1, got, &n, 8), 1);
	CHECK_EQ(n, 4);
	fd_close_all(got, n);
	fd_close_all(efd, 3);
	close(sv[0]);
	CHECK_EQ(fdmsg_recv(sv[1], buf, sizeof(buf), got, &n, 8), 0);
	close(sv[1]);
}

static void t_too_many_fds_closed(void)
{
	int sv[2], efd[20], got[8];
	char buf[4];
	int base = fd_count_open();

	pair(sv);
	for (int i = 0; i < 20; i++)
		efd[i] = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(fdmsg_send(sv[0], "x", 1, efd, 20, 100), 0);
	fd_close_all(efd, 20);
	size_t n = 0;
	CHECK_EQ(fdmsg_recv(sv[1], buf, sizeof(buf), got, &n, 8), -EPROTO);
	CHECK_EQ(n, 8);
	fd_close_all(got, n);
	/* Already holding 6 of 8: the rest are closed too. */
	for (int i = 0; i < 4; i++)
		efd[i] = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(fdmsg_send(sv[0], "y", 1, efd, 4, 100), 0);
	fd_close_all(efd, 4);
	n = 6;
	for (int i = 0; i < 6; i++)
		got[i] = -1;
	CHECK_EQ(fdmsg_recv(sv[1], buf, sizeof(buf), got, &n, 8), -EPROTO);
	CHECK_EQ(n, 8);
	fd_close_all(got, n);
	close(sv[0]);
	close(sv[1]);
	CHECK_EQ(fd_count_open(), base);
}

static void t_no_fd_leak(void)
{
	int sv[2], got[8];
	char buf[8];
	int base = fd_count_open();

	pair(sv);
	for (int round = 0; round < 3000; round++) {
		int efd[10];
		int k = round % 3 == 0 ? 10 : 2;
		for (int i = 0; i < k; i++)
			efd[i] = eventfd(0, EFD_CLOEXEC);
		CHECK_EQ(fdmsg_send(sv[0], "abcd", 4, efd, (size_t)k, 100), 0);
		fd_close_all(efd, (size_t)k);
		size_t n = 0;
		ssize_t r = fdmsg_recv(sv[1], buf, sizeof(buf), got, &n, 8);
		CHECK(k == 10 ? r == -EPROTO : r == 4);
		fd_close_all(got, n);
		/* The bytes were consumed with the fds, even on -EPROTO. */
		CHECK_EQ(fdmsg_recv(sv[1], buf, sizeof(buf), got, &n, 8), -EAGAIN);
	}
	close(sv[0]);
	close(sv[1]);
	CHECK_EQ(fd_count_open(), base);
}

static void t_send_timeout(void)
{
	int sv[2];
	static char big[65536];

	pair(sv);
	int rc;
	while ((rc = fdmsg_send(sv[0], big, sizeof(big), NULL, 0, 20)) == 0)
		;
	CHECK_EQ(rc, -ETIMEDOUT);
	close(sv[1]);
	CHECK_EQ(fdmsg_send(sv[0], "x", 1, NULL, 0, 20), -EPIPE);
	close(sv[0]);
}

/* ---- loop ---- */

struct ev_ctx {
	struct loop *l;
	struct loop_watch *self, *other;
	int calls;
	int order[8];
	int norder;
	struct loop_timer *victim;
};

static void on_fd_del_other(void *ctx, int fd, uint32_t events)
{
	struct ev_ctx *e = ctx;

	e->calls++;
	loop_watch_del(e->l, e->other);
	loop_watch_del(e->l, e->self);
	e->other = e->self = NULL;
}

static void t_watch_del_in_callback(void)
{
	struct loop *l;
	int a[2], b[2];
	struct ev_ctx e1 = {0}, e2 = {0};

	CHECK_EQ(loop_new(&l), 0);
	pair(a);
	pair(b);
	CHECK(write(a[0], "x", 1) == 1);
	CHECK(write(b[0], "x", 1) == 1);
	e1.l = e2.l = l;
	CHECK_EQ(loop_watch_add(l, a[1], EPOLLIN, on_fd_del_other, &e1, &e1.self), 0);
	CHECK_EQ(loop_watch_add(l, b[1], EPOLLIN, on_fd_del_other, &e2, &e2.self), 0);
	e1.other = e2.self;
	e2.other = e1.self;
	int n = loop_dispatch(l, 100);
	/* Whichever ran first removed the other: exactly one callback. */
	CHECK_EQ(e1.calls + e2.calls, 1);
	CHECK_EQ(n, 1);
	CHECK_EQ(loop_dispatch(l, 0), 0);
	loop_free(l);
	close(a[0]), close(a[1]), close(b[0]), close(b[1]);
}

static void on_timer(void *ctx)
{
	struct ev_ctx *e = ctx;

	e->order[e->norder++] = e->calls++;
}

struct tmr {
	struct ev_ctx *e;
	int id;
};

static void on_timer_id(void *ctx)
{
	struct tmr *t = ctx;

	t->e->order[t->e->norder++] = t->id;
	if (t->e->victim) {
		loop_timer_del(t->e->l, t->e->victim);
		t->e->victim = NULL;
	}
}

static int pump(struct loop *l, int ms)
{
	struct timespec a, b;
	int total = 0;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (;;) {
		int n = loop_dispatch(l, 10);
		CHECK(n >= 0);
		total += n;
		clock_gettime(CLOCK_MONOTONIC, &b);
		if ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 >= ms)
			return total;
	}
}

static void t_loop_timers(void)
{
	struct loop *l;
	struct ev_ctx e = {0};
	struct tmr t1 = {&e, 1}, t2 = {&e, 2}, t3 = {&e, 3}, t4 = {&e, 4};
	struct loop_timer *h1, *h2, *h3, *h4;

	CHECK_EQ(loop_new(&l), 0);
	e.l = l;
	CHECK_EQ(loop_timer_add(l, 60, on_timer_id, &t3, &h3), 0);
	CHECK_EQ(loop_timer_add(l, 20, on_timer_id, &t1, &h1), 0);
	CHECK_EQ(loop_timer_add(l, 40, on_timer_id, &t2, &h2), 0);
	CHECK_EQ(loop_timer_add(l, 50, on_timer_id, &t4, &h4), 0);
	loop_timer_del(l, h4); /* cancelled before it fires */
	/* The loop fd becomes readable when the first timer is due. */
	struct pollfd p = {.fd = loop_fd(l), .events = POLLIN};
	CHECK_EQ(poll(&p, 1, 1000), 1);
	pump(l, 150);
	CHECK_EQ(e.norder, 3);
	CHECK_EQ(e.order[0], 1);
	CHECK_EQ(e.order[1], 2);
	CHECK_EQ(e.order[2], 3);
	/* Two timers due together; the first to run cancels the other. */
	e.norder = 0;
	CHECK_EQ(loop_timer_add(l, 0, on_timer_id, &t1, &h1), 0);
	CHECK_EQ(loop_timer_add(l, 0, on_timer_id, &t2, &h2), 0);
	e.victim = h2;
	pump(l, 50);
	CHECK_EQ(e.norder, 1);
	CHECK_EQ(e.order[0], 1);
	loop_free(l);
}

static void *post_thread(void *arg)
{
	struct ev_ctx *e = arg;

	for (int i = 0; i < 5; i++)
		CHECK_EQ(loop_post(e->l, on_timer, e), 0);
	return NULL;
}

static void t_loop_post(void)
{
	struct loop *l;
	struct ev_ctx e = {0};
	pthread_t t;

	CHECK_EQ(loop_new(&l), 0);
	e.l = l;
	CHECK_EQ(loop_dispatch(l, 0), 0);
	CHECK(pthread_create(&t, NULL, post_thread, &e) == 0);
	pthread_join(t, NULL);
	struct pollfd p = {.fd = loop_fd(l), .events = POLLIN};
	CHECK_EQ(poll(&p, 1, 1000), 1);
	CHECK_EQ(loop_dispatch(l, 100), 5);
	CHECK_EQ(e.calls, 5);
	CHECK_EQ(e.order[4], 4);
	/* Pending posts are freed with the loop. */
	CHECK_EQ(loop_post(l, on_timer, &e), 0);
	loop_free(l);
}

static void t_loop_no_leak(void)
{
	int base = fd_count_open();

	for (int i = 0; i < 2000; i++) {
		struct loop *l;
		struct loop_timer *t;
		int sv[2];
		CHECK_EQ(loop_new(&l), 0);
		pair(sv);
		CHECK_EQ(loop_watch_add(l, sv[0], EPOLLIN, on_fd_del_other, NULL, NULL), 0);
		CHECK_EQ(loop_timer_add(l, 1000, on_timer, NULL, &t), 0);
		loop_free(l);
		close(sv[0]);
		close(sv[1]);
	}
	CHECK_EQ(fd_count_open(), base);
}

/*
 * uds_connect never waits: a listener whose backlog is full (nobody
 * accepts) answers -EAGAIN at once instead of blocking the caller (the
 * control thread, when reconnecting). The alarm ends a blocking connect.
 */
static void t_connect_never_blocks(void)
{
	const char *p = tmp_path("backlog");
	int lfd = uds_listen(p, (mode_t)-1, (uid_t)-1, (gid_t)-1), fds[4096], n = 0, rc = 0;

	CHECK(lfd >= 0);
	CHECK_EQ(listen(lfd, 1), 0); /* shrink the backlog */
	alarm(10);
	while (n < 4096 && (rc = uds_connect(p)) >= 0) {
		CHECK(has_flags(rc));
		fds[n++] = rc;
	}
	alarm(0);
	CHECK_EQ(rc, -EAGAIN);
	CHECK(n >= 1);
	/* Once accepted, connecting works again. */
	int a = uds_accept(lfd);
	CHECK(a >= 0);
	rc = uds_connect(p);
	CHECK(rc >= 0);
	close(rc);
	close(a);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	close(lfd);
	unlink(p);
	CHECK_EQ(uds_connect(p), -ENOENT);
}

/* Output queues: order, fds with the first byte, partial sends, the bound, no leak. */
static void t_outq(void)
{
	int sv[2], base = fd_count_open();
	struct outq q;
	static char big[256 * 1024];

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	outq_init(&q, 3, sizeof(big) + 16);
	int efd = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(outq_push(&q, "one", 3, &efd, 1), 0);
	CHECK_EQ(efd, -1); /* the queue owns it */
	CHECK_EQ(outq_push(&q, big, sizeof(big), NULL, 0), 0);
	CHECK_EQ(outq_push(&q, "end", 3, NULL, 0), 0);
	CHECK_EQ(outq_push(&q, "x", 1, NULL, 0), -ENOBUFS); /* 3 messages at most */
	int e2 = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(outq_push(&q, "x", 1, &e2, 1), -ENOBUFS);
	CHECK_EQ(e2, -1); /* closed on failure too */
	/* The socket takes part of it: the rest waits. */
	CHECK_EQ(outq_flush(&q, sv[0]), -EAGAIN);
	CHECK(!outq_empty(&q));
	/* Drain the peer side: the first message comes with its fd. */
	char buf[4096];
	int fds[2];
	size_t nfds = 0, got = 0;
	ssize_t r = fdmsg_recv(sv[1], buf, 3, fds, &nfds, 2);
	CHECK_EQ(r, 3);
	CHECK_EQ(nfds, 1);
	CHECK(!memcmp(buf, "one", 3));
	close(fds[0]);
	while (got < sizeof(big) + 3) {
		int rc = outq_flush(&q, sv[0]);
		CHECK(rc == 0 || rc == -EAGAIN);
		r = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
		if (r > 0) {
			if (got + (size_t)r > sizeof(big))
				CHECK(!memcmp(buf + (sizeof(big) > got ? sizeof(big) - got : 0), "end",
					      got + (size_t)r - sizeof(big)));
			got += (size_t)r;
		}
	}
	CHECK(outq_empty(&q));
	CHECK_EQ(outq_flush(&q, sv[0]), 0);
	/* A cleared queue closes what it held; a broken socket is an error, not a wait. */
	efd = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(outq_push(&q, "z", 1, &efd, 1), 0);
	close(sv[1]);
	CHECK_EQ(outq_flush(&q, sv[0]), -EPIPE);
	outq_clear(&q);
	CHECK(outq_empty(&q));
	close(sv[0]);
	CHECK_EQ(fd_count_open(), base);
}

TEST_MAIN(TEST(t_stale_socket_replaced), TEST(t_live_socket_refused), TEST(t_non_socket_refused),
	  TEST(t_perms_applied), TEST(t_fd_passing), TEST(t_too_many_fds_closed),
	  TEST(t_no_fd_leak), TEST(t_send_timeout), TEST(t_watch_del_in_callback),
	  TEST(t_loop_timers), TEST(t_loop_post), TEST(t_loop_no_leak), TEST(t_connect_never_blocks),
	  TEST(t_outq))
