/* SPDX-License-Identifier: MIT */
/*
 * Dirty logging of a vq: the log as a write observer of the seam (see
 * vq_log.h for what is logged and when bits are published).
 *
 * Security model: the addresses logged are ours (the seam reports where
 * the library wrote, the element API where a request's writable pieces
 * are), turned into guest physical pages by the memory table or, for the
 * ring's own writes, by the frontend's log_guest_addr, which the control
 * side checked against the log (mem_log_covers_range). Every byte index is
 * bounded by the log size where it is written (mem_log_or): no address,
 * however wrong, reaches outside the log.
 */
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "vq/vq.h"

#define VQ_ADDR_F_LOG (1u << VHOST_VRING_F_LOG)

/* Publish the pending byte (one atomic OR), if any. */
static inline void log_publish(struct vq_log *lg)
{
	if (lg->pend_mask) {
		mem_log_or(lg->log, lg->pend_byte, lg->pend_mask);
		lg->pend_mask = 0;
		lg->ors++;
	}
}

void vq_log_commit(void *ctx)
{
	log_publish(&((struct vq *)ctx)->log);
}

/* Pending bit of page @page: ORed into the pending byte, or that byte published first. */
static inline void log_page(struct vq_log *lg, uint64_t page)
{
	uint64_t byte = page >> 3;
	uint8_t bit = (uint8_t)(1u << (page & 7));

	if (likely(lg->pend_mask && byte == lg->pend_byte)) {
		lg->pend_mask |= bit;
		return;
	}
	log_publish(lg);
	lg->pend_byte = byte;
	lg->pend_mask = bit;
}

/* Mark the pages of guest physical [@gpa, @gpa + @len), @len > 0, pending. */
static inline void log_gpa(struct vq_log *lg, uint64_t gpa, uint64_t len)
{
	uint64_t page = gpa >> MEM_LOG_PAGE_SHIFT;
	/* Pages after the first, without computing gpa + len (it may wrap). */
	uint64_t more = ((gpa & ((1u << MEM_LOG_PAGE_SHIFT) - 1)) + (len - 1)) >> MEM_LOG_PAGE_SHIFT;

	if (likely(more == 0)) { /* a write inside one page: the common case */
		log_page(lg, page);
		return;
	}
	for (uint64_t i = 0; i <= more; i++, page++) {
		uint64_t byte = page >> 3;
		uint8_t bit = (uint8_t)(1u << (page & 7));
		if (lg->pend_mask && byte == lg->pend_byte) {
			lg->pend_mask |= bit;
			continue;
		}
		log_publish(lg);
		lg->pend_byte = byte;
		lg->pend_mask = bit;
	}
}

/* log_hva() outside the cached region: look it up in the table, cache it. */
static void log_hva_slow(struct vq *vq, const uint8_t *hva, uint64_t len)
{
	struct vq_log *lg = &vq->log;

	while (len) {
		uint64_t gpa, n = len;
		if (unlikely(!mem_hva_to_gpa(vq->mem, hva, &gpa, &n, &lg->hint)))
			return; /* not guest memory: nothing of the guest's to log */
		const struct mem_region *r = &vq->mem->regions[lg->hint];
		lg->span_hva = (uintptr_t)r->hva;
		lg->span_size = r->size;
		lg->span_gpa = r->gpa;
		log_gpa(lg, gpa, n);
		hva += n;
		len -= n;
	}
}

/*
 * Mark the pages of our address range [@hva, @hva + @len) through the
 * memory table; the region of the last translation is cached (the span is
 * dropped whenever the table changes: vq_log_refresh).
 */
static inline void log_hva(struct vq *vq, const uint8_t *hva, uint64_t len)
{
	struct vq_log *lg = &vq->log;
	uint64_t off = (uintptr_t)hva - lg->span_hva;

	if (likely(off < lg->span_size && len <= lg->span_size - off))
		log_gpa(lg, lg->span_gpa + off, len);
	else
		log_hva_slow(vq, hva, len);
}

/* A write of the ring's used side (split used ring, packed device event area). */
static void log_ring(struct vq *vq, const uint8_t *hva, uint64_t len)
{
	struct vq_log *lg = &vq->log;
	uint64_t off = (uintptr_t)hva - (uintptr_t)lg->ring_hva;

	if (likely(off < lg->ring_len && len <= lg->ring_len - off))
		log_gpa(lg, lg->ring_gpa + off, len);
	else
		log_hva(vq, hva, len);
}

