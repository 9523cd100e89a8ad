/* SPDX-License-Identifier: MIT */
/*
 * Dirty logging is exact: after any mix of receive and transmit traffic
 * (net device) or of element-API requests (a device of the test's own),
 * the set of guest pages whose bit is set in the dirty log equals the set
 * of guest pages the library wrote, and every guest byte that changed lies
 * in a marked page.
 *
 * How "written" is known: a recording write observer is installed on the
 * vqs (vq_set_write_observer); while the log observer logs, it forwards
 * every write of the seam to it (src/vq/vq_log.h). The changed bytes come
 * from a snapshot of guest memory taken before each step, as in
 * test_invariants_seam.c. So a step checks, page by page:
 *   marked == written   (nothing missed, nothing marked that was not written)
 *   changed => marked   (also catches a write that bypassed the seam)
 * and the log outside guest memory is untouched unless a ring's log
 * address points there (t_ring_log_addr_outside_memory).
 *
 * The frontend starts logging as QEMU does at the start of a migration:
 * SET_LOG_BASE (a memfd, the log at a non-zero offset), SET_FEATURES with
 * LOG_ALL added on the running device, SET_VRING_ADDR with
 * VHOST_VRING_F_LOG on every ring (log_guest_addr: the used ring of a
 * split ring, the device event area of a packed ring). Before each step
 * the test clears the log, as the frontend's sync does.
 *
 * Configurations: mergeable on and off, in-order, EVENT_IDX on and off;
 * the binary takes --split / --packed like the other datapath invariants.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "inv_common.h"
#include "core/vdev.h"
#include "vq/vq.h"
#include "vq/vq_guest.h"

#define REGSZ	  (1u << 20) /* three regions: buffers straddle 0/1 and 1/2 */
#define NREG	  3u
#define MEMSZ	  (NREG * REGSZ)
#define PAGE	  4096u
#define QSIZE	  128
#define HDR	  12u
#define LOG_OFF	  12288u	      /* the log starts this far into its memfd */
#define LOG_EXTRA (1u << 20)	      /* the log covers this much past guest memory */
#define LOG_PAGES ((MEMSZ + LOG_EXTRA) / PAGE)
#define LOG_BYTES (LOG_PAGES / 8)
#define F_LOG_ALL BIT(VHK_F_LOG_ALL)
#define PF_LOG	  (IT_PF_DEFAULT | BIT(VHK_PF_LOG_SHMFD))

#define F_MRG BIT(VHK_NET_F_MRG_RXBUF)
#define F_IO  BIT(VHK_F_IN_ORDER)
#define F_EVI BIT(VHK_F_EVENT_IDX)
#define F_NET                                                                             \
	((VHK_NET_DEFAULT_FEATURES & ~(F_MRG | F_IO | F_EVI | F_LOG_ALL |                   \
				       BIT(VHK_F_RING_PACKED))) |                           \
	 (inv_packed ? BIT(VHK_F_RING_PACKED) : 0))

#define MAXREC 4096u

/* One observed write, in guest physical terms. */
struct wrec {
	uint64_t gpa, len;
	enum vq_write_kind kind;
};

static struct {
	const struct mem_table *mem; /* the library's table, to name the pages written */
	uint8_t written[LOG_BYTES];  /* pages of every observed write (same layout as the log) */
	uint64_t writes;
	struct wrec rec[MAXREC];     /* the first MAXREC writes of the step */
	bool outside;		     /* an observed write outside guest memory */
	uint8_t *snap;		     /* guest memory before the step */
	uint8_t *log;		     /* the log bitmap, our mapping */
	void *log_map;
	int log_fd;
} S;

static void set_page(uint8_t *bm, uint64_t page)
{
	bm[page / 8] |= (uint8_t)(1u << (page % 8));
}

static bool get_page(const uint8_t *bm, uint64_t page)
{
	return bm[page / 8] & (1u << (page % 8));
}

/* The recording observer: the pages of every write, through the library's memory table. */
static void obs_write(void *ctx, const void *hva, size_t len, enum vq_write_kind kind)
{
	(void)ctx;
	for (uint32_t i = 0; i < S.mem->nregions; i++) {
		const struct mem_region *r = &S.mem->regions[i];
		uintptr_t a = (uintptr_t)hva, b = (uintptr_t)r->hva;
		if (a >= b && a - b < r->size && len <= r->size - (a - b)) {
			uint64_t gpa = r->gpa + (a - b);
			for (uint64_t p = gpa / PAGE; p <= (gpa + len - 1) / PAGE; p++)
				set_page(S.written, p);
			if (S.writes < MAXREC)
				S.rec[S.writes] = (struct wrec){gpa, len, kind};
			S.writes++;
			return;
		}
	}
	S.outside = true;
}

