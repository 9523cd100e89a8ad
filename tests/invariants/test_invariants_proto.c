/* SPDX-License-Identifier: MIT */
/*
 * Hostile-input tests for the control-plane rules of invariants.md that the
 * older suites left untested (sections A-E and N; see docs/hardening.md for
 * the full map). Repeated cases check that fds, mappings and heap stay flat
 * over thousands of repetitions.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inv_common.h"

#define REPS   1000
#define WARMUP 50

/* Send a bare SET_OWNER header carrying @n copies of @fd in one SCM_RIGHTS block. */
static int send_many_fds(int sock, int fd, int n)
{
	static int fds[250];
	union {
		char buf[CMSG_SPACE(sizeof(int) * 250)];
		struct cmsghdr align;
	} cm;
	struct vhost_user_header h = {VHOST_USER_SET_OWNER,
				      VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, 0};
	struct iovec iov = {.iov_base = &h, .iov_len = sizeof(h)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	CHECK(n > 0 && n <= 250);
	for (int i = 0; i < n; i++)
		fds[i] = fd;
	memset(&cm, 0, sizeof(cm));
	mh.msg_control = cm.buf;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(h) ? 0 : -errno;
}

/* One connection sends @n fds on one message: refused, every copy closed. */
static void ctrunc_round(struct inv *f, int n)
{
	struct probe p;
	probe_new(&p);
	inv_connect(f, IT_F_CUSTOM, IT_PF_DEFAULT);
	CHECK_EQ(send_many_fds(f->v->fd, p.wr, n), 0);
	probe_sent(&p);
	/* More fds than any message may carry: refused (this library closes). */
	CHECK(fe_refused(f->v, VHOST_USER_SET_OWNER) != REJ_IGNORED);
	inv_close(f);
	CHECK(probe_closed(&p, 3000));
	probe_free(&p);
}

/*
 * B: more fds than the control buffer holds (MSG_CTRUNC) and more than a
 * message may carry: the fds that did arrive are closed, nothing leaks.
 */
static void t_ctrunc_fds(void)
{
	static const int counts[] = {9, 33, 64, 200};
	struct inv f;
	inv_start_custom(&f, IT_PF_DEFAULT, NULL);
	for (int i = 0; i < WARMUP; i++)
		ctrunc_round(&f, counts[i % 4]);
	struct inv_usage base = inv_usage_now();
	for (int i = 0; i < REPS; i++)
		ctrunc_round(&f, counts[i % 4]);
	inv_usage_check(&base, "ctrunc");
	be_alive(f.path);
}

/* Mark every fd currently open in @open (indexed by fd number, < @max). */
static void fd_snapshot(bool *open, int max)
{
	memset(open, 0, (size_t)max * sizeof(*open));
	for (int fd = 0; fd < max; fd++)
		open[fd] = fcntl(fd, F_GETFD) >= 0;
}

/*
 * B: every fd the library receives or creates is close-on-exec, even when the
 * frontend's own copy is not (the flag is per descriptor, set by the receiver).
 */
static void t_received_fds_cloexec(void)
{
	enum { MAXFD = 1024 };
	static bool before[MAXFD];
	struct inv f;
	fd_snapshot(before, MAXFD);
	inv_start_custom(&f, IT_PF_DEFAULT, NULL);
	inv_connect(&f, IT_F_CUSTOM, IT_PF_DEFAULT);
	inv_guest(&f, 1, 1 << 20, 64, BIT(VHK_F_EVENT_IDX));
	inv_bring_up(&f, 1);
	/* Replace kick / call / err and the backend channel with non-CLOEXEC fds. */
	int ek = eventfd(0, EFD_NONBLOCK), ec = eventfd(0, EFD_NONBLOCK), ee = eventfd(0, 0);
	int sp[2];
	CHECK(ek >= 0 && ec >= 0 && ee >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	CHECK(!inv_fd_cloexec(ek) && !inv_fd_cloexec(sp[1]));
	CHECK_EQ(vuf_set_vring_fd(f.v, VHOST_USER_SET_VRING_KICK, 0, ek), 0);
	CHECK_EQ(vuf_set_vring_fd(f.v, VHOST_USER_SET_VRING_CALL, 0, ec), 0);
	CHECK_EQ(vuf_set_vring_fd(f.v, VHOST_USER_SET_VRING_ERR, 0, ee), 0);
	fe_ack(f.v, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sp[1], 1);
	close(ek);
	close(ec);
	close(ee);
	close(sp[1]);
	CHECK_EQ(fcntl(sp[0], F_SETFD, FD_CLOEXEC), 0);
	fe_usable(f.v);

	struct vhk_vq_info info = inv_vring(&f, 0);
	CHECK(info.kick_fd >= 0 && info.call_fd >= 0);
	CHECK(inv_fd_cloexec(info.kick_fd));
	CHECK(inv_fd_cloexec(info.call_fd));
	int checked = 0;
	for (int fd = 0; fd < MAXFD; fd++) {
		if (before[fd] || fcntl(fd, F_GETFD) < 0)
			continue;
		if (!inv_fd_cloexec(fd))
			fprintf(stderr, "# fd %d has no FD_CLOEXEC\n", fd);
		CHECK(inv_fd_cloexec(fd));
		checked++;
	}
	CHECK(checked >= 6); /* socket, loop fds, kick, call, err, backend channel ... */
	close(sp[0]);
	inv_close(&f);
}

/* Replace the fd of @req on vring 0 by a fresh probe; the previous one must close. */
static void replace_fd(struct inv *f, uint32_t req, struct probe *prev)
{
	struct probe p;
	probe_new(&p);
	if (req == VHOST_USER_SET_BACKEND_REQ_FD)
		fe_ack(f->v, req, NULL, 0, &p.wr, 1);
	else
		CHECK_EQ(vuf_set_vring_fd(f->v, req, 0, p.wr), 0);
	probe_sent(&p);
	if (prev->rd >= 0) {
		CHECK(probe_closed(prev, 3000));
		probe_free(prev);
	}
	*prev = p;
}

/*
 * B: a new kick / call / err / backend fd closes the one it replaces, on a
 * running ring, thousands of times over, with no fd growth.
 */
static void t_fd_replace_churn(void)
{
	static const uint32_t reqs[] = {VHOST_USER_SET_VRING_KICK, VHOST_USER_SET_VRING_CALL,
					VHOST_USER_SET_VRING_ERR, VHOST_USER_SET_BACKEND_REQ_FD};
	struct probe prev[4];
	struct inv f;
	inv_start_custom(&f, IT_PF_DEFAULT, NULL);
	inv_connect(&f, IT_F_CUSTOM, IT_PF_DEFAULT);
	inv_guest(&f, 1, 1 << 20, 64, BIT(VHK_F_EVENT_IDX));
	inv_bring_up(&f, 1);
	for (int k = 0; k < 4; k++)
		prev[k].rd = prev[k].wr = -1;
	for (int i = 0; i < WARMUP; i++)
		replace_fd(&f, reqs[i % 4], &prev[i % 4]);
	struct inv_usage base = inv_usage_now();
	for (int i = 0; i < 4 * REPS; i++)
		replace_fd(&f, reqs[i % 4], &prev[i % 4]);
	inv_usage_check(&base, "fd replace");
	CHECK(inv_vring(&f, 0).started);
	inv_close(&f);
	for (int k = 0; k < 4; k++) {
		CHECK(probe_closed(&prev[k], 3000)); /* the last ones go with the connection */
		probe_free(&prev[k]);
	}
}

/*
 * C: SET_VRING_ENDIAN (any num, 2 included) is refused (not implemented);
 * VRING_KICK is refused unless INBAND_NOTIFICATIONS was negotiated, which
 * the library does not offer unless the app asks for it (the spec advises
 * against it: see test_backend_chan for the feature itself). Other
 * unimplemented protocol bits cannot be offered.
 */
static void t_endian_inband_refused(void)
{
	struct inv f;
	inv_start_custom(&f, IT_PF_DEFAULT, NULL);
	inv_connect(&f, IT_F_CUSTOM, IT_PF_DEFAULT);
	CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_NUM, 0, 64), 0);
	static const uint32_t nums[] = {0, 1, 2, 0xffffffffu};
	for (unsigned i = 0; i < 4; i++)
		fe_nack_state(f.v, VHOST_USER_SET_VRING_ENDIAN, 0, nums[i]);
	fe_nack_state(f.v, VHOST_USER_VRING_KICK, 0, 0);
	fe_nack_state(f.v, VHOST_USER_VRING_KICK, 0, 1);
	uint64_t pf = 0;
	CHECK_EQ(vuf_get_u64(f.v, VHOST_USER_GET_PROTOCOL_FEATURES, &pf), 0);
	CHECK((pf & BIT(VHK_PF_INBAND_NOTIFICATIONS)) == 0);
	inv_close(&f);
	be_stop();

	/* The app cannot turn them on either. */
	static const int bits[] = {VHK_PF_RESET_DEVICE,
				   VHK_PF_HOST_NOTIFIER, VHK_PF_CROSS_ENDIAN, 40};
	char dir[] = "/tmp/vhk-inv-XXXXXX", path[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/s", dir);
	CHECK_EQ(vhk_socket_register(path, 0), 0);
	for (unsigned i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		CHECK_EQ(vhk_socket_set_protocol_features(path, BIT(bits[i]) | BIT(VHK_PF_REPLY_ACK)),
			 -ENOTSUP);
	CHECK_EQ(vhk_socket_get_protocol_features(path, &pf), 0);
	CHECK((pf & BIT(VHK_PF_INBAND_NOTIFICATIONS)) == 0);
	CHECK_EQ(vhk_socket_unregister(path), 0);
	rmdir(dir);
}

/*
 * Transport feature bits the library does not implement cannot be offered:
 * offering IOMMU_PLATFORM without an IOTLB would let the guest believe its
 * device is confined. Device bits pass through untouched.
 */
static void t_unimplemented_features_refused(void)
{
	static const int bits[] = {VHK_F_NOTIFY_ON_EMPTY, VHK_F_IOMMU_PLATFORM,
				   38 /* NOTIFICATION_DATA */, 40 /* RING_RESET */};
	char dir[] = "/tmp/vhk-inv-XXXXXX", path[64];
	uint64_t f = 0;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/s", dir);
	CHECK_EQ(vhk_socket_register(path, 0), 0);
	CHECK_EQ(vhk_net_attach(path), 0);
	for (unsigned i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		CHECK_EQ(vhk_socket_enable_features(path, BIT(bits[i])), -ENOTSUP);
		CHECK_EQ(vhk_socket_set_features(path, BIT(VHK_F_VERSION_1) | BIT(bits[i])), -ENOTSUP);
	}
	CHECK_EQ(vhk_socket_get_features(path, &f), 0);
	CHECK_EQ(f, VHK_NET_DEFAULT_FEATURES);
	CHECK((f & BIT(VHK_F_NOTIFY_ON_EMPTY)) == 0);
	/* Device-specific bits (net 0..23, 42..63) are the device's business. */
	CHECK_EQ(vhk_socket_enable_features(path, BIT(VHK_NET_F_CTRL_VQ) | BIT(50)), 0);
	CHECK_EQ(vhk_socket_unregister(path), 0);
	rmdir(dir);
}

/* RESET_OWNER on a running device, checks, then restart the ring. */
static void reset_owner_round(struct inv *f)
{
	unsigned devs = ev_count(EV_NEW_DEV), gone = ev_count(EV_DESTROY_DEV);
	uint64_t feat = 0;
	fe_ack(f->v, VHOST_USER_RESET_OWNER, NULL, 0, NULL, 0);
	CHECK(ev_wait(EV_DESTROY_DEV, gone + 1, 3000));
	struct vhk_vq_info info = inv_vring(f, 0);
	CHECK(!info.started && !info.enabled);
	CHECK_EQ(vhk_dev_get_features(f->vid, &feat), 0);
	CHECK_EQ(feat, f->v->features);
	CHECK_EQ(vhk_dev_get_mem_table(f->vid, NULL, 0), 1);
	/* Restart: ownership again, kick, enable. */
	fe_ack(f->v, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
	CHECK_EQ(vuf_set_vring_fd(f->v, VHOST_USER_SET_VRING_KICK, 0, f->vq[0]->kick_fd), 0);
	CHECK_EQ(vuf_set_vring_state(f->v, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	CHECK(ev_wait(EV_NEW_DEV, devs + 1, 3000));
	info = inv_vring(f, 0);
	CHECK(info.started && info.enabled && !info.broken);
}

/*
 * C: RESET_OWNER stops and disables every ring but frees nothing: the vid,
 * features and memory table stay valid and the rings can be restarted.
 * Repeated with growth checks.
 */
static void t_reset_owner_keeps_state(void)
{
	struct inv f;
	inv_start_custom(&f, IT_PF_DEFAULT, NULL);
	inv_connect(&f, IT_F_CUSTOM, IT_PF_DEFAULT);
	inv_guest(&f, 1, 1 << 20, 64, BIT(VHK_F_EVENT_IDX));
	inv_bring_up(&f, 1);
	for (int i = 0; i < WARMUP; i++)
		reset_owner_round(&f);
	struct inv_usage base = inv_usage_now();
	for (int i = 0; i < REPS; i++)
		reset_owner_round(&f);
	inv_usage_check(&base, "reset owner");
	inv_close(&f);
}

/* D: guest memory mappings are MADV_DONTDUMP (SET_MEM_TABLE and ADD_MEM_REG). */
static void t_guest_memory_dontdump(void)
{
	struct inv f;
	struct vhk_mem_region mr[4];
	inv_start_custom(&f, IT_PF_DEFAULT, NULL);
	inv_connect(&f, IT_F_CUSTOM, IT_PF_DEFAULT);
	inv_guest(&f, 2, 1 << 20, 64, BIT(VHK_F_EVENT_IDX));
	CHECK_EQ(vuf_set_mem_table(f.v, f.m), 0);
	CHECK_EQ(vhk_dev_get_mem_table(f.vid, mr, 4), 2);
	for (int i = 0; i < 2; i++) {
		CHECK(inv_addr_dontdump(mr[i].host_addr));
		CHECK(inv_addr_dontdump((uint8_t *)mr[i].host_addr + mr[i].size - 1));
	}
	/* Our own (frontend) mapping of the same memory is not marked: the check can fail. */
	CHECK(!inv_addr_dontdump(f.m->r[0].hva));
	CHECK_EQ(vuf_rem_mem_reg(f.v, &f.m->r[1]), 0);
	CHECK_EQ(vuf_add_mem_reg(f.v, &f.m->r[1]), 0);
	CHECK_EQ(vhk_dev_get_mem_table(f.vid, mr, 4), 2);
	for (int i = 0; i < 2; i++)
		CHECK(inv_addr_dontdump(mr[i].host_addr));
	inv_close(&f);
}

/* D: SET_MEM_TABLE with a non-zero padding word is refused, nothing mapped or kept. */
static void t_mem_table_padding(void)
{
	struct inv f;
	inv_start_custom(&f, IT_PF_DEFAULT, NULL);
	inv_connect(&f, IT_F_CUSTOM, IT_PF_DEFAULT);
	void *map;
	int mfd = memfd_sized(1 << 16, &map);
	struct {
		struct mt_hdr hdr;
		struct vhost_user_mem_region r;
	} __attribute__((packed)) t = {{1, 0}, {0, 1 << 16, (uintptr_t)map, 0}};
	static const uint32_t pads[] = {1, 0x80000000u, 0xffffffffu};
	int fds = proc_fd_count(), maps = proc_map_count();
	for (unsigned i = 0; i < 3; i++) {
		t.hdr.padding = pads[i];
		fe_nack(f.v, VHOST_USER_SET_MEM_TABLE, &t, sizeof(t), &mfd, 1);
		CHECK_EQ(vhk_dev_get_mem_table(f.vid, NULL, 0), 0);
	}
	CHECK_EQ(proc_fd_settle(fds, 1000), fds); /* the library's copy of mfd is closed */
	CHECK_EQ(proc_map_count(), maps);
	t.hdr.padding = 0; /* the same table with padding 0 is fine */
	fe_ack(f.v, VHOST_USER_SET_MEM_TABLE, &t, sizeof(t), &mfd, 1);
	CHECK_EQ(vhk_dev_get_mem_table(f.vid, NULL, 0), 1);
	munmap(map, 1 << 16);
	close(mfd);
	inv_close(&f);
}

/* SET_VRING_ADDR for ring 0 of @f with @a, then kick; returns whether it started. */
static bool ring_starts_with(struct inv *f, const struct vhost_user_vring_addr *a)
{
	CHECK_EQ(vuf_set_vring_state(f->v, VHOST_USER_SET_VRING_NUM, 0, f->vq[0]->size), 0);
	CHECK_EQ(vuf_set_vring_state(f->v, VHOST_USER_SET_VRING_BASE, 0, 0), 0);
	int rc = vuf_request(f->v, VHOST_USER_SET_VRING_ADDR, a, sizeof(*a), NULL, 0, NULL);
	CHECK(rc == 0 || rc == -EPROTO);
	rc = vuf_set_vring_fd(f->v, VHOST_USER_SET_VRING_KICK, 0, f->vq[0]->kick_fd);
	CHECK(rc == 0 || rc == -EPROTO);
	rc = vuf_set_vring_state(f->v, VHOST_USER_SET_VRING_ENABLE, 0, 1);
	CHECK(rc == 0 || rc == -EPROTO);
	fe_usable(f->v);
	struct vhk_vq_info info = inv_vring(f, 0);
	return info.started && !info.broken;
}

/* D: misaligned ring parts (desc 16, avail 2, used 4) never start the ring. */
static void t_ring_alignment(void)
{
	struct inv f;
	inv_start_custom(&f, IT_PF_DEFAULT, NULL);
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &f.m), 0);
	CHECK_EQ(gvq_new(f.m, 64, BIT(VHK_F_EVENT_IDX), &f.vq[0]), 0);
	struct vhost_user_vring_addr ok = {
	    .index = 0,
	    .desc_user_addr = gmem_qva(f.m, f.vq[0]->desc_gpa),
	    .used_user_addr = gmem_qva(f.m, f.vq[0]->used_gpa),
	    .avail_user_addr = gmem_qva(f.m, f.vq[0]->avail_gpa),
	};
	struct vhost_user_vring_addr bad[6];
	for (int i = 0; i < 6; i++)
		bad[i] = ok;
	bad[0].desc_user_addr += 8;
	bad[1].desc_user_addr += 2;
	bad[2].avail_user_addr += 1;
	bad[3].used_user_addr += 2;
	bad[4].used_user_addr += 1;
	bad[5].desc_user_addr += 1;
	for (int i = 0; i < 6; i++) {
		unsigned devs = ev_count(EV_NEW_DEV);
		inv_connect(&f, IT_F_CUSTOM, IT_PF_DEFAULT);
		CHECK_EQ(vuf_set_mem_table(f.v, f.m), 0);
		CHECK(!ring_starts_with(&f, &bad[i]));
		msleep(20);
		CHECK_EQ(ev_count(EV_NEW_DEV), devs);
		vuf_close(f.v);
		f.v = NULL;
	}
	inv_connect(&f, IT_F_CUSTOM, IT_PF_DEFAULT);
	CHECK_EQ(vuf_set_mem_table(f.v, f.m), 0);
	CHECK(ring_starts_with(&f, &ok)); /* the same ring, aligned, does start */
	inv_close(&f);
}

/* One round of region removals around the running ring 0 (see t_rem_ring_region). */
static void rem_ring_region_round(struct inv *f)
{
	unsigned devs = ev_count(EV_NEW_DEV);
	/* Region 1 holds no ring: the device comes back with the ring running. */
	CHECK_EQ(vuf_rem_mem_reg(f->v, &f->m->r[1]), 0);
	CHECK(ev_wait(EV_NEW_DEV, devs + 1, 3000));
	CHECK(inv_vring(f, 0).started);
	CHECK_EQ(vuf_add_mem_reg(f->v, &f->m->r[1]), 0);
	CHECK(ev_wait(EV_NEW_DEV, devs + 2, 3000));
	/* Region 0 holds the ring: it must stop and stay stopped. */
	CHECK_EQ(vuf_rem_mem_reg(f->v, &f->m->r[0]), 0);
	fe_usable(f->v);
	struct vhk_vq_info info = inv_vring(f, 0);
	CHECK(!info.started || info.broken);
	CHECK_EQ(vhk_dev_get_mem_table(f->vid, NULL, 0), 1);
	gvq_kick_force(f->vq[0]);		     /* kicks on the dead ring are harmless */
	CHECK_EQ(vhk_vq_notify(f->vid, 0), -EAGAIN); /* not ready: nothing to notify */
	msleep(1);
	CHECK_EQ(ev_count(EV_NEW_DEV), devs + 2);
	/* Memory back, ring restarted by a new kick. */
	CHECK_EQ(vuf_add_mem_reg(f->v, &f->m->r[0]), 0);
	CHECK_EQ(vuf_set_vring_fd(f->v, VHOST_USER_SET_VRING_KICK, 0, f->vq[0]->kick_fd), 0);
	CHECK(ev_wait(EV_NEW_DEV, devs + 3, 3000));
	CHECK(inv_vring(f, 0).started);
}

/*
 * D: REM_MEM_REG of the region holding a ring stops that ring (no use of the
 * unmapped memory); removing another region leaves it running. Re-adding
 * the region and kicking restarts it. Repeated with growth checks.
 */
static void t_rem_ring_region(void)
{
	struct inv f;
	inv_start_custom(&f, IT_PF_DEFAULT, NULL);
	inv_connect(&f, IT_F_CUSTOM, IT_PF_DEFAULT);
	inv_guest(&f, 2, 1 << 20, 64, BIT(VHK_F_EVENT_IDX));
	CHECK(f.vq[0]->used_gpa + 6 + 8 * 64 + 2 <= f.m->r[0].size); /* ring in region 0 */
	unsigned devs = ev_count(EV_NEW_DEV);
	CHECK_EQ(vuf_add_mem_reg(f.v, &f.m->r[0]), 0);
	CHECK_EQ(vuf_add_mem_reg(f.v, &f.m->r[1]), 0);
	CHECK_EQ(vuf_start_vring(f.v, 0, f.vq[0]), 0);
	CHECK(ev_wait(EV_NEW_DEV, devs + 1, 3000));
	for (int i = 0; i < WARMUP; i++)
		rem_ring_region_round(&f);
	struct inv_usage base = inv_usage_now();
	for (int i = 0; i < REPS; i++)
		rem_ring_region_round(&f);
	inv_usage_check(&base, "rem ring region");
	inv_close(&f);
}

/* E: a restarted split ring reads used->idx from the guest, never a cached value. */
static void t_used_idx_reread(void)
{
	struct inv f;
	inv_start_custom(&f, IT_PF_DEFAULT, NULL);
	inv_connect(&f, IT_F_CUSTOM, IT_PF_DEFAULT);
	inv_guest(&f, 1, 1 << 20, 64, BIT(VHK_F_EVENT_IDX));
	inv_bring_up(&f, 1);
	static const uint16_t vals[] = {1234, 0, 65535, 7};
	for (int i = 0; i < 4; i++) {
		uint32_t base = 0;
		CHECK_EQ(vuf_get_vring_base(f.v, 0, &base), 0);
		/* The driver was reset behind our back and left used->idx elsewhere. */
		f.vq[0]->used->idx = vals[i];
		f.vq[0]->avail->idx = vals[i];
		CHECK_EQ(vuf_set_vring_state(f.v, VHOST_USER_SET_VRING_BASE, 0, vals[i]), 0);
		CHECK_EQ(vuf_set_vring_fd(f.v, VHOST_USER_SET_VRING_KICK, 0, f.vq[0]->kick_fd), 0);
		fe_usable(f.v);
		struct vhk_vq_info info = inv_vring(&f, 0);
		CHECK(info.started);
		CHECK_EQ(info.last_used_idx, vals[i]);
		CHECK_EQ(info.last_avail_idx, vals[i]);
	}
	inv_close(&f);
}

/* Config-space device: get_config fills 0xaa (mode 0) or writes one byte (mode 1). */
static int cfg_mode;

/* get_config of the config-space device, following cfg_mode. */
static int cfg_get(int vid, uint8_t *buf, uint32_t offset, uint32_t len)
{
	(void)vid;
	(void)offset;
	if (cfg_mode == 0)
		memset(buf, 0xaa, len);
	else if (len)
		buf[0] = 0x11;
	return 0;
}

static const struct vhk_device_ops cfg_ops = {
	.name = "inv-cfg", .min_queues = 1, .config_size = 64, .get_config = cfg_get};

/* GET_CONFIG of [@off, @off + @len); returns the reply. */
static struct vhost_user_msg get_config(struct inv *f, uint32_t off, uint32_t len)
{
	struct vhost_user_msg rep;
	struct vhost_user_config c;
	memset(&c, 0x5c, sizeof(c)); /* the request's own region bytes are junk */
	c.offset = off;
	c.size = len;
	c.flags = 0;
	memset(&rep, 0x77, sizeof(rep));
	CHECK_EQ(vuf_request(f->v, VHOST_USER_GET_CONFIG, &c, 12 + len, NULL, 0, &rep), 0);
	return rep;
}

/*
 * I: replies are zero-initialised: a GET_CONFIG region the device did not
 * write is zero (not the previous reply, not the request's bytes), and a
 * failed GET_CONFIG has an empty payload.
 */
static void t_config_reply_zeroed(void)
{
	struct inv f;
	uint64_t pf = IT_PF_DEFAULT | BIT(VHK_PF_CONFIG);
	inv_start_custom(&f, pf, &cfg_ops);
	inv_connect(&f, IT_F_CUSTOM, pf);
	CHECK(f.v->protocol_features & BIT(VHK_PF_CONFIG));
	for (int round = 0; round < 200; round++) {
		cfg_mode = 0;
		struct vhost_user_msg rep = get_config(&f, 0, 64);
		CHECK_EQ(rep.hdr.size, 12 + 64);
		for (int i = 0; i < 64; i++)
			CHECK_EQ(rep.payload.config.region[i], 0xaa);
		cfg_mode = 1;
		uint32_t len = 1 + (uint32_t)round % 64;
		rep = get_config(&f, 64 - len, len);
		CHECK_EQ(rep.hdr.size, 12 + len);
		CHECK_EQ(rep.payload.config.region[0], 0x11);
		for (uint32_t i = 1; i < len; i++)
			CHECK_EQ(rep.payload.config.region[i], 0);
	}
	/* Out of range: an empty reply, never stale bytes. */
	struct vhost_user_msg rep;
	struct vhost_user_config c;
	memset(&c, 0, sizeof(c));
	c.offset = 60;
	c.size = 8;
	CHECK_EQ(vuf_request(f.v, VHOST_USER_GET_CONFIG, &c, 12 + 8, NULL, 0, &rep), 0);
	CHECK_EQ(rep.hdr.size, 0);
	fe_usable(f.v);
	inv_close(&f);
}

/* N: every public entry point refuses bad, stale and foreign handles and queue ids. */
static void t_api_bad_handles(void)
{
	struct inv f;
	inv_start_net(&f);
	inv_connect(&f, VHK_NET_DEFAULT_FEATURES, IT_PF_DEFAULT);
	inv_guest(&f, 1, 1 << 20, 64, BIT(VHK_F_EVENT_IDX));
	inv_bring_up(&f, 2);
	int live = f.vid;
	inv_close(&f);
	CHECK(ev_wait(EV_DESTROY_DEV, 1, 3000));
	struct vhk_pool *pool;
	CHECK_EQ(vhk_pool_create(64, 2048, 0, 0, &pool), 0);
	struct vhk_pkt *pk[4];
	struct vhk_vq_info info;
	struct vhk_mem_region mr;
	struct vhk_net_stats st;
	uint64_t u;
	uint16_t mtu;
	char buf[16];
	const int vids[] = {-1, -2, INT_MIN, INT_MAX, live, live + (1 << 16), live ^ 1, 0};
	for (unsigned i = 0; i < sizeof(vids) / sizeof(vids[0]); i++) {
		int vid = vids[i];
		CHECK(vhk_dev_get_ctx(vid) == NULL);
		CHECK_EQ(vhk_dev_get_features(vid, &u), -ENODEV);
		CHECK_EQ(vhk_dev_get_protocol_features(vid, &u), -ENODEV);
		CHECK_EQ(vhk_net_get_mtu(vid, &mtu), -ENODEV);
		CHECK_EQ(vhk_dev_get_path(vid, buf, sizeof(buf)), -ENODEV);
		CHECK_EQ(vhk_dev_get_vq_count(vid), -ENODEV);
		CHECK_EQ(vhk_dev_get_mem_table(vid, &mr, 1), -ENODEV);
		for (int q = 0; q < 3; q++) {
			uint16_t qid = q == 0 ? 0 : q == 1 ? 1 : 0xffff;
			CHECK(vhk_vq_get_info(vid, qid, &info) < 0);
			CHECK(vhk_vq_set_notification(vid, qid, true) < 0);
			CHECK(vhk_vq_wait_kick(vid, qid, 0) < 0);
			CHECK(vhk_vq_notify(vid, qid) < 0);
			CHECK(vhk_net_get_stats(vid, qid, &st) < 0);
			CHECK(vhk_net_reset_stats(vid, qid) < 0);
			CHECK(vhk_vq_avail_count(vid, qid) < 0);
			CHECK_EQ(vhk_net_enqueue_burst(vid, qid, pk, 0), 0);
			CHECK_EQ(vhk_net_dequeue_burst(vid, qid, pool, pk, 4), 0);
		}
		CHECK_EQ(vhk_dev_op_complete(vid, 0), -ENODEV);
	}
	/* A live device with bad queue ids and NULL pointers. */
	inv_connect(&f, VHK_NET_DEFAULT_FEATURES, IT_PF_DEFAULT);
	inv_guest(&f, 1, 1 << 20, 64, BIT(VHK_F_EVENT_IDX));
	inv_bring_up(&f, 2);
	CHECK(f.vid != live);
	CHECK_EQ(vhk_dev_get_features(live, &u), -ENODEV); /* the old handle stays dead */
	CHECK_EQ(vhk_dev_get_features(f.vid, NULL), -EINVAL);
	CHECK_EQ(vhk_vq_get_info(f.vid, 0, NULL), -EINVAL);
	CHECK_EQ(vhk_vq_get_info(f.vid, VHK_MAX_QUEUES, &info), -EINVAL);
	CHECK_EQ(vhk_vq_get_info(f.vid, 0xffff, &info), -EINVAL);
	CHECK_EQ(vhk_dev_get_mem_table(f.vid, NULL, 1), -EINVAL);
	CHECK(vhk_vq_set_notification(f.vid, 0xffff, true) < 0);
	CHECK(vhk_vq_notify(f.vid, VHK_MAX_QUEUES) < 0);
	CHECK(vhk_net_get_stats(f.vid, 0, NULL) < 0);
	CHECK(vhk_net_get_stats(f.vid, 0xffff, &st) < 0);
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0, NULL, 4), 0);
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 1, pk, 0), 0); /* TX ring for RX */
	CHECK_EQ(vhk_net_dequeue_burst(f.vid, 0, pool, pk, 4), 0); /* RX ring for TX */
	CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, NULL, pk, 4), 0);
	CHECK_EQ(vhk_net_dequeue_burst(f.vid, 1, pool, NULL, 4), 0);
	CHECK_EQ(vhk_net_dequeue_burst(f.vid, 0xffff, pool, pk, 4), 0);
	CHECK_EQ(vhk_net_enqueue_burst(f.vid, 0xfffe, pk, 0), 0);
	CHECK_EQ(vhk_pool_avail(pool), 64);
	fe_usable(f.v);
	inv_close(&f);
	vhk_pool_free(pool);
}

TEST_MAIN(TEST(t_ctrunc_fds), TEST(t_received_fds_cloexec), TEST(t_fd_replace_churn),
	  TEST(t_endian_inband_refused), TEST(t_reset_owner_keeps_state),
	  TEST(t_guest_memory_dontdump), TEST(t_mem_table_padding), TEST(t_ring_alignment),
	  TEST(t_rem_ring_region), TEST(t_used_idx_reread), TEST(t_config_reply_zeroed),
	  TEST(t_api_bad_handles), TEST(t_unimplemented_features_refused))
