/* SPDX-License-Identifier: MIT */
/*
 * Notification integration: the call eventfd is written only when the guest
 * asked (VRING_AVAIL_F_NO_INTERRUPT, or used_event under EVENT_IDX), kicks
 * are suppressed when the device asks (NO_NOTIFY / avail_event), and the
 * interrupt-mode API (vhk_vq_set_notification + vhk_vq_wait_kick).
 * Runs on split or packed rings (--packed; meson registers both). On packed
 * the same rules are checked on the event suppression structures instead:
 * the driver event (ENABLE / DISABLE / DESC at off_wrap) decides calls, the
 * device event the library writes decides kicks, and DISABLE really means
 * "never", with or without EVENT_IDX.
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

#define PK_WRAP (1u << VRING_PACKED_EVENT_F_WRAP_CTR)

/*
 * Packed: the off_wrap word naming ring position @pos in lap @wrap, stepped
 * @ahead slots forward (positions repeat every two laps, so 2 * size - 1
 * ahead is one slot behind).
 */
static uint16_t pk_off_wrap(const struct gvq *r, uint16_t pos, bool wrap, uint32_t ahead)
{
	uint32_t p = pos + ahead;
	while (p >= r->size) {
		p -= r->size;
		wrap = !wrap;
	}
	return (uint16_t)(p | (wrap ? PK_WRAP : 0));
}

/*
 * Ask for a call once the device has used @ahead more buffers than the guest
 * read (each one slot): split used_event = last_used + ahead; packed driver
 * event DESC at that ring position and wrap counter.
 */
static void event_ahead(struct dp_env *e, uint32_t q, uint32_t ahead)
{
	if (!e->packed) {
		gvq_raw_used_event(e->vq[q], (uint16_t)(e->vq[q]->used_pos + ahead));
		return;
	}
	struct gvq *r = e->vq[q];
	gvq_raw_drv_event(r, VRING_PACKED_EVENT_FLAG_DESC,
			  pk_off_wrap(r, r->used_pos, r->used_wrap, ahead));
}

/*
 * What the device asks of the guest's kicks on vring @q: with @enabled,
 * kicks (split: no NO_NOTIFY; packed: ENABLE) or under EVENT_IDX a kick for
 * the very next descriptor (avail_event = avail idx; packed DESC at the next
 * avail position and wrap). Disabled: split NO_NOTIFY (no "never" value under
 * EVENT_IDX, nothing to check), packed DISABLE in both modes.
 */
static void check_dev_event(struct dp_env *e, uint32_t q, bool enabled, bool evidx)
{
	if (!e->packed) {
		struct gvq *r = e->vq[q];
		if (!evidx)
			CHECK_EQ(!(gvq_used_flags(r) & VRING_USED_F_NO_NOTIFY), enabled);
		else if (enabled)
			CHECK_EQ(gvq_avail_event(r), r->avail_pos);
		return;
	}
	struct gvq *r = e->vq[q];
	uint16_t fl = gvq_dev_flags(r);
	if (!enabled) {
		CHECK_EQ(fl, VRING_PACKED_EVENT_FLAG_DISABLE);
	} else if (!evidx) {
		CHECK_EQ(fl, VRING_PACKED_EVENT_FLAG_ENABLE);
	} else {
		CHECK_EQ(fl, VRING_PACKED_EVENT_FLAG_DESC);
		CHECK_EQ(gvq_dev_off_wrap(r), pk_off_wrap(r, r->avail_pos, r->avail_wrap, 0));
	}
}

/* Packed: the driver event structure holds @flags (and @off_wrap for DESC). */
static void check_drv_event(struct dp_env *e, uint32_t q, uint16_t flags)
{
	if (!e->packed)
		return;
	struct gvq *r = e->vq[q];
	CHECK_EQ(__atomic_load_n(&r->drv->flags, __ATOMIC_ACQUIRE), flags);
	if (flags == VRING_PACKED_EVENT_FLAG_DESC)
		CHECK_EQ(__atomic_load_n(&r->drv->off_wrap, __ATOMIC_ACQUIRE),
			 pk_off_wrap(r, r->used_pos, r->used_wrap, 0));
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
	gvq_read_calls(e.vq[0]);

	for (uint16_t q = 0; q < 2; q++) {
		gvq_set_interrupts(e.vq[q], false);
		check_drv_event(&e, q, VRING_PACKED_EVENT_FLAG_DISABLE);
		uint64_t before = lib_calls(&e, q);
		for (int i = 0; i < 3; i++)
			q == 0 ? rx_pkt(&e, 10u + (uint32_t)i) : tx_pkt(&e, 20u + (uint32_t)i);
		CHECK_EQ(gvq_read_calls(e.vq[q]), 0);
		CHECK_EQ(lib_calls(&e, q), before);

		gvq_set_interrupts(e.vq[q], true);
		check_drv_event(&e, q, VRING_PACKED_EVENT_FLAG_ENABLE);
		q == 0 ? rx_pkt(&e, 30) : tx_pkt(&e, 40);
		CHECK(gvq_wait_call(e.vq[q], DP_TIMEOUT_MS));
		CHECK(gvq_read_calls(e.vq[q]) >= 1);
		CHECK(lib_calls(&e, q) > before);
	}
	dp_teardown(&e);
}