/* How many writes of @kind the step made. */
static uint32_t writes_of(enum vq_write_kind kind)
{
	uint32_t n = 0;
	CHECK(S.writes <= MAXREC);
	for (uint64_t i = 0; i < S.writes; i++)
		n += S.rec[i].kind == kind;
	return n;
}

static const struct vq_write_observer g_obs = {obs_write, NULL, NULL};

/* Guest RAM byte @gpa (our view). */
static uint8_t *gbyte(struct inv *f, uint64_t gpa)
{
	return f->m->r[gpa / REGSZ].hva + gpa % REGSZ;
}

/* Socket offering @features (LOG_ALL included) and LOG_SHMFD; connect without LOG_ALL. */
static void dl_connect(struct inv *f, const struct vhk_device_ops *ops, uint64_t offer,
		       uint64_t features)
{
	struct be_cfg cfg = {.net = ops == NULL, .ops = ops, .features = offer,
			     .protocol_features = PF_LOG, .pairs = 1};
	memset(f, 0, sizeof(*f));
	f->path = be_start(&cfg);
	f->vid = -1;
	inv_connect(f, features, PF_LOG);
	CHECK_EQ(f->v->features, features);
	CHECK(f->v->protocol_features & BIT(VHK_PF_LOG_SHMFD));
}

/* Guest memory and @nrings rings up; the recording observer on them. */
static void dl_guest(struct inv *f, uint64_t features, uint32_t nrings)
{
	inv_guest(f, NREG, REGSZ, QSIZE, features & (F_EVI | F_IO));
	inv_bring_up(f, nrings);
	struct vdev *d = vdev_get(f->vid);
	CHECK(d != NULL);
	S.mem = d->mem;
	for (uint32_t q = 0; q < nrings; q++) {
		struct vq *vq = vdev_vq(d, q);
		CHECK(vq != NULL);
		vq_quiesce(vq);
		vq_set_write_observer(vq, &g_obs);
		vq_unquiesce(vq);
	}
	S.snap = malloc(MEMSZ);
	CHECK(S.snap != NULL);
}

/* SET_LOG_BASE with our log: the reply is an empty body (what QEMU waits for). */
static void send_log_base(struct inv *f)
{
	struct vhost_user_log lg = {.mmap_size = LOG_BYTES, .mmap_offset = LOG_OFF};
	struct vhost_user_msg m;

	if (!S.log) {
		S.log_fd = memfd_sized(LOG_OFF + LOG_BYTES, &S.log_map);
		S.log = (uint8_t *)S.log_map + LOG_OFF;
	}
	CHECK_EQ(vuf_request(f->v, VHOST_USER_SET_LOG_BASE, &lg, sizeof(lg), &S.log_fd, 1, &m), 0);
	CHECK_EQ(m.hdr.size, 0);
}

