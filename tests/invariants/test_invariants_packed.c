/* SPDX-License-Identifier: MIT */
/*
 * Hostile-guest tests for the packed-ring rules of invariants.md (section G)
 * that tests/unit/vq/test_packed.c and tests/integration/dp/test_dp_packed.c
 * leave open (see docs/hardening.md, section G): the availability predicate
 * for every flag combination and lap, a live driver publishing descriptors
 * while the device polls (flags before addr/len/id), the reserved fields of
 * indirect tables, translation failures in the middle of a burst, and the
 * mapping and alignment of the packed ring areas (section D). The
 * net device runs in-process on packed rings; vuf is the frontend, a gvq
 * (its driver or its raw writers) the guest.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inv_common.h"

#define HDR   12u /* VERSION_1 virtio-net header */
#define BUFSZ 2048u
#define MEMSZ (1u << 20)
#define F_AV  (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_US  (1u << VRING_PACKED_DESC_F_USED)

/* Net device on packed rings of @qsize (RX vring 0, TX vring 1), INV_NETF minus @off. */
static void pk_up(struct inv *f, uint16_t qsize, uint64_t off)
{
	inv_net_up(f, INV_NETF & ~off, MEMSZ, qsize);
	CHECK(f->vq[0] && f->vq[1]);
}

static struct vhk_pool *pool_new(void)
{
	struct vhk_pool *p;
	CHECK_EQ(vhk_pool_create(256, BUFSZ, 0, 0, &p), 0);
	return p;
}

/* Write a TX frame at @gpa: a zero header and @len bytes, byte i = seed + i * 3. */
static void put_frame(struct gmem *m, uint64_t gpa, uint32_t len, uint8_t seed)
{
	uint8_t b[HDR + BUFSZ];
	CHECK(len <= BUFSZ - HDR);
	memset(b, 0, HDR);
	for (uint32_t i = 0; i < len; i++)
		b[HDR + i] = (uint8_t)(seed + i * 3);
	CHECK_EQ(gmem_write(m, gpa, b, HDR + len), 0);
}

/* @p is the frame put_frame(@len, @seed) wrote. */
static bool is_frame(const struct vhk_pkt *p, uint32_t len, uint8_t seed)
{
	uint8_t got[BUFSZ];
	if (p->pkt_len != len || vhk_pkt_read(p, 0, got, len) != len)
		return false;
	for (uint32_t i = 0; i < len; i++)
		if (got[i] != (uint8_t)(seed + i * 3))
			return false;
	return true;
}

/*
 * G: a descriptor is available only when AVAIL == the lap's wrap counter and
 * USED != it. On every slot of 2.5 laps of an odd-sized ring (both wrap
 * counter values, slots still holding the previous lap's used descriptor),
 * the three other flag combinations are not consumed: the burst is empty,
 * no byte of the ring changes, the position stays, the ring is not broken.
 * The right combination then delivers the frame.
 */
static void t_avail_predicate(void)
{
	struct inv f;
	pk_up(&f, 7, 0);
	struct vhk_pool *pool = pool_new();
	struct gvq *r = f.vq[1];
	uint64_t buf = gmem_alloc(f.m, BUFSZ, 64);
	CHECK(buf != 0);
	size_t ring_bytes = 16u * r->size;
	uint8_t *snap = malloc(ring_bytes);
	CHECK(snap != NULL);
	for (uint32_t i = 0; i < 18; i++) {
		uint16_t slot = r->raw.pos, pos = inv_vring(&f, 1).last_avail_idx;
		bool wrap = r->raw.wrap;
		uint16_t good = gvq_avail_bits(wrap);
		const uint16_t bad[3] = {0, F_AV | F_US, gvq_avail_bits(!wrap)};
		put_frame(f.m, buf, 60 + i, (uint8_t)i);
		for (int k = 0; k < 3; k++) {
			gvq_raw_slot(r, slot, buf, HDR + 60 + i, (uint16_t)(i % r->size), bad[k]);
			memcpy(snap, r->pdesc, ring_bytes);
			struct vhk_pkt *out[2];
			gvq_kick_force(r);
			CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, pool, out, 2), 0);
			CHECK(memcmp(snap, r->pdesc, ring_bytes) == 0);
			struct vhk_vq_info vi = inv_vring(&f, 1);
			CHECK_EQ(vi.last_avail_idx, pos);
			CHECK(!vi.broken);
		}
		struct gvq_rawbuf b = {buf, HDR + 60 + i, 0};
		CHECK_EQ(gvq_raw_post(r, &b, 1, (uint16_t)(i % r->size)), slot);
		CHECK_EQ(r->pdesc[slot].flags, good);
		struct vhk_pkt *out[2];
		CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, pool, out, 2), 1);
		CHECK(is_frame(out[0], 60 + i, (uint8_t)i));
		vhk_pkt_free(out[0]);
		uint16_t id = 0xffff;
		uint32_t len = 1;
		CHECK_EQ(gvq_raw_used(r, &id, &len), 1);
		CHECK_EQ(id, i % r->size);
	}
	CHECK(r->raw.wrap && r->raw.pos == 18 % 7); /* two wrap flips walked */
	free(snap);
	inv_close(&f);
	vhk_pool_free(pool);
}

