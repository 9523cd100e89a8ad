/* SPDX-License-Identifier: MIT */
/*
 * Ring and device lifecycle through proto: GET_VRING_BASE stop semantics,
 * async device ops, handlers routed to device ops, callback order,
 * unregister from a callback and from another thread, client reconnect.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "test.h"
#include "proto_fixture.h"

static void t_vring_base_stop(void)
{
	struct vhost_user_msg m;
	struct vhk_vq_info info;
	struct vhost_user_vring_state st = {1, 0};
	struct vuf *v = running_device();

	CHECK_EQ(vhk_vq_get_info(g_vid, 1, &info), 0);
	CHECK(info.started && info.enabled);
	send_msg(v, VHOST_USER_GET_VRING_BASE, 1, &st, 8, NULL, 0);
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_VRING_BASE, &m), 8);
	CHECK_EQ(m.payload.state.index, 1);
	CHECK_EQ(m.payload.state.num, 7);
	CHECK_EQ(g_ring_down[1], 1);
	CHECK_EQ(g_qstop[1], 1);
	CHECK_EQ(vhk_vq_get_info(g_vid, 1, &info), 0);
	CHECK(!info.started);
	/* The device keeps running on ring 0. A second GET_VRING_BASE is harmless. */
	CHECK(!strchr(g_log, 'D'));
	send_msg(v, VHOST_USER_GET_VRING_BASE, 1, &st, 8, NULL, 0);
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_VRING_BASE, &m), 8);
	CHECK_EQ(g_qstop[1], 1);
	/* Restart: a new kick brings it back. */
	kick(v, 1);
	CHECK_EQ(g_qstart[1], 2);
	CHECK_EQ(g_ring_up[1], 2);
	/*
	 * A new memory table re-announces the device, and the device is told
	 * queue_stop / queue_start around the swap.
	 */
	CHECK_EQ(g_qstop[0], 0);
	set_mem(v);
	CHECK(!strcmp(g_log, "CNDN"));
	CHECK_EQ(g_qstop[0], 1);
	CHECK_EQ(g_qstop[1], 2);
	CHECK_EQ(g_qstart[0], 2);
	CHECK_EQ(g_qstart[1], 3);
	vuf_close(v);
	pump(5);
	CHECK(!strcmp(g_log, "CNDNDX"));
	CHECK_EQ(g_qstop[0], 2);
	CHECK_EQ(g_qstop[1], 3);
	vu_finish();
}

static void t_async_op(void)
{
	struct vhost_user_msg m;
	struct vhost_user_vring_state st = {0, 0};
	struct vuf *v = running_device();

	CHECK_EQ(vhk_dev_op_complete(g_vid, 0), -EALREADY);
	g_stop_pending = true;
	send_msg(v, VHOST_USER_GET_VRING_BASE, 1, &st, 8, NULL, 0);
	send_msg(v, VHOST_USER_GET_FEATURES, 1, NULL, 0, NULL, 0);
	expect_silence(v);
	CHECK_EQ(g_qstop[0], 1);
	CHECK_EQ(vhk_dev_op_complete(g_vid, 0), 0);
	CHECK_EQ(vhk_dev_op_complete(g_vid, 0), -EALREADY);
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_VRING_BASE, &m), 8);
	CHECK_EQ(m.payload.state.num, 5);
	CHECK_EQ(recv_u64(v, VHOST_USER_GET_FEATURES), F_BASE);
	/* A failing completion NACKs the message that caused the op. */
	st.index = 1;
	send_msg(v, VHOST_USER_SET_VRING_ENABLE, 1 | NEED_REPLY, &st, 8, NULL, 0);
	expect_silence(v);
	CHECK_EQ(vhk_dev_op_complete(g_vid, -EIO), 0);
	CHECK_EQ(recv_u64(v, VHOST_USER_SET_VRING_ENABLE), EIO);
	expect_alive(v);
	CHECK_EQ(vhk_dev_op_complete(g_vid + 1, 0), -ENODEV);
	/* An op may complete itself before it returns VHK_OP_PENDING. */
	g_stop_pending = false;
	kick(v, 0);
	g_stop_pending = true;
	g_stop_inline = true;
	int stops = g_qstop[0];
	st.index = 0;
	st.num = 0;
	send_msg(v, VHOST_USER_GET_VRING_BASE, 1, &st, 8, NULL, 0);
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_VRING_BASE, &m), 8);
	CHECK_EQ(m.payload.state.num, 5);
	CHECK_EQ(g_qstop[0], stops + 1);
	CHECK_EQ(vhk_dev_op_complete(g_vid, 0), -EALREADY);
	expect_alive(v);
	vuf_close(v);
	pump(5);
	CHECK(g_log[g_nlog - 1] == 'X');
	vu_finish();
}

