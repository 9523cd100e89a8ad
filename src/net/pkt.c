/* SPDX-License-Identifier: MIT */
/*
 * Packet buffer pools.
 *
 * Layout of one pool, a single anonymous mapping:
 *
 *   [struct vhk_pool][free stack: count pointers][element 0][element 1]...
 *
 * Each element is cache-line aligned: a struct vhk_pkt padded to a cache
 * line multiple, then headroom + data room (the buffer), padded again.
 * The free list is a LIFO stack of element pointers, so recently freed
 * (cache-warm) buffers are reused first.
 *
 * Single-threaded pools take no lock. VHK_POOL_MT pools take a tiny
 * test-and-set spinlock once per bulk call, never per packet.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>

#include "vhostkit/vhk_pkt.h"
#include "util/compiler.h"
#include "util/log.h"

#define CACHE_LINE   64u
#define POOL_MAX_BUF (1u << 20)
/* Segments collected before returning them to their pool in one call. */
#define FREE_BATCH 64u

struct vhk_pool {
	uint32_t count;
	uint32_t nfree;
	uint32_t flags;
	uint32_t data_room;
	uint32_t headroom;
	uint32_t elt_size;
	atomic_flag lock;
	size_t map_len;
	uint8_t *elts;		/* element 0 */
	struct vhk_pkt **stack; /* free stack, nfree valid entries */
};

/* Spin-wait hint for the pool lock. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ volatile("" ::: "memory");
#endif
}

static inline size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Take the pool lock if the pool is shared between threads. */
static inline void pool_lock(struct vhk_pool *pool)
{
	if (!(pool->flags & VHK_POOL_MT))
		return;
	while (atomic_flag_test_and_set_explicit(&pool->lock, memory_order_acquire))
		cpu_relax();
}

/* Release the pool lock taken by pool_lock(). */
static inline void pool_unlock(struct vhk_pool *pool)
{
	if (pool->flags & VHK_POOL_MT)
		atomic_flag_clear_explicit(&pool->lock, memory_order_release);
}

/* Put a segment back into its freshly allocated state. */
static inline void pkt_reset(struct vhk_pkt *p, uint32_t headroom)
{
	p->data_off = headroom;
	p->data_len = 0;
	p->pkt_len = 0;
	p->nb_segs = 1;
	p->port = 0;
	p->next = NULL;
	memset(&p->ol, 0, sizeof(p->ol));
	p->udata = 0;
}

/* Compute the mapping size of a pool; -EINVAL on overflow. */
static int pool_sizes(uint32_t count, uint32_t buf_len, size_t *elt, size_t *total, size_t *hdr)
{
	size_t e = align_up(sizeof(struct vhk_pkt), CACHE_LINE) + align_up(buf_len, CACHE_LINE);
	size_t h = align_up(sizeof(struct vhk_pool), CACHE_LINE) +
		   align_up((size_t)count * sizeof(struct vhk_pkt *), CACHE_LINE);
	size_t body;

	if (__builtin_mul_overflow(e, (size_t)count, &body) || add_overflows(body, h, total))
		return -EINVAL;
	*elt = e;
	*hdr = h;
	return 0;
}

VHK_EXPORT int vhk_pool_create(uint32_t count, uint32_t data_room, uint32_t headroom,
			       uint32_t flags, struct vhk_pool **ret_pool)
{
	size_t elt, total, hdr;
	uint64_t buf_len = (uint64_t)data_room + headroom;

	if (!ret_pool || count == 0 || data_room == 0 || buf_len > POOL_MAX_BUF ||
	    (flags & ~VHK_POOL_MT))
		return -EINVAL;
	if (pool_sizes(count, (uint32_t)buf_len, &elt, &total, &hdr) < 0)
		return -EINVAL;

	void *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -ENOMEM;

	struct vhk_pool *pool = base;
	pool->count = count;
	pool->flags = flags;
	pool->data_room = data_room;
	pool->headroom = headroom;
	pool->elt_size = (uint32_t)elt;
	atomic_flag_clear(&pool->lock);
	pool->map_len = total;
	pool->stack =
	    (struct vhk_pkt **)(void *)((uint8_t *)base + align_up(sizeof(*pool), CACHE_LINE));
	pool->elts = (uint8_t *)base + hdr;

	/* Push in reverse so that the first allocations walk memory upwards. */
	for (uint32_t i = 0; i < count; i++) {
		struct vhk_pkt *p = (struct vhk_pkt *)(void *)(pool->elts + (size_t)i * elt);
		p->buf = (uint8_t *)p + align_up(sizeof(*p), CACHE_LINE);
		p->buf_len = (uint32_t)buf_len;
		p->pool = pool;
		pkt_reset(p, headroom);
		pool->stack[count - 1 - i] = p;
	}
	pool->nfree = count;
	*ret_pool = pool;
	return 0;
}

VHK_EXPORT void vhk_pool_free(struct vhk_pool *pool)
{
	if (!pool)
		return;
	if (load_relaxed(&pool->nfree) != pool->count)
		log_warn("net: pool freed with %u of %u buffers still in use",
			 pool->count - load_relaxed(&pool->nfree), pool->count);
	munmap(pool, pool->map_len);
}

VHK_EXPORT uint32_t vhk_pool_avail(const struct vhk_pool *pool)
{
	return pool ? load_relaxed(&pool->nfree) : 0;
}

VHK_EXPORT uint32_t vhk_pool_data_room(const struct vhk_pool *pool)
{
	return pool ? pool->data_room : 0;
}

