/* SPDX-License-Identifier: MIT */
/*
 * Inflight tracking on split rings, at the vq layer (vq/vq_inflight.h):
 * what pop, push and flush write into the region, a restart after a crash
 * (the vq reset; the region and guest memory kept) resubmitting exactly
 * the requests not completed, in pop order, with requests completed out of
 * order before the crash, a crash at each step of a used-ring update, and
 * hostile regions: each rule of docs/hardening.md section K broken in
 * turn is refused (the ring does not start, it is marked broken, its err
 * fd signalled, nothing is written to the region).
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
	struct gvq *r;
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
	CHECK_EQ(gvq_new_at(f.g, 0x1000, N, 0, &f.r), 0);
	rgn_new(&f.rg, N, false);
	f.qsize = N;
	f.c.iov = f.iov;
	f.c.iov_max = UVQ_IOV;
	f.err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(f.err_fd >= 0);
	return &f;
}

/* Every head h is a chain of itself alone: one readable buffer of 16 + h bytes. */
static void one_desc_chains(struct fx *f)
{
	for (uint16_t h = 0; h < N; h++)
		gvq_raw_desc(f->r, h, BUF + h * 0x100ull, 16u + h, 0, 0);
}

/* (Re)start the vq over the same ring and region, SET_VRING_BASE @base. */
static int start(struct fx *f, uint16_t base)
{
	struct vq_addr a = uvq_addr(f->r);

	vq_init(&f->vq, 0);
	CHECK_EQ(vq_set_num(&f->vq, N), 0);
	CHECK_EQ(vq_set_addr(&f->vq, &a), 0);
	CHECK_EQ(vq_set_base(&f->vq, base), 0);
	vq_set_err_fd(&f->vq, dup(f->err_fd));
	CHECK_EQ(vq_set_inflight(&f->vq, f->rg.p, f->rg.len, f->qsize), 0);
	int rc = vq_start(&f->vq, f->t, 0);
	vq_set_enabled(&f->vq, true);
	return rc;
}

static struct vqi_split_region *rg(struct fx *f)
{
	return (struct vqi_split_region *)(void *)f->rg.p;
}

/* Pop the next request; it must be head @h with its readable buffer. */
static void expect_pop(struct fx *f, uint16_t h)
{
	CHECK_EQ(ipop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, h);
	CHECK_EQ(f->c.nout, 1);
	CHECK_EQ(f->c.out_len, 16u + h);
	CHECK(f->c.iov[0].iov_base == mem_gpa_range(f->t, BUF + h * 0x100ull, 16u + h));
}

/* The next used entry the guest sees must be @h. */
static void expect_used(struct fx *f, uint16_t *last, uint16_t h)
{
	CHECK(__atomic_load_n(&f->r->used->idx, __ATOMIC_ACQUIRE) != *last);
	CHECK_EQ(f->r->used->ring[*last & (N - 1)].id, h);
	(*last)++;
}

static void t_fresh_region(void)
{
	struct fx *f = fx_new();
	one_desc_chains(f);

	CHECK_EQ(start(f, 0), 0);
	CHECK_EQ(rg(f)->version, 1);
	CHECK_EQ(rg(f)->desc_num, N);
	CHECK_EQ(rg(f)->used_idx, 0);
	CHECK_EQ(vq_ifl_pending(&f->vq), 0);
	gvq_raw_push(f->r, 3);
	gvq_raw_push(f->r, 5);
	expect_pop(f, 3);
	CHECK_EQ(rg(f)->desc[3].inflight, 1);
	expect_pop(f, 5);
	CHECK_EQ(rg(f)->desc[5].inflight, 1);
	CHECK(rg(f)->desc[5].counter == rg(f)->desc[3].counter + 1);
	vq_ifl_push(&f->vq, 5, 0);
	CHECK_EQ(rg(f)->desc[5].inflight, 1); /* nothing before the flush */
	vq_ifl_flush(&f->vq);
	CHECK_EQ(rg(f)->desc[5].inflight, 0);
	CHECK_EQ(rg(f)->desc[3].inflight, 1);
	CHECK_EQ(rg(f)->last_batch_head, 5);
	CHECK_EQ(rg(f)->used_idx, 1);
	CHECK_EQ(f->r->used->idx, 1);
}

/*
 * Five requests popped, two completed out of order and published, one
 * completed but not published, then the process dies. The frontend (QEMU
 * after a failed GET_VRING_BASE) gives used->idx as the base; the guest
 * adds two more. Exactly the three unpublished ones come back, in pop
 * order, then the new ones; a second restart finds nothing.
 */
