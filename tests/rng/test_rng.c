/* SPDX-License-Identifier: MIT */
/*
 * vhk-rng (apps/vhk-rng, binary from $VHK_RNG_BIN) run as a child process
 * and driven by the in-tree frontend: vuf over the socket, a gvq as the
 * guest's virtio-rng driver, the ring format from the command line
 * (--split / --packed). Every byte the device writes is
 * compared with the seeded stream of vhk-rng.8, recomputed here.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "vuf.h"

#define RING 32
#define SEED 0x1234abcdull
#define F(b) (1ull << (b))
#define packed gvq_run_packed /* the run's ring format (GVQ_TEST_MAIN) */

/* ---- the seeded stream (vhk-rng.8) ---- */

static uint8_t stream_byte(uint64_t seed, uint64_t i)
{
	uint64_t z = seed + (i / 8 + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (uint8_t)((z ^ (z >> 31)) >> (8 * (i % 8)));
}

/* ---- the vhk-rng process ---- */

struct proc {
	pid_t pid;
	int out_fd;
	char dir[64], path[128];
	char out[8192];
	size_t out_len;
};

/* Start vhk-rng on a fresh socket path with the NULL-terminated @args after --socket PATH. */
static void rng_spawn(struct proc *p, const char *const *args)
{
	const char *bin = getenv("VHK_RNG_BIN");
	char *argv[16];
	int n = 0, pfd[2];

	memset(p, 0, sizeof(*p));
	CHECK(bin && *bin);
	snprintf(p->dir, sizeof(p->dir), "/tmp/vhk-rng-test-XXXXXX");
	CHECK(mkdtemp(p->dir));
	snprintf(p->path, sizeof(p->path), "%s/sock", p->dir);
	argv[n++] = (char *)(uintptr_t)bin;
	argv[n++] = (char *)(uintptr_t)"--socket";
	argv[n++] = p->path;
	for (int i = 0; args && args[i] && n < 15; i++)
		argv[n++] = (char *)(uintptr_t)args[i];
	argv[n] = NULL;
	CHECK_EQ(pipe2(pfd, O_CLOEXEC), 0);
	p->pid = fork();
	CHECK(p->pid >= 0);
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], STDOUT_FILENO);
		execv(bin, argv);
		_exit(127);
	}
	close(pfd[1]);
	p->out_fd = pfd[0];
}

