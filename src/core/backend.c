/* SPDX-License-Identifier: MIT */
/*
 * Device -> frontend messages over the transport's backend channel (the
 * spec's back-end message types): the public config-change notice, and
 * the entry point later users (IOTLB misses, host notifiers) share.
 */
#include <errno.h>

#include "core/core.h"
#include "util/log.h"

/* VHOST_USER_BACKEND_CONFIG_CHANGE_MSG (the spec's back-end message 2). */
#define BACKEND_CONFIG_CHANGE_MSG 2u

int core_dev_backend_send(struct vdev *d, const struct core_bmsg *m)
{
	if (d->closing || !d->oo || !d->oo->backend_send)
		return -ENOTCONN;
	return d->oo->backend_send(d->owner, m);
}

/* A config-change notice that failed is worth one line: the guest keeps stale config. */
static void config_change_done(void *arg, int rc)
{
	if (rc < 0)
		log_warn("vid %d: config change notice not delivered: %d", (int)(intptr_t)arg, rc);
}

VHK_EXPORT int vhk_dev_config_changed(int vid)
{
	const uint64_t need = (1ull << VHK_PF_CONFIG) | (1ull << VHK_PF_BACKEND_REQ);
	struct core_bmsg m = {.request = BACKEND_CONFIG_CHANGE_MSG,
			      .done = config_change_done,
			      .arg = (void *)(intptr_t)vid};
	struct vdev *d;
	int rc;

	core_lock();
	d = vdev_get(vid);
	if (!d)
		rc = -ENODEV;
	else if ((d->protocol_features & need) != need)
		rc = -ENOTSUP;
	else
		rc = core_dev_backend_send(d, &m);
	core_unlock();
	return rc;
}
