/* SPDX-License-Identifier: MIT */
/*
 * Datapath integration on packed virtqueues (VIRTIO_F_RING_PACKED): the net
 * device unchanged, driven over the real protocol by vuf with the
 * gring_packed guest driver. Byte-exact traffic in both directions (60..9000
 * bytes; mergeable, indirect, EVENT_IDX on and off; two queue pairs),
 * notifications, hostile ids and bases, and stop/restart resuming exactly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dp_common.h"
#include "gring_packed.h"
#include "test.h"

#define PK_F	(DP_F(VHK_F_RING_PACKED))
#define MAXPKT	9000u
#define MRG_BUF 1536u
#define FRESH	0x80008000u

static const uint32_t sizes[] = {60, 61, 64, 128, 1514, 1518, 4000, 9000};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* The dp fixture for the library and frontend, packed rings for the guest. */
struct pk {
	struct dp_env e;
	struct pring *r[DP_MAX_VRINGS];
	uint64_t *slot[DP_MAX_VRINGS];	     /* per buffer id */
	struct dp_meta *meta[DP_MAX_VRINGS]; /* per buffer id */
};

/* Static: every case runs in its own child. */
static struct pk g_pk;

/* Connect, negotiate packed, map RAM, start every ring with @base. */
static void pk_front_start(struct pk *p)
{
	struct dp_env *e = &p->e;
	int before = atomic_load(&dp_new_count);
	CHECK_EQ(vuf_connect(e->path, DP_TIMEOUT_MS, &e->v), 0);
	CHECK_EQ(vuf_negotiate(e->v, e->o.features, e->o.pf), 0);
	uint64_t f = e->v->features;
	CHECK(f & PK_F);
	e->mrg = f & DP_F(VHK_NET_F_MRG_RXBUF);
	e->hdr_len = (e->mrg || (f & DP_F(VHK_F_VERSION_1))) ? 12 : 10;
	CHECK_EQ(gmem_new(e->o.nregions, e->o.region_size, 0x100000, e->o.gap, &e->m), 0);
	CHECK_EQ(vuf_set_mem_table(e->v, e->m), 0);
	e->nvrings = 2 * e->o.pairs;
	bool evidx = f & DP_F(VHK_F_EVENT_IDX);
	for (uint32_t q = 0; q < e->nvrings; q++) {
		CHECK_EQ(pring_new(e->m, e->o.ring_size, evidx, &p->r[q]), 0);
		if (f & DP_F(VHK_F_IN_ORDER))
			CHECK_EQ(pring_set_in_order(p->r[q]), 0);
		p->slot[q] = calloc(e->o.ring_size, sizeof(uint64_t));
		p->meta[q] = calloc(e->o.ring_size, sizeof(struct dp_meta));
		CHECK(p->slot[q] && p->meta[q]);
		CHECK_EQ(pring_start_vring(e->v, q, p->r[q], FRESH), 0);
	}
	e->vid = dp_wait_new_device(before + 1, DP_TIMEOUT_MS);
	CHECK(e->vid >= 0);
}

/* new_device / destroy_device: the dp globals dp_wait_new_device() watches. */
static int pk_new_device(int vid)
{
	atomic_store(&dp_vid, vid);
	atomic_store(&dp_last_vid, vid);
	atomic_fetch_add(&dp_new_count, 1);
	return 0;
}

static void pk_destroy_device(int vid)
{
	int expect = vid;
	atomic_compare_exchange_strong(&dp_vid, &expect, -1);
	atomic_fetch_add(&dp_destroy_count, 1);
}

/*
 * Like dp_lib_start(), but RING_PACKED is enabled explicitly before the
 * socket starts, so the test does not depend on the default offer.
 */
