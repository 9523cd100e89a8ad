/* SPDX-License-Identifier: MIT */
/*
 * Protocol tests, part 3: vring configuration. SET_VRING_NUM / ADDR / BASE,
 * GET_VRING_BASE (stops the ring, returns the base), KICK / CALL / ERR with
 * and without NOFD, and vring indices out of range in the full 32-bit field.
 * The socket offers 2 queue pairs, so vrings 0..3 exist and 4 does not.
 * The packed cases at the end cover what the handlers do differently for
 * VIRTIO_F_RING_PACKED (sizes, the 32-bit base, ring areas) and frontends
 * that switch the format under configured or running rings.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common.h"

#define NVRINGS 4
#define QSIZE 256

static const struct vhk_device_ops custom_ops = {.name = "it", .min_queues = 1};

struct fx {
	struct vuf *v;
	int vid;
	struct gmem *m;
	struct gvq *r;
};

/* Socket + negotiated frontend + guest memory and one ring; @mem sends the table. */
static void fx_open(struct fx *f, bool mem)
{
	struct be_cfg cfg = {.ops = &custom_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT, .pairs = NVRINGS / 2};
	f->v = fe_open(be_start(&cfg), IT_F_CUSTOM, IT_PF_DEFAULT);
	f->vid = ev_conn_vid();
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &f->m), 0);
	CHECK_EQ(gvq_new(f->m, QSIZE, BIT(VHK_F_EVENT_IDX), &f->r), 0);
	if (mem)
		CHECK_EQ(vuf_set_mem_table(f->v, f->m), 0);
}

static void fx_close(struct fx *f)
{
	vuf_close(f->v);
	gvq_free(f->r);
	gmem_free(f->m);
}

/* State of vring @q as the library reports it. */
static struct vhk_vq_info vinfo(const struct fx *f, uint16_t q)
{
	struct vhk_vq_info info;
	memset(&info, 0, sizeof(info));
	CHECK_EQ(vhk_vq_get_info(f->vid, q, &info), 0);
	return info;
}

/* SET_VRING_ADDR payload for @index pointing at @r. */
static struct vhost_user_vring_addr ring_addr(const struct fx *f, uint32_t index)
{
	struct vhost_user_vring_addr a = {
		.index = index,
		.desc_user_addr = gmem_qva(f->m, f->r->desc_gpa),
		.used_user_addr = gmem_qva(f->m, f->r->used_gpa),
		.avail_user_addr = gmem_qva(f->m, f->r->avail_gpa),
	};
	return a;
}

/* Ack'ed SET_VRING_{KICK,CALL,ERR} payload. */
static void vring_fd_ack(struct fx *f, uint32_t req, uint64_t val, int fd)
{
	fe_ack(f->v, req, &val, 8, &fd, fd >= 0 ? 1 : 0);
}

/* Start vring @q manually with base @base (like vuf_start_vring). */
static void start_ring(struct fx *f, uint32_t q, uint32_t base)
{
	CHECK_EQ(vuf_set_vring_state(f->v, VHOST_USER_SET_VRING_NUM, q, QSIZE), 0);
	CHECK_EQ(vuf_set_vring_state(f->v, VHOST_USER_SET_VRING_BASE, q, base), 0);
	CHECK_EQ(vuf_set_vring_addr(f->v, q, f->r), 0);
	CHECK_EQ(vuf_set_vring_fd(f->v, VHOST_USER_SET_VRING_KICK, q, f->r->kick_fd), 0);
	CHECK_EQ(vuf_set_vring_fd(f->v, VHOST_USER_SET_VRING_CALL, q, f->r->call_fd), 0);
	CHECK_EQ(vuf_set_vring_state(f->v, VHOST_USER_SET_VRING_ENABLE, q, 1), 0);
}

