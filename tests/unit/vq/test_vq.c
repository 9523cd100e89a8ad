/* SPDX-License-Identifier: MIT */
/* Split virtqueue: ring indices, used ring, notifications, lifecycle, vdev registry. */
#include <pthread.h>
#include <stdlib.h>

#include "util/fd.h"
#include "core/vdev.h"
#include "memvq_util.h"

#define MB 0x100000ull
#define BUF 0x20000ull

/*
 * Fixtures live in static storage: each case runs in its own forked child,
 * and everything they own stays reachable (no leak reports under ASan).
 */
struct fx {
	struct gmem g;
	struct tring r;
	struct vq vq;
	struct vq_chain c;
	struct iovec iov[MEMVQ_IOV]; /* c's pieces */
	int err_fd, call_fd;
};

static struct fx *fx_alloc(void)
{
	static struct fx pool[16];
	static unsigned used;

	CHECK(used < ARRAY_SIZE(pool));
	pool[used].c.iov = pool[used].iov;
	pool[used].c.iov_max = MEMVQ_IOV;
	return &pool[used++];
}

/* 2 regions of 1 MiB, ring of @size at 0x1000 with base @base, call + err eventfds. */
static struct fx *fx_new(uint16_t size, uint64_t features, uint16_t base)
{
	struct fx *f = fx_alloc();

	gm_init(&f->g, 2 * MB, 2);
	tr_init(&f->r, &f->g, size, 0x1000);
	f->r.avail_idx = base;
	f->r.avail->idx = base;
	f->r.used->idx = base;
	for (uint16_t i = 0; i < size; i++)
		tr_desc(&f->r, i, BUF + i * 0x100u, 0x100, VRING_DESC_F_WRITE, 0);
	tr_start(&f->r, &f->vq, features);
	f->err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(f->err_fd >= 0 && f->call_fd >= 0);
	vq_set_err_fd(&f->vq, dup(f->err_fd));
	vq_set_call_fd(&f->vq, dup(f->call_fd));
	return f;
}

static void t_pop_push_flush_exact(void)
{
	struct fx *f = fx_new(8, 0, 0);
	struct vring_used_elem expect[8] = {{5, 17}, {2, 0}, {7, 0x100}};
	uint8_t before[8 * 8];

	memcpy(before, f->r.used->ring, sizeof(before));
	tr_avail(&f->r, 2);
	tr_avail(&f->r, 5);
	tr_avail(&f->r, 7);
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
	CHECK_EQ(f->r.used->idx, 0);
	CHECK(!memcmp(f->r.used->ring, before, sizeof(before)));
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, 3);
	CHECK_EQ(f->r.used->flags, 0);
	CHECK(!memcmp(f->r.used->ring, expect, sizeof(expect)));
	CHECK_EQ(f->vq.last_used_idx, 3);
}

static void t_used_wrap(void)
{
	struct fx *f = fx_new(8, 0, 65530); /* also wraps the 16-bit indices */
	uint16_t ids[4];

	for (uint16_t i = 0; i < 4; i++)
		tr_avail(&f->r, (uint16_t)(i + 1));
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		ids[i] = f->c.id;
	}
	for (int i = 0; i < 4; i++)
		vq_push(&f->vq, ids[i], (uint32_t)i * 10);
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, (uint16_t)65534);
	/* 65530 & 7 = 2: slots 2..5 */
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(f->r.used->ring[2 + i].id, ids[i]);
		CHECK_EQ(f->r.used->ring[2 + i].len, i * 10);
	}
	for (uint16_t i = 0; i < 4; i++)
		tr_avail(&f->r, i);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		vq_push(&f->vq, f->c.id, 1);
	}
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, 2); /* wrapped past 65535 */
	CHECK_EQ(f->r.used->ring[6].id, 0);
	CHECK_EQ(f->r.used->ring[7].id, 1);
	CHECK_EQ(f->r.used->ring[0].id, 2);
	CHECK_EQ(f->r.used->ring[1].id, 3);
}

