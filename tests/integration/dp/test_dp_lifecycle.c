/* SPDX-License-Identifier: MIT */
/*
 * Lifecycle integration: client-mode reconnect, unregister while a datapath
 * thread runs traffic, and memory-table replacement (SET_MEM_TABLE with new
 * mappings of the same RAM, ADD/REM_MEM_REG) under traffic. Runs on split
 * or packed rings (--packed; meson registers both).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_common.h"
#include "test.h"

/* Client mode: the library reconnects by itself after the frontend goes away. */
static void t_client_reconnect(void)
{
	struct dp_env e;
	struct dp_opts o = {.reg_flags = VHK_CLIENT};
	dp_setup(&e, &o);
	int vid0 = e.vid;
	for (uint32_t k = 0; k < 4; k++)
		dp_roundtrip(&e, 0, 100 + 700 * k, k);

	for (int round = 0; round < 2; round++) {
		int d0 = atomic_load(&dp_destroy_count);
		dp_front_stop(&e);
		int64_t end = dp_now_ms() + DP_TIMEOUT_MS;
		while (atomic_load(&dp_destroy_count) == d0 && dp_now_ms() < end)
			usleep(1000);
		CHECK_EQ(atomic_load(&dp_destroy_count), d0 + 1);
		CHECK_EQ(atomic_load(&dp_vid), -1);
		/* The old handle is dead. */
		struct vhk_pkt *p = NULL;
		CHECK_EQ(vhk_net_dequeue_burst(vid0, 1, e.pool, &p, 1), 0);

		close(e.lfd);
		unlink(e.path);
		CHECK_EQ(vuf_listen(e.path, &e.lfd), 0);
		dp_front_start(&e); /* accepts the library's new connection */
		CHECK_EQ(atomic_load(&dp_new_count), round + 2);
		if (e.vid != vid0)
			CHECK(vhk_vq_avail_count(vid0, 0) < 0);
		for (uint32_t k = 0; k < 4; k++)
			dp_roundtrip(&e, 0, 60 + 2000 * k, 10 * (uint32_t)round + k);
		vid0 = e.vid;
	}
	dp_teardown(&e);
}

/* Loopback traffic run by a datapath thread (it is also the guest). */
struct traffic {
	struct dp_env *e;
	bool fixed_vid; /* keep using e->vid even after destroy_device */
	atomic_bool stop;
	atomic_bool gone;   /* set by main once the device must be gone */
	atomic_long moved;  /* packets verified */
	atomic_long late;   /* packets moved after `gone` */
	atomic_long errors; /* content / length mismatches */
	uint32_t seq;
	bool tx_out; /* a TX packet is outstanding */
	uint8_t tx_want[2048];
	uint32_t tx_len;
};

/* Packet length for sequence number @seq (60..1959). */
static uint32_t seq_len(uint32_t seq)
{
	return 60 + (seq * 37u) % 1900u;
}

/* One host->guest packet; returns true if it was moved (and checks it). */
static bool traffic_rx(struct traffic *t, int vid)
{
	struct dp_env *e = t->e;
	uint8_t want[2048], got[2048];
	uint32_t seed = ++t->seq, len = seq_len(seed);
	dp_random(want, len, &seed);
	struct vhk_pkt *p = dp_pkt_make(e->pool, want, len);
	uint16_t n = vhk_net_enqueue_burst(vid, 0, &p, 1);
	vhk_pkt_free(p);
	if (!n)
		return false;
	struct virtio_net_hdr_mrg_rxbuf h;
	int got_len = dp_recv(e, 0, &h, got, sizeof(got), NULL, DP_TIMEOUT_MS);
	if (got_len != (int)len || memcmp(want, got, len))
		atomic_fetch_add(&t->errors, 1);
	dp_post_rx(e, 0, 1, 2048 + e->hdr_len, false, false);
	return true;
}

/* One guest->host packet; returns true if it was moved (and checks it). */
static bool traffic_tx(struct traffic *t, int vid)
{
	struct dp_env *e = t->e;
	if (!t->tx_out) {
		uint32_t seed = ++t->seq;
		t->tx_len = seq_len(seed);
		dp_random(t->tx_want, t->tx_len, &seed);
		dp_send(e, 1, NULL, t->tx_want, t->tx_len, 2, false, false);
		t->tx_out = true;
	}
	struct vhk_pkt *p = NULL;
	if (!vhk_net_dequeue_burst(vid, 1, e->pool, &p, 1))
		return false;
	if (!dp_pkt_equal(p, t->tx_want, t->tx_len))
		atomic_fetch_add(&t->errors, 1);
	vhk_pkt_free(p);
	if (dp_reap(e, 1, 1, DP_TIMEOUT_MS) != 1)
		atomic_fetch_add(&t->errors, 1);
	t->tx_out = false;
	return true;
}

/* Thread body: move packets both ways until told to stop. */
static void *traffic_thread(void *arg)
{
	struct traffic *t = arg;
	dp_post_rx(t->e, 0, 64, 2048 + t->e->hdr_len, false, false);
	while (!atomic_load(&t->stop)) {
		bool gone = atomic_load(&t->gone);
		int vid = t->fixed_vid ? t->e->vid : atomic_load(&dp_vid);
		int moved = 0;
		if (vid >= 0 || t->fixed_vid) {
			moved += traffic_rx(t, vid);
			moved += traffic_tx(t, vid);
		}
		atomic_fetch_add(&t->moved, moved);
		if (gone)
			atomic_fetch_add(&t->late, moved);
	}
	return NULL;
}

