/* SPDX-License-Identifier: MIT */
/*
 * Inflight I/O tracking for packed rings (see vq_inflight.h for the model).
 *
 * The packed region keeps copies of the popped descriptors (a used
 * write-back overwrites ring slots of requests still in flight when they
 * complete out of order), in entries taken from a free list:
 *  - pop: the head entry (old_free_head) gets num = 0, a counter and
 *    inflight = 1; each descriptor of the chain is copied into the next
 *    free entry (the head's last and num follow), free_head moves on; once
 *    the chain is recorded, old_free_head = free_head;
 *  - flush: every chain of the batch goes back to the free list
 *    (desc[last].next = free_head, free_head = head), used_idx and its wrap
 *    counter move past the batch, the used descriptors are written
 *    (vq_packed_flush, the batch's first flags last), the heads' inflight
 *    is cleared, then old_free_head / old_used_idx / old_used_wrap_counter
 *    take the new values;
 *  - restart: if used_idx differs from old_used_idx, the descriptor at
 *    old_used_idx tells whether the batch reached the guest (its flags no
 *    longer read "available" in the old lap): then the update is committed,
 *    else rolled back; entries on the free list are not in flight; every
 *    other head marked in flight is resubmitted, in counter order, from the
 *    copies. The used position is old_used_idx, the avail position that
 *    plus the descriptors still in flight (all others were completed).
 *
 * On top of the spec, for safety: the free list, every chain and the
 * buffer ids are checked (in range, no loop, no entry in two places, each
 * entry free or in exactly one chain, NEXT on every descriptor of a chain
 * but its last, ids distinct); a pop that would need more free entries
 * than there are (a guest with more descriptors outstanding than the ring
 * holds) breaks the ring instead of running off the list.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "vq/vq_inflight_int.h"
#include "vq/vq_rules.h"

#define NO_ENTRY 0xffffu /* head[] / last[] of an id not in flight (entries are < 32768) */

/* Entry marks while checking a snapshot. */
enum { M_NONE, M_FREE, M_CHAIN };

static inline void launder(void *snapshot)
{
	__asm__ volatile("" : : "r"(snapshot) : "memory");
}

/* A fresh packed region for a ring of @n whose used position is @used/@wrap; version last. */
static void packed_init(struct vqi_packed_region *rg, struct vq_ifl *f, uint16_t n,
			uint16_t used, bool wrap)
{
	for (uint32_t i = 0; i < n; i++) {
		struct vqi_packed_desc *d = &rg->desc[i];
		WRITE_ONCE(d->inflight, 0);
		WRITE_ONCE(d->next, (uint16_t)(i + 1));
		WRITE_ONCE(d->last, 0);
		WRITE_ONCE(d->num, 0);
		WRITE_ONCE(d->counter, 0);
		WRITE_ONCE(d->id, 0);
		WRITE_ONCE(d->flags, 0);
		WRITE_ONCE(d->len, 0);
		WRITE_ONCE(d->addr, 0);
		f->next[i] = (uint16_t)(i + 1);
	}
	WRITE_ONCE(rg->features, 0);
	WRITE_ONCE(rg->desc_num, n);
	WRITE_ONCE(rg->free_head, 0);
	WRITE_ONCE(rg->old_free_head, 0);
	WRITE_ONCE(rg->used_idx, used);
	WRITE_ONCE(rg->old_used_idx, used);
	WRITE_ONCE(rg->used_wrap_counter, wrap);
	WRITE_ONCE(rg->old_used_wrap_counter, wrap);
	vqi_order();
	WRITE_ONCE(rg->version, VQI_VERSION);
	f->free_head = 0;
	f->nfree = n;
	f->counter = 1;
}

#define FAIL(msg)                                                                              \
	do {                                                                                   \
		*why = "inflight region: " msg;                                                \
		return -EINVAL;                                                                \
	} while (0)

/* Header fields in range, flags 0/1; then the in-progress used update committed or rolled back. */
static int check_header(struct vqi_packed_region *cp, uint16_t n,
			const struct vring_packed_desc *ring, const char **why)
{
	if (cp->desc_num != n)
		FAIL("desc_num is not the ring size");
	if (cp->used_idx >= n || cp->old_used_idx >= n)
		FAIL("used index out of range");
	if (cp->used_wrap_counter > 1 || cp->old_used_wrap_counter > 1)
		FAIL("wrap counter neither 0 nor 1");
	if (cp->free_head > n || cp->old_free_head > n)
		FAIL("free head out of range");
	for (uint32_t i = 0; i < n; i++)
		if (cp->desc[i].inflight > 1)
			FAIL("inflight flag neither 0 nor 1");
	if (cp->used_idx != cp->old_used_idx ||
	    cp->used_wrap_counter != cp->old_used_wrap_counter) {
		/* One guest read: did the batch's first used descriptor reach the ring? */
		uint16_t flags = load_acquire(&ring[cp->old_used_idx].flags);
		if (!vqr_packed_avail(flags, cp->old_used_wrap_counter)) {
			cp->old_free_head = cp->free_head;
			cp->old_used_idx = cp->used_idx;
			cp->old_used_wrap_counter = cp->used_wrap_counter;
		}
	}
	/* Roll back whatever was in progress (nothing, after a commit). */
	cp->free_head = cp->old_free_head;
	cp->used_idx = cp->old_used_idx;
	cp->used_wrap_counter = cp->old_used_wrap_counter;
	return 0;
}

