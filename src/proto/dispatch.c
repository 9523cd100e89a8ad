/* SPDX-License-Identifier: MIT */
/*
 * Connection input and the one table-driven dispatcher.
 *
 * Security model: everything read from the socket is hostile. The receive
 * state machine validates the 12-byte header (version, flags, size cap)
 * before it reads the payload, reads exactly `size` more bytes
 * and at most VHOST_USER_MAX_FDS fds, and never blocks: a peer that stalls
 * mid-message leaves its partial message buffered while other connections
 * are served. The dispatcher then checks the message against its row in
 * msg_table.def (payload size, fd count, gating feature, vring index)
 * before any handler runs; unknown request codes are refused there too. Handlers never touch the
 * socket; every reply is built here. Every received fd is closed after the handler returns unless
 * the handler took it (set its slot to -1). Framing errors close the connection; message-level
 * errors are answered (NACK or empty reply) and the connection stays usable.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

#include "proto/conn.h"
#include "util/fd.h"
#include "util/log.h"

#define HDR_SIZE	 sizeof(struct vhost_user_header)
#define MSGS_PER_WAKEUP	 32

enum fd_rule { FD_NONE, FD_ONE, FD_VRING, FD_NREGIONS, FD_OPT };
enum reply_kind { R_NONE, R_U64, R_PAYLOAD, R_EMPTY };
enum gate_kind { G_NONE, G_OFFERED, G_NEGOTIATED, G_PF };
enum vring_kind { V_NONE, V_STATE, V_ADDR, V_FDIDX };
enum state_need { S_ANY, S_MEM };

struct msg_desc {
	const char *name;
	msg_handler_fn fn;
	uint32_t size;
	int (*size_fn)(const struct vhost_user_msg *msg);
	uint8_t fds, reply, gate, gate_bit, vring, state;
};

static const struct msg_desc msg_table[VHOST_USER_MAX] = {
#define MSG(id, h, sz, szfn, fdr, rep, g, gbit, vr, st)                                            \
	[VHOST_USER_##id] = {#id, h, sz, szfn, fdr, rep, g, gbit, vr, st},
#define MSG_UNIMPL(id) [VHOST_USER_##id] = {.name = #id},
#include "proto/msg_table.def"
#undef MSG
#undef MSG_UNIMPL
};

/* Compile-time checks of the table against the wire structs. */
#define MSG(id, h, sz, szfn, fdr, rep, g, gbit, vr, st)                                            \
	static_assert((sz) <= VHOST_USER_MAX_PAYLOAD && VHOST_USER_##id < VHOST_USER_MAX, #id);
#define MSG_UNIMPL(id) static_assert(VHOST_USER_##id < VHOST_USER_MAX, #id);
#include "proto/msg_table.def"
#undef MSG
#undef MSG_UNIMPL
static_assert(sizeof(struct vhost_user_vring_addr) == 40, "SET_VRING_ADDR row");
static_assert(sizeof(struct vhost_user_mem_reg) == 40, "ADD/REM_MEM_REG rows");

const char *msg_name(uint32_t req)
{
	if (req < VHOST_USER_MAX && msg_table[req].name)
		return msg_table[req].name;
	return "UNKNOWN";
}

/* Framing check of a complete header, before any payload is read. */
static int check_header(const struct vhost_user_header *h)
{
	if ((h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
		return -EPROTO;
	if (h->flags & (VHOST_USER_REPLY_MASK | ~VHOST_USER_FLAGS_KNOWN))
		return -EPROTO;
	/* An unknown request code is not a framing error: it is refused later. */
	if (h->size > VHOST_USER_MAX_PAYLOAD)
		return -EMSGSIZE;
	return 0;
}

/*
 * Read as much of the current message as the socket holds. Returns 1 when
 * a whole message is buffered, 0 when more bytes are needed, negative
 * errno when the connection must close.
 */
static int rx_step(struct conn *c)
{
	for (;;) {
		size_t total = HDR_SIZE + (c->rx_got >= HDR_SIZE ? c->rx.hdr.size : 0);
		if (c->rx_got >= HDR_SIZE && c->rx_got == total)
			return 1;
		ssize_t r = fdmsg_recv(c->fd, (uint8_t *)&c->rx + c->rx_got, total - c->rx_got,
				       c->rx_fds, &c->rx_nfds, VHOST_USER_MAX_FDS);
		if (r == -EAGAIN)
			return 0;
		if (r == 0)
			return c->rx_got ? -EPIPE : -ECONNRESET;
		if (r < 0)
			return (int)r;
		c->rx_got += (size_t)r;
		if (c->rx_got == HDR_SIZE) {
			int rc = check_header(&c->rx.hdr);
			if (rc < 0)
				return rc;
		}
	}
}

/* Number of fds the message must carry under rule @rule. */
static size_t fds_expected(const struct vhost_user_msg *msg, uint8_t rule, size_t got)
{
	switch (rule) {
	case FD_ONE:
		return 1;
	case FD_VRING:
		return (msg->payload.u64 & VHOST_USER_VRING_NOFD_MASK) ? 0 : 1;
	case FD_NREGIONS:
		return msg->payload.memory.nregions;
	case FD_OPT:
		return got <= 1 ? got : 1;
	default:
		return 0;
	}
}

/* Vring index a message names (full 32-bit field); -1 when it names none. */
static int64_t vring_index(const struct vhost_user_msg *msg, uint8_t kind)
{
	switch (kind) {
	case V_STATE:
		return msg->payload.state.index;
	case V_ADDR:
		return msg->payload.addr.index;
	case V_FDIDX:
		if (msg->payload.u64 &
		    ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK))
			return INT64_MAX; /* reserved bits set */
		return (int64_t)(msg->payload.u64 & VHOST_USER_VRING_IDX_MASK);
	default:
		return -1;
	}
}

/*
 * After validation, rewrite the vring index in place through index_nospec()
 * so that handlers indexing per-vring arrays with it cannot be steered out
 * of bounds speculatively (Spectre v1).
 */
static void mask_vring_index(struct vhost_user_msg *msg, uint8_t kind, uint32_t limit)
{
	if (kind == V_STATE)
		msg->payload.state.index = (uint32_t)index_nospec(msg->payload.state.index, limit);
	else if (kind == V_ADDR)
		msg->payload.addr.index = (uint32_t)index_nospec(msg->payload.addr.index, limit);
	else if (kind == V_FDIDX)
		msg->payload.u64 = (msg->payload.u64 & ~(uint64_t)VHOST_USER_VRING_IDX_MASK) |
				   index_nospec(msg->payload.u64 & VHOST_USER_VRING_IDX_MASK, limit);
}

/* Check a message against its table row. 0 or negative errno. */
static int validate(struct conn *c, const struct msg_desc *d, const struct msg_ctx *m)
{
	const struct vhost_user_msg *msg = m->msg;
	uint64_t have = 0;

	if (!d->fn)
		return -ENOSYS; /* not implemented by the core: offered to the device */
	if (d->gate == G_OFFERED)
		have = c->dev->offered;
	else if (d->gate == G_NEGOTIATED)
		have = c->dev->features |
		       (conn_pf_negotiated(c) ? 1ull << VHOST_USER_F_PROTOCOL_FEATURES : 0);
	else if (d->gate == G_PF)
		have = c->dev->protocol_features;
	if (d->gate != G_NONE && !(have & (1ull << d->gate_bit)))
		return -ENOTSUP;
	if (d->size_fn ? d->size_fn(msg) < 0 : msg->hdr.size != d->size)
		return -EINVAL;
	if (m->nfds != fds_expected(msg, d->fds, m->nfds))
		return -EBADF;
	if (vring_index(msg, d->vring) >= (int64_t)conn_nvrings(c))
		return -ERANGE;
	if (d->state == S_MEM && !c->dev->mem)
		return -ENOENT;
	return 0;
}

/* Build and send the reply of the current message, given its result @rc. */
static void send_reply(struct conn *c, int rc)
{
	const struct msg_desc *d = c->cur;
	struct vhost_user_msg *r = &c->reply;
	bool ack = (c->cur_flags & VHOST_USER_NEED_REPLY_MASK) &&
		   (c->dev->protocol_features & (1ull << VHK_PF_REPLY_ACK));

	if (rc < 0 && rc != -ENOSYS) /* ENOSYS was logged with the request */
		log_err_rl("vhost-user %s on vid %d failed: %s (%d)", d->name ? d->name : "?",
			   c->vid, strerror(-rc), rc);
	if (d->reply == R_NONE && !ack && !(rc >= 0 && r->hdr.size)) {
		fd_close(&c->reply_fd);
		return;
	}
	r->hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
	if (d->reply == R_EMPTY) {
		/* QEMU waits for this reply and looks only at its request code. */
		r->hdr.size = rc < 0 ? sizeof(uint64_t) : 0;
		r->payload.u64 = rc < 0 ? (uint64_t)-rc : 0;
	} else if (d->reply == R_NONE && !(rc >= 0 && r->hdr.size)) {
		r->hdr.size = sizeof(uint64_t);
		r->payload.u64 = rc < 0 ? (uint64_t)-rc : 0;
	} else if (rc < 0) {
		r->hdr.size = 0; /* the spec's answer for a failed GET_CONFIG, for all */
	} else if (d->reply == R_U64) {
		r->hdr.size = sizeof(uint64_t);
	}
	if (r->hdr.size > VHOST_USER_MAX_PAYLOAD)
		r->hdr.size = 0;
	/* Queued, never waited for: input stops until the frontend took it. */
	if (rc >= 0 && c->reply_fd >= 0)
		rc = outq_push(&c->out, r, HDR_SIZE + r->hdr.size, &c->reply_fd, 1); /* takes it */
	else
		rc = outq_push(&c->out, r, HDR_SIZE + r->hdr.size, NULL, 0);
	if (rc == 0)
		rc = outq_flush(&c->out, c->fd);
	if (rc < 0 && rc != -EAGAIN)
		conn_close(c, rc == -ENOBUFS ? "reply queue full" : "cannot send reply");
}

/*
 * Finish the current message: settle rings and device, run the message's
 * deferred step, reply, and read on. Re-entered on op completion.
 */
static void msg_complete(struct conn *c)
{
	if (c->dead)
		return;
	if (!core_dev_settle(c->dev)) {
		if (!c->dead) {
			c->suspended = true; /* until the device op completes */
			conn_watch_update(c);
		}
		return;
	}
	int rc = c->cur_rc, err = core_op_take_error(c->dev);
	if (rc == 0 && err)
		rc = err;
	if (rc == 0 && c->finish)
		rc = c->finish(c);
	c->finish = NULL;
	if (c->cur)
		send_reply(c, rc);
	fd_close(&c->reply_fd); /* not sent (error, or no reply): ours to close */
	c->cur = NULL;
	c->suspended = false;
	conn_watch_update(c);
}

/* Validate and run the buffered message, then reply. */
static void dispatch_one(struct conn *c)
{
	static const struct msg_desc unknown = {.name = "UNKNOWN"};
	uint32_t req = c->rx.hdr.request;
	const struct msg_desc *d = &unknown;
	struct msg_ctx m = {&c->rx, c->rx_fds, c->rx_nfds, &c->reply};
	int rc;

	if (req > VHOST_USER_NONE && req < VHOST_USER_MAX)
		d = &msg_table[index_nospec(req, VHOST_USER_MAX)];
	c->rx_got = 0;
	memset(&c->reply, 0, sizeof(c->reply));
	c->reply.hdr.request = req;
	c->cur = d;
	c->cur_flags = c->rx.hdr.flags;
	c->finish = NULL;
	fd_close(&c->reply_fd);
	(void)core_op_take_error(c->dev);
	if (pc_ack_pending(c)) {
		/* Postcopy: the frontend's ack of our addresses, answered as its SET_MEM_TABLE. */
		c->cur = &msg_table[VHOST_USER_SET_MEM_TABLE];
		c->cur_flags = c->pc_flags;
		c->reply.hdr.request = VHOST_USER_SET_MEM_TABLE;
		rc = pc_mem_ack(c, &m);
		if (rc == -EPROTO)
			conn_close(c, "postcopy: the memory table was not acked");
	} else if (pc_add_reg_ack(c, &m)) {
		rc = 0; /* postcopy: the frontend has every region's address (h_postcopy.c) */
	} else if ((rc = validate(c, d, &m)) == 0) {
		/* The messages a frontend sends right after connecting end its handshake window. */
		if (req == VHOST_USER_SET_OWNER || req == VHOST_USER_SET_FEATURES ||
		    req == VHOST_USER_SET_MEM_TABLE)
			conn_negotiated(c);
		mask_vring_index(m.msg, d->vring, conn_nvrings(c));
		rc = d->fn(c, &m);
		if (rc == -ENOSYS)
			rc = -ENOTSUP; /* a known device request nobody handles */
	} else if (rc == -ENOSYS) {
		/* Not the core's: the device may take it (rte_vhost's extern callback). */
		rc = h_device(c, &m);
		if (rc == -ENOSYS)
			log_warn("vid %d: %s (%u) not supported", c->vid, msg_name(req), req);
	}
	fd_close_all(c->rx_fds, c->rx_nfds);
	c->rx_nfds = 0;
	if (c->dead)
		return;
	c->cur_rc = rc;
	msg_complete(c);
}

void conn_input(void *ctx, int fd, uint32_t events)
{
	struct conn *c = ctx;

	core_lock();
	if (!outq_empty(&c->out)) {
		int rc = outq_flush(&c->out, c->fd);
		if (rc < 0 && rc != -EAGAIN)
			conn_close(c, "cannot send reply");
	}
	for (int n = 0; n < MSGS_PER_WAKEUP && !c->dead && !c->suspended && outq_empty(&c->out);
	     n++) {
		int rc = rx_step(c);
		if (rc == 0)
			break;
		if (rc < 0) {
			conn_close(c, rc == -ECONNRESET ? "peer closed"
				      : rc == -EPIPE	? "short message"
							: "bad message framing");
			break;
		}
		dispatch_one(c);
	}
	conn_watch_update(c);
	core_unlock();
}

void conn_ops_done(void *owner)
{
	struct conn *c = owner;

	if (c->dead)
		return;
	if (c->cur) {
		msg_complete(c);
	} else if (core_dev_settle(c->dev)) {
		c->suspended = false;
		conn_watch_update(c);
	}
}

/* A reply stayed unread too long: the peer stopped reading. */
static void reply_timeout(void *ctx)
{
	struct conn *c = ctx;

	core_lock();
	c->reply_timer = NULL;
	if (!c->dead && !outq_empty(&c->out))
		conn_close(c, "the peer leaves its replies unread");
	core_unlock();
}

/* Arm the unread-reply deadline while a reply waits, drop it once sent. */
static void reply_deadline(struct conn *c, bool out)
{
	if (out && !c->reply_timer && c->ps) {
		if (loop_timer_add(core_loop(), c->ps->cs->limits.reply_timeout_ms, reply_timeout, c,
				   &c->reply_timer) < 0)
			log_err("vid %d: cannot arm the reply deadline", c->vid);
	} else if (!out && c->reply_timer) {
		loop_timer_del(core_loop(), c->reply_timer);
		c->reply_timer = NULL;
	}
}

void conn_watch_update(struct conn *c)
{
	bool out = !outq_empty(&c->out);
	uint32_t ev = (out ? EPOLLOUT : 0) | (!out && !c->suspended ? EPOLLIN : 0);
	int rc = 0;

	if (c->dead)
		return;
	reply_deadline(c, out);
	if (ev == 0) {
		/*
		 * Nothing to wait for on the socket (a device op is pending): no
		 * watch at all, or a hangup would be reported over and over.
		 */
		loop_watch_del(core_loop(), c->watch);
		c->watch = NULL;
		return;
	}
	if (c->watch && ev == c->watch_ev)
		return;
	if (c->watch)
		rc = loop_watch_mod(core_loop(), c->watch, ev);
	else
		rc = loop_watch_add(core_loop(), c->fd, ev, conn_input, c, &c->watch);
	if (rc < 0)
		conn_close(c, "cannot watch socket");
	c->watch_ev = ev;
}
