/* SPDX-License-Identifier: MIT */
/* Shared fixture for the datapath / lifecycle integration tests (see dp_common.h). */
#include "dp_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

atomic_int dp_vid = -1;
atomic_int dp_last_vid = -1;
atomic_int dp_new_count;
atomic_int dp_destroy_count;

/* new_device: remember the vid for the test thread. */
static int cb_new_device(int vid)
{
	atomic_store(&dp_vid, vid);
	atomic_store(&dp_last_vid, vid);
	atomic_fetch_add(&dp_new_count, 1);
	return 0;
}

/* destroy_device: the device is gone. */
static void cb_destroy_device(int vid)
{
	int expect = vid;
	atomic_compare_exchange_strong(&dp_vid, &expect, -1);
	atomic_fetch_add(&dp_destroy_count, 1);
}

void dp_random(uint8_t *buf, uint32_t len, uint32_t *seed)
{
	uint32_t x = *seed ? *seed : 0x9e3779b9u;
	for (uint32_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)(x >> 11);
	}
	*seed = x;
}

int64_t dp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Short pause inside a poll-until-deadline loop. */
static void pause_us(long us)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};
	nanosleep(&ts, NULL);
}

void dp_lib_start(struct dp_env *e, const struct dp_opts *o)
{
	memset(e, 0, sizeof(*e));
	e->o = *o;
	if (!e->o.pairs)
		e->o.pairs = 1;
	if (!e->o.features)
		e->o.features = DP_BASE_FEATURES;
	if (!e->o.pf)
		e->o.pf = DP_BASE_PF;
	if (!e->o.nregions)
		e->o.nregions = 8;
	if (!e->o.region_size)
		e->o.region_size = 8u << 20;
	if (!e->o.ring_size)
		e->o.ring_size = 256;
	e->o.packed = e->o.packed || gvq_run_packed;
	e->packed = e->o.packed;
	if (e->packed)
		e->o.features |= DP_PACKED_F;
	e->lfd = -1;
	e->vid = -1;
	snprintf(e->dir, sizeof(e->dir), "/tmp/vhkdp.XXXXXX");
	CHECK(mkdtemp(e->dir) != NULL);
	snprintf(e->path, sizeof(e->path), "%s/sock", e->dir);

	CHECK_EQ(vhk_socket_register(e->path, e->o.reg_flags), 0);
	CHECK_EQ(vhk_net_attach(e->path), 0);
	if (e->packed) /* explicitly: the test must not depend on the default offer */
		CHECK_EQ(vhk_socket_enable_features(e->path, DP_PACKED_F), 0);
	if (e->o.features & DP_F(VHK_F_IN_ORDER)) /* asked for: offer it even if not default */
		CHECK_EQ(vhk_socket_enable_features(e->path, DP_F(VHK_F_IN_ORDER)), 0);
	if (e->o.pairs > 1)
		CHECK_EQ(vhk_net_set_queue_pairs(e->path, e->o.pairs), 0);
	struct vhk_callbacks cb = {.new_device = cb_new_device,
				   .destroy_device = cb_destroy_device};
	CHECK_EQ(vhk_socket_set_callbacks(e->path, &cb, e), 0);
	CHECK_EQ(vhk_pool_create(8192, 2048, 128, 0, &e->pool), 0);
	if (e->o.reg_flags & VHK_CLIENT)
		CHECK_EQ(vuf_listen(e->path, &e->lfd), 0);
	CHECK_EQ(vhk_socket_start(e->path), 0);
}

int dp_wait_new_device(int count, int timeout_ms)
{
	int64_t end = dp_now_ms() + timeout_ms;
	while (atomic_load(&dp_new_count) < count || atomic_load(&dp_vid) < 0) {
		if (dp_now_ms() > end)
			return -ETIMEDOUT;
		pause_us(200);
	}
	return atomic_load(&dp_vid);
}

