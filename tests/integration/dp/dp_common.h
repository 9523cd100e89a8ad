/* SPDX-License-Identifier: MIT */
/*
 * Shared fixture for the datapath and lifecycle integration tests: the
 * library runs in-process (its control thread serves a temp socket), the
 * vuf frontend negotiates over that socket like QEMU and the guest side of
 * every vring is a gvq in the negotiated format: one fixture for both ring
 * formats. The format comes from dp_opts.packed or, for every dp_setup() of
 * a binary, from its command line (GVQ_TEST_MAIN: --packed / --split, else
 * $VHK_RING). On top of the harness it keeps what a net guest needs: one
 * guest slot per head / buffer id, the buffers of every posted chain, and
 * packet send / receive helpers.
 */
#ifndef VHK_TEST_DP_COMMON_H
#define VHK_TEST_DP_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_net.h>

#include <vhostkit/vhostkit.h>

#include "gvq.h"
#include "test.h"
#include "vuf.h"

#define DP_MAX_VRINGS 16
#define DP_MAX_BUFS   8	     /* guest buffers in one posted chain */
#define DP_SLOT	      16384u /* guest memory per ring slot (fits hdr + 9000 + split gaps) */
#define DP_DATA_OFF   256u   /* data offset inside a slot when the header is split off */
#define DP_TIMEOUT_MS 5000
#define DP_MAX_PKT    9000u /* largest frame the tests send */
#define DP_MRG_BUF    1536u /* receive buffer size the MRG_RXBUF tests post */

/* Virtio features every test asks for unless it says otherwise. */
#define DP_F(bit)	 (1ull << (bit))
#define DP_BASE_FEATURES (DP_F(VHK_F_VERSION_1) | DP_F(VHK_F_PROTOCOL_FEATURES))
#define DP_BASE_PF	 (DP_F(VHK_PF_REPLY_ACK) | DP_F(VHK_PF_MQ))
#define DP_PACKED_F	 DP_F(VHK_F_RING_PACKED)
/* SET_VRING_BASE of a fresh packed ring: index 0, wrap counters 1. */
#define DP_PACKED_FRESH 0x80008000u

/* Library callback observations (one test per process, so globals are fine). */
extern atomic_int dp_vid;	    /* current device, -1 when none */
extern atomic_int dp_last_vid;	    /* last device ever created */
extern atomic_int dp_new_count;	    /* new_device calls */
extern atomic_int dp_destroy_count; /* destroy_device calls */
struct dp_opts {
	uint64_t reg_flags;   /* vhk_socket_register flags (VHK_CLIENT) */
	uint32_t pairs;	      /* queue pairs to offer and to start (0 = 1) */
	uint64_t features;    /* wanted virtio features (0 = DP_BASE_FEATURES) */
	uint64_t pf;	      /* wanted protocol features (0 = DP_BASE_PF) */
	uint32_t nregions;    /* guest RAM regions (0 = 8) */
	uint64_t region_size; /* bytes per region (0 = 8 MiB) */
	uint64_t gap;	      /* GPA gap between regions */
	uint16_t ring_size;   /* entries per vring (0 = 256; packed allows any size) */
	bool packed;	      /* packed rings (negotiates RING_PACKED); also when gvq_run_packed */
};

/* What the guest posted in one chain (for reading back / the slot owner). */
struct dp_meta {
	struct gbuf b[DP_MAX_BUFS];
	int n;
};

struct dp_env {
	char dir[64];
	char path[108];
	struct dp_opts o;
	int lfd; /* listening fd in client mode, else -1 */
	struct vuf *v;
	struct gmem *m;
	uint32_t nvrings;
	bool packed;			     /* the rings are packed */
	struct gvq *vq[DP_MAX_VRINGS];	     /* guest side of every vring */
	uint64_t *slot[DP_MAX_VRINGS];	     /* per head / buffer id: guest slot gpa (lazy) */
	struct dp_meta *meta[DP_MAX_VRINGS]; /* per head / buffer id */
	uint32_t hdr_len;		     /* 10 or 12 */
	bool mrg;
	struct vhk_pool *pool;
	int vid;
};

/* Fill @len bytes with pseudo-random data from @seed (xorshift). */
void dp_random(uint8_t *buf, uint32_t len, uint32_t *seed);
/* Milliseconds on the monotonic clock. */
int64_t dp_now_ms(void);