/* SET_VRING_NUM: 0, non powers of two and > 32768 are refused. */
static void t_vring_num(void)
{
	struct fx f;
	fx_open(&f, true);
	uint32_t bad[] = {0, 3, 100, 255, 65536, 65535, 0x80000000u, 0xffffffffu, 0x10100};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		fe_nack_state(f.v, VHOST_USER_SET_VRING_NUM, 0, bad[i]);
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_NUM, 0, 32768), 0);
	CHECK_EQ(vinfo(&f, 0).size, 32768);
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_NUM, 0, QSIZE), 0);
	CHECK_EQ(vinfo(&f, 0).size, QSIZE);
	/* Wrong payload size. */
	struct vhost_user_vring_state s = {.index = 0, .num = 64};
	fe_nack(f.v, VHOST_USER_SET_VRING_NUM, &s, 4, NULL, 0);
	fe_nack(f.v, VHOST_USER_SET_VRING_NUM, &s, 0, NULL, 0);
	CHECK_EQ(vinfo(&f, 0).size, QSIZE);
	/* A higher vring first: state is allocated without holes. */
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_NUM, 3, 64), 0);
	CHECK_EQ(vhk_dev_get_vq_count(f.vid), 4);
	CHECK_EQ(vinfo(&f, 3).size, 64);
	fx_close(&f);
}

/* SET_VRING_ADDR: needs a memory table, known flags only, exact size. */
static void t_vring_addr(void)
{
	struct fx f;
	fx_open(&f, true);
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_NUM, 0, QSIZE), 0);
	struct vhost_user_vring_addr a = ring_addr(&f, 0);
	uint32_t bad_flags[] = {2, 4, 0x80000000u, 0xffffffffu};
	for (unsigned i = 0; i < 4; i++) {
		a.flags = bad_flags[i];
		fe_nack(f.v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
	}
	a.flags = 0;
	fe_nack(f.v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a) - 1, NULL, 0);
	fe_nack(f.v, VHOST_USER_SET_VRING_ADDR, &a, 8, NULL, 0);
	fe_ack(f.v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
	/* Once started, the library's ring pointers alias the frontend's ring. */
	CHECK_EQ(vuf_set_vring_fd(f.v, VHOST_USER_SET_VRING_KICK, 0, f.r->kick_fd), 0);
	CHECK_EQ(vuf_set_vring_fd(f.v, VHOST_USER_SET_VRING_CALL, 0, f.r->call_fd), 0);
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, f.vid, -1, -1, 3000, NULL));
	struct vhk_vq_info info = vinfo(&f, 0);
	CHECK(info.started && info.enabled && !info.packed);
	CHECK(info.desc && info.avail && info.used);
	f.r->desc[5].len = 0x1234abcd;
	CHECK_EQ(((volatile struct vring_desc *)info.desc)[5].len, 0x1234abcd);
	f.r->avail->ring[7] = 0x77;
	CHECK_EQ(((volatile struct vring_avail *)info.avail)->ring[7], 0x77);
	fx_close(&f);
}

/* SET_VRING_ADDR before any memory table is refused (invariants.md E). */
static void t_vring_addr_no_mem(void)
{
	struct fx f;
	fx_open(&f, false);
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_NUM, 0, QSIZE), 0);
	struct vhost_user_vring_addr a = ring_addr(&f, 0);
	fe_nack(f.v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
	fx_close(&f);
}

/* SET_VRING_BASE refuses bits 16-31 (split); GET_VRING_BASE returns the base. */
static void t_vring_base(void)
{
	struct fx f;
	fx_open(&f, true);
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_NUM, 1, QSIZE), 0);
	uint32_t bad[] = {0x10000, 0x10007, 0x80000000u, 0xffff0000u, 0xffffffffu};
	for (unsigned i = 0; i < 5; i++)
		fe_nack_state(f.v, VHOST_USER_SET_VRING_BASE, 1, bad[i]);
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_BASE, 1, 7), 0);
	uint32_t base = 0;
	CHECK_EQ(vuf_get_vring_base(f.v, 1, &base), 0);
	CHECK_EQ(base, 7);
	fx_close(&f);
}

