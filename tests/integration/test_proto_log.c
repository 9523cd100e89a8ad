/* SPDX-License-Identifier: MIT */
/*
 * Protocol tests of the dirty log (live migration): what is offered
 * (LOG_ALL with LOG_SHMFD), SET_LOG_BASE (its reply, every hostile size,
 * offset, fd and coverage refused cleanly, the connection usable after
 * each, the old log kept), memory tables a mapped log does not cover,
 * ring log addresses (VHOST_VRING_F_LOG) whose used ring the log does not
 * cover, SET_LOG_FD (kept, replaced, closed), LOG_ALL toggled on a running
 * device, and no fd or mapping left behind by repeated logs.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

#define MIB	    (1ull << 20)
#define LOG_FOR(m)  ((m) / 4096 / 8) /* log bytes for @m bytes of guest memory from GPA 0 */
#define F_LOG_ALL   BIT(VHK_F_LOG_ALL)
#define PF_LOG	    (IT_PF_DEFAULT | BIT(VHK_PF_LOG_SHMFD))
#define RING	    64
#define USED_LEN    (6 + 8 * RING + 2) /* split used ring with EVENT_IDX */

static const struct vhk_device_ops dev_ops = {.name = "it-log", .min_queues = 1};

struct env {
	const char *path;
	struct vuf *v;
	struct gmem *m;
	struct gvq *r;
	int vid;
};

/* A custom device offering LOG_ALL on one 1 MiB region, ring 0 started. */
static void env_up(struct env *e, uint64_t pf)
{
	const uint64_t f = IT_F_CUSTOM | F_LOG_ALL;
	struct be_cfg cfg = {.ops = &dev_ops, .features = f, .protocol_features = PF_LOG,
			     .pairs = 1};

	memset(e, 0, sizeof(*e));
	e->path = be_start(&cfg);
	e->v = fe_open(e->path, f & ~F_LOG_ALL, pf);
	e->vid = ev_conn_vid();
	CHECK_EQ(gmem_new(1, MIB, 0, 0, &e->m), 0);
	CHECK_EQ(vuf_set_mem_table(e->v, e->m), 0);
	CHECK_EQ(gvq_new(e->m, RING, e->v->features, &e->r), 0);
	CHECK_EQ(vuf_start_vring(e->v, 0, e->r), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, e->vid, -1, -1, 3000, NULL));
}

static void env_down(struct env *e)
{
	vuf_close(e->v);
	gvq_free(e->r);
	gmem_free(e->m);
}

/*
 * SET_LOG_BASE with LOG_SHMFD negotiated: the reply always comes. Returns
 * 0 for the empty reply (success) or the error the u64 reply carries.
 */
static uint64_t log_base(struct vuf *v, const void *payload, uint32_t size, const int *fds,
			 int nfds)
{
	struct vhost_user_msg m;

	CHECK_EQ(vuf_send(v, VHOST_USER_SET_LOG_BASE, VHOST_USER_VERSION, payload, size, fds, nfds),
		 0);
	CHECK_EQ(vuf_recv(v, &m, 3000), 0);
	CHECK_EQ(m.hdr.request, VHOST_USER_SET_LOG_BASE);
	CHECK_EQ(m.hdr.flags, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);
	if (m.hdr.size == 0)
		return 0;
	CHECK_EQ(m.hdr.size, 8);
	CHECK(m.payload.u64 != 0);
	return m.payload.u64;
}

/* A log memfd of @file bytes; SET_LOG_BASE of (@size, @off) with it; our copy closed. */
static uint64_t log_with(struct vuf *v, uint64_t file, uint64_t size, uint64_t off)
{
	struct vhost_user_log lg = {.mmap_size = size, .mmap_offset = off};
	int fd = memfd_sized(file, NULL);
	uint64_t rc = log_base(v, &lg, sizeof(lg), &fd, 1);
	close(fd);
	fe_usable(v);
	return rc;
}

/* SET_VRING_ADDR of ring 0 (its current addresses) with the log flag at @log_gpa. */
static int ring_log(struct env *e, uint32_t flags, uint64_t log_gpa)
{
	struct vhost_user_vring_addr a = {
		.index = 0,
		.flags = flags,
		.desc_user_addr = gmem_qva(e->m, e->r->desc_gpa),
		.used_user_addr = gmem_qva(e->m, e->r->used_gpa),
		.avail_user_addr = gmem_qva(e->m, e->r->avail_gpa),
		.log_guest_addr = log_gpa,
	};
	return vuf_request(e->v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL);
}

