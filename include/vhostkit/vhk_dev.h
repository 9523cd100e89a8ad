/* SPDX-License-Identifier: MIT */
/**
 * @file vhk_dev.h
 * vhostkit core API: vhost-user sockets, feature negotiation, application
 * callbacks, device operations and per-device queries.
 *
 * Conventions (all functions in this header):
 *  - `int` returns are 0 (or a non-negative count) on success and a negative
 *    errno value on failure. Nothing here sets errno for the caller.
 *  - A device is named by an `int vid` handle. Handles carry a generation, so
 *    a stale handle is rejected with -ENODEV instead of reaching a new device.
 *  - Socket-level functions are serialised by one internal control-plane
 *    mutex and may be called from any thread, including from callbacks.
 *  - Callbacks (struct vhk_callbacks, struct vhk_device_ops) run on the
 *    control thread (or inside vhk_loop_dispatch() in app-driven mode),
 *    except the destroy callbacks run by vhk_socket_unregister(), which run on
 *    the thread that calls it (see there).
 */
#ifndef VHOSTKIT_VHK_DEV_H
#define VHOSTKIT_VHK_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Connect to the path instead of listening on it (the frontend is the server). */
#define VHK_CLIENT (1ull << 0)
/** Client mode only: do not retry when the server is absent or goes away. */
#define VHK_NO_RECONNECT (1ull << 1)
/** All flags vhk_socket_register() understands. */
#define VHK_REGISTER_FLAGS_MASK (VHK_CLIENT | VHK_NO_RECONNECT)

/** Largest number of virtqueues (vrings) of one device. */
#define VHK_MAX_QUEUES 256
/** Largest number of guest memory regions (ADD_MEM_REG slots). */
#define VHK_MAX_MEM_REGIONS 509

/** Virtio / vhost-user feature bits a caller commonly needs (spec numbering). */
#define VHK_F_NOTIFY_ON_EMPTY 24
#define VHK_F_LOG_ALL 26
#define VHK_F_ANY_LAYOUT 27
#define VHK_F_INDIRECT_DESC 28
#define VHK_F_EVENT_IDX 29
#define VHK_F_PROTOCOL_FEATURES 30
#define VHK_F_VERSION_1 32
#define VHK_F_IOMMU_PLATFORM 33
#define VHK_F_RING_PACKED 34
#define VHK_F_IN_ORDER 35

/** vhost-user protocol feature bits (VHOST_USER_PROTOCOL_F_*). */
#define VHK_PF_MQ 0
#define VHK_PF_LOG_SHMFD 1
#define VHK_PF_RARP 2
#define VHK_PF_REPLY_ACK 3
#define VHK_PF_NET_MTU 4
#define VHK_PF_BACKEND_REQ 5
#define VHK_PF_CROSS_ENDIAN 6
#define VHK_PF_CRYPTO_SESSION 7
#define VHK_PF_PAGEFAULT 8
#define VHK_PF_CONFIG 9
#define VHK_PF_BACKEND_SEND_FD 10
#define VHK_PF_HOST_NOTIFIER 11
#define VHK_PF_INFLIGHT_SHMFD 12
#define VHK_PF_RESET_DEVICE 13
#define VHK_PF_INBAND_NOTIFICATIONS 14
#define VHK_PF_CONFIGURE_MEM_SLOTS 15
#define VHK_PF_STATUS 16

/** Returned by an asynchronous device operation; see vhk_dev_op_complete(). */
#define VHK_OP_PENDING 1
/** Returned by vhk_device_ops::handle_msg for a message the device does not handle. */
#define VHK_MSG_NOT_HANDLED 2
/** Size of the reply buffer a device may fill in vhk_device_ops::handle_msg. */
#define VHK_MSG_REPLY_MAX 4096

/**
 * A vhost-user front-end message offered to a device (see
 * vhk_device_ops::handle_msg). The core has checked the framing (version,
 * flags, payload at most 4096 bytes, at most 8 fds) and, for a request the
 * spec defines, its payload size, fd count and gating feature; the device
 * checks the values. Everything here is valid during the call only (and,
 * for @p reply, until the operation completes when it went asynchronous).
 */
