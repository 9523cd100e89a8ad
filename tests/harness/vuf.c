/* SPDX-License-Identifier: MIT */
/*
 * Test harness, frontend side (see vuf.h): a blocking vhost-user master over
 * a Unix stream socket. Every fd it creates is CLOEXEC; every receive has a
 * deadline so a silent backend makes a test fail instead of hang. Waits go
 * through wait_fd(), which runs the idle hook (an app-driven library's
 * loop) instead of blocking when one is set.
 *
 * The peer is the library under test, so replies are validated (version,
 * REPLY bit, request code, size) before a caller sees them.
 */
#include "vuf.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Largest number of fds vuf will attach to one message (hostile tests send > 8). */
#define VUF_MAX_SEND_FDS 64

static int reply_timeout_ms = 5000;
static void (*idle_fn)(void *arg);
static void *idle_arg;

void vuf_set_idle(void (*fn)(void *arg), void *arg)
{
	idle_fn = fn;
	idle_arg = arg;
}

void vuf_set_reply_timeout(int timeout_ms)
{
	reply_timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
}

/* Milliseconds on CLOCK_MONOTONIC. */
static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until @fd has one of @events or @deadline (ms, CLOCK_MONOTONIC)
 * passes: 1 ready (revents in *@revents if not NULL), 0 timeout, -errno.
 * With an idle hook: poll without blocking, run the hook, repeat.
 */
static int wait_fd(int fd, short events, int64_t deadline, short *revents)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, idle_fn || left < 0 ? 0 : (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0) {
			if (revents)
				*revents = p.revents;
			return 1;
		}
		if (left <= 0)
			return 0;
		if (idle_fn)
			idle_fn(idle_arg);
	}
}

void vuf_idle(int ms)
{
	if (!idle_fn) {
		usleep((useconds_t)ms * 1000);
		return;
	}
	int64_t deadline = now_ms() + ms;
	do
		idle_fn(idle_arg);
	while (now_ms() < deadline);
}

/* Fill a sockaddr_un for @path; -ENAMETOOLONG if it does not fit. */
static int make_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!path || strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

int vuf_from_fd(int fd, struct vuf **ret)
{
	struct vuf *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->fd = fd;
	v->backend_req_fd = -1;
	*ret = v;
	return 0;
}

int vuf_connect(const char *path, int timeout_ms, struct vuf **ret)
{
	struct sockaddr_un sa;
	int rc = make_addr(path, &sa);
	if (rc < 0)
		return rc;
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			rc = vuf_from_fd(fd, ret);
			if (rc < 0)
				close(fd);
			return rc;
		}
		rc = -errno;
		close(fd);
		if (now_ms() >= deadline)
			return rc;
		vuf_idle(5);
	}
}

int vuf_listen(const char *path, int *ret_lfd)
{
	struct sockaddr_un sa;
	int rc = make_addr(path, &sa);
	if (rc < 0)
		return rc;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	*ret_lfd = fd;
	return 0;
}

int vuf_accept(int lfd, int timeout_ms, struct vuf **ret)
{
	int n = wait_fd(lfd, POLLIN, now_ms() + timeout_ms, NULL);
	if (n < 0)
		return n;
	if (n == 0)
		return -ETIMEDOUT;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = vuf_from_fd(fd, ret);
	if (rc < 0)
		close(fd);
	return rc;
}

void vuf_close(struct vuf *v)
{
	if (!v)
		return;
	if (v->fd >= 0)
		close(v->fd);
	if (v->backend_req_fd >= 0)
		close(v->backend_req_fd);
	free(v);
}

/*
 * sendmsg() the iovecs in @iov (advanced in place), attaching @fds to the
 * first chunk only; loops over short writes. Returns 0 or -errno.
 */
