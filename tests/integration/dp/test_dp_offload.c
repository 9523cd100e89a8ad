/* SPDX-License-Identifier: MIT */
/*
 * Offload metadata on both ring formats (issue 4): every scenario runs on a
 * split ring (dp_common/gring) and on a packed ring (gring_packed). Guest TX
 * of NEEDS_CSUM and GSO TCPV4/TCPV6/UDP frames built from real header bytes
 * must come out of vhk_net_dequeue_burst with exactly the header fields in
 * vhk_pkt.ol and the bytes unchanged; host RX with ol set must show the same
 * fields in the guest header; without GUEST_CSUM the checksum is completed in
 * software (verified here over the pseudo-header); malformed TX headers are
 * dropped, counted as errors, their chains still used, and traffic goes on.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dp_common.h"
#include "gring_packed.h"
#include "test.h"

#define PK_F  (DP_F(VHK_F_RING_PACKED))
#define FRESH 0x80008000u
#define BIG   8000u

/* ---------------- packed fixture (as in test_dp_packed.c) ---------------- */

struct pk {
	struct dp_env e;
	struct pring *r[DP_MAX_VRINGS];
	uint64_t *slot[DP_MAX_VRINGS];
	struct dp_meta *meta[DP_MAX_VRINGS];
};

static struct pk g_pk;

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

static void pk_setup(uint64_t features)
{
	struct pk *p = &g_pk;
	struct dp_env *e = &p->e;
	struct vhk_callbacks cb = {.new_device = pk_new_device,
				   .destroy_device = pk_destroy_device};
	memset(p, 0, sizeof(*p));
	e->o = (struct dp_opts){.features = DP_BASE_FEATURES | PK_F | features,
				.pairs = 1,
				.pf = DP_BASE_PF,
				.nregions = 8,
				.region_size = 8u << 20,
				.ring_size = 256};
	e->lfd = -1;
	e->vid = -1;
	snprintf(e->dir, sizeof(e->dir), "/tmp/vhkol.XXXXXX");
	CHECK(mkdtemp(e->dir) != NULL);
	snprintf(e->path, sizeof(e->path), "%s/sock", e->dir);
	CHECK_EQ(vhk_register(e->path, 0), 0);
	CHECK_EQ(vhk_net_attach(e->path), 0);
	CHECK_EQ(vhk_enable_features(e->path, PK_F), 0);
	CHECK_EQ(vhk_callback_register(e->path, &cb, e), 0);
	CHECK_EQ(vhk_pool_create(8192, 2048, 128, 0, &e->pool), 0);
	CHECK_EQ(vhk_start(e->path), 0);

	int before = atomic_load(&dp_new_count);
	CHECK_EQ(vuf_connect(e->path, DP_TIMEOUT_MS, &e->v), 0);
	CHECK_EQ(vuf_negotiate(e->v, e->o.features, e->o.pf), 0);
	uint64_t f = e->v->features;
	CHECK(f & PK_F);
	e->mrg = f & DP_F(VHK_NET_F_MRG_RXBUF);
	e->hdr_len = 12;
	CHECK_EQ(gmem_new(e->o.nregions, e->o.region_size, 0x100000, e->o.gap, &e->m), 0);
	CHECK_EQ(vuf_set_mem_table(e->v, e->m), 0);
	e->nvrings = 2;
	for (uint32_t q = 0; q < e->nvrings; q++) {
		CHECK_EQ(pring_new(e->m, e->o.ring_size, f & DP_F(VHK_F_EVENT_IDX), &p->r[q]), 0);
		p->slot[q] = calloc(e->o.ring_size, sizeof(uint64_t));
		p->meta[q] = calloc(e->o.ring_size, sizeof(struct dp_meta));
		CHECK(p->slot[q] && p->meta[q]);
		CHECK_EQ(pring_start_vring(e->v, q, p->r[q], FRESH), 0);
	}
	e->vid = dp_wait_new_device(before + 1, DP_TIMEOUT_MS);
	CHECK(e->vid >= 0);
}