/* Register, attach net, set callbacks and start the socket (server or client mode). */
void dp_lib_start(struct dp_env *e, const struct dp_opts *o);
/* Frontend side: connect (or listen+accept in client mode), negotiate, map
 * fresh guest RAM, start every vring, wait for new_device. */
void dp_front_start(struct dp_env *e);
/* Both of the above. */
void dp_setup(struct dp_env *e, const struct dp_opts *o);
/* Close the frontend and free the guest side (library stays registered). */
void dp_front_stop(struct dp_env *e);
/* Everything: frontend, unregister, pool, temp dir. */
void dp_teardown(struct dp_env *e);
/* Wait until new_device has run @count times in total; returns the vid. */
int dp_wait_new_device(int count, int timeout_ms);

/* ---- guest side ---- */

/* "split" or "packed": the format of @e (for messages). */
const char *dp_format(const struct dp_env *e);
/* Guest slot memory for the next head (split) / buffer id (packed) of vring @q. */
uint64_t dp_next_slot(struct dp_env *e, uint32_t q);
/* Post a chain of buffers on vring @q (all readable or all writable). Returns head or -errno. */
int dp_post(struct dp_env *e, uint32_t q, const struct gbuf *b, int n, bool writable,
	    bool indirect);
/* Post @count receive buffers on vring @q of @buflen data bytes each (the
 * header gets its own descriptor when @split_hdr, else it shares the buffer). */
void dp_post_rx(struct dp_env *e, uint32_t q, int count, uint32_t buflen, bool split_hdr,
		bool indirect);
/*
 * Receive one packet from vring @q (guest RX): waits for a used entry,
 * gathers its bytes; with MRG_RXBUF gathers num_buffers entries. Copies the
 * header to @hdr (hdr_len bytes) and the data to @data. Returns the data
 * length, or -ETIMEDOUT / -EIO / -EMSGSIZE. @nbufs gets the entries used.
 */
int dp_recv(struct dp_env *e, uint32_t q, void *hdr, uint8_t *data, uint32_t cap, int *nbufs,
	    int timeout_ms);
/* Guest TX on vring @q: header + data, data split in @nsplit pieces; the
 * header gets its own descriptor when @split_hdr. Publishes and kicks. */
void dp_send(struct dp_env *e, uint32_t q, const struct virtio_net_hdr *hdr, const uint8_t *data,
	     uint32_t len, int nsplit, bool split_hdr, bool indirect);
/* Reap used TX entries of vring @q until @count came back. Returns how many. */
int dp_reap(struct dp_env *e, uint32_t q, int count, int timeout_ms);
/* ---- host side ---- */

/* A packet holding @len bytes of @data, chained over pool buffers. */
struct vhk_pkt *dp_pkt_make(struct vhk_pool *pool, const uint8_t *data, uint32_t len);
/* True if @p holds exactly @len bytes equal to @data (and its chain is consistent). */
bool dp_pkt_equal(const struct vhk_pkt *p, const uint8_t *data, uint32_t len);
/* Enqueue all @n packets on vring @q, retrying until @timeout_ms. Returns enqueued. */
int dp_enqueue_all(int vid, uint16_t q, struct vhk_pkt **pkts, int n, int timeout_ms);
/* Dequeue until @n packets arrived or @timeout_ms passed. Returns the count. */
int dp_dequeue_n(int vid, uint16_t q, struct vhk_pool *pool, struct vhk_pkt **pkts, int n,
		 int timeout_ms);
/* One packet of @len random bytes each way on queue pair @pair, byte-checked
 * (posts one receive buffer first). */
void dp_roundtrip(struct dp_env *e, uint32_t pair, uint32_t len, uint32_t seed);
/*
 * Like dp_roundtrip() with a buffer layout: receive buffers of DP_MRG_BUF
 * bytes under MRG_RXBUF (num_buffers checked), else one buffer for up to
 * DP_MAX_PKT bytes; the header in its own descriptor and TX data in three
 * pieces when @split_hdr; indirect tables when @indirect. @len <= DP_MAX_PKT.
 */
void dp_roundtrip_ex(struct dp_env *e, uint32_t pair, uint32_t len, uint32_t seed, bool split_hdr,
		     bool indirect);
/* Build a 14+20+20 byte Ethernet/IPv4/TCP header followed by random payload. */
void dp_make_tcp(uint8_t *frame, uint32_t len, uint32_t *seed);

#endif
