/* SPDX-License-Identifier: MIT */
/*
 * vhk-fwd --mode echo: ARP requests and ICMP echo requests are answered
 * (addresses, opcodes/types and checksums checked here), everything else is
 * dropped and counted; probes and announcements get no answer.
 */
#include <signal.h>
#include <string.h>

#include "test.h"
#include "fwd_common.h"

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t fwd_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static const uint8_t guest_ip[4] = {10, 0, 0, 2};
static const uint8_t peer_ip[4] = {10, 0, 0, 1};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* ARP request "who has @tpa, tell @spa" from the guest; returns 42. */
static uint32_t arp_request(uint8_t *f, const uint8_t spa[4], const uint8_t tpa[4])
{
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	put16(f + 12, 0x0806);
	uint8_t *a = f + 14;
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, 1);
	memcpy(a + 8, guest_mac, 6);
	memcpy(a + 14, spa, 4);
	memset(a + 18, 0, 6);
	memcpy(a + 24, tpa, 4);
	return 42;
}

/* ICMP echo request with @payload bytes of data; returns the frame length. */
static uint32_t icmp_request(uint8_t *f, uint32_t payload, uint16_t id, uint16_t seq)
{
	uint8_t *ip = f + 14, *ic = ip + 20;
	uint32_t icmp_len = 8 + payload;

	memcpy(f, fwd_mac, 6);
	memcpy(f + 6, guest_mac, 6);
	put16(f + 12, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + icmp_len));
	put16(ip + 4, 0x1234);
	ip[6] = 0x40;
	ip[8] = 17;
	ip[9] = 1;
	memcpy(ip + 12, guest_ip, 4);
	memcpy(ip + 16, peer_ip, 4);
	put16(ip + 10, inet_csum(ip, 20, 0));
	ic[0] = 8;
	ic[1] = 0;
	put16(ic + 2, 0);
	put16(ic + 4, id);
	put16(ic + 6, seq);
	for (uint32_t i = 0; i < payload; i++)
		ic[8 + i] = (uint8_t)(i * 7 + seq);
	put16(ic + 2, inet_csum(ic, icmp_len, 0));
	return 14 + 20 + icmp_len;
}

static void start(struct fwdproc *fp, struct guest *g)
{
	static const char *const args[] = {"--mode", "echo", NULL};

	fwd_prepare(fp);
	fwd_spawn(fp, args);
	guest_connect(g, fp->path, 1, 0);
}

static void stop(struct fwdproc *fp, struct guest *g)
{
	guest_close(g);
	CHECK_EQ(fwd_finish(fp, SIGTERM), 0);
}

static void t_arp_reply(void)
{
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048], r[2048];
	uint32_t len;

	start(&fp, &g);
	guest_send(&g, 0, f, arp_request(f, guest_ip, peer_ip));
	CHECK(guest_recv(&g, 0, r, &len, 5000));
	CHECK(len >= 42);
	CHECK(!memcmp(r, guest_mac, 6));        /* to the asker */
	CHECK(!memcmp(r + 6, fwd_mac, 6));      /* from us */
	CHECK(r[12] == 0x08 && r[13] == 0x06);
	const uint8_t *a = r + 14;
	CHECK(a[0] == 0 && a[1] == 1 && a[2] == 0x08 && a[3] == 0 && a[4] == 6 && a[5] == 4);
	CHECK(a[6] == 0 && a[7] == 2);          /* reply */
	CHECK(!memcmp(a + 8, fwd_mac, 6));      /* sender: us, with the asked address */
	CHECK(!memcmp(a + 14, peer_ip, 4));
	CHECK(!memcmp(a + 18, guest_mac, 6));   /* target: the asker */
	CHECK(!memcmp(a + 24, guest_ip, 4));
	/* any target address is answered */
	static const uint8_t other[4] = {192, 168, 77, 9};
	guest_send(&g, 0, f, arp_request(f, guest_ip, other));
	CHECK(guest_recv(&g, 0, r, &len, 5000));
	CHECK(!memcmp(r + 14 + 14, other, 4));
	stop(&fp, &g);
	CHECK_EQ(fwd_json_u64(&fp, "rx_packets"), 2);
	CHECK_EQ(fwd_json_u64(&fp, "tx_packets"), 2);
	CHECK_EQ(fwd_json_u64(&fp, "dropped"), 0);
	fwd_cleanup(&fp);
}

