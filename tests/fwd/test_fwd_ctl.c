/* SPDX-License-Identifier: MIT */
/*
 * vhk-fwd control behaviour: exit codes (usage 2, setup failure 1, signals
 * and --duration 0), --disable-features, client mode, and serving the next
 * frontend after a disconnect in both server and client mode.
 */
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "fwd_common.h"

/* Run vhk-fwd with exactly @args (after argv[0]); returns its exit status. */
static int run_plain(const char *const *args)
{
	const char *bin = getenv("VHK_FWD_BIN");
	char *argv[32];
	int n = 0, st = 0;

	CHECK(bin);
	argv[n++] = (char *)(uintptr_t)bin;
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = (char *)(uintptr_t)args[i];
	argv[n] = NULL;
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execv(bin, argv);
		_exit(127);
	}
	CHECK(waitpid(pid, &st, 0) == pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void t_usage_errors(void)
{
	static const char *const bad[][8] = {
		{"--mode", "io", NULL},                                 /* no --socket */
		{"--socket", "/tmp/x", "--mode", "fast", NULL},
		{"--socket", "/tmp/x", "--disable-features", "mrg_rxbuf,bogus", NULL},
		{"--socket", "/tmp/x", "--disable-features", "", NULL},
		{"--socket", "/tmp/x", "--disable-features", "mq,", NULL},
		{"--socket", "/tmp/x", "--burst", "0", NULL},
		{"--socket", "/tmp/x", "--burst", "513", NULL},
		{"--socket", "/tmp/x", "--queues", "0", NULL},
		{"--socket", "/tmp/x", "--queues", "129", NULL},
		{"--socket", "/tmp/x", "--pkt-len", "41", NULL},
		{"--socket", "/tmp/x", "--pkt-len", "64k", NULL},
		{"--socket", "/tmp/x", "--duration", "-1", NULL},
		{"--socket", "/tmp/x", "--stats-period", "x", NULL},
		{"--socket", "/tmp/x", "--mac", "02:00:00:00:00", NULL},
		{"--socket", "/tmp/x", "--expect-frame", "", NULL},
		{"--socket", "/tmp/x", "--expect-frame", "abc", NULL},   /* odd digit count */
		{"--socket", "/tmp/x", "--expect-frame", "0g", NULL},
		{"--socket", "/tmp/x", "--expect-frame", "00 1", NULL},
		{"--socket", "/tmp/x", "--expect-frame", "+1", NULL},

		{"--socket", "/tmp/x", "--frobnicate", NULL},
		{"--socket", "/tmp/x", "extra", NULL},
		{"--socket", NULL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fprintf(stderr, "# case %zu\n", i);
		CHECK_EQ(run_plain(bad[i]), 2);
	}
	/* --expect-frame: 9 frames (one more than allowed), 9217 bytes (one more than allowed). */
	const char *nine[2 + 2 * 9 + 1] = {"--socket", "/tmp/x"};
	for (int i = 0; i < 9; i++) {
		nine[2 + 2 * i] = "--expect-frame";
		nine[3 + 2 * i] = "00";
	}
	CHECK_EQ(run_plain(nine), 2);
	static char big[2 * 9217 + 1];
	memset(big, 'a', sizeof(big) - 1);
	const char *const too_long[] = {"--socket", "/tmp/x", "--expect-frame", big, NULL};
	CHECK_EQ(run_plain(too_long), 2);
	static const char *const help[] = {"--help", NULL};
	CHECK_EQ(run_plain(help), 0);
}

static void t_setup_failure(void)
{
	static const char *const args[] = {"--socket", "/nonexistent-dir/vhk-fwd.sock", NULL};
	CHECK_EQ(run_plain(args), 1);
}

static void t_duration_and_sigint(void)
{
	static const char *const dur[] = {"--duration", "0.3", "--mode", "rxonly", NULL};
	struct fwdproc fp;

	fwd_prepare(&fp);
	fwd_spawn(&fp, dur);
	CHECK_EQ(fwd_wait(&fp), 0);
	CHECK_EQ(fwd_json_u64(&fp, "rx_packets"), 0);
	const char *secs = strstr(fp.out, "\"seconds\":");
	CHECK(secs);
	double d = strtod(secs + 10, NULL);
	CHECK(d >= 0.3 && d < 5);
	CHECK(strstr(fp.out, "\"busy_cycles_per_packet\":"));
	fwd_cleanup(&fp);

	fwd_prepare(&fp);
	fwd_spawn(&fp, NULL);
	usleep(200000);
	CHECK_EQ(fwd_finish(&fp, SIGINT), 0);
	CHECK_EQ(fwd_json_u64(&fp, "tx_packets"), 0);
	fwd_cleanup(&fp);
}

/* GET_FEATURES offered by a vhk-fwd started with @args. */
static uint64_t offered(const char *const *args)
{
	struct fwdproc fp;
	struct vuf *v;
	uint64_t f = 0;

	fwd_prepare(&fp);
	fwd_spawn(&fp, args);
	CHECK_EQ(vuf_connect(fp.path, 5000, &v), 0);
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_FEATURES, &f), 0);
	vuf_close(v);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	fwd_cleanup(&fp);
	return f;
}

