/* SPDX-License-Identifier: MIT */
/*
 * Device-level datapath tests: enqueue/dequeue bursts against guest split
 * rings of the test harness (gvq) over its guest RAM, with the vdev and vqs
 * configured directly (no socket, no frontend).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <linux/virtio_ring.h>

#include "test.h"
#include "net/net.h"
#include "core/vdev.h"
#include "unit_vq.h"

#define GMEM_SIZE  (16u << 20)
#define QVA_BASE   0x7f1200000000ull /* frontend addresses differ from GPAs */
#define RSIZE	   256u
#define F(b)	   (1ull << (b))
#define F_MRG	   (F(VHK_F_VERSION_1) | F(VHK_NET_F_MRG_RXBUF))
#define F_GUEST_OL (F(VHK_NET_F_GUEST_CSUM) | F(VHK_NET_F_GUEST_TSO4) | F(VHK_NET_F_CSUM))

/* One guest buffer piece. */
struct gseg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

struct env {
	struct gmem *m;
	uint64_t features;
	struct vdev *d;
	int vid;
	struct gvq *vq[2];
	struct vhk_pool *pool;
};

/* The test's pointer to @len guest bytes at @gpa. */
static void *gptr(struct env *e, uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(e->m, gpa, len);

	CHECK(p != NULL);
	return p;
}

/* Allocate guest memory. */
static uint64_t galloc(struct env *e, uint64_t len, uint64_t align)
{
	uint64_t gpa = gmem_alloc(e->m, len, align);

	CHECK(gpa != 0);
	return gpa;
}

/* Lay out ring @q in guest memory and configure vq @q to use it. */
static void ring_setup(struct env *e, uint16_t q, const struct mem_table *t)
{
	CHECK_EQ(gvq_new(e->m, RSIZE, e->features, &e->vq[q]), 0);
	struct vq *vq = vdev_vq_get_or_alloc(e->d, q);
	CHECK(vq != NULL);
	vq_quiesce(vq);
	CHECK_EQ(uvq_start(vq, e->vq[q], t, e->features, 0), 0);
	vq_unquiesce(vq);
}

/* Guest RAM, memory table, device, rings 0 (rx) and 1 (tx), a pool. */
static void env_setup(struct env *e, uint64_t features, uint32_t data_room)
{
	struct mem_table *t;

	memset(e, 0, sizeof(*e));
	e->features = features;
	CHECK_EQ(gmem_new(1, GMEM_SIZE, 0, 0, &e->m), 0);
	gmem_set_qva_base(e->m, QVA_BASE);
	CHECK_EQ(gmem_table(e->m, 0, 1, &t), 0);
	CHECK_EQ(vdev_alloc(&e->d), 0);
	e->vid = atomic_load(&e->d->vid);
	e->d->ops = *net_device_ops();
	CHECK_EQ(e->d->ops.dev_init(e->vid), 0);
	vdev_set_mem(e->d, t);
	ring_setup(e, 0, t);
	ring_setup(e, 1, t);
	vdev_set_features(e->d, features);
	CHECK_EQ(vhk_pool_create(512, data_room, 64, 0, &e->pool), 0);
}

static void env_teardown(struct env *e)
{
	e->d->ops.dev_fini(e->vid);
	vdev_release(e->d);
	CHECK_EQ(vhk_pool_avail(e->pool), 512);
	vhk_pool_free(e->pool);
	gvq_free(e->vq[0]);
	gvq_free(e->vq[1]);
	gmem_free(e->m);
}

/* Make a chain of @n pieces (readable ones first) available; returns its head. */
static uint16_t gadd(struct env *e, int q, const struct gseg *s, uint32_t n)
{
	struct gbuf out[16], in[16];
	int nout = 0, nin = 0;

	CHECK(n >= 1 && n <= 16);
	for (uint32_t i = 0; i < n; i++) {
		if (s[i].write) {
			in[nin++] = (struct gbuf){s[i].gpa, s[i].len};
		} else {
			CHECK_EQ(nin, 0);
			out[nout++] = (struct gbuf){s[i].gpa, s[i].len};
		}
	}
	int head = gvq_next_id(e->vq[q]);
	CHECK(head >= 0);
	CHECK_EQ(gvq_post(e->vq[q], out, nout, in, nin, false, (void *)(uintptr_t)(head + 1)),
		 head);
	return (uint16_t)head;
}

