/* SPDX-License-Identifier: MIT */
/*
 * Protocol tests, part 2: the memory table. SET_MEM_TABLE (valid tables are
 * mapped where the frontend says; every malformed table is NACKed and leaks
 * no fd), GET_MAX_MEM_SLOTS, ADD_MEM_REG / REM_MEM_REG up to the slot limit.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

#define KIB 1024ull
#define MAX_SLOTS 509

static const struct vhk_device_ops custom_ops = {.name = "it", .min_queues = 1};

struct memtab {
	struct mt_hdr hdr;
	struct vhost_user_mem_region r[12];
} __attribute__((packed));

/* Wire size of a table with @n regions. */
static uint32_t mt_size(uint32_t n)
{
	return (uint32_t)(sizeof(struct mt_hdr) + n * sizeof(struct vhost_user_mem_region));
}

/* Fill region @i of @t. */
static void mt_set(struct memtab *t, uint32_t i, uint64_t gpa, uint64_t size, uint64_t uaddr,
		   uint64_t off)
{
	t->r[i] = (struct vhost_user_mem_region){.guest_phys_addr = gpa, .memory_size = size,
						 .userspace_addr = uaddr, .mmap_offset = off};
}

/* Start a socket (custom device) and open a negotiated frontend. */
static const char *sock_path;

static struct vuf *open_fe(uint64_t pf, int *ret_vid)
{
	struct be_cfg cfg = {.ops = &custom_ops, .features = IT_F_CUSTOM,
			     .protocol_features = IT_PF_DEFAULT, .pairs = 1};
	if (!sock_path)
		sock_path = be_start(&cfg);
	unsigned conns = ev_count(EV_NEW_CONN);
	struct vuf *v = fe_open(sock_path, IT_F_CUSTOM, pf);
	CHECK(ev_wait(EV_NEW_CONN, conns + 1, 3000));
	*ret_vid = ev_conn_vid();
	return v;
}

/* The region of @vid's table starting at @gpa (CHECKs that it exists). */
static struct vhk_mem_region find_region(int vid, uint64_t gpa)
{
	static struct vhk_mem_region regs[MAX_SLOTS + 8];
	int n = vhk_dev_get_mem_table(vid, regs, MAX_SLOTS + 8);
	CHECK(n >= 0);
	for (int i = 0; i < n; i++)
		if (regs[i].guest_phys_addr == gpa)
			return regs[i];
	CHECK(!"region not found");
	return regs[0];
}

/* A valid two-region table (one mapped from an offset) lands where it should. */
static void t_mem_table_ok(void)
{
	int vid;
	struct vuf *v = open_fe(IT_PF_DEFAULT, &vid);
	uint8_t *pa, *pb;
	int fa = memfd_sized(64 * KIB, (void **)&pa);
	int fb = memfd_sized(128 * KIB, (void **)&pb);
	pa[100] = 0xaa;
	pb[64 * KIB + 200] = 0xbb;
	struct memtab t = {.hdr.nregions = 2};
	mt_set(&t, 0, 0, 64 * KIB, (uintptr_t)pa, 0);
	mt_set(&t, 1, 1 << 20, 64 * KIB, (uintptr_t)pb + 64 * KIB, 64 * KIB);
	int fds[2] = {fa, fb};
	fe_ack(v, VHOST_USER_SET_MEM_TABLE, &t, mt_size(2), fds, 2);
	close(fa);
	close(fb);

	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), 2);
	struct vhk_mem_region r0 = find_region(vid, 0), r1 = find_region(vid, 1 << 20);
	CHECK_EQ(r0.size, 64 * KIB);
	CHECK_EQ(r0.frontend_addr, (uintptr_t)pa);
	CHECK_EQ(r1.size, 64 * KIB);
	CHECK_EQ(r1.frontend_addr, (uintptr_t)pb + 64 * KIB);
	CHECK(r0.host_addr && r1.host_addr);
	CHECK_EQ(((volatile uint8_t *)r0.host_addr)[100], 0xaa);
	CHECK_EQ(((volatile uint8_t *)r1.host_addr)[200], 0xbb);
	((volatile uint8_t *)r1.host_addr)[300] = 0x5a; /* shared, writable */
	CHECK_EQ(pb[64 * KIB + 300], 0x5a);

	/* A new table replaces the old one. */
	int fc = memfd_sized(4 * KIB, NULL);
	t.hdr.nregions = 1;
	mt_set(&t, 0, 1ull << 32, 4 * KIB, 0x7000000000ull, 0);
	fe_ack(v, VHOST_USER_SET_MEM_TABLE, &t, mt_size(1), &fc, 1);
	close(fc);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), 1);
	CHECK_EQ(find_region(vid, 1ull << 32).size, 4 * KIB);
	/* Eight regions is the SET_MEM_TABLE limit, and allowed. */
	int f8 = memfd_sized(8 * 4 * KIB, NULL);
	int fds8[8];
	t.hdr.nregions = 8;
	for (uint32_t i = 0; i < 8; i++) {
		mt_set(&t, i, i * 64 * KIB, 4 * KIB, 0x100000000ull + i * 4 * KIB, i * 4 * KIB);
		fds8[i] = f8;
	}
	fe_ack(v, VHOST_USER_SET_MEM_TABLE, &t, mt_size(8), fds8, 8);
	close(f8);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), 8);
	munmap(pa, 64 * KIB);
	munmap(pb, 128 * KIB);
	vuf_close(v);
}

