/* SPDX-License-Identifier: MIT */
/*
 * Packed virtqueue: chain walk, wrap counters, used write-back, rewind,
 * event suppression, base encoding and the hostile cases of the packed
 * walker (ids, TTL, indirect rules, unmapped buffers).
 */
#include <stdlib.h>

#include "util/fd.h"
#include "unit_vq.h"

#define MB 0x100000ull
#define BUF	   0x20000ull
#define PF_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define PF_USED (1u << VRING_PACKED_DESC_F_USED)
#define FRESH_BASE 0x80008000u

/*
 * Post a raw chain of @n buffers with buffer id @id (every descriptor
 * carries it) at the raw guest's next slots, head last (gvq_raw_post).
 */
static void pr_chain(struct uvq_fx *f, const struct gvq_rawbuf *b, int n, uint16_t id)
{
	gvq_raw_post(f->q, b, n, id);
}

/* One used entry at the raw guest's cursor: 1 and id/len, or 0 if none. */
static int pr_used(struct uvq_fx *f, uint16_t *id, uint32_t *len)
{
	int rc = gvq_raw_used(f->q, id, len);

	if (rc)
		CHECK(*id < f->q->size);
	return rc;
}

/* Configure and start @f's vq on its ring with @features | PACKED and @base. */
static int pr_start(struct uvq_fx *f, uint64_t features, uint32_t base)
{
	return uvq_start(&f->vq, f->q, f->t, features | F_PACKED, base);
}

/* Fixture (unit_vq.h): a packed ring of @size at 0x1000, fresh base, call + err eventfds. */
static struct uvq_fx *fx_new(uint16_t size, uint64_t features)
{
	return uvq_fx_new(size, features | F_PACKED, FRESH_BASE);
}

/* Fixture memory and a packed ring of @size at 0x1000, no vq started yet. */
static struct uvq_fx *fx_ring(uint16_t size)
{
	struct uvq_fx *f = uvq_fx_alloc();

	f->m = uvq_mem(2, MB, &f->t);
	CHECK_EQ(gvq_new_at(f->m, 0x1000, size, F_PACKED, &f->q), 0);
	vq_init(&f->vq, 0);
	return f;
}

/* The ring must now be broken, with one err signal. */
static void check_broken(struct uvq_fx *f)
{
	CHECK(f->vq.broken && !f->vq.ready);
	CHECK_EQ(efd_count(f->err_fd), 1);
	CHECK(!vq_enter(&f->vq));
}

static void t_pop_push_exact(void)
{
	struct uvq_fx *f = fx_new(5, 0); /* not a power of two: fine for packed */
	struct gvq_rawbuf b[3] = {{BUF, 100, 0},
				  {BUF + 0x1000, 50, VRING_DESC_F_WRITE},
				  {BUF + 0x2000, 70, VRING_DESC_F_WRITE}};
	uint16_t id;
	uint32_t len;

	CHECK_EQ(vq_pop(&f->vq, &f->c), -ENOENT);
	CHECK_EQ(vq_avail_count(&f->vq), 0);
	pr_chain(f, b, 3, 4);
	pr_chain(f, b, 1, 1);
	CHECK_EQ(vq_avail_count(&f->vq), 2);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 4);
	CHECK_EQ(f->c.ndesc, 3);
	CHECK_EQ(f->c.nout, 1);
	CHECK_EQ(f->c.nin, 2);
	CHECK_EQ(f->c.out_len, 100);
	CHECK_EQ(f->c.in_len, 120);
	CHECK(f->c.iov[0].iov_base == mem_gpa_range(f->t, BUF, 100));
	CHECK(f->c.iov[2].iov_base == mem_gpa_range(f->t, BUF + 0x2000, 70));
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 1);
	CHECK_EQ(f->vq.last_avail_idx, 4);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -ENOENT);
	/* Out of order: id 1 first. Nothing visible before the flush. */
	vq_push(&f->vq, 1, 0);
	vq_push(&f->vq, 4, 99);
	CHECK_EQ(pr_used(f, &id, &len), 0);
	vq_flush(&f->vq);
	CHECK_EQ(pr_used(f, &id, &len), 1);
	CHECK_EQ(id, 1);
	CHECK_EQ(len, 0);
	CHECK(!(f->q->pdesc[0].flags & VRING_DESC_F_WRITE));
	CHECK_EQ(pr_used(f, &id, &len), 1); /* at slot 1: 1 slot skipped for id 1 */
	CHECK_EQ(id, 4);
	CHECK_EQ(len, 99);
	CHECK(f->q->pdesc[1].flags & VRING_DESC_F_WRITE);
	CHECK_EQ(pr_used(f, &id, &len), 0);
	CHECK_EQ(f->vq.last_used_idx, 4);
	CHECK_EQ(efd_count(f->call_fd), 1); /* first flush always notifies */
}

