/* SPDX-License-Identifier: MIT */
/*
 * Device-read-only pops (vq_pop_mode(VQ_POP_DEV_READS), docs/hardening.md
 * "Device-read-only pops") on both ring formats, starting from the ring
 * images DPDK's virtio-user driver writes for multi-segment transmit
 * through indirect tables (DPDK 22.11; the table set-up is unchanged in
 * later releases), reproduced field by field:
 *  - every ring slot owns a transmit region: the 12-byte net header, then
 *    (at offset 16) a table of 8 entries;
 *  - packed: the table is set up once with id = index and flags = WRITE on
 *    every entry, entry 0 pointing at the header (len 12). A frame of n
 *    segments fills entries 1..n (addr, len, flags = NEXT but on the last,
 *    ORed with the ring's current AVAIL/USED bits) and sets the id of entry
 *    n to the buffer id. Entry 0 keeps WRITE. The ring slot gets the table
 *    address, len (n + 1) * 16, id = its position (in order) and, stored
 *    last, INDIRECT | the AVAIL/USED bits;
 *  - split: the table is set up with next = index + 1 (0x8000 on the last)
 *    and entry 0 = header with NEXT; entries 1..n as above with NEXT but on
 *    the last and no WRITE; the ring descriptor is INDIRECT with len
 *    (n + 1) * 16.
 * The rule under test: on a VQ_POP_DEV_READS pop every entry of an indirect
 * table is readable whatever its WRITE flag; ring descriptors keep WRITE and
 * the writable-after-readable rule; every other check of the walkers is
 * unchanged; vq_pop() (VQ_POP_RW) still refuses DPDK's packed table.
 */
#include "unit_vq.h"

#define MB 0x100000ull
#define F_N VRING_DESC_F_NEXT
#define F_W VRING_DESC_F_WRITE
#define F_I	 VRING_DESC_F_INDIRECT
#define PF_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define PF_USED (1u << VRING_PACKED_DESC_F_USED)

#define RING 8u            /* ring entries: 24 frames make three laps */
#define TXR 0x10000ull     /* DPDK's transmit regions, one per ring slot */
#define TXR_SIZE 144u      /* header (12, padded to 16) + 8 table entries */
#define TXR_TAB 16u        /* table offset in a region */
#define TAB_ENTRIES 8u     /* VIRTIO_MAX_TX_INDIRECT */
#define HDR 12u            /* virtio_net_hdr_mrg_rxbuf */
#define SEGS 0x20000ull    /* segment buffers */
#define SEG_LEN 64u
#define SPLIT_END 0x8000u  /* DPDK's VQ_RING_DESC_CHAIN_END */
#define SNAP_LEN (SEGS + RING * 0x1000ull - TXR) /* regions and segments */

static uint64_t hdr_gpa(uint16_t slot)
{
	return TXR + (uint64_t)slot * TXR_SIZE;
}

static uint64_t tab_gpa(uint16_t slot)
{
	return hdr_gpa(slot) + TXR_TAB;
}

/* Segment @k of the frame in ring slot @slot. */
static uint64_t seg_gpa(uint16_t slot, uint16_t k)
{
	return SEGS + (uint64_t)slot * 0x1000 + (uint64_t)k * 0x100;
}

/* Segments of frame @i: 1..7 (DPDK takes the indirect path below 8). */
static uint16_t nseg_of(uint32_t i)
{
	return (uint16_t)(1 + i % 7);
}

/* Fixture: 2 regions of 1 MiB, a ring of RING entries at 0x1000 (raw guest). */
struct fx {
	struct gmem *m;
	struct mem_table *t;
	struct gvq *q;
	struct vq vq;
	struct vq_chain c;
	struct iovec iov[UVQ_IOV]; /* c's pieces */
	int err_fd;
	uint8_t before[SNAP_LEN]; /* guest bytes the device must never write */
};

static struct fx *fx_alloc(void)
{
	static struct fx pool[20];
	static unsigned used;

