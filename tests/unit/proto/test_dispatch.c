/* SPDX-License-Identifier: MIT */
/*
 * The proto dispatcher driven with raw vhost-user messages over a real
 * socket, in app-driven mode: header validation, per-message size and fd
 * rules, unknown messages, REPLY_ACK, gating, stalled peers, and fd
 * hygiene over thousands of bad messages.
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

static void t_header_validation(void)
{
	static const struct vhost_user_header bad[] = {
	    {VHOST_USER_GET_FEATURES, 0, 0},	  /* version 0 */
	    {VHOST_USER_GET_FEATURES, 2, 0},	  /* version 2 */
	    {VHOST_USER_GET_FEATURES, 1 | 4, 0},  /* REPLY bit */
	    {VHOST_USER_GET_FEATURES, 1 | 16, 0}, /* unknown flag */
	    {VHOST_USER_GET_FEATURES, 1 | (1u << 31), 0},
	    {VHOST_USER_SET_FEATURES, 1, 4097}, /* too big */
	    {VHOST_USER_SET_FEATURES, 1, 0xffffffffu},
	};
	struct vuf *v = setup_with(0, 1);
	int base = fd_count_open();

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int efd = eventfd(0, EFD_CLOEXEC);
		CHECK_EQ(vuf_send_raw(v, &bad[i], 12, &efd, 1), 0);
		close(efd);
		expect_closed(v);
		vuf_close(v);
		v = connect_again();
		expect_alive(v);
	}
	vuf_close(v);
	pump(5);
	CHECK_EQ(fd_count_open(), base - 2);
	vu_finish();
}

static void t_size_mismatch(void)
{
	static const uint32_t fixed8[] = {
	    VHOST_USER_SET_FEATURES,	 VHOST_USER_SET_VRING_NUM,
	    VHOST_USER_SET_VRING_BASE,	 VHOST_USER_SET_PROTOCOL_FEATURES,
	    VHOST_USER_SET_VRING_ENABLE, VHOST_USER_SET_STATUS,
	};
	static const uint32_t getters[] = {
	    VHOST_USER_GET_FEATURES,  VHOST_USER_GET_PROTOCOL_FEATURES,
	    VHOST_USER_GET_QUEUE_NUM, VHOST_USER_GET_MAX_MEM_SLOTS,
	    VHOST_USER_GET_STATUS,
	};
	uint8_t zeros[512] __attribute__((aligned(8))) = {0};
	struct vhost_user_msg m;
	struct vuf *v = setup_with(0, 1);

	negotiate(v, PF_ACK | (1ull << VHK_PF_MQ) | (1ull << VHK_PF_STATUS) |
			 (1ull << VHK_PF_CONFIGURE_MEM_SLOTS));
	for (size_t i = 0; i < ARRAY_SIZE(fixed8); i++) {
		CHECK(acked(v, fixed8[i], zeros, 4, NULL, 0) != 0);
		CHECK(acked(v, fixed8[i], zeros, 12, NULL, 0) != 0);
		CHECK(acked(v, fixed8[i], zeros, 0, NULL, 0) != 0);
	}
	CHECK(acked(v, VHOST_USER_SET_VRING_ADDR, zeros, 32, NULL, 0) != 0);
	CHECK(acked(v, VHOST_USER_SET_OWNER, zeros, 8, NULL, 0) != 0);
	CHECK(acked(v, VHOST_USER_ADD_MEM_REG, zeros, 32, NULL, 0) != 0);
	/* SET_MEM_TABLE: 8 + 32 * nregions, 1..8 regions. */
	struct vhost_user_memory *mem = (void *)zeros;
	mem->nregions = 1;
	CHECK(acked(v, VHOST_USER_SET_MEM_TABLE, zeros, 8 + 16, NULL, 0) != 0);
	mem->nregions = 0;
	CHECK(acked(v, VHOST_USER_SET_MEM_TABLE, zeros, 8, NULL, 0) != 0);
	/* Getters with a payload: an empty reply, and the connection lives on. */
	for (size_t i = 0; i < ARRAY_SIZE(getters); i++) {
		send_msg(v, getters[i], 1, zeros, 8, NULL, 0);
		CHECK_EQ(recv_reply(v, getters[i], &m), 0);
	}
	send_msg(v, VHOST_USER_GET_VRING_BASE, 1, zeros, 4, NULL, 0);
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_VRING_BASE, &m), 0);
	/* A failed message without NEED_REPLY is answered by nothing. */
	send_msg(v, VHOST_USER_SET_FEATURES, 1, zeros, 4, NULL, 0);
	expect_silence(v);
	send_msg(v, VHOST_USER_GET_QUEUE_NUM, 1, NULL, 0, NULL, 0);
	CHECK_EQ(recv_u64(v, VHOST_USER_GET_QUEUE_NUM), 2); /* queues: no queue_num_unit */
	send_msg(v, VHOST_USER_GET_MAX_MEM_SLOTS, 1, NULL, 0, NULL, 0);
	CHECK_EQ(recv_u64(v, VHOST_USER_GET_MAX_MEM_SLOTS), 509);
	expect_alive(v);
	vuf_close(v);
	vu_finish();
}