void dp_front_start(struct dp_env *e)
{
	int before = atomic_load(&dp_new_count);
	if (e->o.reg_flags & VHK_CLIENT)
		CHECK_EQ(vuf_accept(e->lfd, DP_TIMEOUT_MS, &e->v), 0);
	else
		CHECK_EQ(vuf_connect(e->path, DP_TIMEOUT_MS, &e->v), 0);
	CHECK_EQ(vuf_negotiate(e->v, e->o.features, e->o.pf), 0);
	uint64_t f = e->v->features;
	e->mrg = f & DP_F(VHK_NET_F_MRG_RXBUF);
	e->hdr_len = (e->mrg || (f & DP_F(VHK_F_VERSION_1))) ? 12 : 10;
	CHECK_EQ(gmem_new(e->o.nregions, e->o.region_size, 0x100000, e->o.gap, &e->m), 0);
	CHECK_EQ(vuf_set_mem_table(e->v, e->m), 0);
	e->nvrings = 2 * e->o.pairs;
	CHECK(e->nvrings <= DP_MAX_VRINGS);
	CHECK_EQ(!!(f & DP_PACKED_F), e->packed);
	for (uint32_t q = 0; q < e->nvrings; q++) {
		e->slot[q] = calloc(e->o.ring_size, sizeof(uint64_t));
		e->meta[q] = calloc(e->o.ring_size, sizeof(struct dp_meta));
		CHECK(e->slot[q] && e->meta[q]);
		/* The negotiated features pick format, EVENT_IDX and IN_ORDER. */
		CHECK_EQ(gvq_new(e->m, e->o.ring_size, f, &e->vq[q]), 0);
		CHECK_EQ(vuf_start_vring(e->v, q, e->vq[q]), 0);
	}
	e->vid = dp_wait_new_device(before + 1, DP_TIMEOUT_MS);
	CHECK(e->vid >= 0);
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(e->vid, 0, &info), 0);
	CHECK_EQ(info.packed, e->packed); /* the library sees the format we drive */
}

void dp_setup(struct dp_env *e, const struct dp_opts *o)
{
	dp_lib_start(e, o);
	dp_front_start(e);
}

void dp_front_stop(struct dp_env *e)
{
	if (e->v)
		vuf_close(e->v);
	e->v = NULL;
	for (uint32_t q = 0; q < e->nvrings; q++) {
		gvq_free(e->vq[q]);
		free(e->slot[q]);
		free(e->meta[q]);
		e->vq[q] = NULL;
		e->slot[q] = NULL;
		e->meta[q] = NULL;
	}
	e->nvrings = 0;
	gmem_free(e->m);
	e->m = NULL;
}

void dp_teardown(struct dp_env *e)
{
	if (e->v) {
		vuf_close(e->v);
		e->v = NULL;
	}
	CHECK_EQ(vhk_socket_unregister(e->path), 0);
	dp_front_stop(e);
	if (e->lfd >= 0)
		close(e->lfd);
	unlink(e->path);
	rmdir(e->dir);
	vhk_pool_free(e->pool);
	e->pool = NULL;
}

const char *dp_format(const struct dp_env *e)
{
	return e->packed ? "packed" : "split";
}

uint64_t dp_next_slot(struct dp_env *e, uint32_t q)
{
	int id = gvq_next_id(e->vq[q]);
	if (id < 0)
		return 0;
	uint16_t head = (uint16_t)id;
	if (!e->slot[q][head])
		e->slot[q][head] = gmem_alloc(e->m, DP_SLOT, 64);
	return e->slot[q][head];
}

int dp_post(struct dp_env *e, uint32_t q, const struct gbuf *b, int n, bool writable, bool indirect)
{
	if (n <= 0 || n > DP_MAX_BUFS)
		return -EINVAL;
	int head = gvq_next_id(e->vq[q]);
	if (head < 0)
		return head;
	void *token = (void *)(uintptr_t)(head + 1u);
	const struct gbuf *out = writable ? NULL : b, *in = writable ? b : NULL;
	int nout = writable ? 0 : n, nin = writable ? n : 0;
	int rc = gvq_add(e->vq[q], out, nout, in, nin, indirect, token);
	if (rc < 0)
		return rc;
	CHECK_EQ(rc, head);
	memcpy(e->meta[q][head].b, b, sizeof(*b) * (size_t)n);
	e->meta[q][head].n = n;
	return rc;
}