/* ---- a live driver: descriptors published while the device polls ---- */

struct publisher {
	struct inv *f;
	uint32_t q;    /* 1: TX frames; 0: RX buffers */
	uint64_t buf;  /* per slot, BUFSZ apart */
	uint32_t total;
	atomic_bool failed;
};

/* Frame length of packet @i. */
static uint32_t pub_len(uint32_t i)
{
	return 60 + (i * 37) % 940;
}

/* RX: used entry @k (in order) came back with @id / @len: check it and its buffer. */
static bool pub_check_rx(struct publisher *pb, uint32_t k, uint16_t id, uint32_t len)
{
	uint16_t size = pb->f->vq[0]->size;
	const uint8_t *g = gmem_ptr(pb->f->m, pb->buf + (uint64_t)(k % size) * BUFSZ, BUFSZ);
	if (id != k % size || len != HDR + pub_len(k) || g[10] != 1)
		return false;
	for (uint32_t i = 0; i < pub_len(k); i++)
		if (g[HDR + i] != (uint8_t)(k + i * 3))
			return false;
	return true;
}

/*
 * The guest: for every packet (TX frame or RX buffer), wait for a free slot
 * (reaping used entries in order; RX ones are checked byte for byte),
 * poison the slot's addr/len/id (unmapped address, huge length, id >= N)
 * while its flags still say "not available", write the real fields and
 * then store the flags (release).
 */
static void *publish_thread(void *arg)
{
	struct publisher *pb = arg;
	struct inv *f = pb->f;
	struct gvq *r = f->vq[pb->q];
	uint32_t reaped = 0;
	for (uint32_t i = 0; reaped < pb->total;) {
		uint16_t id;
		uint32_t len;
		/* Half the time lockstep (one in flight): every publication races a poll. */
		uint32_t limit = (i / 1000) % 2 ? 1 : r->size;
		if (i == pb->total || i - reaped >= limit) {
			if (gvq_raw_used(r, &id, &len) != 1) {
				sched_yield();
				continue;
			}
			if (pb->q ? id != reaped % r->size : !pub_check_rx(pb, reaped, id, len))
				atomic_store(&pb->failed, true);
			reaped++;
			continue;
		}
		uint16_t slot = r->raw.pos;
		uint64_t gpa = pb->buf + (uint64_t)slot * BUFSZ;
		__atomic_store_n(&r->pdesc[slot].addr, 0x7ff000000000ull, __ATOMIC_RELAXED);
		__atomic_store_n(&r->pdesc[slot].len, 0xffffffffu, __ATOMIC_RELAXED);
		__atomic_store_n(&r->pdesc[slot].id, 0xffff, __ATOMIC_RELAXED);
		struct gvq_rawbuf b = {gpa, HDR + pub_len(i), 0};
		if (pb->q) {
			put_frame(f->m, gpa, pub_len(i), (uint8_t)i);
		} else {
			memset(gmem_ptr(f->m, gpa, BUFSZ), 0xcc, BUFSZ);
			b = (struct gvq_rawbuf){gpa, BUFSZ, VRING_DESC_F_WRITE};
		}
		gvq_raw_post(r, &b, 1, (uint16_t)(i % r->size));
		if (++i % 64 == 0)
			sched_yield();
	}
	return NULL;
}

