/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the vhk-fwd tests (see fwd_common.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "fwd_common.h"

void fwd_prepare(struct fwdproc *fp)
{
	memset(fp, 0, sizeof(*fp));
	fp->pid = -1;
	fp->out_fd = -1;
	snprintf(fp->dir, sizeof(fp->dir), "/tmp/vhk-fwd-test-XXXXXX");
	CHECK(mkdtemp(fp->dir));
	snprintf(fp->path, sizeof(fp->path), "%s/sock", fp->dir);
}

void fwd_spawn(struct fwdproc *fp, const char *const *args)
{
	const char *bin = getenv("VHK_FWD_BIN");
	char *argv[40];
	int n = 0, pfd[2];

	CHECK(bin && *bin);
	CHECK(pipe2(pfd, O_CLOEXEC) == 0);
#define ARG(s) (argv[n++] = (char *)(uintptr_t)(s))
	ARG(bin);
	ARG("--socket");
	ARG(fp->path);
	ARG("--stats-period");
	ARG("0");
	ARG("--json");
	for (int i = 0; args && args[i] && n < 39; i++)
		ARG(args[i]);
#undef ARG
	argv[n] = NULL;
	fp->pid = fork();
	CHECK(fp->pid >= 0);
	if (fp->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], STDOUT_FILENO);
		execv(bin, argv);
		_exit(127);
	}
	close(pfd[1]);
	fp->out_fd = pfd[0];
}

/* Read the child's stdout until EOF (the child exits) or 20 s pass. */
static void read_all(struct fwdproc *fp)
{
	struct pollfd p = {.fd = fp->out_fd, .events = POLLIN};

	while (fp->out_len < sizeof(fp->out) - 1 && poll(&p, 1, 20000) > 0) {
		ssize_t r = read(fp->out_fd, fp->out + fp->out_len, sizeof(fp->out) - 1 - fp->out_len);
		if (r <= 0)
			break;
		fp->out_len += (size_t)r;
	}
	fp->out[fp->out_len] = 0;
	close(fp->out_fd);
	fp->out_fd = -1;
}