/* Post one writable buffer of @len bytes to the rx ring. */
static uint16_t gadd_rx(struct env *e, uint32_t len)
{
	struct gseg s = {galloc(e, len, 64), len, true};

	memset(gptr(e, s.gpa, len), 0x5a, len);
	return gadd(e, 0, &s, 1);
}

/* Next used entry; false if none. */
static bool gused(struct env *e, int q, uint16_t *id, uint32_t *len)
{
	void *tok = NULL;
	int rc = gvq_get_used(e->vq[q], &tok, len);

	CHECK(rc >= 0);
	if (!rc)
		return false;
	*id = (uint16_t)((uintptr_t)tok - 1);
	return true;
}

/* Copy @len bytes written to the chain at @head (its writable pieces) into @out. */
static void gread_chain(struct env *e, int q, uint16_t head, uint8_t *out, uint32_t len)
{
	const struct vring_desc *desc = e->vq[q]->desc;

	for (uint16_t i = head; len;) {
		const struct vring_desc *dsc = &desc[i];
		uint32_t n = MIN(len, dsc->len);
		if (dsc->flags & VRING_DESC_F_WRITE) {
			memcpy(out, gptr(e, dsc->addr, n), n);
			out += n;
			len -= n;
		}
		if (!(dsc->flags & VRING_DESC_F_NEXT))
			break;
		i = dsc->next;
	}
	CHECK_EQ(len, 0);
}

/* A packet of @len pattern bytes (seed @seed) in segments of at most @seg bytes. */
static struct vhk_pkt *mkpkt(struct env *e, uint32_t len, uint32_t seg, uint8_t seed)
{
	struct vhk_pkt *head = vhk_pkt_alloc(e->pool), *tail = head;
	uint32_t off = 0;

	CHECK(head != NULL);
	while (off < len) {
		if (vhk_pkt_tailroom(tail) == 0 || tail->data_len >= seg) {
			tail = vhk_pkt_alloc(e->pool);
			CHECK(tail != NULL);
			CHECK_EQ(vhk_pkt_chain(head, tail), 0);
		}
		uint32_t n = MIN(MIN(seg - tail->data_len, len - off), vhk_pkt_tailroom(tail));
		uint8_t *d = vhk_pkt_append(head, n);
		CHECK(d != NULL);
		for (uint32_t i = 0; i < n; i++)
			d[i] = (uint8_t)(seed + (off + i) * 7 + ((off + i) >> 8));
		off += n;
	}
	CHECK_EQ(head->pkt_len, len);
	return head;
}

/* Compare a packet with a flat buffer. */
static void check_pkt_eq(const struct vhk_pkt *p, const uint8_t *exp, uint32_t len)
{
	static uint8_t buf[70000];

	CHECK_EQ(p->pkt_len, len);
	CHECK_EQ(vhk_pkt_read(p, 0, buf, len), len);
	CHECK(memcmp(buf, exp, len) == 0);
}

static struct vhk_net_stats stats(struct env *e, uint16_t q)
{
	struct vhk_net_stats s;

	CHECK_EQ(vhk_net_get_stats(e->vid, q, &s), 0);
	return s;
}

/*
 * Enqueue one packet and check the guest received exactly the header and
 * bytes; returns the number of non-empty used entries (num_buffers).
 */
static uint32_t rx_roundtrip(struct env *e, struct vhk_pkt *p, struct net_hdr *ret_hdr)
{
	static uint8_t got[70000], exp[70000];
	uint32_t hl = net_hdr_len(e->features), total = 0, nbufs = 0;
	uint16_t id;
	uint32_t len;

	CHECK_EQ(vhk_net_enqueue_burst(e->vid, 0, &p, 1), 1);
	while (gused(e, 0, &id, &len)) {
		CHECK(total + len <= sizeof(got));
		gread_chain(e, 0, id, got + total, len);
		total += len;
		nbufs += len != 0; /* rejected chains come back empty */
	}
	CHECK_EQ(total, hl + p->pkt_len);
	net_hdr_decode(got, hl, ret_hdr);
	if (hl == NET_HDR_MRG_LEN)
		CHECK_EQ(ret_hdr->num_buffers, nbufs);
	CHECK_EQ(vhk_pkt_read(p, 0, exp, p->pkt_len), p->pkt_len);
	CHECK(memcmp(got + hl, exp, p->pkt_len) == 0);
	return nbufs;
}

