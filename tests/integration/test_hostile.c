/* SPDX-License-Identifier: MIT */
/*
 * Hostile-input tests (invariants.md A framing, B fds, C negotiation,
 * D memory table, E vring config): a frontend that lies. Each case checks
 * that the library refuses the input (NACK or close, never an ACK), closes
 * every fd it was sent, never crashes and keeps accepting connections.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

static const struct vhk_device_ops one_q_ops = {.name = "it-1q", .min_queues = 1};
static const char *sock_path;

/*
 * Start the socket once per case, offering @features; return a frontend that
 * negotiated exactly @features (REPLY_ACK on).
 */
static struct vuf *hs_open_f(uint64_t features)
{
	if (!sock_path) {
		struct be_cfg cfg = {.ops = &one_q_ops, .features = features,
				     .protocol_features = IT_PF_DEFAULT, .pairs = 1};
		sock_path = be_start(&cfg);
	}
	struct vuf *v = fe_open(sock_path, features, IT_PF_DEFAULT);
	CHECK(v->protocol_features & BIT(VHK_PF_REPLY_ACK));
	CHECK_EQ(v->features, features);
	return v;
}

/* hs_open_f with the split-only custom feature set. */
static struct vuf *hs_open(void)
{
	return hs_open_f(IT_F_CUSTOM);
}

/* Send a bare header (plus @size zero bytes of payload when @with_payload). */
static void send_hdr(struct vuf *v, uint32_t req, uint32_t flags, uint32_t size, bool with_payload)
{
	static const uint8_t zero[VHOST_USER_MAX_PAYLOAD];
	CHECK_EQ(vuf_send(v, req, flags, with_payload ? zero : NULL, size, NULL, 0), 0);
}

/* One hostile header on a fresh connection: refused; the socket lives on. */
static void hostile_flags(uint32_t req, uint32_t flags, uint32_t size)
{
	struct vuf *v = hs_open();
	send_hdr(v, req, flags, size, true);
	fe_rejected(v, req);
	vuf_close(v);
}

/* Version bits other than 1. */
static void t_bad_version(void)
{
	for (uint32_t ver = 0; ver < 4; ver++) {
		if (ver == VHOST_USER_VERSION)
			continue;
		hostile_flags(VHOST_USER_SET_OWNER, ver | VHOST_USER_NEED_REPLY_MASK, 0);
		hostile_flags(VHOST_USER_SET_VRING_NUM, ver | VHOST_USER_NEED_REPLY_MASK, 8);
	}
	be_alive(sock_path);
}

/* The REPLY bit on a request, and unknown flag bits. */
static void t_bad_flags(void)
{
	uint32_t bad[] = {VHOST_USER_REPLY_MASK, 1u << 4, 1u << 5, 1u << 16, 1u << 31, 0xfffffff0u};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t fl = VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK | bad[i];
		hostile_flags(VHOST_USER_SET_OWNER, fl, 0);
		hostile_flags(VHOST_USER_SET_FEATURES, fl, 8);
	}
	be_alive(sock_path);
}

/* size > 4096: the stream cannot be resynchronised, the connection must close. */
static void t_oversize(void)
{
	uint32_t sizes[] = {VHOST_USER_MAX_PAYLOAD + 1, 0x10000, 0x7fffffffu, 0xffffffffu};
	uint32_t reqs[] = {VHOST_USER_SET_OWNER, VHOST_USER_SET_MEM_TABLE, VHOST_USER_GET_CONFIG,
			   1000};
	for (unsigned i = 0; i < 4; i++) {
		for (unsigned k = 0; k < 4; k++) {
			struct vuf *v = hs_open();
			send_hdr(v, reqs[k], VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, sizes[i],
				 false);
			uint8_t junk[512];
			memset(junk, 0x5a, sizeof(junk));
			(void)vuf_send_raw(v, junk, sizeof(junk), NULL, 0);
			CHECK(vuf_peer_closed(v, 3000));
			vuf_close(v);
		}
	}
	be_alive(sock_path);
}

