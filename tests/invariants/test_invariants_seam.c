/* SPDX-License-Identifier: MIT */
/*
 * The guest-write seam (src/vq/vq_guest.h): every byte the library changes
 * in guest memory is written through it, and it writes only where the
 * device may write. A recording write observer is installed on both rings
 * of a net device (vq_set_write_observer); then receive and transmit
 * traffic runs through vhk_net_enqueue_burst / vhk_net_dequeue_burst with
 * one-piece, multi-piece, indirect and region-crossing chains, chains that
 * are rejected (readable on receive, writable on transmit, more pieces than
 * the device takes, bad headers), chained and offloaded packets (software
 * checksum patch) and notification changes. Guest memory is snapshotted
 * before the device runs and compared after, byte for byte:
 *  - every byte that changed lies inside an observed write: more, guest
 *    memory after the step equals the snapshot with the observed writes
 *    applied in order (the observer copies what each write left), so a
 *    byte written again later without the seam is caught too;
 *  - every observed write lies, by its kind, inside a writable buffer the
 *    guest offered (not one of a chain that must be rejected), the used
 *    ring (entries, used->idx), the bytes a used write-back may change of a
 *    packed descriptor (len, id, flags), or an event area (used->flags,
 *    avail_event, the packed device event structure).
 * Configurations: mergeable on and off, in-order, EVENT_IDX on (and one
 * run off), guest checksum off (software patch). The binary takes
 * `--packed` or `--split` like the other datapath invariants.
 * t_rx_in_order_reject_mid_packet checks the order of what the device
 * writes to the used side in the case this test first caught.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "inv_common.h"
#include "core/vdev.h"
#include "vq/vq.h"
#include "vq/vq_guest.h"

#define REGSZ  (1u << 20) /* three regions: rings in 0, straddling buffers at 0/1 and 1/2 */
#define NREG   3u
#define MEMSZ  (NREG * REGSZ)
#define QSIZE  128
#define HDR    12u
#define MAXREC 65536u
#define MAXBUF 256u

#define F_MRG  BIT(VHK_NET_F_MRG_RXBUF)
#define F_IO   BIT(VHK_F_IN_ORDER)
#define F_EVI  BIT(VHK_F_EVENT_IDX)
#define F_GCSUM                                                                            \
	(BIT(VHK_NET_F_GUEST_CSUM) | BIT(VHK_NET_F_GUEST_TSO4) | BIT(VHK_NET_F_GUEST_TSO6) | \
	 BIT(VHK_NET_F_GUEST_UFO))
/* Everything but the bits a case chooses; RING_PACKED exactly on a packed run. */
#define F_BASE                                                                             \
	((VHK_NET_DEFAULT_FEATURES & ~(F_MRG | F_IO | F_EVI | BIT(VHK_F_RING_PACKED))) |   \
	 (inv_packed ? BIT(VHK_F_RING_PACKED) : 0))

/* One observed write, in guest physical terms. */
struct wrec {
	uint64_t gpa; /* UINT64_MAX: the address was not in guest memory */
	uint64_t len;
	enum vq_write_kind kind;
};

/* A guest range the device may write with writes of one kind. */
struct area {
	uint64_t gpa, len;
	enum vq_write_kind kind;
};

static struct {
	const struct mem_table *mem; /* the library's table: hva -> gpa */
	struct wrec rec[MAXREC];
	uint32_t nrec;
	bool overflow;
	struct area buf[MAXBUF]; /* writable buffers offered (cumulative) */
	uint32_t nbuf;
	uint8_t *snap;   /* guest memory before the step */
	uint8_t *expect; /* the snapshot with every observed write applied */
} S;

