/* SPDX-License-Identifier: MIT */
/*
 * The device-read-only pop rule through the net device (docs/hardening.md,
 * "Device-read-only pops"): the transmit queue is popped with
 * VQ_POP_DEV_READS, so the WRITE flag inside an indirect table is ignored
 * there; the receive queue, where the device writes, keeps every rule.
 *
 * The transmit cases post DPDK virtio-user's multi-segment transmit images
 * field by field (tests/unit/vq/test_dev_reads.c describes them): a
 * transmit region per ring slot (12-byte net header, then an 8-entry table
 * at offset 16); packed tables set up with id = index and WRITE on every
 * entry, entry 0 = the header (it keeps WRITE), entries 1..n = the
 * segments with NEXT but on the last and the ring's AVAIL/USED bits, the
 * buffer id in entry n; split tables with next = index + 1 (0x8000 last),
 * entry 0 = the header with NEXT, no WRITE anywhere. Every case runs on
 * either format (`--split` / `--packed`, meson: invariants_devreads_*).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "inv_common.h"

#define HDR       12u       /* VERSION_1 virtio-net header */
#define MEMSZ     (1u << 20)
#define QSIZE     16u       /* 48 frames make three laps */
#define TXR_SIZE  144u      /* DPDK's virtio_tx_region: header (16) + 8 entries */
#define TXR_TAB   16u
#define TAB_N     8u        /* VIRTIO_MAX_TX_INDIRECT */
#define SEG_ROOM  0x100u    /* segment buffers: room per segment ... */
#define SLOT_ROOM 0x800u    /* ... and per ring slot (7 segments) */
#define SPLIT_END 0x8000u   /* DPDK's VQ_RING_DESC_CHAIN_END */
#define F_N       VRING_DESC_F_NEXT
#define F_W       VRING_DESC_F_WRITE
#define F_I       VRING_DESC_F_INDIRECT
#define F_AV      (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_US      (1u << VRING_PACKED_DESC_F_USED)

/* Guest-side layout: the transmit regions and the segment buffers behind them. */
struct dpdk {
	struct inv f;
	uint64_t txr, segs, span; /* span: bytes from txr to the end of the segments */
	uint8_t *snap;            /* copy of [txr, txr + span) */
};

static uint64_t hdr_gpa(const struct dpdk *d, uint16_t slot)
{
	return d->txr + (uint64_t)slot * TXR_SIZE;
}

static uint64_t tab_gpa(const struct dpdk *d, uint16_t slot)
{
	return hdr_gpa(d, slot) + TXR_TAB;
}

static uint64_t seg_gpa(const struct dpdk *d, uint16_t slot, uint16_t k)
{
	return d->segs + (uint64_t)slot * SLOT_ROOM + (uint64_t)k * SEG_ROOM;
}

/* Segment k is 48 + 8k bytes (DPDK's data_len is per mbuf). */
static uint32_t seg_len(uint16_t k)
{
	return 48u + 8u * k;
}

/* Byte j of segment k of frame @i. */
static uint8_t seg_byte(uint32_t i, uint16_t k, uint32_t j)
{
	return (uint8_t)(i * 7 + k * 31 + j);
}

/* Net device on the run's format; transmit regions (zeroed) and segments allocated. */
static void dpdk_up(struct dpdk *d)
{
	inv_net_up(&d->f, INV_NETF, MEMSZ, QSIZE);
	CHECK(d->f.v->features & BIT(VHK_F_INDIRECT_DESC));
	d->txr = gmem_alloc(d->f.m, QSIZE * TXR_SIZE, 64);
	d->segs = gmem_alloc(d->f.m, QSIZE * SLOT_ROOM, 64);
	CHECK(d->txr && d->segs && d->segs > d->txr);
	d->span = d->segs + QSIZE * SLOT_ROOM - d->txr;
	memset(gmem_ptr(d->f.m, d->txr, d->span), 0, d->span);
	d->snap = malloc(d->span);
	CHECK(d->snap);
}

