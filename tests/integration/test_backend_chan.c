/* SPDX-License-Identifier: MIT */
/*
 * The backend channel and a control thread no peer can block:
 *  - vhk_dev_config_changed() sends VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
 *    asking for an ack exactly when REPLY_ACK is negotiated, refused
 *    without CONFIG + BACKEND_REQ or without a channel;
 *  - while an ack is awaited the main channel is served (QEMU answers a
 *    config change by sending GET_CONFIG first);
 *  - a frontend that never acks, never reads its channel or sends it
 *    anything but replies loses the channel, not its connection;
 *  - a frontend that never reads its replies does not delay another
 *    frontend (replies are queued, not waited for).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "transport/transport.h"

#define CFG_SIZE 8u
#define BACKEND_CONFIG_CHANGE 2u

static uint8_t cfg_space[CFG_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8};

static int cfg_get(int vid, uint8_t *buf, uint32_t off, uint32_t len)
{
	memcpy(buf, cfg_space + off, len);
	return 0;
}

static const struct vhk_device_ops cfg_ops = {.name = "it-bchan", .min_queues = 1,
					      .config_size = CFG_SIZE, .get_config = cfg_get};

#define PF_CHAN (IT_PF_DEFAULT | BIT(VHK_PF_CONFIG) | BIT(VHK_PF_REPLY_ACK))

/* A custom device negotiated with @pf; *ret_chan gets our end of a backend channel. */
static struct vuf *open_with_chan(uint64_t pf, int *ret_chan, int *ret_vid)
{
	struct be_cfg cfg = {.ops = &cfg_ops, .features = IT_F_CUSTOM, .protocol_features = PF_CHAN};
	struct vuf *v = fe_open(be_start(&cfg), IT_F_CUSTOM, pf);
	int sv[2];

	*ret_vid = ev_conn_vid();
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fe_ack(v, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1);
	close(sv[1]);
	fe_usable(v); /* without REPLY_ACK, a round trip makes sure it was applied */
	*ret_chan = sv[0];
	return v;
}

/* Read one backend message from our end of the channel. */
static void chan_recv(int chan, struct vhost_user_msg *msg)
{
	struct vuf c = {.fd = chan, .backend_req_fd = -1};
	CHECK_EQ(vuf_recv(&c, msg, 3000), 0);
}

/* Answer the backend message @req with u64 @val. */
static void chan_reply(int chan, uint32_t req, uint64_t val)
{
	struct vuf c = {.fd = chan, .backend_req_fd = -1};
	CHECK_EQ(vuf_send(&c, req, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, &val, 8, NULL, 0),
		 0);
}

/* The library closed its end of the channel: we read EOF (after what was queued). */
static bool chan_closed(int chan, int timeout_ms)
{
	struct vuf c = {.fd = chan, .backend_req_fd = -1};
	struct vhost_user_msg msg;
	int rc;

	while ((rc = vuf_recv(&c, &msg, timeout_ms)) == 0)
		;
	return rc == -ECONNRESET;
}

static void t_config_change_ack(void)
{
	struct vhost_user_msg msg;
	int chan, vid;
	struct vuf *v = open_with_chan(PF_CHAN, &chan, &vid);

	CHECK_EQ(vhk_dev_config_changed(vid), 0);
	chan_recv(chan, &msg);
	CHECK_EQ(msg.hdr.request, BACKEND_CONFIG_CHANGE);
	CHECK_EQ(msg.hdr.flags, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK);
	CHECK_EQ(msg.hdr.size, 0);
	/* As QEMU does: read the new config on the main channel before acking. */
	struct vhost_user_msg req, rep;
	memset(&req, 0, sizeof(req));
	req.payload.config.size = CFG_SIZE;
	CHECK_EQ(vuf_request(v, VHOST_USER_GET_CONFIG, &req.payload,
			     VHOST_USER_CONFIG_HDR_SIZE + CFG_SIZE, NULL, 0, &rep), 0);
	CHECK_EQ(rep.payload.config.region[7], 8);
	chan_reply(chan, BACKEND_CONFIG_CHANGE, 0);
	/* A nack is an answer too; the channel goes on. */
	CHECK_EQ(vhk_dev_config_changed(vid), 0);
	chan_recv(chan, &msg);
	chan_reply(chan, BACKEND_CONFIG_CHANGE, 1);
	CHECK_EQ(vhk_dev_config_changed(vid), 0);
	chan_recv(chan, &msg);
	CHECK_EQ(msg.hdr.request, BACKEND_CONFIG_CHANGE);
	chan_reply(chan, BACKEND_CONFIG_CHANGE, 0);
	fe_usable(v);
	CHECK_EQ(vhk_dev_config_changed(vid + 1), -ENODEV);
	vuf_close(v);
	CHECK(chan_closed(chan, 3000)); /* the connection's close takes the channel */
	close(chan);
}

