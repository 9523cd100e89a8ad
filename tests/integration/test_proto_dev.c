/* SPDX-License-Identifier: MIT */
/*
 * Protocol tests, part 4: device-level behaviour. GET/SET_CONFIG through a
 * custom struct vhk_device_ops, callback order and per-queue readiness (net
 * and custom devices), new_device refusal, and asynchronous device
 * operations completed with vhk_dev_op_complete() from another thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define CFG_SIZE 16u

static uint8_t cfg_space[CFG_SIZE];
static _Atomic uint32_t cfg_flags = 0xffffffffu;
static _Atomic int cfg_violation; /* the library passed a range outside the space */

static int cfg_get(int vid, uint8_t *buf, uint32_t off, uint32_t len)
{
	if (off > CFG_SIZE || len > CFG_SIZE - off) {
		cfg_violation = 1;
		return -EINVAL;
	}
	memcpy(buf, cfg_space + off, len);
	return 0;
}

static int cfg_set(int vid, const uint8_t *buf, uint32_t off, uint32_t len, uint32_t flags)
{
	if (off > CFG_SIZE || len > CFG_SIZE - off) {
		cfg_violation = 1;
		return -EINVAL;
	}
	memcpy(cfg_space + off, buf, len);
	cfg_flags = flags;
	return 0;
}

static const struct vhk_device_ops cfg_ops = {.name = "it-cfg", .min_queues = 1,
					      .config_size = CFG_SIZE, .get_config = cfg_get,
					      .set_config = cfg_set};

/* GET_CONFIG for [off, off+len) declared as @decl bytes of payload; returns the reply. */
static void get_config(struct vuf *v, uint32_t off, uint32_t len, uint32_t decl,
		       struct vhost_user_msg *reply)
{
	struct vhost_user_msg m;
	memset(&m, 0, sizeof(m));
	m.payload.config.offset = off;
	m.payload.config.size = len;
	CHECK_EQ(vuf_request(v, VHOST_USER_GET_CONFIG, &m.payload, VHOST_USER_CONFIG_HDR_SIZE + decl,
			     NULL, 0, reply), 0);
}

/* A GET_CONFIG that must fail: the reply has a zero-size payload. */
static void get_config_fails(struct vuf *v, uint32_t off, uint32_t len, uint32_t decl)
{
	struct vhost_user_msg r;
	get_config(v, off, len, decl, &r);
	CHECK_EQ(r.hdr.size, 0);
	fe_usable(v);
}

/* SET_CONFIG of @len bytes of @fill at @off. */
static struct vhost_user_msg set_config_msg(uint32_t off, uint32_t len, uint32_t flags,
					    uint8_t fill)
{
	struct vhost_user_msg m;
	memset(&m, 0, sizeof(m));
	m.payload.config.offset = off;
	m.payload.config.size = len;
	m.payload.config.flags = flags;
	memset(m.payload.config.region, fill, len < 256 ? len : 256);
	return m;
}

