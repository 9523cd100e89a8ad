/* SPDX-License-Identifier: MIT */
/*
 * Growth checks: the hostile exchanges of test_hostile.c and full (or cut
 * short) connect-negotiate-setup-disconnect cycles on split and on packed
 * rings, repeated thousands of times. The library runs in this process, so
 * any fd, mapping or memory it leaks shows in /proc/self: the fd count, the
 * mapping count, the RSS and the malloc heap in use must stay within a small
 * fixed slack of their value after a warm-up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define ITERS 3000
#define WARMUP 200
#define FD_SLACK 2
#define MAP_SLACK 4
#define RSS_SLACK_KIB (4 * 1024)
#define HEAP_SLACK_KIB 256

/* ASan's quarantine and allocator make RSS and mallinfo meaningless. */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_CHECKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_CHECKS 0
#endif
#endif
#ifndef MEM_CHECKS
#define MEM_CHECKS 1
#endif

static const struct vhk_device_ops one_q_ops = {.name = "it-1q", .min_queues = 1};
static const char *sock_path;
static int mfd = -1;        /* 64 KiB memfd for memory-table exchanges */
static uint8_t *mfd_map;

struct usage {
	int fds, maps;
	long rss, heap;
};

/* Snapshot once every connection so far is gone. */
static struct usage usage_now(void)
{
	CHECK(ev_wait(EV_DESTROY_CONN, ev_count(EV_NEW_CONN), 5000));
	msleep(20);
	struct usage u = {proc_fd_count(), proc_map_count(), proc_rss_kib(), proc_heap_kib()};
	return u;
}

/* Compare with the warm-up snapshot. */
static void usage_check(const struct usage *base)
{
	CHECK(ev_wait(EV_DESTROY_CONN, ev_count(EV_NEW_CONN), 5000));
	int fds = proc_fd_settle(base->fds + FD_SLACK, 3000);
	int maps = proc_map_count();
	long rss = proc_rss_kib(), heap = proc_heap_kib();
	fprintf(stderr, "# fds %d -> %d, maps %d -> %d, rss %ld -> %ld KiB, heap %ld -> %ld KiB\n",
		base->fds, fds, base->maps, maps, base->rss, rss, base->heap, heap);
	CHECK(fds <= base->fds + FD_SLACK);
	CHECK(maps <= base->maps + MAP_SLACK);
	if (MEM_CHECKS) {
		CHECK(rss <= base->rss + RSS_SLACK_KIB);
		CHECK(heap <= base->heap + HEAP_SLACK_KIB);
	}
}

static struct vuf *g_open(void)
{
	return fe_open(sock_path, IT_F_CUSTOM, IT_PF_DEFAULT);
}

/* Send a message with @n fresh pipe fds; refused; returns false if the peer closed. */
static bool with_fds(struct vuf *v, uint32_t req, const void *p, uint32_t size, int n)
{
	struct probe pr[12];
	int fds[12];
	for (int i = 0; i < n; i++) {
		probe_new(&pr[i]);
		fds[i] = pr[i].wr;
	}
	CHECK_EQ(vuf_send(v, req, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, p, size, fds, n),
		 0);
	for (int i = 0; i < n; i++)
		probe_sent(&pr[i]);
	bool open = fe_refused(v, req) != REJ_CLOSED;
	for (int i = 0; i < n; i++) {
		CHECK(probe_closed(&pr[i], 3000));
		probe_free(&pr[i]);
	}
	return open;
}

/* Header with bad flags; returns false if the peer closed. */
static bool bad_header(struct vuf *v, uint32_t req, uint32_t flags, uint32_t size)
{
	static const uint8_t zero[64];
	CHECK_EQ(vuf_send(v, req, flags, zero, size, NULL, 0), 0);
	return fe_rejected(v, req) != REJ_CLOSED;
}

/* One-region SET_MEM_TABLE over mfd; @fds/@nfds as given. */
static void mem_table(struct vuf *v, uint64_t size, const int *fds, int nfds, bool ok)
{
	struct {
		struct mt_hdr hdr;
		struct vhost_user_mem_region r[2];
	} __attribute__((packed)) t = {{1, 0}, {{0, size, (uintptr_t)mfd_map, 0}}};
	if (nfds == 2) { /* two regions, count mismatch below */
		t.hdr.nregions = 2;
		t.r[1] = (struct vhost_user_mem_region){1 << 20, 4096, 0x600000000ull, 0};
		nfds = 1;
	}
	uint32_t sz = (uint32_t)(8 + 32 * t.hdr.nregions);
	if (ok)
		fe_ack(v, VHOST_USER_SET_MEM_TABLE, &t, sz, fds, nfds);
	else
		fe_nack(v, VHOST_USER_SET_MEM_TABLE, &t, sz, fds, nfds);
}

