/* SPDX-License-Identifier: MIT */
/*
 * Dequeue: guest packets from the transmit vrings (odd qids) into pool
 * buffers.
 *
 * Per chain: copy the virtio-net header out of guest memory (it may span
 * pieces), validate the private copy, then copy the packet into pool
 * buffers, chaining segments when one buffer is too small. Every consumed
 * chain is returned used with length 0; used entries are published and the
 * guest notified once per burst. After SEND_RARP the first packet of the
 * next burst is a RARP announcement for the guest's MAC.
 *
 * Security model: the header is fetched once into local memory and only the
 * copy is validated and used (net_hdr_validate_tx). Chains with writable
 * pieces or shorter than the header, oversized packets and bad headers are
 * consumed, counted as errors and never delivered. When the pool runs dry
 * the current chain is rewound, not lost. Chains are popped as
 * VQ_POP_DEV_READS: nothing here ever writes into a guest buffer, so the
 * WRITE flag inside an indirect table is ignored (DPDK virtio-user sets it
 * on its packed tables' header entry); ring descriptors keep the rule.
 */
#include <errno.h>
#include <string.h>

#include "net/net.h"
#include "core/vdev.h"
#include "vq/vq.h"
#include "vq/vq_fast.h"

#define RARP_FRAME_LEN 60u
#define ETH_P_RARP_BE  0x8035u

/* Read cursor over the readable pieces of a chain. */
struct src_iov {
	const struct iovec *iov;
	const struct iovec *end;
	const uint8_t *p;
	uint32_t left;
};

/* Write state of a packet chain being filled. */
struct pkt_wr {
	struct vhk_pkt *head;
	struct vhk_pkt *tail;
	struct vhk_pool *pool;
};

/* Burst-wide constants and scratch. */
struct tx_burst {
	struct vq *vq;
	struct vhk_pool *pool;
	uint64_t features;
	uint32_t hdr_len;
	uint32_t data_room;
	uint32_t fast_max; /* largest packet of the fast path: one buffer, <= NET_TX_MAX_PKT_LEN */
	uint32_t pushed;
	uint64_t errors;
	uint64_t bytes;
	struct vq_chain chain; /* its pieces in iov */
	struct iovec iov[NET_MAX_IOV];
};

/* Point @s at the readable pieces of @c. */
static inline void src_init(struct src_iov *s, const struct vq_chain *c)
{
	s->iov = c->iov;
	s->end = c->iov + c->nout;
	s->p = s->iov->iov_base;
	s->left = (uint32_t)s->iov->iov_len; /* a piece is < 2^32 bytes */
}

/* Move to the next piece; false at the end of the readable part. */
static inline bool src_next(struct src_iov *s)
{
	if (++s->iov >= s->end) {
		s->left = 0;
		return false;
	}
	s->p = s->iov->iov_base;
	s->left = (uint32_t)s->iov->iov_len;
	return true;
}

/* Copy exactly @n bytes out of guest memory; false if the chain is shorter. */
static bool src_read(struct src_iov *s, uint8_t *dst, uint32_t n)
{
	while (n) {
		if (s->left == 0) {
			if (!src_next(s))
				return false;
			continue;
		}
		uint32_t m = MIN(n, s->left);
		memcpy(dst, s->p, m);
		dst += m;
		n -= m;
		s->p += m;
		s->left -= m;
	}
	return true;
}

/* Append @n bytes to the packet, chaining new segments; 0 or -ENOBUFS. */
static int pkt_put(struct pkt_wr *w, const uint8_t *src, uint32_t n)
{
	while (n) {
		struct vhk_pkt *t = w->tail;
		uint32_t room = vhk_pkt_tailroom(t);
		if (unlikely(room == 0)) {
			struct vhk_pkt *seg;
			if (w->head->nb_segs == UINT16_MAX || !(seg = vhk_pkt_alloc(w->pool)))
				return -ENOBUFS;
			t->next = seg;
			w->tail = seg;
			w->head->nb_segs++;
			continue;
		}
		uint32_t m = MIN(n, room);
		memcpy(vhk_pkt_data(t) + t->data_len, src, m);
		t->data_len += m;
		w->head->pkt_len += m;
		src += m;
		n -= m;
	}
	return 0;
}

