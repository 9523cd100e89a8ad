/* SPDX-License-Identifier: MIT */
/*
 * INFLIGHT_SHMFD over the wire, the frontend (vuf) acting like QEMU: a
 * device on the element API (vhostkit/vhk_vq.h) opts in; the frontend asks
 * for the region once (GET_INFLIGHT_FD), keeps the fd, hands it over
 * (SET_INFLIGHT_FD) before the rings start, and again to the backend it
 * reconnects to after the device was torn down with requests popped,
 * some completed out of order and one completed but not published: exactly
 * the unfinished requests come back through vhk_vq_pop, in pop order,
 * before the new ones, whatever base the frontend sends (split: used->idx,
 * QEMU's fallback; packed: a stale one). The teardown is a disconnect, or
 * the socket unregistered and registered again (nothing of the library's
 * state survives, only the region the frontend kept).
 *
 * Hostile messages (sizes, counts, fds, offsets, a file too short or not
 * sealed, a ring started) are refused with the connection usable and no fd
 * leaked; a hostile region refuses only the rings it covers.
 * One binary, run per ring format (--split / --packed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "gvq.h"
#include "vq/vq_inflight.h"

#define RING 16
#define REGION (1u << 20)
#define PACKED_FRESH 0x80008000u
#define PF_INFLIGHT BIT(VHK_PF_INFLIGHT_SHMFD)
#define REQ_OUT 16
#define REQ_IN 32

#define packed gvq_run_packed /* the run's ring format (GVQ_TEST_MAIN) */
static const struct vhk_device_ops ops = {.name = "it-inflight", .min_queues = 1};

struct env {
	const char *path;
	uint64_t f;
	struct vuf *v;
	struct gmem *m;
	struct gvq *q[2];
	int err_fd[2];
	int vid;
	unsigned conns;  /* EV_NEW_CONN seen so far */
	int ifd;         /* the region's fd, kept by the frontend */
	uint64_t isize;
	struct gbuf in[256]; /* writable buffer of each request, by tag */
};

static const char *backend(uint64_t f, uint64_t pf)
{
	struct be_cfg cfg = {.ops = &ops, .features = f, .protocol_features = pf, .pairs = 1};
	return be_start(&cfg);
}

/* GET_INFLIGHT_FD: the reply and its fd (-1 if none). 0, or -errno of the exchange. */
static int get_inflight(struct vuf *v, const void *payload, uint32_t size,
			struct vhost_user_msg *reply, int *ret_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} cm;
	size_t got = 0, want = sizeof(reply->hdr);
	int rc = vuf_send(v, VHOST_USER_GET_INFLIGHT_FD, VHOST_USER_VERSION, payload, size, NULL, 0);

	*ret_fd = -1;
	if (rc < 0)
		return rc;
	memset(reply, 0, sizeof(*reply));
	while (got < want) {
		struct iovec iov = {(char *)reply + got, want - got};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
				    .msg_controllen = sizeof(cm.buf)};
		ssize_t r = recvmsg(v->fd, &mh, MSG_CMSG_CLOEXEC);
		if (r <= 0)
			return r == 0 ? -ECONNRESET : -errno;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < n; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (*ret_fd < 0)
					*ret_fd = fd;
				else
					close(fd);
			}
		}
		got += (size_t)r;
		if (got == sizeof(reply->hdr))
			want += reply->hdr.size <= VHOST_USER_MAX_PAYLOAD ? reply->hdr.size : 0;
	}
	CHECK_EQ(reply->hdr.request, VHOST_USER_GET_INFLIGHT_FD);
	CHECK(reply->hdr.flags & VHOST_USER_REPLY_MASK);
	return 0;
}

static void set_inflight(struct vuf *v, int fd, uint64_t size, uint64_t offset, uint16_t nq,
			 uint16_t qs)
{
	struct vhost_user_inflight in = {.mmap_size = size, .mmap_offset = offset,
					 .num_queues = nq, .queue_size = qs};
	fe_ack(v, VHOST_USER_SET_INFLIGHT_FD, &in, sizeof(in), &fd, 1);
}

/*
 * SET_VRING_BASE for a ring (re)started after a backend crash, as QEMU
 * sends it: split the used index; packed the stale fresh value.
 */