static uint64_t pk_next_slot(struct pk *p, uint32_t q)
{
	struct pring *r = p->r[q];
	CHECK(r->nfree_ids > 0);
	uint16_t id = r->free_ids[r->nfree_ids - 1];
	if (!p->slot[q][id])
		p->slot[q][id] = gmem_alloc(p->e.m, DP_SLOT, 64);
	return p->slot[q][id];
}

static int pk_post(struct pk *p, uint32_t q, const struct gbuf *b, int n, bool wr)
{
	void *tok = (void *)(uintptr_t)(p->r[q]->free_ids[p->r[q]->nfree_ids - 1] + 1u);
	int id = wr ? pring_add(p->r[q], NULL, 0, b, n, false, tok)
		    : pring_add(p->r[q], b, n, NULL, 0, false, tok);
	CHECK(id >= 0);
	memcpy(p->meta[q][id].b, b, sizeof(*b) * (size_t)n);
	p->meta[q][id].n = n;
	return id;
}

static void nap(void)
{
	struct timespec ts = {0, 50000};
	nanosleep(&ts, NULL);
}

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

/* ---------------- one interface over both formats ---------------- */

static bool g_packed;
static struct dp_env g_split;

static struct dp_env *env(void)
{
	return g_packed ? &g_pk.e : &g_split;
}

static void f_setup(uint64_t features)
{
	if (g_packed) {
		pk_setup(features);
	} else {
		struct dp_opts o = {.features = DP_BASE_FEATURES | features};
		dp_setup(&g_split, &o);
	}
}

static void f_teardown(void)
{
	if (g_packed) {
		for (uint32_t q = 0; q < g_pk.e.nvrings; q++) {
			pring_free(g_pk.r[q]);
			free(g_pk.slot[q]);
			free(g_pk.meta[q]);
		}
		g_pk.e.nvrings = 0;
		dp_teardown(&g_pk.e);
	} else {
		dp_teardown(&g_split);
	}
}

/* Guest TX on vring 1: header (own descriptor) + data in two pieces. */
static void f_send(const struct virtio_net_hdr *hdr, const uint8_t *data, uint32_t len)
{
	if (!g_packed) {
		dp_send(&g_split, 1, hdr, data, len, 2, true, false);
		return;
	}
	struct pk *p = &g_pk;
	struct virtio_net_hdr_mrg_rxbuf h = {.hdr = *hdr};
	uint32_t hl = p->e.hdr_len, half = len / 2;
	uint64_t s = pk_next_slot(p, 1);
	CHECK_EQ(gmem_write(p->e.m, s + DP_DATA_OFF - hl, &h, hl), 0);
	CHECK_EQ(gmem_write(p->e.m, s + DP_DATA_OFF, data, len), 0);
	struct gbuf b[3] = {{s + DP_DATA_OFF - hl, hl},
			    {s + DP_DATA_OFF, half},
			    {s + DP_DATA_OFF + half, len - half}};
	pk_post(p, 1, b, 3, false);
	pring_kick(p->r[1]);
}

static int f_reap(int count)
{
	if (!g_packed)
		return dp_reap(&g_split, 1, count, DP_TIMEOUT_MS);
	uint32_t len;
	int n = 0;
	for (int i = 0; i < count; i++)
		if (pk_wait_used(&g_pk, 1, &len) >= 0)
			n++;
	return n;
}

/* @count receive buffers on vring 0, each big enough for one whole packet. */
static void f_post_rx(int count)
{
	uint32_t buflen = env()->hdr_len + BIG;
	if (!g_packed) {
		dp_post_rx(&g_split, 0, count, buflen, false, false);
		return;
	}
	for (int i = 0; i < count; i++) {
		struct gbuf b = {pk_next_slot(&g_pk, 0), buflen};
		pk_post(&g_pk, 0, &b, 1, true);
	}
	pring_kick(g_pk.r[0]);
}

