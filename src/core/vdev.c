/* SPDX-License-Identifier: MIT */
/*
 * Device slot registry and the device-wide operations on vqs and memory.
 *
 * Slots are allocated on first use and never freed, nor are the vqs hanging
 * off them (see vdev.h): a stale vid or vq pointer always points at valid
 * memory. The registry mutex serialises the control plane (alloc, release,
 * memory swaps, region queries); the datapath only does atomic loads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fd.h"
#include "core/vdev.h"

#define VDEV_GEN_MASK ((1u << 20) - 1)

static struct vdev *_Atomic g_slots[VDEV_MAX_SLOTS];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* Clear every per-device field of a free slot (vid, slot, gen and vqs stay). */
static void vdev_clear(struct vdev *d)
{
	d->features = 0;
	d->protocol_features = 0;
	d->max_vrings = 0;
	d->nr_vrings = 0;
	d->mem = NULL;
	d->log = NULL;
	d->log_fd = -1;
	d->status = 0;
	d->running = false;
	memset(d->path, 0, sizeof(d->path));
	d->app_ctx = NULL;
	memset(&d->ops, 0, sizeof(d->ops));
	store_relaxed(&d->dev_priv, NULL); /* vhk_dev_set_priv() may race with release */
	d->sock = NULL;
	d->oo = NULL;
	d->owner = NULL;
	memset(&d->cb, 0, sizeof(d->cb));
	d->offered = 0;
	d->pf_handshake = d->dev_inited = d->announced = false;
	d->destroy_req = d->closing = false;
	d->pending_mem = NULL;
	d->ops_outstanding = d->ops_posted = 0;
	d->ops_err = 0;
	d->op_start_ring = -1;
	memset(d->rings, 0, sizeof(d->rings));
	memset(&d->inflight, 0, sizeof(d->inflight));
}

/* Find a free slot (allocating its struct on first use); lock held. */
static struct vdev *slot_take(void)
{
	for (uint32_t i = 0; i < VDEV_MAX_SLOTS; i++) {
		struct vdev *d = atomic_load_explicit(&g_slots[i], memory_order_relaxed);
		if (d && atomic_load_explicit(&d->vid, memory_order_relaxed) < 0)
			return d;
		if (!d) {
			d = calloc(1, sizeof(*d));
			if (!d)
				return NULL;
			atomic_init(&d->vid, -1);
			d->slot = i;
			atomic_store_explicit(&g_slots[i], d, memory_order_release);
			return d;
		}
	}
	return NULL;
}

int vdev_alloc(struct vdev **ret)
{
	struct vdev *d;
	int rc = 0;

	pthread_mutex_lock(&g_lock);
	d = slot_take();
	if (!d) {
		/* Either every slot is in use or calloc failed for a new one. */
		rc = atomic_load_explicit(&g_slots[VDEV_MAX_SLOTS - 1], memory_order_relaxed)
			     ? -ENOSPC
			     : -ENOMEM;
		goto out_unlock;
	}
	vdev_clear(d);
	d->gen = (d->gen + 1) & VDEV_GEN_MASK;
	if (d->gen == 0)
		d->gen = 1;
	/* Publish last: a lookup that matches the vid sees a cleared device. */
	atomic_store_explicit(&d->vid, (int)((d->gen << VDEV_SLOT_BITS) | d->slot),
			      memory_order_release);
	*ret = d;
out_unlock:
	pthread_mutex_unlock(&g_lock);
	return rc;
}

void vdev_release(struct vdev *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&g_lock);
	if (atomic_load_explicit(&d->vid, memory_order_relaxed) < 0)
		goto out_unlock; /* already released */
	/* Invalidate the handle first so new lookups fail while we tear down. */
	atomic_store_explicit(&d->vid, -2, memory_order_release);
	for (uint32_t i = 0; i < VHK_MAX_QUEUES; i++) {
		struct vq *vq = atomic_load_explicit(&d->vqs[i], memory_order_relaxed);
		if (!vq)
			continue;
		vq_quiesce(vq);
		vq_reset(vq);
		vq_unquiesce(vq);
	}
	mem_table_free(d->mem);
	mem_log_free(d->log); /* after the vqs: they published their last bits into it */
	fd_close(&d->log_fd);
	vdev_inflight_unmap(&d->inflight); /* after the vqs that used it were reset */
	vdev_clear(d);
	/* The slot is free again (it may be reused under a new generation). */
	atomic_store_explicit(&d->vid, -1, memory_order_release);
out_unlock:
	pthread_mutex_unlock(&g_lock);
}

struct vdev *vdev_get(int vid)
{
	struct vdev *d;
	uint32_t slot;

	if (unlikely(vid < 0))
		return NULL;
	slot = (uint32_t)index_nospec((uint32_t)vid & (VDEV_MAX_SLOTS - 1), VDEV_MAX_SLOTS);
	d = atomic_load_explicit(&g_slots[slot], memory_order_acquire);
	if (unlikely(!d || atomic_load_explicit(&d->vid, memory_order_acquire) != vid))
		return NULL;
	return d;
}