/* The ring must now be broken, with one err signal. */
static void check_broken(struct fx *f)
{
	CHECK(f->vq.broken && !f->vq.ready);
	CHECK_EQ(efd_count(f->err_fd), 1);
	CHECK(!vq_enter(&f->vq));
}

static void t_avail_jump(void)
{
	struct fx *f = fx_new(8, 0, 0);

	f->r.avail->idx = 8; /* exactly size: fine */
	CHECK_EQ(vq_avail_count(&f->vq), 8);
	f->r.avail->idx = 9;
	CHECK_EQ(vq_avail_count(&f->vq), 0);
	check_broken(f);
}

static void t_avail_backwards(void)
{
	struct fx *f = fx_new(8, 0, 100);

	f->r.avail->idx = 99; /* the driver must never decrement */
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

static void t_head_out_of_range(void)
{
	struct fx *f = fx_new(8, 0, 0);

	tr_avail(&f->r, 8);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

static void t_duplicate_head(void)
{
	struct fx *f = fx_new(8, 0, 0);

	tr_avail(&f->r, 3);
	tr_avail(&f->r, 4);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	vq_push(&f->vq, 3, 0); /* 3 may be reused after it was returned */
	tr_avail(&f->r, 3);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK_EQ(f->c.id, 3);
	tr_avail(&f->r, 4); /* 4 is still in flight */
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
}

static void t_rewind(void)
{
	struct fx *f = fx_new(8, 0, 0);
	uint16_t ids[2];

	tr_avail(&f->r, 6);
	tr_avail(&f->r, 1);
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
static uint64_t one_round(struct fx *f, uint16_t head)
{
	tr_avail(&f->r, head);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	vq_push(&f->vq, f->c.id, 1);
	vq_flush(&f->vq);
	return efd_count(f->call_fd);
}

static void t_notify_flags(void)
{
	struct fx *f = fx_new(8, 0, 0);

	CHECK_EQ(one_round(f, 0), 1);
	CHECK_EQ(one_round(f, 1), 1);
	f->r.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	CHECK_EQ(one_round(f, 2), 0);
	CHECK_EQ(one_round(f, 3), 0);
	f->r.avail->flags = 0;
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
	struct fx *f = fx_new(8, GM_F_EVENT_IDX, 65534);
	uint16_t *used_event = &f->r.avail->ring[8];

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
	f->r.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	*used_event = 4;
	CHECK_EQ(one_round(f, 6), 1);
}

static void t_set_notification(void)
{
	struct fx *f = fx_new(8, 0, 0);

	CHECK(!vq_set_notification(&f->vq, false));
	CHECK_EQ(f->r.used->flags, VRING_USED_F_NO_NOTIFY);
	CHECK(!vq_set_notification(&f->vq, true));
	CHECK_EQ(f->r.used->flags, 0);
	tr_avail(&f->r, 0);
	CHECK(vq_set_notification(&f->vq, true)); /* work already there: don't sleep */

	struct fx *e = fx_new(8, GM_F_EVENT_IDX, 300);
	uint16_t *avail_event = (uint16_t *)(void *)&e->r.used->ring[8];
	CHECK(!vq_set_notification(&e->vq, true));
	CHECK_EQ(*avail_event, 300);
	CHECK_EQ(e->r.used->flags, 0);
	tr_avail(&e->r, 0);
	CHECK_EQ(vq_pop(&e->vq, &e->c), 0);
	CHECK(!vq_set_notification(&e->vq, true));
	CHECK_EQ(*avail_event, 301);
	tr_avail(&e->r, 1);
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
	struct fx *f = fx_new(8, 0, 0);
	struct vq vq;
	struct vq_addr a = f->vq.addr;

	memset(&vq, 0, sizeof(vq));
	vq_init(&vq, 1);
	CHECK_EQ(vq_start(&vq, f->g.t, 0), -EINVAL); /* no num, no addr */
	CHECK_EQ(vq_set_num(&vq, 8), 0);
	CHECK_EQ(vq_start(&vq, f->g.t, 0), -EINVAL); /* no addr */
	a.desc += 8; /* misaligned */
	CHECK_EQ(vq_set_addr(&vq, &a), 0);
	CHECK_EQ(vq_start(&vq, f->g.t, 0), -EFAULT);
	a.desc = GM_QVA_OFF + 2 * MB - 64; /* desc table runs past the memory */
	CHECK_EQ(vq_set_addr(&vq, &a), 0);
	CHECK_EQ(vq_start(&vq, f->g.t, 0), -EFAULT);
	a.desc = GM_QVA_OFF + MB - 64; /* crosses the region boundary */
	CHECK_EQ(vq_set_addr(&vq, &a), 0);
	CHECK_EQ(vq_start(&vq, f->g.t, 0), -EFAULT);
	a = f->vq.addr;
	a.avail = GM_QVA_OFF + MB - (6 + 2 * 8); /* fits without EVENT_IDX, not with it */
	CHECK_EQ(vq_set_addr(&vq, &a), 0);
	CHECK_EQ(vq_start(&vq, f->g.t, GM_F_EVENT_IDX), -EFAULT);
	CHECK(!vq.started);
	/* Free-running base beyond the ring size, used idx read from the guest. */
	f->r.used->idx = 777;
	CHECK_EQ(vq_set_base(&vq, 1000), 0);
	CHECK_EQ(vq_start(&vq, f->g.t, 0), 0);
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
	struct fx *f = fx_new(8, 0, 0);

	for (uint16_t i = 0; i < 3; i++)
		tr_avail(&f->r, i);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	vq_stop(&f->vq);
	CHECK_EQ(vq_get_base(&f->vq), 3);
	CHECK(!vq_enter(&f->vq));
	CHECK_EQ(vq_start(&f->vq, f->g.t, 0), 0);
	CHECK_EQ(f->vq.last_avail_idx, 3);
	CHECK(f->vq.ready);
}

static void t_broken_isolated(void)
{
	struct fx *f = fx_new(8, 0, 0);
	struct tring r2;
	static struct vq vq2_storage;
	struct vq *vq2 = &vq2_storage;

	tr_init(&r2, &f->g, 8, 0x10000);
	for (uint16_t i = 0; i < 8; i++)
		tr_desc(&r2, i, BUF + i * 0x100u, 0x100, 0, 0);
	tr_start(&r2, vq2, 0);
	int err2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq_set_err_fd(vq2, dup(err2));
	tr_avail(&f->r, 200);
	CHECK_EQ(vq_pop(&f->vq, &f->c), -EIO);
	check_broken(f);
	tr_avail(&r2, 4);
	CHECK(vq_enter(vq2));
	CHECK_EQ(vq_pop(vq2, &f->c), 0);
	CHECK_EQ(f->c.id, 4);
	vq_push(vq2, 4, 0);
	vq_flush(vq2);
	vq_leave(vq2);
	CHECK_EQ(r2.used->idx, 1);
	CHECK_EQ(efd_count(err2), 0);
	/* Reconfiguration (restart) clears the broken state. */
	CHECK_EQ(vq_start(&f->vq, f->g.t, 0), 0);
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
	struct fx *f = fx_new(8, 0, 0);
	struct mem_region r[2];
	struct mem_table *t2, *t3;

	/* Same layout, new table: the ring keeps working. */
	CHECK_EQ(gm_region(&f->g, 0, MB, 0, &r[0]), 0);
	CHECK_EQ(gm_region(&f->g, MB, MB, MB, &r[1]), 0);
	CHECK_EQ(mem_table_new(r, 2, &t2), 0);
	CHECK_EQ(vq_remap(&f->vq, t2), 0);
	mem_table_free(f->g.t);
	f->g.t = t2;
	tr_avail(&f->r, 1);
	CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
	CHECK(same_mem(f->c.iov[0].iov_base, f->g.p + BUF + 0x100));
	/* The region holding the ring is removed: stopped and broken. */
	CHECK_EQ(mem_table_remove(t2, 0, GM_QVA_OFF, MB, &t3), 0);
	CHECK_EQ(vq_remap(&f->vq, t3), -EFAULT);
	CHECK(!f->vq.started && f->vq.broken);
	CHECK_EQ(vq_get_base(&f->vq), 1);
	CHECK_EQ(efd_count(f->err_fd), 1);
	mem_table_free(t3);
}

static void t_vdev_lifecycle(void)
{
	struct vdev *d, *d2;
	struct vq *vq;
	int vid;

	CHECK_EQ(vdev_alloc(&d), 0);
	vid = atomic_load(&d->vid);
	CHECK(vid >= 0);
	CHECK(vdev_get(vid) == d);
	CHECK(vdev_get(-1) == NULL);
	CHECK(vdev_get(vid ^ (1 << VDEV_SLOT_BITS)) == NULL);
	vq = vdev_vq_get_or_alloc(d, 7); /* queue 7 before queue 0 */
	CHECK(vq && vq->index == 7 && vq->kick_fd == -1);
	CHECK(vdev_vq(d, 7) == vq);
	CHECK(vdev_vq(d, 0) == NULL);
	CHECK(vdev_vq(d, VHK_MAX_QUEUES) == NULL);
	CHECK(vdev_vq_get_or_alloc(d, VHK_MAX_QUEUES) == NULL);
	CHECK_EQ(d->nr_vrings, 8);
	CHECK_EQ(vq_set_num(vq, 8), 0);
	vq_set_call_fd(vq, eventfd(0, EFD_CLOEXEC));
	vdev_set_features(d, GM_F_EVENT_IDX);
	CHECK_EQ(vq->features, GM_F_EVENT_IDX);
	vdev_release(d);
	CHECK(vdev_get(vid) == NULL);
	CHECK(vq->call_fd == -1 && !vq->num_set); /* reset, memory still valid */
	vdev_release(d);                          /* twice is harmless */
	CHECK_EQ(vdev_alloc(&d2), 0);
	CHECK(d2 == d);                            /* same slot, new generation */
	CHECK(atomic_load(&d2->vid) != vid);
	CHECK(vdev_get(vid) == NULL);
	CHECK(vdev_vq(d2, 7) == vq);
	CHECK_EQ(d2->nr_vrings, 0);
	vdev_release(d2);
}

static void t_vdev_gen_wrap(void)
{
	struct vdev *d;
	int first;

	CHECK_EQ(vdev_alloc(&d), 0);
	first = atomic_load(&d->vid);
	vdev_release(d);
	for (uint32_t i = 0; i < (1u << 20) + 3; i++) {
		CHECK_EQ(vdev_alloc(&d), 0);
		int vid = atomic_load(&d->vid);
		CHECK(vid >= 0 && (vid >> VDEV_SLOT_BITS) != 0);
		vdev_release(d);
	}
	(void)first;
}

static void t_vdev_full(void)
{
	static struct vdev *all[VDEV_MAX_SLOTS];
	struct vdev *x;

	for (uint32_t i = 0; i < VDEV_MAX_SLOTS; i++)
		CHECK_EQ(vdev_alloc(&all[i]), 0);
	CHECK_EQ(vdev_alloc(&x), -ENOSPC);
	vdev_release(all[17]);
	CHECK_EQ(vdev_alloc(&x), 0);
	CHECK(x == all[17]);
}

static void t_vdev_mem_and_api(void)
{
	struct fx *f = fx_new(8, 0, 0);
	struct vdev *d;
	struct vq *vq;
	struct vhk_mem_region mr[4];
	struct vhk_vq_info info;
	uint64_t feat;
	char path[8];
	int vid, kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	CHECK_EQ(vdev_alloc(&d), 0);
	vid = atomic_load(&d->vid);
	vq = vdev_vq_get_or_alloc(d, 1);
	CHECK_EQ(vq_set_num(vq, 8), 0);
	CHECK_EQ(vq_set_addr(vq, &f->vq.addr), 0);
	vdev_set_mem(d, f->g.t); /* the device now owns the table */
	f->g.t = NULL;
	CHECK_EQ(vq_start(vq, d->mem, 0), 0);
	vq_set_enabled(vq, true);
	vq_set_kick_fd(vq, dup(kick));
	vq_set_call_fd(vq, dup(f->call_fd));
	CHECK_EQ(vhk_dev_get_mem_table(vid, mr, 4), 2);
	CHECK_EQ(mr[1].guest_phys_addr, MB);
	CHECK_EQ(mr[1].frontend_addr, MB + GM_QVA_OFF);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), 2);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 1), -EINVAL);
	CHECK_EQ(vhk_dev_get_features(vid, NULL), -EINVAL);
	CHECK_EQ(vhk_dev_get_features(vid + 1, &feat), -ENODEV);
	d->features = 42;
	CHECK_EQ(vhk_dev_get_features(vid, &feat), 0);
	CHECK_EQ(feat, 42);
	strcpy(d->path, "/tmp/sock");
	CHECK_EQ(vhk_dev_get_path(vid, path, sizeof(path)), -ENOSPC);
	CHECK_EQ(vhk_dev_get_vq_count(vid), 2);
	CHECK_EQ(vhk_vq_get_info(vid, 1, &info), 0);
	CHECK(info.size == 8 && info.started && info.enabled && info.used != NULL);
	CHECK_EQ(vhk_vq_get_info(vid, VHK_MAX_QUEUES, &info), -EINVAL);
	/* Notifications through the public API. */
	CHECK_EQ(vhk_vq_set_notification(vid, 1, false), 0);
	CHECK_EQ(f->r.used->flags, VRING_USED_F_NO_NOTIFY);
	CHECK_EQ(vhk_vq_set_notification(vid, 0, true), -EAGAIN);
	CHECK_EQ(vhk_vq_wait_kick(vid, 1, 0), 0);
	CHECK_EQ(fd_eventfd_write(kick), 0);
	CHECK_EQ(vhk_vq_wait_kick(vid, 1, 1000), 1);
	CHECK_EQ(vhk_vq_wait_kick(vid, 1, 0), 0); /* consumed */
	CHECK_EQ(vq->stats.kicks, 1);
	CHECK_EQ(vhk_vq_notify(vid, 1), 1);
	CHECK_EQ(efd_count(f->call_fd), 1);
	f->r.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	CHECK_EQ(vhk_vq_notify(vid, 1), 0);
	/* New memory without the ring: the started ring is stopped and broken. */
	struct mem_table *t;
	struct mem_region r;
	CHECK_EQ(gm_region(&f->g, MB, MB, MB, &r), 0);
	CHECK_EQ(mem_table_new(&r, 1, &t), 0);
	vdev_set_mem(d, t);
	CHECK(vq->broken && !vq->started && vq->mem == t);
	CHECK_EQ(efd_count(f->err_fd), 0); /* that vq has no err fd */
	vdev_release(d);
	CHECK_EQ(vhk_dev_get_vq_count(vid), -ENODEV);
	CHECK(vhk_dev_get_ctx(vid) == NULL);
	CHECK_EQ(vhk_vq_notify(vid, 1), -ENODEV);
}

