/* SPDX-License-Identifier: MIT */
/*
 * vhk-micro: in-process microbenchmark of the net datapath.
 *
 * The library runs in this process (its control thread serves a temporary
 * socket); the test harness frontend (vuf) negotiates over that socket and
 * the harness guest virtqueues (gvq, split or packed) play the guest. One thread is the backend
 * (vhk_net_enqueue_burst / vhk_net_dequeue_burst), one thread is the guest: it keeps the receive
 * ring full of empty buffers and the transmit ring full of ready packets,
 * reaping used entries and re-posting the same guest buffers.
 *
 *   --dir rx    backend enqueues (host -> guest receive ring, vring 0)
 *   --dir tx    backend dequeues (guest transmit ring, vring 1) and frees
 *   --dir loop  backend dequeues, enqueues the same packets, frees them
 *
 * --log 1 turns dirty logging on as a frontend does for a live migration
 * (SET_LOG_BASE, LOG_ALL, VHOST_VRING_F_LOG on both rings): every guest
 * write is also marked in the log (nobody clears it: the bits stay set,
 * which is the cheaper case for the atomic ORs' cache lines).
 *
 * --lockstep 1 runs guest and backend alternately in one thread. The work
 * done per packet is the same, but no burst ever polls an empty ring
 * because the other thread was descheduled, which makes instruction counts
 * exact and repeatable (bench/callgrind uses it; valgrind serialises threads
 * anyway).
 *
 * Output: one JSON line with packets, seconds, Mpps and (x86) the backend's
 * busy TSC cycles per packet, counted like testpmd --record-core-cycles:
 * only bursts that moved packets add their cycles.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vhostkit/vhostkit.h>

#include "gvq.h"
#include "vuf.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_TSC 1
static inline uint64_t tsc(void)
{
	return __rdtsc();
}
static inline void spin_pause(void)
{
	_mm_pause();
}
#else
#define HAVE_TSC 0
static inline uint64_t tsc(void)
{
	return 0;
}
static inline void spin_pause(void)
{
}
#endif

#define F(bit)	   (1ull << (bit))
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
#define RXQ	   0
#define TXQ	   1
#define MAX_BURST  256
#define RX_BUF_LEN 2048u /* guest receive buffer (header + data), like an mbuf */

/* Command line. */
struct opts {
	bool packed, mrg, in_order, lockstep, log;
	uint32_t pkt_len;
	uint64_t packets;
	uint16_t burst, ring_size;
	enum { DIR_RX, DIR_TX, DIR_LOOP } dir;
};

/* One guest ring (split or packed) with its fixed buffers, one per slot. */
struct gq {
	bool writable; /* receive ring: device-writable buffers */
	struct gvq *vq;
	uint64_t *buf_gpa; /* per slot */
	uint32_t buf_len;
	uint64_t used;	   /* used entries reaped */
};

struct bench {
	struct opts o;
	char dir[64], path[108];
	struct vuf *v;
	struct gmem *m;
	struct vhk_pool *pool;
	struct gq q[2];
	uint32_t hdr_len;
	atomic_int vid;
	atomic_bool stop;
	struct vhk_pkt *rx_pkts[MAX_BURST]; /* --dir rx: the same packets every burst */
};

/* Print @what and exit: the benchmark cannot continue. */
static void die(const char *what, int rc)
{
	fprintf(stderr, "vhk-micro: %s failed (%d: %s)\n", what, rc, strerror(rc < 0 ? -rc : rc));
	exit(1);
}

static int cb_new_device(int vid)
{
	struct bench *b = vhk_dev_get_ctx(vid);
	if (b)
		atomic_store(&b->vid, vid);
	return 0;
}

