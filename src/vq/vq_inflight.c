/* SPDX-License-Identifier: MIT */
/*
 * Inflight I/O tracking (see vq_inflight.h): configuration, the dispatch
 * between the formats, and the split layout. The packed layout is in
 * vq_inflight_packed.c.
 *
 * Split, as the spec orders it:
 *  - pop: desc[head].counter = counter++, then desc[head].inflight = 1;
 *  - flush: every head of the batch is linked into the last-batch list
 *    (desc[head].next = last_batch_head, last_batch_head = head), then the
 *    used entries and used->idx are published (vq_split_flush), then the
 *    heads' inflight is cleared, then used_idx = used->idx;
 *  - restart: if used_idx differs from the guest's used->idx, the last
 *    batch was published: its heads (walked from last_batch_head, as many
 *    as the difference) are done; every head still marked in flight is
 *    resubmitted in counter order, and the next avail position is used->idx
 *    plus their number (whatever SET_VRING_BASE said: after a crash the
 *    frontend has no right value to give).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/fd.h"
#include "util/log.h"
#include "vq/vq_inflight_int.h"
#include "vq/vq_rules.h"

/* Keep the compiler from ever reading the region again for a snapshot field. */
static inline void vqi_launder(void *snapshot)
{
	__asm__ volatile("" : : "r"(snapshot) : "memory");
}

static int live_cmp(const void *a, const void *b)
{
	const struct vqi_live *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (x->idx > y->idx) - (x->idx < y->idx);
}

uint64_t vqi_sort_live(struct vqi_live *live, uint32_t n)
{
	uint64_t ref;

	if (!n)
		return 1;
	/* live[i].key holds the raw counter on entry; make it relative. */
	ref = live[0].key - (1ull << 63);
	for (uint32_t i = 0; i < n; i++)
		live[i].key -= ref;
	qsort(live, n, sizeof(*live), live_cmp);
	return live[n - 1].key + ref + 1;
}

int vq_set_inflight(struct vq *vq, void *region, uint64_t len, uint16_t queue_size)
{
	struct vq_ifl *f = vq->ifl_cfg;

	if (vq->started)
		return -EBUSY;
	if (!region) {
		if (f) {
			f->region = NULL;
			f->len = 0;
		}
		return 0;
	}
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			return -ENOMEM;
		vq->ifl_cfg = f;
	}
	f->region = region;
	f->len = len;
	f->qsize = queue_size;
	return 0;
}

/* Per-descriptor arrays for a ring of @n. 0 or -ENOMEM. */
static int ensure_arrays(struct vq_ifl *f, uint32_t n)
{
	uint16_t *resub, *next, *head, *last;
	uint64_t *pend;

	if (f->cap >= n)
		return 0;
	resub = calloc(n, sizeof(*resub));
	next = calloc(n, sizeof(*next));
	head = calloc(n, sizeof(*head));
	last = calloc(n, sizeof(*last));
	pend = calloc((n + 63) / 64, sizeof(*pend));
	if (!resub || !next || !head || !last || !pend) {
		free(resub);
		free(next);
		free(head);
		free(last);
		free(pend);
		return -ENOMEM;
	}
	free(f->resub);
	free(f->next);
	free(f->head);
	free(f->last);
	free(f->pend);
	f->resub = resub;
	f->next = next;
	f->head = head;
	f->last = last;
	f->pend = pend;
	f->cap = n;
	return 0;
}

/* A fresh split region for a ring of @n whose used->idx is @used; version written last. */
static void split_init(struct vqi_split_region *rg, uint16_t n, uint16_t used)
{
	for (uint32_t i = 0; i < n; i++) {
		WRITE_ONCE(rg->desc[i].inflight, 0);
		WRITE_ONCE(rg->desc[i].next, 0);
		WRITE_ONCE(rg->desc[i].counter, 0);
	}
	WRITE_ONCE(rg->features, 0);
	WRITE_ONCE(rg->desc_num, n);
	WRITE_ONCE(rg->last_batch_head, 0);
	WRITE_ONCE(rg->used_idx, used);
	vqi_order();
	WRITE_ONCE(rg->version, VQI_VERSION);
}