struct vq *vdev_vq_get_or_alloc(struct vdev *d, uint32_t qid)
{
	struct vq *vq;

	if (qid >= VHK_MAX_QUEUES)
		return NULL;
	qid = (uint32_t)index_nospec(qid, VHK_MAX_QUEUES);
	vq = atomic_load_explicit(&d->vqs[qid], memory_order_relaxed);
	if (!vq) {
		vq = calloc(1, sizeof(*vq));
		if (!vq)
			return NULL;
		vq_init(vq, qid);
		vq->features = d->features; /* SET_VRING_NUM needs the layout */
		vq_set_log(vq, d->log);     /* not started: logs buffers only with LOG_ALL */
		/* Release: a datapath lookup sees an initialised vq. */
		atomic_store_explicit(&d->vqs[qid], vq, memory_order_release);
	}
	if (d->nr_vrings < qid + 1) {
		pthread_mutex_lock(&g_lock);
		d->nr_vrings = qid + 1;
		pthread_mutex_unlock(&g_lock);
	}
	return vq;
}

void vdev_set_mem(struct vdev *d, struct mem_table *t)
{
	struct mem_table *old;

	pthread_mutex_lock(&g_lock);
	for (uint32_t i = 0; i < VHK_MAX_QUEUES; i++) {
		struct vq *vq = atomic_load_explicit(&d->vqs[i], memory_order_relaxed);
		if (vq)
			vq_quiesce(vq);
	}
	old = d->mem;
	d->mem = t;
	for (uint32_t i = 0; i < VHK_MAX_QUEUES; i++) {
		struct vq *vq = atomic_load_explicit(&d->vqs[i], memory_order_relaxed);
		if (!vq)
			continue;
		(void)vq_remap(vq, t); /* failure stops and breaks that ring */
		vq_unquiesce(vq);
	}
	pthread_mutex_unlock(&g_lock);
	/* No vq can reach the old table any more. */
	if (old != t)
		mem_table_free(old);
}

void vdev_set_log(struct vdev *d, struct mem_log *log)
{
	struct mem_log *old;

	pthread_mutex_lock(&g_lock);
	old = d->log;
	d->log = log;
	for (uint32_t i = 0; i < VHK_MAX_QUEUES; i++) {
		struct vq *vq = atomic_load_explicit(&d->vqs[i], memory_order_relaxed);
		if (!vq)
			continue;
		vq_quiesce(vq);
		vq_set_log(vq, log);
		vq_unquiesce(vq);
	}
	pthread_mutex_unlock(&g_lock);
	/* No vq can reach the old log any more. */
	if (old != log)
		mem_log_free(old);
}

void vdev_set_features(struct vdev *d, uint64_t features)
{
	const uint64_t log_all = 1ull << VHK_F_LOG_ALL;

	pthread_mutex_lock(&g_lock);
	d->features = features;
	pthread_mutex_unlock(&g_lock);
	for (uint32_t i = 0; i < VHK_MAX_QUEUES; i++) {
		struct vq *vq = atomic_load_explicit(&d->vqs[i], memory_order_relaxed);
		if (!vq)
			continue;
		if ((vq->features ^ features) & log_all) {
			vq_quiesce(vq);
			vq_set_features(vq, features);
			vq_unquiesce(vq);
		} else {
			vq->features = features;
		}
	}
}

void vdev_set_protocol_features(struct vdev *d, uint64_t pf)
{
	pthread_mutex_lock(&g_lock);
	d->protocol_features = pf;
	pthread_mutex_unlock(&g_lock);
}

void vdev_set_path(struct vdev *d, const char *path)
{
	pthread_mutex_lock(&g_lock);
	snprintf(d->path, sizeof(d->path), "%s", path);
	pthread_mutex_unlock(&g_lock);
}

struct vdev *vdev_query_begin(int vid)
{
	struct vdev *d;

	pthread_mutex_lock(&g_lock);
	d = vdev_get(vid);
	if (!d)
		pthread_mutex_unlock(&g_lock);
	return d;
}

void vdev_query_end(void)
{
	pthread_mutex_unlock(&g_lock);
}

VHK_EXPORT int vhk_dev_get_mem_table(int vid, struct vhk_mem_region *regions, uint32_t max)
{
	struct vdev *d;
	int n;

	if (max && !regions)
		return -EINVAL;
	/* Under the registry lock: the table cannot be swapped or freed meanwhile. */
	d = vdev_query_begin(vid);
	if (!d)
		return -ENODEV;
	const struct mem_table *t = d->mem;
	n = t ? (int)t->nregions : 0;
	for (uint32_t i = 0; t && i < t->nregions && i < max; i++) {
		memset(&regions[i], 0, sizeof(regions[i]));
		regions[i].guest_phys_addr = t->regions[i].gpa;
		regions[i].size = t->regions[i].size;
		regions[i].frontend_addr = t->regions[i].qva;
		regions[i].host_addr = t->regions[i].hva;
	}
	vdev_query_end();
	return n;
}
