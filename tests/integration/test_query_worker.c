/* SPDX-License-Identifier: MIT */
/*
 * A device's own thread may ask about its device and queues at any time,
 * even while the control thread waits for that thread inside a callback:
 * here queue_stop joins a worker that reads the queue and device state
 * once more on its way out (vhk-rng does this). The queries must not wait
 * for the control thread (they did, through the control lock, and the
 * stop never finished).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "common.h"

struct qw {
	pthread_t thread;
	atomic_bool stop, running;
	_Atomic int vid;
	_Atomic long rounds;   /* query rounds done */
	_Atomic int last_err;  /* first query error seen, 0 if none */
};

static struct qw g_qw;

/* Every public query the device's thread may use; errors recorded. */
static void query_all(int vid)
{
	struct vhk_vq_info info;
	uint64_t f = 0, pf = 0;
	char path[256];
	int rc;

	if ((rc = vhk_vq_get_info(vid, 0, &info)) != 0 ||
	    (rc = vhk_dev_get_features(vid, &f)) != 0 ||
	    (rc = vhk_dev_get_protocol_features(vid, &pf)) != 0 ||
	    (rc = vhk_dev_get_path(vid, path, sizeof(path))) != 0 ||
	    (rc = vhk_dev_get_vq_count(vid)) < 1) {
		int zero = 0;
		atomic_compare_exchange_strong(&g_qw.last_err, &zero, rc ? rc : -EINVAL);
	}
	atomic_fetch_add(&g_qw.rounds, 1);
}

static void *worker(void *arg)
{
	(void)arg;
	while (!atomic_load(&g_qw.stop))
		query_all(g_qw.vid);
	query_all(g_qw.vid); /* once more while queue_stop waits for us */
	return NULL;
}

static int qw_start(int vid, uint16_t qid)
{
	if (qid != 0 || atomic_load(&g_qw.running))
		return 0;
	g_qw.vid = vid;
	atomic_store(&g_qw.stop, false);
	CHECK_EQ(pthread_create(&g_qw.thread, NULL, worker, NULL), 0);
	atomic_store(&g_qw.running, true);
	return 0;
}

/* Joins the worker synchronously, inside the callback. */
static int qw_stop(int vid, uint16_t qid)
{
	(void)vid;
	if (qid != 0 || !atomic_load(&g_qw.running))
		return 0;
	atomic_store(&g_qw.stop, true);
	CHECK_EQ(pthread_join(g_qw.thread, NULL), 0);
	atomic_store(&g_qw.running, false);
	return 0;
}

static const struct vhk_device_ops qw_ops = {.name = "it-query-worker", .min_queues = 1,
					     .queue_start = qw_start, .queue_stop = qw_stop};

static void t_stop_joins_querying_worker(void)
{
	struct be_cfg cfg = {.ops = &qw_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT | BIT(VHK_PF_STATUS)};
	struct gmem *m;
	struct gvq *r;
	struct vuf *v = fe_open(be_start(&cfg), IT_F_CUSTOM, IT_PF_DEFAULT | BIT(VHK_PF_STATUS));
	int vid = ev_conn_vid();

	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_EVENT_IDX), &r), 0);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	CHECK_EQ(vuf_start_vring(v, 0, r), 0);
	CHECK_EQ(vuf_set_u64(v, VHOST_USER_SET_STATUS, 0xf), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	for (int i = 0; i < 300 && atomic_load(&g_qw.rounds) < 100; i++)
		msleep(10);
	CHECK(atomic_load(&g_qw.rounds) >= 100);
	/* The frontend goes: queue_stop joins the worker, which queries once more. */
	vuf_close(v);
	CHECK(ev_wait_match(EV_DESTROY_CONN, vid, -1, -1, 5000, NULL));
	CHECK(!atomic_load(&g_qw.running));
	CHECK_EQ(atomic_load(&g_qw.last_err), 0);
	gvq_free(r);
	gmem_free(m);
}

TEST_MAIN(TEST(t_stop_joins_querying_worker))
