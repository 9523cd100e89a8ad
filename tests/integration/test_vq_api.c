/* SPDX-License-Identifier: MIT */
/*
 * The element API (vhostkit/vhk_vq.h) against a guest: a custom device of
 * two queues served in-process, the vuf frontend, and a gvq per queue as
 * the guest driver; the format comes from the command line (--split /
 * --packed), so meson runs every case on both.
 *
 * Covered: pop/push/flush round trips with chained, indirect and
 * region-crossing requests byte for byte; used lengths and their clamping;
 * -E2BIG with a small iov_max; unpop; pushes of ids not in flight;
 * EVENT_IDX suppression on flush; GET_VRING_BASE after progress through
 * the API; vhk_vq_set_base then GET_VRING_BASE; stale vids and bad
 * arguments; hostile chains (loop, out-of-range head / id) breaking only
 * their queue; vhk_vq_translate; the per-device pointer.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common.h"

#define RING 16
#define REGION	(1u << 20)
#define PK_WRAP 0x8000u
#define packed	gvq_run_packed /* the run's ring format (GVQ_TEST_MAIN) */
static const struct vhk_device_ops api_ops = {.name = "it-api", .min_queues = 1};

struct env {
	struct vuf *v;
	struct gmem *m;
	struct gvq *vq[2];
	int err_fd[2];
	int vid;
};

/* Device of two queues on @nregions back-to-back regions (gap 0), both queues started. */
static void env_up(struct env *e, uint32_t nregions)
{
	uint64_t f = IT_F_CUSTOM | gvq_run_features();
	struct be_cfg cfg = {.ops = &api_ops, .features = f, .protocol_features = IT_PF_DEFAULT,
			     .pairs = 1};

	memset(e, 0, sizeof(*e));
	e->v = fe_open(be_start(&cfg), f, IT_PF_DEFAULT);
	CHECK_EQ(e->v->features, f);
	e->vid = ev_conn_vid();
	CHECK_EQ(gmem_new(nregions, REGION, 0, 0, &e->m), 0);
	CHECK_EQ(vuf_set_mem_table(e->v, e->m), 0);
	for (uint32_t q = 0; q < 2; q++) {
		e->err_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		CHECK(e->err_fd[q] >= 0);
		CHECK_EQ(vuf_set_vring_fd(e->v, VHOST_USER_SET_VRING_ERR, q, e->err_fd[q]), 0);
		CHECK_EQ(gvq_new(e->m, RING, e->v->features, &e->vq[q]), 0);
		CHECK_EQ(vuf_start_vring(e->v, q, e->vq[q]), 0);
	}
	CHECK(ev_wait_match(EV_NEW_DEV, e->vid, -1, -1, 3000, NULL));
	CHECK(ev_wait_match(EV_VRING_STATE, e->vid, 1, 1, 3000, NULL));
}

/* Close the frontend and free the guest side. */
static void env_down(struct env *e)
{
	if (e->v)
		vuf_close(e->v);
	e->v = NULL;
	for (int q = 0; q < 2; q++) {
		gvq_free(e->vq[q]);
		close(e->err_fd[q]);
	}
	gmem_free(e->m);
}

/* Post a request on queue @q (published at once); returns its head / buffer id. */
static int post(struct env *e, int q, const struct gbuf *out, int nout, const struct gbuf *in,
		int nin, bool indirect, uintptr_t tok)
{
	int id = gvq_post(e->vq[q], out, nout, in, nin, indirect, (void *)tok);
	CHECK(id >= 0);
	return id;
}

/* One writable buffer of @len bytes. */
static int post_in(struct env *e, int q, uint32_t len, uintptr_t tok)
{
	struct gbuf b = {gmem_alloc(e->m, len, 8), len};
	CHECK(b.gpa);
	return post(e, q, NULL, 0, &b, 1, false, tok);
}