/* Consume every posted rx chain with 1-byte packets. */
static void rx_drain(struct env *e, uint32_t chains)
{
	uint16_t id;
	uint32_t len;

	for (uint32_t k = 0; k < chains; k++) {
		struct vhk_pkt *q = mkpkt(e, 1, 1, 0);
		CHECK_EQ(vhk_net_enqueue_burst(e->vid, 0, &q, 1), 1);
		vhk_pkt_free(q);
		CHECK(gused(e, 0, &id, &len));
	}
}

/* Byte-for-byte enqueue, 60..9000 bytes, with and without MRG_RXBUF. */
static void t_rx_sizes(void)
{
	static const uint32_t sizes[] = {60, 61, 64, 1514, 2049, 4000, 9000};
	static const uint64_t feats[] = {F_MRG, F(VHK_F_VERSION_1), 0};
	struct net_hdr h;

	for (size_t f = 0; f < ARRAY_SIZE(feats); f++) {
		struct env e;
		env_setup(&e, feats[f], 2048);
		bool mrg = feats[f] & F(VHK_NET_F_MRG_RXBUF);
		uint32_t hl = net_hdr_len(e.features);
		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			uint32_t seg = i & 1 ? 333 : 2048;
			struct vhk_pkt *p = mkpkt(&e, sizes[i], seg, (uint8_t)i);
			if (mrg) {
				for (int k = 0; k < 8; k++)
					gadd_rx(&e, 1536);
				uint32_t n = rx_roundtrip(&e, p, &h);
				CHECK_EQ(n, (sizes[i] + 12 + 1535) / 1536);
				rx_drain(&e, 8 - n);
			} else {
				/* Header split over two pieces, data over three. */
				uint32_t rest = sizes[i] + 100;
				struct gseg s[4] = {
				    {galloc(&e, 3, 1), 3, true},
				    {galloc(&e, hl + 4, 1), hl + 4, true},
				    {galloc(&e, rest / 2, 1), rest / 2, true},
				    {galloc(&e, rest - rest / 2, 1), rest - rest / 2, true}};
				gadd(&e, 0, s, 4);
				CHECK_EQ(rx_roundtrip(&e, p, &h), 1);
				if (hl == NET_HDR_MRG_LEN)
					CHECK_EQ(h.num_buffers, 1);
			}
			CHECK_EQ(h.flags, 0);
			CHECK_EQ(h.gso_type, 0);
			vhk_pkt_free(p);
		}
		struct vhk_net_stats st = stats(&e, 0);
		CHECK_EQ(st.errors, 0);
		CHECK_EQ(st.drops, 0);
		CHECK(st.bytes >= 60 + 61 + 64 + 1514 + 2049 + 4000 + 9000);
		env_teardown(&e);
	}
}