/* SET_VRING_ADDR of ring @q with VHOST_VRING_F_LOG (@log: 1) at @log_gpa. */
static void send_ring_log(struct inv *f, uint32_t q, int log, uint64_t log_gpa)
{
	const struct gvq *r = f->vq[q];
	struct vhost_user_vring_addr a = {.index = q,
					  .flags = log ? 1u : 0u,
					  .desc_user_addr = gmem_qva(r->mem, r->desc_gpa),
					  .used_user_addr = gmem_qva(r->mem, r->used_gpa),
					  .avail_user_addr = gmem_qva(r->mem, r->avail_gpa),
					  .log_guest_addr = log_gpa};
	fe_ack(f->v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

/* The log address QEMU gives ring @q: its used ring (split) or device event area (packed). */
static uint64_t ring_gpa(const struct inv *f, uint32_t q)
{
	return f->vq[q]->used_gpa;
}

/*
 * Start logging like QEMU at the start of a migration, on a running device:
 * the log, LOG_ALL (the device is not destroyed: features_changed tells the
 * app), then the rings' log flag.
 */
static void start_logging(struct inv *f, uint64_t features, uint32_t nrings)
{
	unsigned destroyed = ev_count(EV_DESTROY_DEV);
	send_log_base(f);
	fe_ack(f->v, VHOST_USER_SET_FEATURES, &(uint64_t){features | F_LOG_ALL}, 8, NULL, 0);
	struct ev e;
	CHECK(ev_wait_match(EV_FEATURES, f->vid, -1, -1, 3000, &e));
	CHECK_EQ(e.features, features | F_LOG_ALL);
	for (uint32_t q = 0; q < nrings; q++)
		send_ring_log(f, q, 1, ring_gpa(f, q));
	CHECK_EQ(ev_count(EV_DESTROY_DEV), destroyed);
}

static void dl_close(struct inv *f)
{
	inv_close(f);
	munmap(S.log_map, LOG_OFF + LOG_BYTES);
	close(S.log_fd);
	S.log = NULL;
	free(S.snap);
	S.snap = NULL;
}

/* Before a step: what the frontend's sync leaves (a clear log), a snapshot. */
static void step_begin(struct inv *f)
{
	for (uint32_t i = 0; i < NREG; i++)
		memcpy(S.snap + (uint64_t)i * REGSZ, f->m->r[i].hva, REGSZ);
	memset(S.log, 0, LOG_BYTES);
	memset(S.written, 0, sizeof(S.written));
	S.writes = 0;
	S.outside = false;
}

/*
 * After a step: marked == written on every page of guest memory, changed
 * => marked, nothing marked past guest memory but the pages in @extra (a
 * bitmap like the log's, may be NULL). Returns the number of pages marked.
 */
static uint32_t step_check(struct inv *f, const char *what, const uint8_t *extra)
{
	uint32_t marked = 0, written = 0, changed = 0;

	CHECK(!S.outside);
	for (uint64_t p = 0; p < MEMSZ / PAGE; p++) {
		bool m = get_page(S.log, p), w = get_page(S.written, p), c = false;
		for (uint64_t g = p * PAGE; g < (p + 1) * PAGE && !c; g++)
			c = *gbyte(f, g) != S.snap[g];
		marked += m;
		written += w;
		changed += c;
		if (m != w || (c && !m)) {
			fprintf(stderr, "# %s: page %llu (gpa 0x%llx): marked %d written %d changed %d\n",
				what, (unsigned long long)p, (unsigned long long)(p * PAGE), m, w, c);
			CHECK(0);
		}
	}
	for (uint64_t p = MEMSZ / PAGE; p < LOG_PAGES; p++) {
		if (get_page(S.log, p) != (extra && get_page(extra, p))) {
			fprintf(stderr, "# %s: page %llu past guest memory: marked %d\n", what,
				(unsigned long long)p, get_page(S.log, p));
			CHECK(0);
		}
	}
	fprintf(stderr, "# %s: %llu writes, %u pages written, %u marked, %u changed\n", what,
		(unsigned long long)S.writes, written, marked, changed);
	return marked;
}

static uint64_t alloc(struct inv *f, uint32_t len)
{
	uint64_t g = gmem_alloc(f->m, len, 64);
	CHECK(g != 0);
	return g;
}

/* A packet of @len bytes in segments of at most @seg bytes, bytes from @seed. */
static struct vhk_pkt *mkpkt(struct vhk_pool *pool, uint32_t len, uint32_t seg, uint8_t seed)
{
	struct vhk_pkt *head = vhk_pkt_alloc(pool), *tail = head;
	uint32_t off = 0;

	CHECK(head != NULL);
	while (off < len) {
		if (vhk_pkt_tailroom(tail) == 0 || tail->data_len >= seg) {
			tail = vhk_pkt_alloc(pool);
			CHECK(tail != NULL);
			CHECK_EQ(vhk_pkt_chain(head, tail), 0);
		}
		uint32_t n = MIN(MIN(seg - tail->data_len, len - off), vhk_pkt_tailroom(tail));
		uint8_t *d = vhk_pkt_append(head, n);
		CHECK(d != NULL);
		for (uint32_t i = 0; i < n; i++)
			d[i] = (uint8_t)(seed + off + i);
		off += n;
	}
	return head;
}

static uint32_t reap(struct inv *f, uint32_t q)
{
	void *tok;
	uint32_t len, n = 0;
	while (gvq_get_used(f->vq[q], &tok, &len) == 1)
		n++;
	return n;
}

/* Post a writable receive chain of the pieces @in (filled with 0xcc first). */
static void rx_post(struct inv *f, const struct gbuf *in, int nin, bool indirect)
{
	for (int i = 0; i < nin; i++)
		for (uint32_t j = 0; j < in[i].len; j++)
			*gbyte(f, in[i].gpa + j) = 0xcc;
	CHECK(gvq_post(f->vq[0], NULL, 0, in, nin, indirect, (void *)1) >= 0);
}

/*
 * Receive: chains of every shape, packets of every shape, then a check.
 * Every chain posted is used, so nothing is left for the next step.
 * @logged: logging is on (else nothing may be marked).
 */
static void rx_step(struct inv *f, struct vhk_pool *pool, uint64_t straddle, bool mrg,
		    bool logged)
{
	struct gbuf b[3];

	for (int i = 0; i < 4; i++) { /* one piece: the burst fast path */
		b[0] = (struct gbuf){alloc(f, 2048), 2048};
		rx_post(f, b, 1, false);
	}
	b[0] = (struct gbuf){alloc(f, 64), 64}; /* readable on receive: rejected, not written */
	CHECK(gvq_post(f->vq[0], b, 1, NULL, 0, false, (void *)1) >= 0);
	b[0] = (struct gbuf){alloc(f, 64), 7}; /* the header over two pieces */
	b[1] = (struct gbuf){alloc(f, 64), 30};
	b[2] = (struct gbuf){alloc(f, 2048), 2000};
	rx_post(f, b, 3, false);
	b[0] = (struct gbuf){alloc(f, 128), 100}; /* indirect */
	b[1] = (struct gbuf){alloc(f, 2048), 1948};
	rx_post(f, b, 2, true);
	b[0] = (struct gbuf){straddle, 2048}; /* one buffer over two regions */
	rx_post(f, b, 1, false);
	if (mrg) { /* the last packet takes the straddling buffer and this one */
		b[0] = (struct gbuf){alloc(f, 1024), 1024};
		rx_post(f, b, 1, false);
	}
	struct vhk_pkt *p[7];
	p[0] = mkpkt(pool, 60, 2048, 1);
	p[1] = mkpkt(pool, 1500, 2048, 2);
	p[2] = mkpkt(pool, 1400, 500, 3); /* three segments */
	p[3] = mkpkt(pool, 200, 2048, 4); /* checksum offload: patched in the guest's copy */
	p[3]->ol.flags = VHK_PKT_OL_NEEDS_CSUM;
	p[3]->ol.csum_start = 34;
	p[3]->ol.csum_offset = 16;
	p[4] = mkpkt(pool, 900, 2048, 5);
	p[5] = mkpkt(pool, 1200, 2048, 6);
	p[6] = mkpkt(pool, mrg ? 3000 : 1000, 1024, 7); /* mergeable: three buffers */
	uint16_t sent = 0;
	step_begin(f);
	while (sent < 7) {
		uint16_t k = vhk_net_enqueue_burst(f->vid, 0, p + sent, (uint16_t)(7 - sent));
		if (!k)
			break;
		sent = (uint16_t)(sent + k);
	}
	CHECK_EQ(sent, 7);
	CHECK(writes_of(VQ_WRITE_BUF) > 0);
	if (logged) {
		CHECK(step_check(f, mrg ? "rx (mergeable)" : "rx", NULL) > 0);
	} else {
		for (uint64_t i = 0; i < LOG_BYTES; i++)
			CHECK_EQ(S.log[i], 0);
	}
	for (int i = 0; i < 7; i++)
		vhk_pkt_free(p[i]);
	CHECK(reap(f, 0) >= 7);
	CHECK(!inv_vring(f, 0).broken);
}

/*
 * A mergeable packet that does not fit: its first chains are written, then
 * given back. The burst publishes nothing, and still the bytes it wrote are
 * marked by the time it returns.
 */
static void rx_partial_step(struct inv *f, struct vhk_pool *pool)
{
	struct gbuf b = {alloc(f, 1024), 1024};

	rx_post(f, &b, 1, false);
	struct vhk_pkt *p = mkpkt(pool, 4000, 2048, 9);
	step_begin(f);
	CHECK_EQ(vhk_net_enqueue_burst(f->vid, 0, &p, 1), 0);
	CHECK(writes_of(VQ_WRITE_BUF) > 0);
	CHECK_EQ(writes_of(VQ_WRITE_USED) + writes_of(VQ_WRITE_DESC), 0);
	CHECK(step_check(f, "rx (packet given back)", NULL) > 0);
	/* The next burst places a small packet in the chain given back. */
	vhk_pkt_free(p);
	p = mkpkt(pool, 100, 2048, 10);
	step_begin(f);
	CHECK_EQ(vhk_net_enqueue_burst(f->vid, 0, &p, 1), 1);
	step_check(f, "rx (after it)", NULL);
	vhk_pkt_free(p);
	CHECK_EQ(reap(f, 0), 1);
}

/* Post a transmit chain of a 12-byte header and @len bytes in @npieces pieces. */
static void tx_post(struct inv *f, uint32_t len, int npieces, bool indirect)
{
	struct gbuf b[2];
	uint32_t total = HDR + len, off = 0;

	for (int i = 0; i < npieces; i++) {
		uint32_t l = i + 1 < npieces ? total / 2 : total - off;
		b[i] = (struct gbuf){alloc(f, l), l};
		for (uint32_t j = 0; j < l; j++)
			*gbyte(f, b[i].gpa + j) = off + j < HDR ? 0 : (uint8_t)(off + j);
		off += l;
	}
	CHECK(gvq_post(f->vq[1], b, npieces, NULL, 0, indirect, (void *)1) >= 0);
}

/* Transmit: the device writes only the used side. */
static void tx_step(struct inv *f, struct vhk_pool *pool, bool ring_logged)
{
	struct vhk_pkt *out[16];
	uint32_t got = 0;

	for (int i = 0; i < 5; i++)
		tx_post(f, 60 + (uint32_t)i * 100, 1 + i % 2, i == 3);
	step_begin(f);
	for (;;) {
		uint16_t k = vhk_net_dequeue_burst(f->vid, 1, pool, out, 16);
		if (!k)
			break;
		got += k;
		vhk_pkt_free_bulk(out, k);
	}
	CHECK_EQ(got, 5);
	CHECK_EQ(writes_of(VQ_WRITE_BUF), 0);
	uint32_t marked = step_check(f, "tx", NULL);
	CHECK(ring_logged ? marked > 0 : marked == 0);
	CHECK_EQ(reap(f, 1), 5);
}

/* Notification changes write the event areas: marked too (at once, no flush follows). */
static void notify_step(struct inv *f)
{
	step_begin(f);
	for (uint16_t q = 0; q < 2; q++) {
		CHECK_EQ(vhk_vq_set_notification(f->vid, q, false), 0);
		CHECK_EQ(vhk_vq_set_notification(f->vid, q, true), 0);
	}
	CHECK(step_check(f, "notifications", NULL) > 0);
}

static void run(uint64_t features)
{
	struct inv f;
	struct vhk_pool *pool;

	dl_connect(&f, NULL, VHK_NET_DEFAULT_FEATURES | (inv_packed ? BIT(VHK_F_RING_PACKED) : 0),
		   features);
	dl_guest(&f, features, 2);
	CHECK_EQ(vhk_pool_create(256, 2048, 0, 0, &pool), 0);
	uint64_t straddle = gmem_alloc_straddle(f.m, 0, 2048);
	CHECK(straddle != 0);
	/* Before logging starts nothing is marked, though the device writes. */
	S.log_fd = memfd_sized(LOG_OFF + LOG_BYTES, &S.log_map);
	S.log = (uint8_t *)S.log_map + LOG_OFF;
	rx_step(&f, pool, straddle, features & F_MRG, false);
	start_logging(&f, features, 2);
	for (int round = 0; round < 3; round++) {
		rx_step(&f, pool, straddle, features & F_MRG, true);
		tx_step(&f, pool, true);
		notify_step(&f);
	}
	if (features & F_MRG)
		rx_partial_step(&f, pool);
	/* The frontend stops logging: LOG_ALL off, the rings' flag off. */
	fe_ack(f.v, VHOST_USER_SET_FEATURES, &features, 8, NULL, 0);
	struct ev e;
	CHECK(ev_wait_match(EV_FEATURES, f.vid, -1, -1, 3000, &e));
	CHECK_EQ(e.features, features);
	for (uint32_t q = 0; q < 2; q++)
		send_ring_log(&f, q, 0, 0);
	struct vhk_pkt *p = mkpkt(pool, 100, 2048, 1);
	struct gbuf b = {alloc(&f, 2048), 2048};
	rx_post(&f, &b, 1, false);
	step_begin(&f);
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, &p, 1), 1);
	vhk_pkt_free(p);
	/* Written, not marked: compare by hand (step_check wants marked == written). */
	for (uint64_t i = 0; i < LOG_BYTES; i++)
		CHECK_EQ(S.log[i], 0);
	CHECK(S.writes > 0);
	reap(&f, 0);
	dl_close(&f);
	CHECK_EQ(vhk_pool_avail(pool), 256);
	vhk_pool_free(pool);
}

