/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the split ring datapath: the input becomes guest
 * memory (two regions whose host mappings are not adjacent) holding the
 * descriptor table, the avail ring (indices and heads), the used ring and
 * any indirect tables. The vq pops every chain it accepts, touches every
 * translated byte, pushes and flushes. A crash, a sanitizer report or a
 * byte touched outside guest memory is a bug.
 *
 * Input: [0] ring size log2 (mod 8) [1] feature bits (bit0 indirect, bit1
 * event idx; bit2: pop with VQ_POP_DEV_READS), bits 3..7 the chain's piece
 * storage (0: 256 entries, else that many) [2..3] base; the rest is
 * copied to guest memory at gpa 0.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vq/vq.h"

#define REGION 0x10000ull
#define RING_GPA 0x0ull

static uint8_t *g_view;     /* our view of the memfd, file offset 0 */
static struct mem_table *g_mem;
static struct vq g_vq;
static struct vq_chain g_chain;
static struct iovec g_iov[256]; /* g_chain's pieces: iov_max from the input */

/* Region 0 = file [REGION, 2*REGION), region 1 = file [0, REGION): not host-contiguous. */
static int setup_memory(void)
{
	struct mem_region r[2];
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)(2 * REGION)) < 0)
		return -1;
	g_view = mmap(NULL, 2 * REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (g_view == MAP_FAILED)
		return -1;
	for (int i = 0; i < 2; i++) {
		struct mem_region_desc d = {i * REGION, REGION, 0x7f0000000000ull + i * REGION,
					    (1 - i) * REGION};
		if (mem_region_map(&d, dup(fd), &r[i]))
			return -1;
	}
	close(fd);
	return mem_table_new(r, 2, &g_mem);
}

/* Guest byte at @gpa in our view of the file. */
static uint8_t *gview(uint64_t gpa)
{
	return g_view + (gpa < REGION ? gpa + REGION : gpa - REGION);
}

/* Touch every byte of the chain: read the readable part, write the writable part. */
static uint32_t touch(const struct vq_chain *c)
{
	uint32_t sum = 0;

	for (uint32_t i = 0; i < c->nout; i++)
		for (size_t j = 0; j < c->iov[i].iov_len; j++)
			sum += ((const uint8_t *)c->iov[i].iov_base)[j];
	for (uint32_t i = c->nout; i < c->nout + c->nin; i++)
		memset(c->iov[i].iov_base, 0xa5, c->iov[i].iov_len);
	return sum;
}

static void run(uint16_t size, uint64_t features, uint16_t base, enum vq_pop_mode mode)
{
	uint16_t ids[8];
	uint16_t nids = 0;
	struct vq_addr a = {0};

	a.desc = 0x7f0000000000ull + RING_GPA;
	a.avail = a.desc + 16ull * size;
	a.used = (a.avail + 6 + 2ull * size + 2 + 3) & ~3ull;
	vq_init(&g_vq, 0);
	if (vq_set_num(&g_vq, size) || vq_set_addr(&g_vq, &a) || vq_set_base(&g_vq, base))
		goto out_reset;
	if (vq_start(&g_vq, g_mem, features))
		goto out_reset;
	vq_set_enabled(&g_vq, true);
	(void)vq_set_notification(&g_vq, true);
	for (uint32_t round = 0; round < 4u * size + 4 && g_vq.ready; round++) {
		uint16_t n = vq_avail_count(&g_vq);
		int rc = vq_pop_mode(&g_vq, &g_chain, mode);
		if (rc == -ENOENT || rc == -EIO)
			break;
		if (rc == 0)
			(void)touch(&g_chain);
		/* Give back a few chains unconsumed once, to exercise rewind. */
		if (rc == 0 && n > 2 && nids < ARRAY_SIZE(ids) && (round & 3) == 1) {
			ids[nids++] = g_chain.id;
			vq_rewind(&g_vq, &ids[nids - 1], 1);
			continue;
		}
		vq_push(&g_vq, g_chain.id, rc == 0 ? (uint32_t)g_chain.in_len : 0);
		if ((round & 7) == 7 || g_vq.shadow_count == size)
			vq_flush(&g_vq);
	}
	vq_flush(&g_vq);
	(void)vq_notify(&g_vq);
	(void)vq_set_notification(&g_vq, false);
	vq_stop(&g_vq);
out_reset:
	vq_reset(&g_vq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_mem && setup_memory())
		abort(); /* test setup, not input: nothing can work */
	if (size < 4)
		return 0;
	uint16_t qsize = (uint16_t)(1u << (data[0] & 7));
	uint64_t features = ((data[1] & 1) ? 1ull << 28 : 0) | ((data[1] & 2) ? 1ull << 29 : 0);
	uint16_t base = (uint16_t)(data[2] | data[3] << 8);
	g_chain.iov = g_iov;
	g_chain.iov_max = (data[1] >> 3) ? (uint32_t)(data[1] >> 3) : ARRAY_SIZE(g_iov);
	size_t len = MIN(size - 4, (size_t)(2 * REGION));

	memset(g_view, 0, 2 * REGION);
	for (size_t off = 0; off < len;) {
		/* Copy in pieces that do not cross a region (gview is per region). */
		size_t chunk = MIN(len - off, (size_t)(REGION - (off % REGION)));
		memcpy(gview(off), data + 4 + off, chunk);
		off += chunk;
	}
	run(qsize, features, base, (data[1] & 4) ? VQ_POP_DEV_READS : VQ_POP_RW);
	return 0;
}