/* One round of fd-carrying bad messages; each must be NACKed. */
static void bad_fd_round(struct vuf *v)
{
	int e[9];
	uint64_t val;
	struct vhost_user_msg mt;

	for (int i = 0; i < 9; i++)
		e[i] = eventfd(0, EFD_CLOEXEC);
	val = 0; /* CALL without NOFD and without fd */
	CHECK(acked(v, VHOST_USER_SET_VRING_CALL, &val, 8, NULL, 0) != 0);
	val = VHOST_USER_VRING_NOFD_MASK; /* NOFD but an fd attached */
	CHECK(acked(v, VHOST_USER_SET_VRING_KICK, &val, 8, e, 1) != 0);
	val = 0; /* two fds */
	CHECK(acked(v, VHOST_USER_SET_VRING_ERR, &val, 8, e, 2) != 0);
	val = 1u << 9; /* reserved bit */
	CHECK(acked(v, VHOST_USER_SET_VRING_CALL, &val, 8, e, 1) != 0);
	val = 5; /* index out of range */
	CHECK(acked(v, VHOST_USER_SET_VRING_CALL, &val, 8, e, 1) != 0);
	CHECK(acked_u64(v, VHOST_USER_SET_FEATURES, F_BASE) == 0);
	CHECK(acked(v, VHOST_USER_SET_FEATURES, &val, 8, e, 3) != 0);
	memset(&mt, 0, sizeof(mt));
	mt.payload.memory.nregions = 2; /* 2 regions, 3 fds */
	CHECK(acked(v, VHOST_USER_SET_MEM_TABLE, mt.payload.bytes, 8 + 64, e, 3) != 0);
	CHECK(acked(v, VHOST_USER_SET_MEM_TABLE, mt.payload.bytes, 8 + 64, e, 1) != 0);
	CHECK(acked(v, VHOST_USER_ADD_MEM_REG, mt.payload.bytes, 40, NULL, 0) != 0);
	/* REM_MEM_REG: an fd is tolerated and closed (fails: no such region). */
	CHECK(acked(v, VHOST_USER_REM_MEM_REG, mt.payload.bytes, 40, e, 1) != 0);
	CHECK(acked(v, VHOST_USER_REM_MEM_REG, mt.payload.bytes, 40, e, 2) != 0);
	/* Unimplemented messages with fds. */
	CHECK(acked(v, VHOST_USER_SET_LOG_FD, NULL, 0, e, 1) != 0);
	CHECK(acked(v, VHOST_USER_SET_INFLIGHT_FD, mt.payload.bytes, 20, e, 1) != 0);
	CHECK(acked(v, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, e, 8) != 0);
	fd_close_all(e, 9);
}

static void t_fd_rules_no_leak(void)
{
	struct vuf *v = setup_with(0, 1);

	negotiate(v, PF_ACK | (1ull << VHK_PF_CONFIGURE_MEM_SLOTS) | (1ull << VHK_PF_BACKEND_REQ));
	bad_fd_round(v);
	int base = fd_count_open();
	for (int i = 0; i < 2000; i++)
		bad_fd_round(v);
	CHECK_EQ(fd_count_open(), base);
	/* Good fd messages take their fd; replacing closes the old one. */
	int e = eventfd(0, EFD_CLOEXEC);
	for (int i = 0; i < 100; i++) {
		CHECK(acked(v, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &e, 1) == 0);
		uint64_t val = 1;
		CHECK(acked(v, VHOST_USER_SET_VRING_CALL, &val, 8, &e, 1) == 0);
	}
	CHECK_EQ(fd_count_open(), base + 3);
	close(e);
	vuf_close(v);
	pump(5);
	CHECK_EQ(fd_count_open(), base - 2);
	vu_finish();
}