/* LOG_ALL and LOG_SHMFD are offered together (net by default), never one without the other. */
static void t_offer(void)
{
	uint64_t f = 0, pf = 0;
	struct be_cfg net = {.net = true, .pairs = 1};
	const char *path = be_start(&net);
	struct vuf *v = fe_connect(path);

	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_FEATURES, &f), 0);
	CHECK(f & F_LOG_ALL);
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_PROTOCOL_FEATURES, &pf), 0);
	CHECK(pf & BIT(VHK_PF_LOG_SHMFD));
	vuf_close(v);
	be_stop();
	/* A device without LOG_ALL: no LOG_SHMFD, even asked for explicitly. */
	struct be_cfg cust = {.ops = &dev_ops, .features = IT_F_CUSTOM, .protocol_features = PF_LOG,
			      .pairs = 1};
	path = be_start(&cust);
	v = fe_connect(path);
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_PROTOCOL_FEATURES, &pf), 0);
	CHECK_EQ(pf & BIT(VHK_PF_LOG_SHMFD), 0);
	CHECK_EQ(vhk_socket_get_protocol_features(path, &pf), 0);
	CHECK_EQ(pf & BIT(VHK_PF_LOG_SHMFD), 0);
	vuf_close(v);
	be_stop();
	/* The app may offer LOG_ALL for a device of its own. */
	CHECK_EQ(vhk_socket_register("/tmp/vhk-it-log-offer", 0), 0);
	CHECK_EQ(vhk_socket_enable_features("/tmp/vhk-it-log-offer", F_LOG_ALL), 0);
	CHECK_EQ(vhk_socket_get_protocol_features("/tmp/vhk-it-log-offer", &pf), 0);
	CHECK(pf & BIT(VHK_PF_LOG_SHMFD));
	CHECK_EQ(vhk_socket_unregister("/tmp/vhk-it-log-offer"), 0);
}

/* Every malformed SET_LOG_BASE is refused with an error reply; the connection stays. */
static void t_log_base_hostile(void)
{
	struct env e;
	env_up(&e, PF_LOG);
	const uint64_t need = LOG_FOR(MIB); /* 32 bytes */
	int base = proc_fd_count();

	/* Sizes of the wire payload: only the 16-byte VhostUserLog. */
	uint8_t zeros[32] = {0};
	int fd = memfd_sized(4096, NULL);
	CHECK(log_base(e.v, zeros, 8, &fd, 1) != 0);
	CHECK(log_base(e.v, zeros, 24, &fd, 1) != 0);
	CHECK(log_base(e.v, zeros, 0, &fd, 1) != 0);
	/* fds: none, two. */
	struct vhost_user_log lg = {.mmap_size = need, .mmap_offset = 0};
	CHECK(log_base(e.v, &lg, sizeof(lg), NULL, 0) != 0);
	int two[2] = {fd, fd};
	CHECK(log_base(e.v, &lg, sizeof(lg), two, 2) != 0);
	close(fd);
	fe_usable(e.v);
	/* Size and offset. */
	CHECK(log_with(e.v, 4096, 0, 0) != 0);		       /* empty */
	CHECK(log_with(e.v, 4096, 8192, 0) != 0);	       /* past the file */
	CHECK(log_with(e.v, 4096, need, 4096) != 0);	       /* offset at the end of the file */
	CHECK(log_with(e.v, 4096, need, UINT64_MAX - 8) != 0); /* offset + size wraps */
	CHECK(log_with(e.v, 4096, UINT64_MAX, 16) != 0);
	CHECK(log_with(e.v, 4096, need - 1, 0) != 0); /* too small for the memory */
	/* An fd that cannot be mapped: refused, and closed. */
	struct probe p;
	probe_new(&p);
	CHECK(log_base(e.v, &lg, sizeof(lg), &p.wr, 1) != 0);
	probe_sent(&p);
	CHECK(probe_closed(&p, 2000));
	probe_free(&p);
	/* Exactly enough, at an offset that is not page-aligned: accepted. */
	CHECK_EQ(log_with(e.v, 8192, need, 100), 0);
	CHECK_EQ(proc_fd_settle(base, 2000), base); /* the log fd is not kept */
	/* Not negotiated: refused as any unnegotiated message (a NACK with REPLY_ACK). */
	env_down(&e);
	be_stop();
	env_up(&e, IT_PF_DEFAULT);
	base = proc_fd_count();
	int f2 = memfd_sized(4096, NULL);
	fe_nack(e.v, VHOST_USER_SET_LOG_BASE, &lg, sizeof(lg), &f2, 1);
	fe_nack(e.v, VHOST_USER_SET_LOG_FD, NULL, 0, &f2, 1);
	close(f2);
	CHECK_EQ(proc_fd_settle(base, 2000), base);
	env_down(&e);
	be_alive(e.path);
}