/* GET/SET_CONFIG within a 16-byte space; every out-of-range access is refused. */
static void t_config(void)
{
	for (uint32_t i = 0; i < CFG_SIZE; i++)
		cfg_space[i] = (uint8_t)(0xc0 + i);
	uint64_t pf = IT_PF_DEFAULT | BIT(VHK_PF_CONFIG);
	struct be_cfg cfg = {.ops = &cfg_ops, .features = IT_F_CUSTOM, .protocol_features = pf};
	struct vuf *v = fe_open(be_start(&cfg), IT_F_CUSTOM, pf);
	struct vhost_user_msg r;
	get_config(v, 0, CFG_SIZE, CFG_SIZE, &r);
	CHECK_EQ(r.hdr.size, VHOST_USER_CONFIG_HDR_SIZE + CFG_SIZE);
	CHECK_EQ(r.payload.config.size, CFG_SIZE);
	CHECK(!memcmp(r.payload.config.region, cfg_space, CFG_SIZE));
	get_config(v, 4, 8, 8, &r);
	CHECK_EQ(r.hdr.size, VHOST_USER_CONFIG_HDR_SIZE + 8);
	CHECK_EQ(r.payload.config.offset, 4);
	CHECK(!memcmp(r.payload.config.region, cfg_space + 4, 8));

	get_config_fails(v, 8, 16, 16);           /* past the end */
	get_config_fails(v, 16, 1, 1);
	get_config_fails(v, 0xfffffff0u, 32, 32); /* offset + size wraps */
	get_config_fails(v, 0, 300, 300);         /* over the 256-byte cap */
	get_config_fails(v, 0, 16, 8);            /* payload != 12 + size */
	get_config_fails(v, 0, 8, 16);

	struct vhost_user_msg s = set_config_msg(4, 4, VHOST_SET_CONFIG_TYPE_FRONTEND, 0x11);
	fe_ack(v, VHOST_USER_SET_CONFIG, &s.payload, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0);
	CHECK_EQ(cfg_flags, VHOST_SET_CONFIG_TYPE_FRONTEND);
	s = set_config_msg(12, 4, VHOST_SET_CONFIG_TYPE_MIGRATION, 0x22);
	fe_ack(v, VHOST_USER_SET_CONFIG, &s.payload, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0);
	CHECK_EQ(cfg_flags, VHOST_SET_CONFIG_TYPE_MIGRATION);
	get_config(v, 0, CFG_SIZE, CFG_SIZE, &r);
	const uint8_t want[CFG_SIZE] = {0xc0, 0xc1, 0xc2, 0xc3, 0x11, 0x11, 0x11, 0x11,
					0xc8, 0xc9, 0xca, 0xcb, 0x22, 0x22, 0x22, 0x22};
	CHECK(!memcmp(r.payload.config.region, want, CFG_SIZE));

	s = set_config_msg(0, 4, 2, 0x33); /* unknown flags */
	fe_nack(v, VHOST_USER_SET_CONFIG, &s.payload, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0);
	s = set_config_msg(14, 4, 0, 0x33);
	fe_nack(v, VHOST_USER_SET_CONFIG, &s.payload, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0);
	s = set_config_msg(0xfffffffeu, 4, 0, 0x33);
	fe_nack(v, VHOST_USER_SET_CONFIG, &s.payload, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0);
	s = set_config_msg(0, 8, 0, 0x33);
	fe_nack(v, VHOST_USER_SET_CONFIG, &s.payload, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0);
	fe_nack(v, VHOST_USER_SET_CONFIG, &s.payload, VHOST_USER_CONFIG_HDR_SIZE - 4, NULL, 0);
	get_config(v, 0, CFG_SIZE, CFG_SIZE, &r);
	CHECK(!memcmp(r.payload.config.region, want, CFG_SIZE));
	CHECK(!cfg_violation);
	vuf_close(v);
}

/* Without PROTOCOL_F_CONFIG negotiated, config messages are refused. */
static void t_config_gated(void)
{
	uint64_t pf = IT_PF_DEFAULT | BIT(VHK_PF_CONFIG);
	struct be_cfg cfg = {.ops = &cfg_ops, .features = IT_F_CUSTOM, .protocol_features = pf};
	struct vuf *v = fe_open(be_start(&cfg), IT_F_CUSTOM, IT_PF_DEFAULT);
	struct vhost_user_msg s = set_config_msg(0, 4, 0, 0x44);
	fe_nack(v, VHOST_USER_SET_CONFIG, &s.payload, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0);
	s.payload.config.size = 4;
	CHECK_EQ(vuf_send(v, VHOST_USER_GET_CONFIG, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
			  &s.payload, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0), 0);
	struct vhost_user_msg r;
	int rc = vuf_recv(v, &r, 3000);
	if (rc != -ECONNRESET) {
		CHECK_EQ(rc, 0);
		CHECK_EQ(r.hdr.request, VHOST_USER_GET_CONFIG);
		CHECK(r.hdr.size == 0 || (r.hdr.size == 8 && r.payload.u64 != 0));
		fe_usable(v);
	}
	CHECK(cfg_space[0] != 0x44);
	vuf_close(v);
}

/* The handle @vid becomes stale (shortly after destroy_connection returns). */
static bool vid_goes_stale(int vid)
{
	uint64_t f;
	for (int i = 0; i < 300; i++) {
		if (vhk_dev_get_features(vid, &f) == -ENODEV)
			return true;
		msleep(10);
	}
	return false;
}

/* Bring up vrings [from, to) of @v, one guest ring each from @m in the negotiated format. */
static void start_rings(struct vuf *v, struct gmem *m, struct gvq **r, int from, int to)
{
	for (int q = from; q < to; q++) {
		if (!r[q])
			CHECK_EQ(gvq_new(m, 256, v->features, &r[q]), 0);
		CHECK_EQ(vuf_start_vring(v, (uint32_t)q, r[q]), 0);
	}
}

/*
 * Net: new_device once the first pair is up; later queues via
 * vring_state_changed. On split rings (RING_PACKED masked off) or packed
 * rings (RING_PACKED negotiated), each set up with its own layout.
 */