/* Datapath thread for t_mem_swap_under_traffic: acts as guest and device. */
struct swap_ctx {
	struct fx *f;
	struct vq *vq;
	atomic_bool stop;
	uint64_t done;
};

static void *swap_datapath(void *arg)
{
	struct swap_ctx *s = arg;
	uint16_t next = 0;

	while (!atomic_load(&s->stop)) {
		if (!vq_enter(s->vq))
			continue;
		tr_avail(&s->f->r, next);
		int rc = vq_pop(s->vq, &s->f->c);
		if (rc == 0) {
			memset(s->f->c.iov[0].iov_base, 0x11, s->f->c.iov[0].iov_len); /* touch guest memory */
			vq_push(s->vq, s->f->c.id, s->f->c.iov[0].iov_len);
			vq_flush(s->vq);
			next = (uint16_t)((next + 1) & 7);
			s->done++;
		}
		vq_leave(s->vq);
		if (rc)
			break;
	}
	return NULL;
}

static void t_mem_swap_under_traffic(void)
{
	struct fx *f = fx_new(8, 0, 0);
	struct swap_ctx s = {.f = f};
	struct vdev *d;
	pthread_t th;

	CHECK_EQ(vdev_alloc(&d), 0);
	s.vq = vdev_vq_get_or_alloc(d, 0);
	CHECK_EQ(vq_set_num(s.vq, 8), 0);
	CHECK_EQ(vq_set_addr(s.vq, &f->vq.addr), 0);
	vdev_set_mem(d, f->g.t);
	f->g.t = NULL;
	CHECK_EQ(vq_start(s.vq, d->mem, 0), 0);
	vq_set_enabled(s.vq, true);
	CHECK_EQ(pthread_create(&th, NULL, swap_datapath, &s), 0);
	for (int i = 0; i < 2000; i++) {
		struct mem_region r[2];
		struct mem_table *t;
		CHECK_EQ(gm_region(&f->g, 0, MB, 0, &r[0]), 0);
		CHECK_EQ(gm_region(&f->g, MB, MB, MB, &r[1]), 0);
		CHECK_EQ(mem_table_new(r, 2, &t), 0);
		vdev_set_mem(d, t); /* old mappings unmapped while traffic runs */
	}
	atomic_store(&s.stop, true);
	pthread_join(th, NULL);
	CHECK(s.vq->ready && !s.vq->broken);
	CHECK(s.done > 0);
	CHECK_EQ(f->r.used->idx, (uint16_t)s.done);
	vdev_release(d);
}