struct vhk_msg {
	uint32_t request;    /**< VHOST_USER_* request code (the spec's numbering) */
	uint32_t flags;      /**< header flags as received */
	uint32_t size;       /**< payload bytes */
	uint32_t nfds;       /**< fds received with the message */
	const void *payload; /**< the payload (the core's copy) */
	int *fds;            /**< received fds: take one by storing -1 in its slot; the core closes the rest */
	void *reply;         /**< reply payload buffer of VHK_MSG_REPLY_MAX bytes, zeroed */
	uint32_t reply_size; /**< set by the device: reply payload bytes written (0: acknowledge only) */
	uint32_t reserved0;  /**< zero */
	uint64_t reserved[6]; /**< zero */
};

/**
 * Application callbacks, modelled on rte_vhost's vhost_device_ops. Any member
 * may be NULL. All run on the control thread with no datapath lock held.
 */
struct vhk_callbacks {
	/**
	 * The device became ready: features negotiated, memory mapped and the
	 * device's minimum queues (struct vhk_device_ops::min_queues) started
	 * and enabled. Return 0 to accept; a negative value closes the
	 * connection. Other queues are reported later by vring_state_changed.
	 */
	int (*new_device)(int vid);
	/**
	 * The device stops being usable (disconnect, reset, unregister, or a
	 * memory-table change: SET_MEM_TABLE, ADD_MEM_REG and REM_MEM_REG on a
	 * running device run destroy_device, then new_device again once the
	 * rings are back, so an app with its own datapath re-learns the
	 * layout). The app must stop calling datapath functions on @p vid
	 * before returning.
	 */
	void (*destroy_device)(int vid);
	/** Queue @p queue_id became usable (enable=1) or stopped (enable=0). */
	int (*vring_state_changed)(int vid, uint16_t queue_id, int enable);
	/** The frontend (re)negotiated virtio features. */
	int (*features_changed)(int vid, uint64_t features);
	/** A frontend connected (server mode) or we connected (client mode). */
	int (*new_connection)(int vid);
	/** The connection of @p vid is gone; the handle becomes invalid after. */
	void (*destroy_connection)(int vid);
	/** Reserved for later callbacks: leave zeroed (designated initialisers do). */
	void (*reserved[10])(void);
};

/**
 * Operations of the device behind a socket (net, blk, crypto, or the app's
 * own). The core calls them on the control thread. Operations that return
 * VHK_OP_PENDING finish later through vhk_dev_op_complete(); until then the
 * core answers nothing further on that connection (the vhost-user message
 * that caused the operation is replied to on completion).
 */
struct vhk_device_ops {
	/** Short device name for logs ("net", "blk"). */
	const char *name;
	/**
	 * Number of leading vrings that must be started and enabled before
	 * new_device runs. 0 means 1. Queues beyond these never hold it back.
	 */
	uint16_t min_queues;
	/**
	 * What GET_QUEUE_NUM counts, in virtqueues: it answers the socket's
	 * maximum number of queues divided by this. 0 means 1 (blk, crypto:
	 * queues); the net device sets 2 (queue pairs, as QEMU expects).
	 */
	uint16_t queue_num_unit;
	/** Size in bytes of the device config space (GET/SET_CONFIG), 0 = none. */
	uint32_t config_size;
	/** Queue @p qid may now be processed. May return VHK_OP_PENDING. */
	int (*queue_start)(int vid, uint16_t qid);
	/**
	 * Queue @p qid must stop (GET_VRING_BASE, reset, disconnect). After the
	 * op completes the device must not touch the ring. May return
	 * VHK_OP_PENDING (e.g. to drain in-flight I/O).
	 */
	int (*queue_stop)(int vid, uint16_t qid);
	/** Copy @p len bytes of config space at @p offset into @p buf. */
	int (*get_config)(int vid, uint8_t *buf, uint32_t offset, uint32_t len);
	/** Apply a config write; @p flags is VHOST_SET_CONFIG_TYPE_*. */
	int (*set_config)(int vid, const uint8_t *buf, uint32_t offset, uint32_t len,
			  uint32_t flags);
	/**
	 * A message the core does not implement itself: device-specific
	 * requests (SEND_RARP and NET_SET_MTU for net, the crypto session
	 * messages) and request codes the core does not know (rte_vhost's
	 * extern callback). Return VHK_MSG_NOT_HANDLED to have it refused as
	 * unsupported; 0 or a negative errno (an ack or nack when the frontend
	 * asked for one, or the reply in @p msg->reply); or VHK_OP_PENDING to
	 * answer later through vhk_dev_op_complete() (fill @p msg->reply
	 * before completing). NULL: every such message is refused.
	 */
	int (*handle_msg)(int vid, struct vhk_msg *msg);
	/** Called once when a device handle is created / destroyed. */
	int (*dev_init)(int vid);
	void (*dev_fini)(int vid);
	/** Reserved for later operations: leave zeroed (designated initialisers do). */
	void (*reserved[13])(void);
};