/* The device side of one direction: move @pb->total packets, polling; returns empty polls. */
static uint32_t publish_device(struct inv *f, struct vhk_pool *pool, struct publisher *pb)
{
	uint32_t got = 0, empty = 0;
	while (got < pb->total) {
		struct vhk_pkt *out[8];
		uint16_t n;
		if (pb->q) {
			n = vhk_net_dequeue_burst(f->vid, 1, pool, out, 8);
			for (uint16_t k = 0; k < n; k++, got++) {
				CHECK(is_frame(out[k], pub_len(got), (uint8_t)got));
				vhk_pkt_free(out[k]);
			}
		} else {
			struct vhk_pkt *p = vhk_pkt_alloc(pool);
			CHECK(p != NULL);
			uint8_t *d = vhk_pkt_append(p, pub_len(got));
			CHECK(d != NULL);
			for (uint32_t i = 0; i < pub_len(got); i++)
				d[i] = (uint8_t)(got + i * 3);
			n = vhk_net_enqueue_burst(f->vid, 0, &p, 1);
			vhk_pkt_free(p);
			got += n;
		}
		if (!n) { /* poll hard: the race is between the guest's stores and our reads */
			CHECK(!inv_vring(f, pb->q).broken);
			CHECK(++empty < 500000000u);
			if (empty % 256 == 0)
				sched_yield();
		}
	}
	return empty;
}

/*
 * G: flags are read (acquire) before addr/len/id, and only an available
 * descriptor's fields are used. A guest thread publishes 20000 TX frames,
 * then 20000 RX buffers, into a ring of 16 while the device moves packets
 * concurrently; between two laps every slot holds poison (unmapped address,
 * len 2^32-1, id 0xffff) until its flags are stored. A device that read the
 * fields before the flags, or again after, would take poison: the ring
 * would break or a packet would be wrong. Every packet must arrive intact
 * and in order, and the rings stay whole. Half of the packets go in
 * lockstep (one in flight) so that publications meet polls; the RX path
 * matters most, as it pops without counting available chains first.
 * A stress test: on x86 (TSO) the window of a device that copied the fields
 * before loading the flags is about a cycle, and such a mutation was not
 * caught here; weakly ordered CPUs widen it. The ordering is review-checked.
 */
static void t_publish_race(void)
{
	struct inv f;
	pk_up(&f, 16, BIT(VHK_F_IN_ORDER)); /* the raw reaper reads every used slot */
	struct vhk_pool *pool = pool_new();
	for (uint32_t q = 2; q-- > 0;) {
		struct publisher pb = {.f = &f, .q = q, .total = 20000};
		atomic_init(&pb.failed, false);
		pb.buf = gmem_alloc(f.m, 16ull * BUFSZ, 64);
		CHECK(pb.buf != 0);
		pthread_t th;
		CHECK_EQ(pthread_create(&th, NULL, publish_thread, &pb), 0);
		uint32_t empty = publish_device(&f, pool, &pb);
		pthread_join(th, NULL);
		fprintf(stderr, "# %s: %u packets, %u empty polls\n", q ? "tx" : "rx", pb.total,
			empty);
		CHECK(!atomic_load(&pb.failed));
		CHECK(!inv_vring(&f, q).broken);
	}
	CHECK_EQ(vhk_pool_avail(pool), 256);
	inv_close(&f);
	vhk_pool_free(pool);
}

/* Write packed indirect table entry @k at @tab. */
static void put_entry(struct gmem *m, uint64_t tab, uint32_t k, uint64_t addr, uint32_t len,
		      uint16_t id, uint16_t flags)
{
	struct vring_packed_desc d = {addr, len, id, flags};
	CHECK_EQ(gmem_write(m, tab + 16ull * k, &d, sizeof(d)), 0);
}

