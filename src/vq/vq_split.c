/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue format: ring translation, avail consumption, the shadow
 * used ring and notification suppression (flags or EVENT_IDX).
 *
 * Security model: avail->idx, avail->ring[], avail->flags and used_event are
 * guest-written. avail->idx is read once per batch (acquire); a jump of more
 * than the ring size breaks the ring. Every head is checked < size and
 * against the in-flight bitmap (a head given twice breaks the ring). Guest
 * indices are masked with size - 1 before use; used_event only feeds the
 * modulo-2^16 comparison and never indexes anything. Ring indices and flags
 * are accessed with single 16-bit loads/stores.
 */
#include <errno.h>
#include <string.h>

#include "util/fd.h"
#include "vq/vq.h"
#include "vq/chain_walk.h"
#include "vq/vq_guest.h"
#include "vq/vq_rules.h"

/* The 16-bit event fields that live after the rings (EVENT_IDX). */
static inline uint16_t *used_event_ptr(const struct vq *vq)
{
	return &vq->avail->ring[vq->size];
}

static inline uint16_t *avail_event_ptr(const struct vq *vq)
{
	return (uint16_t *)(void *)&vq->used->ring[vq->size];
}

/*
 * Translate the desc / avail / used areas of a split ring from vq->addr
 * through vq->mem (called at start and on every memory change). Indices are
 * not touched. Returns 0 or -EFAULT.
 */
int vq_split_start(struct vq *vq)
{
	uint64_t n = vq->size, ev = vq->event_idx ? 2 : 0;
	void *desc, *avail, *used;

	desc = vq_ring_part(vq->mem, vq->addr.desc, 16 * n, 16);
	avail = vq_ring_part(vq->mem, vq->addr.avail, 6 + 2 * n + ev, 2);
	used = vq_ring_part(vq->mem, vq->addr.used, 6 + 8 * n + ev, 4);
	if (!desc || !avail || !used)
		return -EFAULT;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	return 0;
}

uint16_t vq_split_avail_count(struct vq *vq)
{
	/* Acquire pairs with the guest's write barrier before its avail->idx store. */
	uint16_t idx = load_acquire(&vq->avail->idx);
	uint16_t n = (uint16_t)(idx - vq->last_avail_idx);

	if (unlikely(n > vq->size)) {
		vq_mark_broken(vq, "avail index jumped past the ring size");
		return 0;
	}
	vq->shadow_avail_idx = idx;
	return n;
}

int vq_split_pop(struct vq *vq, struct vq_chain *c, enum vq_pop_mode mode)
{
	uint16_t head;
	int rc;

	if (vq->last_avail_idx == vq->shadow_avail_idx && vq_split_avail_count(vq) == 0)
		return unlikely(vq->broken) ? -EIO : -ENOENT;
	/* Ordered after the acquire load of avail->idx in vq_split_avail_count(). */
	head = READ_ONCE(vq->avail->ring[vq->last_avail_idx & (vq->size - 1)]);
	if (unlikely(head >= vq->size)) {
		vq_mark_broken(vq, "avail head out of range");
		return -EIO;
	}
	head = (uint16_t)index_nospec(head, vq->size);
	if (unlikely(vqr_inflight_test(vq->inflight, head))) {
		vq_mark_broken(vq, "avail head already in flight");
		return -EIO;
	}
	/* Fetch once: one copy of the head descriptor decides the fast path. */
	struct vring_desc d;
	memcpy(&d, &vq->desc[head], sizeof(d));
	CHAIN_LAUNDER(d);
	if (likely(chain_one_fast(vq->mem, &vq->mem_hint, d.addr, d.len, d.flags, c))) {
		c->id = head;
		rc = 0;
	} else {
		rc = chain_walk_split(vq->mem, &vq->mem_hint, vq->desc, vq->size, head,
				      vq->indirect, mode, c);
		if (unlikely(rc == -EIO)) {
			vq_mark_broken(vq, "invalid descriptor chain");
			return -EIO;
		}
	}
	vqr_inflight_set(vq->inflight, head);
	vq->pk_state[head] = vqr_split_rec(vq->last_avail_idx, c->nin);
	vq->last_avail_idx++;
	return rc; /* 0 or -E2BIG (consumed: the caller pushes it with len 0) */
}