/* Fixed-size payloads with the wrong size. */
static void t_size_mismatch(void)
{
	static const struct {
		uint32_t req, size;
	} cases[] = {
		{VHOST_USER_SET_FEATURES, 0},     {VHOST_USER_SET_FEATURES, 4},
		{VHOST_USER_SET_FEATURES, 16},    {VHOST_USER_SET_OWNER, 8},
		{VHOST_USER_SET_VRING_NUM, 4},    {VHOST_USER_SET_VRING_NUM, 12},
		{VHOST_USER_SET_VRING_BASE, 0},   {VHOST_USER_SET_VRING_ADDR, 39},
		{VHOST_USER_SET_VRING_ADDR, 41},  {VHOST_USER_SET_VRING_ENABLE, 7},
		{VHOST_USER_SET_VRING_CALL, 4},   {VHOST_USER_SET_PROTOCOL_FEATURES, 9},
		{VHOST_USER_ADD_MEM_REG, 32},     {VHOST_USER_REM_MEM_REG, 48},
		{VHOST_USER_SET_MEM_TABLE, 7},    {VHOST_USER_SET_MEM_TABLE, 8 + 31},
		{VHOST_USER_SET_BACKEND_REQ_FD, 8},
	};
	struct vuf *v = hs_open();
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		send_hdr(v, cases[i].req, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
			 cases[i].size, true);
		if (fe_refused(v, cases[i].req) == REJ_CLOSED) {
			vuf_close(v);
			v = hs_open();
		}
	}
	vuf_close(v);
	be_alive(sock_path);
}

/* A message cut short by EOF: dropped with its fds; partial headers too. */
static void t_truncated(void)
{
	uint32_t cut[] = {1, 5, 11, 12, 13, 20, 51};
	for (unsigned i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		struct vuf *v = hs_open();
		struct probe p;
		probe_new(&p);
		uint8_t buf[52];
		struct vhost_user_header h = {VHOST_USER_SET_VRING_ADDR,
					      VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, 40};
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &h, sizeof(h));
		CHECK_EQ(vuf_send_raw(v, buf, cut[i], &p.wr, 1), 0);
		probe_sent(&p);
		vuf_close(v);
		CHECK(probe_closed(&p, 3000));
		probe_free(&p);
	}
	CHECK(ev_wait(EV_DESTROY_CONN, 7, 3000));
	be_alive(sock_path);
}

/* A stalled peer (half a header, or a header without its payload) blocks nobody. */
static void t_stall(void)
{
	struct vuf *a = hs_open();
	struct vhost_user_header h = {VHOST_USER_SET_VRING_ADDR, VHOST_USER_VERSION, 40};
	CHECK_EQ(vuf_send_raw(a, &h, sizeof(h), NULL, 0), 0);
	CHECK_EQ(vuf_send_raw(a, "abc", 3, NULL, 0), 0);
	struct vuf *c = fe_connect(sock_path);
	CHECK_EQ(vuf_send_raw(c, &h, 6, NULL, 0), 0);

	/* A full device bring-up on a second connection meanwhile. */
	unsigned devs = ev_count(EV_NEW_DEV);
	struct vuf *b = hs_open();
	struct gmem *m;
	struct gvq *r;
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_EVENT_IDX), &r), 0);
	CHECK_EQ(vuf_set_mem_table(b, m), 0);
	CHECK_EQ(vuf_start_vring(b, 0, r), 0);
	CHECK(ev_wait(EV_NEW_DEV, devs + 1, 3000));
	msleep(100);
	fe_usable(b);
	/* The stalled ones got no answer and were not closed early. */
	CHECK(!vuf_peer_closed(a, 50));
	CHECK(!vuf_peer_closed(c, 50));
	vuf_close(a);
	vuf_close(c);
	fe_usable(b);
	be_alive(sock_path);
	vuf_close(b);
	gvq_free(r);
	gmem_free(m);
}

/* Send @req with @size zero bytes and @n probe fds; refused, every fd closed. */
static enum fe_rej send_with_probes(struct vuf *v, uint32_t req, const void *payload,
				    uint32_t size, int n, const int *extra, int nextra)
{
	struct probe p[16];
	int fds[24];
	CHECK(n + nextra <= 24 && n <= 16);
	for (int i = 0; i < nextra; i++)
		fds[i] = extra[i];
	for (int i = 0; i < n; i++) {
		probe_new(&p[i]);
		fds[nextra + i] = p[i].wr;
	}
	CHECK_EQ(vuf_send(v, req, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, payload, size,
			  fds, n + nextra), 0);
	for (int i = 0; i < n; i++)
		probe_sent(&p[i]);
	enum fe_rej how = fe_refused(v, req);
	if (how == REJ_CLOSED)
		vuf_close(v);
	for (int i = 0; i < n; i++) {
		CHECK(probe_closed(&p[i], 3000));
		probe_free(&p[i]);
	}
	return how;
}

