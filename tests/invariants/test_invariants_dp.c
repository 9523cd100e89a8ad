/* SPDX-License-Identifier: MIT */
/*
 * Hostile-guest tests for the datapath rules of invariants.md the older
 * suites left untested (sections C ring states, D indirect alignment,
 * F work budget, H notifications, I guest-memory discipline; see
 * docs/hardening.md). The net device runs in-process; vuf is the frontend
 * and the guest is a gvq per ring (split or packed), or the harness's raw
 * writers on those rings. Every case runs on either format: the binary takes `--packed` or
 * `--split` (default) before the optional case name, and meson registers it
 * once per format (invariants_dp_split, invariants_dp_packed).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#include "inv_common.h"

#define REPS   1000
#define WARMUP 50
#define HDR    12u /* VERSION_1 virtio-net header */
#define BUFSZ  2048u
#define MEMSZ  (1u << 20)

#define NETF INV_NETF

/* Net device up on one pair of the run's format: vring 0 guest RX, vring 1 guest TX. */
static void net_up(struct inv *f, uint64_t features, uint16_t qsize)
{
	inv_net_up(f, features, MEMSZ, qsize);
}

/* A pool of 256 buffers of BUFSZ bytes. */
static struct vhk_pool *pool_new(void)
{
	struct vhk_pool *p;
	CHECK_EQ(vhk_pool_create(256, BUFSZ, 0, 0, &p), 0);
	return p;
}

/* A packet of @len bytes, byte i = (seed + i). */
static struct vhk_pkt *pkt_make(struct vhk_pool *pool, uint32_t len, uint8_t seed)
{
	struct vhk_pkt *p = vhk_pkt_alloc(pool);
	CHECK(p != NULL);
	uint8_t *d = vhk_pkt_append(p, len);
	CHECK(d != NULL);
	for (uint32_t i = 0; i < len; i++)
		d[i] = (uint8_t)(seed + i);
	return p;
}

/* Post one guest RX buffer of BUFSZ bytes at @gpa. */
static void post_rx(struct inv *f, uint64_t gpa)
{
	struct gbuf b = {gpa, BUFSZ};
	CHECK(gvq_post(f->vq[0], NULL, 0, &b, 1, false, (void *)(uintptr_t)gpa) >= 0);
}

/* Post one guest TX packet: a zero header plus @len bytes, in one buffer at @gpa. */
static void post_tx(struct inv *f, uint64_t gpa, uint32_t len)
{
	uint8_t buf[HDR + 256];
	CHECK(len <= 256);
	memset(buf, 0, sizeof(buf));
	for (uint32_t i = 0; i < len; i++)
		buf[HDR + i] = (uint8_t)i;
	CHECK_EQ(gmem_write(f->m, gpa, buf, HDR + len), 0);
	struct gbuf b = {gpa, HDR + len};
	CHECK(gvq_post(f->vq[1], &b, 1, NULL, 0, false, (void *)(uintptr_t)gpa) >= 0);
}

/* Take one used entry from ring @q (must be there); returns its token. */
static uint64_t reap(struct inv *f, uint32_t q, uint32_t *len)
{
	void *tok = NULL;
	CHECK_EQ(gvq_get_used(f->vq[q], &tok, len), 1);
	return (uint64_t)(uintptr_t)tok;
}

/* Nothing moves: no packet either way, no notification, no guest write; the
 * queue calls answer @expect_rc. */
static void check_quiet(struct inv *f, struct vhk_pool *pool, const uint8_t *snap, int expect_rc)
{
	struct vhk_pkt *in = pkt_make(pool, 100, 1), *out[4];
	for (int k = 0; k < 4; k++) {
		CHECK_EQ(vhk_net_enqueue_burst(f->vid, 0, &in, 1), 0);
		CHECK_EQ(vhk_net_dequeue_burst(f->vid, 1, pool, out, 4), 0);
		CHECK_EQ(vhk_vq_notify(f->vid, 0), expect_rc);
		CHECK_EQ(vhk_vq_notify(f->vid, 1), expect_rc);
		CHECK_EQ(vhk_vq_set_notification(f->vid, 0, k & 1), expect_rc);
		gvq_kick_force(f->vq[1]);
	}
	vhk_pkt_free(in);
	fe_usable(f->v); /* frontend messages are still answered */
	CHECK(memcmp(snap, f->m->r[0].hva, MEMSZ) == 0);
	CHECK_EQ(gvq_read_calls(f->vq[0]), 0);
	CHECK_EQ(gvq_read_calls(f->vq[1]), 0);
}

