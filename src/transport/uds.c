/* SPDX-License-Identifier: MIT */
/*
 * Unix stream sockets: listen (replacing only a stale socket file), accept
 * and connect. Every fd is O_CLOEXEC; listening and accepted fds are
 * non-blocking.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport/transport.h"
#include "util/fd.h"
#include "util/log.h"

#define UDS_BACKLOG 128

/* Fill @sa for @path; -ENAMETOOLONG / -EINVAL for unusable paths. */
static int make_addr(const char *path, struct sockaddr_un *sa)
{
	size_t n;

	if (!path || !path[0])
		return -EINVAL;
	n = strlen(path);
	if (n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, n + 1);
	return 0;
}

/*
 * Decide what to do with an existing file at @sa's path: 0 if it is a
 * stale socket (removed here), -EADDRINUSE if something listens on it,
 * -EEXIST if it is not a socket, -errno otherwise.
 */
static int remove_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int probe, rc;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe < 0)
		return -errno;
	rc = connect(probe, (const struct sockaddr *)sa, sizeof(*sa));
	if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS)
		rc = -EADDRINUSE; /* a live listener (EAGAIN: its backlog is full) */
	else if (errno == ECONNREFUSED)
		rc = unlink(sa->sun_path) < 0 && errno != ENOENT ? -errno : 0;
	else
		rc = -errno;
	fd_close(&probe);
	return rc;
}

/* chmod/chown the socket file as asked; fields equal to (x)-1 are kept. */
static int apply_perm(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	if (mode != (mode_t)-1 && chmod(path, mode) < 0)
		return -errno;
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid) < 0)
		return -errno;
	return 0;
}

int uds_listen(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	struct sockaddr_un sa;
	int fd, rc;

	rc = make_addr(path, &sa);
	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		if (rc != -EADDRINUSE)
			goto err_close_fd;
		rc = remove_stale(&sa);
		if (rc < 0)
			goto err_close_fd;
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			rc = -errno;
			goto err_close_fd;
		}
	}
	rc = apply_perm(path, mode, uid, gid);
	if (rc < 0)
		goto err_unlink;
	if (listen(fd, UDS_BACKLOG) < 0) {
		rc = -errno;
		goto err_unlink;
	}
	return fd;

err_unlink:
	(void)unlink(path);
err_close_fd:
	fd_close(&fd);
	return rc;
}

int uds_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0)
			return fd;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EWOULDBLOCK)
			return -EAGAIN;
		return -errno;
	}
}

int uds_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd, rc;

	rc = make_addr(path, &sa);
	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/*
	 * A Unix stream connect completes at once or fails; it does not wait,
	 * except that a full backlog answers EAGAIN (and some kernels could
	 * answer EINPROGRESS): both mean "not now", the caller retries later.
	 */
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		rc = (errno == EAGAIN || errno == EINPROGRESS) ? -EAGAIN : -errno;
		goto err_close_fd;
	}
	return fd;

err_close_fd:
	fd_close(&fd);
	return rc;
}
