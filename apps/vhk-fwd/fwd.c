/* SPDX-License-Identifier: MIT */
/*
 * The forwarding thread of vhk-fwd: one thread polls every queue pair of
 * every device in the device list, in the mode chosen on the command line.
 *
 * Queue pair q of a device is vring 2q (the guest's receive queue, where we
 * enqueue: "tx") and vring 2q+1 (the guest's transmit queue, where we
 * dequeue: "rx"). Enqueue copies into guest memory, so every packet is freed
 * by us afterwards, sent or not.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fwd.h"

#define POOL_COUNT 8192
#define POOL_ROOM 2048
#define POOL_HEADROOM 128
#define QUIET_RETRY 1024   /* iterations between tries to silence a pair's kicks */
#define IDLE_CHECK 256     /* empty iterations between clock reads */
#define IDLE_NAP_AFTER 1e-3 /* seconds without packets before napping */
#define IDLE_NAP_NS 50000

/* What the forwarding thread remembers about one device slot. */
struct fwd_slot {
	int seen;                                /* vid + 1 last seen, 0 = empty */
	uint32_t tx_first_sent[VHK_NET_MAX_QUEUE_PAIRS]; /* --tx-first bursts sent */
	bool quiet[VHK_NET_MAX_QUEUE_PAIRS];         /* guest kicks disabled (we poll) */
	bool may_send;                           /* --start-delay has passed */
	double arrived;                          /* when the device appeared */
};

struct fwd_ctx {
	struct fwd_opts o;
	struct fwd_stats *st;
	struct vhk_pool *pool;
	uint8_t tmpl[FWD_MAX_PKT_LEN]; /* txonly / --tx-first frame */
	uint32_t tmpl_copy;             /* bytes of it copied per packet (see prefill_pool) */
	pthread_t thread;
	atomic_bool stop;
	/* forwarding thread only */
	uint64_t iter;
	bool unexpected_shown;          /* the first frame not as --expect-frame was printed */
	struct fwd_slot slot[FWD_MAX_DEVS];
};

/*
 * Add @n to a counter. Only the forwarding thread writes these counters, so a
 * relaxed load and store is enough (no locked read-modify-write inside the
 * measured busy cycles, as testpmd's per-stream counters); other threads read
 * a recent value.
 */
static void count(_Atomic uint64_t *c, uint64_t n)
{
	if (n)
		atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
				      memory_order_relaxed);
}

/* Sum of pkt_len of @n packets. */
static uint64_t bytes_of(struct vhk_pkt **pkts, uint16_t n)
{
	uint64_t b = 0;

	for (uint16_t i = 0; i < n; i++)
		b += pkts[i]->pkt_len;
	return b;
}

/*
 * Enqueue @n packets to vring @qid, free them all, count sent, dropped and
 * the cycles of both (enqueue_cycles).
 */
static uint16_t send_and_free(struct fwd_ctx *c, int vid, uint16_t qid, struct vhk_pkt **pkts,
			      uint16_t n)
{
	uint64_t t0 = stats_cycles();
	uint16_t sent = n ? vhk_net_enqueue_burst(vid, qid, pkts, n) : 0;
	uint64_t b = bytes_of(pkts, sent);

	vhk_pkt_free_bulk(pkts, n);
	if (n)
		count(&c->st->eq_cycles, stats_cycles() - t0);
	count(&c->st->tx_packets, sent);
	count(&c->st->tx_bursts, sent != 0);
	count(&c->st->tx_bytes, b);
	count(&c->st->dropped, (uint64_t)(n - sent));
	return sent;
}

/* Does @p hold exactly the @len bytes @want (over all its segments)? */
static bool frame_equals(const struct vhk_pkt *p, const uint8_t *want, uint32_t len)
{
	uint32_t off = 0;

	if (p->pkt_len != len)
		return false;
	for (const struct vhk_pkt *s = p; s; s = s->next) {
		if (s->data_len > len - off || memcmp(vhk_pkt_data(s), want + off, s->data_len))
			return false;
		off += s->data_len;
	}
	return off == len;
}

