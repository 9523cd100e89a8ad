/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the vhost-user dispatcher as a hostile frontend sees it.
 *
 * The library runs in app-driven mode with two server sockets in a private
 * temporary directory: a virtio-net device (vhk_net_attach, 2 queue pairs)
 * and a small custom device ("cfg": config space, RARP, MTU, queue ops
 * that may answer VHK_OP_PENDING, split or packed rings). Each input is
 * one connection:
 *
 *   byte 0       mode: bit 0 = connect to the cfg device instead of net,
 *                bit 1 = cfg device ops answer VHK_OP_PENDING and the harness
 *                completes them after each dispatch round,
 *                bit 2 = cfg device ops fail (-EIO) instead of succeeding,
 *                bit 3 = run the datapath after every record even while
 *                the device is not running (stale / half-set-up rings).
 *   then records:
 *     1 byte     fd spec: low nibble 0..9 = number of fds; fd i is a
 *                memfd of MEMFD_SIZE bytes if bit (i & 3) of the high nibble
 *                is set, an eventfd otherwise. Low nibble 15: guest write
 *                record (below); 10..14: no fds.
 *     2 bytes    length L (little endian)
 *     L bytes    raw stream bytes (headers + payloads as the fuzzer wrote
 *                them), sent with the fds attached to the first byte;
 *                for a guest write record: [u16 offset][bytes], written
 *                into the newest memfd (the guest's memory: rings, buffers)
 *
 * After each record the loop is dispatched, whatever the library replied
 * is drained, and the datapath API is exercised on the device (net
 * enqueue/dequeue bursts, vring and memory queries, notifications).
 * Every fd the harness created stays open until the end of the input. At
 * the end the client socket is closed, the loop is dispatched until the
 * library has dropped the connection, and those fds are closed. Every
 * CHECK_EVERY inputs the process fd count is compared with the one after
 * the first input, so fd leaks in the library abort the run.
 *
 * Oracles (harness aborts, never on peer input): device and application
 * callbacks must be called in the documented order (dev_init/dev_fini,
 * new/destroy_connection, new/destroy_device, queue_start/queue_stop per
 * queue), with in-range queue ids and config ranges, and the connection
 * must be torn down once the frontend hangs up.
 *
 * Seeds: fuzz/corpus/dispatch (written by fuzz/gen_dispatch_seeds.py).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vhostkit/vhostkit.h"
#include "proto/msg.h"

#define MEMFD_SIZE (4u * 4096u)
#define MAX_REC_FDS 9u
#define NET_PAIRS 2u
#define CFG_PAIRS 1u
#define CFG_SPACE 64u
#define MAX_QUEUES 8u
#define CHECK_EVERY 1000u
#define FD_SLACK 4
#define SETTLE_ROUNDS 200
#define MAX_PENDING 16u

#define MODE_CFG 0x1u
#define MODE_ASYNC 0x2u
#define MODE_FAIL 0x4u
#define MODE_DP_ALWAYS 0x8u

#define SPEC_GUEST_WRITE 0x0fu
#define MAX_INPUT_FDS 128u
#define POOL_PKTS 64u
#define BURST 8u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Harness state for the one connection of the current input. */
struct harness {
	char dir[64];
	char net_path[108];
	char cfg_path[108];
	unsigned mode;
	int conns;          /* new_connection minus destroy_connection */
	int inits;          /* dev_init minus dev_fini */
	bool running;       /* new_device seen, destroy_device not yet */
	int vid;            /* vid of the current connection */
	unsigned pending;   /* cfg ops answered VHK_OP_PENDING, not completed */
	int pending_start[MAX_PENDING]; /* per pending op: the qid it starts, or -1 */
	bool up[MAX_QUEUES];
	uint8_t config[CFG_SPACE];
	unsigned long iters;
	int fd_base;
	bool verbose;       /* FUZZ_DISPATCH_VERBOSE set: print replies and events */
	int fds[MAX_INPUT_FDS]; /* fds created for this input (closed at its end) */
	unsigned nfds;
	int last_memfd;     /* newest memfd of this input, or -1 */
	struct vhk_pool *pool;
};

static struct harness g_h = {.fd_base = -1, .vid = -1, .last_memfd = -1};

/* Report a broken library contract and stop the fuzzer (harness only). */
static void oracle_fail(const char *what)
{
	fprintf(stderr, "fuzz_dispatch: contract violation: %s\n", what);
	abort();
}

/* Log sink that drops everything: the fuzzer's output stays readable. */
static void silent_log(enum vhk_log_level level, const char *msg, void *ctx)
{
	(void)level;
	(void)msg;
	(void)ctx;
}

/* ---- application callbacks (both sockets) ---- */

/* new_connection: exactly one connection per input. */
static int cb_new_connection(int vid)
{
	if (g_h.conns != 0)
		oracle_fail("second new_connection without destroy_connection");
	g_h.conns++;
	g_h.vid = vid;
	return 0;
}

/* destroy_connection: the device and every queue must be down by now. */
static void cb_destroy_connection(int vid)
{
	if (g_h.conns != 1 || vid != g_h.vid)
		oracle_fail("destroy_connection for an unknown connection");
	if (g_h.running)
		oracle_fail("destroy_connection while the device runs");
	for (unsigned q = 0; q < MAX_QUEUES; q++)
		if (g_h.up[q])
			oracle_fail("queue still started at destroy_connection");
	g_h.conns--;
	g_h.pending = 0; /* the connection's pending ops died with it */
}

/* new_device: only once per start, only on a live connection. */
static int cb_new_device(int vid)
{
	if (g_h.conns != 1 || vid != g_h.vid)
		oracle_fail("new_device without a connection");
	if (g_h.running)
		oracle_fail("new_device twice");
	g_h.running = true;
	if (g_h.verbose)
		fprintf(stderr, "  new_device vid %d\n", vid);
	return 0;
}

/* destroy_device: only after new_device. */
static void cb_destroy_device(int vid)
{
	if (!g_h.running || vid != g_h.vid)
		oracle_fail("destroy_device without new_device");
	g_h.running = false;
}

/* vring_state_changed: in range, only while the device runs. */
static int cb_vring_state_changed(int vid, uint16_t qid, int enable)
{
	uint32_t nv = 2 * ((g_h.mode & MODE_CFG) ? CFG_PAIRS : NET_PAIRS);

	if (!g_h.running || vid != g_h.vid)
		oracle_fail("vring_state_changed while the device is not running");
	if (qid >= nv || (enable != 0 && enable != 1))
		oracle_fail("vring_state_changed out of range");
	return 0;
}

static const struct vhk_callbacks g_callbacks = {
	.new_device = cb_new_device,
	.destroy_device = cb_destroy_device,
	.vring_state_changed = cb_vring_state_changed,
	.new_connection = cb_new_connection,
	.destroy_connection = cb_destroy_connection,
};

/* ---- the custom "cfg" device ---- */

/*
 * Result of a cfg op under the current mode (sync success/failure or
 * pending). @start_q is the queue a queue_start op starts, else -1.
 */
static int cfg_op_result(int start_q)
{
	if (g_h.mode & MODE_ASYNC) {
		if (g_h.pending >= MAX_PENDING)
			oracle_fail("too many device ops pending at once");
		g_h.pending_start[g_h.pending++] = start_q;
		return VHK_OP_PENDING;
	}
	return (g_h.mode & MODE_FAIL) ? -EIO : 0;
}

/* queue_start: qid in range, not started twice. */
static int cfg_queue_start(int vid, uint16_t qid)
{
	if (vid != g_h.vid || qid >= 2 * CFG_PAIRS)
		oracle_fail("queue_start out of range");
	if (g_h.up[qid])
		oracle_fail("queue_start on a started queue");
	int rc = cfg_op_result(qid);
	/* Pending counts as started; a failed completion clears it. */
	g_h.up[qid] = rc >= 0;
	return rc;
}

/* queue_stop: qid in range; stopping a never-started queue is allowed. */
static int cfg_queue_stop(int vid, uint16_t qid)
{
	if (vid != g_h.vid || qid >= 2 * CFG_PAIRS)
		oracle_fail("queue_stop out of range");
	g_h.up[qid] = false;
	return cfg_op_result(-1);
}

/* get_config: the core must have checked the range against config_size. */
static int cfg_get_config(int vid, uint8_t *buf, uint32_t offset, uint32_t len)
{
	if (vid != g_h.vid || offset > CFG_SPACE || len > CFG_SPACE - offset)
		oracle_fail("get_config out of range");
	memcpy(buf, g_h.config + offset, len);
	return (g_h.mode & MODE_FAIL) ? -EIO : 0;
}

/* set_config: same range rule; the flags were checked too. */
static int cfg_set_config(int vid, const uint8_t *buf, uint32_t offset, uint32_t len,
			  uint32_t flags)
{
	if (vid != g_h.vid || offset > CFG_SPACE || len > CFG_SPACE - offset)
		oracle_fail("set_config out of range");
	if (flags > VHOST_SET_CONFIG_TYPE_MIGRATION)
		oracle_fail("set_config with unchecked flags");
	memcpy(g_h.config + offset, buf, len);
	return (g_h.mode & MODE_FAIL) ? -EIO : 0;
}

/*
 * handle_msg: the messages the core routes to the device (SEND_RARP,
 * NET_SET_MTU, codes it does not know). The core checked the framing and,
 * for requests it knows, the payload size; the values are ours to check.
 */
static int cfg_handle_msg(int vid, struct vhk_msg *msg)
{
	if (vid != g_h.vid)
		oracle_fail("handle_msg for an unknown vid");
	if (msg->size > VHOST_USER_MAX_PAYLOAD || msg->nfds > VHOST_USER_MAX_FDS || !msg->reply)
		oracle_fail("handle_msg with an unchecked frame");
	if ((msg->request == VHOST_USER_SEND_RARP || msg->request == VHOST_USER_NET_SET_MTU) &&
	    msg->size != 8)
		oracle_fail("handle_msg with an unchecked payload size");
	if (msg->request != VHOST_USER_SEND_RARP && msg->request != VHOST_USER_NET_SET_MTU)
		return VHK_MSG_NOT_HANDLED;
	return cfg_op_result(-1);
}

/* dev_init: once per connection, before new_connection. */
static int cfg_dev_init(int vid)
{
	if (g_h.inits != 0)
		oracle_fail("dev_init twice");
	g_h.inits++;
	return 0;
}

/* dev_fini: only after dev_init. */
static void cfg_dev_fini(int vid)
{
	if (g_h.inits != 1)
		oracle_fail("dev_fini without dev_init");
	g_h.inits--;
}

static const struct vhk_device_ops g_cfg_ops = {
	.name = "fuzzcfg",
	.min_queues = 1,
	.config_size = CFG_SPACE,
	.queue_start = cfg_queue_start,
	.queue_stop = cfg_queue_stop,
	.get_config = cfg_get_config,
	.set_config = cfg_set_config,
	.handle_msg = cfg_handle_msg,
	.dev_init = cfg_dev_init,
	.dev_fini = cfg_dev_fini,
};

/* ---- setup ---- */

/* Unregister both sockets and remove the directory (atexit). */
static void teardown(void)
{
	vhk_pool_free(g_h.pool);
	(void)vhk_socket_unregister(g_h.net_path);
	(void)vhk_socket_unregister(g_h.cfg_path);
	for (int i = 0; i < 10; i++)
		(void)vhk_loop_dispatch(0);
	unlink(g_h.net_path);
	unlink(g_h.cfg_path);
	rmdir(g_h.dir);
}

/* Die on a setup error (harness only). */
static void setup_check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "fuzz_dispatch: %s failed: %s\n", what, strerror(-rc));
		abort();
	}
}

