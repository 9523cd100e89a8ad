/* SPDX-License-Identifier: MIT */
/*
 * Device list of vhk-fwd. The library's control thread adds and removes
 * devices through the new_device / destroy_device callbacks; the forwarding
 * thread reads the list once per poll iteration.
 *
 * Fence: destroy_device clears the slot, bumps `gen` and waits until the
 * forwarding thread acknowledges an iteration that began after the bump.
 * Such an iteration read the slot after it was cleared, and every earlier
 * iteration (that may still hold the vid) has finished before that ack, so
 * when destroy_device returns the vid is no longer touched.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

#include "fwd.h"

static atomic_int slots[FWD_MAX_DEVS]; /* vid + 1, 0 = free */
static _Atomic uint64_t gen = 1;       /* bumped by every removal */
static _Atomic uint64_t ack;           /* last generation fully finished */
static struct fwd_stats *stats;

/* new_device: take a free slot; refuse the device when all are in use. */
static int on_new_device(int vid)
{
	for (unsigned i = 0; i < FWD_MAX_DEVS; i++) {
		int expect = 0;
		if (atomic_compare_exchange_strong(&slots[i], &expect, vid + 1)) {
			atomic_fetch_add_explicit(&stats->devices, 1, memory_order_relaxed);
			fprintf(stderr, "vhk-fwd: device %d ready\n", vid);
			return 0;
		}
	}
	fprintf(stderr, "vhk-fwd: device %d refused: %d devices already\n", vid, FWD_MAX_DEVS);
	return -ENOSPC;
}

/* destroy_device: drop the vid and wait until the forwarding thread let go of it. */
static void on_destroy_device(int vid)
{
	bool found = false;

	for (unsigned i = 0; i < FWD_MAX_DEVS; i++) {
		int expect = vid + 1;
		if (atomic_compare_exchange_strong(&slots[i], &expect, 0))
			found = true;
	}
	if (!found)
		return;
	uint64_t want = atomic_fetch_add(&gen, 1) + 1;
	for (unsigned spins = 0; atomic_load(&ack) < want; spins++) {
		if (spins < 64) {
			sched_yield();
		} else {
			struct timespec ts = {0, 10000};
			nanosleep(&ts, NULL);
		}
	}
	fprintf(stderr, "vhk-fwd: device %d gone\n", vid);
}

int dev_callbacks_register(const char *path, struct fwd_stats *st)
{
	static const struct vhk_callbacks cb = {
		.new_device = on_new_device,
		.destroy_device = on_destroy_device,
	};

	stats = st;
	return vhk_socket_set_callbacks(path, &cb, NULL);
}

uint64_t dev_iter_begin(void)
{
	return atomic_load(&gen);
}

int dev_slot_vid(unsigned i)
{
	return atomic_load(&slots[i]);
}

void dev_iter_end(uint64_t g)
{
	atomic_store(&ack, g);
}

void dev_fwd_exit(void)
{
	atomic_store(&ack, UINT64_MAX);
}