/* --expect-frame: is @p one of the frames given? */
static bool frame_as_expected(const struct fwd_ctx *c, const struct vhk_pkt *p)
{
	for (uint32_t i = 0; i < c->o.nexpect; i++)
		if (frame_equals(p, c->o.expect[i], c->o.expect_len[i]))
			return true;
	return false;
}

/* Print the first frame that is not as expected to stderr, in hex, once. */
static void show_unexpected(struct fwd_ctx *c, const struct vhk_pkt *p)
{
	if (c->unexpected_shown)
		return;
	c->unexpected_shown = true;
	fprintf(stderr, "vhk-fwd: frame of %u bytes is none of the --expect-frame frames:\n",
		p->pkt_len);
	for (const struct vhk_pkt *s = p; s; s = s->next)
		for (uint32_t i = 0; i < s->data_len; i++)
			fprintf(stderr, "%02x", vhk_pkt_data(s)[i]);
	fprintf(stderr, "\n");
}

/* Receive a burst from vring @qid and count it (dequeue_cycles when non-empty). */
static uint16_t receive(struct fwd_ctx *c, int vid, uint16_t qid, struct vhk_pkt **pkts)
{
	uint64_t t0 = stats_cycles();
	uint16_t n = vhk_net_dequeue_burst(vid, qid, c->pool, pkts, (uint16_t)c->o.burst);

	if (n)
		count(&c->st->dq_cycles, stats_cycles() - t0);
	count(&c->st->rx_packets, n);
	count(&c->st->rx_bursts, n != 0);
	count(&c->st->rx_bytes, bytes_of(pkts, n));
	if (c->o.nexpect) {
		uint64_t bad = 0;
		for (uint16_t i = 0; i < n; i++) {
			if (!frame_as_expected(c, pkts[i])) {
				show_unexpected(c, pkts[i]);
				bad++;
			}
		}
		count(&c->st->rx_unexpected, bad);
	}
	return n;
}

/*
 * txonly: copy the template (its headers only when the pool was prefilled,
 * see prefill_pool) into a fresh burst and enqueue it on pair @q.
 * Returns the packets sent; *built is set when a burst was built, sent or not
 * (testpmd's txonly counts such a poll as busy even when the ring was full).
 */
static uint16_t tx_burst(struct fwd_ctx *c, int vid, uint16_t q, bool *built)
{
	struct vhk_pkt *pkts[FWD_MAX_BURST];
	uint32_t len = c->o.pkt_len;

	/* A queue the guest has not set up (yet) is skipped, not "dropped". */
	if (vhk_vq_avail_count(vid, (uint16_t)(2 * q)) < 0)
		return 0;
	if (vhk_pkt_alloc_bulk(c->pool, pkts, c->o.burst) < 0)
		return 0;
	for (uint32_t i = 0; i < c->o.burst; i++) {
		uint8_t *d = vhk_pkt_append(pkts[i], len);
		if (!d) { /* cannot happen: the pool's data room holds pkt_len */
			vhk_pkt_free_bulk(pkts, c->o.burst);
			return 0;
		}
		memcpy(d, c->tmpl, c->tmpl_copy);
	}
	*built = true;
	return send_and_free(c, vid, (uint16_t)(2 * q), pkts, (uint16_t)c->o.burst);
}

/*
 * --tx-first[=N]: N txonly bursts per queue pair (one per poll) once the
 * guest has receive buffers, to start a loopback; what the ring cannot take
 * is dropped and counted, as testpmd's "start tx_first N" does.
 */
static void tx_first(struct fwd_ctx *c, struct fwd_slot *s, int vid, uint16_t q)
{
	bool built = false;

	if (s->tx_first_sent[q] >= c->o.tx_first || vhk_vq_avail_count(vid, (uint16_t)(2 * q)) <= 0)
		return;
	tx_burst(c, vid, q, &built);
	s->tx_first_sent[q]++;
}

