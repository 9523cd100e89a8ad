/* SPDX-License-Identifier: MIT */
/*
 * Datapath integration with VIRTIO_F_IN_ORDER on split rings: the guest
 * driver expands batched used entries (one entry naming the last buffer of
 * an in-order batch completes every earlier one). Guest TX bursts of 100
 * frames complete in full, byte-exact both ways, with and without
 * MRG_RXBUF / EVENT_IDX. (Packed in-order: test_dp_packed.c t_in_order.)
 */
#include <stdlib.h>
#include <string.h>

#include "dp_common.h"
#include "test.h"

#define NFRAMES 100
#define F_IO	DP_F(VHK_F_IN_ORDER)

static const uint32_t sizes[] = {60, 61, 64, 128, 1514, 1518, 4000, 9000};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static struct dp_env g_env; /* static: each case runs in its own child */

static uint32_t frame_len(int i)
{
	return 60 + (uint32_t)i * 14;
}

static void in_order_case(uint64_t features)
{
	struct dp_env *e = &g_env;
	struct dp_opts o = {.features = DP_BASE_FEATURES | F_IO | features, .ring_size = 256};
	struct vhk_pkt *p[NFRAMES];
	uint8_t *want[NFRAMES];
	uint32_t seed = 5;

	dp_setup(e, &o);
	CHECK(e->v->features & F_IO);
	for (int lap = 0; lap < 3; lap++) { /* several laps of the used ring */
		for (int i = 0; i < NFRAMES; i++) {
			want[i] = malloc(frame_len(i));
			CHECK(want[i] != NULL);
			dp_random(want[i], frame_len(i), &seed);
			dp_send(e, 1, NULL, want[i], frame_len(i), 1 + i % 3, i & 1, false);
		}
		CHECK_EQ(dp_dequeue_n(e->vid, 1, e->pool, p, NFRAMES, DP_TIMEOUT_MS), NFRAMES);
		for (int i = 0; i < NFRAMES; i++) {
			CHECK(dp_pkt_equal(p[i], want[i], frame_len(i)));
			vhk_pkt_free(p[i]);
			free(want[i]);
		}
		CHECK_EQ(dp_reap(e, 1, NFRAMES, DP_TIMEOUT_MS), NFRAMES);
		CHECK_EQ(e->r[1]->num_free, 256);
		CHECK_EQ(gring_used_idx(e->r[1]), (uint16_t)(NFRAMES * (lap + 1)));
		if (lap == 0) { /* batched: some used slots never written (head 0 is slot 0's) */
			int skipped = 0;
			for (int k = 1; k < NFRAMES; k++)
				skipped += e->r[1]->used->ring[k].id == 0;
			CHECK(skipped > 0);
		}
	}
	for (uint32_t i = 0; i < NSIZES; i++)
		dp_roundtrip(e, 0, sizes[i], 200 + i);
	struct vhk_vring_info info;
	for (uint16_t q = 0; q < 2; q++) {
		CHECK_EQ(vhk_dev_get_vring(e->vid, q, &info), 0);
		CHECK(!info.broken);
	}
	dp_teardown(e);
}

static void t_in_order_plain(void)
{
	in_order_case(0);
}

static void t_in_order_mrg_evidx(void)
{
	in_order_case(DP_F(VHK_NET_F_MRG_RXBUF) | DP_F(VHK_F_EVENT_IDX));
}

TEST_MAIN(TEST(t_in_order_plain), TEST(t_in_order_mrg_evidx))