static void cb_order_net(bool packed)
{
	struct be_cfg cfg = {.net = true, .protocol_features = IT_PF_DEFAULT, .pairs = 2};
	const char *path = be_start(&cfg);
	uint64_t want = VHK_NET_DEFAULT_FEATURES & ~BIT(VHK_F_RING_PACKED);
	if (packed)
		want |= BIT(VHK_F_RING_PACKED);
	struct vuf *v = fe_open(path, want, IT_PF_DEFAULT);
	CHECK_EQ(v->features, want);
	int vid = ev_conn_vid();
	struct gmem *m;
	struct gvq *r[4] = {0};
	CHECK_EQ(gmem_new(1, 2 << 20, 0, 0, &m), 0);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	start_rings(v, m, r, 0, 1);
	msleep(300);
	CHECK_EQ(ev_count(EV_NEW_DEV), 0); /* the pair is not complete */
	start_rings(v, m, r, 1, 2);
	struct ev conn, feat, dev, q2, q3, dd, dc;
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, &dev));
	start_rings(v, m, r, 2, 4);
	CHECK(ev_wait_match(EV_VRING_STATE, vid, 2, 1, 3000, &q2));
	CHECK(ev_wait_match(EV_VRING_STATE, vid, 3, 1, 3000, &q3));
	for (uint16_t q = 0; q < 4; q++) {
		struct vhk_vq_info info;
		CHECK_EQ(vhk_vq_get_info(vid, q, &info), 0);
		CHECK(info.started && info.packed == packed);
	}
	CHECK(ev_find(EV_NEW_CONN, vid, -1, -1, &conn));
	CHECK(ev_find(EV_FEATURES, vid, -1, -1, &feat));
	CHECK_EQ(feat.features, want);
	CHECK(conn.seq < feat.seq && feat.seq < dev.seq && dev.seq < q2.seq && dev.seq < q3.seq);
	CHECK_EQ(ev_count(EV_NEW_DEV), 1);
	/* Disabling a later queue is reported too. */
	CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_ENABLE, 3, 0), 0);
	CHECK(ev_wait_match(EV_VRING_STATE, vid, 3, 0, 3000, NULL));
	CHECK_EQ(vhk_dev_get_vq_count(vid), 4);
	char buf[108];
	CHECK_EQ(vhk_dev_get_path(vid, buf, sizeof(buf)), 0);
	CHECK(!strcmp(buf, path));
	CHECK_EQ(vhk_dev_get_path(vid, buf, 4), -ENOSPC);

	vuf_close(v);
	CHECK(ev_wait_match(EV_DESTROY_CONN, vid, -1, -1, 3000, &dc));
	CHECK(ev_find(EV_DESTROY_DEV, vid, -1, -1, &dd));
	CHECK(q3.seq < dd.seq && dd.seq < dc.seq);
	CHECK_EQ(ev_count(EV_DESTROY_DEV), 1);
	CHECK(vid_goes_stale(vid));
	for (int q = 0; q < 4; q++)
		gvq_free(r[q]);
	gmem_free(m);
}

static void t_cb_order_net(void)
{
	cb_order_net(false);
}

static void t_cb_order_net_packed(void)
{
	cb_order_net(true);
}


static const struct vhk_device_ops one_q_ops = {.name = "it-1q", .min_queues = 1};

/* A device needing one queue starts with vring 0 alone; vring 1 comes later. */
static void t_cb_min_queues(void)
{
	struct be_cfg cfg = {.ops = &one_q_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT, .pairs = 2};
	const char *path = be_start(&cfg);
	struct vuf *v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT);
	int vid = ev_conn_vid();
	struct gmem *m;
	struct gvq *r[2] = {0};
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	/* Rings configured before the memory table do not make the device ready... */
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_EVENT_IDX), &r[0]), 0);
	CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_NUM, 0, 256), 0);
	CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	msleep(200);
	CHECK_EQ(ev_count(EV_NEW_DEV), 0);
	/* ...the full setup of vring 0 does. */
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	start_rings(v, m, r, 0, 1);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	start_rings(v, m, r, 1, 2);
	CHECK(ev_wait_match(EV_VRING_STATE, vid, 1, 1, 3000, NULL));
	vuf_close(v);
	CHECK(ev_wait(EV_DESTROY_CONN, 1, 3000));

	/* Reconnect: a new vid; the old one is stale. */
	v = fe_open(path, IT_F_CUSTOM, IT_PF_DEFAULT);
	CHECK(ev_wait(EV_NEW_CONN, 2, 3000));
	int vid2 = ev_conn_vid();
	CHECK(vid2 != vid);
	CHECK(vhk_dev_get_ctx(vid2) == NULL);
	uint64_t f;
	CHECK(vid_goes_stale(vid));
	CHECK_EQ(vhk_dev_get_features(vid2, &f), 0);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	start_rings(v, m, r, 0, 1);
	CHECK(ev_wait_match(EV_NEW_DEV, vid2, -1, -1, 3000, NULL));
	vuf_close(v);
	gvq_free(r[0]);
	gvq_free(r[1]);
	gmem_free(m);
}