/* Register, configure and start both sockets in a fresh directory. */
static void setup(void)
{
	g_h.verbose = getenv("FUZZ_DISPATCH_VERBOSE") != NULL;
	vhk_log_set_level(g_h.verbose ? VHK_LOG_DEBUG : VHK_LOG_ERR);
	if (!g_h.verbose)
		vhk_log_set_handler(silent_log, NULL);
	snprintf(g_h.dir, sizeof(g_h.dir), "/tmp/vhk-fuzz-XXXXXX");
	if (!mkdtemp(g_h.dir))
		setup_check(-errno, "mkdtemp");
	snprintf(g_h.net_path, sizeof(g_h.net_path), "%s/net.sock", g_h.dir);
	snprintf(g_h.cfg_path, sizeof(g_h.cfg_path), "%s/cfg.sock", g_h.dir);
	setup_check(vhk_loop_app_driven(), "vhk_loop_app_driven");

	setup_check(vhk_socket_register(g_h.net_path, 0), "vhk_socket_register(net)");
	setup_check(vhk_net_attach(g_h.net_path), "vhk_net_attach");
	setup_check(vhk_net_set_queue_pairs(g_h.net_path, NET_PAIRS), "max_queue_pairs(net)");
	setup_check(vhk_socket_set_callbacks(g_h.net_path, &g_callbacks, NULL), "callbacks(net)");
	setup_check(vhk_socket_start(g_h.net_path), "vhk_socket_start(net)");

	setup_check(vhk_socket_register(g_h.cfg_path, 0), "vhk_socket_register(cfg)");
	setup_check(vhk_socket_set_device_ops(g_h.cfg_path, &g_cfg_ops), "device_ops(cfg)");
	setup_check(vhk_socket_enable_features(g_h.cfg_path, (1ull << VHK_F_EVENT_IDX) |
							 (1ull << VHK_F_INDIRECT_DESC) |
							 (1ull << VHK_F_RING_PACKED)),
		    "features(cfg)");
	uint64_t pf = 0;
	setup_check(vhk_socket_get_protocol_features(g_h.cfg_path, &pf), "get pf(cfg)");
	setup_check(vhk_socket_set_protocol_features(g_h.cfg_path, pf | (1ull << VHK_PF_RARP) |
								      (1ull << VHK_PF_NET_MTU)),
		    "set pf(cfg)");
	setup_check(vhk_socket_set_max_queues(g_h.cfg_path, 2 * CFG_PAIRS), "max_queues(cfg)");
	setup_check(vhk_socket_set_callbacks(g_h.cfg_path, &g_callbacks, NULL), "callbacks(cfg)");
	setup_check(vhk_socket_start(g_h.cfg_path), "vhk_socket_start(cfg)");
	setup_check(vhk_pool_create(POOL_PKTS, 2048, 128, 0, &g_h.pool), "vhk_pool_create");
	atexit(teardown);
}

