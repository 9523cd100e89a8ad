/* SPDX-License-Identifier: MIT */
/*
 * The element API of vhostkit/vhk_vq.h: devices pop requests and push
 * completions through the library's own ring walkers (vq_pop, vq_push,
 * vq_flush, vq_rewind of vq/vq.h). Every call is one short burst between
 * vq_enter() and vq_leave(), as the net device's bursts are: the control
 * thread never changes a ring or the memory under it.
 *
 * What the public contract adds to vq.h is kept here, per queue, in
 * struct vq_api (owned like the vq's datapath state: only by the thread
 * inside the vq):
 *  - the writable length of every request in flight, so a push can never
 *    report more bytes than the guest gave (device bugs must not reach the
 *    guest as a lie in the used ring);
 *  - which request was popped last and where the ring stood after it, for
 *    vhk_vq_unpop();
 *  - for a device that offers VHOST_F_LOG_ALL (live migration), the
 *    writable pieces of every request in flight: the application writes
 *    them, the library cannot see it, so vhk_vq_push() reports the first
 *    len bytes of them to the guest-write seam (vq_guest.h), whose dirty
 *    log marks their pages. An application that pushes cannot forget to
 *    log. They are kept from the pop on, whether or not the frontend logs
 *    yet: logging may start while the request is in flight.
 * Whether an id is in flight is the vq's own in-flight bitmap (set by
 * vq_pop, cleared by vq_push and vq_rewind, reset by vq_start): a push of
 * an id that is not in flight is refused before it reaches the ring.
 *
 * With inflight tracking (INFLIGHT_SHMFD and a region from the frontend,
 * vq->ifl set while the ring runs) pops, pushes, unpops and flushes go
 * through vq/vq_inflight.h instead, which records them in the region and
 * returns the requests a previous process left unfinished first.
 */
#include <errno.h>
#include <stdlib.h>

#include "vhostkit/vhk_vq.h"
#include "core/vdev.h"
#include "vq/vq_guest.h"
#include "vq/vq_inflight.h"

#define API_NONE UINT32_MAX

/* One writable piece of a request in flight, kept for the dirty log. */
struct api_piece {
	uint8_t *base;
	uint32_t len;
	uint32_t next; /* the request's next piece, or the next free one; API_NONE ends */
};

/* Per id in flight. */
struct api_req {
	uint32_t in_len; /* writable bytes (push clamps to it) */
	uint32_t pieces; /* its first kept piece (index into pc), API_NONE if none */
};

struct vq_api {
	uint32_t cap;      /* entries of req (ring size when allocated) */
	uint16_t last_id;  /* id of the last successful pop */
	uint16_t last_pos; /* avail position right after it (see avail_pos()) */
	bool last_valid;   /* last_id may be given back with vhk_vq_unpop() */
	/*
	 * Pieces of the requests in flight: grown on demand (doubling), never
	 * shrunk; at most the pieces the application itself holds in its
	 * iovec arrays for the requests it has in flight.
	 */
	struct api_piece *pc;
	uint32_t pc_cap;
	uint32_t pc_free;   /* free list */
	struct api_req req[];
};

int vdev_enter_vq(int vid, uint16_t qid, struct vdev **ret_d, struct vq **ret_vq)
{
	struct vdev *d = vdev_get(vid);
	struct vq *vq;

	if (!d)
		return -ENODEV;
	if (qid >= VHK_MAX_QUEUES)
		return -EINVAL;
	vq = vdev_vq(d, qid);
	if (!vq || !vq_enter(vq))
		return -EAGAIN;
	if (unlikely(!vdev_still(d, vid))) {
		vq_leave(vq);
		return -ENODEV;
	}
	*ret_d = d;
	*ret_vq = vq;
	return 0;
}

/* Position of the next avail entry: split free-running index, packed position | wrap << 15. */
static inline uint16_t avail_pos(const struct vq *vq)
{
	return (uint16_t)vq_get_base(vq); /* started: the GET_VRING_BASE encoding, avail half */
}

/* Is @id (< size) popped and not pushed? The vq's own bitmap. */
static inline bool in_flight(const struct vq *vq, uint16_t id)
{
	return vq->inflight[id >> 6] & (1ull << (id & 63));
}

/* The queue's bookkeeping, (re)allocated for its current size; NULL on ENOMEM. */
static struct vq_api *api_get(struct vdev *d, uint16_t qid, const struct vq *vq)
{
	struct vq_api *a = d->vq_api[qid], *n;