/* Connection-ending exchanges: oversize header, truncation, garbage + EOF. */
static void ending_exchange(struct vuf *v, int kind)
{
	uint8_t buf[64];
	memset(buf, 0xa5, sizeof(buf));
	struct vhost_user_header h = {VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, 0x20000};
	if (kind == 0) {
		CHECK_EQ(vuf_send_raw(v, &h, sizeof(h), NULL, 0), 0);
		CHECK(vuf_peer_closed(v, 3000));
	} else if (kind == 1) {
		h.size = 40;
		memcpy(buf, &h, sizeof(h));
		CHECK_EQ(vuf_send_raw(v, buf, 30, &mfd, 1), 0);
	} else {
		CHECK_EQ(vuf_send_raw(v, buf, sizeof(buf), NULL, 0), 0);
		shutdown(v->fd, SHUT_WR);
		CHECK(vuf_peer_closed(v, 3000));
	}
	vuf_close(v);
}

/* Number of exchanges in the rotation; the last NK_ENDING end the connection. */
#define NK 15
#define NK_ENDING 3

/* Exchange number @i of the rotation on @v; returns the (possibly new) frontend. */
static struct vuf *hostile_exchange(struct vuf *v, unsigned i)
{
	uint64_t u = 0, nofd = 0 | VHOST_USER_VRING_NOFD_MASK;
	struct vhost_user_mem_reg reg = {.region = {1ull << 30, 65536, 0x700000000000ull, 0}};
	const uint32_t nr = VHOST_USER_NEED_REPLY_MASK;
	unsigned k = i % NK;
	bool open = true;
	switch (k) {
	case 0: open = bad_header(v, VHOST_USER_SET_OWNER, 2 | nr, 0); break; /* version */
	case 1: open = bad_header(v, VHOST_USER_SET_FEATURES, 1 | nr | VHOST_USER_REPLY_MASK, 8);
		break;
	case 2: open = bad_header(v, VHOST_USER_SET_OWNER, 1 | nr | (1u << 7), 0); break;
	case 3: open = bad_header(v, VHOST_USER_SET_VRING_NUM, 1 | nr, 4); break; /* size */
	case 4: open = with_fds(v, VHOST_USER_SET_OWNER, NULL, 0, 3); break;
	case 5: open = with_fds(v, VHOST_USER_SET_VRING_CALL, &u, 8, 10); break;
	case 6: open = with_fds(v, 1000, &u, 8, 2); break;
	case 7: open = with_fds(v, VHOST_USER_SET_VRING_KICK, &nofd, 8, 1); break;
	case 8: mem_table(v, 65536, &mfd, 2, false); break;
	case 9: mem_table(v, 1 << 20, &mfd, 1, false); break; /* larger than the file */
	case 10: mem_table(v, 65536, &mfd, 1, true); break;
	case 11:
		fe_ack(v, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg), &mfd, 1);
		fe_ack(v, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0);
		break;
	default: ending_exchange(v, (int)(k - (NK - NK_ENDING))); open = false; break;
	}
	if (!open) {
		if (k < NK - NK_ENDING)
			vuf_close(v);
		v = g_open();
	}
	return v;
}

/* Run @n hostile exchanges starting at rotation @start. */
static void hostile_run(unsigned start, unsigned n)
{
	struct vuf *v = g_open();
	for (unsigned i = start; i < start + n; i++)
		v = hostile_exchange(v, i);
	vuf_close(v);
}

/* Every hostile exchange, thousands of times: nothing accumulates. */
static void t_growth_hostile(void)
{
	struct be_cfg cfg = {.ops = &one_q_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT, .pairs = 1};
	sock_path = be_start(&cfg);
	mfd = memfd_sized(65536, (void **)&mfd_map);
	hostile_run(0, WARMUP);
	struct usage base = usage_now();
	hostile_run(WARMUP, ITERS);
	usage_check(&base);
	be_alive(sock_path);
}

/*
 * The guest rings of one format. The net device offers RING_PACKED; a split
 * cycle masks it off, a packed cycle negotiates it, and each sets up rings
 * of that format.
 */
struct fmt {
	bool packed;
	struct gvq *vq[2];
};

/* Net features a cycle of format @fm negotiates. */
static uint64_t fmt_features(const struct fmt *fm)
{
	uint64_t f = VHK_NET_DEFAULT_FEATURES & ~BIT(VHK_F_RING_PACKED);
	return fm->packed ? f | BIT(VHK_F_RING_PACKED) : f;
}

