/* SPDX-License-Identifier: MIT */
/* Shared fixture of the invariant tests (see inv_common.h). */
#include "inv_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool inv_packed;

int inv_parse_format(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "--packed") && strcmp(argv[1], "--split")))
		return argc;
	inv_packed = !strcmp(argv[1], "--packed");
	for (int i = 1; i + 1 <= argc; i++)
		argv[i] = argv[i + 1]; /* argv[argc] is NULL: shifted down too */
	return argc - 1;
}

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

void inv_guest(struct inv *f, uint32_t nregions, uint64_t size, uint16_t qsize, bool event_idx)
{
	CHECK_EQ(gmem_new(nregions, size, 0, 0, &f->m), 0);
	for (int i = 0; i < 2; i++) {
		if (inv_packed)
			CHECK_EQ(pring_new(f->m, qsize, event_idx, &f->p[i]), 0);
		else
			CHECK_EQ(gring_new(f->m, qsize, event_idx, &f->r[i]), 0);
	}
}

void inv_bring_up(struct inv *f, uint32_t nrings)
{
	unsigned devs = ev_count(EV_NEW_DEV);
	CHECK_EQ(vuf_set_mem_table(f->v, f->m), 0);
	for (uint32_t q = 0; q < nrings; q++) {
		if (f->p[q])
			CHECK_EQ(pring_start_vring(f->v, q, f->p[q], 0x80008000u), 0);
		else
			CHECK_EQ(vuf_start_gring(f->v, q, f->r[q]), 0);
	}
	CHECK(ev_wait(EV_NEW_DEV, devs + 1, 3000));
}

void inv_net_up(struct inv *f, uint64_t features, uint64_t memsz, uint16_t qsize)
{
	inv_start_net(f);
	inv_connect(f, features, IT_PF_DEFAULT);
	CHECK_EQ(!!(f->v->features & BIT(VHK_F_RING_PACKED)), inv_packed);
	inv_guest(f, 1, memsz, qsize, false);
	if (f->v->features & BIT(VHK_F_IN_ORDER))
		for (int q = 0; q < 2; q++)
			CHECK_EQ(inv_packed ? pring_set_in_order(f->p[q])
					    : gring_set_in_order(f->r[q]),
				 0);
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
		if (f->r[i])
			gring_free(f->r[i]);
		if (f->p[i])
			pring_free(f->p[i]);
	}
	f->r[0] = f->r[1] = NULL;
	f->p[0] = f->p[1] = NULL;
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

/* ---- format-neutral guest driver ---- */

int inv_add(struct inv *f, uint32_t q, const struct gbuf *out, int nout, const struct gbuf *in,
	    int nin, bool indirect, void *token)
{
	if (f->p[q]) /* pring_add publishes: the head's flags are stored last */
		return pring_add(f->p[q], out, nout, in, nin, indirect, token);
	int id = gring_add(f->r[q], out, nout, in, nin, indirect, token);
	if (id >= 0)
		gring_publish(f->r[q]);
	return id;
}

int inv_get_used(struct inv *f, uint32_t q, void **token, uint32_t *len)
{
	return f->p[q] ? pring_get_used(f->p[q], token, len) : gring_get_used(f->r[q], token, len);
}

uint64_t inv_read_calls(struct inv *f, uint32_t q)
{
	return f->p[q] ? pring_read_calls(f->p[q]) : gring_read_calls(f->r[q]);
}

void inv_kick_force(struct inv *f, uint32_t q)
{
	if (f->p[q])
		pring_kick_force(f->p[q]);
	else
		gring_kick_force(f->r[q]);
}

int inv_kick_fd(const struct inv *f, uint32_t q)
{
	return f->p[q] ? f->p[q]->kick_fd : f->r[q]->kick_fd;
}

uint16_t inv_qsize(const struct inv *f, uint32_t q)
{
	return f->p[q] ? f->p[q]->size : f->r[q]->size;
}

uint16_t inv_pos_delta(const struct inv *f, uint32_t q, uint16_t before, uint16_t after)
{
	uint32_t n = inv_qsize(f, q);
	if (!f->p[q]) /* split: free-running 16-bit counters */
		return (uint16_t)((uint16_t)(after - before) % n);
	return (uint16_t)((after + n - before) % n); /* packed: positions < size */
}

