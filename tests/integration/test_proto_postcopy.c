/* SPDX-License-Identifier: MIT */
/*
 * Protocol tests of postcopy live migration (PAGEFAULT): what is offered
 * (with LOG_SHMFD), POSTCOPY_ADVISE (a userfaultfd, O_NONBLOCK, CLOEXEC
 * on our side, the reply's one fd), LISTEN and END in every wrong order,
 * the SET_MEM_TABLE handshake of postcopy mode (our addresses in the
 * reply, nothing installed or registered before the frontend's ack, then
 * registered for missing pages: a page the library touches faults to the
 * frontend, which places it), a frontend that does not ack (connection
 * closed, nothing left mapped), ADD_MEM_REG in postcopy mode (registered,
 * its address in the reply, QEMU's u64 ack accepted), and no userfaultfd
 * left behind.
 *
 * The library runs in this process, so its mappings are in our address
 * space: the test plays QEMU's fault thread on the userfaultfd it gets.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define MIB	   (1ull << 20)
#define PAGE	   4096ull
#define F_LOG_ALL  BIT(VHK_F_LOG_ALL)
#define PF_PC	   (IT_PF_DEFAULT | BIT(VHK_PF_LOG_SHMFD) | BIT(VHK_PF_PAGEFAULT))
#define FLAGS_NR   (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK)
#define MT_SIZE(n) (VHOST_USER_MEMORY_HDR_SIZE + (n) * sizeof(struct vhost_user_mem_region))

static const struct vhk_device_ops dev_ops = {.name = "it-postcopy", .min_queues = 1};

struct env {
	const char *path;
	struct vuf *v;
	struct gmem *m;
	int vid;
	int ufd; /* ours, from POSTCOPY_ADVISE */
};

/* A custom device offering LOG_ALL (so LOG_SHMFD and PAGEFAULT), no memory yet. */
static void env_up(struct env *e, uint64_t pf)
{
	const uint64_t f = IT_F_CUSTOM | F_LOG_ALL;
	struct be_cfg cfg = {.ops = &dev_ops, .features = f, .protocol_features = PF_PC,
			     .pairs = 1};

	memset(e, 0, sizeof(*e));
	e->ufd = -1;
	e->path = be_start(&cfg);
	e->v = fe_open(e->path, f & ~F_LOG_ALL, pf);
	e->vid = ev_conn_vid();
	/* Two regions, never touched by the test (gmem maps them, writes nothing). */
	CHECK_EQ(gmem_new(2, MIB, 0, 0, &e->m), 0);
}

static void env_down(struct env *e)
{
	vuf_close(e->v);
	gmem_free(e->m);
	if (e->ufd >= 0)
		close(e->ufd);
	e->ufd = -1;
}

/* Receive one message and the fds it carries (up to @maxfds; *nfds set). */
static void recv_fds(struct vuf *v, struct vhost_user_msg *msg, int *fds, int maxfds, int *nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 8)];
	struct iovec iov = {&msg->hdr, sizeof(msg->hdr)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct pollfd p = {v->fd, POLLIN, 0};

	*nfds = 0;
	CHECK_EQ(poll(&p, 1, 3000), 1);
	CHECK_EQ(recvmsg(v->fd, &mh, MSG_CMSG_CLOEXEC), (ssize_t)sizeof(msg->hdr));
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		CHECK(n <= maxfds);
		memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)n);
		*nfds = n;
	}
	CHECK(msg->hdr.size <= sizeof(msg->payload));
	if (msg->hdr.size)
		CHECK_EQ(recv(v->fd, msg->payload.bytes, msg->hdr.size, MSG_WAITALL),
			 (ssize_t)msg->hdr.size);
}

/* POSTCOPY_ADVISE: 0 with the userfaultfd in *@ufd, or the error the u64 reply carries. */
static uint64_t advise(struct vuf *v, const void *payload, uint32_t size, const int *fds, int nfds,
		       int *ufd)
{
	struct vhost_user_msg m;
	int got[8], n;

	*ufd = -1;
	CHECK_EQ(vuf_send(v, VHOST_USER_POSTCOPY_ADVISE, VHOST_USER_VERSION, payload, size, fds,
			  nfds),
		 0);
	recv_fds(v, &m, got, 8, &n);
	CHECK_EQ(m.hdr.request, VHOST_USER_POSTCOPY_ADVISE);
	CHECK_EQ(m.hdr.flags, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);
	if (m.hdr.size == 0) {
		CHECK_EQ(n, 1);
		*ufd = got[0];
		return 0;
	}
	CHECK_EQ(n, 0);
	CHECK_EQ(m.hdr.size, 8);
	CHECK(m.payload.u64 != 0);
	return m.payload.u64;
}

