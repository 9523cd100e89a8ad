/* SPDX-License-Identifier: MIT */
/*
 * Inflight tracking on packed rings, at the vq layer (vq/vq_inflight.h):
 * the free list and descriptor copies pop and flush keep in the region, a
 * restart after a crash resubmitting exactly the chains not completed (in
 * pop order, from the region's copies: the used write-back of requests
 * completed out of order overwrote their ring slots), the ring positions
 * derived from the region whatever base the frontend gives, a crash at each
 * step of a used write-back (rolled back or committed by the flags of the
 * batch's first descriptor), and hostile regions: each rule of
 * docs/hardening.md section K broken in turn is refused.
 */
#include <stdint.h>

#include "inflight_util.h"
#include "vq/vq_rules.h"

#define MB 0x100000ull
#define BUF 0x40000ull
#define N 8

struct fx {
	struct gmem *g;
	struct mem_table *t;
	struct gvq *r; /* the raw guest posts and reads used entries */
	struct rgn rg;
	uint16_t qsize;
	struct vq vq;
	struct vq_chain c;
	struct iovec iov[UVQ_IOV];
	int err_fd;
};

static struct fx *fx_new(void)
{
	static struct fx f;

	f.g = ifl_mem(2 * MB, &f.t);
	CHECK_EQ(gvq_new_at(f.g, 0x1000, N, F_PACKED, &f.r), 0);
	rgn_new(&f.rg, N, true);
	f.qsize = N;
	f.c.iov = f.iov;
	f.c.iov_max = UVQ_IOV;
	f.err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(f.err_fd >= 0);
	return &f;
}

static void fx_free(struct fx *f)
{
	crash(&f->vq);
	rgn_free(&f->rg);
	close(f->err_fd);
	ifl_mem_free(f->g, f->t, f->r);
}

/* Buffer k of the chain with id @id: its own address and length. */
static uint64_t buf_addr(uint16_t id, int k)
{
	return BUF + id * 0x1000ull + (uint64_t)k * 0x100;
}

static uint32_t buf_len(uint16_t id, int k)
{
	return 32u + id * 4u + (uint32_t)k;
}

/* Post chain @id of @n descriptors (all readable but the last, writable); head flags last. */
static void post(struct fx *f, uint16_t id, int n)
{
	struct gvq_rawbuf b[N];

	for (int k = 0; k < n; k++) {
		b[k].addr = buf_addr(id, k);
		b[k].len = buf_len(id, k);
		b[k].flags = k + 1 < n ? 0 : VRING_DESC_F_WRITE;
	}
	gvq_raw_post(f->r, b, n, id);
}

/* The next used entry the guest sees must be @id. */
static void expect_used(struct fx *f, uint16_t id)
{
	uint16_t got;
	uint32_t len;

	CHECK_EQ(gvq_raw_used(f->r, &got, &len), 1);
	CHECK_EQ(got, id);
}

static void expect_no_used(struct fx *f)
{
	uint16_t got;
	uint32_t len;

	CHECK_EQ(gvq_raw_used(f->r, &got, &len), 0);
}

static int start(struct fx *f, uint32_t base)
{
	struct vq_addr a = uvq_addr(f->r);

	vq_init(&f->vq, 0);
	f->vq.features = F_PACKED;
	CHECK_EQ(vq_set_num(&f->vq, N), 0);
	CHECK_EQ(vq_set_addr(&f->vq, &a), 0);
	CHECK_EQ(vq_set_base(&f->vq, base), 0);
	vq_set_err_fd(&f->vq, dup(f->err_fd));
	CHECK_EQ(vq_set_inflight(&f->vq, f->rg.p, f->rg.len, f->qsize), 0);
	int rc = vq_start(&f->vq, f->t, F_PACKED);
	vq_set_enabled(&f->vq, true);
	return rc;
}

static struct vqi_packed_region *rg(struct fx *f)
{
	return (struct vqi_packed_region *)(void *)f->rg.p;
}

/* Pop the next chain: it must be @id with its @n buffers, byte for byte where they are. */
static void expect_pop(struct fx *f, uint16_t id, int n)
{
	CHECK_EQ(ipop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, id);
	CHECK_EQ(f->c.ndesc, n);
	CHECK_EQ(f->c.nout + f->c.nin, (uint32_t)n);
	CHECK_EQ(f->c.nin, 1);
	for (int k = 0; k < n; k++) {
		CHECK_EQ(f->c.iov[k].iov_len, buf_len(id, k));
		CHECK(f->c.iov[k].iov_base == mem_gpa_range(f->t, buf_addr(id, k), buf_len(id, k)));
	}
}

