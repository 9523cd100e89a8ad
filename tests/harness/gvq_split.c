/* SPDX-License-Identifier: MIT */
/*
 * The split format of the guest virtqueue driver (see gvq.h): it behaves
 * like Linux's virtio_ring split driver (free list, chains, indirect
 * tables, avail publish with release, EVENT_IDX / NO_NOTIFY kick
 * suppression, used consumption with acquire, IN_ORDER batches).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gvq_priv.h"

int gvq_split_layout(struct gvq *q, const uint64_t *areas)
{
	uint16_t n = q->size;
	void *d, *a, *u;
	if (areas) {
		d = gmem_ptr(q->mem, areas[0], 16ull * n);
		a = gmem_ptr(q->mem, areas[1], 6 + 2ull * n); /* with used_event */
		u = gmem_ptr(q->mem, areas[2], 6 + 8ull * n); /* with avail_event */
		if (!d || !a || !u)
			return -EFAULT;
		memset(d, 0, 16ull * n);
		memset(a, 0, 6 + 2ull * n);
		memset(u, 0, 6 + 8ull * n);
		q->desc_gpa = areas[0];
		q->avail_gpa = areas[1];
		q->used_gpa = areas[2];
	} else {
		q->desc_gpa = gvq_zalloc(q->mem, 16ull * n, 16, &d);
		q->avail_gpa = q->desc_gpa ? gvq_zalloc(q->mem, 6ull + 2ull * n, 2, &a) : 0;
		q->used_gpa = q->avail_gpa ? gvq_zalloc(q->mem, 6ull + 8ull * n, 4096, &u) : 0;
		if (!q->used_gpa)
			return -ENOMEM;
	}
	q->desc = d;
	q->avail = a;
	q->used = u;
	return 0;
}

int gvq_split_init(struct gvq *q)
{
	struct gvq_priv *p = q->priv;
	p->next = calloc(q->size, sizeof(*p->next));
	if (!p->next)
		return -ENOMEM;
	for (uint16_t i = 0; i < q->size; i++)
		p->next[i] = (uint16_t)(i + 1);
	p->free_head = 0;
	return 0;
}

/* Store one descriptor into guest memory. */
static void put_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/* Indirect table for @head with room for @n entries (cached per head). */
static uint64_t indirect_table(struct gvq *q, uint16_t head, int n)
{
	struct gvq_priv *p = q->priv;
	if (p->indirect_gpa[head] && p->icap[head] >= n)
		return p->indirect_gpa[head];
	uint16_t cap = n <= (int)GVQ_INDIRECT_CACHE ? GVQ_INDIRECT_CACHE : (uint16_t)n;
	uint64_t gpa = gmem_alloc(q->mem, 16ull * cap, 16);
	if (!gpa)
		return 0;
	p->indirect_gpa[head] = gpa;
	p->icap[head] = cap;
	return gpa;
}

/* Fill an indirect table for @head and point descriptor @head at it. */
static int add_indirect(struct gvq *q, uint16_t head, const struct gbuf *out, int nout,
			const struct gbuf *in, int nin)
{
	struct gvq_priv *p = q->priv;
	int total = nout + nin;
	uint64_t tgpa = indirect_table(q, head, total);
	struct vring_desc *t = tgpa ? gmem_ptr(q->mem, tgpa, 16ull * total) : NULL;
	if (!t)
		return -ENOMEM;
	for (int i = 0; i < total; i++) {
		const struct gbuf *b = i < nout ? &out[i] : &in[i - nout];
		uint16_t fl = (uint16_t)((i >= nout ? VRING_DESC_F_WRITE : 0) |
					 (i + 1 < total ? VRING_DESC_F_NEXT : 0));
		put_desc(&t[i], b->gpa, b->len, fl, (uint16_t)(i + 1 < total ? i + 1 : 0));
	}
	put_desc(&q->desc[head], tgpa, (uint32_t)(16 * total), VRING_DESC_F_INDIRECT, 0);
	p->free_head = p->next[head];
	q->num_free--;
	p->chain_len[head] = 1;
	return 0;
}

/* Fill @nout + @nin ring descriptors from the free list, starting at free_head. */
static void add_direct(struct gvq *q, const struct gbuf *out, int nout, const struct gbuf *in,
		       int nin)
{
	struct gvq_priv *p = q->priv;
	int total = nout + nin;
	uint16_t head = p->free_head, i = head;
	for (int k = 0; k < total; k++) {
		const struct gbuf *b = k < nout ? &out[k] : &in[k - nout];
		uint16_t fl = (uint16_t)((k >= nout ? VRING_DESC_F_WRITE : 0) |
					 (k + 1 < total ? VRING_DESC_F_NEXT : 0));
		put_desc(&q->desc[i], b->gpa, b->len, fl, p->next[i]);
		if (k + 1 < total)
			i = p->next[i];
	}
	p->free_head = p->next[i];
	q->num_free = (uint16_t)(q->num_free - total);
	p->chain_len[head] = (uint16_t)total;
}