/*
 * Validate the snapshot @cp of a used split region against the ring (size
 * @n, guest used->idx @used) and recover: the published last batch is
 * marked done in @cp, the heads still in flight go to @live (raw counters
 * in .key). Returns their number, or -EINVAL with *@why.
 */
static int split_check(struct vqi_split_region *cp, uint16_t n, uint16_t used,
		       struct vqi_live *live, uint64_t *seen, const char **why)
{
	uint16_t delta = (uint16_t)(used - cp->used_idx);
	uint32_t nlive = 0;

	if (cp->desc_num != n) {
		*why = "inflight region: desc_num is not the ring size";
		return -EINVAL;
	}
	if (cp->last_batch_head >= n) {
		*why = "inflight region: last_batch_head out of range";
		return -EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (cp->desc[i].inflight > 1) {
			*why = "inflight region: inflight flag neither 0 nor 1";
			return -EINVAL;
		}
	}
	if (delta > n) {
		*why = "inflight region: used index further than a ring from used->idx";
		return -EINVAL;
	}
	/* The last batch reached the guest before the crash: its heads are done. */
	for (uint16_t k = 0, h = cp->last_batch_head; k < delta; k++) {
		if (h >= n) {
			*why = "inflight region: last-batch link out of range";
			return -EINVAL;
		}
		if (seen[h >> 6] & (1ull << (h & 63))) {
			*why = "inflight region: last-batch list loops";
			return -EINVAL;
		}
		seen[h >> 6] |= 1ull << (h & 63);
		cp->desc[h].inflight = 0;
		h = cp->desc[h].next;
	}
	cp->used_idx = used;
	/* One predicate for counting and collecting: inflight == 1. */
	for (uint32_t i = 0; i < n; i++) {
		if (cp->desc[i].inflight == 1) {
			live[nlive].key = cp->desc[i].counter;
			live[nlive].idx = (uint16_t)i;
			nlive++;
		}
	}
	return (int)nlive;
}

static int split_start(struct vq *vq, struct vq_ifl *f, const char **why)
{
	const uint16_t n = vq->size, used = vq->last_used_idx;
	struct vqi_split_region *rg = (struct vqi_split_region *)(void *)f->region;
	size_t bytes = sizeof(*rg) + (size_t)n * sizeof(rg->desc[0]);
	struct vqi_split_region *cp = malloc(bytes);
	struct vqi_live *live = calloc(n, sizeof(*live));
	uint64_t *seen = calloc((n + 63u) / 64, sizeof(*seen));
	int nlive, rc = 0;

	if (!cp || !live || !seen) {
		*why = "inflight region: out of memory";
		rc = -ENOMEM;
		goto out_free;
	}
	memcpy(cp, rg, bytes); /* fetch once: only the snapshot is looked at */
	vqi_launder(cp);
	if (cp->version == 0) {
		split_init(rg, n, used);
		f->last_batch_head = 0;
		f->counter = 1;
		goto out_free;
	}
	if (cp->version != VQI_VERSION) {
		*why = "inflight region: unknown version";
		rc = -EINVAL;
		goto out_free;
	}
	nlive = split_check(cp, n, used, live, seen, why);
	if (nlive < 0) {
		rc = nlive;
		goto out_free;
	}
	f->counter = vqi_sort_live(live, (uint32_t)nlive);
	for (int i = 0; i < nlive; i++)
		f->resub[i] = live[i].idx;
	f->nresub = (uint32_t)nlive;
	f->last_batch_head = cp->last_batch_head;
	/* Normalised state back: batch heads done first, then the used index. */
	for (uint32_t i = 0; i < n; i++)
		WRITE_ONCE(rg->desc[i].inflight, cp->desc[i].inflight);
	vqi_order();
	WRITE_ONCE(rg->used_idx, used);
	/* Everything before used->idx was popped; the live heads were popped after. */
	vq->last_avail_idx = vq->shadow_avail_idx = (uint16_t)(used + nlive);
out_free:
	free(seen);
	free(live);
	free(cp);
	return rc;
}