/*
 * Validate the snapshot @cp (header already checked): free list, chains of
 * the heads in flight, their ids. Heads go to @live (raw counters in .key).
 * Returns their number, *@slots their descriptors, *@nfree the free
 * entries; -EINVAL with *@why.
 */
static int check_entries(struct vqi_packed_region *cp, uint16_t n, uint8_t *mark, uint64_t *ids,
			 struct vqi_live *live, uint32_t *slots, uint32_t *nfree, const char **why)
{
	uint32_t nlive = 0;

	*slots = *nfree = 0;
	/* Each step marks a new entry < n: at most n steps. */
	for (uint32_t e = cp->free_head; e != n; e = cp->desc[e].next) {
		if (e > n)
			FAIL("free-list link out of range");
		if (mark[e] != M_NONE)
			FAIL("free list loops");
		mark[e] = M_FREE;
		cp->desc[e].inflight = 0;
		(*nfree)++;
	}
	for (uint32_t e = 0; e < n; e++) {
		if (cp->desc[e].inflight != 1)
			continue;
		uint32_t num = cp->desc[e].num, x = e;
		if (num == 0 || num > n)
			FAIL("chain length out of range");
		for (uint32_t k = 0;; k++) {
			if (x >= n)
				FAIL("chain link out of range");
			if (mark[x] != M_NONE)
				FAIL("entry in two places");
			mark[x] = M_CHAIN;
			bool more = k + 1 < num;
			if (!(cp->desc[x].flags & VRING_DESC_F_NEXT) == more)
				FAIL("NEXT flags disagree with the chain length");
			if (!more)
				break;
			x = cp->desc[x].next;
		}
		if (x != cp->desc[e].last)
			FAIL("chain does not end at its last entry");
		uint16_t id = cp->desc[x].id;
		if (id >= n)
			FAIL("buffer id out of range");
		if (ids[id >> 6] & (1ull << (id & 63)))
			FAIL("buffer id in flight twice");
		ids[id >> 6] |= 1ull << (id & 63);
		*slots += num;
		live[nlive].key = cp->desc[e].counter;
		live[nlive].idx = (uint16_t)e;
		nlive++;
	}
	if (*nfree + *slots != n)
		FAIL("entries neither free nor in flight");
	return (int)nlive;
}

/* Write the recovered state back: flags, then the old_* fields, then the current ones. */
static void write_back(struct vqi_packed_region *rg, const struct vqi_packed_region *cp,
		       uint16_t n)
{
	for (uint32_t i = 0; i < n; i++)
		WRITE_ONCE(rg->desc[i].inflight, cp->desc[i].inflight);
	vqi_order();
	WRITE_ONCE(rg->old_free_head, cp->free_head);
	WRITE_ONCE(rg->old_used_idx, cp->used_idx);
	WRITE_ONCE(rg->old_used_wrap_counter, cp->used_wrap_counter);
	vqi_order();
	WRITE_ONCE(rg->free_head, cp->free_head);
	WRITE_ONCE(rg->used_idx, cp->used_idx);
	WRITE_ONCE(rg->used_wrap_counter, cp->used_wrap_counter);
}