static void t_fresh_region(void)
{
	struct fx *f = fx_new();

	CHECK_EQ(start(f, 0x80008000u), 0);
	CHECK_EQ(rg(f)->version, 1);
	CHECK_EQ(rg(f)->desc_num, N);
	for (uint16_t i = 0; i < N; i++)
		CHECK_EQ(rg(f)->desc[i].next, i + 1);
	CHECK_EQ(rg(f)->used_wrap_counter, 1);
	post(f, 5, 2);
	expect_pop(f, 5, 2);
	struct vqi_packed_desc *d = rg(f)->desc;
	CHECK_EQ(d[0].inflight, 1);
	CHECK_EQ(d[0].num, 2);
	CHECK_EQ(d[0].last, 1);
	CHECK(d[0].addr == buf_addr(5, 0) && d[0].len == buf_len(5, 0) && d[0].id == 5);
	CHECK(d[0].flags & VRING_DESC_F_NEXT);
	CHECK(d[1].addr == buf_addr(5, 1) && !(d[1].flags & VRING_DESC_F_NEXT));
	CHECK_EQ(rg(f)->free_head, 2);
	CHECK_EQ(rg(f)->old_free_head, 2);
	vq_ifl_push(&f->vq, 5, 7);
	vq_ifl_flush(&f->vq);
	expect_used(f, 5);
	CHECK_EQ(d[0].inflight, 0);
	CHECK_EQ(rg(f)->free_head, 0); /* the chain went back to the front */
	CHECK_EQ(d[1].next, 2);
	CHECK_EQ(rg(f)->used_idx, 2);
	CHECK_EQ(rg(f)->old_used_idx, 2);
	CHECK_EQ(rg(f)->old_free_head, 0);
}

/*
 * Four chains (1, 2, 1, 3 descriptors); the third and the first complete,
 * out of order: their used entries overwrite the ring slots 0 and 1, where
 * the second chain (still in flight) began. The process dies; the frontend
 * passes a stale base; the guest adds a fifth chain. The second and fourth
 * come back whole from the region's copies, then the new one; completing
 * them wraps the used ring.
 */
static void t_restart_out_of_order(void)
{
	struct fx *f = fx_new();

	CHECK_EQ(start(f, 0x80008000u), 0);
	post(f, 0, 1);
	post(f, 1, 2);
	post(f, 2, 1);
	post(f, 3, 3);
	expect_pop(f, 0, 1);
	expect_pop(f, 1, 2);
	expect_pop(f, 2, 1);
	expect_pop(f, 3, 3);
	vq_ifl_push(&f->vq, 2, 0);
	vq_ifl_push(&f->vq, 0, 0);
	vq_ifl_flush(&f->vq);
	expect_used(f, 2);
	expect_used(f, 0);
	CHECK_EQ(f->r->pdesc[1].id, 0); /* chain 1's first slot is gone from the ring */
	crash(&f->vq);

	post(f, 4, 1);
	CHECK_EQ(start(f, 0x80008000u), 0); /* what QEMU 7.2 sends after a crash: stale */
	CHECK_EQ(vq_ifl_pending(&f->vq), 2);
	CHECK_EQ(f->vq.last_used_idx, 2);
	CHECK_EQ(f->vq.last_avail_idx, 7);
	expect_pop(f, 1, 2);
	expect_pop(f, 3, 3);
	expect_pop(f, 4, 1);
	CHECK_EQ(ipop(&f->vq, &f->c), -ENOENT);
	vq_ifl_push(&f->vq, 3, 0);
	vq_ifl_push(&f->vq, 4, 0);
	vq_ifl_push(&f->vq, 1, 0);
	vq_ifl_flush(&f->vq);
	expect_used(f, 3);
	expect_used(f, 4);
	expect_used(f, 1); /* at slot 7, used position wraps */
	expect_no_used(f);
	CHECK_EQ(f->vq.last_used_idx, 0);
	CHECK(!f->vq.used_wrap);

	crash(&f->vq);
	CHECK_EQ(start(f, 0x80008000u), 0);
	CHECK_EQ(vq_ifl_pending(&f->vq), 0);
	CHECK_EQ(f->vq.last_used_idx, 0);
	CHECK_EQ(f->vq.last_avail_idx, 0);
	CHECK(!f->vq.avail_wrap && !f->vq.used_wrap);
	post(f, 2, 1);
	expect_pop(f, 2, 1);
}

