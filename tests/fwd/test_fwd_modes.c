/* SPDX-License-Identifier: MIT */
/*
 * vhk-fwd forwarding modes against the test frontend: rxonly counts,
 * txonly frame format and length, io (unchanged), mac (rewritten addresses),
 * --tx-first, --start-delay and several queue pairs.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "test.h"
#include "fwd_common.h"

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Frame @i: Ethernet addresses, a test ethertype and a pattern. */
static uint32_t make_frame(uint8_t *f, uint32_t i, uint32_t q)
{
	uint32_t len = 60 + (i * 97 + q * 13) % (1514 - 60 + 1);

	for (uint32_t b = 0; b < len; b++)
		f[b] = (uint8_t)(b * 31 + i * 7 + q);
	static const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x01}, src[6] = {0x52, 0x54, 0, 1, 2, 3};
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x88, f[13] = 0xb5; /* local experimental ethertype */
	return len;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void spawn_mode(struct fwdproc *fp, const char *const *args)
{
	fwd_prepare(fp);
	fwd_spawn(fp, args);
}

static void t_rxonly_counts(void)
{
	static const char *const args[] = {"--mode", "rxonly", NULL};
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048];
	uint64_t bytes = 0;

	spawn_mode(&fp, args);
	guest_connect(&g, fp.path, 1, 0);
	for (uint32_t i = 0; i < 600; i++) {
		uint32_t len = make_frame(f, i, 0);
		guest_send(&g, 0, f, len);
		bytes += len;
	}
	guest_wait_sent(&g, 0);
	uint32_t len;
	CHECK(!guest_recv(&g, 0, f, &len, 100)); /* nothing comes back */
	guest_close(&g);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	CHECK_EQ(fwd_json_u64(&fp, "rx_packets"), 600);
	CHECK(fwd_json_u64(&fp, "rx_bursts") >= 600 / 32 && fwd_json_u64(&fp, "rx_bursts") <= 600);
	CHECK_EQ(fwd_json_u64(&fp, "tx_bursts"), 0);
	CHECK_EQ(fwd_json_u64(&fp, "enqueue_cycles"), 0);
	CHECK_EQ(fwd_json_u64(&fp, "rx_bytes"), bytes);
	CHECK_EQ(fwd_json_u64(&fp, "tx_packets"), 0);
	CHECK_EQ(fwd_json_u64(&fp, "dropped"), 0);
	fwd_cleanup(&fp);
}

/* Check one txonly frame: valid Ethernet/IPv4/UDP of exactly @want bytes. */
static void check_udp(const uint8_t *f, uint32_t len, uint32_t want)
{
	const uint8_t *ip = f + 14, *udp = ip + 20;

	CHECK_EQ(len, want);
	CHECK_EQ(get16(f + 12), 0x0800);
	CHECK_EQ(ip[0], 0x45);
	CHECK_EQ(get16(ip + 2), want - 14);
	CHECK_EQ(get16(ip + 6) & 0x3fff, 0);
	CHECK(ip[8] > 0);
	CHECK_EQ(ip[9], 17);
	CHECK_EQ(inet_csum(ip, 20, 0), 0);
	CHECK_EQ(get16(udp + 4), want - 34);
	CHECK(get16(udp + 6) != 0); /* checksum present */
	uint32_t pseudo = (uint32_t)get16(ip + 12) + get16(ip + 14) + get16(ip + 16) +
			  get16(ip + 18) + 17 + (want - 34);
	CHECK_EQ(inet_csum(udp, want - 34, pseudo), 0);
	CHECK(!memcmp(f + 6, "\x02\0\0\0\0\x01", 6)); /* from our default MAC */
}

static void txonly_len(uint32_t pkt_len, const char *arg)
{
	const char *const args[] = {"--mode", "txonly", "--pkt-len", arg, NULL};
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048];
	uint32_t len;

	spawn_mode(&fp, args);
	guest_connect(&g, fp.path, 1, 0);
	for (int i = 0; i < 1000; i++) {
		CHECK(guest_recv(&g, 0, f, &len, 5000));
		check_udp(f, len, pkt_len);
	}
	guest_close(&g);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	uint64_t tx = fwd_json_u64(&fp, "tx_packets");
	CHECK(tx >= 1000);
	CHECK_EQ(fwd_json_u64(&fp, "tx_bytes"), tx * pkt_len);
	CHECK_EQ(fwd_json_u64(&fp, "rx_packets"), 0);
	fwd_cleanup(&fp);
}