/* Post one buffer, enqueue one packet as its own burst, say whether the guest got a call. */
static bool burst_called(struct dp_env *e, uint32_t seed)
{
	dp_post_rx(e, 0, 1, 2048, false, false);
	gvq_read_calls(e->vq[0]);
	rx_pkt(e, seed);
	return gvq_read_calls(e->vq[0]) != 0;
}

/*
 * With EVENT_IDX: used_event (split) / the driver event DESC offset and wrap
 * counter (packed) decide, exactly per the event index rule. A 16-entry ring
 * that is refilled per burst, so event positions cross many ring wraps.
 */
static void t_calls_event_idx(void)
{
	struct dp_env e;
	struct dp_opts o = {.features = DP_BASE_FEATURES | DP_F(VHK_F_EVENT_IDX), .ring_size = 16};
	dp_setup(&e, &o);
	CHECK(e.v->features & DP_F(VHK_F_EVENT_IDX));
	dp_post_rx(&e, 0, 8, 2048, false, false);

	/* Enabled: the event follows the guest's used position, every burst calls. */
	gvq_set_interrupts(e.vq[0], true);
	check_drv_event(&e, 0, VRING_PACKED_EVENT_FLAG_DESC);
	CHECK(burst_called(&e, 1));
	check_drv_event(&e, 0, VRING_PACKED_EVENT_FLAG_DESC); /* re-armed after the read */
	CHECK(burst_called(&e, 2));

	/* Disabled (split: used_event one behind; packed: DISABLE): no call for many bursts. */
	gvq_set_interrupts(e.vq[0], false);
	check_drv_event(&e, 0, VRING_PACKED_EVENT_FLAG_DISABLE);
	for (uint32_t i = 0; i < 5; i++)
		CHECK(!burst_called(&e, 10 + i));
	if (e.packed) { /* packed DESC one slot behind the guest: already passed, no call */
		struct gvq *r = e.vq[0];
		gvq_raw_drv_event(r, VRING_PACKED_EVENT_FLAG_DESC,
				  pk_off_wrap(r, r->used_pos, r->used_wrap, 2u * r->size - 1u));
		for (uint32_t i = 0; i < 3; i++)
			CHECK(!burst_called(&e, 15 + i));
	}

	/* Event two ahead: only the third burst from now calls. */
	CHECK_EQ(gvq_used_pending(e.vq[0]), 0);
	if (!e.packed)
		CHECK_EQ(gvq_used_idx(e.vq[0]), e.vq[0]->used_pos);
	event_ahead(&e, 0, 2);
	CHECK(!burst_called(&e, 20));
	CHECK(!burst_called(&e, 21));
	CHECK(burst_called(&e, 22));
	CHECK(!burst_called(&e, 23));

	/* Every distance 0..2 in turn, for five laps of the ring: exactly the
	 * burst that uses the event position calls. */
	for (uint32_t i = 0; i < 40; i++) {
		uint32_t ahead = i % 3;
		event_ahead(&e, 0, ahead);
		for (uint32_t k = 0; k < ahead; k++)
			CHECK(!burst_called(&e, 100 + 4 * i + k));
		CHECK(burst_called(&e, 100 + 4 * i + 3));
	}

	/* A burst of 4 that crosses the event position calls once. */
	dp_post_rx(&e, 0, 4, 2048, false, false);
	event_ahead(&e, 0, 1);
	uint8_t d[4][80], got[80];
	struct vhk_pkt *p[4];
	uint32_t seed = 99;
	for (int i = 0; i < 4; i++) {
		dp_random(d[i], sizeof(d[i]), &seed);
		p[i] = dp_pkt_make(e.pool, d[i], sizeof(d[i]));
	}
	gvq_read_calls(e.vq[0]);
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, p, 4), 4);
	vhk_pkt_free_bulk(p, 4);
	CHECK_EQ(gvq_read_calls(e.vq[0]), 1);
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
	uint8_t pkt[64] = {1, 2, 3};

	CHECK_EQ(vhk_vq_set_notification(e.vid, 1, false), 0);
	check_dev_event(&e, 1, false, evidx);
	uint64_t k0 = e.vq[1]->kicks_sent;
	for (int i = 0; i < 3; i++)
		dp_send(&e, 1, NULL, pkt, sizeof(pkt), 1, false, false);
	/* Flags (and packed DISABLE, with or without EVENT_IDX) stop every kick.
	 * Split EVENT_IDX has no "never" value: at most the one crossing of the
	 * stale avail_event may kick. */
	if (evidx && !e.packed)
		CHECK(e.vq[1]->kicks_sent - k0 <= 1);
	else
		CHECK_EQ(e.vq[1]->kicks_sent, k0);
	k0 = e.vq[1]->kicks_sent;
	struct vhk_pkt *p[4];
	CHECK_EQ(dp_dequeue_n(e.vid, 1, e.pool, p, 3, DP_TIMEOUT_MS), 3);
	vhk_pkt_free_bulk(p, 3);
	CHECK_EQ(dp_reap(&e, 1, 3, DP_TIMEOUT_MS), 3);

	CHECK_EQ(vhk_vq_set_notification(e.vid, 1, true), 0);
	check_dev_event(&e, 1, true, evidx);
	dp_send(&e, 1, NULL, pkt, sizeof(pkt), 1, false, false);
	CHECK_EQ(e.vq[1]->kicks_sent, k0 + 1);
	dp_send(&e, 1, NULL, pkt, sizeof(pkt), 1, false, false);
	/* EVENT_IDX: the device has not caught up, its event still asks for the
	 * first one only; flags / ENABLE: every publish kicks. */
	CHECK_EQ(e.vq[1]->kicks_sent, k0 + (evidx ? 1 : 2));
	CHECK_EQ(dp_dequeue_n(e.vid, 1, e.pool, p, 2, DP_TIMEOUT_MS), 2);
	vhk_pkt_free_bulk(p, 2);
	CHECK_EQ(dp_reap(&e, 1, 2, DP_TIMEOUT_MS), 2);
	/* Re-arm before sleeping, as an interrupt-mode app does after draining:
	 * the device must now ask for the very next buffer. */
	CHECK_EQ(vhk_vq_set_notification(e.vid, 1, true), 0);
	check_dev_event(&e, 1, true, evidx);
	dp_send(&e, 1, NULL, pkt, sizeof(pkt), 1, false, false);
	CHECK_EQ(e.vq[1]->kicks_sent, k0 + (evidx ? 2 : 3));
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

