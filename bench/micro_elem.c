/* SPDX-License-Identifier: MIT */
/*
 * vhk-micro-elem: in-process microbenchmark of the element API
 * (vhostkit/vhk_vq.h) with and without inflight tracking.
 *
 * A device of one queue on the public API serves requests the harness
 * guest (gvq) posts: 16 readable bytes and 64 writable ones
 * each. Guest and device run in lockstep in one thread, batch after batch:
 * the guest posts up to --batch requests, the device pops them
 * (vhk_vq_pop), writes one status byte, completes them (vhk_vq_push) and
 * publishes (vhk_vq_flush), the guest reaps and re-posts. With --inflight 1
 * the socket offers INFLIGHT_SHMFD and the frontend hands over a region
 * (GET/SET_INFLIGHT_FD) before the ring starts, so every pop, push and
 * flush also updates the region. bench/callgrind-elem counts the
 * instructions of the three calls per request.
 *
 *   vhk-micro-elem [--ring split|packed] [--inflight 0|1] [--requests N]
 *                  [--batch B] [--ring-size S]
 *
 * Output: one JSON line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vhostkit/vhostkit.h>

#include "gvq.h"
#include "vuf.h"

#define F(bit) (1ull << (bit))
#define REQ_OUT 16
#define REQ_IN 64

struct opts {
	bool packed, inflight;
	uint64_t requests;
	uint32_t batch;
	uint16_t ring_size;
};

static atomic_int g_vid = -1;

static void die(const char *what, int rc)
{
	fprintf(stderr, "vhk-micro-elem: %s failed (%d: %s)\n", what, rc,
		strerror(rc < 0 ? -rc : rc));
	exit(1);
}

static int cb_new_device(int vid)
{
	atomic_store(&g_vid, vid);
	return 0;
}

static void cb_destroy_device(int vid)
{
	(void)vid;
	atomic_store(&g_vid, -1);
}

/* GET_INFLIGHT_FD: the region's fd and size from the reply. */
static int get_inflight(struct vuf *v, uint16_t nq, uint16_t qs, int *ret_fd, uint64_t *ret_size)
{
	struct vhost_user_inflight in = {.num_queues = nq, .queue_size = qs};
	struct vhost_user_msg rep;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	size_t got = 0, want = sizeof(rep.hdr) + sizeof(in);
	int rc = vuf_send(v, VHOST_USER_GET_INFLIGHT_FD, VHOST_USER_VERSION, &in, sizeof(in),
			  NULL, 0);

	*ret_fd = -1;
	if (rc < 0)
		return rc;
	while (got < want) {
		struct iovec iov = {(char *)&rep + got, want - got};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
				    .msg_controllen = sizeof(cm.buf)};
		ssize_t r = recvmsg(v->fd, &mh, MSG_CMSG_CLOEXEC);
		if (r <= 0)
			return -EPROTO;
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		if (c && c->cmsg_type == SCM_RIGHTS)
			memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
		got += (size_t)r;
	}
	*ret_size = rep.payload.inflight.mmap_size;
	return *ret_fd >= 0 && rep.hdr.size == sizeof(in) ? 0 : -EPROTO;
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"ring", required_argument, NULL, 'r'},	    {"inflight", required_argument, NULL, 'i'},
		{"requests", required_argument, NULL, 'n'}, {"batch", required_argument, NULL, 'b'},
		{"ring-size", required_argument, NULL, 's'}, {NULL, 0, NULL, 0},
	};
	int c;

	*o = (struct opts){.requests = 20000, .batch = 32, .ring_size = 256};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'r':
			o->packed = !strcmp(optarg, "packed");
			break;
		case 'i':
			o->inflight = atoi(optarg) != 0;
			break;
		case 'n':
			o->requests = strtoull(optarg, NULL, 0);
			break;
		case 'b':
			o->batch = (uint32_t)atoi(optarg);
			break;
		case 's':
			o->ring_size = (uint16_t)atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: vhk-micro-elem [--ring split|packed] [--inflight 0|1] "
					"[--requests N] [--batch B] [--ring-size S]\n");
			exit(2);
		}
	}
	if (o->batch == 0 || o->batch > o->ring_size)
		o->batch = o->ring_size;
}

