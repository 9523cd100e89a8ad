/* SPDX-License-Identifier: MIT */
/*
 * Raw vhost-user frontend helpers for the proto unit tests: the library
 * runs in app-driven mode (or its control thread) in this process and the
 * test speaks the wire protocol over a real socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "test.h"
#include "vu_raw.h"

char g_path[108];
int g_vid = -1;
char g_log[64];
size_t g_nlog;
int g_ring_up[4], g_ring_down[4], g_qstart[4], g_qstop[4];
bool g_stop_pending, g_stop_inline, g_unregister_in_new_device, g_thread_mode;
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

/* Run the loop (or let the control thread run) for about @ms milliseconds. */
void pump(int ms)
{
	for (int i = 0; i < ms; i++) {
		if (g_thread_mode)
			usleep(1000);
		else
			CHECK(vhk_loop_dispatch(1) >= 0);
	}
}

/* Register, start (app-driven) and connect; returns the frontend fd. */
int setup_with(uint64_t disable_features, uint32_t qp)
{
	snprintf(g_path, sizeof(g_path), "/tmp/vhk-td-%d.sock", (int)getpid());
	unlink(g_path);
	CHECK(vhk_loop_app_driven() >= 0);
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
	int fd = uds_connect(g_path);
	CHECK(fd >= 0);
	pump(5);
	CHECK(g_vid >= 0);
	return fd;
}

int connect_again(void)
{
	int fd = uds_connect(g_path);

	CHECK(fd >= 0);
	pump(2);
	return fd;
}

/* Send one raw message. */
void send_msg(int fd, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	      const int *fds, size_t nfds)
{
	struct vhost_user_msg m;

	memset(&m, 0, sizeof(m));
	m.hdr.request = req;
	m.hdr.flags = flags;
	m.hdr.size = size;
	if (size)
		memcpy(m.payload.bytes, payload, size);
	CHECK_EQ(fdmsg_send(fd, &m, 12 + size, fds, nfds, 1000), 0);
}

void send_u64(int fd, uint32_t req, uint32_t flags, uint64_t v)
{
	send_msg(fd, req, VHOST_USER_VERSION | flags, &v, 8, NULL, 0);
}

/* Read exactly @len bytes, running the loop while waiting. 0 on EOF. */
int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	int fds[8];

	for (int spins = 0; got < len && spins < 2000; spins++) {
		size_t n = 0;
		ssize_t r = fdmsg_recv(fd, (char *)buf + got, len - got, fds, &n, 8);
		fd_close_all(fds, n);
		if (r == 0)
			return 0;
		if (r == -EAGAIN) {
			pump(1);
			continue;
		}
		CHECK(r > 0);
		got += (size_t)r;
	}
	CHECK_EQ(got, len);
	return 1;
}

/* Receive a reply to @req: returns its payload size (checked flags). */
uint32_t recv_reply(int fd, uint32_t req, struct vhost_user_msg *m)
{
	CHECK_EQ(read_full(fd, &m->hdr, 12), 1);
	CHECK_EQ(m->hdr.request, req);
	CHECK_EQ(m->hdr.flags, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);
	CHECK(m->hdr.size <= VHOST_USER_MAX_PAYLOAD);
	if (m->hdr.size)
		CHECK_EQ(read_full(fd, m->payload.bytes, m->hdr.size), 1);
	return m->hdr.size;
}

uint64_t recv_u64(int fd, uint32_t req)
{
	struct vhost_user_msg m;

	CHECK_EQ(recv_reply(fd, req, &m), 8);
	return m.payload.u64;
}

/* Nothing arrives on @fd for a while (loop running). */
void expect_silence(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	pump(30);
	CHECK_EQ(poll(&p, 1, 0), 0);
}

/* The backend closed the connection. */
void expect_closed(int fd)
{
	char b;

	CHECK_EQ(read_full(fd, &b, 1), 0);
}

