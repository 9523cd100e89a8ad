/* SPDX-License-Identifier: MIT */
/*
 * Protocol tests, part 1: feature and protocol-feature negotiation, owner,
 * queue count, ring enable gating, net messages (RARP, MTU), the backend
 * channel, device status, and messages the library does not implement.
 * Every rejection is checked as a well-formed NACK after which the
 * connection keeps working.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

static const struct vhk_device_ops custom_ops = {.name = "it", .min_queues = 1};

/* Start a custom-device socket offering @f and @pf (pairs = 2). */
static const char *start_custom(uint64_t f, uint64_t pf)
{
	struct be_cfg cfg = {.ops = &custom_ops, .features = f, .protocol_features = pf,
			     .pairs = 2};
	return be_start(&cfg);
}

/* Start a net socket offering the net defaults and @pf. */
static const char *start_net(uint64_t pf)
{
	struct be_cfg cfg = {.net = true, .protocol_features = pf, .pairs = 2};
	return be_start(&cfg);
}

/* GET_FEATURES returns exactly the configured offer (custom and net). */
static void t_get_features(void)
{
	const char *path = start_custom(IT_F_CUSTOM, IT_PF_DEFAULT);
	struct vuf *v = fe_connect(path);
	uint64_t f = 0, pf = 0;
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_FEATURES, &f), 0);
	CHECK_EQ(f, IT_F_CUSTOM);
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_PROTOCOL_FEATURES, &pf), 0);
	CHECK_EQ(pf, IT_PF_DEFAULT);
	vuf_close(v);
	be_stop();

	path = start_net(IT_PF_DEFAULT | BIT(VHK_PF_RARP));
	v = fe_connect(path);
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_FEATURES, &f), 0);
	CHECK_EQ(f, VHK_NET_DEFAULT_FEATURES);
	vuf_close(v);
}

/* SET_FEATURES stores the subset; features_changed reports it. */
static void t_set_features(void)
{
	const char *path = start_custom(IT_F_CUSTOM, IT_PF_DEFAULT);
	uint64_t want = BIT(VHK_F_VERSION_1) | BIT(VHK_F_PROTOCOL_FEATURES);
	struct vuf *v = fe_open(path, want, IT_PF_DEFAULT);
	int vid = ev_conn_vid();
	uint64_t f = 0, pf = 0;
	CHECK_EQ(v->features, want);
	CHECK_EQ(vhk_dev_get_features(vid, &f), 0);
	CHECK_EQ(f, want);
	CHECK_EQ(vhk_dev_get_protocol_features(vid, &pf), 0);
	CHECK_EQ(pf, IT_PF_DEFAULT);
	struct ev e;
	CHECK(ev_wait_match(EV_FEATURES, vid, -1, -1, 2000, &e));
	CHECK_EQ(e.features, want);
	/* Renegotiation with another subset is accepted. */
	fe_ack(v, VHOST_USER_SET_FEATURES, &(uint64_t){IT_F_CUSTOM}, 8, NULL, 0);
	CHECK_EQ(vhk_dev_get_features(vid, &f), 0);
	CHECK_EQ(f, IT_F_CUSTOM);
	CHECK_EQ(vhk_dev_get_features(vid, NULL), -EINVAL);
	vuf_close(v);
}

/* SET_FEATURES with a bit never offered is NACKed and changes nothing. */
static void t_set_features_unoffered(void)
{
	const char *path = start_custom(IT_F_CUSTOM, IT_PF_DEFAULT);
	struct vuf *v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT);
	int vid = ev_conn_vid();
	uint64_t bad[] = {IT_F_CUSTOM | BIT(VHK_F_RING_PACKED), IT_F_CUSTOM | BIT(40),
			  IT_F_CUSTOM | BIT(63), ~0ull};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		fe_nack(v, VHOST_USER_SET_FEATURES, &bad[i], 8, NULL, 0);
	uint64_t f = 0;
	CHECK_EQ(vhk_dev_get_features(vid, &f), 0);
	CHECK_EQ(f, IT_F_CUSTOM);
	vuf_close(v);
}