/*
 * The log must cover the memory: a table (SET_MEM_TABLE, ADD_MEM_REG) that
 * reaches past a mapped log is refused and the old table stays; a bigger
 * log first (as QEMU grows it) lets it in; a log too small for the current
 * table is refused and the old log stays.
 */
static void t_log_covers_memory(void)
{
	struct env e;
	env_up(&e, PF_LOG);
	CHECK_EQ(log_with(e.v, 4096, LOG_FOR(MIB), 0), 0);
	/* A second region at 1 MiB: past the log. */
	struct gmem *m2;
	CHECK_EQ(gmem_new(1, MIB, MIB, 0, &m2), 0);
	struct vhost_user_mem_reg reg = {.region = {.guest_phys_addr = MIB, .memory_size = MIB,
						    .userspace_addr = (uintptr_t)m2->r[0].hva}};
	fe_nack(e.v, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg), &m2->r[0].fd, 1);
	struct gmem *both;
	CHECK_EQ(gmem_new(2, MIB, 0, 0, &both), 0);
	CHECK(vuf_set_mem_table(e.v, both) != 0);
	fe_usable(e.v);
	CHECK_EQ(vhk_dev_get_mem_table(e.vid, NULL, 0), 1); /* the old table */
	/* A log too small for what is mapped now: refused. */
	CHECK(log_with(e.v, 4096, LOG_FOR(MIB) - 1, 0) != 0);
	/* Grow the log, then the memory. */
	CHECK_EQ(log_with(e.v, 4096, LOG_FOR(2 * MIB), 0), 0);
	fe_ack(e.v, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg), &m2->r[0].fd, 1);
	CHECK_EQ(vhk_dev_get_mem_table(e.vid, NULL, 0), 2);
	CHECK(log_with(e.v, 4096, LOG_FOR(2 * MIB) - 1, 0) != 0);
	/* A region far above (GPA 1 GiB): the log would need 4 KiB more. */
	reg.region.guest_phys_addr = 1ull << 30;
	fe_nack(e.v, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg), &m2->r[0].fd, 1);
	gmem_free(m2);
	gmem_free(both);
	env_down(&e);
	be_alive(e.path);
}

/*
 * VHOST_VRING_F_LOG: the last byte of the used ring at log_guest_addr must
 * fall inside the log; the address itself may lie outside guest memory. A
 * log too small for a ring that logs is refused later too.
 */
