/* SPDX-License-Identifier: MIT */
/*
 * Offload metadata on both ring formats (issue 4): every scenario runs on a
 * split ring and on a packed ring (the dp fixture with dp_opts.packed). Guest TX
 * of NEEDS_CSUM and GSO TCPV4/TCPV6/UDP frames built from real header bytes
 * must come out of vhk_net_dequeue_burst with exactly the header fields in
 * vhk_pkt.ol and the bytes unchanged; host RX with ol set must show the same
 * fields in the guest header; without GUEST_CSUM the checksum is completed in
 * software (verified here over the pseudo-header); malformed TX headers are
 * dropped, counted as errors, their chains still used, and traffic goes on.
 */
#include <stdlib.h>
#include <string.h>

#include "dp_common.h"
#include "test.h"

#define BIG 8000u

/* ---------------- the dp fixture on the current format ---------------- */

static bool g_packed;	    /* set per case by BOTH() */
static struct dp_env g_env; /* static: every case runs in its own child */

/* The device of the running case. */
static struct dp_env *env(void)
{
	return &g_env;
}

/* A device offering the base features plus @features, on the case's ring format. */
static void f_setup(uint64_t features)
{
	struct dp_opts o = {.features = DP_BASE_FEATURES | features, .packed = g_packed};
	dp_setup(&g_env, &o);
	CHECK_EQ(g_env.packed, g_packed);
}

/* Tear the device down. */
static void f_teardown(void)
{
	dp_teardown(&g_env);
}

/* Guest TX on vring 1: header (own descriptor) + data in two pieces. */
static void f_send(const struct virtio_net_hdr *hdr, const uint8_t *data, uint32_t len)
{
	dp_send(&g_env, 1, hdr, data, len, 2, true, false);
}

/* Reap @count used TX chains; returns how many came back. */
static int f_reap(int count)
{
	return dp_reap(&g_env, 1, count, DP_TIMEOUT_MS);
}

/* @count receive buffers on vring 0, each big enough for one whole packet. */
static void f_post_rx(int count)
{
	dp_post_rx(&g_env, 0, count, g_env.hdr_len + BIG, false, false);
}

/* One packet from vring 0 (in one buffer): header to @hdr, data to @data. */
static int f_recv(struct virtio_net_hdr_mrg_rxbuf *hdr, uint8_t *data)
{
	int nbufs = 0;
	memset(hdr, 0, sizeof(*hdr));
	int n = dp_recv(&g_env, 0, hdr, data, BIG, &nbufs, DP_TIMEOUT_MS);
	CHECK(n >= 0);
	CHECK_EQ(nbufs, 1);
	if (g_env.mrg)
		CHECK_EQ(hdr->num_buffers, 1);
	return n;
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