/* Protocol features work before SET_FEATURES; unoffered bits are not taken. */
static void t_protocol_features(void)
{
	const char *path = start_custom(IT_F_CUSTOM, IT_PF_DEFAULT | BIT(VHK_PF_STATUS));
	struct vuf *v = fe_connect(path);
	int vid = ev_conn_vid();
	uint64_t pf = 0;
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_PROTOCOL_FEATURES, &pf), 0);
	CHECK_EQ(pf, IT_PF_DEFAULT | BIT(VHK_PF_STATUS));
	/* An unoffered bit (INFLIGHT_SHMFD, bit 40): rejected, never stored. */
	uint64_t bad = BIT(VHK_PF_REPLY_ACK) | BIT(VHK_PF_INFLIGHT_SHMFD) | BIT(40);
	CHECK_EQ(vuf_send(v, VHOST_USER_SET_PROTOCOL_FEATURES,
			  VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, &bad, 8, NULL, 0), 0);
	if (fe_rejected(v, VHOST_USER_SET_PROTOCOL_FEATURES) != REJ_CLOSED) {
		CHECK_EQ(vhk_dev_get_protocol_features(vid, &pf), 0);
		CHECK((pf & (BIT(VHK_PF_INFLIGHT_SHMFD) | BIT(40))) == 0);
	}
	vuf_close(v);

	/* A fresh connection negotiates a subset before SET_FEATURES. */
	CHECK(ev_wait(EV_DESTROY_CONN, 1, 3000));
	v = fe_connect(path);
	CHECK(ev_wait(EV_NEW_CONN, 2, 3000));
	vid = ev_conn_vid();
	uint64_t want = BIT(VHK_PF_REPLY_ACK) | BIT(VHK_PF_STATUS);
	CHECK_EQ(vuf_set_u64(v, VHOST_USER_SET_PROTOCOL_FEATURES, want), 0);
	v->protocol_features = want;
	fe_usable(v); /* barrier: the SET was handled */
	CHECK_EQ(vhk_dev_get_protocol_features(vid, &pf), 0);
	CHECK_EQ(pf, want);
	/* REPLY_ACK is live now, still before SET_FEATURES. */
	fe_ack(v, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
	vuf_close(v);
}

/* Without F_PROTOCOL_FEATURES offered, the protocol-feature messages are refused. */
static void t_protocol_features_need_bit(void)
{
	uint64_t f = IT_F_CUSTOM & ~BIT(VHK_F_PROTOCOL_FEATURES);
	const char *path = start_custom(f, IT_PF_DEFAULT);
	struct vuf *v = fe_connect(path);
	int vid = ev_conn_vid();
	struct vhost_user_msg m;
	uint64_t pf = BIT(VHK_PF_REPLY_ACK);

	CHECK_EQ(vuf_send(v, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION, &pf, 8, NULL,
			  0), 0);
	CHECK_EQ(vuf_send(v, VHOST_USER_GET_PROTOCOL_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL,
			  0), 0);
	CHECK_EQ(vuf_send(v, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0), 0);
	int rc = vuf_recv(v, &m, 3000);
	if (rc == 0 && m.hdr.request == VHOST_USER_GET_PROTOCOL_FEATURES) {
		CHECK_EQ(m.hdr.size, 0); /* a failed reply, never an answer */
		rc = vuf_recv(v, &m, 3000);
	}
	if (rc != -ECONNRESET) {
		/* No protocol-features answer: the next reply answers GET_FEATURES. */
		CHECK_EQ(rc, 0);
		CHECK_EQ(m.hdr.request, VHOST_USER_GET_FEATURES);
		CHECK_EQ(m.payload.u64, f);
		CHECK_EQ(vhk_dev_get_protocol_features(vid, &pf), 0);
		CHECK_EQ(pf, 0);
	}
	vuf_close(v);
}