/**
 * Create a vhost-user socket description for @p path. Nothing is opened yet:
 * listening or connecting happens in vhk_socket_start().
 *
 * @param path   Unix socket path (at most 107 bytes).
 * @param flags  VHK_CLIENT, VHK_NO_RECONNECT.
 * @return 0; -EINVAL bad path or flags; -EEXIST already registered;
 *         -ENOMEM.
 * Thread-safety: any thread.
 */
int vhk_socket_register(const char *path, uint64_t flags);

/**
 * Set the file mode, owner and group given to the socket file when it is
 * created in server mode. Pass (mode_t)-1, (uid_t)-1 or (gid_t)-1 to keep
 * the default for that field. Must be called before vhk_socket_start().
 * @return 0; -ENOENT unknown path; -EBUSY already started.
 */
int vhk_socket_set_perm(const char *path, mode_t mode, uid_t owner, gid_t group);

/**
 * Limits that keep misbehaving frontends from holding the library's
 * resources (device slots, memory, the control thread's attention). A
 * connection is *unnegotiated* until it sends SET_OWNER, SET_FEATURES or
 * SET_MEM_TABLE (QEMU and DPDK send SET_OWNER right after connecting).
 * Zero in any field means "the default".
 */
struct vhk_socket_limits {
	/** Close a connection still unnegotiated this long after it connected (default 10000). */
	uint32_t handshake_timeout_ms;
	/**
	 * Unnegotiated connections of the socket at most; a new one beyond it
	 * closes the oldest unnegotiated one (default 64).
	 */
	uint32_t max_unnegotiated;
	/** Close a connection whose peer leaves a reply unread this long (default 30000). */
	uint32_t reply_timeout_ms;
	uint32_t reserved[13]; /**< zero */
};

/**
 * Set the limits of @p path (copied; fields 0 keep the default). Before
 * vhk_socket_start(). @return 0; -ENOENT unknown path; -EINVAL NULL or
 * reserved fields not zero; -EBUSY already started.
 */
int vhk_socket_set_limits(const char *path, const struct vhk_socket_limits *limits);

/**
 * Unregister @p path: stop listening or reconnecting, close every
 * connection and remove the socket file it created; the path may be
 * registered again at once. Safe while datapath threads run traffic on its
 * devices: their calls return 0 packets once the device is gone. May be
 * called from a callback.
 *
 * Each device of the socket is torn down in order: destroy_device (if it
 * ran), queue_stop for every queue that is up, dev_fini, destroy_connection,
 * then its guest memory is unmapped. These run on the calling thread,
 * before this returns, except for a device whose queue_stop answered
 * VHK_OP_PENDING: its teardown finishes on the control thread once it calls
 * vhk_dev_op_complete() (its memory stays mapped until then). Use
 * vhk_socket_unregister_async() to learn when everything is done.
 * @return 0; -ENOENT unknown path.
 */
int vhk_socket_unregister(const char *path);