	CHECK(used < ARRAY_SIZE(pool));
	pool[used].c.iov = pool[used].iov;
	pool[used].c.iov_max = UVQ_IOV;
	return &pool[used++];
}

/* A ring of @features' format started on vring 1 (packed: fresh base), the buffers filled. */
static struct fx *fx_new(uint64_t features)
{
	struct fx *f = fx_alloc();

	f->m = uvq_mem(2, MB, &f->t);
	CHECK_EQ(gvq_new_at(f->m, 0x1000, RING, features, &f->q), 0);
	if (f->q->packed) /* DPDK's vring_desc_init_packed: slot i starts with id i. */
		for (uint16_t i = 0; i < RING; i++)
			f->q->pdesc[i].id = i;
	vq_init(&f->vq, f->q->packed ? 1 : 0);
	CHECK_EQ(uvq_start(&f->vq, f->q, f->t, features, f->q->packed ? 0x80008000u : 0), 0);
	CHECK(f->vq.ready && f->vq.packed == f->q->packed);
	f->err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(f->err_fd >= 0);
	vq_set_err_fd(&f->vq, dup(f->err_fd));
	memset(uvq_ptr(f->m, TXR, RING * TXR_SIZE), 0, RING * TXR_SIZE);
	for (uint16_t s = 0; s < RING; s++)
		for (uint16_t k = 0; k < TAB_ENTRIES; k++)
			memset(uvq_ptr(f->m, seg_gpa(s, k), SEG_LEN), (uint8_t)(0x10 * s + k + 1),
			       SEG_LEN);
	return f;
}

static struct fx *fx_split(uint64_t features)
{
	return fx_new(features);
}

static struct fx *fx_packed(uint64_t features)
{
	return fx_new(features | F_PACKED);
}

/* DPDK's packed table set-up for every slot (virtqueue_txq_indirect_header_init_packed). */
static void dpdk_packed_tables(struct fx *f)
{
	for (uint16_t s = 0; s < RING; s++) {
		struct vring_packed_desc *t = uvq_ptr(f->m, tab_gpa(s), 16 * TAB_ENTRIES);
		for (uint16_t i = 0; i < TAB_ENTRIES; i++) {
			t[i].id = i;
			t[i].flags = F_W;
		}
		t[0].addr = hdr_gpa(s);
		t[0].len = HDR;
	}
}

/* DPDK's split table set-up for every slot (vring_desc_init_split + header entry). */
static void dpdk_split_tables(struct fx *f)
{
	for (uint16_t s = 0; s < RING; s++) {
		struct vring_desc *t = uvq_ptr(f->m, tab_gpa(s), 16 * TAB_ENTRIES);
		for (uint16_t i = 0; i < TAB_ENTRIES; i++)
			t[i].next = (uint16_t)(i + 1u < TAB_ENTRIES ? i + 1u : SPLIT_END);
		t[0].addr = hdr_gpa(s);
		t[0].len = HDR;
		t[0].flags = F_N;
	}
}

/* DPDK's packed indirect transmit of a frame of @n segments (virtqueue_enqueue_xmit_packed). */
static uint16_t dpdk_packed_xmit(struct fx *f, uint16_t n)
{
	uint16_t slot = f->q->raw.pos, cached = f->q->raw.wrap ? PF_AVAIL : PF_USED;
	struct vring_packed_desc *t = uvq_ptr(f->m, tab_gpa(slot), 16 * TAB_ENTRIES);

	for (uint16_t k = 1; k <= n; k++) {
		t[k].addr = seg_gpa(slot, (uint16_t)(k - 1));
		t[k].len = SEG_LEN;
		t[k].flags = (uint16_t)((k < n ? F_N : 0) | cached);
	}
	t[n].id = slot; /* the buffer id (in order: the slot) */
	/* The ring slot: table address and length, id = its position, flags last. */
	struct gvq_rawbuf ptr = {tab_gpa(slot), (uint32_t)(n + 1) * 16, F_I};
	CHECK_EQ(gvq_raw_post(f->q, &ptr, 1, slot), slot);
	return slot;
}

