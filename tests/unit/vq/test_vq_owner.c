/* SPDX-License-Identifier: MIT */
/*
 * The vq ownership handshake (vq.h): vq_enter()/vq_leave() take no locked
 * instruction on the owner's path, yet two datapath threads never run
 * inside the same vq at once, and the control thread's vq_quiesce() never
 * returns while a burst is inside (or lets one start before
 * vq_unquiesce()). Checked under contention: two datapath threads plus a
 * control thread that quiesces in a loop and changes a field the bursts
 * read twice.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "test.h"
#include "vq/vq.h"

#define ROUNDS 20000

struct owner_fx {
	struct vq vq;
	atomic_int inside;     /* threads between vq_enter and vq_leave */
	atomic_int overlap;    /* times two were inside together */
	atomic_int torn;       /* bursts that saw the control field change */
	atomic_int quiesce_bad; /* quiesce returned with a burst inside */
	atomic_bool stop;
	atomic_int started;    /* datapath threads in their loop */
	atomic_long bursts[2];
	uint64_t ctl_value;    /* control-owned: changed only while quiesced */
};

static struct owner_fx g_fx;

/* A datapath thread: bursts that check exclusion and a stable control field. */
static void *dp_thread(void *arg)
{
	long me = (long)arg;

	atomic_fetch_add(&g_fx.started, 1);
	while (!atomic_load(&g_fx.stop)) {
		if (!vq_enter(&g_fx.vq)) {
			sched_yield();
			continue;
		}
		if (atomic_fetch_add(&g_fx.inside, 1) != 0)
			atomic_fetch_add(&g_fx.overlap, 1);
		uint64_t v = READ_ONCE(g_fx.ctl_value);
		for (int i = 0; i < 50; i++)
			__asm__ volatile("" ::: "memory");
		if (READ_ONCE(g_fx.ctl_value) != v)
			atomic_fetch_add(&g_fx.torn, 1);
		atomic_fetch_sub(&g_fx.inside, 1);
		vq_leave(&g_fx.vq);
		atomic_fetch_add(&g_fx.bursts[me], 1);
	}
	return NULL;
}

/*
 * Two datapath threads and this (control) thread quiescing: ROUNDS times
 * at least, and on until each datapath thread has done MIN_BURSTS bursts
 * (a loaded machine may start them late; bounded at DEADLINE_S).
 */
#define MIN_BURSTS 200
#define DEADLINE_S 20
static void t_owner_exclusion(void)
{
	pthread_t t[2];
	time_t deadline;

	vq_init(&g_fx.vq, 0);
	g_fx.vq.ready = true; /* no ring needed: the bursts touch only the fixture */
	for (long i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, dp_thread, (void *)i), 0);
	while (atomic_load(&g_fx.started) < 2)
		sched_yield();
	deadline = time(NULL) + DEADLINE_S;
	for (int r = 0;; r++) {
		if (r >= ROUNDS && ((atomic_load(&g_fx.bursts[0]) >= MIN_BURSTS &&
				     atomic_load(&g_fx.bursts[1]) >= MIN_BURSTS) ||
				    time(NULL) > deadline))
			break;
		vq_quiesce(&g_fx.vq);
		if (atomic_load(&g_fx.inside) != 0)
			atomic_fetch_add(&g_fx.quiesce_bad, 1);
		WRITE_ONCE(g_fx.ctl_value, g_fx.ctl_value + 1);
		for (int i = 0; i < 20; i++)
			__asm__ volatile("" ::: "memory");
		WRITE_ONCE(g_fx.ctl_value, g_fx.ctl_value + 1);
		vq_unquiesce(&g_fx.vq);
		if (r % 64 == 0)
			sched_yield();
	}
	atomic_store(&g_fx.stop, true);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(pthread_join(t[i], NULL), 0);
	CHECK_EQ(atomic_load(&g_fx.overlap), 0);
	CHECK_EQ(atomic_load(&g_fx.torn), 0);
	CHECK_EQ(atomic_load(&g_fx.quiesce_bad), 0);
	/* Contention happened: both datapath threads ran bursts between quiesces. */
	CHECK(atomic_load(&g_fx.bursts[0]) > 0);
	CHECK(atomic_load(&g_fx.bursts[1]) > 0);
}

/* The owner's own quiesce (app-driven loop) needs no revocation and keeps ownership. */
static void t_owner_self_quiesce(void)
{
	struct vq *vq = &g_fx.vq;

	vq_init(vq, 0);
	vq->ready = true;
	CHECK(vq_enter(vq));
	vq_leave(vq);
	CHECK_EQ(atomic_load(&vq->dp_owner), (uintptr_t)vq_thr_self);
	vq_quiesce(vq);
	CHECK_EQ(atomic_load(&vq->dp_owner), (uintptr_t)vq_thr_self);
	vq_unquiesce(vq);
	CHECK(vq_enter(vq));
	vq_leave(vq);
	/* Not ready: refused on the owner's fast path too. */
	vq_quiesce(vq);
	vq->ready = false;
	vq_unquiesce(vq);
	CHECK(!vq_enter(vq));
	CHECK(atomic_load(&vq_thr_self->inside) == NULL);
}

/* Another thread's quiesce revokes the owner; the owner re-acquires through busy. */
static void *quiesce_other(void *arg)
{
	struct vq *vq = arg;
	vq_quiesce(vq);
	vq_unquiesce(vq);
	return NULL;
}

static void t_owner_revoked(void)
{
	struct vq *vq = &g_fx.vq;
	pthread_t t;

	vq_init(vq, 0);
	vq->ready = true;
	CHECK(vq_enter(vq));
	vq_leave(vq);
	CHECK_EQ(pthread_create(&t, NULL, quiesce_other, vq), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(atomic_load(&vq->dp_owner), 0);
	CHECK(vq_enter(vq)); /* slow path: owner again */
	CHECK_EQ(atomic_load(&vq->dp_owner), (uintptr_t)vq_thr_self);
	vq_leave(vq);
	/* While quiesced by another thread nobody enters, owner or not. */
	vq_quiesce(vq); /* we are the owner: kept */
	CHECK_EQ(atomic_load(&vq->busy), 1);
	vq_unquiesce(vq);
}

/* Enter once on another thread (it becomes the owner), then return. */
static void *enter_once(void *arg)
{
	struct vq *vq = arg;
	if (vq_enter(vq))
		vq_leave(vq);
	return NULL;
}

/*
 * After fork() the child revokes an owner: the asymmetric fence still works
 * there (registered again if the child's mm lost the registration), so no
 * fallback to datapath fences happens.
 */
static void t_owner_after_fork(void)
{
	struct vq *vq = &g_fx.vq;
	pthread_t t;
	int st = 0;

	vq_init(vq, 0);
	vq->ready = true;
	vq_quiesce(vq); /* registers in this process */
	vq_unquiesce(vq);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		bool ok = pthread_create(&t, NULL, enter_once, vq) == 0 && pthread_join(t, NULL) == 0;
		ok = ok && atomic_load(&vq->dp_owner) != 0;
		vq_quiesce(vq); /* revokes the (exited) thread's ownership */
		ok = ok && atomic_load(&vq->dp_owner) == 0 && atomic_load(&vq_asym_fence_ok);
		vq_unquiesce(vq);
		_exit(ok ? 0 : 1);
	}
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST_MAIN(TEST(t_owner_exclusion), TEST(t_owner_self_quiesce), TEST(t_owner_revoked),
	  TEST(t_owner_after_fork))
