/* SPDX-License-Identifier: MIT */
/*
 * Packed-only datapath integration (VIRTIO_F_RING_PACKED) on the dp fixture
 * (dp_opts.packed): what the format-agnostic tests, run with --packed, do not
 * reach. Byte-exact traffic over several laps of small and odd-sized rings
 * (wrap counters; mergeable, indirect, EVENT_IDX on and off; two queue
 * pairs), calls per burst across wraps, hostile ids and bases, and
 * GET/SET_VRING_BASE resuming exactly. (IN_ORDER on packed: test_dp_inorder.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dp_common.h"
#include "test.h"

static const uint32_t sizes[] = {60, 61, 64, 128, 1514, 1518, 4000, 9000};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static struct dp_env g_env; /* static: every case runs in its own child */

/* A packed device with @features on top of the base set. */
static struct dp_env *pk_setup(uint64_t features, uint32_t pairs, uint16_t ring_size)
{
	struct dp_opts o = {.features = DP_BASE_FEATURES | features,
			    .pairs = pairs,
			    .ring_size = ring_size,
			    .packed = true};
	dp_setup(&g_env, &o);
	CHECK(g_env.packed && (g_env.v->features & DP_PACKED_F));
	return &g_env;
}

/* Every size both ways, then a TX burst of all sizes in order. */
static void sizes_case(uint64_t features, uint16_t ring_size, bool split, bool ind)
{
	struct dp_env *e = pk_setup(features, 1, ring_size);
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(e->vid, 0, &info), 0);
	CHECK(info.packed);
	for (uint32_t lap = 0; lap < 3; lap++) /* several laps of the ring: wrap counters */
		for (uint32_t i = 0; i < NSIZES; i++)
			dp_roundtrip_ex(e, 0, sizes[i], 100 * lap + i, split, ind);
	uint8_t *want[NSIZES];
	struct vhk_pkt *pk[NSIZES];
	uint32_t seed = 7;
	for (uint32_t i = 0; i < NSIZES; i++) {
		want[i] = malloc(sizes[i]);
		CHECK(want[i] != NULL);
		dp_random(want[i], sizes[i], &seed);
		dp_send(e, 1, NULL, want[i], sizes[i], 2, split, ind);
	}
	CHECK_EQ(dp_dequeue_n(e->vid, 1, e->pool, pk, NSIZES, DP_TIMEOUT_MS), NSIZES);
	for (uint32_t i = 0; i < NSIZES; i++) {
		CHECK(dp_pkt_equal(pk[i], want[i], sizes[i]));
		vhk_pkt_free(pk[i]);
		free(want[i]);
	}
	CHECK_EQ(dp_reap(e, 1, NSIZES, DP_TIMEOUT_MS), NSIZES);
	CHECK_EQ(vhk_vq_get_info(e->vid, 1, &info), 0);
	CHECK(!info.broken);
	dp_teardown(e);
}

static void t_plain(void)
{
	sizes_case(0, 64, false, false);
}

static void t_plain_split_odd_ring(void)
{
	sizes_case(0, 37, true, false); /* any size is fine for packed */
}

static void t_mrg(void)
{
	sizes_case(DP_F(VHK_NET_F_MRG_RXBUF), 64, false, false);
}

static void t_indirect(void)
{
	sizes_case(DP_F(VHK_F_INDIRECT_DESC), 64, true, true);
}

static void t_mrg_indirect_evidx(void)
{
	sizes_case(DP_F(VHK_NET_F_MRG_RXBUF) | DP_F(VHK_F_INDIRECT_DESC) | DP_F(VHK_F_EVENT_IDX),
		   64, true, true);
}

static void t_evidx_plain(void)
{
	sizes_case(DP_F(VHK_F_EVENT_IDX), 50, false, false);
}

/* Two queue pairs, traffic on both, interleaved. */
static void t_multiqueue(void)
{
	struct dp_env *e = pk_setup(DP_F(VHK_NET_F_MQ) | DP_F(VHK_NET_F_MRG_RXBUF), 2, 64);
	for (uint32_t i = 0; i < 40; i++)
		dp_roundtrip_ex(e, i & 1, sizes[i % NSIZES], i, (i & 2) != 0, false);
	dp_teardown(e);
}

