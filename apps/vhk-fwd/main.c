/* SPDX-License-Identifier: MIT */
/*
 * vhk-fwd: testpmd-like forwarder on a vhost-user socket (see vhk-fwd.8).
 * This file: command line, setup and teardown, signals, and the main loop
 * that prints live statistics until a signal or --duration ends the run.
 *
 * Exit status: 0 clean exit, 1 setup failure, 2 usage error.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fwd.h"

static volatile sig_atomic_t stop_signal;

static const char *const mode_names[] = {
	[FWD_RXONLY] = "rxonly", [FWD_TXONLY] = "txonly", [FWD_MAC] = "mac",
	[FWD_IO] = "io",         [FWD_ECHO] = "echo",
};

/* virtio-net / virtio feature names accepted by --disable-features. */
static const struct {
	const char *name;
	unsigned bit;
} feature_names[] = {
	{"csum", VHK_NET_F_CSUM},
	{"guest_csum", VHK_NET_F_GUEST_CSUM},
	{"ctrl_guest_offloads", 2},
	{"mtu", VHK_NET_F_MTU},
	{"mac", VHK_NET_F_MAC},
	{"guest_tso4", VHK_NET_F_GUEST_TSO4},
	{"guest_tso6", VHK_NET_F_GUEST_TSO6},
	{"guest_ecn", VHK_NET_F_GUEST_ECN},
	{"guest_ufo", VHK_NET_F_GUEST_UFO},
	{"host_tso4", VHK_NET_F_HOST_TSO4},
	{"host_tso6", VHK_NET_F_HOST_TSO6},
	{"host_ecn", VHK_NET_F_HOST_ECN},
	{"host_ufo", VHK_NET_F_HOST_UFO},
	{"mrg_rxbuf", VHK_NET_F_MRG_RXBUF},
	{"status", VHK_NET_F_STATUS},
	{"ctrl_vq", VHK_NET_F_CTRL_VQ},
	{"ctrl_rx", 18},
	{"ctrl_vlan", 19},
	{"guest_announce", VHK_NET_F_GUEST_ANNOUNCE},
	{"mq", VHK_NET_F_MQ},
	{"ctrl_mac_addr", 23},
	{"notify_on_empty", VHK_F_NOTIFY_ON_EMPTY},
	{"log_all", VHK_F_LOG_ALL},
	{"any_layout", VHK_F_ANY_LAYOUT},
	{"indirect_desc", VHK_F_INDIRECT_DESC},
	{"event_idx", VHK_F_EVENT_IDX},
	{"protocol_features", VHK_F_PROTOCOL_FEATURES},
	{"version_1", VHK_F_VERSION_1},
	{"iommu_platform", VHK_F_IOMMU_PLATFORM},
	{"ring_packed", VHK_F_RING_PACKED},
	{"in_order", VHK_F_IN_ORDER},
};

const char *fwd_mode_name(enum fwd_mode mode)
{
	return mode_names[mode];
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vhk-fwd --socket PATH [--client] [--queues N]\n"
		"               [--mode rxonly|txonly|mac|io|echo] [--pkt-len BYTES]\n"
		"               [--burst N] [--tx-first[=BURSTS]] [--start-delay SECONDS]\n"
		"               [--duration SECONDS]\n"
		"               [--stats-period SECONDS] [--disable-features LIST]\n"
		"               [--mac XX:XX:XX:XX:XX:XX] [--expect-frame HEX] [--json]\n");
}

/* Strict unsigned parse of @s into [lo, hi]; -1 on any error. */
static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* Non-negative finite seconds (decimals allowed); -1 on error. */
static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < 0 || v > 1e9)
		return -1;
	*out = v;
	return 0;
}

