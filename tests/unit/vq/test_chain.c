/* SPDX-License-Identifier: MIT */
/*
 * The split chain walker, through vq_pop() on a ring built with the
 * harness's raw writers: legal and hostile chains.
 */
#include <stdlib.h>

#include "unit_vq.h"

#define MB 0x100000ull
#define BUF 0x20000ull /* buffers live here (region 0) */
#define F_N VRING_DESC_F_NEXT
#define F_W VRING_DESC_F_WRITE
#define F_I VRING_DESC_F_INDIRECT

/* Fixture (unit_vq.h): 2 regions of 1 MiB, a ring at 0x1000, vq started with @features. */
static struct uvq_fx *fx_new(uint16_t size, uint64_t features)
{
	return uvq_fx_new(size, features, 0);
}

/* Pop and expect a guest error: -EIO, ring broken, err fd signalled once. */
static void expect_broken(struct uvq_fx *f)
{
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	CHECK(f->vq.broken && !f->vq.ready);
	CHECK_EQ(efd_count(f->err_fd), 1);
	CHECK_EQ(f->vq.last_avail_idx, 0); /* not consumed */
}

static void t_simple_chain(void)
{
	struct uvq_fx *f = fx_new(256, 0);

	gvq_raw_desc(f->q, 5, BUF, 100, F_N, 9);
	gvq_raw_desc(f->q, 9, BUF + 0x1000, 200, F_N, 2);
	gvq_raw_desc(f->q, 2, BUF + 0x2000, 300, F_W, 0);
	gvq_raw_push(f->q, 5);
	CHECK_EQ(vq_avail_count(&f->vq), 1);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 5);
	CHECK_EQ(f->c.nout, 2);
	CHECK_EQ(f->c.nin, 1);
	CHECK_EQ(f->c.ndesc, 3);
	CHECK_EQ(f->c.out_len, 300);
	CHECK_EQ(f->c.in_len, 300);
	CHECK(same_mem(f->c.iov[0].iov_base, uvq_ptr(f->m, BUF, 1)) && f->c.iov[0].iov_len == 100);
	CHECK(same_mem(f->c.iov[1].iov_base, uvq_ptr(f->m, BUF + 0x1000, 1)) &&
	      f->c.iov[1].iov_len == 200);
	CHECK(same_mem(f->c.iov[2].iov_base, uvq_ptr(f->m, BUF + 0x2000, 1)) &&
	      f->c.iov[2].iov_len == 300);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -ENOENT);
	CHECK(f->vq.ready);
}

static void t_buffer_crosses_regions(void)
{
	struct uvq_fx *f = fx_new(16, 0);

	gvq_raw_desc(f->q, 0, MB - 100, 300, F_W, 0);
	gvq_raw_push(f->q, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.nin, 2);
	CHECK(same_mem(f->c.iov[0].iov_base, uvq_ptr(f->m, MB - 100, 1)) &&
	      f->c.iov[0].iov_len == 100);
	CHECK(same_mem(f->c.iov[1].iov_base, uvq_ptr(f->m, MB, 1)) && f->c.iov[1].iov_len == 200);
	CHECK_EQ(f->c.in_len, 300);
}

static void t_zero_length(void)
{
	struct uvq_fx *f = fx_new(16, 0);

	gvq_raw_desc(f->q, 0, BUF, 10, F_N, 1);
	gvq_raw_desc(f->q, 1, 0xdead00000000ull, 0, F_N, 2); /* no bytes: address unused */
	gvq_raw_desc(f->q, 2, BUF, 20, F_W, 0);
	gvq_raw_push(f->q, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.nout, 1);
	CHECK_EQ(f->c.nin, 1);
	CHECK_EQ(f->c.ndesc, 3);
}

static void t_full_length_chain(void)
{
	struct uvq_fx *f = fx_new(8, 0);

	for (uint16_t i = 0; i < 8; i++)
		gvq_raw_desc(f->q, i, BUF + i * 64u, 64, i < 7 ? F_N : 0, (uint16_t)(i + 1));
	gvq_raw_push(f->q, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.nout, 8);
}

static void t_loop(void)
{
	struct uvq_fx *f = fx_new(8, 0);

	gvq_raw_desc(f->q, 0, BUF, 64, F_N, 1);
	gvq_raw_desc(f->q, 1, BUF, 64, F_N, 0);
	gvq_raw_push(f->q, 0);
	expect_broken(f);
	/* A broken ring stays broken until restart. */
	CHECK_EQ(vq_avail_count(&f->vq), 1);
	CHECK(!vq_enter(&f->vq));
}

static void t_self_loop(void)
{
	struct uvq_fx *f = fx_new(8, 0);

	gvq_raw_desc(f->q, 3, BUF, 0, F_N, 3); /* zero-length self loop must not spin */
	gvq_raw_push(f->q, 3);
	expect_broken(f);
}