static void cb_destroy_device(int vid)
{
	struct bench *b = vhk_dev_get_ctx(vid);
	if (b)
		atomic_store(&b->vid, -1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Post slot @i of @q (its fixed buffer; the token is the slot index + 1). */
static void gq_post(struct gq *q, uint32_t i)
{
	struct gbuf b = {q->buf_gpa[i], q->buf_len};
	void *tok = (void *)(uintptr_t)(i + 1);
	int rc = q->writable ? gvq_add(q->vq, NULL, 0, &b, 1, false, tok)
			     : gvq_add(q->vq, &b, 1, NULL, 0, false, tok);
	if (rc < 0)
		die("guest add", rc);
}

/* Reap every used entry and re-post its buffer; returns entries reaped. */
static uint32_t gq_step(struct gq *q)
{
	uint32_t n = 0;
	for (;;) {
		void *tok = NULL;
		uint32_t len = 0;
		int rc = gvq_get_used(q->vq, &tok, &len);
		if (rc == 0)
			break;
		if (rc < 0)
			die("guest get_used", rc);
		gq_post(q, (uint32_t)(uintptr_t)tok - 1);
		n++;
	}
	if (n)
		gvq_publish(q->vq); /* no kick: the device polls */
	q->used += n;
	return n;
}

/* The guest's share of the work: both rings in loop mode, else the one in use. */
static uint32_t guest_step(struct bench *b)
{
	uint32_t n = 0;
	if (b->o.dir != DIR_TX)
		n += gq_step(&b->q[RXQ]);
	if (b->o.dir != DIR_RX)
		n += gq_step(&b->q[TXQ]);
	return n;
}

/* Guest thread (threaded mode). */
static void *guest_thread(void *arg)
{
	struct bench *b = arg;
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed))
		if (!guest_step(b))
			spin_pause();
	return NULL;
}

/*
 * Give dequeued packets back to the pool. Not inlined: bench/callgrind
 * collects inside this function (the library's free) as well as inside
 * the two burst functions; the library never calls it, so callgrind's
 * toggle never nests.
 */
__attribute__((noinline)) void micro_free(struct vhk_pkt **pkts, uint16_t n);
__attribute__((noinline)) void micro_free(struct vhk_pkt **pkts, uint16_t n)
{
	vhk_pkt_free_bulk(pkts, n);
}

/* One backend burst; returns packets moved (forwarded in loop mode). */
static uint32_t backend_step(struct bench *b, int vid)
{
	struct vhk_pkt *pkts[MAX_BURST];
	uint16_t n, m;

	switch (b->o.dir) {
	case DIR_RX:
		return vhk_net_enqueue_burst(vid, RXQ, b->rx_pkts, b->o.burst);
	case DIR_TX:
		n = vhk_net_dequeue_burst(vid, TXQ, b->pool, pkts, b->o.burst);
		micro_free(pkts, n);
		return n;
	default:
		n = vhk_net_dequeue_burst(vid, TXQ, b->pool, pkts, b->o.burst);
		m = n ? vhk_net_enqueue_burst(vid, RXQ, pkts, n) : 0;
		micro_free(pkts, n); /* enqueue copies; unsent ones are dropped */
		return m;
	}
}

/* Set up one guest ring @idx and fill it with buffers. */
static void gq_setup(struct bench *b, uint32_t idx)
{
	struct gq *q = &b->q[idx];
	uint16_t size = b->o.ring_size;
	int rc;

	q->writable = idx == RXQ;
	if (q->writable)
		q->buf_len = MAX(RX_BUF_LEN, b->hdr_len + (b->o.mrg ? 0 : b->o.pkt_len));
	else
		q->buf_len = b->hdr_len + b->o.pkt_len;
	q->buf_gpa = calloc(size, sizeof(*q->buf_gpa));
	if (!q->buf_gpa)
		die("calloc", -ENOMEM);
	for (uint32_t i = 0; i < size; i++) {
		/* Start every buffer 64 B after a line, where virtio-net puts it after headroom. */
		uint64_t g = gmem_alloc(b->m, q->buf_len + 128, 64);
		if (!g)
			die("gmem_alloc", -ENOMEM);
		q->buf_gpa[i] = g + 128 - b->hdr_len;
		if (!q->writable) {
			uint8_t *p = gmem_ptr(b->m, q->buf_gpa[i], q->buf_len);
			memset(p, 0, b->hdr_len); /* no offloads */
			for (uint32_t k = 0; k < b->o.pkt_len; k++)
				p[b->hdr_len + k] = (uint8_t)(k * 7 + i);
		}
	}
	/* The negotiated features pick the format and IN_ORDER (no EVENT_IDX). */
	if ((rc = gvq_new(b->m, size, b->v->features, &q->vq)) < 0)
		die("gvq_new", rc);
	gvq_set_interrupts(q->vq, false);
	if ((rc = vuf_start_vring(b->v, idx, q->vq)) < 0)
		die("vuf_start_vring", rc);
	for (uint32_t i = 0; i < size; i++)
		gq_post(q, i);
	gvq_publish(q->vq);
}