/* One packet each way works (and is reaped, and the buffers posted again). */
static void check_flowing(struct inv *f, struct vhk_pool *pool, uint64_t rx_gpa, uint64_t tx_gpa)
{
	struct vhk_pkt *in = pkt_make(pool, 100, 7), *out[4];
	CHECK_EQ(vhk_net_enqueue_burst(f->vid, 0, &in, 1), 1);
	vhk_pkt_free(in);
	CHECK_EQ(vhk_net_dequeue_burst(f->vid, 1, pool, out, 4), 1);
	CHECK_EQ(out[0]->pkt_len, 100);
	vhk_pkt_free(out[0]);
	uint32_t len = 0;
	CHECK_EQ(reap(f, 0, &len), rx_gpa);
	CHECK_EQ(len, HDR + 100);
	CHECK_EQ(reap(f, 1, &len), tx_gpa);
	post_rx(f, rx_gpa);
	post_tx(f, tx_gpa, 100);
	gvq_read_calls(f->vq[0]);
	gvq_read_calls(f->vq[1]);
}

/* Suspend (GET_VRING_BASE on both rings), check quiet, resume, check flowing. */
static void suspend_round(struct inv *f, struct vhk_pool *pool, uint8_t *snap, uint64_t rx_gpa,
			  uint64_t tx_gpa)
{
	uint32_t base[2];
	for (uint32_t q = 0; q < 2; q++)
		CHECK_EQ(vuf_get_vring_base(f->v, q, &base[q]), 0);
	gvq_read_calls(f->vq[0]);
	gvq_read_calls(f->vq[1]);
	memcpy(snap, f->m->r[0].hva, MEMSZ);
	check_quiet(f, pool, snap, -EAGAIN);
	for (uint32_t q = 0; q < 2; q++) {
		CHECK_EQ(vuf_set_vring_state(f->v, VHOST_USER_SET_VRING_BASE, q, base[q]), 0);
		CHECK_EQ(vuf_set_vring_fd(f->v, VHOST_USER_SET_VRING_KICK, q, f->vq[q]->kick_fd),
			 0);
	}
	fe_usable(f->v);
	CHECK(inv_vring(f, 0).started && inv_vring(f, 1).started);
	check_flowing(f, pool, rx_gpa, tx_gpa);
}

/*
 * C/H: a suspended device (every ring stopped by GET_VRING_BASE) writes no
 * guest memory and sends no notification even with work pending and kicks
 * arriving; a started but disabled ring moves nothing either. Traffic resumes
 * after restart. Thousands of suspend/resume cycles, growth checked.
 */
static void t_suspended_no_guest_writes(void)
{
	struct inv f;
	net_up(&f, NETF, 64);
	struct vhk_pool *pool = pool_new();
	uint8_t *snap = malloc(MEMSZ);
	CHECK(snap != NULL);
	uint64_t rx_gpa = gmem_alloc(f.m, BUFSZ, 64), tx_gpa = gmem_alloc(f.m, BUFSZ, 64);
	CHECK(rx_gpa && tx_gpa);
	post_rx(&f, rx_gpa);
	post_tx(&f, tx_gpa, 100);
	check_flowing(&f, pool, rx_gpa, tx_gpa);

	/* Started but disabled: no Rx supplied, no Tx taken, nothing written. */
	for (uint32_t q = 0; q < 2; q++)
		CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_ENABLE, q, 0), 0);
	memcpy(snap, f.m->r[0].hva, MEMSZ);
	check_quiet(&f, pool, snap, -EAGAIN);
	CHECK(inv_vring(&f, 0).started && !inv_vring(&f, 0).enabled);
	for (uint32_t q = 0; q < 2; q++)
		CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_ENABLE, q, 1), 0);
	fe_usable(f.v);
	check_flowing(&f, pool, rx_gpa, tx_gpa);

	for (int i = 0; i < WARMUP; i++)
		suspend_round(&f, pool, snap, rx_gpa, tx_gpa);
	struct inv_usage base = inv_usage_now();
	for (int i = 0; i < REPS; i++)
		suspend_round(&f, pool, snap, rx_gpa, tx_gpa);
	inv_usage_check(&base, "suspend/resume");
	CHECK_EQ(vhk_pool_avail(pool), 256);
	free(snap);
	inv_close(&f);
	vhk_pool_free(pool);
}

/*
 * H: with the call fd removed (SET_VRING_CALL with NOFD) a burst still
 * completes, no call is attempted or counted, and the old fd gets nothing.
 */
