/* SPDX-License-Identifier: MIT */
/**
 * @file vhostkit.h
 * Umbrella header: includes every public vhostkit header, plus version and
 * logging control.
 */
#ifndef VHOSTKIT_VHOSTKIT_H
#define VHOSTKIT_VHOSTKIT_H

#include <stdarg.h>
#include <vhostkit/vhk_dev.h>
#include <vhostkit/vhk_vq.h>
#include <vhostkit/vhk_pkt.h>
#include <vhostkit/vhk_net.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VHK_VERSION_MAJOR 0
#define VHK_VERSION_MINOR 1
#define VHK_VERSION_PATCH 0

/** Library version string ("0.1.0"). Any thread. */
const char *vhk_version(void);

/** Log levels, most severe first. */
enum vhk_log_level {
	VHK_LOG_ERR = 0,
	VHK_LOG_WARN,
	VHK_LOG_INFO,
	VHK_LOG_DEBUG,
	VHK_LOG_LEVEL_MAX
};

/** A log sink. @p msg is one line without a trailing newline. */
typedef void (*vhk_log_fn)(enum vhk_log_level level, const char *msg, void *ctx);

/**
 * Send library log lines to @p fn (NULL restores the default: stderr).
 * Any thread; the sink may be called from any library thread concurrently.
 */
void vhk_log_set_handler(vhk_log_fn fn, void *ctx);

/** Drop log lines less severe than @p level (default VHK_LOG_INFO). */
void vhk_log_set_level(enum vhk_log_level level);

#ifdef __cplusplus
}
#endif
#endif