static void t_txonly_frames(void)
{
	txonly_len(64, "64");
	txonly_len(42, "42");
	txonly_len(1514, "1514");
	txonly_len(333, "333");
}

static void t_io_unchanged(void)
{
	static const char *const args[] = {"--mode", "io", NULL};
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048], r[2048];
	uint32_t len;
	uint64_t bytes = 0;

	spawn_mode(&fp, args);
	guest_connect(&g, fp.path, 1, 0);
	for (uint32_t i = 0; i < 300; i++) {
		uint32_t flen = make_frame(f, i, 0);
		guest_send(&g, 0, f, flen);
		CHECK(guest_recv(&g, 0, r, &len, 5000));
		CHECK_EQ(len, flen);
		CHECK(!memcmp(r, f, flen));
		bytes += flen;
	}
	guest_close(&g);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	CHECK_EQ(fwd_json_u64(&fp, "rx_packets"), 300);
	CHECK_EQ(fwd_json_u64(&fp, "tx_packets"), 300);
	/* One frame in flight at a time: every burst holds exactly one. */
	CHECK_EQ(fwd_json_u64(&fp, "rx_bursts"), 300);
	CHECK_EQ(fwd_json_u64(&fp, "tx_bursts"), 300);
	CHECK(fwd_json_u64(&fp, "dequeue_cycles") > 0);
	CHECK(fwd_json_u64(&fp, "enqueue_cycles") > 0);
	CHECK(fwd_json_u64(&fp, "dequeue_cycles") + fwd_json_u64(&fp, "enqueue_cycles") <=
	      fwd_json_u64(&fp, "busy_cycles"));
	CHECK_EQ(fwd_json_u64(&fp, "rx_bytes"), bytes);
	CHECK_EQ(fwd_json_u64(&fp, "tx_bytes"), bytes);
	CHECK_EQ(fwd_json_u64(&fp, "dropped"), 0);
	fwd_cleanup(&fp);
}

static void t_mac_rewrite(void)
{
	static const char *const args[] = {"--mode", "mac", "--mac", "02:aa:bb:cc:dd:ee", NULL};
	static const uint8_t ours[6] = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048], r[2048];
	uint32_t len;

	spawn_mode(&fp, args);
	guest_connect(&g, fp.path, 1, 0);
	for (uint32_t i = 0; i < 50; i++) {
		uint32_t flen = make_frame(f, i, 0);
		guest_send(&g, 0, f, flen);
		CHECK(guest_recv(&g, 0, r, &len, 5000));
		CHECK_EQ(len, flen);
		CHECK(!memcmp(r, f + 6, 6)); /* back to the sender */
		CHECK(!memcmp(r + 6, ours, 6));
		CHECK(!memcmp(r + 12, f + 12, flen - 12));
	}
	guest_close(&g);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	CHECK_EQ(fwd_json_u64(&fp, "tx_packets"), 50);
	fwd_cleanup(&fp);
}

/* Exactly @n txonly frames of @pkt_len bytes arrive on queue 0, then nothing (the last in @f). */
static void recv_udp_burst_only(struct guest *g, int n, uint32_t pkt_len, uint8_t *f,
				uint32_t *len)
{
	for (int i = 0; i < n; i++) {
		CHECK(guest_recv(g, 0, f, len, 5000));
		check_udp(f, *len, pkt_len);
	}
	uint8_t extra[2048];
	uint32_t elen;
	CHECK(!guest_recv(g, 0, extra, &elen, 300));
}

static void t_tx_first(void)
{
	static const char *const args[] = {"--mode", "io", "--tx-first", "--burst", "8",
					   "--pkt-len", "100", NULL};
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048];
	uint32_t len;

	spawn_mode(&fp, args);
	guest_connect(&g, fp.path, 1, 0);
	recv_udp_burst_only(&g, 8, 100, f, &len); /* one burst only */
	/* the loop: sending one back makes it come back again (io mode) */
	guest_send(&g, 0, f, len);
	CHECK(guest_recv(&g, 0, f, &len, 5000));
	check_udp(f, len, 100);
	guest_close(&g);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	CHECK_EQ(fwd_json_u64(&fp, "tx_packets"), 9);
	CHECK_EQ(fwd_json_u64(&fp, "rx_packets"), 1);
	fwd_cleanup(&fp);
}

/* --tx-first=3: three bursts start the loop, then only what comes back is sent. */
static void t_tx_first_bursts(void)
{
	static const char *const args[] = {"--mode", "io", "--tx-first=3", "--burst", "4",
					   "--pkt-len", "90", NULL};
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048];
	uint32_t len;

	spawn_mode(&fp, args);
	guest_connect(&g, fp.path, 1, 0);
	recv_udp_burst_only(&g, 12, 90, f, &len); /* three bursts only */
	guest_close(&g);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	CHECK_EQ(fwd_json_u64(&fp, "tx_packets"), 12);
	fwd_cleanup(&fp);
}