/* Many laps with chains of 1..3 descriptors: wrap counters on both sides. */
static void t_wrap_laps(void)
{
	struct uvq_fx *f = fx_new(7, 0);
	uint16_t id;
	uint32_t len;

	for (uint32_t round = 0; round < 60; round++) {
		int n = 1 + (int)(round % 3);
		struct gvq_rawbuf b[3] = {
		    {BUF, 10, 0}, {BUF + 64, 20, 0}, {BUF + 128, 30, VRING_DESC_F_WRITE}};
		uint16_t want = (uint16_t)(round % 5);
		pr_chain(f, b + (3 - n), n, want);
		CHECK_EQ(vq_avail_count(&f->vq), 1);
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		CHECK_EQ(f->c.id, want);
		CHECK_EQ(f->c.ndesc, n);
		CHECK_EQ(f->c.nin, 1);
		vq_push(&f->vq, f->c.id, round);
		vq_flush(&f->vq);
		CHECK_EQ(pr_used(f, &id, &len), 1);
		CHECK_EQ(id, want);
		CHECK_EQ(len, round);
		CHECK_EQ(f->vq.last_avail_idx, f->q->raw.pos);
		CHECK_EQ(f->vq.avail_wrap, f->q->raw.wrap);
		CHECK_EQ(f->vq.used_wrap, f->q->raw.uwrap);
	}
	CHECK(!f->vq.broken);
}

/* A batch of several entries becomes visible in one flush; rewind gives chains back. */
static void t_batch_and_rewind(void)
{
	struct uvq_fx *f = fx_new(8, 0);
	struct gvq_rawbuf b[2] = {{BUF, 10, VRING_DESC_F_WRITE},
				  {BUF + 64, 20, VRING_DESC_F_WRITE}};
	uint16_t ids[2], id;
	uint32_t len;

	pr_chain(f, b, 2, 7);
	pr_chain(f, b, 1, 3);
	pr_chain(f, b, 2, 5);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	ids[0] = f->c.id;
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	ids[1] = f->c.id;
	CHECK_EQ(f->vq.last_avail_idx, 5);
	vq_rewind(&f->vq, ids, 2); /* 3 and 5 back */
	CHECK_EQ(f->vq.last_avail_idx, 2);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 3);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 5);
	vq_push(&f->vq, 7, 1);
	vq_push(&f->vq, 3, 2);
	vq_push(&f->vq, 5, 3);
	vq_flush(&f->vq);
	for (uint32_t i = 0; i < 3; i++) {
		CHECK_EQ(pr_used(f, &id, &len), 1);
		CHECK_EQ(len, i + 1);
	}
	CHECK_EQ(f->vq.last_used_idx, 5);
}