static void t_call_nofd_skipped(void)
{
	struct inv f;
	net_up(&f, NETF, 64);
	struct vhk_pool *pool = pool_new();
	uint64_t rx_gpa = gmem_alloc(f.m, BUFSZ, 64);
	struct vhk_net_stats st;
	/* With the fd, a flush calls (no EVENT_IDX, interrupts on): the check can fail. */
	post_rx(&f, rx_gpa);
	struct vhk_pkt *p = pkt_make(pool, 60, 3);
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, &p, 1), 1);
	CHECK(gvq_read_calls(f.vq[0]) >= 1);
	reap(&f, 0, NULL);
	CHECK_EQ(vuf_set_vring_fd(f.v, VHOST_USER_SET_VRING_CALL, 0, -1), 0);
	CHECK_EQ(inv_vring(&f, 0).call_fd, -1);
	CHECK_EQ(vhk_net_get_stats(f.vid, 0, &st), 0);
	uint64_t calls = st.calls;
	for (int i = 0; i < REPS; i++) {
		post_rx(&f, rx_gpa);
		CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, &p, 1), 1);
		CHECK_EQ(vhk_vq_notify(f.vid, 0), 0);
		uint32_t len = 0;
		reap(&f, 0, &len);
		CHECK_EQ(len, HDR + 60);
	}
	CHECK_EQ(vhk_net_get_stats(f.vid, 0, &st), 0);
	CHECK_EQ(st.calls, calls);
	CHECK_EQ(st.packets, REPS + 1);
	CHECK_EQ(gvq_read_calls(f.vq[0]), 0);
	vhk_pkt_free(p);
	inv_close(&f);
	vhk_pool_free(pool);
}

/*
 * B/H: call and err fds that cannot be written (the read end of a pipe) are
 * a recoverable error: bursts complete, a guest error still breaks only its
 * ring, nothing crashes and the connection keeps answering.
 */
static void t_unwritable_notify_fds(void)
{
	struct inv f;
	net_up(&f, NETF, 64);
	struct vhk_pool *pool = pool_new();
	uint64_t rx_gpa = gmem_alloc(f.m, BUFSZ, 64);
	int pc[2], pe[2];
	CHECK_EQ(pipe2(pc, O_CLOEXEC), 0);
	CHECK_EQ(pipe2(pe, O_CLOEXEC), 0);
	CHECK_EQ(vuf_set_vring_fd(f.v, VHOST_USER_SET_VRING_CALL, 0, pc[0]), 0);
	CHECK_EQ(vuf_set_vring_fd(f.v, VHOST_USER_SET_VRING_ERR, 1, pe[0]), 0);
	struct vhk_pkt *p = pkt_make(pool, 60, 5);
	for (int i = 0; i < REPS; i++) {
		post_rx(&f, rx_gpa);
		CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, &p, 1), 1);
		CHECK_EQ(vhk_vq_notify(f.vid, 0), 0);
		reap(&f, 0, NULL);
	}
	/*
	 * A guest error on TX with an unwritable err fd: the avail index jumps
	 * past the ring (split), a buffer id >= N (packed).
	 */
	if (inv_packed)
		gvq_raw_slot(f.vq[1], f.vq[1]->avail_pos, rx_gpa, 100, f.vq[1]->size,
			     gvq_avail_bits(f.vq[1]->avail_wrap));
	else
		gvq_raw_avail_idx(f.vq[1], 1000);
	struct vhk_pkt *out[2];
	CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, pool, out, 2), 0);
	CHECK(inv_vring(&f, 1).broken);
	CHECK(!inv_vring(&f, 0).broken);
	post_rx(&f, rx_gpa);
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, &p, 1), 1);
	fe_usable(f.v);
	vhk_pkt_free(p);
	inv_close(&f);
	for (int i = 0; i < 2; i++) {
		close(pc[i]);
		close(pe[i]);
	}
	vhk_pool_free(pool);
}

/* Write indirect table entry @k at @tab in the run's format (split: chained by next). */
static void put_table_entry(struct inv *f, uint64_t tab, uint32_t k, uint64_t addr, uint32_t len,
			    bool more)
{
	if (inv_packed) { /* NEXT inside a packed table is reserved (ignored): set it anyway */
		struct vring_packed_desc d = {addr, len, 0, more ? VRING_DESC_F_NEXT : 0};
		CHECK_EQ(gmem_write(f->m, tab + 16ull * k, &d, sizeof(d)), 0);
	} else {
		struct vring_desc d = {addr, len, more ? VRING_DESC_F_NEXT : 0, (uint16_t)(k + 1)};
		CHECK_EQ(gmem_write(f->m, tab + 16ull * k, &d, sizeof(d)), 0);
	}
}

/*
 * D/F: indirect tables have no alignment requirement: tables at odd guest
 * addresses (1..15 past 16-byte alignment, one to three entries, the header
 * in its own entry or not) are walked and their packet delivered intact.
 */
