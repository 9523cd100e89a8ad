/* SPDX-License-Identifier: MIT */
/*
 * Internal to proto, the vhost-user transport: its side of registered
 * sockets (struct psock: listening, connecting, reconnecting), connections
 * (struct conn, one device each), the dispatcher and the message handlers.
 * Handlers turn messages into calls of the core (core/core.h), which owns
 * the device and its lifecycle; proto owns the socket, the wire format and
 * the replies.
 *
 * Locking: everything here runs under the one recursive control-plane
 * mutex (core_lock()). Loop callbacks take it; so does every public
 * socket function. Objects that a loop callback may still reference are
 * freed through loop_post() (see transport/loop.c).
 *
 * Includes: util, transport, mem, vq, core and the public headers.
 */
#ifndef VHK_PROTO_CONN_H
#define VHK_PROTO_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vhostkit/vhk_dev.h"
#include "proto/msg.h"
#include "transport/transport.h"
#include "core/core.h"

struct conn;

/* proto's side of a registered socket (struct core_sock::transport). */
struct psock {
	struct core_sock *cs;
	bool dead;	   /* unregistered; freed by a loop post */
	bool created_file; /* we bound the socket file: unlink it */
	int lfd;
	struct loop_watch *lwatch;
	struct loop_timer *retry; /* client reconnect timer */
	int pending_fd;		  /* client: connected, conn_new posted */
	dev_t file_dev;		  /* the socket file we created */
	ino_t file_ino;
	uint32_t backoff_ms;
	struct loop_timer *accept_retry; /* accept paused (EMFILE...): resume then */
	uint32_t accept_backoff_ms;
	unsigned unnegotiated; /* connections that did not negotiate yet */
	uint64_t conn_seq;     /* connections accepted or made so far */
	struct conn *conns;
};

/* Deferred work of a message whose reply waits for the device to settle. */
typedef int (*msg_finish_fn)(struct conn *c);

/* One frontend connection: one device. */
struct conn {
	struct psock *ps; /* NULL once the socket is unregistered */
	struct vdev *dev; /* NULL once closed (the core may still be releasing it) */
	int vid;
	int fd;
	struct loop_watch *watch; /* NULL while nothing is awaited on the socket */
	uint32_t watch_ev;	  /* events it waits for */
	bool dead;		  /* closed; memory freed by a loop post */
	bool suspended;		  /* waiting for device ops */
	bool negotiated;	  /* sent SET_OWNER, SET_FEATURES or SET_MEM_TABLE */
	uint64_t seq;		  /* order of arrival on its socket */
	struct loop_timer *handshake_timer; /* closes it if it does not negotiate in time */
	struct loop_timer *reply_timer;	    /* closes it if it leaves a reply unread too long */
	uint64_t offered_pf;	  /* protocol features offered (copy at connect time) */

	/* Receive state machine. */
	struct vhost_user_msg rx;
	size_t rx_got;
	int rx_fds[VHOST_USER_MAX_FDS];
	size_t rx_nfds;

	/* Message being answered, and its reply. */
	struct vhost_user_msg reply;
	int reply_fd;           /* sent with a successful reply (GET_INFLIGHT_FD, POSTCOPY_ADVISE), else closed */
	const struct msg_desc *cur;
	uint32_t cur_flags;
	int cur_rc;
	msg_finish_fn finish;
	uint32_t finish_q;


	/* Postcopy (h_postcopy.c). */
	int pc_ufd;		      /* our userfaultfd after POSTCOPY_ADVISE, or -1 */
	bool pc_listening;	      /* POSTCOPY_LISTEN seen, POSTCOPY_END not yet */
	struct mem_table *pc_table;   /* mapped, addresses sent, the frontend's ack awaited */
	uint32_t pc_flags;	      /* flags of the SET_MEM_TABLE that table came with */

	struct outq out;	 /* replies waiting for the socket to take them */
	struct bchan *backend;	 /* SET_BACKEND_REQ_FD channel, or NULL */
	struct inband_ring *inband; /* in-band notification state per vring, or NULL */
	struct conn *next;
};

/* Handler context: the request and its fds (set a slot to -1 to own it). */
struct msg_ctx {
	struct vhost_user_msg *msg;
	int *fds;
	size_t nfds;
	struct vhost_user_msg *reply;
};

typedef int (*msg_handler_fn)(struct conn *c, struct msg_ctx *m);

