/* SPDX-License-Identifier: MIT */
/*
 * Virtqueues: per-vring state, its lifecycle (driven by proto on the control
 * thread) and the format-independent element interface used by devices on
 * the datapath (pop a translated descriptor chain, push a used entry, flush
 * and notify once per burst).
 *
 * Includes: util, mem. The ring formats live in vq_split.c and vq_packed.c;
 * the bounded descriptor-chain walkers in chain.c and chain_packed.c.
 *
 * Concurrency: one datapath thread at a time owns a vq between vq_enter()
 * and vq_leave(); a second thread gets false. The control thread changes
 * rings, memory and state only while it holds the vq quiesced
 * (vq_quiesce()/vq_unquiesce()), so the datapath never sees a half-updated
 * ring or an unmapped region.
 *
 * The per-burst cost is two plain stores and two loads, no locked
 * instruction (biased ownership with an asymmetric fence):
 *  - every datapath thread has a record (struct vq_thr, never freed, reused
 *    after the thread exits) whose only writer is that thread: inside = the
 *    vq it is in a burst on, or NULL;
 *  - busy is the slow lock: the control thread holds it while quiesced; a
 *    datapath thread takes it only to become the vq's owner (dp_owner = its
 *    record);
 *  - the owner enters with: store me->inside = vq; load dp_owner again
 *    (must still be me) and leaves with a release store me->inside = NULL;
 *  - whoever takes the vq away from its owner O (vq_quiesce, another
 *    thread's vq_enter_slow) holds busy, stores dp_owner = 0, then runs a
 *    full barrier on every CPU running this process (membarrier(2)
 *    PRIVATE_EXPEDITED), then waits while O->inside == vq (acquire).
 * Why that excludes the owner without a fence on its side: the owner's
 * barrier forced by membarrier splits its program order. If its inside
 * store came before that barrier, the store is visible when membarrier
 * returns and the revoker waits for the release store of NULL. If it came
 * after, the owner's later load of dp_owner comes after too and sees the
 * change (the revoker's store preceded membarrier's own full barrier), so it
 * backs off. A stale owner that backs off only clears its own record, so it
 * cannot hide the new owner's burst.
 * A descheduled owner is covered the same way by the context switch's full
 * barrier. The release store in vq_leave() orders every ring and guest
 * memory access of the burst before the revoker's acquire load, so the
 * control thread never frees or unmaps what a burst still uses. Without
 * membarrier (old kernel, seccomp) the owner issues a full fence between
 * its store and its load instead (plain Dekker), see vq_asym_fence_ok.
 */
#ifndef VHK_VQ_VQ_H
#define VHK_VQ_VQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <linux/virtio_ring.h>

#include "util/compiler.h"
#include "util/log.h"
#include "mem/mem.h"
#include "vq/vq_log.h"

#define VQ_MAX_SIZE 32768u

/*
 * A descriptor chain, validated and translated. The caller provides the
 * storage for its pieces (iov, iov_max) before vq_pop(); the walker writes
 * each translated, contiguous piece (at most 2^32 - 1 bytes) as one POSIX
 * iovec, readable pieces first, so a device can hand them to readv(2),
 * io_uring or an application as they are. A chain with more pieces than
 * iov_max is still validated whole and consumed, and fails with -E2BIG.
 */
struct vq_chain {
	struct iovec *iov; /* caller's storage: iov_max entries */
	uint32_t iov_max;
	uint16_t id;      /* head index (split) or buffer id (packed) */
	uint16_t ndesc;   /* ring slots the chain occupies (packed bookkeeping) */
	uint32_t nout;    /* iov[0 .. nout) are device-readable */
	uint32_t nin;     /* iov[nout .. nout+nin) are device-writable */
	uint64_t out_len; /* total readable bytes */
	uint64_t in_len;  /* total writable bytes */
};

/* A chain of one descriptor, as the fast pops (vq_fast.h) return it. */
struct vq_one {
	uint8_t *base; /* translated buffer, len bytes in one region */
	uint32_t len;  /* > 0 */
	uint16_t id;   /* head (split) or buffer id (packed), < size */
	bool write;    /* device-writable */
};

