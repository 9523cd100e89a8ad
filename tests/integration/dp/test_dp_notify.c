/* SPDX-License-Identifier: MIT */
/*
 * Notification integration: the call eventfd is written only when the guest
 * asked (VRING_AVAIL_F_NO_INTERRUPT, or used_event under EVENT_IDX), kicks
 * are suppressed when the device asks (NO_NOTIFY / avail_event), and the
 * interrupt-mode API (vhk_dev_set_guest_notification + vhk_dev_wait_kick).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dp_common.h"
#include "test.h"

/* Enqueue one 100-byte packet on vring 0 and receive it in the guest. */
static void rx_pkt(struct dp_env *e, uint32_t seed)
{
	uint8_t want[100], got[100];
	struct virtio_net_hdr_mrg_rxbuf h;
	dp_random(want, sizeof(want), &seed);
	struct vhk_pkt *p = dp_pkt_make(e->pool, want, sizeof(want));
	CHECK_EQ(dp_enqueue_all(e->vid, 0, &p, 1, DP_TIMEOUT_MS), 1);
	vhk_pkt_free(p);
	CHECK_EQ(dp_recv(e, 0, &h, got, sizeof(got), NULL, DP_TIMEOUT_MS), sizeof(want));
	CHECK(memcmp(want, got, sizeof(want)) == 0);
}

/* Guest sends one 100-byte packet on vring 1, the host dequeues it, the guest reaps it. */
static void tx_pkt(struct dp_env *e, uint32_t seed)
{
	uint8_t want[100];
	struct vhk_pkt *p = NULL;
	dp_random(want, sizeof(want), &seed);
	dp_send(e, 1, NULL, want, sizeof(want), 1, false, false);
	CHECK_EQ(dp_dequeue_n(e->vid, 1, e->pool, &p, 1, DP_TIMEOUT_MS), 1);
	CHECK(dp_pkt_equal(p, want, sizeof(want)));
	vhk_pkt_free(p);
	CHECK_EQ(dp_reap(e, 1, 1, DP_TIMEOUT_MS), 1);
}

/* Calls counted by the library for vring @q. */
static uint64_t lib_calls(struct dp_env *e, uint16_t q)
{
	struct vhk_net_stats st;
	CHECK_EQ(vhk_net_get_stats(e->vid, q, &st), 0);
	return st.calls;
}

/* Without EVENT_IDX: VRING_AVAIL_F_NO_INTERRUPT suppresses calls on both rings. */
static void t_calls_flags(void)
{
	struct dp_env e;
	struct dp_opts o = {0};
	dp_setup(&e, &o);
	CHECK(!(e.v->features & DP_F(VHK_F_EVENT_IDX)));
	dp_post_rx(&e, 0, 16, 2048, false, false);
	gring_read_calls(e.r[0]);

	for (uint16_t q = 0; q < 2; q++) {
		gring_set_interrupts(e.r[q], false);
		uint64_t before = lib_calls(&e, q);
		for (int i = 0; i < 3; i++)
			q == 0 ? rx_pkt(&e, 10u + (uint32_t)i) : tx_pkt(&e, 20u + (uint32_t)i);
		CHECK_EQ(gring_read_calls(e.r[q]), 0);
		CHECK_EQ(lib_calls(&e, q), before);

		gring_set_interrupts(e.r[q], true);
		q == 0 ? rx_pkt(&e, 30) : tx_pkt(&e, 40);
		CHECK(gring_wait_call(e.r[q], DP_TIMEOUT_MS));
		CHECK(gring_read_calls(e.r[q]) >= 1);
		CHECK(lib_calls(&e, q) > before);
	}
	dp_teardown(&e);
}

/* Enqueue one packet as its own burst and say whether the guest got a call. */
static bool burst_called(struct dp_env *e, uint32_t seed)
{
	gring_read_calls(e->r[0]);
	rx_pkt(e, seed);
	return gring_read_calls(e->r[0]) != 0;
}