static void t_indirect_odd_address(void)
{
	struct inv f;
	net_up(&f, NETF, 64);
	CHECK(f.v->features & BIT(VHK_F_INDIRECT_DESC));
	struct vhk_pool *pool = pool_new();
	uint64_t area = gmem_alloc(f.m, 4096, 4096), data = gmem_alloc(f.m, 4096, 64);
	uint8_t pkt[HDR + 200];
	memset(pkt, 0, HDR);
	for (uint32_t i = 0; i < 200; i++)
		pkt[HDR + i] = (uint8_t)(i * 7);
	CHECK_EQ(gmem_write(f.m, data, pkt, sizeof(pkt)), 0);
	for (uint32_t round = 0; round < 300; round++) {
		uint64_t tab = area + 1 + round % 15 + (round % 3) * 512; /* odd or unaligned */
		uint32_t n = 1 + round % 3;
		/* Split the buffer into n readable pieces. */
		uint32_t cut[4] = {0, n > 1 ? HDR : HDR + 200, n > 2 ? HDR + 50 : HDR + 200, HDR + 200};
		for (uint32_t k = 0; k < n; k++) {
			uint32_t end = k + 1 == n ? HDR + 200 : cut[k + 1];
			put_table_entry(&f, tab, k, data + cut[k], end - cut[k], k + 1 < n);
		}
		uint16_t head = (uint16_t)(round % f.vq[1]->size), id = 0xffff;
		uint32_t ulen = 0;
		gvq_raw_post(f.vq[1], &(struct gvq_rawbuf){tab, n * 16, VRING_DESC_F_INDIRECT}, 1,
			     head);
		struct vhk_pkt *out[2];
		CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, pool, out, 2), 1);
		CHECK_EQ(out[0]->pkt_len, 200);
		uint8_t got[200];
		CHECK_EQ(vhk_pkt_read(out[0], 0, got, 200), 200);
		CHECK(memcmp(got, pkt + HDR, 200) == 0);
		vhk_pkt_free(out[0]);
		CHECK_EQ(gvq_raw_used(f.vq[1], &id, &ulen), 1);
		CHECK_EQ(id, head);
		CHECK_EQ(gvq_raw_used(f.vq[1], &id, &ulen), 0);
	}
	CHECK(!inv_vring(&f, 1).broken);
	inv_close(&f);
	vhk_pool_free(pool);
}

/*
 * F: work budget. A burst moves at most the requested count and consumes
 * no more chains than that; a ring full of bad chains costs one bounded
 * pass (each chain consumed once), never an endless loop.
 */
static void t_burst_budget(void)
{
	struct inv f;
	net_up(&f, NETF, 256);
	struct vhk_pool *pool = pool_new();
	uint64_t buf = gmem_alloc(f.m, 256 * 512, 64);
	CHECK(buf != 0);
	/* 200 valid TX chains; bursts of 8 take exactly 8. */
	for (uint32_t i = 0; i < 200; i++)
		post_tx(&f, buf + i * 512, 64);
	struct vhk_pkt *out[16];
	for (int b = 0; b < 25; b++) {
		uint16_t before = inv_vring(&f, 1).last_avail_idx;
		CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, pool, out, 8), 8);
		CHECK_EQ(inv_pos_delta(&f, 1, before, inv_vring(&f, 1).last_avail_idx), 8);
		vhk_pkt_free_bulk(out, 8);
	}
	CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, pool, out, 8), 0);
	/* RX: 200 buffers, bursts of 4 out of 16 packets place exactly 4. */
	for (uint32_t i = 0; i < 200; i++) {
		struct gbuf g = {buf + i * 512, 512};
		CHECK(gvq_post(f.vq[0], NULL, 0, &g, 1, false, (void *)(uintptr_t)(i + 1)) >= 0);
	}
	struct vhk_pkt *in[16];
	for (int i = 0; i < 16; i++)
		in[i] = pkt_make(pool, 60, (uint8_t)i);
	for (int b = 0; b < 50; b++) {
		uint16_t before = inv_vring(&f, 0).last_avail_idx;
		CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, in, 4), 4);
		CHECK_EQ(inv_pos_delta(&f, 0, before, inv_vring(&f, 0).last_avail_idx), 4);
	}
	/* A full ring of chains that are all wrong (readable on RX): one bounded pass. */
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, in, 1), 0);
	while (gvq_get_used(f.vq[0], NULL, NULL) == 1)
		;
	for (uint32_t i = 0; i < 256; i++) {
		struct gbuf g = {buf + i * 512, 512};
		CHECK(gvq_post(f.vq[0], &g, 1, NULL, 0, false, (void *)(uintptr_t)(i + 1)) >= 0);
	}
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, in, 16), 0);
	uint32_t consumed = 0, ulen = 1;
	while (gvq_get_used(f.vq[0], NULL, &ulen) == 1) {
		CHECK_EQ(ulen, 0);
		consumed++;
	}
	CHECK_EQ(consumed, 256); /* each consumed once, len 0 */
	CHECK(!inv_vring(&f, 0).broken);
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, in, 16), 0);
	CHECK_EQ(gvq_get_used(f.vq[0], NULL, NULL), 0);
	for (int i = 0; i < 16; i++)
		vhk_pkt_free(in[i]);
	inv_close(&f);
	vhk_pool_free(pool);
}

/* ---- fetch once: a guest thread rewrites what the device is reading ---- */

