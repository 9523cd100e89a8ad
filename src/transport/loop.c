/* SPDX-License-Identifier: MIT */
/*
 * Event loop: epoll over fd watches, one timerfd armed for the earliest
 * one-shot timer, and an eventfd that wakes the loop for loop_post().
 *
 * Concurrency: one thread dispatches; watches, timers and posts may be
 * added or removed from any thread (an internal mutex guards the lists).
 * A removed watch or timer is only marked dead while a dispatch is in
 * progress and freed when the dispatch ends, so callbacks of the current
 * round never see freed loop memory. Posts run after the watch and timer
 * callbacks of a round, which lets owners free their callback contexts
 * through loop_post() without racing a callback of the same round.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "transport/transport.h"
#include "util/compiler.h"
#include "util/fd.h"

#define LOOP_MAX_EVENTS 64

struct loop_watch {
	int fd;
	bool dead;
	loop_fd_fn fn;
	void *ctx;
	struct loop_watch *next; /* live list, then graveyard */
};

struct loop_timer {
	uint64_t deadline_ns;
	loop_timer_fn fn;
	void *ctx;
	struct loop_timer *next; /* sorted pending list, then graveyard */
};

struct loop_post {
	loop_timer_fn fn;
	void *ctx;
	struct loop_post *next;
};

struct loop {
	int epfd, evfd, tfd;
	pthread_mutex_t lock;
	unsigned dispatching;	    /* dispatches in progress */
	struct loop_watch *watches; /* live */
	struct loop_watch *dead_watches;
	struct loop_timer *timers; /* pending, earliest first */
	struct loop_timer *dead_timers;
	struct loop_post *posts, **posts_tail;
};

/* Tags for the loop's own fds in epoll_event.data. */
static char tag_post, tag_timer;

/* CLOCK_MONOTONIC in nanoseconds. */
static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Register one of the loop's own fds under @tag. */
static int add_own_fd(struct loop *l, int fd, void *tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int loop_new(struct loop **ret)
{
	struct loop *l = calloc(1, sizeof(*l));
	int rc;

	if (!l)
		return -ENOMEM;
	l->evfd = l->tfd = -1;
	pthread_mutex_init(&l->lock, NULL);
	l->posts_tail = &l->posts;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		goto err_errno;
	l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->evfd < 0)
		goto err_errno;
	l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (l->tfd < 0)
		goto err_errno;
	rc = add_own_fd(l, l->evfd, &tag_post);
	if (rc == 0)
		rc = add_own_fd(l, l->tfd, &tag_timer);
	if (rc < 0)
		goto err_free;
	*ret = l;
	return 0;

err_errno:
	rc = -errno;
err_free:
	loop_free(l);
	return rc;
}

/* Free every element of the watch and timer lists (loop lock held or loop dying). */
static void free_graveyard(struct loop *l)
{
	while (l->dead_watches) {
		struct loop_watch *w = l->dead_watches;
		l->dead_watches = w->next;
		free(w);
	}
	while (l->dead_timers) {
		struct loop_timer *t = l->dead_timers;
		l->dead_timers = t->next;
		free(t);
	}
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	while (l->watches) {
		struct loop_watch *w = l->watches;
		l->watches = w->next;
		free(w);
	}
	while (l->timers) {
		struct loop_timer *t = l->timers;
		l->timers = t->next;
		free(t);
	}
	while (l->posts) {
		struct loop_post *p = l->posts;
		l->posts = p->next;
		free(p);
	}
	free_graveyard(l);
	fd_close(&l->tfd);
	fd_close(&l->evfd);
	fd_close(&l->epfd);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

int loop_fd(const struct loop *l)
{
	return l->epfd;
}

int loop_watch_add(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *ctx,
		   struct loop_watch **ret)
{
	struct loop_watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = {.events = events, .data.ptr = w};

	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->fn = fn;
	w->ctx = ctx;
	pthread_mutex_lock(&l->lock);
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int rc = -errno;
		pthread_mutex_unlock(&l->lock);
		free(w);
		return rc;
	}
	w->next = l->watches;
	l->watches = w;
	pthread_mutex_unlock(&l->lock);
	if (ret)
		*ret = w;
	return 0;
}

int loop_watch_mod(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};
	int rc = 0;

	pthread_mutex_lock(&l->lock);
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		rc = -errno;
	pthread_mutex_unlock(&l->lock);
	return rc;
}