/* More than 8 fds on one message. */
static void t_too_many_fds(void)
{
	struct vuf *v = hs_open();
	int mfd = memfd_sized(1 << 16, NULL);
	struct {
		struct mt_hdr hdr;
		struct vhost_user_mem_region r;
	} __attribute__((packed)) t = {{1, 0}, {0, 1 << 16, 0x400000000ull, 0}};
	for (int n = 8; n <= 15; n += 7) {
		if (send_with_probes(v, VHOST_USER_SET_MEM_TABLE, &t, sizeof(t), n, &mfd, 1) ==
		    REJ_CLOSED)
			v = hs_open();
		uint64_t idx = 0;
		if (send_with_probes(v, VHOST_USER_SET_VRING_CALL, &idx, 8, n + 1, NULL, 0) ==
		    REJ_CLOSED)
			v = hs_open();
		if (send_with_probes(v, VHOST_USER_SET_OWNER, NULL, 0, n + 1, NULL, 0) == REJ_CLOSED)
			v = hs_open();
	}
	close(mfd);
	vuf_close(v);
	be_alive(sock_path);
}

/* fds attached to messages that take none. */
static void t_fds_on_plain_messages(void)
{
	static const struct {
		uint32_t req, size;
	} cases[] = {
		{VHOST_USER_SET_OWNER, 0},        {VHOST_USER_RESET_OWNER, 0},
		{VHOST_USER_SET_FEATURES, 8},     {VHOST_USER_SET_PROTOCOL_FEATURES, 8},
		{VHOST_USER_SET_VRING_NUM, 8},    {VHOST_USER_SET_VRING_BASE, 8},
		{VHOST_USER_SET_VRING_ADDR, 40},  {VHOST_USER_SET_VRING_ENABLE, 8},
		{VHOST_USER_NET_SET_MTU, 8},      {VHOST_USER_SET_CONFIG, 16},
		{VHOST_USER_REM_MEM_REG, 40},     {VHOST_USER_SET_STATUS, 8},
	};
	struct vuf *v = hs_open();
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Payloads valid but for the fds where that is easy (zeros mostly are). */
		uint8_t payload[64];
		memset(payload, 0, sizeof(payload));
		if (cases[i].req == VHOST_USER_SET_VRING_NUM)
			((struct vhost_user_vring_state *)(void *)payload)->num = 64;
		int n = (int)(i % 3) + 1;
		if (cases[i].req == VHOST_USER_REM_MEM_REG)
			n = 2; /* one is tolerated there, two are not */
		if (send_with_probes(v, cases[i].req, payload, cases[i].size, n, NULL, 0) ==
		    REJ_CLOSED)
			v = hs_open();
	}
	vuf_close(v);
	be_alive(sock_path);
}