/* Number of open fds of this process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- per input ---- */

/* Verbose mode: print the replies in @buf (assumes whole messages per read). */
static void print_replies(const uint8_t *buf, size_t len)
{
	while (len >= sizeof(struct vhost_user_header)) {
		struct vhost_user_header h;
		uint64_t v = 0;
		memcpy(&h, buf, sizeof(h));
		size_t sz = h.size < len - sizeof(h) ? h.size : len - sizeof(h);
		memcpy(&v, buf + sizeof(h), sz < sizeof(v) ? sz : sizeof(v));
		fprintf(stderr, "  reply req %u flags 0x%x size %u u64 0x%llx\n", h.request, h.flags,
			h.size, (unsigned long long)v);
		buf += sizeof(h) + sz;
		len -= sizeof(h) + sz;
	}
}

/* Read and drop whatever the library sent us, closing any fds it passed. */
static void drain(int cfd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} cbuf;
	char buf[8192];

	for (;;) {
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf)};
		ssize_t r = recvmsg(cfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (r <= 0)
			return;
		if (g_h.verbose)
			print_replies((const uint8_t *)buf, (size_t)r);
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < n; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				close(fd);
			}
		}
	}
}

/*
 * Complete the ops the cfg device left pending, with the mode's result. A
 * queue_start that completes with an error leaves its queue stopped.
 */
