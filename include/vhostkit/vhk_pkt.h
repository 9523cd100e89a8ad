/* SPDX-License-Identifier: MIT */
/**
 * @file vhk_pkt.h
 * Packet buffers and pools (the library's own mbuf, no EAL, no hugepages).
 *
 * A pool is a fixed set of equally sized buffers in one anonymous mapping.
 * Each buffer has a struct vhk_pkt header, then headroom, then data room.
 * Pools are single-threaded by default (no lock at all); VHK_POOL_MT makes
 * alloc/free take one uncontended spinlock per call (per burst, not per
 * packet).
 */
#ifndef VHOSTKIT_VHK_PKT_H
#define VHOSTKIT_VHK_PKT_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vhk_pool;

/** Offload flags, same meaning as virtio_net_hdr.flags. */
#define VHK_PKT_OL_NEEDS_CSUM 1u /**< csum_start/csum_offset hold a partial checksum */
#define VHK_PKT_OL_DATA_VALID 2u /**< checksum already verified */

/** GSO types, same values as virtio_net_hdr.gso_type. */
#define VHK_PKT_GSO_NONE 0
#define VHK_PKT_GSO_TCPV4 1
#define VHK_PKT_GSO_UDP 3
#define VHK_PKT_GSO_TCPV6 4
#define VHK_PKT_GSO_ECN 0x80

/** Offload metadata carried with a packet (virtio-net header semantics). */
struct vhk_pkt_offload {
	uint8_t flags;        /**< VHK_PKT_OL_* */
	uint8_t gso_type;     /**< VHK_PKT_GSO_* */
	uint16_t hdr_len;     /**< Ethernet + IP + L4 header bytes (GSO) */
	uint16_t gso_size;    /**< segment payload size (GSO) */
	uint16_t csum_start;  /**< where checksumming starts (NEEDS_CSUM) */
	uint16_t csum_offset; /**< where to store it, from csum_start */
};

/**
 * A packet segment. The first segment of a chain carries pkt_len and ol.
 * Packets are only ever allocated by a pool (never embed or copy the struct):
 * the reserved tail lets later versions add fields without breaking it.
 */
struct vhk_pkt {
	uint8_t *buf;            /**< start of the buffer (headroom begins here) */
	uint32_t buf_len;        /**< headroom + data room */
	uint32_t data_off;       /**< offset of the first data byte in buf */
	uint32_t data_len;       /**< data bytes in this segment */
	uint32_t pkt_len;        /**< bytes in the whole chain (first segment) */
	uint16_t nb_segs;        /**< segments in the chain (first segment) */
	uint16_t port;           /**< free for the app (input port, queue ...) */
	struct vhk_pkt *next;    /**< next segment or NULL */
	struct vhk_pool *pool;   /**< owning pool */
	struct vhk_pkt_offload ol; /**< offload metadata (first segment) */
	uint64_t udata;          /**< free for the app */
	uint64_t reserved[6];    /**< not touched by the datapath; zero at pool creation */
};

/** Pool creation flag: alloc/free may be called from several threads. */
#define VHK_POOL_MT 1u

/**
 * Create a pool of @p count buffers, each with @p headroom bytes before the
 * data and @p data_room bytes of data room.
 * @param ret_pool receives the pool; owned by the caller, free with
 *        vhk_pool_free().
 * @return 0; -EINVAL zero count/room or sizes over 1 MiB per buffer;
 *         -ENOMEM.
 */
int vhk_pool_create(uint32_t count, uint32_t data_room, uint32_t headroom, uint32_t flags,
		    struct vhk_pool **ret_pool);

/** Free a pool. Every packet must have been returned. NULL-safe. */
void vhk_pool_free(struct vhk_pool *pool);

/** Number of free buffers in @p pool (racy hint for MT pools). */
uint32_t vhk_pool_avail(const struct vhk_pool *pool);

/** Data room of each buffer in @p pool, in bytes. */
uint32_t vhk_pool_data_room(const struct vhk_pool *pool);

/**
 * Allocate @p n packets, all or nothing. Each is reset: one segment,
 * data_len/pkt_len 0, data_off = headroom, no offloads.
 * @return 0; -ENOBUFS fewer than n free (nothing allocated); -EINVAL.
 */
int vhk_pkt_alloc_bulk(struct vhk_pool *pool, struct vhk_pkt **pkts, uint32_t n);

/** Allocate one packet. @return the packet, or NULL when the pool is empty. */
struct vhk_pkt *vhk_pkt_alloc(struct vhk_pool *pool);

/** Return a packet and all its chained segments to their pools. NULL-safe. */
void vhk_pkt_free(struct vhk_pkt *pkt);

/** Free @p n packets (each with its chain); NULL entries are skipped. */
void vhk_pkt_free_bulk(struct vhk_pkt **pkts, uint32_t n);

/** Pointer to the first data byte of segment @p p. */
static inline uint8_t *vhk_pkt_data(const struct vhk_pkt *p)
{
	return p->buf + p->data_off;
}

/** Bytes free after the data of segment @p p. */
static inline uint32_t vhk_pkt_tailroom(const struct vhk_pkt *p)
{
	return p->buf_len - p->data_off - p->data_len;
}

/** Bytes free before the data of segment @p p. */
static inline uint32_t vhk_pkt_headroom(const struct vhk_pkt *p)
{
	return p->data_off;
}

/**
 * Append @p len bytes to the last segment of chain @p p.
 * @return pointer to the new bytes, or NULL when the tail has no room.
 */
uint8_t *vhk_pkt_append(struct vhk_pkt *p, uint32_t len);

/**
 * Link @p tail after the last segment of @p head and update pkt_len and
 * nb_segs. @return 0; -EOVERFLOW more than 65535 segments.
 */
int vhk_pkt_chain(struct vhk_pkt *head, struct vhk_pkt *tail);

/**
 * Copy @p len bytes starting at @p off of the chain into @p dst.
 * @return bytes copied (less than len if the chain is shorter).
 */
uint32_t vhk_pkt_read(const struct vhk_pkt *p, uint32_t off, void *dst, uint32_t len);

#ifdef __cplusplus
}
#endif
#endif