static void dpdk_down(struct dpdk *d)
{
	inv_close(&d->f);
	free(d->snap);
}

/* DPDK's table set-up for every slot, in the run's format; @hdr_write: WRITE on split's entry 0. */
static void dpdk_tables(struct dpdk *d, bool hdr_write)
{
	for (uint16_t s = 0; s < QSIZE; s++) {
		if (inv_packed) {
			struct vring_packed_desc *t = gmem_ptr(d->f.m, tab_gpa(d, s), 16 * TAB_N);
			for (uint16_t i = 0; i < TAB_N; i++)
				t[i] = (struct vring_packed_desc){0, 0, i, F_W};
			t[0].addr = hdr_gpa(d, s);
			t[0].len = HDR;
		} else {
			struct vring_desc *t = gmem_ptr(d->f.m, tab_gpa(d, s), 16 * TAB_N);
			for (uint16_t i = 0; i < TAB_N; i++)
				t[i] = (struct vring_desc){0, 0, 0,
							   (uint16_t)(i + 1u < TAB_N ? i + 1u : SPLIT_END)};
			t[0] = (struct vring_desc){hdr_gpa(d, s), HDR,
						   (uint16_t)(F_N | (hdr_write ? F_W : 0)), 1};
		}
	}
}

/*
 * Frame @i of @n segments in slot @slot, as DPDK's indirect transmit writes
 * it: segment bytes, table entries 1..n, then the ring descriptor on vring
 * @q (ring flags stored last by gvq_raw_post). Returns the frame length.
 */
static uint32_t dpdk_xmit(struct dpdk *d, uint32_t q, uint16_t slot, uint32_t i, uint16_t n)
{
	struct gvq *r = d->f.vq[q];
	uint16_t cached = r->raw.wrap ? F_AV : F_US;
	uint32_t total = 0;

	for (uint16_t k = 0; k < n; k++) {
		uint8_t *b = gmem_ptr(d->f.m, seg_gpa(d, slot, k), seg_len(k));
		for (uint32_t j = 0; j < seg_len(k); j++)
			b[j] = seg_byte(i, k, j);
		total += seg_len(k);
	}
	if (inv_packed) {
		struct vring_packed_desc *t = gmem_ptr(d->f.m, tab_gpa(d, slot), 16 * TAB_N);
		for (uint16_t k = 1; k <= n; k++) {
			t[k].addr = seg_gpa(d, slot, (uint16_t)(k - 1));
			t[k].len = seg_len((uint16_t)(k - 1));
			t[k].flags = (uint16_t)((k < n ? F_N : 0) | cached);
		}
		t[n].id = slot;
	} else {
		struct vring_desc *t = gmem_ptr(d->f.m, tab_gpa(d, slot), 16 * TAB_N);
		for (uint16_t k = 1; k <= n; k++) {
			t[k].addr = seg_gpa(d, slot, (uint16_t)(k - 1));
			t[k].len = seg_len((uint16_t)(k - 1));
			t[k].flags = k < n ? F_N : 0;
		}
	}
	struct gvq_rawbuf ptr = {tab_gpa(d, slot), (uint32_t)(n + 1) * 16, F_I};
	gvq_raw_post(r, &ptr, 1, slot);
	return total;
}

/* The packet is frame @i of @n segments, byte for byte. */
static bool is_frame(const struct vhk_pkt *p, uint32_t i, uint16_t n, uint32_t len)
{
	uint8_t got[TAB_N * SEG_ROOM];
	uint32_t off = 0;

	if (p->pkt_len != len || vhk_pkt_read(p, 0, got, len) != len)
		return false;
	for (uint16_t k = 0; k < n; k++)
		for (uint32_t j = 0; j < seg_len(k); j++)
			if (got[off++] != seg_byte(i, k, j))
				return false;
	return off == len;
}