struct flipper {
	struct inv *f;
	uint32_t q;
	uint64_t buf_a, buf_b; /* two buffer sets; slot h uses buf + h * stride */
	uint64_t stride;
	uint32_t nslots;       /* descriptors 0..nslots-1 (split table / packed ring slots) */
	atomic_uint cur;       /* the one the device reads next: flipped every other time */
	uint32_t len_a, len_b;
	bool hdr;              /* also flip the TX header's checksum fields */
	atomic_bool stop;
	atomic_ulong flips;
};

/* Flip the TX header fields of the buffer at @gpa to random good or bad values. */
static void flip_hdr(struct gmem *m, uint64_t gpa, uint32_t x)
{
	uint8_t *hp = gmem_ptr(m, gpa, HDR);
	uint16_t start = (x & 2) ? 20 : 60000, off = (x & 4) ? 16 : 40000;
	__atomic_store_n(&hp[0], (uint8_t)((x & 8) ? 1 : 0), __ATOMIC_RELAXED);
	memcpy(hp + 6, &start, 2);
	memcpy(hp + 8, &off, 2);
	uint16_t hl = (x & 16) ? 54 : 50000;
	memcpy(hp + 2, &hl, 2);
}

/*
 * Flip descriptor lengths and addresses (and the TX headers of their two
 * buffers) between two values until told to stop, alternating between the
 * descriptor the device reads next and the others in turn (so every one of
 * them holds a random view when its turn comes). Only addr and len are
 * written: on packed rings the device writes id, len and flags of used
 * slots, and a flipped flags word could make a used slot available again.
 */
static void *flip_thread(void *arg)
{
	struct flipper *fl = arg;
	uint32_t x = 1, i = 0;
	while (!atomic_load_explicit(&fl->stop, memory_order_relaxed)) {
		uint32_t h = (i & 1) ? atomic_load_explicit(&fl->cur, memory_order_relaxed)
				     : (i >> 1) % fl->nslots;
		i++;
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		uint64_t a = fl->buf_a + h * fl->stride, b = fl->buf_b + h * fl->stride;
		__atomic_store_n(gvq_desc_len(fl->f->vq[fl->q], (uint16_t)h),
				 (x & 1) ? fl->len_a : fl->len_b, __ATOMIC_RELAXED);
		__atomic_store_n(gvq_desc_addr(fl->f->vq[fl->q], (uint16_t)h), (x & 32) ? a : b,
				 __ATOMIC_RELAXED);
		if (fl->hdr) {
			flip_hdr(fl->f->m, a, x);
			flip_hdr(fl->f->m, b, x >> 7);
		}
		atomic_fetch_add_explicit(&fl->flips, 1, memory_order_relaxed);
	}
	return NULL;
}

/* Start the flipper and wait until it is running. */
static void flip_start(struct flipper *fl, pthread_t *th)
{
	atomic_init(&fl->stop, false);
	atomic_init(&fl->flips, 0);
	atomic_init(&fl->cur, 0);
	CHECK_EQ(pthread_create(th, NULL, flip_thread, fl), 0);
	while (atomic_load(&fl->flips) < 1000)
		sched_yield();
}

/*
 * Let the flipper make @n more flips before the next round (yielding the
 * CPU meanwhile), so that every round starts from a fresh random view even
 * when the machine is loaded and the flipper is scheduled rarely.
 */
static void flip_wait(struct flipper *fl, unsigned long n)
{
	unsigned long start = atomic_load(&fl->flips);
	while (atomic_load(&fl->flips) - start < n)
		sched_yield();
}

/*
 * Write descriptor @i's addr and len once; from then on only the flipper
 * writes them and each round republishes the descriptor (split: flags and
 * next now; packed: id and flags come with every republish).
 */
static void prewrite(struct inv *f, uint32_t q, uint16_t i, uint64_t addr, uint32_t len,
		     uint16_t split_flags)
{
	if (inv_packed) {
		*gvq_desc_addr(f->vq[q], i) = addr;
		*gvq_desc_len(f->vq[q], i) = len;
	} else {
		gvq_raw_desc(f->vq[q], i, addr, len, split_flags, 0);
	}
}

/*
 * I/G: fetch once (TX). A guest thread flips every descriptor's length
 * (header + 100 / + 1000), address (buffer A / B, different contents) and
 * the header's checksum / hdr_len fields while the device dequeues; on
 * packed rings it does so after the descriptor's flags were published, so
 * the device reads addr/len after its flags check. Every delivered packet
 * must match one single view: its length one of the two, its bytes all from
 * A or all from B, and its offload fields within the packet (csum_start +
 * csum_offset + 2 <= len, hdr_len <= len). Every chain is consumed once.
 */
