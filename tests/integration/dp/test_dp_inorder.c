/* SPDX-License-Identifier: MIT */
/*
 * Datapath integration with VIRTIO_F_IN_ORDER on split or packed rings
 * (--packed; meson registers both): the guest driver expands batched used
 * entries (one entry naming the last buffer of an in-order batch completes
 * every earlier one). Guest TX bursts of 100 frames complete in full,
 * byte-exact both ways, with and without MRG_RXBUF / EVENT_IDX, and the
 * device really batches (some used entries / descriptors never written).
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

/*
 * After the first burst on TX vring 1 (all reaped): how many of its frames
 * the device completed without writing a used entry for them. Split: used
 * ring slots 1.. still zero (head 0 is slot 0's). Packed: head descriptors
 * (ring positions @head) never marked used in the first lap.
 */
static int skipped_first_lap(const struct dp_env *e, const uint16_t *head)
{
	int skipped = 0;
	for (int k = 1; k < NFRAMES; k++) {
		if (e->packed)
			skipped +=
			    !(e->vq[1]->pdesc[head[k]].flags & (1u << VRING_PACKED_DESC_F_USED));
		else
			skipped += e->vq[1]->used->ring[k].id == 0;
	}
	return skipped;
}

static void in_order_case(uint64_t features)
{
	struct dp_env *e = &g_env;
	struct dp_opts o = {.features = DP_BASE_FEATURES | F_IO | features, .ring_size = 256};
	struct vhk_pkt *p[NFRAMES];
	uint8_t *want[NFRAMES];
	uint16_t head[NFRAMES];
	uint32_t seed = 5;

	dp_setup(e, &o);
	CHECK(e->v->features & F_IO);
	for (int lap = 0; lap < 3; lap++) { /* several laps of the ring */
		for (int i = 0; i < NFRAMES; i++) {
			head[i] = e->packed ? e->vq[1]->avail_pos : 0;
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
		CHECK_EQ(gvq_used_pending(e->vq[1]), NFRAMES); /* every batch expanded */
		CHECK_EQ(dp_reap(e, 1, 1, DP_TIMEOUT_MS), 1);
		CHECK_EQ(gvq_used_pending(e->vq[1]), NFRAMES - 1); /* counted from inside a batch */
		CHECK_EQ(dp_reap(e, 1, NFRAMES - 1, DP_TIMEOUT_MS), NFRAMES - 1);
		CHECK_EQ(gvq_used_pending(e->vq[1]), 0);
		CHECK_EQ(e->vq[1]->num_free, 256);
		if (!e->packed)
			CHECK_EQ(gvq_used_idx(e->vq[1]), (uint16_t)(NFRAMES * (lap + 1)));
		if (lap == 0) /* batched: some frames never got a used entry of their own */
			CHECK(skipped_first_lap(e, head) > 0);
	}
	for (uint32_t i = 0; i < NSIZES; i++) {
		dp_roundtrip(e, 0, sizes[i], 200 + i);
		dp_roundtrip_ex(e, 0, sizes[i], 300 + i, i & 1, false);
	}
	struct vhk_vq_info info;
	for (uint16_t q = 0; q < 2; q++) {
		CHECK_EQ(vhk_vq_get_info(e->vid, q, &info), 0);
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

GVQ_TEST_MAIN(TEST(t_in_order_plain), TEST(t_in_order_mrg_evidx))