static void obs_write(void *ctx, const void *hva, size_t len, enum vq_write_kind kind)
{
	(void)ctx;
	if (S.nrec == MAXREC) {
		S.overflow = true;
		return;
	}
	struct wrec *w = &S.rec[S.nrec++];
	w->gpa = UINT64_MAX;
	w->len = len;
	w->kind = kind;
	for (uint32_t i = 0; i < S.mem->nregions; i++) {
		const struct mem_region *r = &S.mem->regions[i];
		uintptr_t a = (uintptr_t)hva, b = (uintptr_t)r->hva;
		if (a >= b && a - b < r->size && len <= r->size - (a - b)) {
			w->gpa = r->gpa + (a - b);
			break;
		}
	}
	if (w->gpa != UINT64_MAX && w->gpa < MEMSZ && len <= MEMSZ - w->gpa)
		memcpy(S.expect + w->gpa, hva, len); /* what the write left */
}

static const struct vq_write_observer g_obs = {obs_write, NULL};

/* Net device on one pair with @features; the observer on both rings. */
static void seam_up(struct inv *f, uint64_t features)
{
	inv_start_net(f);
	inv_connect(f, features, IT_PF_DEFAULT);
	CHECK_EQ(f->v->features, features);
	inv_guest(f, NREG, REGSZ, QSIZE, features & (F_EVI | F_IO));
	inv_bring_up(f, 2);
	struct vdev *d = vdev_get(f->vid);
	CHECK(d != NULL);
	S.mem = d->mem;
	for (uint32_t q = 0; q < 2; q++) {
		struct vq *vq = vdev_vq(d, q);
		CHECK(vq != NULL);
		vq_quiesce(vq);
		vq_set_write_observer(vq, &g_obs);
		vq_unquiesce(vq);
	}
	S.snap = malloc(MEMSZ);
	S.expect = malloc(MEMSZ);
	CHECK(S.snap && S.expect);
}

/* Guest RAM byte @gpa (our view). */
static uint8_t *gbyte(struct inv *f, uint64_t gpa)
{
	return f->m->r[gpa / REGSZ].hva + gpa % REGSZ;
}

static void snapshot(struct inv *f)
{
	for (uint32_t i = 0; i < NREG; i++)
		memcpy(S.snap + (uint64_t)i * REGSZ, f->m->r[i].hva, REGSZ);
	memcpy(S.expect, S.snap, MEMSZ);
	S.nrec = 0;
}

/* Does [gpa, gpa + len) lie in [a, a + alen)? */
static bool inside(uint64_t gpa, uint64_t len, uint64_t a, uint64_t alen)
{
	return gpa >= a && gpa - a <= alen && len <= alen - (gpa - a);
}

/* Is the observed write @w inside an area the device may write with its kind? */
static bool write_allowed(struct inv *f, const struct wrec *w)
{
	if (w->gpa == UINT64_MAX || w->len == 0)
		return false;
	if (w->kind == VQ_WRITE_BUF) {
		for (uint32_t i = 0; i < S.nbuf; i++)
			if (inside(w->gpa, w->len, S.buf[i].gpa, S.buf[i].len))
				return true;
		return false;
	}
	for (uint32_t q = 0; q < 2; q++) {
		const struct gvq *r = f->vq[q];
		uint64_t n = r->size;
		if (r->packed) { /* the device event area sits where split has the used ring */
			if (w->kind == VQ_WRITE_EVENT && inside(w->gpa, w->len, r->used_gpa, 4))
				return true;
			/* A used write-back changes len, id and flags: bytes 8..15 of a slot. */
			if (w->kind == VQ_WRITE_DESC && inside(w->gpa, w->len, r->desc_gpa, 16 * n) &&
			    (w->gpa - r->desc_gpa) % 16 >= 8 &&
			    inside(w->gpa, w->len, w->gpa - (w->gpa - r->desc_gpa) % 16 + 8, 8))
				return true;
			continue;
		}
		if (w->kind == VQ_WRITE_USED && inside(w->gpa, w->len, r->used_gpa + 2, 2 + 8 * n))
			return true;
		if (w->kind == VQ_WRITE_EVENT && (inside(w->gpa, w->len, r->used_gpa, 2) ||
						  (r->event_idx &&
						   inside(w->gpa, w->len, r->used_gpa + 4 + 8 * n, 2))))
			return true;
	}
	return false;
}

/*
 * After the device ran: every observed write allowed, guest memory equal to
 * the snapshot plus the observed writes. @what names the step; @want_buf:
 * buffer writes are expected.
 */