/* Next used entry of queue @q: 1 (token, len), 0 none, -EIO bad id. */
static int used(struct env *e, int q, uintptr_t *tok, uint32_t *len)
{
	void *t = NULL;
	int rc = gvq_get_used(e->vq[q], &t, len);
	*tok = (uintptr_t)t;
	return rc;
}

/* The next used entry must be @tok with @len. */
static void expect_used(struct env *e, int q, uintptr_t tok, uint32_t len)
{
	uintptr_t t;
	uint32_t l = 0;
	CHECK_EQ(used(e, q, &t, &l), 1);
	CHECK_EQ(t, tok);
	CHECK_EQ(l, len);
}

static uint64_t calls(struct env *e, int q)
{
	return gvq_read_calls(e->vq[q]);
}

/* vhk_vq_pop into @iov of @max entries. */
static int pop(struct env *e, int q, struct vhk_vq_elem *el, struct iovec *iov, uint32_t max)
{
	memset(el, 0, sizeof(*el));
	el->iov = iov;
	el->iov_max = max;
	return vhk_vq_pop(e->vid, (uint16_t)q, el);
}

/* Stop ring @q with GET_VRING_BASE; returns the base. */
static uint32_t vring_base(struct env *e, int q)
{
	uint32_t num = 0;
	CHECK_EQ(vuf_get_vring_base(e->v, (uint32_t)q, &num), 0);
	return num;
}

/* Base encoding of a ring whose avail and used positions are both @n (fresh lap). */
static uint32_t base_at(uint16_t n)
{
	return packed ? (uint32_t)(n | PK_WRAP) * 0x10001u : n;
}

static void fill(uint8_t *p, uint32_t len, uint8_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* Chained and indirect requests: readable bytes seen exactly, writable bytes land exactly. */
static void t_roundtrip(void)
{
	struct env e;
	env_up(&e, 2);
	for (int indirect = 0; indirect < 2; indirect++) {
		uint8_t hdr[16], data[100], resp[64], status, got[200];
		fill(hdr, sizeof(hdr), 1);
		fill(data, sizeof(data), (uint8_t)(50 + indirect));
		struct gbuf out[2] = {{gmem_alloc(e.m, 16, 8), 16}, {gmem_alloc(e.m, 100, 8), 100}};
		struct gbuf in[2] = {{gmem_alloc(e.m, 64, 8), 64}, {gmem_alloc(e.m, 1, 1), 1}};
		CHECK_EQ(gmem_write(e.m, out[0].gpa, hdr, 16), 0);
		CHECK_EQ(gmem_write(e.m, out[1].gpa, data, 100), 0);
		int id = post(&e, 0, out, 2, in, 2, indirect, 100 + indirect);
		CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 1);

		struct iovec iov[8];
		struct vhk_vq_elem el;
		CHECK_EQ(pop(&e, 0, &el, iov, 8), 0);
		CHECK_EQ(el.id, id);
		CHECK_EQ(el.out_num, 2);
		CHECK_EQ(el.in_num, 2);
		CHECK_EQ(el.out_len, 116);
		CHECK_EQ(el.in_len, 65);
		CHECK_EQ(iov[0].iov_len, 16);
		CHECK_EQ(iov[1].iov_len, 100);
		CHECK_EQ(iov[2].iov_len, 64);
		CHECK_EQ(iov[3].iov_len, 1);
		memcpy(got, iov[0].iov_base, 16);
		memcpy(got + 16, iov[1].iov_base, 100);
		CHECK(!memcmp(got, hdr, 16) && !memcmp(got + 16, data, 100));
		CHECK_EQ(vhk_vq_inflight_count(e.vid, 0), 1);
		fill(resp, sizeof(resp), (uint8_t)(200 + indirect));
		memcpy(iov[2].iov_base, resp, 64);
		*(uint8_t *)iov[3].iov_base = 0x5a;
		CHECK_EQ(pop(&e, 0, &el, iov, 8), -ENOENT);
		CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)id, 65), 0);
		CHECK_EQ(vhk_vq_inflight_count(e.vid, 0), 0);
		CHECK_EQ(used(&e, 0, &(uintptr_t){0}, &(uint32_t){0}), 0); /* shadowed until flush */
		CHECK_EQ(vhk_vq_flush(e.vid, 0), 1);
		expect_used(&e, 0, 100 + indirect, 65);
		CHECK_EQ(gmem_read(e.m, in[0].gpa, got, 64), 0);
		CHECK(!memcmp(got, resp, 64));
		CHECK_EQ(gmem_read(e.m, in[1].gpa, &status, 1), 0);
		CHECK_EQ(status, 0x5a);
	}
	/* A writable buffer across the region boundary: two pieces, contiguous for the guest. */
	struct gbuf b = {gmem_alloc_straddle(e.m, 0, 64), 64};
	CHECK(b.gpa);
	int id = post(&e, 0, NULL, 0, &b, 1, false, 7);
	struct iovec iov[4];
	struct vhk_vq_elem el;
	CHECK_EQ(pop(&e, 0, &el, iov, 4), 0);
	CHECK_EQ(el.id, id);
	CHECK_EQ(el.in_num, 2);
	CHECK_EQ(iov[0].iov_len + iov[1].iov_len, 64);
	uint8_t pat[64], got[64];
	fill(pat, 64, 9);
	memcpy(iov[0].iov_base, pat, iov[0].iov_len);
	memcpy(iov[1].iov_base, pat + iov[0].iov_len, iov[1].iov_len);
	CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)id, 64), 0);
	/* A batch completed out of order: published in push order. */
	int ids[3];
	for (int i = 0; i < 3; i++)
		ids[i] = post_in(&e, 0, 32, 10 + i);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(pop(&e, 0, &el, iov, 4), 0);
		CHECK_EQ(el.id, ids[i]);
	}
	for (int i = 2; i >= 0; i--)
		CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)ids[i], (uint32_t)i), 0);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 4);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 0);
	expect_used(&e, 0, 7, 64);
	CHECK_EQ(gmem_read(e.m, b.gpa, got, 64), 0);
	CHECK(!memcmp(got, pat, 64));
	for (int i = 2; i >= 0; i--)
		expect_used(&e, 0, 10 + (uintptr_t)i, (uint32_t)i);
	env_down(&e);
}