/* A burst of many packets fills several chains and notifies once. */
static void t_rx_burst_and_full_ring(void)
{
	struct env e;
	struct vhk_pkt *p[40];
	uint16_t id;
	uint32_t len;

	env_setup(&e, F(VHK_F_VERSION_1), 2048);
	for (int i = 0; i < 40; i++)
		p[i] = mkpkt(&e, 100 + (uint32_t)i, 2048, (uint8_t)i);
	for (int i = 0; i < 32; i++)
		gadd_rx(&e, 256);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(efd >= 0);
	struct vq *vq = vdev_vq(e.d, 0);
	vq_quiesce(vq);
	vq_set_call_fd(vq, efd); /* owned by the vq now */
	vq_unquiesce(vq);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 32);
	/* Only 32 chains: 32 packets go, 8 stay with the caller. */
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, p, 40), 32);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 0);
	for (int i = 0; i < 32; i++) {
		uint8_t got[300], exp[300];
		CHECK(gused(&e, 0, &id, &len));
		CHECK_EQ(len, 12 + 100 + i);
		gread_chain(&e, 0, id, got, len);
		vhk_pkt_read(p[i], 0, exp, p[i]->pkt_len);
		CHECK(memcmp(got + 12, exp, p[i]->pkt_len) == 0);
	}
	CHECK(!gused(&e, 0, &id, &len));
	uint64_t calls = 0;
	CHECK_EQ(read(efd, &calls, sizeof(calls)), sizeof(calls));
	CHECK_EQ(calls, 1); /* one notification for the whole burst */
	struct vhk_net_stats st = stats(&e, 0);
	CHECK_EQ(st.packets, 32);
	CHECK_EQ(st.drops, 8);
	CHECK_EQ(st.calls, 1);
	CHECK_EQ(vhk_net_reset_stats(e.vid, 0), 0);
	CHECK_EQ(stats(&e, 0).packets, 0);
	/* Wrong direction, bad vid, NULL: nothing happens. */
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 1, p, 1), 0);
	CHECK_EQ(vhk_net_enqueue_burst(e.vid + 1, 0, p, 1), 0);
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, NULL, 1), 0);
	CHECK_EQ(vhk_net_get_stats(e.vid, 0, NULL), -EINVAL);
	CHECK_EQ(vhk_net_get_stats(-1, 0, &st), -ENODEV);
	CHECK_EQ(vhk_net_get_stats(e.vid, VHK_MAX_QUEUES, &st), -EINVAL);
	vhk_pkt_free_bulk(p, 40);
	env_teardown(&e);
}

/* Packets that do not fit go back to the caller; chains are not lost. */
static void t_rx_no_fit(void)
{
	struct env e;
	struct net_hdr h;
	uint16_t id;
	uint32_t len;

	/* Without MRG_RXBUF: a 1000-byte chain cannot take 2000 bytes. */
	env_setup(&e, F(VHK_F_VERSION_1), 2048);
	struct vhk_pkt *big = mkpkt(&e, 2000, 2048, 1);
	gadd_rx(&e, 1000);
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, &big, 1), 0);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 1);
	CHECK(!gused(&e, 0, &id, &len));
	CHECK_EQ(stats(&e, 0).drops, 1);
	struct vhk_pkt *small = mkpkt(&e, 900, 2048, 2);
	rx_roundtrip(&e, small, &h);
	vhk_pkt_free(small);
	vhk_pkt_free(big);
	env_teardown(&e);

	/* With MRG_RXBUF: the ring runs out mid-packet, all its chains come back. */
	env_setup(&e, F_MRG, 2048);
	big = mkpkt(&e, 9000, 2048, 3);
	gadd_rx(&e, 1536);
	gadd_rx(&e, 1536);
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, &big, 1), 0);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 2);
	CHECK(!gused(&e, 0, &id, &len));
	for (int i = 0; i < 5; i++)
		gadd_rx(&e, 1536);
	CHECK_EQ(rx_roundtrip(&e, big, &h), 6);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 1);
	vhk_pkt_free(big);
	env_teardown(&e);
}

/* Chains with readable pieces or too short for the header are guest errors. */
static void t_rx_guest_errors(void)
{
	struct env e;
	struct net_hdr h;
	uint16_t id;
	uint32_t len;

	env_setup(&e, F_MRG, 2048);
	struct gseg ro[2] = {{galloc(&e, 64, 1), 64, false}, {galloc(&e, 1500, 1), 1500, true}};
	uint16_t bad1 = gadd(&e, 0, ro, 2);
	uint16_t bad2 = gadd_rx(&e, 11); /* shorter than the 12-byte header */
	gadd_rx(&e, 2048);
	struct vhk_pkt *p = mkpkt(&e, 1000, 2048, 9);
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, &p, 1), 1);
	CHECK(gused(&e, 0, &id, &len));
	CHECK_EQ(id, bad1);
	CHECK_EQ(len, 0);
	CHECK(gused(&e, 0, &id, &len));
	CHECK_EQ(id, bad2);
	CHECK_EQ(len, 0);
	CHECK(gused(&e, 0, &id, &len));
	CHECK_EQ(len, 1012);
	CHECK_EQ(stats(&e, 0).errors, 2);
	/* A readable chain in the middle of a mergeable packet. */
	gadd_rx(&e, 1000);
	gadd(&e, 0, ro, 2);
	for (int i = 0; i < 3; i++)
		gadd_rx(&e, 1000);
	vhk_pkt_free(p);
	p = mkpkt(&e, 2500, 2048, 10);
	CHECK_EQ(rx_roundtrip(&e, p, &h), 3); /* the rejected chain came back empty */
	CHECK_EQ(stats(&e, 0).errors, 3);
	vhk_pkt_free(p);
	env_teardown(&e);
}