/* SET_OWNER and the deprecated RESET_OWNER are acked; the connection survives. */
static void t_owner(void)
{
	const char *path = start_custom(IT_F_CUSTOM, IT_PF_DEFAULT);
	struct vuf *v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT);
	int vid = ev_conn_vid();
	struct gmem *m = NULL;
	struct gvq *r = NULL;
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	CHECK_EQ(gvq_new(m, 64, BIT(VHK_F_EVENT_IDX), &r), 0);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	CHECK_EQ(vuf_start_vring(v, 0, r), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	fe_ack(v, VHOST_USER_RESET_OWNER, NULL, 0, NULL, 0);
	fe_usable(v);
	/* Connection state stays valid: ownership can be taken again. */
	fe_ack(v, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
	fe_usable(v);
	uint64_t f = 0;
	CHECK_EQ(vhk_dev_get_features(vid, &f), 0);
	vuf_close(v);
	CHECK(ev_wait(EV_DESTROY_CONN, 1, 3000));
	gvq_free(r);
	gmem_free(m);
}

/*
 * GET_QUEUE_NUM counts queues for a device without queue_num_unit (and
 * pairs for net, t_queue_num_net), and answers only with MQ negotiated.
 */
static void t_queue_num(void)
{
	struct be_cfg cfg = {.ops = &custom_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT, .pairs = 77};
	const char *path = be_start(&cfg);
	uint32_t queues = 0;
	CHECK_EQ(vhk_socket_get_max_queues(path, &queues), 0);
	CHECK_EQ(queues, 154);
	struct vuf *v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT);
	uint64_t n = 0;
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_QUEUE_NUM, &n), 0);
	CHECK_EQ(n, 154);
	vuf_close(v);

	v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT & ~BIT(VHK_PF_MQ));
	CHECK_EQ(vuf_send(v, VHOST_USER_GET_QUEUE_NUM,
			  VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, NULL, 0, NULL, 0), 0);
	struct vhost_user_msg msg;
	int rc = vuf_recv(v, &msg, 3000);
	if (rc != -ECONNRESET) {
		CHECK_EQ(rc, 0);
		CHECK_EQ(msg.hdr.request, VHOST_USER_GET_QUEUE_NUM);
		/* An empty (failed) reply or a NACK, not the answer. */
		CHECK(msg.hdr.size == 0 ||
		      (msg.hdr.size == 8 && msg.payload.u64 != 0 && msg.payload.u64 != 154));
		fe_usable(v);
	}
	vuf_close(v);
}

/* SET_VRING_ENABLE needs F_PROTOCOL_FEATURES: without it rings are enabled at once. */
/* The net device counts queue pairs: GET_QUEUE_NUM = max queues / 2. */
static void t_queue_num_net(void)
{
	struct be_cfg cfg = {.net = true, .protocol_features = IT_PF_DEFAULT, .pairs = 3};
	const char *path = be_start(&cfg);
	uint32_t pairs = 0, queues = 0;
	uint64_t n = 0;

	CHECK_EQ(vhk_net_get_queue_pairs(path, &pairs), 0);
	CHECK_EQ(pairs, 3);
	CHECK_EQ(vhk_socket_get_max_queues(path, &queues), 0);
	CHECK_EQ(queues, 6);
	CHECK_EQ(vhk_net_set_queue_pairs(path, 0), -EINVAL);
	CHECK_EQ(vhk_net_set_queue_pairs(path, VHK_NET_MAX_QUEUE_PAIRS + 1), -EINVAL);
	CHECK_EQ(vhk_net_set_queue_pairs("/nonexistent/path", 1), -ENOENT);
	struct vuf *v = fe_open(path, VHK_NET_DEFAULT_FEATURES, IT_PF_DEFAULT);
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_QUEUE_NUM, &n), 0);
	CHECK_EQ(n, 3);
	vuf_close(v);
}