/* Pops and completions over several laps, a crash after each round: nothing lost, nothing twice. */
static void t_restart_every_round(void)
{
	struct fx *f = fx_new();
	uint16_t next_id = 0;

	CHECK_EQ(start(f, 0x80008000u), 0);
	for (int round = 0; round < 12; round++) {
		uint16_t ids[3];
		for (int i = 0; i < 3; i++) {
			ids[i] = next_id;
			next_id = (uint16_t)((next_id + 1) % N);
			post(f, ids[i], 1 + (round + i) % 2);
		}
		for (int i = 0; i < 3; i++)
			expect_pop(f, ids[i], 1 + (round + i) % 2);
		/* Complete the last and the first; the middle one survives a crash. */
		vq_ifl_push(&f->vq, ids[2], 0);
		vq_ifl_push(&f->vq, ids[0], 0);
		vq_ifl_flush(&f->vq);
		expect_used(f, ids[2]);
		expect_used(f, ids[0]);
		crash(&f->vq);
		CHECK_EQ(start(f, 0), 0);
		CHECK_EQ(vq_ifl_pending(&f->vq), 1);
		expect_pop(f, ids[1], 1 + (round + 1) % 2);
		vq_ifl_push(&f->vq, ids[1], 0);
		vq_ifl_flush(&f->vq);
		expect_used(f, ids[1]);
	}
	expect_no_used(f);
}

/*
 * A crash inside the used write-back of a batch of two, at each guest
 * write: before the batch's first flags the guest saw nothing (rolled
 * back: both come again); after them it saw both (committed).
 */
static void crash_in_flush(int at, bool committed)
{
	struct fx *f = fx_new();
	struct vring_packed_desc before[N];
	struct crash_point cp;

	CHECK_EQ(start(f, 0x80008000u), 0);
	post(f, 0, 2);
	post(f, 1, 1);
	post(f, 2, 2);
	expect_pop(f, 0, 2);
	expect_pop(f, 1, 1);
	expect_pop(f, 2, 2);
	vq_ifl_push(&f->vq, 2, 0);
	vq_ifl_push(&f->vq, 1, 0);
	memcpy(before, f->r->pdesc, sizeof(before));
	crash_arm(&cp, &f->vq, &f->rg, VQ_WRITE_DESC, at);
	vq_ifl_flush(&f->vq);
	crash_apply(&cp, &f->vq);
	if (!committed) /* the flags of the batch's first slot were never stored */
		f->r->pdesc[0].flags = before[0].flags;
	if (at == 1) /* nothing but id/len of the first slot was written */
		memcpy(f->r->pdesc, before, sizeof(before));
	crash(&f->vq);

	CHECK_EQ(start(f, 0x80008000u), 0);
	if (committed) {
		expect_used(f, 2);
		expect_used(f, 1);
		CHECK_EQ(vq_ifl_pending(&f->vq), 1);
		CHECK_EQ(f->vq.last_used_idx, 3);
		expect_pop(f, 0, 2);
	} else {
		expect_no_used(f);
		CHECK_EQ(vq_ifl_pending(&f->vq), 3);
		CHECK_EQ(f->vq.last_used_idx, 0);
		expect_pop(f, 0, 2);
		expect_pop(f, 1, 1);
		expect_pop(f, 2, 2);
	}
	CHECK_EQ(f->vq.last_avail_idx, 5);
	CHECK_EQ(ipop(&f->vq, &f->c), -ENOENT);
	/* Everything completes once more, the guest sees each id once. */
	vq_ifl_push(&f->vq, 0, 0);
	if (!committed) {
		vq_ifl_push(&f->vq, 1, 0);
		vq_ifl_push(&f->vq, 2, 0);
	}
	vq_ifl_flush(&f->vq);
	if (!committed) {
		expect_used(f, 0);
		expect_used(f, 1);
		expect_used(f, 2);
	} else {
		expect_used(f, 0);
	}
	expect_no_used(f);
}

static void t_crash_before_write_back(void)
{
	crash_in_flush(1, false);
}

