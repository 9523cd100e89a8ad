/* SPDX-License-Identifier: MIT */
/*
 * Datapath integration: packets of many sizes in both directions, checked
 * byte for byte, with and without MRG_RXBUF, INDIRECT_DESC, VERSION_1, and
 * the virtio-net header offload metadata in both directions. Runs on split
 * or packed rings (--packed; meson registers both).
 */
#include <stdlib.h>
#include <string.h>

#include "dp_common.h"
#include "test.h"

static const uint32_t sizes[] = {60, 61, 64, 128, 1514, 1518, 4000, 9000};
#define NSIZES	(sizeof(sizes) / sizeof(sizes[0]))
#define MAXPKT	9000u
#define MRG_BUF 1536u

/* How a test lays out its guest buffers. */
struct layout {
	bool split_hdr; /* header in its own descriptor */
	bool indirect;	/* chains through indirect tables */
	int nsplit;	/* TX data pieces */
};

/* Host -> guest: one packet of @len random bytes on pair 0, checked in the guest. */
static void rx_one(struct dp_env *e, uint32_t len, uint32_t seed, const struct layout *l)
{
	uint8_t *want = malloc(MAXPKT), *got = malloc(MAXPKT);
	struct virtio_net_hdr_mrg_rxbuf h;
	int nbufs = 0;
	CHECK(want && got);
	dp_random(want, len, &seed);
	if (e->mrg)
		dp_post_rx(e, 0, (int)((len + e->hdr_len + MRG_BUF - 1) / MRG_BUF), MRG_BUF,
			   l->split_hdr, l->indirect);
	else
		dp_post_rx(e, 0, 1, e->hdr_len + MAXPKT, l->split_hdr, l->indirect);
	struct vhk_pkt *p = dp_pkt_make(e->pool, want, len);
	CHECK_EQ(dp_enqueue_all(e->vid, 0, &p, 1, DP_TIMEOUT_MS), 1);
	vhk_pkt_free(p);
	memset(&h, 0xee, sizeof(h));
	int n = dp_recv(e, 0, &h, got, MAXPKT, &nbufs, DP_TIMEOUT_MS);
	CHECK_EQ(n, len);
	CHECK(memcmp(want, got, len) == 0);
	CHECK_EQ(h.hdr.flags, 0);
	CHECK_EQ(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	if (e->mrg) {
		uint32_t expect = (len + e->hdr_len + MRG_BUF - 1) / MRG_BUF;
		CHECK_EQ(h.num_buffers, expect);
		CHECK_EQ(nbufs, expect);
	} else {
		CHECK_EQ(nbufs, 1);
	}
	free(want);
	free(got);
}

/* Guest -> host: one packet of @len random bytes on pair 0, checked in the pkt. */
static void tx_one(struct dp_env *e, uint32_t len, uint32_t seed, const struct layout *l)
{
	uint8_t *want = malloc(MAXPKT);
	struct vhk_pkt *p = NULL;
	CHECK(want);
	dp_random(want, len, &seed);
	dp_send(e, 1, NULL, want, len, l->nsplit, l->split_hdr, l->indirect);
	CHECK_EQ(dp_dequeue_n(e->vid, 1, e->pool, &p, 1, DP_TIMEOUT_MS), 1);
	CHECK(dp_pkt_equal(p, want, len));
	CHECK_EQ(p->ol.flags, 0);
	CHECK_EQ(p->ol.gso_type, VHK_PKT_GSO_NONE);
	vhk_pkt_free(p);
	CHECK_EQ(dp_reap(e, 1, 1, DP_TIMEOUT_MS), 1);
	free(want);
}

/* Every size, both directions, with layout @l; then a burst of all sizes. */
static void run_sizes(struct dp_env *e, const struct layout *l)
{
	for (uint32_t i = 0; i < NSIZES; i++) {
		rx_one(e, sizes[i], 1000 + i, l);
		tx_one(e, sizes[i], 2000 + i, l);
	}
	/* One burst holding every size: order and content preserved. */
	uint8_t *want[NSIZES];
	struct vhk_pkt *p[NSIZES];
	uint32_t seed = 77;
	for (uint32_t i = 0; i < NSIZES; i++) {
		want[i] = malloc(sizes[i]);
		CHECK(want[i]);
		dp_random(want[i], sizes[i], &seed);
		dp_send(e, 1, NULL, want[i], sizes[i], l->nsplit, l->split_hdr, l->indirect);
	}
	CHECK_EQ(dp_dequeue_n(e->vid, 1, e->pool, p, NSIZES, DP_TIMEOUT_MS), NSIZES);
	for (uint32_t i = 0; i < NSIZES; i++) {
		CHECK(dp_pkt_equal(p[i], want[i], sizes[i]));
		vhk_pkt_free(p[i]);
	}
	CHECK_EQ(dp_reap(e, 1, NSIZES, DP_TIMEOUT_MS), NSIZES);
	for (uint32_t i = 0; i < NSIZES; i++) {
		if (e->mrg)
			dp_post_rx(e, 0, 8, MRG_BUF, l->split_hdr, l->indirect);
		else
			dp_post_rx(e, 0, 1, e->hdr_len + MAXPKT, l->split_hdr, l->indirect);
		p[i] = dp_pkt_make(e->pool, want[i], sizes[i]);
	}
	CHECK_EQ(dp_enqueue_all(e->vid, 0, p, NSIZES, DP_TIMEOUT_MS), NSIZES);
	uint8_t *got = malloc(MAXPKT);
	CHECK(got);
	for (uint32_t i = 0; i < NSIZES; i++) {
		struct virtio_net_hdr_mrg_rxbuf h;
		CHECK_EQ(dp_recv(e, 0, &h, got, MAXPKT, NULL, DP_TIMEOUT_MS), sizes[i]);
		CHECK(memcmp(got, want[i], sizes[i]) == 0);
		vhk_pkt_free(p[i]);
		free(want[i]);
	}
	free(got);
}

/* Set up a device with @features, run every size with layout @l, tear down. */
static void sizes_case(uint64_t features, const struct layout *l, bool expect_mrg)
{
	struct dp_env e;
	struct dp_opts o = {.features = features};
	dp_setup(&e, &o);
	CHECK_EQ(e.mrg, expect_mrg);
	CHECK_EQ((e.v->features & features), features);
	run_sizes(&e, l);
	dp_teardown(&e);
}

static void t_sizes_plain(void)
{
	struct layout l = {.split_hdr = false, .indirect = false, .nsplit = 1};
	sizes_case(DP_BASE_FEATURES, &l, false);
}

static void t_sizes_plain_split(void)
{
	struct layout l = {.split_hdr = true, .indirect = false, .nsplit = 3};
	sizes_case(DP_BASE_FEATURES, &l, false);
}

static void t_sizes_mrg(void)
{
	struct layout l = {.split_hdr = false, .indirect = false, .nsplit = 2};
	sizes_case(DP_BASE_FEATURES | DP_F(VHK_NET_F_MRG_RXBUF), &l, true);
}

static void t_sizes_indirect(void)
{
	struct layout l = {.split_hdr = true, .indirect = true, .nsplit = 4};
	sizes_case(DP_BASE_FEATURES | DP_F(VHK_F_INDIRECT_DESC), &l, false);
}

static void t_sizes_mrg_indirect_evidx(void)
{
	struct layout l = {.split_hdr = true, .indirect = true, .nsplit = 2};
	sizes_case(DP_BASE_FEATURES | DP_F(VHK_NET_F_MRG_RXBUF) | DP_F(VHK_F_INDIRECT_DESC) |
		       DP_F(VHK_F_EVENT_IDX),
		   &l, true);
}

/*
 * Legacy driver (no VERSION_1, no MRG_RXBUF): the 10-byte header, in its
 * own descriptor. On packed the case is the refusal: the packed layout
 * exists only for VIRTIO 1.x, so SET_FEATURES with RING_PACKED but without
 * VERSION_1 is NACKed.
 */
static void t_sizes_legacy_hdr(void)
{
	struct dp_env e;
	struct dp_opts o = {.features = DP_F(VHK_F_PROTOCOL_FEATURES)};
	struct layout l = {.split_hdr = true, .indirect = false, .nsplit = 1};
	if (gvq_run_packed) {
		struct vuf *v;
		dp_lib_start(&e, &o);
		CHECK_EQ(vuf_connect(e.path, DP_TIMEOUT_MS, &v), 0);
		CHECK(vuf_negotiate(v, e.o.features, e.o.pf) < 0);
		CHECK_EQ(vuf_set_u64(v, VHOST_USER_SET_FEATURES,
				     e.o.features | DP_F(VHK_F_VERSION_1)), 0);
		vuf_close(v);
		CHECK_EQ(dp_new_count, 0);
		dp_teardown(&e);
		return;
	}
	dp_setup(&e, &o);
	CHECK_EQ(e.hdr_len, 10);
	run_sizes(&e, &l);
	dp_teardown(&e);
}

/* Guest TX header with NEEDS_CSUM + GSO comes out in vhk_pkt.ol. */
static void t_tx_offload(void)
{
	struct dp_env e;
	struct dp_opts o = {.features = DP_BASE_FEATURES | DP_F(VHK_NET_F_CSUM) |
					DP_F(VHK_NET_F_HOST_TSO4)};
	dp_setup(&e, &o);
	uint8_t frame[4000];
	uint32_t seed = 5;
	dp_make_tcp(frame, sizeof(frame), &seed);
	struct virtio_net_hdr h = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				   .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
				   .hdr_len = 54,
				   .gso_size = 1448,
				   .csum_start = 34,
				   .csum_offset = 16};
	dp_send(&e, 1, &h, frame, sizeof(frame), 2, false, false);
	struct virtio_net_hdr h2 = {
	    .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 16};
	dp_send(&e, 1, &h2, frame, 1514, 1, true, false);
	struct vhk_pkt *p[2] = {NULL, NULL};
	CHECK_EQ(dp_dequeue_n(e.vid, 1, e.pool, p, 2, DP_TIMEOUT_MS), 2);
	CHECK(dp_pkt_equal(p[0], frame, sizeof(frame)));
	CHECK_EQ(p[0]->ol.flags, VHK_PKT_OL_NEEDS_CSUM);
	CHECK_EQ(p[0]->ol.gso_type, VHK_PKT_GSO_TCPV4);
	CHECK_EQ(p[0]->ol.hdr_len, 54);
	CHECK_EQ(p[0]->ol.gso_size, 1448);
	CHECK_EQ(p[0]->ol.csum_start, 34);
	CHECK_EQ(p[0]->ol.csum_offset, 16);
	CHECK(dp_pkt_equal(p[1], frame, 1514));
	CHECK_EQ(p[1]->ol.flags, VHK_PKT_OL_NEEDS_CSUM);
	CHECK_EQ(p[1]->ol.gso_type, VHK_PKT_GSO_NONE);
	CHECK_EQ(p[1]->ol.csum_start, 34);
	CHECK_EQ(p[1]->ol.csum_offset, 16);
	vhk_pkt_free_bulk(p, 2);
	CHECK_EQ(dp_reap(&e, 1, 2, DP_TIMEOUT_MS), 2);
	dp_teardown(&e);
}