/* Wait until the thread has moved @n more packets; false on timeout. */
static bool wait_moved(struct traffic *t, long n)
{
	long target = atomic_load(&t->moved) + n;
	int64_t end = dp_now_ms() + DP_TIMEOUT_MS;
	while (atomic_load(&t->moved) < target) {
		if (dp_now_ms() > end || atomic_load(&t->errors))
			return false;
		usleep(1000);
	}
	return true;
}

/* vhk_socket_unregister while a datapath thread hammers the device: no crash, 0 after. */
static void t_unregister_during_traffic(void)
{
	struct dp_env e;
	struct dp_opts o = {0};
	dp_setup(&e, &o);
	struct traffic t = {.e = &e, .fixed_vid = true};
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, traffic_thread, &t), 0);
	CHECK(wait_moved(&t, 500));
	int d0 = atomic_load(&dp_destroy_count);
	CHECK_EQ(vhk_socket_unregister(e.path), 0);
	int64_t end = dp_now_ms() + DP_TIMEOUT_MS;
	while (atomic_load(&dp_destroy_count) == d0 && dp_now_ms() < end)
		usleep(1000);
	CHECK_EQ(atomic_load(&dp_destroy_count), d0 + 1);
	atomic_store(&t.gone, true);
	/* Let the thread run many iterations against the dead handle; every
	 * iteration that starts now must move nothing. */
	end = dp_now_ms() + 300;
	while (dp_now_ms() < end)
		usleep(1000);
	atomic_store(&t.stop, true);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(atomic_load(&t.errors), 0);
	CHECK_EQ(atomic_load(&t.late), 0);
	struct vhk_net_stats st;
	CHECK(vhk_net_get_stats(e.vid, 0, &st) < 0);
	CHECK_EQ(vhk_socket_unregister(e.path), -ENOENT);
	/* The socket file is gone and nobody accepts any more. */
	CHECK(access(e.path, F_OK) != 0);
	vuf_close(e.v);
	e.v = NULL;
	dp_front_stop(&e);
	rmdir(e.dir);
	vhk_pool_free(e.pool);
}

/* A copy of @m whose regions are new fds (dups) of the same memfd files. */
static struct gmem *gmem_dup_fds(const struct gmem *m)
{
	struct gmem *c = malloc(sizeof(*c));
	CHECK(c != NULL);
	memcpy(c, m, sizeof(*c));
	for (uint32_t i = 0; i < c->nregions; i++) {
		c->r[i].fd = fcntl(m->r[i].fd, F_DUPFD_CLOEXEC, 0);
		CHECK(c->r[i].fd >= 0);
	}
	return c;
}

/* Close the dup'ed fds of a gmem_dup_fds copy (the mappings stay the original's). */
static void gmem_dup_free(struct gmem *c)
{
	for (uint32_t i = 0; i < c->nregions; i++)
		close(c->r[i].fd);
	free(c);
}

/* Memory table replaced and regions added/removed while traffic runs. */
static void t_mem_table_replace(void)
{
	struct dp_env e;
	struct dp_opts o = {.nregions = 4,
			    .region_size = 4u << 20,
			    .pf = DP_BASE_PF | DP_F(VHK_PF_CONFIGURE_MEM_SLOTS)};
	dp_setup(&e, &o);
	CHECK(e.v->protocol_features & DP_F(VHK_PF_CONFIGURE_MEM_SLOTS));
	struct traffic t = {.e = &e, .fixed_vid = false};
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, traffic_thread, &t), 0);
	CHECK(wait_moved(&t, 300));

	for (int i = 0; i < 3; i++) {
		struct gmem *c = gmem_dup_fds(e.m);
		CHECK_EQ(vuf_set_mem_table(e.v, c), 0);
		gmem_dup_free(c);
		CHECK(wait_moved(&t, 300));
	}

	struct gmem *extra = NULL;
	CHECK_EQ(gmem_new(1, 1u << 20, 0x40000000, 0, &extra), 0);
	CHECK_EQ(vuf_add_mem_reg(e.v, &extra->r[0]), 0);
	CHECK(wait_moved(&t, 300));
	CHECK_EQ(vhk_dev_get_mem_table(atomic_load(&dp_vid), NULL, 0), 5);
	CHECK_EQ(vuf_rem_mem_reg(e.v, &extra->r[0]), 0);
	CHECK(wait_moved(&t, 300));
	CHECK_EQ(vhk_dev_get_mem_table(atomic_load(&dp_vid), NULL, 0), 4);
	gmem_free(extra);

	atomic_store(&t.stop, true);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(atomic_load(&t.errors), 0);
	printf("# moved %ld packets; new_device ran %d times, destroy_device %d times\n",
	       atomic_load(&t.moved), atomic_load(&dp_new_count), atomic_load(&dp_destroy_count));
	e.vid = atomic_load(&dp_vid);
	CHECK(e.vid >= 0);
	struct vhk_mem_region reg[8];
	CHECK_EQ(vhk_dev_get_mem_table(e.vid, reg, 8), 4);
	for (uint32_t i = 0; i < 4; i++) {
		CHECK_EQ(reg[i].guest_phys_addr, e.m->r[i].gpa);
		CHECK_EQ(reg[i].size, e.m->r[i].size);
		CHECK_EQ(reg[i].frontend_addr, (uint64_t)(uintptr_t)e.m->r[i].hva);
	}
	dp_teardown(&e);
}

GVQ_TEST_MAIN(TEST(t_client_reconnect), TEST(t_unregister_during_traffic),
	      TEST(t_mem_table_replace))