/* Send a malformed table; it must be NACKed with no fd left behind. */
static void mt_reject(struct vuf *v, const struct memtab *t, uint32_t size, const int *fds,
		      int nfds)
{
	int before = proc_fd_count();
	fe_nack(v, VHOST_USER_SET_MEM_TABLE, t, size, fds, nfds);
	CHECK_EQ(proc_fd_settle(before, 1000), before);
}

/* Region count and fd count errors. */
static void t_mem_table_counts(void)
{
	int vid;
	struct vuf *v = open_fe(IT_PF_DEFAULT, &vid);
	int fd = memfd_sized(64 * KIB, NULL);
	int fds[12];
	for (int i = 0; i < 12; i++)
		fds[i] = fd;
	struct memtab t = {.hdr.nregions = 0};
	for (uint32_t i = 0; i < 12; i++)
		mt_set(&t, i, i * 64 * KIB, 4 * KIB, 0x100000000ull + i * 4 * KIB, i * 4 * KIB);

	mt_reject(v, &t, mt_size(0), NULL, 0); /* zero regions */
	mt_reject(v, &t, mt_size(0), fds, 1);
	t.hdr.nregions = 9; /* over the SET_MEM_TABLE limit */
	mt_reject(v, &t, mt_size(9), fds, 8);
	/* Nine fds exceed what a message may carry: refused, possibly by closing. */
	int before = proc_fd_count();
	CHECK_EQ(vuf_send(v, VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
			  &t, mt_size(9), fds, 9), 0);
	if (fe_refused(v, VHOST_USER_SET_MEM_TABLE) == REJ_CLOSED) {
		vuf_close(v);
		CHECK(ev_wait(EV_DESTROY_CONN, 1, 3000));
		v = open_fe(IT_PF_DEFAULT, &vid); /* its two sockets replace the old two */
	}
	CHECK_EQ(proc_fd_settle(before, 1000), before);
	t.hdr.nregions = 2; /* fd count != nregions */
	mt_reject(v, &t, mt_size(2), fds, 1);
	mt_reject(v, &t, mt_size(2), fds, 3);
	mt_reject(v, &t, mt_size(2), NULL, 0);
	t.hdr.nregions = 1; /* size != 8 + 32 * nregions */
	mt_reject(v, &t, mt_size(2), fds, 1);
	mt_reject(v, &t, mt_size(1) - 1, fds, 1);
	t.hdr.nregions = 2;
	mt_reject(v, &t, mt_size(1), fds, 2);
	t.hdr.nregions = 1000;
	mt_reject(v, &t, mt_size(12), fds, 8);
	t.hdr.nregions = 0x80000001u;
	mt_reject(v, &t, mt_size(1), fds, 1);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), 0);
	close(fd);
	vuf_close(v);
}

