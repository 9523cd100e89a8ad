/* SPDX-License-Identifier: MIT */
/*
 * Test harness, guest side: one guest virtqueue ("gvq") in the format the
 * negotiated features say, split or packed (VIRTIO_F_RING_PACKED), driven
 * the way a virtio driver drives it: free list or buffer ids, chains and
 * indirect tables, publish with release, kick and interrupt suppression
 * (flags or EVENT_IDX), used entries read with acquire, IN_ORDER batches
 * expanded. The same calls work on both formats; tests pick the format
 * only through the features they negotiate.
 *
 * For hostile images there are raw writers (a descriptor, an avail entry
 * or index, a packed slot, the event areas) and a raw guest that posts
 * hand-made chains with chosen ids at its own cursor (never mixed with
 * gvq_add() on one ring). Only the Linux uapi ring layout is used, no
 * library code. The device (the library under test) may run in another
 * thread: every ring field it reads or writes is accessed atomically here.
 */
#ifndef VHK_TEST_GVQ_H
#define VHK_TEST_GVQ_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_ring.h>

#include "gmem.h"

/* One guest buffer: gpa + length. */
struct gbuf {
	uint64_t gpa;
	uint32_t len;
};

/* One descriptor of a raw chain: address, length and flags (WRITE, INDIRECT, ...). */
struct gvq_rawbuf {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
};

/* Cursor of the raw guest (gvq_raw_post() and friends). */
struct gvq_raw {
	uint16_t pos;  /* split: avail index to write next; packed: next ring slot */
	bool wrap;     /* packed: its wrap counter */
	uint16_t upos; /* split: used entries read so far; packed: next used slot */
	bool uwrap;    /* packed: its wrap counter */
};

struct gvq_priv;

/*
 * A guest virtqueue. The fields are for reading (and, in hostile tests,
 * for poking the ring through the views); gvq_* calls own the state.
 */
struct gvq {
	struct gmem *mem;
	uint16_t size;
	bool packed;    /* VIRTIO_F_RING_PACKED */
	bool event_idx; /* VIRTIO_F_EVENT_IDX: event indices instead of flags */
	bool in_order;  /* VIRTIO_F_IN_ORDER: used entries may complete batches */
	/*
	 * Ring areas in guest memory, named as SET_VRING_ADDR names them:
	 * split descriptor table, avail ring, used ring; packed descriptor
	 * ring, driver event area (sent as "avail"), device event area ("used").
	 */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* Test views of the areas: the split ones or the packed ones, the others NULL. */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vring_packed_desc *pdesc;
	struct vring_packed_desc_event *drv; /* driver event: the guest writes it */
	struct vring_packed_desc_event *dev; /* device event: the device writes it */
	int kick_fd;         /* eventfd the guest writes (SET_VRING_KICK) */
	int call_fd;         /* eventfd the device writes (SET_VRING_CALL) */
	uint64_t kicks_sent; /* kick eventfd writes so far */
	uint16_t num_free;   /* ring slots not holding an outstanding chain */
	/*
	 * Driver positions. Split: avail_pos is the free-running avail index
	 * (published by gvq_publish()), used_pos the used index read up to.
	 * Packed: the next slot to fill / to read a used entry from, each with
	 * its wrap counter (1 on a fresh ring).
	 */
	uint16_t avail_pos, used_pos;
	bool avail_wrap, used_wrap;
	struct gvq_raw raw;
	struct gvq_priv *priv;
};

/* ---- life cycle ---- */

/*
 * Lay out a ring of @size entries in memory allocated from @m, in the
 * format @features selects: VIRTIO_F_RING_PACKED (bit 34) packed, else
 * split (then @size must be a power of two; packed takes 1..32768);
 * VIRTIO_F_EVENT_IDX (bit 29) event indices; VIRTIO_F_IN_ORDER (bit 35)
 * the in-order driver (used entries complete every buffer up to theirs).
 * Other bits are ignored, so the negotiated feature word can be passed.
 * The ring is zeroed; kick and call eventfds are created. 0 or -errno.
 */
