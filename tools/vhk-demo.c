/* SPDX-License-Identifier: MIT */
/*
 * vhk-demo: the library serving a virtio-net device to the in-tree test
 * frontend, in one process, with live statistics.
 *
 *   backend  : vhk_socket_register + vhk_net_attach + vhk_socket_start (server socket), and
 *              one datapath thread that echoes every frame the guest sends
 *              (dequeue from each TX vring, enqueue to the RX vring of the
 *              same pair) — what a real backend app does.
 *   frontend : the test vhost-user master connects to the socket, negotiates
 *              like QEMU, shares memfd "guest RAM", and the harness's guest
 *              virtqueue driver (split rings) transmits UDP frames and checks
 *              every echoed frame byte for byte.
 *
 * Usage: vhk-demo [--seconds N] [--queues N]
 * Exit status 0 when every frame came back intact.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#include <vhostkit/vhostkit.h>
#include "gvq.h"
#include "vuf.h"

#define RING 256
#define SLOT 2048
#define HDR 12
#define MAXQ 4

static atomic_int g_vid = -1;
static atomic_bool g_stop;

struct pair {
	struct gvq *tx, *rx;
	uint64_t tx_slots, rx_slots;   /* gpa of RING slots each */
	uint64_t sent_seq, recv_seq;    /* frames sent / verified */
	uint64_t sent_bytes, recv_bytes;
	uint64_t bad;
	uint32_t tx_inflight;
};

static int on_new_device(int vid)
{
	atomic_store(&g_vid, vid);
	return 0;
}