/* ---- VIRTIO_F_IN_ORDER ---- */
#define F_IO (1ull << 35)
#define SENT 0xdeadu

/* In-order ring of 8 at @base with device-readable buffers and sentinel used entries. */
static struct fx *io_new(uint16_t base)
{
	struct fx *f = fx_new(8, F_IO, base);

	CHECK(f->vq.in_order);
	for (uint16_t i = 0; i < 8; i++) {
		tr_desc(&f->r, i, BUF + i * 0x100u, 0x100, 0, 0);
		f->r.used->ring[i].id = SENT;
		f->r.used->ring[i].len = SENT;
	}
	return f;
}

/* Make @n heads available from @heads and pop them in order. */
static void io_pop(struct fx *f, const uint16_t *heads, int n)
{
	for (int i = 0; i < n; i++)
		tr_avail(&f->r, heads[i]);
	for (int i = 0; i < n; i++) {
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		CHECK_EQ(f->c.id, heads[i]);
	}
}

static void check_used(struct fx *f, uint16_t slot, uint32_t id, uint32_t len)
{
	CHECK_EQ(f->r.used->ring[slot].id, id);
	CHECK_EQ(f->r.used->ring[slot].len, len);
}

/* A TX-like batch of zero-length pushes: one entry with the last id, idx += N. */
static void t_inorder_batch(void)
{
	struct fx *f = io_new(0);
	const uint16_t h[4] = {3, 1, 4, 0};

	io_pop(f, h, 4);
	for (int i = 0; i < 4; i++)
		vq_push(&f->vq, h[i], 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, 4);
	check_used(f, 0, 0, 0);
	for (uint16_t s = 1; s < 8; s++)
		check_used(f, s, SENT, SENT);
	/* A single buffer is one entry either way. */
	io_pop(f, (const uint16_t[]){6}, 1);
	vq_push(&f->vq, 6, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, 5);
	check_used(f, 4, 6, 0);
	check_used(f, 5, SENT, SENT);
}