static void t_unknown_and_ack(void)
{
	struct vuf *v = setup_with(0, 1);
	uint8_t zeros[512] __attribute__((aligned(8))) = {0};

	/* Before REPLY_ACK is negotiated NEED_REPLY is ignored. */
	send_msg(v, VHOST_USER_SET_OWNER, 1 | NEED_REPLY, NULL, 0, NULL, 0);
	send_msg(v, VHOST_USER_SET_VRING_ENDIAN, 1 | NEED_REPLY, zeros, 8, NULL, 0);
	expect_silence(v);
	negotiate(v, PF_ACK);
	CHECK_EQ(acked(v, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	static const uint32_t unimpl[] = {
	    VHOST_USER_IOTLB_MSG,
	    VHOST_USER_SET_VRING_ENDIAN,
	    VHOST_USER_POSTCOPY_ADVISE,
	    VHOST_USER_RESET_DEVICE,
	    VHOST_USER_VRING_KICK,
	    VHOST_USER_GET_SHARED_OBJECT,
	    VHOST_USER_CHECK_DEVICE_STATE,
	    VHOST_USER_GET_VRING_BASE_SKIP_DRAIN,
	};
	for (size_t i = 0; i < ARRAY_SIZE(unimpl); i++)
		CHECK(acked(v, unimpl[i], zeros, 8, NULL, 0) != 0);
	/* Codes outside the spec's list: refused the same way, fds closed. */
	static const uint32_t unknown[] = {VHOST_USER_NONE, VHOST_USER_MAX, 1000, 0xffffffffu};
	int base = fd_count_open();
	for (size_t i = 0; i < ARRAY_SIZE(unknown); i++) {
		int e = eventfd(0, EFD_CLOEXEC);
		CHECK(acked(v, unknown[i], zeros, 16, &e, 1) != 0);
		close(e);
	}
	CHECK_EQ(fd_count_open(), base);
	/* Without NEED_REPLY: nothing, and still alive. */
	send_msg(v, VHOST_USER_IOTLB_MSG, 1, zeros, 26, NULL, 0);
	expect_silence(v);
	/* Values: SET_VRING_ENABLE num must be 0/1; GET_VRING_BASE num is
	 * reserved and ignored (DPDK virtio-user sends garbage there). */
	struct vhost_user_vring_state st = {0, 2};
	CHECK(acked(v, VHOST_USER_SET_VRING_ENABLE, &st, 8, NULL, 0) != 0);
	st.num = 1;
	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_ENABLE, &st, 8, NULL, 0), 0);
	struct vhost_user_msg m;
	st.num = 3;
	send_msg(v, VHOST_USER_GET_VRING_BASE, 1, &st, 8, NULL, 0);
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_VRING_BASE, &m), 8);
	CHECK_EQ(m.payload.state.index, 0);
	/* Unoffered feature bits are refused. */
	CHECK(acked_u64(v, VHOST_USER_SET_FEATURES, F_BASE | 1) != 0);
	CHECK(acked_u64(v, VHOST_USER_SET_PROTOCOL_FEATURES, PF_ACK | (1ull << 1)) != 0);
	CHECK_EQ(acked_u64(v, VHOST_USER_SET_PROTOCOL_FEATURES, PF_ACK), 0);
	expect_alive(v);
	vuf_close(v);
	vu_finish();
}