	if (likely(a && a->cap >= vq->size))
		return a;
	/* A new, larger ring: nothing can be in flight in the old array's terms. */
	n = calloc(1, sizeof(*n) + (size_t)vq->size * sizeof(n->req[0]));
	if (!n)
		return NULL;
	n->cap = vq->size;
	n->pc_free = API_NONE;
	for (uint32_t i = 0; i < n->cap; i++)
		n->req[i].pieces = API_NONE;
	if (a)
		free(a->pc);
	free(a);
	d->vq_api[qid] = n;
	return n;
}

/* Double the piece store, the new entries free. 0 or -ENOMEM. */
static int pieces_grow(struct vq_api *a)
{
	uint32_t cap = a->pc_cap ? a->pc_cap * 2 : 64;
	struct api_piece *pc;

	if (cap <= a->pc_cap)
		return -ENOMEM;
	pc = realloc(a->pc, (size_t)cap * sizeof(*pc));
	if (!pc)
		return -ENOMEM;
	for (uint32_t i = a->pc_cap; i < cap; i++)
		pc[i].next = i + 1 < cap ? i + 1 : a->pc_free;
	a->pc_free = a->pc_cap;
	a->pc = pc;
	a->pc_cap = cap;
	return 0;
}

/*
 * Drop the pieces kept for @id; with @wo, first report the first @len
 * bytes of them as written by the application (the dirty log marks them).
 */
static void pieces_release(struct vq_api *a, uint16_t id, const struct vq_write_observer *wo,
			   uint32_t len)
{
	uint32_t p = a->req[id].pieces;

	a->req[id].pieces = API_NONE;
	while (p != API_NONE) {
		struct api_piece *pc = &a->pc[p];
		uint32_t next = pc->next, n = MIN(len, pc->len);
		if (wo)
			vqg_buf_app_wrote(wo, pc->base, n);
		len -= n;
		pc->next = a->pc_free;
		a->pc_free = p;
		p = next;
	}
}

/* Keep the writable pieces of the chain @c popped as @id. 0 or -ENOMEM (none kept). */
static int pieces_keep(struct vq_api *a, uint16_t id, const struct vq_chain *c)
{
	uint32_t last = API_NONE; /* an index: growing moves the array */

	for (uint32_t i = c->nout; i < c->nout + c->nin; i++) {
		if (a->pc_free == API_NONE && pieces_grow(a) < 0) {
			pieces_release(a, id, NULL, 0);
			return -ENOMEM;
		}
		uint32_t p = a->pc_free;
		a->pc_free = a->pc[p].next;
		a->pc[p].base = c->iov[i].iov_base;
		a->pc[p].len = (uint32_t)c->iov[i].iov_len; /* a piece is < 2^32 bytes */
		a->pc[p].next = API_NONE;
		if (last == API_NONE)
			a->req[id].pieces = p;
		else
			a->pc[last].next = p;
		last = p;
	}
	return 0;
}

/*
 * The popped chain as the caller sees it. The walker wrote the pieces into
 * the caller's iovecs itself (vq_pop into elem->iov); on -E2BIG the array
 * holds the first iov_max pieces, which the element does not describe.
 */
static void elem_fill(struct vhk_vq_elem *e, const struct vq_chain *c, int rc)
{
	e->id = c->id;
	e->out_len = c->out_len;
	e->in_len = c->in_len;
	e->out_num = rc ? 0 : c->nout;
	e->in_num = rc ? 0 : c->nin;
}

VHK_EXPORT void *vhk_vq_translate(int vid, uint16_t qid, uint64_t addr, uint64_t *len)
{
	struct vdev *d;
	struct vq *vq;
	void *p = NULL;

	if (!len)
		return NULL;
	if (vdev_enter_vq(vid, qid, &d, &vq) == 0) {
		/* Owned like a burst: no table swap or release can run meanwhile. */
		p = mem_gpa_to_hva(vq->mem, addr, len, &vq->mem_hint);
		vq_leave(vq);
	}
	if (!p)
		*len = 0;
	return p;
}

/* vq_flush(), through the inflight region when the queue tracks. */
static void api_flush(struct vq *vq)
{
	if (unlikely(vq->ifl))
		vq_ifl_flush(vq);
	else
		vq_flush(vq);
}

