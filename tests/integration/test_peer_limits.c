/* SPDX-License-Identifier: MIT */
/*
 * Peers that try to hold the library's resources (issue 14, item 1): each
 * case checks that another frontend is still served promptly (the worst
 * negotiation time is printed) and that nothing leaks.
 *  - a slowloris that never completes a message is closed at its
 *    handshake deadline;
 *  - a thousand connections at once that never negotiate: the oldest go
 *    beyond the bound, device slots are not exhausted;
 *  - the process at its fd limit: accept pauses instead of spinning and
 *    recovers when fds are free again;
 *  - a negotiated frontend that leaves a reply unread is closed at the
 *    reply deadline.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "transport/transport.h"

static const struct vhk_device_ops lim_ops = {.name = "it-limits", .min_queues = 1};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Negotiate a fresh frontend on @path; returns how long it took (ms). */
static double timed_negotiation(const char *path)
{
	double t0 = now_ms();
	struct vuf *v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT);
	fe_usable(v);
	double dt = now_ms() - t0;
	vuf_close(v);
	return dt;
}

/* The peer closed @fd (EOF), within @timeout_ms. */
static bool closed_by_peer(int fd, int timeout_ms)
{
	struct vuf v = {.fd = fd, .backend_req_fd = -1};
	return vuf_peer_closed(&v, timeout_ms);
}

static const char *start(uint32_t handshake_ms, uint32_t max_unneg, uint32_t reply_ms)
{
	static struct vhk_socket_limits l;
	memset(&l, 0, sizeof(l));
	l.handshake_timeout_ms = handshake_ms;
	l.max_unnegotiated = max_unneg;
	l.reply_timeout_ms = reply_ms;
	struct be_cfg cfg = {.ops = &lim_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT, .limits = &l};
	return be_start(&cfg);
}

/* Bad limits are refused; started sockets keep theirs. */
static void t_limits_api(void)
{
	struct vhk_socket_limits l = {0};
	const char *path = start(0, 0, 0);

	CHECK_EQ(vhk_socket_set_limits(path, &l), -EBUSY);
	CHECK_EQ(vhk_socket_set_limits(path, NULL), -EINVAL);
	CHECK_EQ(vhk_socket_set_limits("/nonexistent", &l), -ENOENT);
	l.reserved[3] = 1;
	CHECK_EQ(vhk_socket_set_limits("/nonexistent", &l), -EINVAL);
}

/* A slowloris dribbles a header byte by byte and never finishes: gone at the deadline. */
static void t_slowloris(void)
{
	const char *path = start(600, 0, 0);
	struct vhost_user_header h = {VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, 0};
	int fd = uds_connect(path);
	double t0 = now_ms(), worst = 0;
	bool gone = false;

	CHECK(fd >= 0);
	for (size_t i = 0; i < sizeof(h) - 1 && !gone; i++) {
		if (send(fd, (char *)&h + i, 1, MSG_NOSIGNAL) != 1)
			break;
		double dt = timed_negotiation(path);
		worst = dt > worst ? dt : worst;
		gone = closed_by_peer(fd, 100);
	}
	gone = gone || closed_by_peer(fd, 3000);
	double took = now_ms() - t0;
	fprintf(stderr, "# slowloris closed after %.0f ms; worst negotiation meanwhile %.1f ms\n",
		took, worst);
	CHECK(gone);
	CHECK(took >= 500 && took < 3000);
	CHECK(worst < 500);
	close(fd);
	CHECK(ev_wait(EV_DESTROY_CONN, ev_count(EV_NEW_CONN), 3000));
}

/* A thousand connections at once, none negotiating: bounded, slots never run out. */
static void t_thousand_idle(void)
{
	enum { N = 1000, MAX = 16 };
	const char *path = start(60000, MAX, 0);
	static int fds[N];
	int base = proc_fd_count();
	double worst = 0;

	for (int i = 0; i < N; i++) {
		fds[i] = uds_connect(path);
		CHECK(fds[i] >= 0);
		if (i % 100 == 99) {
			double dt = timed_negotiation(path);
			worst = dt > worst ? dt : worst;
		}
	}
	/* Let the library accept them all: at most MAX of them are still open on its side. */
	for (int i = 0; i < 300 && ev_count(EV_NEW_CONN) < N + 10; i++)
		msleep(10);
	CHECK_EQ(ev_count(EV_NEW_CONN), N + 10);
	CHECK(ev_wait(EV_DESTROY_CONN, N + 10 - MAX, 5000));
	unsigned open_now = ev_count(EV_NEW_CONN) - ev_count(EV_DESTROY_CONN);
	double dt = timed_negotiation(path);
	worst = dt > worst ? dt : worst;
	fprintf(stderr, "# %d idle connections: %u still open in the library; worst negotiation %.1f ms\n",
		N, open_now, worst);
	CHECK(open_now <= MAX);
	CHECK(worst < 500);
	/* The newest survived, the oldest were closed. */
	CHECK(closed_by_peer(fds[0], 1000));
	for (int i = 0; i < N; i++)
		close(fds[i]);
	CHECK(ev_wait(EV_DESTROY_CONN, ev_count(EV_NEW_CONN), 5000));
	CHECK(proc_fd_settle(base, 3000) <= base);
}