/* Send @sig (unless 0), read stdout to EOF, reap; returns the exit status (-1 if killed). */
static int rng_finish(struct proc *p, int sig)
{
	struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
	int st = 0;

	if (sig)
		CHECK_EQ(kill(p->pid, sig), 0);
	while (p->out_len < sizeof(p->out) - 1 && poll(&pf, 1, 20000) > 0) {
		ssize_t r = read(p->out_fd, p->out + p->out_len, sizeof(p->out) - 1 - p->out_len);
		if (r <= 0)
			break;
		p->out_len += (size_t)r;
	}
	p->out[p->out_len] = 0;
	close(p->out_fd);
	CHECK_EQ(waitpid(p->pid, &st, 0), p->pid);
	fprintf(stderr, "# vhk-rng stdout: %s", p->out);
	unlink(p->path);
	rmdir(p->dir);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Integer @key of the JSON line vhk-rng printed at exit. */
static uint64_t json_u64(const struct proc *p, const char *key)
{
	char pat[64];
	const char *v;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	v = strstr(p->out, pat);
	CHECK(v != NULL);
	return strtoull(v + strlen(pat), NULL, 10);
}

/* ---- the guest ---- */

struct guest {
	struct vuf *v;
	struct gmem *m;
	struct gvq *vq;
	uint64_t pos; /* stream bytes the device has served to us */
};

/* Connect to @path (or accept on @lfd >= 0), negotiate, map memory, start the queue. */
static void guest_up(struct guest *g, const char *path, int lfd)
{
	uint64_t want = F(32) | F(30) | F(29) | F(28) | gvq_run_features();

	memset(g, 0, sizeof(*g));
	if (lfd >= 0)
		CHECK_EQ(vuf_accept(lfd, 5000, &g->v), 0);
	else
		CHECK_EQ(vuf_connect(path, 5000, &g->v), 0);
	CHECK_EQ(vuf_negotiate(g->v, want, F(3)), 0); /* REPLY_ACK */
	CHECK_EQ(g->v->features, want);
	CHECK_EQ(gmem_new(1, 4u << 20, 0, 0, &g->m), 0);
	CHECK_EQ(vuf_set_mem_table(g->v, g->m), 0);
	CHECK_EQ(gvq_new(g->m, RING, g->v->features, &g->vq), 0);
	CHECK_EQ(vuf_start_vring(g->v, 0, g->vq), 0);
}

static void guest_down(struct guest *g)
{
	vuf_close(g->v);
	gvq_free(g->vq);
	gmem_free(g->m);
}

/*
 * Post one request (optional readable @rd bytes, then writable buffers
 * @len[0..n), zeroed) with token @tok and kick; the writable buffers go to @in.
 */
static void post(struct guest *g, uint32_t rd, const uint32_t *len, int n, bool indirect,
		 uintptr_t tok, struct gbuf *in)
{
	struct gbuf out = {gmem_alloc(g->m, rd ? rd : 1, 8), rd};
	CHECK(n <= 8);
	for (int i = 0; i < n; i++) {
		in[i].gpa = gmem_alloc(g->m, len[i], 8);
		in[i].len = len[i];
		CHECK(in[i].gpa);
		uint8_t zero[256] = {0};
		for (uint32_t o = 0; o < len[i]; o += sizeof(zero)) /* the device must overwrite these */
			CHECK_EQ(gmem_write(g->m, in[i].gpa + o, zero,
					    len[i] - o < sizeof(zero) ? len[i] - o : sizeof(zero)), 0);
	}
	CHECK(gvq_add(g->vq, &out, rd ? 1 : 0, in, n, indirect, (void *)tok) >= 0);
	gvq_kick(g->vq);
}

/* Wait up to 5 s for the next used entry; returns its token, *len its length. */
static uintptr_t wait_used(struct guest *g, uint32_t *len)
{
	void *tok = NULL;
	for (int t = 0; t < 5000; t++) {
		int rc = gvq_get_used(g->vq, &tok, len);
		CHECK(rc >= 0);
		if (rc == 1)
			return (uintptr_t)tok;
		usleep(1000);
	}
	CHECK(!"no used entry within 5 s");
	return 0;
}

/* Check @n bytes at @gpa against the stream from g->pos on, and advance it. */
static void expect_stream(struct guest *g, uint64_t gpa, uint32_t n)
{
	static uint8_t buf[1 << 17];
	CHECK(n <= sizeof(buf));
	CHECK_EQ(gmem_read(g->m, gpa, buf, n), 0);
	for (uint32_t i = 0; i < n; i++) {
		if (buf[i] != stream_byte(SEED, g->pos + i)) {
			fprintf(stderr, "# byte %u of the request (stream %" PRIu64 ") is %02x, want %02x\n",
				i, g->pos + i, buf[i], stream_byte(SEED, g->pos + i));
			CHECK(!"bytes differ from the seeded stream");
		}
	}
	g->pos += n;
}

/* One request of writable buffers @len[0..n): used length @want, bytes from the stream. */
static void roundtrip(struct guest *g, uint32_t rd, const uint32_t *len, int n, bool indirect,
		      uint32_t want)
{
	struct gbuf in[8];
	post(g, rd, len, n, indirect, 1, in);
	uint32_t got = 0;
	CHECK_EQ(wait_used(g, &got), 1);
	CHECK_EQ(got, want);
	for (int i = 0; i < n && want; i++) {
		uint32_t part = len[i] < want ? len[i] : want;
		expect_stream(g, in[i].gpa, part);
		want -= part;
	}
}

/* Chains, indirect tables, readable pieces and oversized requests get the exact stream. */
static void t_seeded_bytes(void)
{
	struct proc p;
	struct guest g;
	const char *args[] = {"--seed", "0x1234abcd", NULL};
	rng_spawn(&p, args);
	guest_up(&g, p.path, -1);
	uint32_t one[] = {64}, three[] = {10, 20, 30}, two[] = {100, 28}, big[] = {100000};
	roundtrip(&g, 0, one, 1, false, 64);
	roundtrip(&g, 0, three, 3, false, 60);
	roundtrip(&g, 0, two, 2, true, 128);
	roundtrip(&g, 16, one, 1, false, 64); /* the readable part is ignored */
	roundtrip(&g, 0, big, 1, false, 65536); /* at most 64 KiB per request */
	roundtrip(&g, 0, one, 1, true, 64);
	guest_down(&g);
	CHECK_EQ(rng_finish(&p, SIGINT), 0);
	CHECK_EQ(json_u64(&p, "requests"), 6);
	CHECK_EQ(json_u64(&p, "bytes"), g.pos);
	CHECK_EQ(json_u64(&p, "stream_bytes"), g.pos);
	CHECK_EQ(json_u64(&p, "devices"), 1);
}

/* CPU time (utime + stime, clock ticks) of @pid. */
static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CHECK(n > 0);
	buf[n] = 0;
	const char *s = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	CHECK(s && sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2);
	return (long)(ut + st);
}