/* GET_VRING_BASE on a running ring stops it and returns where it stopped. */
static void t_get_vring_base_stops(void)
{
	struct fx f;
	fx_open(&f, true);
	/* The guest's ring is where a previous run left it: 7 entries consumed. */
	f.r->avail->idx = 7;
	f.r->used->idx = 7;
	gvq_set_base(f.r, 7);
	start_ring(&f, 0, 7);
	CHECK(ev_wait_match(EV_NEW_DEV, f.vid, -1, -1, 3000, NULL));
	struct vhk_vq_info info = vinfo(&f, 0);
	CHECK(info.started && info.enabled);
	CHECK_EQ(info.size, QSIZE);
	CHECK_EQ(info.last_avail_idx, 7);
	uint32_t base = 0;
	CHECK_EQ(vuf_get_vring_base(f.v, 0, &base), 0);
	CHECK_EQ(base, 7);
	CHECK(!vinfo(&f, 0).started);
	/*
	 * GET_VRING_BASE's num is reserved. DPDK virtio-user leaves stack garbage
	 * there, so the library must ignore it and answer normally.
	 */
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_BASE, 0, base), 0);
	CHECK_EQ(vuf_set_vring_fd(f.v, VHOST_USER_SET_VRING_KICK, 0, f.r->kick_fd), 0);
	CHECK(vinfo(&f, 0).started);
	struct vhost_user_vring_state s = {.index = 0, .num = 5};
	struct vhost_user_msg rep;
	CHECK_EQ(vuf_request(f.v, VHOST_USER_GET_VRING_BASE, &s, 8, NULL, 0, &rep), 0);
	CHECK_EQ(rep.hdr.size, 8);
	CHECK_EQ(rep.payload.state.index, 0);
	CHECK_EQ(rep.payload.state.num, 7);
	CHECK(!vinfo(&f, 0).started);
	fe_usable(f.v);
	fx_close(&f);
}

/* Changing the size of a started ring is refused; after a stop it is allowed. */
static void t_vring_resize_started(void)
{
	struct fx f;
	fx_open(&f, true);
	start_ring(&f, 0, 0);
	CHECK(ev_wait_match(EV_NEW_DEV, f.vid, -1, -1, 3000, NULL));
	fe_nack_state(f.v, VHOST_USER_SET_VRING_NUM, 0, QSIZE / 2);
	CHECK_EQ(vinfo(&f, 0).size, QSIZE);
	uint32_t base;
	CHECK_EQ(vuf_get_vring_base(f.v, 0, &base), 0);
	CHECK_EQ(base, 0);
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_NUM, 0, QSIZE / 2), 0);
	CHECK_EQ(vinfo(&f, 0).size, QSIZE / 2);
	fx_close(&f);
}

/* KICK / CALL / ERR for one request type: fd count must match the NOFD bit. */
static void vring_fd_cases(struct fx *f, uint32_t req)
{
	struct probe p1, p2;
	uint64_t val = 1;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(efd >= 0);
	vring_fd_ack(f, req, 1, efd);
	vring_fd_ack(f, req, 1 | VHOST_USER_VRING_NOFD_MASK, -1);
	/* NOFD with an fd, and no NOFD without one. */
	probe_new(&p1);
	val = 1 | VHOST_USER_VRING_NOFD_MASK;
	fe_nack(f->v, req, &val, 8, &p1.wr, 1);
	probe_sent(&p1);
	CHECK(probe_closed(&p1, 2000));
	probe_free(&p1);
	val = 1;
	fe_nack(f->v, req, &val, 8, NULL, 0);
	/* Two fds, or a short payload with one. */
	probe_new(&p1);
	probe_new(&p2);
	int two[2] = {p1.wr, p2.wr};
	fe_nack(f->v, req, &val, 8, two, 2);
	fe_nack(f->v, req, &val, 4, &p1.wr, 1);
	probe_sent(&p1);
	probe_sent(&p2);
	CHECK(probe_closed(&p1, 2000) && probe_closed(&p2, 2000));
	probe_free(&p1);
	probe_free(&p2);
	/* A replaced fd is closed by the library. */
	probe_new(&p1);
	vring_fd_ack(f, req, 1, p1.wr);
	probe_sent(&p1);
	CHECK(!probe_closed(&p1, 50));
	vring_fd_ack(f, req, 1, efd);
	CHECK(probe_closed(&p1, 2000));
	probe_free(&p1);
	close(efd);
}