/* Bad regions: zero size, overflow, short file, overlaps, unmappable fd. */
static void t_mem_table_regions(void)
{
	int vid;
	struct vuf *v = open_fe(IT_PF_DEFAULT, &vid);
	int fd = memfd_sized(64 * KIB, NULL), small = memfd_sized(4 * KIB, NULL);
	int fds[2] = {fd, fd};
	const uint64_t ua = 0x200000000ull, top = UINT64_MAX - 4 * KIB + 1;
	struct memtab t = {.hdr.nregions = 1};

	mt_set(&t, 0, 0, 0, ua, 0); /* zero size */
	mt_reject(v, &t, mt_size(1), fds, 1);
	mt_set(&t, 0, top, 8 * KIB, ua, 0); /* gpa + size wraps */
	mt_reject(v, &t, mt_size(1), fds, 1);
	mt_set(&t, 0, 0, 8 * KIB, top, 0); /* uaddr + size wraps */
	mt_reject(v, &t, mt_size(1), fds, 1);
	mt_set(&t, 0, 0, 8 * KIB, ua, top); /* offset + size wraps */
	mt_reject(v, &t, mt_size(1), fds, 1);
	mt_set(&t, 0, 0, UINT64_MAX, ua, 0);
	mt_reject(v, &t, mt_size(1), fds, 1);
	mt_set(&t, 0, 0, 128 * KIB, ua, 0); /* larger than the file */
	mt_reject(v, &t, mt_size(1), fds, 1);
	mt_set(&t, 0, 0, 64 * KIB, ua, 4 * KIB); /* offset pushes past the end */
	mt_reject(v, &t, mt_size(1), fds, 1);
	mt_set(&t, 0, 0, 8 * KIB, ua, 0);
	mt_reject(v, &t, mt_size(1), &small, 1);
	mt_set(&t, 0, 0, 4 * KIB, ua, 1ull << 62);
	mt_reject(v, &t, mt_size(1), fds, 1);

	t.hdr.nregions = 2;
	mt_set(&t, 0, 0, 32 * KIB, ua, 0);
	mt_set(&t, 1, 16 * KIB, 32 * KIB, ua + 32 * KIB, 32 * KIB); /* GPA overlap */
	mt_reject(v, &t, mt_size(2), fds, 2);
	mt_set(&t, 1, 1 << 20, 32 * KIB, ua + 16 * KIB, 32 * KIB); /* user address overlap */
	mt_reject(v, &t, mt_size(2), fds, 2);
	mt_set(&t, 1, 0, 32 * KIB, ua, 0); /* duplicate */
	mt_reject(v, &t, mt_size(2), fds, 2);

	/* An fd that cannot be mapped (a pipe) is refused and closed. */
	struct probe p;
	probe_new(&p);
	t.hdr.nregions = 1;
	mt_set(&t, 0, 0, 4 * KIB, ua, 0);
	fe_nack(v, VHOST_USER_SET_MEM_TABLE, &t, mt_size(1), &p.wr, 1);
	probe_sent(&p);
	CHECK(probe_closed(&p, 2000));
	probe_free(&p);

	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), 0);
	/* Adjacent (touching) regions are fine. */
	t.hdr.nregions = 2;
	mt_set(&t, 0, 0, 32 * KIB, ua, 0);
	mt_set(&t, 1, 32 * KIB, 32 * KIB, ua + 32 * KIB, 32 * KIB);
	fe_ack(v, VHOST_USER_SET_MEM_TABLE, &t, mt_size(2), fds, 2);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), 2);
	close(fd);
	close(small);
	vuf_close(v);
}

