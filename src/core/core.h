/* SPDX-License-Identifier: MIT */
/*
 * The core layer's internal interface, for transports (proto: vhost-user
 * over Unix sockets; later others) and devices (net).
 *
 * The core owns, independently of any message format:
 *  - the control-plane lock, the event loop and the control thread;
 *  - the registry of sockets and their settings (vhk_socket_*);
 *  - the device object (struct vdev, vdev.h) and its lifecycle, keyed by
 *    device: the ring states ("Ring states" in the vhost-user spec:
 *    started by a kick, stopped, enabled), when the device is told
 *    queue_start / queue_stop, when the app is told new_device /
 *    destroy_device / vring_state_changed, and the accounting of device
 *    operations that complete asynchronously (VHK_OP_PENDING).
 *
 * A transport turns its input into calls of the core_dev_* / core_ring_*
 * functions below, then calls core_dev_settle(): it brings the device to
 * the state those calls asked for, step by step, and returns false while
 * a device operation is pending. When the last pending operation
 * completes, the core calls the transport's op_done hook (on the control
 * thread) so it can finish the message that caused it.
 *
 * Guest memory is never swapped, remapped or unmapped under a started
 * queue: memory-table changes, ring address changes and device teardown
 * first take the affected queues down (queue_stop, awaited when the device
 * answers VHK_OP_PENDING), then apply the change, then bring them up again.
 *
 * Locking: everything here runs under core_lock() (recursive), on the
 * control thread or inside a public API call.
 *
 * Includes: util, transport (the loop), mem, vq, and the public headers.
 */
#ifndef VHK_CORE_CORE_H
#define VHK_CORE_CORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vhostkit/vhk_dev.h"
#include "core/vdev.h"
#include "transport/transport.h"

#define VIRTIO_STATUS_DRIVER_OK 4u

/* ---- control-plane lock, loop and thread (core.c) ---- */

void core_lock(void);
void core_unlock(void);
/* The control loop, created on first use (NULL until core_loop_ensure()). */
struct loop *core_loop(void);
/* Create the loop if needed. Lock held. 0 or -errno. */
int core_loop_ensure(void);
/* Start the control thread unless it runs or the app drives the loop. Lock held. */
int core_thread_ensure(void);

/* ---- the socket registry (sock.c) ---- */

/* A path given to vhk_socket_register() and its settings. */
struct core_sock {
	char path[108];
	uint64_t flags; /* VHK_CLIENT, VHK_NO_RECONNECT */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	uint64_t features;  /* offered virtio features */
	uint64_t pfeatures; /* offered protocol features (if pf_set) */
	bool pf_set;
	uint32_t max_queues; /* virtqueues a frontend may use */
	struct vhk_socket_limits limits; /* defaults filled in */
	struct vhk_callbacks cb;
	void *cb_ctx;
	struct vhk_device_ops ops;
	bool started;      /* vhk_socket_start() succeeded */
	bool unregistered; /* out of the registry; freed once ndevs is 0 */
	bool freeing;      /* its free is posted */
	unsigned ndevs;    /* devices of this socket not yet released */
	void (*unreg_done)(void *arg); /* vhk_socket_unregister_async() completion */
	void *unreg_arg;
	void *transport; /* the transport's state for this socket */
	struct core_sock *next;
};

/* Registered socket for @path, or NULL. Lock held. */
struct core_sock *core_sock_find(const char *path);
/*
 * Take @s out of the registry (the path may be registered again). It is
 * freed, and @s->unreg_done called, once its last device is released.
 * Lock held.
 */
void core_sock_unlink(struct core_sock *s);
/* Free @s if it is out of the registry and has no device left. Lock held. */
void core_sock_maybe_free(struct core_sock *s);
/* Offered protocol features of @s (explicit, or the default for its ops). */
uint64_t core_sock_offered_pf(const struct core_sock *s);
/* Protocol features the library implements (what vhk_socket_set_protocol_features accepts). */
uint64_t core_pf_supported(void);

/* ---- device lifecycle (lifecycle.c) ---- */

/* How a backend -> frontend message ended: 0 sent (and acknowledged, if asked), or -errno. */
typedef void (*core_bmsg_done_fn)(void *arg, int rc);

/* A backend -> frontend message (the spec's back-end message types). */
struct core_bmsg {
	uint32_t request;      /* VHOST_USER_BACKEND_* */
	uint32_t size;         /* payload bytes */
	const void *payload;
	const int *fds;        /* sent along (duplicated; the caller keeps its own) */
	uint32_t nfds;
	core_bmsg_done_fn done; /* may be NULL; called once, on the control thread */
	void *arg;
};

/* What the core needs from the transport that owns a device. */
struct core_owner_ops {
	/* Every pending device op has finished: continue where the transport stopped. */
	void (*op_done)(void *owner);
	/* The device must go (an app callback refused it): close the transport's side. */
	void (*close)(void *owner, const char *why);
	/*
	 * Queue a message on the backend channel (never blocks). 0 queued
	 * (@m->done follows), -ENOTCONN no channel, -EBUSY/-ENOBUFS full.
	 */
	int (*backend_send)(void *owner, const struct core_bmsg *m);
};

/*
 * A new device for a connection of @s: a vdev slot configured from the
 * socket's settings, owned by @owner. Returns 0 with the device in *@ret,
 * or -ENOSPC/-ENOMEM. The transport links its connection to the device,
 * then calls core_dev_announce().
 */
int core_dev_new(struct core_sock *s, const struct core_owner_ops *oo, void *owner,
		 struct vdev **ret);
/*
 * dev_init and new_connection. 0; -ECONNREFUSED one of them refused (the
 * transport closes the device); -ECONNRESET it was closed meanwhile (by a
 * callback that unregistered the socket).
 */