/* One packet from vring 0 (one buffer): header to @hdr, data to @data. */
static int f_recv(struct virtio_net_hdr_mrg_rxbuf *hdr, uint8_t *data)
{
	memset(hdr, 0, sizeof(*hdr));
	if (!g_packed)
		return dp_recv(&g_split, 0, hdr, data, BIG, NULL, DP_TIMEOUT_MS);
	struct pk *p = &g_pk;
	uint32_t len = 0, hl = p->e.hdr_len;
	int id = pk_wait_used(p, 0, &len);
	CHECK(id >= 0);
	CHECK(len >= hl && len <= hl + BIG);
	uint64_t gpa = p->meta[0][id].b[0].gpa;
	CHECK_EQ(gmem_read(p->e.m, gpa, hdr, hl), 0);
	CHECK_EQ(gmem_read(p->e.m, gpa + hl, data, len - hl), 0);
	if (p->e.mrg)
		CHECK_EQ(hdr->num_buffers, 1);
	return (int)(len - hl);
}

/* ---------------- frames with real headers ---------------- */

static uint32_t sum16(uint32_t s, const uint8_t *b, uint32_t len)
{
	for (uint32_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (len & 1)
		s += (uint32_t)b[len - 1] << 8;
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Pseudo-header sum of the L4 part of @f (IPv4 or IPv6 at offset 14). */
static uint32_t pseudo_sum(const uint8_t *f, bool v6, uint8_t proto, uint32_t l4len)
{
	uint32_t s = v6 ? sum16(0, f + 14 + 8, 32) : sum16(0, f + 14 + 12, 8);
	return s + proto + (l4len & 0xffff) + (l4len >> 16);
}

struct frame {
	uint8_t b[BIG];
	uint32_t len;
	uint16_t l4off, csum_off, hdr_len;
	bool v6;
	uint8_t proto;
};

/*
 * Ethernet + IPv4/IPv6 + TCP/UDP with @pay payload bytes. With @partial the
 * L4 checksum field holds the pseudo-header sum (what a guest posting
 * NEEDS_CSUM leaves there), else the complete checksum.
 */
static void mkframe(struct frame *fr, bool v6, uint8_t proto, uint32_t pay, bool partial,
		    uint32_t seed)
{
	uint8_t *f = fr->b;
	uint32_t l3 = v6 ? 40 : 20, l4 = proto == 6 ? 20 : 8;
	memset(fr, 0, sizeof(*fr));
	fr->v6 = v6;
	fr->proto = proto;
	fr->l4off = (uint16_t)(14 + l3);
	fr->hdr_len = (uint16_t)(14 + l3 + l4);
	fr->csum_off = proto == 6 ? 16 : 6;
	fr->len = 14 + l3 + l4 + pay;
	CHECK(fr->len <= BIG);
	static const uint8_t mac[12] = {0x52, 0x54, 0, 0x12, 0x34, 0x56,
					0x52, 0x54, 0, 0xab, 0xcd, 0xef};
	memcpy(f, mac, 12);
	put16(f + 12, v6 ? 0x86dd : 0x0800);
	uint8_t *ip = f + 14;
	if (v6) {
		ip[0] = 0x60;
		put16(ip + 4, (uint16_t)(l4 + pay));
		ip[6] = proto;
		ip[7] = 64;
		for (int i = 0; i < 16; i++) {
			ip[8 + i] = (uint8_t)(0x20 + i);
			ip[24 + i] = (uint8_t)(0x40 + i);
		}
	} else {
		ip[0] = 0x45;
		put16(ip + 2, (uint16_t)(l3 + l4 + pay));
		put16(ip + 4, 0x1234);
		ip[8] = 64;
		ip[9] = proto;
		memcpy(ip + 12, (uint8_t[]){10, 0, 0, 1, 10, 0, 0, 2}, 8);
		put16(ip + 10, (uint16_t)~fold(sum16(0, ip, 20)));
	}
	uint8_t *l4p = f + fr->l4off;
	put16(l4p, 40000);
	put16(l4p + 2, proto == 6 ? 80 : 4789);
	if (proto == 6) {
		memcpy(l4p + 4, (uint8_t[]){0, 0, 0x10, 0, 0, 0, 0x20, 0}, 8);
		l4p[12] = 0x50;
		l4p[13] = 0x18;
		put16(l4p + 14, 65535);
	} else {
		put16(l4p + 4, (uint16_t)(l4 + pay));
	}
	dp_random(f + fr->hdr_len, pay, &seed);
	uint32_t ps = pseudo_sum(f, v6, proto, l4 + pay);
	if (partial) {
		put16(l4p + fr->csum_off, fold(ps));
	} else {
		uint16_t c = (uint16_t)~fold(sum16(ps, l4p, l4 + pay));
		put16(l4p + fr->csum_off, c ? c : 0xffff);
	}
}

/* True if the L4 checksum of @f (@len bytes) is complete and correct. */
static bool l4_csum_ok(const struct frame *fr, const uint8_t *f, uint32_t len)
{
	uint32_t l4len = len - fr->l4off;
	uint32_t s = sum16(pseudo_sum(f, fr->v6, fr->proto, l4len), f + fr->l4off, l4len);
	return fold(s) == 0xffff;
}

/* ---------------- scenarios (run on the current format) ---------------- */

static const uint64_t OL_HOST = DP_F(VHK_NET_F_CSUM) | DP_F(VHK_NET_F_HOST_TSO4) |
				DP_F(VHK_NET_F_HOST_TSO6) | DP_F(VHK_NET_F_HOST_UFO);
static const uint64_t OL_GUEST = DP_F(VHK_NET_F_GUEST_CSUM) | DP_F(VHK_NET_F_GUEST_TSO4) |
				 DP_F(VHK_NET_F_GUEST_TSO6) | DP_F(VHK_NET_F_GUEST_UFO);

struct olcase {
	bool v6;
	uint8_t proto;
	uint8_t gso;
	uint32_t pay;
};

static const struct olcase cases[] = {
    {false, 6, VIRTIO_NET_HDR_GSO_NONE, 1460},  /* plain checksum offload */
    {false, 6, VIRTIO_NET_HDR_GSO_TCPV4, 7000}, /* TSO4 */
    {true, 6, VIRTIO_NET_HDR_GSO_TCPV6, 6000},  /* TSO6 */
    {false, 17, VIRTIO_NET_HDR_GSO_UDP, 5000},  /* UFO */
    {true, 17, VIRTIO_NET_HDR_GSO_NONE, 333},   /* UDP/IPv6 checksum, odd length */
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static struct virtio_net_hdr case_hdr(const struct olcase *c, const struct frame *fr)
{
	struct virtio_net_hdr h = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				   .gso_type = c->gso,
				   .csum_start = fr->l4off,
				   .csum_offset = fr->csum_off};
	if (c->gso != VIRTIO_NET_HDR_GSO_NONE) {
		h.hdr_len = fr->hdr_len;
		h.gso_size = c->proto == 6 ? (c->v6 ? 1440 : 1448) : 1472;
	}
	return h;
}

static struct frame g_fr[NCASES];

static void tx_offload(void)
{
	f_setup(OL_HOST);
	struct dp_env *e = env();
	struct virtio_net_hdr h[NCASES];
	for (uint32_t i = 0; i < NCASES; i++) {
		mkframe(&g_fr[i], cases[i].v6, cases[i].proto, cases[i].pay, true, 100 + i);
		h[i] = case_hdr(&cases[i], &g_fr[i]);
		f_send(&h[i], g_fr[i].b, g_fr[i].len);
	}
	struct vhk_pkt *p[NCASES] = {0};
	CHECK_EQ(dp_dequeue_n(e->vid, 1, e->pool, p, NCASES, DP_TIMEOUT_MS), (int)NCASES);
	for (uint32_t i = 0; i < NCASES; i++) {
		CHECK(dp_pkt_equal(p[i], g_fr[i].b, g_fr[i].len));
		CHECK_EQ(p[i]->ol.flags, VHK_PKT_OL_NEEDS_CSUM);
		CHECK_EQ(p[i]->ol.gso_type, h[i].gso_type);
		CHECK_EQ(p[i]->ol.hdr_len, h[i].hdr_len);
		CHECK_EQ(p[i]->ol.gso_size, h[i].gso_size);
		CHECK_EQ(p[i]->ol.csum_start, h[i].csum_start);
		CHECK_EQ(p[i]->ol.csum_offset, h[i].csum_offset);
	}
	vhk_pkt_free_bulk(p, NCASES);
	CHECK_EQ(f_reap((int)NCASES), (int)NCASES);
	struct vhk_net_stats st;
	CHECK_EQ(vhk_net_get_stats(e->vid, 1, &st), 0);
	CHECK_EQ(st.errors, 0);
	CHECK_EQ(st.packets, NCASES);
	f_teardown();
}

static void rx_offload(void)
{
	f_setup(OL_GUEST);
	struct dp_env *e = env();
	static uint8_t got[BIG];
	struct vhk_pkt *p[NCASES + 1];
	for (uint32_t i = 0; i < NCASES; i++) {
		mkframe(&g_fr[i], cases[i].v6, cases[i].proto, cases[i].pay, true, 200 + i);
		struct virtio_net_hdr h = case_hdr(&cases[i], &g_fr[i]);
		p[i] = dp_pkt_make(e->pool, g_fr[i].b, g_fr[i].len);
		p[i]->ol = (struct vhk_pkt_offload){.flags = h.flags,
						    .gso_type = h.gso_type,
						    .hdr_len = h.hdr_len,
						    .gso_size = h.gso_size,
						    .csum_start = h.csum_start,
						    .csum_offset = h.csum_offset};
	}
	/* A frame with a complete checksum flagged DATA_VALID. */
	struct frame dv;
	mkframe(&dv, false, 6, 900, false, 77);
	p[NCASES] = dp_pkt_make(e->pool, dv.b, dv.len);
	p[NCASES]->ol.flags = VHK_PKT_OL_DATA_VALID;
	f_post_rx((int)NCASES + 1);
	CHECK_EQ(dp_enqueue_all(e->vid, 0, p, NCASES + 1, DP_TIMEOUT_MS), (int)NCASES + 1);
	vhk_pkt_free_bulk(p, NCASES + 1);
	for (uint32_t i = 0; i < NCASES; i++) {
		struct virtio_net_hdr_mrg_rxbuf h;
		struct virtio_net_hdr w = case_hdr(&cases[i], &g_fr[i]);
		CHECK_EQ(f_recv(&h, got), (int)g_fr[i].len);
		CHECK(memcmp(got, g_fr[i].b, g_fr[i].len) == 0);
		CHECK_EQ(h.hdr.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
		CHECK_EQ(h.hdr.gso_type, w.gso_type);
		CHECK_EQ(h.hdr.hdr_len, w.hdr_len);
		CHECK_EQ(h.hdr.gso_size, w.gso_size);
		CHECK_EQ(h.hdr.csum_start, w.csum_start);
		CHECK_EQ(h.hdr.csum_offset, w.csum_offset);
	}
	struct virtio_net_hdr_mrg_rxbuf h;
	CHECK_EQ(f_recv(&h, got), (int)dv.len);
	CHECK(memcmp(got, dv.b, dv.len) == 0);
	CHECK_EQ(h.hdr.flags, VIRTIO_NET_HDR_F_DATA_VALID);
	CHECK_EQ(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	CHECK(l4_csum_ok(&dv, got, dv.len));
	f_teardown();
}

/* No GUEST_CSUM: NEEDS_CSUM packets arrive with the checksum completed, flags clear. */
static void rx_sw_csum(void)
{
	f_setup(0);
	struct dp_env *e = env();
	CHECK(!(e->v->features & DP_F(VHK_NET_F_GUEST_CSUM)));
	static const struct olcase sw[] = {
	    {false, 6, 0, 1460}, {true, 6, 0, 1001}, {false, 17, 0, 4000}, {true, 17, 0, 77}};
	enum { NSW = sizeof(sw) / sizeof(sw[0]) };
	static uint8_t got[BIG];
	struct vhk_pkt *p[NSW];
	for (uint32_t i = 0; i < NSW; i++) {
		mkframe(&g_fr[i], sw[i].v6, sw[i].proto, sw[i].pay, true, 300 + i);
		CHECK(!l4_csum_ok(&g_fr[i], g_fr[i].b, g_fr[i].len));
		p[i] = dp_pkt_make(e->pool, g_fr[i].b, g_fr[i].len);
		p[i]->ol = (struct vhk_pkt_offload){.flags = VHK_PKT_OL_NEEDS_CSUM,
						    .csum_start = g_fr[i].l4off,
						    .csum_offset = g_fr[i].csum_off};
	}
	f_post_rx(NSW);
	CHECK_EQ(dp_enqueue_all(e->vid, 0, p, NSW, DP_TIMEOUT_MS), NSW);
	vhk_pkt_free_bulk(p, NSW);
	for (uint32_t i = 0; i < NSW; i++) {
		struct virtio_net_hdr_mrg_rxbuf h;
		const struct frame *fr = &g_fr[i];
		CHECK_EQ(f_recv(&h, got), (int)fr->len);
		CHECK_EQ(h.hdr.flags, 0);
		CHECK_EQ(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
		CHECK_EQ(h.hdr.csum_start, 0);
		CHECK_EQ(h.hdr.csum_offset, 0);
		CHECK(l4_csum_ok(fr, got, fr->len));
		/* Only the two checksum bytes differ from what was sent. */
		uint32_t co = (uint32_t)fr->l4off + fr->csum_off;
		CHECK(memcmp(got, fr->b, co) == 0);
		CHECK(memcmp(got + co + 2, fr->b + co + 2, fr->len - co - 2) == 0);
	}
	f_teardown();
}

/* Malformed TX headers: dropped, counted, chain used, the next good frame passes. */
static void tx_malformed(void)
{
	f_setup(OL_HOST);
	struct dp_env *e = env();
	struct frame *fr = &g_fr[0];
	mkframe(fr, false, 6, 3000, true, 400);
	const struct virtio_net_hdr good = case_hdr(&cases[1], fr);
	struct virtio_net_hdr bad[5];
	for (int i = 0; i < 5; i++)
		bad[i] = good;
	bad[0].csum_start = (uint16_t)(fr->len - 1);	   /* checksum start past the packet */
	bad[1].gso_size = 0;				   /* GSO with size 0 */
	bad[2].hdr_len = (uint16_t)(fr->len + 1);	   /* header length past the packet */
	bad[3].gso_type = 2;				   /* unknown gso type */
	bad[4].csum_offset = (uint16_t)(fr->len - fr->l4off); /* csum field past the end */
	struct vhk_pkt *p = NULL;
	for (int i = 0; i < 5; i++) {
		struct vhk_net_stats st;
		f_send(&bad[i], fr->b, fr->len);
		f_send(&good, fr->b, fr->len);
		CHECK_EQ(dp_dequeue_n(e->vid, 1, e->pool, &p, 1, DP_TIMEOUT_MS), 1);
		CHECK(dp_pkt_equal(p, fr->b, fr->len));
		CHECK_EQ(p->ol.gso_type, good.gso_type);
		CHECK_EQ(p->ol.gso_size, good.gso_size);
		CHECK_EQ(p->ol.hdr_len, good.hdr_len);
		CHECK_EQ(p->ol.csum_start, good.csum_start);
		vhk_pkt_free(p);
		CHECK_EQ(f_reap(2), 2); /* the bad chain was used too */
		CHECK_EQ(vhk_net_get_stats(e->vid, 1, &st), 0);
		CHECK_EQ(st.errors, (uint64_t)i + 1);
		CHECK_EQ(st.packets, (uint64_t)i + 1);
	}
	CHECK_EQ(vhk_pool_avail(e->pool), 8192u);
	f_teardown();
}

#define BOTH(fn)                                                                              \
	static void t_split_##fn(void)                                                        \
	{                                                                                     \
		g_packed = false;                                                             \
		fn();                                                                         \
	}                                                                                     \
	static void t_packed_##fn(void)                                                       \
	{                                                                                     \
		g_packed = true;                                                              \
		fn();                                                                         \
	}

BOTH(tx_offload)
BOTH(rx_offload)
BOTH(rx_sw_csum)
BOTH(tx_malformed)

TEST_MAIN(TEST(t_split_tx_offload), TEST(t_packed_tx_offload), TEST(t_split_rx_offload),
	  TEST(t_packed_rx_offload), TEST(t_split_rx_sw_csum), TEST(t_packed_rx_sw_csum),
	  TEST(t_split_tx_malformed), TEST(t_packed_tx_malformed))