static void t_log_plain(void)
{
	run(F_NET | F_EVI);
}

static void t_log_mergeable(void)
{
	run(F_NET | F_EVI | F_MRG);
}

static void t_log_in_order(void)
{
	run(F_NET | F_EVI | F_IO);
}

static void t_log_in_order_mergeable(void)
{
	run(F_NET | F_EVI | F_IO | F_MRG);
}

static void t_log_no_event_idx(void)
{
	run(F_NET | F_MRG);
}

/*
 * log_guest_addr outside guest memory (the spec allows it; the log is
 * larger): the ring's used-side writes (split: the used ring; packed: the
 * device event area) are marked there, offset for offset, and not at the
 * ring's own GPA; buffers and the packed descriptor write-back keep their
 * GPAs. The expected log is built from the observed writes.
 */
static void t_ring_log_addr_outside_memory(void)
{
	const uint64_t features = F_NET | F_EVI;
	struct inv f;
	struct vhk_pool *pool;
	static uint8_t expect[LOG_BYTES];

	dl_connect(&f, NULL, VHK_NET_DEFAULT_FEATURES | (inv_packed ? BIT(VHK_F_RING_PACKED) : 0),
		   features);
	dl_guest(&f, features, 2);
	CHECK_EQ(vhk_pool_create(64, 2048, 0, 0, &pool), 0);
	send_log_base(&f);
	fe_ack(f.v, VHOST_USER_SET_FEATURES, &(uint64_t){features | F_LOG_ALL}, 8, NULL, 0);
	/* Each ring's used side mirrored past the end of guest memory, in-page offset kept. */
	uint64_t away[2], lo[2], len[2];
	for (uint32_t q = 0; q < 2; q++) {
		lo[q] = ring_gpa(&f, q);
		len[q] = inv_packed ? 4 : 6 + 8 * QSIZE + 2;
		away[q] = MEMSZ + 0x10000 * (q + 1) + lo[q] % PAGE;
		send_ring_log(&f, q, 1, away[q]);
	}
	struct gbuf b = {alloc(&f, 2048), 2048};
	rx_post(&f, &b, 1, false);
	tx_post(&f, 200, 1, false);
	step_begin(&f);
	struct vhk_pkt *p = mkpkt(pool, 300, 2048, 3), *out[4];
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, &p, 1), 1);
	vhk_pkt_free(p);
	CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, pool, out, 4), 1);
	vhk_pkt_free_bulk(out, 1);
	for (uint16_t q = 0; q < 2; q++) { /* event areas */
		CHECK_EQ(vhk_vq_set_notification(f.vid, q, false), 0);
		CHECK_EQ(vhk_vq_set_notification(f.vid, q, true), 0);
	}
	CHECK(!S.outside && S.writes <= MAXREC);
	memset(expect, 0, sizeof(expect));
	uint32_t moved = 0;
	for (uint64_t i = 0; i < S.writes; i++) {
		const struct wrec *w = &S.rec[i];
		uint64_t g = w->gpa;
		for (uint32_t q = 0; q < 2; q++) {
			if (w->kind != VQ_WRITE_BUF && w->kind != VQ_WRITE_DESC && g >= lo[q] &&
			    g + w->len <= lo[q] + len[q]) {
				g = away[q] + (g - lo[q]);
				moved++;
			}
		}
		for (uint64_t pg = g / PAGE; pg <= (g + w->len - 1) / PAGE; pg++)
			set_page(expect, pg);
	}
	CHECK(moved > 0);
	CHECK(writes_of(VQ_WRITE_BUF) > 0);
	for (uint64_t pg = 0; pg < LOG_PAGES; pg++) {
		if (get_page(S.log, pg) != get_page(expect, pg)) {
			fprintf(stderr, "# page %llu: marked %d, expected %d\n", (unsigned long long)pg,
				get_page(S.log, pg), get_page(expect, pg));
			CHECK(0);
		}
	}
	/* Split: the used rings' own pages are not marked (unless a buffer shares them). */
	CHECK(get_page(S.log, away[0] / PAGE) && get_page(S.log, away[1] / PAGE));
	CHECK_EQ(reap(&f, 0), 1);
	CHECK_EQ(reap(&f, 1), 1);
	dl_close(&f);
	vhk_pool_free(pool);
}