/* Check the echo reply @r (@len bytes) against the request @q (@qlen bytes). */
static void check_icmp_reply(const uint8_t *q, uint32_t qlen, const uint8_t *r, uint32_t len)
{
	const uint8_t *ip = r + 14, *ic = ip + 20;

	CHECK_EQ(len, qlen);
	CHECK(!memcmp(r, guest_mac, 6));
	CHECK(!memcmp(r + 6, fwd_mac, 6));
	CHECK(r[12] == 0x08 && r[13] == 0x00);
	CHECK_EQ(ip[0], 0x45);
	CHECK_EQ(ip[9], 1);
	CHECK(!memcmp(ip + 12, peer_ip, 4));    /* addresses swapped */
	CHECK(!memcmp(ip + 16, guest_ip, 4));
	CHECK_EQ(inet_csum(ip, 20, 0), 0);      /* IP header checksum */
	CHECK_EQ(ic[0], 0);                     /* echo reply */
	CHECK_EQ(ic[1], 0);
	CHECK_EQ(inet_csum(ic, len - 34, 0), 0); /* ICMP checksum over everything */
	CHECK(!memcmp(ic + 4, q + 38, qlen - 38)); /* id, seq and data unchanged */
}

static void t_icmp_reply(void)
{
	static const uint32_t sizes[] = {0, 1, 56, 57, 1000, 1472};
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048], r[2048];
	uint32_t len;

	start(&fp, &g);
	for (uint16_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t qlen = icmp_request(f, sizes[i], 0xbeef, i);
		guest_send(&g, 0, f, qlen);
		CHECK(guest_recv(&g, 0, r, &len, 5000));
		check_icmp_reply(f, qlen, r, len);
	}
	stop(&fp, &g);
	CHECK_EQ(fwd_json_u64(&fp, "rx_packets"), 6);
	CHECK_EQ(fwd_json_u64(&fp, "tx_packets"), 6);
	fwd_cleanup(&fp);
}

static void t_other_frames_dropped(void)
{
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048], r[2048];
	uint32_t len, qlen;

	start(&fp, &g);
	/* ARP probe (sender 0.0.0.0) and announcement (sender == target): no answer */
	static const uint8_t zero[4] = {0, 0, 0, 0};
	guest_send(&g, 0, f, arp_request(f, zero, guest_ip));
	guest_send(&g, 0, f, arp_request(f, guest_ip, guest_ip));
	/* echo reply (type 0), a UDP frame, an IPv6 frame, a bad IP checksum */
	qlen = icmp_request(f, 32, 1, 1);
	f[34] = 0;
	guest_send(&g, 0, f, qlen);
	qlen = icmp_request(f, 32, 1, 2);
	f[23] = 17;
	guest_send(&g, 0, f, qlen);
	qlen = icmp_request(f, 32, 1, 3);
	f[12] = 0x86, f[13] = 0xdd;
	guest_send(&g, 0, f, qlen);
	qlen = icmp_request(f, 32, 1, 4);
	f[24] ^= 0x55;
	guest_send(&g, 0, f, qlen);
	/* a truncated request: IP total length beyond the frame */
	qlen = icmp_request(f, 32, 1, 5);
	guest_send(&g, 0, f, qlen - 10);
	guest_wait_sent(&g, 0);
	CHECK(!guest_recv(&g, 0, r, &len, 300));
	/* a good request after all that is still answered */
	qlen = icmp_request(f, 16, 2, 9);
	guest_send(&g, 0, f, qlen);
	CHECK(guest_recv(&g, 0, r, &len, 5000));
	check_icmp_reply(f, qlen, r, len);
	stop(&fp, &g);
	CHECK_EQ(fwd_json_u64(&fp, "rx_packets"), 8);
	CHECK_EQ(fwd_json_u64(&fp, "tx_packets"), 1);
	CHECK_EQ(fwd_json_u64(&fp, "dropped"), 7);
	fwd_cleanup(&fp);
}

TEST_MAIN(TEST(t_arp_reply), TEST(t_icmp_reply), TEST(t_other_frames_dropped))