static uint32_t crash_base(const struct gvq *q)
{
	return packed ? PACKED_FRESH : gvq_used_idx(q);
}

/* A new connection to e->path, negotiated; its vid. */
static void connect_fe(struct env *e)
{
	e->v = fe_open(e->path, e->f, IT_PF_DEFAULT | PF_INFLIGHT);
	CHECK_EQ(e->v->features, e->f);
	CHECK(e->v->protocol_features & PF_INFLIGHT);
	e->conns++;
	CHECK(ev_wait(EV_NEW_CONN, e->conns, 3000));
	struct ev ev;
	CHECK(ev_find(EV_NEW_CONN, -1, -1, -1, &ev));
	e->vid = ev.vid;
}

/*
 * Memory table and both rings, like QEMU's vhost_dev_start after the
 * inflight messages. @fresh: rings never started (split base 0, packed
 * fresh); else the base QEMU sends after a backend crash (split: used->idx;
 * packed: its stale fresh value).
 */
static void rings_up(struct env *e, bool fresh)
{
	CHECK_EQ(vuf_set_mem_table(e->v, e->m), 0);
	for (uint32_t q = 0; q < 2; q++) {
		CHECK_EQ(vuf_set_vring_fd(e->v, VHOST_USER_SET_VRING_ERR, q, e->err_fd[q]), 0);
		if (fresh)
			CHECK_EQ(vuf_start_vring(e->v, q, e->q[q]), 0);
		else
			CHECK_EQ(vuf_start_vring_base(e->v, q, e->q[q], crash_base(e->q[q])), 0);
	}
	CHECK(ev_wait_match(EV_NEW_DEV, e->vid, -1, -1, 3000, NULL));
	CHECK(ev_wait_match(EV_VRING_STATE, e->vid, 1, 1, 3000, NULL));
}

static void env_up(struct env *e)
{
	memset(e, 0, sizeof(*e));
	e->f = IT_F_CUSTOM | (packed ? BIT(VHK_F_RING_PACKED) : 0);
	e->path = backend(e->f, IT_PF_DEFAULT | PF_INFLIGHT);
	CHECK_EQ(gmem_new(2, REGION, 0, 0, &e->m), 0);
	for (int q = 0; q < 2; q++) {
		e->err_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		CHECK(e->err_fd[q] >= 0);
		CHECK_EQ(gvq_new(e->m, RING, e->f, &e->q[q]), 0);
	}
	connect_fe(e);
	struct vhost_user_inflight in = {.num_queues = 2, .queue_size = RING};
	struct vhost_user_msg rep;
	CHECK_EQ(get_inflight(e->v, &in, sizeof(in), &rep, &e->ifd), 0);
	CHECK_EQ(rep.hdr.size, sizeof(struct vhost_user_inflight));
	CHECK(e->ifd >= 0);
	e->isize = rep.payload.inflight.mmap_size;
	set_inflight(e->v, e->ifd, e->isize, 0, 2, RING);
	rings_up(e, true);
}

static void env_down(struct env *e)
{
	if (e->v)
		vuf_close(e->v);
	for (int q = 0; q < 2; q++) {
		gvq_free(e->q[q]);
		close(e->err_fd[q]);
	}
	close(e->ifd);
	gmem_free(e->m);
}

/* Post request @tag on queue @q: 16 readable bytes starting with the tag, 32 writable. */
static void post(struct env *e, int q, uint8_t tag)
{
	struct gbuf out = {gmem_alloc(e->m, REQ_OUT, 8), REQ_OUT};
	struct gbuf in = {gmem_alloc(e->m, REQ_IN, 8), REQ_IN};
	uint8_t hdr[REQ_OUT];
	int id;

	CHECK(out.gpa && in.gpa);
	memset(hdr, tag, sizeof(hdr));
	CHECK_EQ(gmem_write(e->m, out.gpa, hdr, sizeof(hdr)), 0);
	e->in[tag] = in;
	id = gvq_post(e->q[q], &out, 1, &in, 1, false, (void *)(uintptr_t)(tag + 1u));
	CHECK(id >= 0);
}

struct req {
	uint16_t id;
	uint8_t tag;
};