/* The used length never exceeds what the request made writable. */
static void t_len_clamp(void)
{
	struct env e;
	env_up(&e, 1);
	struct gbuf rd = {gmem_alloc(e.m, 40, 8), 40};
	int a = post_in(&e, 0, 100, 1), b = post(&e, 0, &rd, 1, NULL, 0, false, 2);
	int c = post_in(&e, 0, 100, 3);
	struct iovec iov[4];
	struct vhk_vq_elem el;
	for (int i = 0; i < 3; i++)
		CHECK_EQ(pop(&e, 0, &el, iov, 4), 0);
	CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)a, 1000), 0);
	CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)b, 50), 0); /* read-only request */
	CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)c, 100), 0);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 3);
	expect_used(&e, 0, 1, 100);
	expect_used(&e, 0, 2, 0);
	expect_used(&e, 0, 3, 100);
	env_down(&e);
}

/* More pieces than iov_max: consumed, id valid, completed with len 0; the queue goes on. */
static void t_e2big(void)
{
	struct env e;
	env_up(&e, 1);
	struct gbuf in[3] = {{gmem_alloc(e.m, 10, 8), 10}, {gmem_alloc(e.m, 20, 8), 20},
			     {gmem_alloc(e.m, 30, 8), 30}};
	struct iovec iov[3];
	struct vhk_vq_elem el;
	for (int indirect = 0; indirect < 2; indirect++) {
		int id = post(&e, 0, NULL, 0, in, 3, indirect, 1);
		int next = post_in(&e, 0, 8, 2);
		CHECK_EQ(pop(&e, 0, &el, iov, 2), -E2BIG);
		CHECK_EQ(el.id, id);
		CHECK_EQ(el.out_num + el.in_num, 0);
		CHECK_EQ(el.in_len, 60);
		CHECK_EQ(vhk_vq_inflight_count(e.vid, 0), 1);
		CHECK_EQ(vhk_vq_push(e.vid, 0, el.id, 60), 0);
		CHECK_EQ(pop(&e, 0, &el, iov, 2), 0);
		CHECK_EQ(el.id, next);
		CHECK_EQ(vhk_vq_push(e.vid, 0, el.id, 8), 0);
		CHECK_EQ(vhk_vq_flush(e.vid, 0), 2);
		expect_used(&e, 0, 1, 0); /* clamped to 0: nothing was written */
		expect_used(&e, 0, 2, 8);
	}
	/* The same shape fits three entries. */
	int id = post(&e, 0, NULL, 0, in, 3, false, 3);
	CHECK_EQ(pop(&e, 0, &el, iov, 3), 0);
	CHECK_EQ(el.id, id);
	CHECK_EQ(el.in_num, 3);
	CHECK_EQ(vhk_vq_push(e.vid, 0, el.id, 60), 0);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 1);
	expect_used(&e, 0, 3, 60);
	env_down(&e);
}