int vq_ifl_start(struct vq *vq, const char **why)
{
	struct vq_ifl *f = vq->ifl_cfg;
	uint64_t need;
	int rc;

	vq->ifl = NULL;
	if (!f || !f->region)
		return 0;
	if (vq->size > f->qsize) {
		*why = "inflight region: ring larger than its queue size";
		return -EINVAL;
	}
	need = vq->packed ? sizeof(struct vqi_packed_region) +
				    (uint64_t)vq->size * sizeof(struct vqi_packed_desc)
			  : sizeof(struct vqi_split_region) +
				    (uint64_t)vq->size * sizeof(struct vqi_split_desc);
	if (need > f->len) {
		*why = "inflight region: too small for the ring";
		return -EINVAL;
	}
	if (ensure_arrays(f, vq->size)) {
		*why = "inflight region: out of memory";
		return -ENOMEM;
	}
	vq_ifl_stop(vq);
	f->nresub = f->resub_pos = 0;
	f->last_resub = false;
	memset(f->pend, 0, (vq->size + 63u) / 64 * sizeof(*f->pend));
	rc = vq->packed ? vqi_packed_start(vq, f, why) : split_start(vq, f, why);
	if (rc)
		return rc;
	vq->ifl = f;
	/* A device waiting for a kick must learn about the requests to resubmit. */
	if (f->nresub && vq->kick_fd >= 0)
		(void)fd_eventfd_write(vq->kick_fd);
	return 0;
}

void vq_ifl_stop(struct vq *vq)
{
	struct vq_ifl *f = vq->ifl_cfg;

	vq->ifl = NULL;
	if (!f)
		return;
	free(f->snap);
	free(f->walk);
	f->snap = NULL;
	f->walk = NULL;
	f->nresub = f->resub_pos = 0;
}

void vq_ifl_free(struct vq *vq)
{
	struct vq_ifl *f = vq->ifl_cfg;

	vq_ifl_stop(vq);
	if (!f)
		return;
	free(f->resub);
	free(f->next);
	free(f->head);
	free(f->last);
	free(f->pend);
	free(f);
	vq->ifl_cfg = NULL;
}

/* ---- datapath ---- */

/* Was @id (< size) pushed and is its completion not yet flushed? */
static inline bool pend_test(const struct vq_ifl *f, uint16_t id)
{
	return f->pend[id >> 6] & (1ull << (id & 63));
}

void vq_ifl_push(struct vq *vq, uint16_t id, uint32_t len)
{
	struct vq_ifl *f = vq->ifl;

	if (likely(id < vq->size))
		f->pend[id >> 6] |= 1ull << (id & 63);
	vq_push(vq, id, len);
}

/* Pop the next head of the resubmit list, walked like a new head. */
static int split_resubmit(struct vq *vq, struct vq_ifl *f, struct vq_chain *c,
			  enum vq_pop_mode mode)
{
	uint16_t head = (uint16_t)index_nospec(f->resub[f->resub_pos], vq->size);
	int rc;

	if (unlikely(vqr_inflight_test(vq->inflight, head) || pend_test(f, head))) {
		vq_mark_broken(vq, "resubmitted head already in flight");
		return -EIO;
	}
	rc = chain_walk_split(vq->mem, &vq->mem_hint, vq->desc, vq->size, head, vq->indirect,
			      mode, c);
	if (unlikely(rc == -EIO)) {
		vq_mark_broken(vq, "resubmitted descriptor chain invalid");
		return -EIO;
	}
	f->resub_pos++;
	f->last_resub = true;
	vqr_inflight_set(vq->inflight, head);
	/* Never part of an IN_ORDER batch: its avail position is not known. */
	vq->pk_state[head] = vqr_split_rec(vq->last_avail_idx, true);
	return rc; /* 0 or -E2BIG: consumed either way */
}