static void t_fetch_once_tx(void)
{
	struct inv f;
	net_up(&f, NETF, 64);
	struct vhk_pool *pool = pool_new();
	struct flipper fl = {.f = &f, .q = 1, .stride = BUFSZ, .nslots = 64, .len_a = HDR + 100,
			     .len_b = HDR + 1000, .hdr = true};
	fl.buf_a = gmem_alloc(f.m, 64ull * BUFSZ, 64);
	fl.buf_b = gmem_alloc(f.m, 64ull * BUFSZ, 64);
	CHECK(fl.buf_a != 0 && fl.buf_b != 0);
	uint8_t pat_a[1000], pat_b[1000];
	for (uint32_t i = 0; i < 1000; i++) {
		pat_a[i] = (uint8_t)(i * 13 + 1);
		pat_b[i] = (uint8_t)(i * 7 + 200);
	}
	for (uint32_t h = 0; h < 64; h++) {
		CHECK_EQ(gmem_write(f.m, fl.buf_a + h * BUFSZ + HDR, pat_a, 1000), 0);
		CHECK_EQ(gmem_write(f.m, fl.buf_b + h * BUFSZ + HDR, pat_b, 1000), 0);
		prewrite(&f, 1, (uint16_t)h, fl.buf_a + h * BUFSZ, HDR + 100, 0);
	}
	pthread_t th;
	flip_start(&fl, &th);
	uint32_t delivered = 0, csum_seen = 0, from_a = 0, from_b = 0;
	uint8_t got[1000];
	for (uint32_t round = 0; round < 5000; round++) {
		uint16_t head = (uint16_t)(round % 64), id = 0xffff;
		uint32_t ulen = 0;
		/* The flipper's current target: split descriptor head = packed slot head (64). */
		atomic_store(&fl.cur, head);
		if (round % 4 == 0)
			flip_wait(&fl, 4);
		CHECK_EQ(gvq_raw_republish(f.vq[1], head, 0), head);
		struct vhk_pkt *out[2];
		uint16_t n = vhk_net_dequeue_burst(f.vid, 1, pool, out, 2);
		CHECK(n <= 1);
		CHECK_EQ(gvq_raw_used(f.vq[1], &id, &ulen), 1); /* consumed either way */
		CHECK_EQ(id, head);
		if (round % 16 == 0)
			sched_yield(); /* let the flipper run on a single CPU too */
		if (!n)
			continue;
		struct vhk_pkt *p = out[0];
		CHECK(p->pkt_len == 100 || p->pkt_len == 1000);
		if (p->ol.flags & VHK_PKT_OL_NEEDS_CSUM) {
			CHECK((uint32_t)p->ol.csum_start + p->ol.csum_offset + 2 <= p->pkt_len);
			csum_seen++;
		}
		CHECK(p->ol.hdr_len <= p->pkt_len);
		CHECK_EQ(vhk_pkt_read(p, 0, got, p->pkt_len), p->pkt_len);
		bool a = !memcmp(got, pat_a, p->pkt_len), b = !memcmp(got, pat_b, p->pkt_len);
		CHECK(a || b);
		from_a += a;
		from_b += b;
		vhk_pkt_free(p);
		delivered++;
	}
	atomic_store(&fl.stop, true);
	pthread_join(th, NULL);
	fprintf(stderr,
		"# %s: %u of 5000 delivered (%u from A, %u from B, %u NEEDS_CSUM), %lu flips\n",
		inv_packed ? "packed" : "split", delivered, from_a, from_b, csum_seen,
		(unsigned long)atomic_load(&fl.flips));
	CHECK(delivered > 0 && delivered < 5000); /* both header views happened */
	CHECK(from_a > 0 && from_b > 0);          /* both address views happened */
	CHECK(!inv_vring(&f, 1).broken);
	CHECK_EQ(vhk_pool_avail(pool), 256);
	inv_close(&f);
	vhk_pool_free(pool);
}

/* @g is untouched: 0xcc throughout its @total bytes. */
static bool untouched(const uint8_t *g, uint32_t total)
{
	for (uint32_t i = 0; i < total; i++)
		if (g[i] != 0xcc)
			return false;
	return true;
}

/* @g holds exactly the placed frame @want of @n bytes and 0xcc after it (through @total). */
static bool holds_frame(const uint8_t *g, const uint8_t *want, uint32_t n, uint32_t total)
{
	return !memcmp(g, want, n) && untouched(g + n, total - n);
}

/*
 * I/G: fetch once (RX). A guest thread flips every receive descriptor's
 * length (100 / BUFSZ) and address (buffer A / B) while the device places
 * a 1500-byte packet: the packet is placed whole in exactly one of the two
 * buffers (the other untouched) or handed back; the device never writes
 * past BUFSZ (guard bytes intact). Split: head 0 every time; packed: every
 * slot of the ring in turn, with buffer id 0.
 */