int vqi_packed_start(struct vq *vq, struct vq_ifl *f, const char **why)
{
	const uint16_t n = vq->size;
	struct vqi_packed_region *rg = (struct vqi_packed_region *)(void *)f->region;
	size_t bytes = sizeof(*rg) + (size_t)n * sizeof(rg->desc[0]);
	struct vqi_packed_region *cp = malloc(bytes);
	struct vqi_live *live = calloc(n, sizeof(*live));
	uint64_t *ids = calloc((n + 63u) / 64, sizeof(*ids));
	uint8_t *mark = calloc(n, 1);
	uint32_t slots = 0, nfree = 0;
	int nlive, rc = 0;

	for (uint32_t i = 0; i < n; i++)
		f->head[i] = f->last[i] = NO_ENTRY;
	if (!cp || !live || !ids || !mark) {
		*why = "inflight region: out of memory";
		rc = -ENOMEM;
		goto out_free;
	}
	memcpy(cp, rg, bytes); /* fetch once: only the snapshot is looked at */
	launder(cp);
	if (cp->version == 0) {
		packed_init(rg, f, n, vq->last_used_idx, vq->used_wrap);
		goto out_free;
	}
	if (cp->version != VQI_VERSION) {
		*why = "inflight region: unknown version";
		rc = -EINVAL;
		goto out_free;
	}
	rc = check_header(cp, n, vq->pdesc, why);
	if (rc)
		goto out_free;
	nlive = check_entries(cp, n, mark, ids, live, &slots, &nfree, why);
	if (nlive < 0) {
		rc = nlive;
		goto out_free;
	}
	if (nlive) {
		f->walk = calloc(n, sizeof(*f->walk));
		if (!f->walk) {
			*why = "inflight region: out of memory";
			rc = -ENOMEM;
			goto out_free;
		}
	}
	f->counter = vqi_sort_live(live, (uint32_t)nlive);
	for (int i = 0; i < nlive; i++)
		f->resub[i] = live[i].idx;
	f->nresub = (uint32_t)nlive;
	for (uint32_t i = 0; i < n; i++)
		f->next[i] = cp->desc[i].next;
	f->free_head = cp->free_head;
	f->nfree = nfree;
	write_back(rg, cp, n);
	/* Used position as recovered; everything between it and the avail one is in flight. */
	vq->last_used_idx = cp->used_idx;
	vq->used_wrap = cp->used_wrap_counter;
	uint16_t pos = cp->used_idx;
	bool wrap = cp->used_wrap_counter;
	vqr_packed_advance(n, &pos, &wrap, slots);
	vq->last_avail_idx = vq->shadow_avail_idx = pos;
	vq->avail_wrap = wrap;
	if (nlive) {
		f->snap = cp; /* the copies of the chains to resubmit */
		cp = NULL;
	}
out_free:
	free(mark);
	free(ids);
	free(live);
	free(cp);
	return rc;
}

/* The chain of head entry @e of the snapshot, laid out at walk[0..] as available in lap 1. */
static uint16_t lay_out(struct vq_ifl *f, uint16_t e, uint16_t *ret_last)
{
	const struct vqi_packed_desc *s = f->snap->desc;
	uint16_t num = s[e].num, x = e;

	for (uint16_t k = 0; k < num; k++) {
		struct vring_packed_desc *w = &f->walk[k];
		w->addr = s[x].addr;
		w->len = s[x].len;
		w->id = s[x].id;
		w->flags = (uint16_t)((s[x].flags & ~VQR_PK_LAP) | VQR_PK_AVAIL);
		*ret_last = x;
		x = s[x].next; /* checked < n for every entry but the last */
	}
	return num;
}

int vqi_packed_resubmit(struct vq *vq, struct vq_ifl *f, struct vq_chain *c,
			enum vq_pop_mode mode)
{
	const uint16_t n = vq->size;
	uint16_t e = (uint16_t)index_nospec(f->resub[f->resub_pos], n), last = e, id;
	int rc;

	(void)lay_out(f, e, &last);
	/* The walker of new chains, on the copies: every rule of a new head applies. */
	rc = chain_walk_packed(vq->mem, &vq->mem_hint, f->walk, n, 0, true, vq->indirect, mode, c);
	if (unlikely(rc != 0 && rc != -E2BIG)) {
		vq_mark_broken(vq, "resubmitted descriptor chain invalid");
		return -EIO;
	}
	id = (uint16_t)index_nospec(c->id, n);
	if (unlikely(vqr_inflight_test(vq->inflight, id) || (f->pend[id >> 6] & (1ull << (id & 63))))) {
		vq_mark_broken(vq, "resubmitted buffer id already in flight");
		return -EIO;
	}
	f->resub_pos++;
	f->last_resub = true;
	vqr_inflight_set(vq->inflight, id);
	/* Slots for the used write-back; never part of an IN_ORDER batch. */
	vq->pk_state[id] = vqr_packed_rec(c->ndesc, true, 0, false);
	f->head[id] = e;
	f->last[id] = last;
	return rc;
}

