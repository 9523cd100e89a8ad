/* SPDX-License-Identifier: MIT */
/* Packet pool unit tests: sizing, bulk all-or-nothing, chains, MT pools. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "test.h"
#include "vhostkit/vhk_pkt.h"

/* Bad arguments are refused without side effects. */
static void t_pool_create_args(void)
{
	struct vhk_pool *p = NULL;

	CHECK_EQ(vhk_pool_create(0, 2048, 128, 0, &p), -EINVAL);
	CHECK_EQ(vhk_pool_create(16, 0, 128, 0, &p), -EINVAL);
	CHECK_EQ(vhk_pool_create(16, 1u << 20, 1, 0, &p), -EINVAL);
	CHECK_EQ(vhk_pool_create(16, 2048, 128, 0x80, &p), -EINVAL);
	CHECK_EQ(vhk_pool_create(16, 2048, 128, 0, NULL), -EINVAL);
	CHECK(p == NULL);
	CHECK_EQ(vhk_pool_create(16, (1u << 20) - 128, 128, 0, &p), 0);
	vhk_pool_free(p);
	vhk_pool_free(NULL);
	CHECK_EQ(vhk_pool_avail(NULL), 0);
	CHECK_EQ(vhk_pkt_alloc_bulk(NULL, NULL, 1), -EINVAL);
}

/* Fresh packets are reset, aligned and carry the pool's geometry. */
static void t_pool_alloc_reset(void)
{
	struct vhk_pool *pool;
	struct vhk_pkt *p;

	CHECK_EQ(vhk_pool_create(4, 1000, 100, 0, &pool), 0);
	CHECK_EQ(vhk_pool_avail(pool), 4);
	CHECK_EQ(vhk_pool_data_room(pool), 1000);
	p = vhk_pkt_alloc(pool);
	CHECK(p != NULL);
	CHECK_EQ((uintptr_t)p % 64, 0);
	CHECK_EQ((uintptr_t)p->buf % 64, 0);
	CHECK_EQ(p->buf_len, 1100);
	CHECK_EQ(p->data_off, 100);
	CHECK_EQ(vhk_pkt_headroom(p), 100);
	CHECK_EQ(vhk_pkt_tailroom(p), 1000);
	CHECK(p->pool == pool);
	/* Dirty it, free it, get it back clean (LIFO). */
	p->data_off = 3;
	p->data_len = 7;
	p->pkt_len = 7;
	p->nb_segs = 9;
	p->ol.flags = 1;
	p->ol.gso_size = 1400;
	p->udata = 42;
	memset(p->buf, 0xab, p->buf_len);
	vhk_pkt_free(p);
	CHECK_EQ(vhk_pool_avail(pool), 4);
	struct vhk_pkt *q = vhk_pkt_alloc(pool);
	CHECK(q == p);
	CHECK_EQ(q->data_off, 100);
	CHECK_EQ(q->data_len, 0);
	CHECK_EQ(q->pkt_len, 0);
	CHECK_EQ(q->nb_segs, 1);
	CHECK(q->next == NULL);
	CHECK_EQ(q->ol.flags, 0);
	CHECK_EQ(q->ol.gso_size, 0);
	vhk_pkt_free(q);
	vhk_pool_free(pool);
}

/* Bulk allocation is all or nothing; buffers never overlap. */
static void t_pool_bulk_all_or_nothing(void)
{
	struct vhk_pool *pool;
	struct vhk_pkt *a[8], *b[8];

	CHECK_EQ(vhk_pool_create(8, 256, 0, 0, &pool), 0);
	CHECK_EQ(vhk_pkt_alloc_bulk(pool, a, 5), 0);
	CHECK_EQ(vhk_pool_avail(pool), 3);
	memset(b, 0, sizeof(b));
	CHECK_EQ(vhk_pkt_alloc_bulk(pool, b, 4), -ENOBUFS);
	CHECK_EQ(vhk_pool_avail(pool), 3);
	for (int i = 0; i < 4; i++)
		CHECK(b[i] == NULL);
	CHECK_EQ(vhk_pkt_alloc_bulk(pool, b, 0), 0);
	CHECK_EQ(vhk_pkt_alloc_bulk(pool, a + 5, 3), 0);
	CHECK_EQ(vhk_pool_avail(pool), 0);
	CHECK(vhk_pkt_alloc(pool) == NULL);
	for (int i = 0; i < 8; i++) {
		memset(vhk_pkt_data(a[i]), i, 256);
		for (int j = 0; j < i; j++)
			CHECK(a[i] != a[j]);
	}
	for (int i = 0; i < 8; i++)
		for (int k = 0; k < 256; k++)
			CHECK_EQ(vhk_pkt_data(a[i])[k], i);
	vhk_pkt_free_bulk(a, 8);
	CHECK_EQ(vhk_pool_avail(pool), 8);
	vhk_pool_free(pool);
}

