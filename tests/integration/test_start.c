/* SPDX-License-Identifier: MIT */
/*
 * vhk_socket_start(path) starts that socket only: a socket registered later (a
 * vswitch adding ports at run time, each configured fully before its start)
 * is untouched until its own start, in server mode and in client mode.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "test.h"
#include "vuf.h"
#include <vhostkit/vhostkit.h>

static char g_dir[] = "/tmp/vhk-start-XXXXXX";

static void sock_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", g_dir, name);
}

/* True if a client can connect to @path right now. */
static bool can_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	CHECK(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* True if a connection is pending on listening socket @lfd within @ms. */
static bool pending(int lfd, int ms)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

static void t_start_only_that_socket(void)
{
	char a[128], b[128], c[128];
	int lfd = -1;

	CHECK(mkdtemp(g_dir));
	sock_path(a, sizeof(a), "a.sock");
	sock_path(b, sizeof(b), "b.sock");
	sock_path(c, sizeof(c), "c.sock");

	/* Port A: registered and started. */
	CHECK_EQ(vhk_socket_register(a, 0), 0);
	CHECK_EQ(vhk_net_attach(a), 0);
	CHECK_EQ(vhk_socket_start(a), 0);
	CHECK(can_connect(a));

	/* Port B (server) and port C (client; its frontend already listens) are
	 * registered after A started: nothing happens to them. */
	CHECK_EQ(vuf_listen(c, &lfd), 0);
	CHECK_EQ(vhk_socket_register(b, 0), 0);
	CHECK_EQ(vhk_socket_register(c, VHK_CLIENT), 0);
	CHECK(access(b, F_OK) < 0 && errno == ENOENT);
	CHECK(!pending(lfd, 300));

	/* Starting A again, or another event on the control thread, does not
	 * start them either; they can still be configured fully. */
	CHECK_EQ(vhk_socket_start(a), -EALREADY);
	CHECK_EQ(vhk_net_attach(b), 0);
	CHECK_EQ(vhk_net_set_queue_pairs(b, 2), 0);
	CHECK_EQ(vhk_net_attach(c), 0);
	CHECK_EQ(vhk_socket_disable_features(c, 1ull << VHK_NET_F_MRG_RXBUF), 0);
	CHECK(access(b, F_OK) < 0);
	CHECK(!pending(lfd, 300));

	/* Each starts with its own start, with the configuration it was given. */
	CHECK_EQ(vhk_socket_start(b), 0);
	CHECK(can_connect(b));
	CHECK_EQ(vhk_net_set_queue_pairs(b, 1), -EBUSY);
	CHECK(!pending(lfd, 200));
	CHECK_EQ(vhk_socket_start(c), 0);
	struct vuf *v = NULL;
	CHECK_EQ(vuf_accept(lfd, 3000, &v), 0);
	uint64_t f = 0;
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_FEATURES, &f), 0);
	CHECK((f & (1ull << VHK_NET_F_MRG_RXBUF)) == 0);
	vuf_close(v);

	CHECK_EQ(vhk_socket_unregister(c), 0);
	CHECK_EQ(vhk_socket_unregister(b), 0);
	CHECK_EQ(vhk_socket_unregister(a), 0);
	close(lfd);
	unlink(c);
	rmdir(g_dir);
}

TEST_MAIN(TEST(t_start_only_that_socket))