VHK_EXPORT int vhk_vq_pop(int vid, uint16_t qid, struct vhk_vq_elem *elem)
{
	struct vq_chain c;
	struct vq_api *a;
	struct vdev *d;
	struct vq *vq;
	int rc;

	if (!elem || !elem->iov || elem->iov_max == 0)
		return -EINVAL;
	rc = vdev_enter_vq(vid, qid, &d, &vq);
	if (rc)
		return rc;
	a = api_get(d, qid, vq);
	if (!a) {
		rc = -ENOMEM;
		goto out_leave;
	}
	c.iov = elem->iov;
	c.iov_max = elem->iov_max;
	rc = unlikely(vq->ifl) ? vq_ifl_pop(vq, &c, VQ_POP_RW) : vq_pop(vq, &c);
	if (rc == 0 || rc == -E2BIG) {
		/* Consumed either way: the caller owns c.id (< size, checked by the walker). */
		uint16_t id = (uint16_t)index_nospec(c.id, vq->size);
		pieces_release(a, id, NULL, 0); /* of a request a ring restart dropped */
		if (rc == 0 && c.nin && (d->offered & (1ull << VHK_F_LOG_ALL)) &&
		    pieces_keep(a, id, &c) < 0) {
			vq_rewind(vq, &id, 1); /* not lost: the next pop returns it again */
			rc = -ENOMEM;
			goto out_leave;
		}
		elem_fill(elem, &c, rc);
		a->req[id].in_len = rc ? 0 : (uint32_t)MIN(c.in_len, (uint64_t)UINT32_MAX);
		a->last_id = id;
		a->last_pos = avail_pos(vq);
		a->last_valid = true;
	}
out_leave:
	vq_leave(vq);
	return rc;
}

VHK_EXPORT int vhk_vq_unpop(int vid, uint16_t qid, const struct vhk_vq_elem *elem)
{
	struct vq_api *a;
	struct vdev *d;
	struct vq *vq;
	uint16_t id;
	int rc;

	if (!elem)
		return -EINVAL;
	rc = vdev_enter_vq(vid, qid, &d, &vq);
	if (rc)
		return rc;
	a = d->vq_api[qid];
	id = elem->id;
	/*
	 * Only the last pop, and only if the ring did not move since: the
	 * in-flight bit covers pushes and earlier unpops, the position covers
	 * later pops and a restarted ring (vq_start clears every bit).
	 */
	if (!a || !a->last_valid || a->last_id != id || id >= vq->size || !in_flight(vq, id) ||
	    a->last_pos != avail_pos(vq)) {
		rc = -EINVAL;
		goto out_leave;
	}
	if (unlikely(vq->ifl))
		vq_ifl_unpop(vq, id);
	else
		vq_rewind(vq, &id, 1);
	pieces_release(a, id, NULL, 0);
	a->last_valid = false;
out_leave:
	vq_leave(vq);
	return rc;
}

VHK_EXPORT int vhk_vq_push(int vid, uint16_t qid, uint16_t id, uint32_t len)
{
	struct vq_api *a;
	struct vdev *d;
	struct vq *vq;
	int rc;

	rc = vdev_enter_vq(vid, qid, &d, &vq);
	if (rc)
		return rc;
	a = d->vq_api[qid];
	if (!a || id >= vq->size || id >= a->cap || !in_flight(vq, id)) {
		rc = -EINVAL; /* a device bug: the ring stays as it is */
		goto out_leave;
	}
	id = (uint16_t)index_nospec(id, vq->size);
	if (len > a->req[id].in_len)
		len = a->req[id].in_len;
	/* The application wrote the first len bytes: the dirty log marks them (vq_log.h). */
	pieces_release(a, id, vq->wobs, len);
	/* A guest that re-posts heads can make a device hold more than size completions. */
	if (unlikely(vq->shadow_count >= vq->size))
		api_flush(vq);
	if (unlikely(vq->ifl))
		vq_ifl_push(vq, id, len);
	else
		vq_push(vq, id, len);
out_leave:
	vq_leave(vq);
	return rc;
}

VHK_EXPORT int vhk_vq_flush(int vid, uint16_t qid)
{
	struct vdev *d;
	struct vq *vq;
	int rc;

	rc = vdev_enter_vq(vid, qid, &d, &vq);
	if (rc)
		return rc;
	rc = vq->shadow_count;
	api_flush(vq); /* publishes, then notifies if the guest asked */
	vq_leave(vq);
	return rc;
}

VHK_EXPORT int vhk_vq_inflight_count(int vid, uint16_t qid)
{
	struct vdev *d;
	struct vq *vq;
	int rc, n = 0;

	rc = vdev_enter_vq(vid, qid, &d, &vq);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < (vq->size + 63u) / 64; i++)
		n += __builtin_popcountll(vq->inflight[i]);
	vq_leave(vq);
	return n;
}

