/* SPDX-License-Identifier: MIT */
/*
 * vhost-user wire format (QEMU docs/interop/vhost-user.rst). Native byte
 * order, packed as the spec lays them out. Sizes are checked at compile
 * time. Used by proto and by the in-tree test frontend.
 */
#ifndef VHK_PROTO_MSG_H
#define VHK_PROTO_MSG_H

#include <assert.h>
#include <stdint.h>

enum vhost_user_request {
	VHOST_USER_NONE = 0,
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SEND_RARP = 19,
	VHOST_USER_NET_SET_MTU = 20,
	VHOST_USER_SET_BACKEND_REQ_FD = 21,
	VHOST_USER_IOTLB_MSG = 22,
	VHOST_USER_SET_VRING_ENDIAN = 23,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_CREATE_CRYPTO_SESSION = 26,
	VHOST_USER_CLOSE_CRYPTO_SESSION = 27,
	VHOST_USER_POSTCOPY_ADVISE = 28,
	VHOST_USER_POSTCOPY_LISTEN = 29,
	VHOST_USER_POSTCOPY_END = 30,
	VHOST_USER_GET_INFLIGHT_FD = 31,
	VHOST_USER_SET_INFLIGHT_FD = 32,
	VHOST_USER_GPU_SET_SOCKET = 33,
	VHOST_USER_RESET_DEVICE = 34,
	VHOST_USER_VRING_KICK = 35,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
	VHOST_USER_SET_STATUS = 39,
	VHOST_USER_GET_STATUS = 40,
	VHOST_USER_GET_SHARED_OBJECT = 41,
	VHOST_USER_SET_DEVICE_STATE_FD = 42,
	VHOST_USER_CHECK_DEVICE_STATE = 43,
	VHOST_USER_GET_SHMEM_CONFIG = 44,
	VHOST_USER_GET_VRING_BASE_SKIP_DRAIN = 45,
	VHOST_USER_MAX
};

/* Back-end -> front-end requests (SET_BACKEND_REQ_FD channel). */
enum vhost_user_backend_request {
	VHOST_USER_BACKEND_IOTLB_MSG = 1,
	VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
	VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
};

#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_REPLY_MASK (1u << 2)
#define VHOST_USER_NEED_REPLY_MASK (1u << 3)
#define VHOST_USER_FLAGS_KNOWN (VHOST_USER_VERSION_MASK | VHOST_USER_REPLY_MASK | VHOST_USER_NEED_REPLY_MASK)

/* SET_VRING_KICK/CALL/ERR payload: bits 0..7 index, bit 8 no fd. */
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD_MASK (1u << 8)

#define VHOST_USER_MAX_PAYLOAD 4096u   /* cap on a message body */
#define VHOST_USER_MAX_FDS 8u          /* fds accepted on one message */
#define VHOST_MEMORY_BASELINE_NREGIONS 8u
#define VHOST_USER_F_PROTOCOL_FEATURES 30

struct vhost_user_header {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));
static_assert(sizeof(struct vhost_user_header) == 12, "header");

struct vhost_user_vring_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));
static_assert(sizeof(struct vhost_user_vring_state) == 8, "vring state");

struct vhost_user_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
} __attribute__((packed));
static_assert(sizeof(struct vhost_user_vring_addr) == 40, "vring addr");

struct vhost_user_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
} __attribute__((packed));
static_assert(sizeof(struct vhost_user_mem_region) == 32, "mem region");

/* SET_MEM_TABLE: an 8-byte header, then nregions (at most 8) regions. */
#define VHOST_USER_MEMORY_HDR_SIZE 8u
struct vhost_user_memory {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_mem_region regions[VHOST_MEMORY_BASELINE_NREGIONS];
} __attribute__((packed));
static_assert(sizeof(struct vhost_user_memory) == 8 + 8 * 32, "memory");

struct vhost_user_mem_reg {
	uint64_t padding;
	struct vhost_user_mem_region region;
} __attribute__((packed));
static_assert(sizeof(struct vhost_user_mem_reg) == 40, "single region");

struct vhost_user_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
} __attribute__((packed));
static_assert(sizeof(struct vhost_user_log) == 16, "log");

#define VHOST_USER_CONFIG_HDR_SIZE 12u
#define VHOST_USER_MAX_CONFIG_SIZE 256u
struct vhost_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t region[VHOST_USER_MAX_CONFIG_SIZE];
} __attribute__((packed));
static_assert(sizeof(struct vhost_user_config) == 12 + VHOST_USER_MAX_CONFIG_SIZE, "config");
#define VHOST_SET_CONFIG_TYPE_FRONTEND 0u
#define VHOST_SET_CONFIG_TYPE_MIGRATION 1u

/*
 * GET/SET_INFLIGHT_FD. QEMU, DPDK and libvhost-user declare it without
 * packing, so its size on the wire is 24 (4 bytes of tail padding).
 */
struct vhost_user_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
	uint8_t padding[4];
} __attribute__((packed));
static_assert(sizeof(struct vhost_user_inflight) == 24, "inflight");

struct vhost_user_iotlb {
	uint64_t iova;
	uint64_t size;
	uint64_t uaddr;
	uint8_t perm;
	uint8_t type;
} __attribute__((packed));
static_assert(sizeof(struct vhost_user_iotlb) == 26, "iotlb");

/* A complete message as the dispatcher holds it. */
struct vhost_user_msg {
	struct vhost_user_header hdr;
	union {
		uint64_t u64;
		struct vhost_user_vring_state state;
		struct vhost_user_vring_addr addr;
		struct vhost_user_memory memory;
		struct vhost_user_mem_reg mem_reg;
		struct vhost_user_log log;
		struct vhost_user_config config;
		struct vhost_user_inflight inflight;
		struct vhost_user_iotlb iotlb;
		uint8_t bytes[VHOST_USER_MAX_PAYLOAD];
	} payload;
} __attribute__((packed));

#endif