/* The known UDP frame of test_net_hdr with its partial checksum in place. */
static struct vhk_pkt *udp_frame(struct env *e)
{
	static const uint8_t f[59] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x02, 0x52, 0x54, 0x00, 0x00,
				      0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00, 0x2d, 0x12, 0x34,
				      0x40, 0x00, 0x40, 0x11, 0xa5, 0x38, 0xc0, 0xa8, 0x01, 0x01,
				      0xc0, 0xa8, 0x01, 0x02, 0x04, 0xd2, 0x16, 0x2e, 0x00, 0x19,
				      0x83, 0x7e, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2c, 0x20, 0x76,
				      0x68, 0x6f, 0x73, 0x74, 0x6b, 0x69, 0x74, 0x21, 0x21};
	struct vhk_pkt *p = vhk_pkt_alloc(e->pool);
	struct vhk_pkt *q = vhk_pkt_alloc(e->pool);

	memcpy(vhk_pkt_append(p, 41), f, 41); /* split inside the checksum field */
	memcpy(vhk_pkt_append(q, 18), f + 41, 18);
	CHECK_EQ(vhk_pkt_chain(p, q), 0);
	p->ol.flags = VHK_PKT_OL_NEEDS_CSUM;
	p->ol.csum_start = 34;
	p->ol.csum_offset = 6;
	return p;
}

/* Offload metadata into the guest header, or completed in software. */
static void t_rx_offload(void)
{
	struct env e;
	struct net_hdr h;
	uint8_t got[128];
	uint16_t id;
	uint32_t len;

	env_setup(&e, F_MRG | F_GUEST_OL, 2048);
	struct vhk_pkt *p = udp_frame(&e);
	gadd_rx(&e, 1536);
	rx_roundtrip(&e, p, &h);
	CHECK_EQ(h.flags, VHK_PKT_OL_NEEDS_CSUM);
	CHECK_EQ(h.csum_start, 34);
	CHECK_EQ(h.csum_offset, 6);
	/* GSO the guest accepts. */
	p->ol.gso_type = VHK_PKT_GSO_TCPV4;
	p->ol.gso_size = 1448;
	p->ol.hdr_len = 54;
	gadd_rx(&e, 1536);
	rx_roundtrip(&e, p, &h);
	CHECK_EQ(h.gso_type, VHK_PKT_GSO_TCPV4);
	CHECK_EQ(h.gso_size, 1448);
	CHECK_EQ(h.hdr_len, 54);
	/* GSO it did not negotiate: refused, counted, chain untouched. */
	p->ol.gso_type = VHK_PKT_GSO_UDP;
	gadd_rx(&e, 1536);
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, &p, 1), 0);
	CHECK_EQ(stats(&e, 0).errors, 1);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 1);
	vhk_pkt_free(p);
	env_teardown(&e);

	/* No GUEST_CSUM: the checksum is completed in the guest's copy. */
	env_setup(&e, F_MRG, 2048);
	p = udp_frame(&e);
	struct gseg s[3] = {{galloc(&e, 40, 1), 40, true},
			    {galloc(&e, 13, 1), 13, true},
			    {galloc(&e, 100, 1), 100, true}};
	gadd(&e, 0, s, 3); /* the checksum field straddles pieces 1 and 2 */
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, &p, 1), 1);
	CHECK(gused(&e, 0, &id, &len));
	CHECK_EQ(len, 12 + 59);
	gread_chain(&e, 0, id, got, len);
	net_hdr_decode(got, 12, &h);
	CHECK_EQ(h.flags, 0);
	CHECK_EQ(got[12 + 40], 0x20);
	CHECK_EQ(got[12 + 41], 0x85);
	/* The caller's packet still holds the partial checksum. */
	uint8_t orig[2];
	vhk_pkt_read(p, 40, orig, 2);
	CHECK_EQ(orig[0], 0x83);
	vhk_pkt_free(p);
	env_teardown(&e);
}

