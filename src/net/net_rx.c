/* SPDX-License-Identifier: MIT */
/*
 * Enqueue: host packets into the guest's receive vrings (even qids).
 *
 * Per packet: pop one descriptor chain (several with MRG_RXBUF), write the
 * virtio-net header and copy the packet data into the chain's writable
 * pieces, then record each chain as used with the bytes written. Used
 * entries are published and the guest notified once per burst.
 *
 * Security model: chains come translated and bounded from vq_pop(); every
 * write stays inside the pieces it returned. Chains the guest built wrongly
 * (readable parts, too short for the header) are returned used with length
 * 0 and counted as errors; chains are always completed in the order they
 * were made available (so a malformed one among the chains of a mergeable
 * packet returns the ones before it empty, and the packet starts again
 * after it). A packet that does not fit is handed back to the
 * caller with its chains rewound, never partially delivered. The only read
 * of a guest-writable buffer is net_hdr_put()'s compare of the header bytes
 * it is about to write (inside the checked piece); what it reads decides
 * whether a store happens, nothing else. Every store into guest memory goes
 * through the guest-write seam (vq/vq_guest.h) with the burst's observer.
 */
#include <errno.h>
#include <string.h>

#include "net/net.h"
#include "core/vdev.h"
#include "vq/vq.h"
#include "vq/vq_fast.h"

/* Write cursor over the writable pieces of one chain. */
struct dst_cur {
	const struct iovec *iov;
	const struct iovec *end;
	uint8_t *p;
	uint32_t left;
};

/* Read cursor over a packet chain, limited to pkt_len bytes. */
struct src_cur {
	const struct vhk_pkt *seg;
	const uint8_t *p;
	uint32_t left;	    /* bytes left in this segment */
	uint32_t remaining; /* bytes of the packet not yet copied */
	uint32_t pos;	    /* offset of p in the packet */
};

/* Two checksum bytes to store at packet offset @off while copying. */
struct csum_patch {
	uint32_t off;
	uint8_t bytes[2];
};

/* Burst-wide constants and scratch, hoisted out of the packet loop. */
struct rx_burst {
	struct vq *vq;
	const struct vq_write_observer *wo; /* vq->wobs, loaded once per burst */
	uint64_t features;
	uint32_t hdr_len;
	uint32_t max_bufs; /* 1, or NET_RX_MAX_BUFS with MRG_RXBUF */
	uint32_t pushed;   /* used entries recorded in this burst */
	uint64_t errors;
	uint8_t hdr_plain[NET_HDR_MRG_LEN]; /* header of a packet without offloads */
	uint16_t ids[NET_RX_MAX_BUFS];
	uint32_t lens[NET_RX_MAX_BUFS];
	struct vq_chain chain; /* its pieces in iov */
	struct iovec iov[NET_MAX_IOV];
};

/* Point @d at the writable pieces of @c. */
static inline void dst_init(struct dst_cur *d, const struct vq_chain *c)
{
	d->iov = &c->iov[c->nout];
	d->end = d->iov + c->nin;
	d->p = d->iov->iov_base;
	d->left = (uint32_t)d->iov->iov_len; /* a piece is < 2^32 bytes */
}

/* Move to the next non-empty piece; false when the chain is full. */
static inline bool dst_next(struct dst_cur *d)
{
	while (++d->iov < d->end) {
		if (d->iov->iov_len) {
			d->p = d->iov->iov_base;
			d->left = (uint32_t)d->iov->iov_len;
			return true;
		}
	}
	d->left = 0;
	return false;
}

/*
 * Write the @len-byte header; @nb receives where num_buffers (bytes 10 and
 * 11) landed. The chain holds at least @len writable bytes (checked).
 */
static void dst_write_hdr(const struct vq_write_observer *wo, struct dst_cur *d,
			  const uint8_t *hdr, uint32_t len, uint8_t *nb[2])
{
	if (likely(d->left >= len)) {
		net_hdr_put(wo, d->p, hdr, len);
		nb[0] = d->p + 10;
		nb[1] = d->p + 11;
		d->p += len;
		d->left -= len;
		return;
	}
	for (uint32_t i = 0; i < len; i++) {
		if (d->left == 0 && !dst_next(d))
			return; /* not reached: the chain was checked to hold len */
		if (i >= 10)
			nb[i - 10] = d->p;
		vqg_buf_put8(wo, d->p++, hdr[i]);
		d->left--;
	}
}