/* Without REPLY_ACK nothing is waited for; without CONFIG or a channel nothing is sent. */
static void t_config_change_gates(void)
{
	struct vhost_user_msg msg;
	int chan, vid;
	struct vuf *v = open_with_chan(PF_CHAN & ~BIT(VHK_PF_REPLY_ACK), &chan, &vid);

	CHECK_EQ(vhk_dev_config_changed(vid), 0);
	chan_recv(chan, &msg);
	CHECK_EQ(msg.hdr.flags, VHOST_USER_VERSION);
	vuf_close(v);
	close(chan);
	be_stop();

	v = open_with_chan(PF_CHAN & ~BIT(VHK_PF_CONFIG), &chan, &vid);
	CHECK_EQ(vhk_dev_config_changed(vid), -ENOTSUP);
	vuf_close(v);
	close(chan);
	be_stop();

	struct be_cfg cfg = {.ops = &cfg_ops, .features = IT_F_CUSTOM, .protocol_features = PF_CHAN};
	v = fe_open(be_start(&cfg), IT_F_CUSTOM, PF_CHAN);
	vid = ev_conn_vid();
	CHECK_EQ(vhk_dev_config_changed(vid), -ENOTCONN); /* no SET_BACKEND_REQ_FD yet */
	vuf_close(v);
}

/* No ack in time: the channel goes, the connection stays. */
static void t_no_reply_closes_channel(void)
{
	struct vhost_user_msg msg;
	int chan, vid;
	struct vuf *v = open_with_chan(PF_CHAN, &chan, &vid);

	CHECK_EQ(vhk_dev_config_changed(vid), 0);
	chan_recv(chan, &msg);
	CHECK(chan_closed(chan, 8000)); /* 5 s deadline */
	fe_usable(v);
	CHECK_EQ(vhk_dev_config_changed(vid), -ENOTCONN);
	/* A new channel works. */
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fe_ack(v, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1);
	close(sv[1]);
	CHECK_EQ(vhk_dev_config_changed(vid), 0);
	chan_recv(sv[0], &msg);
	chan_reply(sv[0], BACKEND_CONFIG_CHANGE, 0);
	fe_usable(v);
	close(sv[0]);
	close(chan);
	vuf_close(v);
}

/* A frontend that never reads its channel fills the bounded queue and loses the channel. */
static void t_unread_channel_bounded(void)
{
	int chan, vid, rc = 0, sent = 0;
	struct vuf *v = open_with_chan(PF_CHAN & ~BIT(VHK_PF_REPLY_ACK), &chan, &vid);

	while (sent < 1000000 && (rc = vhk_dev_config_changed(vid)) == 0)
		sent++;
	CHECK(rc == -ENOBUFS || rc == -ENOTCONN);
	CHECK(sent > 64);
	fe_usable(v); /* the main channel is served all along */
	CHECK_EQ(vhk_dev_config_changed(vid), -ENOTCONN);
	CHECK(chan_closed(chan, 3000));
	close(chan);
	vuf_close(v);
}

