/* SPDX-License-Identifier: MIT */
/* File-descriptor helpers. */
#ifndef VHK_UTIL_FD_H
#define VHK_UTIL_FD_H

#include <stddef.h>

/* Close *fd if >= 0 and set it to -1. Preserves errno. */
void fd_close(int *fd);
/* Close n fds of an array and set each to -1. */
void fd_close_all(int *fds, size_t n);
/* Set FD_CLOEXEC / O_NONBLOCK. Return 0 or -errno. */
int fd_set_cloexec(int fd);
int fd_set_nonblock(int fd);
/* A CLOEXEC duplicate of @fd, or -errno. */
int fd_dup_cloexec(int fd);
/* eventfd helpers tolerant of EAGAIN; return 0 or -errno. */
int fd_eventfd_write(int fd);
int fd_eventfd_drain(int fd); /* returns 1 if it was signalled, 0 if not, -errno */
/* Number of fds open in this process (for leak tests); -errno on failure. */
int fd_count_open(void);

#endif
