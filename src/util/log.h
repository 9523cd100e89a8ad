/* SPDX-License-Identifier: MIT */
/* Library logging: one line per call, through the app's sink (vhk_log_set_handler). */
#ifndef VHK_UTIL_LOG_H
#define VHK_UTIL_LOG_H

#include <stdint.h>

void vhk_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Rate-limited: at most a burst of lines per second per call site (@p state). */
struct log_ratelimit {
	uint64_t window_start_ns;
	uint32_t count;
};
void vhk_logf_rl(struct log_ratelimit *rl, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(...) vhk_logf(0, __VA_ARGS__)
#define log_warn(...) vhk_logf(1, __VA_ARGS__)
#define log_info(...) vhk_logf(2, __VA_ARGS__)
#define log_dbg(...) vhk_logf(3, __VA_ARGS__)
#define log_warn_rl(...)                                                                       \
	do {                                                                                   \
		static struct log_ratelimit rl_;                                              \
		vhk_logf_rl(&rl_, 1, __VA_ARGS__);                                             \
	} while (0)
#define log_err_rl(...)                                                                        \
	do {                                                                                   \
		static struct log_ratelimit rl_;                                              \
		vhk_logf_rl(&rl_, 0, __VA_ARGS__);                                             \
	} while (0)

#endif
