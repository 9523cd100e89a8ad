/* SPDX-License-Identifier: MIT */
/* Compiler helpers shared by every layer. Includes nothing of ours. */
#ifndef VHK_UTIL_COMPILER_H
#define VHK_UTIL_COMPILER_H

#include <stddef.h>
#include <stdint.h>

#define VHK_EXPORT __attribute__((visibility("default")))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define cold_path __attribute__((cold, noinline))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Single, untorn accesses to memory shared with the guest or other threads. */
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

/* Acquire/release helpers on plain (non-_Atomic) shared memory. */
#define load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define fence_acquire() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define fence_release() __atomic_thread_fence(__ATOMIC_RELEASE)
#define fence_full() __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* Spectre-v1 safe index: returns idx if idx < size, else 0, without a branch. */
static inline size_t index_nospec(size_t idx, size_t size)
{
	size_t mask = (size_t)0 - (size_t)(idx < size);
	__asm__("" : "+r"(mask));
	return idx & mask;
}

/* a + b with overflow check; returns 1 on overflow. */
#define add_overflows(a, b, res) __builtin_add_overflow((a), (b), (res))

#endif
