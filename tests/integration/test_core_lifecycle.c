/* SPDX-License-Identifier: MIT */
/*
 * The core's lifecycle guarantees towards a device that completes its
 * operations asynchronously (a block device draining I/O, say):
 *  - guest memory stays mapped until a pending queue_stop completes, at
 *    disconnect and at unregister (vhk_socket_unregister_async reports the
 *    end); destroy_connection comes after the completion;
 *  - a memory-table change and a ring address change on a running queue
 *    are bracketed by queue_stop / queue_start, and the old table stays
 *    installed (and its reply unsent) until the stop completed;
 *  - a reset (SET_STATUS 0) waits for the stop too;
 *  - a vhk_socket_start() that fails leaves nothing started.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "transport/transport.h"

static _Atomic int stop_pending, stop_calls, start_calls, dev_vid = -1;

static int lc_stop(int vid, uint16_t qid)
{
	dev_vid = vid;
	stop_calls++;
	return atomic_load(&stop_pending) ? VHK_OP_PENDING : 0;
}

static int lc_start(int vid, uint16_t qid)
{
	dev_vid = vid;
	start_calls++;
	return 0;
}

static const struct vhk_device_ops lc_ops = {.name = "it-lifecycle", .min_queues = 1,
					     .queue_start = lc_start, .queue_stop = lc_stop};

/* Is the page at @p mapped in this process? (mincore fails with ENOMEM when not.) */
static bool mapped(const void *p)
{
	unsigned char v;
	uintptr_t pg = (uintptr_t)p & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);

	return mincore((void *)pg, 1, &v) == 0;
}

/* Wait (up to 3 s) for the page at @p to be unmapped: the release follows destroy_connection. */
static bool unmapped_soon(const void *p)
{
	for (int i = 0; i < 300 && mapped(p); i++)
		msleep(10);
	return !mapped(p);
}

/* A running custom device with queue 0 up; returns the library's mapping of the RAM. */
struct lc_fx {
	struct vuf *v;
	struct gmem *m;
	struct gvq *r;
	int vid;
	uint8_t *host;
};

static void lc_up(struct lc_fx *f)
{
	struct be_cfg cfg = {.ops = &lc_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT | BIT(VHK_PF_STATUS)};
	struct vhk_mem_region mr;

	f->v = fe_open(be_start(&cfg), IT_F_CUSTOM, IT_PF_DEFAULT | BIT(VHK_PF_STATUS));
	f->vid = ev_conn_vid();
	CHECK_EQ(gmem_new(1, 1 << 20, 0, 0, &f->m), 0);
	CHECK_EQ(gvq_new(f->m, 256, BIT(VHK_F_EVENT_IDX), &f->r), 0);
	CHECK_EQ(vuf_set_mem_table(f->v, f->m), 0);
	CHECK_EQ(vuf_start_vring(f->v, 0, f->r), 0);
	CHECK_EQ(vuf_set_u64(f->v, VHOST_USER_SET_STATUS, 0xf), 0);
	CHECK(ev_wait_match(EV_NEW_DEV, f->vid, -1, -1, 3000, NULL));
	CHECK_EQ(vhk_dev_get_mem_table(f->vid, &mr, 1), 1);
	f->host = mr.host_addr;
	CHECK(mapped(f->host));
	/* The library's mapping holds what the guest wrote through its own. */
	memcpy(f->m->r[0].hva + 4096, "drain me", 9);
	CHECK(!memcmp(f->host + 4096, "drain me", 9));
	CHECK_EQ(start_calls, 1);
	CHECK_EQ(stop_calls, 0);
}

static void lc_free(struct lc_fx *f)
{
	if (f->v)
		vuf_close(f->v);
	gvq_free(f->r);
	gmem_free(f->m);
}