/* Undo a partial fill: free chained segments, empty the head. */
static void pkt_unfill(struct vhk_pkt *head)
{
	vhk_pkt_free(head->next);
	head->next = NULL;
	head->nb_segs = 1;
	head->data_len = 0;
	head->pkt_len = 0;
	memset(&head->ol, 0, sizeof(head->ol));
}

/* Build the RARP announcement for @mac in @w (a fresh packet). */
static int rarp_build(struct pkt_wr *w, const uint8_t mac[6])
{
	uint8_t f[RARP_FRAME_LEN];

	memset(f, 0, sizeof(f));
	memset(f, 0xff, 6);    /* broadcast destination */
	memcpy(f + 6, mac, 6); /* source: the guest */
	f[12] = ETH_P_RARP_BE >> 8;
	f[13] = ETH_P_RARP_BE & 0xff;
	f[15] = 1;		/* htype: Ethernet */
	f[16] = 0x08;		/* ptype: IPv4 */
	f[18] = 6;		/* hlen */
	f[19] = 4;		/* plen */
	f[21] = 3;		/* op: reverse request */
	memcpy(f + 22, mac, 6); /* sender hw; sender IP 0 */
	memcpy(f + 32, mac, 6); /* target hw; target IP 0 */
	return pkt_put(w, f, sizeof(f));
}

/* After SEND_RARP: store one announcement in *ret; 1 if stored, else 0. */
static cold_path int rarp_inject(struct vdev *d, struct vhk_pool *pool, struct vhk_pkt **ret)
{
	struct net_priv *np = net_priv_of_slot(d->slot);

	/* Acquire pairs with the release store in net_send_rarp(). */
	if (!atomic_exchange_explicit(&np->rarp_pending, false, memory_order_acquire))
		return 0;
	struct vhk_pkt *p = vhk_pkt_alloc(pool);
	struct pkt_wr w = {p, p, pool};
	if (!p || rarp_build(&w, np->mac) < 0) {
		vhk_pkt_free(p);
		atomic_store_explicit(&np->rarp_pending, true, memory_order_relaxed);
		return 0;
	}
	*ret = p;
	return 1;
}

/*
 * Copy the packet after the header into @p. Returns 0, -ENOBUFS (pool dry;
 * @p emptied again).
 */
static int copy_in(struct tx_burst *b, struct src_iov *s, struct vhk_pkt *p)
{
	struct pkt_wr w = {p, p, b->pool};

	do {
		if (s->left && pkt_put(&w, s->p, s->left) < 0) {
			pkt_unfill(p);
			return -ENOBUFS;
		}
	} while (src_next(s));
	return 0;
}

/* Consume a chain the guest built wrongly. */
static void chain_reject(struct tx_burst *b, uint16_t id)
{
	vq_push(b->vq, id, 0);
	b->pushed++;
	b->errors++;
}

/*
 * Take one chain into @p. Returns 1 (packet stored), 0 (chain consumed as an
 * error, try the next), -ENOENT (ring empty), -EIO (broken), -ENOBUFS (pool
 * dry, chain rewound).
 */