/* ---- the element API: the application writes, vhk_vq_push logs ---- */

static const struct vhk_device_ops app_ops = {.name = "dl-app", .min_queues = 1};

/* Fill the first @len writable bytes of @el with @seed.. (the application's response). */
static void app_write(const struct vhk_vq_elem *el, uint32_t len, uint8_t seed)
{
	for (uint32_t i = el->out_num; i < el->out_num + el->in_num && len; i++) {
		uint32_t n = (uint32_t)MIN((uint64_t)len, (uint64_t)el->iov[i].iov_len);
		uint8_t *p = el->iov[i].iov_base;
		for (uint32_t j = 0; j < n; j++)
			p[j] = (uint8_t)(seed + j);
		len -= n;
	}
}

/* The pages of guest [@gpa, @gpa + @len) must be marked (what the app wrote). */
static void expect_marked(uint64_t gpa, uint64_t len)
{
	for (uint64_t p = gpa / PAGE; p <= (gpa + len - 1) / PAGE; p++)
		CHECK(get_page(S.log, p));
}

static int app_pop(struct inv *f, struct vhk_vq_elem *el, struct iovec *iov)
{
	memset(el, 0, sizeof(*el));
	el->iov = iov;
	el->iov_max = 8;
	return vhk_vq_pop(f->vid, 0, el);
}