/*
 * Post a transmit chain: the header over two pieces (the second also holds
 * the first data byte), then the data in pieces of at most @split bytes.
 */
static uint16_t tx_post(struct env *e, const struct net_hdr *h, const uint8_t *data, uint32_t len,
			uint32_t split)
{
	uint32_t hl = net_hdr_len(e->features);
	uint32_t second = hl - 5 + (len ? 1 : 0);
	uint8_t raw[12];
	struct gseg s[16];
	uint32_t n = 0, off = 0;

	net_hdr_encode(h, raw, hl);
	s[n] = (struct gseg){galloc(e, 5, 1), 5, false};
	memcpy(gptr(e, s[n++].gpa, 5), raw, 5);
	s[n] = (struct gseg){galloc(e, second, 1), second, false};
	memcpy(gptr(e, s[n].gpa, second), raw + 5, hl - 5);
	if (len) {
		memcpy((uint8_t *)gptr(e, s[n].gpa, second) + hl - 5, data, 1);
		off = 1;
	}
	n++;
	while (off < len) {
		uint32_t m = MIN(split, len - off);
		CHECK(n < 16);
		s[n] = (struct gseg){galloc(e, m, 1), m, false};
		memcpy(gptr(e, s[n++].gpa, m), data + off, m);
		off += m;
	}
	return gadd(e, 1, s, n);
}

/* Byte-for-byte dequeue into chained pool buffers, both header layouts. */
static void t_tx_sizes(void)
{
	static const uint32_t sizes[] = {60, 61, 1514, 2048, 2049, 4000, 9000};
	static const uint64_t feats[] = {F_MRG | F(VHK_NET_F_CSUM), 0};
	static uint8_t data[9100];
	struct net_hdr h = {0};

	for (uint32_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + (i >> 9));
	for (size_t f = 0; f < ARRAY_SIZE(feats); f++) {
		struct env e;
		struct vhk_pkt *p[16];
		uint16_t id;
		uint32_t len;

		env_setup(&e, feats[f], 2048);
		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
			tx_post(&e, &h, data + i, sizes[i], 1000 + (uint32_t)i * 111);
		CHECK_EQ(vhk_net_dequeue_burst(e.vid, 1, e.pool, p, 16), ARRAY_SIZE(sizes));
		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			check_pkt_eq(p[i], data + i, sizes[i]);
			CHECK_EQ(p[i]->nb_segs, (sizes[i] + 2047) / 2048);
			CHECK_EQ(p[i]->ol.flags, 0);
			CHECK(gused(&e, 1, &id, &len));
			CHECK_EQ(len, 0);
		}
		vhk_pkt_free_bulk(p, ARRAY_SIZE(sizes));
		struct vhk_net_stats st = stats(&e, 1);
		CHECK_EQ(st.packets, ARRAY_SIZE(sizes));
		CHECK_EQ(st.errors, 0);
		CHECK_EQ(vhk_net_dequeue_burst(e.vid, 0, e.pool, p, 16), 0);
		CHECK_EQ(vhk_net_dequeue_burst(e.vid, 1, NULL, p, 16), 0);
		env_teardown(&e);
	}
}

