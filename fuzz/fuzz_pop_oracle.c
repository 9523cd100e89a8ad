/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer oracle for the inline fast paths (src/vq/vq_fast.h): the input
 * builds one ring image (split or packed: descriptors with their flags,
 * avail entries, indirect tables, buffers in three guest regions, one of
 * them behind a hole; written with the test harness's raw ring writers)
 * and a script of device operations. Two vqs get
 * identical copies of that guest memory and run the script side by side:
 *   A the way net does: vq_pop_burst_one() sections ended with
 *     vq_fast_section_end() (vq_push_burst + vq_rewind_one), vq_pop_one()
 *     falling back to vq_pop() where it declines, vq_push_fast();
 *   B only the general path: vq_pop(), vq_push(), vq_rewind().
 * After every step they must agree exactly: the same return codes, ids
 * and pieces (as region and offset: the two copies live at different host
 * addresses), the same ring state (last_avail_idx, wrap counter, in-flight
 * bitmap, pop records, shadow used entries, IN_ORDER bookkeeping, used
 * position), the same broken / not broken, and after a flush the same bytes
 * in guest memory. Any disagreement aborts, so libFuzzer reports it.
 *
 * Input (bytes past the end read as 0):
 *   [0] bit 0 packed, bit 1 INDIRECT_DESC, bit 2 IN_ORDER, bit 3 EVENT_IDX,
 *       bits 4..7 piece storage of a chain (0: 256 entries, else that many)
 *   [1] ring size: split 1 << (v % 8), packed v % 128 + 1
 *   [2..3] base: split avail index; packed position (% size), bit 15 wrap
 *   [4] split: avail->idx = base + v % (size + 2) (size + 1 breaks the ring)
 *   then size descriptors, 6 bytes each (see put_desc()), split: size avail
 *   entries (head = v % (size + 2)), 4 indirect tables of 8 entries, then
 *   the script: one opcode byte and its argument bytes per step (run()).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gmem.h"
#include "gvq.h"
#include "vq/vq.h"
#include "vq/vq_fast.h"

#define RSZ	 0x10000ull /* bytes per region */
#define NREG	 3
#define GPA_SPAN (4 * RSZ) /* region 2 sits behind a hole of RSZ */
#define QVA_BASE 0x7f0000000000ull
#define MAXQ	 128
#define NIND	 4
#define IND_N	 8
#define MAXSTEPS 512

#define F_INDIRECT (1ull << 28)
#define F_EVENT_IDX (1ull << 29)
#define F_PACKED   (1ull << 34)
#define F_IN_ORDER (1ull << 35)

/* Ring areas in region 0; indirect tables in every kind of place. */
#define SPLIT_AVAIL 0x1000ull
#define SPLIT_USED  0x2000ull
#define PK_DRV	    0x1000ull
#define PK_DEV	    0x1010ull
static const uint64_t ind_gpa[NIND] = {
	RSZ + 0x100,	 /* region 1 */
	3 * RSZ + 0x201, /* region 2, odd address */
	RSZ - 0x28,	 /* crosses regions 0/1 (host mappings not adjacent) */
	3 * RSZ - 0x10,	 /* starts in the hole */
};
static const uint64_t reg_gpa[NREG] = {0, RSZ, 3 * RSZ};

/* The two sides: A (fast paths) and B (general path), each with its own memory. */
struct side {
	struct gmem *gm; /* guest RAM (harness): region i at reg_gpa[i] */
	struct mem_table *mem;
	uint8_t *view[NREG]; /* our view of each region */
	struct vq vq;
	struct vq_chain c;
	struct iovec iov[256];
};

static struct side g_s[2];
/* Side A's ring layouts (harness guest rings, for the raw writers): [packed][size]. */
static struct gvq *g_ring[2][MAXQ + 1];

/* Input reader: zeros past the end. */
struct rd {
	const uint8_t *p;
	size_t n, i;
};

static uint8_t rd8(struct rd *r)
{
	return r->i < r->n ? r->p[r->i++] : (r->i++, 0);
}

static uint16_t rd16(struct rd *r)
{
	uint16_t lo = rd8(r);
	return (uint16_t)(lo | rd8(r) << 8);
}

/* Disagreement between the paths, or a state they must not reach: report and abort. */
#define ORACLE(cond, ...)                                                                  \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "pop oracle: %s: ", #cond);                         \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
			abort();                                                           \
		}                                                                          \
	} while (0)

/* Each side's guest RAM: three regions (the harness's, each a file of its own), one behind a hole.
 */
