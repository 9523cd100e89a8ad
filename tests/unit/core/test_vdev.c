/* SPDX-License-Identifier: MIT */
/*
 * The device registry of the core layer (core/vdev.h): slots and
 * generations, per-vq state allocation, the memory table a device owns and
 * its swap under a running datapath, and the public queries on a device
 * whose vq runs on a ring written with the harness's raw writers.
 */
#include <pthread.h>
#include <stdlib.h>

#include "util/fd.h"
#include "core/vdev.h"
#include "unit_vq.h"

#define MB  0x100000ull
#define BUF 0x20000ull

/*
 * Fixture (unit_vq.h): 2 regions of 1 MiB, a split ring of 8 at 0x1000
 * started on the fixture's own vq, every descriptor i a writable 256-byte
 * buffer at BUF + i * 0x100, call and err eventfds.
 */
static struct uvq_fx *fx_new(void)
{
	struct uvq_fx *f = uvq_fx_new(8, 0, 0);

	for (uint16_t i = 0; i < 8; i++)
		gvq_raw_desc(f->q, i, BUF + i * 0x100u, 0x100, VRING_DESC_F_WRITE, 0);
	return f;
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
	vdev_set_features(d, F_EVENT_IDX);
	CHECK_EQ(vq->features, F_EVENT_IDX);
	vdev_release(d);
	CHECK(vdev_get(vid) == NULL);
	CHECK(vq->call_fd == -1 && !vq->num_set); /* reset, memory still valid */
	vdev_release(d);			  /* twice is harmless */
	CHECK_EQ(vdev_alloc(&d2), 0);
	CHECK(d2 == d); /* same slot, new generation */
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
	struct uvq_fx *f = fx_new();
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
	vdev_set_mem(d, f->t); /* the device now owns the table */
	f->t = NULL;
	CHECK_EQ(vq_start(vq, d->mem, 0), 0);
	vq_set_enabled(vq, true);
	vq_set_kick_fd(vq, dup(kick));
	vq_set_call_fd(vq, dup(f->call_fd));
	CHECK_EQ(vhk_dev_get_mem_table(vid, mr, 4), 2);
	CHECK_EQ(mr[1].guest_phys_addr, MB);
	CHECK_EQ(mr[1].frontend_addr, MB + UVQ_QVA_OFF);
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
	CHECK_EQ(f->q->used->flags, VRING_USED_F_NO_NOTIFY);
	CHECK_EQ(vhk_vq_set_notification(vid, 0, true), -EAGAIN);
	CHECK_EQ(vhk_vq_wait_kick(vid, 1, 0), 0);
	CHECK_EQ(fd_eventfd_write(kick), 0);
	CHECK_EQ(vhk_vq_wait_kick(vid, 1, 1000), 1);
	CHECK_EQ(vhk_vq_wait_kick(vid, 1, 0), 0); /* consumed */
	CHECK_EQ(vq->stats.kicks, 1);
	CHECK_EQ(vhk_vq_notify(vid, 1), 1);
	CHECK_EQ(efd_count(f->call_fd), 1);
	f->q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	CHECK_EQ(vhk_vq_notify(vid, 1), 0);
	/* New memory without the ring: the started ring is stopped and broken. */
	struct mem_table *t;
	CHECK_EQ(gmem_table(f->m, 1, 1, &t), 0);
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
	struct uvq_fx *f;
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
		gvq_raw_push(s->f->q, next);
		int rc = vq_pop(s->vq, &s->f->c);
		if (rc == 0) {
			memset(s->f->c.iov[0].iov_base, 0x11,
			       s->f->c.iov[0].iov_len); /* touch guest memory */
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
	struct uvq_fx *f = fx_new();
	struct swap_ctx s = {.f = f};
	struct vdev *d;
	pthread_t th;

	CHECK_EQ(vdev_alloc(&d), 0);
	s.vq = vdev_vq_get_or_alloc(d, 0);
	CHECK_EQ(vq_set_num(s.vq, 8), 0);
	CHECK_EQ(vq_set_addr(s.vq, &f->vq.addr), 0);
	vdev_set_mem(d, f->t);
	f->t = NULL;
	CHECK_EQ(vq_start(s.vq, d->mem, 0), 0);
	vq_set_enabled(s.vq, true);
	CHECK_EQ(pthread_create(&th, NULL, swap_datapath, &s), 0);
	for (int i = 0; i < 2000; i++) {
		struct mem_table *t;
		CHECK_EQ(gmem_table(f->m, 0, 2, &t), 0);
		vdev_set_mem(d, t); /* old mappings unmapped while traffic runs */
	}
	atomic_store(&s.stop, true);
	pthread_join(th, NULL);
	CHECK(s.vq->ready && !s.vq->broken);
	CHECK(s.done > 0);
	CHECK_EQ(f->q->used->idx, (uint16_t)s.done);
	vdev_release(d);
}

TEST_MAIN(TEST(t_vdev_lifecycle), TEST(t_vdev_gen_wrap), TEST(t_vdev_full),
	  TEST(t_vdev_mem_and_api), TEST(t_mem_swap_under_traffic))
