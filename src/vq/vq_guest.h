/* SPDX-License-Identifier: MIT */
/*
 * The one seam where the library writes guest memory. Every store into a
 * guest page goes through one of the inline functions below:
 *
 *   buffers (VQ_WRITE_BUF)    vqg_buf_copy        packet data into a writable piece
 *                             vqg_buf_put_unless_equal  header words (net_hdr_put)
 *                             vqg_buf_put8        single bytes (num_buffers, the
 *                                                 checksum patch, split headers)
 *   split used ring           vqg_used_elems      shadowed used entries
 *     (VQ_WRITE_USED)         vqg_used_elem       the IN_ORDER batch entry
 *                             vqg_used_idx        used->idx (release)
 *   packed descriptor ring    vqg_desc_id_len     id and len of a used descriptor
 *     (VQ_WRITE_DESC)         vqg_desc_flags      its flags (release)
 *                             vqg_desc_used       all three, flags last (release)
 *   event suppression         vqg_event16         used->flags, avail_event, the
 *     (VQ_WRITE_EVENT)                            device event offset
 *                             vqg_event16_release the device event flags
 *
 * The seam is observable: a vq may carry a write observer (vq->wobs, NULL
 * normally), which the seam calls after each write with the host address
 * and length written and its kind. A write that is skipped
 * (vqg_buf_put_unless_equal finding the bytes already equal) is not
 * reported: nothing changed. Dirty logging for live migration is such an
 * observer (vq_log.h, installed by the vq while logging is on); tests
 * install theirs with vq_set_write_observer(). Bytes a device outside the
 * library wrote into a writable piece (the element API) are reported when
 * it completes the request (vqg_buf_app_wrote). An observer may batch:
 * vqg_commit() marks the end of a group of writes (every flush of used
 * entries ends with one).
 *
 * Every function takes the observer as its first argument, so a burst
 * loads vq->wobs once and hot loops can be instantiated with a constant
 * NULL (the test then folds away): see vq_packed_flush() and net_rx.c's
 * rx_fast(). Callers keep every bounds rule of their own: the seam writes
 * where it is told.
 *
 * Includes: util/compiler.h and the uapi ring layout only (no vq state).
 * Datapath owner (or the control thread with the vq quiesced).
 */
#ifndef VHK_VQ_VQ_GUEST_H
#define VHK_VQ_VQ_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <linux/virtio_ring.h>

#include "util/compiler.h"

/* What a guest write was. */
enum vq_write_kind {
	VQ_WRITE_BUF,   /* bytes into a device-writable buffer the guest offered */
	VQ_WRITE_USED,  /* split used ring: used entries, used->idx */
	VQ_WRITE_DESC,  /* packed descriptor ring: used write-back (id, len, flags) */
	VQ_WRITE_EVENT, /* event suppression: used->flags, avail_event, device event area */
};

/*
 * Called after each guest write of the vq it is installed on, on the thread
 * that wrote (the datapath owner, or the control thread for notification
 * changes): @hva is our address of the first byte written, @len > 0 bytes.
 * It must not write guest memory or call back into the vq.
 */
struct vq_write_observer {
	void (*write)(void *ctx, const void *hva, size_t len, enum vq_write_kind kind);
	void *ctx;
	/* May be NULL: the writes reported so far are complete (batching observers publish). */
	void (*commit)(void *ctx);
};

/* Report a write of @len bytes at @p (nothing when @wo is NULL). */
static inline void vqg_note(const struct vq_write_observer *wo, const void *p, size_t len,
			    enum vq_write_kind kind)
{
	if (unlikely(wo != NULL))
		wo->write(wo->ctx, p, len, kind);
}

/* The writes reported so far are complete (nothing when @wo is NULL). */
static inline void vqg_commit(const struct vq_write_observer *wo)
{
	if (unlikely(wo != NULL) && wo->commit)
		wo->commit(wo->ctx);
}

/*
 * @n bytes at @p, inside a writable piece of a request, were written by
 * the device outside the library (element API: the application), reported
 * when the request is completed. The seam does not write them itself.
 */
static inline void vqg_buf_app_wrote(const struct vq_write_observer *wo, const void *p,
				     size_t n)
{
	if (n)
		vqg_note(wo, p, n, VQ_WRITE_BUF);
}

/* ---- buffers ---- */

/*
 * Copy @n bytes between a packet buffer and guest memory (never
 * overlapping): 16..64 bytes, the common small-packet case, are two
 * overlapping fixed-size moves inlined here; everything else goes to
 * memcpy, whose vector / rep movsb variants win for larger sizes. Reading
 * guest memory uses it directly; writing goes through vqg_buf_copy().
 */