static void check_step(struct inv *f, const char *what, bool want_buf)
{
	uint32_t kinds = 0;

	CHECK(!S.overflow);
	for (uint32_t i = 0; i < S.nrec; i++) {
		const struct wrec *w = &S.rec[i];
		if (!write_allowed(f, w)) {
			fprintf(stderr, "# %s: write of kind %d at gpa 0x%llx len %llu not allowed\n",
				what, (int)w->kind, (unsigned long long)w->gpa,
				(unsigned long long)w->len);
			CHECK(0);
		}
		kinds |= 1u << w->kind;
	}
	uint64_t changed = 0;
	for (uint64_t g = 0; g < MEMSZ; g++) {
		uint8_t now = *gbyte(f, g);
		changed += now != S.snap[g];
		if (now != S.expect[g]) {
			fprintf(stderr,
				"# %s: guest byte 0x%llx is 0x%02x, was 0x%02x, observed writes "
				"left 0x%02x\n",
				what, (unsigned long long)g, now, S.snap[g], S.expect[g]);
			CHECK(0);
		}
	}
	fprintf(stderr, "# %s: %u writes, %llu bytes changed, kinds 0x%x\n", what, S.nrec,
		(unsigned long long)changed, kinds);
	/* The device did write: the used side always, the buffers when packets went in. */
	CHECK(kinds & (1u << (inv_packed ? VQ_WRITE_DESC : VQ_WRITE_USED)));
	if (want_buf)
		CHECK(kinds & (1u << VQ_WRITE_BUF));
	CHECK(changed > 0);
}

/* Remember writable buffers the device may fill. */
static void allow(const struct gbuf *in, int nin)
{
	for (int i = 0; i < nin; i++) {
		CHECK(S.nbuf < MAXBUF);
		S.buf[S.nbuf++] = (struct area){in[i].gpa, in[i].len, VQ_WRITE_BUF};
	}
}

/* Post a receive chain; @allowed: the device may write its buffers. */
static void rx_chain(struct inv *f, const struct gbuf *out, int nout, const struct gbuf *in,
		     int nin, bool indirect, bool allowed)
{
	for (int i = 0; i < nin; i++)
		memset(gbyte(f, in[i].gpa), 0xcc, in[i].len); /* guest memory per region: no straddle */
	CHECK(gvq_post(f->vq[0], out, nout, in, nin, indirect, (void *)1) >= 0);
	if (allowed)
		allow(in, nin);
}

static uint64_t alloc(struct inv *f, uint32_t len)
{
	uint64_t g = gmem_alloc(f->m, len, 64);
	CHECK(g != 0);
	return g;
}

/* A packet of @len bytes in segments of at most @seg bytes. */
static struct vhk_pkt *mkpkt(struct vhk_pool *pool, uint32_t len, uint32_t seg, uint8_t seed)
{
	struct vhk_pkt *head = vhk_pkt_alloc(pool), *tail = head;
	uint32_t off = 0;

	CHECK(head != NULL);
	while (off < len) {
		if (vhk_pkt_tailroom(tail) == 0 || tail->data_len >= seg) {
			tail = vhk_pkt_alloc(pool);
			CHECK(tail != NULL);
			CHECK_EQ(vhk_pkt_chain(head, tail), 0);
		}
		uint32_t n = MIN(MIN(seg - tail->data_len, len - off), vhk_pkt_tailroom(tail));
		uint8_t *d = vhk_pkt_append(head, n);
		CHECK(d != NULL);
		for (uint32_t i = 0; i < n; i++)
			d[i] = (uint8_t)(seed + off + i);
		off += n;
	}
	return head;
}

/* Consume every used entry of ring @q; returns how many. */
static uint32_t reap_all(struct inv *f, uint32_t q)
{
	void *tok;
	uint32_t len, n = 0;
	while (gvq_get_used(f->vq[q], &tok, &len) == 1)
		n++;
	return n;
}