static void t_vring_enable_gate(void)
{
	const char *path = start_custom(IT_F_CUSTOM, IT_PF_DEFAULT);
	uint64_t f = IT_F_CUSTOM & ~BIT(VHK_F_PROTOCOL_FEATURES);
	struct vuf *v = fe_open(path, f, 0);
	int vid = ev_conn_vid();
	CHECK_EQ(v->protocol_features, 0);
	struct gmem *m = NULL;
	struct gvq *r = NULL;
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	CHECK_EQ(gvq_new(m, 64, BIT(VHK_F_EVENT_IDX), &r), 0);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	CHECK_EQ(vuf_start_vring(v, 0, r), 0); /* no ENABLE without the bit */
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	struct vhk_vq_info info;
	fe_usable(v);
	CHECK_EQ(vhk_vq_get_info(vid, 0, &info), 0);
	CHECK(info.enabled);
	CHECK(info.started);
	/* Disabling is refused: the message is not legal here. */
	struct vhost_user_vring_state s = {.index = 0, .num = 0};
	CHECK_EQ(vuf_send(v, VHOST_USER_SET_VRING_ENABLE, VHOST_USER_VERSION, &s, 8, NULL, 0), 0);
	struct vhost_user_msg msg;
	CHECK_EQ(vuf_send(v, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0), 0);
	int rc = vuf_recv(v, &msg, 3000);
	if (rc != -ECONNRESET) {
		CHECK_EQ(rc, 0);
		CHECK_EQ(msg.hdr.request, VHOST_USER_GET_FEATURES);
		CHECK_EQ(vhk_vq_get_info(vid, 0, &info), 0);
		CHECK(info.enabled);
		CHECK(!ev_find(EV_VRING_STATE, vid, 0, 0, NULL));
	}
	vuf_close(v);
	CHECK(ev_wait(EV_DESTROY_CONN, 1, 3000));
	gvq_free(r);
	gmem_free(m);
}

/*
 * QEMU 7.2 runs GET/SET_PROTOCOL_FEATURES but leaves
 * VHOST_USER_F_PROTOCOL_FEATURES out of SET_FEATURES, then enables rings with
 * SET_VRING_ENABLE. The handshake must count as negotiated: rings start
 * disabled and SET_VRING_ENABLE is accepted (refusing it made QEMU give up
 * on vhost and the guest's traffic went nowhere).
 */
static void t_protocol_handshake_without_bit30(void)
{
	const char *path = start_custom(IT_F_CUSTOM, IT_PF_DEFAULT);
	struct vuf *v = fe_connect(path);
	int vid = ev_conn_vid();
	uint64_t offered = 0, pf = 0;

	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_FEATURES, &offered), 0);
	CHECK(offered & BIT(VHK_F_PROTOCOL_FEATURES));
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_PROTOCOL_FEATURES, &pf), 0);
	pf &= BIT(VHK_PF_REPLY_ACK) | BIT(VHK_PF_MQ);
	CHECK_EQ(vuf_set_u64(v, VHOST_USER_SET_PROTOCOL_FEATURES, pf), 0);
	v->protocol_features = pf;
	uint64_t f = offered & ~BIT(VHK_F_PROTOCOL_FEATURES);
	fe_ack(v, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
	fe_ack(v, VHOST_USER_SET_FEATURES, &f, 8, NULL, 0);
	v->features = f; /* vuf_start_vring sends no ENABLE for this */

	struct gmem *m = NULL;
	struct gvq *r = NULL;
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	CHECK_EQ(gvq_new(m, 64, BIT(VHK_F_EVENT_IDX), &r), 0);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	CHECK_EQ(vuf_start_vring(v, 0, r), 0);
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(vid, 0, &info), 0);
	CHECK(info.started);
	CHECK(!info.enabled); /* the handshake happened: rings start disabled */
	CHECK(!ev_find(EV_NEW_DEV, vid, -1, -1, NULL));
	struct vhost_user_vring_state s = {.index = 0, .num = 1};
	fe_ack(v, VHOST_USER_SET_VRING_ENABLE, &s, 8, NULL, 0);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	CHECK_EQ(vhk_vq_get_info(vid, 0, &info), 0);
	CHECK(info.enabled);
	vuf_close(v);
	CHECK(ev_wait(EV_DESTROY_CONN, 1, 3000));
	gvq_free(r);
	gmem_free(m);
}

