/* SPDX-License-Identifier: MIT */
/* Shared fixture of the invariant tests (see inv_common.h). */
#include "inv_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct vhk_device_ops inv_one_q = {.name = "inv-1q", .min_queues = 1};

void inv_start_custom(struct inv *f, uint64_t pf, const struct vhk_device_ops *ops)
{
	memset(f, 0, sizeof(*f));
	struct be_cfg cfg = {.ops = ops ? ops : &inv_one_q, .features = IT_F_CUSTOM,
			     .protocol_features = pf, .pairs = 1};
	f->path = be_start(&cfg);
	f->vid = -1;
}

void inv_start_net(struct inv *f)
{
	memset(f, 0, sizeof(*f));
	struct be_cfg cfg = {.net = true, .protocol_features = IT_PF_DEFAULT, .pairs = 1};
	if (inv_packed) /* offered explicitly: the run must not depend on the default offer */
		cfg.features = VHK_NET_DEFAULT_FEATURES | BIT(VHK_F_RING_PACKED);
	f->path = be_start(&cfg);
	f->vid = -1;
}

void inv_connect(struct inv *f, uint64_t features, uint64_t pf)
{
	unsigned conns = ev_count(EV_NEW_CONN);
	f->v = fe_open(f->path, features, pf);
	CHECK(ev_wait(EV_NEW_CONN, conns + 1, 3000));
	f->vid = ev_conn_vid();
}

void inv_guest(struct inv *f, uint32_t nregions, uint64_t size, uint16_t qsize, uint64_t features)
{
	uint64_t fmt = (features & ~BIT(VHK_F_RING_PACKED)) | gvq_run_features();
	CHECK_EQ(gmem_new(nregions, size, 0, 0, &f->m), 0);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(gvq_new(f->m, qsize, fmt, &f->vq[i]), 0);
}

void inv_bring_up(struct inv *f, uint32_t nrings)
{
	unsigned devs = ev_count(EV_NEW_DEV);
	CHECK_EQ(vuf_set_mem_table(f->v, f->m), 0);
	for (uint32_t q = 0; q < nrings; q++)
		CHECK_EQ(vuf_start_vring(f->v, q, f->vq[q]), 0);
	CHECK(ev_wait(EV_NEW_DEV, devs + 1, 3000));
}

void inv_net_up(struct inv *f, uint64_t features, uint64_t memsz, uint16_t qsize)
{
	inv_start_net(f);
	inv_connect(f, features, IT_PF_DEFAULT);
	CHECK_EQ(!!(f->v->features & BIT(VHK_F_RING_PACKED)), inv_packed);
	/* The drivers expand IN_ORDER batches when it was negotiated. */
	inv_guest(f, 1, memsz, qsize, f->v->features & ~BIT(VHK_F_EVENT_IDX));
	inv_bring_up(f, 2);
	CHECK_EQ(inv_vring(f, 0).packed, inv_packed);
	CHECK_EQ(inv_vring(f, 1).packed, inv_packed);
}

void inv_close(struct inv *f)
{
	if (f->v) {
		vuf_close(f->v);
		/* Every connection so far is gone (the library may have closed first). */
		CHECK(ev_wait(EV_DESTROY_CONN, ev_count(EV_NEW_CONN), 3000));
	}
	f->v = NULL;
	for (int i = 0; i < 2; i++) {
		gvq_free(f->vq[i]);
		f->vq[i] = NULL;
	}
	if (f->m)
		gmem_free(f->m);
	f->m = NULL;
}

struct vhk_vq_info inv_vring(const struct inv *f, uint16_t q)
{
	struct vhk_vq_info info;
	memset(&info, 0, sizeof(info));
	CHECK_EQ(vhk_vq_get_info(f->vid, q, &info), 0);
	return info;
}

struct inv_usage inv_usage_now(void)
{
	struct inv_usage u = {proc_fd_count(), proc_map_count(), proc_heap_kib()};
	return u;
}

/* ASan's allocator and quarantine make mallinfo meaningless. */
#if defined(__SANITIZE_ADDRESS__)
#define INV_HEAP_CHECK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define INV_HEAP_CHECK 0
#endif
#endif
#ifndef INV_HEAP_CHECK
#define INV_HEAP_CHECK 1
#endif

void inv_usage_check(const struct inv_usage *base, const char *what)
{
	int fds = proc_fd_settle(base->fds + INV_FD_SLACK, 3000);
	int maps = proc_map_count();
	long heap = proc_heap_kib();
	fprintf(stderr, "# %s: fds %d -> %d, maps %d -> %d, heap %ld -> %ld KiB\n", what,
		base->fds, fds, base->maps, maps, base->heap, heap);
	CHECK(fds <= base->fds + INV_FD_SLACK);
	CHECK(maps <= base->maps + INV_MAP_SLACK);
	if (INV_HEAP_CHECK)
		CHECK(heap <= base->heap + INV_HEAP_SLACK);
}

bool inv_fd_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	return fl >= 0 && (fl & FD_CLOEXEC);
}

bool inv_addr_dontdump(const void *addr)
{
	FILE *fp = fopen("/proc/self/smaps", "re");
	CHECK(fp != NULL);
	char line[512];
	bool inside = false, dd = false, found = false;
	uintptr_t a = (uintptr_t)addr;
	while (fgets(line, sizeof(line), fp)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			inside = a >= lo && a < hi;
			continue;
		}
		if (inside && !strncmp(line, "VmFlags:", 8)) {
			found = true;
			dd = strstr(line, " dd") != NULL;
			break;
		}
	}
	fclose(fp);
	CHECK(found);
	return dd;
}

uint16_t inv_pos_delta(const struct inv *f, uint32_t q, uint16_t before, uint16_t after)
{
	uint32_t n = f->vq[q]->size;
	if (!f->vq[q]->packed) /* split: free-running 16-bit counters */
		return (uint16_t)((uint16_t)(after - before) % n);
	return (uint16_t)((after + n - before) % n); /* packed: positions < size */
}