void dp_post_rx(struct dp_env *e, uint32_t q, int count, uint32_t buflen, bool split_hdr,
		bool indirect)
{
	CHECK(buflen > e->hdr_len && buflen <= DP_SLOT - DP_DATA_OFF);
	for (int i = 0; i < count; i++) {
		uint64_t s = dp_next_slot(e, q);
		CHECK(s != 0);
		struct gbuf b[2] = {{s, buflen}};
		int n = 1;
		if (split_hdr) {
			b[0].len = e->hdr_len;
			b[1] = (struct gbuf){s + DP_DATA_OFF, buflen - e->hdr_len};
			n = 2;
		}
		CHECK(dp_post(e, q, b, n, true, indirect) >= 0);
	}
	gvq_kick(e->vq[q]);
}

/* Wait for the next used entry of vring @q; returns its head or -errno. */
static int wait_used(struct dp_env *e, uint32_t q, uint32_t *len, int timeout_ms)
{
	int64_t end = dp_now_ms() + timeout_ms;
	for (;;) {
		void *tok = NULL;
		int rc = gvq_get_used(e->vq[q], &tok, len);
		if (rc == 1)
			return (int)((uintptr_t)tok - 1);
		if (rc < 0)
			return rc;
		if (dp_now_ms() > end)
			return -ETIMEDOUT;
		pause_us(50);
	}
}

/* Append the first @len bytes written into chain @head to @dst. */
static int gather(struct dp_env *e, uint32_t q, int head, uint32_t len, uint8_t *dst)
{
	const struct dp_meta *mt = &e->meta[q][head];
	uint32_t done = 0;
	for (int i = 0; i < mt->n && done < len; i++) {
		uint32_t n = len - done < mt->b[i].len ? len - done : mt->b[i].len;
		CHECK_EQ(gmem_read(e->m, mt->b[i].gpa, dst + done, n), 0);
		done += n;
	}
	return done == len ? 0 : -EIO; /* device claims more bytes than posted */
}

int dp_recv(struct dp_env *e, uint32_t q, void *hdr, uint8_t *data, uint32_t cap, int *nbufs,
	    int timeout_ms)
{
	size_t room = (size_t)cap + e->hdr_len;
	uint8_t *tmp = malloc(room + DP_SLOT);
	uint32_t len = 0, got = 0;
	int rc, nb = 1, used = 0;
	CHECK(tmp != NULL);
	do {
		int head = wait_used(e, q, &len, timeout_ms);
		if (head < 0) {
			rc = head;
			goto out;
		}
		used++;
		if (got + (uint64_t)len > room || gather(e, q, head, len, tmp + got) < 0) {
			rc = got + (uint64_t)len > room ? -EMSGSIZE : -EIO;
			goto out;
		}
		got += len;
		if (used == 1 && e->mrg) {
			struct virtio_net_hdr_mrg_rxbuf h;
			if (got < sizeof(h)) {
				rc = -EIO;
				goto out;
			}
			memcpy(&h, tmp, sizeof(h));
			nb = h.num_buffers;
			if (nb == 0) {
				rc = -EIO;
				goto out;
			}
		}
	} while (used < nb);
	if (got < e->hdr_len) {
		rc = -EIO;
		goto out;
	}
	memcpy(hdr, tmp, e->hdr_len);
	memcpy(data, tmp + e->hdr_len, got - e->hdr_len);
	rc = (int)(got - e->hdr_len);
out:
	if (nbufs)
		*nbufs = used;
	free(tmp);
	return rc;
}

