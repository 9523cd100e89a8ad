/* SPDX-License-Identifier: MIT */
/*
 * Dirty logging of one vq (live migration): a write observer of the
 * guest-write seam (vq_guest.h). While the device's log is mapped and
 * logging is on, the vq's observer (vq->wobs) is this one: every write the
 * seam reports is turned into guest physical pages, and their bits are set
 * in the log (mem/mem_log.h).
 *
 * What is logged, as the vhost-user spec says ("Migration"):
 *  - buffer writes (VQ_WRITE_BUF) while VHOST_F_LOG_ALL is negotiated, at
 *    the GPA the memory table gives for our address (mem_hva_to_gpa);
 *  - the ring's own writes while the ring has VHOST_VRING_F_LOG: the used
 *    ring of a split ring and the device event area of a packed ring at
 *    the ring's log_guest_addr plus the offset written (the address may
 *    lie outside the memory table), and the used write-back of a packed
 *    descriptor ring at the descriptor ring's own GPA (through the memory
 *    table: log_guest_addr names the device area there).
 *
 * Batching: bits go into one pending log byte (8 pages, 32 KiB) per vq;
 * a write in another byte first publishes the pending one with one atomic
 * OR. The pending byte is published at the end of every flush of used
 * entries (vq_guest.h vqg_commit), after an event-area write, when a
 * burst ends without a flush, and by the control thread before anything
 * about logging changes or the ring stops: a bit is never set before the
 * write it stands for, and never left pending once the ring stops (the
 * frontend's last read of the log follows GET_VRING_BASE).
 *
 * An observer installed with vq_set_write_observer() (tests) still sees
 * every write: the log forwards to it.
 *
 * Includes: util, mem, vq_guest.h. Control fields change with the vq
 * quiesced; the pending byte belongs to the thread inside the vq.
 */
#ifndef VHK_VQ_VQ_LOG_H
#define VHK_VQ_VQ_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "mem/mem_log.h"
#include "vq/vq_guest.h"

struct vq_log {
	/* ---- control-owned (vq quiesced) ---- */
	const struct mem_log *log;           /* the device's log, NULL when none is mapped */
	const struct vq_write_observer *ext; /* vq_set_write_observer()'s, forwarded to */
	struct vq_write_observer obs;        /* this log as an observer (ctx: the vq) */
	bool all;                            /* log buffer writes (LOG_ALL) */
	bool ring;                           /* log the ring's writes (VHOST_VRING_F_LOG) */
	const uint8_t *ring_hva;             /* used ring (split) / device event area (packed) */
	uint64_t ring_len;                   /* its bytes; 0: log it through the memory table */
	uint64_t ring_gpa;                   /* log_guest_addr */
	const uint8_t *desc_hva;             /* packed descriptor ring: our address, */
	uint64_t desc_len;                   /* its bytes (0: through the table) */
	uint64_t desc_gpa;                   /* and its GPA */
	/* ---- the thread inside the vq ---- */
	uint32_t hint;      /* region hint of the reverse translation */
	uintptr_t span_hva; /* that region, cached: our address, bytes (0: none), GPA */
	uint64_t span_size;
	uint64_t span_gpa;
	uint8_t pend_mask;  /* bits waiting for byte pend_byte of the log; 0: none */
	uint64_t pend_byte;
	uint64_t ors;       /* atomic ORs made (statistics) */
};

#endif
