/* SPDX-License-Identifier: MIT */
/*
 * Memory table messages: SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG,
 * GET_MAX_MEM_SLOTS, and the dirty log's: SET_LOG_BASE, SET_LOG_FD.
 * Region and log validation and mapping live in mem/; here the fds change
 * hands (each is taken out of the message before mem_region_map() or
 * mem_log_map(), which always consume it) and a new table or log is
 * built; the core installs a table once the device's queues are down
 * (queue_stop awaited, destroy_device first) and brings them up again,
 * and a log at once (core_dev_set_log: it must cover the memory and the
 * rings; a table a mapped log does not cover is refused).
 */
#include <errno.h>

#include "mem/mem_log.h"
#include "mem/mem_uffd.h"
#include "proto/conn.h"
#include "util/fd.h"
#include "util/log.h"

int msg_size_mem_table(const struct vhost_user_msg *msg)
{
	uint32_t n;

	if (msg->hdr.size < VHOST_USER_MEMORY_HDR_SIZE)
		return -EINVAL;
	n = msg->payload.memory.nregions;
	if (n == 0 || n > VHOST_MEMORY_BASELINE_NREGIONS)
		return -EINVAL;
	if (msg->hdr.size !=
	    VHOST_USER_MEMORY_HDR_SIZE + n * sizeof(struct vhost_user_mem_region))
		return -EINVAL;
	return 0;
}

/* Wire region to mem's description. */
static struct mem_region_desc region_desc(const struct vhost_user_mem_region *r)
{
	struct mem_region_desc d = {
	    .gpa = r->guest_phys_addr,
	    .size = r->memory_size,
	    .qva = r->userspace_addr,
	    .mmap_offset = r->mmap_offset,
	};
	return d;
}

int h_set_mem_table(struct conn *c, struct msg_ctx *m)
{
	const struct vhost_user_memory *mm = &m->msg->payload.memory;
	struct mem_region regs[VHOST_MEMORY_BASELINE_NREGIONS];
	uint32_t n = mm->nregions, mapped = 0;
	struct mem_table *t;
	int rc;

	if (mm->padding != 0)
		return -EINVAL;
	for (; mapped < n; mapped++) {
		struct mem_region_desc d = region_desc(&mm->regions[mapped]);
		int fd = m->fds[mapped];
		m->fds[mapped] = -1; /* consumed by mem_region_map() either way */
		rc = mem_region_map(&d, fd, &regs[mapped]);
		if (rc < 0)
			goto err_put;
	}
	rc = mem_table_new(regs, n, &t);
	if (rc < 0)
		goto err_put;
	if (c->pc_listening)
		return pc_mem_table(c, m, t); /* installed once the frontend acks (h_postcopy.c) */
	return core_dev_set_mem(c->dev, t);

err_put:
	while (mapped > 0)
		mem_region_put(&regs[--mapped]);
	return rc;
}

/* The table the next change builds on: one still waiting to be installed, or the current one. */
static const struct mem_table *cur_mem(const struct conn *c)
{
	return c->dev->pending_mem ? c->dev->pending_mem : c->dev->mem;
}

int h_get_max_mem_slots(struct conn *c, struct msg_ctx *m)
{
	m->reply->payload.u64 = VHK_MAX_MEM_REGIONS;
	return 0;
}

/* True if @t already maps exactly the region @d describes. */
static bool region_present(const struct mem_table *t, const struct mem_region_desc *d)
{
	const struct mem_region *o = t ? mem_find_gpa(t, d->gpa) : NULL;

	return o && o->gpa == d->gpa && o->size == d->size && o->qva == d->qva &&
	       o->mmap_offset == d->mmap_offset;
}

/* Postcopy: ADD_MEM_REG is answered with the region, userspace_addr our address of it. */
static void pc_reg_reply(struct msg_ctx *m, const struct mem_region *r)
{
	m->reply->payload.mem_reg = m->msg->payload.mem_reg;
	m->reply->payload.mem_reg.region.userspace_addr = (uint64_t)(uintptr_t)r->hva;
	m->reply->hdr.size = sizeof(m->reply->payload.mem_reg);
}

int h_add_mem_reg(struct conn *c, struct msg_ctx *m)
{
	struct mem_region_desc d = region_desc(&m->msg->payload.mem_reg.region);
	struct mem_region r;
	struct mem_table *t;
	int fd = m->fds[0];
	int rc;

	m->fds[0] = -1;
	/*
	 * QEMU runs one vhost_dev per queue pair over the same connection and
	 * each one adds the regions it has not sent itself: a region identical
	 * to one already mapped is already there, not an overlap.
	 */
	if (region_present(cur_mem(c), &d)) {
		fd_close(&fd);
		if (c->pc_listening)
			pc_reg_reply(m, mem_find_gpa(cur_mem(c), d.gpa));
		return 0;
	}
	rc = mem_region_map(&d, fd, &r);
	if (rc < 0)
		return rc;
	if (c->pc_listening) {
		/* Postcopy: registered before the reply gives the frontend its address. */
		rc = mem_region_uffd_register(&r, c->pc_ufd);
		if (rc < 0) {
			mem_region_put(&r);
			return rc;
		}
		pc_reg_reply(m, &r);
	}
	if (cur_mem(c))
		rc = mem_table_add(cur_mem(c), &r, &t);
	else
		rc = mem_table_new(&r, 1, &t);
	if (rc < 0) {
		mem_region_put(&r);
		return rc;
	}
	return core_dev_set_mem(c->dev, t);
}

int h_rem_mem_reg(struct conn *c, struct msg_ctx *m)
{
	const struct vhost_user_mem_region *r = &m->msg->payload.mem_reg.region;
	struct mem_table *t;
	int rc;

	/* An fd the front-end may attach is closed unused by the dispatcher. */
	rc = mem_table_remove(cur_mem(c), r->guest_phys_addr, r->userspace_addr, r->memory_size,
			      &t);
	if (rc < 0)
		return rc;
	return core_dev_set_mem(c->dev, t);
}

int h_set_log_base(struct conn *c, struct msg_ctx *m)
{
	const struct vhost_user_log *lg = &m->msg->payload.log;
	struct mem_log *log;
	int fd = m->fds[0];
	int rc;

	m->fds[0] = -1; /* consumed by mem_log_map() either way */
	rc = mem_log_map(fd, lg->mmap_size, lg->mmap_offset, &log);
	if (rc < 0)
		return rc;
	return core_dev_set_log(c->dev, log); /* takes the log, also on failure */
}

int h_set_log_fd(struct conn *c, struct msg_ctx *m)
{
	int fd = m->fds[0];

	m->fds[0] = -1;
	core_dev_set_log_fd(c->dev, fd);
	return 0;
}