/* Host RX packets with ol set appear in the guest's virtio-net header. */
static void t_rx_offload(void)
{
	struct dp_env e;
	struct dp_opts o = {.features = DP_BASE_FEATURES | DP_F(VHK_NET_F_GUEST_CSUM) |
					DP_F(VHK_NET_F_GUEST_TSO4)};
	dp_setup(&e, &o);
	uint8_t frame[4000], got[4000];
	uint32_t seed = 9;
	dp_make_tcp(frame, sizeof(frame), &seed);
	dp_post_rx(&e, 0, 3, e.hdr_len + 4000, false, false);

	struct vhk_pkt *p[3];
	p[0] = dp_pkt_make(e.pool, frame, sizeof(frame));
	p[0]->ol = (struct vhk_pkt_offload){.flags = VHK_PKT_OL_NEEDS_CSUM,
					    .gso_type = VHK_PKT_GSO_TCPV4,
					    .hdr_len = 54,
					    .gso_size = 1448,
					    .csum_start = 34,
					    .csum_offset = 16};
	p[1] = dp_pkt_make(e.pool, frame, 1514);
	p[1]->ol = (struct vhk_pkt_offload){.flags = VHK_PKT_OL_DATA_VALID};
	p[2] = dp_pkt_make(e.pool, frame, 1000);
	CHECK_EQ(dp_enqueue_all(e.vid, 0, p, 3, DP_TIMEOUT_MS), 3);
	vhk_pkt_free_bulk(p, 3);

	struct virtio_net_hdr_mrg_rxbuf h;
	CHECK_EQ(dp_recv(&e, 0, &h, got, sizeof(got), NULL, DP_TIMEOUT_MS), sizeof(frame));
	CHECK(memcmp(got, frame, sizeof(frame)) == 0);
	CHECK_EQ(h.hdr.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	CHECK_EQ(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	CHECK_EQ(h.hdr.hdr_len, 54);
	CHECK_EQ(h.hdr.gso_size, 1448);
	CHECK_EQ(h.hdr.csum_start, 34);
	CHECK_EQ(h.hdr.csum_offset, 16);
	CHECK_EQ(dp_recv(&e, 0, &h, got, sizeof(got), NULL, DP_TIMEOUT_MS), 1514);
	CHECK(memcmp(got, frame, 1514) == 0);
	CHECK_EQ(h.hdr.flags, VIRTIO_NET_HDR_F_DATA_VALID);
	CHECK_EQ(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	CHECK_EQ(dp_recv(&e, 0, &h, got, sizeof(got), NULL, DP_TIMEOUT_MS), 1000);
	CHECK(memcmp(got, frame, 1000) == 0);
	CHECK_EQ(h.hdr.flags, 0);
	CHECK_EQ(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	dp_teardown(&e);
}

/* A 9000-byte frame into too few small buffers (MRG): not enqueued, nothing used. */
static void t_mrg_not_enough_buffers(void)
{
	struct dp_env e;
	struct dp_opts o = {.features = DP_BASE_FEATURES | DP_F(VHK_NET_F_MRG_RXBUF)};
	dp_setup(&e, &o);
	uint8_t *frame = malloc(MAXPKT), *got = malloc(MAXPKT);
	uint32_t seed = 3;
	CHECK(frame && got);
	dp_random(frame, MAXPKT, &seed);
	dp_post_rx(&e, 0, 2, MRG_BUF, false, false);
	struct vhk_pkt *p = dp_pkt_make(e.pool, frame, MAXPKT);
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, &p, 1), 0);
	CHECK_EQ(gvq_used_pending(e.vq[0]), 0);
	/* More buffers arrive: the same packet now fits. */
	dp_post_rx(&e, 0, 6, MRG_BUF, false, false);
	CHECK_EQ(dp_enqueue_all(e.vid, 0, &p, 1, DP_TIMEOUT_MS), 1);
	vhk_pkt_free(p);
	struct virtio_net_hdr_mrg_rxbuf h;
	int nb = 0;
	CHECK_EQ(dp_recv(&e, 0, &h, got, MAXPKT, &nb, DP_TIMEOUT_MS), MAXPKT);
	CHECK(memcmp(got, frame, MAXPKT) == 0);
	CHECK_EQ(nb, (MAXPKT + 12 + MRG_BUF - 1) / MRG_BUF);
	free(frame);
	free(got);
	dp_teardown(&e);
}

GVQ_TEST_MAIN(TEST(t_sizes_plain), TEST(t_sizes_plain_split), TEST(t_sizes_mrg),
	      TEST(t_sizes_indirect), TEST(t_sizes_mrg_indirect_evidx), TEST(t_sizes_legacy_hdr),
	      TEST(t_tx_offload), TEST(t_rx_offload), TEST(t_mrg_not_enough_buffers))
