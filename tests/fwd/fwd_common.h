/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the vhk-fwd tests: run apps/vhk-fwd as a child process (binary
 * from $VHK_FWD_BIN), read its JSON line, and a small "guest" built on the
 * test frontend (vuf) and guest virtqueues (gvq) in the negotiated format.
 */
#ifndef VHK_TEST_FWD_COMMON_H
#define VHK_TEST_FWD_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "gvq.h"
#include "vuf.h"

#define FWD_HDR 12        /* virtio_net_hdr_mrg_rxbuf (VERSION_1) */
#define FWD_RING 256
#define FWD_RXBUF 2048
#define FWD_MAXQ 4

struct fwdproc {
	pid_t pid;
	int out_fd;         /* read end of the child's stdout */
	char dir[64];
	char path[128];     /* the vhost-user socket */
	char out[65536];    /* everything read from stdout */
	size_t out_len;
};

/* Make a temporary socket path in @fp (no process yet). */
void fwd_prepare(struct fwdproc *fp);
/*
 * Start vhk-fwd on fp->path with "--stats-period 0 --json" and the NULL
 * terminated extra arguments @args.
 */
void fwd_spawn(struct fwdproc *fp, const char *const *args);
/* Send @sig, read stdout to EOF, reap; returns the exit status (-1 if killed). */
int fwd_finish(struct fwdproc *fp, int sig);
/* Wait for exit without a signal (e.g. --duration); returns the exit status. */
int fwd_wait(struct fwdproc *fp);
/* Value of integer key @key in the last JSON line of the output; CHECKs it exists. */
uint64_t fwd_json_u64(const struct fwdproc *fp, const char *key);
/* Remove the socket file and directory. */
void fwd_cleanup(struct fwdproc *fp);

struct guest {
	struct vuf *v;
	struct gmem *m;
	uint32_t nq;
	struct gvq *rx[FWD_MAXQ], *tx[FWD_MAXQ];
	uint32_t tx_out[FWD_MAXQ]; /* frames posted and not yet used */
};

/* Negotiate (VERSION_1, PROTOCOL_FEATURES, MQ + @extra) and start @nq pairs. */
void guest_setup(struct guest *g, struct vuf *v, uint32_t nq, uint64_t extra);
/* Connect to fp->path as the frontend (server-mode vhk-fwd) and set up. */
void guest_connect(struct guest *g, const char *path, uint32_t nq, uint64_t extra);
/* Transmit one frame (without virtio-net header) on pair @q. */
void guest_send(struct guest *g, uint32_t q, const void *frame, uint32_t len);
/* Receive one frame on pair @q within @timeout_ms: 1 got it, 0 timeout. */
int guest_recv(struct guest *g, uint32_t q, void *frame, uint32_t *len, int timeout_ms);
/* Wait until every frame sent on pair @q was consumed by the device. */
void guest_wait_sent(struct guest *g, uint32_t q);
/* Close the connection and free guest memory and rings. */
void guest_close(struct guest *g);

/* Internet checksum over @len bytes (0 when a stored checksum is correct). */
uint16_t inet_csum(const void *data, uint32_t len, uint32_t sum);

#endif
