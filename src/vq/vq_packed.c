/* SPDX-License-Identifier: MIT */
/*
 * Packed virtqueue format (VIRTIO_F_RING_PACKED): ring translation, chain
 * consumption with the avail wrap counter, used write-back in batches and
 * event suppression (flags or EVENT_IDX descriptor events).
 *
 * Security model: descriptors and the driver event structure are
 * guest-written. Availability is decided from the descriptor flags (see
 * chain_packed.c). Buffer ids are checked < size and against the in-flight
 * bitmap (an id given twice breaks the ring); per id we remember how many
 * ring slots the chain took and where it started, so used write-back and
 * rewind never depend on guest data. The driver's event offset is only
 * compared, never used as an index. Positions (last_avail_idx,
 * last_used_idx) are ring positions < size with separate wrap counters.
 */
#include <errno.h>

#include <string.h>

#include "vq/vq.h"
#include "vq/chain_walk.h"

#define PK_F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define PK_F_USED (1u << VRING_PACKED_DESC_F_USED)
#define PK_WRAP_BIT (1u << VRING_PACKED_EVENT_F_WRAP_CTR)

static inline void pk_inflight_set(struct vq *vq, uint16_t id)
{
	vq->inflight[id >> 6] |= 1ull << (id & 63);
}

static inline void pk_inflight_clear(struct vq *vq, uint16_t id)
{
	vq->inflight[id >> 6] &= ~(1ull << (id & 63));
}

static inline bool pk_inflight_test(const struct vq *vq, uint16_t id)
{
	return vq->inflight[id >> 6] & (1ull << (id & 63));
}

/* Advance ring position *@pos (< size) by @n (<= size), flipping *@wrap on a lap. */
static inline void pk_advance(uint16_t size, uint16_t *pos, bool *wrap, uint16_t n)
{
	uint32_t p = (uint32_t)*pos + n;

	if (p >= size) {
		p -= size;
		*wrap = !*wrap;
	}
	*pos = (uint16_t)p;
}

/*
 * Translate the descriptor ring (16 * size, align 16), the driver event
 * area (4 bytes, SET_VRING_ADDR's avail) and the device event area (4
 * bytes, its used), align 4. Indices are not touched. 0 or -EFAULT.
 */
int vq_packed_start(struct vq *vq)
{
	void *desc, *drv, *dev;

	desc = vq_ring_part(vq->mem, vq->addr.desc, 16ull * vq->size, 16);
	drv = vq_ring_part(vq->mem, vq->addr.avail, 4, 4);
	dev = vq_ring_part(vq->mem, vq->addr.used, 4, 4);
	if (!desc || !drv || !dev)
		return -EFAULT;
	vq->pdesc = desc;
	vq->drv_event = drv;
	vq->dev_event = dev;
	/* For vhk_dev_get_vring_info(): the three areas, untyped. */
	vq->desc = desc;
	vq->avail = drv;
	vq->used = dev;
	return 0;
}

/* GET_VRING_BASE encoding of the current positions and wrap counters. */
uint32_t vq_packed_base(const struct vq *vq)
{
	uint32_t avail = vq->last_avail_idx | (vq->avail_wrap ? PK_WRAP_BIT : 0);
	uint32_t used = vq->last_used_idx | (vq->used_wrap ? PK_WRAP_BIT : 0);

	return avail | used << 16;
}

/*
 * Chains available: walk the flags from last_avail_idx counting chain ends,
 * at most size descriptors and @max chains. A chain whose end is not yet
 * published is not counted; malformed chains are left for vq_pop() to
 * reject.
 *
 * The common case — one-descriptor chains, a burst of them published — is
 * tested four flags at a time (a cache line of descriptors when the
 * position is aligned): four loads, one compare of all four against the
 * lap, one test for NEXT. Anything else (a chain, an unpublished slot, the
 * end of the ring) is left to the one-at-a-time loop, from where the
 * four-at-a-time test stopped (bench/callgrind, 64 B packed dequeue:
 * 236.6 -> 228.2 instructions per packet).
 */
