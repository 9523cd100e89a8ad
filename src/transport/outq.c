/* SPDX-License-Identifier: MIT */
/*
 * Output queues: messages (bytes plus fds) waiting for a non-blocking
 * socket to become writable, so that a peer that does not read never
 * makes the sender wait. A message's fds travel with its first byte and
 * are closed once that byte is sent (or when the queue is cleared). The
 * queue is bounded in messages and bytes: a peer that reads nothing makes
 * outq_push() fail with -ENOBUFS instead of growing memory without end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "transport/transport.h"
#include "util/fd.h"

struct outmsg {
	struct outmsg *next;
	size_t len;
	size_t off; /* bytes already sent */
	size_t nfds;
	int fds[OUTQ_MAX_FDS];
	uint8_t data[];
};

void outq_init(struct outq *q, size_t max_msgs, size_t max_bytes)
{
	memset(q, 0, sizeof(*q));
	q->max_msgs = max_msgs;
	q->max_bytes = max_bytes;
}

int outq_push(struct outq *q, const void *buf, size_t len, int *fds, size_t nfds)
{
	struct outmsg *m;

	if (nfds > OUTQ_MAX_FDS || (nfds && len == 0)) {
		fd_close_all(fds, nfds);
		return -EINVAL;
	}
	if (q->nmsgs >= q->max_msgs || len > q->max_bytes - q->bytes) {
		fd_close_all(fds, nfds);
		return -ENOBUFS;
	}
	m = malloc(sizeof(*m) + len);
	if (!m) {
		fd_close_all(fds, nfds);
		return -ENOMEM;
	}
	m->next = NULL;
	m->len = len;
	m->off = 0;
	m->nfds = nfds;
	for (size_t i = 0; i < nfds; i++) {
		m->fds[i] = fds[i];
		fds[i] = -1; /* the queue owns them now */
	}
	memcpy(m->data, buf, len);
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	q->nmsgs++;
	q->bytes += len;
	return 0;
}

/* Drop the head message (sent or discarded). */
static void pop_head(struct outq *q)
{
	struct outmsg *m = q->head;

	q->head = m->next;
	if (!q->head)
		q->tail = NULL;
	q->nmsgs--;
	q->bytes -= m->len;
	fd_close_all(m->fds, m->nfds);
	free(m);
}

int outq_flush(struct outq *q, int sock)
{
	while (q->head) {
		struct outmsg *m = q->head;
		bool first = m->off == 0;
		ssize_t r = fdmsg_send_nb(sock, m->data + m->off, m->len - m->off,
					  first ? m->fds : NULL, first ? m->nfds : 0);
		if (r < 0)
			return (int)r; /* -EAGAIN: wait for EPOLLOUT */
		if (first && m->nfds) {
			/* The kernel holds its own references now. */
			fd_close_all(m->fds, m->nfds);
			m->nfds = 0;
		}
		m->off += (size_t)r;
		if (m->off == m->len)
			pop_head(q);
	}
	return 0;
}

void outq_clear(struct outq *q)
{
	while (q->head)
		pop_head(q);
}