/* Receive: chains of every shape, packets of every shape, one observed step. */
static void rx_step(struct inv *f, struct vhk_pool *pool, uint64_t straddle, bool mrg)
{
	struct gbuf b[4];

	for (int i = 0; i < 3; i++) { /* one piece: the burst fast path */
		b[0] = (struct gbuf){alloc(f, 2048), 2048};
		rx_chain(f, NULL, 0, b, 1, false, true);
	}
	b[0] = (struct gbuf){alloc(f, 64), 64}; /* readable on receive: rejected */
	rx_chain(f, b, 1, NULL, 0, false, false);
	b[1] = (struct gbuf){alloc(f, 2048), 2048}; /* readable, then writable: rejected too */
	rx_chain(f, b, 1, b + 1, 1, false, false);
	/* Three pieces, the header split over the first two. */
	b[0] = (struct gbuf){alloc(f, 64), 5};
	b[1] = (struct gbuf){alloc(f, 64), 30};
	b[2] = (struct gbuf){alloc(f, 2048), 2000};
	rx_chain(f, NULL, 0, b, 3, false, true);
	b[0] = (struct gbuf){alloc(f, 128), 100}; /* indirect, two pieces */
	b[1] = (struct gbuf){alloc(f, 2048), 1948};
	rx_chain(f, NULL, 0, b, 2, true, true);
	/* More pieces than the device takes (NET_MAX_IOV): consumed, never written. */
	static struct gbuf many[300];
	uint64_t m = alloc(f, 300);
	for (int i = 0; i < 300; i++)
		many[i] = (struct gbuf){m + (uint64_t)i, 1};
	CHECK(gvq_post(f->vq[0], NULL, 0, many, 300, true, (void *)1) >= 0);
	b[0] = (struct gbuf){straddle, 2048}; /* one buffer, two regions: two pieces */
	CHECK(gvq_post(f->vq[0], NULL, 0, b, 1, false, (void *)1) >= 0);
	allow(b, 1);
	for (int i = 0; mrg && i < 6; i++) { /* small buffers: a mergeable packet spans several */
		b[0] = (struct gbuf){alloc(f, 1024), 1024};
		rx_chain(f, NULL, 0, b, 1, false, true);
	}

	struct vhk_pkt *p[6];
	p[0] = mkpkt(pool, 60, 2048, 1);
	p[1] = mkpkt(pool, 1500, 2048, 2);
	p[2] = mkpkt(pool, 1400, 500, 3); /* three segments */
	p[3] = mkpkt(pool, 200, 2048, 4); /* checksum offload (patched without GUEST_CSUM) */
	p[3]->ol.flags = VHK_PKT_OL_NEEDS_CSUM;
	p[3]->ol.csum_start = 34;
	p[3]->ol.csum_offset = 16;
	p[4] = mkpkt(pool, 900, 2048, 5);
	p[5] = mkpkt(pool, mrg ? 3000 : 1000, 1024, 6); /* mergeable: three buffers */
	uint16_t sent = 0;
	snapshot(f);
	vhk_vq_set_notification(f->vid, 0, false);
	while (sent < 6) {
		uint16_t k = vhk_net_enqueue_burst(f->vid, 0, p + sent, (uint16_t)(6 - sent));
		if (!k)
			break;
		sent = (uint16_t)(sent + k);
	}
	vhk_vq_set_notification(f->vid, 0, true);
	check_step(f, mrg ? "rx (mergeable)" : "rx", true);
	CHECK_EQ(sent, 6);
	for (int i = 0; i < 6; i++)
		vhk_pkt_free(p[i]);
	CHECK(reap_all(f, 0) >= 6);
	CHECK(!inv_vring(f, 0).broken);
}

/* Post a transmit chain: a header (@hdr, 12 bytes) and @len packet bytes over @pieces. */
static void tx_chain(struct inv *f, const uint8_t *hdr, uint32_t len, const uint32_t *pieces,
		     int npieces, bool indirect)
{
	struct gbuf b[4];
	uint8_t data[2048];
	uint32_t total = HDR + len, off = 0;

	CHECK(total <= sizeof(data));
	memcpy(data, hdr, HDR);
	for (uint32_t i = 0; i < len; i++)
		data[HDR + i] = (uint8_t)i;
	for (int i = 0; i < npieces; i++) {
		uint32_t l = i + 1 < npieces ? pieces[i] : total - off;
		b[i] = (struct gbuf){alloc(f, l), l};
		CHECK_EQ(gmem_write(f->m, b[i].gpa, data + off, l), 0);
		off += l;
	}
	CHECK(gvq_post(f->vq[1], b, npieces, NULL, 0, indirect, (void *)1) >= 0);
}