/* Library side: register, attach net, offer the features asked for, start. */
static void lib_start(struct bench *b)
{
	uint64_t off = 0;
	int rc;

	snprintf(b->dir, sizeof(b->dir), "/tmp/vhkmicro.XXXXXX");
	if (!mkdtemp(b->dir))
		die("mkdtemp", -errno);
	snprintf(b->path, sizeof(b->path), "%s/sock", b->dir);
	if ((rc = vhk_socket_register(b->path, 0)) < 0 || (rc = vhk_net_attach(b->path)) < 0)
		die("vhk_socket_register/attach", rc);
	if (!b->o.mrg)
		off |= F(VHK_NET_F_MRG_RXBUF);
	if (!b->o.in_order)
		off |= F(VHK_F_IN_ORDER);
	if (!b->o.packed)
		off |= F(VHK_F_RING_PACKED);
	if ((rc = vhk_socket_disable_features(b->path, off)) < 0)
		die("vhk_socket_disable_features", rc);
	if (b->o.in_order && (rc = vhk_socket_enable_features(b->path, F(VHK_F_IN_ORDER))) < 0)
		die("vhk_socket_enable_features", rc);
	struct vhk_callbacks cb = {.new_device = cb_new_device, .destroy_device = cb_destroy_device};
	if ((rc = vhk_socket_set_callbacks(b->path, &cb, b)) < 0)
		die("vhk_socket_set_callbacks", rc);
	if ((rc = vhk_pool_create(8192, 2048, 128, 0, &b->pool)) < 0)
		die("vhk_pool_create", rc);
	if ((rc = vhk_socket_start(b->path)) < 0)
		die("vhk_socket_start", rc);
}

/* SET_VRING_ADDR of ring @idx again, with VHOST_VRING_F_LOG and its log address. */
static void ring_log_on(struct bench *b, uint32_t idx)
{
	const struct gvq *q = b->q[idx].vq;
	/* Split: the used ring; packed: the device event area (gvq names it "used"). */
	struct vhost_user_vring_addr a = {.index = idx,
					  .flags = 1,
					  .desc_user_addr = gmem_qva(b->m, q->desc_gpa),
					  .used_user_addr = gmem_qva(b->m, q->used_gpa),
					  .avail_user_addr = gmem_qva(b->m, q->avail_gpa),
					  .log_guest_addr = q->used_gpa};
	int rc;

	if ((rc = vuf_request(b->v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL)) < 0)
		die("SET_VRING_ADDR (log)", rc);
}

/* Start dirty logging like QEMU at the start of a migration. */
static void log_start(struct bench *b)
{
	const struct gmem_region *r = &b->m->r[b->m->nregions - 1];
	struct vhost_user_log lg = {.mmap_size = (r->gpa + r->size) / 4096 / 8 + 8};
	struct vhost_user_msg m;
	int fd = memfd_create("micro-log", MFD_CLOEXEC), rc;

	if (fd < 0 || ftruncate(fd, (off_t)lg.mmap_size) < 0)
		die("log memfd", -errno);
	if ((rc = vuf_request(b->v, VHOST_USER_SET_LOG_BASE, &lg, sizeof(lg), &fd, 1, &m)) < 0)
		die("SET_LOG_BASE", rc);
	close(fd);
	if ((rc = vuf_set_u64(b->v, VHOST_USER_SET_FEATURES,
			      b->v->features | F(VHK_F_LOG_ALL))) < 0)
		die("SET_FEATURES (LOG_ALL)", rc);
	ring_log_on(b, RXQ);
	ring_log_on(b, TXQ);
}