static int setup_memory(void)
{
	for (int s = 0; s < 2; s++) {
		struct gmem *m;
		if (gmem_new(2, RSZ, reg_gpa[0], 0, &m) || gmem_add(m, reg_gpa[2], RSZ))
			return -1;
		gmem_set_qva_base(m, QVA_BASE);
		for (int i = 0; i < NREG; i++)
			g_s[s].view[i] = m->r[i].hva;
		g_s[s].gm = m;
		if (gmem_table(m, 0, NREG, &g_s[s].mem))
			return -1;
	}
	return 0;
}

/* Side A's ring of @size in the format @packed at the fixed ring areas (zeroed once). */
static struct gvq *ring_of(bool packed, uint16_t size)
{
	struct gvq **r = &g_ring[packed][size];
	if (!*r && gvq_new_placed(g_s[0].gm, 0, packed ? PK_DRV : SPLIT_AVAIL,
				  packed ? PK_DEV : SPLIT_USED, size, packed ? F_PACKED : 0, r))
		abort(); /* test setup, not input */
	return *r;
}

/*
 * Descriptor from 6 input bytes: addr code (u16), len code (u16), flags,
 * next (split) / buffer id (packed), both v % (size + 2).
 * flags bits 0..2 NEXT, WRITE, INDIRECT; packed bits 3..4 the availability
 * bits: 0 available in the lap of its position, 1 the other lap's, 2 both
 * set, 3 neither; bit 5 with INDIRECT: point at table (addr code % 4) with
 * (len code % 9) entries; bit 6 addr = 2^64 - 1 - code (wraps); bit 7 len =
 * 2^32 - 1 - code. Plain addresses are code * 4: the three regions, the
 * hole and every boundary.
 */
struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static struct desc get_desc(struct rd *r, uint16_t size, bool lap)
{
	uint16_t a = rd16(r), l = rd16(r);
	uint8_t f = rd8(r), n = rd8(r);
	struct desc d;

	d.addr = (f & 0x40) ? UINT64_MAX - a : (uint64_t)a * 4;
	d.len = (f & 0x80) ? UINT32_MAX - l : l;
	d.flags = f & (VRING_DESC_F_NEXT | VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT);
	if ((f & VRING_DESC_F_INDIRECT) && (f & 0x20)) {
		d.addr = ind_gpa[a % NIND];
		d.len = (uint32_t)(l % 9) * 16;
	}
	static const uint16_t lapbits[4][2] = {
		/* [mode][lap]: AVAIL bit 7, USED bit 15 */
		{1u << 15, 1u << 7}, {1u << 7, 1u << 15}, {0x8080, 0x8080}, {0, 0}};
	d.flags |= lapbits[(f >> 3) & 3][lap];
	d.next = (uint16_t)(n % (size + 2));
	return d;
}

/*
 * Lay out the ring image and its indirect tables from the input: written
 * into side A's memory with the harness (raw descriptors, avail entries and
 * index; table entries where the hole swallows what falls into it), then
 * copied to side B.
 */
static void build_image(struct rd *r, bool packed, uint16_t size, uint32_t base, uint8_t idx_delta)
{
	for (int i = 0; i < NREG; i++)
		memset(g_s[0].view[i], 0, RSZ);
	struct gvq *q = ring_of(packed, size);
	uint16_t pos0 = (uint16_t)(base & 0x7fff);
	bool wrap0 = base & 0x8000;
	for (uint16_t i = 0; i < size; i++) {
		/* Packed: slots before the start position belong to the next lap. */
		struct desc d = get_desc(r, size, packed ? (i >= pos0 ? wrap0 : !wrap0) : 0);
		if (packed)
			gvq_raw_slot(q, i, d.addr, d.len, d.next, d.flags);
		else
			gvq_raw_desc(q, i, d.addr, d.len, (uint16_t)(d.flags & 7), d.next);
	}
	if (!packed) {
		gvq_raw_avail_idx(q, (uint16_t)(base + idx_delta % (size + 2)));
		for (uint16_t i = 0; i < size; i++)
			gvq_raw_avail(q, i, (uint16_t)(rd8(r) % (size + 2)));
	}
	for (int t = 0; t < NIND; t++) {
		for (int e = 0; e < IND_N; e++) {
			struct desc d = get_desc(r, IND_N, 0);
			uint64_t gpa = ind_gpa[t] + 16ull * e;
			if (packed) {
				struct vring_packed_desc p = {d.addr, d.len, d.next, d.flags};
				(void)gmem_write(g_s[0].gm, gpa, &p, sizeof(p));
			} else {
				struct vring_desc sd = {d.addr, d.len, (uint16_t)(d.flags & 7),
							d.next};
				(void)gmem_write(g_s[0].gm, gpa, &sd, sizeof(sd));
			}
		}
	}
	for (int i = 0; i < NREG; i++)
		memcpy(g_s[1].view[i], g_s[0].view[i], RSZ);
}