int gvq_new(struct gmem *m, uint16_t size, uint64_t features, struct gvq **ret);
/*
 * Like gvq_new() with the ring at @gpa, areas back to back: split table,
 * avail ring (with used_event), used ring 4-aligned; packed ring, driver
 * event, device event. The bump allocator does not know about it.
 */
int gvq_new_at(struct gmem *m, uint64_t gpa, uint16_t size, uint64_t features, struct gvq **ret);
/* Like gvq_new() with the three ring areas (as gvq names them) where the caller says. */
int gvq_new_placed(struct gmem *m, uint64_t desc, uint64_t avail, uint64_t used, uint16_t size,
		   uint64_t features, struct gvq **ret);
/* Close the eventfds and free the driver state (the ring stays in guest memory). NULL-safe. */
void gvq_free(struct gvq *q);
/*
 * Where a device (re)starting the ring now resumes, as SET_VRING_BASE
 * encodes it: the driver's used position, so that buffers posted and not
 * yet used are processed after the start (split: the used index; packed:
 * used slot | wrap << 15 in both halves; a fresh ring: 0 / 0x80008000).
 * What GET_VRING_BASE answers once the device stopped with nothing in
 * flight and the driver took every used entry.
 */
uint32_t gvq_base(const struct gvq *q);
/*
 * Move the driver to @base (split: an index; packed: the encoding above,
 * avail half and used half), nothing in flight, for tests that start a
 * ring at a position of their choosing.
 */
void gvq_set_base(struct gvq *q, uint32_t base);

/* ---- driver ---- */

/*
 * Post a chain: @nout device-readable buffers then @nin device-writable
 * ones, in an indirect table (allocated in guest memory) when @indirect.
 * @token (non-NULL) comes back from gvq_get_used(). Split: the entry is
 * published by gvq_publish() / gvq_kick(); packed: the chain is available
 * when this returns (its head's flags stored last, release). Does not kick.
 * Returns the head (split) / buffer id (packed), -ENOSPC or -errno.
 */
int gvq_add(struct gvq *q, const struct gbuf *out, int nout, const struct gbuf *in, int nin,
	    bool indirect, void *token);
/* gvq_add(), then gvq_publish(): available at once, no kick (for a polling device). */
int gvq_post(struct gvq *q, const struct gbuf *out, int nout, const struct gbuf *in, int nin,
	     bool indirect, void *token);
/* The head / buffer id the next gvq_add() takes, or -ENOSPC. */
int gvq_next_id(const struct gvq *q);
/* Split: store the avail index (release). Packed: nothing left to publish. */
void gvq_publish(struct gvq *q);
/* Publish, then kick if the device did not suppress it (flags or EVENT_IDX). */
void gvq_kick(struct gvq *q);
/* Write the kick eventfd unconditionally. */
void gvq_kick_force(struct gvq *q);
/*
 * Next used buffer: 1 with its token and used length, 0 if none, -EIO if
 * the device returned a head / id that was not outstanding. In-order: each
 * buffer of a batch in turn, the skipped ones with length 0.
 */
int gvq_get_used(struct gvq *q, void **token, uint32_t *len);
/*
 * Buffers the device returned that gvq_get_used() has not taken yet (an
 * IN_ORDER batch counts every buffer it completes); consumes nothing.
 * Packed: -EIO for a used descriptor naming no outstanding buffer.
 */
int gvq_used_pending(const struct gvq *q);
/* Ask the device for used notifications, or suppress them (flags / event index). */
void gvq_set_interrupts(struct gvq *q, bool enable);
/* Consume the call eventfd: notifications since the last read (0 if none). */
uint64_t gvq_read_calls(struct gvq *q);
/* Wait up to @timeout_ms for the call eventfd to become readable (not consumed). */
bool gvq_wait_call(struct gvq *q, int timeout_ms);

/* ---- device-written fields ---- */

/* Split: used->idx, used->flags, avail_event (after the used ring). */
uint16_t gvq_used_idx(const struct gvq *q);
uint16_t gvq_used_flags(const struct gvq *q);
uint16_t gvq_avail_event(const struct gvq *q);
/* Packed: the device event area's flags and off_wrap. */
uint16_t gvq_dev_flags(const struct gvq *q);
uint16_t gvq_dev_off_wrap(const struct gvq *q);