/* Thread: block in vhk_vq_wait_kick for up to DP_TIMEOUT_MS. */
static void *wait_kick_thread(void *arg)
{
	struct waiter *w = arg;
	atomic_store(&w->started, 1);
	w->rc = vhk_vq_wait_kick(w->vid, w->q, DP_TIMEOUT_MS);
	return NULL;
}

/* Interrupt mode on one ring: a blocked waiter wakes on the guest's kick. */
static void interrupt_ring(struct dp_env *e, uint16_t q, uint32_t seed, bool evidx)
{
	CHECK_EQ(vhk_vq_set_notification(e->vid, q, true), 0);
	check_dev_event(e, q, true, evidx);
	CHECK_EQ(vhk_vq_wait_kick(e->vid, q, 20), 0);
	struct waiter w = {.vid = e->vid, .q = q};
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, wait_kick_thread, &w), 0);
	int64_t end = dp_now_ms() + DP_TIMEOUT_MS;
	while (!atomic_load(&w.started) && dp_now_ms() < end)
		;
	uint64_t k0 = e->vq[q]->kicks_sent;
	uint8_t pkt[200];
	dp_random(pkt, sizeof(pkt), &seed);
	if (q & 1)
		dp_send(e, q, NULL, pkt, sizeof(pkt), 1, false, false);
	else
		dp_post_rx(e, q, 1, 2048, false, false);
	CHECK_EQ(e->vq[q]->kicks_sent, k0 + 1);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(w.rc, 1);
	/* The kick was consumed: a second wait times out. */
	CHECK_EQ(vhk_vq_wait_kick(e->vid, q, 20), 0);
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
	CHECK_EQ(vhk_vq_set_notification(e->vid, q, false), 0);
	check_dev_event(e, q, false, evidx);
	k0 = e->vq[q]->kicks_sent;
	if (q & 1)
		dp_send(e, q, NULL, pkt, sizeof(pkt), 1, false, false);
	else
		dp_post_rx(e, q, 1, 2048, false, false);
	if (evidx && !e->packed) {
		/* One kick may still cross the last avail_event; consume it. */
		CHECK(e->vq[q]->kicks_sent - k0 <= 1);
		if (e->vq[q]->kicks_sent != k0)
			CHECK_EQ(vhk_vq_wait_kick(e->vid, q, DP_TIMEOUT_MS), 1);
	} else {
		CHECK_EQ(e->vq[q]->kicks_sent, k0); /* NO_NOTIFY / packed DISABLE */
	}
	CHECK_EQ(vhk_vq_wait_kick(e->vid, q, 20), 0);
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

GVQ_TEST_MAIN(TEST(t_calls_flags), TEST(t_calls_event_idx), TEST(t_kick_suppression_flags),
	      TEST(t_kick_suppression_event_idx), TEST(t_interrupt_mode))