/* GET_MAX_MEM_SLOTS answers 509, and only with CONFIGURE_MEM_SLOTS. */
static void t_max_mem_slots(void)
{
	int vid;
	struct vuf *v = open_fe(IT_PF_DEFAULT, &vid);
	uint64_t n = 0;
	CHECK_EQ(vuf_get_u64(v, VHOST_USER_GET_MAX_MEM_SLOTS, &n), 0);
	CHECK_EQ(n, MAX_SLOTS);
	CHECK_EQ(VHK_MAX_MEM_REGIONS, MAX_SLOTS);
	vuf_close(v);

	v = open_fe(IT_PF_DEFAULT & ~BIT(VHK_PF_CONFIGURE_MEM_SLOTS), &vid);
	CHECK_EQ(vuf_send(v, VHOST_USER_GET_MAX_MEM_SLOTS,
			  VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, NULL, 0, NULL, 0), 0);
	struct vhost_user_msg m;
	int rc = vuf_recv(v, &m, 3000);
	if (rc != -ECONNRESET) {
		CHECK_EQ(rc, 0);
		CHECK_EQ(m.hdr.request, VHOST_USER_GET_MAX_MEM_SLOTS);
		/* An empty (failed) reply or a NACK, not the answer. */
		CHECK(m.hdr.size == 0 ||
		      (m.hdr.size == 8 && m.payload.u64 != 0 && m.payload.u64 != MAX_SLOTS));
		fe_usable(v);
	}
	/* ADD / REM are gated the same way. */
	if (rc != -ECONNRESET) {
		int fd = memfd_sized(4 * KIB, NULL);
		struct vhost_user_mem_reg r = {.region = {0, 4 * KIB, 0x300000000ull, 0}};
		fe_nack(v, VHOST_USER_ADD_MEM_REG, &r, sizeof(r), &fd, 1);
		fe_nack(v, VHOST_USER_REM_MEM_REG, &r, sizeof(r), NULL, 0);
		close(fd);
	}
	vuf_close(v);
}

/* ADD_MEM_REG payload for slot @i of the one-memfd layout used below. */
static struct vhost_user_mem_reg slot_reg(uint8_t *base, uint64_t i, uint64_t stride,
					  uint64_t size)
{
	struct vhost_user_mem_reg r = {.padding = 0};
	r.region = (struct vhost_user_mem_region){.guest_phys_addr = i * 2 * stride,
						  .memory_size = size,
						  .userspace_addr = (uintptr_t)base + i * stride,
						  .mmap_offset = i * stride};
	return r;
}

/* Add 300 regions one by one, check them, reject bad ones, remove them all. */
static void t_add_rem_regions(void)
{
	const uint64_t n = 300, stride = 64 * KIB;
	int vid;
	struct vuf *v = open_fe(IT_PF_DEFAULT, &vid);
	int base_fds = proc_fd_count();
	uint8_t *base;
	int fd = memfd_sized(n * stride, (void **)&base);
	for (uint64_t i = 0; i < n; i++) {
		memcpy(base + i * stride, &i, sizeof(i));
		struct vhost_user_mem_reg r = slot_reg(base, i, stride, stride);
		fe_ack(v, VHOST_USER_ADD_MEM_REG, &r, sizeof(r), &fd, 1);
	}
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), (int)n);
	for (uint64_t i = 0; i < n; i += 37) {
		struct vhk_mem_region mr = find_region(vid, i * 2 * stride);
		uint64_t got;
		memcpy(&got, mr.host_addr, sizeof(got));
		CHECK_EQ(got, i);
		CHECK_EQ(mr.frontend_addr, (uintptr_t)base + i * stride);
	}
	/* Overlaps with an existing slot, in GPA or in user address. */
	struct vhost_user_mem_reg bad = slot_reg(base, 5, stride, stride);
	/*
	 * An identical region is already present, not an overlap: QEMU runs one
	 * vhost_dev per queue pair on the same connection and each adds it.
	 */
	fe_ack(v, VHOST_USER_ADD_MEM_REG, &bad, sizeof(bad), &fd, 1);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), (int)n);
	bad.region.guest_phys_addr += 4 * KIB;
	bad.region.userspace_addr = 0x500000000ull;
	fe_nack(v, VHOST_USER_ADD_MEM_REG, &bad, sizeof(bad), &fd, 1);
	bad = slot_reg(base, 5, stride, stride);
	bad.region.guest_phys_addr = 1ull << 40;
	bad.region.userspace_addr += 4 * KIB;
	fe_nack(v, VHOST_USER_ADD_MEM_REG, &bad, sizeof(bad), &fd, 1);
	/* Malformed adds: no fd, two fds, zero size, beyond the file. */
	bad = slot_reg(base, n + 10, stride, stride);
	bad.region.mmap_offset = 0;
	fe_nack(v, VHOST_USER_ADD_MEM_REG, &bad, sizeof(bad), NULL, 0);
	int two[2] = {fd, fd};
	fe_nack(v, VHOST_USER_ADD_MEM_REG, &bad, sizeof(bad), two, 2);
	bad.region.memory_size = 0;
	fe_nack(v, VHOST_USER_ADD_MEM_REG, &bad, sizeof(bad), &fd, 1);
	bad.region.memory_size = stride;
	bad.region.mmap_offset = n * stride;
	fe_nack(v, VHOST_USER_ADD_MEM_REG, &bad, sizeof(bad), &fd, 1);
	fe_nack(v, VHOST_USER_ADD_MEM_REG, &bad, sizeof(bad) - 8, &fd, 1);
	/* Removing what does not exist. */
	bad = slot_reg(base, n + 10, stride, stride);
	fe_nack(v, VHOST_USER_REM_MEM_REG, &bad, sizeof(bad), NULL, 0);
	bad = slot_reg(base, 7, stride, stride / 2); /* right start, wrong size */
	fe_nack(v, VHOST_USER_REM_MEM_REG, &bad, sizeof(bad), NULL, 0);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), (int)n);

	/* REM with one fd attached is tolerated; the fd is closed unused. */
	struct probe p;
	probe_new(&p);
	struct vhost_user_mem_reg r = slot_reg(base, 0, stride, stride);
	fe_ack(v, VHOST_USER_REM_MEM_REG, &r, sizeof(r), &p.wr, 1);
	probe_sent(&p);
	CHECK(probe_closed(&p, 2000));
	probe_free(&p);
	r = slot_reg(base, 1, stride, stride);
	r.region.mmap_offset = 12345; /* ignored by REM */
	fe_ack(v, VHOST_USER_REM_MEM_REG, &r, sizeof(r), NULL, 0);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), (int)n - 2);
	for (uint64_t i = n; i-- > 2;) {
		r = slot_reg(base, i, stride, stride);
		fe_ack(v, VHOST_USER_REM_MEM_REG, &r, sizeof(r), NULL, 0);
	}
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), 0);
	fe_nack(v, VHOST_USER_REM_MEM_REG, &r, sizeof(r), NULL, 0);
	/* The slots can be filled again after removal. */
	r = slot_reg(base, 3, stride, stride);
	fe_ack(v, VHOST_USER_ADD_MEM_REG, &r, sizeof(r), &fd, 1);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), 1);
	fe_ack(v, VHOST_USER_REM_MEM_REG, &r, sizeof(r), NULL, 0);
	munmap(base, n * stride);
	close(fd);
	CHECK_EQ(proc_fd_settle(base_fds, 1000), base_fds);
	vuf_close(v);
}