/*
 * G: inside a packed indirect table only WRITE counts: NEXT, AVAIL and USED
 * are reserved and ignored, and so is every entry's buffer id (0, N, 0xffff,
 * anything); the WRITE flag on the INDIRECT descriptor itself is reserved
 * too. TX tables (readable entries) deliver the frame intact, RX tables
 * (writable entries) receive it, with and without WRITE on the pointer; the
 * ring's own buffer id is the one completed. (INDIRECT inside a table is
 * refused as a nested table: test_packed.c t_nested_indirect.)
 */
static void t_indirect_reserved_fields(void)
{
	struct inv f;
	pk_up(&f, 8, 0);
	CHECK(f.v->features & BIT(VHK_F_INDIRECT_DESC));
	struct vhk_pool *pool = pool_new();
	uint64_t tab = gmem_alloc(f.m, 4096, 16), data = gmem_alloc(f.m, BUFSZ, 64);
	CHECK(tab && data);
	const uint16_t junk_flags[4] = {VRING_DESC_F_NEXT, F_AV, F_US,
					F_AV | F_US | VRING_DESC_F_NEXT};
	const uint16_t junk_ids[4] = {0, 8, 0xffff, 0x1234};
	for (uint32_t i = 0; i < 40; i++) {
		uint32_t len = 100 + i * 7;
		uint16_t ptr_flags = VRING_DESC_F_INDIRECT | (i & 1 ? VRING_DESC_F_WRITE : 0);
		uint16_t bid = (uint16_t)((i * 5) % 8), id = 0xffff;
		uint32_t ulen = 0;
		/* TX: header, then the frame in two pieces; every entry readable. */
		put_frame(f.m, data, len, (uint8_t)(i + 1));
		put_entry(f.m, tab, 0, data, HDR, junk_ids[i % 4], junk_flags[i % 4]);
		put_entry(f.m, tab, 1, data + HDR, 50, junk_ids[(i + 1) % 4],
			  junk_flags[(i + 1) % 4]);
		put_entry(f.m, tab, 2, data + HDR + 50, len - 50, junk_ids[(i + 2) % 4],
			  junk_flags[(i + 2) % 4]);
		gvq_raw_post(f.vq[1], &(struct gvq_rawbuf){tab, 48, ptr_flags}, 1, bid);
		struct vhk_pkt *out[2];
		CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, pool, out, 2), 1);
		CHECK(is_frame(out[0], len, (uint8_t)(i + 1)));
		CHECK_EQ(gvq_raw_used(f.vq[1], &id, &ulen), 1);
		CHECK_EQ(id, bid);
		/* RX: the same frame back into two writable entries with junk ids and bits. */
		uint8_t *g = gmem_ptr(f.m, data, BUFSZ);
		memset(g, 0xcc, BUFSZ);
		put_entry(f.m, tab + 1024, 0, data, 40, junk_ids[(i + 3) % 4],
			  (uint16_t)(VRING_DESC_F_WRITE | junk_flags[(i + 3) % 4]));
		put_entry(f.m, tab + 1024, 1, data + 40, BUFSZ - 40, junk_ids[i % 4],
			  (uint16_t)(VRING_DESC_F_WRITE | junk_flags[i % 4]));
		gvq_raw_post(f.vq[0], &(struct gvq_rawbuf){tab + 1024, 32, ptr_flags}, 1, bid);
		CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, out, 1), 1);
		CHECK_EQ(gvq_raw_used(f.vq[0], &id, &ulen), 1);
		CHECK_EQ(id, bid);
		CHECK_EQ(ulen, HDR + len);
		for (uint32_t k = 0; k < len; k++)
			CHECK_EQ(g[HDR + k], (uint8_t)(i + 1 + k * 3));
		CHECK_EQ(g[HDR + len], 0xcc);
		vhk_pkt_free(out[0]);
	}
	CHECK(!inv_vring(&f, 0).broken && !inv_vring(&f, 1).broken);
	inv_close(&f);
	vhk_pool_free(pool);
}

/* ---- translation failures inside a burst ---- */

enum bad_kind { BAD_PARTLY_MAPPED, BAD_WRAPS, BAD_UNMAPPED, BAD_KINDS };

