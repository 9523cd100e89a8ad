/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the inflight region parser and the tracking around
 * it (src/vq/vq_inflight.c, vq_inflight_packed.c): the input is a queue's
 * inflight region as a frontend could hand it over (SET_INFLIGHT_FD), the
 * guest memory holding the ring (split or packed) and its buffers, and a
 * SET_VRING_BASE value. The ring starts on that region (validated,
 * recovered, resubmit list built), the device pops every request
 * (resubmissions first), gives some back, completes some, leaves some in
 * flight, then "crashes" (the vq is reset: only the region and guest
 * memory survive) and starts again on the region it left behind.
 *
 * Besides crashes and sanitizer reports, one oracle: a region our own
 * code wrote (after a start that accepted the input) is always accepted
 * at the next start. Buffers are only read, never written, so that the
 * guest memory the second start looks at (used->idx, the packed flags)
 * changes only through the library's used-ring updates.
 *
 * Input (bytes past the end read as 0):
 *   [0] ring size: split 1 << (v % 6), packed v % 32 + 1
 *   [1] bit 0 packed, bit 1 INDIRECT_DESC, bit 2 EVENT_IDX, bits 4..7 the
 *       operation pattern
 *   [2..5] base (SET_VRING_BASE, little endian)
 *   [6..7] R, then R bytes: the start of the region (the rest is zero)
 *   then guest memory from gpa 0: descriptor ring at 0; split: avail ring
 *   at 16 * size, used ring 4-aligned after it; packed: driver event area
 *   at 16 * size, device event area 4 bytes after.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vq/vq.h"
#include "vq/vq_inflight.h"

#define REGION 0x10000ull
#define QVA_BASE 0x7f0000000000ull
#define F_PACKED (1ull << 34)
#define MAXQ 32

static uint8_t *g_view; /* our view of the memfd, file offset 0 */
static struct mem_table *g_mem;
static struct vq g_vq;
static struct vq_chain g_chain;
static struct iovec g_iov[64];
static uint8_t *g_rgn; /* the frontend's copy of the region */
static size_t g_rgn_len;

/* Region 0 = file [REGION, 2*REGION), region 1 = file [0, REGION): not host-contiguous. */
static int setup(void)
{
	struct mem_region r[2];
	int fd = memfd_create("fuzzi", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)(2 * REGION)) < 0)
		return -1;
	g_view = mmap(NULL, 2 * REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (g_view == MAP_FAILED)
		return -1;
	for (int i = 0; i < 2; i++) {
		struct mem_region_desc d = {i * REGION, REGION, QVA_BASE + i * REGION,
					    (1 - i) * REGION};
		if (mem_region_map(&d, dup(fd), &r[i]))
			return -1;
	}
	close(fd);
	g_rgn_len = vq_ifl_queue_size(MAXQ, true);
	g_rgn = aligned_alloc(64, g_rgn_len);
	if (!g_rgn)
		return -1;
	return mem_table_new(r, 2, &g_mem);
}

static uint8_t *gview(uint64_t gpa)
{
	return g_view + (gpa < REGION ? gpa + REGION : gpa - REGION);
}

/* Read every readable byte of the chain (buffers are never written, see above). */
static uint32_t touch(const struct vq_chain *c)
{
	uint32_t sum = 0;

	for (uint32_t i = 0; i < c->nout + c->nin && i < c->iov_max; i++)
		for (size_t j = 0; j < c->iov[i].iov_len; j++)
			sum += ((const uint8_t *)c->iov[i].iov_base)[j];
	return sum;
}

/* Configure and start the ring on the region. 0 when it runs. */
static int start(uint16_t size, uint64_t features, uint32_t base)
{
	struct vq_addr a = {0};

	a.desc = QVA_BASE;
	a.avail = a.desc + 16ull * size;
	a.used = (features & F_PACKED) ? a.avail + 4 : (a.avail + 6 + 2ull * size + 2 + 3) & ~3ull;
	vq_init(&g_vq, 0);
	g_vq.features = features;
	if (vq_set_num(&g_vq, size) || vq_set_addr(&g_vq, &a) || vq_set_base(&g_vq, base) ||
	    vq_set_inflight(&g_vq, g_rgn, g_rgn_len, MAXQ))
		return -1;
	if (vq_start(&g_vq, g_mem, features))
		return -1;
	vq_set_enabled(&g_vq, true);
	return g_vq.ready ? 0 : -1;
}

/*
 * Pop everything, resubmissions first; @pattern decides which requests are
 * given back once, completed or left in flight, and when to flush.
 */
static void drive(uint16_t size, unsigned pattern, bool complete_all)
{
	uint16_t held = 0, unpops = 0;

	for (uint32_t round = 0; round < 4u * size + 8 && g_vq.ready; round++) {
		int rc = vq_ifl_pop(&g_vq, &g_chain, VQ_POP_RW);
		if (rc == -ENOENT || rc == -EIO)
			break;
		if (rc == 0)
			(void)touch(&g_chain);
		unsigned k = round + pattern;
		if (!complete_all && k % 5 == 1 && unpops < 8) {
			unpops++;
			vq_ifl_unpop(&g_vq, g_chain.id);
			continue;
		}
		if (!complete_all && k % 3 == 2 && held < size) {
			held++; /* in flight at the crash */
			continue;
		}
		if (g_vq.shadow_count >= size)
			vq_ifl_flush(&g_vq);
		vq_ifl_push(&g_vq, g_chain.id, (uint32_t)(g_chain.in_len & 0xff));
		if (k % 4 == 3)
			vq_ifl_flush(&g_vq);
	}
	if (g_vq.ready)
		vq_ifl_flush(&g_vq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t h[8] = {0};

	if (!g_mem && setup())
		abort(); /* test setup, not input */
	memcpy(h, data, MIN(size, sizeof(h)));
	bool packed = h[1] & 1;
	uint16_t qsize = packed ? (uint16_t)(h[0] % MAXQ + 1) : (uint16_t)(1u << (h[0] % 6));
	uint64_t features = (packed ? F_PACKED : 0) | ((h[1] & 2) ? 1ull << 28 : 0) |
			    ((h[1] & 4) ? 1ull << 29 : 0);
	uint32_t base = (uint32_t)h[2] | (uint32_t)h[3] << 8 | (uint32_t)h[4] << 16 |
			(uint32_t)h[5] << 24;
	size_t off = MIN(size, sizeof(h)), rlen = (size_t)h[6] | (size_t)h[7] << 8;

	rlen = MIN(MIN(rlen, size - off), g_rgn_len);
	memset(g_rgn, 0, g_rgn_len);
	memcpy(g_rgn, data + off, rlen);
	off += rlen;
	memset(g_view, 0, 2 * REGION);
	for (size_t g = 0, len = MIN(size - off, (size_t)(2 * REGION)); g < len;) {
		size_t chunk = MIN(len - g, (size_t)(REGION - (g % REGION)));
		memcpy(gview(g), data + off + g, chunk);
		g += chunk;
	}
	g_chain.iov = g_iov;
	g_chain.iov_max = ARRAY_SIZE(g_iov);

	if (start(qsize, features, base) == 0) {
		drive(qsize, h[1] >> 4, false);
		/* The process dies; the next one starts on what it left. */
		vq_reset(&g_vq);
		if (start(qsize, features, base) != 0)
			abort(); /* our own region refused: a bug */
		drive(qsize, 0, true);
	}
	vq_reset(&g_vq);
	return 0;
}