/* Frontend side: negotiate like virtio-user (no EVENT_IDX), one region, two rings. */
static void front_start(struct bench *b)
{
	uint64_t want = F(VHK_F_VERSION_1) | F(VHK_F_PROTOCOL_FEATURES);
	int rc;

	if (b->o.mrg)
		want |= F(VHK_NET_F_MRG_RXBUF);
	if (b->o.in_order)
		want |= F(VHK_F_IN_ORDER);
	if (b->o.packed)
		want |= F(VHK_F_RING_PACKED);
	if ((rc = vuf_connect(b->path, 5000, &b->v)) < 0)
		die("vuf_connect", rc);
	if ((rc = vuf_negotiate(b->v, want,
				F(VHK_PF_REPLY_ACK) | (b->o.log ? F(VHK_PF_LOG_SHMFD) : 0))) < 0)
		die("vuf_negotiate", rc);
	if (b->v->features != want) {
		fprintf(stderr, "vhk-micro: negotiated %#llx, wanted %#llx\n",
			(unsigned long long)b->v->features, (unsigned long long)want);
		exit(1);
	}
	b->hdr_len = 12; /* VERSION_1 */
	if ((rc = gmem_new(1, 64u << 20, 0x100000, 0, &b->m)) < 0)
		die("gmem_new", rc);
	if ((rc = vuf_set_mem_table(b->v, b->m)) < 0)
		die("vuf_set_mem_table", rc);
	gq_setup(b, RXQ);
	gq_setup(b, TXQ);
	for (int i = 0; i < 5000 && atomic_load(&b->vid) < 0; i++)
		usleep(1000);
	if (atomic_load(&b->vid) < 0)
		die("waiting for new_device", -ETIMEDOUT);
	if (b->o.log)
		log_start(b);
	/* Like the DPDK vhost PMD: no kicks wanted, we poll. */
	vhk_vq_set_notification(b->vid, RXQ, false);
	vhk_vq_set_notification(b->vid, TXQ, false);
}

/* --dir rx: the packets enqueued every burst (the guest reaps, we keep them). */
static void make_rx_pkts(struct bench *b)
{
	for (uint32_t i = 0; i < b->o.burst; i++) {
		struct vhk_pkt *p = vhk_pkt_alloc(b->pool);
		uint32_t left = b->o.pkt_len;
		if (!p)
			die("vhk_pkt_alloc", -ENOBUFS);
		for (struct vhk_pkt *t = p; left;) {
			uint32_t n = MIN(left, vhk_pkt_tailroom(t));
			uint8_t *d = n ? vhk_pkt_append(p, n) : NULL;
			if (!d) { /* chain another segment */
				struct vhk_pkt *s = vhk_pkt_alloc(b->pool);
				if (!s || vhk_pkt_chain(p, s) < 0)
					die("vhk_pkt_chain", -ENOBUFS);
				t = s;
				continue;
			}
			memset(d, (int)i, n);
			left -= n;
		}
		b->rx_pkts[i] = p;
	}
}

