/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#include "vhostkit/vhostkit.h"
#include "util/compiler.h"
#include "util/log.h"

static vhk_log_fn g_sink;
static void *g_sink_ctx;
static int g_level = VHK_LOG_INFO;
static pthread_mutex_t g_sink_lock = PTHREAD_MUTEX_INITIALIZER;

VHK_EXPORT void vhk_log_set_handler(vhk_log_fn fn, void *ctx)
{
	pthread_mutex_lock(&g_sink_lock);
	g_sink = fn;
	g_sink_ctx = ctx;
	pthread_mutex_unlock(&g_sink_lock);
}

VHK_EXPORT void vhk_log_set_level(enum vhk_log_level level)
{
	if ((int)level < 0 || level >= VHK_LOG_LEVEL_MAX)
		return;
	store_relaxed(&g_level, (int)level);
}

__attribute__((format(printf, 2, 0))) static void emit(int level, const char *fmt, va_list ap)
{
	static const char *const names[] = {"ERR", "WARN", "INFO", "DEBUG"};
	char line[512];

	if (level > load_relaxed(&g_level))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	pthread_mutex_lock(&g_sink_lock);
	if (g_sink)
		g_sink((enum vhk_log_level)level, line, g_sink_ctx);
	else
		fprintf(stderr, "vhostkit %s: %s\n", names[level & 3], line);
	pthread_mutex_unlock(&g_sink_lock);
}

void vhk_logf(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, fmt, ap);
	va_end(ap);
}

void vhk_logf_rl(struct log_ratelimit *rl, int level, const char *fmt, ...)
{
	struct timespec ts;
	va_list ap;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	/* Racy by design: a lost update only changes how many lines get through. */
	if (now - rl->window_start_ns > 1000000000ull) {
		rl->window_start_ns = now;
		rl->count = 0;
	}
	if (rl->count++ >= 10)
		return;
	va_start(ap, fmt);
	emit(level, fmt, ap);
	va_end(ap);
}