static void t_unregister_in_callback(void)
{
	struct vhost_user_vring_addr a = {
	    .desc_user_addr = RAM_QVA,
	    .avail_user_addr = RAM_QVA + 0x1000,
	    .used_user_addr = RAM_QVA + 0x2000,
	};
	struct vhost_user_vring_state st = {0, 256};
	uint64_t nofd = VHOST_USER_VRING_NOFD_MASK;
	struct vuf *v = setup_with(0, 1);

	g_unregister_in_new_device = true;
	negotiate(v, PF_ACK);
	set_mem(v);
	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_NUM, &st, 8, NULL, 0), 0);
	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_KICK, &nofd, 8, NULL, 0), 0);
	enable(v, 0, 1);
	/* The address starts the ring; new_device unregisters the socket. */
	send_msg(v, VHOST_USER_SET_VRING_ADDR, 1 | NEED_REPLY, &a, 40, NULL, 0);
	expect_closed(v);
	CHECK(!strcmp(g_log, "CNDX"));
	CHECK(access(g_path, F_OK) < 0);
	CHECK_EQ(vhk_socket_unregister(g_path), -ENOENT);
	struct vuf *late = NULL;
	CHECK(vuf_connect(g_path, 0, &late) < 0);
	pump(5);
	vuf_close(v);
	vu_finish();
}

static uint8_t g_cfg[16];
static uint8_t g_mac[6];
static uint16_t g_mtu;

static int op_get_config(int vid, uint8_t *buf, uint32_t off, uint32_t len)
{
	memcpy(buf, g_cfg + off, len);
	return 0;
}

static int op_set_config(int vid, const uint8_t *buf, uint32_t off, uint32_t len, uint32_t flags)
{
	memcpy(g_cfg + off, buf, len);
	return 0;
}

/* The device-message hook of a custom device: it takes SEND_RARP and NET_SET_MTU. */
static int op_handle_msg(int vid, struct vhk_msg *msg)
{
	uint64_t v;

	if (msg->request == VHOST_USER_SEND_RARP) {
		memcpy(g_mac, msg->payload, 6);
		return 0;
	}
	if (msg->request != VHOST_USER_NET_SET_MTU || msg->size != 8)
		return VHK_MSG_NOT_HANDLED;
	memcpy(&v, msg->payload, 8);
	if (v < 68 || v > 65535)
		return -EINVAL;
	g_mtu = (uint16_t)v;
	return 0;
}

/* Memory as one ADD_MEM_REG region. */
static void add_region(struct vuf *v, uint64_t expect_ok)
{
	struct vhost_user_mem_reg r = {0};
	int mfd = memfd_create("guest", MFD_CLOEXEC);

	CHECK(mfd >= 0 && ftruncate(mfd, RAM_SIZE) == 0);
	r.region.memory_size = RAM_SIZE;
	r.region.userspace_addr = RAM_QVA;
	CHECK_EQ(acked(v, VHOST_USER_ADD_MEM_REG, &r, 40, &mfd, 1) == 0, expect_ok);
	close(mfd);
}

