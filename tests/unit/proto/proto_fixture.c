/* SPDX-License-Identifier: MIT */
/*
 * Fixture of the proto unit tests (see proto_fixture.h): the logged
 * callbacks and device ops, and the message helpers on top of vuf.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "test.h"
#include "proto_fixture.h"

char g_path[108];
int g_vid = -1;
char g_log[64];
size_t g_nlog;
int g_ring_up[4], g_ring_down[4], g_qstart[4], g_qstop[4];
bool g_stop_pending, g_stop_inline, g_unregister_in_new_device;
int g_nconn, g_ndisc;

static void logc(char ch)
{
	if (g_nlog < sizeof(g_log) - 1)
		g_log[g_nlog++] = ch;
}

static int cb_new_connection(int vid)
{
	__atomic_add_fetch(&g_nconn, 1, __ATOMIC_SEQ_CST);
	g_vid = vid;
	logc('C');
	return 0;
}

static void cb_destroy_connection(int vid)
{
	CHECK(vid >= 0);
	__atomic_add_fetch(&g_ndisc, 1, __ATOMIC_SEQ_CST);
	logc('X');
}

static int cb_new_device(int vid)
{
	logc('N');
	if (g_unregister_in_new_device)
		CHECK_EQ(vhk_socket_unregister(g_path), 0);
	return 0;
}

static void cb_destroy_device(int vid)
{
	logc('D');
}

static int cb_vring_state(int vid, uint16_t q, int enable)
{
	if (q < 4)
		(enable ? g_ring_up : g_ring_down)[q]++;
	return 0;
}

int op_queue_start(int vid, uint16_t q)
{
	if (q < 4)
		g_qstart[q]++;
	return 0;
}

int op_queue_stop(int vid, uint16_t q)
{
	if (q < 4)
		g_qstop[q]++;
	if (g_stop_inline) /* complete from inside the op, then say pending */
		CHECK_EQ(vhk_dev_op_complete(vid, 0), 0);
	return g_stop_pending ? VHK_OP_PENDING : 0;
}

const struct vhk_callbacks g_cb = {
    .new_device = cb_new_device,
    .destroy_device = cb_destroy_device,
    .vring_state_changed = cb_vring_state,
    .new_connection = cb_new_connection,
    .destroy_connection = cb_destroy_connection,
};

const struct vhk_device_ops g_ops = {
    .name = "test",
    .queue_start = op_queue_start,
    .queue_stop = op_queue_stop,
};

/* The idle hook of app-driven mode: one loop iteration (waits up to 1 ms). */
static void loop_once(void *arg)
{
	(void)arg;
	CHECK(vhk_loop_dispatch(1) >= 0);
}

void app_driven(void)
{
	CHECK(vhk_loop_app_driven() >= 0);
	vuf_set_idle(loop_once, NULL);
}

void pump(int ms)
{
	vuf_idle(ms);
}

/* Register, start (app-driven) and connect; returns the frontend. */
struct vuf *setup_with(uint64_t disable_features, uint32_t qp)
{
	snprintf(g_path, sizeof(g_path), "/tmp/vhk-td-%d.sock", (int)getpid());
	unlink(g_path);
	app_driven();
	CHECK_EQ(vhk_socket_register(g_path, 0), 0);
	CHECK_EQ(vhk_socket_set_callbacks(g_path, &g_cb, NULL), 0);
	CHECK_EQ(vhk_socket_set_device_ops(g_path, &g_ops), 0);
	/* STATUS is opt-in for a custom device (not in the default offer). */
	uint64_t pf = 0;
	CHECK_EQ(vhk_socket_get_protocol_features(g_path, &pf), 0);
	CHECK(!(pf & (1ull << VHK_PF_STATUS)));
	CHECK_EQ(vhk_socket_set_protocol_features(g_path, pf | (1ull << VHK_PF_STATUS)), 0);
	CHECK_EQ(vhk_socket_disable_features(g_path, disable_features), 0);
	CHECK_EQ(vhk_socket_set_max_queues(g_path, 2 * qp), 0);
	CHECK_EQ(vhk_socket_start(g_path), 0);
	struct vuf *v = connect_again();
	CHECK(g_vid >= 0);
	return v;
}

struct vuf *connect_again(void)
{
	struct vuf *v = NULL;

	CHECK_EQ(vuf_connect(g_path, 0, &v), 0);
	pump(5);
	return v;
}

void send_msg(struct vuf *v, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	      const int *fds, int nfds)
{
	CHECK_EQ(vuf_send(v, req, flags, payload, size, fds, nfds), 0);
}

void send_u64(struct vuf *v, uint32_t req, uint32_t flags, uint64_t val)
{
	send_msg(v, req, VHOST_USER_VERSION | flags, &val, 8, NULL, 0);
}

uint32_t recv_reply(struct vuf *v, uint32_t req, struct vhost_user_msg *m)
{
	CHECK_EQ(vuf_recv(v, m, 5000), 0);
	CHECK_EQ(m->hdr.request, req);
	CHECK_EQ(m->hdr.flags, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);
	return m->hdr.size;
}