/* Store the patch bytes that fall inside [pos, pos + n) at @dst. */
static void csum_patch_apply(const struct vq_write_observer *wo, const struct csum_patch *pt,
			     uint32_t pos, uint8_t *dst, uint32_t n)
{
	for (uint32_t i = 0; i < 2; i++) {
		uint32_t o = pt->off + i;
		if (o >= pos && o - pos < n)
			vqg_buf_put8(wo, &dst[o - pos], pt->bytes[i]);
	}
}

/* Copy packet bytes until the chain or the packet ends; returns bytes written. */
static uint32_t copy_data(const struct vq_write_observer *wo, struct dst_cur *d,
			  struct src_cur *s, const struct csum_patch *pt)
{
	uint32_t written = 0;

	while (s->remaining) {
		if (unlikely(s->left == 0)) {
			s->seg = s->seg->next;
			if (unlikely(!s->seg)) {
				s->remaining = 0; /* chain shorter than pkt_len */
				break;
			}
			s->p = vhk_pkt_data(s->seg);
			s->left = MIN(s->seg->data_len, s->remaining);
			continue;
		}
		if (unlikely(d->left == 0) && !dst_next(d))
			break;
		uint32_t n = MIN(s->left, d->left);
		vqg_buf_copy(wo, d->p, s->p, n);
		if (unlikely(pt != NULL))
			csum_patch_apply(wo, pt, s->pos, d->p, n);
		d->p += n;
		d->left -= n;
		s->p += n;
		s->left -= n;
		s->pos += n;
		s->remaining -= n;
		written += n;
	}
	return written;
}

/*
 * Return a malformed chain used and empty. The @nbufs chains popped for the
 * packet before it go first, used and empty too: chains are completed in
 * the order they were made available (VIRTIO_F_IN_ORDER depends on it), so
 * the packet starts again in the chains after the malformed one.
 */
static void chain_reject(struct rx_burst *b, uint32_t nbufs, uint16_t id)
{
	for (uint32_t i = 0; i < nbufs; i++)
		vq_push(b->vq, b->ids[i], 0);
	vq_push(b->vq, id, 0);
	b->pushed += nbufs + 1;
	b->errors++;
}

/*
 * Place one packet, general case (any chain shape, several chains with
 * MRG_RXBUF, chained packets, checksum patch). @first is the result of the
 * vq_pop() rx_one() already did into b->chain. Same returns as rx_one().
 * A malformed chain among the chains of a packet sends the packet back to
 * its start (chain_reject), so the chains popped for an unfinished packet
 * are always the last popped and go back with one rewind.
 */
static int rx_one_slow(struct rx_burst *b, const struct vhk_pkt *p, const uint8_t *hdr,
		       const struct csum_patch *pt, int first)
{
	struct vq_chain *c = &b->chain;
	const struct src_cur start = {p, vhk_pkt_data(p), MIN(p->data_len, p->pkt_len),
				      p->pkt_len, 0};
	struct src_cur s = start;
	const uint64_t need = (uint64_t)b->hdr_len + p->pkt_len;
	uint8_t *nb[2] = {NULL, NULL};
	uint32_t nbufs = 0;

	for (;;) {
		int r = first <= 0 ? first : vq_pop(b->vq, c);
		first = 1; /* pop for real from the second chain on */
		if (unlikely(r < 0)) {
			if (r == -ENOENT)
				goto err_no_space;
			if (r != -E2BIG)
				return -EIO;
		}
		if (unlikely(r == -E2BIG || c->nout || c->in_len == 0 ||
			     (nbufs == 0 && c->in_len < b->hdr_len))) {
			chain_reject(b, nbufs, c->id);
			nbufs = 0;
			s = start;
			nb[0] = nb[1] = NULL;
			continue;
		}
		b->ids[nbufs] = c->id;
		if (b->max_bufs == 1 && c->in_len < need) {
			nbufs++;
			goto err_no_space;
		}
		struct dst_cur d;
		dst_init(&d, c);
		if (d.left == 0)
			dst_next(&d);
		uint32_t len = 0;
		if (nbufs == 0) {
			dst_write_hdr(b->wo, &d, hdr, b->hdr_len, nb);
			len = b->hdr_len;
		}
		len += copy_data(b->wo, &d, &s, pt);
		b->lens[nbufs++] = len;
		if (s.remaining == 0)
			break;
		if (nbufs == b->max_bufs)
			goto err_no_space;
	}

	if (nbufs > 1 && nb[0] && nb[1]) {
		/* num_buffers, little-endian; the guest reads it after used->idx. */
		vqg_buf_put8(b->wo, nb[0], (uint8_t)nbufs);
		vqg_buf_put8(b->wo, nb[1], (uint8_t)(nbufs >> 8));
	}
	for (uint32_t i = 0; i < nbufs; i++)
		vq_push(b->vq, b->ids[i], b->lens[i]);
	b->pushed += nbufs;
	return 0;

err_no_space:
	vq_rewind(b->vq, b->ids, (uint16_t)nbufs);
	return -ENOSPC;
}