static void t_handlers(void)
{
	const struct vhk_device_ops ops = {
	    .queue_start = op_queue_start,
	    .queue_stop = op_queue_stop,
	    .config_size = sizeof(g_cfg),
	    .get_config = op_get_config,
	    .set_config = op_set_config,
	    .handle_msg = op_handle_msg,
	};
	struct vhost_user_msg m;
	uint8_t buf[512] __attribute__((aligned(8))) = {0};
	struct vhost_user_config *cfg = (void *)buf;
	struct vuf *v;

	for (int i = 0; i < 16; i++)
		g_cfg[i] = (uint8_t)i;
	snprintf(g_path, sizeof(g_path), "/tmp/vhk-th-%d.sock", (int)getpid());
	unlink(g_path);
	app_driven();
	CHECK_EQ(vhk_socket_register(g_path, 0), 0);
	CHECK_EQ(vhk_socket_set_callbacks(g_path, &g_cb, NULL), 0);
	CHECK_EQ(vhk_socket_set_device_ops(g_path, &ops), 0);
	uint64_t pf;
	CHECK_EQ(vhk_socket_get_protocol_features(g_path, &pf), 0);
	/* The default offer: CONFIG for a config space; device bits only when asked for. */
	CHECK(pf & (1ull << VHK_PF_CONFIG));
	CHECK(!(pf & (1ull << VHK_PF_RARP)) && !(pf & (1ull << VHK_PF_NET_MTU)));
	pf |= (1ull << VHK_PF_RARP) | (1ull << VHK_PF_NET_MTU) | (1ull << VHK_PF_STATUS);
	CHECK_EQ(vhk_socket_set_protocol_features(g_path, pf), 0);
	CHECK_EQ(vhk_socket_start(g_path), 0);
	v = connect_again();
	negotiate(v, PF_ACK | (1ull << VHK_PF_CONFIG) | (1ull << VHK_PF_RARP) |
			 (1ull << VHK_PF_NET_MTU) | (1ull << VHK_PF_STATUS) |
			 (1ull << VHK_PF_CONFIGURE_MEM_SLOTS));
	/* Config space. */
	cfg->offset = 4;
	cfg->size = 8;
	send_msg(v, VHOST_USER_GET_CONFIG, 1, buf, 12 + 8, NULL, 0);
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_CONFIG, &m), 20);
	CHECK_EQ(m.payload.config.offset, 4);
	CHECK_EQ(m.payload.config.region[0], 4);
	CHECK_EQ(m.payload.config.region[7], 11);
	cfg->offset = 10; /* 10 + 8 > 16 */
	send_msg(v, VHOST_USER_GET_CONFIG, 1, buf, 12 + 8, NULL, 0);
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_CONFIG, &m), 0);
	cfg->offset = 0;
	cfg->flags = 2;
	send_msg(v, VHOST_USER_GET_CONFIG, 1, buf, 12 + 8, NULL, 0);
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_CONFIG, &m), 0);
	send_msg(v, VHOST_USER_GET_CONFIG, 1, buf, 12 + 4, NULL, 0); /* size mismatch */
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_CONFIG, &m), 0);
	cfg->flags = 1;
	cfg->size = 2;
	cfg->region[0] = 0xaa;
	cfg->region[1] = 0xbb;
	CHECK_EQ(acked(v, VHOST_USER_SET_CONFIG, buf, 12 + 2, NULL, 0), 0);
	CHECK(g_cfg[0] == 0xaa && g_cfg[1] == 0xbb);
	/* MTU and RARP. */
	uint16_t mtu = 0;
	CHECK(acked_u64(v, VHOST_USER_NET_SET_MTU, 67) != 0);
	CHECK(acked_u64(v, VHOST_USER_NET_SET_MTU, 65536) != 0);
	CHECK_EQ(acked_u64(v, VHOST_USER_NET_SET_MTU, 9000), 0);
	CHECK_EQ(g_mtu, 9000);
	/* Not a net device: the net query has nothing to say about it. */
	CHECK_EQ(vhk_net_get_mtu(g_vid, &mtu), -ENODEV);
	uint8_t mac[8] = {2, 0, 0, 0, 0, 7};
	CHECK_EQ(acked(v, VHOST_USER_SEND_RARP, mac, 8, NULL, 0), 0);
	CHECK(!memcmp(g_mac, mac, 6));
	/* STATUS: the device runs only after DRIVER_OK. */
	add_region(v, 1);
	add_region(v, 1); /* identical: already present (QEMU re-adds it per queue pair) */
	setup_ring(v, 0, 0);
	uint64_t nofd = VHOST_USER_VRING_NOFD_MASK;
	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_KICK, &nofd, 8, NULL, 0), 0);
	enable(v, 0, 1);
	CHECK_EQ(vhk_dev_get_mem_table(g_vid, NULL, 0), 1);
	CHECK_EQ(g_qstart[0], 1);
	CHECK(!strcmp(g_log, "C"));
	CHECK_EQ(acked_u64(v, VHOST_USER_SET_STATUS, 0xf), 0);
	CHECK(!strcmp(g_log, "CN"));
	send_msg(v, VHOST_USER_GET_STATUS, 1, NULL, 0, NULL, 0);
	CHECK_EQ(recv_u64(v, VHOST_USER_GET_STATUS), 0xf);
	CHECK(acked_u64(v, VHOST_USER_SET_STATUS, 0x100) != 0);
	/* Reset: rings stop, the device is destroyed. */
	CHECK_EQ(acked_u64(v, VHOST_USER_SET_STATUS, 0), 0);
	CHECK(!strcmp(g_log, "CND"));
	CHECK_EQ(g_qstop[0], 1);
	CHECK_EQ(g_ring_down[0], 1);
	/* REM_MEM_REG by (gpa, qva, size). */
	struct vhost_user_mem_reg r = {0};
	r.region.memory_size = RAM_SIZE;
	r.region.userspace_addr = RAM_QVA + 4096;
	CHECK(acked(v, VHOST_USER_REM_MEM_REG, &r, 40, NULL, 0) != 0);
	r.region.userspace_addr = RAM_QVA;
	r.region.mmap_offset = 12345; /* ignored */
	CHECK_EQ(acked(v, VHOST_USER_REM_MEM_REG, &r, 40, NULL, 0), 0);
	CHECK_EQ(vhk_dev_get_mem_table(g_vid, NULL, 0), 0);
	/* RESET_OWNER keeps the connection usable. */
	CHECK_EQ(acked(v, VHOST_USER_RESET_OWNER, NULL, 0, NULL, 0), 0);
	expect_alive(v);
	vuf_close(v);
	pump(5);
	CHECK(!strcmp(g_log, "CNDX"));
	vu_finish();
}