/**
 * vhk_socket_unregister(), then @p done(@p arg) once every device of the
 * socket is released (memory unmapped, destroy_connection delivered). @p
 * done runs on the control thread (inside vhk_loop_dispatch() in app-driven
 * mode), also when nothing was pending; never before this returns.
 * @return 0; -ENOENT unknown path; -EINVAL NULL @p done; -ENOMEM.
 */
int vhk_socket_unregister_async(const char *path, void (*done)(void *arg), void *arg);

/**
 * Replace the virtio feature set offered by @p path. Transport bits (24..41)
 * the library does not implement (e.g. LOG_ALL, IOMMU_PLATFORM, RING_PACKED
 * until supported, NOTIFY_ON_EMPTY) are refused rather than offered.
 * @return 0; -ENOENT; -EBUSY started; -ENOTSUP unimplemented transport bit.
 */
int vhk_socket_set_features(const char *path, uint64_t features);
/** Add bits to the offered feature set (same rules as vhk_socket_set_features()).
 * @return 0; -ENOENT; -EBUSY started; -ENOTSUP unimplemented transport bit. */
int vhk_socket_enable_features(const char *path, uint64_t features);
/** Remove bits from the offered feature set. @return 0; -ENOENT; -EBUSY started. */
int vhk_socket_disable_features(const char *path, uint64_t features);
/** Read the offered feature set into @p ret_features. @return 0; -ENOENT; -EINVAL NULL. */
int vhk_socket_get_features(const char *path, uint64_t *ret_features);
/**
 * Replace the offered protocol feature set. Bits the library does not
 * implement are refused. Bits it implements but offers only on request:
 * STATUS, INBAND_NOTIFICATIONS, INFLIGHT_SHMFD (inflight tracking for a
 * device on the element API of vhk_vq.h: the frontend keeps a region that
 * lets a restarted backend resubmit the requests left in flight).
 * @return 0; -ENOENT; -ENOTSUP unknown bit; -EBUSY.
 */
int vhk_socket_set_protocol_features(const char *path, uint64_t protocol_features);
/** Read the offered protocol feature set. @return 0; -ENOENT; -EINVAL. */
int vhk_socket_get_protocol_features(const char *path, uint64_t *ret_protocol_features);
/**
 * Set the largest number of virtqueues a frontend may use on @p path,
 * 1..VHK_MAX_QUEUES (default 2). GET_QUEUE_NUM answers it divided by the
 * device's queue_num_unit (struct vhk_device_ops).
 * @return 0; -ENOENT; -EINVAL out of range; -EBUSY started.
 */
int vhk_socket_set_max_queues(const char *path, uint32_t queues);
/** Read the largest number of virtqueues offered. @return 0; -ENOENT; -EINVAL. */
int vhk_socket_get_max_queues(const char *path, uint32_t *ret_queues);

/**
 * Register the application callbacks for @p path. @p cb is copied.
 * @p ctx is returned by vhk_dev_get_ctx() for devices of this socket.
 * @return 0; -ENOENT; -EINVAL NULL cb; -EBUSY started.
 */
int vhk_socket_set_callbacks(const char *path, const struct vhk_callbacks *cb, void *ctx);

/**
 * Attach a device implementation to @p path. @p ops is copied. Devices such
 * as vhk_net_attach() use this; an app running its own datapath may use it
 * to get per-queue start/stop. @return 0; -ENOENT; -EINVAL; -EBUSY started.
 */
int vhk_socket_set_device_ops(const char *path, const struct vhk_device_ops *ops);

/**
 * Finish a device operation that returned VHK_OP_PENDING. Any thread.
 * @param result 0 for success or a negative errno (sent as a NACK).
 * @return 0; -ENODEV stale vid; -EALREADY no operation pending.
 */
int vhk_dev_op_complete(int vid, int result);

/**
 * Start @p path: listen (server) or connect (client). Only this socket is
 * started; sockets registered later stay untouched until their own start.
 * The first start creates the control thread unless vhk_loop_app_driven()
 * was called before. @return 0; -ENOENT; -EALREADY; -errno from
 * socket()/bind()/listen()/connect() (client mode with reconnect returns 0
 * and keeps retrying in the background).
 */