/* The frontend goes away while the device still drains: memory stays until it completes. */
static void t_close_awaits_stop(void)
{
	struct lc_fx f;

	lc_up(&f);
	stop_pending = 1;
	vuf_close(f.v);
	f.v = NULL;
	for (int i = 0; i < 300 && stop_calls == 0; i++)
		msleep(10);
	CHECK_EQ(stop_calls, 1);
	msleep(300);
	/* Draining: the device still reads guest memory; the connection is not gone yet. */
	CHECK(mapped(f.host));
	CHECK(!memcmp(f.host + 4096, "drain me", 9));
	CHECK_EQ(ev_count(EV_DESTROY_CONN), 0);
	CHECK(ev_find(EV_DESTROY_DEV, f.vid, -1, -1, NULL));
	stop_pending = 0;
	CHECK_EQ(vhk_dev_op_complete(f.vid, 0), 0);
	CHECK(ev_wait_match(EV_DESTROY_CONN, f.vid, -1, -1, 3000, NULL));
	CHECK(unmapped_soon(f.host)); /* released right after the completion */
	CHECK_EQ(vhk_dev_op_complete(f.vid, 0), -ENODEV);
	lc_free(&f);
}

static _Atomic int unreg_done_calls;

static void unreg_done(void *arg)
{
	CHECK(arg == &unreg_done_calls);
	unreg_done_calls++;
}

/* Unregister with a stop pending: asynchronous completion, memory kept until then. */
static void t_unregister_async(void)
{
	struct lc_fx f;
	char path[256];

	lc_up(&f);
	CHECK_EQ(vhk_dev_get_path(f.vid, path, sizeof(path)), 0);
	stop_pending = 1;
	CHECK_EQ(vhk_socket_unregister_async(path, NULL, NULL), -EINVAL);
	CHECK_EQ(vhk_socket_unregister_async(path, unreg_done, &unreg_done_calls), 0);
	CHECK_EQ(stop_calls, 1);
	CHECK(ev_find(EV_DESTROY_DEV, f.vid, -1, -1, NULL)); /* on this thread, before return */
	CHECK(vuf_peer_closed(f.v, 3000));
	CHECK(access(path, F_OK) < 0);
	/* The path is free at once; the old device is still draining. */
	CHECK_EQ(vhk_socket_register(path, 0), 0);
	msleep(300);
	CHECK_EQ(unreg_done_calls, 0);
	CHECK(mapped(f.host));
	CHECK(!memcmp(f.host + 4096, "drain me", 9));
	CHECK_EQ(ev_count(EV_DESTROY_CONN), 0);
	stop_pending = 0;
	CHECK_EQ(vhk_dev_op_complete(f.vid, 0), 0);
	CHECK(ev_wait_match(EV_DESTROY_CONN, f.vid, -1, -1, 3000, NULL));
	for (int i = 0; i < 300 && unreg_done_calls == 0; i++)
		msleep(10);
	CHECK_EQ(unreg_done_calls, 1);
	CHECK(unmapped_soon(f.host));
	CHECK_EQ(vhk_socket_unregister(path), 0);
	CHECK_EQ(vhk_socket_unregister_async(path, unreg_done, &unreg_done_calls), -ENOENT);
	lc_free(&f);
}

/* Nothing pending: the completion still comes, from the control thread. */
static void t_unregister_async_idle(void)
{
	struct lc_fx f;
	char path[256];

	lc_up(&f);
	CHECK_EQ(vhk_dev_get_path(f.vid, path, sizeof(path)), 0);
	CHECK_EQ(vhk_socket_unregister_async(path, unreg_done, &unreg_done_calls), 0);
	CHECK(ev_find(EV_DESTROY_CONN, f.vid, -1, -1, NULL)); /* synchronous teardown */
	CHECK(!mapped(f.host));
	for (int i = 0; i < 300 && unreg_done_calls == 0; i++)
		msleep(10);
	CHECK_EQ(unreg_done_calls, 1);
	lc_free(&f);
}

/* Wait until the call count reaches @n. */
static void wait_calls(_Atomic int *calls, int n)
{
	for (int i = 0; i < 300 && *calls < n; i++)
		msleep(10);
	CHECK_EQ(*calls, n);
}