static void t_disable_features(void)
{
	static const char *const none[] = {NULL};
	static const char *const mrg[] = {"--disable-features", "mrg_rxbuf", NULL};
	static const char *const many[] = {"--disable-features",
					   "event_idx,indirect_desc,host_tso4,mq,csum", NULL};
	uint64_t all = offered(none), f;

	CHECK(all & (1ull << 15));
	CHECK(all & (1ull << 32));
	f = offered(mrg);
	CHECK_EQ(f, all & ~(1ull << 15));
	f = offered(many);
	CHECK_EQ(f, all & ~((1ull << 29) | (1ull << 28) | (1ull << 11) | (1ull << 22) | 1ull));
}

/* One io round trip on pair 0: a frame goes out and comes back unchanged. */
static void round_trip(struct guest *g, uint8_t seed)
{
	uint8_t f[200], r[2048];
	uint32_t len;

	for (uint32_t i = 0; i < sizeof(f); i++)
		f[i] = (uint8_t)(i + seed);
	guest_send(g, 0, f, sizeof(f));
	CHECK(guest_recv(g, 0, r, &len, 5000));
	CHECK_EQ(len, sizeof(f));
	CHECK(!memcmp(r, f, sizeof(f)));
}

static void t_server_reconnect(void)
{
	struct fwdproc fp;
	struct guest g;

	fwd_prepare(&fp);
	fwd_spawn(&fp, NULL);
	for (uint8_t round = 0; round < 5; round++) {
		guest_connect(&g, fp.path, 1, round & 1 ? 1ull << 15 : 0);
		round_trip(&g, round);
		guest_close(&g);
		CHECK_EQ(waitpid(fp.pid, NULL, WNOHANG), 0); /* still running */
	}
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	CHECK_EQ(fwd_json_u64(&fp, "devices"), 5);
	CHECK_EQ(fwd_json_u64(&fp, "tx_packets"), 5);
	fwd_cleanup(&fp);
}

static void t_client_mode(void)
{
	static const char *const args[] = {"--client", NULL};
	struct fwdproc fp;
	struct guest g;
	struct vuf *v;
	int lfd;

	fwd_prepare(&fp);
	CHECK_EQ(vuf_listen(fp.path, &lfd), 0);
	fwd_spawn(&fp, args);
	for (uint8_t round = 0; round < 3; round++) {
		CHECK_EQ(vuf_accept(lfd, 10000, &v), 0);
		guest_setup(&g, v, 1, 0);
		round_trip(&g, round);
		guest_close(&g); /* vhk-fwd reconnects */
		CHECK_EQ(waitpid(fp.pid, NULL, WNOHANG), 0);
	}
	close(lfd);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	CHECK_EQ(fwd_json_u64(&fp, "devices"), 3);
	CHECK_EQ(fwd_json_u64(&fp, "rx_packets"), 3);
	fwd_cleanup(&fp);
}

/* Disconnect while traffic runs: destroy_device must fence the forwarder. */
static void t_disconnect_under_traffic(void)
{
	static const char *const args[] = {"--mode", "txonly", NULL};
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048];
	uint32_t len;

	fwd_prepare(&fp);
	fwd_spawn(&fp, args);
	for (int round = 0; round < 20; round++) {
		guest_connect(&g, fp.path, 1, 0);
		for (int i = 0; i < 300; i++)
			CHECK(guest_recv(&g, 0, f, &len, 5000));
		guest_close(&g);
	}
	CHECK_EQ(waitpid(fp.pid, NULL, WNOHANG), 0);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	CHECK_EQ(fwd_json_u64(&fp, "devices"), 20);
	fwd_cleanup(&fp);
}

/* --stats-period: live lines with packets/s and bits/s per direction. */
static void t_live_stats(void)
{
	static const char *const args[] = {"--mode", "txonly", "--stats-period", "0.1", NULL};
	struct fwdproc fp;
	struct guest g;
	uint8_t f[2048];
	uint32_t len;
	int lines = 0, busy = 0;

	fwd_prepare(&fp);
	fwd_spawn(&fp, args);
	guest_connect(&g, fp.path, 1, 0);
	for (int i = 0; i < 600; i++) {
		for (int k = 0; k < 50 && guest_recv(&g, 0, f, &len, 0); k++)
			;
		usleep(1000);
	}
	guest_close(&g);
	CHECK_EQ(fwd_finish(&fp, SIGTERM), 0);
	for (const char *l = fp.out; (l = strstr(l, "\nrx ")); l++) {
		double rxp, rxb, txp, txb;
		CHECK_EQ(sscanf(l, "\nrx %lf pps %lf bps | tx %lf pps %lf bps", &rxp, &rxb, &txp,
				&txb), 4);
		lines++;
		CHECK_EQ(rxp, 0);
		if (txp > 0) {
			busy++;
			CHECK(txb > txp * 64 * 8 * 0.99 && txb < txp * 64 * 8 * 1.01);
		}
	}
	CHECK(lines >= 3);
	CHECK(busy >= 1);
	fwd_cleanup(&fp);
}

TEST_MAIN(TEST(t_usage_errors), TEST(t_live_stats), TEST(t_setup_failure), TEST(t_duration_and_sigint),
	  TEST(t_disable_features), TEST(t_server_reconnect), TEST(t_client_mode),
	  TEST(t_disconnect_under_traffic))
