/* SPDX-License-Identifier: MIT */
/*
 * Socket registry, the control-plane lock and loop, the control thread,
 * and the public socket API of vhk_dev.h.
 *
 * Threading: one recursive mutex (g_lock) serialises the control plane.
 * The control thread (or the app in app-driven mode) runs loop_dispatch()
 * without it; every loop callback takes it. Public functions take it too,
 * so they may be called from any thread and from callbacks. Sockets
 * unregistered while a callback may still reference them are freed by a
 * loop post (after that round's callbacks).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/conn.h"
#include "util/fd.h"
#include "util/log.h"

#define DEFAULT_FEATURES ((1ull << VHK_F_VERSION_1) | (1ull << VHK_F_PROTOCOL_FEATURES))

static pthread_mutex_t g_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static struct loop *g_loop;
static bool g_app_driven;
static bool g_thread_running;
static struct vsock *g_socks;

void proto_lock(void)
{
	pthread_mutex_lock(&g_lock);
}

void proto_unlock(void)
{
	pthread_mutex_unlock(&g_lock);
}

struct loop *proto_loop(void)
{
	return g_loop;
}

/* Registered socket for @path, or NULL. Lock held. */
static struct vsock *find(const char *path)
{
	if (!path)
		return NULL;
	for (struct vsock *vs = g_socks; vs; vs = vs->next)
		if (!strcmp(vs->path, path))
			return vs;
	return NULL;
}

/* Create the loop on first use. Lock held. */
static int ensure_loop(void)
{
	return g_loop ? 0 : loop_new(&g_loop);
}

/* The control thread: dispatch forever. */
static void *control_main(void *arg)
{
	for (;;)
		(void)loop_dispatch(g_loop, -1);
	return NULL;
}

