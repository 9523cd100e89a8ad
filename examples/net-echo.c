/* SPDX-License-Identifier: MIT */
/*
 * net-echo: the smallest useful vhostkit backend. It serves one vhost-user
 * socket as a virtio-net device and sends every frame the guest transmits
 * straight back to the guest on the same queue pair.
 *
 * Build against an installed vhostkit:
 *   cc -std=c11 net-echo.c $(pkg-config --cflags --libs vhostkit) -o net-echo
 * Run:
 *   ./net-echo /tmp/vhost.sock [--client] [--count N]
 *
 * Uses only the public headers. One thread polls every queue pair of every
 * connected device; the control plane runs in the library's own thread.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vhostkit/vhostkit.h>

#define MAX_DEVS 16
#define BURST 32

static atomic_int devs[MAX_DEVS]; /* vid + 1 of running devices, 0 = free */
static volatile sig_atomic_t stop;

static int on_new_device(int vid)
{
	for (int i = 0; i < MAX_DEVS; i++) {
		int expect = 0;
		if (atomic_compare_exchange_strong(&devs[i], &expect, vid + 1)) {
			printf("net-echo: device %d ready\n", vid);
			return 0;
		}
	}
	return -ENOSPC;
}

static void on_destroy_device(int vid)
{
	for (int i = 0; i < MAX_DEVS; i++) {
		int expect = vid + 1;
		atomic_compare_exchange_strong(&devs[i], &expect, 0);
	}
	/* The loop below only calls bursts on devices still in devs[]; a burst
	 * racing with this removal returns 0 once the library drops the device. */
	printf("net-echo: device %d gone\n", vid);
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	static const struct vhk_callbacks cb = {
		.new_device = on_new_device,
		.destroy_device = on_destroy_device,
	};
	uint64_t flags = 0, count = 0, echoed = 0;
	const char *path = NULL;
	struct vhk_pool *pool;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--client"))
			flags |= VHK_CLIENT;
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = strtoull(argv[++i], NULL, 0);
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			fprintf(stderr, "usage: %s SOCKET [--client] [--count N]\n", argv[0]);
			return 2;
		}
	}
	if (!path) {
		fprintf(stderr, "usage: %s SOCKET [--client] [--count N]\n", argv[0]);
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	rc = vhk_pool_create(4096, 2048, 128, 0, &pool);
	if (rc < 0)
		goto err;
	if ((rc = vhk_socket_register(path, flags)) < 0)
		goto err_free_pool;
	if ((rc = vhk_net_attach(path)) < 0 || (rc = vhk_net_set_queue_pairs(path, 4)) < 0 ||
	    (rc = vhk_socket_set_callbacks(path, &cb, NULL)) < 0 || (rc = vhk_socket_start(path)) < 0)
		goto err_unregister;
	printf("net-echo: serving %s (vhostkit %s)\n", path, vhk_version());
	fflush(stdout);

	while (!stop && (!count || echoed < count)) {
		unsigned moved = 0;
		for (int i = 0; i < MAX_DEVS; i++) {
			int vid = atomic_load(&devs[i]) - 1;
			if (vid < 0)
				continue;
			for (uint16_t q = 0; q < 4; q++) {
				struct vhk_pkt *pkts[BURST];
				uint16_t n = vhk_net_dequeue_burst(vid, 2 * q + 1, pool, pkts, BURST);
				if (!n)
					continue;
				uint16_t sent = vhk_net_enqueue_burst(vid, 2 * q, pkts, n);
				vhk_pkt_free_bulk(pkts, n); /* enqueue copies; we still own them */
				echoed += sent;
				moved += n;
			}
		}
		if (!moved) {
			struct timespec ts = {0, 50000}; /* idle: 50 us */
			nanosleep(&ts, NULL);
		}
	}
	printf("net-echo: echoed %llu packets\n", (unsigned long long)echoed);
	vhk_socket_unregister(path);
	vhk_pool_free(pool);
	return 0;

err_unregister:
	vhk_socket_unregister(path);
err_free_pool:
	vhk_pool_free(pool);
err:
	fprintf(stderr, "net-echo: %s\n", strerror(-rc));
	return 1;
}