VHK_EXPORT int vhk_vq_get_base(int vid, uint16_t qid, uint16_t *ret_last_avail,
			       uint16_t *ret_last_used)
{
	struct vdev *d;
	struct vq *vq;
	int rc;

	if (!ret_last_avail || !ret_last_used)
		return -EINVAL;
	rc = vdev_enter_vq(vid, qid, &d, &vq);
	if (rc)
		return rc;
	if (vq->packed) {
		uint32_t base = vq_get_base(vq);
		*ret_last_avail = (uint16_t)base;
		*ret_last_used = (uint16_t)(base >> 16);
	} else {
		*ret_last_avail = vq->last_avail_idx;
		*ret_last_used = vq->last_used_idx;
	}
	vq_leave(vq);
	return 0;
}

/* True if no request of @vq is in flight and no completion is shadowed. */
static bool vq_idle(const struct vq *vq)
{
	if (vq->shadow_count)
		return false;
	for (uint32_t i = 0; i < (vq->size + 63u) / 64; i++)
		if (vq->inflight[i])
			return false;
	return true;
}

VHK_EXPORT int vhk_vq_set_base(int vid, uint16_t qid, uint16_t last_avail, uint16_t last_used)
{
	struct vdev *d;
	struct vq *vq;
	int rc;

	rc = vdev_enter_vq(vid, qid, &d, &vq);
	if (rc)
		return rc;
	if (vq->packed ? (last_avail & 0x7fff) >= vq->size || (last_used & 0x7fff) >= vq->size
		       : (uint16_t)(last_avail - last_used) > vq->size) {
		rc = -EINVAL;
		goto out_leave;
	}
	if (!vq_idle(vq)) {
		rc = -EBUSY;
		goto out_leave;
	}
	if (vq->ifl) {
		rc = -ENOTSUP; /* the inflight region decides the positions at the next start */
		goto out_leave;
	}
	/*
	 * The positions as vq_start() derives them from a base (vq.c): the
	 * next pop re-reads the guest's index, the next flush writes at
	 * last_used, the next notification decision starts afresh, IN_ORDER
	 * batching starts at the new avail position.
	 */
	if (vq->packed) {
		vq->last_avail_idx = vq->shadow_avail_idx = last_avail & 0x7fff;
		vq->avail_wrap = last_avail >> 15;
		vq->last_used_idx = last_used & 0x7fff;
		vq->used_wrap = last_used >> 15;
	} else {
		vq->last_avail_idx = vq->shadow_avail_idx = last_avail;
		vq->last_used_idx = last_used;
	}
	vq->signalled_used_valid = false;
	vq->io_next = vq->last_avail_idx;
	vq->io_wrap = vq->avail_wrap;
	vq->io_batch_ok = true;
	if (d->vq_api[qid])
		d->vq_api[qid]->last_valid = false;
out_leave:
	vq_leave(vq);
	return rc;
}

/* What part of the ring @p .. @p + @len lies in (a write of the ring's used side), or BUF. */
static enum vq_write_kind ring_kind(const struct vq *vq, uintptr_t p, size_t len)
{
	uintptr_t used = (uintptr_t)vq->used, desc = (uintptr_t)vq->desc;
	uint64_t n = vq->size;

	if (vq->packed) {
		if (p - desc < 16 * n && len <= 16 * n - (p - desc))
			return VQ_WRITE_DESC;
		if (p - used < 4 && len <= 4 - (p - used))
			return VQ_WRITE_EVENT;
	} else if (p - used < 6 + 8 * n + 2 && len <= 6 + 8 * n + 2 - (p - used)) {
		return VQ_WRITE_USED;
	}
	return VQ_WRITE_BUF;
}

VHK_EXPORT int vhk_vq_log_write(int vid, uint16_t qid, const void *addr, size_t len)
{
	const uint8_t *p = addr;
	size_t left = len;
	uint32_t hint = 0;
	struct vdev *d;
	struct vq *vq;
	int rc;

	if (!addr || !len)
		return -EINVAL;
	rc = vdev_enter_vq(vid, qid, &d, &vq);
	if (rc)
		return rc;
	/* Guest memory only, every byte of it. */
	while (left) {
		uint64_t gpa, n = left;
		if (!mem_hva_to_gpa(vq->mem, p, &gpa, &n, &hint)) {
			rc = -EFAULT;
			goto out_leave;
		}
		p += n;
		left -= n;
	}
	vqg_note(vq->wobs, addr, len, ring_kind(vq, (uintptr_t)addr, len));
	vqg_commit(vq->wobs);
out_leave:
	vq_leave(vq);
	return rc;
}