/* SEND_RARP and NET_SET_MTU on a net device with the features negotiated. */
static void t_rarp_mtu(void)
{
	uint64_t pf = IT_PF_DEFAULT | BIT(VHK_PF_RARP) | BIT(VHK_PF_NET_MTU);
	const char *path = start_net(pf);
	struct vuf *v = fe_open(path, VHK_NET_DEFAULT_FEATURES, pf);
	int vid = ev_conn_vid();
	CHECK(v->features & BIT(VHK_NET_F_MTU));
	uint64_t mac = 0;
	memcpy(&mac, (const uint8_t[6]){0x52, 0x54, 0, 0x12, 0x34, 0x56}, 6);
	fe_ack(v, VHOST_USER_SEND_RARP, &mac, 8, NULL, 0);
	uint16_t mtu = 0;
	CHECK_EQ(vhk_net_get_mtu(vid, &mtu), -ENOENT);
	fe_ack(v, VHOST_USER_NET_SET_MTU, &(uint64_t){1500}, 8, NULL, 0);
	CHECK_EQ(vhk_net_get_mtu(vid, &mtu), 0);
	CHECK_EQ(mtu, 1500);
	fe_ack(v, VHOST_USER_NET_SET_MTU, &(uint64_t){68}, 8, NULL, 0);
	fe_ack(v, VHOST_USER_NET_SET_MTU, &(uint64_t){65535}, 8, NULL, 0);
	CHECK_EQ(vhk_net_get_mtu(vid, &mtu), 0);
	CHECK_EQ(mtu, 65535);
	uint64_t bad_mtu[] = {0, 67, 65536, BIT(32) | 1500};
	for (unsigned i = 0; i < 4; i++)
		fe_nack(v, VHOST_USER_NET_SET_MTU, &bad_mtu[i], 8, NULL, 0);
	CHECK_EQ(vhk_net_get_mtu(vid, &mtu), 0);
	CHECK_EQ(mtu, 65535);
	/* Wrong payload sizes. */
	fe_nack(v, VHOST_USER_SEND_RARP, &mac, 4, NULL, 0);
	fe_nack(v, VHOST_USER_NET_SET_MTU, &mac, 2, NULL, 0);
	vuf_close(v);
}

/* Without the protocol bits (or on a device without the ops) both are refused. */
static void t_rarp_mtu_refused(void)
{
	const char *path = start_net(IT_PF_DEFAULT | BIT(VHK_PF_RARP) | BIT(VHK_PF_NET_MTU));
	struct vuf *v = fe_open(path, VHK_NET_DEFAULT_FEATURES, IT_PF_DEFAULT);
	int vid = ev_conn_vid();
	fe_nack(v, VHOST_USER_SEND_RARP, &(uint64_t){0x563412005452ull}, 8, NULL, 0);
	fe_nack(v, VHOST_USER_NET_SET_MTU, &(uint64_t){1500}, 8, NULL, 0);
	uint16_t mtu;
	CHECK_EQ(vhk_net_get_mtu(vid, &mtu), -ENOENT);
	vuf_close(v);
	be_stop();

	/* Custom device: no send_rarp / set_mtu ops. */
	path = start_custom(IT_F_CUSTOM, IT_PF_DEFAULT);
	v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT);
	fe_nack(v, VHOST_USER_SEND_RARP, &(uint64_t){0x563412005452ull}, 8, NULL, 0);
	fe_nack(v, VHOST_USER_NET_SET_MTU, &(uint64_t){1500}, 8, NULL, 0);
	vuf_close(v);
}

/* SET_BACKEND_REQ_FD: exactly one fd, and only with BACKEND_REQ. */
static void t_backend_req_fd(void)
{
	const char *path = start_custom(IT_F_CUSTOM, IT_PF_DEFAULT);
	struct vuf *v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT);
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fe_ack(v, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1);
	close(sv[1]);
	v->backend_req_fd = sv[0];
	fe_nack(v, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, NULL, 0);
	struct probe p1, p2;
	probe_new(&p1);
	probe_new(&p2);
	int two[2] = {p1.wr, p2.wr};
	fe_nack(v, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, two, 2);
	probe_sent(&p1);
	probe_sent(&p2);
	CHECK(probe_closed(&p1, 2000));
	CHECK(probe_closed(&p2, 2000));
	/* Replacing the channel closes the old one: our end sees EOF. */
	probe_new(&p1);
	fe_ack(v, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &p1.wr, 1);
	struct vhost_user_msg msg;
	CHECK_EQ(vuf_recv(&(struct vuf){.fd = sv[0]}, &msg, 2000), -ECONNRESET);
	vuf_close(v);
	probe_sent(&p1);
	CHECK(probe_closed(&p1, 3000)); /* and the connection's close drops the new one */
	probe_free(&p1);
	probe_free(&p2);
	be_stop();

	path = start_custom(IT_F_CUSTOM, IT_PF_DEFAULT);
	v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT & ~BIT(VHK_PF_BACKEND_REQ));
	probe_new(&p1);
	fe_nack(v, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &p1.wr, 1);
	probe_sent(&p1);
	CHECK(probe_closed(&p1, 2000));
	probe_free(&p1);
	vuf_close(v);
}

