/* SPDX-License-Identifier: MIT */
/* virtio-net header encode/decode/validation and the software checksum. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "test.h"
#include "net/net.h"

#define F(b) (1ull << (b))
#define HOST_ALL                                                                                   \
	(F(VHK_NET_F_CSUM) | F(VHK_NET_F_HOST_TSO4) | F(VHK_NET_F_HOST_TSO6) |                     \
	 F(VHK_NET_F_HOST_UFO) | F(VHK_NET_F_HOST_ECN) | F(VHK_F_VERSION_1))

/* A known IPv4/UDP frame (59 bytes, odd UDP payload); UDP csum 0x2085, IP csum 0xa538. */
static const uint8_t g_frame[59] = {
    0x52, 0x54, 0x00, 0x00, 0x00, 0x02, 0x52, 0x54, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45,
    0x00, 0x00, 0x2d, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0xa5, 0x38, 0xc0, 0xa8, 0x01, 0x01,
    0xc0, 0xa8, 0x01, 0x02, 0x04, 0xd2, 0x16, 0x2e, 0x00, 0x19, 0x00, 0x00, 0x68, 0x65, 0x6c,
    0x6c, 0x6f, 0x2c, 0x20, 0x76, 0x68, 0x6f, 0x73, 0x74, 0x6b, 0x69, 0x74, 0x21, 0x21};
#define UDP_OFF	     34
#define UDP_CSUM_OFF 6

/* Round trip of both header layouts, little-endian on the wire. */
static void t_hdr_encode_decode(void)
{
	struct net_hdr h = {1, 4, 0x1234, 0x5678, 0x9abc, 0xdef0, 0x0102}, g;
	uint8_t buf[12];

	memset(buf, 0xee, sizeof(buf));
	net_hdr_encode(&h, buf, 10);
	CHECK_EQ(buf[0], 1);
	CHECK_EQ(buf[1], 4);
	CHECK_EQ(buf[2], 0x34);
	CHECK_EQ(buf[3], 0x12);
	CHECK_EQ(buf[9], 0xde);
	CHECK_EQ(buf[10], 0xee); /* untouched with the 10-byte layout */
	net_hdr_decode(buf, 10, &g);
	CHECK_EQ(g.num_buffers, 0);
	CHECK_EQ(g.csum_offset, 0xdef0);
	net_hdr_encode(&h, buf, 12);
	CHECK_EQ(buf[10], 0x02);
	CHECK_EQ(buf[11], 0x01);
	net_hdr_decode(buf, 12, &g);
	CHECK(memcmp(&g, &h, sizeof(g)) == 0);
	CHECK_EQ(net_hdr_len(0), 10);
	CHECK_EQ(net_hdr_len(F(VHK_F_VERSION_1)), 12);
	CHECK_EQ(net_hdr_len(F(VHK_NET_F_MRG_RXBUF)), 12);
}

struct vcase {
	const char *what;
	struct net_hdr h;
	uint32_t pkt_len;
	uint64_t features;
	int expect;
};