/* The observer: log the write if its kind is logged now, then forward it. */
static void log_write(void *ctx, const void *hva, size_t len, enum vq_write_kind kind)
{
	struct vq *vq = ctx;
	struct vq_log *lg = &vq->log;

	if (kind == VQ_WRITE_BUF) {
		if (lg->all)
			log_hva(vq, hva, len);
	} else if (kind == VQ_WRITE_DESC) {
		if (lg->ring) { /* at the descriptor ring's own GPA */
			uint64_t off = (uintptr_t)hva - (uintptr_t)lg->desc_hva;
			if (likely(off < lg->desc_len && len <= lg->desc_len - off))
				log_gpa(lg, lg->desc_gpa + off, len);
			else
				log_hva(vq, hva, len);
		}
	} else if (lg->ring) {
		log_ring(vq, hva, len);
		if (kind == VQ_WRITE_EVENT)
			log_publish(lg); /* not part of a flush: publish now */
	}
	if (lg->ext)
		lg->ext->write(lg->ext->ctx, hva, len, kind);
}

/* The observer's commit: publish, then let the forwarded observer commit too. */
static void log_commit(void *ctx)
{
	struct vq *vq = ctx;

	log_publish(&vq->log);
	if (vq->log.ext && vq->log.ext->commit)
		vq->log.ext->commit(vq->log.ext->ctx);
}

void vq_log_init(struct vq *vq)
{
	vq->log.obs.write = log_write;
	vq->log.obs.commit = log_commit;
	vq->log.obs.ctx = vq;
}

/* Bytes of the ring's used side that log_guest_addr stands for, in a layout. */
static uint64_t ring_log_len_of(bool packed, bool event_idx, uint16_t size)
{
	if (packed)
		return sizeof(struct vring_packed_desc_event);
	return 6 + 8ull * size + (event_idx ? 2 : 0);
}

/* The same for the layout the ring was started with. */
static uint64_t ring_log_len(const struct vq *vq)
{
	return ring_log_len_of(vq->packed, vq->event_idx, vq->size);
}

bool vq_log_ring_fits(const struct vq *vq, const struct vq_addr *a, uint64_t features,
		      const struct mem_log *log)
{
	if (!(a->flags & VQ_ADDR_F_LOG) || !log || !vq->num_set)
		return true;
	uint64_t len = ring_log_len_of(features & (1ull << VIRTIO_F_RING_PACKED),
				       features & (1ull << VIRTIO_RING_F_EVENT_IDX), vq->size);
	return mem_log_covers_range(log, a->log, len);
}

void vq_log_refresh(struct vq *vq)
{
	struct vq_log *lg = &vq->log;

	log_publish(lg);
	lg->all = lg->log && (vq->features & (1ull << VHOST_F_LOG_ALL));
	lg->ring = lg->log && (vq->addr.flags & VQ_ADDR_F_LOG) && vq->started;
	lg->ring_hva = NULL;
	lg->ring_len = 0;
	lg->ring_gpa = 0;
	lg->desc_hva = NULL;
	lg->desc_len = 0;
	lg->desc_gpa = 0;
	lg->span_size = 0; /* the table may have changed */
	if (lg->ring && vq->packed) {
		uint64_t len = 16ull * vq->size, gpa, n = len;
		uint32_t hint = 0;
		/* vq_ring_part() put the whole ring in one region. */
		if (mem_hva_to_gpa(vq->mem, vq->pdesc, &gpa, &n, &hint) && n == len) {
			lg->desc_hva = (const uint8_t *)vq->pdesc;
			lg->desc_len = len;
			lg->desc_gpa = gpa;
		}
	}
	if (lg->ring) {
		uint64_t len = ring_log_len(vq);
		lg->ring_hva = vq->packed ? (const uint8_t *)vq->dev_event : (const uint8_t *)vq->used;
		/* Checked by the control side; a log address the log lacks goes through the table. */
		if (mem_log_covers_range(lg->log, vq->addr.log, len)) {
			lg->ring_len = len;
			lg->ring_gpa = vq->addr.log;
		}
	}
	lg->hint = 0;
	vq->wobs = (lg->all || lg->ring) ? &lg->obs : lg->ext;
}

void vq_set_log(struct vq *vq, const struct mem_log *log)
{
	log_publish(&vq->log); /* into the log the bits were meant for */
	vq->log.log = log;
	vq_log_refresh(vq);
}

void vq_set_features(struct vq *vq, uint64_t features)
{
	vq->features = features;
	vq_log_refresh(vq);
}