/* Client mode: the library connects to our listener and reconnects after a close. */
static void t_client_mode(void)
{
	int lfd = -1;
	struct be_cfg cfg = {.flags = VHK_CLIENT, .ret_listen_fd = &lfd, .ops = &one_q_ops,
			     .features = IT_F_CUSTOM, .protocol_features = IT_PF_DEFAULT};
	be_start(&cfg);
	struct vuf *v = NULL;
	CHECK_EQ(vuf_accept(lfd, 3000, &v), 0);
	CHECK_EQ(vuf_negotiate(v, IT_F_CUSTOM, IT_PF_DEFAULT), 0);
	int vid = ev_conn_vid();
	struct gmem *m;
	struct gvq *r = NULL;
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_EVENT_IDX), &r), 0);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	CHECK_EQ(vuf_start_vring(v, 0, r), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	vuf_close(v);
	CHECK(ev_wait_match(EV_DESTROY_CONN, vid, -1, -1, 3000, NULL));
	/* The library comes back by itself. */
	CHECK_EQ(vuf_accept(lfd, 10000, &v), 0);
	CHECK_EQ(vuf_negotiate(v, IT_F_CUSTOM, IT_PF_DEFAULT), 0);
	CHECK(ev_wait(EV_NEW_CONN, 2, 3000));
	fe_usable(v);
	vuf_close(v);
	close(lfd);
	gvq_free(r);
	gmem_free(m);
}

/* Client mode with VHK_NO_RECONNECT: one connection only. */
static void t_client_no_reconnect(void)
{
	int lfd = -1;
	struct be_cfg cfg = {.flags = VHK_CLIENT | VHK_NO_RECONNECT, .ret_listen_fd = &lfd,
			     .ops = &one_q_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT};
	be_start(&cfg);
	struct vuf *v = NULL;
	CHECK_EQ(vuf_accept(lfd, 3000, &v), 0);
	CHECK_EQ(vuf_negotiate(v, IT_F_CUSTOM, IT_PF_DEFAULT), 0);
	vuf_close(v);
	CHECK(ev_wait(EV_DESTROY_CONN, 1, 3000));
	CHECK_EQ(vuf_accept(lfd, 1500, &v), -ETIMEDOUT);
	CHECK_EQ(ev_count(EV_NEW_CONN), 1);
	close(lfd);
}

/* new_device returning an error closes the connection. */
static void t_new_device_refused(void)
{
	struct be_cfg cfg = {.ops = &one_q_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT, .new_device_ret = -1};
	struct vuf *v = fe_open(be_start(&cfg), IT_F_CUSTOM, IT_PF_DEFAULT);
	int vid = ev_conn_vid();
	struct gmem *m;
	struct gvq *r = NULL;
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_EVENT_IDX), &r), 0);
	/* The ENABLE that makes the device ready may already see the close. */
	(void)vuf_start_vring(v, 0, r);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	CHECK(vuf_peer_closed(v, 3000));
	CHECK(ev_wait_match(EV_DESTROY_CONN, vid, -1, -1, 3000, NULL));
	vuf_close(v);
	gvq_free(r);
	gmem_free(m);
}

/* ---- asynchronous device operations ---- */
static _Atomic int stop_pending, start_pending, stop_calls, start_calls, op_vid = -1;

static int async_stop(int vid, uint16_t qid)
{
	op_vid = vid;
	stop_calls++;
	return atomic_exchange(&stop_pending, 0) ? VHK_OP_PENDING : 0;
}

static int async_start(int vid, uint16_t qid)
{
	op_vid = vid;
	start_calls++;
	return atomic_exchange(&start_pending, 0) ? VHK_OP_PENDING : 0;
}

static const struct vhk_device_ops async_ops = {.name = "it-async", .min_queues = 1,
						.queue_start = async_start,
						.queue_stop = async_stop};

struct completer {
	_Atomic int *calls;
	int result;
	int delay_ms;
	int rc;
};

/* Thread: wait for the operation to be issued, then complete it. */
static void *complete_thread(void *arg)
{
	struct completer *c = arg;
	for (int i = 0; i < 300 && *c->calls == 0; i++)
		msleep(10);
	msleep(c->delay_ms);
	c->rc = vhk_dev_op_complete(op_vid, c->result);
	return NULL;
}