/* Table of malformed and valid transmit headers. */
static void t_hdr_validate_table(void)
{
	static const struct vcase cases[] = {
	    {"plain", {0}, 60, 0, 0},
	    {"csum ok", {.flags = 1, .csum_start = 34, .csum_offset = 6}, 42, HOST_ALL, 0},
	    {"csum field past end",
	     {.flags = 1, .csum_start = 34, .csum_offset = 6},
	     41,
	     HOST_ALL,
	     -EINVAL},
	    {"csum_start past packet",
	     {.flags = 1, .csum_start = 0xffff, .csum_offset = 0xffff},
	     60,
	     HOST_ALL,
	     -EINVAL},
	    {"csum without F_CSUM",
	     {.flags = 1, .csum_start = 34, .csum_offset = 6},
	     60,
	     HOST_ALL & ~F(VHK_NET_F_CSUM),
	     -EINVAL},
	    {"data valid", {.flags = 2}, 60, HOST_ALL, 0},
	    {"unknown flag 4", {.flags = 4}, 60, HOST_ALL, -EINVAL},
	    {"unknown flag 0x80", {.flags = 0x81, .csum_start = 1}, 60, HOST_ALL, -EINVAL},
	    {"tso4 ok",
	     {.flags = 1,
	      .gso_type = 1,
	      .hdr_len = 54,
	      .gso_size = 1448,
	      .csum_start = 34,
	      .csum_offset = 16},
	     9000,
	     HOST_ALL,
	     0},
	    {"tso4 gso_size 0",
	     {.flags = 1,
	      .gso_type = 1,
	      .hdr_len = 54,
	      .gso_size = 0,
	      .csum_start = 34,
	      .csum_offset = 16},
	     9000,
	     HOST_ALL,
	     -EINVAL},
	    {"tso4 not negotiated",
	     {.gso_type = 1, .hdr_len = 54, .gso_size = 1448},
	     9000,
	     HOST_ALL & ~F(VHK_NET_F_HOST_TSO4),
	     -EINVAL},
	    {"tso6 ok", {.gso_type = 4, .hdr_len = 74, .gso_size = 1428}, 9000, HOST_ALL, 0},
	    {"tso6 not negotiated",
	     {.gso_type = 4, .gso_size = 1428},
	     9000,
	     HOST_ALL & ~F(VHK_NET_F_HOST_TSO6),
	     -EINVAL},
	    {"ufo ok", {.gso_type = 3, .gso_size = 1400}, 9000, HOST_ALL, 0},
	    {"ufo not negotiated",
	     {.gso_type = 3, .gso_size = 1400},
	     9000,
	     HOST_ALL & ~F(VHK_NET_F_HOST_UFO),
	     -EINVAL},
	    {"ecn ok", {.gso_type = 0x81, .gso_size = 1400}, 9000, HOST_ALL, 0},
	    {"ecn not negotiated",
	     {.gso_type = 0x81, .gso_size = 1400},
	     9000,
	     HOST_ALL & ~F(VHK_NET_F_HOST_ECN),
	     -EINVAL},
	    {"unknown gso 2", {.gso_type = 2, .gso_size = 1400}, 9000, HOST_ALL, -EINVAL},
	    {"unknown gso 5", {.gso_type = 5, .gso_size = 1400}, 9000, HOST_ALL, -EINVAL},
	    {"unknown gso 0x7f", {.gso_type = 0x7f, .gso_size = 1400}, 9000, HOST_ALL, -EINVAL},
	    {"ecn alone", {.gso_type = 0x80, .gso_size = 1400}, 9000, HOST_ALL, -EINVAL},
	    {"hdr_len past packet",
	     {.gso_type = 1, .hdr_len = 100, .gso_size = 1400},
	     99,
	     HOST_ALL,
	     -EINVAL},
	    {"hdr_len past packet, no gso", {.hdr_len = 61}, 60, HOST_ALL, -EINVAL},
	    {"hdr_len == packet", {.hdr_len = 60}, 60, HOST_ALL, 0},
	    {"empty packet csum", {.flags = 1}, 0, HOST_ALL, -EINVAL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct vcase *c = &cases[i];
		int r = net_hdr_validate_tx(&c->h, c->pkt_len, c->features);
		if (r != c->expect)
			fprintf(stderr, "# case '%s': got %d\n", c->what, r);
		CHECK_EQ(r, c->expect);
	}
}

/* Offload metadata from a validated header keeps only meaningful fields. */
static void t_hdr_to_offload(void)
{
	struct net_hdr h = {.flags = 2,
			    .gso_type = 0,
			    .hdr_len = 14,
			    .gso_size = 999,
			    .csum_start = 5,
			    .csum_offset = 7};
	struct vhk_pkt_offload ol;

	net_hdr_to_offload(&h, &ol);
	CHECK_EQ(ol.flags, 2);
	CHECK_EQ(ol.gso_size, 0);
	CHECK_EQ(ol.csum_start, 0);
	CHECK_EQ(ol.hdr_len, 14);
	h.flags = 1;
	h.gso_type = 1;
	net_hdr_to_offload(&h, &ol);
	CHECK_EQ(ol.gso_size, 999);
	CHECK_EQ(ol.csum_start, 5);
	CHECK_EQ(ol.csum_offset, 7);
}

/* Ones-complement helpers: the IPv4 header sums to 0xffff, odd starts swap. */
static void t_csum_basic(void)
{
	CHECK_EQ(net_csum_fold(net_csum_add(0, g_frame + 14, 20, false)), 0xffff);
	/* Split at an odd boundary: same result as one pass. */
	uint32_t s = net_csum_add(0, g_frame + 14, 7, false);
	s = net_csum_add(s, g_frame + 21, 13, true);
	CHECK_EQ(net_csum_fold(s), 0xffff);
	uint8_t one[1] = {0xab};
	uint16_t w;
	uint8_t two[2] = {0xab, 0};
	memcpy(&w, two, 2);
	CHECK_EQ(net_csum_fold(net_csum_add(0, one, 1, false)), w);
	CHECK_EQ(net_csum_fold(0x1ffffu), 1);
}

/* Build @frame into a chain of segments of the given lengths. */
static struct vhk_pkt *frame_chain(struct vhk_pool *pool, const uint8_t *frame, uint32_t len,
				   const uint32_t *seglens, uint32_t nseg)
{
	struct vhk_pkt *head = NULL;
	uint32_t off = 0;

	for (uint32_t i = 0; i < nseg && off < len; i++) {
		struct vhk_pkt *p = vhk_pkt_alloc(pool);
		uint32_t n = MIN(seglens[i], len - off);
		CHECK(p != NULL);
		memcpy(vhk_pkt_append(p, n), frame + off, n);
		off += n;
		if (!head)
			head = p;
		else
			CHECK_EQ(vhk_pkt_chain(head, p), 0);
	}
	CHECK_EQ(off, len);
	return head;
}

/* Completing a NEEDS_CSUM UDP checksum gives the known value for any split. */
static void t_csum_known_udp(void)
{
	static const uint32_t splits[][4] = {
	    {59, 0, 0, 0}, {35, 24, 0, 0}, {1, 40, 7, 11}, {41, 1, 1, 16}, {34, 3, 5, 17}};
	uint8_t frame[59];
	struct vhk_pool *pool;

	CHECK_EQ(vhk_pool_create(16, 64, 0, 0, &pool), 0);
	memcpy(frame, g_frame, sizeof(frame));
	/* Partial checksum as a stack leaves it: the folded pseudo-header sum. */
	frame[UDP_OFF + UDP_CSUM_OFF] = 0x83;
	frame[UDP_OFF + UDP_CSUM_OFF + 1] = 0x7e;
	for (size_t i = 0; i < ARRAY_SIZE(splits); i++) {
		struct vhk_pkt *p = frame_chain(pool, frame, sizeof(frame), splits[i], 4);
		uint16_t c = net_csum_pkt(p, UDP_OFF);
		uint8_t b[2];
		memcpy(b, &c, 2);
		CHECK_EQ(b[0], 0x20);
		CHECK_EQ(b[1], 0x85);
		vhk_pkt_free(p);
	}
	CHECK_EQ(vhk_pool_avail(pool), 16);
	vhk_pool_free(pool);
}

/* Receive header construction against the guest's features. */
static void t_hdr_from_pkt(void)
{
	struct vhk_pool *pool;
	struct net_hdr h;
	uint16_t c = 0;
	uint32_t off = 0;
	const uint32_t one[1] = {59};
	const uint64_t guest = F(VHK_NET_F_GUEST_CSUM) | F(VHK_NET_F_GUEST_TSO4);

	CHECK_EQ(vhk_pool_create(4, 128, 0, 0, &pool), 0);
	struct vhk_pkt *p = frame_chain(pool, g_frame, sizeof(g_frame), one, 1);
	CHECK_EQ(net_hdr_from_pkt(p, guest, &h, &c, &off), 0);
	CHECK_EQ(h.flags, 0);
	p->ol.flags = VHK_PKT_OL_NEEDS_CSUM;
	p->ol.csum_start = UDP_OFF;
	p->ol.csum_offset = UDP_CSUM_OFF;
	CHECK_EQ(net_hdr_from_pkt(p, guest, &h, &c, &off), 0);
	CHECK_EQ(h.flags, VHK_PKT_OL_NEEDS_CSUM);
	CHECK_EQ(h.csum_start, UDP_OFF);
	CHECK_EQ(h.csum_offset, UDP_CSUM_OFF);
	/* Without GUEST_CSUM: software checksum requested at the right place. */
	CHECK_EQ(net_hdr_from_pkt(p, 0, &h, &c, &off), 1);
	CHECK_EQ(h.flags, 0);
	CHECK_EQ(off, UDP_OFF + UDP_CSUM_OFF);
	p->ol.csum_offset = 30; /* field past the end */
	CHECK_EQ(net_hdr_from_pkt(p, guest, &h, &c, &off), -EINVAL);
	p->ol.csum_offset = UDP_CSUM_OFF;
	p->ol.gso_type = VHK_PKT_GSO_TCPV4;
	p->ol.gso_size = 1448;
	p->ol.hdr_len = 54;
	CHECK_EQ(net_hdr_from_pkt(p, guest, &h, &c, &off), 0);
	CHECK_EQ(h.gso_type, 1);
	CHECK_EQ(h.gso_size, 1448);
	CHECK_EQ(net_hdr_from_pkt(p, F(VHK_NET_F_GUEST_CSUM), &h, &c, &off), -EINVAL);
	CHECK_EQ(net_hdr_from_pkt(p, F(VHK_NET_F_GUEST_TSO4), &h, &c, &off), -EINVAL);
	p->ol.gso_type = VHK_PKT_GSO_TCPV6;
	CHECK_EQ(net_hdr_from_pkt(p, guest, &h, &c, &off), -EINVAL);
	p->ol.gso_type = VHK_PKT_GSO_TCPV4;
	p->ol.gso_size = 0;
	CHECK_EQ(net_hdr_from_pkt(p, guest, &h, &c, &off), -EINVAL);
	p->ol.gso_size = 1448;
	p->ol.hdr_len = 60;
	CHECK_EQ(net_hdr_from_pkt(p, guest, &h, &c, &off), -EINVAL);
	memset(&p->ol, 0, sizeof(p->ol));
	p->ol.flags = VHK_PKT_OL_DATA_VALID;
	CHECK_EQ(net_hdr_from_pkt(p, guest, &h, &c, &off), 0);
	CHECK_EQ(h.flags, VHK_PKT_OL_DATA_VALID);
	CHECK_EQ(net_hdr_from_pkt(p, 0, &h, &c, &off), 0);
	CHECK_EQ(h.flags, 0);
	p->ol.flags = 0x10;
	CHECK_EQ(net_hdr_from_pkt(p, guest, &h, &c, &off), -EINVAL);
	vhk_pkt_free(p);
	vhk_pool_free(pool);
}

/*
 * net_hdr_put(): whatever the buffer held (equal words, one word differing,
 * all differing), it ends up holding exactly the header, and the bytes
 * after the header are not touched, for both layouts.
 */
static void t_hdr_put(void)
{
	struct net_hdr h = {0, 0, 0, 0, 0, 0, 1};
	uint8_t want[12], buf[16];

	for (uint32_t hlen = 10; hlen <= 12; hlen += 2) {
		net_hdr_encode(&h, want, hlen);
		for (int pattern = 0; pattern < 4; pattern++) {
			memset(buf, 0xa5, sizeof(buf));
			memcpy(buf, want, hlen);
			if (pattern & 1)
				buf[3] ^= 0x40; /* first word differs */
			if (pattern & 2)
				buf[hlen - 1] ^= 0x01; /* last word differs */
			net_hdr_put(NULL, buf, want, hlen);
			CHECK(memcmp(buf, want, hlen) == 0);
			for (uint32_t i = hlen; i < sizeof(buf); i++)
				CHECK_EQ(buf[i], 0xa5);
		}
	}
}

TEST_MAIN(TEST(t_hdr_encode_decode), TEST(t_hdr_put), TEST(t_hdr_validate_table), TEST(t_hdr_to_offload),
	  TEST(t_csum_basic), TEST(t_csum_known_udp), TEST(t_hdr_from_pkt))