/* Region and offset of host address @p in @s's memory (-1: not guest memory). */
static int64_t loc(const struct side *s, const void *p)
{
	for (int i = 0; i < NREG; i++) {
		const struct mem_region *r = &s->mem->regions[i];
		uintptr_t a = (uintptr_t)p, b = (uintptr_t)r->hva;
		if (a >= b && a - b < r->size)
			return (int64_t)(r->gpa + (a - b));
	}
	return -1;
}

/* A's one-piece chain @o equals B's vq_pop result (@rc, B's chain). */
static void same_one(const struct vq_one *o, int rc)
{
	const struct vq_chain *c = &g_s[1].c;

	ORACLE(rc == 0, "fast path popped id %u, vq_pop returned %d", o->id, rc);
	ORACLE(c->id == o->id, "ids %u / %u", o->id, c->id);
	ORACLE(c->ndesc == 1 && c->nout + c->nin == 1, "vq_pop: %u slots, %u pieces", c->ndesc,
	       c->nout + c->nin);
	ORACLE(c->nin == (o->write ? 1u : 0u), "write %d / nin %u", o->write, c->nin);
	ORACLE((o->write ? c->in_len : c->out_len) == o->len, "len %u", o->len);
	ORACLE(c->iov[0].iov_len == o->len, "piece len %u / %zu", o->len, c->iov[0].iov_len);
	ORACLE(loc(&g_s[0], o->base) == loc(&g_s[1], c->iov[0].iov_base) &&
		       loc(&g_s[0], o->base) >= 0,
	       "piece at gpa %lld / %lld", (long long)loc(&g_s[0], o->base),
	       (long long)loc(&g_s[1], c->iov[0].iov_base));
}

/* Both sides' vq_pop results agree. */
static void same_chain(int rca, int rcb)
{
	const struct vq_chain *a = &g_s[0].c, *b = &g_s[1].c;

	ORACLE(rca == rcb, "vq_pop returned %d / %d", rca, rcb);
	if (rca != 0 && rca != -E2BIG)
		return;
	ORACLE(a->id == b->id && a->ndesc == b->ndesc && a->nout == b->nout && a->nin == b->nin &&
		       a->out_len == b->out_len && a->in_len == b->in_len,
	       "chain %u/%u slots %u/%u pieces %u+%u / %u+%u", a->id, b->id, a->ndesc, b->ndesc,
	       a->nout, a->nin, b->nout, b->nin);
	uint32_t n = MIN(a->nout + a->nin, a->iov_max);
	for (uint32_t i = 0; i < n; i++)
		ORACLE(a->iov[i].iov_len == b->iov[i].iov_len &&
			       loc(&g_s[0], a->iov[i].iov_base) == loc(&g_s[1], b->iov[i].iov_base),
		       "piece %u", i);
}

/* The ring state of the two vqs is the same. */
static void same_state(const char *step)
{
	const struct vq *a = &g_s[0].vq, *b = &g_s[1].vq;

	ORACLE(a->last_avail_idx == b->last_avail_idx && a->avail_wrap == b->avail_wrap,
	       "%s: avail position %u/%d vs %u/%d", step, a->last_avail_idx, a->avail_wrap,
	       b->last_avail_idx, b->avail_wrap);
	ORACLE(a->broken == b->broken && a->ready == b->ready, "%s: broken %d / %d", step,
	       a->broken, b->broken);
	ORACLE(a->last_used_idx == b->last_used_idx && a->used_wrap == b->used_wrap,
	       "%s: used position", step);
	ORACLE(a->shadow_count == b->shadow_count, "%s: shadow count %u / %u", step,
	       a->shadow_count, b->shadow_count);
	for (uint16_t i = 0; i < a->shadow_count; i++)
		ORACLE(a->shadow_used[i].id == b->shadow_used[i].id &&
			       a->shadow_used[i].len == b->shadow_used[i].len,
		       "%s: shadow entry %u: %x/%u vs %x/%u", step, i, a->shadow_used[i].id,
		       a->shadow_used[i].len, b->shadow_used[i].id, b->shadow_used[i].len);
	ORACLE(a->io_next == b->io_next && a->io_wrap == b->io_wrap &&
		       a->io_batch_ok == b->io_batch_ok,
	       "%s: in-order state %u/%d/%d vs %u/%d/%d", step, a->io_next, a->io_wrap,
	       a->io_batch_ok, b->io_next, b->io_wrap, b->io_batch_ok);
	if (!a->size)
		return;
	ORACLE(!memcmp(a->inflight, b->inflight, ((a->size + 63u) / 64) * sizeof(uint64_t)),
	       "%s: in-flight bitmaps differ", step);
	for (uint16_t i = 0; i < a->size; i++)
		ORACLE(a->pk_state[i] == b->pk_state[i], "%s: pop record %u: %x / %x", step, i,
		       a->pk_state[i], b->pk_state[i]);
}