/* A buffer of the given kind: its address and length. */
static struct gbuf bad_buf(enum bad_kind k)
{
	switch (k) {
	case BAD_PARTLY_MAPPED:
		return (struct gbuf){MEMSZ - 100, 200}; /* the last 100 bytes of RAM and past */
	case BAD_WRAPS:
		return (struct gbuf){UINT64_MAX - 99, 200}; /* addr + len wraps 2^64 */
	default:
		return (struct gbuf){0x7ff000000000ull, 1};
	}
}

/*
 * G: batch paths check every translation. A TX burst of 6 chains (a header
 * descriptor, a zero-length descriptor at an unmapped address, the frame)
 * whose 4th chain has a partly mapped, wrapping or unmapped buffer: the
 * three chains before it are delivered intact, the ring is broken at the
 * bad one, nothing after it is taken. The same on RX with 6 receive buffers
 * (no byte written outside the good ones). The zero-length unmapped pieces
 * of the good chains are legal (nothing to translate).
 */
static void t_batch_bad_translation(void)
{
	for (int kind = 0; kind < BAD_KINDS; kind++) {
		struct inv f;
		pk_up(&f, 32, 0);
		struct vhk_pool *pool = pool_new();
		uint64_t buf = gmem_alloc(f.m, 6ull * BUFSZ, 64);
		CHECK(buf != 0);
		for (uint32_t i = 0; i < 6; i++) {
			uint64_t a = buf + i * BUFSZ;
			put_frame(f.m, a, 300, (uint8_t)(kind * 6 + i));
			struct gbuf b[3] = {{a, HDR}, {0x7ff000000000ull, 0}, {a + HDR, 300}};
			if (i == 3)
				b[2] = bad_buf((enum bad_kind)kind);
			CHECK(gvq_post(f.vq[1], b, 3, NULL, 0, false, (void *)(uintptr_t)(i + 1)) >=
			      0);
		}
		struct vhk_pkt *out[8];
		CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, pool, out, 8), 3);
		for (uint32_t i = 0; i < 3; i++) {
			CHECK(is_frame(out[i], 300, (uint8_t)(kind * 6 + i)));
			void *tok = NULL;
			CHECK_EQ(gvq_get_used(f.vq[1], &tok, NULL), 1);
			CHECK_EQ((uintptr_t)tok, i + 1);
		}
		CHECK_EQ(gvq_get_used(f.vq[1], NULL, NULL), 0);
		CHECK(inv_vring(&f, 1).broken);
		CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, pool, out + 3, 5), 0);

		/* RX: buffers 0..5 each BUFSZ, the 4th bad; 6 frames offered. */
		uint8_t *g = gmem_ptr(f.m, buf, 6ull * BUFSZ);
		memset(g, 0xcc, 6ull * BUFSZ);
		for (uint32_t i = 0; i < 6; i++) {
			struct gbuf b[2] = {{0x7ff000000000ull, 0}, {buf + i * BUFSZ, BUFSZ}};
			if (i == 3)
				b[1] = bad_buf((enum bad_kind)kind);
			CHECK(gvq_post(f.vq[0], NULL, 0, b, 2, false, (void *)(uintptr_t)(i + 1)) >=
			      0);
		}
		for (uint32_t i = 3; i < 6; i++)
			out[i] = out[i % 3];
		CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, out, 6), 3);
		for (uint32_t i = 0; i < 3; i++) {
			void *tok = NULL;
			uint32_t len = 0;
			CHECK_EQ(gvq_get_used(f.vq[0], &tok, &len), 1);
			CHECK_EQ((uintptr_t)tok, i + 1);
			CHECK_EQ(len, HDR + 300);
			CHECK_EQ(g[i * BUFSZ + HDR], (uint8_t)(kind * 6 + i));
			CHECK_EQ(g[i * BUFSZ + HDR + 300], 0xcc);
		}
		CHECK_EQ(gvq_get_used(f.vq[0], NULL, NULL), 0);
		for (uint32_t i = 3 * BUFSZ; i < 6 * BUFSZ; i++)
			CHECK_EQ(g[i], 0xcc);
		CHECK(inv_vring(&f, 0).broken);
		for (uint32_t i = 0; i < 3; i++)
			vhk_pkt_free(out[i]);
		fe_usable(f.v);
		inv_close(&f);
		vhk_pool_free(pool);
	}
}