/* VHOST_USER_F_PROTOCOL_FEATURES counts as negotiated (the handshake, or the bit). */
static inline bool conn_pf_negotiated(const struct conn *c)
{
	return c->dev->pf_handshake ||
	       (c->dev->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
}

/* Number of vrings the connection may use. */
static inline uint32_t conn_nvrings(const struct conn *c)
{
	return c->dev->max_vrings > VHK_MAX_QUEUES ? VHK_MAX_QUEUES : c->dev->max_vrings;
}

/* ---- conn.c ---- */
/* Take over connected socket @fd for @ps: new device, new_connection. */
int conn_new(struct psock *ps, int fd);
/*
 * Close a connection: its device is closed in the core (queues stopped,
 * callbacks, memory released once no device op is pending). The struct is
 * freed by a loop post; callers check c->dead after anything that may
 * close it.
 */
void conn_close(struct conn *c, const char *why);
/* @c sent a negotiation message: it no longer counts against the unnegotiated bound. */
void conn_negotiated(struct conn *c);
/* Client mode: try to connect again after the current backoff. */
void psock_schedule_reconnect(struct psock *ps);
/* Server mode: the listening socket is readable. */
void psock_accept(void *ctx, int fd, uint32_t events);
/* Stop accepting for a while (out of fds or memory); @why is the error seen. */
void psock_pause_accept(struct psock *ps, int why);

/* ---- backend.c: the backend request channel ---- */
struct bchan;
/* SET_BACKEND_REQ_FD: a new channel on @fd (taken), replacing the old one. */
void conn_backend_set(struct conn *c, int fd);
void conn_backend_close(struct conn *c);
/* The core's backend_send hook. */
int conn_backend_send(void *owner, const struct core_bmsg *m);

/* ---- inband.c: in-band notifications ---- */
struct inband_ring;
enum inband_kind { INBAND_KICK, INBAND_CALL, INBAND_ERR };
/* In-band notifications were negotiated on @c. */
bool conn_inband(const struct conn *c);
/* An eventfd of ours for vring @q's kick, call or err; its duplicate in *ret_fd for the queue. */
int conn_inband_fd(struct conn *c, uint32_t q, enum inband_kind kind, int *ret_fd);
/* The frontend gave vring @q a real fd of that kind: drop ours. */
void conn_inband_forget(struct conn *c, uint32_t q, enum inband_kind kind);
void conn_inband_free(struct conn *c);

/* ---- dispatch.c ---- */
/* Read and dispatch what @c's socket holds (loop callback). */
void conn_input(void *ctx, int fd, uint32_t events);
/* The core's op_done hook: every pending device op of @c's device finished. */
void conn_ops_done(void *owner);
/*
 * Watch the socket for what the connection needs now: input unless a
 * device op is pending (suspended) or a reply is still queued, output
 * while a reply is queued. Closes the connection if that fails.
 */
void conn_watch_update(struct conn *c);
/* Name of request @req for logs. */
const char *msg_name(uint32_t req);

/* ---- handlers (h_*.c) ---- */
#define MSG_HANDLER(h) int h(struct conn *c, struct msg_ctx *m);
MSG_HANDLER(h_get_features)
MSG_HANDLER(h_set_features)
MSG_HANDLER(h_set_owner)
MSG_HANDLER(h_reset_owner)
MSG_HANDLER(h_set_mem_table)
MSG_HANDLER(h_set_log_base)
MSG_HANDLER(h_set_log_fd)
MSG_HANDLER(h_set_vring_num)
MSG_HANDLER(h_set_vring_addr)
MSG_HANDLER(h_set_vring_base)
MSG_HANDLER(h_get_vring_base)
MSG_HANDLER(h_set_vring_kick)
MSG_HANDLER(h_set_vring_call)
MSG_HANDLER(h_set_vring_err)
MSG_HANDLER(h_get_protocol_features)
MSG_HANDLER(h_set_protocol_features)
MSG_HANDLER(h_get_queue_num)
MSG_HANDLER(h_set_vring_enable)
MSG_HANDLER(h_device)
MSG_HANDLER(h_set_backend_req_fd)
MSG_HANDLER(h_get_config)
MSG_HANDLER(h_set_config)
MSG_HANDLER(h_get_max_mem_slots)
MSG_HANDLER(h_add_mem_reg)
MSG_HANDLER(h_rem_mem_reg)
MSG_HANDLER(h_set_status)
MSG_HANDLER(h_get_status)
MSG_HANDLER(h_vring_kick)
MSG_HANDLER(h_postcopy_advise)
MSG_HANDLER(h_postcopy_listen)
MSG_HANDLER(h_postcopy_end)
MSG_HANDLER(h_get_inflight_fd)
MSG_HANDLER(h_set_inflight_fd)
#undef MSG_HANDLER

/* ---- h_postcopy.c ---- */
/*
 * SET_MEM_TABLE while postcopy listens: @t (mapped, not installed) is
 * kept, the reply carries our address of each region, and the table waits
 * for the frontend's ack. Takes @t. Returns 0 or -errno.
 */
int pc_mem_table(struct conn *c, struct msg_ctx *m, struct mem_table *t);
/* A table waits for the frontend's ack: the next message must be it. */
static inline bool pc_ack_pending(const struct conn *c)
{
	return c->pc_table != NULL;
}
/*
 * The message after the address reply: the ack (SET_MEM_TABLE, a u64,
 * no fd) registers the table with the userfaultfd and installs it.
 * Returns 0, -errno for the REPLY_ACK, or -EPROTO for anything else
 * (the caller closes the connection).
 */
int pc_mem_ack(struct conn *c, const struct msg_ctx *m);
/*
 * While postcopy listens, QEMU ends a series of ADD_MEM_REG with one whose
 * payload is a u64 0 and no fd: its ack of the addresses. True for exactly
 * that message (nothing to do: each region was registered before its reply).
 */
bool pc_add_reg_ack(const struct conn *c, const struct msg_ctx *m);
/* Drop the postcopy state of a closing connection (table, userfaultfd). */
void pc_free(struct conn *c);

/* Size checkers for variable payloads (0 or -EINVAL). */
int msg_size_mem_table(const struct vhost_user_msg *msg);
int msg_size_config(const struct vhost_user_msg *msg);

#endif