static void pk_lib_start(struct dp_env *e, const struct dp_opts *o)
{
	struct vhk_callbacks cb = {.new_device = pk_new_device,
				   .destroy_device = pk_destroy_device};
	memset(e, 0, sizeof(*e));
	e->o = *o;
	e->o.pf = DP_BASE_PF;
	e->o.nregions = 8;
	e->o.region_size = 8u << 20;
	e->lfd = -1;
	e->vid = -1;
	snprintf(e->dir, sizeof(e->dir), "/tmp/vhkpk.XXXXXX");
	CHECK(mkdtemp(e->dir) != NULL);
	snprintf(e->path, sizeof(e->path), "%s/sock", e->dir);
	CHECK_EQ(vhk_register(e->path, 0), 0);
	CHECK_EQ(vhk_net_attach(e->path), 0);
	CHECK_EQ(vhk_enable_features(e->path, PK_F), 0);
	if (e->o.features & DP_F(VHK_F_IN_ORDER)) /* asked for: offer it even if not default */
		CHECK_EQ(vhk_enable_features(e->path, DP_F(VHK_F_IN_ORDER)), 0);
	if (e->o.pairs > 1)
		CHECK_EQ(vhk_set_max_queue_pairs(e->path, e->o.pairs), 0);
	CHECK_EQ(vhk_callback_register(e->path, &cb, e), 0);
	CHECK_EQ(vhk_pool_create(8192, 2048, 128, 0, &e->pool), 0);
	CHECK_EQ(vhk_start(e->path), 0);
}

static struct pk *pk_setup(uint64_t features, uint32_t pairs, uint16_t ring_size)
{
	struct pk *p = &g_pk;
	struct dp_opts o = {.features = DP_BASE_FEATURES | PK_F | features,
			    .pairs = pairs ? pairs : 1,
			    .ring_size = ring_size};
	memset(p, 0, sizeof(*p));
	pk_lib_start(&p->e, &o);
	pk_front_start(p);
	return p;
}

static void pk_teardown(struct pk *p)
{
	for (uint32_t q = 0; q < p->e.nvrings; q++) {
		pring_free(p->r[q]);
		free(p->slot[q]);
		free(p->meta[q]);
	}
	p->e.nvrings = 0;
	dp_teardown(&p->e);
}

/* Guest slot for the id the next post on vring @q will take. */
static uint64_t pk_next_slot(struct pk *p, uint32_t q)
{
	struct pring *r = p->r[q];
	if (!r->nfree_ids)
		return 0;
	uint16_t id = r->free_ids[r->nfree_ids - 1];
	if (!p->slot[q][id])
		p->slot[q][id] = gmem_alloc(p->e.m, DP_SLOT, 64);
	return p->slot[q][id];
}

/* Post @n buffers (all readable or all writable); returns the id. */
static int pk_post(struct pk *p, uint32_t q, const struct gbuf *b, int n, bool wr, bool ind)
{
	void *tok = (void *)(uintptr_t)(p->r[q]->free_ids[p->r[q]->nfree_ids - 1] + 1u);
	int id = wr ? pring_add(p->r[q], NULL, 0, b, n, ind, tok)
		    : pring_add(p->r[q], b, n, NULL, 0, ind, tok);
	CHECK(id >= 0);
	memcpy(p->meta[q][id].b, b, sizeof(*b) * (size_t)n);
	p->meta[q][id].n = n;
	return id;
}

static void pk_post_rx(struct pk *p, uint32_t q, int count, uint32_t buflen, bool split_hdr,
		       bool ind)
{
	uint32_t h = p->e.hdr_len;
	for (int i = 0; i < count; i++) {
		uint64_t s = pk_next_slot(p, q);
		CHECK(s != 0);
		struct gbuf b[2] = {{s, buflen}};
		int n = 1;
		if (split_hdr) {
			b[0].len = h;
			b[1] = (struct gbuf){s + DP_DATA_OFF, buflen - h};
			n = 2;
		}
		pk_post(p, q, b, n, true, ind);
	}
	pring_kick(p->r[q]);
}

/* Short sleep between polls. */
static void nap(void)
{
	struct timespec ts = {0, 50000};
	nanosleep(&ts, NULL);
}

/* Wait for the next used entry of @q: its id, or -errno. */
static int pk_wait_used(struct pk *p, uint32_t q, uint32_t *len)
{
	int64_t end = dp_now_ms() + DP_TIMEOUT_MS;
	for (;;) {
		void *tok = NULL;
		int rc = pring_get_used(p->r[q], &tok, len);
		if (rc == 1)
			return (int)((uintptr_t)tok - 1);
		if (rc < 0)
			return rc;
		if (dp_now_ms() > end)
			return -ETIMEDOUT;
		nap();
	}
}