static void t_restart_out_of_order(void)
{
	static const uint16_t order[] = {4, 0, 6, 1, 3};
	struct fx *f = fx_new();
	uint16_t last = 0;
	one_desc_chains(f);

	CHECK_EQ(start(f, 0), 0);
	for (int i = 0; i < 5; i++)
		gvq_raw_push(f->r, order[i]);
	for (int i = 0; i < 5; i++)
		expect_pop(f, order[i]);
	vq_ifl_push(&f->vq, 6, 0);
	vq_ifl_push(&f->vq, 0, 0);
	vq_ifl_flush(&f->vq);
	vq_ifl_push(&f->vq, 1, 0); /* completed, never published */
	crash(&f->vq);

	gvq_raw_push(f->r, 2);
	gvq_raw_push(f->r, 7);
	CHECK_EQ(start(f, f->r->used->idx), 0);
	CHECK_EQ(vq_ifl_pending(&f->vq), 3);
	CHECK_EQ(vq_avail_count(&f->vq), 2); /* the ring's own: positions derived from the region */
	CHECK_EQ(f->vq.last_avail_idx, 5);
	expect_pop(f, 4);
	expect_pop(f, 1);
	expect_pop(f, 3);
	expect_pop(f, 2);
	expect_pop(f, 7);
	CHECK_EQ(ipop(&f->vq, &f->c), -ENOENT);
	static const uint16_t done[] = {1, 7, 3, 4, 2};
	for (int i = 0; i < 5; i++)
		vq_ifl_push(&f->vq, done[i], 0);
	vq_ifl_flush(&f->vq);
	expect_used(f, &last, 6);
	expect_used(f, &last, 0);
	for (int i = 0; i < 5; i++)
		expect_used(f, &last, done[i]);
	CHECK_EQ(f->r->used->idx, 7);

	crash(&f->vq);
	CHECK_EQ(start(f, 7), 0);
	CHECK_EQ(vq_ifl_pending(&f->vq), 0);
	CHECK_EQ(f->vq.last_avail_idx, 7);
	CHECK_EQ(ipop(&f->vq, &f->c), -ENOENT);
}

/* Chains of two (readable + writable), walked again at resubmission. */
static void t_resubmit_walks_chain(void)
{
	struct fx *f = fx_new();

	for (uint16_t h = 0; h < N / 2; h++) {
		gvq_raw_desc(f->r, h, BUF + h * 0x100ull, 16u + h, VRING_DESC_F_NEXT, (uint16_t)(h + 4));
		gvq_raw_desc(f->r, (uint16_t)(h + 4), BUF + 0x8000 + h * 0x100ull, 64,
			VRING_DESC_F_WRITE, 0);
	}
	CHECK_EQ(start(f, 0), 0);
	gvq_raw_push(f->r, 2);
	gvq_raw_push(f->r, 1);
	CHECK_EQ(ipop(&f->vq, &f->c), 0);
	CHECK_EQ(ipop(&f->vq, &f->c), 0);
	crash(&f->vq);
	CHECK_EQ(start(f, 0), 0);
	for (uint16_t k = 0; k < 2; k++) {
		uint16_t h = k ? 1 : 2;
		CHECK_EQ(ipop(&f->vq, &f->c), 0);
		CHECK_EQ(f->c.id, h);
		CHECK_EQ(f->c.nout, 1);
		CHECK_EQ(f->c.nin, 1);
		CHECK_EQ(f->c.in_len, 64);
		CHECK(f->c.iov[1].iov_base == mem_gpa_range(f->t, BUF + 0x8000 + h * 0x100ull, 64));
	}
	CHECK_EQ(ipop(&f->vq, &f->c), -ENOENT);
}

/*
 * Crash right after used->idx was published, before the batch's inflight
 * flags were cleared: the batch reached the guest, it must not come back.
 */
static void t_crash_after_used_idx(void)
{
	struct fx *f = fx_new();
	struct crash_point cp;
	one_desc_chains(f);

	CHECK_EQ(start(f, 0), 0);
	for (uint16_t h = 0; h < 3; h++)
		gvq_raw_push(f->r, h);
	for (uint16_t h = 0; h < 3; h++)
		expect_pop(f, h);
	vq_ifl_push(&f->vq, 2, 0);
	vq_ifl_push(&f->vq, 0, 0);
	crash_arm(&cp, &f->vq, &f->rg, VQ_WRITE_USED, 2); /* 1: the entries, 2: used->idx */
	vq_ifl_flush(&f->vq);
	CHECK_EQ(cp.hlen, 2);
	crash_apply(&cp, &f->vq);
	CHECK_EQ(rg(f)->desc[0].inflight, 1); /* the state the crash left */
	CHECK_EQ(rg(f)->used_idx, 0);
	crash(&f->vq);

	CHECK_EQ(start(f, 2), 0);
	CHECK_EQ(rg(f)->used_idx, 2); /* rolled forward */
	CHECK_EQ(rg(f)->desc[0].inflight, 0);
	CHECK_EQ(rg(f)->desc[2].inflight, 0);
	CHECK_EQ(vq_ifl_pending(&f->vq), 1);
	expect_pop(f, 1);
	CHECK_EQ(ipop(&f->vq, &f->c), -ENOENT);
	CHECK_EQ(f->vq.last_avail_idx, 3);
}