/* SET_STATUS / GET_STATUS round trip, gated on PROTOCOL_F_STATUS. */
static void t_status(void)
{
	uint64_t pf = IT_PF_DEFAULT | BIT(VHK_PF_STATUS);
	const char *path = start_custom(IT_F_CUSTOM, pf);
	struct vuf *v = fe_open(path, IT_F_CUSTOM, pf);
	uint64_t st = 99;
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_STATUS, &st), 0);
	CHECK_EQ(st, 0);
	fe_ack(v, VHOST_USER_SET_STATUS, &(uint64_t){0x0b}, 8, NULL, 0);
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_STATUS, &st), 0);
	CHECK_EQ(st, 0x0b);
	fe_nack(v, VHOST_USER_SET_STATUS, &(uint64_t){0x100}, 8, NULL, 0);
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_STATUS, &st), 0);
	CHECK_EQ(st, 0x0b);
	vuf_close(v);

	v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT);
	fe_nack(v, VHOST_USER_SET_STATUS, &(uint64_t){0x0f}, 8, NULL, 0);
	vuf_close(v);
}

/* One message the library does not implement (or that is not negotiated). */
struct unimpl {
	uint32_t req;
	uint32_t size;
	int nfds;
};

/* Send each of @cases: NACK, fds closed, the connection keeps working. */
static void nack_all(const struct unimpl *cases, unsigned n)
{
	const char *path = start_custom(IT_F_CUSTOM, IT_PF_DEFAULT);
	struct vuf *v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT);
	uint8_t payload[32];
	memset(payload, 0, sizeof(payload));
	for (unsigned i = 0; i < n; i++) {
		struct probe p;
		probe_new(&p);
		fprintf(stderr, "# request %u\n", cases[i].req);
		fe_nack(v, cases[i].req, payload, cases[i].size, &p.wr, cases[i].nfds);
		probe_sent(&p);
		CHECK(probe_closed(&p, 2000));
		probe_free(&p);
	}
	fe_ack(v, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
	vuf_close(v);
}

/* Messages of the spec the library does not implement (or did not negotiate). */
static void t_unimplemented(void)
{
	static const struct unimpl cases[] = {
		{VHOST_USER_SET_LOG_BASE, 16, 1},   {VHOST_USER_SET_LOG_FD, 0, 1},
		{VHOST_USER_IOTLB_MSG, 26, 0},      {VHOST_USER_SET_VRING_ENDIAN, 8, 0},
		{VHOST_USER_SET_INFLIGHT_FD, 20, 1}, {VHOST_USER_GPU_SET_SOCKET, 0, 1},
		{VHOST_USER_RESET_DEVICE, 0, 0},    {VHOST_USER_VRING_KICK, 8, 0},
		{VHOST_USER_SET_DEVICE_STATE_FD, 8, 1}, {VHOST_USER_POSTCOPY_LISTEN, 0, 0},
	};
	nack_all(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Request codes beyond the spec's list: NACKed like the unimplemented ones. */
static void t_unknown_codes(void)
{
	static const struct unimpl cases[] = {
		{46, 0, 0}, {46, 8, 1}, {47, 0, 0}, {1000, 0, 0}, {1000, 16, 1}, {0xffffffffu, 0, 0},
	};
	nack_all(cases, sizeof(cases) / sizeof(cases[0]));
}

TEST_MAIN(TEST(t_protocol_handshake_without_bit30), TEST(t_get_features), TEST(t_set_features), TEST(t_set_features_unoffered),
	  TEST(t_protocol_features), TEST(t_protocol_features_need_bit), TEST(t_owner),
	  TEST(t_queue_num), TEST(t_queue_num_net), TEST(t_vring_enable_gate), TEST(t_rarp_mtu), TEST(t_rarp_mtu_refused),
	  TEST(t_backend_req_fd), TEST(t_status), TEST(t_unimplemented), TEST(t_unknown_codes))