/* A new memory table on a running device: queue_stop (awaited), swap, queue_start. */
static void t_mem_swap_awaits_stop(void)
{
	struct lc_fx f;
	struct vhk_mem_region mr;
	struct vhost_user_msg msg;

	lc_up(&f);
	stop_pending = 1;
	/* The same layout again: new fds, so the library maps it anew. */
	vuf_set_reply_timeout(5000);
	struct mt_hdr h = {.nregions = 1};
	struct {
		struct mt_hdr h;
		struct vhost_user_mem_region r;
	} __attribute__((packed)) p = {h, {f.m->r[0].gpa, f.m->r[0].size,
					   (uint64_t)(uintptr_t)f.m->r[0].hva, 0}};
	CHECK_EQ(vuf_send(f.v, VHOST_USER_SET_MEM_TABLE,
			  VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, &p, sizeof(p),
			  &f.m->r[0].fd, 1), 0);
	wait_calls(&stop_calls, 1);
	CHECK_EQ(vuf_recv(f.v, &msg, 400), -ETIMEDOUT); /* the reply waits for the stop */
	CHECK_EQ(vhk_dev_get_mem_table(f.vid, &mr, 1), 1);
	CHECK(mr.host_addr == f.host); /* the old table is still the one installed */
	CHECK(mapped(f.host));
	CHECK_EQ(start_calls, 1);
	stop_pending = 0;
	CHECK_EQ(vhk_dev_op_complete(f.vid, 0), 0);
	CHECK_EQ(vuf_recv(f.v, &msg, 3000), 0);
	CHECK_EQ(msg.hdr.request, VHOST_USER_SET_MEM_TABLE);
	CHECK_EQ(msg.payload.u64, 0);
	CHECK_EQ(start_calls, 2); /* back up on the new table */
	CHECK_EQ(vhk_dev_get_mem_table(f.vid, &mr, 1), 1);
	CHECK(mr.host_addr != f.host);
	CHECK(!memcmp((uint8_t *)mr.host_addr + 4096, "drain me", 9));
	CHECK(ev_wait(EV_NEW_DEV, 2, 3000)); /* re-announced */
	fe_usable(f.v);
	lc_free(&f);
}