/*
 * Place one packet. @hdr is its header (num_buffers = 1 when 12 bytes).
 * Fast path: the packet is one segment and the next chain is one writable
 * piece that holds header and packet; anything else goes to rx_one_slow()
 * with the chain already popped. Returns 0, -ENOSPC (does not fit: chains
 * given back), -EIO (ring broken).
 */
static inline int rx_one(struct rx_burst *b, const struct vhk_pkt *p, const uint8_t *hdr,
			 const struct csum_patch *pt)
{
	struct vq *vq = b->vq;
	struct vq_one o;

	if (unlikely(!vq_pop_one(vq, &o)))
		return rx_one_slow(b, p, hdr, pt, vq_pop(vq, &b->chain));
	const uint32_t hlen = b->hdr_len, plen = p->pkt_len;
	if (likely(o.write && !pt && p->data_len >= plen && o.len >= (uint64_t)hlen + plen)) {
		net_hdr_put(b->wo, o.base, hdr, hlen);
		vqg_buf_copy(b->wo, o.base + hlen, vhk_pkt_data(p), plen);
		vq_push_fast(vq, o.id, hlen + plen);
		b->pushed++;
		return 0;
	}
	vq_one_to_chain(&o, &b->chain);
	return rx_one_slow(b, p, hdr, pt, 0);
}

/* Header for a packet with offload metadata; -EINVAL if the guest cannot take it. */
static cold_path int rx_offload_hdr(struct rx_burst *b, const struct vhk_pkt *p, uint8_t *hdr,
				    struct csum_patch *pt, bool *use_patch)
{
	struct net_hdr h;
	uint16_t csum = 0;
	uint32_t off = 0;
	int r = net_hdr_from_pkt(p, b->features, &h, &csum, &off);

	if (r < 0)
		return r;
	h.num_buffers = 1;
	net_hdr_encode(&h, hdr, b->hdr_len);
	*use_patch = r == 1;
	if (r == 1) {
		pt->off = off;
		memcpy(pt->bytes, &csum, 2);
	}
	return 0;
}

/* Fill the burst constants from the ring's negotiated features. */
static void burst_init(struct rx_burst *b, struct vq *vq)
{
	struct net_hdr h = {.num_buffers = 1};

	b->vq = vq;
	b->wo = vq->wobs;
	b->features = vq->features;
	b->hdr_len = net_hdr_len(b->features);
	b->max_bufs = (b->features & (1ull << VHK_NET_F_MRG_RXBUF)) ? NET_RX_MAX_BUFS : 1;
	b->pushed = 0;
	b->errors = 0;
	b->chain.iov = b->iov;
	b->chain.iov_max = NET_MAX_IOV;
	net_hdr_encode(&h, b->hdr_plain, NET_HDR_MRG_LEN);
}

/* Add @n to a statistics counter read by other threads. */
static inline void stat_add(uint64_t *ctr, uint64_t n)
{
	store_relaxed(ctr, load_relaxed(ctr) + n);
}

#define RX_FAST_CHUNK 32u

/*
 * Prefetch @o's buffer for a packet placed after an @hlen-byte header: the
 * header line for reading (net_hdr_put() may leave it unwritten, see
 * there), the first 64 bytes of packet data for writing (prefetchw: fetched
 * exclusive, no later upgrade). Measured in-run against prefetchw of the
 * first two lines: enqueue 90 -> 82 busy cycles per packet (64 B loop).
 */
static inline void rx_prefetch(const struct vq_one *o, uint32_t hlen)
{
	__builtin_prefetch(o->base, 0, 3);
	vqf_prefetch_w(o->base + hlen);
	vqf_prefetch_w(o->base + hlen + 63);
}

/*
 * Fast section of the packet loop: chains popped in bulk
 * (vq_pop_burst_one), and packets that are one segment without offload
 * metadata written straight into their chain's single writable piece when
 * header and packet fit. The buffers' addresses are known after the pop, so
 * they are prefetched two packets ahead.
 * Stops at the first packet or chain that needs the general path (the
 * chains popped for it and after it go back). Returns packets placed.
 * @wo is the burst's write observer; rx_fast() instantiates this with a
 * constant NULL for the common case, so the seam costs nothing per packet.
 */