/*
 * We poll, so the guest need not kick: ask it not to (saves a VM exit per
 * kick). Retried now and then until both vrings of the pair are ready.
 */
static void quiet_pair(struct fwd_ctx *c, struct fwd_slot *s, int vid, uint16_t q)
{
	if (s->quiet[q] || c->iter % QUIET_RETRY)
		return;
	if (vhk_vq_set_notification(vid, (uint16_t)(2 * q), false) == 0 &&
	    vhk_vq_set_notification(vid, (uint16_t)(2 * q + 1), false) == 0)
		s->quiet[q] = true;
}

/* io / mac / rxonly / echo: dequeue from pair @q and act on the burst. */
static uint16_t rx_burst(struct fwd_ctx *c, int vid, uint16_t q)
{
	struct vhk_pkt *pkts[FWD_MAX_BURST], *out[FWD_MAX_BURST];
	uint16_t n = receive(c, vid, (uint16_t)(2 * q + 1), pkts), k = 0;

	if (!n)
		return 0;
	switch (c->o.mode) {
	case FWD_RXONLY:
		vhk_pkt_free_bulk(pkts, n);
		break;
	case FWD_MAC:
		for (uint16_t i = 0; i < n; i++)
			pkt_mac_rewrite(pkts[i], c->o.mac); /* frames under 12 bytes stay as they are */
		/* fall through */
	case FWD_IO:
		send_and_free(c, vid, (uint16_t)(2 * q), pkts, n);
		break;
	case FWD_ECHO:
		for (uint16_t i = 0; i < n; i++) {
			if (pkt_echo_answer(pkts[i], c->o.mac) == 0) {
				out[k++] = pkts[i];
			} else {
				count(&c->st->dropped, 1);
				if (pkt_is_rarp(pkts[i]))
					count(&c->st->rx_rarp, 1);
				vhk_pkt_free(pkts[i]);
			}
		}
		send_and_free(c, vid, (uint16_t)(2 * q), out, k);
		break;
	case FWD_TXONLY:
		break;
	}
	return n;
}

/*
 * Poll every queue pair of device @vid (slot state @s); returns packets moved.
 * Busy cycles are counted per queue poll that received packets, or for txonly
 * built a burst (as testpmd 22.11's --record-core-cycles counts per stream).
 */
static uint32_t poll_device(struct fwd_ctx *c, struct fwd_slot *s, int vid)
{
	uint32_t total = 0;

	/*
	 * --start-delay: a frontend may still be starting its port when the
	 * device becomes ready, and DPDK's virtio PMD discards (uncounted)
	 * whatever its receive rings hold when it starts. Hold our sends back.
	 */
	if (!s->may_send)
		s->may_send = stats_now() - s->arrived >= c->o.start_delay;

	for (uint16_t q = 0; q < c->o.queues; q++) {
		uint64_t t0 = stats_cycles();
		uint16_t moved;
		bool built = false;

		quiet_pair(c, s, vid, q);
		if (c->o.tx_first && s->may_send)
			tx_first(c, s, vid, q);
		if (c->o.mode == FWD_TXONLY)
			moved = s->may_send ? tx_burst(c, vid, q, &built) : 0;
		else
			moved = rx_burst(c, vid, q);
		if (moved || built)
			count(&c->st->busy_cycles, stats_cycles() - t0);
		total += moved;
	}
	return total;
}

/* One pass over the device list; returns packets moved, *any: a device exists. */
static uint32_t poll_all(struct fwd_ctx *c, bool *any)
{
	uint32_t moved = 0;

	*any = false;
	for (unsigned i = 0; i < FWD_MAX_DEVS; i++) {
		struct fwd_slot *s = &c->slot[i];
		int v1 = dev_slot_vid(i);
		if (v1 != s->seen) {
			memset(s, 0, sizeof(*s));
			s->seen = v1;
			s->arrived = stats_now();
		}
		if (!v1)
			continue;
		*any = true;
		moved += poll_device(c, s, v1 - 1);
	}
	return moved;
}