/* SET_VRING_KICK / CALL / ERR with and without fds. */
static void t_vring_fds(void)
{
	struct fx f;
	fx_open(&f, true);
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_NUM, 1, QSIZE), 0);
	vring_fd_cases(&f, VHOST_USER_SET_VRING_KICK);
	vring_fd_cases(&f, VHOST_USER_SET_VRING_CALL);
	vring_fd_cases(&f, VHOST_USER_SET_VRING_ERR);
	/* The library reports the current fds: -1 after NOFD. */
	vring_fd_ack(&f, VHOST_USER_SET_VRING_CALL, 1 | VHOST_USER_VRING_NOFD_MASK, -1);
	CHECK_EQ(vinfo(&f, 1).call_fd, -1);
	vring_fd_ack(&f, VHOST_USER_SET_VRING_CALL, 1, f.r->call_fd);
	CHECK(vinfo(&f, 1).call_fd >= 0);
	vring_fd_ack(&f, VHOST_USER_SET_VRING_KICK, 1 | VHOST_USER_VRING_NOFD_MASK, -1);
	CHECK_EQ(vinfo(&f, 1).kick_fd, -1);
	fx_close(&f);
}

/* Out-of-range vring indices, including values >= 256 in the 32-bit field. */
static void t_vring_index_range(void)
{
	static const uint32_t bad[] = {NVRINGS,     255,         256,        0x100 | 1,
				       0x10000,     0x80000000u, 0xffffffffu};
	struct fx f;
	fx_open(&f, true);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fe_nack_state(f.v, VHOST_USER_SET_VRING_NUM, bad[i], QSIZE);
		fe_nack_state(f.v, VHOST_USER_SET_VRING_BASE, bad[i], 0);
		fe_nack_state(f.v, VHOST_USER_SET_VRING_ENABLE, bad[i], 1);
		struct vhost_user_vring_addr a = ring_addr(&f, bad[i]);
		fe_nack(f.v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
	}
	/* KICK/CALL/ERR carry an 8-bit index: NVRINGS..255 do not exist. */
	uint32_t fd_reqs[] = {VHOST_USER_SET_VRING_KICK, VHOST_USER_SET_VRING_CALL,
			      VHOST_USER_SET_VRING_ERR};
	for (unsigned i = 0; i < 3; i++) {
		uint64_t idx[] = {NVRINGS, 255};
		for (unsigned k = 0; k < 2; k++) {
			struct probe p;
			probe_new(&p);
			fe_nack(f.v, fd_reqs[i], &idx[k], 8, &p.wr, 1);
			probe_sent(&p);
			CHECK(probe_closed(&p, 2000));
			probe_free(&p);
			uint64_t nofd = idx[k] | VHOST_USER_VRING_NOFD_MASK;
			fe_nack(f.v, fd_reqs[i], &nofd, 8, NULL, 0);
		}
	}
	CHECK(vhk_dev_get_vq_count(f.vid) <= NVRINGS);
	struct vhk_vq_info info;
	int rc = vhk_vq_get_info(f.vid, NVRINGS, &info);
	CHECK(rc == -EINVAL || (rc == 0 && info.size == 0)); /* never configured */
	CHECK_EQ(vhk_vq_get_info(f.vid, 0xffff, &info), -EINVAL);
	/* The last valid index works. */
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_NUM, NVRINGS - 1, QSIZE), 0);
	CHECK_EQ(vinfo(&f, NVRINGS - 1).size, QSIZE);
	/* GET_VRING_BASE out of range: refused (NACK or close), never answered as valid. */
	struct vhost_user_vring_state s = {.index = 0x100, .num = 0};
	CHECK_EQ(vuf_send(f.v, VHOST_USER_GET_VRING_BASE,
			  VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, &s, 8, NULL, 0), 0);
	if (fe_rejected(f.v, VHOST_USER_GET_VRING_BASE) != REJ_CLOSED) {
		s.index = NVRINGS;
		CHECK_EQ(vuf_send(f.v, VHOST_USER_GET_VRING_BASE,
				  VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, &s, 8, NULL, 0), 0);
		fe_rejected(f.v, VHOST_USER_GET_VRING_BASE);
	}
	fx_close(&f);
}

/* ---- packed layout (VIRTIO_F_RING_PACKED): what the message handlers do differently ---- */