uint16_t vq_packed_avail_count(struct vq *vq, uint16_t max)
{
	const uint16_t size = vq->size, lap = PK_F_AVAIL | PK_F_USED;
	const struct vring_packed_desc *ring = vq->pdesc;
	uint16_t pos = vq->last_avail_idx, n = 0;
	/* Available in lap w: AVAIL == w and USED != w, i.e. these two bits equal: */
	uint16_t want = vq->avail_wrap ? PK_F_AVAIL : PK_F_USED;

	/* pos + 4 <= size: the four never wrap; n counts chains = descriptors here. */
	while ((uint32_t)n + 4 <= max && (uint32_t)pos + 4 <= size) {
		/* Acquire pairs with the driver's release (or wmb) before its flags store. */
		uint16_t f0 = load_acquire(&ring[pos].flags), f1 = load_acquire(&ring[pos + 1].flags);
		uint16_t f2 = load_acquire(&ring[pos + 2].flags), f3 = load_acquire(&ring[pos + 3].flags);
		if ((((f0 & lap) ^ want) | ((f1 & lap) ^ want) | ((f2 & lap) ^ want) |
		     ((f3 & lap) ^ want) | ((f0 | f1 | f2 | f3) & VRING_DESC_F_NEXT)) != 0)
			break;
		n += 4;
		pos += 4;
	}
	if (pos == size) {
		pos = 0;
		want ^= lap; /* next lap */
	}
	/* Descriptors walked so far: n, one per chain counted above. */
	for (uint32_t i = n; i < size && n < max; i++) {
		uint16_t f = load_acquire(&ring[pos].flags);
		if ((f & lap) != want)
			break;
		n += !(f & VRING_DESC_F_NEXT); /* a chain ends here */
		if (unlikely(++pos == size)) {
			pos = 0;
			want ^= lap; /* next lap */
		}
	}
	return n;
}

int vq_packed_pop(struct vq *vq, struct vq_chain *c, enum vq_pop_mode mode)
{
	uint16_t pos = vq->last_avail_idx;
	bool wrap = vq->avail_wrap;
	struct vring_packed_desc d;
	int rc;

	/* Acquire pairs with the driver's release (or wmb) before its flags store. */
	uint16_t flags = load_acquire(&vq->pdesc[pos].flags);
	if (!!(flags & PK_F_AVAIL) != wrap || !!(flags & PK_F_USED) == wrap)
		return -ENOENT;
	/* Fetch once: the flags checked above and one copy of the rest decide the fast path. */
	memcpy(&d, &vq->pdesc[pos], sizeof(d));
	CHAIN_LAUNDER(d);
	if (likely(d.id < vq->size &&
		   chain_one_fast(vq->mem, &vq->mem_hint, d.addr, d.len, flags, c))) {
		c->id = d.id;
		rc = 0;
	} else {
		rc = chain_walk_packed(vq->mem, &vq->mem_hint, vq->pdesc, vq->size, pos, wrap,
				       vq->indirect, mode, c);
	}
	if (rc == -ENOENT)
		return -ENOENT;
	if (unlikely(rc == -EIO)) {
		vq_mark_broken(vq, "invalid packed descriptor chain");
		return -EIO;
	}
	uint16_t id = (uint16_t)index_nospec(c->id, vq->size); /* < size: checked by the walker */
	if (unlikely(pk_inflight_test(vq, id))) {
		vq_mark_broken(vq, "buffer id already in flight");
		return -EIO;
	}
	pk_inflight_set(vq, id);
	vq->pk_state[id] = c->ndesc | (c->nin ? 1u << 15 : 0) | (uint32_t)pos << 16 |
			   (wrap ? 1u << 31 : 0);
	pk_advance(vq->size, &vq->last_avail_idx, &vq->avail_wrap, c->ndesc);
	return rc; /* 0 or -E2BIG (consumed: the caller pushes it with len 0) */
}

