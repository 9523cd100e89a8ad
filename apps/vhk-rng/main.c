/* SPDX-License-Identifier: MIT */
/*
 * vhk-rng: a virtio-rng (entropy, virtio device id 4) device on a
 * vhost-user socket, built on vhostkit's public headers only (see
 * vhk-rng.8). One queue (requestq): the guest posts device-writable
 * buffers, a worker thread pops them with vhk_vq_pop(), fills them from
 * the generator and completes them with vhk_vq_push() / vhk_vq_flush().
 *
 * The worker of a device runs while its queue is up (queue_start ..
 * queue_stop) and the device is running (new_device .. destroy_device);
 * both callbacks stop it synchronously, so guest memory is never touched
 * after they return. It sleeps on the kick fd with the enable /
 * re-check / wait sequence when the queue is empty.
 *
 * Exit status: 0 after SIGINT / SIGTERM, 1 setup failure, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vhostkit/vhostkit.h>

#define RNG_IOV_MAX 64
#define RNG_REQ_MAX 65536u /* bytes written into one request at most */
#define F(bit) (1ull << (bit))
#define RNG_FEATURES                                                                          \
	(F(VHK_F_VERSION_1) | F(VHK_F_PROTOCOL_FEATURES) | F(VHK_F_EVENT_IDX) |               \
	 F(VHK_F_INDIRECT_DESC) | F(VHK_F_RING_PACKED))

struct rng_dev {
	int vid;
	int stop_fd;         /* eventfd: wakes the worker to stop */
	atomic_bool stop;
	bool running;        /* the worker thread exists */
	bool queue_up, dev_up;
	pthread_t thread;
};

static uint64_t g_seed;
static int g_urandom = -1;           /* /dev/urandom, or -1: the seeded stream */
static uint64_t g_pos;               /* bytes of the stream served so far */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t g_requests, g_bytes, g_devices;