/*
 * Three laps of DPDK transmit frames of 1..7 segments on vring 1: each
 * dequeues as one packet holding the segments in table order (the header
 * entry taken as the net header, not as data), goes back used with its id
 * and length 0, and no byte of the regions or segments changes. On packed
 * rings the header entry carries WRITE (DPDK's image); on split rings the
 * image has none, and a second pass puts WRITE on it. Fails when the
 * transmit queue is popped with VQ_POP_RW or the walker honours WRITE in
 * tables on device-read-only pops.
 */
static void tx_frames(bool hdr_write)
{
	struct dpdk d;
	struct vhk_pool *pool;

	dpdk_up(&d);
	CHECK_EQ(vhk_pool_create(64, 2048, 0, 0, &pool), 0);
	dpdk_tables(&d, hdr_write);
	for (uint32_t i = 0; i < 3 * QSIZE; i++) {
		uint16_t n = (uint16_t)(1 + i % 7), slot = (uint16_t)(i % QSIZE), id = 0xffff;
		uint32_t ulen = 1;
		struct vhk_pkt *p[2];
		uint32_t len = dpdk_xmit(&d, 1, slot, i, n);
		memcpy(d.snap, gmem_ptr(d.f.m, d.txr, d.span), d.span);
		CHECK_EQ(vhk_net_dequeue_burst(d.f.vid, 1, pool, p, 2), 1);
		CHECK(is_frame(p[0], i, n, len));
		CHECK_EQ(p[0]->ol.flags, 0);
		vhk_pkt_free(p[0]);
		CHECK_EQ(gvq_raw_used(d.f.vq[1], &id, &ulen), 1);
		CHECK_EQ(id, slot);
		CHECK_EQ(ulen, 0);
		CHECK(!memcmp(d.snap, gmem_ptr(d.f.m, d.txr, d.span), d.span));
	}
	struct vhk_net_stats st;
	CHECK_EQ(vhk_net_get_stats(d.f.vid, 1, &st), 0);
	CHECK_EQ(st.packets, 3 * QSIZE);
	CHECK_EQ(st.errors, 0);
	CHECK(!inv_vring(&d.f, 1).broken);
	dpdk_down(&d);
	vhk_pool_free(pool);
}

static void t_dpdk_tx_tables(void)
{
	tx_frames(false);
	if (!inv_packed)
		tx_frames(true);
}

/*
 * The receive queue is written by the device: the same table (a WRITE
 * header entry, then readable entries) posted there breaks vring 0 on the
 * first enqueue, and no byte of guest memory changes. Fails when the
 * receive queue is popped with VQ_POP_DEV_READS (the chain would then be
 * refused softly as a readable chain, the ring left up).
 */
static void t_rx_keeps_order_rule(void)
{
	struct dpdk d;
	struct vhk_pool *pool;

	dpdk_up(&d);
	CHECK_EQ(vhk_pool_create(8, 2048, 0, 0, &pool), 0);
	dpdk_tables(&d, true);
	dpdk_xmit(&d, 0, 0, 0, 3);
	memcpy(d.snap, gmem_ptr(d.f.m, d.txr, d.span), d.span);
	struct vhk_pkt *p = vhk_pkt_alloc(pool);
	CHECK(p && vhk_pkt_append(p, 100));
	memset(vhk_pkt_data(p), 0xab, 100);
	CHECK_EQ(vhk_net_enqueue_burst(d.f.vid, 0, &p, 1), 0);
	CHECK(inv_vring(&d.f, 0).broken);
	CHECK(!inv_vring(&d.f, 1).broken);
	CHECK(!memcmp(d.snap, gmem_ptr(d.f.m, d.txr, d.span), d.span));
	uint16_t id;
	uint32_t ulen;
	CHECK_EQ(gvq_raw_used(d.f.vq[0], &id, &ulen), 0);
	vhk_pkt_free(p);
	dpdk_down(&d);
	vhk_pool_free(pool);
}

GVQ_TEST_MAIN(TEST(t_dpdk_tx_tables), TEST(t_rx_keeps_order_rule))
