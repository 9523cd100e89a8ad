/* SPDX-License-Identifier: MIT */
/* Raw vhost-user frontend helpers shared by the proto unit tests. */
#ifndef VHK_TEST_VU_RAW_H
#define VHK_TEST_VU_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"
#include "transport/transport.h"
#include "util/compiler.h"
#include "util/fd.h"
#include "vhostkit/vhk_dev.h"
#include "vhostkit/vhk_vq.h"
#include "vhostkit/vhk_net.h"

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
extern bool g_thread_mode;   /* the control thread runs the loop */
extern int g_nconn, g_ndisc; /* connection callbacks (atomic) */
extern const struct vhk_callbacks g_cb;
extern const struct vhk_device_ops g_ops;

/* The device ops of g_ops (count calls in g_qstart / g_qstop). */
int op_queue_start(int vid, uint16_t q);
int op_queue_stop(int vid, uint16_t q);

/* Run the loop (or wait for the control thread) about @ms milliseconds. */
void pump(int ms);
/* Register g_path (app-driven), start, connect: the frontend fd. */
int setup_with(uint64_t disable_features, uint32_t qp);
int connect_again(void);
void send_msg(int fd, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	      const int *fds, size_t nfds);
void send_u64(int fd, uint32_t req, uint32_t flags, uint64_t v);
/* Read @len bytes while running the loop; 0 on EOF. */
int read_full(int fd, void *buf, size_t len);
/* A reply to @req (flags checked): its payload size. */
uint32_t recv_reply(int fd, uint32_t req, struct vhost_user_msg *m);
uint64_t recv_u64(int fd, uint32_t req);
void expect_silence(int fd);
void expect_closed(int fd);
void expect_alive(int fd);
/* GET/SET_FEATURES (F_BASE) and SET_PROTOCOL_FEATURES @pf. */
void negotiate(int fd, uint64_t pf);
/* Send with NEED_REPLY; the REPLY_ACK value. */
uint64_t acked(int fd, uint32_t req, const void *p, uint32_t size, const int *fds, size_t nfds);
uint64_t acked_u64(int fd, uint32_t req, uint64_t v);
/* SET_VRING_NUM 256 / ADDR / BASE @base for ring @q. */
void setup_ring(int fd, uint32_t q, uint32_t base);
/* SET_MEM_TABLE with one fresh memfd region. */
void set_mem(int fd);
void kick(int fd, uint32_t q);
void enable(int fd, uint32_t q, uint32_t on);
/* A running device: rings 0 (base 5) and 1 (base 7) up, new_device done. */
int running_device(void);
/* End of a test: unregister g_path and remove its socket file. */
void vu_finish(void);

#endif