/* Unpop gives back the last pop only, once, and only while it is in flight. */
static void t_unpop(void)
{
	struct env e;
	env_up(&e, 1);
	int a = post_in(&e, 0, 16, 1), b = post_in(&e, 0, 16, 2);
	struct iovec iov[2], iovb[2];
	struct vhk_vq_elem ea, eb;
	CHECK_EQ(pop(&e, 0, &ea, iov, 2), 0);
	CHECK_EQ(ea.id, a);
	void *base = iov[0].iov_base;
	CHECK_EQ(vhk_vq_unpop(e.vid, 0, &ea), 0);
	CHECK_EQ(vhk_vq_inflight_count(e.vid, 0), 0);
	CHECK_EQ(vhk_vq_unpop(e.vid, 0, &ea), -EINVAL); /* given back already */
	CHECK_EQ(vhk_vq_push(e.vid, 0, ea.id, 0), -EINVAL);
	CHECK_EQ(pop(&e, 0, &ea, iov, 2), 0); /* the same request again */
	CHECK_EQ(ea.id, a);
	CHECK(iov[0].iov_base == base);
	CHECK_EQ(pop(&e, 0, &eb, iovb, 2), 0);
	CHECK_EQ(eb.id, b);
	CHECK_EQ(vhk_vq_unpop(e.vid, 0, &ea), -EINVAL); /* not the last pop */
	CHECK_EQ(vhk_vq_unpop(e.vid, 0, &eb), 0);
	CHECK_EQ(vhk_vq_inflight_count(e.vid, 0), 1);
	CHECK_EQ(pop(&e, 0, &eb, iovb, 2), 0);
	CHECK_EQ(eb.id, b);
	CHECK_EQ(vhk_vq_push(e.vid, 0, eb.id, 4), 0);
	CHECK_EQ(vhk_vq_unpop(e.vid, 0, &eb), -EINVAL); /* pushed */
	CHECK_EQ(vhk_vq_unpop(e.vid, 0, NULL), -EINVAL);
	CHECK_EQ(vhk_vq_push(e.vid, 0, ea.id, 3), 0);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 2);
	expect_used(&e, 0, 2, 4);
	expect_used(&e, 0, 1, 3);
	CHECK_EQ(pop(&e, 0, &ea, iov, 2), -ENOENT);
	env_down(&e);
}