/* Transmit: chains of every shape (and rejected ones), one observed step. */
static void tx_step(struct inv *f, struct vhk_pool *pool, uint64_t straddle)
{
	uint8_t hdr[HDR] = {0}, bad[HDR] = {0};
	const uint32_t split_hdr[3] = {5, 7, 0};
	struct gbuf b;

	struct vhk_pkt *out[16];
	uint32_t got = 0;

	/* Good chains only: with IN_ORDER one used entry completes them all. */
	for (int i = 0; i < 4; i++)
		tx_chain(f, hdr, 60 + (uint32_t)i, NULL, 1, false);
	snapshot(f);
	CHECK_EQ(vhk_net_dequeue_burst(f->vid, 1, pool, out, 16), 4);
	vhk_pkt_free_bulk(out, 4);
	check_step(f, "tx (clean)", false);
	CHECK_EQ(reap_all(f, 1), 4);

	bad[0] = VHK_PKT_OL_NEEDS_CSUM; /* csum_start past the packet: refused */
	bad[6] = 0xff;
	bad[7] = 0x7f;
	for (int i = 0; i < 3; i++)
		tx_chain(f, hdr, 60 + (uint32_t)i, NULL, 1, false);
	tx_chain(f, hdr, 300, split_hdr, 3, false);
	tx_chain(f, hdr, 1000, split_hdr + 1, 2, true);
	tx_chain(f, bad, 100, NULL, 1, false);
	b = (struct gbuf){alloc(f, 128), 128}; /* writable on transmit: rejected, never written */
	CHECK(gvq_post(f->vq[1], NULL, 0, &b, 1, false, (void *)1) >= 0);
	CHECK_EQ(gmem_write(f->m, straddle, hdr, HDR), 0); /* one buffer over two regions */
	b = (struct gbuf){straddle, 1500};
	CHECK(gvq_post(f->vq[1], &b, 1, NULL, 0, false, (void *)1) >= 0);

	snapshot(f);
	vhk_vq_set_notification(f->vid, 1, false);
	for (;;) {
		uint16_t k = vhk_net_dequeue_burst(f->vid, 1, pool, out, 16);
		if (!k)
			break;
		got += k;
		vhk_pkt_free_bulk(out, k);
	}
	vhk_vq_set_notification(f->vid, 1, true);
	check_step(f, "tx", false);
	CHECK_EQ(got, 6);
	CHECK_EQ(reap_all(f, 1), 8);
	CHECK(!inv_vring(f, 1).broken);
}

static void run(uint64_t features)
{
	struct inv f;
	struct vhk_pool *pool;

	seam_up(&f, features);
	CHECK_EQ(vhk_pool_create(256, 2048, 0, 0, &pool), 0);
	/* Buffers that cross a region boundary, at 0/1 (receive) and 1/2 (transmit). */
	uint64_t rx_straddle = gmem_alloc_straddle(f.m, 0, 2048);
	uint64_t tx_straddle = gmem_alloc_straddle(f.m, 1, 1500);
	CHECK(rx_straddle && tx_straddle);
	for (int round = 0; round < 3; round++) {
		rx_step(&f, pool, rx_straddle, features & F_MRG);
		tx_step(&f, pool, tx_straddle);
	}
	inv_close(&f);
	CHECK_EQ(vhk_pool_avail(pool), 256);
	vhk_pool_free(pool);
	free(S.snap);
	free(S.expect);
}

static void t_seam_plain(void)
{
	run(F_BASE | F_EVI);
}

static void t_seam_mergeable(void)
{
	run(F_BASE | F_EVI | F_MRG);
}