/*
 * Thread body: poll until told to stop. Busy-polls while packets flow (like
 * testpmd); after IDLE_NAP_AFTER without any packet, or with no device at
 * all, it naps IDLE_NAP_NS between passes so an idle forwarder leaves the
 * CPU to others (a shared machine, the guest's vCPUs).
 */
static void *fwd_thread(void *arg)
{
	struct fwd_ctx *c = arg;
	uint64_t idle = 0;
	double idle_since = 0;

	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		uint64_t g = dev_iter_begin();
		bool any;
		uint32_t moved = poll_all(c, &any);
		dev_iter_end(g);
		c->iter++;
		if (moved) {
			idle = 0;
			continue;
		}
		if (idle++ % IDLE_CHECK)
			continue;
		double now = stats_now();
		if (idle == 1)
			idle_since = now;
		if (!any || now - idle_since >= IDLE_NAP_AFTER) {
			struct timespec ts = {0, IDLE_NAP_NS};
			nanosleep(&ts, NULL);
			idle--; /* check again next pass: stay napping while idle */
		}
	}
	dev_fwd_exit();
	return NULL;
}

/*
 * txonly: write the whole frame into every buffer of the pool once, so that
 * each burst only rewrites the Ethernet/IPv4/UDP headers, as testpmd's
 * txonly does (it writes the headers per packet and leaves the payload as
 * it is). Valid because in txonly nothing else writes into this pool's
 * buffers: enqueue only reads them, and nothing is dequeued into them.
 * Allocation resets a packet to the same data offset, so the payload stays
 * where it was written. Returns 0 or -errno.
 */
static int prefill_pool(struct fwd_ctx *c)
{
	struct vhk_pkt **all = calloc(POOL_COUNT, sizeof(*all));
	int rc = -ENOMEM;

	if (!all)
		return rc;
	rc = vhk_pkt_alloc_bulk(c->pool, all, POOL_COUNT);
	if (rc == 0) {
		for (uint32_t i = 0; i < POOL_COUNT; i++) {
			uint8_t *d = vhk_pkt_append(all[i], c->o.pkt_len);
			if (d)
				memcpy(d, c->tmpl, c->o.pkt_len);
			else
				rc = -ENOSPC; /* cannot happen: the data room holds pkt_len */
		}
		vhk_pkt_free_bulk(all, POOL_COUNT);
	}
	free(all);
	if (rc == 0)
		c->tmpl_copy = FWD_MIN_PKT_LEN;
	return rc;
}

int fwd_start(const struct fwd_opts *o, struct fwd_stats *st, struct fwd_ctx **ret)
{
	uint32_t room = o->pkt_len > POOL_ROOM ? o->pkt_len : POOL_ROOM;
	struct fwd_ctx *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	c->o = *o;
	c->st = st;
	pkt_build_udp(c->tmpl, o->pkt_len, o->mac);
	c->tmpl_copy = o->pkt_len;
	rc = vhk_pool_create(POOL_COUNT, room, POOL_HEADROOM, 0, &c->pool);
	if (rc < 0)
		goto err_free_ctx;
	if (o->mode == FWD_TXONLY) {
		rc = prefill_pool(c);
		if (rc < 0)
			goto err_free_pool;
	}
	rc = -pthread_create(&c->thread, NULL, fwd_thread, c);
	if (rc < 0)
		goto err_free_pool;
	*ret = c;
	return 0;

err_free_pool:
	vhk_pool_free(c->pool);
err_free_ctx:
	free(c);
	return rc;
}

void fwd_stop(struct fwd_ctx *c)
{
	if (!c)
		return;
	atomic_store(&c->stop, true);
	pthread_join(c->thread, NULL);
	vhk_pool_free(c->pool);
	free(c);
}