/* Block @k of the stream: splitmix64 at counter k (see vhk-rng.8). */
static uint64_t stream_block(uint64_t k)
{
	uint64_t z = g_seed + (k + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The next @n bytes of the stream into @dst (lock held): byte i is byte i % 8 of block i / 8. */
static void stream_read(uint8_t *dst, size_t n)
{
	for (size_t i = 0; i < n; i++, g_pos++)
		dst[i] = (uint8_t)(stream_block(g_pos / 8) >> (8 * (g_pos % 8)));
}

/* Fill the writable part of @e (at most RNG_REQ_MAX bytes); returns the bytes written. */
static uint32_t fill(const struct vhk_vq_elem *e)
{
	uint32_t done = 0;

	pthread_mutex_lock(&g_lock); /* one request is one window of the stream */
	for (uint32_t i = e->out_num; i < e->out_num + e->in_num && done < RNG_REQ_MAX; i++) {
		size_t n = e->iov[i].iov_len < RNG_REQ_MAX - done ? e->iov[i].iov_len : RNG_REQ_MAX - done;
		if (g_urandom < 0) {
			stream_read(e->iov[i].iov_base, n);
			done += (uint32_t)n;
			continue;
		}
		ssize_t r = read(g_urandom, e->iov[i].iov_base, n);
		if (r <= 0)
			break;
		done += (uint32_t)r;
		if ((size_t)r < n)
			break;
	}
	pthread_mutex_unlock(&g_lock);
	return done;
}

/* Serve every available request; returns how many, or a negative errno from vhk_vq_pop(). */
static int serve(struct rng_dev *rd, struct vhk_vq_elem *e)
{
	int n = 0, rc;

	while ((rc = vhk_vq_pop(rd->vid, 0, e)) != -ENOENT) {
		if (rc < 0 && rc != -E2BIG)
			break;
		uint32_t len = rc == 0 ? fill(e) : 0; /* -E2BIG: complete it empty */
		if (vhk_vq_push(rd->vid, 0, e->id, len) == 0) {
			atomic_fetch_add(&g_requests, 1);
			atomic_fetch_add(&g_bytes, len);
		}
		n++;
	}
	if (n)
		(void)vhk_vq_flush(rd->vid, 0);
	return n ? n : rc == -ENOENT ? 0 : rc;
}

/* Sleep until a kick (@kick) or the stop fd, at most @timeout_ms; consume the kick. */
static void sleep_on(struct rng_dev *rd, bool kick, int timeout_ms)
{
	struct pollfd p[2] = {{.fd = rd->stop_fd, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
	struct vhk_vq_info info;

	if (kick && vhk_vq_get_info(rd->vid, 0, &info) == 0)
		p[1].fd = info.kick_fd;
	if (kick && p[1].fd < 0)
		timeout_ms = 1; /* no kick fd: the frontend expects us to poll */
	if (poll(p, 2, timeout_ms) > 0 && (p[1].revents & POLLIN))
		(void)vhk_vq_wait_kick(rd->vid, 0, 0);
}

static void *worker(void *arg)
{
	struct rng_dev *rd = arg;
	struct iovec iov[RNG_IOV_MAX];
	struct vhk_vq_elem e = {.iov = iov, .iov_max = RNG_IOV_MAX};
	struct vhk_vq_info info;

	while (!atomic_load(&rd->stop)) {
		int n = serve(rd, &e);
		if (n > 0)
			continue;
		if (n == 0) { /* empty: ask for a kick, look again, then sleep */
			if (vhk_vq_set_notification(rd->vid, 0, true) == 0 && serve(rd, &e) != 0)
				continue;
			sleep_on(rd, true, -1);
		} else if (n == -EAGAIN && vhk_vq_get_info(rd->vid, 0, &info) == 0 && !info.broken) {
			sleep_on(rd, false, 1); /* busy for a moment (the control thread) */
		} else {
			sleep_on(rd, false, -1); /* broken or gone: wait for queue_stop */
		}
	}
	return NULL;
}

/* Run the worker exactly while the queue is up and the device running (control thread). */
static void reconcile(struct rng_dev *rd)
{
	bool want = rd->queue_up && rd->dev_up;
	uint64_t v = 1;

	if (want && !rd->running) {
		atomic_store(&rd->stop, false);
		rd->running = pthread_create(&rd->thread, NULL, worker, rd) == 0;
		if (!rd->running)
			fprintf(stderr, "vhk-rng: device %d: no worker thread\n", rd->vid);
	} else if (!want && rd->running) {
		atomic_store(&rd->stop, true);
		if (write(rd->stop_fd, &v, sizeof(v)) < 0)
			perror("vhk-rng: stop");
		pthread_join(rd->thread, NULL);
		if (read(rd->stop_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			perror("vhk-rng: stop");
		rd->running = false;
	}
}

/* Set flag @field of device @vid to @val and start or stop its worker to match. */
#define RNG_SET(vid, field, val)                                                               \
	do {                                                                                   \
		struct rng_dev *rd_ = vhk_dev_get_priv(vid);                                   \
		if (rd_) {                                                                     \
			rd_->field = (val);                                                    \
			reconcile(rd_);                                                        \
		}                                                                              \
	} while (0)

static int on_dev_init(int vid)
{
	struct rng_dev *rd = calloc(1, sizeof(*rd));

	if (!rd)
		return -ENOMEM;
	rd->vid = vid;
	rd->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rd->stop_fd < 0) {
		free(rd);
		return -errno;
	}
	return vhk_dev_set_priv(vid, rd);
}

static void on_dev_fini(int vid)
{
	struct rng_dev *rd = vhk_dev_get_priv(vid);

	if (!rd)
		return;
	rd->queue_up = rd->dev_up = false;
	reconcile(rd);
	vhk_dev_set_priv(vid, NULL);
	close(rd->stop_fd);
	free(rd);
}

static int on_queue_start(int vid, uint16_t qid)
{
	if (qid == 0)
		RNG_SET(vid, queue_up, true);
	return 0;
}

static int on_queue_stop(int vid, uint16_t qid)
{
	if (qid == 0)
		RNG_SET(vid, queue_up, false);
	return 0;
}

static int on_new_device(int vid)
{
	atomic_fetch_add(&g_devices, 1);
	fprintf(stderr, "vhk-rng: device %d ready\n", vid);
	RNG_SET(vid, dev_up, true);
	return 0;
}

static void on_destroy_device(int vid)
{
	RNG_SET(vid, dev_up, false);
	fprintf(stderr, "vhk-rng: device %d stopped\n", vid);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vhk-rng --socket PATH [--client] [--seed N | --urandom]\n"
		   "       vhk-rng --print-capabilities\n");
}

/* Register, configure and start @path. 0 or -errno (printed). */
static int setup(const char *path, bool client)
{
	static const struct vhk_device_ops ops = {
		.name = "rng", .min_queues = 1, .queue_start = on_queue_start,
		.queue_stop = on_queue_stop, .dev_init = on_dev_init, .dev_fini = on_dev_fini};
	static const struct vhk_callbacks cb = {.new_device = on_new_device,
						.destroy_device = on_destroy_device};
	int rc = vhk_socket_register(path, client ? VHK_CLIENT : 0);

	if (rc < 0) {
		fprintf(stderr, "vhk-rng: register %s: %s\n", path, strerror(-rc));
		return rc;
	}
	if ((rc = vhk_socket_set_device_ops(path, &ops)) < 0 ||
	    (rc = vhk_socket_set_features(path, RNG_FEATURES)) < 0 ||
	    (rc = vhk_socket_set_max_queues(path, 1)) < 0 ||
	    (rc = vhk_socket_set_callbacks(path, &cb, NULL)) < 0 || (rc = vhk_socket_start(path)) < 0) {
		fprintf(stderr, "vhk-rng: set up %s: %s\n", path, strerror(-rc));
		vhk_socket_unregister(path);
	}
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"socket", required_argument, NULL, 's'},  {"socket-path", required_argument, NULL, 's'},
		{"client", no_argument, NULL, 'c'},        {"seed", required_argument, NULL, 'S'},
		{"urandom", no_argument, NULL, 'u'},       {"print-capabilities", no_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	bool client = false, seeded = false, urandom = false;
	char *end;
	sigset_t sigs;
	int opt, sig;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", lopts, NULL)) != -1) {
		switch (opt) {
		case 's': path = optarg; break;
		case 'c': client = true; break;
		case 'u': urandom = true; break;
		case 'h': usage(stdout); return 0;
		case 'p': printf("{\n  \"type\": \"rng\"\n}\n"); return 0;
		case 'S':
			errno = 0;
			g_seed = strtoull(optarg, &end, 0);
			if (errno || !*optarg || *end || *optarg == '-') {
				fprintf(stderr, "vhk-rng: bad value for --seed: '%s'\n", optarg);
				return 2;
			}
			seeded = true;
			break;
		default:
			fprintf(stderr, "vhk-rng: %s '%s'\n", opt == ':' ? "missing value for" : "unknown option",
				argv[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	if (!path || !*path || optind < argc || (seeded && urandom)) {
		usage(stderr);
		return 2;
	}
	if (!seeded && (g_urandom = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) < 0) {
		perror("vhk-rng: /dev/urandom");
		return 1;
	}
	/* Signals are taken by sigwait() below; every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (setup(path, client) < 0)
		return 1;
	if (seeded)
		printf("vhk-rng: serving %s (%s, seed %" PRIu64 ", vhostkit %s)\n", path,
		       client ? "client" : "server", g_seed, vhk_version());
	else
		printf("vhk-rng: serving %s (%s, /dev/urandom, vhostkit %s)\n", path,
		       client ? "client" : "server", vhk_version());
	fflush(stdout);
	while (sigwait(&sigs, &sig) != 0)
		;
	vhk_socket_unregister(path); /* stops every worker (destroy_device, queue_stop) */
	printf("{\"requests\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"devices\":%" PRIu64
	       ",\"stream_bytes\":%" PRIu64 "}\n",
	       atomic_load(&g_requests), atomic_load(&g_bytes), atomic_load(&g_devices), g_pos);
	return 0;
}