/* Crash before used->idx was stored: the guest never saw the batch, all three come back. */
static void t_crash_before_used_idx(void)
{
	struct fx *f = fx_new();
	struct crash_point cp;
	one_desc_chains(f);

	CHECK_EQ(start(f, 0), 0);
	for (uint16_t h = 0; h < 3; h++)
		gvq_raw_push(f->r, h);
	for (uint16_t h = 0; h < 3; h++)
		expect_pop(f, h);
	vq_ifl_push(&f->vq, 2, 0);
	vq_ifl_push(&f->vq, 0, 0);
	crash_arm(&cp, &f->vq, &f->rg, VQ_WRITE_USED, 1);
	vq_ifl_flush(&f->vq);
	crash_apply(&cp, &f->vq);
	f->r->used->idx = 0; /* the store that never happened */
	CHECK_EQ(rg(f)->last_batch_head, 0); /* the batch was linked */
	crash(&f->vq);

	CHECK_EQ(start(f, 0), 0);
	CHECK_EQ(vq_ifl_pending(&f->vq), 3);
	for (uint16_t h = 0; h < 3; h++)
		expect_pop(f, h);
	CHECK_EQ(ipop(&f->vq, &f->c), -ENOENT);
}

/* Counters that wrap 2^64, and equal counters (index order between them). */
static void t_counter_wraparound(void)
{
	static const struct {
		uint16_t head;
		uint64_t counter;
	} live[] = {{5, UINT64_MAX - 1}, {2, UINT64_MAX}, {7, 0}, {0, 1}, {3, 1}};
	static const uint16_t want[] = {5, 2, 7, 0, 3};
	struct fx *f = fx_new();
	one_desc_chains(f);

	rg(f)->version = 1;
	rg(f)->desc_num = N;
	for (int i = 0; i < 5; i++) {
		rg(f)->desc[live[i].head].inflight = 1;
		rg(f)->desc[live[i].head].counter = live[i].counter;
		gvq_raw_push(f->r, live[i].head);
	}
	CHECK_EQ(start(f, 0), 0);
	CHECK_EQ(vq_ifl_pending(&f->vq), 5);
	for (int i = 0; i < 5; i++)
		expect_pop(f, want[i]);
	/* New pops count on after the newest (by the wrapped order) counter. */
	gvq_raw_push(f->r, 1);
	expect_pop(f, 1);
	CHECK_EQ(rg(f)->desc[1].counter, 2);
}

/* Give back the last pop: a new one goes back to the ring, a resubmission to the list. */
static void t_unpop(void)
{
	struct fx *f = fx_new();
	one_desc_chains(f);

	CHECK_EQ(start(f, 0), 0);
	gvq_raw_push(f->r, 0);
	gvq_raw_push(f->r, 1);
	expect_pop(f, 0);
	expect_pop(f, 1);
	vq_ifl_unpop(&f->vq, 1);
	CHECK_EQ(rg(f)->desc[1].inflight, 0);
	crash(&f->vq);
	CHECK_EQ(start(f, 0), 0);
	CHECK_EQ(vq_ifl_pending(&f->vq), 1);
	expect_pop(f, 0);
	vq_ifl_unpop(&f->vq, 0);
	CHECK_EQ(vq_ifl_pending(&f->vq), 1);
	CHECK_EQ(rg(f)->desc[0].inflight, 1); /* still to resubmit */
	expect_pop(f, 0);
	expect_pop(f, 1); /* from the ring again */
	CHECK_EQ(ipop(&f->vq, &f->c), -ENOENT);
}

/* A guest re-posting a head whose completion is not published yet breaks the ring. */
static void t_reposted_head(void)
{
	struct fx *f = fx_new();
	one_desc_chains(f);

	CHECK_EQ(start(f, 0), 0);
	gvq_raw_push(f->r, 4);
	expect_pop(f, 4);
	vq_ifl_push(&f->vq, 4, 0);
	gvq_raw_push(f->r, 4);
	CHECK_EQ(ipop(&f->vq, &f->c), -EIO);
	CHECK(f->vq.broken);
	CHECK_EQ(efd_count(f->err_fd), 1);
}