static int send_all(int sock, struct iovec *iov, int iovcnt, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VUF_MAX_SEND_FDS)];
		struct cmsghdr align;
	} cm;

	if (nfds < 0 || nfds > VUF_MAX_SEND_FDS || (nfds > 0 && !fds))
		return -EINVAL;
	memset(&cm, 0, sizeof(cm));
	while (iovcnt > 0) {
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
		if (nfds > 0) {
			mh.msg_control = cm.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
		}
		/* With an idle hook the peer runs only while we wait: never block in sendmsg. */
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | (idle_fn ? MSG_DONTWAIT : 0));
		if (n < 0 && errno == EAGAIN && idle_fn) {
			int w = wait_fd(sock, POLLOUT, now_ms() + reply_timeout_ms, NULL);
			if (w <= 0)
				return w < 0 ? w : -ETIMEDOUT;
			continue;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		nfds = 0;
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int vuf_send(struct vuf *v, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	     const int *fds, int nfds)
{
	struct vhost_user_header h = {.request = req, .flags = flags, .size = size};
	struct iovec iov[2] = {
		{.iov_base = &h, .iov_len = sizeof(h)},
		{.iov_base = (void *)(uintptr_t)payload, .iov_len = payload ? size : 0},
	};
	return send_all(v->fd, iov, payload && size ? 2 : 1, fds, nfds);
}

int vuf_send_raw(struct vuf *v, const void *buf, uint32_t len, const int *fds, int nfds)
{
	struct iovec iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
	return send_all(v->fd, &iov, 1, fds, nfds);
}

/* Close every fd carried in the control data of @mh (replies never need them). */
static void close_cmsg_fds(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(fd);
		}
	}
}

/*
 * Read exactly @len bytes before @deadline (ms, CLOCK_MONOTONIC).
 * Returns 0, -ETIMEDOUT, -ECONNRESET on EOF, -errno.
 */
static int recv_exact(int sock, void *buf, size_t len, int64_t deadline)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} cm;
	size_t got = 0;

	while (got < len) {
		int n = wait_fd(sock, POLLIN, deadline, NULL);
		if (n < 0)
			return n;
		if (n == 0)
			return -ETIMEDOUT;
		struct iovec iov = {.iov_base = (char *)buf + got, .iov_len = len - got};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
				    .msg_controllen = sizeof(cm.buf)};
		ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		close_cmsg_fds(&mh);
		if (r == 0)
			return -ECONNRESET;
		got += (size_t)r;
	}
	return 0;
}

int vuf_recv(struct vuf *v, struct vhost_user_msg *msg, int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	memset(&msg->hdr, 0, sizeof(msg->hdr));
	int rc = recv_exact(v->fd, &msg->hdr, sizeof(msg->hdr), deadline);
	if (rc < 0)
		return rc;
	if (msg->hdr.size > VHOST_USER_MAX_PAYLOAD)
		return -EMSGSIZE;
	return recv_exact(v->fd, msg->payload.bytes, msg->hdr.size, deadline);
}

