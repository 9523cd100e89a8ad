/* SPDX-License-Identifier: MIT */
/*
 * Shared fixture of the invariant tests (tests/invariants/): a library
 * socket started in-process (tests/integration/common.h), a negotiated vuf
 * frontend with guest memory and rings, and the growth probes used by the
 * repeated cases (fd count, mapping count, heap). Owner: helper G.
 */
#ifndef VHK_INV_COMMON_H
#define VHK_INV_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "gring.h"
#include "vuf.h"

/* Growth limits after a warm-up: thousands of repetitions must stay inside. */
#define INV_FD_SLACK   2
#define INV_MAP_SLACK  4
#define INV_HEAP_SLACK 512 /* KiB */

/* One frontend connected to a custom one-pair device or the net device. */
struct inv {
	const char *path;
	struct vuf *v;
	int vid;
	struct gmem *m;
	struct gring *r[2];
};

/* Start a custom (non-net) socket with @pf offered; @ops may be NULL (1 queue). */
void inv_start_custom(struct inv *f, uint64_t pf, const struct vhk_device_ops *ops);
/* Start a net socket (VHK_NET_DEFAULT_FEATURES offered, one pair). */
void inv_start_net(struct inv *f);
/* Connect + negotiate @features / @pf; remembers the vid. */
void inv_connect(struct inv *f, uint64_t features, uint64_t pf);
/* Guest RAM (@nregions x @size, GPA 0, no gap) and two rings of @qsize. */
void inv_guest(struct inv *f, uint32_t nregions, uint64_t size, uint16_t qsize, bool event_idx);
/* SET_MEM_TABLE + start rings 0..@nrings-1; waits for new_device. */
void inv_bring_up(struct inv *f, uint32_t nrings);
/* Close the frontend and free the guest side (the socket stays). */
void inv_close(struct inv *f);

/* vhk_dev_get_vring() that must succeed. */
struct vhk_vring_info inv_vring(const struct inv *f, uint16_t q);

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
