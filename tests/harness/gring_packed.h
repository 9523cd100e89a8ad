/* SPDX-License-Identifier: MIT */
/*
 * Test harness, guest side: a packed virtqueue driver (VIRTIO_F_RING_PACKED)
 * over the gmem guest RAM of gring.h. It writes descriptors with avail/used
 * flags and wrap counters, buffer ids, chains with NEXT, indirect tables and
 * the driver event suppression structure (with and without EVENT_IDX), and
 * consumes used descriptors as a virtio driver does. Owner: helper P. Uses
 * the Linux uapi ring layout only (no library code).
 */
#ifndef VHK_TEST_GRING_PACKED_H
#define VHK_TEST_GRING_PACKED_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_ring.h>

#include "gring.h"

struct vuf;

struct pring {
	struct gmem *mem;
	uint16_t size;
	bool event_idx;
	uint64_t desc_gpa, drv_gpa, dev_gpa;  /* ring, driver event, device event */
	struct vring_packed_desc *desc;       /* frontend pointers */
	struct vring_packed_desc_event *drv;  /* we write */
	struct vring_packed_desc_event *dev;  /* the device writes */
	uint16_t next_avail;                  /* next ring slot to fill */
	bool avail_wrap;
	uint16_t last_used;                   /* next ring slot to read a used entry from */
	bool used_wrap;
	uint16_t num_free;                    /* free ring slots */
	uint16_t *free_ids;                   /* stack of free buffer ids */
	uint16_t nfree_ids;
	uint16_t *chain_len;                  /* ring slots per outstanding id */
	void **tokens;                        /* per id, NULL when free */
	uint64_t *indirect_gpa;               /* per id, cached table */
	uint16_t *icap;                       /* its capacity in entries */
	uint16_t kicked_pos;                  /* avail position at the last kick decision */
	bool kicked_wrap;
	bool irq_on;
	int kick_fd;                          /* eventfd, we write it */
	int call_fd;                          /* eventfd, the device writes it */
	uint64_t kicks_sent;
	/* VIRTIO_F_IN_ORDER driver mode (pring_set_in_order): */
	uint16_t *order;                      /* buffer id per head ring slot, or NULL */
	uint32_t batch_last;                  /* id of the used entry being expanded, or UINT32_MAX */
	uint32_t batch_len;
};

/* Lay out a packed ring of @size (1..32768) entries in guest memory. */
int pring_new(struct gmem *m, uint16_t size, bool event_idx, struct pring **ret);
void pring_free(struct pring *r);
/*
 * Post a chain: @nout readable buffers then @nin writable ones (in an
 * indirect table when @indirect). The head descriptor's flags are stored
 * last (release). Returns the buffer id or -ENOSPC / -errno. Does not kick.
 */
int pring_add(struct pring *r, const struct gbuf *out, int nout, const struct gbuf *in, int nin,
	      bool indirect, void *token);
/* Kick if the device's event structure asks for it (flags / EVENT_IDX offset). */
void pring_kick(struct pring *r);
void pring_kick_force(struct pring *r);
/* Next used entry: 1 with token/len, 0 if none, -EIO for an id not outstanding. */
int pring_get_used(struct pring *r, void **token, uint32_t *len);
/*
 * VIRTIO_F_IN_ORDER driver: from now on a used descriptor with id X at our
 * used position completes, in ring order, every outstanding buffer up to X
 * (the skipped ones with len 0). Call before the first pring_add. 0/-ENOMEM.
 */
int pring_set_in_order(struct pring *r);
/* Ask for (or suppress) used notifications: ENABLE/DISABLE, or DESC at last_used. */
void pring_set_interrupts(struct pring *r, bool enable);
/* Driver event structure written directly (hostile and EVENT_IDX tests). */
void pring_raw_drv_event(struct pring *r, uint16_t flags, uint16_t off_wrap);
/* Write ring slot @pos directly: addr, len, id and the full flags word (stored last). */
void pring_raw_desc(struct pring *r, uint16_t pos, uint64_t addr, uint32_t len, uint16_t id,
		    uint16_t flags);
/* Flag bits that make a descriptor available in lap @wrap. */
uint16_t pring_avail_bits(bool wrap);
/* Device event structure (as the device wrote it). */
uint16_t pring_dev_flags(const struct pring *r);
uint16_t pring_dev_off_wrap(const struct pring *r);
/* Call eventfd: consume (count) / wait for readability. */
uint64_t pring_read_calls(struct pring *r);
bool pring_wait_call(struct pring *r, int timeout_ms);

/*
 * Vring setup over vhost-user for a packed ring: SET_VRING_NUM,
 * SET_VRING_BASE @base (0x80008000 for a fresh ring), SET_VRING_ADDR (desc,
 * driver area as avail, device area as used), KICK, CALL, ENABLE.
 */
int pring_start_vring(struct vuf *v, uint32_t index, struct pring *r, uint32_t base);
/* The GET_VRING_BASE encoding of the driver's current positions (nothing in flight). */
uint32_t pring_base(const struct pring *r);

#endif
