/* SPDX-License-Identifier: MIT */
/*
 * Test harness, guest side: guest RAM backed by memfd regions, a bump
 * allocator for guest buffers, and a guest-side split virtqueue driver that
 * writes descriptors/avail and reads used exactly as a virtio driver does.
 * Owner: helper D2. Uses the Linux uapi ring layout only (no library code).
 */
#ifndef VHK_TEST_GRING_H
#define VHK_TEST_GRING_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_ring.h>

#include "gvq.h"

struct gring {
	struct gmem *mem;
	uint16_t size;
	bool event_idx;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;   /* frontend pointers */
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t free_head, num_free;
	uint16_t avail_idx;        /* shadow of avail->idx */
	uint16_t last_used;        /* next used entry to read */
	void **tokens;             /* per head */
	uint16_t *chain_len;       /* descs used per head (0 for indirect = 1) */
	uint64_t *indirect_gpa;    /* per head, indirect table or 0 */
	int kick_fd;               /* eventfd, we write it (guest -> device) */
	int call_fd;               /* eventfd, device writes it */
	uint64_t kicks_sent;
};

/* Lay out a split ring of @size entries in guest memory (allocated from m). */
int gring_new(struct gmem *m, uint16_t size, bool event_idx, struct gring **ret);
void gring_free(struct gring *r);
/*
 * Post a chain: @nout device-readable buffers then @nin device-writable ones.
 * With @indirect the chain goes into an indirect table (allocated in guest
 * memory). Returns the head id or -ENOSPC / -errno. @token comes back from
 * gring_get_used. Does not kick.
 */
int gring_add(struct gring *r, const struct gbuf *out, int nout, const struct gbuf *in, int nin,
	      bool indirect, void *token);
/* Publish avail idx (release) and kick if the device did not suppress it. */
void gring_kick(struct gring *r);
/* Unconditionally write the kick eventfd. */
void gring_kick_force(struct gring *r);
/* Next used entry: returns 1 and fills token/len, 0 if none, -EIO if the
 * device returned a head that was not outstanding. */
int gring_get_used(struct gring *r, void **token, uint32_t *len);
/* Ask the device for (or suppress) used notifications: flags or used_event. */
void gring_set_interrupts(struct gring *r, bool enable);
/* Raw access for hostile tests: write a descriptor / avail entry / avail idx directly. */
void gring_raw_desc(struct gring *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		    uint16_t next);
void gring_raw_avail(struct gring *r, uint16_t slot, uint16_t head);
void gring_raw_avail_idx(struct gring *r, uint16_t idx);

/* ---- additions (helper D2) ---- */
/* Publish avail idx (release) without kicking (polling-mode device). */
void gring_publish(struct gring *r);
/* Consume the call eventfd: device notifications since the last read (0 if none). */
uint64_t gring_read_calls(struct gring *r);
/* Wait up to @timeout_ms for the call eventfd to become readable (does not consume). */
bool gring_wait_call(struct gring *r, int timeout_ms);
/* Write used_event (EVENT_IDX) directly: ask for a call once entry @v is used. */
void gring_raw_used_event(struct gring *r, uint16_t v);
/* Device-written fields: used->flags, avail_event (used ring tail), used->idx. */
uint16_t gring_used_flags(const struct gring *r);
uint16_t gring_avail_event(const struct gring *r);
uint16_t gring_used_idx(const struct gring *r);
/*
 * VIRTIO_F_IN_ORDER driver: from now on the used entry at our used position
 * with id X completes, in avail order, every outstanding buffer up to X
 * (used->idx tells how many; the skipped ones report len 0). Call before the
 * first gring_add. 0 or -ENOMEM.
 */
int gring_set_in_order(struct gring *r);

struct vuf;
/* Transitional: vring start-up over vuf for a gring (the tests move to gvq). */
int vuf_set_gring_addr(struct vuf *v, uint32_t index, const struct gring *r);
int vuf_start_gring(struct vuf *v, uint32_t index, struct gring *r);

#endif