uint64_t recv_u64(struct vuf *v, uint32_t req)
{
	struct vhost_user_msg m;

	CHECK_EQ(recv_reply(v, req, &m), 8);
	return m.payload.u64;
}

/* Nothing arrives for a while (the loop running). */
void expect_silence(struct vuf *v)
{
	CHECK(!vuf_readable(v, 30));
}

/* The backend closed the connection, sending nothing before. */
void expect_closed(struct vuf *v)
{
	char b;

	CHECK(vuf_readable(v, 5000));
	CHECK_EQ(recv(v->fd, &b, 1, MSG_DONTWAIT), 0);
}

void negotiate(struct vuf *v, uint64_t pf)
{
	send_msg(v, VHOST_USER_GET_FEATURES, 1, NULL, 0, NULL, 0);
	CHECK_EQ(recv_u64(v, VHOST_USER_GET_FEATURES), F_BASE);
	send_u64(v, VHOST_USER_SET_FEATURES, 0, F_BASE);
	send_msg(v, VHOST_USER_GET_PROTOCOL_FEATURES, 1, NULL, 0, NULL, 0);
	uint64_t offered = recv_u64(v, VHOST_USER_GET_PROTOCOL_FEATURES);
	CHECK_EQ(offered & pf, pf);
	send_u64(v, VHOST_USER_SET_PROTOCOL_FEATURES, 0, pf);
}

uint64_t acked(struct vuf *v, uint32_t req, const void *p, uint32_t size, const int *fds, int nfds)
{
	send_msg(v, req, VHOST_USER_VERSION | NEED_REPLY, p, size, fds, nfds);
	return recv_u64(v, req);
}

uint64_t acked_u64(struct vuf *v, uint32_t req, uint64_t val)
{
	return acked(v, req, &val, 8, NULL, 0);
}

/* The connection still answers. */
void expect_alive(struct vuf *v)
{
	send_msg(v, VHOST_USER_GET_FEATURES, 1, NULL, 0, NULL, 0);
	CHECK_EQ(recv_u64(v, VHOST_USER_GET_FEATURES), F_BASE);
}

void setup_ring(struct vuf *v, uint32_t q, uint32_t base)
{
	struct vhost_user_vring_state st = {q, 256};
	struct vhost_user_vring_addr a = {
	    .index = q,
	    .desc_user_addr = RAM_QVA + q * 0x10000ull,
	    .avail_user_addr = RAM_QVA + q * 0x10000ull + 0x1000,
	    .used_user_addr = RAM_QVA + q * 0x10000ull + 0x2000,
	};

	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_NUM, &st, 8, NULL, 0), 0);
	st.num = base;
	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_BASE, &st, 8, NULL, 0), 0);
	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_ADDR, &a, 40, NULL, 0), 0);
}

void set_mem(struct vuf *v)
{
	struct vhost_user_msg m;
	int mfd = memfd_create("guest", MFD_CLOEXEC);

	CHECK(mfd >= 0);
	CHECK(ftruncate(mfd, RAM_SIZE) == 0);
	memset(&m, 0, sizeof(m));
	m.payload.memory.nregions = 1;
	m.payload.memory.regions[0].guest_phys_addr = 0;
	m.payload.memory.regions[0].memory_size = RAM_SIZE;
	m.payload.memory.regions[0].userspace_addr = RAM_QVA;
	CHECK_EQ(acked(v, VHOST_USER_SET_MEM_TABLE, m.payload.bytes, 8 + 32, &mfd, 1), 0);
	close(mfd);
}

void kick(struct vuf *v, uint32_t q)
{
	int e = eventfd(0, EFD_CLOEXEC);
	uint64_t val = q;

	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_KICK, &val, 8, &e, 1), 0);
	close(e);
}

void enable(struct vuf *v, uint32_t q, uint32_t on)
{
	struct vhost_user_vring_state st = {q, on};

	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_ENABLE, &st, 8, NULL, 0), 0);
}

/* A device with rings 0 and 1 up; new_device delivered. */
struct vuf *running_device(void)
{
	struct vuf *v = setup_with(0, 1);

	negotiate(v, PF_ACK);
	set_mem(v);
	/* Kick before the ring is configured: it starts once it has an address. */
	uint64_t val = VHOST_USER_VRING_NOFD_MASK;
	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_KICK, &val, 8, NULL, 0), 0);
	enable(v, 0, 1);
	CHECK_EQ(g_qstart[0], 0);
	setup_ring(v, 0, 5);
	CHECK_EQ(g_qstart[0], 1);
	CHECK(strchr(g_log, 'N'));
	CHECK_EQ(g_ring_up[0], 1);
	setup_ring(v, 1, 7);
	int e = eventfd(0, EFD_CLOEXEC);
	val = 1;
	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_KICK, &val, 8, &e, 1), 0);
	close(e);
	CHECK_EQ(g_qstart[1], 0); /* not enabled yet */
	enable(v, 1, 1);
	CHECK_EQ(g_qstart[1], 1);
	CHECK_EQ(g_ring_up[1], 1);
	return v;
}

void vu_finish(void)
{
	(void)vhk_socket_unregister(g_path); /* removes the socket file we created */
	(void)unlink(g_path);		     /* client tests: the test's own listener */
}
