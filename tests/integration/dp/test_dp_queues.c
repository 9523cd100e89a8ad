/* SPDX-License-Identifier: MIT */
/*
 * Datapath integration: multiqueue separation, buffers straddling two memory
 * regions, SEND_RARP, statistics and free-entry counts, and a guest error
 * confined to its own queue. Runs on split or packed rings (--packed; meson
 * registers both).
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dp_common.h"
#include "test.h"

#define PAIRS 4
#define PER_Q 5

/* Random packet whose first two bytes say which pair and which sequence number. */
static void tagged(uint8_t *buf, uint32_t len, uint32_t pair, uint32_t seq, uint32_t dir)
{
	uint32_t seed = 1 + pair * 1000 + seq * 10 + dir;
	dp_random(buf, len, &seed);
	buf[0] = (uint8_t)pair;
	buf[1] = (uint8_t)seq;
}

/* Four queue pairs: traffic on every pair, each packet lands on its own queue. */
static void t_multiqueue(void)
{
	struct dp_env e;
	struct dp_opts o = {.pairs = PAIRS, .features = DP_BASE_FEATURES | DP_F(VHK_NET_F_MQ)};
	dp_setup(&e, &o);
	CHECK(e.v->features & DP_F(VHK_NET_F_MQ));
	CHECK_EQ(vhk_dev_get_vq_count(e.vid), 2 * PAIRS);
	uint8_t buf[600], got[600];
	uint32_t len[PAIRS][PER_Q];

	/* Host -> guest: everything enqueued first, then each guest ring read. */
	for (uint32_t i = 0; i < PAIRS; i++)
		dp_post_rx(&e, 2 * i, 2 * PER_Q, 1024, false, false);
	for (uint32_t i = 0; i < PAIRS; i++)
		for (uint32_t s = 0; s < PER_Q; s++) {
			len[i][s] = 60 + 97 * s + 13 * i;
			tagged(buf, len[i][s], i, s, 0);
			struct vhk_pkt *p = dp_pkt_make(e.pool, buf, len[i][s]);
			CHECK_EQ(dp_enqueue_all(e.vid, (uint16_t)(2 * i), &p, 1, DP_TIMEOUT_MS), 1);
			vhk_pkt_free(p);
		}
	for (uint32_t i = 0; i < PAIRS; i++) {
		CHECK_EQ(gvq_used_pending(e.vq[2 * i]), PER_Q);
		for (uint32_t s = 0; s < PER_Q; s++) {
			struct virtio_net_hdr_mrg_rxbuf h;
			tagged(buf, len[i][s], i, s, 0);
			CHECK_EQ(dp_recv(&e, 2 * i, &h, got, sizeof(got), NULL, DP_TIMEOUT_MS),
				 len[i][s]);
			CHECK(memcmp(buf, got, len[i][s]) == 0);
		}
	}

	/* Guest -> host: every TX ring filled first, then each drained by the host. */
	for (uint32_t i = 0; i < PAIRS; i++)
		for (uint32_t s = 0; s < PER_Q; s++) {
			tagged(buf, len[i][s], i, s, 1);
			dp_send(&e, 2 * i + 1, NULL, buf, len[i][s], 1, false, false);
		}
	for (uint32_t i = 0; i < PAIRS; i++) {
		struct vhk_pkt *p[PER_Q + 1];
		CHECK_EQ(
		    dp_dequeue_n(e.vid, (uint16_t)(2 * i + 1), e.pool, p, PER_Q, DP_TIMEOUT_MS),
		    PER_Q);
		for (uint32_t s = 0; s < PER_Q; s++) {
			tagged(buf, len[i][s], i, s, 1);
			CHECK(dp_pkt_equal(p[s], buf, len[i][s]));
		}
		vhk_pkt_free_bulk(p, PER_Q);
		CHECK_EQ(vhk_net_dequeue_burst(e.vid, (uint16_t)(2 * i + 1), e.pool, p, 1), 0);
		CHECK_EQ(dp_reap(&e, 2 * i + 1, PER_Q, DP_TIMEOUT_MS), PER_Q);
	}
	for (uint32_t i = 0; i < PAIRS; i++) {
		struct vhk_net_stats st;
		CHECK_EQ(vhk_net_get_stats(e.vid, (uint16_t)(2 * i), &st), 0);
		CHECK_EQ(st.packets, PER_Q);
		CHECK_EQ(vhk_net_get_stats(e.vid, (uint16_t)(2 * i + 1), &st), 0);
		CHECK_EQ(st.packets, PER_Q);
	}
	dp_teardown(&e);
}

