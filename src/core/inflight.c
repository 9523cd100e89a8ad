/* SPDX-License-Identifier: MIT */
/*
 * The inflight region of a device (INFLIGHT_SHMFD; vq/vq_inflight.h has
 * what it holds and how it is used).
 *
 * GET_INFLIGHT_FD: we create the region, a zeroed memfd sealed against
 * growing and shrinking (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL), sized
 * from the frontend's num_queues and queue_size (both checked before any
 * arithmetic, the product overflow-checked), and hand the frontend its
 * fd; the region becomes the device's, replacing the previous one.
 * SET_INFLIGHT_FD: the frontend hands a region back (the same one, or the
 * one a previous backend process created before it crashed): one fd,
 * num_queues <= our queues, queue_size 1..32768, mmap_size covering every
 * queue's region, mmap_offset + mmap_size inside the file (overflow-checked),
 * and the file sealed against shrinking, so that no access to the mapping
 * can ever fault (SIGBUS) when a frontend truncates it later.
 *
 * Ownership: the device owns the one mapping (struct vdev_inflight); each
 * queue gets its slice when its ring starts (core_inflight_attach, from
 * core_dev_settle) and uses it only while started. A region is therefore
 * only replaced while no queue of the device is started (-EBUSY otherwise;
 * QEMU sends both messages before it starts the rings), and unmapped when
 * the device is released, after its vqs were reset.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "util/fd.h"
#include "vq/vq_inflight.h"

/* Queues the device may use (the socket's setting). */
static uint32_t nvrings(const struct vdev *d)
{
	return d->max_vrings > VHK_MAX_QUEUES ? VHK_MAX_QUEUES : d->max_vrings;
}

static bool ring_packed(const struct vdev *d)
{
	return d->features & (1ull << VHK_F_RING_PACKED);
}

void vdev_inflight_unmap(struct vdev_inflight *r)
{
	if (r && r->map)
		munmap(r->map, r->map_len);
	if (r)
		*r = (struct vdev_inflight){0};
}

/*
 * num_queues and queue_size checked, then the bytes their regions take in
 * the current ring layout (*@need). 0 or -EINVAL.
 */
static int region_bytes(const struct vdev *d, uint16_t num_queues, uint16_t queue_size,
			uint64_t *need)
{
	if (num_queues == 0 || num_queues > nvrings(d))
		return -EINVAL;
	if (queue_size == 0 || queue_size > VQ_MAX_SIZE)
		return -EINVAL;
	if (__builtin_mul_overflow(vq_ifl_queue_size(queue_size, ring_packed(d)),
				   (uint64_t)num_queues, need))
		return -EINVAL;
	return 0;
}

/* True when a queue of @d is started: its ring may use the current region. */
static bool any_started(struct vdev *d)
{
	for (uint32_t q = 0; q < VHK_MAX_QUEUES; q++) {
		const struct vq *vq = vdev_vq(d, q);
		if (vq && vq->started)
			return true;
	}
	return false;
}

/* Map [offset, offset + len) of @fd into @r (not installed). 0 or -errno. */
static int region_map(int fd, uint64_t offset, uint64_t len, struct vdev_inflight *r)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t aligned, map_len;
	void *p;

	if (page <= 0)
		page = 4096;
	aligned = offset & ~((uint64_t)page - 1);
	if (add_overflows(offset - aligned, len, &map_len) || map_len > SIZE_MAX ||
	    aligned > (uint64_t)INT64_MAX)
		return -EINVAL;
	p = mmap(NULL, (size_t)map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)aligned);
	if (p == MAP_FAILED)
		return -errno;
	r->map = p;
	r->map_len = (size_t)map_len;
	r->base = (uint8_t *)p + (offset - aligned);
	r->len = len;
	return 0;
}

/* Make @r the device's region: every queue forgets the old one, which is unmapped. */
static void region_install(struct vdev *d, const struct vdev_inflight *r)
{
	for (uint32_t q = 0; q < VHK_MAX_QUEUES; q++) {
		struct vq *vq = vdev_vq(d, q);
		if (!vq)
			continue;
		vq_quiesce(vq);
		(void)vq_set_inflight(vq, NULL, 0, 0); /* not started: cannot fail */
		vq_unquiesce(vq);
	}
	vdev_inflight_unmap(&d->inflight);
	d->inflight = *r;
}

int core_dev_get_inflight(struct vdev *d, uint16_t num_queues, uint16_t queue_size,
			  int *ret_fd, uint64_t *ret_size)
{
	struct vdev_inflight r = {.num_queues = num_queues, .queue_size = queue_size};
	uint64_t need;
	int fd, rc;

	*ret_fd = -1;
	rc = region_bytes(d, num_queues, queue_size, &need);
	if (rc < 0)
		return rc;
	if (need > (uint64_t)INT64_MAX)
		return -EINVAL;
	if (any_started(d))
		return -EBUSY;
	fd = memfd_create("vhostkit-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)need) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
		rc = -errno;
		goto out_close;
	}
	rc = region_map(fd, 0, need, &r);
	if (rc < 0)
		goto out_close;
	region_install(d, &r); /* zeroed: version 0, every queue initialises its slice */
	*ret_fd = fd;
	*ret_size = need;
	return 0;
out_close:
	fd_close(&fd);
	return rc;
}

int core_dev_set_inflight(struct vdev *d, int fd, uint64_t mmap_size, uint64_t mmap_offset,
			  uint16_t num_queues, uint16_t queue_size)
{
	struct vdev_inflight r = {.num_queues = num_queues, .queue_size = queue_size};
	uint64_t need, end;
	struct stat st;
	int seals, rc;

	rc = region_bytes(d, num_queues, queue_size, &need);
	if (rc < 0)
		goto out_close;
	rc = -EINVAL;
	if (mmap_size < need || add_overflows(mmap_offset, mmap_size, &end))
		goto out_close;
	if (fstat(fd, &st) < 0 || st.st_size < 0 || (uint64_t)st.st_size < end)
		goto out_close;
	/* A region that can shrink could fault (SIGBUS) under the datapath. */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK))
		goto out_close;
	if (any_started(d)) {
		rc = -EBUSY;
		goto out_close;
	}
	rc = region_map(fd, mmap_offset, need, &r);
	if (rc < 0)
		goto out_close;
	region_install(d, &r);
out_close:
	fd_close(&fd);
	return rc;
}

int core_inflight_attach(struct vdev *d, uint32_t q, struct vq *vq)
{
	const struct vdev_inflight *r = &d->inflight;
	uint64_t stride, off;

	if (!r->map || q >= r->num_queues ||
	    !(d->protocol_features & (1ull << VHK_PF_INFLIGHT_SHMFD)))
		return vq_set_inflight(vq, NULL, 0, 0);
	/* The layout is the ring's now: a region sized for the other one may be too small. */
	stride = vq_ifl_queue_size(r->queue_size, ring_packed(d));
	off = stride * q; /* q < 256, stride < 2^21 */
	if (off + stride > r->len)
		return vq_set_inflight(vq, r->base, 0, r->queue_size); /* refused at start */
	return vq_set_inflight(vq, r->base + off, stride, r->queue_size);
}