void loop_watch_del(struct loop *l, struct loop_watch *w)
{
	struct loop_watch **pp;

	if (!w)
		return;
	pthread_mutex_lock(&l->lock);
	for (pp = &l->watches; *pp && *pp != w; pp = &(*pp)->next)
		;
	if (*pp) {
		*pp = w->next;
		w->dead = true;
		/* The fd may already be closed by its owner: ignore errors. */
		(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
		if (l->dispatching) {
			w->next = l->dead_watches;
			l->dead_watches = w;
		} else {
			free(w);
		}
	}
	pthread_mutex_unlock(&l->lock);
}

/* Arm the timerfd for the earliest pending timer (or disarm). Lock held. */
static void rearm_timer(struct loop *l)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	if (l->timers) {
		uint64_t d = l->timers->deadline_ns;
		its.it_value.tv_sec = (time_t)(d / 1000000000ull);
		its.it_value.tv_nsec = (long)(d % 1000000000ull);
		if (d == 0)
			its.it_value.tv_nsec = 1; /* 0 would disarm */
	}
	(void)timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

int loop_timer_add(struct loop *l, uint64_t ms, loop_timer_fn fn, void *ctx,
		   struct loop_timer **ret)
{
	struct loop_timer *t = calloc(1, sizeof(*t)), **pp;

	if (!t)
		return -ENOMEM;
	if (ms > UINT64_MAX / 2000000ull)
		ms = UINT64_MAX / 2000000ull;
	t->deadline_ns = now_ns() + ms * 1000000ull;
	t->fn = fn;
	t->ctx = ctx;
	pthread_mutex_lock(&l->lock);
	for (pp = &l->timers; *pp && (*pp)->deadline_ns <= t->deadline_ns; pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
	if (l->timers == t)
		rearm_timer(l);
	pthread_mutex_unlock(&l->lock);
	if (ret)
		*ret = t;
	return 0;
}

/*
 * Cancel @t if it is still pending. A timer whose callback has started is
 * gone: owners clear their handle inside the callback.
 */
void loop_timer_del(struct loop *l, struct loop_timer *t)
{
	struct loop_timer **pp;

	if (!t)
		return;
	pthread_mutex_lock(&l->lock);
	for (pp = &l->timers; *pp && *pp != t; pp = &(*pp)->next)
		;
	if (*pp) {
		bool first = l->timers == t;
		*pp = t->next;
		if (first)
			rearm_timer(l);
		if (l->dispatching) {
			t->next = l->dead_timers;
			l->dead_timers = t;
		} else {
			free(t);
		}
	}
	/* Not pending: it already fired; its handle is no longer valid to touch. */
	pthread_mutex_unlock(&l->lock);
}

int loop_post(struct loop *l, loop_timer_fn fn, void *ctx)
{
	struct loop_post *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->ctx = ctx;
	pthread_mutex_lock(&l->lock);
	*l->posts_tail = p;
	l->posts_tail = &p->next;
	pthread_mutex_unlock(&l->lock);
	return fd_eventfd_write(l->evfd);
}

/* Run the callback of one watch event unless the watch died meanwhile. */
static bool run_watch(struct loop *l, struct loop_watch *w, uint32_t events)
{
	pthread_mutex_lock(&l->lock);
	bool dead = w->dead;
	loop_fd_fn fn = w->fn;
	void *ctx = w->ctx;
	int fd = w->fd;
	pthread_mutex_unlock(&l->lock);
	if (!dead)
		fn(ctx, fd, events);
	return !dead;
}

/*
 * Run expired timers. They move to the graveyard (freed after this
 * dispatch) before running, so loop_timer_del on them stays harmless.
 */
static int run_timers(struct loop *l)
{
	uint64_t buf, now = now_ns();
	int n = 0;

	(void)!read(l->tfd, &buf, sizeof(buf));
	for (;;) {
		pthread_mutex_lock(&l->lock);
		struct loop_timer *t = l->timers;
		if (!t || t->deadline_ns > now) {
			rearm_timer(l);
			pthread_mutex_unlock(&l->lock);
			return n;
		}
		l->timers = t->next;
		t->next = l->dead_timers;
		l->dead_timers = t;
		loop_timer_fn fn = t->fn;
		void *ctx = t->ctx;
		pthread_mutex_unlock(&l->lock);
		fn(ctx);
		n++;
	}
}

/* Run the posts queued so far (later posts wait for the next round). */
static int run_posts(struct loop *l)
{
	struct loop_post *p;
	int n = 0;

	(void)fd_eventfd_drain(l->evfd);
	pthread_mutex_lock(&l->lock);
	p = l->posts;
	l->posts = NULL;
	l->posts_tail = &l->posts;
	pthread_mutex_unlock(&l->lock);
	while (p) {
		struct loop_post *next = p->next;
		p->fn(p->ctx);
		free(p);
		p = next;
		n++;
	}
	return n;
}

int loop_dispatch(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	bool posts = false, timers = false;
	int n, handled = 0;

	pthread_mutex_lock(&l->lock);
	l->dispatching++;
	pthread_mutex_unlock(&l->lock);
	do {
		n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
	} while (n < 0 && errno == EINTR && timeout_ms < 0);
	if (n < 0)
		handled = errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		if (evs[i].data.ptr == &tag_post)
			posts = true;
		else if (evs[i].data.ptr == &tag_timer)
			timers = true;
		else if (run_watch(l, evs[i].data.ptr, evs[i].events))
			handled++;
	}
	if (timers)
		handled += run_timers(l);
	if (posts)
		handled += run_posts(l);
	pthread_mutex_lock(&l->lock);
	if (--l->dispatching == 0)
		free_graveyard(l);
	pthread_mutex_unlock(&l->lock);
	return handled;
}
