/* SPDX-License-Identifier: MIT */
/*
 * Integration test helpers (see common.h). The library runs its control
 * thread in this process; callbacks land in a mutex-protected event log that
 * the test thread waits on.
 */
#include "common.h"

#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Recent events kept for order checks; counters cover everything. */
#define EV_RING 1024u

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t seq;
	unsigned count[EV_MAX];
	struct ev ring[EV_RING];
	int new_device_ret;
} evlog = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static char base_dir[32];    /* per test binary, removed when main() returns */
static pid_t base_owner;
static char be_dir[64];
static char be_path[108];

/* nftw callback: remove one entry. */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* atexit in the runner process: remove every case's socket directory. */
static void base_dir_cleanup(void)
{
	if (getpid() == base_owner && base_dir[0])
		nftw(base_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs in the runner before main(): one temp dir for all forked cases. */
__attribute__((constructor)) static void base_dir_init(void)
{
	strcpy(base_dir, "/tmp/vhk-it-XXXXXX");
	if (!mkdtemp(base_dir)) {
		base_dir[0] = 0;
		return;
	}
	base_owner = getpid();
	atexit(base_dir_cleanup);
}

void msleep(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Append one event and wake waiters. */
static void ev_push(enum ev_type t, int vid, uint16_t qid, int enable, uint64_t features)
{
	pthread_mutex_lock(&evlog.lock);
	uint64_t s = ++evlog.seq;
	struct ev *e = &evlog.ring[s % EV_RING];
	*e = (struct ev){.type = t, .vid = vid, .qid = qid, .enable = enable,
			 .features = features, .seq = s};
	evlog.count[t]++;
	pthread_cond_broadcast(&evlog.cond);
	pthread_mutex_unlock(&evlog.lock);
}

static int cb_new_device(int vid)
{
	ev_push(EV_NEW_DEV, vid, 0, 0, 0);
	return evlog.new_device_ret;
}

static void cb_destroy_device(int vid)
{
	ev_push(EV_DESTROY_DEV, vid, 0, 0, 0);
}

static int cb_vring_state(int vid, uint16_t qid, int enable)
{
	ev_push(EV_VRING_STATE, vid, qid, enable, 0);
	return 0;
}

static int cb_features(int vid, uint64_t features)
{
	ev_push(EV_FEATURES, vid, 0, 0, features);
	return 0;
}

static int cb_new_conn(int vid)
{
	ev_push(EV_NEW_CONN, vid, 0, 0, 0);
	return 0;
}

static void cb_destroy_conn(int vid)
{
	ev_push(EV_DESTROY_CONN, vid, 0, 0, 0);
}

static const struct vhk_callbacks it_callbacks = {
	.new_device = cb_new_device,
	.destroy_device = cb_destroy_device,
	.vring_state_changed = cb_vring_state,
	.features_changed = cb_features,
	.new_connection = cb_new_conn,
	.destroy_connection = cb_destroy_conn,
};

unsigned ev_count(enum ev_type t)
{
	pthread_mutex_lock(&evlog.lock);
	unsigned n = evlog.count[t];
	pthread_mutex_unlock(&evlog.lock);
	return n;
}

/* Absolute CLOCK_REALTIME deadline @ms from now (pthread_cond_timedwait). */
static struct timespec deadline_in(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

bool ev_wait(enum ev_type t, unsigned n, int timeout_ms)
{
	struct timespec dl = deadline_in(timeout_ms);
	pthread_mutex_lock(&evlog.lock);
	while (evlog.count[t] < n)
		if (pthread_cond_timedwait(&evlog.cond, &evlog.lock, &dl) == ETIMEDOUT)
			break;
	bool ok = evlog.count[t] >= n;
	pthread_mutex_unlock(&evlog.lock);
	return ok;
}

/* ev_find with the lock held. */
static bool ev_find_locked(enum ev_type t, int vid, int qid, int enable, struct ev *ret)
{
	uint64_t lo = evlog.seq >= EV_RING ? evlog.seq - EV_RING + 1 : 1;
	for (uint64_t s = evlog.seq; s >= lo && s > 0; s--) {
		const struct ev *e = &evlog.ring[s % EV_RING];
		if (e->type != t || (vid >= 0 && e->vid != vid) || (qid >= 0 && e->qid != qid) ||
		    (enable >= 0 && e->enable != enable))
			continue;
		if (ret)
			*ret = *e;
		return true;
	}
	return false;
}

bool ev_find(enum ev_type t, int vid, int qid, int enable, struct ev *ret)
{
	pthread_mutex_lock(&evlog.lock);
	bool ok = ev_find_locked(t, vid, qid, enable, ret);
	pthread_mutex_unlock(&evlog.lock);
	return ok;
}

bool ev_wait_match(enum ev_type t, int vid, int qid, int enable, int timeout_ms, struct ev *ret)
{
	struct timespec dl = deadline_in(timeout_ms);
	pthread_mutex_lock(&evlog.lock);
	bool ok;
	while (!(ok = ev_find_locked(t, vid, qid, enable, ret)))
		if (pthread_cond_timedwait(&evlog.cond, &evlog.lock, &dl) == ETIMEDOUT) {
			ok = ev_find_locked(t, vid, qid, enable, ret);
			break;
		}
	pthread_mutex_unlock(&evlog.lock);
	return ok;
}

int ev_conn_vid(void)
{
	struct ev e;
	CHECK(ev_wait(EV_NEW_CONN, 1, 3000));
	CHECK(ev_find(EV_NEW_CONN, -1, -1, -1, &e));
	CHECK(e.vid >= 0);
	return e.vid;
}

const char *be_start(const struct be_cfg *cfg)
{
	CHECK(base_dir[0] != 0);
	snprintf(be_dir, sizeof(be_dir), "%s/b-XXXXXX", base_dir);
	CHECK(mkdtemp(be_dir) != NULL);
	snprintf(be_path, sizeof(be_path), "%s/sock", be_dir);
	evlog.new_device_ret = cfg->new_device_ret;

	if (cfg->ret_listen_fd)
		CHECK_EQ(vuf_listen(be_path, cfg->ret_listen_fd), 0);
	CHECK_EQ(vhk_socket_register(be_path, cfg->flags), 0);
	if (cfg->net)
		CHECK_EQ(vhk_net_attach(be_path), 0);
	else if (cfg->ops)
		CHECK_EQ(vhk_socket_set_device_ops(be_path, cfg->ops), 0);
	if (cfg->features)
		CHECK_EQ(vhk_socket_set_features(be_path, cfg->features), 0);
	if (cfg->protocol_features)
		CHECK_EQ(vhk_socket_set_protocol_features(be_path, cfg->protocol_features), 0);
	if (cfg->pairs)
		CHECK_EQ(vhk_socket_set_max_queues(be_path, 2 * cfg->pairs), 0);
	if (cfg->limits)
		CHECK_EQ(vhk_socket_set_limits(be_path, cfg->limits), 0);
	CHECK_EQ(vhk_socket_set_callbacks(be_path, &it_callbacks, NULL), 0);
	CHECK_EQ(vhk_socket_start(be_path), 0);
	return be_path;
}

void be_stop(void)
{
	CHECK_EQ(vhk_socket_unregister(be_path), 0);
	unlink(be_path);
	rmdir(be_dir);
}

struct vuf *fe_connect(const char *path)
{
	struct vuf *v = NULL;
	CHECK_EQ(vuf_connect(path, 3000, &v), 0);
	return v;
}

struct vuf *fe_open(const char *path, uint64_t f, uint64_t pf)
{
	struct vuf *v = fe_connect(path);
	CHECK_EQ(vuf_negotiate(v, f, pf), 0);
	return v;
}

void fe_usable(struct vuf *v)
{
	uint64_t f = 0;
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_FEATURES, &f), 0);
	CHECK(f != 0);
}

void fe_ack(struct vuf *v, uint32_t req, const void *p, uint32_t size, const int *fds, int nfds)
{
	CHECK_EQ(vuf_request(v, req, p, size, fds, nfds, NULL), 0);
}

void fe_nack(struct vuf *v, uint32_t req, const void *p, uint32_t size, const int *fds,
	     int nfds)
{
	struct vhost_user_msg m;
	CHECK(v->protocol_features & BIT(VHK_PF_REPLY_ACK));
	memset(&m, 0, sizeof(m));
	int rc = vuf_request(v, req, p, size, fds, nfds, &m);
	CHECK_EQ(rc, -EPROTO);
	CHECK_EQ(m.hdr.request, req);
	CHECK_EQ(m.hdr.flags & VHOST_USER_FLAGS_KNOWN, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);
	CHECK_EQ(m.hdr.size, 8);
	CHECK(m.payload.u64 != 0);
	fe_usable(v);
}

void fe_nack_state(struct vuf *v, uint32_t req, uint32_t index, uint32_t num)
{
	struct vhost_user_vring_state s = {.index = index, .num = num};
	fe_nack(v, req, &s, sizeof(s), NULL, 0);
}

/* Read the GET_FEATURES reply that fe_rejected asked for. */
static enum fe_rej read_features_reply(struct vuf *v, struct vhost_user_msg *m, int rc,
				       enum fe_rej how)
{
	if (rc == -ECONNRESET)
		return REJ_CLOSED;
	CHECK_EQ(rc, 0);
	CHECK_EQ(m->hdr.request, VHOST_USER_GET_FEATURES);
	CHECK(m->hdr.flags & VHOST_USER_REPLY_MASK);
	CHECK_EQ(m->hdr.size, 8);
	CHECK(m->payload.u64 != 0);
	return how;
}

enum fe_rej fe_rejected(struct vuf *v, uint32_t req)
{
	struct vhost_user_msg m;
	int rc = vuf_send(v, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0);
	if (rc == -EPIPE || rc == -ECONNRESET)
		return REJ_CLOSED;
	CHECK_EQ(rc, 0);
	rc = vuf_recv(v, &m, 3000);
	if (rc == 0 && m.hdr.request == req && req != VHOST_USER_GET_FEATURES) {
		/* A reply to the hostile message: a NACK, or an empty (failed) reply. */
		CHECK(m.hdr.flags & VHOST_USER_REPLY_MASK);
		CHECK(m.hdr.size == 0 || (m.hdr.size == 8 && m.payload.u64 != 0));
		rc = vuf_recv(v, &m, 3000);
		return read_features_reply(v, &m, rc, REJ_NACK);
	}
	return read_features_reply(v, &m, rc, REJ_IGNORED);
}

enum fe_rej fe_refused(struct vuf *v, uint32_t req)
{
	enum fe_rej r = fe_rejected(v, req);
	CHECK(r != REJ_IGNORED);
	return r;
}

void be_alive(const char *path)
{
	struct vuf *v = fe_open(path, ~0ull, IT_PF_DEFAULT);
	fe_usable(v);
	fe_ack(v, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
	vuf_close(v);
}

void probe_new(struct probe *p)
{
	int fds[2];
	CHECK_EQ(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
	p->rd = fds[0];
	p->wr = fds[1];
}

void probe_sent(struct probe *p)
{
	if (p->wr >= 0)
		close(p->wr);
	p->wr = -1;
}

bool probe_closed(struct probe *p, int timeout_ms)
{
	struct pollfd pfd = {.fd = p->rd, .events = POLLIN};
	int n = poll(&pfd, 1, timeout_ms);
	return n == 1 && (pfd.revents & POLLHUP);
}

void probe_free(struct probe *p)
{
	probe_sent(p);
	if (p->rd >= 0)
		close(p->rd);
	p->rd = -1;
}

int memfd_sized(uint64_t size, void **ret_map)
{
	int fd = memfd_create("it-mem", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, (off_t)size), 0);
	if (ret_map) {
		void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		CHECK(p != MAP_FAILED);
		*ret_map = p;
	}
	return fd;
}

int proc_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	CHECK(d != NULL);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

long proc_rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	CHECK(f != NULL);
	long size = 0, rss = 0;
	CHECK_EQ(fscanf(f, "%ld %ld", &size, &rss), 2);
	fclose(f);
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

long proc_heap_kib(void)
{
	struct mallinfo2 mi = mallinfo2();
	return (long)((mi.uordblks + mi.hblkhd) / 1024);
}

int proc_map_count(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	CHECK(f != NULL);
	int n = 0, c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

int proc_fd_settle(int limit, int timeout_ms)
{
	int n = proc_fd_count();
	for (int waited = 0; n > limit && waited < timeout_ms; waited += 10) {
		msleep(10);
		n = proc_fd_count();
	}
	return n;
}