/* Comma-separated feature names to a bit mask; -1 on an unknown name. */
static int parse_features(const char *list, uint64_t *out)
{
	const char *p = list;
	uint64_t mask = 0;

	if (!*list)
		return -1;
	for (;;) {
		size_t len = strcspn(p, ",");
		bool found = false;
		for (size_t i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++) {
			if (strlen(feature_names[i].name) == len &&
			    !strncmp(feature_names[i].name, p, len)) {
				mask |= 1ull << feature_names[i].bit;
				found = true;
			}
		}
		if (!found) {
			fprintf(stderr, "vhk-fwd: unknown feature '%.*s'\n", (int)len, p);
			return -1;
		}
		if (!p[len])
			break;
		p += len + 1;
	}
	*out = mask;
	return 0;
}

/* "02:00:00:00:00:01" to bytes; -1 on error. */
static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned b[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

/*
 * One more --expect-frame: 1 to FWD_MAX_PKT_LEN bytes as an even number of
 * hex digits (no separators), into a static buffer; -1 on error or when
 * FWD_MAX_EXPECT frames are given already.
 */
static int parse_frame(const char *s, struct fwd_opts *o)
{
	static uint8_t frames[FWD_MAX_EXPECT][FWD_MAX_PKT_LEN];
	size_t n = strlen(s);

	if (o->nexpect >= FWD_MAX_EXPECT || n == 0 || n % 2 || n / 2 > FWD_MAX_PKT_LEN)
		return -1;
	uint8_t *frame = frames[o->nexpect];
	for (size_t i = 0; i < n; i += 2) {
		unsigned b;
		if (!isxdigit((unsigned char)s[i]) || !isxdigit((unsigned char)s[i + 1]) ||
		    sscanf(s + i, "%2x", &b) != 1)
			return -1;
		frame[i / 2] = (uint8_t)b;
	}
	o->expect[o->nexpect] = frame;
	o->expect_len[o->nexpect++] = (uint32_t)(n / 2);
	return 0;
}

/* Mode name to enum fwd_mode; -1 on an unknown name. */
static int parse_mode(const char *s, enum fwd_mode *out)
{
	for (unsigned i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
		if (!strcmp(s, mode_names[i])) {
			*out = (enum fwd_mode)i;
			return 0;
		}
	}
	return -1;
}

/* Apply option @opt with argument @arg to @o; -1 on a bad value. */
static int apply_option(struct fwd_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case 's': o->socket = arg; return *arg ? 0 : -1;
	case 'c': o->client = true; return 0;
	case 'q': return parse_u32(arg, 1, VHK_NET_MAX_QUEUE_PAIRS, &o->queues);
	case 'm': return parse_mode(arg, &o->mode);
	case 'l': return parse_u32(arg, FWD_MIN_PKT_LEN, FWD_MAX_PKT_LEN, &o->pkt_len);
	case 'b': return parse_u32(arg, 1, FWD_MAX_BURST, &o->burst);
	case 't': /* --tx-first or --tx-first=BURSTS */
		if (!arg) {
			o->tx_first = 1;
			return 0;
		}
		return parse_u32(arg, 1, 1024, &o->tx_first);
	case 'd': return parse_seconds(arg, &o->duration);
	case 'w': return parse_seconds(arg, &o->start_delay);
	case 'p': return parse_seconds(arg, &o->stats_period);
	case 'f': return parse_features(arg, &o->disable_features);
	case 'j': o->json = true; return 0;
	case 'a': return parse_mac(arg, o->mac);
	case 'e': return parse_frame(arg, o);
	default: return -1;
	}
}

