/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the protocol / hostile-input integration tests: run the
 * library's socket in-process on a temporary path, record its callbacks in a
 * thread-safe event log, and drive it with the vuf frontend. Helpers that
 * take no error return CHECK() internally (they run inside a forked case).
 */
#ifndef VHK_IT_COMMON_H
#define VHK_IT_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include <vhostkit/vhostkit.h>

#include "test.h"
#include "vuf.h"

#define BIT(n) (1ull << (n))

/* Protocol features every frontend here asks for unless a case says otherwise. */
#define IT_PF_DEFAULT                                                                      \
	(BIT(VHK_PF_MQ) | BIT(VHK_PF_REPLY_ACK) | BIT(VHK_PF_BACKEND_REQ) |                \
	 BIT(VHK_PF_CONFIGURE_MEM_SLOTS))
/* Virtio features a custom (non-net) device offers in these tests. */
#define IT_F_CUSTOM                                                                         \
	(BIT(VHK_F_VERSION_1) | BIT(VHK_F_PROTOCOL_FEATURES) | BIT(VHK_F_EVENT_IDX) |      \
	 BIT(VHK_F_INDIRECT_DESC))

/* SET_MEM_TABLE payload header (struct vhost_user_memory without its FAM). */
struct mt_hdr {
	uint32_t nregions;
	uint32_t padding;
} __attribute__((packed));
static_assert(sizeof(struct mt_hdr) == VHOST_USER_MEMORY_HDR_SIZE, "mt_hdr");

/* How to configure the socket under test before vhk_socket_start(). */
struct be_cfg {
	uint64_t flags;                   /* vhk_socket_register() flags (VHK_CLIENT ...) */
	int *ret_listen_fd;               /* VHK_CLIENT: vuf_listen() on the path first */
	bool net;                         /* vhk_net_attach() */
	const struct vhk_device_ops *ops; /* custom device ops (ignored with net) */
	uint64_t features;                /* nonzero: vhk_socket_set_features() */
	uint64_t protocol_features;       /* nonzero: vhk_socket_set_protocol_features() */
	uint32_t pairs;                   /* nonzero: 2 * pairs queues (vhk_socket_set_max_queues) */
	int new_device_ret;               /* value new_device returns */
	const struct vhk_socket_limits *limits; /* non-NULL: vhk_socket_set_limits() */
};

/* Register + configure + start a server socket in a fresh temp dir; returns its path. */
const char *be_start(const struct be_cfg *cfg);
/* Unregister the socket and remove the temp dir. */
void be_stop(void);

/* ---- event log of the library callbacks ---- */
enum ev_type {
	EV_NEW_CONN,
	EV_NEW_DEV,
	EV_DESTROY_DEV,
	EV_VRING_STATE,
	EV_FEATURES,
	EV_DESTROY_CONN,
	EV_MAX
};

struct ev {
	enum ev_type type;
	int vid;
	uint16_t qid;     /* EV_VRING_STATE */
	int enable;       /* EV_VRING_STATE */
	uint64_t features; /* EV_FEATURES */
	uint64_t seq;     /* global order, from 1 */
};

/* Number of events of @t seen so far. */
unsigned ev_count(enum ev_type t);
/* Wait until ev_count(t) >= n; false on timeout. */
bool ev_wait(enum ev_type t, unsigned n, int timeout_ms);
/* Find the most recent event matching (t, vid or -1, qid or -1, enable or -1). */
bool ev_find(enum ev_type t, int vid, int qid, int enable, struct ev *ret);
/* Like ev_find, waiting up to @timeout_ms. */
bool ev_wait_match(enum ev_type t, int vid, int qid, int enable, int timeout_ms, struct ev *ret);
/* vid of the latest EV_NEW_CONN (waits up to 3 s for one; CHECKs). */
int ev_conn_vid(void);

/* ---- frontend helpers ---- */
/* Connect to @path (CHECKs). */
struct vuf *fe_connect(const char *path);
/* Connect and vuf_negotiate(f, pf) (CHECKs). */
struct vuf *fe_open(const char *path, uint64_t f, uint64_t pf);
/* GET_FEATURES round trip must succeed. */
void fe_usable(struct vuf *v);
/* vuf_request must be acked (rc 0). */
void fe_ack(struct vuf *v, uint32_t req, const void *p, uint32_t size, const int *fds, int nfds);
/* vuf_request must get a well-formed NACK (u64 != 0) and the connection stays usable. */
void fe_nack(struct vuf *v, uint32_t req, const void *p, uint32_t size, const int *fds,
	     int nfds);
/* Send a SET_VRING_* state message and expect a NACK. */
void fe_nack_state(struct vuf *v, uint32_t req, uint32_t index, uint32_t num);

enum fe_rej { REJ_NACK, REJ_IGNORED, REJ_CLOSED };
/*
 * After a hostile message @req was sent with NEED_REPLY: sends GET_FEATURES
 * and reads. The backend must close, or NACK @req (u64 != 0, or an empty
 * reply for requests with their own reply body), or drop it silently; in
 * the last two cases GET_FEATURES must then be answered. An ACK fails.
 */
enum fe_rej fe_rejected(struct vuf *v, uint32_t req);
/* fe_rejected for a well-framed message: silently dropping it is not allowed. */
enum fe_rej fe_refused(struct vuf *v, uint32_t req);
/* The socket still accepts and serves a new frontend (negotiate + round trip). */
void be_alive(const char *path);

/* ---- fd / resource probes ---- */
/* A pipe; send .wr to the backend, then probe_sent() to drop our copy. */
struct probe {
	int rd, wr;
};
void probe_new(struct probe *p);
void probe_sent(struct probe *p);
/* True once every copy of the write end is closed (the backend closed its copy). */
bool probe_closed(struct probe *p, int timeout_ms);
void probe_free(struct probe *p);

/* memfd of @size bytes, mapped shared into *ret_map (if not NULL). */
int memfd_sized(uint64_t size, void **ret_map);
/* Open fds of this process and resident set size in KiB. */
int proc_fd_count(void);
long proc_rss_kib(void);
/* Heap bytes in use (all malloc arenas, mmapped chunks included), in KiB. */
long proc_heap_kib(void);
/* Number of mappings in /proc/self/maps. */
int proc_map_count(void);
/* Wait until proc_fd_count() <= @limit; returns the last count. */
int proc_fd_settle(int limit, int timeout_ms);

/* Sleep @ms milliseconds. */
void msleep(int ms);

#endif