/* Unknown request codes carrying fds. */
static void t_unknown_with_fds(void)
{
	uint32_t reqs[] = {0, 46, 47, 99, 1000, 0x10000, 0x7fffffffu, 0xffffffffu};
	uint8_t payload[64];
	memset(payload, 0xee, sizeof(payload));
	struct vuf *v = hs_open();
	for (unsigned i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		if (send_with_probes(v, reqs[i], payload, (i * 8) % 64, (int)(i % 4) + 1, NULL, 0) ==
		    REJ_CLOSED)
			v = hs_open();
	vuf_close(v);
	be_alive(sock_path);
}

/* Random bytes (sometimes with fds) then EOF: the library closes and lives on. */
static void t_garbage(void)
{
	srand(12345);
	vuf_close(hs_open()); /* starts the socket */
	uint8_t buf[700];
	for (int it = 0; it < 300; it++) {
		struct vuf *v = fe_connect(sock_path);
		uint32_t len = 1 + (uint32_t)rand() % sizeof(buf);
		for (uint32_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rand();
		if (it % 3 == 0) { /* a plausible header with random fields */
			struct vhost_user_header h = {(uint32_t)rand() % 64, VHOST_USER_VERSION,
						      (uint32_t)rand() % 128};
			memcpy(buf, &h, sizeof(h));
			len = len < 12 ? 12 : len;
		}
		struct probe p;
		probe_new(&p);
		int nfds = it % 4 == 1;
		CHECK_EQ(vuf_send_raw(v, buf, len, &p.wr, nfds), 0);
		probe_sent(&p);
		shutdown(v->fd, SHUT_WR);
		CHECK(vuf_peer_closed(v, 3000));
		vuf_close(v);
		CHECK(probe_closed(&p, 3000));
		probe_free(&p);
		if (it % 50 == 0)
			be_alive(sock_path);
	}
	be_alive(sock_path);
}

/* Vring and memory messages in a hostile order (before SET_FEATURES etc.). */
static void t_out_of_order(void)
{
	vuf_close(hs_open()); /* starts the socket */
	struct vuf *v = fe_connect(sock_path);
	/* Ring messages with no memory table, no features, no owner. */
	struct vhost_user_vring_state s = {.index = 0, .num = 256};
	CHECK_EQ(vuf_send(v, VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, &s, 8, NULL, 0), 0);
	int efd = memfd_sized(4096, NULL);
	uint64_t idx = 0;
	CHECK_EQ(vuf_send(v, VHOST_USER_SET_VRING_KICK, VHOST_USER_VERSION, &idx, 8, &efd, 1), 0);
	CHECK_EQ(vuf_send(v, VHOST_USER_SET_VRING_CALL, VHOST_USER_VERSION, &idx, 8, &efd, 1), 0);
	s.num = 1;
	CHECK_EQ(vuf_send(v, VHOST_USER_SET_VRING_ENABLE, VHOST_USER_VERSION, &s, 8, NULL, 0), 0);
	struct vhost_user_vring_addr a = {.index = 0, .desc_user_addr = 0x1000,
					  .used_user_addr = 0x2000, .avail_user_addr = 0x3000};
	CHECK_EQ(vuf_send(v, VHOST_USER_SET_VRING_ADDR, VHOST_USER_VERSION, &a, 40, NULL, 0), 0);
	s.num = 0;
	CHECK_EQ(vuf_send(v, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, &s, 8, NULL, 0), 0);
	close(efd);
	/* The connection may have been closed; if not it must still answer. */
	struct vhost_user_msg m;
	if (vuf_send(v, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0) == 0) {
		int rc;
		while ((rc = vuf_recv(v, &m, 3000)) == 0 && m.hdr.request != VHOST_USER_GET_FEATURES)
			CHECK_EQ(m.hdr.request, VHOST_USER_GET_VRING_BASE);
		CHECK(rc == 0 || rc == -ECONNRESET);
	}
	vuf_close(v);
	CHECK_EQ(ev_count(EV_NEW_DEV), 0);
	be_alive(sock_path);
}

/* Bring up vring 0 with @a as its addresses; returns the SET_VRING_ADDR result. */
static int ring_with_addr(struct vuf *v, struct gmem *m, struct gvq *r,
			  const struct vhost_user_vring_addr *a)
{
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_NUM, 0, r->size), 0);
	CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_BASE, 0, 0), 0);
	int rc = vuf_request(v, VHOST_USER_SET_VRING_ADDR, a, sizeof(*a), NULL, 0, NULL);
	CHECK(rc == 0 || rc == -EPROTO);
	/* KICK may be refused too when the ring cannot start. */
	int krc = vuf_set_vring_fd(v, VHOST_USER_SET_VRING_KICK, 0, r->kick_fd);
	CHECK(krc == 0 || krc == -EPROTO);
	CHECK_EQ(vuf_set_vring_fd(v, VHOST_USER_SET_VRING_CALL, 0, r->call_fd), 0);
	int erc = vuf_set_vring_state(v, VHOST_USER_SET_VRING_ENABLE, 0, 1);
	CHECK(erc == 0 || erc == -EPROTO);
	fe_usable(v);
	return rc;
}