/* Buffers that straddle two memory regions are copied correctly both ways. */
static void t_straddle(void)
{
	struct dp_env e;
	struct dp_opts o = {.nregions = 3, .region_size = 1u << 20, .gap = 0};
	dp_setup(&e, &o);
	const uint32_t len = 4000, blen = 4096;
	uint8_t want[4000], got[4000];
	uint32_t seed = 31;

	uint64_t rx = gmem_alloc_straddle(e.m, 0, blen);
	uint64_t tx = gmem_alloc_straddle(e.m, 1, blen);
	CHECK(rx && tx);
	CHECK(gmem_ptr(e.m, rx, blen) == NULL); /* really spans two regions */
	CHECK(gmem_ptr(e.m, tx, blen) == NULL);

	/* RX: one buffer (header + data) across the region 0/1 boundary. */
	struct gbuf b = {rx, blen};
	CHECK(dp_post(&e, 0, &b, 1, true, false) >= 0);
	gvq_kick(e.vq[0]);
	dp_random(want, len, &seed);
	struct vhk_pkt *p = dp_pkt_make(e.pool, want, len);
	CHECK_EQ(dp_enqueue_all(e.vid, 0, &p, 1, DP_TIMEOUT_MS), 1);
	vhk_pkt_free(p);
	struct virtio_net_hdr_mrg_rxbuf h;
	CHECK_EQ(dp_recv(&e, 0, &h, got, len, NULL, DP_TIMEOUT_MS), len);
	CHECK(memcmp(want, got, len) == 0);

	/* TX: header + data across the region 1/2 boundary. */
	struct virtio_net_hdr_mrg_rxbuf th = {0};
	dp_random(want, len, &seed);
	CHECK_EQ(gmem_write(e.m, tx, &th, e.hdr_len), 0);
	CHECK_EQ(gmem_write(e.m, tx + e.hdr_len, want, len), 0);
	b = (struct gbuf){tx, e.hdr_len + len};
	CHECK(dp_post(&e, 1, &b, 1, false, false) >= 0);
	gvq_kick(e.vq[1]);
	p = NULL;
	CHECK_EQ(dp_dequeue_n(e.vid, 1, e.pool, &p, 1, DP_TIMEOUT_MS), 1);
	CHECK(dp_pkt_equal(p, want, len));
	vhk_pkt_free(p);
	CHECK_EQ(dp_reap(&e, 1, 1, DP_TIMEOUT_MS), 1);
	dp_teardown(&e);
}

/* SEND_RARP: the next dequeue returns a RARP frame for the guest's MAC first. */
static void t_rarp(void)
{
	struct dp_env e;
	struct dp_opts o = {.pf = DP_BASE_PF | DP_F(VHK_PF_RARP)};
	dp_setup(&e, &o);
	CHECK(e.v->protocol_features & DP_F(VHK_PF_RARP));
	const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
	uint8_t guest[100];
	uint32_t seed = 8;
	dp_random(guest, sizeof(guest), &seed);
	dp_send(&e, 1, NULL, guest, sizeof(guest), 1, false, false);

	uint8_t payload[8] = {0};
	memcpy(payload, mac, 6);
	CHECK_EQ(vuf_request(e.v, VHOST_USER_SEND_RARP, payload, 8, NULL, 0, NULL), 0);
	struct vhk_pkt *p[3] = {NULL, NULL, NULL};
	CHECK_EQ(dp_dequeue_n(e.vid, 1, e.pool, p, 2, DP_TIMEOUT_MS), 2);
	uint8_t f[64];
	CHECK(p[0]->pkt_len >= 42);
	CHECK_EQ(vhk_pkt_read(p[0], 0, f, 42), 42);
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	CHECK(memcmp(f, bcast, 6) == 0);
	CHECK(memcmp(f + 6, mac, 6) == 0);
	CHECK(f[12] == 0x80 && f[13] == 0x35); /* ETH_P_RARP */
	CHECK(f[14] == 0 && f[15] == 1);       /* htype ethernet */
	CHECK(f[16] == 0x08 && f[17] == 0x00); /* ptype IPv4 */
	CHECK(f[18] == 6 && f[19] == 4);       /* hlen, plen */
	CHECK(f[20] == 0 && f[21] == 3);       /* op: reverse request */
	CHECK(memcmp(f + 22, mac, 6) == 0);    /* sender hw */
	CHECK(memcmp(f + 32, mac, 6) == 0);    /* target hw */
	CHECK(dp_pkt_equal(p[1], guest, sizeof(guest)));
	vhk_pkt_free_bulk(p, 2);
	CHECK_EQ(dp_reap(&e, 1, 1, DP_TIMEOUT_MS), 1);

	/* Only once: the next packet is the guest's again. */
	dp_send(&e, 1, NULL, guest, sizeof(guest), 1, false, false);
	CHECK_EQ(dp_dequeue_n(e.vid, 1, e.pool, p, 1, DP_TIMEOUT_MS), 1);
	CHECK(dp_pkt_equal(p[0], guest, sizeof(guest)));
	vhk_pkt_free(p[0]);
	dp_teardown(&e);
}

