/* SPDX-License-Identifier: MIT */
/*
 * Internal to proto: registered sockets (struct vsock), connections
 * (struct conn, one vdev each), the dispatcher and the message handlers.
 *
 * Locking: everything here runs under the one recursive control-plane
 * mutex (proto_lock()). Loop callbacks take it; so does every public
 * socket function. Objects that a loop callback may still reference are
 * freed through loop_post() (see transport/loop.c).
 *
 * Includes: util, transport, mem, vq and the public headers.
 */
#ifndef VHK_PROTO_CONN_H
#define VHK_PROTO_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vhostkit/vhk_dev.h"
#include "proto/msg.h"
#include "transport/transport.h"
#include "core/vdev.h"

/* Protocol features this library implements (vhk_socket_set_protocol_features). */
#define PROTO_PF_SUPPORTED                                                                         \
	((1ull << VHK_PF_MQ) | (1ull << VHK_PF_REPLY_ACK) | (1ull << VHK_PF_BACKEND_REQ) |         \
	 (1ull << VHK_PF_CONFIGURE_MEM_SLOTS) | (1ull << VHK_PF_STATUS) |                          \
	 (1ull << VHK_PF_CONFIG) | (1ull << VHK_PF_RARP) | (1ull << VHK_PF_NET_MTU))

#define VIRTIO_STATUS_DRIVER_OK 4u

struct conn;

/* A path given to vhk_socket_register(). */
struct vsock {
	char path[108];
	uint64_t flags; /* VHK_CLIENT, VHK_NO_RECONNECT */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	uint64_t features;  /* offered virtio features */
	uint64_t pfeatures; /* offered protocol features (if pf_set) */
	bool pf_set;
	uint32_t max_queues; /* virtqueues a frontend may use */
	struct vhk_callbacks cb;
	void *cb_ctx;
	struct vhk_device_ops ops;
	bool started;
	bool dead;	   /* unregistered; freed by a loop post */
	bool created_file; /* we bound the socket file: unlink it */
	int lfd;
	struct loop_watch *lwatch;
	struct loop_timer *retry; /* client reconnect timer */
	int pending_fd;		  /* client: connected, conn_new posted */
	dev_t file_dev;		  /* the socket file we created */
	ino_t file_ino;
	uint32_t backoff_ms;
	struct conn *conns;
	struct vsock *next;
};

/* Where a ring stands towards the device (ops, callbacks). */
struct ring {
	bool kicked;	 /* SET_VRING_KICK seen, not stopped since */
	bool vq_started; /* vq_start() succeeded, vq_stop() not yet called */
	bool enabled;	 /* SET_VRING_ENABLE (or implicit) */
	bool up;	 /* ops.queue_start issued, queue_stop not yet */
	bool notified;	 /* vring_state_changed(1) delivered */
	bool failed;	 /* queue_start failed: wait for the next kick */
};

/* Deferred work of a message whose reply waits for settle(). */
typedef int (*msg_finish_fn)(struct conn *c);

struct conn {
	struct vsock *vs; /* NULL once the socket is unregistered */
	struct vdev *dev;
	int vid;
	int fd;
	struct loop_watch *watch; /* NULL while suspended */
	bool dead;		  /* closed; memory freed by a loop post */
	bool suspended;		  /* waiting for device ops */

	/* Copies of the socket's configuration taken at connect time. */
	struct vhk_callbacks cb;
	uint64_t offered;
	uint64_t offered_pf;
	/*
	 * SET_PROTOCOL_FEATURES was accepted. QEMU (7.2 at least) runs the
	 * protocol-feature handshake but does not echo VHOST_USER_F_PROTOCOL_FEATURES
	 * in SET_FEATURES; the handshake itself is what "negotiated" means for
	 * ring enabling and SET_VRING_ENABLE (as DPDK and libvhost-user treat it).
	 */
	bool pf_handshake;
	uint32_t max_queues;

	/* Receive state machine. */
	struct vhost_user_msg rx;
	size_t rx_got;
	int rx_fds[VHOST_USER_MAX_FDS];
	size_t rx_nfds;

	/* Message being answered, and its reply. */
	struct vhost_user_msg reply;
	const struct msg_desc *cur;
	uint32_t cur_flags;
	int cur_rc;
	msg_finish_fn finish;
	uint32_t finish_q;

	/* Device operations. */
	unsigned ops_outstanding; /* issued and not completed */
	unsigned ops_posted;	  /* completions queued to the loop */
	int ops_err;		  /* first error of a completed op */
	int op_start_ring;	  /* ring whose queue_start is pending, or -1 */

