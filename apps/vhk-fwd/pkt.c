/* SPDX-License-Identifier: MIT */
/*
 * Frame builders and parsers of vhk-fwd: the txonly UDP/IPv4 template, the
 * mac-mode address rewrite and the echo-mode answers (ARP replies and ICMP
 * echo replies). Frames come from the guest: every length and field is
 * checked before use and only the first segment is parsed.
 */
#include <string.h>

#include "fwd.h"

#define ETH_HLEN 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ETHERTYPE_RARP 0x8035
#define IP_HLEN 20
#define IPPROTO_ICMP_ 1
#define IPPROTO_UDP_ 17
#define ARP_LEN 28
#define ICMP_ECHO_REQUEST 8
#define ICMP_ECHO_REPLY 0

static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
static const uint8_t src_ip[4] = {198, 18, 0, 1};
static const uint8_t dst_ip[4] = {198, 18, 0, 2};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

uint32_t pkt_csum_add(uint32_t sum, const void *data, uint32_t len)
{
	const uint8_t *p = data;
	uint64_t s = sum;

	for (; len >= 2; p += 2, len -= 2)
		s += get16(p);
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint32_t)s;
}

uint16_t pkt_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Write an IPv4 header of @total bytes (header included) for @proto. */
static void ip_header(uint8_t *ip, uint16_t total, uint8_t proto, const uint8_t *src,
		      const uint8_t *dst)
{
	memset(ip, 0, IP_HLEN);
	ip[0] = 0x45;
	put16(ip + 2, total);
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	put16(ip + 10, pkt_csum_fold(pkt_csum_add(0, ip, IP_HLEN)));
}

void pkt_build_udp(uint8_t *buf, uint32_t len, const uint8_t src_mac[6])
{
	uint8_t *ip = buf + ETH_HLEN, *udp = ip + IP_HLEN;
	uint16_t udp_len = (uint16_t)(len - ETH_HLEN - IP_HLEN);
	uint32_t sum;

	memcpy(buf, peer_mac, 6);
	memcpy(buf + 6, src_mac, 6);
	put16(buf + 12, ETHERTYPE_IPV4);
	ip_header(ip, (uint16_t)(len - ETH_HLEN), IPPROTO_UDP_, src_ip, dst_ip);
	put16(udp, 9);      /* discard port */
	put16(udp + 2, 9);
	put16(udp + 4, udp_len);
	put16(udp + 6, 0);
	for (uint32_t i = 8; i < udp_len; i++)
		udp[i] = (uint8_t)i;
	/* pseudo header + UDP header and payload */
	sum = pkt_csum_add(0, ip + 12, 8);
	sum += IPPROTO_UDP_ + udp_len;
	sum = pkt_csum_add(sum, udp, udp_len);
	uint16_t c = pkt_csum_fold(sum);
	put16(udp + 6, c ? c : 0xffff);
}

int pkt_mac_rewrite(struct vhk_pkt *p, const uint8_t mac[6])
{
	uint8_t *eth = vhk_pkt_data(p);

	if (p->data_len < 12)
		return -1;
	memmove(eth, eth + 6, 6);
	memcpy(eth + 6, mac, 6);
	return 0;
}

/* Answer an ARP request (Ethernet/IPv4) in the @len bytes at @eth. */
static int arp_answer(uint8_t *eth, uint32_t len, const uint8_t mac[6])
{
	uint8_t *a = eth + ETH_HLEN, sha[6], spa[4], tpa[4];

	if (len < ETH_HLEN + ARP_LEN)
		return -1;
	if (get16(a) != 1 || get16(a + 2) != ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4 ||
	    get16(a + 6) != 1)
		return -1;
	memcpy(sha, a + 8, 6);
	memcpy(spa, a + 14, 4);
	memcpy(tpa, a + 24, 4);
	/* Probes (sender 0.0.0.0) and announcements (sender == target) are the
	 * guest checking its own address: answering would report a conflict. */
	if (!memcmp(spa, "\0\0\0\0", 4) || !memcmp(spa, tpa, 4))
		return -1;
	memcpy(eth, sha, 6);
	memcpy(eth + 6, mac, 6);
	put16(a + 6, 2);
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, tpa, 4);
	memcpy(a + 18, sha, 6);
	memcpy(a + 24, spa, 4);
	return 0;
}

/* Answer an ICMP echo request (IPv4, unfragmented) in the @len bytes at @eth. */
static int icmp_answer(uint8_t *eth, uint32_t len, uint32_t pkt_len, const uint8_t mac[6])
{
	uint8_t *ip = eth + ETH_HLEN, *icmp, tmp[6];
	uint32_t ihl, total;

	if (len < ETH_HLEN + IP_HLEN)
		return -1;
	ihl = (uint32_t)(ip[0] & 0xf) * 4;
	total = get16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < IP_HLEN || ip[9] != IPPROTO_ICMP_ ||
	    (get16(ip + 6) & 0x3fff) != 0 /* MF or offset: a fragment */ ||
	    total < ihl + 8 || ETH_HLEN + total > pkt_len || ETH_HLEN + ihl + 8 > len)
		return -1;
	if (pkt_csum_fold(pkt_csum_add(0, ip, ihl)) != 0)
		return -1; /* bad IP header checksum */
	icmp = ip + ihl;
	if (icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0)
		return -1;
	/* Ethernet: back to the sender, from us. */
	memcpy(eth, eth + 6, 6);
	memcpy(eth + 6, mac, 6);
	/* IPv4: swap addresses (the checksum does not change), fresh TTL. */
	memcpy(tmp, ip + 12, 4);
	memcpy(ip + 12, ip + 16, 4);
	memcpy(ip + 16, tmp, 4);
	ip[8] = 64;
	put16(ip + 10, 0);
	put16(ip + 10, pkt_csum_fold(pkt_csum_add(0, ip, ihl)));
	/* ICMP: type 8 -> 0; incremental update (RFC 1624): HC' = ~(~HC + ~m + m'). */
	uint16_t old_word = get16(icmp), hc = get16(icmp + 2);
	icmp[0] = ICMP_ECHO_REPLY;
	uint32_t sum = (uint16_t)~hc;
	sum += (uint16_t)~old_word;
	sum += get16(icmp);
	put16(icmp + 2, pkt_csum_fold(sum));
	return 0;
}

bool pkt_is_rarp(const struct vhk_pkt *p)
{
	return p->data_len >= ETH_HLEN && get16(vhk_pkt_data(p) + 12) == ETHERTYPE_RARP;
}

int pkt_echo_answer(struct vhk_pkt *p, const uint8_t mac[6])
{
	uint8_t *eth = vhk_pkt_data(p);
	uint32_t len = p->data_len;
	int rc;

	if (len < ETH_HLEN)
		return -1;
	switch (get16(eth + 12)) {
	case ETHERTYPE_ARP:
		rc = arp_answer(eth, len, mac);
		break;
	case ETHERTYPE_IPV4:
		if (p->ol.flags & VHK_PKT_OL_NEEDS_CSUM)
			return -1; /* partial checksum: the incremental update would be wrong */
		rc = icmp_answer(eth, len, p->pkt_len, mac);
		break;
	default:
		return -1;
	}
	if (rc == 0)
		memset(&p->ol, 0, sizeof(p->ol)); /* the answer needs no offload */
	return rc;
}