static void t_gating(void)
{
	struct vhost_user_msg m;
	struct vhost_user_vring_state st = {0, 1};
	struct vuf *v = setup_with(1ull << VHK_F_PROTOCOL_FEATURES, 2);

	/* PROTOCOL_FEATURES not offered: GET is answered empty, SET ignored. */
	send_msg(v, VHOST_USER_GET_PROTOCOL_FEATURES, 1, NULL, 0, NULL, 0);
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_PROTOCOL_FEATURES, &m), 0);
	vuf_close(v);
	CHECK_EQ(vhk_socket_unregister(g_path), 0);
	CHECK(access(g_path, F_OK) < 0);

	CHECK_EQ(vhk_socket_register(g_path, 0), 0);
	CHECK_EQ(vhk_socket_set_max_queues(g_path, 4), 0);
	CHECK_EQ(vhk_socket_set_protocol_features(g_path, 1ull << VHK_PF_CROSS_ENDIAN), -ENOTSUP);
	CHECK_EQ(vhk_socket_start(g_path), 0);
	CHECK_EQ(vhk_socket_start(g_path), -EALREADY);
	CHECK_EQ(vhk_socket_set_features(g_path, 0), -EBUSY);
	v = connect_again();
	/* Protocol features work before SET_FEATURES. */
	send_msg(v, VHOST_USER_GET_PROTOCOL_FEATURES, 1, NULL, 0, NULL, 0);
	CHECK(recv_u64(v, VHOST_USER_GET_PROTOCOL_FEATURES) & PF_ACK);
	send_u64(v, VHOST_USER_SET_PROTOCOL_FEATURES, 0, PF_ACK);
	/*
	 * The protocol-feature handshake counts as negotiating F_PROTOCOL_FEATURES
	 * (QEMU 7.2 omits bit 30 from SET_FEATURES and enables rings anyway).
	 */
	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_ENABLE, &st, 8, NULL, 0), 0);
	/* MQ, STATUS, CONFIG, RARP, MTU not negotiated. */
	send_msg(v, VHOST_USER_GET_QUEUE_NUM, 1, NULL, 0, NULL, 0);
	CHECK_EQ(recv_reply(v, VHOST_USER_GET_QUEUE_NUM, &m), 0);
	CHECK(acked_u64(v, VHOST_USER_SET_STATUS, 1) != 0);
	CHECK(acked_u64(v, VHOST_USER_NET_SET_MTU, 1500) != 0);
	CHECK(acked_u64(v, VHOST_USER_SEND_RARP, 0) != 0);
	CHECK_EQ(acked_u64(v, VHOST_USER_SET_FEATURES, F_BASE), 0);
	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_ENABLE, &st, 8, NULL, 0), 0);
	/* Vring index: 2 queue pairs = 4 vrings, full 32-bit field. */
	st.index = 3;
	CHECK_EQ(acked(v, VHOST_USER_SET_VRING_ENABLE, &st, 8, NULL, 0), 0);
	st.index = 4;
	CHECK(acked(v, VHOST_USER_SET_VRING_ENABLE, &st, 8, NULL, 0) != 0);
	st.index = 0x100000000ull - 1;
	CHECK(acked(v, VHOST_USER_SET_VRING_NUM, &st, 8, NULL, 0) != 0);
	st.index = 0x100;
	CHECK(acked(v, VHOST_USER_SET_VRING_BASE, &st, 8, NULL, 0) != 0);
	/* Renegotiate with MQ. */
	CHECK_EQ(acked_u64(v, VHOST_USER_SET_PROTOCOL_FEATURES, PF_ACK | (1ull << VHK_PF_MQ)), 0);
	send_msg(v, VHOST_USER_GET_QUEUE_NUM, 1, NULL, 0, NULL, 0);
	CHECK_EQ(recv_u64(v, VHOST_USER_GET_QUEUE_NUM), 4);
	vuf_close(v);
	vu_finish();
}

static void t_stalled_peer(void)
{
	struct vuf *a = setup_with(0, 1);
	struct vuf *b = connect_again();
	struct vhost_user_header h = {VHOST_USER_GET_FEATURES, 1, 0};

	/* Half a header from a, then b is served. */
	CHECK_EQ(vuf_send_raw(a, &h, 6, NULL, 0), 0);
	expect_alive(b);
	CHECK_EQ(vuf_send_raw(a, (char *)&h + 6, 6, NULL, 0), 0);
	CHECK_EQ(recv_u64(a, VHOST_USER_GET_FEATURES), F_BASE);
	/* EOF mid-payload with fds: the connection closes, fds too. */
	int base = fd_count_open();
	struct vhost_user_msg m = {{VHOST_USER_SET_MEM_TABLE, 1, 40}};
	int e[2] = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
	CHECK_EQ(vuf_send_raw(a, &m, 20, e, 2), 0);
	pump(5);
	close(e[0]);
	close(e[1]);
	vuf_close(a);
	pump(10);
	CHECK_EQ(fd_count_open(), base - 2);
	expect_alive(b);
	vuf_close(b);
	vu_finish();
}

TEST_MAIN(TEST(t_header_validation), TEST(t_size_mismatch), TEST(t_fd_rules_no_leak),
	  TEST(t_unknown_and_ack), TEST(t_gating), TEST(t_stalled_peer))
