/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue: ring indices, used ring, notifications, lifecycle,
 * IN_ORDER batches, on rings written with the harness's raw writers.
 */
#include <stdlib.h>

#include "util/fd.h"
#include "unit_vq.h"

#define MB 0x100000ull
#define BUF 0x20000ull

/*
 * Fixture (unit_vq.h): 2 regions of 1 MiB, a ring of @size at 0x1000 with
 * base @base, every descriptor i a writable 256-byte buffer at BUF + i *
 * 0x100, call and err eventfds.
 */
static struct uvq_fx *fx_new(uint16_t size, uint64_t features, uint16_t base)
{
	struct uvq_fx *f = uvq_fx_new(size, features, base);

	for (uint16_t i = 0; i < size; i++)
		gvq_raw_desc(f->q, i, BUF + i * 0x100u, 0x100, VRING_DESC_F_WRITE, 0);
	return f;
}

static void t_pop_push_flush_exact(void)
{
	struct uvq_fx *f = fx_new(8, 0, 0);
	struct vring_used_elem expect[8] = {{5, 17}, {2, 0}, {7, 0x100}};
	uint8_t before[8 * 8];

	memcpy(before, f->q->used->ring, sizeof(before));
	gvq_raw_push(f->q, 2);
	gvq_raw_push(f->q, 5);
	gvq_raw_push(f->q, 7);
	CHECK_EQ(vq_avail_count(&f->vq), 3);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 2);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 5);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 7);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -ENOENT);
	vq_push(&f->vq, 5, 17);
	vq_push(&f->vq, 2, 0);
	vq_push(&f->vq, 7, 0x100);
	/* Nothing visible before the flush. */
	CHECK_EQ(f->q->used->idx, 0);
	CHECK(!memcmp(f->q->used->ring, before, sizeof(before)));
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 3);
	CHECK_EQ(f->q->used->flags, 0);
	CHECK(!memcmp(f->q->used->ring, expect, sizeof(expect)));
	CHECK_EQ(f->vq.last_used_idx, 3);
}

static void t_used_wrap(void)
{
	struct uvq_fx *f = fx_new(8, 0, 65530); /* also wraps the 16-bit indices */
	uint16_t ids[4];

	for (uint16_t i = 0; i < 4; i++)
		gvq_raw_push(f->q, (uint16_t)(i + 1));
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		ids[i] = f->c.id;
	}
	for (int i = 0; i < 4; i++)
		vq_push(&f->vq, ids[i], (uint32_t)i * 10);
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, (uint16_t)65534);
	/* 65530 & 7 = 2: slots 2..5 */
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(f->q->used->ring[2 + i].id, ids[i]);
		CHECK_EQ(f->q->used->ring[2 + i].len, i * 10);
	}
	for (uint16_t i = 0; i < 4; i++)
		gvq_raw_push(f->q, i);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		vq_push(&f->vq, f->c.id, 1);
	}
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 2); /* wrapped past 65535 */
	CHECK_EQ(f->q->used->ring[6].id, 0);
	CHECK_EQ(f->q->used->ring[7].id, 1);
	CHECK_EQ(f->q->used->ring[0].id, 2);
	CHECK_EQ(f->q->used->ring[1].id, 3);
}

/* The ring must now be broken, with one err signal. */
static void check_broken(struct uvq_fx *f)
{
	CHECK(f->vq.broken && !f->vq.ready);
	CHECK_EQ(efd_count(f->err_fd), 1);
	CHECK(!vq_enter(&f->vq));
}

static void t_avail_jump(void)
{
	struct uvq_fx *f = fx_new(8, 0, 0);

	f->q->avail->idx = 8; /* exactly size: fine */
	CHECK_EQ(vq_avail_count(&f->vq), 8);
	f->q->avail->idx = 9;
	CHECK_EQ(vq_avail_count(&f->vq), 0);
	check_broken(f);
}