/* Both sides' guest memory holds the same bytes. */
static void same_memory(void)
{
	for (int i = 0; i < NREG; i++)
		ORACLE(!memcmp(g_s[0].view[i], g_s[1].view[i], RSZ), "guest memory region %d", i);
}

/* A chain popped and not yet pushed: its id, the used length it will get, how A popped it. */
struct held {
	uint16_t id;
	uint32_t len;
	uint32_t seq; /* pop order */
};

static struct held g_held[MAXQ + 64];
static uint32_t g_nheld, g_seq;

static void hold(uint16_t id, uint32_t len)
{
	if (g_nheld < MAXQ + 64)
		g_held[g_nheld++] = (struct held){id, len, g_seq};
	g_seq++;
}

static void drop_held(uint32_t i)
{
	memmove(&g_held[i], &g_held[i + 1], (g_nheld - i - 1) * sizeof(g_held[0]));
	g_nheld--;
}

/* A burst section as net runs it: pop, use the first @use, give back the rest. */
static void op_burst(struct rd *r)
{
	struct vq_one o[32];
	uint16_t ids[32];
	uint16_t want = (uint16_t)(rd8(r) % 32 + 1);
	uint16_t k = vq_pop_burst_one(&g_s[0].vq, o, want);

	ORACLE(k <= want, "burst popped %u of %u", k, want);
	for (uint16_t i = 0; i < k; i++) {
		same_one(&o[i], vq_pop(&g_s[1].vq, &g_s[1].c));
		ids[i] = o[i].id;
	}
	/*
	 * A split burst reads avail->idx again whenever it knows of fewer than
	 * @want chains, vq_pop only when it knows of none: if that read found
	 * the ring broken, B's next pop must find it too (and take nothing).
	 */
	if (g_s[0].vq.broken && !g_s[1].vq.broken)
		ORACLE(vq_pop(&g_s[1].vq, &g_s[1].c) == -EIO,
		       "the burst found the ring broken, vq_pop did not");
	uint16_t use = (uint16_t)(rd8(r) % (k + 1));
	uint8_t lenb = rd8(r);
	for (uint16_t i = 0; i < use; i++) {
		o[i].len = o[i].write ? o[i].len - (uint32_t)(lenb % 2) * (o[i].len / 2) : 0;
		vq_push(&g_s[1].vq, o[i].id, o[i].len);
	}
	vq_rewind(&g_s[1].vq, ids + use, (uint16_t)(k - use));
	(void)vq_fast_section_end(&g_s[0].vq, o, use, k, want);
	g_seq += use; /* the ones given back were never popped, as far as rewind goes */
	same_state("burst section");
}

/* One chain: A tries vq_pop_one() first, as net's per-packet path does. */
static void op_pop(struct rd *r)
{
	struct vq_one o;
	bool wlen = rd8(r) & 1;

	if (vq_pop_one(&g_s[0].vq, &o)) {
		same_one(&o, vq_pop(&g_s[1].vq, &g_s[1].c));
		hold(o.id, o.write && wlen ? o.len : 0);
	} else {
		int rca = vq_pop(&g_s[0].vq, &g_s[0].c);
		same_chain(rca, vq_pop(&g_s[1].vq, &g_s[1].c));
		if (rca == 0 || rca == -E2BIG)
			hold(g_s[0].c.id, rca == 0 && wlen ? (uint32_t)MIN(g_s[0].c.in_len, 0xffffu)
							   : 0);
	}
	same_state("pop");
}

/* Push held chain @i: A through vq_push_fast() or vq_push(), B through vq_push(). */
static void op_push(uint32_t i, bool fast)
{
	if (i >= g_nheld)
		return;
	if (fast)
		vq_push_fast(&g_s[0].vq, g_held[i].id, g_held[i].len);
	else
		vq_push(&g_s[0].vq, g_held[i].id, g_held[i].len);
	vq_push(&g_s[1].vq, g_held[i].id, g_held[i].len);
	drop_held(i);
	same_state("push");
}