/* With EVENT_IDX: used_event decides, exactly per the vring_need_event rule. */
static void t_calls_event_idx(void)
{
	struct dp_env e;
	struct dp_opts o = {.features = DP_BASE_FEATURES | DP_F(VHK_F_EVENT_IDX)};
	dp_setup(&e, &o);
	CHECK(e.v->features & DP_F(VHK_F_EVENT_IDX));
	struct gring *r = e.r[0];
	dp_post_rx(&e, 0, 64, 2048, false, false);

	/* Enabled: used_event follows last_used, every burst calls. */
	gring_set_interrupts(r, true);
	CHECK(burst_called(&e, 1));
	CHECK(burst_called(&e, 2));

	/* Disabled: used_event one behind, no call for many bursts. */
	gring_set_interrupts(r, false);
	for (uint32_t i = 0; i < 5; i++)
		CHECK(!burst_called(&e, 10 + i));

	/* used_event = used + 2: only the third burst from now calls. */
	uint16_t u = gring_used_idx(r);
	CHECK_EQ(u, r->last_used);
	gring_raw_used_event(r, (uint16_t)(u + 2));
	CHECK(!burst_called(&e, 20));
	CHECK(!burst_called(&e, 21));
	CHECK(burst_called(&e, 22));
	CHECK(!burst_called(&e, 23));

	/* A burst of 4 that crosses used_event calls once. */
	u = gring_used_idx(r);
	gring_raw_used_event(r, (uint16_t)(u + 1));
	uint8_t d[4][80], got[80];
	struct vhk_pkt *p[4];
	uint32_t seed = 99;
	for (int i = 0; i < 4; i++) {
		dp_random(d[i], sizeof(d[i]), &seed);
		p[i] = dp_pkt_make(e.pool, d[i], sizeof(d[i]));
	}
	gring_read_calls(r);
	CHECK_EQ(dp_enqueue_all(e.vid, 0, p, 4, DP_TIMEOUT_MS), 4);
	vhk_pkt_free_bulk(p, 4);
	CHECK_EQ(gring_read_calls(r), 1);
	for (int i = 0; i < 4; i++) {
		struct virtio_net_hdr_mrg_rxbuf h;
		CHECK_EQ(dp_recv(&e, 0, &h, got, sizeof(got), NULL, DP_TIMEOUT_MS), 80);
		CHECK(memcmp(got, d[i], 80) == 0);
	}
	dp_teardown(&e);
}

/* Kick suppression driven by the device, with and without EVENT_IDX. */
static void kick_case(bool evidx)
{
	struct dp_env e;
	struct dp_opts o = {.features = DP_BASE_FEATURES | (evidx ? DP_F(VHK_F_EVENT_IDX) : 0)};
	dp_setup(&e, &o);
	struct gring *r = e.r[1];
	uint8_t pkt[64] = {1, 2, 3};

	CHECK_EQ(vhk_dev_set_guest_notification(e.vid, 1, false), 0);
	uint64_t k0 = r->kicks_sent;
	for (int i = 0; i < 3; i++)
		dp_send(&e, 1, NULL, pkt, sizeof(pkt), 1, false, false);
	/* Flags: NO_NOTIFY stops every kick. EVENT_IDX has no "never" value:
	 * at most the one crossing of the stale avail_event may kick. */
	if (evidx)
		CHECK(r->kicks_sent - k0 <= 1);
	else
		CHECK_EQ(r->kicks_sent, k0);
	k0 = r->kicks_sent;
	struct vhk_pkt *p[4];
	CHECK_EQ(dp_dequeue_n(e.vid, 1, e.pool, p, 3, DP_TIMEOUT_MS), 3);
	vhk_pkt_free_bulk(p, 3);
	CHECK_EQ(dp_reap(&e, 1, 3, DP_TIMEOUT_MS), 3);

	CHECK_EQ(vhk_dev_set_guest_notification(e.vid, 1, true), 0);
	dp_send(&e, 1, NULL, pkt, sizeof(pkt), 1, false, false);
	CHECK_EQ(r->kicks_sent, k0 + 1);
	dp_send(&e, 1, NULL, pkt, sizeof(pkt), 1, false, false);
	/* EVENT_IDX: the device has not caught up, avail_event still asks for the
	 * first one only; flags: every publish kicks. */
	CHECK_EQ(r->kicks_sent, k0 + (evidx ? 1 : 2));
	CHECK_EQ(dp_dequeue_n(e.vid, 1, e.pool, p, 2, DP_TIMEOUT_MS), 2);
	vhk_pkt_free_bulk(p, 2);
	CHECK_EQ(dp_reap(&e, 1, 2, DP_TIMEOUT_MS), 2);
	/* Re-arm before sleeping, as an interrupt-mode app does after draining:
	 * the device must now ask for the very next buffer. */
	CHECK_EQ(vhk_dev_set_guest_notification(e.vid, 1, true), 0);
	if (evidx)
		CHECK_EQ(gring_avail_event(r), r->avail_idx);
	else
		CHECK(!(gring_used_flags(r) & VRING_USED_F_NO_NOTIFY));
	dp_send(&e, 1, NULL, pkt, sizeof(pkt), 1, false, false);
	CHECK_EQ(r->kicks_sent, k0 + (evidx ? 2 : 3));
	CHECK_EQ(dp_dequeue_n(e.vid, 1, e.pool, p, 1, DP_TIMEOUT_MS), 1);
	vhk_pkt_free_bulk(p, 1);
	dp_teardown(&e);
}