static void t_no_protocol_features(void)
{
	struct vuf *v = setup_with(1ull << VHK_F_PROTOCOL_FEATURES, 1);
	struct vhost_user_vring_state st = {0, 256};
	struct vhost_user_vring_addr a = {
	    .desc_user_addr = RAM_QVA,
	    .avail_user_addr = RAM_QVA + 0x1000,
	    .used_user_addr = RAM_QVA + 0x2000,
	};
	struct vhost_user_msg m = {0};
	int mfd = memfd_create("guest", MFD_CLOEXEC);
	uint64_t nofd = VHOST_USER_VRING_NOFD_MASK;

	CHECK(mfd >= 0 && ftruncate(mfd, RAM_SIZE) == 0);
	/* Without F_PROTOCOL_FEATURES, SET_FEATURES enables every ring. */
	send_u64(v, VHOST_USER_SET_FEATURES, 0, 1ull << VHK_F_VERSION_1);
	m.payload.memory.nregions = 1;
	m.payload.memory.regions[0].memory_size = RAM_SIZE;
	m.payload.memory.regions[0].userspace_addr = RAM_QVA;
	send_msg(v, VHOST_USER_SET_MEM_TABLE, 1, m.payload.bytes, 40, &mfd, 1);
	close(mfd);
	send_msg(v, VHOST_USER_SET_VRING_NUM, 1, &st, 8, NULL, 0);
	send_msg(v, VHOST_USER_SET_VRING_ADDR, 1, &a, 40, NULL, 0);
	send_msg(v, VHOST_USER_SET_VRING_KICK, 1, &nofd, 8, NULL, 0);
	pump(20);
	CHECK(!strcmp(g_log, "CN"));
	CHECK_EQ(g_ring_up[0], 1);
	uint64_t f = 0;
	CHECK_EQ(vhk_dev_get_features(g_vid, &f), 0);
	CHECK_EQ(f, 1ull << VHK_F_VERSION_1);
	vuf_close(v);
	pump(5);
	CHECK(!strcmp(g_log, "CNDX"));
	vu_finish();
}

/* Wait until *@p reaches @v (control thread mode). */
static void wait_count(int *p, int v)
{
	for (int i = 0; i < 2000 && __atomic_load_n(p, __ATOMIC_SEQ_CST) < v; i++)
		usleep(1000);
	CHECK_EQ(__atomic_load_n(p, __ATOMIC_SEQ_CST), v);
}

/* Accept one connection on @lfd within a second. */
static struct vuf *accept_wait(int lfd)
{
	struct vuf *v = NULL;