/* Receive one packet (num_buffers entries with MRG) into @data; returns its length. */
static int pk_recv(struct pk *p, uint32_t q, uint8_t *data, int *nbufs)
{
	uint32_t h = p->e.hdr_len, got = 0, len = 0;
	uint8_t *tmp = malloc(MAXPKT + 64 * 1024);
	int used = 0, nb = 1;
	CHECK(tmp != NULL);
	do {
		int id = pk_wait_used(p, q, &len);
		CHECK(id >= 0);
		used++;
		const struct dp_meta *mt = &p->meta[q][id];
		uint32_t done = 0;
		for (int i = 0; i < mt->n && done < len; i++) {
			uint32_t n = len - done < mt->b[i].len ? len - done : mt->b[i].len;
			CHECK_EQ(gmem_read(p->e.m, mt->b[i].gpa, tmp + got + done, n), 0);
			done += n;
		}
		CHECK_EQ(done, len);
		got += len;
		if (used == 1 && p->e.mrg)
			nb = tmp[10] | tmp[11] << 8;
	} while (used < nb);
	CHECK(got >= h);
	memcpy(data, tmp + h, got - h);
	free(tmp);
	if (nbufs)
		*nbufs = used;
	return (int)(got - h);
}

/* Guest TX: header + data in @nsplit pieces (header alone when @split_hdr). */
static void pk_send(struct pk *p, uint32_t q, const uint8_t *data, uint32_t len, int nsplit,
		    bool split_hdr, bool ind)
{
	struct virtio_net_hdr_mrg_rxbuf hdr = {0};
	uint32_t h = p->e.hdr_len;
	uint64_t s = pk_next_slot(p, q);
	struct gbuf b[DP_MAX_BUFS];
	int n = 0;
	CHECK(s != 0);
	CHECK_EQ(gmem_write(p->e.m, s + DP_DATA_OFF - h, &hdr, h), 0);
	CHECK_EQ(gmem_write(p->e.m, s + DP_DATA_OFF, data, len), 0);
	if (split_hdr)
		b[n++] = (struct gbuf){s + DP_DATA_OFF - h, h};
	uint32_t off = 0, piece = len / (uint32_t)nsplit;
	for (int k = 0; k < nsplit; k++) {
		uint32_t plen = k + 1 == nsplit ? len - off : piece;
		b[n++] = (struct gbuf){s + DP_DATA_OFF + off, plen};
		off += plen;
	}
	if (!split_hdr) {
		b[0].gpa -= h;
		b[0].len += h;
	}
	pk_post(p, q, b, n, false, ind);
	pring_kick(p->r[q]);
}

static void pk_reap(struct pk *p, uint32_t q, int count)
{
	uint32_t len;
	for (int i = 0; i < count; i++)
		CHECK(pk_wait_used(p, q, &len) >= 0);
}

/* Host -> guest and guest -> host, one packet of @len on pair @pair, byte-exact. */
static void roundtrip(struct pk *p, uint32_t pair, uint32_t len, uint32_t seed, bool split,
		      bool ind)
{
	uint8_t *want = malloc(MAXPKT), *got = malloc(MAXPKT);
	uint32_t rxq = 2 * pair, txq = rxq + 1;
	int nb = 0;
	CHECK(want && got);
	dp_random(want, len, &seed);
	if (p->e.mrg)
		pk_post_rx(p, rxq, (int)((len + 12 + MRG_BUF - 1) / MRG_BUF), MRG_BUF, split, ind);
	else
		pk_post_rx(p, rxq, 1, p->e.hdr_len + MAXPKT, split, ind);
	struct vhk_pkt *pk = dp_pkt_make(p->e.pool, want, len);
	CHECK_EQ(dp_enqueue_all(p->e.vid, (uint16_t)rxq, &pk, 1, DP_TIMEOUT_MS), 1);
	vhk_pkt_free(pk);
	CHECK_EQ(pk_recv(p, rxq, got, &nb), len);
	CHECK(memcmp(want, got, len) == 0);
	if (p->e.mrg)
		CHECK_EQ(nb, (int)((len + 12 + MRG_BUF - 1) / MRG_BUF));

	dp_random(want, len, &seed);
	pk_send(p, txq, want, len, split ? 3 : 1, split, ind);
	pk = NULL;
	CHECK_EQ(dp_dequeue_n(p->e.vid, (uint16_t)txq, p->e.pool, &pk, 1, DP_TIMEOUT_MS), 1);
	CHECK(dp_pkt_equal(pk, want, len));
	vhk_pkt_free(pk);
	pk_reap(p, txq, 1);
	free(want);
	free(got);
}