#define F_PACKED (IT_F_CUSTOM | BIT(VHK_F_RING_PACKED))
#define PK_FRESH 0x80008000u /* avail 0 and used 0, both wrap counters 1 */

/* A socket offering packed; a frontend that negotiated @want (REPLY_ACK on); memory sent. */
static struct vuf *pk_open(uint64_t want, struct gmem **ret_m, int *ret_vid)
{
	struct be_cfg cfg = {.ops = &custom_ops, .features = F_PACKED,
			     .protocol_features = IT_PF_DEFAULT, .pairs = NVRINGS / 2};
	struct vuf *v = fe_open(be_start(&cfg), want, IT_PF_DEFAULT);
	CHECK_EQ(v->features, want);
	CHECK(v->protocol_features & BIT(VHK_PF_REPLY_ACK));
	*ret_vid = ev_conn_vid();
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, ret_m), 0);
	CHECK_EQ(vuf_set_mem_table(v, *ret_m), 0);
	return v;
}

/* vring @q's state as the library reports it. */
static struct vhk_vq_info pk_info(int vid, uint16_t q)
{
	struct vhk_vq_info info;
	memset(&info, 0, sizeof(info));
	CHECK_EQ(vhk_vq_get_info(vid, q, &info), 0);
	return info;
}

/* NUM @num, BASE @base and ADDR of ring @r (either format) for vring @q: all acked. */
static void pk_config(struct vuf *v, uint32_t q, uint32_t num, uint32_t base, const struct gvq *r)
{
	CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_NUM, q, num), 0);
	CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_BASE, q, base), 0);
	CHECK_EQ(vuf_set_vring_addr(v, q, r), 0);
}

/* KICK + CALL + ENABLE for vring @q; KICK and ENABLE may be refused when it cannot start. */
static void pk_kick(struct vuf *v, uint32_t q, int kick_fd, int call_fd)
{
	int rc = vuf_set_vring_fd(v, VHOST_USER_SET_VRING_KICK, q, kick_fd);
	CHECK(rc == 0 || rc == -EPROTO);
	CHECK_EQ(vuf_set_vring_fd(v, VHOST_USER_SET_VRING_CALL, q, call_fd), 0);
	rc = vuf_set_vring_state(v, VHOST_USER_SET_VRING_ENABLE, q, 1);
	CHECK(rc == 0 || rc == -EPROTO);
	fe_usable(v);
}

/*
 * Packed: SET_VRING_NUM takes any size up to 32768 (split: powers of two);
 * SET_VRING_BASE takes the used half in bits 16-31 (split refuses it) and
 * GET_VRING_BASE returns all 32 bits, stopped or after a run.
 */
