/* SPDX-License-Identifier: MIT */
/*
 * Inside the guest virtqueue driver (gvq.h): the driver-private state kept
 * outside guest memory (like Linux's desc_extra), and the two format
 * implementations gvq.c dispatches to (gvq_split.c, gvq_packed.c).
 */
#ifndef VHK_TEST_GVQ_PRIV_H
#define VHK_TEST_GVQ_PRIV_H

#include "gvq.h"

/* Entries of the per-head / per-id cached indirect table (bigger ones are allocated fresh). */
#define GVQ_INDIRECT_CACHE 64u

/* Packed flag bits. */
#define GVQ_F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define GVQ_F_USED (1u << VRING_PACKED_DESC_F_USED)
#define GVQ_WRAP (1u << VRING_PACKED_EVENT_F_WRAP_CTR)

struct gvq_priv {
	void **tokens;          /* per head / buffer id, NULL when free */
	uint16_t *chain_len;    /* ring slots per outstanding head / id (split indirect: 1) */
	uint64_t *indirect_gpa; /* per head / id: cached indirect table, or 0 */
	uint16_t *icap;         /* its capacity in entries */
	uint16_t *next;         /* split: free list / chain links (shadow of desc.next) */
	uint16_t free_head;     /* split: first free descriptor */
	uint16_t *free_ids;     /* packed: stack of free buffer ids */
	uint16_t nfree_ids;
	uint16_t kicked_pos;    /* avail position at the last kick decision */
	bool kicked_wrap;       /* packed: its wrap counter */
	bool irq_on;            /* the driver wants used notifications */
	uint16_t *order;        /* IN_ORDER: head / id per avail slot, else NULL */
	uint32_t batch_last;    /* IN_ORDER: id of the used entry being expanded, or UINT32_MAX */
	uint32_t batch_len;
	uint16_t *raw_len;      /* packed raw guest: slots of the chain posted with each id */
};

/* Zeroed guest allocation of @len bytes: gpa (and the test pointer), or 0. */
uint64_t gvq_zalloc(struct gmem *m, uint64_t len, uint64_t align, void **ptr);

/* Split driver (gvq_split.c). */
/* Place and zero the ring areas: at @areas (desc, avail, used) if not NULL, else allocated. */
int gvq_split_layout(struct gvq *q, const uint64_t *areas);
int gvq_split_init(struct gvq *q);
int gvq_split_add(struct gvq *q, const struct gbuf *out, int nout, const struct gbuf *in,
		  int nin, bool indirect, void *token);
int gvq_split_next_id(const struct gvq *q);
void gvq_split_publish(struct gvq *q);
bool gvq_split_kick_needed(struct gvq *q);
int gvq_split_get_used(struct gvq *q, void **token, uint32_t *len);
int gvq_split_used_pending(const struct gvq *q);
void gvq_split_set_interrupts(struct gvq *q, bool enable);

/* Packed driver (gvq_packed.c). */
int gvq_packed_layout(struct gvq *q, const uint64_t *areas);
int gvq_packed_init(struct gvq *q);
int gvq_packed_add(struct gvq *q, const struct gbuf *out, int nout, const struct gbuf *in,
		   int nin, bool indirect, void *token);
int gvq_packed_next_id(const struct gvq *q);
bool gvq_packed_kick_needed(struct gvq *q);
int gvq_packed_get_used(struct gvq *q, void **token, uint32_t *len);
int gvq_packed_used_pending(const struct gvq *q);
void gvq_packed_set_interrupts(struct gvq *q, bool enable);
/* Step (@pos, @wrap) forward by @n slots of a ring of @size. */
void gvq_packed_step(uint16_t size, uint16_t *pos, bool *wrap, uint32_t n);

#endif