/* Start the control thread unless it runs or the app drives the loop. Lock held. */
static int ensure_thread(void)
{
	sigset_t all, old;
	pthread_t t;
	int rc;

	if (g_app_driven || g_thread_running)
		return 0;
	/* Signals stay with the app's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, NULL, control_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return -rc;
	(void)pthread_setname_np(t, "vhk-ctrl");
	(void)pthread_detach(t);
	g_thread_running = true;
	return 0;
}

VHK_EXPORT int vhk_socket_register(const char *path, uint64_t flags)
{
	struct vsock *vs;
	int rc = 0;

	if (!path || !path[0] || strlen(path) >= sizeof(vs->path) ||
	    (flags & ~VHK_REGISTER_FLAGS_MASK))
		return -EINVAL;
	proto_lock();
	if (find(path)) {
		rc = -EEXIST;
		goto out_unlock;
	}
	vs = calloc(1, sizeof(*vs));
	if (!vs) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	strcpy(vs->path, path);
	vs->flags = flags;
	vs->mode = (mode_t)-1;
	vs->uid = (uid_t)-1;
	vs->gid = (gid_t)-1;
	vs->features = DEFAULT_FEATURES;
	vs->max_queues = 2;
	vs->lfd = -1;
	vs->pending_fd = -1;
	vs->next = g_socks;
	g_socks = vs;
out_unlock:
	proto_unlock();
	return rc;
}

/*
 * Look up @path for a configuration change: -ENOENT unknown, -EBUSY
 * started. On success returns 0 with the lock held in *ret.
 */
static int config_begin(const char *path, struct vsock **ret)
{
	proto_lock();
	*ret = find(path);
	if (!*ret) {
		proto_unlock();
		return -ENOENT;
	}
	if ((*ret)->started) {
		proto_unlock();
		return -EBUSY;
	}
	return 0;
}

VHK_EXPORT int vhk_socket_set_perm(const char *path, mode_t mode, uid_t owner, gid_t group)
{
	struct vsock *vs;
	int rc = config_begin(path, &vs);

	if (rc < 0)
		return rc;
	vs->mode = mode;
	vs->uid = owner;
	vs->gid = group;
	proto_unlock();
	return 0;
}

/* Loop post: free an unregistered socket after the current round. */
static void vsock_free(void *ctx)
{
	free(ctx);
}

/* Remove the socket file if it is still the one we created. */
static void unlink_ours(const struct vsock *vs)
{
	struct stat st;

	if (lstat(vs->path, &st) == 0 && st.st_dev == vs->file_dev && st.st_ino == vs->file_ino)
		(void)unlink(vs->path);
}

VHK_EXPORT int vhk_socket_unregister(const char *path)
{
	struct vsock *vs, **pp;

	proto_lock();
	vs = find(path);
	if (!vs) {
		proto_unlock();
		return -ENOENT;
	}
	for (pp = &g_socks; *pp != vs; pp = &(*pp)->next)
		;
	*pp = vs->next;
	vs->dead = true;
	if (g_loop) {
		loop_watch_del(g_loop, vs->lwatch);
		loop_timer_del(g_loop, vs->retry);
	}
	vs->lwatch = NULL;
	vs->retry = NULL;
	fd_close(&vs->lfd);
	fd_close(&vs->pending_fd);
	while (vs->conns)
		conn_close(vs->conns, "socket unregistered");
	if (vs->created_file)
		unlink_ours(vs);
	if (!g_loop || loop_post(g_loop, vsock_free, vs) < 0)
		free(vs); /* no loop: nothing can reference it */
	proto_unlock();
	return 0;
}

/*
 * Transport feature bits (24..41) the core implements. Offering any other bit
 * of that range would promise the guest something the library does not do
 * (LOG_ALL without a dirty log, IOMMU_PLATFORM without an IOTLB, ...), so it
 * is refused. Device bits (0..23, 42..63) are the device's business.
 */
#define TRANSPORT_BITS (((1ull << 42) - 1) & ~((1ull << 24) - 1))
#define TRANSPORT_SUPPORTED                                                                    \
	((1ull << VHK_F_ANY_LAYOUT) | (1ull << VHK_F_INDIRECT_DESC) | (1ull << VHK_F_EVENT_IDX) | \
	 (1ull << VHK_F_PROTOCOL_FEATURES) | (1ull << VHK_F_VERSION_1) |                        \
	 (1ull << VHK_F_RING_PACKED) | (1ull << VHK_F_IN_ORDER))

static bool features_supported(uint64_t features)
{
	return !(features & TRANSPORT_BITS & ~(uint64_t)TRANSPORT_SUPPORTED);
}

/* Offered features become (features & keep) | add, under the control-plane lock. */
static int update_features(const char *path, uint64_t keep, uint64_t add)
{
	struct vsock *vs;
	int rc;

	if (!features_supported(add))
		return -ENOTSUP;
	rc = config_begin(path, &vs);
	if (rc < 0)
		return rc;
	vs->features = (vs->features & keep) | add;
	proto_unlock();
	return 0;
}

VHK_EXPORT int vhk_socket_set_features(const char *path, uint64_t features)
{
	return update_features(path, 0, features);
}

VHK_EXPORT int vhk_socket_enable_features(const char *path, uint64_t features)
{
	return update_features(path, UINT64_MAX, features);
}

VHK_EXPORT int vhk_socket_disable_features(const char *path, uint64_t features)
{
	return update_features(path, ~features, 0);
}

/* Read one offered setting of @path under the control-plane lock. */
enum vsock_setting { SETTING_FEATURES, SETTING_PROTOCOL_FEATURES, SETTING_MAX_QUEUES };

static int get_setting(const char *path, enum vsock_setting which, uint64_t *ret)
{
	struct vsock *vs;
	int rc = 0;

	proto_lock();
	vs = find(path);
	if (!vs)
		rc = -ENOENT;
	else if (which == SETTING_FEATURES)
		*ret = vs->features;
	else if (which == SETTING_PROTOCOL_FEATURES)
		*ret = vsock_offered_pf(vs);
	else
		*ret = vs->max_queues;
	proto_unlock();
	return rc;
}

VHK_EXPORT int vhk_socket_get_features(const char *path, uint64_t *ret_features)
{
	if (!ret_features)
		return -EINVAL;
	return get_setting(path, SETTING_FEATURES, ret_features);
}

VHK_EXPORT int vhk_socket_set_protocol_features(const char *path, uint64_t protocol_features)
{
	struct vsock *vs;
	int rc;

	if (protocol_features & ~PROTO_PF_SUPPORTED)
		return -ENOTSUP;
	rc = config_begin(path, &vs);
	if (rc < 0)
		return rc;
	vs->pfeatures = protocol_features;
	vs->pf_set = true;
	proto_unlock();
	return 0;
}

VHK_EXPORT int vhk_socket_get_protocol_features(const char *path, uint64_t *ret_protocol_features)
{
	if (!ret_protocol_features)
		return -EINVAL;
	return get_setting(path, SETTING_PROTOCOL_FEATURES, ret_protocol_features);
}

VHK_EXPORT int vhk_socket_set_max_queues(const char *path, uint32_t queues)
{
	struct vsock *vs;
	int rc;

	if (queues < 1 || queues > VHK_MAX_QUEUES) {
		proto_lock();
		rc = find(path) ? -EINVAL : -ENOENT;
		proto_unlock();
		return rc;
	}
	rc = config_begin(path, &vs);
	if (rc < 0)
		return rc;
	vs->max_queues = queues;
	proto_unlock();
	return 0;
}

VHK_EXPORT int vhk_socket_get_max_queues(const char *path, uint32_t *ret_queues)
{
	uint64_t v;
	int rc;

	if (!ret_queues)
		return -EINVAL;
	rc = get_setting(path, SETTING_MAX_QUEUES, &v);
	if (rc == 0)
		*ret_queues = (uint32_t)v;
	return rc;
}

VHK_EXPORT int vhk_socket_set_callbacks(const char *path, const struct vhk_callbacks *cb, void *ctx)
{
	struct vsock *vs;
	int rc;

	if (!cb)
		return -EINVAL;
	rc = config_begin(path, &vs);
	if (rc < 0)
		return rc;
	vs->cb = *cb;
	vs->cb_ctx = ctx;
	proto_unlock();
	return 0;
}

VHK_EXPORT int vhk_socket_set_device_ops(const char *path, const struct vhk_device_ops *ops)
{
	struct vsock *vs;
	int rc;

	if (!ops)
		return -EINVAL;
	rc = config_begin(path, &vs);
	if (rc < 0)
		return rc;
	vs->ops = *ops;
	proto_unlock();
	return 0;
}

/* Loop post (client mode): the first connection made by vhk_socket_start(). */
static void client_attach(void *ctx)
{
	struct vsock *vs = ctx;

	proto_lock();
	if (!vs->dead && vs->pending_fd >= 0) {
		int fd = vs->pending_fd;
		vs->pending_fd = -1;
		(void)conn_new(vs, fd);
	}
	proto_unlock();
}

/* Server mode: listen and watch. Lock held. */
static int start_server(struct vsock *vs)
{
	struct stat st;
	int fd = uds_listen(vs->path, vs->mode, vs->uid, vs->gid);

	if (fd < 0)
		return fd;
	if (stat(vs->path, &st) == 0) {
		vs->file_dev = st.st_dev;
		vs->file_ino = st.st_ino;
		vs->created_file = true;
	}
	int rc = loop_watch_add(g_loop, fd, EPOLLIN, vsock_accept, vs, &vs->lwatch);
	if (rc < 0) {
		unlink_ours(vs);
		vs->created_file = false;
		fd_close(&fd);
		return rc;
	}
	vs->lfd = fd;
	return 0;
}

/* Client mode: connect now; retry later unless VHK_NO_RECONNECT. Lock held. */
static int start_client(struct vsock *vs)
{
	int fd = uds_connect(vs->path);

	if (fd < 0) {
		if (vs->flags & VHK_NO_RECONNECT)
			return fd;
		vsock_schedule_reconnect(vs);
		return 0;
	}
	vs->pending_fd = fd;
	/* Callbacks run on the loop: the connection is announced from there. */
	int rc = loop_post(g_loop, client_attach, vs);
	if (rc < 0)
		fd_close(&vs->pending_fd);
	return rc;
}

VHK_EXPORT int vhk_socket_start(const char *path)
{
	struct vsock *vs;
	int rc;

	proto_lock();
	vs = find(path);
	if (!vs) {
		rc = -ENOENT;
		goto out_unlock;
	}
	if (vs->started) {
		rc = -EALREADY;
		goto out_unlock;
	}
	rc = ensure_loop();
	if (rc < 0)
		goto out_unlock;
	vs->backoff_ms = 0;
	rc = (vs->flags & VHK_CLIENT) ? start_client(vs) : start_server(vs);
	if (rc < 0)
		goto out_unlock;
	vs->started = true;
	rc = ensure_thread();
	if (rc < 0)
		log_err("cannot start the control thread: %d", rc);
out_unlock:
	proto_unlock();
	return rc;
}

VHK_EXPORT int vhk_loop_app_driven(void)
{
	int rc;

	proto_lock();
	if (g_thread_running) {
		rc = -EBUSY;
		goto out_unlock;
	}
	rc = ensure_loop();
	if (rc < 0)
		goto out_unlock;
	g_app_driven = true;
	rc = loop_fd(g_loop);
out_unlock:
	proto_unlock();
	return rc;
}

VHK_EXPORT int vhk_loop_dispatch(int timeout_ms)
{
	struct loop *l;

	proto_lock();
	l = g_app_driven ? g_loop : NULL;
	proto_unlock();
	if (!l)
		return -EINVAL;
	return loop_dispatch(l, timeout_ms);
}
