/* SPDX-License-Identifier: MIT */
/*
 * Statistics of vhk-fwd: the cycle counter, live rate lines, the summary
 * printed at exit and the final JSON line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "fwd.h"

uint64_t stats_cycles(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __rdtsc();
#else
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

double stats_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rd(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void stats_live(const struct fwd_stats *st, double now)
{
	static uint64_t rxp, rxb, txp, txb, drop;
	static double last;
	uint64_t nrxp = rd(&st->rx_packets), nrxb = rd(&st->rx_bytes);
	uint64_t ntxp = rd(&st->tx_packets), ntxb = rd(&st->tx_bytes), ndrop = rd(&st->dropped);
	double dt = now - last;

	if (last > 0 && dt > 0) {
		printf("rx %12.0f pps %14.0f bps | tx %12.0f pps %14.0f bps | dropped %" PRIu64
		       "\n",
		       (double)(nrxp - rxp) / dt, (double)(nrxb - rxb) * 8 / dt,
		       (double)(ntxp - txp) / dt, (double)(ntxb - txb) * 8 / dt, ndrop - drop);
		fflush(stdout);
	}
	rxp = nrxp, rxb = nrxb, txp = ntxp, txb = ntxb, drop = ndrop;
	last = now;
}

void stats_final(const struct fwd_stats *st, const struct fwd_opts *o, double seconds)
{
	uint64_t rxp = rd(&st->rx_packets), rxb = rd(&st->rx_bytes);
	uint64_t txp = rd(&st->tx_packets), txb = rd(&st->tx_bytes);
	uint64_t drop = rd(&st->dropped), busy = rd(&st->busy_cycles);
	uint64_t rxn = rd(&st->rx_bursts), txn = rd(&st->tx_bursts);
	/* Per forwarded packet: packets sent for txonly, packets received otherwise. */
	uint64_t per = o->mode == FWD_TXONLY ? txp : rxp;
	double cpp = per ? (double)busy / (double)per : 0;
	double s = seconds > 0 ? seconds : 1;

	printf("vhk-fwd %s: %.3f s, %" PRIu64 " device(s)\n", fwd_mode_name(o->mode), seconds,
	       rd(&st->devices));
	printf("  rx (from guest): %" PRIu64 " packets, %" PRIu64 " bytes, %.0f pps, %.0f bps\n",
	       rxp, rxb, (double)rxp / s, (double)rxb * 8 / s);
	printf("  tx (to guest):   %" PRIu64 " packets, %" PRIu64 " bytes, %.0f pps, %.0f bps\n",
	       txp, txb, (double)txp / s, (double)txb * 8 / s);
	printf("  dropped: %" PRIu64 "  busy cycles/packet: %.1f\n", drop, cpp);
	printf("  packets per burst: rx %.1f, tx %.1f\n", rxn ? (double)rxp / (double)rxn : 0,
	       txn ? (double)txp / (double)txn : 0);
	if (o->nexpect)
		printf("  rx frames not given by --expect-frame: %" PRIu64 "\n",
		       rd(&st->rx_unexpected));
	if (o->mode == FWD_ECHO)
		printf("  RARP announcements received: %" PRIu64 "\n", rd(&st->rx_rarp));
	if (o->json)
		printf("{\"mode\":\"%s\",\"rx_packets\":%" PRIu64 ",\"tx_packets\":%" PRIu64
		       ",\"rx_bytes\":%" PRIu64 ",\"tx_bytes\":%" PRIu64 ",\"dropped\":%" PRIu64
		       ",\"seconds\":%.6f,\"busy_cycles\":%" PRIu64
		       ",\"busy_cycles_per_packet\":%.3f,\"rx_bursts\":%" PRIu64
		       ",\"tx_bursts\":%" PRIu64 ",\"dequeue_cycles\":%" PRIu64
		       ",\"enqueue_cycles\":%" PRIu64 ",\"devices\":%" PRIu64
		       ",\"rx_unexpected\":%" PRIu64 ",\"rx_rarp\":%" PRIu64 "}\n",
		       fwd_mode_name(o->mode), rxp, txp, rxb, txb, drop, seconds, busy, cpp, rxn,
		       txn, rd(&st->dq_cycles), rd(&st->eq_cycles), rd(&st->devices),
		       rd(&st->rx_unexpected), rd(&st->rx_rarp));
	fflush(stdout);
}