static void t_fetch_once_rx(void)
{
	struct inv f;
	net_up(&f, NETF, 64);
	struct vhk_pool *pool = pool_new();
	const uint32_t guard = 4096, total = BUFSZ + guard;
	/* Split: head 0 only; packed: every slot in turn. */
	struct flipper fl = {.f = &f, .q = 0, .stride = 0, .nslots = inv_packed ? 64 : 1,
			     .len_a = 100, .len_b = BUFSZ};
	fl.buf_a = gmem_alloc(f.m, total, 64);
	fl.buf_b = gmem_alloc(f.m, total, 64);
	CHECK(fl.buf_a != 0 && fl.buf_b != 0);
	uint8_t *ga = gmem_ptr(f.m, fl.buf_a, total), *gb = gmem_ptr(f.m, fl.buf_b, total);
	uint8_t want[HDR + 1500] = {[10] = 1}; /* header: all zero, num_buffers 1 */
	for (uint32_t i = 0; i < 1500; i++)
		want[HDR + i] = (uint8_t)(9 + i);
	for (uint32_t h = 0; h < fl.nslots; h++)
		prewrite(&f, 0, (uint16_t)h, fl.buf_a, 100, VRING_DESC_F_WRITE);
	pthread_t th;
	flip_start(&fl, &th);
	struct vhk_pkt *p = pkt_make(pool, 1500, 9);
	uint32_t placed = 0, in_a = 0, in_b = 0;
	for (uint32_t round = 0; round < 3000; round++) {
		memset(ga, 0xcc, total);
		memset(gb, 0xcc, total);
		atomic_store(&fl.cur, inv_packed ? f.vq[0]->raw.pos : 0);
		flip_wait(&fl, 4);
		gvq_raw_republish(f.vq[0], 0, VRING_DESC_F_WRITE);
		uint16_t n = 0, id = 0xffff;
		uint32_t ulen = 0;
		for (int tries = 0; tries < 100000 && !n; tries++) {
			n = vhk_net_enqueue_burst(f.vid, 0, &p, 1);
			if (!n)
				sched_yield(); /* let the flipper run on a single CPU too */
		}
		CHECK_EQ(gvq_raw_used(f.vq[0], &id, &ulen), n);
		if (!n) {
			/* Never placed: give up on this head for good (the flips won). */
			CHECK(untouched(ga, total) && untouched(gb, total));
			break;
		}
		placed++;
		CHECK_EQ(id, 0);
		/* Packed: the flipper may have rewritten the used slot's len since. */
		CHECK(ulen == HDR + 1500 || (inv_packed && (ulen == 100 || ulen == BUFSZ)));
		bool a = holds_frame(ga, want, HDR + 1500, total) && untouched(gb, total);
		bool b = holds_frame(gb, want, HDR + 1500, total) && untouched(ga, total);
		CHECK(a || b);
		in_a += a;
		in_b += b;
	}
	atomic_store(&fl.stop, true);
	pthread_join(th, NULL);
	fprintf(stderr, "# %s: %u packets placed (%u in A, %u in B), %lu flips\n",
		inv_packed ? "packed" : "split", placed, in_a, in_b,
		(unsigned long)atomic_load(&fl.flips));
	CHECK(placed > 100);
	CHECK(in_a > 0 && in_b > 0);
	CHECK(!inv_vring(&f, 0).broken);
	vhk_pkt_free(p);
	inv_close(&f);
	vhk_pool_free(pool);
}

/*
 * I: the receive header is fully written (zero fields, num_buffers 1), the
 * used length is the bytes written, and nothing past them is touched, even
 * when the guest buffer held junk.
 */
static void t_rx_header_zeroed(void)
{
	struct inv f;
	net_up(&f, NETF, 64);
	struct vhk_pool *pool = pool_new();
	uint64_t buf = gmem_alloc(f.m, BUFSZ, 64);
	uint8_t *g = gmem_ptr(f.m, buf, BUFSZ);
	for (uint32_t len = 14; len <= 1514; len += 100) {
		memset(g, 0xcc, BUFSZ);
		post_rx(&f, buf);
		struct vhk_pkt *p = pkt_make(pool, len, (uint8_t)len);
		CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, &p, 1), 1);
		vhk_pkt_free(p);
		uint32_t used = 0;
		reap(&f, 0, &used);
		CHECK_EQ(used, HDR + len);
		static const uint8_t want_hdr[HDR] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
		CHECK(memcmp(g, want_hdr, HDR) == 0);
		CHECK_EQ(g[HDR], (uint8_t)len);
		CHECK_EQ(g[HDR + len - 1], (uint8_t)(len + len - 1));
		for (uint32_t i = HDR + len; i < BUFSZ; i++)
			CHECK_EQ(g[i], 0xcc);
	}
	inv_close(&f);
	vhk_pool_free(pool);
}