/* Freeing a chain returns every segment, across pools; NULL entries skipped. */
static void t_chain_free_returns_all(void)
{
	struct vhk_pool *p1, *p2;
	struct vhk_pkt *segs[6];

	CHECK_EQ(vhk_pool_create(6, 64, 16, 0, &p1), 0);
	CHECK_EQ(vhk_pool_create(6, 64, 16, 0, &p2), 0);
	CHECK_EQ(vhk_pkt_alloc_bulk(p1, segs, 3), 0);
	CHECK_EQ(vhk_pkt_alloc_bulk(p2, segs + 3, 3), 0);
	for (int i = 0; i < 6; i++)
		CHECK(vhk_pkt_append(segs[i], 10 + (uint32_t)i) != NULL);
	for (int i = 1; i < 6; i++)
		CHECK_EQ(vhk_pkt_chain(segs[0], segs[i]), 0);
	CHECK_EQ(segs[0]->nb_segs, 6);
	CHECK_EQ(segs[0]->pkt_len, 10 + 11 + 12 + 13 + 14 + 15);
	CHECK_EQ(vhk_pool_avail(p1), 3);
	CHECK_EQ(vhk_pool_avail(p2), 3);
	vhk_pkt_free(segs[0]);
	CHECK_EQ(vhk_pool_avail(p1), 6);
	CHECK_EQ(vhk_pool_avail(p2), 6);

	struct vhk_pkt *v[4] = {NULL, NULL, NULL, NULL};
	CHECK_EQ(vhk_pkt_alloc_bulk(p1, v, 2), 0);
	CHECK_EQ(vhk_pkt_chain(v[0], v[1]), 0);
	v[1] = NULL;
	v[2] = vhk_pkt_alloc(p2);
	vhk_pkt_free_bulk(v, 4);
	CHECK_EQ(vhk_pool_avail(p1), 6);
	CHECK_EQ(vhk_pool_avail(p2), 6);
	vhk_pkt_free(NULL);
	vhk_pool_free(p1);
	vhk_pool_free(p2);
}

/* A double free is refused instead of corrupting the free stack. */
static void t_double_free_refused(void)
{
	struct vhk_pool *pool;

	CHECK_EQ(vhk_pool_create(2, 64, 0, 0, &pool), 0);
	struct vhk_pkt *p = vhk_pkt_alloc(pool);
	CHECK(p != NULL);
	vhk_pkt_free(p);
	vhk_pkt_free(p);
	CHECK_EQ(vhk_pool_avail(pool), 2);
	vhk_pool_free(pool);
}