/* One connection lifecycle, cut after @steps steps (7 = complete). */
static void cycle(struct gmem *m, const struct fmt *fm, int steps)
{
	struct vuf *v = fe_connect(sock_path);
	uint64_t f;
	uint32_t base;
	if (steps >= 1)
		CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_FEATURES, &f), 0);
	if (steps >= 2) {
		CHECK_EQ(vuf_negotiate(v, fmt_features(fm), IT_PF_DEFAULT), 0);
		CHECK_EQ(!!(v->features & BIT(VHK_F_RING_PACKED)), fm->packed);
	}
	if (steps >= 3)
		CHECK_EQ(vuf_set_mem_table(v, m), 0);
	if (steps >= 4)
		CHECK_EQ(vuf_start_vring(v, 0, fm->vq[0]), 0);
	if (steps >= 5) {
		unsigned devs = ev_count(EV_NEW_DEV);
		CHECK_EQ(vuf_start_vring(v, 1, fm->vq[1]), 0);
		CHECK(ev_wait(EV_NEW_DEV, devs + 1, 3000));
		struct vhk_vq_info info;
		CHECK_EQ(vhk_vq_get_info(ev_conn_vid(), 1, &info), 0);
		CHECK(info.started && info.packed == fm->packed);
	}
	if (steps >= 6) {
		/* Nothing moved: each ring stopped where it started, in its encoding. */
		for (uint32_t q = 0; q < 2; q++) {
			CHECK_EQ(vuf_get_vring_base(v, q, &base), 0);
			CHECK_EQ(base, gvq_base(fm->vq[q])); /* split 0, packed 0x80008000 */
		}
	}
	if (steps >= 7)
		fe_ack(v, VHOST_USER_RESET_OWNER, NULL, 0, NULL, 0);
	vuf_close(v);
}

/* Run cycles @start..@start+@n-1 with the cut point rotating over every step. */
static void cycle_run(struct gmem *m, const struct fmt *fm, unsigned start, unsigned n)
{
	for (unsigned i = start; i < start + n; i++) {
		cycle(m, fm, (int)(i % 8));
		CHECK(ev_wait(EV_DESTROY_CONN, i + 1, 3000));
	}
}

/*
 * Connect-negotiate-setup-disconnect (net device), thousands of times: half
 * the cycles on split rings, then half on packed rings, each format with its
 * own warm-up and growth check.
 */
static void t_growth_cycles(void)
{
	struct be_cfg cfg = {.net = true, .protocol_features = IT_PF_DEFAULT, .pairs = 1};
	sock_path = be_start(&cfg);
	struct gmem *m;
	struct fmt split = {.packed = false}, packed = {.packed = true};
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &m), 0);
	for (int q = 0; q < 2; q++) {
		CHECK_EQ(gvq_new(m, 256, fmt_features(&split), &split.vq[q]), 0);
		CHECK_EQ(gvq_new(m, 256, fmt_features(&packed), &packed.vq[q]), 0);
	}
	const struct fmt *fmts[2] = {&split, &packed};
	unsigned done = 0;
	for (int k = 0; k < 2; k++) {
		fprintf(stderr, "# %s rings\n", fmts[k]->packed ? "packed" : "split");
		cycle_run(m, fmts[k], done, WARMUP / 2);
		done += WARMUP / 2;
		struct usage base = usage_now();
		cycle_run(m, fmts[k], done, ITERS / 2);
		done += ITERS / 2;
		usage_check(&base);
		CHECK_EQ(ev_count(EV_DESTROY_DEV), ev_count(EV_NEW_DEV));
		CHECK(ev_count(EV_NEW_DEV) > 0);
	}
	be_alive(sock_path);
	for (int q = 0; q < 2; q++) {
		gvq_free(split.vq[q]);
		gvq_free(packed.vq[q]);
	}
	gmem_free(m);
}

/* Memory table churn on one connection: SET_MEM_TABLE replacements and slots. */
static void t_growth_mem(void)
{
	struct be_cfg cfg = {.ops = &one_q_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT, .pairs = 1};
	sock_path = be_start(&cfg);
	mfd = memfd_sized(65536, (void **)&mfd_map);
	struct vuf *v = g_open();
	for (unsigned i = 0; i < WARMUP; i++)
		v = hostile_exchange(v, 10 + (i & 1));
	vuf_close(v);
	struct usage base = usage_now();
	v = g_open();
	for (unsigned i = 0; i < ITERS; i++)
		v = hostile_exchange(v, 8 + i % 4);
	vuf_close(v);
	usage_check(&base);
}

TEST_MAIN(TEST(t_growth_hostile), TEST(t_growth_cycles), TEST(t_growth_mem))