VHK_EXPORT int vhk_pkt_alloc_bulk(struct vhk_pool *pool, struct vhk_pkt **pkts, uint32_t n)
{
	if (unlikely(!pool || !pkts))
		return -EINVAL;
	if (unlikely(n == 0))
		return 0;

	pool_lock(pool);
	uint32_t nfree = pool->nfree;
	if (unlikely(nfree < n)) {
		pool_unlock(pool);
		return -ENOBUFS;
	}
	nfree -= n;
	memcpy(pkts, &pool->stack[nfree], (size_t)n * sizeof(*pkts));
	store_relaxed(&pool->nfree, nfree);
	pool_unlock(pool);

	for (uint32_t i = 0; i < n; i++)
		pkt_reset(pkts[i], pool->headroom);
	return 0;
}

VHK_EXPORT struct vhk_pkt *vhk_pkt_alloc(struct vhk_pool *pool)
{
	struct vhk_pkt *p;

	return vhk_pkt_alloc_bulk(pool, &p, 1) == 0 ? p : NULL;
}

/* Return @n segments that all belong to @pool. */
static void pool_put(struct vhk_pool *pool, struct vhk_pkt *const *segs, uint32_t n)
{
	pool_lock(pool);
	uint32_t nfree = pool->nfree;
	if (unlikely(n > pool->count - nfree)) {
		/* More returns than buffers out: a double free in the app. */
		pool_unlock(pool);
		log_err_rl("net: pool %p: %u buffers freed but only %u in use (double free?)",
			   (void *)pool, n, pool->count - nfree);
		return;
	}
	memcpy(&pool->stack[nfree], segs, (size_t)n * sizeof(*segs));
	store_relaxed(&pool->nfree, nfree + n);
	pool_unlock(pool);
}

/* Batch of segments headed back to one pool. */
struct free_batch {
	struct vhk_pool *pool;
	uint32_t n;
	struct vhk_pkt *segs[FREE_BATCH];
};

/* Queue one segment; flush the batch when the pool changes or it is full. */
static inline void batch_add(struct free_batch *b, struct vhk_pkt *seg)
{
	if (b->n && (b->pool != seg->pool || b->n == FREE_BATCH)) {
		pool_put(b->pool, b->segs, b->n);
		b->n = 0;
	}
	b->pool = seg->pool;
	b->segs[b->n++] = seg;
}

/* Queue every segment of the chain starting at @p. */
static inline void batch_add_chain(struct free_batch *b, struct vhk_pkt *p)
{
	/* Common case: one segment of the pool being collected, batch not full. */
	if (likely(p && !p->next && p->pool == b->pool && b->n < FREE_BATCH)) {
		b->segs[b->n++] = p;
		return;
	}
	while (p) {
		struct vhk_pkt *next = p->next;
		if (likely(p->pool))
			batch_add(b, p);
		p = next;
	}
}

VHK_EXPORT void vhk_pkt_free_bulk(struct vhk_pkt **pkts, uint32_t n)
{
	struct free_batch b;

	if (!pkts)
		return;
	/* Common case: all single segments of one pool go back in one stack copy. */
	if (n && pkts[0] && likely(pkts[0]->pool)) {
		struct vhk_pool *pool = pkts[0]->pool;
		uint32_t i = 0;
		while (i < n && pkts[i] && !pkts[i]->next && pkts[i]->pool == pool)
			i++;
		if (likely(i == n)) {
			pool_put(pool, pkts, n);
			return;
		}
	}
	b.n = 0;
	b.pool = NULL;
	for (uint32_t i = 0; i < n; i++)
		batch_add_chain(&b, pkts[i]);
	if (b.n)
		pool_put(b.pool, b.segs, b.n);
}

VHK_EXPORT void vhk_pkt_free(struct vhk_pkt *pkt)
{
	if (!pkt)
		return;
	if (!pkt->next) {
		if (likely(pkt->pool))
			pool_put(pkt->pool, &pkt, 1);
		return;
	}
	vhk_pkt_free_bulk(&pkt, 1);
}

/* Last segment of a chain. */
static struct vhk_pkt *pkt_last(struct vhk_pkt *p)
{
	while (p->next)
		p = p->next;
	return p;
}

VHK_EXPORT uint8_t *vhk_pkt_append(struct vhk_pkt *p, uint32_t len)
{
	if (!p)
		return NULL;
	struct vhk_pkt *last = pkt_last(p);
	if (vhk_pkt_tailroom(last) < len || p->pkt_len > UINT32_MAX - len)
		return NULL;
	uint8_t *tail = vhk_pkt_data(last) + last->data_len;
	last->data_len += len;
	p->pkt_len += len;
	return tail;
}

VHK_EXPORT int vhk_pkt_chain(struct vhk_pkt *head, struct vhk_pkt *tail)
{
	if (!head || !tail || head == tail)
		return -EINVAL;
	if ((uint32_t)head->nb_segs + tail->nb_segs > UINT16_MAX)
		return -EOVERFLOW;
	if (head->pkt_len > UINT32_MAX - tail->pkt_len)
		return -EOVERFLOW;
	pkt_last(head)->next = tail;
	head->pkt_len += tail->pkt_len;
	head->nb_segs = (uint16_t)(head->nb_segs + tail->nb_segs);
	return 0;
}

VHK_EXPORT uint32_t vhk_pkt_read(const struct vhk_pkt *p, uint32_t off, void *dst, uint32_t len)
{
	uint8_t *out = dst;
	uint32_t done = 0;

	if (!p || (!dst && len))
		return 0;
	for (; p && done < len; p = p->next) {
		if (off >= p->data_len) {
			off -= p->data_len;
			continue;
		}
		uint32_t n = MIN(p->data_len - off, len - done);
		memcpy(out + done, vhk_pkt_data(p) + off, n);
		done += n;
		off = 0;
	}
	return done;
}