/* The last @n popped chains go back: position of the oldest one, ids freed. */
void vq_packed_rewind(struct vq *vq, const uint16_t *ids, uint16_t n)
{
	if (!n || ids[0] >= vq->size)
		return;
	uint32_t st = vq->pk_state[index_nospec(ids[0], vq->size)];
	for (uint16_t i = 0; i < n; i++)
		if (likely(ids[i] < vq->size))
			pk_inflight_clear(vq, ids[i]);
	vq->last_avail_idx = (uint16_t)((st >> 16) & 0x7fff);
	vq->avail_wrap = st >> 31;
}

/*
 * Shadow a used entry. The slot count of the chain travels in bits 16..31
 * of the shadow id, captured now: a reused id cannot change it before flush.
 */
void vq_packed_push(struct vq *vq, uint16_t id, uint32_t len)
{
	struct vring_used_elem *e;

	/* Device bugs only (ids come from pop): never let them overrun the shadow. */
	if (unlikely(id >= vq->size || vq->shadow_count >= vq->size))
		return;
	pk_inflight_clear(vq, id);
	uint32_t st = vq->pk_state[index_nospec(id, vq->size)];
	if (vq->in_order) {
		/* Batchable only if popped in order, len 0 and no writable piece (len is moot). */
		if (((st >> 16) & 0x7fffu) != vq->io_next || (st >> 31) != vq->io_wrap ||
		    (st & 0x8000u) || len)
			vq->io_batch_ok = false;
		vq->io_next = (uint16_t)((st >> 16) & 0x7fffu);
		vq->io_wrap = st >> 31;
		pk_advance(vq->size, &vq->io_next, &vq->io_wrap, (uint16_t)(st & 0x7fffu));
	}
	e = &vq->shadow_used[vq->shadow_count++];
	e->id = id | (st & 0x7fffu) << 16;
	e->len = len;
}

/* Flags that mark a descriptor used in lap @wrap (WRITE when data was written). */
static inline uint16_t pk_used_flags(bool wrap, uint32_t len)
{
	return (uint16_t)((wrap ? PK_F_AVAIL | PK_F_USED : 0) | (len ? VRING_DESC_F_WRITE : 0));
}

/*
 * VIRTIO_F_IN_ORDER batch (every entry in order, len 0): one used
 * descriptor at the batch's first slot with the id of its last buffer; the
 * next used position skips the descriptors of the whole batch.
 */
static void vq_packed_flush_in_order(struct vq *vq)
{
	uint16_t n = vq->shadow_count, pos = vq->last_used_idx;
	bool wrap = vq->used_wrap;
	struct vring_packed_desc *d = &vq->pdesc[pos];

	for (uint16_t i = 0; i < n; i++)
		pk_advance(vq->size, &pos, &wrap, (uint16_t)(vq->shadow_used[i].id >> 16));
	WRITE_ONCE(d->id, (uint16_t)vq->shadow_used[n - 1].id);
	WRITE_ONCE(d->len, 0u);
	/* Release pairs with the driver's acquire of the flags: id and len first. */
	store_release(&d->flags, pk_used_flags(vq->used_wrap, 0));
	vq->last_used_idx = pos;
	vq->used_wrap = wrap;
	vq->shadow_count = 0;
	vq->io_batch_ok = true;
}

/*
 * Publish the shadowed entries as one batch in one pass: the first entry's
 * id and length, then id, length and (release) flags of every other entry,
 * the first entry's flags last, so the driver (which reads used entries in
 * ring order, starting at the first) sees the whole batch at once.
 */