bool vuf_peer_closed(struct vuf *v, int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	char junk[512];

	for (;;) {
		if (wait_fd(v->fd, POLLIN, deadline, NULL) <= 0)
			return false;
		ssize_t r = recv(v->fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
}

bool vuf_readable(struct vuf *v, int timeout_ms)
{
	return wait_fd(v->fd, POLLIN, now_ms() + (timeout_ms > 0 ? timeout_ms : 0), NULL) > 0;
}

/* Whether @req carries its own reply body (so REPLY_ACK does not apply). */
static bool has_own_reply(const struct vuf *v, uint32_t req)
{
	switch (req) {
	case VHOST_USER_GET_FEATURES:
	case VHOST_USER_GET_PROTOCOL_FEATURES:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_GET_QUEUE_NUM:
	case VHOST_USER_GET_CONFIG:
	case VHOST_USER_GET_INFLIGHT_FD:
	case VHOST_USER_GET_MAX_MEM_SLOTS:
	case VHOST_USER_GET_STATUS:
	case VHOST_USER_POSTCOPY_ADVISE:
	case VHOST_USER_POSTCOPY_END:
	case VHOST_USER_GET_SHARED_OBJECT:
	case VHOST_USER_CHECK_DEVICE_STATE:
	case VHOST_USER_GET_SHMEM_CONFIG:
	case VHOST_USER_GET_VRING_BASE_SKIP_DRAIN:
		return true;
	case VHOST_USER_SET_LOG_BASE:
		return v->protocol_features & (1ull << 1 /* LOG_SHMFD */);
	default:
		return false;
	}
}

/* Check that @m is a well-formed reply to @req. */
static int check_reply(const struct vhost_user_msg *m, uint32_t req)
{
	if (m->hdr.request != req)
		return -EPROTO;
	if ((m->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
		return -EPROTO;
	if (!(m->hdr.flags & VHOST_USER_REPLY_MASK))
		return -EPROTO;
	return 0;
}

int vuf_request(struct vuf *v, uint32_t req, const void *payload, uint32_t size,
		const int *fds, int nfds, struct vhost_user_msg *reply)
{
	struct vhost_user_msg scratch;
	bool own = has_own_reply(v, req);
	bool ack = !own && (v->protocol_features & (1ull << 3 /* REPLY_ACK */));
	uint32_t flags = VHOST_USER_VERSION | (ack ? VHOST_USER_NEED_REPLY_MASK : 0);
	struct vhost_user_msg *m = reply ? reply : &scratch;

	int rc = vuf_send(v, req, flags, payload, size, fds, nfds);
	if (rc < 0)
		return rc;
	if (!own && !ack)
		return 0;
	rc = vuf_recv(v, m, reply_timeout_ms);
	if (rc < 0)
		return rc;
	if ((rc = check_reply(m, req)) < 0)
		return rc;
	if (own)
		return 0;
	if (m->hdr.size != sizeof(uint64_t))
		return -EPROTO;
	return m->payload.u64 == 0 ? 0 : -EPROTO;
}

int vuf_get_u64(struct vuf *v, uint32_t req, uint64_t *ret)
{
	struct vhost_user_msg m;
	int rc = vuf_request(v, req, NULL, 0, NULL, 0, &m);
	if (rc < 0)
		return rc;
	if (m.hdr.size != sizeof(uint64_t))
		return -EPROTO;
	*ret = m.payload.u64;
	return 0;
}

int vuf_set_u64(struct vuf *v, uint32_t req, uint64_t val)
{
	return vuf_request(v, req, &val, sizeof(val), NULL, 0, NULL);
}

int vuf_set_vring_state(struct vuf *v, uint32_t req, uint32_t index, uint32_t num)
{
	struct vhost_user_vring_state s = {.index = index, .num = num};
	return vuf_request(v, req, &s, sizeof(s), NULL, 0, NULL);
}

int vuf_get_vring_base(struct vuf *v, uint32_t index, uint32_t *ret_num)
{
	struct vhost_user_vring_state s = {.index = index, .num = 0};
	struct vhost_user_msg m;
	int rc = vuf_request(v, VHOST_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &m);
	if (rc < 0)
		return rc;
	if (m.hdr.size != sizeof(s) || m.payload.state.index != index)
		return -EPROTO;
	*ret_num = m.payload.state.num;
	return 0;
}

int vuf_set_vring_addr(struct vuf *v, uint32_t index, const struct gvq *q)
{
	struct vhost_user_vring_addr a = {
		.index = index,
		.flags = 0,
		.desc_user_addr = gmem_qva(q->mem, q->desc_gpa),
		.used_user_addr = gmem_qva(q->mem, q->used_gpa),
		.avail_user_addr = gmem_qva(q->mem, q->avail_gpa),
		.log_guest_addr = 0,
	};
	if (!a.desc_user_addr || !a.used_user_addr || !a.avail_user_addr)
		return -EINVAL;
	return vuf_request(v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL);
}

int vuf_set_vring_fd(struct vuf *v, uint32_t req, uint32_t index, int fd)
{
	uint64_t val = (index & VHOST_USER_VRING_IDX_MASK) | (fd < 0 ? VHOST_USER_VRING_NOFD_MASK : 0);
	return vuf_request(v, req, &val, sizeof(val), fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1, NULL);
}

/* Wire form of one gmem region (mapped from offset 0 of its memfd). */
static struct vhost_user_mem_region wire_region(const struct gmem_region *r)
{
	struct vhost_user_mem_region w = {
		.guest_phys_addr = r->gpa,
		.memory_size = r->size,
		.userspace_addr = r->qva,
		.mmap_offset = 0,
	};
	return w;
}

int vuf_set_mem_table(struct vuf *v, const struct gmem *m)
{
	struct vhost_user_msg msg;
	int fds[VHOST_MEMORY_BASELINE_NREGIONS];

	if (m->nregions == 0 || m->nregions > VHOST_MEMORY_BASELINE_NREGIONS)
		return -EINVAL;
	memset(&msg.payload, 0, sizeof(msg.payload));
	msg.payload.memory.nregions = m->nregions;
	for (uint32_t i = 0; i < m->nregions; i++) {
		msg.payload.memory.regions[i] = wire_region(&m->r[i]);
		fds[i] = m->r[i].fd;
	}
	uint32_t size = (uint32_t)(VHOST_USER_MEMORY_HDR_SIZE +
				   m->nregions * sizeof(struct vhost_user_mem_region));
	return vuf_request(v, VHOST_USER_SET_MEM_TABLE, &msg.payload, size, fds, (int)m->nregions,
			   NULL);
}

int vuf_add_mem_reg(struct vuf *v, const struct gmem_region *r)
{
	struct vhost_user_mem_reg body = {.padding = 0, .region = wire_region(r)};
	return vuf_request(v, VHOST_USER_ADD_MEM_REG, &body, sizeof(body), &r->fd, 1, NULL);
}

int vuf_rem_mem_reg(struct vuf *v, const struct gmem_region *r)
{
	struct vhost_user_mem_reg body = {.padding = 0, .region = wire_region(r)};
	return vuf_request(v, VHOST_USER_REM_MEM_REG, &body, sizeof(body), NULL, 0, NULL);
}

/* GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES (want & offered), then the
 * queries that depend on them. Fills v->protocol_features. */
static int negotiate_protocol(struct vuf *v, uint64_t want)
{
	uint64_t offered, n;
	int rc = vuf_get_u64(v, VHOST_USER_GET_PROTOCOL_FEATURES, &offered);
	if (rc < 0)
		return rc;
	uint64_t pf = want & offered;
	rc = vuf_set_u64(v, VHOST_USER_SET_PROTOCOL_FEATURES, pf);
	if (rc < 0)
		return rc;
	v->protocol_features = pf;
	if (pf & (1ull << 0 /* MQ */)) {
		if ((rc = vuf_get_u64(v, VHOST_USER_GET_QUEUE_NUM, &n)) < 0)
			return rc;
		if (n == 0)
			return -EPROTO;
	}
	if (pf & (1ull << 15 /* CONFIGURE_MEM_SLOTS */)) {
		if ((rc = vuf_get_u64(v, VHOST_USER_GET_MAX_MEM_SLOTS, &n)) < 0)
			return rc;
		if (n == 0)
			return -EPROTO;
	}
	return 0;
}

int vuf_negotiate(struct vuf *v, uint64_t want_features, uint64_t want_protocol_features)
{
	uint64_t offered;
	int rc = vuf_get_u64(v, VHOST_USER_GET_FEATURES, &offered);
	if (rc < 0)
		return rc;
	uint64_t f = want_features & offered;
	v->protocol_features = 0;
	if (f & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) {
		rc = negotiate_protocol(v, want_protocol_features);
		if (rc < 0)
			return rc;
	}
	if ((rc = vuf_request(v, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, NULL)) < 0)
		return rc;
	if ((rc = vuf_set_u64(v, VHOST_USER_SET_FEATURES, f)) < 0)
		return rc;
	v->features = f;
	return 0;
}

int vuf_start_vring_base(struct vuf *v, uint32_t index, struct gvq *q, uint32_t base)
{
	int rc;
	if ((rc = vuf_set_vring_state(v, VHOST_USER_SET_VRING_NUM, index, q->size)) < 0)
		return rc;
	if ((rc = vuf_set_vring_state(v, VHOST_USER_SET_VRING_BASE, index, base)) < 0)
		return rc;
	if ((rc = vuf_set_vring_addr(v, index, q)) < 0)
		return rc;
	if ((rc = vuf_set_vring_fd(v, VHOST_USER_SET_VRING_KICK, index, q->kick_fd)) < 0)
		return rc;
	if ((rc = vuf_set_vring_fd(v, VHOST_USER_SET_VRING_CALL, index, q->call_fd)) < 0)
		return rc;
	if (v->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))
		rc = vuf_set_vring_state(v, VHOST_USER_SET_VRING_ENABLE, index, 1);
	return rc;
}

int vuf_start_vring(struct vuf *v, uint32_t index, struct gvq *q)
{
	return vuf_start_vring_base(v, index, q, gvq_base(q));
}