/* How many fds of this process are userfaultfds; how many of those lack CLOEXEC. */
static int count_uffds(int *no_cloexec)
{
	char path[64], link[128], line[128];
	int n = 0;

	*no_cloexec = 0;
	for (int fd = 0; fd < 4096; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t l = readlink(path, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = 0;
		if (!strstr(link, "userfaultfd"))
			continue;
		n++;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
		FILE *f = fopen(path, "r");
		CHECK(f != NULL);
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "flags:", 6) && !(strtoul(line + 6, NULL, 8) & O_CLOEXEC))
				(*no_cloexec)++;
		fclose(f);
	}
	return n;
}

/*
 * count_uffds() once it is down to @want (the library closes the copy it
 * sent just after the send, so the reply can arrive first), within 2 s.
 */
static int uffds_settle(int want, int *no_cloexec)
{
	int n = count_uffds(no_cloexec);
	for (int i = 0; i < 200 && n > want; i++) {
		usleep(10000);
		n = count_uffds(no_cloexec);
	}
	return n;
}

/* True if @addr lies in a mapping of this process (/proc/self/maps). */
static bool is_mapped(uint64_t addr)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	CHECK(f != NULL);
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;
		if (sscanf(line, "%llx-%llx", &lo, &hi) == 2 && addr >= lo && addr < hi)
			found = true;
	}
	fclose(f);
	return found;
}

/* ADVISE then LISTEN, both fine. */
static void advise_listen(struct env *e)
{
	CHECK_EQ(advise(e->v, NULL, 0, NULL, 0, &e->ufd), 0);
	fe_ack(e->v, VHOST_USER_POSTCOPY_LISTEN, NULL, 0, NULL, 0);
}

/* SET_MEM_TABLE of the env's regions, as sent (NEED_REPLY); the address reply in @rep. */
static void mem_table_postcopy(struct env *e, struct vhost_user_msg *req, struct vhost_user_msg *rep)
{
	int fds[2] = {e->m->r[0].fd, e->m->r[1].fd}, n;

	memset(req, 0, sizeof(*req));
	req->payload.memory.nregions = 2;
	for (uint32_t i = 0; i < 2; i++) {
		struct vhost_user_mem_region *r = &req->payload.memory.regions[i];
		r->guest_phys_addr = e->m->r[i].gpa;
		r->memory_size = e->m->r[i].size;
		r->userspace_addr = e->m->r[i].qva;
		r->mmap_offset = 0;
	}
	CHECK_EQ(vuf_send(e->v, VHOST_USER_SET_MEM_TABLE, FLAGS_NR, &req->payload, MT_SIZE(2), fds, 2),
		 0);
	recv_fds(e->v, rep, NULL, 0, &n);
	CHECK_EQ(n, 0);
}

/* The frontend's ack of the address reply. */
static void send_ack(struct env *e)
{
	CHECK_EQ(vuf_send(e->v, VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, &(uint64_t){0}, 8,
			  NULL, 0),
		 0);
}

/* The REPLY_ACK that follows the ack: @want 0 (success) or nonzero. */
static void recv_reply_ack(struct env *e, bool ok)
{
	struct vhost_user_msg m;
	CHECK_EQ(vuf_recv(e->v, &m, 3000), 0);
	CHECK_EQ(m.hdr.request, VHOST_USER_SET_MEM_TABLE);
	CHECK_EQ(m.hdr.size, 8);
	CHECK_EQ(m.payload.u64 == 0, ok);
}

/* Place one page of @byte at @addr (ours = the library's mapping) through @ufd. */
static int place(int ufd, uint64_t addr, uint8_t byte)
{
	static uint8_t src[PAGE] __attribute__((aligned(4096)));
	memset(src, byte, sizeof(src));
	struct uffdio_copy cp = {.dst = addr & ~(PAGE - 1), .src = (uintptr_t)src, .len = PAGE};
	return ioctl(ufd, UFFDIO_COPY, &cp) < 0 ? -errno : 0;
}

static void *reader(void *arg)
{
	return (void *)(uintptr_t) * (volatile uint8_t *)arg;
}