/* DPDK's split indirect transmit of @n segments with head @head (virtqueue_enqueue_xmit). */
static void dpdk_split_xmit(struct fx *f, uint16_t head, uint16_t n)
{
	struct vring_desc *t = uvq_ptr(f->m, tab_gpa(head), 16 * TAB_ENTRIES);

	for (uint16_t k = 1; k <= n; k++) {
		t[k].addr = seg_gpa(head, (uint16_t)(k - 1));
		t[k].len = SEG_LEN;
		t[k].flags = k < n ? F_N : 0;
	}
	gvq_raw_desc(f->q, head, tab_gpa(head), (uint32_t)(n + 1) * 16, F_I,
		     (uint16_t)((head + 1) % RING));
	gvq_raw_push(f->q, head);
}

/* The chain is DPDK's frame in slot @slot: the header, then @n segments, all readable. */
static void check_frame_chain(struct fx *f, uint16_t slot, uint16_t n)
{
	struct vq_chain *c = &f->c;

	CHECK_EQ(c->id, slot);
	CHECK_EQ(c->ndesc, 1);
	CHECK_EQ(c->nout, 1 + n);
	CHECK_EQ(c->nin, 0);
	CHECK_EQ(c->out_len, HDR + (uint64_t)n * SEG_LEN);
	CHECK_EQ(c->in_len, 0);
	CHECK(c->iov[0].iov_base == mem_gpa_range(f->t, hdr_gpa(slot), HDR));
	CHECK_EQ(c->iov[0].iov_len, HDR);
	for (uint16_t k = 0; k < n; k++) {
		CHECK(c->iov[1 + k].iov_base == mem_gpa_range(f->t, seg_gpa(slot, k), SEG_LEN));
		CHECK_EQ(c->iov[1 + k].iov_len, SEG_LEN);
	}
}

/* Snapshot / compare the transmit regions and segments (read-only for the device). */
static void snap(struct fx *f)
{
	memcpy(f->before, uvq_ptr(f->m, TXR, sizeof(f->before)), sizeof(f->before));
}

static void check_unwritten(struct fx *f)
{
	CHECK(!memcmp(f->before, uvq_ptr(f->m, TXR, sizeof(f->before)), sizeof(f->before)));
}

/* Pop must fail as a guest error: -EIO, ring broken, one err signal. */
static void check_broken(struct fx *f, int rc)
{
	CHECK_EQ(rc, -EIO);
	CHECK(f->vq.broken && !f->vq.ready);
	CHECK_EQ(efd_count(f->err_fd), 1);
}

/* Used entry of packed slot @pos in lap @wrap: id and len 0, USED == AVAIL == wrap, no WRITE. */
static void check_packed_used(struct fx *f, uint16_t pos, bool wrap, uint16_t id)
{
	uint16_t fl = __atomic_load_n(&f->q->pdesc[pos].flags, __ATOMIC_ACQUIRE);

	CHECK_EQ(!!(fl & PF_AVAIL), wrap);
	CHECK_EQ(!!(fl & PF_USED), wrap);
	CHECK(!(fl & F_W));
	CHECK_EQ(f->q->pdesc[pos].id, id);
	CHECK_EQ(f->q->pdesc[pos].len, 0);
}

/*
 * DPDK's packed transmit tables over three laps (both AVAIL/USED encodings
 * in the entries), 1..7 segments, with and without IN_ORDER: every frame
 * pops as the header plus its segments, all readable, nothing of the
 * regions or segments is written, the used entry is right, the ring stays
 * up. (Fails when the walker honours WRITE inside the table.)
 */