int core_dev_announce(struct vdev *d);
/* destroy_device now if the device is running (its users must re-learn it). */
void core_dev_destroy(struct vdev *d);
/*
 * The transport is gone (disconnect, unregister, fatal error): destroy_device
 * if running, queue_stop for every queue that is up, then dev_fini,
 * destroy_connection and the release of the slot (memory unmapped, fds
 * closed). Queue stops the device answers with VHK_OP_PENDING are awaited:
 * the rest happens when the last one completes. The owner is never called
 * again. NULL-safe.
 */
void core_dev_close(struct vdev *d);
/*
 * Bring the device to the state the ring flags ask for. Returns true when
 * settled, false when a device op is pending (op_done follows) or the
 * device was closed meanwhile (d->closing).
 */
bool core_dev_settle(struct vdev *d);
/* Start accounting one device op; the op's return goes to core_op_result(). */
void core_op_begin(struct vdev *d);
/* VHK_OP_PENDING -> 0 (stays outstanding until vhk_dev_op_complete), else @rc. */
int core_op_result(struct vdev *d, int rc);
/* First error of the ops completed since the last call (0 if none); clears it. */
int core_op_take_error(struct vdev *d);

/*
 * Send a backend -> frontend message for device @d. -ENOTCONN when the
 * device has no transport or channel, else what the transport answers.
 */
int core_dev_backend_send(struct vdev *d, const struct core_bmsg *m);

/* ---- what a transport changes (lifecycle.c, ring.c); lock held, owner not closing ---- */

/* Negotiated virtio features (-ENOTSUP unoffered, -EINVAL, -EBUSY format change). */
int core_dev_set_features(struct vdev *d, uint64_t features);
/* VHOST_USER_F_PROTOCOL_FEATURES counts as negotiated from now on. */
void core_dev_set_pf_handshake(struct vdev *d);
/* The virtio status byte; 0 resets the device (every queue stops). */
int core_dev_set_status(struct vdev *d, uint8_t status);
/* Stop every queue (and disable them with @disable): RESET_OWNER, reset. */
void core_dev_stop_all(struct vdev *d, bool disable);
/*
 * Install @t (ownership moves in, also on failure): taken effect once every
 * queue that is up has been stopped (queue_stop awaited), then the queues
 * come back. -EINVAL: a dirty log is mapped and does not cover @t.
 */
int core_dev_set_mem(struct vdev *d, struct mem_table *t);
/*
 * Install the dirty log @log (ownership moves in, also on failure) in
 * place of the current one, which is unmapped. -EINVAL: it does not cover
 * the memory table (current or waiting) or the used side of a ring that
 * logs at its log address.
 */
int core_dev_set_log(struct vdev *d, struct mem_log *log);
/* SET_LOG_FD: keep @fd (taken; -1 none), closing the previous one. */
void core_dev_set_log_fd(struct vdev *d, int fd);
/* Device config space through the device ops (may go asynchronous). */
int core_dev_get_config(struct vdev *d, uint8_t *buf, uint32_t offset, uint32_t len,
			uint32_t flags);
int core_dev_set_config(struct vdev *d, const uint8_t *buf, uint32_t offset, uint32_t len,
			uint32_t flags);
/*
 * Offer a message the core does not handle to the device's handle_msg op.
 * Returns VHK_MSG_NOT_HANDLED when the device has none or declines it.
 */
int core_dev_msg(struct vdev *d, struct vhk_msg *msg);

/*
 * GET_INFLIGHT_FD (core/inflight.c): a new zeroed, sealed region for
 * @num_queues (1..the device's queues) queues of @queue_size (1..32768)
 * entries in the negotiated ring layout; it becomes the device's region.
 * Returns 0 with its fd in *@ret_fd (the caller sends and closes it) and
 * its size in *@ret_size; -EINVAL, -EBUSY a queue is started, -errno.
 */
int core_dev_get_inflight(struct vdev *d, uint16_t num_queues, uint16_t queue_size,
			  int *ret_fd, uint64_t *ret_size);
/*
 * SET_INFLIGHT_FD: the frontend's region in @fd (taken in all cases) becomes
 * the device's. 0; -EINVAL (counts, sizes, offset, file size, not sealed
 * against shrinking), -EBUSY a queue is started, -errno (mmap).
 */
int core_dev_set_inflight(struct vdev *d, int fd, uint64_t mmap_size, uint64_t mmap_offset,
			  uint16_t num_queues, uint16_t queue_size);
/*
 * Give queue @q's vq its slice of the device's inflight region (or none)
 * before its ring starts; vq quiesced. 0 or -ENOMEM.
 */
int core_inflight_attach(struct vdev *d, uint32_t q, struct vq *vq);

/* Queue configuration; @q < the device's queue count (checked by the caller). */
int core_ring_set_num(struct vdev *d, uint32_t q, uint32_t num);
int core_ring_set_addr(struct vdev *d, uint32_t q, const struct vq_addr *a);
int core_ring_set_base(struct vdev *d, uint32_t q, uint32_t base);
/* Kick / call / err eventfds (-1: none); the fd is taken in all cases. */
int core_ring_set_kick(struct vdev *d, uint32_t q, int fd);
int core_ring_set_call(struct vdev *d, uint32_t q, int fd);
int core_ring_set_err(struct vdev *d, uint32_t q, int fd);
/* SET_VRING_ENABLE. */
int core_ring_enable(struct vdev *d, uint32_t q, bool enable);
/* GET_VRING_BASE: the queue stops; read its base with core_ring_base() once settled. */
void core_ring_stop(struct vdev *d, uint32_t q);
uint32_t core_ring_base(struct vdev *d, uint32_t q);

#endif