/* Ring addresses as given by SET_VRING_ADDR (frontend user addresses). */
struct vq_addr {
	uint32_t flags; /* VHOST_VRING_F_LOG only */
	uint64_t desc;
	uint64_t avail;
	uint64_t used;
	uint64_t log;
};

struct vq_stats {
	uint64_t packets, bytes, drops, errors, kicks, calls;
};

struct vq {
	/* ---- hot, datapath-owned while inside vq_enter()/vq_leave() ---- */
	atomic_uint busy;      /* slow lock (see file comment) */
	_Atomic uintptr_t dp_owner; /* struct vq_thr of the owner thread, 0 = none */
	bool ready;            /* started && enabled && translated && !broken */
	bool packed;
	bool event_idx;        /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;         /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	bool in_order;         /* VIRTIO_F_IN_ORDER negotiated: batch used entries */
	bool io_batch_ok;      /* in_order: shadowed entries are in order, len 0, read-only */
	bool io_wrap;          /* in_order, packed: wrap counter of io_next */
	uint16_t io_next;      /* in_order: avail position of the next in-order push */
	uint16_t size;         /* entries */
	uint16_t last_avail_idx; /* next avail entry to consume (free-running) */
	uint16_t shadow_avail_idx; /* last avail->idx read */
	uint16_t last_used_idx;  /* used idx published (plus pending shadow) */
	uint16_t signalled_used; /* used idx at the last call (EVENT_IDX) */
	bool signalled_used_valid;
	bool notify_enabled;   /* we asked the guest to kick us */
	uint16_t shadow_count; /* pending used entries in shadow_used */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vring_used_elem *shadow_used; /* size entries */
	uint64_t *inflight;    /* bitmap of heads / ids popped and not yet pushed (vq_rules.h) */
	const struct mem_table *mem;
	uint32_t mem_hint;
	const struct vq_write_observer *wobs; /* guest-write observer (vq_guest.h), NULL normally */
	int call_fd;
	struct vq_stats stats;
	void *dev_priv;        /* for the device (net: per-queue state) */

	/* ---- packed ring (VIRTIO_F_RING_PACKED), datapath-owned like the above ---- */
	struct vring_packed_desc *pdesc;           /* descriptor ring, size entries */
	struct vring_packed_desc_event *drv_event; /* driver event suppression (guest-written) */
	struct vring_packed_desc_event *dev_event; /* device event suppression (we write) */
	bool avail_wrap;        /* wrap counter of last_avail_idx */
	bool used_wrap;         /* wrap counter of last_used_idx */
	bool signalled_used_wrap;
	/*
	 * Pop records: per head (split) or buffer id (packed) of a chain in
	 * flight, where it was popped and what it holds. The encoding and every
	 * accessor are in vq_rules.h.
	 */
	uint32_t *pk_state;
	/*
	 * Inflight tracking (vq_inflight.h): set while a started ring records
	 * its requests in the frontend's region; only the element API looks.
	 */
	struct vq_ifl *ifl;

	/* ---- control-owned ---- */
	uint32_t index;
	int kick_fd;
	int err_fd;
	bool started;          /* kick fd received (or NOFD polling) */
	bool enabled;          /* SET_VRING_ENABLE / implicit without PROTOCOL_FEATURES */
	bool broken;           /* guest error; cleared by reset/reconfiguration */
	bool num_set, addr_set;
	uint32_t base;         /* SET_VRING_BASE value, applied at start */
	bool base_set;         /* base came from SET_VRING_BASE or a stop (packed default) */
	struct vq_addr addr;
	uint64_t features;     /* negotiated virtio features */
	bool broken_logged;     /* one log line per breakage */

	/* ---- dirty logging (vq_log.h): vq->wobs points at log.obs while it logs ---- */
	struct vq_log log;
	struct vq_ifl *ifl_cfg; /* inflight region slice and state (vq_set_inflight), or NULL */
};

/* ---- control side (control thread only) ---- */

/* Initialise a zeroed vq for vring @index: stopped, disabled, no fds. */
void vq_init(struct vq *vq, uint32_t index);
/* Back to the initial state: closes kick/call/err fds, frees arrays. Quiesced by caller. */
void vq_reset(struct vq *vq);