static void t_vring_packed_num_base(void)
{
	struct gmem *m;
	int vid;
	struct vuf *v = pk_open(F_PACKED, &m, &vid);
	uint32_t bad[] = {0, 32769, 65535, 65536, 0x80000000u, 0xffffffffu};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		fe_nack_state(v, VHOST_USER_SET_VRING_NUM, 0, bad[i]);
	uint32_t good[] = {1, 3, 37, 255, 32767, 32768, 37};
	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_NUM, 0, good[i]), 0);
		CHECK_EQ(pk_info(vid, 0).size, good[i]);
	}
	/* Stopped ring: the base comes back as sent, all 32 bits. */
	uint32_t base = 0, b1 = 0x80058003u; /* avail 3 wrap 1, used 5 wrap 1 */
	CHECK_EQ(vuf_set_vring_state(v, VHOST_USER_SET_VRING_BASE, 1, b1), 0);
	CHECK_EQ(vuf_get_vring_base(v, 1, &base), 0);
	CHECK_EQ(base, b1);
	/*
	 * Started mid-ring with 2 buffers in flight (used 1 wrap 0, avail 3 wrap 0):
	 * GET_VRING_BASE stops it and reports the same positions.
	 */
	struct gvq *r;
	CHECK_EQ(gvq_new(m, 37, BIT(VHK_F_RING_PACKED) | BIT(VHK_F_EVENT_IDX), &r), 0);
	uint32_t b0 = 3u | 1u << 16;
	CHECK_EQ(vuf_start_vring_base(v, 0, r, b0), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	struct vhk_vq_info info = pk_info(vid, 0);
	CHECK(info.started && info.packed && !info.broken);
	CHECK_EQ(info.size, 37);
	CHECK_EQ(info.last_avail_idx, 3);
	/* The library's pointers alias the driver's ring and event areas. */
	CHECK(info.desc && info.avail && info.used);
	r->pdesc[5].len = 0x1234abcd;
	CHECK_EQ(((volatile struct vring_packed_desc *)info.desc)[5].len, 0x1234abcd);
	r->drv->off_wrap = 0x4321;
	CHECK_EQ(((volatile struct vring_packed_desc_event *)info.avail)->off_wrap, 0x4321);
	CHECK_EQ((uintptr_t)info.used - (uintptr_t)info.avail,
		 (uintptr_t)r->dev - (uintptr_t)r->drv);
	CHECK_EQ(vuf_get_vring_base(v, 0, &base), 0);
	CHECK_EQ(base, b0);
	CHECK(!pk_info(vid, 0).started);
	/* A fresh restart: the default base. */
	CHECK_EQ(vuf_start_vring_base(v, 0, r, PK_FRESH), 0);
	CHECK(pk_info(vid, 0).started);
	CHECK_EQ(vuf_get_vring_base(v, 0, &base), 0);
	CHECK_EQ(base, PK_FRESH);
	vuf_close(v);
	gvq_free(r);
	gmem_free(m);
}

/*
 * A frontend that configures rings in one format and then switches
 * RING_PACKED with SET_FEATURES: state that is valid only for the old format
 * (a size that is no power of two, a used half in the base, a split index
 * past the ring size) never starts a ring in the new one; a configuration
 * valid for the new format does.
 */
static void t_vring_format_flip(void)
{
	struct gmem *m;
	int vid;
	uint32_t base;
	struct gvq *p37, *p64, *g64;
	/* Packed, then split. */
	struct vuf *v = pk_open(F_PACKED, &m, &vid);
	CHECK_EQ(gvq_new(m, 37, BIT(VHK_F_RING_PACKED) | BIT(VHK_F_EVENT_IDX), &p37), 0);
	CHECK_EQ(gvq_new(m, 64, BIT(VHK_F_RING_PACKED) | BIT(VHK_F_EVENT_IDX), &p64), 0);
	CHECK_EQ(gvq_new(m, 64, BIT(VHK_F_EVENT_IDX), &g64), 0);
	pk_config(v, 0, 37, PK_FRESH, p37);	 /* size: packed only */
	pk_config(v, 1, 64, 3u | 3u << 16, p64); /* upper half: packed only */
	fe_ack(v, VHOST_USER_SET_FEATURES, &(uint64_t){IT_F_CUSTOM}, 8, NULL, 0);
	v->features = IT_F_CUSTOM;
	pk_kick(v, 0, p37->kick_fd, p37->call_fd);
	pk_kick(v, 1, p64->kick_fd, p64->call_fd);
	msleep(50);
	for (uint16_t q = 0; q < 2; q++)
		CHECK(!pk_info(vid, q).started || pk_info(vid, q).broken);
	CHECK(!ev_find(EV_NEW_DEV, vid, -1, -1, NULL));
	/* Stop (the base comes back as sent), reconfigure for split: it starts. */
	CHECK_EQ(vuf_get_vring_base(v, 0, &base), 0);
	CHECK_EQ(base, PK_FRESH);
	pk_config(v, 0, 64, 0, g64);
	pk_kick(v, 0, g64->kick_fd, g64->call_fd);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	struct vhk_vq_info info = pk_info(vid, 0);
	CHECK(info.started && !info.packed && !info.broken);
	vuf_close(v);
	CHECK(ev_wait(EV_DESTROY_CONN, 1, 3000));
	be_stop();
	gmem_free(m);

	/* Split, then packed: a valid split base (a free-running index past the size). */
	v = pk_open(IT_F_CUSTOM, &m, &vid);
	struct gvq *g256, *p256;
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_EVENT_IDX), &g256), 0);
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_RING_PACKED) | BIT(VHK_F_EVENT_IDX), &p256), 0);
	pk_config(v, 0, 256, 300, g256);
	fe_ack(v, VHOST_USER_SET_FEATURES, &(uint64_t){F_PACKED}, 8, NULL, 0);
	v->features = F_PACKED;
	pk_kick(v, 0, g256->kick_fd, g256->call_fd);
	msleep(50);
	CHECK(!pk_info(vid, 0).started || pk_info(vid, 0).broken);
	CHECK(!ev_find(EV_NEW_DEV, vid, -1, -1, NULL));
	/* Stop, reconfigure for packed: it starts. */
	CHECK_EQ(vuf_get_vring_base(v, 0, &base), 0);
	CHECK_EQ(base, 300); /* never started: the base as sent */
	CHECK_EQ(vuf_start_vring_base(v, 0, p256, PK_FRESH), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	info = pk_info(vid, 0);
	CHECK(info.started && info.packed && !info.broken);
	CHECK_EQ(vuf_get_vring_base(v, 0, &base), 0);
	CHECK_EQ(base, PK_FRESH);
	vuf_close(v);
	gvq_free(g256);
	gvq_free(p256);
	gvq_free(p37);
	gvq_free(p64);
	gvq_free(g64);
	gmem_free(m);
}