/* Non-zero lengths, writable buffers, out-of-order pushes: every entry written. */
static void t_inorder_no_batch(void)
{
	struct fx *f = io_new(0);
	const uint16_t h[3] = {2, 5, 7};

	io_pop(f, h, 3);
	vq_push(&f->vq, 2, 0);
	vq_push(&f->vq, 5, 10);
	vq_push(&f->vq, 7, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, 3);
	check_used(f, 0, 2, 0);
	check_used(f, 1, 5, 10);
	check_used(f, 2, 7, 0);
	/* Writable chains: their lengths matter, even when 0. */
	tr_desc(&f->r, 1, BUF, 0x100, VRING_DESC_F_WRITE, 0);
	io_pop(f, (const uint16_t[]){1, 0}, 2);
	vq_push(&f->vq, 1, 0);
	vq_push(&f->vq, 0, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, 5);
	check_used(f, 3, 1, 0);
	check_used(f, 4, 0, 0);
	/* Out of order (a device bug under IN_ORDER): written one by one, never merged. */
	io_pop(f, (const uint16_t[]){4, 3, 6}, 3);
	vq_push(&f->vq, 3, 0);
	vq_push(&f->vq, 4, 0);
	vq_push(&f->vq, 6, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, 8);
	check_used(f, 5, 3, 0);
	check_used(f, 6, 4, 0);
	check_used(f, 7, 6, 0);
	/* Back in order afterwards: batched again. */
	io_pop(f, (const uint16_t[]){2, 5}, 2);
	vq_push(&f->vq, 2, 0);
	vq_push(&f->vq, 5, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, 10);
	check_used(f, 0, 5, 0);
	check_used(f, 1, 5, 10); /* untouched */
}