/* vhk_vq_pop on queue @q: the request's tag (checked in every readable byte), -1 if none. */
static int pop(struct env *e, int q, struct req *rq)
{
	struct iovec iov[4];
	struct vhk_vq_elem el = {.iov = iov, .iov_max = 4};
	int rc = vhk_vq_pop(e->vid, (uint16_t)q, &el);

	if (rc == -ENOENT)
		return -1;
	CHECK_EQ(rc, 0);
	CHECK_EQ(el.out_num, 1);
	CHECK_EQ(el.in_num, 1);
	CHECK_EQ(el.out_len, REQ_OUT);
	CHECK_EQ(el.in_len, REQ_IN);
	const uint8_t *p = iov[0].iov_base;
	for (int i = 1; i < REQ_OUT; i++)
		CHECK_EQ(p[i], p[0]);
	rq->id = el.id;
	rq->tag = p[0];
	memset(iov[1].iov_base, 0xa0 + rq->tag, REQ_IN);
	return rq->tag;
}

/* Complete @rq with its whole response (the writable buffer was filled by pop()). */
static void complete(struct env *e, int q, const struct req *rq)
{
	CHECK_EQ(vhk_vq_push(e->vid, (uint16_t)q, rq->id, REQ_IN), 0);
}

/* The guest's next completion on queue @q: its tag, -1 if none; the response checked. */
static int used(struct env *e, int q)
{
	void *tok = NULL;
	uint32_t len = 0;
	int rc = gvq_get_used(e->q[q], &tok, &len);
	uint8_t resp[REQ_IN];

	if (rc == 0)
		return -1;
	CHECK_EQ(rc, 1);
	CHECK_EQ(len, REQ_IN);
	int tag = (int)(uintptr_t)tok - 1;
	CHECK_EQ(gmem_read(e->m, e->in[tag].gpa, resp, REQ_IN), 0);
	for (int i = 0; i < REQ_IN; i++)
		CHECK_EQ(resp[i], 0xa0 + tag);
	return tag;
}

/*
 * Six requests on queue 0, two on queue 1, all popped; on queue 0 the
 * fifth and second complete (published), the sixth completes but is not
 * published; the device goes away. After the restart: tags 0, 2, 3, 5 and
 * queue 1's tag 11, then the new ones; every request seen once by the
 * guest.
 */
static void restart_case(bool unregister)
{
	struct env e;
	struct req rq[8];
	int seen[256] = {0};

	env_up(&e);
	for (uint8_t t = 0; t < 6; t++)
		post(&e, 0, t);
	post(&e, 1, 10);
	post(&e, 1, 11);
	for (int i = 0; i < 6; i++)
		CHECK_EQ(pop(&e, 0, &rq[i]), i);
	CHECK_EQ(pop(&e, 1, &rq[6]), 10);
	CHECK_EQ(pop(&e, 1, &rq[7]), 11);
	complete(&e, 0, &rq[4]);
	complete(&e, 0, &rq[1]);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 2);
	complete(&e, 0, &rq[5]); /* never flushed */
	complete(&e, 1, &rq[6]);
	CHECK_EQ(vhk_vq_flush(e.vid, 1), 1);
	CHECK_EQ(used(&e, 0), 4);
	CHECK_EQ(used(&e, 0), 1);
	CHECK_EQ(used(&e, 1), 10);
	seen[4] = seen[1] = seen[10] = 1;

	/* The backend goes away; the frontend keeps the region's fd. */
	vuf_close(e.v);
	e.v = NULL;
	CHECK(ev_wait(EV_DESTROY_CONN, e.conns, 3000));
	if (unregister) {
		be_stop();
		e.path = backend(e.f, IT_PF_DEFAULT | PF_INFLIGHT);
	}
	post(&e, 0, 20);
	post(&e, 0, 21);
	connect_fe(&e);
	set_inflight(e.v, e.ifd, e.isize, 0, 2, RING); /* no GET: the frontend kept it */
	rings_up(&e, false);
	CHECK_EQ(vhk_vq_avail_count(e.vid, 0), 6);
	static const int want0[] = {0, 2, 3, 5, 20, 21};
	struct req r2[8];
	for (int i = 0; i < 6; i++)
		CHECK_EQ(pop(&e, 0, &r2[i]), want0[i]);
	CHECK_EQ(pop(&e, 0, &r2[6]), -1);
	CHECK_EQ(pop(&e, 1, &r2[7]), 11);
	CHECK_EQ(pop(&e, 1, &r2[7]), -1);
	for (int i = 5; i >= 0; i--)
		complete(&e, 0, &r2[i]);
	complete(&e, 1, &r2[7]);
	CHECK_EQ(vhk_vq_flush(e.vid, 0), 6);
	CHECK_EQ(vhk_vq_flush(e.vid, 1), 1);
	for (int q = 0; q < 2; q++) {
		int t;
		while ((t = used(&e, q)) >= 0) {
			CHECK_EQ(seen[t], 0);
			seen[t] = 1;
		}
	}
	static const int all[] = {0, 1, 2, 3, 4, 5, 10, 11, 20, 21};
	for (unsigned i = 0; i < (sizeof(all) / sizeof(all[0])); i++)
		CHECK_EQ(seen[all[i]], 1);
	env_down(&e);
}