/* Idle, the device sleeps (no CPU); a kick the device asked for wakes it. */
static void t_idle_sleeps(void)
{
	struct proc p;
	struct guest g;
	const char *args[] = {"--seed", "0x1234abcd", NULL};
	rng_spawn(&p, args);
	guest_up(&g, p.path, -1);
	uint32_t one[] = {32};
	roundtrip(&g, 0, one, 1, false, 32);
	usleep(100 * 1000);
	long t0 = cpu_ticks(p.pid);
	usleep(1000 * 1000);
	long idle = cpu_ticks(p.pid) - t0;
	fprintf(stderr, "# idle second: %ld ticks\n", idle);
	CHECK(idle <= 2);
	/* The guest kicks only if the device asked (EVENT_IDX / flags): it did. */
	uint64_t kicks = g.vq->kicks_sent;
	for (int i = 0; i < 3; i++) {
		roundtrip(&g, 0, one, 1, false, 32);
		usleep(20 * 1000);
	}
	CHECK_EQ(g.vq->kicks_sent - kicks, 3);
	guest_down(&g);
	CHECK_EQ(rng_finish(&p, SIGTERM), 0);
	CHECK_EQ(json_u64(&p, "requests"), 4);
}

/* GET_VRING_BASE stops the worker; the ring restarted at that base serves the stream on. */
static void t_stop_restart(void)
{
	struct proc p;
	struct guest g;
	const char *args[] = {"--seed", "0x1234abcd", NULL};
	rng_spawn(&p, args);
	guest_up(&g, p.path, -1);
	uint32_t one[] = {48};
	for (int i = 0; i < 3; i++)
		roundtrip(&g, 0, one, 1, false, 48);
	uint32_t base = 0;
	CHECK_EQ(vuf_get_vring_base(g.v, 0, &base), 0);
	CHECK_EQ(base, gvq_base(g.vq));
	CHECK_EQ(base, packed ? 0x80038003u : 3u); /* three one-slot chains */
	/* Posted while stopped: not served. */
	struct gbuf in;
	post(&g, 0, one, 1, false, 2, &in);
	usleep(200 * 1000);
	uint32_t len;
	void *tok;
	CHECK_EQ(gvq_get_used(g.vq, &tok, &len), 0);
	CHECK_EQ(vuf_start_vring_base(g.v, 0, g.vq, base), 0);
	gvq_kick_force(g.vq);
	CHECK_EQ(wait_used(&g, &len), 2);
	CHECK_EQ(len, 48);
	expect_stream(&g, in.gpa, 48);
	roundtrip(&g, 0, one, 1, false, 48);
	guest_down(&g);
	CHECK_EQ(rng_finish(&p, SIGINT), 0);
	CHECK_EQ(json_u64(&p, "requests"), 5);
}