/* 509 slots fit; the 510th is refused. */
static void t_add_mem_limit(void)
{
	const uint64_t stride = 4 * KIB;
	int vid;
	struct vuf *v = open_fe(IT_PF_DEFAULT, &vid);
	uint8_t *base;
	int fd = memfd_sized((MAX_SLOTS + 1) * stride, (void **)&base);
	for (uint64_t i = 0; i < MAX_SLOTS; i++) {
		struct vhost_user_mem_reg r = slot_reg(base, i, stride, stride);
		fe_ack(v, VHOST_USER_ADD_MEM_REG, &r, sizeof(r), &fd, 1);
	}
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), MAX_SLOTS);
	struct vhost_user_mem_reg r = slot_reg(base, MAX_SLOTS, stride, stride);
	fe_nack(v, VHOST_USER_ADD_MEM_REG, &r, sizeof(r), &fd, 1);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), MAX_SLOTS);
	/* SET_MEM_TABLE still replaces the whole set. */
	struct memtab t = {.hdr.nregions = 1};
	mt_set(&t, 0, 0, stride, (uintptr_t)base, 0);
	fe_ack(v, VHOST_USER_SET_MEM_TABLE, &t, mt_size(1), &fd, 1);
	CHECK_EQ(vhk_dev_get_mem_table(vid, NULL, 0), 1);
	int before = proc_fd_count();
	vuf_close(v);
	CHECK(ev_wait(EV_DESTROY_CONN, 1, 3000));
	CHECK(proc_fd_settle(before - 2, 2000) <= before - 2);
	munmap(base, (MAX_SLOTS + 1) * stride);
	close(fd);
}

TEST_MAIN(TEST(t_mem_table_ok), TEST(t_mem_table_counts), TEST(t_mem_table_regions),
	  TEST(t_max_mem_slots), TEST(t_add_rem_regions), TEST(t_add_mem_limit))