/* Spin until the datapath leaves the vq, then hold it. */
void vq_quiesce(struct vq *vq);
void vq_unquiesce(struct vq *vq);

/*
 * SET_VRING_NUM: 1..32768, power of two for split (any size for packed).
 * -EINVAL, -EBUSY (started), -ENOMEM.
 */
int vq_set_num(struct vq *vq, uint32_t num);
/* SET_VRING_ADDR: stores the addresses; flags other than VHOST_VRING_F_LOG -> -EINVAL. */
int vq_set_addr(struct vq *vq, const struct vq_addr *a);
/*
 * SET_VRING_BASE: split needs bits 16..31 zero (-EINVAL); packed: bits 0..14
 * avail index, 15 avail wrap, 16..30 used index, 31 used wrap (indices are
 * checked against the size at vq_start). -EBUSY when started.
 */
int vq_set_base(struct vq *vq, uint32_t base);
/* GET_VRING_BASE value (split: last_avail_idx; packed: the encoding above). */
uint32_t vq_get_base(const struct vq *vq);
/* Replace the kick / call / err fd (-1 = none / polling); the old one is closed. */
void vq_set_kick_fd(struct vq *vq, int fd);
void vq_set_call_fd(struct vq *vq, int fd);
void vq_set_err_fd(struct vq *vq, int fd);

/*
 * Start the ring: validate num/base, translate and bounds-check all ring
 * parts through @mem (whole range, alignment), read used->idx, set ready
 * if enabled. Returns 0 or -EINVAL/-EFAULT (ring not mapped). Quiesced by
 * caller.
 */
int vq_start(struct vq *vq, const struct mem_table *mem, uint64_t features);
/* Stop: not ready any more, base remembered. Quiesced by caller. */
void vq_stop(struct vq *vq);
/* Enable flag (SET_VRING_ENABLE); recomputes ready. Quiesced by caller. */
void vq_set_enabled(struct vq *vq, bool enabled);
/* Memory table changed: re-translate a started ring (stops it with -EFAULT). */
int vq_remap(struct vq *vq, const struct mem_table *mem);

/* ---- datapath side (the thread between vq_enter and vq_leave) ---- */

/* True once membarrier(2) PRIVATE_EXPEDITED works (set before any owner exists). */
extern _Atomic bool vq_asym_fence_ok;

/* Per datapath thread (see the file comment); written only by its thread. */
struct vq_thr {
	struct vq *_Atomic inside; /* vq of the burst in progress, or NULL */
	struct vq_thr *next_free;  /* recycling list, after the thread exited */
};

/* This thread's record, NULL until its first vq_enter_slow(). */
extern __thread struct vq_thr *vq_thr_self __attribute__((tls_model("initial-exec")));

/* Become the owner (takes busy briefly; may revoke another owner). */
bool vq_enter_slow(struct vq *vq);

/*
 * Owner fast path (see the file comment for the ordering argument). The
 * relaxed store / relaxed load pair is only ordered by the revoker's
 * membarrier, or by the fence below when membarrier is unavailable.
 */
static inline bool vq_enter_owned(struct vq *vq, struct vq_thr *me)
{
	atomic_store_explicit(&me->inside, vq, memory_order_relaxed);
	if (unlikely(!atomic_load_explicit(&vq_asym_fence_ok, memory_order_relaxed)))
		atomic_thread_fence(memory_order_seq_cst);
	else
		atomic_signal_fence(memory_order_seq_cst); /* compiler: keep store before load */
	if (unlikely(atomic_load_explicit(&vq->dp_owner, memory_order_relaxed) != (uintptr_t)me)) {
		atomic_store_explicit(&me->inside, NULL, memory_order_release);
		return false; /* revoked meanwhile */
	}
	/*
	 * The burst's loads stay after the ownership check (a compiler barrier
	 * on x86; orders loads on weaker CPUs). Changes the control thread made
	 * while it held busy were acquired by the exchange in vq_enter_slow()
	 * that made us the owner: a revoked owner always passes there again.
	 */
	atomic_thread_fence(memory_order_acquire);
	if (unlikely(!vq->ready)) {
		atomic_store_explicit(&me->inside, NULL, memory_order_release);
		return false;
	}
	return true;
}