/* SET_VRING_ADDR on a running queue: the device sees it stop and start again. */
static void t_ring_addr_restart(void)
{
	struct lc_fx f;
	struct vhost_user_msg msg;

	lc_up(&f);
	stop_pending = 1;
	struct vhost_user_vring_addr a = {
	    .index = 0,
	    .desc_user_addr = gmem_qva(f.m, f.r->desc_gpa),
	    .used_user_addr = gmem_qva(f.m, f.r->used_gpa),
	    .avail_user_addr = gmem_qva(f.m, f.r->avail_gpa),
	};
	CHECK_EQ(vuf_send(f.v, VHOST_USER_SET_VRING_ADDR,
			  VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, &a, sizeof(a), NULL, 0),
		 0);
	wait_calls(&stop_calls, 1);
	CHECK_EQ(vuf_recv(f.v, &msg, 400), -ETIMEDOUT);
	CHECK_EQ(start_calls, 1);
	stop_pending = 0;
	CHECK_EQ(vhk_dev_op_complete(f.vid, 0), 0);
	CHECK_EQ(vuf_recv(f.v, &msg, 3000), 0);
	CHECK_EQ(msg.hdr.request, VHOST_USER_SET_VRING_ADDR);
	CHECK_EQ(msg.payload.u64, 0);
	CHECK_EQ(start_calls, 2);
	/* Bad flags are refused before anything stops. */
	a.flags = 1u << 5;
	fe_nack(f.v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
	CHECK_EQ(stop_calls, 1);
	/* Not running: the addresses change without a stop. */
	struct vhost_user_vring_state s = {.index = 0, .num = 0};
	CHECK_EQ(vuf_request(f.v, VHOST_USER_GET_VRING_BASE, &s, 8, NULL, 0, &msg), 0);
	CHECK_EQ(stop_calls, 2);
	a.flags = 0;
	fe_ack(f.v, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
	CHECK_EQ(stop_calls, 2);
	CHECK_EQ(start_calls, 2);
	lc_free(&f);
}

/* SET_STATUS 0 resets the device: its answer waits for the queue to be stopped. */
static void t_reset_awaits_stop(void)
{
	struct lc_fx f;
	struct vhost_user_msg msg;
	uint64_t zero = 0;

	lc_up(&f);
	stop_pending = 1;
	CHECK_EQ(vuf_send(f.v, VHOST_USER_SET_STATUS,
			  VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, &zero, 8, NULL, 0), 0);
	wait_calls(&stop_calls, 1);
	CHECK_EQ(vuf_recv(f.v, &msg, 400), -ETIMEDOUT);
	stop_pending = 0;
	CHECK_EQ(vhk_dev_op_complete(f.vid, 0), 0);
	CHECK_EQ(vuf_recv(f.v, &msg, 3000), 0);
	CHECK_EQ(msg.hdr.request, VHOST_USER_SET_STATUS);
	CHECK(ev_find(EV_DESTROY_DEV, f.vid, -1, -1, NULL));
	struct vhk_vq_info info;
	CHECK_EQ(vhk_vq_get_info(f.vid, 0, &info), 0);
	CHECK(!info.started);
	lc_free(&f);
}

/*
 * A start that fails (here: the control thread cannot be created, the
 * process is at its thread limit) leaves nothing behind: no socket file,
 * not marked started, so a later start works.
 */
static void t_start_failure_leaves_nothing(void)
{
	struct rlimit old, none;
	char dir[] = "/tmp/vhk-lc-XXXXXX", path[64];

	CHECK(mkdtemp(dir) != NULL);
	CHECK_EQ(chmod(dir, 0777), 0);
	snprintf(path, sizeof(path), "%s/sock", dir);
	/* RLIMIT_NPROC binds only without CAP_SYS_RESOURCE: drop root first. */
	if (geteuid() == 0) {
		CHECK_EQ(setresgid(65534, 65534, 65534), 0);
		CHECK_EQ(setresuid(65534, 65534, 65534), 0);
	}
	CHECK_EQ(getrlimit(RLIMIT_NPROC, &old), 0);
	none = old;
	none.rlim_cur = 0;
	CHECK_EQ(setrlimit(RLIMIT_NPROC, &none), 0);
	CHECK_EQ(vhk_socket_register(path, 0), 0);
	int rc = vhk_socket_start(path);
	CHECK(rc == -EAGAIN || rc == -ENOMEM);
	CHECK(access(path, F_OK) < 0);
	CHECK_EQ(vhk_socket_set_max_queues(path, 4), 0); /* still configurable: not started */
	CHECK_EQ(vhk_socket_start(path), rc);
	CHECK_EQ(setrlimit(RLIMIT_NPROC, &old), 0);
	CHECK_EQ(vhk_socket_start(path), 0);
	CHECK_EQ(vhk_socket_start(path), -EALREADY);
	int fd = uds_connect(path);
	CHECK(fd >= 0);
	close(fd);
	CHECK_EQ(vhk_socket_unregister(path), 0);
	(void)rmdir(dir);
}

/* A socket that was never started: the completion still comes. */
static void t_unregister_async_never_started(void)
{
	char dir[] = "/tmp/vhk-lc-XXXXXX", path[64];

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/sock", dir);
	CHECK_EQ(vhk_socket_register(path, 0), 0);
	CHECK_EQ(vhk_socket_unregister_async(path, unreg_done, &unreg_done_calls), 0);
	for (int i = 0; i < 300 && unreg_done_calls == 0; i++)
		msleep(10);
	CHECK_EQ(unreg_done_calls, 1);
	CHECK_EQ(vhk_socket_register(path, 0), 0);
	CHECK_EQ(vhk_socket_unregister(path), 0);
	(void)rmdir(dir);
}

TEST_MAIN(TEST(t_close_awaits_stop), TEST(t_unregister_async_never_started), TEST(t_unregister_async), TEST(t_unregister_async_idle),
	  TEST(t_mem_swap_awaits_stop), TEST(t_ring_addr_restart), TEST(t_reset_awaits_stop),
	  TEST(t_start_failure_leaves_nothing))