static void complete_pending(void)
{
	bool fail = g_h.mode & MODE_FAIL;

	while (g_h.pending) {
		int q = g_h.pending_start[--g_h.pending];
		if (fail && q >= 0)
			g_h.up[q] = false;
		int rc = vhk_dev_op_complete(g_h.vid, fail ? -EIO : 0);
		if (rc < 0 && rc != -ENODEV)
			oracle_fail("vhk_dev_op_complete refused a pending op");
	}
}

/* Dispatch until the loop is idle (bounded), completing ops and draining replies. */
static void pump(int cfd)
{
	for (int i = 0; i < 64; i++) {
		int n = vhk_loop_dispatch(0);
		if (cfd >= 0)
			drain(cfd);
		bool had_pending = g_h.pending != 0;
		complete_pending();
		if (n <= 0 && !had_pending)
			return;
	}
}

/* Create one fd for a record: a memfd of MEMFD_SIZE or an eventfd. */
static int make_fd(bool memfd)
{
	if (!memfd)
		return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int fd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	if (fd >= 0 && ftruncate(fd, MEMFD_SIZE) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Send @len bytes with @nfds fds on the first chunk. The socket is
 * non-blocking: while it is full the library is dispatched so that it reads.
 * Returns false when the library has closed the connection.
 */
static bool send_record(int cfd, const uint8_t *buf, size_t len, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * MAX_REC_FDS)];
	} cbuf;
	size_t off = 0;

	for (int tries = 0; off < len && tries < 1000; tries++) {
		struct iovec iov = {.iov_base = (void *)(uintptr_t)(buf + off), .iov_len = len - off};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		if (off == 0 && nfds) {
			memset(&cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
		}
		ssize_t r = sendmsg(cfd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r > 0) {
			off += (size_t)r;
		} else if (r < 0 && errno != EAGAIN && errno != EINTR) {
			return false;
		}
		pump(cfd);
	}
	return off == len;
}