static inline bool vq_enter(struct vq *vq)
{
	struct vq_thr *me = vq_thr_self;

	if (likely(me && atomic_load_explicit(&vq->dp_owner, memory_order_relaxed) == (uintptr_t)me))
		return vq_enter_owned(vq, me);
	return vq_enter_slow(vq);
}

static inline void vq_leave(struct vq *vq)
{
	/* Release: every access of the burst happens before a revoker sees NULL. */
	(void)vq;
	atomic_store_explicit(&vq_thr_self->inside, NULL, memory_order_release);
}

/* Chains available and not consumed; 0 if none; marks broken if > size. */
uint16_t vq_avail_count(struct vq *vq);
/*
 * Same, but stops counting at @max (packed rings walk descriptor flags to
 * count, so a burst asks only for as many as it can take).
 */
uint16_t vq_avail_count_max(struct vq *vq, uint16_t max);

/*
 * What the device will do with the buffers of the chains it pops. The
 * walkers are device-agnostic; only the caller knows whether it writes the
 * queue, so it says so per pop (docs/hardening.md, "Device-read-only pops").
 */
enum vq_pop_mode {
	/*
	 * The device may write the chain's writable pieces (net RX; every
	 * queue of blk, crypto and of devices outside the library): every
	 * chain rule applies, WRITE included.
	 */
	VQ_POP_RW = 0,
	/*
	 * The device only ever reads this queue's buffers (net TX). Inside an
	 * indirect table the WRITE flag is ignored: every entry is a readable
	 * piece (DPDK virtio-user leaves WRITE on the header entry of its
	 * packed transmit tables). Ring descriptors keep WRITE and the
	 * writable-after-readable rule; every other check is unchanged. The
	 * caller must never write into any piece of such a chain.
	 */
	VQ_POP_DEV_READS,
};

/*
 * Pop the next available chain into @c (validated and translated; its
 * pieces into c->iov, which the caller set with c->iov_max entries).
 * Returns 0; -ENOENT none available; -EIO the ring is broken (now marked);
 * -E2BIG chain valid but more than c->iov_max pieces (consumed: id, ndesc,
 * out_len and in_len describe the whole chain, c->iov holds only its first
 * c->iov_max pieces; the caller must vq_push() it with len 0).
 */
int vq_pop(struct vq *vq, struct vq_chain *c);
/* vq_pop() for a device that says how it uses the chain (vq_pop() is VQ_POP_RW). */
int vq_pop_mode(struct vq *vq, struct vq_chain *c, enum vq_pop_mode mode);

/* Give back the last @n popped chains (ids in pop order) unconsumed. */
void vq_rewind(struct vq *vq, const uint16_t *ids, uint16_t n);

/* Record chain @id as used with @len bytes written (shadowed until flush). */
void vq_push(struct vq *vq, uint16_t id, uint32_t len);

/* Publish shadowed used entries and notify the guest if it wants it. */
void vq_flush(struct vq *vq);

/* Notify the guest if it asked (after a flush); returns true if notified. */
bool vq_notify(struct vq *vq);

/*
 * Ask (enable=true) or stop asking the guest to kick. Returns true when
 * enabling and buffers are already available (caller must not sleep).
 */
bool vq_set_notification(struct vq *vq, bool enable);

/*
 * Install (@wo) or remove (NULL) the guest-write observer of @vq: every
 * guest write the library makes for this vq from then on is reported to it
 * (vq_guest.h). Internal: tests use it; dirty logging will. Control side,
 * with the vq quiesced (vq_quiesce) or not started; @wo must stay valid
 * until it is removed or the vq is reset (vq_reset drops it).
 */
void vq_set_write_observer(struct vq *vq, const struct vq_write_observer *wo);

/* ---- dirty logging (vq_log.c); control side, vq quiesced or not started ---- */

/* Set up vq->log (at vq_init). */
void vq_log_init(struct vq *vq);
/*
 * Log into @log (the device's; NULL: none). Bits still pending go to the
 * previous log first. @log must stay mapped until it is replaced here or
 * the vq is reset.
 */