void vq_packed_flush(struct vq *vq)
{
	const uint16_t n = vq->shadow_count, size = vq->size, first = vq->last_used_idx;
	const struct vring_used_elem *sh = vq->shadow_used;
	struct vring_packed_desc *ring = vq->pdesc;
	uint16_t pos = first;
	bool wrap = vq->used_wrap;

	if (!n)
		return;
	if (vq->in_order && vq->io_batch_ok && n > 1) {
		vq_packed_flush_in_order(vq);
		return;
	}
	WRITE_ONCE(ring[first].id, (uint16_t)sh[0].id);
	WRITE_ONCE(ring[first].len, sh[0].len);
	pk_advance(size, &pos, &wrap, (uint16_t)(sh[0].id >> 16));
	uint16_t lap = pk_used_flags(wrap, 0); /* used flags of the current lap */
	for (uint16_t i = 1; i < n; i++) {
		const struct vring_used_elem *e = &sh[i];
		struct vring_packed_desc *d = &ring[pos];
		WRITE_ONCE(d->id, (uint16_t)e->id);
		WRITE_ONCE(d->len, e->len);
		/* Release: this entry's id and len before its flags. */
		store_release(&d->flags, (uint16_t)(lap | (e->len ? VRING_DESC_F_WRITE : 0)));
		uint32_t p = (uint32_t)pos + (e->id >> 16); /* slots of the chain, <= size */
		if (p >= size) {
			p -= size;
			wrap = !wrap;
			lap ^= PK_F_AVAIL | PK_F_USED;
		}
		pos = (uint16_t)p;
	}
	/* Release pairs with the driver's acquire of the flags of its next used entry. */
	store_release(&ring[first].flags, pk_used_flags(vq->used_wrap, sh[0].len));
	vq->last_used_idx = pos;
	vq->used_wrap = wrap;
	vq->shadow_count = 0;
	vq->io_batch_ok = true;
}

/* Slots from (@from_pos, @from_wrap) forward to (@pos, @wrap); > size if behind. */
static inline uint32_t pk_dist(uint16_t size, uint16_t from_pos, bool from_wrap, uint32_t pos,
			       bool wrap)
{
	if (wrap == from_wrap)
		return pos >= from_pos ? pos - from_pos : UINT32_MAX;
	return pos < from_pos ? pos + size - from_pos : (pos == from_pos ? size : UINT32_MAX);
}

bool vq_packed_need_notify(struct vq *vq)
{
	uint16_t old = vq->signalled_used;
	bool old_wrap = vq->signalled_used_wrap, valid = vq->signalled_used_valid;

	/*
	 * Full fence: our used flags must be visible before we read the
	 * driver's event structure. Pairs with the driver's full barrier
	 * between writing its event structure and re-checking used entries.
	 */
	fence_full();
	uint16_t flags = READ_ONCE(vq->drv_event->flags);
	uint16_t off_wrap = READ_ONCE(vq->drv_event->off_wrap);

	vq->signalled_used = vq->last_used_idx;
	vq->signalled_used_wrap = vq->used_wrap;
	vq->signalled_used_valid = true;
	if (flags == VRING_PACKED_EVENT_FLAG_DISABLE)
		return false;
	if (flags != VRING_PACKED_EVENT_FLAG_DESC || !vq->event_idx || unlikely(!valid))
		return true;
	/* Notify if the event position lies in [old, new): what this flush used. */
	uint32_t span = pk_dist(vq->size, old, old_wrap, vq->last_used_idx, vq->used_wrap);
	uint32_t ev = pk_dist(vq->size, old, old_wrap, off_wrap & 0x7fffu, off_wrap & PK_WRAP_BIT);
	return ev < span;
}

bool vq_packed_set_notification(struct vq *vq, bool enable)
{
	uint16_t flags = VRING_PACKED_EVENT_FLAG_DISABLE;

	if (enable && vq->event_idx) {
		/* Kick us once the descriptor at our next position is published. */
		WRITE_ONCE(vq->dev_event->off_wrap,
			   (uint16_t)(vq->last_avail_idx | (vq->avail_wrap ? PK_WRAP_BIT : 0)));
		flags = VRING_PACKED_EVENT_FLAG_DESC;
	} else if (enable) {
		flags = VRING_PACKED_EVENT_FLAG_ENABLE;
	}
	store_release(&vq->dev_event->flags, flags);
	vq->notify_enabled = enable;
	if (!enable)
		return false;
	/*
	 * Full fence: the driver must see our request before we look for work.
	 * Pairs with the driver's full barrier between publishing a descriptor
	 * and reading our event structure when deciding to kick.
	 */
	fence_full();
	uint16_t f = load_acquire(&vq->pdesc[vq->last_avail_idx].flags);
	return !!(f & PK_F_AVAIL) == vq->avail_wrap && !!(f & PK_F_USED) != vq->avail_wrap;
}