/* Indirect tables: plain, straddling two regions (legal), buffer crossing regions. */
static void t_indirect(void)
{
	struct uvq_fx *f = fx_new(4, F_INDIRECT);
	struct vring_packed_desc *t = uvq_ptr(f->m, 0x8000, 3 * 16);
	uint64_t cross = MB - 16; /* 2 entries straddling the region boundary */
	struct vring_packed_desc t2[2];

	t[0] = (struct vring_packed_desc){BUF, 12, 0, 0};
	t[1] = (struct vring_packed_desc){BUF + 64, 100, 0, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT};
	t[2] = (struct vring_packed_desc){MB - 40, 80, 0, VRING_DESC_F_WRITE}; /* crosses */
	struct gvq_rawbuf b = {0x8000, 48, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE};
	pr_chain(f, &b, 1, 2);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 2);
	CHECK_EQ(f->c.ndesc, 1);
	CHECK_EQ(f->c.nout, 1);
	CHECK_EQ(f->c.nin, 3); /* 100 + (40 + 40) */
	CHECK_EQ(f->c.iov[2].iov_len, 40);
	CHECK_EQ(f->c.iov[3].iov_len, 40);
	CHECK_EQ(f->c.in_len, 180);

	t2[0] = (struct vring_packed_desc){BUF, 8, 0, 0};
	t2[1] = (struct vring_packed_desc){BUF + 8, 8, 0, VRING_DESC_F_WRITE};
	CHECK_EQ(gmem_write(f->m, cross, t2, sizeof(t2)), 0);
	b = (struct gvq_rawbuf){cross, 32, VRING_DESC_F_INDIRECT};
	pr_chain(f, &b, 1, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.nout, 1);
	CHECK_EQ(f->c.nin, 1);
	CHECK_EQ(f->c.in_len, 8);
	CHECK(!f->vq.broken);
}

/* A batch where one descriptor is unmapped with length 0: valid, nothing translated. */
static void t_zero_len_unmapped(void)
{
	struct uvq_fx *f = fx_new(8, 0);
	struct gvq_rawbuf b[3] = {
	    {BUF, 10, 0}, {0x7fff00000000ull, 0, 0}, {BUF + 64, 10, VRING_DESC_F_WRITE}};

	pr_chain(f, b, 1, 0);
	pr_chain(f, b, 3, 1);
	pr_chain(f, b + 1, 1, 2);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.nout, 1);
	CHECK_EQ(f->c.nin, 1);
	CHECK_EQ(f->c.out_len, 10);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.nout + f->c.nin, 0);
	CHECK(!f->vq.broken);
	/* The same address with a length is a guest error. */
	b[1].len = 1;
	pr_chain(f, b + 1, 1, 3);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