/*
 * A request popped before logging starts and completed after it is logged
 * (the library kept its pieces); the push logs exactly the first len bytes;
 * len 0, an unpop and a request bigger than the piece store's first growth
 * behave; vhk_vq_log_write marks what it is told and refuses what is not
 * guest memory.
 */
static void t_element_api(void)
{
	const uint64_t offer = IT_F_CUSTOM | F_LOG_ALL | (inv_packed ? BIT(VHK_F_RING_PACKED) : 0);
	const uint64_t features = offer & ~F_LOG_ALL;
	struct inv f;
	struct vhk_vq_elem el;
	struct iovec iov[8];

	dl_connect(&f, &app_ops, offer, features);
	dl_guest(&f, features, 1);
	/* A: three writable pieces, the middle one over a region boundary. */
	uint64_t straddle = gmem_alloc_straddle(f.m, 0, 6000);
	struct gbuf a[3] = {{alloc(&f, 100), 100}, {straddle, 6000}, {alloc(&f, 9000), 9000}};
	struct gbuf hdr = {alloc(&f, 16), 16};
	CHECK(gvq_post(f.vq[0], &hdr, 1, a, 3, false, (void *)1) >= 0);
	CHECK_EQ(app_pop(&f, &el, iov), 0);
	CHECK_EQ(el.in_num, 4); /* the straddling buffer is two pieces */
	uint16_t id_a = el.id;
	struct vhk_vq_elem el_a = el;
	struct iovec iov_a[8];
	memcpy(iov_a, iov, sizeof(iov));
	el_a.iov = iov_a;
	memset(iov, 0, sizeof(iov)); /* the app may reuse its array: the library kept a copy */

	start_logging(&f, features, 1);
	/* The response ends 50 bytes into the last piece. */
	const uint32_t len_a = 100 + 6000 + 50;
	step_begin(&f);
	app_write(&el_a, len_a, 0x11);
	CHECK_EQ(vhk_vq_push(f.vid, 0, id_a, len_a), 0);
	CHECK(vhk_vq_flush(f.vid, 0) >= 0);
	step_check(&f, "element API push", NULL);
	expect_marked(a[0].gpa, 100);
	expect_marked(a[1].gpa, 6000);
	expect_marked(a[2].gpa, 50);
	for (uint64_t p = (a[2].gpa + 50) / PAGE + 1; p <= (a[2].gpa + 8999) / PAGE; p++)
		CHECK(!get_page(S.log, p)); /* not written: not marked */
	CHECK_EQ(reap(&f, 0), 1);

	/* B: pushed with len 0 (nothing written): only the used side is marked. */
	struct gbuf bb = {alloc(&f, 3000), 3000};
	CHECK(gvq_post(f.vq[0], NULL, 0, &bb, 1, false, (void *)2) >= 0);
	step_begin(&f);
	CHECK_EQ(app_pop(&f, &el, iov), 0);
	CHECK_EQ(vhk_vq_push(f.vid, 0, el.id, 0), 0);
	CHECK(vhk_vq_flush(f.vid, 0) >= 0);
	CHECK(step_check(&f, "element API len 0", NULL) > 0);
	CHECK_EQ(writes_of(VQ_WRITE_BUF), 0); /* the used side only */
	CHECK_EQ(reap(&f, 0), 1);

	/* C: popped, written by mistake, given back: nothing reported (the guest did not get it). */
	struct gbuf cb = {alloc(&f, 500), 500};
	CHECK(gvq_post(f.vq[0], NULL, 0, &cb, 1, false, (void *)3) >= 0);
	CHECK_EQ(app_pop(&f, &el, iov), 0);
	CHECK_EQ(vhk_vq_unpop(f.vid, 0, &el), 0);
	step_begin(&f);
	CHECK_EQ(app_pop(&f, &el, iov), 0);
	app_write(&el, 500, 0x33);
	CHECK_EQ(vhk_vq_push(f.vid, 0, el.id, 500), 0);
	CHECK(vhk_vq_flush(f.vid, 0) >= 0);
	step_check(&f, "element API after unpop", NULL);
	expect_marked(cb.gpa, 500);
	CHECK_EQ(reap(&f, 0), 1);

	/* A response that ends exactly at the end of a page: the next page is not marked. */
	uint64_t pg = gmem_alloc(f.m, 2 * PAGE, PAGE);
	CHECK(pg != 0);
	struct gbuf pb = {pg, PAGE};
	CHECK(gvq_post(f.vq[0], NULL, 0, &pb, 1, false, (void *)4) >= 0);
	step_begin(&f);
	CHECK_EQ(app_pop(&f, &el, iov), 0);
	app_write(&el, PAGE, 0x44);
	CHECK_EQ(vhk_vq_push(f.vid, 0, el.id, PAGE), 0);
	CHECK(vhk_vq_flush(f.vid, 0) >= 0);
	step_check(&f, "element API, a whole page", NULL);
	CHECK(get_page(S.log, pg / PAGE));
	CHECK(!get_page(S.log, pg / PAGE + 1));
	CHECK_EQ(reap(&f, 0), 1);

	/* Many requests in flight at once: the piece store grows (64 first). */
	struct gbuf many[5];
	for (int r = 0; r < 30; r++) {
		for (int i = 0; i < 5; i++)
			many[i] = (struct gbuf){alloc(&f, 64), 64};
		CHECK(gvq_post(f.vq[0], NULL, 0, many, 5, true, (void *)(uintptr_t)(10 + r)) >= 0);
	}
	static struct vhk_vq_elem els[30];
	static struct iovec iovs[30][8];
	step_begin(&f);
	for (int r = 0; r < 30; r++) {
		els[r].iov = iovs[r];
		els[r].iov_max = 8;
		CHECK_EQ(vhk_vq_pop(f.vid, 0, &els[r]), 0);
	}
	for (int r = 29; r >= 0; r--) {
		app_write(&els[r], (uint32_t)(64 * 5 - r), (uint8_t)r);
		CHECK_EQ(vhk_vq_push(f.vid, 0, els[r].id, (uint32_t)(64 * 5 - r)), 0);
	}
	CHECK(vhk_vq_flush(f.vid, 0) >= 0);
	step_check(&f, "element API, 30 in flight", NULL);
	CHECK_EQ(reap(&f, 0), 30);

	/* vhk_vq_log_write: guest memory only (the library's addresses of it), marked at once. */
	uint64_t g = alloc(&f, 64), n = 64;
	uint8_t *lib = vhk_vq_translate(f.vid, 0, g, &n);
	CHECK(lib && n == 64);
	step_begin(&f);
	lib[0] = 0x5a;
	CHECK_EQ(vhk_vq_log_write(f.vid, 0, lib, 1), 0);
	step_check(&f, "vhk_vq_log_write", NULL);
	CHECK(get_page(S.log, g / PAGE));
	uint8_t host[16];
	CHECK_EQ(vhk_vq_log_write(f.vid, 0, host, sizeof(host)), -EFAULT);
	CHECK_EQ(vhk_vq_log_write(f.vid, 0, gbyte(&f, g), 1), -EFAULT); /* the frontend's mapping */
	CHECK_EQ(vhk_vq_log_write(f.vid, 0, NULL, 1), -EINVAL);
	CHECK_EQ(vhk_vq_log_write(f.vid, 0, lib, 0), -EINVAL);
	CHECK_EQ(vhk_vq_log_write(f.vid, 7, lib, 1), -EAGAIN);
	CHECK_EQ(vhk_vq_log_write(-1, 0, lib, 1), -ENODEV);
	dl_close(&f);
}