static int tx_one(struct tx_burst *b, struct vhk_pkt *p)
{
	struct vq_chain *c = &b->chain;
	uint8_t raw[NET_HDR_MRG_LEN];
	struct net_hdr h;
	struct src_iov s;

	struct vq_one o;
	int r = 0;

	if (likely(vq_pop_one(b->vq, &o))) {
		const uint32_t hlen = b->hdr_len;
		if (likely(!o.write && o.len >= NET_HDR_MRG_LEN && o.len - hlen <= b->fast_max)) {
			/* Fast path: one piece holding header and packet, one pool buffer. */
			const uint32_t plen = o.len - hlen;
			memcpy(raw, o.base, NET_HDR_MRG_LEN); /* fetch once */
			net_hdr_decode(raw, hlen, &h);
			if (unlikely(h.flags | h.gso_type | h.hdr_len)) {
				if (net_hdr_validate_tx(&h, plen, b->features) < 0) {
					chain_reject(b, o.id);
					return 0;
				}
				net_hdr_to_offload(&h, &p->ol);
			} /* else p->ol stays as allocated: all zero */
			vq_copy(vhk_pkt_data(p), o.base + hlen, plen);
			p->data_len = plen;
			p->pkt_len = plen;
			vq_push_fast(b->vq, o.id, 0);
			b->pushed++;
			b->bytes += plen;
			return 1;
		}
		vq_one_to_chain(&o, c);
	} else {
		r = vq_pop_mode(b->vq, c, VQ_POP_DEV_READS); /* transmit queues are only read */
	}
	if (unlikely(r < 0)) {
		if (r != -E2BIG)
			return r;
		chain_reject(b, c->id);
		return 0;
	}
	if (unlikely(c->nin || c->out_len < b->hdr_len ||
		     c->out_len - b->hdr_len > NET_TX_MAX_PKT_LEN))
		goto err_reject;
	uint32_t pkt_len = (uint32_t)(c->out_len - b->hdr_len);
	src_init(&s, c);
	if (likely(s.left >= NET_HDR_MRG_LEN)) {
		/* Fetch once: the guest may change its memory under us. */
		memcpy(raw, s.p, NET_HDR_MRG_LEN);
		s.p += b->hdr_len;
		s.left -= b->hdr_len;
	} else if (unlikely(!src_read(&s, raw, b->hdr_len))) {
		goto err_reject;
	}
	net_hdr_decode(raw, b->hdr_len, &h);
	if (unlikely(h.flags | h.gso_type | h.hdr_len) &&
	    net_hdr_validate_tx(&h, pkt_len, b->features) < 0)
		goto err_reject;
	/* Segments needed beyond the head; more than a chain holds is an error. */
	uint32_t extra = pkt_len > b->data_room ? (pkt_len - 1) / b->data_room : 0;
	if (unlikely(extra >= UINT16_MAX))
		goto err_reject;
	if (unlikely(extra && vhk_pool_avail(b->pool) < extra) || copy_in(b, &s, p) < 0) {
		vq_rewind(b->vq, &c->id, 1);
		return -ENOBUFS;
	}
	net_hdr_to_offload(&h, &p->ol);
	vq_push(b->vq, c->id, 0);
	b->pushed++;
	b->bytes += p->pkt_len;
	return 1;

err_reject:
	chain_reject(b, c->id);
	return 0;
}

/* Allocate up to @want packets, fewer if the pool runs low; returns the number. */
static uint32_t alloc_some(struct vhk_pool *pool, struct vhk_pkt **pkts, uint32_t want)
{
	if (likely(vhk_pkt_alloc_bulk(pool, pkts, want) == 0))
		return want;
	want = MIN(want, vhk_pool_avail(pool));
	if (want && vhk_pkt_alloc_bulk(pool, pkts, want) == 0)
		return want;
	return 0;
}

#define TX_FAST_CHUNK 32u

/* Prefetch (for reading) the first two lines of @o's buffer. */
static inline void tx_prefetch(const struct vq_one *o)
{
	__builtin_prefetch(o->base, 0, 3);
	__builtin_prefetch(o->base + 64, 0, 3);
}

/*
 * Fast section of the chain loop: chains popped in bulk (vq_pop_burst_one)
 * whose single readable piece holds header and packet and whose packet
 * fits one pool buffer are copied straight into @pkts (header fetched once
 * into a local, validated only when a field is non-zero; a bad header
 * consumes the chain as an error). Every chain taken goes back used with
 * length 0, in pop order. Buffers are prefetched two chains ahead.
 * Stops at the first chain that needs the general path (it and the chains
 * after it go back). *@tries counts the chains consumed; returns packets
 * stored.
 */