/* Pushes of ids that are not in flight never reach the ring. */
static void t_push_not_in_flight(void)
{
	struct env e;
	env_up(&e, 1);
	int a = post_in(&e, 0, 16, 1), b = post_in(&e, 0, 16, 2);
	struct iovec iov[2];
	struct vhk_vq_elem el;
	CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)a, 1), -EINVAL); /* posted, never popped */
	CHECK_EQ(pop(&e, 0, &el, iov, 2), 0);
	CHECK_EQ(el.id, a);
	CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)b, 1), -EINVAL);
	CHECK_EQ(vhk_vq_push(e.vid, 0, RING + 3, 1), -EINVAL);
	CHECK_EQ(vhk_vq_push(e.vid, 0, 0xffff, 1), -EINVAL);
	CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)a, 5), 0);
	CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)a, 6), -EINVAL); /* twice */
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 1);
	CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)a, 7), -EINVAL); /* after the flush too */
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 0);
	expect_used(&e, 0, 1, 5);
	uintptr_t t;
	uint32_t l;
	CHECK_EQ(used(&e, 0, &t, &l), 0);
	CHECK_EQ(vhk_vq_inflight_count(e.vid, 0), 0);
	env_down(&e);
}

/* EVENT_IDX: a flush interrupts the guest only when the used entry it waits for is written. */
static void t_event_idx(void)
{
	struct env e;
	env_up(&e, 1);
	int id[3];
	for (int i = 0; i < 3; i++)
		id[i] = post_in(&e, 0, 8, 1 + (uintptr_t)i);
	struct iovec iov[2];
	struct vhk_vq_elem el;
	(void)calls(&e, 0);
	CHECK_EQ(pop(&e, 0, &el, iov, 2), 0);
	CHECK_EQ(vhk_vq_push(e.vid, 0, el.id, 8), 0);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 1);
	CHECK_EQ(calls(&e, 0), 1); /* the first publication always notifies */
	expect_used(&e, 0, 1, 8);
	/* The guest wants a call once the entry at used position 2 is written. */
	if (packed)
		gvq_raw_drv_event(e.vq[0], VRING_PACKED_EVENT_FLAG_DESC, 2 | PK_WRAP);
	else
		gvq_raw_used_event(e.vq[0], 2);
	CHECK_EQ(pop(&e, 0, &el, iov, 2), 0);
	CHECK_EQ(el.id, id[1]);
	CHECK_EQ(vhk_vq_push(e.vid, 0, el.id, 8), 0);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 1);
	CHECK_EQ(calls(&e, 0), 0);
	CHECK_EQ(vhk_vq_notify(e.vid, 0), 0); /* nothing new for the guest */
	CHECK_EQ(calls(&e, 0), 0);
	CHECK_EQ(pop(&e, 0, &el, iov, 2), 0);
	CHECK_EQ(vhk_vq_push(e.vid, 0, el.id, 8), 0);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 1);
	CHECK_EQ(calls(&e, 0), 1);
	expect_used(&e, 0, 2, 8);
	expect_used(&e, 0, 3, 8);
	/* Enabling notifications asks for a kick at our next avail position. */
	CHECK_EQ(vhk_vq_set_notification(e.vid, 0, true), 0);
	if (packed) {
		CHECK_EQ(gvq_dev_flags(e.vq[0]), VRING_PACKED_EVENT_FLAG_DESC);
		CHECK_EQ(gvq_dev_off_wrap(e.vq[0]), 3 | PK_WRAP);
	} else {
		CHECK_EQ(gvq_avail_event(e.vq[0]), 3);
	}
	env_down(&e);
}