/*
 * Bits still pending when the ring stops are published by the stop: the
 * frontend reads the log once GET_VRING_BASE is answered. (A push the
 * application never flushed leaves its bits pending.)
 */
static void t_pending_published_at_stop(void)
{
	const uint64_t offer = IT_F_CUSTOM | F_LOG_ALL | (inv_packed ? BIT(VHK_F_RING_PACKED) : 0);
	const uint64_t features = offer & ~F_LOG_ALL;
	struct inv f;
	struct vhk_vq_elem el;
	struct iovec iov[8];
	uint32_t base;

	dl_connect(&f, &app_ops, offer, features);
	dl_guest(&f, features, 1);
	start_logging(&f, features, 1);
	struct gbuf b = {alloc(&f, 2000), 2000};
	CHECK(gvq_post(f.vq[0], NULL, 0, &b, 1, false, (void *)1) >= 0);
	step_begin(&f);
	CHECK_EQ(app_pop(&f, &el, iov), 0);
	app_write(&el, 2000, 0x77);
	CHECK_EQ(vhk_vq_push(f.vid, 0, el.id, 2000), 0);
	CHECK_EQ(vuf_get_vring_base(f.v, 0, &base), 0);
	expect_marked(b.gpa, 2000);
	dl_close(&f);
}

GVQ_TEST_MAIN(TEST(t_log_plain), TEST(t_log_mergeable), TEST(t_log_in_order),
	      TEST(t_log_in_order_mergeable), TEST(t_log_no_event_idx),
	      TEST(t_ring_log_addr_outside_memory), TEST(t_element_api),
	      TEST(t_pending_published_at_stop))