static void t_crash_before_first_flags(void)
{
	crash_in_flush(2, false); /* the second entry is written, the first not yet */
}

static void t_crash_after_first_flags(void)
{
	crash_in_flush(3, true); /* the last guest write: before inflight and old_* are updated */
}

/* A full ring in flight (free list empty) survives a restart. */
static void t_full_ring(void)
{
	struct fx *f = fx_new();

	CHECK_EQ(start(f, 0x80008000u), 0);
	post(f, 0, 3);
	post(f, 1, 3);
	post(f, 2, 2);
	expect_pop(f, 0, 3);
	expect_pop(f, 1, 3);
	expect_pop(f, 2, 2);
	CHECK_EQ(rg(f)->free_head, N);
	crash(&f->vq);
	CHECK_EQ(start(f, 0), 0);
	CHECK_EQ(f->vq.last_avail_idx, 0);
	CHECK(!f->vq.avail_wrap); /* one whole lap ahead of the used position */
	expect_pop(f, 0, 3);
	expect_pop(f, 1, 3);
	expect_pop(f, 2, 2);
	CHECK_EQ(ipop(&f->vq, &f->c), -ENOENT);
}

/* More descriptors outstanding than the ring holds (a guest re-posting a lap early) breaks it. */
static void t_overcommitted_ring(void)
{
	struct fx *f = fx_new();

	CHECK_EQ(start(f, 0x80008000u), 0);
	post(f, 0, N);
	expect_pop(f, 0, N);
	post(f, 1, 1); /* slot 0 again, next lap, while all N are in flight */
	CHECK_EQ(ipop(&f->vq, &f->c), -EIO);
	CHECK(f->vq.broken);
	CHECK_EQ(efd_count(f->err_fd), 1);
}

static void t_reposted_id(void)
{
	struct fx *f = fx_new();

	CHECK_EQ(start(f, 0x80008000u), 0);
	post(f, 3, 1);
	expect_pop(f, 3, 1);
	vq_ifl_push(&f->vq, 3, 0);
	post(f, 3, 1); /* before the completion was published */
	CHECK_EQ(ipop(&f->vq, &f->c), -EIO);
	CHECK(f->vq.broken);
}

static void t_unpop(void)
{
	struct fx *f = fx_new();

	CHECK_EQ(start(f, 0x80008000u), 0);
	post(f, 0, 2);
	post(f, 1, 1);
	expect_pop(f, 0, 2);
	expect_pop(f, 1, 1);
	vq_ifl_unpop(&f->vq, 1);
	CHECK_EQ(rg(f)->desc[2].inflight, 0);
	CHECK_EQ(rg(f)->free_head, 2);
	CHECK_EQ(rg(f)->old_free_head, 2);
	expect_pop(f, 1, 1);
	vq_ifl_unpop(&f->vq, 1);
	crash(&f->vq);
	CHECK_EQ(start(f, 0x80008000u), 0);
	CHECK_EQ(vq_ifl_pending(&f->vq), 1);
	expect_pop(f, 0, 2);
	vq_ifl_unpop(&f->vq, 0);
	expect_pop(f, 0, 2);
	expect_pop(f, 1, 1); /* from the ring */
	CHECK_EQ(ipop(&f->vq, &f->c), -ENOENT);
}

/* A copy whose buffer is not guest memory any more is refused when it is resubmitted. */
static void t_resubmit_revalidated(void)
{
	struct fx *f = fx_new();

	CHECK_EQ(start(f, 0x80008000u), 0);
	post(f, 0, 2);
	expect_pop(f, 0, 2);
	crash(&f->vq);
	rg(f)->desc[1].addr = 0x7fff00000000ull;
	CHECK_EQ(start(f, 0x80008000u), 0);
	CHECK_EQ(ipop(&f->vq, &f->c), -EIO);
	CHECK(f->vq.broken);
	CHECK_EQ(efd_count(f->err_fd), 1);
}

/*
 * A used region: chains 0 (2 descriptors, entries 0-1) and 2 (2, entries
 * 3-4) in flight, chain 1 (entry 2) completed: free list 2 -> 5 -> 6 -> 7.
 */
