/* SPDX-License-Identifier: MIT */
/*
 * Test harness, frontend side: a vhost-user frontend ("vuf") that speaks the
 * protocol like QEMU over a Unix socket to the library under test: typed
 * requests with reply checking, QEMU's negotiation and vring start-up for
 * the guest rings of gvq.h, and raw bytes and fds for hostile tests. Every
 * wait has a deadline. With an idle hook (vuf_set_idle) it also drives a
 * library running app-driven in the same thread: the hook (one loop
 * iteration) runs whenever vuf would otherwise block. Uses src/proto/msg.h
 * for the wire structs.
 */
#ifndef VHK_TEST_VUF_H
#define VHK_TEST_VUF_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/msg.h"
#include "gvq.h"

struct vuf {
	int fd;
	uint64_t features;          /* negotiated (after vuf_negotiate) */
	uint64_t protocol_features; /* negotiated */
	int backend_req_fd;         /* our end of the backend channel, or -1 */
};

/* Frontend as client (library in server mode). Retries for up to @timeout_ms (0: once). */
int vuf_connect(const char *path, int timeout_ms, struct vuf **ret);
/* Frontend as server (library in client mode): listen, then accept. */
int vuf_listen(const char *path, int *ret_lfd);
int vuf_accept(int lfd, int timeout_ms, struct vuf **ret);
/* Wrap a connected socket @fd (ownership moves to the vuf). */
int vuf_from_fd(int fd, struct vuf **ret);
/* Close the socket (and the backend channel) and free @v. NULL-safe. */
void vuf_close(struct vuf *v);

/*
 * Idle hook: while any vuf call waits for the peer (connect, accept,
 * receive, a full send buffer, vuf_idle), it calls @fn(@arg) instead of
 * sleeping, e.g. one vhk_loop_dispatch(1) of a library running app-driven
 * in this thread. NULL removes it. Process-wide.
 */
void vuf_set_idle(void (*fn)(void *arg), void *arg);
/* Let about @ms milliseconds pass, running the idle hook meanwhile (else sleeping). */
void vuf_idle(int ms);
/* True if the peer sends something (or closes) within @timeout_ms; consumes nothing. */
bool vuf_readable(struct vuf *v, int timeout_ms);

/* Raw message I/O. Returns 0 or -errno. */
int vuf_send(struct vuf *v, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	     const int *fds, int nfds);
/* Send raw bytes (for malformed-header tests). */
int vuf_send_raw(struct vuf *v, const void *buf, uint32_t len, const int *fds, int nfds);
/* Receive one message; -ETIMEDOUT, -ECONNRESET on EOF. */
int vuf_recv(struct vuf *v, struct vhost_user_msg *msg, int timeout_ms);
/* Timeout vuf_request waits for a reply (default 5000 ms; <= 0 restores it). */
void vuf_set_reply_timeout(int timeout_ms);
/* True if the backend closed the connection (EOF within @timeout_ms). */
bool vuf_peer_closed(struct vuf *v, int timeout_ms);

/*
 * Send @req; if REPLY_ACK was negotiated set NEED_REPLY and return the
 * ack (0 ok, >0 nack => -EPROTO); messages with their own reply return it in
 * @reply (may be NULL). Returns 0, -EPROTO (nack), -errno.
 */
int vuf_request(struct vuf *v, uint32_t req, const void *payload, uint32_t size,
		const int *fds, int nfds, struct vhost_user_msg *reply);

/* Typed helpers (each uses vuf_request). */
int vuf_get_u64(struct vuf *v, uint32_t req, uint64_t *ret);
int vuf_set_u64(struct vuf *v, uint32_t req, uint64_t val);
int vuf_set_vring_state(struct vuf *v, uint32_t req, uint32_t index, uint32_t num);
int vuf_get_vring_base(struct vuf *v, uint32_t index, uint32_t *ret_num);
/* SET_VRING_ADDR with the areas of @q (packed: driver area as avail, device area as used). */
int vuf_set_vring_addr(struct vuf *v, uint32_t index, const struct gvq *q);
/* fd < 0 sends the NOFD bit. */
int vuf_set_vring_fd(struct vuf *v, uint32_t req, uint32_t index, int fd);
int vuf_set_mem_table(struct vuf *v, const struct gmem *m);
int vuf_add_mem_reg(struct vuf *v, const struct gmem_region *r);
int vuf_rem_mem_reg(struct vuf *v, const struct gmem_region *r);

/*
 * Negotiate like QEMU: GET_FEATURES, GET_PROTOCOL_FEATURES,
 * SET_PROTOCOL_FEATURES (want & offered), GET_QUEUE_NUM (if MQ),
 * SET_OWNER, SET_FEATURES (want & offered). Stores the results in @v.
 */
int vuf_negotiate(struct vuf *v, uint64_t want_features, uint64_t want_protocol_features);

/*
 * Full vring setup like QEMU's vhost_virtqueue_start, for either format:
 * SET_VRING_NUM, SET_VRING_BASE gvq_base(@q) (0 for a fresh split ring,
 * 0x80008000 for a fresh packed one), SET_VRING_ADDR, SET_VRING_KICK
 * (q->kick_fd), SET_VRING_CALL (q->call_fd), then SET_VRING_ENABLE 1 when
 * F_PROTOCOL_FEATURES was negotiated.
 */
int vuf_start_vring(struct vuf *v, uint32_t index, struct gvq *q);
/* The same with SET_VRING_BASE @base. */
int vuf_start_vring_base(struct vuf *v, uint32_t index, struct gvq *q, uint32_t base);

#endif