void vq_split_rewind(struct vq *vq, const uint16_t *ids, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++)
		if (likely(ids[i] < vq->size))
			vqr_inflight_clear(vq->inflight, ids[i]);
	vq->last_avail_idx = (uint16_t)(vq->last_avail_idx - n);
}

void vq_split_push(struct vq *vq, uint16_t id, uint32_t len)
{
	struct vring_used_elem *e;

	/* Device bugs only (ids come from pop): never let them overrun the shadow. */
	if (unlikely(id >= vq->size || vq->shadow_count >= vq->size))
		return;
	vqr_inflight_clear(vq->inflight, id);
	if (vq->in_order)
		vqr_split_io_step(&vq->io_next, &vq->io_batch_ok,
				  vq->pk_state[index_nospec(id, vq->size)], len);
	e = &vq->shadow_used[vq->shadow_count++];
	e->id = id;
	e->len = len;
}

/*
 * Publish the shadowed entries. @wo is vq->wobs, a constant NULL in the
 * unobserved instance (vq_split_flush), so the seam adds no test there.
 */
static inline __attribute__((always_inline)) void
split_flush(struct vq *vq, const struct vq_write_observer *wo)
{
	uint16_t n = vq->shadow_count, size = vq->size;
	uint16_t start = vq->last_used_idx & (uint16_t)(size - 1);
	uint16_t first = MIN(n, (uint16_t)(size - start));

	if (!n)
		return;
	if (vq->in_order && vq->io_batch_ok && n > 1) {
		/*
		 * VIRTIO_F_IN_ORDER: one used entry at the batch's first slot with
		 * the id of its last buffer; used->idx skips the whole batch.
		 */
		vqg_used_elem(wo, &vq->used->ring[start], vq->shadow_used[n - 1].id, 0);
	} else {
		vqg_used_elems(wo, &vq->used->ring[start], vq->shadow_used, first);
		if (n > first)
			vqg_used_elems(wo, &vq->used->ring[0], vq->shadow_used + first,
				       (uint32_t)(n - first));
	}
	vq->io_batch_ok = true;
	vq->last_used_idx = (uint16_t)(vq->last_used_idx + n);
	vq->shadow_count = 0;
	/* Release pairs with the guest's read barrier after it loads used->idx. */
	vqg_used_idx(wo, &vq->used->idx, vq->last_used_idx);
}

void vq_split_flush(struct vq *vq)
{
	if (unlikely(vq->wobs)) {
		split_flush(vq, vq->wobs);
		vqg_commit(vq->wobs); /* the burst's writes are complete */
	} else {
		split_flush(vq, NULL);
	}
}

bool vq_split_need_notify(struct vq *vq)
{
	/*
	 * Full fence: our used->idx store must be visible before we read the
	 * guest's used_event / flags. Pairs with the guest's full barrier
	 * between writing used_event (or clearing NO_INTERRUPT) and re-reading
	 * used->idx.
	 */
	fence_full();
	if (vq->event_idx) {
		uint16_t old = vq->signalled_used, new_idx = vq->last_used_idx;
		bool valid = vq->signalled_used_valid;

		vq->signalled_used = new_idx;
		vq->signalled_used_valid = true;
		if (unlikely(!valid))
			return true;
		return vring_need_event(READ_ONCE(*used_event_ptr(vq)), new_idx, old);
	}
	return !(READ_ONCE(vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
}

bool vq_split_set_notification(struct vq *vq, bool enable)
{
	if (vq->event_idx) {
		if (enable)
			vqg_event16(vq->wobs, avail_event_ptr(vq), vq->last_avail_idx);
	} else {
		vqg_event16(vq->wobs, &vq->used->flags,
			    (uint16_t)(enable ? 0 : VRING_USED_F_NO_NOTIFY));
	}
	vq->notify_enabled = enable;
	if (!enable)
		return false;
	/*
	 * Full fence: the guest must see our request before we look for work.
	 * Pairs with the guest's full barrier between its avail->idx store and
	 * its read of used->flags / avail_event when deciding to kick.
	 */
	fence_full();
	return READ_ONCE(vq->avail->idx) != vq->last_avail_idx;
}