/* The guest gets a call per burst when it asks for it, none when it disabled them. */
static void notify_case(uint64_t features)
{
	struct dp_env *e = pk_setup(features, 1, 64);
	uint8_t data[200], got[DP_MAX_PKT];
	uint32_t seed = 1;
	dp_random(data, sizeof(data), &seed);
	for (int round = 0; round < 70; round++) { /* a 64-entry ring: across a wrap */
		bool on = round % 2 == 0;
		struct virtio_net_hdr_mrg_rxbuf h;
		gvq_set_interrupts(e->vq[0], on);
		(void)gvq_read_calls(e->vq[0]);
		dp_post_rx(e, 0, 1, e->hdr_len + DP_MAX_PKT, false, false);
		struct vhk_pkt *pk = dp_pkt_make(e->pool, data, sizeof(data));
		CHECK_EQ(dp_enqueue_all(e->vid, 0, &pk, 1, DP_TIMEOUT_MS), 1);
		vhk_pkt_free(pk);
		CHECK_EQ(gvq_read_calls(e->vq[0]) ? 1 : 0, on ? 1 : 0);
		CHECK_EQ(dp_recv(e, 0, &h, got, DP_MAX_PKT, NULL, DP_TIMEOUT_MS), sizeof(data));
		CHECK(memcmp(got, data, sizeof(data)) == 0);
	}
	dp_teardown(e);
}

static void t_notify_flags(void)
{
	notify_case(0);
}

static void t_notify_evidx(void)
{
	notify_case(DP_F(VHK_F_EVENT_IDX));
}

/* GET_VRING_BASE / SET_VRING_BASE mid-ring: the rings resume exactly. */
static void t_stop_restart(void)
{
	struct dp_env *e = pk_setup(DP_F(VHK_NET_F_MRG_RXBUF), 1, 24);
	for (uint32_t i = 0; i < 11; i++) /* mid-ring, second lap */
		dp_roundtrip_ex(e, 0, sizes[i % NSIZES], i, i & 1, false);
	for (uint32_t q = 0; q < 2; q++) {
		uint32_t base = 0;
		CHECK_EQ(vuf_get_vring_base(e->v, q, &base), 0);
		CHECK_EQ(base, gvq_base(e->vq[q]));
		CHECK(base != DP_PACKED_FRESH);
		CHECK_EQ(vuf_start_vring_base(e->v, q, e->vq[q], base), 0);
	}
	for (uint32_t i = 0; i < 30; i++)
		dp_roundtrip_ex(e, 0, sizes[i % NSIZES], 50 + i, i & 1, false);
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(e->vid, 0, &info), 0);
	CHECK(info.started && !info.broken);
	dp_teardown(e);
}

/* A base index past the ring size: the ring does not start; a good base recovers. */
static void t_base_past_size(void)
{
	struct dp_env *e = pk_setup(0, 1, 32);
	struct vhk_vq_info info;
	uint32_t base = 0;
	dp_roundtrip_ex(e, 0, 100, 1, false, false);
	CHECK_EQ(vuf_get_vring_base(e->v, 1, &base), 0);
	CHECK_EQ(vuf_start_vring_base(e->v, 1, e->vq[1], 0x8000u | 32u), 0);
	CHECK_EQ(vhk_vq_get_info(e->vid, 1, &info), 0);
	CHECK(!info.started);
	CHECK_EQ(vuf_start_vring_base(e->v, 1, e->vq[1], 40u << 16 | 0x8001u), 0);
	CHECK_EQ(vhk_vq_get_info(e->vid, 1, &info), 0);
	CHECK(!info.started);
	CHECK_EQ(vuf_start_vring_base(e->v, 1, e->vq[1], base), 0);
	CHECK_EQ(vhk_vq_get_info(e->vid, 1, &info), 0);
	CHECK(info.started);
	dp_roundtrip_ex(e, 0, 1514, 2, true, false);
	dp_teardown(e);
}

/* A guest TX descriptor with id >= N breaks that ring only (small ring: id == N == 16). */
static void t_hostile_id(void)
{
	struct dp_env *e = pk_setup(0, 1, 16);
	struct gvq *r = e->vq[1];
	struct vhk_pkt *pk = NULL;
	struct vhk_vq_info info;
	uint64_t s = dp_next_slot(e, 1);
	CHECK(s != 0);
	gvq_raw_slot(r, r->avail_pos, s, 100, 16, gvq_avail_bits(r->avail_wrap));
	gvq_kick_force(r);
	CHECK_EQ(dp_dequeue_n(e->vid, 1, e->pool, &pk, 1, 200), 0);
	CHECK_EQ(vhk_vq_get_info(e->vid, 1, &info), 0);
	CHECK(info.broken);
	CHECK_EQ(vhk_vq_get_info(e->vid, 0, &info), 0);
	CHECK(!info.broken);
	dp_teardown(e);
}

TEST_MAIN(TEST(t_plain), TEST(t_plain_split_odd_ring), TEST(t_mrg), TEST(t_indirect),
	  TEST(t_mrg_indirect_evidx), TEST(t_evidx_plain), TEST(t_multiqueue),
	  TEST(t_notify_flags), TEST(t_notify_evidx), TEST(t_stop_restart),
	  TEST(t_base_past_size), TEST(t_hostile_id))
