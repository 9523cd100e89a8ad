/* SPDX-License-Identifier: MIT */
/*
 * The socket registry and its settings: the configuration half of the
 * public socket API of vhk_dev.h (register, features, protocol features,
 * queues, callbacks, device ops, permissions). Starting a socket and
 * unregistering it belong to its transport (proto/).
 *
 * A socket leaves the registry when it is unregistered, but its struct
 * lives on until the last of its devices is released (a device keeps a
 * pointer to it), and then until the end of the loop round (a callback of
 * the round may still reference it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "util/compiler.h"
#include "util/log.h"

#define DEFAULT_FEATURES ((1ull << VHK_F_VERSION_1) | (1ull << VHK_F_PROTOCOL_FEATURES))
#define DEFAULT_MAX_QUEUES 2u
#define DEFAULT_HANDSHAKE_MS 10000u
#define DEFAULT_MAX_UNNEGOTIATED 64u
#define DEFAULT_REPLY_MS 30000u

/*
 * Protocol features the core implements, and those a device implements
 * through its handle_msg op (offered only for a device that has one).
 */
#define PF_CORE                                                                                \
	((1ull << VHK_PF_MQ) | (1ull << VHK_PF_REPLY_ACK) | (1ull << VHK_PF_BACKEND_REQ) |     \
	 (1ull << VHK_PF_CONFIGURE_MEM_SLOTS) | (1ull << VHK_PF_STATUS) | (1ull << VHK_PF_CONFIG) | \
	 (1ull << VHK_PF_INBAND_NOTIFICATIONS) | (1ull << VHK_PF_LOG_SHMFD) |                    \
	 (1ull << VHK_PF_PAGEFAULT) | (1ull << VHK_PF_INFLIGHT_SHMFD))
#define PF_DEVICE ((1ull << VHK_PF_RARP) | (1ull << VHK_PF_NET_MTU))

/*
 * Transport feature bits (24..41) the core implements. Offering any other bit
 * of that range would promise the guest something the library does not do
 * (IOMMU_PLATFORM without an IOTLB, ...), so it is refused. Device bits
 * (0..23, 42..63) are the device's business. LOG_ALL is implemented: every
 * guest write the library makes is logged, and so are those of element-API
 * devices (at vhk_vq_push); an app that writes rings of its own
 * (vhk_vq_get_info) must log them itself (vhk_vq_log_write) or not offer it.
 */
#define TRANSPORT_BITS (((1ull << 42) - 1) & ~((1ull << 24) - 1))
#define TRANSPORT_SUPPORTED                                                                    \
	((1ull << VHK_F_ANY_LAYOUT) | (1ull << VHK_F_INDIRECT_DESC) | (1ull << VHK_F_EVENT_IDX) | \
	 (1ull << VHK_F_PROTOCOL_FEATURES) | (1ull << VHK_F_VERSION_1) |                        \
	 (1ull << VHK_F_RING_PACKED) | (1ull << VHK_F_IN_ORDER) | (1ull << VHK_F_LOG_ALL))

static struct core_sock *g_socks;

uint64_t core_pf_supported(void)
{
	return PF_CORE | PF_DEVICE;
}

struct core_sock *core_sock_find(const char *path)
{
	if (!path)
		return NULL;
	for (struct core_sock *s = g_socks; s; s = s->next)
		if (!strcmp(s->path, path))
			return s;
	return NULL;
}

/*
 * The default offer. STATUS is not in it: with STATUS negotiated the core
 * starts a device only once the driver set DRIVER_OK, and QEMU 7.2 sends
 * SET_STATUS only for the last queue pair of a device whose vq_index_end
 * it set, which its non-net vhost-user devices (rng, crypto, ...) never
 * do: they negotiate STATUS and never start. A device that knows its
 * frontends send DRIVER_OK opts in (net does).
 *
 * LOG_SHMFD (the dirty log's fd) goes with the LOG_ALL virtio feature: it
 * is offered, by default, exactly when LOG_ALL is, and never without it
 * (a frontend needs both to migrate); so is PAGEFAULT (postcopy: QEMU
 * copies the rest of memory with the dirty log before it switches).
 */
uint64_t core_sock_offered_pf(const struct core_sock *s)
{
	const uint64_t log_shmfd = (1ull << VHK_PF_LOG_SHMFD) | (1ull << VHK_PF_PAGEFAULT);
	bool log_all = s->features & (1ull << VHK_F_LOG_ALL);
	uint64_t pf = (1ull << VHK_PF_MQ) | (1ull << VHK_PF_REPLY_ACK) |
		      (1ull << VHK_PF_BACKEND_REQ) | (1ull << VHK_PF_CONFIGURE_MEM_SLOTS);

	if (s->pf_set)
		return log_all ? s->pfeatures : s->pfeatures & ~log_shmfd;
	if (s->ops.config_size && s->ops.get_config)
		pf |= 1ull << VHK_PF_CONFIG;
	if (log_all)
		pf |= log_shmfd;
	return pf;
}

