/* SPDX-License-Identifier: MIT */
/*
 * vhk-fwd: a testpmd-like packet forwarder on one vhost-user socket.
 * Shared definitions of the application's modules:
 *   main.c    options, setup, signals, the main (statistics) loop
 *   devices.c device list kept by the library callbacks, with the
 *             generation/ack handshake that fences the forwarding thread
 *   fwd.c     the forwarding thread and the modes
 *   pkt.c     frame builders and parsers (UDP template, ARP, ICMP echo)
 *   stats.c   counters, live rates, summary and the JSON line
 */
#ifndef VHK_FWD_H
#define VHK_FWD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <vhostkit/vhostkit.h>

#define FWD_MAX_DEVS 16
#define FWD_MAX_BURST 512
#define FWD_MIN_PKT_LEN 42   /* Ethernet 14 + IPv4 20 + UDP 8 */
#define FWD_MAX_PKT_LEN 9216
#define FWD_MAX_EXPECT 8     /* --expect-frame options */

enum fwd_mode {
	FWD_RXONLY,
	FWD_TXONLY,
	FWD_MAC,
	FWD_IO,
	FWD_ECHO,
};

/* Parsed command line. */
struct fwd_opts {
	const char *socket;
	bool client;
	uint32_t queues;
	enum fwd_mode mode;
	uint32_t pkt_len;
	uint32_t burst;
	uint32_t tx_first;   /* --tx-first bursts per queue pair (0 = none) */
	double duration;     /* seconds, 0 = until a signal */
	double start_delay;  /* seconds between a device's arrival and our first send to it */
	double stats_period; /* seconds, 0 = no live statistics */
	uint64_t disable_features;
	bool json;
	uint8_t mac[6];      /* our Ethernet address */
	/* --expect-frame: every frame received must equal one of these */
	const uint8_t *expect[FWD_MAX_EXPECT];
	uint32_t expect_len[FWD_MAX_EXPECT];
	uint32_t nexpect;      /* 0 = no --expect-frame */
};

/* Counters: written by the forwarding thread only, read by anyone. */
struct fwd_stats {
	_Atomic uint64_t rx_packets; /* from the guest */
	_Atomic uint64_t rx_bytes;
	_Atomic uint64_t tx_packets; /* to the guest */
	_Atomic uint64_t tx_bytes;
	_Atomic uint64_t dropped;    /* not accepted by enqueue, or not answered (echo) */
	_Atomic uint64_t busy_cycles;
	_Atomic uint64_t rx_bursts;  /* dequeue calls that returned packets */
	_Atomic uint64_t tx_bursts;  /* enqueue calls that sent packets */
	_Atomic uint64_t dq_cycles;  /* TSC cycles in dequeue calls that returned packets */
	_Atomic uint64_t eq_cycles;  /* TSC cycles in enqueue calls + freeing their bursts */
	_Atomic uint64_t devices;    /* new_device callbacks accepted */
	_Atomic uint64_t rx_unexpected; /* frames received that differ from --expect-frame */
	_Atomic uint64_t rx_rarp;    /* echo: RARP announcements (a guest migrated here) */
};

/* ---- options (main.c) ---- */
const char *fwd_mode_name(enum fwd_mode mode);

/* ---- devices (devices.c) ---- */
/* Install the callbacks on opts->socket. Returns 0 or -errno. */
int dev_callbacks_register(const char *path, struct fwd_stats *st);
/* Forwarding side: begin an iteration; returns the generation to ack. */
uint64_t dev_iter_begin(void);
/* Forwarding side: vid + 1 of slot @i, 0 if free (valid until dev_iter_end). */
int dev_slot_vid(unsigned i);
/* Forwarding side: every vid read since dev_iter_begin is no longer used. */
void dev_iter_end(uint64_t gen);
/* Forwarding side: the thread stops; waiters need no further ack. */
void dev_fwd_exit(void);

/* ---- forwarding (fwd.c) ---- */
struct fwd_ctx;
/* Create the pool and templates and start the forwarding thread. */
int fwd_start(const struct fwd_opts *o, struct fwd_stats *st, struct fwd_ctx **ret);
/* Stop and join the forwarding thread, free its resources. */
void fwd_stop(struct fwd_ctx *c);

/* ---- frames (pkt.c) ---- */
/* Fill @buf (@len bytes, len >= FWD_MIN_PKT_LEN) with a valid UDP/IPv4 frame. */
void pkt_build_udp(uint8_t *buf, uint32_t len, const uint8_t src_mac[6]);
/* Set dst MAC to the frame's source and src MAC to @mac; -1 if too short. */
int pkt_mac_rewrite(struct vhk_pkt *p, const uint8_t mac[6]);
/*
 * Turn an ARP request or ICMP echo request into its answer, in place.
 * Returns 0 when @p now holds the answer, -1 when it must be dropped.
 */
int pkt_echo_answer(struct vhk_pkt *p, const uint8_t mac[6]);
/* Is @p a RARP frame (ethertype 0x8035, what a migrated guest's MAC is announced with)? */
bool pkt_is_rarp(const struct vhk_pkt *p);
/* Internet checksum of @len bytes, folded, not inverted, added to @sum. */
uint32_t pkt_csum_add(uint32_t sum, const void *data, uint32_t len);
/* Fold and invert a running sum into a 16-bit checksum (network order bytes). */
uint16_t pkt_csum_fold(uint32_t sum);

/* ---- statistics (stats.c) ---- */
/* Cycle counter: rdtsc on x86, nanoseconds elsewhere. */
uint64_t stats_cycles(void);
/* Seconds on the monotonic clock. */
double stats_now(void);
/* Print one live line for the interval since the previous call. */
void stats_live(const struct fwd_stats *st, double now);
/* Print the human summary and, with @json, the JSON line (stdout). */
void stats_final(const struct fwd_stats *st, const struct fwd_opts *o, double seconds);

#endif