/* Statistics count packets, bytes and drops; free entries follow the guest. */
static void t_stats_free_entries(void)
{
	struct dp_env e;
	struct dp_opts o = {0};
	dp_setup(&e, &o);
	struct vhk_net_stats st;
	static const uint32_t lens[4] = {60, 100, 1514, 9000};
	static uint8_t data[9000];
	uint32_t seed = 4;
	dp_random(data, sizeof(data), &seed);

	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 0);
	dp_post_rx(&e, 0, 10, e.hdr_len + 9000, false, false);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 10);
	struct vhk_pkt *p[16];
	uint64_t bytes = 0;
	for (int i = 0; i < 4; i++) {
		p[i] = dp_pkt_make(e.pool, data, lens[i]);
		bytes += lens[i];
	}
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, p, 4), 4);
	vhk_pkt_free_bulk(p, 4);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 6);
	CHECK_EQ(vhk_net_get_stats(e.vid, 0, &st), 0);
	CHECK_EQ(st.packets, 4);
	CHECK_EQ(st.bytes, bytes);
	CHECK_EQ(st.drops, 0);

	/* Ten more into six buffers: six go, four are counted as drops. */
	for (int i = 0; i < 10; i++)
		p[i] = dp_pkt_make(e.pool, data, 200);
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, p, 10), 6);
	vhk_pkt_free_bulk(p, 10);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 0);
	CHECK_EQ(vhk_net_get_stats(e.vid, 0, &st), 0);
	CHECK_EQ(st.packets, 10);
	CHECK_EQ(st.bytes, bytes + 6 * 200);
	CHECK_EQ(st.drops, 4);
	CHECK_EQ(gvq_used_pending(e.vq[0]), 10);

	/* TX: three published chains are free entries until dequeued. */
	CHECK_EQ(vhk_vq_avail_count(e.vid, 1), 0);
	for (int i = 0; i < 3; i++)
		dp_send(&e, 1, NULL, data, lens[i], 1, false, false);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 1), 3);
	CHECK_EQ(dp_dequeue_n(e.vid, 1, e.pool, p, 3, DP_TIMEOUT_MS), 3);
	for (int i = 0; i < 3; i++)
		CHECK(dp_pkt_equal(p[i], data, lens[i]));
	vhk_pkt_free_bulk(p, 3);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 1), 0);
	CHECK_EQ(vhk_net_get_stats(e.vid, 1, &st), 0);
	CHECK_EQ(st.packets, 3);
	CHECK_EQ(st.bytes, lens[0] + lens[1] + lens[2]);
	CHECK_EQ(st.drops, 0);
	CHECK_EQ(st.errors, 0);

	CHECK_EQ(vhk_net_reset_stats(e.vid, 0), 0);
	CHECK_EQ(vhk_net_get_stats(e.vid, 0, &st), 0);
	CHECK(st.packets == 0 && st.bytes == 0 && st.drops == 0);
	CHECK(vhk_net_get_stats(e.vid, 0, NULL) < 0);
	CHECK(vhk_vq_avail_count(e.vid, 200) < 0);
	CHECK(vhk_vq_avail_count(-1, 0) < 0);
	dp_teardown(&e);
}