static void t_restart_after_disconnect(void)
{
	restart_case(false);
}

static void t_restart_after_unregister(void)
{
	restart_case(true);
}

/* The region as created: size, seals, zeroed; queue 0 initialised once its ring started. */
static void t_get_inflight_fd(void)
{
	struct env e;
	struct stat st;

	env_up(&e);
	CHECK_EQ(e.isize, 2 * vq_ifl_queue_size(RING, packed));
	CHECK_EQ(fstat(e.ifd, &st), 0);
	CHECK_EQ((uint64_t)st.st_size, e.isize);
	CHECK_EQ(fcntl(e.ifd, F_GET_SEALS), F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
	uint8_t *p = mmap(NULL, e.isize, PROT_READ, MAP_SHARED, e.ifd, 0);
	CHECK(p != MAP_FAILED);
	CHECK_EQ(*(const uint16_t *)(p + 8), 1); /* version, written at ring start */
	CHECK_EQ(*(const uint16_t *)(p + 10), RING);
	munmap(p, e.isize);
	env_down(&e);
}

/* GET_INFLIGHT_FD must fail: an empty reply, no fd, connection usable. */
static void get_refused(struct vuf *v, const void *payload, uint32_t size)
{
	struct vhost_user_msg rep;
	int fd;

	CHECK_EQ(get_inflight(v, payload, size, &rep, &fd), 0);
	CHECK_EQ(rep.hdr.size, 0);
	CHECK_EQ(fd, -1);
	fe_usable(v);
}

static int memfd_sealed(uint64_t size, unsigned seals)
{
	int fd = memfd_create("it-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, (off_t)size), 0);
	if (seals)
		CHECK_EQ(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static void set_refused(struct vuf *v, int fd, uint64_t size, uint64_t off, uint16_t nq,
			uint16_t qs)
{
	struct vhost_user_inflight in = {.mmap_size = size, .mmap_offset = off,
					 .num_queues = nq, .queue_size = qs};
	fe_nack(v, VHOST_USER_SET_INFLIGHT_FD, &in, sizeof(in), &fd, fd >= 0 ? 1 : 0);
}

/* Every field of both messages checked; refusals leave the connection usable and close every fd. */
static void t_hostile_messages(void)
{
	uint64_t f = IT_F_CUSTOM | (packed ? BIT(VHK_F_RING_PACKED) : 0);
	const char *path = backend(f, IT_PF_DEFAULT | PF_INFLIGHT);
	struct vuf *v = fe_open(path, f, IT_PF_DEFAULT | PF_INFLIGHT);
	uint64_t q = vq_ifl_queue_size(RING, packed), big = vq_ifl_queue_size(VQ_MAX_SIZE, packed);
	int before = proc_fd_count();

	struct vhost_user_inflight g = {.num_queues = 2, .queue_size = RING};
	get_refused(v, &g, 20); /* the 20-byte packed form: wrong size */
	g.num_queues = 0;
	get_refused(v, &g, sizeof(g));
	g.num_queues = 3; /* the socket has 2 queues */
	get_refused(v, &g, sizeof(g));
	g.num_queues = 0xffff;
	get_refused(v, &g, sizeof(g));
	g.num_queues = 2;
	g.queue_size = 0;
	get_refused(v, &g, sizeof(g));
	g.queue_size = VQ_MAX_SIZE + 1;
	get_refused(v, &g, sizeof(g));
	g.queue_size = 0xffff;
	get_refused(v, &g, sizeof(g));
	/* With an fd attached: refused by the dispatcher, the fd closed. */
	struct probe p;
	probe_new(&p);
	g.queue_size = RING;
	CHECK_EQ(vuf_send(v, VHOST_USER_GET_INFLIGHT_FD, VHOST_USER_VERSION, &g, sizeof(g), &p.wr,
			  1), 0);
	probe_sent(&p);
	struct vhost_user_msg rep;
	CHECK_EQ(vuf_recv(v, &rep, 3000), 0);
	CHECK_EQ(rep.hdr.size, 0);
	CHECK(probe_closed(&p, 2000));
	probe_free(&p);

	/* SET_INFLIGHT_FD: fd count, counts, sizes, offsets, the file and its seals. */
	int ok = memfd_sealed(2 * q, F_SEAL_GROW | F_SEAL_SHRINK);
	struct vhost_user_inflight s = {.mmap_size = 2 * q, .num_queues = 2, .queue_size = RING};
	fe_nack(v, VHOST_USER_SET_INFLIGHT_FD, &s, sizeof(s), NULL, 0);
	int two[2] = {ok, ok};
	fe_nack(v, VHOST_USER_SET_INFLIGHT_FD, &s, sizeof(s), two, 2);
	fe_nack(v, VHOST_USER_SET_INFLIGHT_FD, &s, 20, &ok, 1);
	set_refused(v, ok, 2 * q, 0, 0, RING);
	set_refused(v, ok, 2 * q, 0, 3, RING);
	set_refused(v, ok, 2 * q, 0, 2, 0);
	set_refused(v, ok, 2 * q, 0, 2, VQ_MAX_SIZE + 1);
	set_refused(v, ok, 2 * q - 1, 0, 2, RING);        /* mmap_size below the queues' regions */
	set_refused(v, ok, 2 * big, 0, 2, VQ_MAX_SIZE);   /* the file is smaller than that */
	set_refused(v, ok, 2 * q, 4096, 2, RING);         /* offset + size past the end of the file */
	set_refused(v, ok, 2 * q, UINT64_MAX - 100, 2, RING); /* offset + size wraps */
	set_refused(v, ok, UINT64_MAX, 0, 2, RING);
	int loose = memfd_sealed(2 * q, 0);                 /* could shrink under the datapath */
	set_refused(v, loose, 2 * q, 0, 2, RING);
	int grow_only = memfd_sealed(2 * q, F_SEAL_GROW);
	set_refused(v, grow_only, 2 * q, 0, 2, RING);
	probe_new(&p);                                      /* not a file at all */
	set_refused(v, p.wr, 2 * q, 0, 2, RING);
	probe_sent(&p);
	CHECK(probe_closed(&p, 2000));
	probe_free(&p);
	/* The good one is accepted, at an offset too. */
	set_inflight(v, ok, 2 * q, 0, 2, RING);
	int off = memfd_sealed(8192 + 2 * q, F_SEAL_SHRINK);
	set_inflight(v, off, 2 * q, 8192, 2, RING);
	/* Without the feature negotiated: refused. */
	struct vuf *w = fe_open(path, f, IT_PF_DEFAULT);
	CHECK(!(w->protocol_features & PF_INFLIGHT));
	g.queue_size = RING;
	get_refused(w, &g, sizeof(g));
	fe_nack(w, VHOST_USER_SET_INFLIGHT_FD, &s, sizeof(s), &ok, 1);
	vuf_close(w);
	close(ok);
	close(loose);
	close(grow_only);
	close(off);
	fe_usable(v);
	CHECK(proc_fd_settle(before, 2000) <= before);
	vuf_close(v);
	be_stop();
}

/* A region is never replaced under a started ring. */
static void t_busy_while_started(void)
{
	struct env e;
	env_up(&e);
	struct vhost_user_inflight g = {.num_queues = 2, .queue_size = RING};
	get_refused(e.v, &g, sizeof(g));
	set_refused(e.v, e.ifd, e.isize, 0, 2, RING);
	/* Both rings stopped: allowed again. */
	uint32_t base;
	CHECK_EQ(vuf_get_vring_base(e.v, 0, &base), 0);
	CHECK_EQ(vuf_get_vring_base(e.v, 1, &base), 0);
	set_inflight(e.v, e.ifd, e.isize, 0, 2, RING);
	env_down(&e);
}

/*
 * A region whose queue 0 holds garbage (version 3): ring 0 is refused at
 * start (broken, its err fd signalled, no request served); ring 1, whose
 * slice is valid, works.
 */
static void t_hostile_region(void)
{
	struct env e;
	struct req rq;

	env_up(&e);
	vuf_close(e.v);
	e.v = NULL;
	CHECK(ev_wait(EV_DESTROY_CONN, e.conns, 3000));
	uint8_t *p = mmap(NULL, e.isize, PROT_READ | PROT_WRITE, MAP_SHARED, e.ifd, 0);
	CHECK(p != MAP_FAILED);
	*(uint16_t *)(p + 8) = 3; /* queue 0's version */
	munmap(p, e.isize);
	uint64_t dummy;
	while (read(e.err_fd[0], &dummy, sizeof(dummy)) > 0)
		;
	connect_fe(&e);
	set_inflight(e.v, e.ifd, e.isize, 0, 2, RING);
	CHECK_EQ(vuf_set_mem_table(e.v, e.m), 0);
	for (uint32_t q = 0; q < 2; q++) {
		CHECK_EQ(vuf_set_vring_fd(e.v, VHOST_USER_SET_VRING_ERR, q, e.err_fd[q]), 0);
		CHECK_EQ(vuf_start_vring_base(e.v, q, e.q[q], crash_base(e.q[q])), 0);
	}
	fe_usable(e.v);
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(e.vid, 0, &info), 0);
	CHECK(info.broken && !info.started);
	CHECK_EQ(read(e.err_fd[0], &dummy, sizeof(dummy)), (ssize_t)sizeof(dummy));
	/* Queue 1 is served (the device does not run: queue 0 is its minimum). */
	post(&e, 0, 1);
	post(&e, 1, 2);
	struct iovec iov[4];
	struct vhk_vq_elem el = {.iov = iov, .iov_max = 4};
	CHECK_EQ(vhk_vq_pop(e.vid, 0, &el), -EAGAIN);
	CHECK_EQ(pop(&e, 1, &rq), 2);
	complete(&e, 1, &rq);
	CHECK_EQ(vhk_vq_flush(e.vid, 1), 1);
	CHECK_EQ(used(&e, 1), 2);
	env_down(&e);
}

/* Opt-in: not offered unless the app asks; never by the net device. */
static void t_opt_in(void)
{
	uint64_t pf = 0;
	struct be_cfg cfg = {.ops = &ops, .features = IT_F_CUSTOM};
	const char *path = be_start(&cfg);
	struct vuf *v = fe_connect(path);
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_PROTOCOL_FEATURES, &pf), 0);
	CHECK(!(pf & PF_INFLIGHT));
	vuf_close(v);
	be_stop();
	/* An app that asked for it before attaching net loses it. */
	char dir[] = "/tmp/vhk-ifl-XXXXXX", sock[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(sock, sizeof(sock), "%s/s", dir);
	CHECK_EQ(vhk_socket_register(sock, 0), 0);
	CHECK_EQ(vhk_socket_set_protocol_features(sock, BIT(VHK_PF_MQ) | PF_INFLIGHT), 0);
	CHECK_EQ(vhk_net_attach(sock), 0);
	CHECK_EQ(vhk_socket_get_protocol_features(sock, &pf), 0);
	CHECK(pf & BIT(VHK_PF_MQ));
	CHECK(!(pf & PF_INFLIGHT));
	CHECK_EQ(vhk_socket_unregister(sock), 0);
	rmdir(dir);
}

GVQ_TEST_MAIN(TEST(t_get_inflight_fd), TEST(t_restart_after_disconnect),
	      TEST(t_restart_after_unregister), TEST(t_hostile_messages), TEST(t_busy_while_started),
	      TEST(t_hostile_region), TEST(t_opt_in))