/* Offload headers from the guest: valid ones reach pkt->ol, bad ones drop. */
static void t_tx_offload_and_bad_headers(void)
{
	static uint8_t data[3000];
	struct env e;
	struct vhk_pkt *p[8];
	uint16_t id;
	uint32_t len;

	env_setup(&e, F_MRG | F(VHK_NET_F_CSUM) | F(VHK_NET_F_HOST_TSO4), 2048);
	struct net_hdr good = {.flags = 1,
			       .gso_type = 1,
			       .hdr_len = 54,
			       .gso_size = 1448,
			       .csum_start = 34,
			       .csum_offset = 16};
	struct net_hdr bad_csum = {.flags = 1, .csum_start = 2990, .csum_offset = 9};
	struct net_hdr bad_gso = {.gso_type = 4, .gso_size = 1400};
	struct net_hdr bad_size = {.gso_type = 1, .gso_size = 0};
	struct net_hdr bad_flags = {.flags = 0x40};
	tx_post(&e, &bad_csum, data, 3000, 1500);
	tx_post(&e, &good, data, 3000, 1500);
	tx_post(&e, &bad_gso, data, 3000, 1500);
	tx_post(&e, &bad_size, data, 3000, 1500);
	tx_post(&e, &bad_flags, data, 3000, 1500);
	/* A chain with a writable piece, and one shorter than the header. */
	struct gseg w[2] = {{galloc(&e, 100, 1), 100, false}, {galloc(&e, 100, 1), 100, true}};
	gadd(&e, 1, w, 2);
	struct gseg sh = {galloc(&e, 11, 1), 11, false};
	gadd(&e, 1, &sh, 1);
	CHECK_EQ(vhk_net_dequeue_burst(e.vid, 1, e.pool, p, 8), 1);
	CHECK_EQ(p[0]->ol.flags, 1);
	CHECK_EQ(p[0]->ol.gso_type, 1);
	CHECK_EQ(p[0]->ol.gso_size, 1448);
	CHECK_EQ(p[0]->ol.hdr_len, 54);
	CHECK_EQ(p[0]->ol.csum_start, 34);
	CHECK_EQ(p[0]->ol.csum_offset, 16);
	vhk_pkt_free(p[0]);
	for (int i = 0; i < 7; i++) {
		CHECK(gused(&e, 1, &id, &len));
		CHECK_EQ(len, 0);
	}
	CHECK_EQ(stats(&e, 1).errors, 6);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 1), 0);
	env_teardown(&e);
}

/* A dry pool stops the burst without consuming the chain. */
static void t_tx_pool_dry(void)
{
	static uint8_t data[9000];
	struct env e;
	struct vhk_pool *small;
	struct vhk_pkt *p[4];
	struct net_hdr h = {0};

	env_setup(&e, F_MRG, 2048);
	CHECK_EQ(vhk_pool_create(2, 2048, 0, 0, &small), 0);
	tx_post(&e, &h, data, 9000, 3000);
	CHECK_EQ(vhk_net_dequeue_burst(e.vid, 1, small, p, 4), 0);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 1), 1);
	CHECK_EQ(vhk_pool_avail(small), 2);
	CHECK_EQ(vhk_net_dequeue_burst(e.vid, 1, e.pool, p, 4), 1);
	check_pkt_eq(p[0], data, 9000);
	vhk_pkt_free(p[0]);
	vhk_pool_free(small);
	env_teardown(&e);
}

/* After SEND_RARP the next dequeue returns one RARP announcement first. */
/* Hand a device-specific message to the net device's hook, as the core does. */
static int send_msg(struct env *e, uint32_t req, const void *payload, uint32_t size)
{
	uint8_t reply[VHK_MSG_REPLY_MAX];
	struct vhk_msg m = {.request = req, .size = size, .payload = payload, .reply = reply};

	return e->d->ops.handle_msg(e->vid, &m);
}