void dp_send(struct dp_env *e, uint32_t q, const struct virtio_net_hdr *hdr, const uint8_t *data,
	     uint32_t len, int nsplit, bool split_hdr, bool indirect)
{
	struct virtio_net_hdr_mrg_rxbuf h = {0};
	if (hdr)
		h.hdr = *hdr;
	uint64_t s = dp_next_slot(e, q);
	CHECK(s != 0);
	CHECK(len <= DP_SLOT - DP_DATA_OFF);
	if (nsplit < 1)
		nsplit = 1;
	if ((uint32_t)nsplit > len)
		nsplit = (int)len;
	CHECK(nsplit + 1 <= DP_MAX_BUFS);
	CHECK_EQ(gmem_write(e->m, s + DP_DATA_OFF - e->hdr_len, &h, e->hdr_len), 0);
	CHECK_EQ(gmem_write(e->m, s + DP_DATA_OFF, data, len), 0);
	struct gbuf b[DP_MAX_BUFS];
	int n = 0;
	if (split_hdr)
		b[n++] = (struct gbuf){s + DP_DATA_OFF - e->hdr_len, e->hdr_len};
	uint32_t off = 0, piece = len / (uint32_t)nsplit;
	for (int k = 0; k < nsplit; k++) {
		uint32_t plen = k + 1 == nsplit ? len - off : piece;
		b[n++] = (struct gbuf){s + DP_DATA_OFF + off, plen};
		off += plen;
	}
	if (!split_hdr) {
		b[0].gpa -= e->hdr_len;
		b[0].len += e->hdr_len;
	}
	CHECK(dp_post(e, q, b, n, false, indirect) >= 0);
	gvq_kick(e->vq[q]);
}

int dp_reap(struct dp_env *e, uint32_t q, int count, int timeout_ms)
{
	int got = 0;
	uint32_t len;
	while (got < count && wait_used(e, q, &len, timeout_ms) >= 0)
		got++;
	return got;
}

struct vhk_pkt *dp_pkt_make(struct vhk_pool *pool, const uint8_t *data, uint32_t len)
{
	struct vhk_pkt *head = NULL;
	uint32_t off = 0;
	do {
		struct vhk_pkt *seg = vhk_pkt_alloc(pool);
		CHECK(seg != NULL);
		uint32_t n = vhk_pkt_tailroom(seg);
		if (n > len - off)
			n = len - off;
		uint8_t *dst = vhk_pkt_append(seg, n);
		CHECK(dst != NULL || n == 0);
		if (n)
			memcpy(dst, data + off, n);
		off += n;
		if (!head)
			head = seg;
		else
			CHECK_EQ(vhk_pkt_chain(head, seg), 0);
	} while (off < len);
	CHECK_EQ(head->pkt_len, len);
	return head;
}

bool dp_pkt_equal(const struct vhk_pkt *p, const uint8_t *data, uint32_t len)
{
	if (!p || p->pkt_len != len)
		return false;
	uint32_t sum = 0, segs = 0;
	for (const struct vhk_pkt *s = p; s; s = s->next) {
		sum += s->data_len;
		segs++;
	}
	if (sum != len || segs != p->nb_segs)
		return false;
	uint8_t *tmp = malloc(len ? len : 1);
	CHECK(tmp != NULL);
	bool ok = vhk_pkt_read(p, 0, tmp, len) == len && memcmp(tmp, data, len) == 0;
	free(tmp);
	return ok;
}

int dp_enqueue_all(int vid, uint16_t q, struct vhk_pkt **pkts, int n, int timeout_ms)
{
	int64_t end = dp_now_ms() + timeout_ms;
	int sent = 0;
	while (sent < n && dp_now_ms() <= end) {
		uint16_t k = vhk_net_enqueue_burst(vid, q, pkts + sent, (uint16_t)(n - sent));
		sent += k;
		if (!k)
			pause_us(100);
	}
	return sent;
}

int dp_dequeue_n(int vid, uint16_t q, struct vhk_pool *pool, struct vhk_pkt **pkts, int n,
		 int timeout_ms)
{
	int64_t end = dp_now_ms() + timeout_ms;
	int got = 0;
	while (got < n && dp_now_ms() <= end) {
		uint16_t k = vhk_net_dequeue_burst(vid, q, pool, pkts + got, (uint16_t)(n - got));
		got += k;
		if (!k)
			pause_us(100);
	}
	return got;
}