	bool dev_inited;  /* ops.dev_init succeeded: dev_fini at close */
	bool announced;	  /* new_connection called: destroy_connection at close */
	bool destroy_req; /* destroy_device once rings are down */
	int backend_fd;	  /* SET_BACKEND_REQ_FD */
	struct ring rings[VHK_MAX_QUEUES];
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

/* VHOST_USER_F_PROTOCOL_FEATURES counts as negotiated (see pf_handshake). */
static inline bool conn_pf_negotiated(const struct conn *c)
{
	return c->pf_handshake || (c->dev->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
}

/* Number of vrings the connection may use. */
static inline uint32_t conn_nvrings(const struct conn *c)
{
	return c->max_queues > VHK_MAX_QUEUES ? VHK_MAX_QUEUES : c->max_queues;
}

/* ---- vsock.c ---- */
void proto_lock(void);
void proto_unlock(void);
struct loop *proto_loop(void);

/* ---- conn.c ---- */
/* Take over connected socket @fd for @vs: new vdev, new_connection. */
int conn_new(struct vsock *vs, int fd);
/*
 * Close a connection: destroy_device (if running), queue_stop, dev_fini,
 * destroy_connection, vdev_release, close fds. The struct is freed by a
 * loop post; callers check c->dead after anything that may close it.
 */
void conn_close(struct conn *c, const char *why);
/* Client mode: try to connect again after the current backoff. */
void vsock_schedule_reconnect(struct vsock *vs);
/* Server mode: the listening socket is readable. */
void vsock_accept(void *ctx, int fd, uint32_t events);
/* Offered protocol features of @vs (explicit, or the default for its ops). */
uint64_t vsock_offered_pf(const struct vsock *vs);

/* ---- dispatch.c ---- */
/* Read and dispatch what @c's socket holds (loop callback). */
void conn_input(void *ctx, int fd, uint32_t events);
/*
 * Device op accounting: conn_op_begin() before calling an op (so that it
 * may complete itself from inside the call), conn_op_result() with what it
 * returned: VHK_OP_PENDING keeps it outstanding and gives 0.
 */
static inline void conn_op_begin(struct conn *c)
{
	c->ops_outstanding++;
}
int conn_op_result(struct conn *c, int rc);
/* A pending op finished (called on the loop thread, lock held). */
void conn_op_done(struct conn *c, int rc);
/* Stop reading / resume reading the socket. */
void conn_suspend(struct conn *c);
void conn_resume(struct conn *c);
/* Name of request @req for logs. */
const char *msg_name(uint32_t req);

/* ---- h_vring.c: ring lifecycle ---- */
/*
 * Bring rings and the device to the state the flags ask for. Returns true
 * when settled, false when a device op is pending or the connection died.
 */
bool conn_settle(struct conn *c);
/* destroy_device now if the device is running. */
void conn_destroy_device(struct conn *c);
/* Tear the rings down synchronously for connection close. */
void conn_rings_teardown(struct conn *c);
/* queue_start of ring @q failed (now or on completion): the ring stays down. */
void conn_ring_start_failed(struct conn *c, uint32_t q, int rc);
/* Stop every ring (RESET_OWNER, status reset); settle finishes the job. */
void conn_stop_all_rings(struct conn *c, bool disable);
/* SET_FEATURES without VHOST_USER_F_PROTOCOL_FEATURES: enable every ring. */
void conn_enable_all_rings(struct conn *c);

/* ---- handlers (h_*.c) ---- */
#define MSG_HANDLER(h) int h(struct conn *c, struct msg_ctx *m);
MSG_HANDLER(h_get_features)
MSG_HANDLER(h_set_features)
MSG_HANDLER(h_set_owner)
MSG_HANDLER(h_reset_owner)
MSG_HANDLER(h_set_mem_table)
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
MSG_HANDLER(h_send_rarp)
MSG_HANDLER(h_net_set_mtu)
MSG_HANDLER(h_set_backend_req_fd)
MSG_HANDLER(h_get_config)
MSG_HANDLER(h_set_config)
MSG_HANDLER(h_get_max_mem_slots)
MSG_HANDLER(h_add_mem_reg)
MSG_HANDLER(h_rem_mem_reg)
MSG_HANDLER(h_set_status)
MSG_HANDLER(h_get_status)
#undef MSG_HANDLER

/* Size checkers for variable payloads (0 or -EINVAL). */
int msg_size_mem_table(const struct vhost_user_msg *msg);
int msg_size_config(const struct vhost_user_msg *msg);

#endif