/* Every size both ways, then a TX burst of all sizes in order. */
static void sizes_case(uint64_t features, uint16_t ring_size, bool split, bool ind)
{
	struct pk *p = pk_setup(features, 1, ring_size);
	struct vhk_vring_info info;
	CHECK_EQ(vhk_dev_get_vring(p->e.vid, 0, &info), 0);
	CHECK(info.packed);
	for (int lap = 0; lap < 3; lap++) /* several laps of the ring: wrap counters */
		for (uint32_t i = 0; i < NSIZES; i++)
			roundtrip(p, 0, sizes[i], 100 * lap + i, split, ind);
	uint8_t *want[NSIZES];
	struct vhk_pkt *pk[NSIZES];
	uint32_t seed = 7;
	for (uint32_t i = 0; i < NSIZES; i++) {
		want[i] = malloc(sizes[i]);
		CHECK(want[i] != NULL);
		dp_random(want[i], sizes[i], &seed);
		pk_send(p, 1, want[i], sizes[i], 2, split, ind);
	}
	CHECK_EQ(dp_dequeue_n(p->e.vid, 1, p->e.pool, pk, NSIZES, DP_TIMEOUT_MS), NSIZES);
	for (uint32_t i = 0; i < NSIZES; i++) {
		CHECK(dp_pkt_equal(pk[i], want[i], sizes[i]));
		vhk_pkt_free(pk[i]);
		free(want[i]);
	}
	pk_reap(p, 1, NSIZES);
	CHECK_EQ(vhk_dev_get_vring(p->e.vid, 1, &info), 0);
	CHECK(!info.broken);
	pk_teardown(p);
}

/* VIRTIO_F_IN_ORDER: a TX burst of 100 frames completes (batched), RX byte-exact. */
static void t_in_order(void)
{
	struct pk *p = pk_setup(DP_F(VHK_F_IN_ORDER), 1, 256);
	struct vhk_pkt *pk[100];
	uint8_t *want[100];
	uint32_t seed = 11;
	CHECK(p->e.v->features & DP_F(VHK_F_IN_ORDER));
	uint16_t head[100];
	for (int lap = 0; lap < 3; lap++) {
		for (int i = 0; i < 100; i++) {
			uint32_t len = 60 + (uint32_t)i * 14;
			head[i] = p->r[1]->next_avail;
			want[i] = malloc(len);
			CHECK(want[i] != NULL);
			dp_random(want[i], len, &seed);
			pk_send(p, 1, want[i], len, 1 + i % 3, i & 1, false);
		}
		CHECK_EQ(dp_dequeue_n(p->e.vid, 1, p->e.pool, pk, 100, DP_TIMEOUT_MS), 100);
		for (int i = 0; i < 100; i++) {
			CHECK(dp_pkt_equal(pk[i], want[i], 60 + (uint32_t)i * 14));
			vhk_pkt_free(pk[i]);
			free(want[i]);
		}
		pk_reap(p, 1, 100);
		CHECK_EQ(p->r[1]->num_free, 256);
		int skipped = 0; /* batched: some heads of lap 0 never marked used */
		for (int i = 0; lap == 0 && i < 100; i++)
			skipped += !(p->r[1]->desc[head[i]].flags & (1u << VRING_PACKED_DESC_F_USED));
		CHECK(lap > 0 || skipped > 0);
	}
	for (uint32_t i = 0; i < NSIZES; i++)
		roundtrip(p, 0, sizes[i], 300 + i, i & 1, false);
	struct vhk_vring_info info;
	CHECK_EQ(vhk_dev_get_vring(p->e.vid, 1, &info), 0);
	CHECK(!info.broken);
	pk_teardown(p);
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
	struct pk *p = pk_setup(DP_F(VHK_NET_F_MQ) | DP_F(VHK_NET_F_MRG_RXBUF), 2, 64);
	for (uint32_t i = 0; i < 40; i++)
		roundtrip(p, i & 1, sizes[i % NSIZES], i, (i & 2) != 0, false);
	pk_teardown(p);
}