/*
 * SET_FEATURES switching RING_PACKED under a running split ring is refused
 * (the ring, the negotiated features and the device stay as they were, the
 * connection keeps answering); after GET_VRING_BASE the switch is taken and
 * the ring restarts packed.
 */
static void t_vring_format_flip_running(void)
{
	struct gmem *m;
	int vid;
	uint32_t base;
	struct gvq *g, *p;
	struct vuf *v = pk_open(IT_F_CUSTOM, &m, &vid);
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_EVENT_IDX), &g), 0);
	CHECK_EQ(gvq_new(m, 256, BIT(VHK_F_RING_PACKED) | BIT(VHK_F_EVENT_IDX), &p), 0);
	CHECK_EQ(vuf_start_vring(v, 0, g), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, vid, -1, -1, 3000, NULL));
	CHECK(pk_info(vid, 0).started && !pk_info(vid, 0).packed);
	uint64_t f = F_PACKED;
	/* Refused while the split ring runs; the ring and device stay as they were. */
	unsigned devs = ev_count(EV_NEW_DEV);
	int rc = vuf_request(v, VHOST_USER_SET_FEATURES, &f, 8, NULL, 0, NULL);
	CHECK_EQ(rc, -EPROTO);
	fe_usable(v);
	struct vhk_vq_info info = pk_info(vid, 0);
	CHECK(info.started && !info.packed && !info.broken);
	uint64_t neg = 0;
	CHECK_EQ(vhk_dev_get_features(vid, &neg), 0);
	CHECK(!(neg & BIT(VHK_F_RING_PACKED)));
	CHECK_EQ(ev_count(EV_NEW_DEV), devs);
	CHECK_EQ(vuf_get_vring_base(v, 0, &base), 0);
	CHECK_EQ(base, 0); /* split encoding: nothing was consumed */
	CHECK(!pk_info(vid, 0).started);
	/* Once stopped, the switch is taken and the ring comes back packed. */
	CHECK_EQ(vuf_request(v, VHOST_USER_SET_FEATURES, &f, 8, NULL, 0, NULL), 0);
	v->features = F_PACKED;
	CHECK_EQ(vuf_start_vring_base(v, 0, p, PK_FRESH), 0);
	info = pk_info(vid, 0);
	CHECK(info.started && !info.broken);
	CHECK(info.packed);
	vuf_close(v);
	gvq_free(g);
	gvq_free(p);
	gmem_free(m);
}

TEST_MAIN(TEST(t_vring_num), TEST(t_vring_addr), TEST(t_vring_addr_no_mem),
	  TEST(t_vring_base), TEST(t_get_vring_base_stops),
	  TEST(t_vring_resize_started), TEST(t_vring_fds), TEST(t_vring_index_range),
	  TEST(t_vring_packed_num_base), TEST(t_vring_format_flip),
	  TEST(t_vring_format_flip_running))