/*
 * The library's mapping at @addr is registered for missing pages: a read
 * of an untouched page there faults to @ufd; placing the page lets it go on.
 */
static void check_faults_to_frontend(int ufd, uint64_t addr)
{
	pthread_t t;
	struct uffd_msg msg;
	struct pollfd p = {ufd, POLLIN, 0};
	void *ret;

	CHECK_EQ(pthread_create(&t, NULL, reader, (void *)(uintptr_t)addr), 0);
	CHECK_EQ(poll(&p, 1, 3000), 1);
	CHECK_EQ(read(ufd, &msg, sizeof(msg)), (ssize_t)sizeof(msg));
	CHECK_EQ(msg.event, UFFD_EVENT_PAGEFAULT);
	CHECK_EQ(msg.arg.pagefault.address & ~(PAGE - 1), addr & ~(PAGE - 1));
	CHECK_EQ(place(ufd, addr, 0xab), 0);
	CHECK_EQ(pthread_join(t, &ret), 0);
	CHECK_EQ((uintptr_t)ret, 0xab);
}

/* PAGEFAULT is offered with LOG_SHMFD (net by default), never without LOG_ALL. */
static void t_offer(void)
{
	uint64_t pf = 0;
	struct be_cfg net = {.net = true, .pairs = 1};
	const char *path = be_start(&net);
	struct vuf *v = fe_connect(path);

	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_PROTOCOL_FEATURES, &pf), 0);
	CHECK(pf & BIT(VHK_PF_PAGEFAULT));
	vuf_close(v);
	be_stop();
	struct be_cfg cust = {.ops = &dev_ops, .features = IT_F_CUSTOM, .protocol_features = PF_PC,
			      .pairs = 1};
	path = be_start(&cust);
	v = fe_connect(path);
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_PROTOCOL_FEATURES, &pf), 0);
	CHECK_EQ(pf & BIT(VHK_PF_PAGEFAULT), 0);
	vuf_close(v);
}

/* ADVISE: one userfaultfd, non-blocking, CLOEXEC on our side; one per migration; END closes ours. */
static void t_advise(void)
{
	struct env e;
	int nc, ufd2;
	env_up(&e, PF_PC);
	CHECK_EQ(uffds_settle(0, &nc), 0);
	CHECK_EQ(advise(e.v, NULL, 0, NULL, 0, &e.ufd), 0);
	CHECK(fcntl(e.ufd, F_GETFL) & O_NONBLOCK);
	CHECK_EQ(uffds_settle(2, &nc), 2); /* the library's and ours */
	CHECK_EQ(nc, 0);
	CHECK(advise(e.v, NULL, 0, NULL, 0, &ufd2) != 0); /* a second one: refused */
	fe_ack(e.v, VHOST_USER_POSTCOPY_END, NULL, 0, NULL, 0);
	CHECK_EQ(uffds_settle(1, &nc), 1);
	/* Advised again after the end; a disconnect closes it. */
	close(e.ufd);
	CHECK_EQ(advise(e.v, NULL, 0, NULL, 0, &e.ufd), 0);
	CHECK_EQ(uffds_settle(2, &nc), 2);
	vuf_close(e.v);
	e.v = NULL;
	CHECK(ev_wait(EV_DESTROY_CONN, ev_count(EV_NEW_CONN), 3000));
	CHECK_EQ(uffds_settle(1, &nc), 1);
	gmem_free(e.m);
	close(e.ufd);
}

/* Every message out of order or malformed is refused; the connection stays. */
static void t_order_hostile(void)
{
	struct env e;
	int ufd, base;
	env_up(&e, PF_PC);
	base = proc_fd_count();
	fe_nack(e.v, VHOST_USER_POSTCOPY_LISTEN, NULL, 0, NULL, 0); /* no ADVISE */
	fe_ack(e.v, VHOST_USER_POSTCOPY_END, NULL, 0, NULL, 0); /* nothing to end: acknowledged */
	CHECK(advise(e.v, &(uint64_t){0}, 8, NULL, 0, &ufd) != 0); /* a payload */
	struct probe p;
	probe_new(&p);
	CHECK(advise(e.v, NULL, 0, &p.wr, 1, &ufd) != 0); /* an fd: refused, closed */
	probe_sent(&p);
	CHECK(probe_closed(&p, 2000));
	probe_free(&p);
	fe_nack(e.v, VHOST_USER_POSTCOPY_LISTEN, &(uint64_t){0}, 8, NULL, 0);
	CHECK_EQ(proc_fd_settle(base, 2000), base);
	/* LISTEN once memory is mapped: refused (its pages may be populated already). */
	CHECK_EQ(advise(e.v, NULL, 0, NULL, 0, &e.ufd), 0);
	CHECK_EQ(vuf_set_mem_table(e.v, e.m), 0);
	fe_nack(e.v, VHOST_USER_POSTCOPY_LISTEN, NULL, 0, NULL, 0);
	fe_ack(e.v, VHOST_USER_POSTCOPY_END, NULL, 0, NULL, 0);
	env_down(&e);
	/* PAGEFAULT not negotiated: ADVISE answered with an error, no fd. */
	be_stop();
	env_up(&e, PF_PC & ~BIT(VHK_PF_PAGEFAULT));
	CHECK(advise(e.v, NULL, 0, NULL, 0, &ufd) != 0);
	fe_nack(e.v, VHOST_USER_POSTCOPY_LISTEN, NULL, 0, NULL, 0);
	env_down(&e);
	be_alive(e.path);
}