/* Send one TX packet: @hdr_bytes of header @h in @piece-byte descriptors, then @len data bytes. */
static int tx_with_hdr(struct inv *f, struct vhk_pool *pool, uint64_t buf,
		       const struct virtio_net_hdr_mrg_rxbuf *h, uint32_t hdr_bytes, uint32_t len,
		       uint32_t piece, struct vhk_pkt **ret)
{
	uint8_t b[HDR + 256];
	memset(b, 0, sizeof(b));
	memcpy(b, h, HDR);
	for (uint32_t i = 0; i < len; i++)
		b[HDR + i] = (uint8_t)i;
	CHECK(hdr_bytes <= HDR && piece > 0);
	memmove(b + hdr_bytes, b + HDR, len);
	CHECK_EQ(gmem_write(f->m, buf, b, hdr_bytes + len), 0);
	struct gbuf g[HDR + 1];
	int n = 0;
	/* The header in @piece-byte descriptors, the data in one more. */
	for (uint32_t off = 0; off < hdr_bytes; off += piece)
		g[n++] = (struct gbuf){buf + off, hdr_bytes - off < piece ? hdr_bytes - off : piece};
	if (len)
		g[n++] = (struct gbuf){buf + hdr_bytes, len};
	CHECK(gvq_post(f->vq[1], g, n, NULL, 0, false, (void *)(uintptr_t)buf) >= 0);
	struct vhk_pkt *out[2];
	uint16_t got = vhk_net_dequeue_burst(f->vid, 1, pool, out, 2);
	reap(f, 1, NULL); /* consumed either way */
	if (got && ret)
		*ret = out[0];
	else if (got)
		vhk_pkt_free(out[0]);
	return got;
}

/*
 * I: payload bounds on guest headers, through the whole TX path: csum_start
 * + csum_offset + 2 <= len and hdr_len <= len (boundary values accepted, one
 * past refused); a header spread over 1..12-byte descriptors is assembled;
 * a chain shorter than the header is refused.
 */
static void t_tx_header_bounds(void)
{
	struct inv f;
	net_up(&f, NETF, 64);
	struct vhk_pool *pool = pool_new();
	uint64_t buf = gmem_alloc(f.m, BUFSZ, 64);
	struct virtio_net_hdr_mrg_rxbuf h;
	struct vhk_pkt *p = NULL;
	const uint32_t len = 200;
	memset(&h, 0, sizeof(h));
	h.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.hdr.csum_start = 150;
	h.hdr.csum_offset = (uint16_t)(len - 150 - 2); /* ends exactly at len */
	for (uint32_t piece = 1; piece <= HDR + 1; piece++) {
		CHECK_EQ(tx_with_hdr(&f, pool, buf, &h, HDR, len, piece, &p), 1);
		CHECK(p->ol.flags & VHK_PKT_OL_NEEDS_CSUM);
		CHECK_EQ(p->ol.csum_start, 150);
		CHECK_EQ(p->ol.csum_offset, len - 152);
		CHECK_EQ(p->pkt_len, len);
		vhk_pkt_free(p);
	}
	h.hdr.csum_offset++; /* one byte past the packet */
	CHECK_EQ(tx_with_hdr(&f, pool, buf, &h, HDR, len, 64, NULL), 0);
	h.hdr.csum_start = 0xffff;
	h.hdr.csum_offset = 0xffff;
	CHECK_EQ(tx_with_hdr(&f, pool, buf, &h, HDR, len, 3, NULL), 0);
	/* GSO: hdr_len == len is fine, len + 1 is not. */
	memset(&h, 0, sizeof(h));
	h.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	h.hdr.gso_size = 100;
	h.hdr.hdr_len = (uint16_t)len;
	CHECK_EQ(tx_with_hdr(&f, pool, buf, &h, HDR, len, 5, NULL), 1);
	h.hdr.hdr_len = (uint16_t)(len + 1);
	CHECK_EQ(tx_with_hdr(&f, pool, buf, &h, HDR, len, 5, NULL), 0);
	/* Chains shorter than the header: refused without reading past them. */
	memset(&h, 0, sizeof(h));
	for (uint32_t short_len = 1; short_len < HDR; short_len++)
		CHECK_EQ(tx_with_hdr(&f, pool, buf, &h, short_len, 0, 4, NULL), 0);
	struct vhk_net_stats st;
	CHECK_EQ(vhk_net_get_stats(f.vid, 1, &st), 0);
	CHECK_EQ(st.errors, 3 + HDR - 1);
	CHECK(!inv_vring(&f, 1).broken);
	inv_close(&f);
	vhk_pool_free(pool);
}

/* Every case on the format given by a leading --packed / --split (default split). */
GVQ_TEST_MAIN(TEST(t_suspended_no_guest_writes), TEST(t_call_nofd_skipped),
	      TEST(t_unwritable_notify_fds), TEST(t_indirect_odd_address), TEST(t_burst_budget),
	      TEST(t_fetch_once_tx), TEST(t_fetch_once_rx), TEST(t_rx_header_zeroed),
	      TEST(t_tx_header_bounds))