static inline void vq_copy(uint8_t *restrict dst, const uint8_t *restrict src, uint32_t n)
{
	if (n >= 16 && n <= 64) {
		if (n <= 32) {
			memcpy(dst, src, 16);
			memcpy(dst + n - 16, src + n - 16, 16);
		} else {
			memcpy(dst, src, 32);
			memcpy(dst + n - 32, src + n - 32, 32);
		}
		return;
	}
	memcpy(dst, src, n);
}

/* Copy @n bytes of packet data from host memory into a guest buffer. */
static inline void vqg_buf_copy(const struct vq_write_observer *wo, uint8_t *restrict dst,
				const uint8_t *restrict src, uint32_t n)
{
	vq_copy(dst, src, n);
	vqg_note(wo, dst, n, VQ_WRITE_BUF);
}

/*
 * Store the @n (2, 4 or 8: a constant after inlining) bytes at @src to the
 * guest buffer at @dst unless they are already equal. The load reads the
 * writable buffer the caller checked; it only decides whether to store.
 */
static inline __attribute__((always_inline)) void
vqg_buf_put_unless_equal(const struct vq_write_observer *wo, uint8_t *dst, const uint8_t *src,
			 uint32_t n)
{
	uint64_t g = 0, h = 0;

	memcpy(&g, dst, n);
	memcpy(&h, src, n);
	if (g != h) {
		memcpy(dst, src, n);
		vqg_note(wo, dst, n, VQ_WRITE_BUF);
	}
}

/* Store one byte into a guest buffer. */
static inline void vqg_buf_put8(const struct vq_write_observer *wo, uint8_t *dst, uint8_t v)
{
	*dst = v;
	vqg_note(wo, dst, 1, VQ_WRITE_BUF);
}

/* ---- split used ring ---- */

/* Copy @n shadowed used entries to the used ring at @dst (one contiguous run). */
static inline void vqg_used_elems(const struct vq_write_observer *wo, struct vring_used_elem *dst,
				  const struct vring_used_elem *src, uint32_t n)
{
	memcpy(dst, src, (size_t)n * sizeof(*dst));
	if (n)
		vqg_note(wo, dst, (size_t)n * sizeof(*dst), VQ_WRITE_USED);
}

/* Write one used entry (the IN_ORDER batch entry). */
static inline void vqg_used_elem(const struct vq_write_observer *wo, struct vring_used_elem *dst,
				 uint32_t id, uint32_t len)
{
	WRITE_ONCE(dst->id, id);
	WRITE_ONCE(dst->len, len);
	vqg_note(wo, dst, sizeof(*dst), VQ_WRITE_USED);
}

/* Publish used->idx (release: the entries before it). */
static inline void vqg_used_idx(const struct vq_write_observer *wo, uint16_t *idx, uint16_t v)
{
	store_release(idx, v);
	vqg_note(wo, idx, sizeof(*idx), VQ_WRITE_USED);
}

/* ---- packed descriptor ring ---- */

/* Write id and len of the used descriptor @d (bytes 8..13: len, then id). */
static inline void vqg_desc_id_len(const struct vq_write_observer *wo,
				   struct vring_packed_desc *d, uint16_t id, uint32_t len)
{
	WRITE_ONCE(d->id, id);
	WRITE_ONCE(d->len, len);
	vqg_note(wo, &d->len, sizeof(d->len) + sizeof(d->id), VQ_WRITE_DESC);
}

/* Write the flags of the used descriptor @d (release: its id and len first). */
static inline void vqg_desc_flags(const struct vq_write_observer *wo, struct vring_packed_desc *d,
				  uint16_t flags)
{
	store_release(&d->flags, flags);
	vqg_note(wo, &d->flags, sizeof(d->flags), VQ_WRITE_DESC);
}

/* vqg_desc_id_len() then vqg_desc_flags(), reported as one write of bytes 8..15. */
static inline void vqg_desc_used(const struct vq_write_observer *wo, struct vring_packed_desc *d,
				 uint16_t id, uint32_t len, uint16_t flags)
{
	WRITE_ONCE(d->id, id);
	WRITE_ONCE(d->len, len);
	store_release(&d->flags, flags);
	vqg_note(wo, &d->len, sizeof(d->len) + sizeof(d->id) + sizeof(d->flags), VQ_WRITE_DESC);
}

/* ---- event suppression ---- */

/* A 16-bit word of an event area (single store). */
static inline void vqg_event16(const struct vq_write_observer *wo, uint16_t *p, uint16_t v)
{
	WRITE_ONCE(*p, v);
	vqg_note(wo, p, sizeof(*p), VQ_WRITE_EVENT);
}

/* The same with release ordering (the packed device event flags, after the offset). */
static inline void vqg_event16_release(const struct vq_write_observer *wo, uint16_t *p,
				       uint16_t v)
{
	store_release(p, v);
	vqg_note(wo, p, sizeof(*p), VQ_WRITE_EVENT);
}

#endif