/* SET_VRING_NUM/BASE/ADDR + KICK + ENABLE for packed ring 0 at @a; did it start? */
static bool ring_starts_with(struct inv *f, uint16_t size, const struct vhost_user_vring_addr *a)
{
	CHECK_EQ(vuf_set_vring_state(f->v, VHOST_USER_SET_VRING_NUM, 0, size), 0);
	CHECK_EQ(vuf_set_vring_state(f->v, VHOST_USER_SET_VRING_BASE, 0, 0x80008000u), 0);
	int rc = vuf_request(f->v, VHOST_USER_SET_VRING_ADDR, a, sizeof(*a), NULL, 0, NULL);
	CHECK(rc == 0 || rc == -EPROTO);
	rc = vuf_set_vring_fd(f->v, VHOST_USER_SET_VRING_KICK, 0, f->vq[0]->kick_fd);
	CHECK(rc == 0 || rc == -EPROTO);
	rc = vuf_set_vring_state(f->v, VHOST_USER_SET_VRING_ENABLE, 0, 1);
	CHECK(rc == 0 || rc == -EPROTO);
	fe_usable(f->v);
	struct vhk_vq_info info = inv_vring(f, 0);
	return info.started && !info.broken && info.packed;
}

/*
 * D/G: the packed ring areas must be mapped whole and aligned: a
 * descriptor ring (16 * N) running 16 bytes past the end of guest RAM, a
 * driver or device event area outside RAM, a descriptor ring off 16-byte
 * alignment (+1, +8) and event areas off 4-byte alignment (+1, +2) never
 * start the ring; the same ring with good addresses does.
 */
static void t_ring_areas(void)
{
	struct inv f;
	inv_start_net(&f);
	CHECK_EQ(gmem_new(1, MEMSZ, 0, 0, &f.m), 0);
	CHECK_EQ(gvq_new(f.m, 64, BIT(VHK_F_RING_PACKED), &f.vq[0]), 0);
	struct gvq *r = f.vq[0];
	uint64_t end_qva = gmem_qva(f.m, 0) + MEMSZ; /* first byte past RAM */
	struct vhost_user_vring_addr ok = {
	    .index = 0,
	    .desc_user_addr = gmem_qva(f.m, r->desc_gpa),
	    .used_user_addr = gmem_qva(f.m, r->used_gpa),
	    .avail_user_addr = gmem_qva(f.m, r->avail_gpa),
	};
	struct vhost_user_vring_addr bad[8];
	for (int i = 0; i < 8; i++)
		bad[i] = ok;
	bad[0].desc_user_addr = end_qva - 16ull * 64 + 16; /* last 16 bytes unmapped */
	bad[1].avail_user_addr = end_qva;                  /* driver event outside */
	bad[2].used_user_addr = end_qva;                   /* device event outside */
	bad[3].desc_user_addr += 1;
	bad[4].desc_user_addr += 8;
	bad[5].avail_user_addr += 2;
	bad[6].used_user_addr += 1;
	bad[7].used_user_addr += 2;
	for (int i = 0; i < 8; i++) {
		inv_connect(&f, INV_NETF, IT_PF_DEFAULT);
		CHECK(f.v->features & BIT(VHK_F_RING_PACKED));
		CHECK_EQ(vuf_set_mem_table(f.v, f.m), 0);
		CHECK(!ring_starts_with(&f, r->size, &bad[i]));
		vuf_close(f.v);
		f.v = NULL;
	}
	inv_connect(&f, INV_NETF, IT_PF_DEFAULT);
	CHECK_EQ(vuf_set_mem_table(f.v, f.m), 0);
	CHECK(ring_starts_with(&f, r->size, &ok)); /* the same ring, in place, does start */
	inv_close(&f);
}

/* Packed-only cases: the run is always packed. */
int main(int argc, char **argv)
{
	static const struct test_case cases[] = {
		TEST(t_avail_predicate), TEST(t_publish_race), TEST(t_indirect_reserved_fields),
		TEST(t_batch_bad_translation), TEST(t_ring_areas)};
	inv_packed = true;
	return test_run_main(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