static void on_destroy_device(int vid)
{
	(void)vid;
	atomic_store(&g_vid, -1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Frame @seq of pair @q: Ethernet + IPv4 + UDP, length 60..1514, fixed pattern. */
static uint32_t frame_len(uint32_t q, uint64_t seq)
{
	return 60 + (uint32_t)((seq * 2654435761u + q * 97) % (1514 - 60 + 1));
}

static void frame_fill(uint8_t *p, uint32_t q, uint64_t seq, uint32_t len)
{
	static const uint8_t dst[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
	static const uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

	memcpy(p, dst, 6);
	memcpy(p + 6, src, 6);
	p[12] = 0x08;
	p[13] = 0x00;
	for (uint32_t i = 14; i < len; i++)
		p[i] = (uint8_t)(seq * 31 + i * 7 + q);
	memcpy(p + 14, &seq, sizeof(seq));
}

/* Backend datapath: echo every pair, like a real app's polling thread. */
static void *backend_thread(void *arg)
{
	uint32_t nq = *(uint32_t *)arg;
	struct vhk_pool *pool;

	if (vhk_pool_create(8192, 2048, 128, 0, &pool) < 0)
		return NULL;
	while (!atomic_load(&g_stop)) {
		int vid = atomic_load(&g_vid);
		unsigned moved = 0;
		for (uint32_t q = 0; vid >= 0 && q < nq; q++) {
			struct vhk_pkt *pkts[32];
			uint16_t n = vhk_net_dequeue_burst(vid, (uint16_t)(2 * q + 1), pool, pkts, 32);
			if (!n)
				continue;
			uint16_t done = 0;
			/* Retry until the guest has posted room (the demo drops nothing). */
			for (int tries = 0; done < n && tries < 100000 && !atomic_load(&g_stop); tries++)
				done += vhk_net_enqueue_burst(vid, (uint16_t)(2 * q), pkts + done,
							      (uint16_t)(n - done));
			vhk_pkt_free_bulk(pkts, n);
			moved += n;
		}
		if (!moved)
			usleep(20);
	}
	vhk_pool_free(pool);
	return NULL;
}

static int guest_step(struct gmem *m, struct pair *p, uint32_t q)
{
	void *tok;
	uint32_t len;
	int work = 0;

	/* Reap TX completions. */
	while (gvq_get_used(p->tx, &tok, &len) == 1) {
		p->tx_inflight--;
		work++;
	}
	/* Check echoed frames, in order, byte for byte; repost the buffer. */
	while (gvq_get_used(p->rx, &tok, &len) == 1) {
		uint64_t slot = (uint64_t)(uintptr_t)tok - 1;
		uint64_t gpa = p->rx_slots + slot * SLOT;
		uint32_t want = frame_len(q, p->recv_seq);
		uint8_t got[SLOT], exp[SLOT];
		if (len != HDR + want || gmem_read(m, gpa + HDR, got, want) < 0) {
			p->bad++;
		} else {
			frame_fill(exp, q, p->recv_seq, want);
			if (memcmp(got, exp, want))
				p->bad++;
			else
				p->recv_bytes += want;
		}
		p->recv_seq++;
		struct gbuf in = {gpa, SLOT};
		gvq_add(p->rx, NULL, 0, &in, 1, false, tok);
		work++;
	}
	gvq_kick(p->rx);
	/* Transmit while there is room and the echo has not fallen far behind. */
	while (p->tx_inflight < RING && p->sent_seq - p->recv_seq < RING) {
		uint64_t slot = p->sent_seq % RING;
		uint64_t gpa = p->tx_slots + slot * SLOT;
		uint32_t flen = frame_len(q, p->sent_seq);
		uint8_t buf[SLOT];
		memset(buf, 0, HDR);
		frame_fill(buf + HDR, q, p->sent_seq, flen);
		gmem_write(m, gpa, buf, HDR + flen);
		struct gbuf out = {gpa, HDR + flen};
		if (gvq_add(p->tx, &out, 1, NULL, 0, false, (void *)(uintptr_t)(slot + 1)) < 0)
			break;
		p->tx_inflight++;
		p->sent_seq++;
		p->sent_bytes += flen;
		work++;
	}
	gvq_kick(p->tx);
	return work;
}

int main(int argc, char **argv)
{
	static const struct vhk_callbacks cb = {.new_device = on_new_device,
						.destroy_device = on_destroy_device};
	double seconds = 5;
	uint32_t nq = 2;
	char dir[] = "/tmp/vhk-demo-XXXXXX", path[128];
	struct pair pairs[MAXQ] = {0};
	struct vuf *v = NULL;
	struct gmem *m = NULL;
	pthread_t th;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--queues") && i + 1 < argc)
			nq = (uint32_t)atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--seconds N] [--queues 1..%d]\n", argv[0], MAXQ);
			return 2;
		}
	}
	if (nq < 1 || nq > MAXQ || seconds <= 0) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/vhost.sock", dir);

	printf("vhostkit %s demo: virtio-net over vhost-user socket %s, %u queue pair(s)\n",
	       vhk_version(), path, nq);
	if ((rc = vhk_socket_register(path, 0)) < 0 || (rc = vhk_net_attach(path)) < 0 ||
	    (rc = vhk_net_set_queue_pairs(path, nq)) < 0 ||
	    (rc = vhk_socket_set_callbacks(path, &cb, NULL)) < 0 || (rc = vhk_socket_start(path)) < 0) {
		fprintf(stderr, "library setup failed: %s\n", strerror(-rc));
		return 1;
	}
	printf("[backend ] listening; datapath thread echoes TX vring 2i+1 -> RX vring 2i\n");

	if ((rc = vuf_connect(path, 2000, &v)) < 0 || (rc = gmem_new(1, 64u << 20, 0, 0, &m)) < 0)
		goto fail;
	uint64_t want = (1ull << 32) | (1ull << 30) | (1ull << 15) | (1ull << 22) | (1ull << 29) |
			(1ull << 28);
	uint64_t want_pf = (1ull << VHK_PF_MQ) | (1ull << VHK_PF_REPLY_ACK) |
			   (1ull << VHK_PF_CONFIGURE_MEM_SLOTS);
	if ((rc = vuf_negotiate(v, want, want_pf)) < 0 || (rc = vuf_set_mem_table(v, m)) < 0)
		goto fail;
	printf("[frontend] negotiated features 0x%" PRIx64 ", protocol features 0x%" PRIx64
	       ", 64 MiB guest RAM (memfd)\n",
	       v->features, v->protocol_features);
	for (uint32_t q = 0; q < nq; q++) {
		struct pair *p = &pairs[q];
		if ((rc = gvq_new(m, RING, v->features, &p->rx)) < 0 ||
		    (rc = gvq_new(m, RING, v->features, &p->tx)) < 0)
			goto fail;
		p->rx_slots = gmem_alloc(m, (uint64_t)RING * SLOT, 64);
		p->tx_slots = gmem_alloc(m, (uint64_t)RING * SLOT, 64);
		for (uint64_t s = 0; s < RING; s++) {
			struct gbuf in = {p->rx_slots + s * SLOT, SLOT};
			gvq_add(p->rx, NULL, 0, &in, 1, false, (void *)(uintptr_t)(s + 1));
		}
		if ((rc = vuf_start_vring(v, 2 * q, p->rx)) < 0 ||
		    (rc = vuf_start_vring(v, 2 * q + 1, p->tx)) < 0)
			goto fail;
	}
	for (int i = 0; i < 2000 && atomic_load(&g_vid) < 0; i++)
		usleep(1000);
	if (atomic_load(&g_vid) < 0) {
		fprintf(stderr, "device never became ready\n");
		goto fail;
	}
	printf("[backend ] new_device: vid %d ready\n", atomic_load(&g_vid));
	pthread_create(&th, NULL, backend_thread, &nq);

	printf("\n%6s %12s %12s %12s %12s %10s\n", "time", "guest tx/s", "echo rx/s",
	       "tx Mbit/s", "rx Mbit/s", "bad");
	double t0 = now_s(), last = t0;
	uint64_t last_tx = 0, last_rx = 0, last_txb = 0, last_rxb = 0;
	for (;;) {
		int work = 0;
		for (uint32_t q = 0; q < nq; q++)
			work += guest_step(m, &pairs[q], q);
		if (!work)
			usleep(10);
		double t = now_s();
		if (t - last >= 1.0 || t - t0 >= seconds) {
			uint64_t tx = 0, rx = 0, txb = 0, rxb = 0, bad = 0;
			for (uint32_t q = 0; q < nq; q++) {
				tx += pairs[q].sent_seq;
				rx += pairs[q].recv_seq;
				txb += pairs[q].sent_bytes;
				rxb += pairs[q].recv_bytes;
				bad += pairs[q].bad;
			}
			double dt = t - last;
			printf("%5.1fs %12.0f %12.0f %12.1f %12.1f %10" PRIu64 "\n", t - t0,
			       (double)(tx - last_tx) / dt, (double)(rx - last_rx) / dt,
			       (double)(txb - last_txb) * 8 / dt / 1e6,
			       (double)(rxb - last_rxb) * 8 / dt / 1e6, bad);
			fflush(stdout);
			last = t;
			last_tx = tx, last_rx = rx, last_txb = txb, last_rxb = rxb;
			if (t - t0 >= seconds)
				break;
		}
	}
	atomic_store(&g_stop, true);
	pthread_join(th, NULL);

	uint64_t sent = 0, verified = 0, bad = 0;
	int vid = atomic_load(&g_vid);
	printf("\nper-vring statistics (vhk_net_get_stats):\n");
	for (uint32_t q = 0; q < 2 * nq; q++) {
		struct vhk_net_stats st;
		if (vid >= 0 && vhk_net_get_stats(vid, (uint16_t)q, &st) == 0)
			printf("  vring %u (%s): %" PRIu64 " packets, %" PRIu64 " bytes, %" PRIu64
			       " drops, %" PRIu64 " errors, %" PRIu64 " calls\n",
			       q, q & 1 ? "guest tx" : "guest rx", st.packets, st.bytes, st.drops,
			       st.errors, st.calls);
	}
	for (uint32_t q = 0; q < nq; q++) {
		sent += pairs[q].sent_seq;
		verified += pairs[q].recv_seq - pairs[q].bad;
		bad += pairs[q].bad;
	}
	printf("\nguest sent %" PRIu64 " frames, %" PRIu64 " echoed back intact, %" PRIu64
	       " corrupted\n",
	       sent, verified, bad);
	vuf_close(v);
	vhk_socket_unregister(path);
	for (uint32_t q = 0; q < nq; q++) {
		gvq_free(pairs[q].rx);
		gvq_free(pairs[q].tx);
	}
	gmem_free(m);
	rmdir(dir);
	printf("%s\n", bad == 0 && verified > 0 ? "demo OK" : "demo FAILED");
	return bad == 0 && verified > 0 ? 0 : 1;

fail:
	fprintf(stderr, "demo setup failed: %s\n", strerror(rc < 0 ? -rc : EIO));
	atomic_store(&g_stop, true);
	if (v)
		vuf_close(v);
	vhk_socket_unregister(path);
	for (uint32_t q = 0; q < nq; q++) {
		gvq_free(pairs[q].rx);
		gvq_free(pairs[q].tx);
	}
	gmem_free(m);
	return 1;
}
