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
#include "gring_packed.h"
#include "vuf.h"

/* Growth limits after a warm-up: thousands of repetitions must stay inside. */
#define INV_FD_SLACK   2
#define INV_MAP_SLACK  4
#define INV_HEAP_SLACK 512 /* KiB */

/*
 * Ring format of this run: false = split (gring), true = packed (pring,
 * VIRTIO_F_RING_PACKED offered and negotiated). Set by inv_parse_format()
 * before any case forks; inv_guest() lays out rings of this format.
 */
extern bool inv_packed;
/* Take a leading "--packed" / "--split" off argv; returns the new argc. */
int inv_parse_format(int argc, char **argv);

/* One frontend connected to a custom one-pair device or the net device. */
struct inv {
	const char *path;
	struct vuf *v;
	int vid;
	struct gmem *m;
	struct gring *r[2]; /* split rings (NULL on a packed run) */
	struct pring *p[2]; /* packed rings (NULL on a split run) */
};

/* Start a custom (non-net) socket with @pf offered; @ops may be NULL (1 queue). */
void inv_start_custom(struct inv *f, uint64_t pf, const struct vhk_device_ops *ops);
/* Start a net socket (VHK_NET_DEFAULT_FEATURES offered, one pair). */
void inv_start_net(struct inv *f);
/* Connect + negotiate @features / @pf; remembers the vid. */
void inv_connect(struct inv *f, uint64_t features, uint64_t pf);
/* Guest RAM (@nregions x @size, GPA 0, no gap) and two rings of @qsize (format: inv_packed). */
void inv_guest(struct inv *f, uint32_t nregions, uint64_t size, uint16_t qsize, bool event_idx);
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

/* ---- format-neutral guest driver on ring @q (gring or pring underneath) ---- */
/* Post a chain (readable then writable buffers) and publish it, no kick: id or -errno. */
int inv_add(struct inv *f, uint32_t q, const struct gbuf *out, int nout, const struct gbuf *in,
	    int nin, bool indirect, void *token);
/* Next used entry: 1 with token/len, 0 none, -EIO unknown id/head. */
int inv_get_used(struct inv *f, uint32_t q, void **token, uint32_t *len);
/* Consume the call eventfd (count since last read, 0 if none). */
uint64_t inv_read_calls(struct inv *f, uint32_t q);
/* Write the kick eventfd unconditionally / its fd (for SET_VRING_KICK). */
void inv_kick_force(struct inv *f, uint32_t q);
int inv_kick_fd(const struct inv *f, uint32_t q);
uint16_t inv_qsize(const struct inv *f, uint32_t q);
/* (after - before) ring positions, modulo the ring size (last_avail_idx deltas). */
uint16_t inv_pos_delta(const struct inv *f, uint32_t q, uint16_t before, uint16_t after);

/*
 * Raw guest for hostile cases: the test owns the ring positions and posts
 * one-slot chains by hand (never mixed with inv_add on the same ring).
 * Split: descriptor @id is written and @id goes into the next avail entry.
 * Packed: the descriptor (with buffer id @id) goes into the next ring slot,
 * flags ORed with the avail bits of the lap, stored last (release).
 */
struct inv_raw {
	uint16_t pos;   /* split: avail idx; packed: next slot */
	bool wrap;      /* packed: avail wrap counter */
	uint16_t upos;  /* split: used entries seen; packed: next used slot */
	bool uwrap;     /* packed: used wrap counter */
};
void inv_raw_init(struct inv_raw *rw);
/* Post one descriptor as a chain; returns the ring slot written (packed) or @id (split). */
uint16_t inv_raw_post(struct inv *f, uint32_t q, struct inv_raw *rw, uint16_t id, uint64_t addr,
		      uint32_t len, uint16_t flags);
/*
 * Make descriptor @id available again without touching its addr and len
 * (a racing writer owns them). Split: only the next avail entry (descriptor
 * @id written earlier by gring_raw_desc); packed: the next slot's id, then
 * its flags (@flags | the lap's avail bits, release); returns that slot.
 */
uint16_t inv_raw_republish(struct inv *f, uint32_t q, struct inv_raw *rw, uint16_t id,
			   uint16_t flags);
/* The next used entry of a raw ring: 1 with id and len, 0 if the device wrote none. */
int inv_raw_used(struct inv *f, uint32_t q, struct inv_raw *rw, uint16_t *id, uint32_t *len);
/*
 * Address / length fields of ring descriptor @i (split table entry or packed
 * ring slot; both layouts start with addr:u64, len:u32), for racing writers
 * (__u64: the uapi type of both addr fields).
 */
__u64 *inv_desc_addr(struct inv *f, uint32_t q, uint16_t i);
uint32_t *inv_desc_len(struct inv *f, uint32_t q, uint16_t i);

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
