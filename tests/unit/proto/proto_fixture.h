/* SPDX-License-Identifier: MIT */
/*
 * Fixture of the proto unit tests: the library runs app-driven (or on its
 * control thread) in the test process, a device whose callbacks and ops are
 * logged here, and the harness frontend (vuf) speaking raw messages to it
 * over a real socket. In app-driven mode vuf runs one loop iteration
 * whenever it waits for the library (vuf_set_idle), so replies come while
 * the test blocks on them.
 */
#ifndef VHK_TEST_PROTO_FIXTURE_H
#define VHK_TEST_PROTO_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"
#include "util/compiler.h"
#include "util/fd.h"
#include "vhostkit/vhk_dev.h"
#include "vhostkit/vhk_vq.h"
#include "vhostkit/vhk_net.h"
#include "vuf.h"

#define F_BASE	   ((1ull << VHK_F_VERSION_1) | (1ull << VHK_F_PROTOCOL_FEATURES))
#define PF_ACK	   (1ull << VHK_PF_REPLY_ACK)
#define NEED_REPLY VHOST_USER_NEED_REPLY_MASK
/* Guest RAM: one memfd region at gpa 0; ring q at qva RAM_QVA + q * 64 KiB. */
#define RAM_SIZE (1u << 20)
#define RAM_QVA	 0x7f0000000000ull

extern char g_path[108];
extern int g_vid;      /* last new_connection */
extern char g_log[64]; /* callbacks: C conn, N new_device, D destroy_device, X destroy_conn */
extern size_t g_nlog;
extern int g_ring_up[4], g_ring_down[4], g_qstart[4], g_qstop[4];
extern bool g_stop_pending; /* queue_stop answers VHK_OP_PENDING */
extern bool g_stop_inline;  /* ... after completing itself */
extern bool g_unregister_in_new_device;
extern int g_nconn, g_ndisc; /* connection callbacks (atomic) */
extern const struct vhk_callbacks g_cb;
extern const struct vhk_device_ops g_ops;

/* The device ops of g_ops (count calls in g_qstart / g_qstop). */
int op_queue_start(int vid, uint16_t q);
int op_queue_stop(int vid, uint16_t q);

/* Run the library app-driven in this thread: vuf waits run its loop. */
void app_driven(void);
/* Let about @ms milliseconds pass (the loop runs meanwhile when app-driven). */
void pump(int ms);
/* Register g_path (app-driven), start, connect: the frontend. */
struct vuf *setup_with(uint64_t disable_features, uint32_t qp);
/* Another frontend on g_path. */
struct vuf *connect_again(void);
/* Send one message as is (header flags @flags, no NEED_REPLY added). */
void send_msg(struct vuf *v, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	      const int *fds, int nfds);
void send_u64(struct vuf *v, uint32_t req, uint32_t flags, uint64_t val);
/* A reply to @req (flags exactly VERSION | REPLY): its payload size. */
uint32_t recv_reply(struct vuf *v, uint32_t req, struct vhost_user_msg *m);
uint64_t recv_u64(struct vuf *v, uint32_t req);
/* Nothing arrives for a while / the backend closed / it still answers GET_FEATURES. */
void expect_silence(struct vuf *v);
void expect_closed(struct vuf *v);
void expect_alive(struct vuf *v);
/* GET/SET_FEATURES (F_BASE) and SET_PROTOCOL_FEATURES @pf. */
void negotiate(struct vuf *v, uint64_t pf);
/* Send with NEED_REPLY (negotiated or not); the REPLY_ACK value. */
uint64_t acked(struct vuf *v, uint32_t req, const void *p, uint32_t size, const int *fds, int nfds);
uint64_t acked_u64(struct vuf *v, uint32_t req, uint64_t val);
/* SET_VRING_NUM 256 / BASE @base / ADDR for ring @q. */
void setup_ring(struct vuf *v, uint32_t q, uint32_t base);
/* SET_MEM_TABLE with one fresh memfd region. */
void set_mem(struct vuf *v);
void kick(struct vuf *v, uint32_t q);
void enable(struct vuf *v, uint32_t q, uint32_t on);
/* A running device: rings 0 (base 5) and 1 (base 7) up, new_device done. */
struct vuf *running_device(void);
/* End of a test: unregister g_path and remove its socket file. */
void vu_finish(void);

#endif