static void packed_frames(uint64_t features)
{
	struct fx *f = fx_packed(F_INDIRECT | features);

	dpdk_packed_tables(f);
	for (uint32_t i = 0; i < 3 * RING; i++) {
		uint16_t n = nseg_of(i);
		bool wrap = f->q->raw.wrap;
		uint16_t slot = dpdk_packed_xmit(f, n);
		snap(f);
		CHECK_EQ(vq_pop_mode(&f->vq, &f->c, VQ_POP_DEV_READS), 0);
		check_frame_chain(f, slot, n);
		vq_push(&f->vq, f->c.id, 0);
		vq_flush(&f->vq);
		check_packed_used(f, slot, wrap, slot);
		check_unwritten(f);
	}
	CHECK_EQ(vq_pop_mode(&f->vq, &f->c, VQ_POP_DEV_READS), -ENOENT);
	CHECK(f->vq.ready && !f->vq.broken);
	CHECK_EQ(efd_count(f->err_fd), 0);
}

static void t_dpdk_packed_tx_table(void)
{
	packed_frames(0);
}

static void t_dpdk_packed_tx_table_in_order(void)
{
	packed_frames(F_IN_ORDER);
}

/* vq_pop() is VQ_POP_RW: the same first frame breaks the ring (WRITE header, then readable). */
static void t_dpdk_packed_table_rw_refused(void)
{
	struct fx *f = fx_packed(F_INDIRECT);

	dpdk_packed_tables(f);
	dpdk_packed_xmit(f, 3);
	check_broken(f, vq_pop(&f->vq, &f->c));
	CHECK_EQ(f->vq.last_avail_idx, 0); /* not consumed */
	/* A one-segment frame (header WRITE, then one readable entry) too. */
	f = fx_packed(F_INDIRECT);
	dpdk_packed_tables(f);
	dpdk_packed_xmit(f, 1);
	check_broken(f, vq_pop_mode(&f->vq, &f->c, VQ_POP_RW));
}

/*
 * DPDK's split transmit tables (no WRITE anywhere): every frame pops the
 * same in both modes. With WRITE put on the header entry, as the packed
 * driver leaves it, VQ_POP_DEV_READS takes the frame and VQ_POP_RW breaks
 * the ring.
 */
static void t_dpdk_split_tx_table(void)
{
	for (int mode = 0; mode < 2; mode++) {
		struct fx *f = fx_split(F_INDIRECT);
		dpdk_split_tables(f);
		for (uint32_t i = 0; i < 3 * RING; i++) {
			uint16_t n = nseg_of(i), head = (uint16_t)(i % RING);
			dpdk_split_xmit(f, head, n);
			snap(f);
			CHECK_EQ(vq_pop_mode(&f->vq, &f->c, mode ? VQ_POP_DEV_READS : VQ_POP_RW), 0);
			check_frame_chain(f, head, n);
			vq_push(&f->vq, f->c.id, 0);
			vq_flush(&f->vq);
			CHECK_EQ(f->q->used->idx, (uint16_t)(i + 1));
			CHECK_EQ(f->q->used->ring[i % RING].id, head);
			CHECK_EQ(f->q->used->ring[i % RING].len, 0);
			check_unwritten(f);
		}
		CHECK(f->vq.ready && !f->vq.broken);
	}
	struct fx *f = fx_split(F_INDIRECT);
	dpdk_split_tables(f);
	for (uint16_t s = 0; s < RING; s++)
		((struct vring_desc *)uvq_ptr(f->m, tab_gpa(s), 16 * TAB_ENTRIES))[0].flags =
		    F_N | F_W;
	dpdk_split_xmit(f, 0, 3);
	CHECK_EQ(vq_pop_mode(&f->vq, &f->c, VQ_POP_DEV_READS), 0);
	check_frame_chain(f, 0, 3);
	vq_push(&f->vq, 0, 0);
	dpdk_split_xmit(f, 1, 2);
	check_broken(f, vq_pop(&f->vq, &f->c));
}

/*
 * Inside a table on a device-read-only pop WRITE means nothing wherever it
 * is (first, middle, last, every entry): all pieces readable, in table
 * order. Both formats.
 */