/*
 * The SET_MEM_TABLE handshake: the reply is the table with our addresses;
 * nothing is installed or registered before the ack; after it, REPLY_ACK,
 * the table is in and a page the library touches faults to the frontend.
 */
static void t_mem_table_handshake(void)
{
	struct env e;
	struct vhost_user_msg req, rep;
	env_up(&e, PF_PC);
	advise_listen(&e);
	mem_table_postcopy(&e, &req, &rep);
	CHECK_EQ(rep.hdr.request, VHOST_USER_SET_MEM_TABLE);
	CHECK_EQ(rep.hdr.flags, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);
	CHECK_EQ(rep.hdr.size, MT_SIZE(2));
	CHECK_EQ(rep.payload.memory.nregions, 2);
	uint64_t lib[2];
	for (uint32_t i = 0; i < 2; i++) {
		const struct vhost_user_mem_region *a = &req.payload.memory.regions[i],
						   *b = &rep.payload.memory.regions[i];
		CHECK_EQ(b->guest_phys_addr, a->guest_phys_addr);
		CHECK_EQ(b->memory_size, a->memory_size);
		CHECK_EQ(b->mmap_offset, a->mmap_offset);
		CHECK(b->userspace_addr != a->userspace_addr); /* the library's own mapping */
		CHECK_EQ(b->userspace_addr % PAGE, 0);
		lib[i] = b->userspace_addr;
	}
	CHECK_EQ(vhk_dev_get_mem_table(e.vid, NULL, 0), 0); /* not installed before the ack */
	CHECK(place(e.ufd, lib[0] + 5 * PAGE, 1) != 0);	    /* not registered either */
	send_ack(&e);
	recv_reply_ack(&e, true);
	CHECK_EQ(vhk_dev_get_mem_table(e.vid, NULL, 0), 2);
	check_faults_to_frontend(e.ufd, lib[0] + 7 * PAGE + 100);
	check_faults_to_frontend(e.ufd, lib[1] + MIB - 1);
	/* The page placed through the library's mapping is the guest's page. */
	CHECK_EQ(e.m->r[0].hva[7 * PAGE + 100], 0xab);
	fe_ack(e.v, VHOST_USER_POSTCOPY_END, NULL, 0, NULL, 0);
	int nc;
	CHECK_EQ(uffds_settle(1, &nc), 1);
	/* After the end a table is plain again: an ack only, installed at once. */
	CHECK_EQ(vuf_set_mem_table(e.v, e.m), 0);
	env_down(&e);
	be_alive(e.path);
}

