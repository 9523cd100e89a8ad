/* SPDX-License-Identifier: MIT */
/*
 * Shared fixture of the invariant tests (tests/invariants/): a library
 * socket started in-process (tests/integration/common.h), a negotiated vuf
 * frontend with guest memory and two guest rings (gvq) in the run's ring
 * format, and the growth probes used by the repeated cases (fd count,
 * mapping count, heap).
 */
#ifndef VHK_INV_COMMON_H
#define VHK_INV_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "gvq.h"
#include "vuf.h"

/* Growth limits after a warm-up: thousands of repetitions must stay inside. */
#define INV_FD_SLACK   2
#define INV_MAP_SLACK  4
#define INV_HEAP_SLACK 512 /* KiB */

/*
 * Ring format of this run: false = split, true = packed (VIRTIO_F_RING_PACKED
 * offered and negotiated). Set from the command line (GVQ_TEST_MAIN) before
 * any case forks; inv_guest() lays out rings of this format.
 */
#define inv_packed gvq_run_packed

/* One frontend connected to a custom one-pair device or the net device. */
struct inv {
	const char *path;
	struct vuf *v;
	int vid;
	struct gmem *m;
	struct gvq *vq[2]; /* guest rings 0 and 1 */
};

/* Start a custom (non-net) socket with @pf offered; @ops may be NULL (1 queue). */
void inv_start_custom(struct inv *f, uint64_t pf, const struct vhk_device_ops *ops);
/* Start a net socket (VHK_NET_DEFAULT_FEATURES offered, one pair). */
void inv_start_net(struct inv *f);
/* Connect + negotiate @features / @pf; remembers the vid. */
void inv_connect(struct inv *f, uint64_t features, uint64_t pf);
/*
 * Guest RAM (@nregions x @size, GPA 0, no gap) and two rings of @qsize in
 * the run's format, with @features' EVENT_IDX and IN_ORDER.
 */
void inv_guest(struct inv *f, uint32_t nregions, uint64_t size, uint16_t qsize, uint64_t features);
/* SET_MEM_TABLE + start rings 0..@nrings-1; waits for new_device. */
void inv_bring_up(struct inv *f, uint32_t nrings);
/*
 * Net features without MRG_RXBUF (one chain per packet) and EVENT_IDX (every
 * flush calls); RING_PACKED exactly on a packed run.
 */
#define INV_NETF                                                                           \
	((VHK_NET_DEFAULT_FEATURES &                                                       \
	  ~(BIT(VHK_NET_F_MRG_RXBUF) | BIT(VHK_F_EVENT_IDX) | BIT(VHK_F_RING_PACKED))) |    \
	 (inv_packed ? BIT(VHK_F_RING_PACKED) : 0))
/*
 * Net device on one pair with @features: guest RAM of one @memsz region,
 * rings of @qsize in the run's format (checked on both sides; the drivers
 * expand IN_ORDER batches when it was negotiated), vring 0 guest RX, 1 TX.
 */
void inv_net_up(struct inv *f, uint64_t features, uint64_t memsz, uint16_t qsize);
/* Close the frontend and free the guest side (the socket stays). */
void inv_close(struct inv *f);

/* vhk_vq_get_info() that must succeed. */
struct vhk_vq_info inv_vring(const struct inv *f, uint16_t q);

/* (after - before) ring positions, modulo the ring size (last_avail_idx deltas). */
uint16_t inv_pos_delta(const struct inv *f, uint32_t q, uint16_t before, uint16_t after);

/* Resource snapshot of this process (the library runs inside it). */
struct inv_usage {
	int fds, maps;
	long heap;
};
struct inv_usage inv_usage_now(void);
/* The current usage is within the slack of @base (fds settle first). */
void inv_usage_check(const struct inv_usage *base, const char *what);

/* FD_CLOEXEC set on @fd. */
bool inv_fd_cloexec(int fd);
/* VmFlags of the mapping holding @addr contain "dd" (MADV_DONTDUMP). */
bool inv_addr_dontdump(const void *addr);

#endif