static void t_write_anywhere_in_table(void)
{
	static const uint16_t pat[][3] = {
		{F_W, 0, 0}, {0, F_W, 0}, {0, 0, F_W}, {F_W, F_W, F_W}, {0, F_W, F_W}, {F_W, 0, F_W},
	};
	for (int packed = 0; packed < 2; packed++) {
		for (size_t p = 0; p < ARRAY_SIZE(pat); p++) {
			struct fx *f = packed ? fx_packed(F_INDIRECT) : fx_split(F_INDIRECT);
			for (uint16_t k = 0; k < 3; k++) {
				uint64_t a = tab_gpa(0) + 16ull * k;
				if (packed) {
					struct vring_packed_desc *e = uvq_ptr(f->m, a, 16);
					*e = (struct vring_packed_desc){seg_gpa(0, k), SEG_LEN, k,
									(uint16_t)(pat[p][k] | (k < 2 ? F_N : 0))};
				} else {
					struct vring_desc *e = uvq_ptr(f->m, a, 16);
					*e = (struct vring_desc){seg_gpa(0, k), SEG_LEN,
								 (uint16_t)(pat[p][k] | (k < 2 ? F_N : 0)),
								 (uint16_t)(k + 1)};
				}
			}
			struct gvq_rawbuf ptr = {tab_gpa(0), 48, F_I};
			gvq_raw_post(f->q, &ptr, 1, 0);
			CHECK_EQ(vq_pop_mode(&f->vq, &f->c, VQ_POP_DEV_READS), 0);
			CHECK_EQ(f->c.nout, 3);
			CHECK_EQ(f->c.nin, 0);
			CHECK_EQ(f->c.out_len, 3 * SEG_LEN);
			for (uint16_t k = 0; k < 3; k++)
				CHECK(f->c.iov[k].iov_base ==
				      mem_gpa_range(f->t, seg_gpa(0, k), SEG_LEN));
		}
	}
}

/*
 * Outside tables nothing changes on a device-read-only pop: a writable ring
 * descriptor stays writable (net then refuses the chain as a packet), a
 * readable ring descriptor after a writable one breaks the ring, and so
 * does (split) a table of readable entries after a writable ring
 * descriptor. Both formats.
 */
static void t_ring_descriptors_keep_write(void)
{
	for (int packed = 0; packed < 2; packed++) {
		/* Ring descriptors (split: a chain 0, 1; packed: two slots, id 0). */
		struct gvq_rawbuf rw[2] = {{seg_gpa(0, 0), 10, 0}, {seg_gpa(0, 1), 20, F_W}};
		struct fx *f = packed ? fx_packed(F_INDIRECT) : fx_split(F_INDIRECT);
		gvq_raw_post(f->q, rw, 2, 0);
		CHECK_EQ(vq_pop_mode(&f->vq, &f->c, VQ_POP_DEV_READS), 0);
		CHECK_EQ(f->c.nout, 1);
		CHECK_EQ(f->c.nin, 1);
		CHECK_EQ(f->c.in_len, 20);

		struct gvq_rawbuf wr[2] = {{seg_gpa(0, 0), 10, F_W}, {seg_gpa(0, 1), 20, 0}};
		f = packed ? fx_packed(F_INDIRECT) : fx_split(F_INDIRECT);
		gvq_raw_post(f->q, wr, 2, 0);
		check_broken(f, vq_pop_mode(&f->vq, &f->c, VQ_POP_DEV_READS));
	}
	struct fx *f = fx_split(F_INDIRECT);
	struct vring_desc *t = uvq_ptr(f->m, tab_gpa(0), 16 * TAB_ENTRIES);
	t[0] = (struct vring_desc){seg_gpa(0, 1), 20, F_W, 0}; /* WRITE ignored: readable */
	struct gvq_rawbuf wi[2] = {{seg_gpa(0, 0), 10, F_W}, {tab_gpa(0), 16, F_I}};
	gvq_raw_post(f->q, wi, 2, 0);
	check_broken(f, vq_pop_mode(&f->vq, &f->c, VQ_POP_DEV_READS));
}