/* The guest gets a call per burst when it asks for it, none when it disabled them. */
static void notify_case(uint64_t features)
{
	struct pk *p = pk_setup(features, 1, 64);
	uint8_t data[200];
	uint32_t seed = 1;
	dp_random(data, sizeof(data), &seed);
	for (int round = 0; round < 70; round++) {
		bool on = round % 2 == 0;
		pring_set_interrupts(p->r[0], on);
		(void)pring_read_calls(p->r[0]);
		pk_post_rx(p, 0, 1, p->e.hdr_len + MAXPKT, false, false);
		struct vhk_pkt *pk = dp_pkt_make(p->e.pool, data, sizeof(data));
		CHECK_EQ(dp_enqueue_all(p->e.vid, 0, &pk, 1, DP_TIMEOUT_MS), 1);
		vhk_pkt_free(pk);
		CHECK_EQ(pring_read_calls(p->r[0]) ? 1 : 0, on ? 1 : 0);
		uint8_t got[MAXPKT];
		CHECK_EQ(pk_recv(p, 0, got, NULL), sizeof(data));
	}
	pk_teardown(p);
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
	struct pk *p = pk_setup(DP_F(VHK_NET_F_MRG_RXBUF), 1, 24);
	for (uint32_t i = 0; i < 11; i++) /* mid-ring, second lap */
		roundtrip(p, 0, sizes[i % NSIZES], i, i & 1, false);
	for (uint32_t q = 0; q < 2; q++) {
		uint32_t base = 0;
		CHECK_EQ(vuf_get_vring_base(p->e.v, q, &base), 0);
		CHECK_EQ(base, pring_base(p->r[q]));
		CHECK(base != FRESH);
		CHECK_EQ(pring_start_vring(p->e.v, q, p->r[q], base), 0);
	}
	for (uint32_t i = 0; i < 30; i++)
		roundtrip(p, 0, sizes[i % NSIZES], 50 + i, i & 1, false);
	struct vhk_vring_info info;
	CHECK_EQ(vhk_dev_get_vring(p->e.vid, 0, &info), 0);
	CHECK(info.started && !info.broken);
	pk_teardown(p);
}

/* A base index past the ring size: the ring does not start; a good base recovers. */
static void t_base_past_size(void)
{
	struct pk *p = pk_setup(0, 1, 32);
	struct vhk_vring_info info;
	uint32_t base = 0;
	roundtrip(p, 0, 100, 1, false, false);
	CHECK_EQ(vuf_get_vring_base(p->e.v, 1, &base), 0);
	CHECK_EQ(pring_start_vring(p->e.v, 1, p->r[1], 0x8000u | 32u), 0);
	CHECK_EQ(vhk_dev_get_vring(p->e.vid, 1, &info), 0);
	CHECK(!info.started);
	CHECK_EQ(pring_start_vring(p->e.v, 1, p->r[1], 40u << 16 | 0x8001u), 0);
	CHECK_EQ(vhk_dev_get_vring(p->e.vid, 1, &info), 0);
	CHECK(!info.started);
	CHECK_EQ(pring_start_vring(p->e.v, 1, p->r[1], base), 0);
	CHECK_EQ(vhk_dev_get_vring(p->e.vid, 1, &info), 0);
	CHECK(info.started);
	roundtrip(p, 0, 1514, 2, true, false);
	pk_teardown(p);
}

/* A guest TX descriptor with id >= N breaks that ring only. */
static void t_hostile_id(void)
{
	struct pk *p = pk_setup(0, 1, 16);
	struct pring *r = p->r[1];
	struct vhk_pkt *pk = NULL;
	struct vhk_vring_info info;
	uint64_t s = pk_next_slot(p, 1);
	pring_raw_desc(r, r->next_avail, s, 100, 16, pring_avail_bits(r->avail_wrap));
	pring_kick_force(r);
	CHECK_EQ(dp_dequeue_n(p->e.vid, 1, p->e.pool, &pk, 1, 200), 0);
	CHECK_EQ(vhk_dev_get_vring(p->e.vid, 1, &info), 0);
	CHECK(info.broken);
	CHECK_EQ(vhk_dev_get_vring(p->e.vid, 0, &info), 0);
	CHECK(!info.broken);
	pk_teardown(p);
}

TEST_MAIN(TEST(t_in_order), TEST(t_plain), TEST(t_plain_split_odd_ring), TEST(t_mrg), TEST(t_indirect),
	  TEST(t_mrg_indirect_evidx), TEST(t_evidx_plain), TEST(t_multiqueue),
	  TEST(t_notify_flags), TEST(t_notify_evidx), TEST(t_stop_restart),
	  TEST(t_base_past_size), TEST(t_hostile_id))