/* append / chain / read helpers and their limits. */
static void t_append_chain_read(void)
{
	struct vhk_pool *pool;
	struct vhk_pkt *a, *b;
	uint8_t out[64];

	CHECK_EQ(vhk_pool_create(4, 32, 8, 0, &pool), 0);
	a = vhk_pkt_alloc(pool);
	b = vhk_pkt_alloc(pool);
	uint8_t *d = vhk_pkt_append(a, 20);
	CHECK(d != NULL);
	for (int i = 0; i < 20; i++)
		d[i] = (uint8_t)i;
	CHECK(vhk_pkt_append(a, 13) == NULL); /* 12 bytes left */
	CHECK(vhk_pkt_append(a, 12) != NULL);
	for (int i = 20; i < 32; i++)
		vhk_pkt_data(a)[i] = (uint8_t)i;
	d = vhk_pkt_append(b, 10);
	for (int i = 0; i < 10; i++)
		d[i] = (uint8_t)(32 + i);
	CHECK_EQ(vhk_pkt_chain(a, NULL), -EINVAL);
	CHECK_EQ(vhk_pkt_chain(a, a), -EINVAL);
	CHECK_EQ(vhk_pkt_chain(a, b), 0);
	CHECK_EQ(a->pkt_len, 42);
	/* Appending goes to the last segment; pkt_len of the head follows. */
	d = vhk_pkt_append(a, 2);
	CHECK(d == vhk_pkt_data(b) + 10);
	d[0] = 42;
	d[1] = 43;
	CHECK_EQ(a->pkt_len, 44);
	CHECK_EQ(vhk_pkt_read(a, 0, out, 64), 44);
	for (int i = 0; i < 44; i++)
		CHECK_EQ(out[i], i);
	CHECK_EQ(vhk_pkt_read(a, 30, out, 5), 5);
	CHECK_EQ(out[0], 30);
	CHECK_EQ(out[4], 34);
	CHECK_EQ(vhk_pkt_read(a, 50, out, 5), 0);
	CHECK_EQ(vhk_pkt_read(a, 40, NULL, 2), 0);
	struct vhk_pkt *c = vhk_pkt_alloc(pool);
	a->nb_segs = 65535;
	CHECK_EQ(vhk_pkt_chain(a, c), -EOVERFLOW);
	CHECK(b->next == NULL);
	a->nb_segs = 2;
	vhk_pkt_free(c);
	vhk_pkt_free(a);
	CHECK_EQ(vhk_pool_avail(pool), 4);
	vhk_pool_free(pool);
}

#define MT_THREADS 4
#define MT_ROUNDS  20000

/* Allocate and free bursts concurrently; check ownership of each buffer. */
static void *mt_worker(void *arg)
{
	struct vhk_pool *pool = arg;
	struct vhk_pkt *v[16];
	uintptr_t me = (uintptr_t)pthread_self();

	for (int r = 0; r < MT_ROUNDS; r++) {
		uint32_t n = 1 + (uint32_t)(r % 16);
		if (vhk_pkt_alloc_bulk(pool, v, n) < 0)
			continue;
		for (uint32_t i = 0; i < n; i++)
			memcpy(vhk_pkt_data(v[i]), &me, sizeof(me));
		for (uint32_t i = 0; i < n; i++) {
			uintptr_t got;
			memcpy(&got, vhk_pkt_data(v[i]), sizeof(got));
			if (got != me)
				return (void *)1;
		}
		vhk_pkt_free_bulk(v, n);
	}
	return NULL;
}

static void t_pool_mt(void)
{
	struct vhk_pool *pool;
	pthread_t th[MT_THREADS];

	CHECK_EQ(vhk_pool_create(48, 64, 0, VHK_POOL_MT, &pool), 0);
	for (int i = 0; i < MT_THREADS; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, mt_worker, pool), 0);
	for (int i = 0; i < MT_THREADS; i++) {
		void *ret;
		CHECK_EQ(pthread_join(th[i], &ret), 0);
		CHECK(ret == NULL);
	}
	CHECK_EQ(vhk_pool_avail(pool), 48);
	vhk_pool_free(pool);
}

/* Many create/alloc/free cycles leave nothing behind (ASan/LSan run). */
static void t_pool_no_leak(void)
{
	for (int i = 0; i < 200; i++) {
		struct vhk_pool *pool;
		struct vhk_pkt *v[32];
		CHECK_EQ(vhk_pool_create(32, 2048, 128, (uint32_t)(i & 1), &pool), 0);
		CHECK_EQ(vhk_pkt_alloc_bulk(pool, v, 32), 0);
		vhk_pkt_free_bulk(v, 32);
		CHECK_EQ(vhk_pool_avail(pool), 32);
		vhk_pool_free(pool);
	}
}

TEST_MAIN(TEST(t_pool_create_args), TEST(t_pool_alloc_reset), TEST(t_pool_bulk_all_or_nothing),
	  TEST(t_chain_free_returns_all), TEST(t_double_free_refused), TEST(t_append_chain_read),
	  TEST(t_pool_mt), TEST(t_pool_no_leak))