int vqi_packed_record(struct vq *vq, struct vq_ifl *f, const struct vq_chain *c)
{
	struct vqi_packed_region *rg = (struct vqi_packed_region *)(void *)f->region;
	const uint16_t n = vq->size, id = (uint16_t)index_nospec(c->id, n), slots = c->ndesc;
	uint32_t rec = vq->pk_state[id];
	uint16_t pos = vqr_packed_rec_pos(rec), h = (uint16_t)f->free_head, x = h;
	bool wrap = vqr_packed_rec_wrap(rec);

	if (unlikely(f->head[id] != NO_ENTRY)) {
		vq_mark_broken(vq, "buffer id reused before its completion was published");
		return -EIO;
	}
	if (unlikely(f->nfree < slots)) {
		vq_mark_broken(vq, "more descriptors in flight than the ring holds");
		return -EIO;
	}
	WRITE_ONCE(rg->desc[h].num, 0);
	WRITE_ONCE(rg->desc[h].counter, f->counter++);
	vqi_order();
	WRITE_ONCE(rg->desc[h].inflight, 1);
	for (uint16_t j = 0; j < slots; j++) {
		struct vring_packed_desc d;
		bool more = j + 1 < slots;
		/* What the walker took from this slot: the region only feeds a restart, which walks it again. */
		memcpy(&d, &vq->pdesc[pos], sizeof(d));
		__asm__ volatile("" : "+m"(d)); /* the copy, not guest memory, from here on */
		x = (uint16_t)f->free_head; /* < n: nfree >= slots */
		if (!more)
			WRITE_ONCE(rg->desc[h].last, x);
		WRITE_ONCE(rg->desc[h].num, (uint16_t)(j + 1));
		WRITE_ONCE(rg->desc[x].addr, d.addr);
		WRITE_ONCE(rg->desc[x].len, d.len);
		WRITE_ONCE(rg->desc[x].id, d.id);
		WRITE_ONCE(rg->desc[x].flags, (uint16_t)((d.flags & ~VRING_DESC_F_NEXT) |
							 (more ? VRING_DESC_F_NEXT : 0)));
		f->free_head = f->next[x];
		WRITE_ONCE(rg->free_head, (uint16_t)f->free_head);
		vqr_packed_next(n, &pos, &wrap);
	}
	vqi_order();
	WRITE_ONCE(rg->old_free_head, (uint16_t)f->free_head);
	f->nfree -= slots;
	f->head[id] = h;
	f->last[id] = x;
	return 0;
}

void vqi_packed_unpop(struct vq *vq, struct vq_ifl *f, uint16_t id)
{
	struct vqi_packed_region *rg = (struct vqi_packed_region *)(void *)f->region;
	uint16_t h = f->head[id], l = f->last[id];

	if (h == NO_ENTRY || l == NO_ENTRY)
		return; /* not recorded (cannot happen: the element API checked it) */
	/* The chain goes back to the front of the free list, old_free_head first. */
	f->next[l] = (uint16_t)f->free_head;
	WRITE_ONCE(rg->desc[l].next, (uint16_t)f->free_head);
	vqi_order();
	WRITE_ONCE(rg->old_free_head, h);
	vqi_order();
	f->free_head = h;
	WRITE_ONCE(rg->free_head, h);
	vqi_order();
	WRITE_ONCE(rg->desc[h].inflight, 0);
	f->nfree += vqr_packed_rec_slots(vq->pk_state[id]);
	f->head[id] = f->last[id] = NO_ENTRY;
	vq_packed_rewind(vq, &id, 1);
}

void vqi_packed_flush(struct vq *vq, struct vq_ifl *f)
{
	struct vqi_packed_region *rg = (struct vqi_packed_region *)(void *)f->region;
	const struct vring_used_elem *sh = vq->shadow_used;
	const uint16_t cnt = vq->shadow_count, n = vq->size;
	uint16_t pos = vq->last_used_idx;
	bool wrap = vq->used_wrap;

	for (uint16_t i = 0; i < cnt; i++) {
		uint16_t id = (uint16_t)index_nospec(vqr_packed_shadow_buf(sh[i].id), n);
		uint16_t h = f->head[id], l = f->last[id];
		if (likely(h != NO_ENTRY && l != NO_ENTRY)) {
			f->next[l] = (uint16_t)f->free_head;
			WRITE_ONCE(rg->desc[l].next, (uint16_t)f->free_head);
			f->free_head = h;
			WRITE_ONCE(rg->free_head, h);
			f->nfree += vqr_packed_shadow_slots(sh[i].id);
		}
		vqr_packed_advance(n, &pos, &wrap, vqr_packed_shadow_slots(sh[i].id));
	}
	WRITE_ONCE(rg->used_idx, pos);
	WRITE_ONCE(rg->used_wrap_counter, wrap);
	vqi_order();
	vq_packed_flush(vq); /* ids and lengths, then the flags, the batch's first one last */
	vqi_order();
	for (uint16_t i = 0; i < cnt; i++) {
		uint16_t id = (uint16_t)index_nospec(vqr_packed_shadow_buf(sh[i].id), n);
		if (likely(f->head[id] != NO_ENTRY))
			WRITE_ONCE(rg->desc[f->head[id]].inflight, 0);
		f->head[id] = f->last[id] = NO_ENTRY;
	}
	vqi_order();
	WRITE_ONCE(rg->old_free_head, (uint16_t)f->free_head);
	WRITE_ONCE(rg->old_used_idx, pos);
	WRITE_ONCE(rg->old_used_wrap_counter, wrap);
}