/* --start-delay: nothing reaches the guest before the delay, then traffic flows. */
static void t_start_delay(void)
{
	static const char *const args[] = {"--mode", "txonly", "--start-delay", "1.5", "--burst",
					   "4", "--pkt-len", "80", NULL};
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048];
	uint32_t len;

	spawn_mode(&fp, args);
	guest_connect(&g, fp.path, 1, 0);
	int64_t t0 = now_ms();
	CHECK(!guest_recv(&g, 0, f, &len, 1000)); /* held back */
	CHECK(guest_recv(&g, 0, f, &len, 5000));  /* then sent */
	CHECK(now_ms() - t0 >= 1400);
	check_udp(f, len, 80);
	guest_close(&g);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	CHECK(fwd_json_u64(&fp, "tx_packets") > 0);
	fwd_cleanup(&fp);
}

static void t_two_queue_pairs(void)
{
	static const char *const args[] = {"--mode", "io", "--queues", "2", NULL};
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048], r[2048];
	uint32_t len;

	spawn_mode(&fp, args);
	guest_connect(&g, fp.path, 2, 0);
	for (uint32_t i = 0; i < 40; i++) {
		uint32_t q = i % 2, flen = make_frame(f, i, q);
		guest_send(&g, q, f, flen);
		CHECK(guest_recv(&g, q, r, &len, 5000));
		CHECK_EQ(len, flen);
		CHECK(!memcmp(r, f, flen));
	}
	guest_close(&g);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	CHECK_EQ(fwd_json_u64(&fp, "tx_packets"), 40);
	fwd_cleanup(&fp);
}

/* @len bytes of @f as hex into @hex (2 * len + 1 bytes). */
static void to_hex(const uint8_t *f, uint32_t len, char *hex)
{
	for (uint32_t i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", f[i]);
}

/*
 * --expect-frame (twice): frames equal to either are counted as received
 * only; a changed byte (first, last), one byte less or more, another frame
 * are counted in rx_unexpected. Frame A (3000 bytes) spans two pool
 * buffers of vhk-fwd, so the comparison crosses segments.
 */
static void t_expect_frame(void)
{
	static uint8_t a[3000], b[60], x[3001];
	static char ha[2 * sizeof(a) + 1], hb[2 * sizeof(b) + 1];
	const char *const args[] = {"--mode", "rxonly", "--expect-frame", ha, "--expect-frame", hb,
				    NULL};
	struct fwdproc fp;
	struct guest g;

	for (uint32_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i * 13 + 1);
	for (uint32_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(0xf0 - i);
	to_hex(a, sizeof(a), ha);
	to_hex(b, sizeof(b), hb);
	spawn_mode(&fp, args);
	guest_connect(&g, fp.path, 1, 0);
	for (int i = 0; i < 5; i++) {
		guest_send(&g, 0, a, sizeof(a));
		guest_send(&g, 0, b, sizeof(b));
	}
	memcpy(x, a, sizeof(a));
	x[0] ^= 1;
	guest_send(&g, 0, x, sizeof(a)); /* first byte differs */
	x[0] ^= 1;
	x[sizeof(a) - 1] ^= 0x80;
	guest_send(&g, 0, x, sizeof(a)); /* last byte differs */
	x[sizeof(a) - 1] ^= 0x80;
	guest_send(&g, 0, x, sizeof(a) - 1); /* one byte short */
	x[sizeof(a)] = 0;
	guest_send(&g, 0, x, sizeof(a) + 1); /* one byte more */
	guest_send(&g, 0, b, sizeof(b) - 1);
	guest_wait_sent(&g, 0);
	guest_close(&g);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	CHECK_EQ(fwd_json_u64(&fp, "rx_packets"), 15);
	CHECK_EQ(fwd_json_u64(&fp, "rx_unexpected"), 5);
	CHECK(strstr(fp.out, "rx frames not given by --expect-frame: 5"));
	fwd_cleanup(&fp);
}

TEST_MAIN(TEST(t_rxonly_counts), TEST(t_txonly_frames), TEST(t_io_unchanged),
	  TEST(t_mac_rewrite), TEST(t_tx_first), TEST(t_tx_first_bursts), TEST(t_start_delay), TEST(t_two_queue_pairs),
	  TEST(t_expect_frame))