int fwd_wait(struct fwdproc *fp)
{
	int st = 0;

	read_all(fp);
	CHECK(waitpid(fp->pid, &st, 0) == fp->pid);
	fp->pid = -1;
	fprintf(stderr, "# vhk-fwd stdout:\n");
	for (const char *l = fp->out; *l;) {
		size_t n = strcspn(l, "\n");
		fprintf(stderr, "#   %.*s\n", (int)n, l);
		l += n + (l[n] == '\n');
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int fwd_finish(struct fwdproc *fp, int sig)
{
	CHECK(kill(fp->pid, sig) == 0);
	return fwd_wait(fp);
}

uint64_t fwd_json_u64(const struct fwdproc *fp, const char *key)
{
	const char *json = NULL, *p = fp->out;
	char pat[64];

	/* the last line that starts with '{' */
	for (; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (*p == '{')
			json = p;
	CHECK(json);
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *v = strstr(json, pat);
	CHECK(v);
	return strtoull(v + strlen(pat), NULL, 10);
}

void fwd_cleanup(struct fwdproc *fp)
{
	if (fp->pid > 0) {
		kill(fp->pid, SIGKILL);
		waitpid(fp->pid, NULL, 0);
	}
	if (fp->out_fd >= 0)
		close(fp->out_fd);
	unlink(fp->path);
	rmdir(fp->dir);
}

void guest_setup(struct guest *g, struct vuf *v, uint32_t nq, uint64_t extra)
{
	uint64_t want = (1ull << 32) | (1ull << 30) | (1ull << 22) | extra;

	CHECK(nq >= 1 && nq <= FWD_MAXQ);
	memset(g, 0, sizeof(*g));
	g->v = v;
	g->nq = nq;
	CHECK_EQ(gmem_new(1, 64u << 20, 0, 0, &g->m), 0);
	CHECK_EQ(vuf_negotiate(v, want, (1ull << 0) | (1ull << 3)), 0);
	CHECK_EQ(vuf_set_mem_table(v, g->m), 0);
	for (uint32_t q = 0; q < nq; q++) {
		CHECK_EQ(gvq_new(g->m, FWD_RING, v->features, &g->rx[q]), 0);
		CHECK_EQ(gvq_new(g->m, FWD_RING, v->features, &g->tx[q]), 0);
		for (int i = 0; i < FWD_RING; i++) {
			struct gbuf in = {gmem_alloc(g->m, FWD_RXBUF, 64), FWD_RXBUF};
			CHECK(in.gpa);
			CHECK(gvq_add(g->rx[q], NULL, 0, &in, 1, false,
				      (void *)(uintptr_t)in.gpa) >= 0);
		}
		CHECK_EQ(vuf_start_vring(v, 2 * q, g->rx[q]), 0);
		CHECK_EQ(vuf_start_vring(v, 2 * q + 1, g->tx[q]), 0);
		gvq_kick(g->rx[q]);
	}
}

void guest_connect(struct guest *g, const char *path, uint32_t nq, uint64_t extra)
{
	struct vuf *v;

	CHECK_EQ(vuf_connect(path, 5000, &v), 0);
	guest_setup(g, v, nq, extra);
}

/* Collect used transmit buffers of pair @q without waiting. */
static void reap_tx(struct guest *g, uint32_t q)
{
	void *tok;
	uint32_t len;
	int r;

	while ((r = gvq_get_used(g->tx[q], &tok, &len)) == 1)
		g->tx_out[q]--;
	CHECK(r == 0);
}

void guest_send(struct guest *g, uint32_t q, const void *frame, uint32_t len)
{
	uint8_t hdr[FWD_HDR] = {0};
	struct gbuf out = {gmem_alloc(g->m, FWD_HDR + len, 16), FWD_HDR + len};

	CHECK(out.gpa);
	CHECK_EQ(gmem_write(g->m, out.gpa, hdr, FWD_HDR), 0);
	CHECK_EQ(gmem_write(g->m, out.gpa + FWD_HDR, frame, len), 0);
	for (int t = 0; t < 5000; t++) {
		reap_tx(g, q);
		if (g->tx_out[q] < FWD_RING)
			break;
		usleep(1000);
	}
	CHECK(gvq_add(g->tx[q], &out, 1, NULL, 0, false, (void *)(uintptr_t)out.gpa) >= 0);
	g->tx_out[q]++;
	gvq_kick(g->tx[q]);
}

int guest_recv(struct guest *g, uint32_t q, void *frame, uint32_t *len, int timeout_ms)
{
	void *tok;
	uint32_t got = 0;
	int ok = 0;

	for (int t = 0; !ok; t++) {
		ok = gvq_get_used(g->rx[q], &tok, &got);
		CHECK(ok >= 0);
		if (ok)
			break;
		if (t >= timeout_ms)
			return 0;
		usleep(1000);
	}
	CHECK(got >= FWD_HDR && got <= FWD_RXBUF);
	*len = got - FWD_HDR;
	CHECK_EQ(gmem_read(g->m, (uint64_t)(uintptr_t)tok + FWD_HDR, frame, *len), 0);
	struct gbuf in = {(uint64_t)(uintptr_t)tok, FWD_RXBUF};
	CHECK(gvq_add(g->rx[q], NULL, 0, &in, 1, false, tok) >= 0);
	gvq_kick(g->rx[q]);
	return 1;
}

void guest_wait_sent(struct guest *g, uint32_t q)
{
	for (int t = 0; t < 5000; t++) {
		reap_tx(g, q);
		if (!g->tx_out[q])
			return;
		usleep(1000);
	}
	CHECK(!"transmitted frames were not consumed");
}

void guest_close(struct guest *g)
{
	if (g->v)
		vuf_close(g->v);
	for (uint32_t q = 0; q < g->nq; q++) {
		gvq_free(g->rx[q]);
		gvq_free(g->tx[q]);
	}
	gmem_free(g->m);
	memset(g, 0, sizeof(*g));
}

uint16_t inet_csum(const void *data, uint32_t len, uint32_t sum)
{
	const uint8_t *p = data;
	uint64_t s = sum;

	for (; len >= 2; p += 2, len -= 2)
		s += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}