static void used_region(struct fx *f)
{
	CHECK_EQ(start(f, 0x80008000u), 0);
	post(f, 0, 2);
	post(f, 1, 1);
	post(f, 2, 2);
	expect_pop(f, 0, 2);
	expect_pop(f, 1, 1);
	expect_pop(f, 2, 2);
	vq_ifl_push(&f->vq, 1, 0);
	vq_ifl_flush(&f->vq);
	crash(&f->vq);
}

enum mut {
	M_NONE, M_VERSION, M_DESC_NUM, M_USED, M_OLD_USED, M_WRAP, M_FREE_HEAD, M_OLD_FREE_HEAD,
	M_INFLIGHT2, M_FREE_LINK, M_FREE_LOOP, M_NUM0, M_NUM_BIG, M_CHAIN_LINK, M_CHAIN_IN_FREE,
	M_CHAINS_SHARE, M_NEXT_FLAG, M_LAST, M_ID_BIG, M_ID_TWICE, M_LOST, M_QSIZE, M_SHORT, M_MAX
};

static void mutate(struct fx *f, enum mut m)
{
	struct vqi_packed_region *r = rg(f);
	struct vqi_packed_desc *d = r->desc;

	switch (m) {
	case M_VERSION: r->version = 7; break;
	case M_DESC_NUM: r->desc_num = N + 1; break;
	case M_USED: r->used_idx = r->old_used_idx = N; break;
	case M_OLD_USED: r->old_used_idx = N; break;
	case M_WRAP: r->used_wrap_counter = 2; break;
	case M_FREE_HEAD: r->free_head = N + 1; break;
	case M_OLD_FREE_HEAD: r->old_free_head = N + 1; break;
	case M_INFLIGHT2: d[5].inflight = 2; break;
	case M_FREE_LINK: d[5].next = N + 1; break;
	case M_FREE_LOOP: d[6].next = 5; break;
	case M_NUM0: d[0].num = 0; break;
	case M_NUM_BIG: d[0].num = N + 1; break;
	case M_CHAIN_LINK: d[0].next = N; break;
	case M_CHAIN_IN_FREE: /* chain 2 ends in free entry 5; everything else about it is consistent */
		d[3].next = 5;
		d[3].last = 5;
		d[5].id = 5;
		d[5].flags = VRING_DESC_F_WRITE;
		break;
	case M_CHAINS_SHARE: d[3].next = 1; break;
	case M_NEXT_FLAG: d[0].flags &= (uint16_t)~VRING_DESC_F_NEXT; break;
	case M_LAST: d[0].last = 0; break;
	case M_ID_BIG: d[1].id = N; break;
	case M_ID_TWICE: d[4].id = d[1].id; break;
	case M_LOST: d[6].next = N; break;
	case M_QSIZE: f->qsize = N - 1; break;
	case M_SHORT: f->rg.len = sizeof(*r) + (N - 1) * sizeof(*d); break;
	default: break;
	}
}

static void t_hostile_regions(void)
{
	for (int m = M_NONE; m < M_MAX; m++) {
		struct fx *f = fx_new();
		uint64_t full = f->rg.len;
		uint8_t *before = malloc(full);
		CHECK(before != NULL);
		used_region(f);
		CHECK_EQ(rg(f)->free_head, 2);
		mutate(f, (enum mut)m);
		memcpy(before, f->rg.p, full);
		int rc = start(f, 0x80008000u);
		if (m == M_NONE) {
			CHECK_EQ(rc, 0);
			CHECK_EQ(vq_ifl_pending(&f->vq), 2);
			expect_pop(f, 0, 2);
			expect_pop(f, 2, 2);
		} else {
			if (rc != -EINVAL)
				fprintf(stderr, "# mutation %d accepted\n", m);
			CHECK_EQ(rc, -EINVAL);
			CHECK(f->vq.broken && !f->vq.started && !f->vq.ready);
			CHECK_EQ(efd_count(f->err_fd), 1);
			CHECK(!memcmp(before, f->rg.p, full));
		}
		f->rg.len = full;
		fx_free(f);
		free(before);
	}
}

TEST_MAIN(TEST(t_fresh_region), TEST(t_restart_out_of_order), TEST(t_restart_every_round),
	  TEST(t_crash_before_write_back), TEST(t_crash_before_first_flags),
	  TEST(t_crash_after_first_flags), TEST(t_full_ring), TEST(t_overcommitted_ring),
	  TEST(t_reposted_id), TEST(t_unpop), TEST(t_resubmit_revalidated),
	  TEST(t_hostile_regions))