/* Parse the command line into @o. 0 ok, 1 --help printed, -1 usage error. */
static int parse_args(int argc, char **argv, struct fwd_opts *o)
{
	static const struct option lopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"client", no_argument, NULL, 'c'},
		{"queues", required_argument, NULL, 'q'},
		{"mode", required_argument, NULL, 'm'},
		{"pkt-len", required_argument, NULL, 'l'},
		{"burst", required_argument, NULL, 'b'},
		{"tx-first", optional_argument, NULL, 't'},
		{"duration", required_argument, NULL, 'd'},
		{"start-delay", required_argument, NULL, 'w'},
		{"stats-period", required_argument, NULL, 'p'},
		{"disable-features", required_argument, NULL, 'f'},
		{"json", no_argument, NULL, 'j'},
		{"mac", required_argument, NULL, 'a'},
		{"expect-frame", required_argument, NULL, 'e'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const uint8_t def_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
	int opt;

	*o = (struct fwd_opts){.queues = 1, .mode = FWD_IO, .pkt_len = 64, .burst = 32,
			       .stats_period = 1};
	memcpy(o->mac, def_mac, 6);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", lopts, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			return 1;
		}
		if (opt == '?' || opt == ':') {
			fprintf(stderr, "vhk-fwd: %s '%s'\n",
				opt == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
			return -1;
		}
		if (apply_option(o, opt, optarg) < 0) {
			/* the option is the previous word unless written --opt=value */
			const char *name = argv[optind - 1];
			if (optarg == name && optind >= 2)
				name = argv[optind - 2];
			fprintf(stderr, "vhk-fwd: bad value for %s: '%s'\n", name,
				optarg ? optarg : "");
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vhk-fwd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (!o->socket) {
		fprintf(stderr, "vhk-fwd: --socket is required\n");
		return -1;
	}
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_signal = 1;
}

/* Register, configure and start the socket. Returns 0 or -errno. */
static int setup_socket(const struct fwd_opts *o, struct fwd_stats *st)
{
	const char *p = o->socket;
	int rc = vhk_socket_register(p, o->client ? VHK_CLIENT : 0);

	if (rc < 0) {
		fprintf(stderr, "vhk-fwd: register %s: %s\n", p, strerror(-rc));
		return rc;
	}
	if ((rc = vhk_net_attach(p)) < 0 || (rc = vhk_net_set_queue_pairs(p, o->queues)) < 0 ||
	    (o->disable_features && (rc = vhk_socket_disable_features(p, o->disable_features)) < 0) ||
	    (rc = dev_callbacks_register(p, st)) < 0) {
		fprintf(stderr, "vhk-fwd: configure %s: %s\n", p, strerror(-rc));
		vhk_socket_unregister(p);
		return rc;
	}
	return 0;
}

/* Sleep in short steps until a signal or the duration; print live stats. */
static void main_loop(const struct fwd_opts *o, const struct fwd_stats *st, double t0)
{
	double next = t0 + o->stats_period;

	if (o->stats_period > 0)
		stats_live(st, t0);
	while (!stop_signal) {
		double now = stats_now();
		if (o->duration > 0 && now - t0 >= o->duration)
			break;
		if (o->stats_period > 0 && now >= next) {
			stats_live(st, now);
			next += o->stats_period;
			if (next < now)
				next = now + o->stats_period;
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

int main(int argc, char **argv)
{
	static struct fwd_stats st;
	struct sigaction sa = {.sa_handler = on_signal};
	struct fwd_ctx *ctx;
	struct fwd_opts o;
	int rc;

	rc = parse_args(argc, argv, &o);
	if (rc) {
		if (rc < 0)
			usage(stderr);
		return rc < 0 ? 2 : 0;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (setup_socket(&o, &st) < 0)
		return 1;
	if ((rc = fwd_start(&o, &st, &ctx)) < 0) {
		fprintf(stderr, "vhk-fwd: forwarding thread: %s\n", strerror(-rc));
		goto err_unregister;
	}
	if ((rc = vhk_socket_start(o.socket)) < 0) {
		fprintf(stderr, "vhk-fwd: start %s: %s\n", o.socket, strerror(-rc));
		goto err_stop_fwd;
	}
	printf("vhk-fwd: %s mode on %s (%s, %u queue pair(s), vhostkit %s)\n",
	       fwd_mode_name(o.mode), o.socket, o.client ? "client" : "server", o.queues,
	       vhk_version());
	fflush(stdout);

	double t0 = stats_now();
	main_loop(&o, &st, t0);
	double secs = stats_now() - t0;
	fwd_stop(ctx);
	vhk_socket_unregister(o.socket);
	stats_final(&st, &o, secs);
	return 0;

err_stop_fwd:
	fwd_stop(ctx);
err_unregister:
	vhk_socket_unregister(o.socket);
	return 1;
}