/* The batch wraps the used ring (and the 16-bit index) in the middle. */
static void t_inorder_wrap(void)
{
	struct fx *f = io_new(65534); /* slot 6 */
	const uint16_t h[4] = {6, 7, 0, 1};

	io_pop(f, h, 4);
	for (int i = 0; i < 4; i++)
		vq_push(&f->vq, h[i], 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, 2);
	check_used(f, 6, 1, 0);
	check_used(f, 7, SENT, SENT);
	check_used(f, 0, SENT, SENT);
	check_used(f, 1, SENT, SENT);
	CHECK(f->vq.ready);
}

/* Rewind in the middle of a burst keeps the order: both halves batch. */
static void t_inorder_rewind(void)
{
	struct fx *f = io_new(0);
	const uint16_t h[4] = {0, 1, 2, 3};

	io_pop(f, h, 4);
	vq_rewind(&f->vq, h + 2, 2);
	vq_push(&f->vq, 0, 0);
	vq_push(&f->vq, 1, 0);
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, 2);
	check_used(f, 0, 1, 0);
	check_used(f, 1, SENT, SENT);
	for (int i = 2; i < 4; i++) {
		CHECK_EQ(vq_pop(&f->vq, &f->c), 0);
		CHECK_EQ(f->c.id, h[i]);
		vq_push(&f->vq, f->c.id, 0);
	}
	vq_flush(&f->vq);
	CHECK_EQ(f->r.used->idx, 4);
	check_used(f, 2, 3, 0);
	check_used(f, 3, SENT, SENT);
}

TEST_MAIN(TEST(t_pop_push_flush_exact), TEST(t_used_wrap), TEST(t_avail_jump),
	  TEST(t_avail_backwards), TEST(t_head_out_of_range), TEST(t_duplicate_head),
	  TEST(t_rewind), TEST(t_notify_flags), TEST(t_notify_event_idx),
	  TEST(t_set_notification), TEST(t_config_rejects), TEST(t_start_checks),
	  TEST(t_stop_base_and_restart), TEST(t_broken_isolated), TEST(t_reset_closes_fds),
	  TEST(t_remap), TEST(t_vdev_lifecycle), TEST(t_vdev_gen_wrap), TEST(t_vdev_full),
	  TEST(t_vdev_mem_and_api), TEST(t_mem_swap_under_traffic),
	  TEST(t_inorder_batch), TEST(t_inorder_no_batch), TEST(t_inorder_wrap),
	  TEST(t_inorder_rewind))
