/* SPDX-License-Identifier: MIT */
/*
 * Internal interface of the virtio-net device layer: the virtio-net header
 * (encode, decode, validation), the software checksum helper, per-device
 * state and the device operations table.
 *
 * Includes: util, mem, vq and the public headers only (never proto or
 * transport).
 */
#ifndef VHK_NET_NET_H
#define VHK_NET_NET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vhostkit/vhk_dev.h"
#include "vhostkit/vhk_net.h"
#include "vhostkit/vhk_pkt.h"
#include "util/compiler.h"
#include "vq/vq_guest.h"

/* Header sizes: legacy without MRG_RXBUF, and VERSION_1 or MRG_RXBUF. */
#define NET_HDR_LEGACY_LEN 10u
#define NET_HDR_MRG_LEN	   12u

/* Largest packet taken from a transmit chain (bounds the buffers used). */
#define NET_TX_MAX_PKT_LEN (256u * 1024u)
/* Largest number of receive chains one packet may use with MRG_RXBUF. */
#define NET_RX_MAX_BUFS 256u
/*
 * Pieces of one chain the general paths take (their iovec array); a chain
 * with more is consumed and returned used with length 0, an error.
 */
#define NET_MAX_IOV 256u

/* The virtio-net header as the device sees it (host byte order). */
struct net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers; /* only with the 12-byte layout */
};

/* Per-device state of the net device (one per vdev slot, never freed). */
struct net_priv {
	atomic_bool rarp_pending; /* SEND_RARP received, announcement not sent */
	uint8_t mac[6];
	uint16_t mtu;             /* NET_SET_MTU, 0 = never set */
};

/*
 * Write the @hlen-byte (10 or 12) virtio-net header @hdr at guest address
 * @dst through the guest-write seam (vq_guest.h, observer @wo), storing
 * only the 8-byte and 2/4-byte words that differ from what the buffer
 * already holds. A guest that recycles its receive buffers
 * (DPDK's virtio PMD keeps the header in the mbuf headroom, all zero but
 * num_buffers = 1 after the first use) then finds its header line
 * unchanged: the line stays shared by the two cores instead of moving to
 * ours and back for every packet. In the 64-byte loopback this takes the
 * enqueue from 79 to 59 busy cycles per packet, and from 210-270 to ~90 in
 * the runs where the frontend polls its receive ring hardest (in-run A/B,
 * docs/performance.md). The loads read the writable buffer the chain gave
 * us (bounds checked by the caller); they only decide whether to store.
 * The guest reads the header after it sees the used entry, which is
 * published with release semantics after this, so skipped stores need no
 * barrier either.
 */
static inline void net_hdr_put(const struct vq_write_observer *wo, uint8_t *dst,
			       const uint8_t *hdr, uint32_t hlen)
{
	vqg_buf_put_unless_equal(wo, dst, hdr, 8);
	if (hlen == NET_HDR_MRG_LEN)
		vqg_buf_put_unless_equal(wo, dst + 8, hdr + 8, 4); /* csum_offset, num_buffers */
	else
		vqg_buf_put_unless_equal(wo, dst + 8, hdr + 8, 2); /* csum_offset */
}

/* Header length for negotiated @features (10 or 12 bytes). */
static inline uint32_t net_hdr_len(uint64_t features)
{
	const uint64_t m = (1ull << VHK_F_VERSION_1) | (1ull << VHK_NET_F_MRG_RXBUF);

	return (features & m) ? NET_HDR_MRG_LEN : NET_HDR_LEGACY_LEN;
}

/* The wire layout is this struct in little-endian: checked at build time. */
_Static_assert(sizeof(struct net_hdr) == NET_HDR_MRG_LEN, "net_hdr layout");
_Static_assert(offsetof(struct net_hdr, csum_offset) == 8, "net_hdr layout");

/* Slow, portable (big-endian host) forms of the two helpers below. */
void net_hdr_encode_swap(const struct net_hdr *h, uint8_t *buf, uint32_t len);
void net_hdr_decode_swap(const uint8_t *buf, uint32_t len, struct net_hdr *h);

/* Serialise @h into @buf (@len = 10 or 12 bytes, little-endian wire format). */
static inline void net_hdr_encode(const struct net_hdr *h, uint8_t *buf, uint32_t len)
{
	if (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__) {
		net_hdr_encode_swap(h, buf, len);
		return;
	}
	if (len >= NET_HDR_MRG_LEN)
		memcpy(buf, h, NET_HDR_MRG_LEN);
	else
		memcpy(buf, h, NET_HDR_LEGACY_LEN);
}

/* Parse @len (10 or 12) bytes at @buf into @h (a private copy). */
static inline void net_hdr_decode(const uint8_t *buf, uint32_t len, struct net_hdr *h)
{
	if (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__) {
		net_hdr_decode_swap(buf, len, h);
		return;
	}
	if (len >= NET_HDR_MRG_LEN) {
		memcpy(h, buf, NET_HDR_MRG_LEN);
	} else {
		memcpy(h, buf, NET_HDR_LEGACY_LEN);
		h->num_buffers = 0;
	}
}

/*
 * Validate a header received from the guest (transmit) for a packet of
 * @pkt_len bytes with negotiated @features. Returns 0 or -EINVAL.
 */
int net_hdr_validate_tx(const struct net_hdr *h, uint32_t pkt_len, uint64_t features);

/* Copy validated header fields into the packet's offload metadata. */
void net_hdr_to_offload(const struct net_hdr *h, struct vhk_pkt_offload *ol);

/*
 * Build the receive header for @p (first segment) given the guest's
 * @features. Offloads the guest cannot take are completed in software
 * (checksum: *@sw_csum gets the folded value to store at offset
 * *@sw_csum_off of the packet data) or refused.
 * Returns 0 (header in @h), 1 (software checksum required, header in @h),
 * -EINVAL (the packet carries offload metadata the guest cannot accept or
 * that points outside the packet).
 */
int net_hdr_from_pkt(const struct vhk_pkt *p, uint64_t features, struct net_hdr *h,
		     uint16_t *sw_csum, uint32_t *sw_csum_off);

/* Ones-complement sum of @len bytes at @data added to @sum (unfolded). */
uint32_t net_csum_add(uint32_t sum, const void *data, uint32_t len, bool odd_start);
/* Fold a 32-bit partial sum to 16 bits (not complemented). */
uint16_t net_csum_fold(uint32_t sum);
/*
 * Complete a NEEDS_CSUM checksum over a packet chain: the complement of the
 * ones-complement sum of bytes [start, pkt_len), with 0 returned as 0xffff
 * (equivalent for TCP, required for UDP). The 16-bit field at
 * csum_start + csum_offset must hold the pseudo-header sum, as it does for
 * any NEEDS_CSUM packet. The value is in network byte order when stored
 * with memcpy (the sum is computed over the raw bytes).
 */
uint16_t net_csum_pkt(const struct vhk_pkt *p, uint32_t start);

/* The net device operations (vhk_net_attach() registers them). */
const struct vhk_device_ops *net_device_ops(void);
/* Per-device state for device slot @slot. */
struct net_priv *net_priv_of_slot(uint32_t slot);

#endif