int gvq_split_add(struct gvq *q, const struct gbuf *out, int nout, const struct gbuf *in,
		  int nin, bool indirect, void *token)
{
	struct gvq_priv *p = q->priv;
	int total = nout + nin;
	if (q->num_free < (indirect ? 1 : total))
		return -ENOSPC;
	uint16_t head = p->free_head;
	if (indirect) {
		int rc = add_indirect(q, head, out, nout, in, nin);
		if (rc < 0)
			return rc;
	} else {
		add_direct(q, out, nout, in, nin);
	}
	p->tokens[head] = token;
	if (p->order)
		p->order[q->avail_pos & (q->size - 1)] = head;
	/* Descriptors are plain stores; the release in gvq_split_publish orders them. */
	__atomic_store_n(&q->avail->ring[q->avail_pos & (q->size - 1)], head, __ATOMIC_RELAXED);
	q->avail_pos++;
	return head;
}

int gvq_split_next_id(const struct gvq *q)
{
	if (q->num_free == 0 || q->priv->free_head >= q->size)
		return -ENOSPC;
	return q->priv->free_head;
}

void gvq_split_publish(struct gvq *q)
{
	/* Pairs with the device's acquire load of avail->idx. */
	__atomic_store_n(&q->avail->idx, q->avail_pos, __ATOMIC_RELEASE);
}

bool gvq_split_kick_needed(struct gvq *q)
{
	uint16_t old = q->priv->kicked_pos, new_idx = q->avail_pos;
	q->priv->kicked_pos = new_idx;
	/* Full barrier: avail->idx store before the avail_event / flags load
	 * (pairs with the device's barrier between writing avail_event and
	 * re-reading avail->idx). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->event_idx) {
		/* avail_event sits right after the used ring entries. */
		uint16_t *evp = (uint16_t *)(void *)&q->used->ring[q->size];
		uint16_t ev = __atomic_load_n(evp, __ATOMIC_RELAXED);
		return vring_need_event(ev, new_idx, old);
	}
	return !(__atomic_load_n(&q->used->flags, __ATOMIC_RELAXED) & VRING_USED_F_NO_NOTIFY);
}

/* Return the descriptors of chain @head to the free list. */
static void detach(struct gvq *q, uint16_t head)
{
	struct gvq_priv *p = q->priv;
	uint16_t last = head;
	for (uint16_t k = 1; k < p->chain_len[head]; k++)
		last = p->next[last];
	p->next[last] = p->free_head;
	p->free_head = head;
	q->num_free = (uint16_t)(q->num_free + p->chain_len[head]);
	p->tokens[head] = NULL;
	p->chain_len[head] = 0;
}

/* IN_ORDER: the buffer at our used position, expanding the batch its used entry ends. */
static int in_order_next(struct gvq *q, const struct vring_used_elem *e, uint32_t *id,
			 uint32_t *l)
{
	struct gvq_priv *p = q->priv;
	if (p->batch_last == UINT32_MAX) { /* the entry at the batch start names its last buffer */
		p->batch_last = __atomic_load_n(&e->id, __ATOMIC_RELAXED);
		p->batch_len = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
		if (p->batch_last >= q->size || !p->tokens[p->batch_last]) {
			p->batch_last = UINT32_MAX;
			return -EIO;
		}
	}
	*id = p->order[q->used_pos & (q->size - 1)];
	*l = 0; /* a skipped buffer: its length is not reported */
	if (*id == p->batch_last) {
		*l = p->batch_len;
		p->batch_last = UINT32_MAX;
	}
	return 0;
}

int gvq_split_get_used(struct gvq *q, void **token, uint32_t *len)
{
	struct gvq_priv *p = q->priv;
	/* Pairs with the device's release store of used->idx. */
	uint16_t idx = __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);
	if (idx == q->used_pos)
		return 0;
	struct vring_used_elem *e = &q->used->ring[q->used_pos & (q->size - 1)];
	uint32_t id, l;
	if (p->order) {
		if (in_order_next(q, e, &id, &l) < 0)
			return -EIO;
	} else {
		id = __atomic_load_n(&e->id, __ATOMIC_RELAXED);
		l = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
	}
	if (id >= q->size || !p->tokens[id])
		return -EIO; /* device returned a head we never made available */
	q->used_pos++;
	if (token)
		*token = p->tokens[id];
	if (len)
		*len = l;
	detach(q, (uint16_t)id);
	/* With interrupts on under EVENT_IDX, ask for the next entry (as Linux
	 * does after each buffer): store, then a full barrier. */
	if (q->event_idx && p->irq_on) {
		__atomic_store_n(&q->avail->ring[q->size], q->used_pos, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	return 1;
}

int gvq_split_used_pending(const struct gvq *q)
{
	return (uint16_t)(__atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE) - q->used_pos);
}

void gvq_split_set_interrupts(struct gvq *q, bool enable)
{
	q->priv->irq_on = enable;
	if (q->event_idx) {
		/* used_event: notify once the device uses entry used_pos; when
		 * disabled, one behind used_pos so it only fires after a wrap.
		 * flags stay 0: the device ignores them under EVENT_IDX. */
		uint16_t ev = enable ? q->used_pos : (uint16_t)(q->used_pos - 1);
		__atomic_store_n(&q->avail->ring[q->size], ev, __ATOMIC_RELAXED);
	} else {
		uint16_t fl = enable ? 0 : VRING_AVAIL_F_NO_INTERRUPT;
		__atomic_store_n(&q->avail->flags, fl, __ATOMIC_RELAXED);
	}
	/* Make the new setting visible before any following used-ring check. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}