/* Ring areas not (fully) inside guest memory never start the ring. */
static void t_ring_outside_memory(void)
{
	const uint64_t msize = 1 << 20;
	struct gmem *m;
	struct gvq *r;
	CHECK_EQ(gmem_new(1, msize, 0, 0, &m), 0);
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_EVENT_IDX), &r), 0);
	uint64_t base = (uintptr_t)m->r[0].hva, end = base + msize;
	struct vhost_user_vring_addr ok = {
		.desc_user_addr = gmem_qva(m, r->desc_gpa),
		.used_user_addr = gmem_qva(m, r->used_gpa),
		.avail_user_addr = gmem_qva(m, r->avail_gpa),
	};
	struct vhost_user_vring_addr bad[7];
	for (int i = 0; i < 7; i++)
		bad[i] = ok;
	bad[0].desc_user_addr = end - 16;                 /* table runs off the end */
	bad[1].avail_user_addr = end - 4;                 /* avail ring too */
	bad[2].used_user_addr = end - 8;                  /* used ring too */
	bad[3].desc_user_addr = 0x1000;                   /* not guest memory at all */
	bad[4].used_user_addr = UINT64_MAX - 64;          /* wraps */
	bad[5].avail_user_addr = base - 2;                /* starts before the region */
	bad[6].desc_user_addr = end;                      /* one past the end */
	for (int i = 0; i < 7; i++) {
		unsigned devs = ev_count(EV_NEW_DEV);
		struct vuf *v = hs_open();
		int vid = ev_conn_vid();
		ring_with_addr(v, m, r, &bad[i]);
		msleep(50);
		CHECK_EQ(ev_count(EV_NEW_DEV), devs);
		struct vhk_vq_info info;
		CHECK_EQ(vhk_vq_get_info(vid, 0, &info), 0);
		CHECK(!info.started || info.broken);
		vuf_close(v);
	}
	/* The same ring with good addresses comes up (the checks above can pass). */
	unsigned devs = ev_count(EV_NEW_DEV);
	struct vuf *v = hs_open();
	CHECK_EQ(ring_with_addr(v, m, r, &ok), 0);
	CHECK(ev_wait(EV_NEW_DEV, devs + 1, 3000));
	vuf_close(v);
	gvq_free(r);
	gmem_free(m);
	be_alive(sock_path);
}

/*
 * After a new memory table that drops the ring's memory: the ring is stopped
 * or broken, kicks on it are harmless, the connection still answers.
 */
static void pulled_ring_dead(struct vuf *v, int vid, struct gmem *other)
{
	int rc = vuf_set_mem_table(v, other);
	CHECK(rc == 0 || rc == -EPROTO);
	fe_usable(v);
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(vid, 0, &info), 0);
	CHECK(!info.started || info.broken);
}

/*
 * A new memory table that drops the ring's memory stops (or breaks) the
 * ring, on the format @fmt selects (0 split, RING_PACKED packed: descriptor
 * ring and event structures all lose their mapping). A buffer is posted
 * before the kick so a device that still read the old ring would find work.
 */
static void mem_table_pulled(uint64_t fmt)
{
	struct gmem *m, *other;
	struct gvq *r;
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	CHECK_EQ(gmem_new(1, 1 << 20, 1ull << 32, 0, &other), 0);
	struct vuf *v = hs_open_f(IT_F_CUSTOM | fmt);
	CHECK_EQ(v->features & BIT(VHK_F_RING_PACKED), fmt);
	CHECK_EQ(gvq_new(m, 256, v->features, &r), 0);
	int vid = ev_conn_vid();
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	CHECK_EQ(vuf_start_vring(v, 0, r), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(vid, 0, &info), 0);
	CHECK(info.started && info.packed == r->packed);
	pulled_ring_dead(v, vid, other);
	/* Kicks on the dead ring, with a buffer published, are harmless. */
	struct gbuf b = {gmem_alloc(m, 512, 16), 512};
	CHECK(b.gpa != 0);
	CHECK(gvq_post(r, &b, 1, NULL, 0, false, &b) >= 0);
	gvq_kick_force(r);
	msleep(20);
	fe_usable(v);
	CHECK_EQ(vhk_vq_get_info(vid, 0, &info), 0);
	CHECK(!info.started || info.broken);
	vuf_close(v);
	gvq_free(r);
	gmem_free(other);
	gmem_free(m);
	be_alive(sock_path);
}

static void t_mem_table_pulled(void)
{
	mem_table_pulled(0);
}

static void t_mem_table_pulled_packed(void)
{
	mem_table_pulled(BIT(VHK_F_RING_PACKED));
}

TEST_MAIN(TEST(t_bad_version), TEST(t_bad_flags), TEST(t_oversize), TEST(t_size_mismatch),
	  TEST(t_truncated), TEST(t_stall), TEST(t_too_many_fds), TEST(t_fds_on_plain_messages),
	  TEST(t_unknown_with_fds), TEST(t_garbage), TEST(t_out_of_order),
	  TEST(t_ring_outside_memory), TEST(t_mem_table_pulled),
	  TEST(t_mem_table_pulled_packed))