/* An fd on the control thread's /proc stat file, opened while fds are still free. */
static int ctrl_stat_fd(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int fd = -1;

	CHECK(d != NULL);
	while (fd < 0 && (e = readdir(d))) {
		char p[300], comm[32] = {0};
		snprintf(p, sizeof(p), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(p, "r");
		if (!f)
			continue;
		bool ctrl = fgets(comm, sizeof(comm), f) && !strncmp(comm, "vhk-ctrl", 8);
		fclose(f);
		snprintf(p, sizeof(p), "/proc/self/task/%s/stat", e->d_name);
		if (ctrl)
			fd = open(p, O_RDONLY | O_CLOEXEC);
	}
	closedir(d);
	CHECK(fd >= 0);
	return fd;
}

/* CPU time (ms) the control thread has used so far. */
static long ctrl_cpu_ms(int fd)
{
	char buf[1024];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	unsigned long ut = 0, st = 0;

	CHECK(n > 0);
	buf[n] = 0;
	const char *s = strrchr(buf, ')');
	CHECK(s && sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2);
	return (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

/*
 * At the fd limit: connections wait in the backlog, accept fails with
 * EMFILE. The control thread must not spin on the readable listening
 * socket, and must accept again once fds are free.
 */
static void t_fd_limit(void)
{
	const char *path = start(0, 0, 0);
	struct rlimit old, lim;
	int fds[256], n = 0;

	int statfd = ctrl_stat_fd();
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)proc_fd_count() + 24;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
	/* Our ends use fds too: connect until we cannot; the library's accepts fail first or last. */
	while (n < 256) {
		int fd = uds_connect(path);
		if (fd < 0)
			break;
		fds[n++] = fd;
	}
	CHECK(n > 4);
	msleep(300); /* the library meets EMFILE */
	long c0 = ctrl_cpu_ms(statfd);
	msleep(1000);
	long busy = ctrl_cpu_ms(statfd) - c0;
	fprintf(stderr, "# at the fd limit: %d connections, control thread busy %ld ms in 1000 ms\n",
		n, busy);
	CHECK(busy < 100);
	/* Free fds: the library accepts again and serves a new frontend. */
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
	unsigned before = ev_count(EV_NEW_CONN);
	double dt = timed_negotiation(path);
	fprintf(stderr, "# after the limit: negotiation %.1f ms\n", dt);
	CHECK(dt < 3000);
	CHECK(ev_count(EV_NEW_CONN) > before);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	close(statfd);
	CHECK(ev_wait(EV_DESTROY_CONN, ev_count(EV_NEW_CONN), 5000));
}

/* A negotiated frontend that stops reading its replies is closed at the reply deadline. */
static void t_reply_unread(void)
{
	const char *path = start(0, 0, 700);
	struct vuf *v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT);
	struct vhost_user_header h = {VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, 0};
	double t0 = now_ms();

	for (int quiet = 0; quiet < 20;) {
		if (send(v->fd, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof(h))
			quiet = 0;
		else
			quiet++, msleep(2);
	}
	double worst = timed_negotiation(path);
	CHECK(ev_wait(EV_DESTROY_CONN, 2, 5000)); /* ours, then the stuck one */
	double took = now_ms() - t0;
	fprintf(stderr, "# unread replies: closed after %.0f ms; another negotiation %.1f ms\n",
		took, worst);
	CHECK(took >= 600 && took < 4000);
	CHECK(worst < 500);
	vuf_close(v);
}

TEST_MAIN(TEST(t_limits_api), TEST(t_slowloris), TEST(t_thousand_idle), TEST(t_fd_limit),
	  TEST(t_reply_unread))