/* A live head whose chain no longer walks (a loop) is refused when it is resubmitted. */
static void t_resubmit_revalidated(void)
{
	struct fx *f = fx_new();
	one_desc_chains(f);

	CHECK_EQ(start(f, 0), 0);
	gvq_raw_push(f->r, 2);
	expect_pop(f, 2);
	crash(&f->vq);
	gvq_raw_desc(f->r, 2, BUF, 16, VRING_DESC_F_NEXT, 2);
	CHECK_EQ(start(f, 0), 0);
	CHECK_EQ(ipop(&f->vq, &f->c), -EIO);
	CHECK(f->vq.broken);
	CHECK_EQ(efd_count(f->err_fd), 1);
}

/* A used region to break: heads 1 and 6 in flight, used_idx = used->idx = 0. */
static void valid_region(struct fx *f)
{
	memset(f->rg.p, 0, f->rg.len);
	rg(f)->version = 1;
	rg(f)->desc_num = N;
	rg(f)->desc[1].inflight = 1;
	rg(f)->desc[1].counter = 10;
	rg(f)->desc[6].inflight = 1;
	rg(f)->desc[6].counter = 11;
}

enum mut {
	M_NONE, M_VERSION, M_DESC_NUM, M_LBH, M_INFLIGHT2, M_DELTA, M_LINK, M_LOOP, M_QSIZE,
	M_SHORT, M_BATCH_N, M_MAX
};

static void mutate(struct fx *f, enum mut m)
{
	struct vqi_split_region *r = rg(f);

	switch (m) {
	case M_VERSION:
		r->version = 2;
		break;
	case M_DESC_NUM:
		r->desc_num = N * 2;
		break;
	case M_LBH:
		r->last_batch_head = N;
		break;
	case M_INFLIGHT2:
		r->desc[3].inflight = 2;
		break;
	case M_DELTA: /* used->idx is 0: a delta of N + 1 */
		r->used_idx = (uint16_t)(0 - (N + 1));
		break;
	case M_LINK: /* a batch of 2 whose second link points past the ring */
		r->used_idx = (uint16_t)(0 - 2);
		r->last_batch_head = 1;
		r->desc[1].next = N;
		break;
	case M_LOOP: /* a batch of 3 over 1 -> 2 -> 1 */
		r->used_idx = (uint16_t)(0 - 3);
		r->last_batch_head = 1;
		r->desc[1].next = 2;
		r->desc[2].next = 1;
		break;
	case M_QSIZE:
		f->qsize = N / 2;
		break;
	case M_SHORT:
		f->rg.len = sizeof(*r) + (N - 1) * sizeof(r->desc[0]);
		break;
	case M_BATCH_N: /* valid: a batch of exactly N distinct heads */
		r->used_idx = (uint16_t)(0 - N);
		r->last_batch_head = 0;
		for (uint16_t h = 0; h < N; h++)
			r->desc[h].next = (uint16_t)(h + 1);
		break;
	default:
		break;
	}
}

/* Every rule of section K broken in turn: refused, the ring broken, the region untouched. */
static void t_hostile_regions(void)
{
	for (int m = M_NONE; m < M_MAX; m++) {
		struct fx *f = fx_new();
		uint8_t *before = malloc(f->rg.len);
		CHECK(before != NULL);
		one_desc_chains(f);
		valid_region(f);
		mutate(f, (enum mut)m);
		memcpy(before, f->rg.p, vq_ifl_queue_size(N, false));
		int rc = start(f, 0);
		if (m == M_NONE || m == M_BATCH_N) {
			CHECK_EQ(rc, 0);
			CHECK(f->vq.ready);
			CHECK_EQ(vq_ifl_pending(&f->vq), m == M_NONE ? 2 : 0);
		} else {
			if (rc != -EINVAL)
				fprintf(stderr, "# mutation %d accepted\n", m);
			CHECK_EQ(rc, -EINVAL);
			CHECK(f->vq.broken && !f->vq.started && !f->vq.ready);
			CHECK_EQ(efd_count(f->err_fd), 1);
			CHECK(!memcmp(before, f->rg.p, vq_ifl_queue_size(N, false)));
		}
		crash(&f->vq);
		free(before);
		rgn_free(&f->rg);
		close(f->err_fd);
		ifl_mem_free(f->g, f->t, f->r);
	}
}

TEST_MAIN(TEST(t_fresh_region), TEST(t_restart_out_of_order), TEST(t_resubmit_walks_chain),
	  TEST(t_crash_after_used_idx), TEST(t_crash_before_used_idx), TEST(t_counter_wraparound),
	  TEST(t_unpop), TEST(t_reposted_head), TEST(t_resubmit_revalidated),
	  TEST(t_hostile_regions))