int vhk_socket_start(const char *path);

/**
 * Switch the library to app-driven mode: no control thread is created; the
 * app polls the returned fd (readable when work is pending) and calls
 * vhk_loop_dispatch(). Must be called before the first vhk_socket_start().
 * @return an epoll fd owned by the library (do not close it); -EBUSY if
 *         the control thread already runs.
 */
int vhk_loop_app_driven(void);

/**
 * Handle pending control-plane events, waiting at most @p timeout_ms
 * (-1 = forever, 0 = do not wait). App-driven mode only.
 * @return number of events handled; -EINVAL not in app-driven mode.
 * Thread-safety: call from one thread only.
 */
int vhk_loop_dispatch(int timeout_ms);

/**
 * Tell the frontend that the device's config space changed (a resized
 * disk, a new MAC): VHOST_USER_BACKEND_CONFIG_CHANGE_MSG on the backend
 * channel; the frontend reads the config again (GET_CONFIG) and tells the
 * guest. Never blocks: the message is queued and sent when the channel
 * takes it; with REPLY_ACK the frontend's acknowledgement is awaited in
 * the background (bounded: a frontend that does not answer in 5 s loses
 * its backend channel). Any thread.
 * @return 0 queued; -ENODEV stale vid; -ENOTSUP the CONFIG and
 *         BACKEND_REQ protocol features are not both negotiated;
 *         -ENOTCONN no backend channel (no SET_BACKEND_REQ_FD yet, or it
 *         was closed); -EBUSY / -ENOBUFS the channel is full.
 */
int vhk_dev_config_changed(int vid);

/*
 * ---- per-device queries (any thread; -ENODEV for a stale or bad vid) ----
 * They never wait for the control thread: a device's worker may call them
 * while a callback (queue_stop, destroy_device) waits for that worker.
 */

/** Context pointer given to vhk_socket_set_callbacks() for @p vid's socket. */
void *vhk_dev_get_ctx(int vid);
/** Negotiated virtio features. @return 0; -ENODEV; -EINVAL NULL. */
int vhk_dev_get_features(int vid, uint64_t *ret_features);
/** Negotiated protocol features. @return 0; -ENODEV; -EINVAL NULL. */
int vhk_dev_get_protocol_features(int vid, uint64_t *ret_protocol_features);
/** Copy the socket path into @p buf. @return 0; -ENODEV; -ENOSPC buf too small. */
int vhk_dev_get_path(int vid, char *buf, size_t len);
/** Number of virtqueues the frontend has configured (highest index + 1). */
int vhk_dev_get_vq_count(int vid);

/** One mapped guest memory region as the library sees it. */
struct vhk_mem_region {
	uint64_t guest_phys_addr; /**< GPA of the first byte */
	uint64_t size;            /**< bytes */
	uint64_t frontend_addr;   /**< the frontend's user address (QVA) */
	void *host_addr;          /**< where it is mapped in this process */
	uint64_t reserved[4];     /**< zero */
};

/**
 * Copy up to @p max memory regions into @p regions (may be NULL with max 0).
 * The mappings stay valid until destroy_device for @p vid returns or a new
 * memory table is announced by destroy_device/new_device.
 * @return the total number of regions; -ENODEV.
 */
int vhk_dev_get_mem_table(int vid, struct vhk_mem_region *regions, uint32_t max);

/**
 * Set the device implementation's per-device pointer of @p vid (the device
 * behind vhk_socket_set_device_ops(); the library's net device keeps its
 * own state there, so only a device of your own may set it). Typically set
 * in dev_init and cleared in dev_fini. The library never dereferences it.
 * @return 0; -ENODEV stale vid.
 * Thread-safety: any thread; reads in other threads see the new value
 * after whatever synchronisation orders them after this call.
 */
int vhk_dev_set_priv(int vid, void *priv);

/** The pointer given to vhk_dev_set_priv() for @p vid; NULL if none or stale vid. Any thread. */
void *vhk_dev_get_priv(int vid);

#ifdef __cplusplus
}
#endif
#endif