VHK_EXPORT int vhk_socket_register(const char *path, uint64_t flags)
{
	struct core_sock *s;
	int rc = 0;

	if (!path || !path[0] || strlen(path) >= sizeof(s->path) ||
	    (flags & ~VHK_REGISTER_FLAGS_MASK))
		return -EINVAL;
	core_lock();
	if (core_sock_find(path)) {
		rc = -EEXIST;
		goto out_unlock;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	strcpy(s->path, path);
	s->flags = flags;
	s->mode = (mode_t)-1;
	s->uid = (uid_t)-1;
	s->gid = (gid_t)-1;
	s->features = DEFAULT_FEATURES;
	s->max_queues = DEFAULT_MAX_QUEUES;
	s->limits.handshake_timeout_ms = DEFAULT_HANDSHAKE_MS;
	s->limits.max_unnegotiated = DEFAULT_MAX_UNNEGOTIATED;
	s->limits.reply_timeout_ms = DEFAULT_REPLY_MS;
	s->next = g_socks;
	g_socks = s;
out_unlock:
	core_unlock();
	return rc;
}

/* Loop post: the unregister completion, then the struct itself. */
static void sock_free(void *ctx)
{
	struct core_sock *s = ctx;

	core_lock();
	if (s->unreg_done)
		s->unreg_done(s->unreg_arg);
	core_unlock();
	free(s);
}

/* Free @s once it is out of the registry and has no device left. Lock held. */
void core_sock_maybe_free(struct core_sock *s)
{
	if (!s->unregistered || s->ndevs || s->freeing)
		return;
	s->freeing = true;
	if (core_loop() && loop_post(core_loop(), sock_free, s) == 0)
		return;
	/* No loop (never started) or no memory: nothing can reference it now. */
	if (s->unreg_done)
		log_err("%s: unregister completion lost (no loop)", s->path);
	free(s);
}

void core_sock_unlink(struct core_sock *s)
{
	for (struct core_sock **pp = &g_socks; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	s->next = NULL;
	s->unregistered = true;
}

/*
 * Look up @path for a configuration change: -ENOENT unknown, -EBUSY
 * started. On success returns 0 with the lock held and the socket in *ret.
 */
static int config_begin(const char *path, struct core_sock **ret)
{
	core_lock();
	*ret = core_sock_find(path);
	if (!*ret) {
		core_unlock();
		return -ENOENT;
	}
	if ((*ret)->started) {
		core_unlock();
		return -EBUSY;
	}
	return 0;
}

VHK_EXPORT int vhk_socket_set_perm(const char *path, mode_t mode, uid_t owner, gid_t group)
{
	struct core_sock *s;
	int rc = config_begin(path, &s);

	if (rc < 0)
		return rc;
	s->mode = mode;
	s->uid = owner;
	s->gid = group;
	core_unlock();
	return 0;
}

VHK_EXPORT int vhk_socket_set_limits(const char *path, const struct vhk_socket_limits *limits)
{
	struct core_sock *s;
	int rc;

	if (!limits)
		return -EINVAL;
	for (unsigned i = 0; i < sizeof(limits->reserved) / sizeof(limits->reserved[0]); i++)
		if (limits->reserved[i])
			return -EINVAL;
	rc = config_begin(path, &s);
	if (rc < 0)
		return rc;
	if (limits->handshake_timeout_ms)
		s->limits.handshake_timeout_ms = limits->handshake_timeout_ms;
	if (limits->max_unnegotiated)
		s->limits.max_unnegotiated = limits->max_unnegotiated;
	if (limits->reply_timeout_ms)
		s->limits.reply_timeout_ms = limits->reply_timeout_ms;
	core_unlock();
	return 0;
}

static bool features_supported(uint64_t features)
{
	return !(features & TRANSPORT_BITS & ~(uint64_t)TRANSPORT_SUPPORTED);
}

/* Offered features become (features & keep) | add, under the control-plane lock. */
static int update_features(const char *path, uint64_t keep, uint64_t add)
{
	struct core_sock *s;
	int rc;

	if (!features_supported(add))
		return -ENOTSUP;
	rc = config_begin(path, &s);
	if (rc < 0)
		return rc;
	s->features = (s->features & keep) | add;
	core_unlock();
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
enum sock_setting { SETTING_FEATURES, SETTING_PROTOCOL_FEATURES, SETTING_MAX_QUEUES };

static int get_setting(const char *path, enum sock_setting which, uint64_t *ret)
{
	struct core_sock *s;
	int rc = 0;

	core_lock();
	s = core_sock_find(path);
	if (!s)
		rc = -ENOENT;
	else if (which == SETTING_FEATURES)
		*ret = s->features;
	else if (which == SETTING_PROTOCOL_FEATURES)
		*ret = core_sock_offered_pf(s);
	else
		*ret = s->max_queues;
	core_unlock();
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
	struct core_sock *s;
	int rc;

	if (protocol_features & ~core_pf_supported())
		return -ENOTSUP;
	rc = config_begin(path, &s);
	if (rc < 0)
		return rc;
	/* Device-implemented bits need a device that takes the messages. */
	if ((protocol_features & PF_DEVICE) && !s->ops.handle_msg) {
		core_unlock();
		return -ENOTSUP;
	}
	s->pfeatures = protocol_features;
	s->pf_set = true;
	core_unlock();
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
	struct core_sock *s;
	int rc;

	if (queues < 1 || queues > VHK_MAX_QUEUES) {
		core_lock();
		rc = core_sock_find(path) ? -EINVAL : -ENOENT;
		core_unlock();
		return rc;
	}
	rc = config_begin(path, &s);
	if (rc < 0)
		return rc;
	s->max_queues = queues;
	core_unlock();
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

VHK_EXPORT int vhk_socket_set_callbacks(const char *path, const struct vhk_callbacks *cb,
					void *ctx)
{
	struct core_sock *s;
	int rc;

	if (!cb)
		return -EINVAL;
	rc = config_begin(path, &s);
	if (rc < 0)
		return rc;
	s->cb = *cb;
	s->cb_ctx = ctx;
	core_unlock();
	return 0;
}

VHK_EXPORT int vhk_socket_set_device_ops(const char *path, const struct vhk_device_ops *ops)
{
	struct core_sock *s;
	int rc;

	if (!ops)
		return -EINVAL;
	rc = config_begin(path, &s);
	if (rc < 0)
		return rc;
	s->ops = *ops;
	core_unlock();
	return 0;
}