/* The frontend sends requests on the backend channel: not allowed, the channel goes. */
static void t_channel_garbage(void)
{
	int chan, vid;
	struct vuf *v = open_with_chan(PF_CHAN, &chan, &vid);
	struct vuf c = {.fd = chan, .backend_req_fd = -1};

	CHECK_EQ(vuf_send(&c, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0), 0);
	CHECK(chan_closed(chan, 3000));
	fe_usable(v);
	CHECK_EQ(vhk_dev_config_changed(vid), -ENOTCONN);
	close(chan);
	vuf_close(v);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Frontends that send requests and never read a reply, opened while the test runs. */
struct flood {
	const char *path;
	_Atomic int stop;
	int fds[64];
	int nfds;
	long requests;
};

static void *flood_thread(void *arg)
{
	struct flood *f = arg;
	struct vhost_user_header h = {VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, 0};

	while (!f->stop && f->nfds < 48) { /* under the default bound of 64 unnegotiated */
		int fd = uds_connect(f->path);
		CHECK(fd >= 0);
		f->fds[f->nfds++] = fd;
		/* Requests until the socket is full in both directions. */
		for (int quiet = 0; quiet < 10 && !f->stop;) {
			if (send(fd, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof(h)) {
				f->requests++;
				quiet = 0;
			} else {
				quiet++;
				msleep(2);
			}
		}
	}
	return NULL;
}

/*
 * While other frontends keep sending requests and never read the replies,
 * their sockets fill, the library stops reading them, and another
 * frontend's negotiation is not delayed (before, each blocked reply held
 * the control thread for up to a second). The stuck ones are not closed:
 * their input simply waits.
 */
static void t_stuck_reader(void)
{
	struct be_cfg cfg = {.ops = &cfg_ops, .features = IT_F_CUSTOM, .protocol_features = PF_CHAN};
	struct flood f = {.path = be_start(&cfg)};
	pthread_t th;
	double worst = 0;

	CHECK_EQ(pthread_create(&th, NULL, flood_thread, &f), 0);
	msleep(200);
	for (int i = 0; i < 10; i++) {
		double t0 = now_ms();
		struct vuf *v = fe_open(f.path, IT_F_CUSTOM, PF_CHAN);
		fe_usable(v);
		double dt = now_ms() - t0;
		worst = dt > worst ? dt : worst;
		vuf_close(v);
		msleep(50);
	}
	f.stop = 1;
	CHECK_EQ(pthread_join(th, NULL), 0);
	fprintf(stderr, "# %ld unread requests on %d sockets; worst negotiation %.1f ms\n",
		f.requests, f.nfds, worst);
	CHECK(f.nfds >= 2);
	CHECK(worst < 500);
	CHECK_EQ(ev_count(EV_DESTROY_CONN), 10); /* only ours closed */
	for (int k = 0; k < f.nfds; k++)
		close(f.fds[k]);
	CHECK(ev_wait(EV_DESTROY_CONN, 10 + (unsigned)f.nfds, 5000));
}

#define BACKEND_VRING_CALL 4u
#define BACKEND_VRING_ERR 5u
#define PF_INB (PF_CHAN | BIT(VHK_PF_INBAND_NOTIFICATIONS))
#define F_INB (IT_F_CUSTOM & ~BIT(VHK_F_EVENT_IDX))

/* Nothing arrives on the channel for @ms milliseconds. */
static bool chan_quiet(int chan, int ms)
{
	struct vuf c = {.fd = chan, .backend_req_fd = -1};
	struct vhost_user_msg msg;
	return vuf_recv(&c, &msg, ms) == -ETIMEDOUT;
}

/* The next message is @req for vring @q, asking for an ack. */
static void chan_expect(int chan, uint32_t req, uint32_t q)
{
	struct vhost_user_msg msg;

	chan_recv(chan, &msg);
	CHECK_EQ(msg.hdr.request, req);
	CHECK_EQ(msg.hdr.flags, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK);
	CHECK_EQ(msg.hdr.size, 8);
	CHECK_EQ(msg.payload.state.index, q);
	CHECK_EQ(msg.payload.state.num, 0);
}

/*
 * In-band notifications: kicks by VRING_KICK messages, calls and ring
 * errors by VRING_CALL / VRING_ERR on the backend channel, one at a time
 * (the next after the ack), signals meanwhile coalesced.
 */
static void t_inband(void)
{
	struct be_cfg cfg = {.ops = &cfg_ops, .features = F_INB, .protocol_features = PF_INB};
	const char *path = be_start(&cfg);
	struct vhost_user_vring_state st = {0, 0};
	struct gmem *m;
	struct gvq *r;
	int sv[2];

	/* The spec: in-band without BACKEND_REQ and REPLY_ACK closes the connection. */
	struct vuf *v = fe_connect(path);
	(void)vuf_negotiate(v, F_INB, PF_INB & ~BIT(VHK_PF_REPLY_ACK));
	CHECK(vuf_peer_closed(v, 3000));
	vuf_close(v);

	v = fe_open(path, F_INB, PF_INB);
	int vid = ev_conn_vid();
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fe_ack(v, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1);
	close(sv[1]);
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	CHECK_EQ(gvq_new(m, 256, 0, &r), 0);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_NUM, 0, 256), 0);
	CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_BASE, 0, 0), 0);
	CHECK_EQ(vuf_set_vring_addr(v, 0, r), 0);
	CHECK_EQ(vuf_set_vring_fd(v, VHOST_USER_SET_VRING_CALL, 0, -1), 0);
	CHECK_EQ(vuf_set_vring_fd(v, VHOST_USER_SET_VRING_ERR, 0, -1), 0);
	CHECK_EQ(vuf_set_vring_fd(v, VHOST_USER_SET_VRING_KICK, 0, -1), 0);
	CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));

	/* Kick: the message wakes a device sleeping on the queue's kick fd. */
	CHECK_EQ(vhk_vq_wait_kick(vid, 0, 0), 0);
	fe_ack(v, VHOST_USER_VRING_KICK, &st, 8, NULL, 0);
	CHECK_EQ(vhk_vq_wait_kick(vid, 0, 1000), 1);
	st.num = 1; /* reserved */
	fe_nack(v, VHOST_USER_VRING_KICK, &st, 8, NULL, 0);
	st.num = 0;
	st.index = 2; /* no such vring */
	fe_nack(v, VHOST_USER_VRING_KICK, &st, 8, NULL, 0);

	/* Call: one message; two more calls before the ack make exactly one more. */
	CHECK_EQ(vhk_vq_notify(vid, 0), 1);
	chan_expect(sv[0], BACKEND_VRING_CALL, 0);
	CHECK_EQ(vhk_vq_notify(vid, 0), 1);
	CHECK_EQ(vhk_vq_notify(vid, 0), 1);
	CHECK(chan_quiet(sv[0], 300));
	chan_reply(sv[0], BACKEND_VRING_CALL, 0);
	chan_expect(sv[0], BACKEND_VRING_CALL, 0);
	chan_reply(sv[0], BACKEND_VRING_CALL, 0);
	CHECK(chan_quiet(sv[0], 300));

	/* A ring error (avail index jumping past the ring) reaches the frontend as VRING_ERR. */
	gvq_raw_avail_idx(r, 1000);
	CHECK_EQ(vhk_vq_avail_count(vid, 0), 0); /* and the queue is broken now */
	chan_expect(sv[0], BACKEND_VRING_ERR, 0);
	chan_reply(sv[0], BACKEND_VRING_ERR, 0);
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(vid, 0, &info), 0);
	CHECK(info.broken);
	fe_usable(v);

	/* A real call fd replaces ours: calls go there, nothing on the channel. */
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_EQ(vuf_set_vring_fd(v, VHOST_USER_SET_VRING_CALL, 0, efd), 0);
	vuf_close(v);
	CHECK(chan_closed(sv[0], 3000));
	close(efd);
	close(sv[0]);
	gvq_free(r);
	gmem_free(m);
}

TEST_MAIN(TEST(t_config_change_ack), TEST(t_config_change_gates), TEST(t_no_reply_closes_channel),
	  TEST(t_unread_channel_bounded), TEST(t_channel_garbage), TEST(t_stuck_reader), TEST(t_inband))