static inline __attribute__((always_inline)) uint16_t
rx_fast_section(struct rx_burst *b, struct vhk_pkt **pkts, uint16_t count, uint64_t *bytes,
		const struct vq_write_observer *wo)
{
	struct vq *vq = b->vq;
	const uint32_t hlen = b->hdr_len;
	struct vq_one o[RX_FAST_CHUNK];
	uint16_t n = 0;

	while (n < count) {
		uint16_t want = (uint16_t)MIN((uint32_t)(count - n), RX_FAST_CHUNK);
		uint16_t k = vq_pop_burst_one(vq, o, want), i;
		if (k > 0)
			rx_prefetch(&o[0], hlen);
		if (k > 1)
			rx_prefetch(&o[1], hlen);
		for (i = 0; i < k; i++) {
			const struct vhk_pkt *p = pkts[n + i];
			if (unlikely(!p || (p->ol.flags | p->ol.gso_type) || p->data_len < p->pkt_len ||
				     !o[i].write || o[i].len < (uint64_t)hlen + p->pkt_len))
				break;
			if (i + 2 < k)
				rx_prefetch(&o[i + 2], hlen);
			const uint32_t plen = p->pkt_len;
			net_hdr_put(wo, o[i].base, b->hdr_plain, hlen);
			vqg_buf_copy(wo, o[i].base + hlen, vhk_pkt_data(p), plen);
			o[i].len = hlen + plen; /* used length, for the push below */
			*bytes += plen;
		}
		b->pushed += i;
		n = (uint16_t)(n + i);
		if (!vq_fast_section_end(vq, o, i, k, want))
			break;
	}
	return n;
}

/* rx_fast_section() with the observer hoisted out of the packet loop. */
static uint16_t rx_fast(struct rx_burst *b, struct vhk_pkt **pkts, uint16_t count,
			uint64_t *bytes)
{
	if (unlikely(b->wo))
		return rx_fast_section(b, pkts, count, bytes, b->wo);
	return rx_fast_section(b, pkts, count, bytes, NULL);
}

/* The packet loop; returns packets enqueued. */
static uint16_t rx_burst(struct rx_burst *b, struct vhk_pkt **pkts, uint16_t count)
{
	uint64_t bytes = 0;
	uint16_t n = rx_fast(b, pkts, count, &bytes);

	for (; n < count; n++) {
		const struct vhk_pkt *p = pkts[n];
		const uint8_t *hdr = b->hdr_plain;
		uint8_t hdr_ol[NET_HDR_MRG_LEN];
		struct csum_patch patch;
		bool use_patch = false;

		if (unlikely(!p))
			break;
		if (unlikely(p->ol.flags | p->ol.gso_type)) {
			if (rx_offload_hdr(b, p, hdr_ol, &patch, &use_patch) < 0) {
				b->errors++;
				break;
			}
			hdr = hdr_ol;
		}
		if (rx_one(b, p, hdr, use_patch ? &patch : NULL) < 0)
			break;
		bytes += p->pkt_len;
	}
	struct vq_stats *st = &b->vq->stats;
	stat_add(&st->packets, n);
	stat_add(&st->bytes, bytes);
	stat_add(&st->drops, (uint64_t)(count - n));
	if (b->errors)
		stat_add(&st->errors, b->errors);
	return n;
}

VHK_EXPORT uint16_t vhk_net_enqueue_burst(int vid, uint16_t qid, struct vhk_pkt **pkts,
					  uint16_t count)
{
	struct rx_burst b;

	if (unlikely(!pkts || count == 0 || (qid & 1)))
		return 0;
	struct vdev *d = vdev_get(vid);
	if (unlikely(!d))
		return 0;
	struct vq *vq = vdev_vq(d, qid);
	if (unlikely(!vq || !vq_enter(vq)))
		return 0;
	if (unlikely(!vdev_still(d, vid))) { /* released and reused meanwhile */
		vq_leave(vq);
		return 0;
	}

	burst_init(&b, vq);
	uint16_t n = rx_burst(&b, pkts, count);
	if (b.pushed)
		vq_flush(vq);
	else if (unlikely(b.wo))
		vqg_commit(b.wo); /* a packet that did not fit wrote some bytes: no flush ends them */
	vq_leave(vq);
	return n;
}