/* GET_VRING_BASE answers the position the device reached through the API. */
static void t_vring_base_progress(void)
{
	struct env e;
	env_up(&e, 1);
	for (int i = 0; i < 5; i++)
		post_in(&e, 0, 8, 1 + (uintptr_t)i);
	struct iovec iov[2];
	struct vhk_vq_elem el;
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(pop(&e, 0, &el, iov, 2), 0);
		CHECK_EQ(vhk_vq_push(e.vid, 0, el.id, 8), 0);
	}
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 3);
	uint16_t la, lu;
	CHECK_EQ(vhk_vq_get_base(e.vid, 0, &la, &lu), 0);
	CHECK_EQ(la, (uint16_t)base_at(3));
	CHECK_EQ(lu, (uint16_t)base_at(3));
	CHECK_EQ(vring_base(&e, 0), base_at(3));
	/* Stopped: every queue call says so, nothing is touched. */
	CHECK_EQ(pop(&e, 0, &el, iov, 2), -EAGAIN);
	CHECK_EQ(vhk_vq_push(e.vid, 0, el.id, 8), -EAGAIN);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), -EAGAIN);
	CHECK_EQ(vhk_vq_get_base(e.vid, 0, &la, &lu), -EAGAIN);
	CHECK_EQ(vhk_vq_notify(e.vid, 0), -EAGAIN);
	CHECK_EQ(vhk_vq_set_notification(e.vid, 0, true), -EAGAIN);
	CHECK_EQ(vhk_vq_inflight_count(e.vid, 0), -EAGAIN);
	/* The other queue keeps working. */
	post_in(&e, 1, 8, 9);
	CHECK_EQ(pop(&e, 1, &el, iov, 2), 0);
	CHECK_EQ(vhk_vq_push(e.vid, 1, el.id, 8), 0);
	CHECK_EQ(vhk_vq_flush(e.vid, 1), 1);
	expect_used(&e, 1, 9, 8);
	env_down(&e);
}

/* vhk_vq_set_base: range checks, refused while busy, and GET_VRING_BASE answers it. */
static void t_set_base(void)
{
	struct env e;
	env_up(&e, 1);
	uint16_t la, lu;
	CHECK_EQ(vhk_vq_get_base(e.vid, 0, &la, &lu), 0);
	CHECK_EQ(la, (uint16_t)base_at(0));
	CHECK_EQ(lu, (uint16_t)base_at(0));
	CHECK_EQ(vhk_vq_get_base(e.vid, 0, NULL, &lu), -EINVAL);
	if (packed) {
		CHECK_EQ(vhk_vq_set_base(e.vid, 0, RING, PK_WRAP), -EINVAL);
		CHECK_EQ(vhk_vq_set_base(e.vid, 0, PK_WRAP, RING | PK_WRAP), -EINVAL);
	} else {
		CHECK_EQ(vhk_vq_set_base(e.vid, 0, RING + 1, 0), -EINVAL);
		CHECK_EQ(vhk_vq_set_base(e.vid, 0, 0, 1), -EINVAL); /* used ahead of avail */
	}
	int id = post_in(&e, 0, 8, 1);
	struct iovec iov[2];
	struct vhk_vq_elem el;
	CHECK_EQ(pop(&e, 0, &el, iov, 2), 0);
	uint16_t a = packed ? 3 : 7, u = packed ? 1 : 5; /* packed: both wrap counters flip */
	CHECK_EQ(vhk_vq_set_base(e.vid, 0, a, u), -EBUSY); /* in flight */
	CHECK_EQ(vhk_vq_push(e.vid, 0, (uint16_t)id, 8), 0);
	CHECK_EQ(vhk_vq_set_base(e.vid, 0, a, u), -EBUSY); /* not flushed */
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 1);
	expect_used(&e, 0, 1, 8);
	CHECK_EQ(vhk_vq_set_base(e.vid, 0, a, u), 0);
	CHECK_EQ(vhk_vq_get_base(e.vid, 0, &la, &lu), 0);
	CHECK_EQ(la, a);
	CHECK_EQ(lu, u);
	CHECK_EQ(vring_base(&e, 0), packed ? (uint32_t)a | (uint32_t)u << 16 : a);
	env_down(&e);
}

