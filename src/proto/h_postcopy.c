/* SPDX-License-Identifier: MIT */
/*
 * Postcopy live migration (protocol feature PAGEFAULT): POSTCOPY_ADVISE
 * creates our userfaultfd and sends it to the frontend (the reply's one
 * fd); POSTCOPY_LISTEN switches memory-table messages to postcopy mode;
 * POSTCOPY_END unregisters and closes the userfaultfd (its reply is a u64
 * 0, always: ending what never started is harmless).
 *
 * In postcopy mode a SET_MEM_TABLE is a handshake (vhost-user spec,
 * "Memory access", postcopy): we map the regions, touching nothing, and
 * reply with the same table where each userspace_addr is our address of
 * the region, so the frontend can translate the faults we cause; the
 * frontend then acks with a SET_MEM_TABLE carrying a u64. Only then are
 * the regions registered for missing-page faults and the table installed
 * (and REPLY_ACK answered, if the first message asked for it). The ack is
 * never waited for: the table is parked in the connection and the next
 * message must be the ack, anything else closes the connection.
 * ADD_MEM_REG (h_mem.c) is registered before its reply carries its
 * address; QEMU 7.2 (with CONFIGURE_MEM_SLOTS) then sends an ADD_MEM_REG
 * whose payload is a u64 0 as its ack, which is accepted and needs
 * nothing more (pc_add_reg_ack).
 *
 * A frontend that never resolves a fault leaves the thread that touched
 * the page waiting in the kernel: that is what postcopy is, and why the
 * feature is negotiated (docs/hardening.md section J).
 */
#include <errno.h>
#include <string.h>

#include "mem/mem_uffd.h"
#include "proto/conn.h"
#include "util/fd.h"
#include "util/log.h"

int h_postcopy_advise(struct conn *c, struct msg_ctx *m)
{
	int ufd, rc;

	if (c->pc_ufd >= 0)
		return -EBUSY; /* one per migration: POSTCOPY_END first */
	rc = mem_uffd_open(&ufd);
	if (rc < 0) {
		log_err("vid %d: cannot create a userfaultfd for postcopy: %s", c->vid,
			strerror(-rc));
		return rc;
	}
	c->pc_ufd = ufd;
	c->reply_fd = fd_dup_cloexec(ufd);
	if (c->reply_fd < 0) {
		rc = c->reply_fd;
		c->reply_fd = -1;
		fd_close(&c->pc_ufd);
		return rc;
	}
	return 0;
}

int h_postcopy_listen(struct conn *c, struct msg_ctx *m)
{
	if (c->pc_ufd < 0)
		return -EINVAL; /* no POSTCOPY_ADVISE */
	/* Pages mapped (and maybe touched) before would make the frontend's placement fail. */
	if (c->dev->mem || c->dev->pending_mem)
		return -EBUSY;
	c->pc_listening = true;
	return 0;
}

/* Always answered with a u64 0 (the spec's acknowledgement); nothing to end is fine too. */
int h_postcopy_end(struct conn *c, struct msg_ctx *m)
{
	m->reply->payload.u64 = 0;
	if (c->pc_ufd < 0)
		return 0;
	mem_table_uffd_unregister(c->dev->pending_mem ? c->dev->pending_mem : c->dev->mem,
				  c->pc_ufd);
	fd_close(&c->pc_ufd);
	c->pc_listening = false;
	return 0;
}

int pc_mem_table(struct conn *c, struct msg_ctx *m, struct mem_table *t)
{
	const struct vhost_user_memory *req = &m->msg->payload.memory;
	struct vhost_user_memory *rep = &m->reply->payload.memory;

	memcpy(rep, req, m->msg->hdr.size);
	for (uint32_t i = 0; i < req->nregions; i++) {
		const struct mem_region *r = mem_find_gpa(t, req->regions[i].guest_phys_addr);
		if (!r || r->gpa != req->regions[i].guest_phys_addr) {
			mem_table_free(t);
			return -EINVAL; /* cannot happen: the table was built from these */
		}
		rep->regions[i].userspace_addr = (uint64_t)(uintptr_t)r->hva;
	}
	m->reply->hdr.size = m->msg->hdr.size;
	c->pc_table = t;
	c->pc_flags = m->msg->hdr.flags;
	return 0;
}

int pc_mem_ack(struct conn *c, const struct msg_ctx *m)
{
	struct mem_table *t = c->pc_table;
	int rc;

	c->pc_table = NULL;
	if (m->msg->hdr.request != VHOST_USER_SET_MEM_TABLE || m->msg->hdr.size != sizeof(uint64_t) ||
	    m->nfds != 0) {
		mem_table_free(t);
		return -EPROTO;
	}
	rc = mem_table_uffd_register(t, c->pc_ufd);
	if (rc < 0) {
		log_err("vid %d: postcopy: cannot register guest memory with the userfaultfd: %s",
			c->vid, strerror(-rc));
		mem_table_free(t);
		return rc;
	}
	return core_dev_set_mem(c->dev, t);
}

bool pc_add_reg_ack(const struct conn *c, const struct msg_ctx *m)
{
	return c->pc_listening && m->msg->hdr.request == VHOST_USER_ADD_MEM_REG &&
	       m->msg->hdr.size == sizeof(uint64_t) && m->msg->payload.u64 == 0 && m->nfds == 0;
}

void pc_free(struct conn *c)
{
	if (c->pc_table)
		mem_table_free(c->pc_table);
	c->pc_table = NULL;
	fd_close(&c->pc_ufd);
	c->pc_listening = false;
}