int vq_ifl_pop(struct vq *vq, struct vq_chain *c, enum vq_pop_mode mode)
{
	struct vq_ifl *f = vq->ifl;
	int rc;

	if (unlikely(f->resub_pos < f->nresub))
		return vq->packed ? vqi_packed_resubmit(vq, f, c, mode)
				  : split_resubmit(vq, f, c, mode);
	rc = vq_pop_mode(vq, c, mode);
	if (rc != 0 && rc != -E2BIG)
		return rc;
	f->last_resub = false;
	if (unlikely(pend_test(f, (uint16_t)index_nospec(c->id, vq->size)))) {
		vq_mark_broken(vq, "request id reused before its completion was published");
		return -EIO;
	}
	if (vq->packed) {
		int err = vqi_packed_record(vq, f, c);
		return err ? err : rc;
	}
	struct vqi_split_region *rg = (struct vqi_split_region *)(void *)f->region;
	uint16_t head = (uint16_t)index_nospec(c->id, vq->size);
	WRITE_ONCE(rg->desc[head].counter, f->counter++);
	vqi_order();
	WRITE_ONCE(rg->desc[head].inflight, 1);
	return rc;
}

void vq_ifl_unpop(struct vq *vq, uint16_t id)
{
	struct vq_ifl *f = vq->ifl;

	id = (uint16_t)index_nospec(id, vq->size);
	if (f->last_resub) {
		/* Back to the front of the resubmit list; the region still has it in flight. */
		f->last_resub = false;
		if (f->resub_pos)
			f->resub_pos--;
		vqr_inflight_clear(vq->inflight, id);
		return;
	}
	if (vq->packed) {
		vqi_packed_unpop(vq, f, id);
		return;
	}
	struct vqi_split_region *rg = (struct vqi_split_region *)(void *)f->region;
	WRITE_ONCE(rg->desc[id].inflight, 0);
	vqi_order();
	vq_split_rewind(vq, &id, 1);
}

void vq_ifl_flush(struct vq *vq)
{
	struct vq_ifl *f = vq->ifl;
	const uint16_t n = vq->shadow_count;

	if (!n)
		return;
	for (uint16_t i = 0; i < n; i++) {
		/* Packed shadow ids carry the slot count in bits 16..31. */
		uint16_t id = (uint16_t)index_nospec((uint16_t)vq->shadow_used[i].id, vq->size);
		f->pend[id >> 6] &= ~(1ull << (id & 63));
	}
	if (vq->packed) {
		vqi_packed_flush(vq, f);
	} else {
		struct vqi_split_region *rg = (struct vqi_split_region *)(void *)f->region;
		const struct vring_used_elem *sh = vq->shadow_used;
		for (uint16_t i = 0; i < n; i++) {
			uint16_t id = (uint16_t)index_nospec(sh[i].id, vq->size);
			WRITE_ONCE(rg->desc[id].next, f->last_batch_head);
			f->last_batch_head = id;
			WRITE_ONCE(rg->last_batch_head, id);
		}
		vqi_order();
		vq_split_flush(vq); /* used entries, then used->idx (release) */
		vqi_order();
		for (uint16_t i = 0; i < n; i++)
			WRITE_ONCE(rg->desc[index_nospec(sh[i].id, vq->size)].inflight, 0);
		vqi_order();
		WRITE_ONCE(rg->used_idx, vq->last_used_idx);
	}
	vq_notify(vq);
}

uint16_t vq_ifl_pending(const struct vq *vq)
{
	const struct vq_ifl *f = vq->ifl;

	return f ? (uint16_t)(f->nresub - f->resub_pos) : 0;
}