	CHECK_EQ(vuf_accept(lfd, 1000, &v), 0);
	return v;
}

static long ms_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) * 1000 + (b.tv_nsec - a->tv_nsec) / 1000000;
}

static void t_client_reconnect(void)
{
	struct timespec t0;

	snprintf(g_path, sizeof(g_path), "/tmp/vhk-tc-%d.sock", (int)getpid());
	unlink(g_path);
	CHECK_EQ(vhk_socket_register(g_path, VHK_CLIENT | VHK_NO_RECONNECT), 0);
	CHECK(vhk_socket_start(g_path) < 0); /* nobody listens */
	CHECK_EQ(vhk_socket_unregister(g_path), 0);

	/* With reconnect: start before the server exists. */
	CHECK_EQ(vhk_socket_register(g_path, VHK_CLIENT), 0);
	CHECK_EQ(vhk_socket_set_callbacks(g_path, &g_cb, NULL), 0);
	CHECK_EQ(vhk_socket_start(g_path), 0);
	CHECK_EQ(vhk_loop_app_driven(), -EBUSY);
	int lfd = -1;
	CHECK_EQ(vuf_listen(g_path, &lfd), 0);
	struct vuf *a = accept_wait(lfd);
	wait_count(&g_nconn, 1);
	expect_alive(a);
	/* The frontend goes away: the backend comes back after its backoff. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	vuf_close(a);
	a = accept_wait(lfd);
	CHECK(ms_since(&t0) >= 90);
	wait_count(&g_nconn, 2);
	CHECK_EQ(g_ndisc, 1);
	expect_alive(a);
	/* Unregister from this thread while the control thread runs. */
	CHECK_EQ(vhk_socket_unregister(g_path), 0);
	CHECK_EQ(g_ndisc, 2);
	expect_closed(a);
	vuf_close(a);
	/* No reconnect after unregister; the server's file is not ours to remove. */
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	CHECK_EQ(poll(&p, 1, 300), 0);
	CHECK_EQ(access(g_path, F_OK), 0);
	close(lfd);
	unlink(g_path);
	vu_finish();
}

static void t_server_thread_mode(void)
{
	struct vuf *fe[3];

	snprintf(g_path, sizeof(g_path), "/tmp/vhk-ts-%d.sock", (int)getpid());
	unlink(g_path);
	for (int round = 0; round < 3; round++) {
		CHECK_EQ(vhk_socket_register(g_path, 0), 0);
		CHECK_EQ(vhk_socket_register(g_path, 0), -EEXIST);
		CHECK_EQ(vhk_socket_set_callbacks(g_path, &g_cb, NULL), 0);
		CHECK_EQ(vhk_socket_set_perm(g_path, 0600, (uid_t)-1, (gid_t)-1), 0);
		CHECK_EQ(vhk_socket_start(g_path), 0);
		CHECK_EQ(vhk_socket_set_perm(g_path, 0600, (uid_t)-1, (gid_t)-1), -EBUSY);
		struct stat st;
		CHECK(stat(g_path, &st) == 0 && (st.st_mode & 0777) == 0600);
		for (int i = 0; i < 3; i++)
			CHECK_EQ(vuf_connect(g_path, 0, &fe[i]), 0);
		for (int i = 0; i < 3; i++)
			expect_alive(fe[i]);
		wait_count(&g_nconn, 3 * (round + 1));
		CHECK_EQ(vhk_socket_unregister(g_path), 0);
		CHECK_EQ(g_ndisc, 3 * (round + 1));
		for (int i = 0; i < 3; i++) {
			expect_closed(fe[i]);
			vuf_close(fe[i]);
		}
		CHECK(access(g_path, F_OK) < 0);
	}
	CHECK_EQ(vhk_socket_unregister(g_path), -ENOENT);
	CHECK_EQ(vhk_socket_start(g_path), -ENOENT);
	CHECK_EQ(vhk_socket_register("", 0), -EINVAL);
	CHECK_EQ(vhk_socket_register(g_path, 1ull << 40), -EINVAL);
	vu_finish();
}

TEST_MAIN(TEST(t_vring_base_stop), TEST(t_async_op), TEST(t_unregister_in_callback),
	  TEST(t_handlers), TEST(t_no_protocol_features), TEST(t_client_reconnect),
	  TEST(t_server_thread_mode))