void inv_raw_init(struct inv_raw *rw)
{
	*rw = (struct inv_raw){.pos = 0, .wrap = true, .upos = 0, .uwrap = true};
}

/* Split: publish head @id in the next avail slot and bump avail->idx (release). */
static uint16_t raw_avail_push(struct gring *r, struct inv_raw *rw, uint16_t id)
{
	__atomic_store_n(&r->avail->ring[rw->pos & (r->size - 1)], id, __ATOMIC_RELAXED);
	rw->pos++;
	__atomic_store_n(&r->avail->idx, rw->pos, __ATOMIC_RELEASE);
	return id;
}

/* Packed: the slot just written; move to the next one (flipping the lap at the end). */
static uint16_t raw_slot_advance(struct inv_raw *rw, uint16_t size)
{
	uint16_t slot = rw->pos;

	if (++rw->pos == size) {
		rw->pos = 0;
		rw->wrap = !rw->wrap;
	}
	return slot;
}

uint16_t inv_raw_post(struct inv *f, uint32_t q, struct inv_raw *rw, uint16_t id, uint64_t addr,
		      uint32_t len, uint16_t flags)
{
	if (!f->p[q]) {
		gring_raw_desc(f->r[q], id, addr, len, flags, 0);
		return raw_avail_push(f->r[q], rw, id);
	}
	struct pring *r = f->p[q];
	pring_raw_desc(r, rw->pos, addr, len, id, (uint16_t)(flags | pring_avail_bits(rw->wrap)));
	return raw_slot_advance(rw, r->size);
}

uint16_t inv_raw_republish(struct inv *f, uint32_t q, struct inv_raw *rw, uint16_t id,
			   uint16_t flags)
{
	if (!f->p[q])
		return raw_avail_push(f->r[q], rw, id);
	struct pring *r = f->p[q];
	__atomic_store_n(&r->desc[rw->pos].id, id, __ATOMIC_RELAXED);
	__atomic_store_n(&r->desc[rw->pos].flags, (uint16_t)(flags | pring_avail_bits(rw->wrap)),
			 __ATOMIC_RELEASE);
	return raw_slot_advance(rw, r->size);
}

int inv_raw_used(struct inv *f, uint32_t q, struct inv_raw *rw, uint16_t *id, uint32_t *len)
{
	if (!f->p[q]) {
		struct gring *r = f->r[q];
		if (__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE) == rw->upos)
			return 0;
		struct vring_used_elem *e = &r->used->ring[rw->upos & (r->size - 1)];
		*id = (uint16_t)__atomic_load_n(&e->id, __ATOMIC_RELAXED);
		*len = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
		rw->upos++;
		return 1;
	}
	struct pring *r = f->p[q];
	struct vring_packed_desc *d = &r->desc[rw->upos];
	uint16_t fl = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
	bool a = fl & (1u << VRING_PACKED_DESC_F_AVAIL), u = fl & (1u << VRING_PACKED_DESC_F_USED);
	if (a != rw->uwrap || u != rw->uwrap)
		return 0;
	*id = __atomic_load_n(&d->id, __ATOMIC_RELAXED);
	*len = __atomic_load_n(&d->len, __ATOMIC_RELAXED);
	if (++rw->upos == r->size) { /* raw chains take one slot each */
		rw->upos = 0;
		rw->uwrap = !rw->uwrap;
	}
	return 1;
}

__u64 *inv_desc_addr(struct inv *f, uint32_t q, uint16_t i)
{
	if (f->p[q])
		return &f->p[q]->desc[i % f->p[q]->size].addr;
	return &f->r[q]->desc[i & (f->r[q]->size - 1)].addr;
}

uint32_t *inv_desc_len(struct inv *f, uint32_t q, uint16_t i)
{
	if (f->p[q])
		return &f->p[q]->desc[i % f->p[q]->size].len;
	return &f->r[q]->desc[i & (f->r[q]->size - 1)].len;
}