/* Connect a client to the selected socket and let the library accept it. */
static int connect_client(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (cfd < 0)
		setup_check(-errno, "socket");
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		setup_check(-errno, "connect");
	for (int i = 0; i < SETTLE_ROUNDS && g_h.conns == 0; i++)
		(void)vhk_loop_dispatch(i ? 10 : 0);
	if (g_h.conns != 1)
		oracle_fail("the library did not accept the connection");
	return cfd;
}

/* Hang up and wait until the library has dropped the connection. */
static void disconnect_client(int cfd)
{
	close(cfd);
	for (int i = 0; i < SETTLE_ROUNDS && g_h.conns != 0; i++) {
		(void)vhk_loop_dispatch(i ? 10 : 0);
		complete_pending();
	}
	if (g_h.conns != 0)
		oracle_fail("the library kept a connection the frontend closed");
	/* Run the loop posts that free the connection. */
	pump(-1);
	if (g_h.inits != 0)
		oracle_fail("dev_fini missing after close");
}

/* Write a guest write record ([u16 offset][bytes]) into the newest memfd. */
static void guest_write(const uint8_t *buf, size_t len)
{
	if (g_h.last_memfd < 0 || len < 2)
		return;
	size_t off = ((size_t)buf[0] | (size_t)buf[1] << 8) % MEMFD_SIZE;
	size_t n = len - 2;
	if (n > MEMFD_SIZE - off)
		n = MEMFD_SIZE - off;
	if (pwrite(g_h.last_memfd, buf + 2, n, (off_t)off) < 0)
		setup_check(-errno, "pwrite(memfd)");
}

/* Net datapath: fill the rx queues, empty the tx queues. */
static void net_traffic(int vid)
{
	struct vhk_pkt *pkts[BURST];

	for (uint16_t q = 0; q < 2 * NET_PAIRS; q += 2) {
		if (vhk_pkt_alloc_bulk(g_h.pool, pkts, 4) < 0)
			oracle_fail("packet pool exhausted (packets leaked)");
		for (unsigned i = 0; i < 4; i++) {
			uint8_t *p = vhk_pkt_append(pkts[i], 60 + 500 * i);
			if (p)
				memset(p, (int)(q + i), 60 + 500 * i);
		}
		/* Offload metadata for the rx header paths: csum, TSO, valid. */
		pkts[1]->ol.flags = VHK_PKT_OL_NEEDS_CSUM;
		pkts[1]->ol.csum_start = 34;
		pkts[1]->ol.csum_offset = 16;
		pkts[2]->ol.flags = VHK_PKT_OL_NEEDS_CSUM;
		pkts[2]->ol.gso_type = VHK_PKT_GSO_TCPV4;
		pkts[2]->ol.gso_size = 536;
		pkts[2]->ol.csum_start = 34;
		pkts[2]->ol.csum_offset = 16;
		pkts[3]->ol.flags = VHK_PKT_OL_DATA_VALID;
		uint16_t in = vhk_net_enqueue_burst(vid, q, pkts, 4);
		if (in > 4)
			oracle_fail("enqueue_burst took more than given");
		if (g_h.verbose && in)
			fprintf(stderr, "  enqueued %u packets into vring %u\n", in, q);
		vhk_pkt_free_bulk(pkts, 4);
		(void)vhk_vq_avail_count(vid, (uint16_t)(q + 1));
		uint16_t n = vhk_net_dequeue_burst(vid, (uint16_t)(q + 1), g_h.pool, pkts, BURST);
		if (n > BURST)
			oracle_fail("dequeue_burst returned more than asked");
		if (g_h.verbose && n)
			fprintf(stderr, "  dequeued %u packets from vring %u\n", n, q + 1);
		vhk_pkt_free_bulk(pkts, n);
	}
}

