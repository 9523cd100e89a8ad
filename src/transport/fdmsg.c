/* SPDX-License-Identifier: MIT */
/*
 * Byte-stream messages with SCM_RIGHTS file descriptors.
 *
 * Security model: the peer decides how many fds it attaches. The control
 * buffer has room for more than any caller accepts so that a flood is
 * seen (and closed) rather than silently truncated; every fd that arrives
 * is either handed to the caller or closed here, including on MSG_CTRUNC.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "transport/transport.h"
#include "util/compiler.h"
#include "util/fd.h"

/* Room in the control buffer: well beyond the 8 fds vhost-user allows. */
#define FDMSG_CMSG_FDS 32

union cmsg_buf {
	struct cmsghdr align;
	char buf[CMSG_SPACE(sizeof(int) * FDMSG_CMSG_FDS)];
};

/*
 * Move the fds of every SCM_RIGHTS header of @mh into fds[*nfds ..
 * max_fds), closing any that do not fit. Returns true if some were closed.
 */
static bool harvest_fds(struct msghdr *mh, int *fds, size_t *nfds, size_t max_fds)
{
	bool dropped = false;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *p = CMSG_DATA(cm);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, p + i * sizeof(int), sizeof(int));
			if (*nfds < max_fds) {
				fds[(*nfds)++] = fd;
			} else {
				fd_close(&fd);
				dropped = true;
			}
		}
	}
	return dropped;
}

ssize_t fdmsg_recv(int fd, void *buf, size_t len, int *fds, size_t *nfds, size_t max_fds)
{
	union cmsg_buf cbuf;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = cbuf.buf,
	    .msg_controllen = sizeof(cbuf.buf),
	};
	ssize_t r;

	do {
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	bool dropped = harvest_fds(&mh, fds, nfds, max_fds);
	if (dropped || (mh.msg_flags & MSG_CTRUNC))
		return -EPROTO;
	return r;
}

/* Milliseconds left until @deadline (CLOCK_MONOTONIC), at least 0. */
static int ms_left(const struct timespec *deadline)
{
	struct timespec now;
	int64_t ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
	     (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : (ms > 1000000 ? 1000000 : (int)ms);
}

/* Wait until @fd is writable or the deadline passes: 0, -ETIMEDOUT, -errno. */
static int wait_writable(int fd, const struct timespec *deadline)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};

	for (;;) {
		int r = poll(&p, 1, ms_left(deadline));
		if (r > 0)
			return (p.revents & (POLLERR | POLLNVAL)) ? -EPIPE : 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

ssize_t fdmsg_send_nb(int fd, const void *buf, size_t len, const int *fds, size_t nfds)
{
	union cmsg_buf cbuf;
	struct iovec iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t r;

	if (nfds > FDMSG_CMSG_FDS || (nfds && len == 0))
		return -EINVAL;
	if (nfds) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do {
		r = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -errno;
	return r;
}

int fdmsg_send(int fd, const void *buf, size_t len, const int *fds, size_t nfds, int timeout_ms)
{
	struct timespec deadline;
	size_t off = 0;

	if (nfds > FDMSG_CMSG_FDS || (nfds && len == 0))
		return -EINVAL;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	while (off < len || (len == 0 && off == 0)) {
		/* The fds travel with the first byte. */
		ssize_t r = fdmsg_send_nb(fd, (const char *)buf + off, len - off,
					  off == 0 ? fds : NULL, off == 0 ? nfds : 0);
		if (r >= 0) {
			off += (size_t)r;
			if (len == 0)
				break;
			continue;
		}
		if (r != -EAGAIN)
			return (int)r;
		int rc = wait_writable(fd, &deadline);
		if (rc < 0)
			return rc;
	}
	return 0;
}
