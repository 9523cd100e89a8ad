/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the packed ring datapath: the input becomes guest
 * memory (the test harness's guest RAM: two regions, each a file of its
 * own) holding the packed descriptor ring, the two event suppression
 * structures (where the harness lays out a packed ring at gpa 0) and any
 * indirect tables. The vq pops every chain it accepts (with wrap counters
 * from a fuzzed SET_VRING_BASE value), touches every translated byte,
 * rewinds some, pushes, flushes in batches and evaluates notifications.
 * A crash, a sanitizer report or a byte touched outside guest memory is a
 * bug.
 *
 * Input: [0] ring size - 1 (mod 64) [1] feature bits (bit0 indirect, bit1
 * event idx; bit2: pop with VQ_POP_DEV_READS), bits 3..7 the chain's piece
 * storage (0: 256 entries, else that many) [2..5] base (packed
 * encoding); the rest is copied to guest memory at gpa 0.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gmem.h"
#include "gvq.h"
#include "vq/vq.h"

#define REGION 0x10000ull
#define QVA_BASE 0x7f0000000000ull
#define F_PACKED (1ull << 34)

static struct gmem *g_gmem;
static struct mem_table *g_mem;
static struct gvq *g_ring[65]; /* the ring layout at gpa 0 per size */
static struct vq g_vq;
static struct vq_chain g_chain;
static struct iovec g_iov[256]; /* g_chain's pieces: iov_max from the input */

/* Guest RAM: two adjacent regions from gpa 0, frontend addresses QVA_BASE + gpa. */
static int setup_memory(void)
{
	if (gmem_new(2, REGION, 0, 0, &g_gmem))
		return -1;
	gmem_set_qva_base(g_gmem, QVA_BASE);
	return gmem_table(g_gmem, 0, 2, &g_mem);
}

/* The harness's packed ring of @size entries at gpa 0 (its areas; the input fills them). */
static struct gvq *ring_at_0(uint16_t size)
{
	if (!g_ring[size] && gvq_new_at(g_gmem, 0, size, F_PACKED, &g_ring[size]))
		abort(); /* test setup, not input */
	return g_ring[size];
}

/* Read every readable byte and write every writable byte of the chain. */
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

/* Configure, start and drain the ring; every path ends in vq_reset(). */
static void run(const struct gvq *r, uint64_t features, uint32_t base, enum vq_pop_mode mode)
{
	struct vq_addr a = {0, gmem_qva(r->mem, r->desc_gpa), gmem_qva(r->mem, r->avail_gpa),
			    gmem_qva(r->mem, r->used_gpa), 0};
	uint16_t rewound = 0, size = r->size;

	vq_init(&g_vq, 0);
	g_vq.features = features;
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
		if (rc == 0 && n > 2 && rewound < 8 && (round & 3) == 1) {
			rewound++;
			vq_rewind(&g_vq, &g_chain.id, 1);
			continue;
		}
		vq_push(&g_vq, g_chain.id, rc == 0 ? (uint32_t)g_chain.in_len : 0);
		if ((round & 7) == 7 || g_vq.shadow_count == size)
			vq_flush(&g_vq);
	}
	vq_flush(&g_vq);
	(void)vq_notify(&g_vq);
	(void)vq_set_notification(&g_vq, false);
	(void)vq_get_base(&g_vq);
	vq_stop(&g_vq);
out_reset:
	vq_reset(&g_vq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_mem && setup_memory())
		abort(); /* test setup, not input: nothing can work */
	if (size < 6)
		return 0;
	uint16_t qsize = (uint16_t)((data[0] & 63) + 1);
	uint64_t features = F_PACKED | ((data[1] & 1) ? 1ull << 28 : 0) |
			    ((data[1] & 2) ? 1ull << 29 : 0);
	uint32_t base = (uint32_t)data[2] | (uint32_t)data[3] << 8 | (uint32_t)data[4] << 16 |
			(uint32_t)data[5] << 24;
	size_t len = MIN(size - 6, (size_t)(2 * REGION));
	g_chain.iov = g_iov;
	g_chain.iov_max = (data[1] >> 3) ? (uint32_t)(data[1] >> 3) : ARRAY_SIZE(g_iov);

	for (uint32_t i = 0; i < g_gmem->nregions; i++)
		memset(g_gmem->r[i].hva, 0, g_gmem->r[i].size);
	if (gmem_write(g_gmem, 0, data + 6, len))
		abort();
	run(ring_at_0(qsize), features, base, (data[1] & 4) ? VQ_POP_DEV_READS : VQ_POP_RW);
	return 0;
}