/* Post @b as a one-off chain and expect the ring to break. */
static void expect_broken(uint64_t features, const struct gvq_rawbuf *b, int n, uint16_t id)
{
	struct uvq_fx *f = fx_new(8, features);

	pr_chain(f, b, n, id);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

static void t_hostile_chains(void)
{
	struct gvq_rawbuf one = {BUF, 10, 0};
	struct gvq_rawbuf ind = {0x8000, 32, VRING_DESC_F_INDIRECT};
	struct gvq_rawbuf rw[2] = {{BUF, 10, VRING_DESC_F_WRITE}, {BUF + 64, 10, 0}};
	struct gvq_rawbuf indnext[2] = {{BUF, 10, 0}, {0x8000, 32, VRING_DESC_F_INDIRECT}};

	expect_broken(0, &one, 1, 8);		   /* id == N */
	expect_broken(0, &one, 1, 0xffff);	   /* id >> N */
	expect_broken(0, &ind, 1, 0);		   /* indirect not negotiated */
	expect_broken(0, rw, 2, 0);		   /* readable after writable */
	expect_broken(F_INDIRECT, indnext, 2, 0);  /* indirect inside a NEXT list */
	ind.flags |= VRING_DESC_F_NEXT;
	expect_broken(F_INDIRECT, &ind, 1, 0); /* INDIRECT | NEXT (alone: the walker refuses) */
	ind = (struct gvq_rawbuf){0x8000, 0, VRING_DESC_F_INDIRECT};
	expect_broken(F_INDIRECT, &ind, 1, 0); /* len 0 */
	ind.len = 17;
	expect_broken(F_INDIRECT, &ind, 1, 0); /* not a multiple of 16 */
	ind.len = 16 * 32769;
	expect_broken(F_INDIRECT, &ind, 1, 0); /* too many entries */
	ind = (struct gvq_rawbuf){2 * MB - 16, 32, VRING_DESC_F_INDIRECT};
	expect_broken(F_INDIRECT, &ind, 1, 0); /* table runs past the end of memory */
}

static void t_nested_indirect(void)
{
	struct uvq_fx *f = fx_new(8, F_INDIRECT);
	struct vring_packed_desc *t = uvq_ptr(f->m, 0x8000, 2 * 16);
	struct gvq_rawbuf ind = {0x8000, 32, VRING_DESC_F_INDIRECT};

	t[0] = (struct vring_packed_desc){BUF, 12, 0, 0};
	t[1] = (struct vring_packed_desc){0x9000, 16, 0, VRING_DESC_F_INDIRECT};
	pr_chain(f, &ind, 1, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

/* Every slot available with NEXT: a chain as long as the ring never ends. */
static void t_chain_longer_than_ring(void)
{
	struct uvq_fx *f = fx_new(8, 0);
	struct gvq_rawbuf b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (struct gvq_rawbuf){BUF, 1, 0};
	pr_chain(f, b, 8, 0);
	/* The last one had no NEXT: a chain of exactly N is legal. */
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.ndesc, 8);
	CHECK_EQ(f->vq.last_avail_idx, 0);
	CHECK(!f->vq.avail_wrap);
	/* Now every descriptor of the next lap says NEXT: loop-like, > N. */
	for (int i = 0; i < 8; i++)
		f->q->pdesc[i].flags = (uint16_t)(VRING_DESC_F_NEXT | gvq_avail_bits(false));
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

/*
 * A chain that takes every slot of a ring of 32768 (the largest size): its
 * slot count must survive the pop record, so the used side moves a whole
 * lap too (the wrap counter flips) and the next chain is completed where
 * the driver looks for it.
 */
static void t_chain_of_whole_max_ring(void)
{
	struct uvq_fx *f = fx_new(32768, 0);
	static struct gvq_rawbuf b[32768];
	uint16_t id;
	uint32_t len;

	for (uint32_t i = 0; i < 32768; i++)
		b[i] = (struct gvq_rawbuf){BUF, 0, 0};
	pr_chain(f, b, 32768, 5);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.ndesc, 32768);
	CHECK_EQ(f->vq.last_avail_idx, 0);
	CHECK(!f->vq.avail_wrap);
	vq_push(&f->vq, f->c.id, 0);
	vq_flush(&f->vq);
	CHECK_EQ(pr_used(f, &id, &len), 1);
	CHECK_EQ(id, 5);
	CHECK_EQ(f->vq.last_used_idx, 0);
	CHECK(!f->vq.used_wrap);
	CHECK_EQ(vq_get_base(&f->vq), 0);
	/* The next lap: one descriptor, completed in lap 0 at slot 0. */
	pr_chain(f, b, 1, 6);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	vq_push(&f->vq, f->c.id, 0);
	vq_flush(&f->vq);
	CHECK_EQ(pr_used(f, &id, &len), 1);
	CHECK_EQ(id, 6);
	CHECK(!f->vq.broken);
}

/* The head is published but a following descriptor is not: broken, not a stale read. */
static void t_rest_not_available(void)
{
	struct uvq_fx *f = fx_new(8, 0);
	struct gvq_rawbuf b[2] = {{BUF, 1, 0}, {BUF, 1, 0}};

	pr_chain(f, b, 2, 0);
	f->q->pdesc[1].flags = 0; /* not available in lap 1 */
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

static void t_id_in_flight_twice(void)
{
	struct uvq_fx *f = fx_new(8, 0);
	struct gvq_rawbuf b = {BUF, 1, 0};

	pr_chain(f, &b, 1, 3);
	pr_chain(f, &b, 1, 3);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

/* Base: indices >= size refused at start; stop/restart resumes exactly. */
static void t_base(void)
{
	struct uvq_fx *f = fx_ring(6);
	struct gvq_rawbuf b = {BUF, 1, VRING_DESC_F_WRITE};
	uint16_t id;
	uint32_t len;

	CHECK_EQ(pr_start(f, 0, 6), -EINVAL);		  /* avail idx == size */
	CHECK_EQ(pr_start(f, 0, 1u | 7u << 16), -EINVAL); /* used idx > size */
	CHECK_EQ(pr_start(f, 0, 0x7fffu), -EINVAL);
	/* Split rejects the upper half, packed takes it. */
	CHECK_EQ(vq_set_base(&f->vq, 0x80008000u), 0);
	f->vq.features = 0;
	CHECK_EQ(vq_set_base(&f->vq, 0x80008000u), -EINVAL);
	CHECK_EQ(vq_set_num(&f->vq, 6), -EINVAL); /* split: power of two */

	CHECK_EQ(pr_start(f, 0, 0x80008000u), 0);
	for (int i = 0; i < 10; i++) { /* past one lap */
		pr_chain(f, &b, 1, (uint16_t)i % 6);
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		vq_push(&f->vq, f->c.id, 1);
		vq_flush(&f->vq);
		CHECK_EQ(pr_used(f, &id, &len), 1);
	}
	pr_chain(f, &b, 1, 1);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0); /* in flight: avail 5, used 4 (lap 2: wrap 0) */
	CHECK_EQ(vq_get_base(&f->vq), 5u | 4u << 16);
	vq_stop(&f->vq);
	CHECK_EQ(vq_get_base(&f->vq), 5u | 4u << 16);
	/* Restart from the reported base: the next chain lands at slot 5 of lap 2. */
	CHECK_EQ(pr_start(f, 0, vq_get_base(&f->vq)), 0);
	pr_chain(f, &b, 1, 2);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 2);
	vq_push(&f->vq, 2, 9);
	vq_flush(&f->vq);
	CHECK_EQ(f->q->pdesc[4].id, 2); /* used slot continues at 4 */
	CHECK_EQ(f->q->pdesc[4].len, 9);
	CHECK_EQ(vq_get_base(&f->vq), 0x8000u | 5u << 16);
	/* Low half only (DPDK virtio-user): used follows avail. */
	vq_stop(&f->vq);
	CHECK_EQ(pr_start(f, 0, 0x8003u), 0);
	CHECK_EQ(f->vq.last_used_idx, 3);
	CHECK(f->vq.used_wrap);
}

/* No SET_VRING_BASE at all: the ring starts fresh (positions 0, wrap counters 1). */
static void t_base_default(void)
{
	struct uvq_fx *f = fx_ring(3);
	struct vq_addr a = uvq_addr(f->q);
	struct gvq_rawbuf b = {BUF, 1, VRING_DESC_F_WRITE};

	f->vq.features = F_PACKED;
	CHECK_EQ(vq_set_num(&f->vq, 3), 0);
	CHECK_EQ(vq_set_addr(&f->vq, &a), 0);
	CHECK_EQ(vq_start(&f->vq, f->t, F_PACKED), 0);
	vq_set_enabled(&f->vq, true);
	CHECK_EQ(vq_get_base(&f->vq), FRESH_BASE);
	pr_chain(f, &b, 1, 2);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 2);
	vq_reset(&f->vq);
}

/* Notifications: driver flags, EVENT_IDX descriptor events, our device event structure. */
static void t_notify(void)
{
	struct uvq_fx *f = fx_new(8, 0);
	struct gvq_rawbuf b = {BUF, 1, VRING_DESC_F_WRITE};

	f->q->drv->flags = VRING_PACKED_EVENT_FLAG_DISABLE;
	pr_chain(f, &b, 1, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	vq_push(&f->vq, 0, 1);
	vq_flush(&f->vq);
	CHECK_EQ(efd_count(f->call_fd), 0);
	f->q->drv->flags = VRING_PACKED_EVENT_FLAG_ENABLE;
	pr_chain(f, &b, 1, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	vq_push(&f->vq, 0, 1);
	vq_flush(&f->vq);
	CHECK_EQ(efd_count(f->call_fd), 1);

	CHECK(!vq_set_notification(&f->vq, false));
	CHECK_EQ(f->q->dev->flags, VRING_PACKED_EVENT_FLAG_DISABLE);
	CHECK(!vq_set_notification(&f->vq, true));
	CHECK_EQ(f->q->dev->flags, VRING_PACKED_EVENT_FLAG_ENABLE);
	pr_chain(f, &b, 1, 0);
	CHECK(vq_set_notification(&f->vq, true)); /* work already there */
}

static void t_notify_event_idx(void)
{
	struct uvq_fx *f = fx_new(4, F_EVENT_IDX);
	struct gvq_rawbuf b = {BUF, 1, VRING_DESC_F_WRITE};
	uint16_t id;
	uint32_t len;

	/* Our device event: DESC at our next avail position (with its wrap bit). */
	CHECK(!vq_set_notification(&f->vq, true));
	CHECK_EQ(f->q->dev->flags, VRING_PACKED_EVENT_FLAG_DESC);
	CHECK_EQ(f->q->dev->off_wrap, 0x8000);
	/* First flush notifies; then only when the event slot is passed. */
	f->q->drv->flags = VRING_PACKED_EVENT_FLAG_DESC;
	f->q->drv->off_wrap = 0x8000 | 2; /* slot 2, lap 1 */
	uint64_t calls = 0;
	for (int i = 0; i < 6; i++) {
		pr_chain(f, &b, 1, 0);
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		vq_push(&f->vq, 0, 1);
		vq_flush(&f->vq);
		CHECK_EQ(pr_used(f, &id, &len), 1);
		uint64_t n = efd_count(f->call_fd);
		/* used slots 0,1,2,3 (lap 1), 0,1 (lap 2): calls after slot 0 (first) and 2 */
		CHECK_EQ(n, (uint64_t)(i == 0 || i == 2));
		calls += n;
	}
	f->q->drv->off_wrap = 1; /* slot 1 of lap 2 (wrap 0) was just used: passed */
	pr_chain(f, &b, 1, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	vq_push(&f->vq, 0, 1);
	vq_flush(&f->vq);
	CHECK_EQ(efd_count(f->call_fd), 0);
	f->q->drv->off_wrap = 3; /* slot 3 of lap 2: the entry the next flush writes */
	CHECK_EQ(calls, 2);
	pr_chain(f, &b, 1, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	vq_push(&f->vq, 0, 1);
	vq_flush(&f->vq);
	CHECK_EQ(efd_count(f->call_fd), 1);
	CHECK_EQ(f->vq.stats.calls, 3);
}

/* ---- VIRTIO_F_IN_ORDER ---- */

/* Post and pop chains of @nd[i] read-only descriptors with ids 0..n-1 (@wflag on all). */
static void io_post_pop(struct uvq_fx *f, const int *nd, int n, uint16_t id0, uint16_t wflag)
{
	struct gvq_rawbuf b[3] = {
	    {BUF, 10, wflag}, {BUF + 0x100, 10, wflag}, {BUF + 0x200, 10, wflag}};

	for (int i = 0; i < n; i++)
		pr_chain(f, b, nd[i], (uint16_t)(id0 + i));
	for (int i = 0; i < n; i++) {
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		CHECK_EQ(f->c.id, id0 + i);
	}
}

/* Is the descriptor at @pos marked used in lap @wrap? */
static bool io_is_used(struct uvq_fx *f, uint16_t pos, bool wrap)
{
	uint16_t fl = f->q->pdesc[pos].flags;
	return !!(fl & PF_AVAIL) == wrap && !!(fl & PF_USED) == wrap;
}

/* Zero-length batch: one used descriptor (last id) at the first slot, skips all. */
static void t_inorder_batch(void)
{
	struct uvq_fx *f = fx_new(8, F_IN_ORDER);
	const int nd[3] = {2, 1, 2};

	CHECK(f->vq.in_order);
	io_post_pop(f, nd, 3, 0, 0);
	for (uint16_t i = 0; i < 3; i++)
		vq_push(&f->vq, i, 0);
	vq_flush(&f->vq);
	CHECK(io_is_used(f, 0, true));
	CHECK_EQ(f->q->pdesc[0].id, 2);
	CHECK_EQ(f->q->pdesc[0].len, 0);
	for (uint16_t p = 1; p < 5; p++)
		CHECK(!io_is_used(f, p, true));
	CHECK_EQ(f->vq.last_used_idx, 5);
	CHECK(f->vq.used_wrap);
	/* The batch wraps the ring in the middle: 3 chains of 2 from slot 5. */
	const int nd2[3] = {2, 2, 2};
	io_post_pop(f, nd2, 3, 3, 0);
	for (uint16_t i = 3; i < 6; i++)
		vq_push(&f->vq, i, 0);
	vq_flush(&f->vq);
	CHECK(io_is_used(f, 5, true));
	CHECK_EQ(f->q->pdesc[5].id, 5);
	for (uint16_t p = 6; p < 8; p++)
		CHECK(!io_is_used(f, p, true));
	for (uint16_t p = 0; p < 3; p++)
		CHECK(!io_is_used(f, p, false));
	CHECK_EQ(f->vq.last_used_idx, 3);
	CHECK(!f->vq.used_wrap);
	CHECK(f->vq.ready);
}

/* Non-zero lengths, writable chains and out-of-order pushes: every entry written. */
static void t_inorder_no_batch(void)
{
	struct uvq_fx *f = fx_new(8, F_IN_ORDER);
	const int nd[2] = {1, 2};
	uint16_t id;
	uint32_t len;

	io_post_pop(f, nd, 2, 0, 0);
	vq_push(&f->vq, 0, 0);
	vq_push(&f->vq, 1, 7);
	vq_flush(&f->vq);
	CHECK_EQ(pr_used(f, &id, &len), 1);
	CHECK(id == 0 && len == 0);
	CHECK_EQ(pr_used(f, &id, &len), 1);
	CHECK(id == 1 && len == 7);
	io_post_pop(f, nd, 2, 2, VRING_DESC_F_WRITE);
	vq_push(&f->vq, 2, 0);
	vq_push(&f->vq, 3, 0);
	vq_flush(&f->vq);
	CHECK_EQ(pr_used(f, &id, &len), 1);
	CHECK_EQ(id, 2);
	CHECK_EQ(pr_used(f, &id, &len), 1);
	CHECK_EQ(id, 3);
	io_post_pop(f, nd, 2, 4, 0);
	vq_push(&f->vq, 5, 0);
	vq_push(&f->vq, 4, 0);
	vq_flush(&f->vq);
	CHECK_EQ(pr_used(f, &id, &len), 1);
	CHECK_EQ(id, 5);
	CHECK_EQ(pr_used(f, &id, &len), 1);
	CHECK_EQ(id, 4);
	CHECK_EQ(pr_used(f, &id, &len), 0);
	CHECK(f->vq.ready);
}

/* Rewind in the middle of a burst keeps the order: both halves batch. */
static void t_inorder_rewind(void)
{
	struct uvq_fx *f = fx_new(8, F_IN_ORDER);
	const int nd[4] = {1, 2, 1, 2};
	const uint16_t back[2] = {2, 3};

	io_post_pop(f, nd, 4, 0, 0);
	vq_rewind(&f->vq, back, 2);
	vq_push(&f->vq, 0, 0);
	vq_push(&f->vq, 1, 0);
	vq_flush(&f->vq);
	CHECK(io_is_used(f, 0, true));
	CHECK_EQ(f->q->pdesc[0].id, 1);
	CHECK(!io_is_used(f, 1, true));
	for (uint16_t i = 2; i < 4; i++) {
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		CHECK_EQ(f->c.id, i);
		vq_push(&f->vq, i, 0);
	}
	vq_flush(&f->vq);
	CHECK(io_is_used(f, 3, true));
	CHECK_EQ(f->q->pdesc[3].id, 3);
	CHECK(!io_is_used(f, 4, true));
	CHECK_EQ(f->vq.last_used_idx, 6);
}

/*
 * vq_avail_count_max() against the expected count: k chains of 1 or 2
 * descriptors from every start position (laps of rings of 5, 13 and 16),
 * each max from 1 to k + 2, then with the head of chain h made
 * unavailable (a hole: the count stops before it), then restored. Covers
 * the four-at-a-time test in every phase against a batch of four: a hole,
 * a NEXT, the ring's end, a max that is not a multiple of four.
 */
static void t_avail_count_exact(void)
{
	static const uint16_t sizes[] = {5, 13, 16};

	for (unsigned si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		const uint16_t size = sizes[si];
		struct uvq_fx *f = fx_new(size, 0);
		for (uint32_t round = 0; round < 80; round++) {
			struct gvq_rawbuf b[2] = {{BUF, 10, 0}, {BUF + 64, 20, 0}};
			uint16_t hpos[16], used = 0, k = 0;
			bool hwrap[16];
			while (k < (round % 9) && used + 2 <= size) {
				int n = (round & 1) ? 1 : 1 + ((round + k) % 4 == 0); /* odd: singles */
				hpos[k] = f->q->raw.pos;
				hwrap[k] = f->q->raw.wrap;
				pr_chain(f, b + (2 - n), n, k);
				used = (uint16_t)(used + n);
				k++;
			}
			for (uint16_t max = 1; max <= k + 2; max++)
				CHECK_EQ(vq_avail_count_max(&f->vq, max), MIN(k, max));
			if (k) {
				uint16_t h = (uint16_t)(round % k),
					 saved = f->q->pdesc[hpos[h]].flags;
				f->q->pdesc[hpos[h]].flags =
				    gvq_avail_bits(!hwrap[h]); /* not in this lap */
				for (uint16_t max = 1; max <= k + 2; max++)
					CHECK_EQ(vq_avail_count_max(&f->vq, max), MIN(h, max));
				f->q->pdesc[hpos[h]].flags = saved;
				CHECK_EQ(vq_avail_count_max(&f->vq, UINT16_MAX), k);
			}
			for (uint16_t j = 0; j < k; j++) {
				CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
				vq_push(&f->vq, f->c.id, 0);
			}
			vq_flush(&f->vq);
			uint16_t id;
			uint32_t len;
			for (uint16_t j = 0; j < k; j++)
				CHECK_EQ(pr_used(f, &id, &len), 1);
			CHECK_EQ(vq_avail_count_max(&f->vq, UINT16_MAX), 0);
		}
	}
}

TEST_MAIN(TEST(t_pop_push_exact), TEST(t_wrap_laps), TEST(t_batch_and_rewind), TEST(t_indirect),
	  TEST(t_zero_len_unmapped), TEST(t_hostile_chains), TEST(t_nested_indirect),
	  TEST(t_chain_longer_than_ring), TEST(t_chain_of_whole_max_ring),
	  TEST(t_rest_not_available), TEST(t_id_in_flight_twice),
	  TEST(t_base), TEST(t_base_default), TEST(t_notify), TEST(t_notify_event_idx),
	  TEST(t_inorder_batch), TEST(t_inorder_no_batch), TEST(t_inorder_rewind),
	  TEST(t_avail_count_exact))