/* True if eventfd @fd becomes readable within @ms. */
static bool fd_fires(int fd, int ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	return poll(&pfd, 1, ms) == 1 && (pfd.revents & POLLIN);
}

/*
 * Make a malformed chain available on vring @q: split, two descriptors
 * pointing at each other (a loop); packed (chains cannot loop), a head whose
 * buffer id is the ring size, one past the last valid id.
 */
static void post_hostile(struct dp_env *e, uint32_t q)
{
	struct gvq *r = e->vq[q];
	uint64_t s = dp_next_slot(e, q);
	CHECK(s);
	if (e->packed) {
		gvq_raw_slot(r, r->avail_pos, s, 100, r->size, gvq_avail_bits(r->avail_wrap));
		gvq_kick_force(r);
		return;
	}
	uint16_t a = r->avail_pos;
	gvq_raw_desc(r, 5, s, 64, VRING_DESC_F_NEXT, 6);
	gvq_raw_desc(r, 6, s + 64, 64, VRING_DESC_F_NEXT, 5);
	gvq_raw_avail(r, a, 5);
	gvq_raw_avail_idx(r, (uint16_t)(a + 1));
	gvq_kick_force(r);
}

/* A malformed chain (see post_hostile) on pair 0's TX ring breaks only that ring. */
static void t_guest_error_isolated(void)
{
	struct dp_env e;
	struct dp_opts o = {.pairs = 2, .features = DP_BASE_FEATURES | DP_F(VHK_NET_F_MQ)};
	dp_setup(&e, &o);
	int err[4];
	for (uint32_t q = 0; q < 4; q++) {
		err[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		CHECK(err[q] >= 0);
		CHECK_EQ(vuf_set_vring_fd(e.v, VHOST_USER_SET_VRING_ERR, q, err[q]), 0);
	}
	dp_roundtrip(&e, 0, 300, 1);
	dp_roundtrip(&e, 1, 300, 2);

	post_hostile(&e, 1);
	struct vhk_pkt *p[2];
	int64_t end = dp_now_ms() + DP_TIMEOUT_MS;
	while (!fd_fires(err[1], 1) && dp_now_ms() < end)
		CHECK_EQ(vhk_net_dequeue_burst(e.vid, 1, e.pool, p, 2), 0);
	CHECK(fd_fires(err[1], 0));
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(e.vid, 1, &info), 0);
	CHECK(info.broken);
	CHECK_EQ(vhk_net_dequeue_burst(e.vid, 1, e.pool, p, 2), 0);
	struct vhk_net_stats st;
	CHECK_EQ(vhk_net_get_stats(e.vid, 1, &st), 0);
	CHECK(st.errors >= 1);

	/* Everything else keeps moving. */
	for (uint32_t k = 0; k < 3; k++)
		dp_roundtrip(&e, 1, 500 + 100 * k, 10 + k);
	uint8_t got[700], want[700];
	uint32_t seed = 3;
	dp_random(want, sizeof(want), &seed);
	dp_post_rx(&e, 0, 1, 2048, false, false);
	p[0] = dp_pkt_make(e.pool, want, sizeof(want));
	CHECK_EQ(dp_enqueue_all(e.vid, 0, p, 1, DP_TIMEOUT_MS), 1);
	vhk_pkt_free(p[0]);
	struct virtio_net_hdr_mrg_rxbuf h;
	CHECK_EQ(dp_recv(&e, 0, &h, got, sizeof(got), NULL, DP_TIMEOUT_MS), sizeof(want));
	CHECK(memcmp(got, want, sizeof(want)) == 0);
	for (uint32_t q = 0; q < 4; q++) {
		CHECK_EQ(vhk_vq_get_info(e.vid, (uint16_t)q, &info), 0);
		CHECK_EQ(info.broken, q == 1);
		if (q != 1)
			CHECK(!fd_fires(err[q], 0));
		close(err[q]);
	}
	dp_teardown(&e);
}

GVQ_TEST_MAIN(TEST(t_multiqueue), TEST(t_straddle), TEST(t_rarp), TEST(t_stats_free_entries),
	      TEST(t_guest_error_isolated))