/* Parse a 0/1 option. */
static bool flag01(const char *s)
{
	return strcmp(s, "0") != 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: vhk-micro [--ring split|packed] [--mrg 0|1] [--in-order 0|1]\n"
			"                 [--pkt-len N] [--packets N] [--dir rx|tx|loop]\n"
			"                 [--burst N] [--ring-size N] [--lockstep 0|1] [--log 0|1]\n");
	exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"ring", 1, 0, 'r'},      {"mrg", 1, 0, 'm'},	{"in-order", 1, 0, 'i'},
	    {"pkt-len", 1, 0, 'l'},   {"packets", 1, 0, 'n'},	{"dir", 1, 0, 'd'},
	    {"burst", 1, 0, 'b'},     {"ring-size", 1, 0, 's'}, {"lockstep", 1, 0, 'k'},
	    {"log", 1, 0, 'g'},       {0, 0, 0, 0}};
	int c;

	*o = (struct opts){.pkt_len = 64, .packets = 2000000, .burst = 32, .ring_size = 256,
			   .dir = DIR_LOOP};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'r': o->packed = strcmp(optarg, "packed") == 0; break;
		case 'm': o->mrg = flag01(optarg); break;
		case 'i': o->in_order = flag01(optarg); break;
		case 'l': o->pkt_len = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'n': o->packets = strtoull(optarg, NULL, 0); break;
		case 'b': o->burst = (uint16_t)strtoul(optarg, NULL, 0); break;
		case 's': o->ring_size = (uint16_t)strtoul(optarg, NULL, 0); break;
		case 'k': o->lockstep = flag01(optarg); break;
		case 'g': o->log = flag01(optarg); break;
		case 'd':
			if (!strcmp(optarg, "rx"))
				o->dir = DIR_RX;
			else if (!strcmp(optarg, "tx"))
				o->dir = DIR_TX;
			else if (!strcmp(optarg, "loop"))
				o->dir = DIR_LOOP;
			else
				usage();
			break;
		default: usage();
		}
	}
	if (o->pkt_len < 14 || o->pkt_len > 9000 || !o->burst || o->burst > MAX_BURST ||
	    !o->ring_size || (o->ring_size & (o->ring_size - 1)) || o->ring_size > 4096)
		usage();
}

int main(int argc, char **argv)
{
	static struct bench b;
	pthread_t gt;
	uint64_t done = 0, busy = 0, polls = 0;

	parse(argc, argv, &b.o);
	atomic_init(&b.vid, -1);
	lib_start(&b);
	front_start(&b);
	int vid = atomic_load(&b.vid);
	if (b.o.dir == DIR_RX)
		make_rx_pkts(&b);
	if (!b.o.lockstep && pthread_create(&gt, NULL, guest_thread, &b) != 0)
		die("pthread_create", -EAGAIN);

	double t0 = now_s();
	while (done < b.o.packets) {
		if (b.o.lockstep)
			guest_step(&b);
		uint64_t c0 = tsc();
		uint32_t n = backend_step(&b, vid);
		uint64_t c1 = tsc();
		polls++;
		if (n) {
			busy += c1 - c0;
			done += n;
		} else if (b.o.lockstep && polls > 1000 && done == 0) {
			die("lockstep: no progress", -EIO);
		}
	}
	double secs = now_s() - t0;
	atomic_store(&b.stop, true);
	if (!b.o.lockstep)
		pthread_join(gt, NULL);

	static const char *dirs[] = {"rx", "tx", "loop"};
	printf("{\"ring\":\"%s\",\"mrg\":%d,\"in_order\":%d,\"log\":%d,\"pkt_len\":%u,\"dir\":\"%s\","
	       "\"burst\":%u,\"lockstep\":%d,\"packets\":%llu,\"seconds\":%.6f,\"Mpps\":%.3f,"
	       "\"busy_cycles_per_packet\":%.1f,\"tsc\":%d}\n",
	       b.o.packed ? "packed" : "split", b.o.mrg, b.o.in_order, b.o.log, b.o.pkt_len,
	       dirs[b.o.dir],
	       b.o.burst, b.o.lockstep, (unsigned long long)done, secs, done / secs / 1e6,
	       HAVE_TSC && done ? (double)busy / (double)done : 0.0, HAVE_TSC);

	vuf_close(b.v);
	for (int i = 0; i < 2000 && atomic_load(&b.vid) >= 0; i++)
		usleep(1000);
	vhk_socket_unregister(b.path);
	for (uint32_t i = 0; b.o.dir == DIR_RX && i < b.o.burst; i++)
		vhk_pkt_free(b.rx_pkts[i]);
	unlink(b.path);
	rmdir(b.dir);
	return 0;
}