int main(int argc, char **argv)
{
	static const struct vhk_device_ops ops = {.name = "bench-elem", .min_queues = 1};
	struct vhk_callbacks cb = {.new_device = cb_new_device, .destroy_device = cb_destroy_device};
	char dir[] = "/tmp/vhk-micro-elem-XXXXXX", path[108];
	struct opts o;
	struct vuf *v = NULL;
	struct gmem *m = NULL;
	struct gvq *g = NULL;
	int rc, ifd = -1;

	parse(argc, argv, &o);
	uint64_t f = F(VHK_F_VERSION_1) | F(VHK_F_PROTOCOL_FEATURES) | F(VHK_F_EVENT_IDX) |
		     (o.packed ? F(VHK_F_RING_PACKED) : 0);
	uint64_t pf = F(VHK_PF_MQ) | F(VHK_PF_REPLY_ACK) |
		      (o.inflight ? F(VHK_PF_INFLIGHT_SHMFD) : 0);
	if (!mkdtemp(dir))
		die("mkdtemp", -errno);
	snprintf(path, sizeof(path), "%s/sock", dir);
	if ((rc = vhk_socket_register(path, 0)) || (rc = vhk_socket_set_device_ops(path, &ops)) ||
	    (rc = vhk_socket_set_features(path, f)) ||
	    (rc = vhk_socket_set_protocol_features(path, pf)) ||
	    (rc = vhk_socket_set_max_queues(path, 1)) ||
	    (rc = vhk_socket_set_callbacks(path, &cb, NULL)) || (rc = vhk_socket_start(path)))
		die("socket setup", rc);
	if ((rc = vuf_connect(path, 3000, &v)) || (rc = vuf_negotiate(v, f, pf)))
		die("negotiation", rc);
	if (o.inflight) {
		uint64_t size = 0;
		if ((rc = get_inflight(v, 1, o.ring_size, &ifd, &size)))
			die("GET_INFLIGHT_FD", rc);
		struct vhost_user_inflight in = {.mmap_size = size, .num_queues = 1,
						 .queue_size = o.ring_size};
		if ((rc = vuf_request(v, VHOST_USER_SET_INFLIGHT_FD, &in, sizeof(in), &ifd, 1, NULL)))
			die("SET_INFLIGHT_FD", rc);
	}
	if ((rc = gmem_new(1, 8u << 20, 0, 0, &m)) || (rc = vuf_set_mem_table(v, m)))
		die("guest memory", rc);
	rc = gvq_new(m, o.ring_size, f, &g);
	if (rc)
		die("ring", rc);
	rc = vuf_start_vring(v, 0, g);
	if (rc)
		die("vring start", rc);
	for (int i = 0; i < 3000 && atomic_load(&g_vid) < 0; i++)
		usleep(1000);
	int vid = atomic_load(&g_vid);
	if (vid < 0)
		die("new_device", -ETIMEDOUT);

	/* One fixed pair of buffers per ring slot; the token is the slot + 1. */
	uint64_t *out = calloc(o.ring_size, sizeof(*out)), *inb = calloc(o.ring_size, sizeof(*inb));
	uint32_t *free_slots = calloc(o.ring_size, sizeof(*free_slots)), nfree = o.ring_size;
	if (!out || !inb || !free_slots)
		die("calloc", -ENOMEM);
	for (uint32_t i = 0; i < o.ring_size; i++) {
		out[i] = gmem_alloc(m, REQ_OUT, 16);
		inb[i] = gmem_alloc(m, REQ_IN, 16);
		free_slots[i] = i;
	}
	struct iovec iov[4];
	uint64_t done = 0, posted = 0;
	while (done < o.requests) {
		/* Guest: post a batch. */
		uint32_t k = 0;
		while (k < o.batch && nfree && posted < o.requests) {
			uint32_t s = free_slots[--nfree];
			struct gbuf bo = {out[s], REQ_OUT}, bi = {inb[s], REQ_IN};
			void *tok = (void *)(uintptr_t)(s + 1);
			rc = gvq_add(g, &bo, 1, &bi, 1, false, tok);
			if (rc < 0)
				die("guest add", rc);
			k++;
			posted++;
		}
		gvq_publish(g);
		/* Device: pop, answer, complete, publish. */
		for (;;) {
			struct vhk_vq_elem el = {.iov = iov, .iov_max = 4};
			rc = vhk_vq_pop(vid, 0, &el);
			if (rc == -ENOENT)
				break;
			if (rc)
				die("vhk_vq_pop", rc);
			*(uint8_t *)iov[el.out_num].iov_base = 0;
			if ((rc = vhk_vq_push(vid, 0, el.id, 1)))
				die("vhk_vq_push", rc);
		}
		if ((rc = vhk_vq_flush(vid, 0)) < 0)
			die("vhk_vq_flush", rc);
		/* Guest: reap. */
		for (;;) {
			void *tok = NULL;
			uint32_t len = 0;
			rc = gvq_get_used(g, &tok, &len);
			if (rc == 0)
				break;
			if (rc < 0 || len != 1)
				die("guest used", rc < 0 ? rc : -EPROTO);
			free_slots[nfree++] = (uint32_t)(uintptr_t)tok - 1;
			done++;
		}
	}
	printf("{\"ring\": \"%s\", \"inflight\": %d, \"requests\": %llu, \"batch\": %u}\n",
	       o.packed ? "packed" : "split", o.inflight, (unsigned long long)done, o.batch);
	vuf_close(v);
	vhk_socket_unregister(path);
	rmdir(dir);
	if (ifd >= 0)
		close(ifd);
	free(out);
	free(inb);
	free(free_slots);
	gvq_free(g);
	gmem_free(m);
	return 0;
}