static void t_kick_suppression_flags(void)
{
	kick_case(false);
}

static void t_kick_suppression_event_idx(void)
{
	kick_case(true);
}

struct waiter {
	int vid;
	uint16_t q;
	atomic_int started;
	int rc;
};

/* Thread: block in vhk_dev_wait_kick for up to DP_TIMEOUT_MS. */
static void *wait_kick_thread(void *arg)
{
	struct waiter *w = arg;
	atomic_store(&w->started, 1);
	w->rc = vhk_dev_wait_kick(w->vid, w->q, DP_TIMEOUT_MS);
	return NULL;
}

/* Interrupt mode on one ring: a blocked waiter wakes on the guest's kick. */
static void interrupt_ring(struct dp_env *e, uint16_t q, uint32_t seed, bool evidx)
{
	CHECK_EQ(vhk_dev_set_guest_notification(e->vid, q, true), 0);
	CHECK_EQ(vhk_dev_wait_kick(e->vid, q, 20), 0);
	struct waiter w = {.vid = e->vid, .q = q};
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, wait_kick_thread, &w), 0);
	int64_t end = dp_now_ms() + DP_TIMEOUT_MS;
	while (!atomic_load(&w.started) && dp_now_ms() < end)
		;
	uint64_t k0 = e->r[q]->kicks_sent;
	uint8_t pkt[200];
	dp_random(pkt, sizeof(pkt), &seed);
	if (q & 1)
		dp_send(e, q, NULL, pkt, sizeof(pkt), 1, false, false);
	else
		dp_post_rx(e, q, 1, 2048, false, false);
	CHECK_EQ(e->r[q]->kicks_sent, k0 + 1);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(w.rc, 1);
	/* The kick was consumed: a second wait times out. */
	CHECK_EQ(vhk_dev_wait_kick(e->vid, q, 20), 0);
	struct vhk_net_stats st;
	CHECK_EQ(vhk_net_get_stats(e->vid, q, &st), 0);
	CHECK(st.kicks >= 1);
	if (q & 1) {
		struct vhk_pkt *p = NULL;
		CHECK_EQ(dp_dequeue_n(e->vid, q, e->pool, &p, 1, DP_TIMEOUT_MS), 1);
		CHECK(dp_pkt_equal(p, pkt, sizeof(pkt)));
		vhk_pkt_free(p);
		CHECK_EQ(dp_reap(e, q, 1, DP_TIMEOUT_MS), 1);
	}
	/* Back to polling: the guest stops kicking, waits time out. */
	CHECK_EQ(vhk_dev_set_guest_notification(e->vid, q, false), 0);
	k0 = e->r[q]->kicks_sent;
	if (q & 1)
		dp_send(e, q, NULL, pkt, sizeof(pkt), 1, false, false);
	else
		dp_post_rx(e, q, 1, 2048, false, false);
	if (evidx) {
		/* One kick may still cross the last avail_event; consume it. */
		CHECK(e->r[q]->kicks_sent - k0 <= 1);
		if (e->r[q]->kicks_sent != k0)
			CHECK_EQ(vhk_dev_wait_kick(e->vid, q, DP_TIMEOUT_MS), 1);
	} else {
		CHECK_EQ(e->r[q]->kicks_sent, k0);
	}
	CHECK_EQ(vhk_dev_wait_kick(e->vid, q, 20), 0);
	if (q & 1) {
		struct vhk_pkt *p = NULL;
		CHECK_EQ(dp_dequeue_n(e->vid, q, e->pool, &p, 1, DP_TIMEOUT_MS), 1);
		CHECK(dp_pkt_equal(p, pkt, sizeof(pkt)));
		vhk_pkt_free(p);
	}
}

static void t_interrupt_mode(void)
{
	for (int evidx = 0; evidx < 2; evidx++) {
		struct dp_env e;
		struct dp_opts o = {.features =
					DP_BASE_FEATURES | (evidx ? DP_F(VHK_F_EVENT_IDX) : 0)};
		dp_setup(&e, &o);
		interrupt_ring(&e, 1, 5, evidx);
		interrupt_ring(&e, 0, 6, evidx);
		/* The posted RX buffers still work after the mode switches. */
		rx_pkt(&e, 7);
		dp_teardown(&e);
	}
}

TEST_MAIN(TEST(t_calls_flags), TEST(t_calls_event_idx), TEST(t_kick_suppression_flags),
	  TEST(t_kick_suppression_event_idx), TEST(t_interrupt_mode))