static void t_next_out_of_range(void)
{
	struct uvq_fx *f = fx_new(8, 0);

	gvq_raw_desc(f->q, 0, BUF, 64, F_N, 8);
	gvq_raw_push(f->q, 0);
	expect_broken(f);
}

static void t_unmapped(void)
{
	struct uvq_fx *f = fx_new(8, 0);

	gvq_raw_desc(f->q, 0, 3 * MB, 64, 0, 0);
	gvq_raw_push(f->q, 0);
	expect_broken(f);
}

static void t_partly_unmapped(void)
{
	struct uvq_fx *f = fx_new(8, 0);

	gvq_raw_desc(f->q, 0, 2 * MB - 0x100, 0x200, F_W, 0);
	gvq_raw_push(f->q, 0);
	expect_broken(f);
}

static void t_addr_wraps(void)
{
	struct uvq_fx *f = fx_new(8, 0);

	gvq_raw_desc(f->q, 0, UINT64_MAX - 10, 64, 0, 0);
	gvq_raw_push(f->q, 0);
	expect_broken(f);
}

static void t_readable_after_writable(void)
{
	struct uvq_fx *f = fx_new(8, 0);

	gvq_raw_desc(f->q, 0, BUF, 64, F_W | F_N, 1);
	gvq_raw_desc(f->q, 1, BUF, 64, 0, 0);
	gvq_raw_push(f->q, 0);
	expect_broken(f);
}

static void t_indirect_ok(void)
{
	struct uvq_fx *f = fx_new(8, F_INDIRECT);
	/* Odd address: indirect tables have no alignment rule. Build the table
	 * aligned, then copy it byte-wise into place. */
	uint8_t *tab = uvq_ptr(f->m, 0x40001, 4 * 16);
	struct vring_desc t[4] = {{0}};

	t[0] = (struct vring_desc){BUF, 10, F_N, 2};
	t[2] = (struct vring_desc){BUF + 0x100, 20, F_N | F_W, 1};
	t[1] = (struct vring_desc){BUF + 0x200, 30, F_W, 0};
	memcpy(tab, t, sizeof(t));
	/* One chained readable descriptor, then the indirect one (WRITE ignored). */
	gvq_raw_desc(f->q, 4, BUF + 0x300, 5, F_N, 6);
	gvq_raw_desc(f->q, 6, 0x40001, 4 * 16, F_I | F_W, 0);
	gvq_raw_push(f->q, 4);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.nout, 2);
	CHECK_EQ(f->c.nin, 2);
	CHECK_EQ(f->c.out_len, 15);
	CHECK_EQ(f->c.in_len, 50);
	CHECK(same_mem(f->c.iov[0].iov_base, uvq_ptr(f->m, BUF + 0x300, 1)));
	CHECK(same_mem(f->c.iov[1].iov_base, uvq_ptr(f->m, BUF, 1)));
	CHECK(same_mem(f->c.iov[2].iov_base, uvq_ptr(f->m, BUF + 0x100, 1)) &&
	      f->c.iov[2].iov_len == 20);
	CHECK(same_mem(f->c.iov[3].iov_base, uvq_ptr(f->m, BUF + 0x200, 1)) &&
	      f->c.iov[3].iov_len == 30);
}

static void t_indirect_crosses_regions(void)
{
	/* Two regions, each a file of its own: the table is not contiguous in host memory. */
	struct uvq_fx *f = fx_new(8, F_INDIRECT);
	/* Table at MB - 24: entry 0 below, entry 1 straddles, entry 2 above. */
	struct vring_desc d[3] = {{BUF, 11, F_N, 1}, {BUF + 64, 22, F_N, 2}, {BUF + 128, 33, F_W, 0}};
	CHECK_EQ(gmem_write(f->m, MB - 24, d, sizeof(d)), 0);
	gvq_raw_desc(f->q, 0, MB - 24, 48, F_I, 0);
	gvq_raw_push(f->q, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.nout, 2);
	CHECK_EQ(f->c.nin, 1);
	CHECK(same_mem(f->c.iov[1].iov_base, uvq_ptr(f->m, BUF + 64, 1)) &&
	      f->c.iov[1].iov_len == 22);
	CHECK(same_mem(f->c.iov[2].iov_base, uvq_ptr(f->m, BUF + 128, 1)) &&
	      f->c.iov[2].iov_len == 33);
}

/* One indirect-pointing descriptor with @flags/@len, table content @tab. */
static void indirect_bad(uint64_t features, uint16_t flags, uint32_t len,
			 const struct vring_desc *tab, size_t n)
{
	struct uvq_fx *f = fx_new(8, features);

	memcpy(uvq_ptr(f->m, 0x40000, n * sizeof(*tab)), tab, n * sizeof(*tab));
	gvq_raw_desc(f->q, 0, 0x40000, len, flags, 1);
	gvq_raw_desc(f->q, 1, BUF, 8, 0, 0);
	gvq_raw_push(f->q, 0);
	expect_broken(f);
}