static void t_avail_backwards(void)
{
	struct uvq_fx *f = fx_new(8, 0, 100);

	f->q->avail->idx = 99; /* the driver must never decrement */
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

static void t_head_out_of_range(void)
{
	struct uvq_fx *f = fx_new(8, 0, 0);

	gvq_raw_push(f->q, 8);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

static void t_duplicate_head(void)
{
	struct uvq_fx *f = fx_new(8, 0, 0);

	gvq_raw_push(f->q, 3);
	gvq_raw_push(f->q, 4);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	vq_push(&f->vq, 3, 0); /* 3 may be reused after it was returned */
	gvq_raw_push(f->q, 3);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 3);
	gvq_raw_push(f->q, 4); /* 4 is still in flight */
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

static void t_rewind(void)
{
	struct uvq_fx *f = fx_new(8, 0, 0);
	uint16_t ids[2];

	gvq_raw_push(f->q, 6);
	gvq_raw_push(f->q, 1);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	ids[0] = f->c.id;
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	ids[1] = f->c.id;
	vq_rewind(&f->vq, ids, 2);
	CHECK_EQ(f->vq.last_avail_idx, 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0); /* no false duplicate */
	CHECK_EQ(f->c.id, 6);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 1);
	CHECK(f->vq.ready);
}

/* Pop one chain, push it and flush; return the number of calls signalled. */
static uint64_t one_round(struct uvq_fx *f, uint16_t head)
{
	gvq_raw_push(f->q, head);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	vq_push(&f->vq, f->c.id, 1);
	vq_flush(&f->vq);
	return efd_count(f->call_fd);
}

static void t_notify_flags(void)
{
	struct uvq_fx *f = fx_new(8, 0, 0);

	CHECK_EQ(one_round(f, 0), 1);
	CHECK_EQ(one_round(f, 1), 1);
	f->q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	CHECK_EQ(one_round(f, 2), 0);
	CHECK_EQ(one_round(f, 3), 0);
	f->q->avail->flags = 0;
	CHECK_EQ(one_round(f, 4), 1);
	CHECK_EQ(f->vq.stats.calls, 3);
	/* An empty flush notifies nobody. */
	vq_flush(&f->vq);
	CHECK_EQ(efd_count(f->call_fd), 0);
	/* No call fd (NOFD): skipped, not attempted. */
	vq_set_call_fd(&f->vq, -1);
	CHECK_EQ(one_round(f, 5), 0);
	CHECK_EQ(f->vq.stats.calls, 3);
}

static void t_notify_event_idx(void)
{
	struct uvq_fx *f = fx_new(8, F_EVENT_IDX, 65534);
	uint16_t *used_event = &f->q->avail->ring[8];

	*used_event = 0;
	CHECK_EQ(one_round(f, 0), 1);  /* first call after start: always */
	*used_event = 65535;           /* notify once used idx passes 65535 */
	CHECK_EQ(one_round(f, 1), 1);  /* used idx 65534 -> 0: crossed 65535 (mod 2^16) */
	*used_event = 1;               /* wants a call when idx moves past 1 */
	CHECK_EQ(one_round(f, 2), 0);  /* 0 -> 1 */
	CHECK_EQ(one_round(f, 3), 1);  /* 1 -> 2 */
	CHECK_EQ(one_round(f, 4), 0);  /* event stale: no call */
	*used_event = 3;
	CHECK_EQ(one_round(f, 5), 1);  /* 3 -> 4 */
	CHECK_EQ(f->vq.stats.calls, 4);
	CHECK(!vq_notify(&f->vq));     /* nothing new since the last call */
	/* avail->flags is ignored with EVENT_IDX. */
	f->q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	*used_event = 4;
	CHECK_EQ(one_round(f, 6), 1);
}

static void t_set_notification(void)
{
	struct uvq_fx *f = fx_new(8, 0, 0);

	CHECK(!vq_set_notification(&f->vq, false));
	CHECK_EQ(f->q->used->flags, VRING_USED_F_NO_NOTIFY);
	CHECK(!vq_set_notification(&f->vq, true));
	CHECK_EQ(f->q->used->flags, 0);
	gvq_raw_push(f->q, 0);
	CHECK(vq_set_notification(&f->vq, true)); /* work already there: don't sleep */

	struct uvq_fx *e = fx_new(8, F_EVENT_IDX, 300);
	uint16_t *avail_event = (uint16_t *)(void *)&e->q->used->ring[8];
	CHECK(!vq_set_notification(&e->vq, true));
	CHECK_EQ(*avail_event, 300);
	CHECK_EQ(e->q->used->flags, 0);
	gvq_raw_push(e->q, 0);
	CHECK_EQ(vq_pop(&e->vq, &e->c), 0);
	CHECK(!vq_set_notification(&e->vq, true));
	CHECK_EQ(*avail_event, 301);
	gvq_raw_push(e->q, 1);
	CHECK(vq_set_notification(&e->vq, true));
}

static void t_config_rejects(void)
{
	struct vq vq;
	struct vq_addr a = {0};

	memset(&vq, 0, sizeof(vq));
	vq_init(&vq, 3);
	CHECK_EQ(vq_set_num(&vq, 0), -EINVAL);
	CHECK_EQ(vq_set_num(&vq, 3), -EINVAL);
	CHECK_EQ(vq_set_num(&vq, 32769), -EINVAL);
	CHECK_EQ(vq_set_num(&vq, 65536), -EINVAL);
	CHECK_EQ(vq_set_num(&vq, 1u << 31), -EINVAL);
	CHECK_EQ(vq_set_num(&vq, 32768), 0);
	CHECK_EQ(vq_set_num(&vq, 256), 0); /* resize: old arrays freed */
	CHECK_EQ(vq.size, 256);
	a.flags = 2;
	CHECK_EQ(vq_set_addr(&vq, &a), -EINVAL);
	CHECK(!vq.addr_set);
	a.flags = 1; /* VHOST_VRING_F_LOG */
	CHECK_EQ(vq_set_addr(&vq, &a), 0);
	CHECK_EQ(vq_set_base(&vq, 0x10000), -EINVAL);
	CHECK_EQ(vq_set_base(&vq, 0xffff), 0);
	CHECK_EQ(vq_get_base(&vq), 0xffff);
	/* No memory table. */
	CHECK_EQ(vq_start(&vq, NULL, 0), -EINVAL);
	vq_reset(&vq);
	CHECK(!vq.num_set && vq.shadow_used == NULL && vq.index == 3);
}

static void t_start_checks(void)
{
	struct uvq_fx *f = fx_new(8, 0, 0);
	struct vq vq;
	struct vq_addr a = f->vq.addr;

	memset(&vq, 0, sizeof(vq));
	vq_init(&vq, 1);
	CHECK_EQ(vq_start(&vq, f->t, 0), -EINVAL); /* no num, no addr */
	CHECK_EQ(vq_set_num(&vq, 8), 0);
	CHECK_EQ(vq_start(&vq, f->t, 0), -EINVAL); /* no addr */
	a.desc += 8; /* misaligned */
	CHECK_EQ(vq_set_addr(&vq, &a), 0);
	CHECK_EQ(vq_start(&vq, f->t, 0), -EFAULT);
	a.desc = UVQ_QVA_OFF + 2 * MB - 64; /* desc table runs past the memory */
	CHECK_EQ(vq_set_addr(&vq, &a), 0);
	CHECK_EQ(vq_start(&vq, f->t, 0), -EFAULT);
	a.desc = UVQ_QVA_OFF + MB - 64; /* crosses the region boundary */
	CHECK_EQ(vq_set_addr(&vq, &a), 0);
	CHECK_EQ(vq_start(&vq, f->t, 0), -EFAULT);
	a = f->vq.addr;
	a.avail = UVQ_QVA_OFF + MB - (6 + 2 * 8); /* fits without EVENT_IDX, not with it */
	CHECK_EQ(vq_set_addr(&vq, &a), 0);
	CHECK_EQ(vq_start(&vq, f->t, F_EVENT_IDX), -EFAULT);
	CHECK(!vq.started);
	/* Free-running base beyond the ring size, used idx read from the guest. */
	f->q->used->idx = 777;
	CHECK_EQ(vq_set_base(&vq, 1000), 0);
	CHECK_EQ(vq_start(&vq, f->t, 0), 0);
	CHECK_EQ(vq.last_avail_idx, 1000);
	CHECK_EQ(vq.last_used_idx, 777);
	CHECK(!vq.ready); /* not enabled */
	vq_set_enabled(&vq, true);
	CHECK(vq.ready);
	CHECK_EQ(vq_set_num(&vq, 16), -EBUSY);
	CHECK_EQ(vq_set_base(&vq, 0), -EBUSY);
	vq_stop(&vq);
	CHECK(!vq.ready && !vq.started);
	CHECK_EQ(vq_get_base(&vq), 1000);
	vq_reset(&vq);
}

static void t_stop_base_and_restart(void)
{
	struct uvq_fx *f = fx_new(8, 0, 0);

	for (uint16_t i = 0; i < 3; i++)
		gvq_raw_push(f->q, i);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	vq_stop(&f->vq);
	CHECK_EQ(vq_get_base(&f->vq), 3);
	CHECK(!vq_enter(&f->vq));
	CHECK_EQ(vq_start(&f->vq, f->t, 0), 0);
	CHECK_EQ(f->vq.last_avail_idx, 3);
	CHECK(f->vq.ready);
}

static void t_broken_isolated(void)
{
	struct uvq_fx *f = fx_new(8, 0, 0);
	static struct gvq *r2; /* static: reachable until exit (ASan) */
	static struct vq vq2_storage;
	struct vq *vq2 = &vq2_storage;

	CHECK_EQ(gvq_new_at(f->m, 0x10000, 8, 0, &r2), 0);
	for (uint16_t i = 0; i < 8; i++)
		gvq_raw_desc(r2, i, BUF + i * 0x100u, 0x100, 0, 0);
	vq_init(vq2, 0);
	CHECK_EQ(uvq_start(vq2, r2, f->t, 0, 0), 0);
	CHECK(vq2->ready);
	int err2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq_set_err_fd(vq2, dup(err2));
	gvq_raw_push(f->q, 200);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
	gvq_raw_push(r2, 4);
	CHECK(vq_enter(vq2));
	CHECK_EQ(vq_pop(vq2, &f->c), 0);
	CHECK_EQ(f->c.id, 4);
	vq_push(vq2, 4, 0);
	vq_flush(vq2);
	vq_leave(vq2);
	CHECK_EQ(r2->used->idx, 1);
	CHECK_EQ(efd_count(err2), 0);
	/* Reconfiguration (restart) clears the broken state. */
	CHECK_EQ(vq_start(&f->vq, f->t, 0), 0);
	CHECK(f->vq.ready && !f->vq.broken);
}

static void t_reset_closes_fds(void)
{
	int before = fd_count_open();
	struct vq vq;

	memset(&vq, 0, sizeof(vq));
	vq_init(&vq, 0);
	for (int i = 0; i < 100; i++) {
		vq_set_kick_fd(&vq, eventfd(0, EFD_CLOEXEC));
		vq_set_call_fd(&vq, eventfd(0, EFD_CLOEXEC));
		vq_set_err_fd(&vq, eventfd(0, EFD_CLOEXEC));
	}
	CHECK_EQ(fd_count_open(), before + 3);
	vq_reset(&vq);
	CHECK_EQ(fd_count_open(), before);
	CHECK_EQ(vq.kick_fd, -1);
}

static void t_remap(void)
{
	struct uvq_fx *f = fx_new(8, 0, 0);
	struct mem_table *t2, *t3;

	/* Same layout, new table: the ring keeps working. */
	CHECK_EQ(gmem_table(f->m, 0, 2, &t2), 0);
	CHECK_EQ(vq_remap(&f->vq, t2), 0);
	mem_table_free(f->t);
	f->t = t2;
	gvq_raw_push(f->q, 1);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK(same_mem(f->c.iov[0].iov_base, uvq_ptr(f->m, BUF + 0x100, 1)));
	/* The region holding the ring is removed: stopped and broken. */
	CHECK_EQ(mem_table_remove(t2, 0, UVQ_QVA_OFF, MB, &t3), 0);
	CHECK_EQ(vq_remap(&f->vq, t3), -EFAULT);
	CHECK(!f->vq.started && f->vq.broken);
	CHECK_EQ(vq_get_base(&f->vq), 1);
	CHECK_EQ(efd_count(f->err_fd), 1);
	mem_table_free(t3);
}

/* ---- VIRTIO_F_IN_ORDER ---- */
#define SENT 0xdeadu

/* In-order ring of 8 at @base with device-readable buffers and sentinel used entries. */
static struct uvq_fx *io_new(uint16_t base)
{
	struct uvq_fx *f = fx_new(8, F_IN_ORDER, base);

	CHECK(f->vq.in_order);
	for (uint16_t i = 0; i < 8; i++) {
		gvq_raw_desc(f->q, i, BUF + i * 0x100u, 0x100, 0, 0);
		f->q->used->ring[i].id = SENT;
		f->q->used->ring[i].len = SENT;
	}
	return f;
}

/* Make @n heads available from @heads and pop them in order. */
static void io_pop(struct uvq_fx *f, const uint16_t *heads, int n)
{
	for (int i = 0; i < n; i++)
		gvq_raw_push(f->q, heads[i]);
	for (int i = 0; i < n; i++) {
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		CHECK_EQ(f->c.id, heads[i]);
	}
}

static void check_used(struct uvq_fx *f, uint16_t slot, uint32_t id, uint32_t len)
{
	CHECK_EQ(f->q->used->ring[slot].id, id);
	CHECK_EQ(f->q->used->ring[slot].len, len);
}

/* A TX-like batch of zero-length pushes: one entry with the last id, idx += N. */
static void t_inorder_batch(void)
{
	struct uvq_fx *f = io_new(0);
	const uint16_t h[4] = {3, 1, 4, 0};

	io_pop(f, h, 4);
	for (int i = 0; i < 4; i++)
		vq_push(&f->vq, h[i], 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 4);
	check_used(f, 0, 0, 0);
	for (uint16_t s = 1; s < 8; s++)
		check_used(f, s, SENT, SENT);
	/* A single buffer is one entry either way. */
	io_pop(f, (const uint16_t[]){6}, 1);
	vq_push(&f->vq, 6, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 5);
	check_used(f, 4, 6, 0);
	check_used(f, 5, SENT, SENT);
}

/* Non-zero lengths, writable buffers, out-of-order pushes: every entry written. */
static void t_inorder_no_batch(void)
{
	struct uvq_fx *f = io_new(0);
	const uint16_t h[3] = {2, 5, 7};

	io_pop(f, h, 3);
	vq_push(&f->vq, 2, 0);
	vq_push(&f->vq, 5, 10);
	vq_push(&f->vq, 7, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 3);
	check_used(f, 0, 2, 0);
	check_used(f, 1, 5, 10);
	check_used(f, 2, 7, 0);
	/* Writable chains: their lengths matter, even when 0. */
	gvq_raw_desc(f->q, 1, BUF, 0x100, VRING_DESC_F_WRITE, 0);
	io_pop(f, (const uint16_t[]){1, 0}, 2);
	vq_push(&f->vq, 1, 0);
	vq_push(&f->vq, 0, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 5);
	check_used(f, 3, 1, 0);
	check_used(f, 4, 0, 0);
	/* Out of order (a device bug under IN_ORDER): written one by one, never merged. */
	io_pop(f, (const uint16_t[]){4, 3, 6}, 3);
	vq_push(&f->vq, 3, 0);
	vq_push(&f->vq, 4, 0);
	vq_push(&f->vq, 6, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 8);
	check_used(f, 5, 3, 0);
	check_used(f, 6, 4, 0);
	check_used(f, 7, 6, 0);
	/* Back in order afterwards: batched again. */
	io_pop(f, (const uint16_t[]){2, 5}, 2);
	vq_push(&f->vq, 2, 0);
	vq_push(&f->vq, 5, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 10);
	check_used(f, 0, 5, 0);
	check_used(f, 1, 5, 10); /* untouched */
}

/* The batch wraps the used ring (and the 16-bit index) in the middle. */
static void t_inorder_wrap(void)
{
	struct uvq_fx *f = io_new(65534); /* slot 6 */
	const uint16_t h[4] = {6, 7, 0, 1};

	io_pop(f, h, 4);
	for (int i = 0; i < 4; i++)
		vq_push(&f->vq, h[i], 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 2);
	check_used(f, 6, 1, 0);
	check_used(f, 7, SENT, SENT);
	check_used(f, 0, SENT, SENT);
	check_used(f, 1, SENT, SENT);
	CHECK(f->vq.ready);
}

/* Rewind in the middle of a burst keeps the order: both halves batch. */
static void t_inorder_rewind(void)
{
	struct uvq_fx *f = io_new(0);
	const uint16_t h[4] = {0, 1, 2, 3};

	io_pop(f, h, 4);
	vq_rewind(&f->vq, h + 2, 2);
	vq_push(&f->vq, 0, 0);
	vq_push(&f->vq, 1, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 2);
	check_used(f, 0, 1, 0);
	check_used(f, 1, SENT, SENT);
	for (int i = 2; i < 4; i++) {
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		CHECK_EQ(f->c.id, h[i]);
		vq_push(&f->vq, f->c.id, 0);
	}
	vq_flush(&f->vq);
	CHECK_EQ(f->q->used->idx, 4);
	check_used(f, 2, 3, 0);
	check_used(f, 3, SENT, SENT);
}

TEST_MAIN(TEST(t_pop_push_flush_exact), TEST(t_used_wrap), TEST(t_avail_jump),
	  TEST(t_avail_backwards), TEST(t_head_out_of_range), TEST(t_duplicate_head),
	  TEST(t_rewind), TEST(t_notify_flags), TEST(t_notify_event_idx), TEST(t_set_notification),
	  TEST(t_config_rejects), TEST(t_start_checks), TEST(t_stop_base_and_restart),
	  TEST(t_broken_isolated), TEST(t_reset_closes_fds), TEST(t_remap), TEST(t_inorder_batch),
	  TEST(t_inorder_no_batch), TEST(t_inorder_wrap), TEST(t_inorder_rewind))
