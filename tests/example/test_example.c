/* SPDX-License-Identifier: MIT */
/*
 * Drives examples/net-echo (a separate process, found through
 * $VHK_EXAMPLE_BIN) with the test frontend: frames the guest transmits must
 * come back byte for byte on the receive ring of the same queue pair.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "gvq.h"
#include "vuf.h"

#define HDR 12

static pid_t spawn_echo(const char *path)
{
	const char *bin = getenv("VHK_EXAMPLE_BIN");
	pid_t pid;

	CHECK(bin && *bin);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* Die with the test; keep our TAP stdout clean. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execl(bin, bin, path, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void stop_echo(pid_t pid)
{
	int st = 0;

	kill(pid, SIGTERM);
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void echo_pairs(uint32_t nq, bool mrg)
{
	char dir[] = "/tmp/vhk-example-XXXXXX", path[128];
	struct gvq *rx[2], *tx[2];
	struct gmem *m;
	struct vuf *v;

	CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	pid_t pid = spawn_echo(path);
	CHECK_EQ(vuf_connect(path, 5000, &v), 0);
	CHECK_EQ(gmem_new(1, 16u << 20, 0, 0, &m), 0);
	uint64_t want = (1ull << 32) | (1ull << 30) | (1ull << 22) | (mrg ? 1ull << 15 : 0);
	CHECK_EQ(vuf_negotiate(v, want, (1ull << 0) | (1ull << 3)), 0);
	CHECK_EQ(!!(v->features & (1ull << 15)), mrg);
	CHECK_EQ(vuf_set_mem_table(v, m), 0);
	for (uint32_t q = 0; q < nq; q++) {
		CHECK_EQ(gvq_new(m, 64, v->features, &rx[q]), 0);
		CHECK_EQ(gvq_new(m, 64, v->features, &tx[q]), 0);
		for (int i = 0; i < 32; i++) {
			struct gbuf in = {gmem_alloc(m, 2048, 64), 2048};
			CHECK(in.gpa);
			CHECK(gvq_add(rx[q], NULL, 0, &in, 1, false, (void *)(uintptr_t)in.gpa) >=
			      0);
		}
		CHECK_EQ(vuf_start_vring(v, 2 * q, rx[q]), 0);
		CHECK_EQ(vuf_start_vring(v, 2 * q + 1, tx[q]), 0);
		gvq_kick(rx[q]);
	}
	for (uint32_t q = 0; q < nq; q++) {
		for (uint32_t i = 0; i < 20; i++) {
			uint32_t len = 60 + i * 70 + q;
			uint8_t frame[HDR + 1600] = {0};
			for (uint32_t b = 0; b < len; b++)
				frame[HDR + b] = (uint8_t)(b * 13 + i + q * 101);
			struct gbuf out = {gmem_alloc(m, HDR + len, 16), HDR + len};
			CHECK_EQ(gmem_write(m, out.gpa, frame, HDR + len), 0);
			CHECK(gvq_add(tx[q], &out, 1, NULL, 0, false, (void *)(uintptr_t)out.gpa) >=
			      0);
			gvq_kick(tx[q]);

			void *tok;
			uint32_t got = 0;
			int ok = 0;
			for (int t = 0; t < 5000 && !ok; t++) {
				ok = gvq_get_used(rx[q], &tok, &got);
				if (!ok)
					usleep(1000);
			}
			CHECK(ok);
			CHECK_EQ(got, HDR + len);
			uint8_t back[HDR + 1600];
			CHECK_EQ(gmem_read(m, (uint64_t)(uintptr_t)tok, back, HDR + len), 0);
			CHECK(memcmp(back + HDR, frame + HDR, len) == 0);
			/* repost the receive buffer */
			struct gbuf in = {(uint64_t)(uintptr_t)tok, 2048};
			CHECK(gvq_add(rx[q], NULL, 0, &in, 1, false, tok) >= 0);
			gvq_kick(rx[q]);
		}
	}
	vuf_close(v);
	stop_echo(pid);
	for (uint32_t q = 0; q < nq; q++) {
		gvq_free(rx[q]);
		gvq_free(tx[q]);
	}
	gmem_free(m);
	unlink(path);
	rmdir(dir);
}

static void t_echo_one_pair(void)
{
	echo_pairs(1, false);
}

static void t_echo_two_pairs_mergeable(void)
{
	echo_pairs(2, true);
}

TEST_MAIN(TEST(t_echo_one_pair), TEST(t_echo_two_pairs_mergeable))