void vq_set_log(struct vq *vq, const struct mem_log *log);
/* New negotiated features (VHOST_F_LOG_ALL switches the logging of buffer writes). */
void vq_set_features(struct vq *vq, uint64_t features);
/*
 * Recompute what the log records (after a change of log, features, ring
 * addresses, ring state or memory table) and install or remove the log
 * observer. Publishes pending bits first.
 */
void vq_log_refresh(struct vq *vq);
/* Publish the pending log bits (the observer's commit; @vq is a struct vq). */
void vq_log_commit(void *vq);
/*
 * Can @log hold the ring's used-side writes at the log address of @a (the
 * last byte of the used ring, or of the packed device event area, for the
 * ring's size and the layout @features ask for)? True when @a has no
 * VHOST_VRING_F_LOG, there is no log, or the size is not known yet.
 */
bool vq_log_ring_fits(const struct vq *vq, const struct vq_addr *a, uint64_t features,
		      const struct mem_log *log);

/* Mark the ring broken: not ready, err fd signalled, one log line. */
void vq_mark_broken(struct vq *vq, const char *why) cold_path;

/* ---- internal between vq.c, vq_split.c and chain.c ---- */
/* One ring area [qva, qva+len): inside one region and aligned to @align, or NULL. */
void *vq_ring_part(const struct mem_table *mem, uint64_t qva, uint64_t len, uint64_t align);
int vq_split_start(struct vq *vq);
uint16_t vq_split_avail_count(struct vq *vq);
int vq_split_pop(struct vq *vq, struct vq_chain *c, enum vq_pop_mode mode);
void vq_split_rewind(struct vq *vq, const uint16_t *ids, uint16_t n);
void vq_split_push(struct vq *vq, uint16_t id, uint32_t len);
void vq_split_flush(struct vq *vq);
bool vq_split_need_notify(struct vq *vq);
bool vq_split_set_notification(struct vq *vq, bool enable);

/* Packed format (vq_packed.c, chain_packed.c). */
int vq_packed_start(struct vq *vq);
uint32_t vq_packed_base(const struct vq *vq);
uint16_t vq_packed_avail_count(struct vq *vq, uint16_t max);
int vq_packed_pop(struct vq *vq, struct vq_chain *c, enum vq_pop_mode mode);
void vq_packed_rewind(struct vq *vq, const uint16_t *ids, uint16_t n);
void vq_packed_push(struct vq *vq, uint16_t id, uint32_t len);
void vq_packed_flush(struct vq *vq);
bool vq_packed_need_notify(struct vq *vq);
bool vq_packed_set_notification(struct vq *vq, bool enable);

/*
 * Walk the packed chain whose first descriptor is at ring position @head
 * (< @size) with wrap counter @wrap. Returns -ENOENT if that descriptor is
 * not available, else fills @c (id = buffer id < size, ndesc = ring slots)
 * and returns 0, -EIO (guest error) or -E2BIG (too many pieces; consumed).
 * @mode: see enum vq_pop_mode (it only matters inside an indirect table).
 */
int chain_walk_packed(const struct mem_table *mem, uint32_t *hint,
		      const struct vring_packed_desc *ring, uint16_t size, uint16_t head, bool wrap,
		      bool indirect_ok, enum vq_pop_mode mode, struct vq_chain *c);

/*
 * Walk the split chain starting at @head of the descriptor table @desc of
 * @size entries (the ring's, or an indirect table when @indirect_ok is
 * false), translating through @mem. Enforces every rule of the split chain
 * walk (bounds, TTL, indirect rules, 2^32 total, ordering of writable after
 * readable). @mode: see enum vq_pop_mode (it only matters inside an
 * indirect table @head points to). Returns 0, -EIO (guest error), -E2BIG
 * (too many pieces).
 */
int chain_walk_split(const struct mem_table *mem, uint32_t *hint, const struct vring_desc *desc,
		     uint16_t size, uint16_t head, bool indirect_ok, enum vq_pop_mode mode,
		     struct vq_chain *c);

#endif