/* ---- raw writers (hostile images) ---- */

/* Split: descriptor table entry @i (masked to the ring). */
void gvq_raw_desc(struct gvq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next);
/* Split: avail ring entry @slot (masked), and avail->idx (release). */
void gvq_raw_avail(struct gvq *q, uint16_t slot, uint16_t head);
void gvq_raw_avail_idx(struct gvq *q, uint16_t idx);
/* Split: used_event (after the avail ring), then a full barrier. */
void gvq_raw_used_event(struct gvq *q, uint16_t v);
/* Packed: ring slot @pos (mod size): addr, len, id, then the flags word (release). */
void gvq_raw_slot(struct gvq *q, uint16_t pos, uint64_t addr, uint32_t len, uint16_t id,
		  uint16_t flags);
/* Packed: the driver event area (off_wrap, then flags with release), then a full barrier. */
void gvq_raw_drv_event(struct gvq *q, uint16_t flags, uint16_t off_wrap);
/* Packed: the AVAIL / USED flag bits that make a descriptor available in lap @wrap. */
uint16_t gvq_avail_bits(bool wrap);
/*
 * The addr / len fields of descriptor @i (split table entry or packed slot;
 * both layouts start with addr:u64, len:u32), for writers racing the device.
 */
__u64 *gvq_desc_addr(struct gvq *q, uint16_t i);
uint32_t *gvq_desc_len(struct gvq *q, uint16_t i);

/*
 * The raw guest: hand-made chains at q->raw (never mixed with gvq_add()
 * on one ring). A chain of @n descriptors @b with id @id: split uses table
 * entries @id, @id + 1, ... (mod size) linked by next and appends @id to
 * the avail ring, publishing the index; packed fills the next @n slots,
 * every one with buffer id @id and the lap's avail bits, NEXT on all but
 * the last, the head's flags stored last. Returns where the head
 * descriptor sits, as gvq_desc_addr() takes it: split the table entry
 * (@id, masked), packed the ring slot.
 */
uint16_t gvq_raw_post(struct gvq *q, const struct gvq_rawbuf *b, int n, uint16_t id);
/* Split: append @head to the avail ring at q->raw.pos and publish the index. */
void gvq_raw_push(struct gvq *q, uint16_t head);
/*
 * Make descriptor @id available again without touching its addr and len
 * (a racing writer owns them). Split: appends @id to the avail ring
 * (table entry written earlier with gvq_raw_desc()); packed: the next
 * slot's id, then its flags (@flags | the lap's avail bits, release).
 * Returns the head descriptor's place as gvq_raw_post() does.
 */
uint16_t gvq_raw_republish(struct gvq *q, uint16_t id, uint16_t flags);
/*
 * The next used entry at the raw cursor: 1 with its id and length, 0 if
 * the device wrote none. Packed: the cursor steps over as many slots as the
 * raw chain with that id took (one for ids never posted).
 */
int gvq_raw_used(struct gvq *q, uint16_t *id, uint32_t *len);

/* ---- test binaries run once per ring format ---- */

/* The run's format: set by gvq_parse_format() (DP / invariant / API runs). */
extern bool gvq_run_packed;
/* VIRTIO_F_RING_PACKED on a packed run, else 0 (for feature words). */
uint64_t gvq_run_features(void);
/*
 * Take the ring format from @argv ("--packed" / "--split", removed so a
 * case name may follow) or else from $VHK_RING ("packed" / "split");
 * default split. Sets gvq_run_packed; false (with a message) on an unknown
 * format or option.
 */
bool gvq_parse_format(int *argc, char **argv);

/* TEST_MAIN (test.h) for binaries that take the ring format on the command line. */
#define GVQ_TEST_MAIN(...)                                                                     \
	int main(int argc, char **argv)                                                        \
	{                                                                                      \
		static const struct test_case cases_[] = {__VA_ARGS__};                        \
		if (!gvq_parse_format(&argc, argv))                                            \
			return 2;                                                              \
		return test_run_main(cases_, sizeof(cases_) / sizeof(cases_[0]), argc, argv);  \
	}

#endif