static void t_indirect_hostile(void)
{
	struct vring_desc ok[2] = {{BUF, 8, 0, 0}, {BUF, 8, 0, 0}};
	struct vring_desc nested[1] = {{0x40000, 16, F_I, 0}};
	struct vring_desc loop[2] = {{BUF, 8, F_N, 1}, {BUF, 8, F_N, 0}};
	struct vring_desc oob[2] = {{BUF, 8, F_N, 2}, {BUF, 8, 0, 0}};
	struct vring_desc rw[2] = {{BUF, 8, F_W | F_N, 1}, {BUF, 8, 0, 0}};

	indirect_bad(0, F_I, 16, ok, 2);                   /* not negotiated */
	indirect_bad(F_INDIRECT, F_I, 0, ok, 2);	   /* len 0 */
	indirect_bad(F_INDIRECT, F_I, 17, ok, 2);	   /* not a multiple of 16 */
	indirect_bad(F_INDIRECT, F_I | F_N, 16, ok, 2);	   /* INDIRECT + NEXT */
	indirect_bad(F_INDIRECT, F_I, 16, nested, 1);	   /* nested */
	indirect_bad(F_INDIRECT, F_I, 32, loop, 2);	   /* loop inside the table */
	indirect_bad(F_INDIRECT, F_I, 32, oob, 2);	   /* next beyond the table */
	indirect_bad(F_INDIRECT, F_I, 32, rw, 2);	   /* readable after writable */
	indirect_bad(F_INDIRECT, F_I, 32769 * 16, ok, 2);  /* too many entries */
}

static void t_indirect_unmapped(void)
{
	struct uvq_fx *f = fx_new(8, F_INDIRECT);

	gvq_raw_desc(f->q, 0, 2 * MB - 16, 32, F_I, 0); /* second entry beyond memory */
	memset(uvq_ptr(f->m, 2 * MB - 16, 16), 0, 16);
	*(struct vring_desc *)uvq_ptr(f->m, 2 * MB - 16, 16) = (struct vring_desc){BUF, 8, F_N, 1};
	gvq_raw_push(f->q, 0);
	expect_broken(f);
}

static void t_writable_then_indirect_readable(void)
{
	struct uvq_fx *f = fx_new(8, F_INDIRECT);
	struct vring_desc tab[1] = {{BUF, 8, 0, 0}};

	memcpy(uvq_ptr(f->m, 0x40000, sizeof(tab)), tab, sizeof(tab));
	gvq_raw_desc(f->q, 0, BUF, 8, F_W | F_N, 1);
	gvq_raw_desc(f->q, 1, 0x40000, 16, F_I, 0);
	gvq_raw_push(f->q, 0);
	expect_broken(f);
}

static void t_too_many_pieces(void)
{
	struct uvq_fx *f = fx_new(1024, 0);

	/* 257 one-byte descriptors: valid, but more than UVQ_IOV pieces. */
	for (uint16_t i = 0; i < UVQ_IOV + 1; i++)
		gvq_raw_desc(f->q, i, BUF + i, 1, i < UVQ_IOV ? F_N : 0, (uint16_t)(i + 1));
	gvq_raw_push(f->q, 0);
	/* Exactly UVQ_IOV pieces is fine. */
	for (uint16_t i = 300; i < 300 + UVQ_IOV; i++)
		gvq_raw_desc(f->q, i, BUF + i, 1, i < 300 + UVQ_IOV - 1 ? F_N : 0,
			     (uint16_t)(i + 1));
	gvq_raw_push(f->q, 300);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -E2BIG);
	CHECK(f->vq.ready && !f->vq.broken);
	CHECK_EQ(f->vq.last_avail_idx, 1); /* consumed */
	vq_push(&f->vq, 0, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.nout, UVQ_IOV);
	CHECK_EQ(f->c.id, 300);
	vq_push(&f->vq, 300, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 2);
	CHECK_EQ(f->q->used->ring[0].id, 0);
}

/*
 * The pieces go to the caller's storage and never past iov_max: a chain
 * with more pieces (counted after translation: one buffer crossing two
 * regions is two) is validated whole, consumed and fails with -E2BIG; the
 * storage past iov_max is untouched. No storage at all refuses even a
 * one-descriptor chain (the fast form of the walk included).
 */
