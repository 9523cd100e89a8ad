/* SPDX-License-Identifier: MIT */
/*
 * The control plane's lock, loop and thread, and the public loop API of
 * vhk_dev.h (vhk_loop_app_driven, vhk_loop_dispatch).
 *
 * Threading: one recursive mutex serialises the control plane. The control
 * thread (or the app, in app-driven mode) runs loop_dispatch() without it;
 * every loop callback takes it, and so does every public socket or device
 * function, so they may be called from any thread and from callbacks.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>

#include "core/core.h"
#include "util/compiler.h"
#include "util/log.h"

static pthread_mutex_t g_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static struct loop *g_loop;
static bool g_app_driven;
static bool g_thread_running;

void core_lock(void)
{
	pthread_mutex_lock(&g_lock);
}

void core_unlock(void)
{
	pthread_mutex_unlock(&g_lock);
}

struct loop *core_loop(void)
{
	return g_loop;
}

int core_loop_ensure(void)
{
	return g_loop ? 0 : loop_new(&g_loop);
}

/* The control thread: dispatch forever. */
static void *control_main(void *arg)
{
	for (;;)
		(void)loop_dispatch(g_loop, -1);
	return NULL;
}

int core_thread_ensure(void)
{
	sigset_t all, old;
	pthread_t t;
	int rc;

	if (g_app_driven || g_thread_running)
		return 0;
	rc = core_loop_ensure();
	if (rc < 0)
		return rc;
	/* Signals stay with the app's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, NULL, control_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return -rc;
	(void)pthread_setname_np(t, "vhk-ctrl");
	(void)pthread_detach(t);
	g_thread_running = true;
	return 0;
}

VHK_EXPORT int vhk_loop_app_driven(void)
{
	int rc;

	core_lock();
	if (g_thread_running) {
		rc = -EBUSY;
		goto out_unlock;
	}
	rc = core_loop_ensure();
	if (rc < 0)
		goto out_unlock;
	g_app_driven = true;
	rc = loop_fd(g_loop);
out_unlock:
	core_unlock();
	return rc;
}

VHK_EXPORT int vhk_loop_dispatch(int timeout_ms)
{
	struct loop *l;

	core_lock();
	l = g_app_driven ? g_loop : NULL;
	core_unlock();
	if (!l)
		return -EINVAL;
	return loop_dispatch(l, timeout_ms);
}