/* Anything but the ack after the address reply closes the connection; nothing stays mapped. */
static void t_ack_hostile(void)
{
	for (int variant = 0; variant < 4; variant++) {
		struct env e;
		struct vhost_user_msg req, rep;
		struct probe p;
		env_up(&e, PF_PC);
		advise_listen(&e);
		int nc;
		mem_table_postcopy(&e, &req, &rep);
		CHECK_EQ(rep.hdr.size, MT_SIZE(2));
		const uint64_t lib0 = rep.payload.memory.regions[0].userspace_addr,
			       lib1 = rep.payload.memory.regions[1].userspace_addr;
		CHECK(is_mapped(lib0) && is_mapped(lib1));
		probe_new(&p);
		switch (variant) {
		case 0: /* another request */
			CHECK_EQ(vuf_send(e.v, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0,
					  NULL, 0),
				 0);
			break;
		case 1: /* the ack without its u64 */
			CHECK_EQ(vuf_send(e.v, VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, NULL, 0,
					  NULL, 0),
				 0);
			break;
		case 2: /* the ack with an fd */
			CHECK_EQ(vuf_send(e.v, VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION,
					  &(uint64_t){0}, 8, &p.wr, 1),
				 0);
			break;
		case 3: /* a whole new table instead of the ack */
			CHECK_EQ(vuf_send(e.v, VHOST_USER_SET_MEM_TABLE, FLAGS_NR, &req.payload,
					  MT_SIZE(2), (int[]){e.m->r[0].fd, e.m->r[1].fd}, 2),
				 0);
			break;
		}
		probe_sent(&p);
		CHECK(vuf_peer_closed(e.v, 3000));
		CHECK(probe_closed(&p, 2000));
		probe_free(&p);
		CHECK(ev_wait(EV_DESTROY_CONN, ev_count(EV_NEW_CONN), 3000));
		CHECK(!is_mapped(lib0) && !is_mapped(lib1)); /* the parked table is unmapped */
		CHECK_EQ(uffds_settle(1, &nc), 1); /* ours only */
		CHECK_EQ(nc, 0);
		env_down(&e);
		be_alive(e.path);
		be_stop();
	}
}

/* ADD_MEM_REG while listening: registered before the reply, which carries our address. */
static void t_add_mem_reg(void)
{
	struct env e;
	struct vhost_user_msg rep;
	env_up(&e, PF_PC);
	advise_listen(&e);
	for (uint32_t i = 0; i < 2; i++) {
		struct vhost_user_mem_reg body = {
		    .region = {.guest_phys_addr = e.m->r[i].gpa, .memory_size = e.m->r[i].size,
			       .userspace_addr = e.m->r[i].qva}};
		int n;
		CHECK_EQ(vuf_send(e.v, VHOST_USER_ADD_MEM_REG, FLAGS_NR, &body, sizeof(body),
				  &e.m->r[i].fd, 1),
			 0);
		recv_fds(e.v, &rep, NULL, 0, &n);
		CHECK_EQ(rep.hdr.request, VHOST_USER_ADD_MEM_REG);
		CHECK_EQ(rep.hdr.size, sizeof(body));
		CHECK_EQ(rep.payload.mem_reg.region.guest_phys_addr, body.region.guest_phys_addr);
		CHECK_EQ(rep.payload.mem_reg.region.memory_size, body.region.memory_size);
		CHECK(rep.payload.mem_reg.region.userspace_addr != body.region.userspace_addr);
		check_faults_to_frontend(e.ufd, rep.payload.mem_reg.region.userspace_addr + 3 * PAGE);
		/* The same region again (QEMU's per-queue-pair resend): the same address. */
		uint64_t first = rep.payload.mem_reg.region.userspace_addr;
		CHECK_EQ(vuf_send(e.v, VHOST_USER_ADD_MEM_REG, FLAGS_NR, &body, sizeof(body),
				  &e.m->r[i].fd, 1),
			 0);
		recv_fds(e.v, &rep, NULL, 0, &n);
		CHECK_EQ(rep.payload.mem_reg.region.userspace_addr, first);
	}
	/* QEMU's ack of the addresses: an ADD_MEM_REG of a u64 0, accepted (REPLY_ACK 0). */
	fe_ack(e.v, VHOST_USER_ADD_MEM_REG, &(uint64_t){0}, 8, NULL, 0);
	fe_usable(e.v);
	CHECK_EQ(vhk_dev_get_mem_table(e.vid, NULL, 0), 2);
	/* Not while postcopy is off, nor with a value or an fd. */
	fe_nack(e.v, VHOST_USER_ADD_MEM_REG, &(uint64_t){1}, 8, NULL, 0);
	fe_nack(e.v, VHOST_USER_ADD_MEM_REG, &(uint64_t){0}, 8, &e.m->r[0].fd, 1);
	fe_ack(e.v, VHOST_USER_POSTCOPY_END, NULL, 0, NULL, 0);
	fe_nack(e.v, VHOST_USER_ADD_MEM_REG, &(uint64_t){0}, 8, NULL, 0);
	env_down(&e);
	be_alive(e.path);
}

TEST_MAIN(TEST(t_offer), TEST(t_advise), TEST(t_order_hostile), TEST(t_mem_table_handshake),
	  TEST(t_ack_hostile), TEST(t_add_mem_reg))