/* A new connection (and client mode) gets served; the stream goes on across devices. */
static void t_reconnect_and_client(void)
{
	struct proc p;
	struct guest g;
	const char *args[] = {"--seed", "0x1234abcd", NULL};
	uint32_t one[] = {40};
	rng_spawn(&p, args);
	guest_up(&g, p.path, -1);
	roundtrip(&g, 0, one, 1, false, 40);
	uint64_t pos = g.pos;
	guest_down(&g);
	guest_up(&g, p.path, -1);
	g.pos = pos;
	roundtrip(&g, 0, one, 1, packed, 40);
	guest_down(&g);
	CHECK_EQ(rng_finish(&p, SIGINT), 0);
	CHECK_EQ(json_u64(&p, "devices"), 2);

	/* Client mode: we listen, vhk-rng connects (and would reconnect). */
	int lfd = -1;
	char dir[] = "/tmp/vhk-rng-cl-XXXXXX", path[128];
	CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	CHECK_EQ(vuf_listen(path, &lfd), 0);
	/* The last --socket wins over the one rng_spawn() puts first. */
	const char *cargs[] = {"--client", "--seed", "0x1234abcd", "--socket", path, NULL};
	rng_spawn(&p, cargs);
	guest_up(&g, NULL, lfd);
	roundtrip(&g, 0, one, 1, false, 40);
	guest_down(&g);
	CHECK_EQ(rng_finish(&p, SIGINT), 0);
	close(lfd);
	unlink(path);
	rmdir(dir);
}

/* --urandom serves (unpredictable) bytes; usage errors exit 2; capabilities print. */
static void t_modes_and_usage(void)
{
	struct proc p;
	struct guest g;
	const char *args[] = {"--urandom", NULL};
	rng_spawn(&p, args);
	guest_up(&g, p.path, -1);
	uint32_t one[] = {64};
	struct gbuf in;
	post(&g, 0, one, 1, false, 1, &in);
	uint32_t len = 0;
	CHECK_EQ(wait_used(&g, &len), 1);
	CHECK_EQ(len, 64);
	uint8_t buf[64], zero[64] = {0};
	CHECK_EQ(gmem_read(g.m, in.gpa, buf, 64), 0);
	CHECK(memcmp(buf, zero, 64) != 0);
	guest_down(&g);
	CHECK_EQ(rng_finish(&p, SIGTERM), 0);
	CHECK_EQ(json_u64(&p, "bytes"), 64);
	CHECK_EQ(json_u64(&p, "stream_bytes"), 0);

	const char *bad[][3] = {{"--seed", "-1", NULL}, {"--seed", "12x", NULL},
				{"--seed", "1", "--urandom"}, {"--nope", NULL, NULL}};
	for (unsigned i = 0; i < 4; i++) {
		rng_spawn(&p, bad[i]);
		CHECK_EQ(rng_finish(&p, 0), 2);
	}
	const char *caps[] = {"--print-capabilities", NULL};
	rng_spawn(&p, caps);
	CHECK_EQ(rng_finish(&p, 0), 0);
	CHECK(strstr(p.out, "\"type\": \"rng\"") != NULL);
}

GVQ_TEST_MAIN(TEST(t_seeded_bytes), TEST(t_idle_sleeps), TEST(t_stop_restart),
	      TEST(t_reconnect_and_client), TEST(t_modes_and_usage))