/* Exercise the datapath and query API on the current device. */
static void datapath(void)
{
	struct vhk_mem_region regs[4];
	struct vhk_vq_info info;
	uint32_t nv = 2 * ((g_h.mode & MODE_CFG) ? CFG_PAIRS : NET_PAIRS);
	int vid = g_h.vid;

	if (g_h.conns != 1 || (!g_h.running && !(g_h.mode & MODE_DP_ALWAYS)))
		return;
	(void)vhk_dev_get_mem_table(vid, regs, 4);
	(void)vhk_dev_get_vq_count(vid);
	for (uint16_t q = 0; q < nv + 1; q++) {
		(void)vhk_vq_get_info(vid, q, &info);
		(void)vhk_vq_set_notification(vid, q, q & 1);
		(void)vhk_vq_notify(vid, q);
		(void)vhk_vq_wait_kick(vid, q, 0);
	}
	if (!(g_h.mode & MODE_CFG))
		net_traffic(vid);
	if (vhk_pool_avail(g_h.pool) != POOL_PKTS)
		oracle_fail("packets missing from the pool after a burst");
}

/* Create the fds of one record; they stay open until the input ends. */
static size_t make_record_fds(uint8_t spec, int *fds)
{
	size_t want = spec & 0x0fu, made = 0;

	if (want > MAX_REC_FDS)
		return 0;
	for (; made < want && g_h.nfds < MAX_INPUT_FDS; made++) {
		bool memfd = (spec >> (4 + (made & 3))) & 1;
		fds[made] = make_fd(memfd);
		if (fds[made] < 0)
			break;
		g_h.fds[g_h.nfds++] = fds[made];
		if (memfd)
			g_h.last_memfd = fds[made];
	}
	return made;
}

/* Send every record of the input on @cfd. */
static void play_records(int cfd, const uint8_t *data, size_t size)
{
	size_t pos = 0;

	while (pos + 3 <= size) {
		uint8_t spec = data[pos];
		size_t len = (size_t)data[pos + 1] | (size_t)data[pos + 2] << 8;
		int fds[MAX_REC_FDS];
		bool alive = true;

		pos += 3;
		if (len > size - pos)
			len = size - pos;
		if ((spec & 0x0fu) == SPEC_GUEST_WRITE) {
			guest_write(data + pos, len);
		} else {
			size_t made = make_record_fds(spec, fds);
			alive = len == 0 || send_record(cfd, data + pos, len, fds, made);
		}
		pos += len;
		pump(cfd);
		if (!alive || g_h.conns == 0)
			return;
		datapath();
		pump(cfd);
	}
}

/* Close every fd created for the input. */
static void close_input_fds(void)
{
	for (unsigned i = 0; i < g_h.nfds; i++)
		close(g_h.fds[i]);
	g_h.nfds = 0;
	g_h.last_memfd = -1;
}

/* Every CHECK_EVERY inputs: the fd count must not have grown. */
static void check_fd_leak(void)
{
	g_h.iters++;
	if (g_h.fd_base < 0) {
		g_h.fd_base = count_fds();
		return;
	}
	if (g_h.iters % CHECK_EVERY)
		return;
	int now = count_fds();
	if (now > g_h.fd_base + FD_SLACK) {
		fprintf(stderr, "fuzz_dispatch: fd count grew from %d to %d\n", g_h.fd_base, now);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 1)
		return 0;
	g_h.mode = data[0];
	g_h.pending = 0;
	memset(g_h.up, 0, sizeof(g_h.up));
	int cfd = connect_client((g_h.mode & MODE_CFG) ? g_h.cfg_path : g_h.net_path);
	play_records(cfd, data + 1, size - 1);
	disconnect_client(cfd);
	close_input_fds();
	check_fd_leak();
	return 0;
}