static void t_seam_in_order(void)
{
	run(F_BASE | F_EVI | F_IO);
}

static void t_seam_in_order_mergeable(void)
{
	run(F_BASE | F_EVI | F_IO | F_MRG);
}

static void t_seam_no_event_idx(void)
{
	run(F_BASE | F_MRG);
}

static void t_seam_sw_checksum(void)
{
	run((F_BASE & ~F_GCSUM) | F_EVI | F_MRG);
}

/*
 * What the device writes to the used side, in order: with VIRTIO_F_IN_ORDER
 * and MRG_RXBUF, a chain the device must reject
 * (readable on receive) between the chains of one mergeable packet. Every
 * chain still comes back in the order it was made available (the in-order
 * driver reads each used entry as completing everything before it), and
 * the packet arrives whole in the chains that report bytes, num_buffers
 * counting them. The ring stays in step: the next packet lands where the
 * driver expects it.
 */
static void t_rx_in_order_reject_mid_packet(void)
{
	struct inv f;
	struct vhk_pool *pool;
	inv_net_up(&f, INV_NETF | F_MRG | F_IO, REGSZ, 64);
	CHECK_EQ(vhk_pool_create(64, 2048, 0, 0, &pool), 0);
	uint64_t a = alloc(&f, 1024), r = alloc(&f, 64), b = alloc(&f, 2048), c = alloc(&f, 2048);
	struct gbuf ga = {a, 1024}, gr = {r, 64}, gb = {b, 2048}, gc = {c, 2048};
	CHECK(gvq_post(f.vq[0], NULL, 0, &ga, 1, false, (void *)(uintptr_t)a) >= 0);
	CHECK(gvq_post(f.vq[0], &gr, 1, NULL, 0, false, (void *)(uintptr_t)r) >= 0);
	CHECK(gvq_post(f.vq[0], NULL, 0, &gb, 1, false, (void *)(uintptr_t)b) >= 0);
	struct vhk_pkt *p = mkpkt(pool, 1500, 2048, 9);
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, &p, 1), 1);
	vhk_pkt_free(p);
	/* The chains in avail order; the packet's bytes in the ones that report some. */
	const uint64_t order[3] = {a, r, b};
	uint8_t got[HDR + 1500 + 1024];
	uint32_t total = 0, nbufs = 0;
	for (int i = 0; i < 3; i++) {
		void *tok = NULL;
		uint32_t len = 0;
		CHECK_EQ(gvq_get_used(f.vq[0], &tok, &len), 1);
		CHECK_EQ((uint64_t)(uintptr_t)tok, order[i]);
		if (!len)
			continue;
		CHECK(order[i] != r && total + len <= sizeof(got));
		CHECK_EQ(gmem_read(f.m, order[i], got + total, len), 0);
		total += len;
		nbufs++;
	}
	CHECK_EQ(total, HDR + 1500);
	CHECK_EQ(got[10] | got[11] << 8, nbufs);
	for (uint32_t i = 0; i < 1500; i++)
		CHECK_EQ(got[HDR + i], (uint8_t)(9 + i));
	/* Still in step: the next packet in the next chain. */
	CHECK(gvq_post(f.vq[0], NULL, 0, &gc, 1, false, (void *)(uintptr_t)c) >= 0);
	p = mkpkt(pool, 100, 2048, 1);
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, &p, 1), 1);
	vhk_pkt_free(p);
	void *tok = NULL;
	uint32_t len = 0;
	CHECK_EQ(gvq_get_used(f.vq[0], &tok, &len), 1);
	CHECK_EQ((uint64_t)(uintptr_t)tok, c);
	CHECK_EQ(len, HDR + 100);
	CHECK(!inv_vring(&f, 0).broken);
	inv_close(&f);
	vhk_pool_free(pool);
}

GVQ_TEST_MAIN(TEST(t_seam_plain), TEST(t_seam_mergeable), TEST(t_seam_in_order),
	      TEST(t_seam_in_order_mergeable), TEST(t_seam_no_event_idx), TEST(t_seam_sw_checksum),
	      TEST(t_rx_in_order_reject_mid_packet))