static void t_caller_storage(void)
{
	struct uvq_fx *f = fx_new(16, 0);
	struct iovec iov[4];
	const struct iovec canary = {(void *)0x5a5a, 0x5a5a};

	for (int i = 0; i < 4; i++)
		iov[i] = canary;
	f->c.iov = iov;
	/* Three descriptors, three pieces, storage for two. */
	gvq_raw_desc(f->q, 0, BUF, 10, F_N, 1);
	gvq_raw_desc(f->q, 1, BUF + 0x100, 20, F_N, 2);
	gvq_raw_desc(f->q, 2, BUF + 0x200, 30, F_W, 0);
	gvq_raw_push(f->q, 0);
	f->c.iov_max = 2;
	CHECK_EQ(vq_pop(&f->vq, &f->c), -E2BIG);
	CHECK(f->vq.ready && !f->vq.broken);
	CHECK_EQ(f->vq.last_avail_idx, 1);
	CHECK_EQ(f->c.id, 0);
	CHECK_EQ(f->c.ndesc, 3);
	CHECK_EQ(f->c.out_len, 30);
	CHECK_EQ(f->c.in_len, 30);
	CHECK(same_mem(iov[1].iov_base, uvq_ptr(f->m, BUF + 0x100, 1)) && iov[1].iov_len == 20);
	CHECK(iov[2].iov_base == canary.iov_base && iov[2].iov_len == canary.iov_len);
	vq_push(&f->vq, 0, 0);
	/* One descriptor crossing two regions: two pieces, storage for one. */
	gvq_raw_desc(f->q, 3, MB - 100, 300, F_W, 0);
	gvq_raw_push(f->q, 3);
	f->c.iov_max = 1;
	iov[1] = canary;
	CHECK_EQ(vq_pop(&f->vq, &f->c), -E2BIG);
	CHECK_EQ(f->c.in_len, 300);
	CHECK(iov[1].iov_base == canary.iov_base);
	vq_push(&f->vq, 3, 0);
	/* One piece: no storage refuses it, storage for exactly one takes it. */
	gvq_raw_desc(f->q, 4, BUF, 64, F_W, 0);
	gvq_raw_push(f->q, 4);
	gvq_raw_desc(f->q, 5, BUF + 0x100, 64, 0, 0);
	gvq_raw_push(f->q, 5);
	f->c.iov_max = 0;
	iov[0] = canary;
	CHECK_EQ(vq_pop(&f->vq, &f->c), -E2BIG);
	CHECK_EQ(f->c.id, 4);
	CHECK_EQ(f->c.in_len, 64);
	CHECK(iov[0].iov_base == canary.iov_base);
	vq_push(&f->vq, 4, 0);
	f->c.iov_max = 1;
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 5);
	CHECK_EQ(f->c.nout, 1);
	CHECK(same_mem(iov[0].iov_base, uvq_ptr(f->m, BUF + 0x100, 1)) && iov[0].iov_len == 64);
	CHECK(iov[1].iov_base == canary.iov_base);
	CHECK(f->vq.ready && !f->vq.broken);
}

static void t_total_length(void)
{
	/* A sparse 4 GiB + 4 KiB region so lengths near 2^32 translate. */
	struct gmem *m;
	struct mem_table *t;
	struct vq_chain *c = malloc(sizeof(*c));
	struct iovec iov[4];
	struct vring_desc tab[2] = {{0, 0xffffffffu, F_N, 1}, {0, 1, 0, 0}};
	uint32_t hint = 0;

	CHECK(c);
	c->iov = iov;
	c->iov_max = 4;
	m = uvq_mem(1, 4 * 1024 * MB + 4096, &t);
	/* Exactly 2^32 bytes: allowed. */
	CHECK_EQ(chain_walk_split(t, &hint, tab, 2, 0, false, VQ_POP_RW, c), 0);
	CHECK_EQ(c->out_len, 1ull << 32);
	/* One byte more: rejected. */
	tab[1].len = 2;
	CHECK_EQ(chain_walk_split(t, &hint, tab, 2, 0, false, VQ_POP_RW, c), -EIO);
	/* Head beyond the table. */
	CHECK_EQ(chain_walk_split(t, &hint, tab, 2, 2, false, VQ_POP_RW, c), -EIO);
	mem_table_free(t);
	gmem_free(m);
	free(c);
}

TEST_MAIN(TEST(t_simple_chain), TEST(t_buffer_crosses_regions), TEST(t_zero_length),
	  TEST(t_full_length_chain), TEST(t_loop), TEST(t_self_loop), TEST(t_next_out_of_range),
	  TEST(t_unmapped), TEST(t_partly_unmapped), TEST(t_addr_wraps),
	  TEST(t_readable_after_writable), TEST(t_indirect_ok), TEST(t_indirect_crosses_regions),
	  TEST(t_indirect_hostile), TEST(t_indirect_unmapped),
	  TEST(t_writable_then_indirect_readable),
	  TEST(t_too_many_pieces), TEST(t_caller_storage), TEST(t_total_length))