static uint16_t tx_fast(struct tx_burst *b, struct vhk_pkt **pkts, uint32_t nalloc,
			uint16_t avail, uint32_t *tries)
{
	struct vq *vq = b->vq;
	const uint32_t hlen = b->hdr_len, fast_max = b->fast_max;
	struct vq_one o[TX_FAST_CHUNK];
	uint8_t raw[NET_HDR_MRG_LEN];
	struct net_hdr h;
	uint16_t n = 0;

	while (n < nalloc && *tries < avail) {
		uint16_t want = (uint16_t)MIN(MIN(nalloc - n, avail - *tries), TX_FAST_CHUNK);
		uint16_t k = vq_pop_burst_one(vq, o, want), i;
		if (k > 0)
			tx_prefetch(&o[0]);
		if (k > 1)
			tx_prefetch(&o[1]);
		for (i = 0; i < k; i++) {
			if (unlikely(o[i].write || o[i].len < NET_HDR_MRG_LEN ||
				     o[i].len - hlen > fast_max))
				break;
			if (i + 2 < k)
				tx_prefetch(&o[i + 2]);
			struct vhk_pkt *p = pkts[n];
			const uint32_t plen = o[i].len - hlen;
			memcpy(raw, o[i].base, NET_HDR_MRG_LEN); /* fetch once */
			net_hdr_decode(raw, hlen, &h);
			if (unlikely(h.flags | h.gso_type | h.hdr_len)) {
				if (net_hdr_validate_tx(&h, plen, b->features) < 0) {
					b->errors++; /* consumed, pushed below */
					continue;
				}
				net_hdr_to_offload(&h, &p->ol);
			} /* else p->ol stays as allocated: all zero */
			vq_copy(vhk_pkt_data(p), o[i].base + hlen, plen);
			p->data_len = plen;
			p->pkt_len = plen;
			b->bytes += plen;
			n++;
		}
		for (uint16_t j = 0; j < i; j++)
			o[j].len = 0; /* used length of a transmit chain */
		b->pushed += i;
		*tries += i;
		if (!vq_fast_section_end(vq, o, i, k, want))
			break;
	}
	return n;
}

/* The chain loop over at most @avail chains; returns packets stored in @pkts. */
static uint16_t tx_burst(struct tx_burst *b, struct vhk_pkt **pkts, uint16_t count, uint16_t avail)
{
	uint32_t nalloc = alloc_some(b->pool, pkts, count);
	uint32_t tries = 0;
	uint16_t n = tx_fast(b, pkts, nalloc, avail, &tries);

	for (; tries < avail && n < nalloc; tries++) {
		int r = tx_one(b, pkts[n]);
		if (r < 0)
			break;
		n = (uint16_t)(n + r);
	}
	if (n < nalloc)
		vhk_pkt_free_bulk(pkts + n, nalloc - n);
	return n;
}

VHK_EXPORT uint16_t vhk_net_dequeue_burst(int vid, uint16_t qid, struct vhk_pool *pool,
					  struct vhk_pkt **pkts, uint16_t count)
{
	struct tx_burst b;
	uint16_t n = 0;

	if (unlikely(!pool || !pkts || count == 0 || !(qid & 1)))
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

	if (unlikely(atomic_load_explicit(&net_priv_of_slot(d->slot)->rarp_pending,
					  memory_order_relaxed)))
		n = (uint16_t)rarp_inject(d, pool, pkts);

	uint16_t avail = vq_avail_count_max(vq, (uint16_t)(count - n));
	uint16_t want = avail;
	if (want) {
		b.vq = vq;
		b.pool = pool;
		b.features = vq->features;
		b.hdr_len = net_hdr_len(b.features);
		b.data_room = vhk_pool_data_room(pool);
		b.fast_max = MIN(b.data_room, NET_TX_MAX_PKT_LEN);
		b.pushed = 0;
		b.errors = 0;
		b.bytes = 0;
		b.chain.iov = b.iov;
		b.chain.iov_max = NET_MAX_IOV;
		uint16_t got = tx_burst(&b, pkts + n, want, avail);
		if (b.pushed)
			vq_flush(vq);
		store_relaxed(&vq->stats.packets, load_relaxed(&vq->stats.packets) + got);
		store_relaxed(&vq->stats.bytes, load_relaxed(&vq->stats.bytes) + b.bytes);
		if (b.errors)
			store_relaxed(&vq->stats.errors,
				      load_relaxed(&vq->stats.errors) + b.errors);
		n = (uint16_t)(n + got);
	}
	vq_leave(vq);
	return n;
}
