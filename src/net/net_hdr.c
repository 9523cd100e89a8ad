/* SPDX-License-Identifier: MIT */
/*
 * The virtio-net header: wire encoding, validation of guest-supplied
 * headers, mapping to and from packet offload metadata, and the software
 * checksum used when the guest cannot take a partial checksum.
 *
 * Security model: headers read from the guest are copied out of guest
 * memory by the caller (fetch-once) and decoded here into a private struct;
 * net_hdr_validate_tx() is the single check every transmit header passes
 * before any of its fields reach a packet.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "net/net.h"

#define OL_FLAGS_KNOWN (VHK_PKT_OL_NEEDS_CSUM | VHK_PKT_OL_DATA_VALID)

/* Store a 16-bit little-endian value at @p (any alignment). */
static inline void put_le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

/* Load a 16-bit little-endian value from @p (any alignment). */
static inline uint16_t get_le16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

void net_hdr_encode_swap(const struct net_hdr *h, uint8_t *buf, uint32_t len)
{
	buf[0] = h->flags;
	buf[1] = h->gso_type;
	put_le16(buf + 2, h->hdr_len);
	put_le16(buf + 4, h->gso_size);
	put_le16(buf + 6, h->csum_start);
	put_le16(buf + 8, h->csum_offset);
	if (len >= NET_HDR_MRG_LEN)
		put_le16(buf + 10, h->num_buffers);
}

void net_hdr_decode_swap(const uint8_t *buf, uint32_t len, struct net_hdr *h)
{
	h->flags = buf[0];
	h->gso_type = buf[1];
	h->hdr_len = get_le16(buf + 2);
	h->gso_size = get_le16(buf + 4);
	h->csum_start = get_le16(buf + 6);
	h->csum_offset = get_le16(buf + 8);
	h->num_buffers = len >= NET_HDR_MRG_LEN ? get_le16(buf + 10) : 0;
}

/*
 * Feature bit that allows GSO type @gso (ECN bit stripped) in the given
 * direction: @tso4 is GUEST_TSO4 or HOST_TSO4, the other two follow at the
 * same distance in both directions. Returns -1 for an unknown type.
 */
static int gso_feature(uint8_t gso, int tso4, int tso6, int ufo)
{
	switch (gso) {
	case VHK_PKT_GSO_TCPV4:
		return tso4;
	case VHK_PKT_GSO_TCPV6:
		return tso6;
	case VHK_PKT_GSO_UDP:
		return ufo;
	default:
		return -1;
	}
}

/* Check a GSO type against the negotiated bits; 0 or -EINVAL. */
static int check_gso(uint8_t gso_type, uint64_t features, int tso4, int tso6, int ufo, int ecn)
{
	int bit = gso_feature(gso_type & (uint8_t)~VHK_PKT_GSO_ECN, tso4, tso6, ufo);

	if (bit < 0 || !(features & (1ull << bit)))
		return -EINVAL;
	if ((gso_type & VHK_PKT_GSO_ECN) && !(features & (1ull << ecn)))
		return -EINVAL;
	return 0;
}

int net_hdr_validate_tx(const struct net_hdr *h, uint32_t pkt_len, uint64_t features)
{
	if (h->flags & ~OL_FLAGS_KNOWN)
		return -EINVAL;
	if (h->flags & VHK_PKT_OL_NEEDS_CSUM) {
		if (!(features & (1ull << VHK_NET_F_CSUM)))
			return -EINVAL;
		/* u32 arithmetic: both fields are u16, no overflow. */
		if ((uint32_t)h->csum_start + h->csum_offset + 2u > pkt_len)
			return -EINVAL;
	}
	if (h->gso_type != VHK_PKT_GSO_NONE) {
		if (check_gso(h->gso_type, features, VHK_NET_F_HOST_TSO4, VHK_NET_F_HOST_TSO6,
			      VHK_NET_F_HOST_UFO, VHK_NET_F_HOST_ECN) < 0)
			return -EINVAL;
		if (h->gso_size == 0)
			return -EINVAL;
	}
	if (h->hdr_len > pkt_len)
		return -EINVAL;
	return 0;
}