static void t_ring_log_addr(void)
{
	struct env e;
	env_up(&e, PF_LOG);
	const uint64_t logsz = LOG_FOR(MIB) + 8; /* covers 64 pages past the memory */
	const uint64_t end = logsz * 8 * 4096;	 /* first GPA the log does not cover */
	CHECK_EQ(log_with(e.v, 4096, logsz, 0), 0);
	CHECK(ring_log(&e, 1, end - USED_LEN + 1) != 0); /* last byte one past the log */
	CHECK(ring_log(&e, 1, UINT64_MAX - 100) != 0);	 /* wraps */
	CHECK(ring_log(&e, 1, UINT64_MAX) != 0);
	CHECK(ring_log(&e, 2, e.r->used_gpa) != 0); /* unknown flag */
	fe_usable(e.v);
	CHECK_EQ(ring_log(&e, 1, end - USED_LEN), 0); /* the last byte is the log's last page */
	CHECK_EQ(ring_log(&e, 1, e.r->used_gpa), 0);
	CHECK_EQ(ring_log(&e, 1, MIB + 4096), 0); /* outside memory, inside the log */
	/* Now a log that covers the memory but not that ring's log address: refused. */
	CHECK(log_with(e.v, 4096, LOG_FOR(MIB), 0) != 0);
	CHECK_EQ(ring_log(&e, 0, 0), 0); /* the flag off: no address to cover */
	CHECK_EQ(log_with(e.v, 4096, LOG_FOR(MIB), 0), 0);
	CHECK(ring_log(&e, 1, MIB + 4096) != 0);
	/* Before the ring has a size there is nothing to check yet (and nothing to log). */
	struct vhost_user_vring_addr a = {.index = 1,
					  .flags = 1,
					  .desc_user_addr = gmem_qva(e.m, e.r->desc_gpa),
					  .used_user_addr = gmem_qva(e.m, e.r->used_gpa),
					  .avail_user_addr = gmem_qva(e.m, e.r->avail_gpa),
					  .log_guest_addr = UINT64_MAX - 100};
	fe_ack(e.v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
	/* ... but once it has one, the next log must cover it. */
	fe_ack(e.v, VHOST_USER_SET_VRING_NUM, &(struct vhost_user_vring_state){1, RING}, 8, NULL, 0);
	CHECK(log_with(e.v, 4096, LOG_FOR(MIB), 0) != 0);
	env_down(&e);
	be_alive(e.path);
}

/* SET_LOG_FD: kept, the previous one closed when replaced, closed on disconnect; one fd exactly. */
static void t_log_fd(void)
{
	struct env e;
	struct probe a, b;
	env_up(&e, PF_LOG);
	probe_new(&a);
	probe_new(&b);
	fe_ack(e.v, VHOST_USER_SET_LOG_FD, NULL, 0, &a.wr, 1);
	probe_sent(&a);
	CHECK(!probe_closed(&a, 100));
	fe_ack(e.v, VHOST_USER_SET_LOG_FD, NULL, 0, &b.wr, 1);
	probe_sent(&b);
	CHECK(probe_closed(&a, 2000));
	CHECK(!probe_closed(&b, 100));
	fe_nack(e.v, VHOST_USER_SET_LOG_FD, NULL, 0, NULL, 0);
	struct probe c;
	probe_new(&c);
	int two[2] = {c.wr, c.wr};
	fe_nack(e.v, VHOST_USER_SET_LOG_FD, NULL, 0, two, 2);
	fe_nack(e.v, VHOST_USER_SET_LOG_FD, &(uint64_t){0}, 8, &c.wr, 1);
	probe_sent(&c);
	CHECK(probe_closed(&c, 2000));
	CHECK(!probe_closed(&b, 100)); /* the refusals did not drop the one kept */
	env_down(&e);
	CHECK(probe_closed(&b, 2000));
	probe_free(&a);
	probe_free(&b);
	probe_free(&c);
	be_alive(e.path);
}

/*
 * LOG_ALL toggled on a running device: features_changed with the bit set,
 * then cleared, and no destroy_device (any other change still re-announces
 * the device).
 */
static void t_log_all_running(void)
{
	struct env e;
	env_up(&e, PF_LOG);
	const uint64_t f = e.v->features;
	struct ev ev;
	unsigned destroyed = ev_count(EV_DESTROY_DEV), changed = ev_count(EV_FEATURES);
	CHECK_EQ(log_with(e.v, 4096, LOG_FOR(MIB), 0), 0);
	fe_ack(e.v, VHOST_USER_SET_FEATURES, &(uint64_t){f | F_LOG_ALL}, 8, NULL, 0);
	CHECK(ev_wait(EV_FEATURES, changed + 1, 3000));
	CHECK(ev_find(EV_FEATURES, e.vid, -1, -1, &ev));
	CHECK_EQ(ev.features, f | F_LOG_ALL);
	CHECK_EQ(ring_log(&e, 1, e.r->used_gpa), 0);
	fe_ack(e.v, VHOST_USER_SET_FEATURES, &f, 8, NULL, 0);
	CHECK(ev_wait(EV_FEATURES, changed + 2, 3000));
	CHECK(ev_find(EV_FEATURES, e.vid, -1, -1, &ev));
	CHECK_EQ(ev.features, f);
	CHECK_EQ(ev_count(EV_DESTROY_DEV), destroyed);
	CHECK(!vhk_vq_get_info(e.vid, 0, &(struct vhk_vq_info){0}));
	/* Another feature changes: destroy_device, as before. */
	fe_ack(e.v, VHOST_USER_SET_FEATURES, &(uint64_t){f & ~BIT(VHK_F_EVENT_IDX)}, 8, NULL, 0);
	CHECK(ev_wait(EV_DESTROY_DEV, destroyed + 1, 3000));
	env_down(&e);
}

/* Logs replaced again and again (QEMU sends one per queue pair): no fd, no mapping left over. */
static void t_log_repeat_no_leak(void)
{
	struct env e;
	env_up(&e, PF_LOG);
	for (int i = 0; i < 20; i++)
		CHECK_EQ(log_with(e.v, 4096, LOG_FOR(MIB), 0), 0);
	int fds = proc_fd_count(), maps = proc_map_count();
	for (int i = 0; i < 300; i++)
		CHECK_EQ(log_with(e.v, 4096 * (1 + i % 3), LOG_FOR(MIB) + (uint64_t)i % 64,
				  (uint64_t)(i % 3) * 1024),
			 0);
	CHECK(proc_fd_settle(fds + 2, 2000) <= fds + 2);
	CHECK(proc_map_count() <= maps + 4);
	env_down(&e);
}

int main(int argc, char **argv)
{
	static const struct test_case cases[] = {TEST(t_offer),
						 TEST(t_log_base_hostile),
						 TEST(t_log_covers_memory),
						 TEST(t_ring_log_addr),
						 TEST(t_log_fd),
						 TEST(t_log_all_running),
						 TEST(t_log_repeat_no_leak)};
	return test_run_main(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