/* Internet checksum of @len bytes. */
static uint16_t ip_csum(const uint8_t *p, uint32_t len)
{
	uint32_t sum = 0;
	for (uint32_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

void dp_make_tcp(uint8_t *f, uint32_t len, uint32_t *seed)
{
	CHECK(len >= 54);
	dp_random(f, len, seed);
	f[0] &= 0xfe; /* unicast destination */
	f[6] &= 0xfe;
	f[12] = 0x08;
	f[13] = 0x00;
	uint8_t *ip = f + 14;
	uint32_t iplen = len - 14;
	ip[0] = 0x45;
	ip[1] = 0;
	ip[2] = (uint8_t)(iplen >> 8);
	ip[3] = (uint8_t)iplen;
	ip[6] = 0x40; /* DF */
	ip[7] = 0;
	ip[8] = 64;
	ip[9] = 6; /* TCP */
	ip[10] = ip[11] = 0;
	uint16_t c = ip_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	uint8_t *tcp = ip + 20;
	tcp[12] = 5 << 4;
	tcp[13] = 0x18;	       /* ACK|PSH */
	tcp[16] = tcp[17] = 0; /* checksum left to the offload */
	tcp[18] = tcp[19] = 0;
}

void dp_roundtrip(struct dp_env *e, uint32_t pair, uint32_t len, uint32_t seed)
{
	uint8_t *want = malloc(len), *got = malloc(len);
	struct virtio_net_hdr_mrg_rxbuf h;
	struct vhk_pkt *p;
	CHECK(want && got && len <= DP_SLOT - DP_DATA_OFF - e->hdr_len);
	dp_random(want, len, &seed);
	dp_post_rx(e, 2 * pair, 1, e->hdr_len + len, false, false);
	p = dp_pkt_make(e->pool, want, len);
	CHECK_EQ(dp_enqueue_all(e->vid, (uint16_t)(2 * pair), &p, 1, DP_TIMEOUT_MS), 1);
	vhk_pkt_free(p);
	CHECK_EQ(dp_recv(e, 2 * pair, &h, got, len, NULL, DP_TIMEOUT_MS), len);
	CHECK(memcmp(want, got, len) == 0);

	dp_random(want, len, &seed);
	dp_send(e, 2 * pair + 1, NULL, want, len, 1, false, false);
	p = NULL;
	CHECK_EQ(dp_dequeue_n(e->vid, (uint16_t)(2 * pair + 1), e->pool, &p, 1, DP_TIMEOUT_MS), 1);
	CHECK(dp_pkt_equal(p, want, len));
	vhk_pkt_free(p);
	CHECK_EQ(dp_reap(e, 2 * pair + 1, 1, DP_TIMEOUT_MS), 1);
	free(want);
	free(got);
}

void dp_roundtrip_ex(struct dp_env *e, uint32_t pair, uint32_t len, uint32_t seed, bool split_hdr,
		     bool indirect)
{
	uint8_t *want = malloc(DP_MAX_PKT), *got = malloc(DP_MAX_PKT);
	uint32_t rxq = 2 * pair, txq = rxq + 1;
	int nbufs = 0, expect = (int)((len + e->hdr_len + DP_MRG_BUF - 1) / DP_MRG_BUF);
	struct virtio_net_hdr_mrg_rxbuf h;
	CHECK(want && got && len <= DP_MAX_PKT);
	dp_random(want, len, &seed);
	if (e->mrg)
		dp_post_rx(e, rxq, expect, DP_MRG_BUF, split_hdr, indirect);
	else
		dp_post_rx(e, rxq, 1, e->hdr_len + DP_MAX_PKT, split_hdr, indirect);
	struct vhk_pkt *p = dp_pkt_make(e->pool, want, len);
	CHECK_EQ(dp_enqueue_all(e->vid, (uint16_t)rxq, &p, 1, DP_TIMEOUT_MS), 1);
	vhk_pkt_free(p);
	CHECK_EQ(dp_recv(e, rxq, &h, got, DP_MAX_PKT, &nbufs, DP_TIMEOUT_MS), len);
	CHECK(memcmp(want, got, len) == 0);
	CHECK_EQ(nbufs, e->mrg ? expect : 1);
	if (e->mrg)
		CHECK_EQ(h.num_buffers, expect);

	dp_random(want, len, &seed);
	dp_send(e, txq, NULL, want, len, split_hdr ? 3 : 1, split_hdr, indirect);
	p = NULL;
	CHECK_EQ(dp_dequeue_n(e->vid, (uint16_t)txq, e->pool, &p, 1, DP_TIMEOUT_MS), 1);
	CHECK(dp_pkt_equal(p, want, len));
	vhk_pkt_free(p);
	CHECK_EQ(dp_reap(e, txq, 1, DP_TIMEOUT_MS), 1);
	free(want);
	free(got);
}