/* Bad arguments, queues never set up, and every call on a stale vid. */
static void t_bad_args_and_stale(void)
{
	struct env e;
	env_up(&e, 1);
	struct iovec iov[2];
	struct vhk_vq_elem el;
	uint16_t la, lu;
	CHECK_EQ(vhk_vq_pop(e.vid, 0, NULL), -EINVAL);
	CHECK_EQ(pop(&e, 0, &el, iov, 0), -EINVAL);
	CHECK_EQ(pop(&e, 0, &el, NULL, 2), -EINVAL);
	CHECK_EQ(pop(&e, VHK_MAX_QUEUES, &el, iov, 2), -EINVAL);
	CHECK_EQ(pop(&e, 5, &el, iov, 2), -EAGAIN); /* never configured */
	CHECK_EQ(pop(&e, 0, &el, iov, 2), -ENOENT);
	CHECK_EQ(vhk_vq_push(e.vid, VHK_MAX_QUEUES, 0, 0), -EINVAL);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 0);
	int stale = e.vid;
	post_in(&e, 0, 8, 1);
	CHECK_EQ(pop(&e, 0, &el, iov, 2), 0);
	vuf_close(e.v);
	e.v = NULL;
	CHECK(ev_wait_match(EV_DESTROY_CONN, stale, -1, -1, 3000, NULL));
	uint64_t f;
	for (int i = 0; i < 300 && vhk_dev_get_features(stale, &f) != -ENODEV; i++)
		msleep(10); /* the slot is released after destroy_connection */
	CHECK_EQ(vhk_vq_pop(stale, 0, &el), -ENODEV);
	CHECK_EQ(vhk_vq_unpop(stale, 0, &el), -ENODEV);
	CHECK_EQ(vhk_vq_push(stale, 0, el.id, 8), -ENODEV);
	CHECK_EQ(vhk_vq_flush(stale, 0), -ENODEV);
	CHECK_EQ(vhk_vq_inflight_count(stale, 0), -ENODEV);
	CHECK_EQ(vhk_vq_get_base(stale, 0, &la, &lu), -ENODEV);
	CHECK_EQ(vhk_vq_set_base(stale, 0, 0, 0), -ENODEV);
	CHECK_EQ(vhk_vq_notify(stale, 0), -ENODEV);
	CHECK_EQ(vhk_vq_set_notification(stale, 0, true), -ENODEV);
	CHECK_EQ(vhk_vq_avail_count(stale, 0), -ENODEV);
	CHECK_EQ(vhk_dev_set_priv(stale, &e), -ENODEV);
	CHECK(vhk_dev_get_priv(stale) == NULL);
	uint64_t len = 8;
	CHECK(vhk_vq_translate(stale, 0, 0, &len) == NULL);
	CHECK_EQ(len, 0);
	CHECK_EQ(vhk_vq_pop(-1, 0, &el), -ENODEV);
	env_down(&e);
}

/* The guest breaks queue 0: -EIO once, then not ready; err fd signalled; queue 1 unharmed. */
static void hostile(bool loop)
{
	struct env e;
	env_up(&e, 1);
	uint64_t buf = gmem_alloc(e.m, 64, 8);
	struct gvq *r = e.vq[0];
	if (packed) {
		uint16_t av = gvq_avail_bits(true);
		if (loop) { /* every slot chains to the next: longer than the ring */
			for (uint16_t i = RING; i-- > 0;)
				gvq_raw_slot(r, i, buf, 8, 0, (uint16_t)(av | VRING_DESC_F_NEXT));
		} else {
			gvq_raw_slot(r, 0, buf, 8, RING + 5, (uint16_t)(av | VRING_DESC_F_WRITE));
		}
	} else {
		if (loop) {
			gvq_raw_desc(r, 0, buf, 8, VRING_DESC_F_NEXT, 1);
			gvq_raw_desc(r, 1, buf, 8, VRING_DESC_F_NEXT, 0);
		}
		gvq_raw_avail(r, 0, loop ? 0 : RING + 5);
		gvq_raw_avail_idx(r, 1);
	}
	struct iovec iov[4];
	struct vhk_vq_elem el;
	CHECK_EQ(pop(&e, 0, &el, iov, 4), -EIO);
	CHECK_EQ(pop(&e, 0, &el, iov, 4), -EAGAIN);
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(e.vid, 0, &info), 0);
	CHECK(info.broken);
	uint64_t v = 0;
	CHECK_EQ(read(e.err_fd[0], &v, sizeof(v)), (ssize_t)sizeof(v));
	CHECK(v >= 1);
	CHECK_EQ(vhk_vq_get_info(e.vid, 1, &info), 0);
	CHECK(!info.broken);
	CHECK_EQ(read(e.err_fd[1], &v, sizeof(v)), -1);
	post_in(&e, 1, 8, 5);
	CHECK_EQ(pop(&e, 1, &el, iov, 4), 0);
	CHECK_EQ(vhk_vq_push(e.vid, 1, el.id, 8), 0);
	CHECK_EQ(vhk_vq_flush(e.vid, 1), 1);
	expect_used(&e, 1, 5, 8);
	fe_usable(e.v);
	env_down(&e);
}