static void t_tx_rarp(void)
{
	static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
	static const uint8_t exp[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12,
					0x34, 0x56, 0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04,
					0x00, 0x03, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0,    0,
					0,    0,    0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
	static uint8_t data[100];
	struct env e;
	struct vhk_pkt *p[4];
	struct net_hdr h = {0};
	struct vhk_pool *tiny;

	env_setup(&e, F_MRG, 2048);
	CHECK_EQ(vhk_net_dequeue_burst(e.vid, 1, e.pool, p, 4), 0);
	CHECK_EQ(send_msg(&e, 19 /* SEND_RARP */, mac, 8), 0);
	tx_post(&e, &h, data, 100, 100);
	CHECK_EQ(vhk_net_dequeue_burst(e.vid, 1, e.pool, p, 4), 2);
	check_pkt_eq(p[0], exp, 60);
	check_pkt_eq(p[1], data, 100);
	vhk_pkt_free_bulk(p, 2);
	CHECK_EQ(vhk_net_dequeue_burst(e.vid, 1, e.pool, p, 4), 0);
	/* Again, with an empty ring and a pool of tiny buffers (chained frame). */
	CHECK_EQ(vhk_pool_create(8, 16, 0, 0, &tiny), 0);
	CHECK_EQ(send_msg(&e, 19 /* SEND_RARP */, mac, 8), 0);
	CHECK_EQ(vhk_net_dequeue_burst(e.vid, 1, tiny, p, 1), 1);
	check_pkt_eq(p[0], exp, 60);
	CHECK_EQ(p[0]->nb_segs, 4);
	vhk_pkt_free(p[0]);
	CHECK_EQ(vhk_pool_avail(tiny), 8);
	vhk_pool_free(tiny);
	/* MTU bounds of the device's message hook; other requests are not its own. */
	uint16_t mtu = 0;
	uint64_t v = 1500;
	CHECK_EQ(vhk_net_get_mtu(e.vid, &mtu), -ENOENT);
	CHECK_EQ(send_msg(&e, 20 /* NET_SET_MTU */, &v, 8), 0);
	CHECK_EQ(vhk_net_get_mtu(e.vid, &mtu), 0);
	CHECK_EQ(mtu, 1500);
	v = 67;
	CHECK_EQ(send_msg(&e, 20, &v, 8), -EINVAL);
	v = 65536;
	CHECK_EQ(send_msg(&e, 20, &v, 8), -EINVAL);
	CHECK_EQ(send_msg(&e, 20, &v, 4), -EINVAL);
	CHECK_EQ(send_msg(&e, 26 /* CREATE_CRYPTO_SESSION */, &v, 8), VHK_MSG_NOT_HANDLED);
	CHECK_EQ(e.d->ops.min_queues, 2);
	CHECK_EQ(e.d->ops.queue_num_unit, 2);
	env_teardown(&e);
}

/* A disabled ring is not touched; bad handles are refused. */
static void t_not_ready(void)
{
	struct env e;
	struct vhk_pkt *p;

	env_setup(&e, F_MRG, 2048);
	p = mkpkt(&e, 100, 2048, 1);
	gadd_rx(&e, 1536);
	struct vq *vq = vdev_vq(e.d, 0);
	vq_quiesce(vq);
	vq_set_enabled(vq, false);
	vq_unquiesce(vq);
	CHECK_EQ(vhk_net_enqueue_burst(e.vid, 0, &p, 1), 0);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), -EAGAIN);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 9), -EAGAIN);
	CHECK_EQ(vhk_vq_avail_count(-5, 0), -ENODEV);
	vhk_pkt_free(p);
	env_teardown(&e);
}

/* vhk_net_attach() installs the ops and adds the net feature offer. */
static void t_attach(void)
{
	char path[64];
	uint64_t f = 0, pf = 0;
	const uint64_t want_pf = F(VHK_PF_MQ) | F(VHK_PF_RARP) | F(VHK_PF_NET_MTU);

	snprintf(path, sizeof(path), "/tmp/vhk-net-attach-%d.sock", (int)getpid());
	CHECK_EQ(vhk_net_attach(path), -ENOENT);
	CHECK_EQ(vhk_net_attach(NULL), -EINVAL);
	CHECK_EQ(vhk_socket_register(path, 0), 0);
	CHECK_EQ(vhk_net_attach(path), 0);
	CHECK_EQ(vhk_socket_get_features(path, &f), 0);
	CHECK_EQ(f & VHK_NET_DEFAULT_FEATURES, VHK_NET_DEFAULT_FEATURES);
	CHECK_EQ(vhk_socket_get_protocol_features(path, &pf), 0);
	CHECK_EQ(pf & want_pf, want_pf);
	/* Attaching twice is harmless. */
	CHECK_EQ(vhk_net_attach(path), 0);
	CHECK_EQ(vhk_socket_unregister(path), 0);
}

TEST_MAIN(TEST(t_rx_sizes), TEST(t_rx_burst_and_full_ring), TEST(t_rx_no_fit),
	  TEST(t_rx_guest_errors), TEST(t_rx_offload), TEST(t_tx_sizes),
	  TEST(t_tx_offload_and_bad_headers), TEST(t_tx_pool_dry), TEST(t_tx_rarp),
	  TEST(t_not_ready), TEST(t_attach))