/* GET/SET_FEATURES and protocol features @pf. */
void negotiate(int fd, uint64_t pf)
{
	send_msg(fd, VHOST_USER_GET_FEATURES, 1, NULL, 0, NULL, 0);
	CHECK_EQ(recv_u64(fd, VHOST_USER_GET_FEATURES), F_BASE);
	send_u64(fd, VHOST_USER_SET_FEATURES, 0, F_BASE);
	send_msg(fd, VHOST_USER_GET_PROTOCOL_FEATURES, 1, NULL, 0, NULL, 0);
	uint64_t offered = recv_u64(fd, VHOST_USER_GET_PROTOCOL_FEATURES);
	CHECK_EQ(offered & pf, pf);
	send_u64(fd, VHOST_USER_SET_PROTOCOL_FEATURES, 0, pf);
}

/* Send with NEED_REPLY and return the REPLY_ACK value. */
uint64_t acked(int fd, uint32_t req, const void *p, uint32_t size, const int *fds, size_t nfds)
{
	send_msg(fd, req, VHOST_USER_VERSION | NEED_REPLY, p, size, fds, nfds);
	return recv_u64(fd, req);
}

uint64_t acked_u64(int fd, uint32_t req, uint64_t v)
{
	return acked(fd, req, &v, 8, NULL, 0);
}

/* The connection still answers. */
void expect_alive(int fd)
{
	send_msg(fd, VHOST_USER_GET_FEATURES, 1, NULL, 0, NULL, 0);
	CHECK_EQ(recv_u64(fd, VHOST_USER_GET_FEATURES), F_BASE);
}

void setup_ring(int fd, uint32_t q, uint32_t base)
{
	struct vhost_user_vring_state st = {q, 256};
	struct vhost_user_vring_addr a = {
	    .index = q,
	    .desc_user_addr = RAM_QVA + q * 0x10000ull,
	    .avail_user_addr = RAM_QVA + q * 0x10000ull + 0x1000,
	    .used_user_addr = RAM_QVA + q * 0x10000ull + 0x2000,
	};

	CHECK_EQ(acked(fd, VHOST_USER_SET_VRING_NUM, &st, 8, NULL, 0), 0);
	st.num = base;
	CHECK_EQ(acked(fd, VHOST_USER_SET_VRING_BASE, &st, 8, NULL, 0), 0);
	CHECK_EQ(acked(fd, VHOST_USER_SET_VRING_ADDR, &a, 40, NULL, 0), 0);
}

void set_mem(int fd)
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
	CHECK_EQ(acked(fd, VHOST_USER_SET_MEM_TABLE, m.payload.bytes, 8 + 32, &mfd, 1), 0);
	close(mfd);
}

void kick(int fd, uint32_t q)
{
	int e = eventfd(0, EFD_CLOEXEC);
	uint64_t v = q;

	CHECK_EQ(acked(fd, VHOST_USER_SET_VRING_KICK, &v, 8, &e, 1), 0);
	close(e);
}

void enable(int fd, uint32_t q, uint32_t on)
{
	struct vhost_user_vring_state st = {q, on};

	CHECK_EQ(acked(fd, VHOST_USER_SET_VRING_ENABLE, &st, 8, NULL, 0), 0);
}

/* A device with rings 0 and 1 up; new_device delivered. */
int running_device(void)
{
	int fd = setup_with(0, 1);

	negotiate(fd, PF_ACK);
	set_mem(fd);
	/* Kick before the ring is configured: it starts once it has an address. */
	uint64_t v = VHOST_USER_VRING_NOFD_MASK;
	CHECK_EQ(acked(fd, VHOST_USER_SET_VRING_KICK, &v, 8, NULL, 0), 0);
	enable(fd, 0, 1);
	CHECK_EQ(g_qstart[0], 0);
	setup_ring(fd, 0, 5);
	CHECK_EQ(g_qstart[0], 1);
	CHECK(strchr(g_log, 'N'));
	CHECK_EQ(g_ring_up[0], 1);
	setup_ring(fd, 1, 7);
	int e = eventfd(0, EFD_CLOEXEC);
	v = 1;
	CHECK_EQ(acked(fd, VHOST_USER_SET_VRING_KICK, &v, 8, &e, 1), 0);
	close(e);
	CHECK_EQ(g_qstart[1], 0); /* not enabled yet */
	enable(fd, 1, 1);
	CHECK_EQ(g_qstart[1], 1);
	CHECK_EQ(g_ring_up[1], 1);
	return fd;
}

void vu_finish(void)
{
	(void)vhk_socket_unregister(g_path); /* removes the socket file we created */
	(void)unlink(g_path);	      /* client tests: the test's own listener */
}