static void t_hostile_loop(void)
{
	hostile(true);
}

static void t_hostile_head(void)
{
	hostile(false);
}

/* Guest addresses to host pointers: mapped, clipped at a region's end, unmapped. */
static void t_translate(void)
{
	struct env e;
	env_up(&e, 2);
	uint8_t pat[128];
	fill(pat, sizeof(pat), 33);
	uint64_t gpa = gmem_alloc(e.m, 100, 8), len = 100;
	CHECK_EQ(gmem_write(e.m, gpa, pat, 100), 0);
	uint8_t *p = vhk_vq_translate(e.vid, 0, gpa, &len);
	CHECK(p != NULL);
	CHECK_EQ(len, 100);
	CHECK(!memcmp(p, pat, 100));
	/* Crossing from region 0 into region 1: clipped at the boundary. */
	CHECK_EQ(gmem_write(e.m, REGION - 16, pat, 64), 0);
	len = 64;
	p = vhk_vq_translate(e.vid, 0, REGION - 16, &len);
	CHECK(p != NULL);
	CHECK_EQ(len, 16);
	CHECK(!memcmp(p, pat, 16));
	len = 48;
	p = vhk_vq_translate(e.vid, 0, REGION, &len);
	CHECK(p != NULL);
	CHECK_EQ(len, 48);
	CHECK(!memcmp(p, pat + 16, 48));
	len = UINT64_MAX;
	CHECK(vhk_vq_translate(e.vid, 0, 0, &len) != NULL);
	CHECK_EQ(len, REGION);
	/* Not mapped, nothing asked, no length. */
	len = 8;
	CHECK(vhk_vq_translate(e.vid, 0, 2ull * REGION, &len) == NULL);
	CHECK_EQ(len, 0);
	len = 8;
	CHECK(vhk_vq_translate(e.vid, 0, UINT64_MAX - 3, &len) == NULL);
	CHECK_EQ(len, 0);
	len = 0;
	CHECK(vhk_vq_translate(e.vid, 0, gpa, &len) == NULL);
	CHECK(vhk_vq_translate(e.vid, 0, gpa, NULL) == NULL);
	/* The per-device pointer. */
	CHECK(vhk_dev_get_priv(e.vid) == NULL);
	CHECK_EQ(vhk_dev_set_priv(e.vid, &e), 0);
	CHECK(vhk_dev_get_priv(e.vid) == &e);
	CHECK_EQ(vhk_dev_set_priv(e.vid, NULL), 0);
	CHECK(vhk_dev_get_priv(e.vid) == NULL);
	env_down(&e);
}

GVQ_TEST_MAIN(TEST(t_roundtrip), TEST(t_len_clamp), TEST(t_e2big), TEST(t_unpop),
	      TEST(t_push_not_in_flight), TEST(t_event_idx), TEST(t_vring_base_progress),
	      TEST(t_set_base), TEST(t_bad_args_and_stale), TEST(t_hostile_loop),
	      TEST(t_hostile_head), TEST(t_translate))