/* GET_VRING_BASE's reply waits for the app's completion; nothing overtakes it. */
static void t_async_get_vring_base(void)
{
	struct be_cfg cfg = {.ops = &async_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT};
	struct vuf *v = fe_open(be_start(&cfg), IT_F_CUSTOM, IT_PF_DEFAULT);
	int vid = ev_conn_vid();
	struct gmem *m;
	struct gvq *r = NULL;
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_EVENT_IDX), &r), 0);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	CHECK_EQ(vuf_start_vring(v, 0, r), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	CHECK_EQ(vhk_dev_op_complete(vid, 0), -EALREADY);

	stop_pending = 1;
	struct vhost_user_vring_state s = {.index = 0, .num = 0};
	CHECK_EQ(vuf_send(v, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, &s, 8, NULL, 0), 0);
	CHECK_EQ(vuf_send(v, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0), 0);
	struct vhost_user_msg msg;
	CHECK_EQ(vuf_recv(v, &msg, 400), -ETIMEDOUT); /* still pending: no reply at all */
	CHECK(stop_calls >= 1);
	CHECK_EQ(op_vid, vid);

	struct completer c = {.calls = &stop_calls, .result = 0, .rc = 1};
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, complete_thread, &c), 0);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(c.rc, 0);
	CHECK_EQ(vuf_recv(v, &msg, 3000), 0);
	CHECK_EQ(msg.hdr.request, VHOST_USER_GET_VRING_BASE);
	CHECK_EQ(msg.hdr.size, 8);
	CHECK_EQ(msg.payload.state.index, 0);
	CHECK_EQ(msg.payload.state.num, 0);
	CHECK_EQ(vuf_recv(v, &msg, 3000), 0);
	CHECK_EQ(msg.hdr.request, VHOST_USER_GET_FEATURES);
	CHECK_EQ(vhk_dev_op_complete(vid, 0), -EALREADY);
	CHECK_EQ(vhk_dev_op_complete(-1, 0), -ENODEV);
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(vid, 0, &info), 0);
	CHECK(!info.started);
	vuf_close(v);
	CHECK(ev_wait(EV_DESTROY_CONN, 1, 3000));
	gvq_free(r);
	gmem_free(m);
}

/* A pending queue_start completed with an error NACKs the message that caused it. */
static void t_async_start_error(void)
{
	struct be_cfg cfg = {.ops = &async_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT};
	struct vuf *v = fe_open(be_start(&cfg), IT_F_CUSTOM, IT_PF_DEFAULT);
	int vid = ev_conn_vid();
	struct gmem *m;
	struct gvq *r = NULL;
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_EVENT_IDX), &r), 0);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);

	start_pending = 1;
	struct completer c = {.calls = &start_calls, .result = -EIO, .delay_ms = 200, .rc = 1};
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, complete_thread, &c), 0);
	int rc[6], nacks = 0;
	rc[0] = vuf_set_vring_state(v, VHOST_USER_SET_VRING_NUM, 0, 256);
	rc[1] = vuf_set_vring_state(v, VHOST_USER_SET_VRING_BASE, 0, 0);
	rc[2] = vuf_set_vring_addr(v, 0, r);
	rc[3] = vuf_set_vring_fd(v, VHOST_USER_SET_VRING_KICK, 0, r->kick_fd);
	rc[4] = vuf_set_vring_fd(v, VHOST_USER_SET_VRING_CALL, 0, r->call_fd);
	rc[5] = vuf_set_vring_state(v, VHOST_USER_SET_VRING_ENABLE, 0, 1);
	CHECK_EQ(pthread_join(th, NULL), 0);
	for (int i = 0; i < 6; i++) {
		CHECK(rc[i] == 0 || rc[i] == -EPROTO);
		nacks += rc[i] == -EPROTO;
	}
	CHECK_EQ(start_calls, 1);
	CHECK_EQ(op_vid, vid);
	CHECK_EQ(c.rc, 0);
	CHECK_EQ(nacks, 1);
	fe_usable(v);
	msleep(200);
	CHECK_EQ(ev_count(EV_NEW_DEV), 0); /* the queue did not start */
	vuf_close(v);
	gvq_free(r);
	gmem_free(m);
}

TEST_MAIN(TEST(t_config), TEST(t_config_gated), TEST(t_cb_order_net),
	  TEST(t_cb_order_net_packed), TEST(t_cb_min_queues),
	  TEST(t_new_device_refused), TEST(t_client_mode),
	  TEST(t_client_no_reconnect), TEST(t_async_get_vring_base), TEST(t_async_start_error))