void net_hdr_to_offload(const struct net_hdr *h, struct vhk_pkt_offload *ol)
{
	const bool csum = h->flags & VHK_PKT_OL_NEEDS_CSUM;
	const bool gso = h->gso_type != VHK_PKT_GSO_NONE;

	/* Only fields that carry meaning for the flags set are kept. */
	ol->flags = h->flags;
	ol->gso_type = h->gso_type;
	ol->hdr_len = h->hdr_len;
	ol->gso_size = gso ? h->gso_size : 0;
	ol->csum_start = csum ? h->csum_start : 0;
	ol->csum_offset = csum ? h->csum_offset : 0;
}

/* GSO part of a receive header; 0 or -EINVAL. */
static int rx_gso(const struct vhk_pkt *p, uint64_t features, struct net_hdr *h)
{
	const struct vhk_pkt_offload *ol = &p->ol;

	if (check_gso(ol->gso_type, features, VHK_NET_F_GUEST_TSO4, VHK_NET_F_GUEST_TSO6,
		      VHK_NET_F_GUEST_UFO, VHK_NET_F_GUEST_ECN) < 0)
		return -EINVAL;
	if (ol->gso_size == 0 || ol->hdr_len > p->pkt_len)
		return -EINVAL;
	h->gso_type = ol->gso_type;
	h->gso_size = ol->gso_size;
	h->hdr_len = ol->hdr_len;
	return 0;
}

int net_hdr_from_pkt(const struct vhk_pkt *p, uint64_t features, struct net_hdr *h,
		     uint16_t *sw_csum, uint32_t *sw_csum_off)
{
	const struct vhk_pkt_offload *ol = &p->ol;
	const bool guest_csum = features & (1ull << VHK_NET_F_GUEST_CSUM);
	int ret = 0;

	memset(h, 0, sizeof(*h));
	if (ol->flags & ~OL_FLAGS_KNOWN)
		return -EINVAL;
	/* GUEST_TSO4/TSO6/UFO depend on GUEST_CSUM: no GSO for a guest without it. */
	if (ol->gso_type != VHK_PKT_GSO_NONE && (!guest_csum || rx_gso(p, features, h) < 0))
		return -EINVAL;
	if (ol->flags & VHK_PKT_OL_NEEDS_CSUM) {
		uint32_t off = (uint32_t)ol->csum_start + ol->csum_offset;
		if (off + 2u > p->pkt_len)
			return -EINVAL;
		if (guest_csum) {
			h->flags = VHK_PKT_OL_NEEDS_CSUM;
			h->csum_start = ol->csum_start;
			h->csum_offset = ol->csum_offset;
		} else {
			*sw_csum = net_csum_pkt(p, ol->csum_start);
			*sw_csum_off = off;
			ret = 1;
		}
	}
	if ((ol->flags & VHK_PKT_OL_DATA_VALID) && guest_csum)
		h->flags |= VHK_PKT_OL_DATA_VALID;
	return ret;
}

/* Fold a 64-bit accumulator to 16 bits. */
static inline uint16_t fold64(uint64_t s)
{
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffu) + (s >> 16);
	s = (s & 0xffffu) + (s >> 16);
	return (uint16_t)s;
}

uint16_t net_csum_fold(uint32_t sum)
{
	return fold64(sum);
}

uint32_t net_csum_add(uint32_t sum, const void *data, uint32_t len, bool odd_start)
{
	const uint8_t *b = data;
	uint64_t acc = 0;
	uint32_t w32;
	uint16_t w16 = 0;

	/* Native-order words: the ones-complement sum is byte-order neutral. */
	for (; len >= 4; len -= 4, b += 4) {
		memcpy(&w32, b, 4);
		acc += w32;
	}
	if (len >= 2) {
		memcpy(&w16, b, 2);
		acc += w16;
		b += 2;
		len -= 2;
	}
	if (len) {
		w16 = 0;
		memcpy(&w16, b, 1);
		acc += w16;
	}
	uint16_t s = fold64(acc);
	if (odd_start)
		s = (uint16_t)((s << 8) | (s >> 8));
	return (uint32_t)fold64((uint64_t)sum + s);
}

uint16_t net_csum_pkt(const struct vhk_pkt *p, uint32_t start)
{
	uint32_t sum = 0;
	bool odd = false;

	for (; p; p = p->next) {
		if (start >= p->data_len) {
			start -= p->data_len;
			continue;
		}
		uint32_t n = p->data_len - start;
		sum = net_csum_add(sum, vhk_pkt_data(p) + start, n, odd);
		odd ^= n & 1;
		start = 0;
	}
	uint16_t c = (uint16_t)~net_csum_fold(sum);
	return c ? c : 0xffff;
}