/*
 * Every other check of a table holds on a device-read-only pop: INDIRECT
 * not negotiated, len 0, not a multiple of 16, more than 32768 entries,
 * past the end of memory, a nested table, an unmapped entry buffer, and on
 * split a loop inside the table. Both formats, DPDK's packed table as the
 * valid base.
 */
static void t_table_checks_unchanged(void)
{
	enum { VALID, NOT_NEG, LEN0, LEN17, TOO_MANY, PAST_END, NESTED, UNMAPPED, LOOP, KINDS };
	for (int packed = 0; packed < 2; packed++) {
		for (int k = 0; k < KINDS; k++) {
			if (k == LOOP && packed)
				continue; /* packed tables have no next field */
			uint64_t feat = k == NOT_NEG ? 0 : F_INDIRECT;
			struct fx *f = packed ? fx_packed(feat) : fx_split(feat);
			uint64_t tab = tab_gpa(0);
			uint32_t len = 4 * 16;
			if (packed)
				dpdk_packed_tables(f);
			else
				dpdk_split_tables(f);
			struct vring_packed_desc *pt = uvq_ptr(f->m, tab, 16 * TAB_ENTRIES);
			struct vring_desc *st = uvq_ptr(f->m, tab, 16 * TAB_ENTRIES);
			for (uint16_t e = 1; e < 4; e++) {
				if (packed)
					pt[e] = (struct vring_packed_desc){seg_gpa(0, e - 1), SEG_LEN, e,
									   (uint16_t)((e < 3 ? F_N : 0) | PF_AVAIL)};
				else
					st[e] = (struct vring_desc){seg_gpa(0, e - 1), SEG_LEN,
								    (uint16_t)(e < 3 ? F_N : 0),
								    (uint16_t)(e + 1)};
			}
			switch (k) {
			case LEN0: len = 0; break;
			case LEN17: /* split: entry 0 alone would be a valid chain of one */
				len = 17;
				if (!packed)
					st[0].flags &= (uint16_t)~F_N;
				break;
			case TOO_MANY: len = 16 * 32769; break;
			case PAST_END: /* two entries chained into the unmapped rest */
				tab = 2 * MB - 32;
				memcpy(uvq_ptr(f->m, tab, 16), &st[1], 16);
				memcpy(uvq_ptr(f->m, tab + 16, 16), &st[2], 16);
				if (packed) {
					memcpy(uvq_ptr(f->m, tab, 16), &pt[1], 16);
					memcpy(uvq_ptr(f->m, tab + 16, 16), &pt[2], 16);
				}
				break;
			case NESTED:
				if (packed)
					pt[2].flags |= F_I;
				else
					st[2].flags |= F_I;
				break;
			case UNMAPPED:
				if (packed)
					pt[3].addr = 0x7fff00000000ull;
				else
					st[3].addr = 0x7fff00000000ull;
				break;
			case LOOP: st[3].flags = F_N; st[3].next = 1; break;
			default: break;
			}
			struct gvq_rawbuf ptr = {tab, len, F_I};
			gvq_raw_post(f->q, &ptr, 1, 0);
			fprintf(stderr, "# %s kind %d\n", packed ? "packed" : "split", k);
			int rc = vq_pop_mode(&f->vq, &f->c, VQ_POP_DEV_READS);
			if (k == VALID) {
				CHECK_EQ(rc, 0);
				check_frame_chain(f, 0, 3);
			} else {
				check_broken(f, rc);
			}
		}
	}
}

TEST_MAIN(TEST(t_dpdk_packed_tx_table), TEST(t_dpdk_packed_tx_table_in_order),
	  TEST(t_dpdk_packed_table_rw_refused), TEST(t_dpdk_split_tx_table),
	  TEST(t_write_anywhere_in_table), TEST(t_ring_descriptors_keep_write),
	  TEST(t_table_checks_unchanged))