/* Give back the last @k popped chains if none of them was pushed since. */
static void op_rewind(uint32_t k)
{
	uint16_t ids[4];

	if (k == 0 || k > g_nheld || k > 4)
		return;
	for (uint32_t j = 0; j < k; j++) {
		const struct held *h = &g_held[g_nheld - k + j];
		if (h->seq != g_seq - k + j)
			return; /* not the last popped */
		ids[j] = h->id;
	}
	vq_rewind(&g_s[0].vq, ids, (uint16_t)k);
	vq_rewind(&g_s[1].vq, ids, (uint16_t)k);
	g_nheld -= k;
	g_seq -= k;
	same_state("rewind");
}

static void op_flush(void)
{
	vq_flush(&g_s[0].vq);
	vq_flush(&g_s[1].vq);
	same_state("flush");
	same_memory();
}

/* Configure and start one side; false if the configuration is refused (both alike). */
static bool start_side(struct side *s, uint64_t features, uint16_t size, uint32_t base,
		       uint32_t iov_max)
{
	bool packed = features & F_PACKED;
	struct vq_addr a = {0, QVA_BASE, QVA_BASE + (packed ? PK_DRV : SPLIT_AVAIL),
			    QVA_BASE + (packed ? PK_DEV : SPLIT_USED), 0};

	vq_init(&s->vq, 0);
	s->vq.features = features;
	s->c.iov = s->iov;
	s->c.iov_max = iov_max;
	if (vq_set_num(&s->vq, size) || vq_set_addr(&s->vq, &a) || vq_set_base(&s->vq, base) ||
	    vq_start(&s->vq, s->mem, features))
		return false;
	vq_set_enabled(&s->vq, true);
	return true;
}

static void run(struct rd *r)
{
	uint8_t cfg = rd8(r), sz = rd8(r);
	uint16_t b16 = rd16(r);
	uint8_t idx_delta = rd8(r);
	bool packed = cfg & 1;
	uint64_t features = (packed ? F_PACKED : 0) | ((cfg & 2) ? F_INDIRECT : 0) |
			    ((cfg & 4) ? F_IN_ORDER : 0) | ((cfg & 8) ? F_EVENT_IDX : 0);
	uint32_t iov_max = (cfg >> 4) ? (uint32_t)(cfg >> 4) : 256;
	uint16_t size = packed ? (uint16_t)(sz % MAXQ + 1) : (uint16_t)(1u << (sz % 8));
	uint32_t base;

	if (packed) {
		uint32_t half = (b16 & 0x7fffu) % size | (b16 & 0x8000u);
		base = half | half << 16; /* nothing in flight: used = avail */
	} else {
		base = b16;
	}
	build_image(r, packed, size, base, idx_delta);
	bool oka = start_side(&g_s[0], features, size, base, iov_max);
	bool okb = start_side(&g_s[1], features, size, base, iov_max);
	ORACLE(oka == okb, "start %d / %d", oka, okb);
	g_nheld = g_seq = 0;
	/* Until the script ends or the ring breaks (net's next vq_enter() would refuse). */
	for (int step = 0; oka && step < MAXSTEPS && r->i < r->n && g_s[0].vq.ready; step++) {
		uint8_t op = rd8(r);
		switch (op % 8) {
		case 0:
		case 1:
			op_burst(r);
			break;
		case 2:
		case 3:
			op_pop(r);
			break;
		case 4:
			op_push(0, op & 0x10);
			break;
		case 5:
			op_push(g_nheld ? rd8(r) % g_nheld : 0, op & 0x10);
			break;
		case 6:
			op_rewind(rd8(r) % 4 + 1);
			break;
		default: {
			uint16_t m = rd8(r);
			ORACLE(vq_avail_count_max(&g_s[0].vq, m) ==
				       vq_avail_count_max(&g_s[1].vq, m),
			       "avail count");
			same_state("avail count");
			if (op & 0x10)
				op_flush();
		}
		}
	}
	/* Everything in flight completes; the used sides must match. */
	while (oka && g_nheld)
		op_push(0, g_nheld & 1);
	if (oka)
		op_flush();
	for (int s = 0; s < 2; s++) {
		vq_stop(&g_s[s].vq);
		vq_reset(&g_s[s].vq);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = {data, size, 0};

	if (!g_s[0].mem && setup_memory())
		abort(); /* test setup, not input: nothing can work */
	run(&r);
	return 0;
}
