/* SPDX-License-Identifier: MIT */
/*
 * Virtqueue lifecycle (control thread) and the format dispatch of the
 * element interface (datapath).
 *
 * Every control-side function here runs on the control thread with the vq
 * quiesced (see vq.h), except vq_quiesce() itself and vq_mark_broken(),
 * which the datapath owner also calls.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/membarrier.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>

#include "util/fd.h"
#include "vq/vq.h"
#include "vq/vq_inflight.h"
#include "vq/vq_rules.h"

#define VQ_ADDR_F_LOG (1u << VHOST_VRING_F_LOG)

/* The layout the negotiated features ask for (known before the ring starts). */
static inline bool cfg_packed(const struct vq *vq)
{
	return vq->features & (1ull << VIRTIO_F_RING_PACKED);
}

/* Tell the CPU we are spinning. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#else
	__asm__ volatile("" ::: "memory");
#endif
}


/* Translate one ring part: the whole range in one region, aligned in guest and host. */
void *vq_ring_part(const struct mem_table *mem, uint64_t qva, uint64_t len, uint64_t align)
{
	void *p;

	if (qva & (align - 1))
		return NULL;
	p = mem_qva_range(mem, qva, len);
	if (!p || ((uintptr_t)p & (align - 1)))
		return NULL;
	return p;
}

/* Every field but the owner flag and dev_priv back to the vq_init() state. */
static void vq_clear_state(struct vq *vq)
{
	vq->ready = vq->packed = vq->event_idx = vq->indirect = vq->in_order = false;
	vq->size = 0;
	vq->last_avail_idx = vq->shadow_avail_idx = vq->last_used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_used_valid = false;
	vq->notify_enabled = true;
	vq->shadow_count = 0;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	vq->shadow_used = NULL;
	vq->inflight = NULL;
	vq->mem = NULL;
	vq->mem_hint = 0;
	vq->wobs = NULL;
	vq->call_fd = vq->kick_fd = vq->err_fd = -1;
	/*
	 * Relaxed stores: vhk_net_get_stats() may read the counters from any
	 * thread while the control thread resets a released device's queue.
	 */
	store_relaxed(&vq->stats.packets, 0);
	store_relaxed(&vq->stats.bytes, 0);
	store_relaxed(&vq->stats.drops, 0);
	store_relaxed(&vq->stats.errors, 0);
	store_relaxed(&vq->stats.kicks, 0);
	store_relaxed(&vq->stats.calls, 0);
	vq->started = vq->enabled = vq->broken = false;
	vq->num_set = vq->addr_set = false;
	vq->base = 0;
	vq->base_set = false;
	vq->addr = (struct vq_addr){0};
	vq->features = 0;
	vq->broken_logged = false;
	vq->pdesc = NULL;
	vq->drv_event = vq->dev_event = NULL;
	vq->avail_wrap = vq->used_wrap = vq->signalled_used_wrap = true;
	vq->pk_state = NULL;
	/* Logging off; the observer itself (log.obs) is set once by vq_log_init(). */
	vq->log.log = NULL;
	vq->log.ext = NULL;
	vq->log.all = vq->log.ring = false;
	vq->log.ring_hva = NULL;
	vq->log.ring_len = vq->log.ring_gpa = 0;
	vq->log.hint = 0;
	vq->log.span_hva = 0;
	vq->log.span_size = vq->log.span_gpa = 0;
	vq->log.desc_hva = NULL;
	vq->log.desc_len = vq->log.desc_gpa = 0;
	vq->log.pend_mask = 0;
	vq->log.pend_byte = 0;
	vq->log.ors = 0;
	vq->ifl = NULL;
}

void vq_init(struct vq *vq, uint32_t index)
{
	atomic_init(&vq->busy, 0);
	atomic_init(&vq->dp_owner, 0);
	vq->dev_priv = NULL;
	vq_clear_state(vq);
	vq_log_init(vq);
	vq->index = index;
}

void vq_reset(struct vq *vq)
{
	uint32_t index = vq->index;

	vq_log_commit(vq); /* the log is still mapped: the device releases it after its vqs */
	fd_close(&vq->kick_fd);
	fd_close(&vq->call_fd);
	fd_close(&vq->err_fd);
	free(vq->shadow_used);
	free(vq->inflight);
	free(vq->pk_state);
	vq_ifl_free(vq);
	/* busy is held by the caller; dev_priv belongs to the device. */
	vq_clear_state(vq);
	vq->index = index;
}

_Atomic bool vq_asym_fence_ok;
__thread struct vq_thr *vq_thr_self __attribute__((tls_model("initial-exec")));
static pthread_once_t asym_once = PTHREAD_ONCE_INIT;
static pthread_key_t thr_key;
static bool thr_key_ok;
static pthread_mutex_t thr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vq_thr *thr_free; /* records of exited threads, under thr_lock */

/* Thread exit: its record goes back for reuse (never freed: owners may still name it). */
static void thr_release(void *arg)
{
	struct vq_thr *t = arg;

	atomic_store_explicit(&t->inside, NULL, memory_order_release);
	pthread_mutex_lock(&thr_lock);
	t->next_free = thr_free;
	thr_free = t;
	pthread_mutex_unlock(&thr_lock);
}

/* Register for membarrier(2) PRIVATE_EXPEDITED and the record key, once per process. */
static void asym_init(void)
{
	long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
	    syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
		atomic_store_explicit(&vq_asym_fence_ok, true, memory_order_relaxed);
	thr_key_ok = pthread_key_create(&thr_key, thr_release) == 0;
}

/*
 * This thread's record, made on first use (a recycled one if any). A
 * record reused by a new thread keeps the vqs its dead thread owned: still
 * one live thread per record. NULL if out of memory.
 */
static struct vq_thr *thr_get(void)
{
	struct vq_thr *t = vq_thr_self;

	if (likely(t) || !thr_key_ok)
		return t;
	pthread_mutex_lock(&thr_lock);
	t = thr_free;
	if (t)
		thr_free = t->next_free;
	pthread_mutex_unlock(&thr_lock);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return NULL;
		atomic_init(&t->inside, NULL);
	}
	if (pthread_setspecific(thr_key, t) != 0) {
		thr_release(t);
		return NULL;
	}
	vq_thr_self = t;
	return t;
}

/*
 * The revoker's side of the ownership handshake (vq.h): a full barrier on
 * every CPU running one of our threads, or our own full fence when owners
 * fence themselves (no membarrier).
 */
static void asym_fence(void)
{
	if (!atomic_load_explicit(&vq_asym_fence_ok, memory_order_relaxed)) {
		fence_full(); /* owners fence themselves */
		return;
	}
	if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
		return;
	/* A forked child does not inherit the registration: register again. */
	if (syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 &&
	    syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
		return;
	/*
	 * Not expected on a kernel that registered us once. From now on owners
	 * fence themselves; an owner that skipped its fence just before this
	 * has its store drained long before the pause below ends.
	 */
	log_err_rl("vq: membarrier failed, falling back to fences on the datapath");
	atomic_store_explicit(&vq_asym_fence_ok, false, memory_order_relaxed);
	fence_full();
	usleep(1000);
}

/*
 * With busy held: make sure no thread but @self can be inside the vq.
 * Clears another owner, fences, then waits (@wait) for it to leave its
 * burst, or returns false if it is inside one (!@wait).
 */
static bool vq_revoke(struct vq *vq, const struct vq_thr *self, bool wait)
{
	uintptr_t o = atomic_load_explicit(&vq->dp_owner, memory_order_relaxed);
	struct vq_thr *owner = (struct vq_thr *)o;

	if (!owner || owner == self)
		return true;
	atomic_store_explicit(&vq->dp_owner, 0, memory_order_relaxed);
	asym_fence();
	/* Acquire pairs with the release store in vq_leave() / the owner's back-off. */
	while (atomic_load_explicit(&owner->inside, memory_order_acquire) == vq) {
		if (!wait) {
			/*
			 * It is inside: give the vq back to it (owner 0 would let
			 * the next revoker think nobody is inside).
			 */
			atomic_store_explicit(&vq->dp_owner, o, memory_order_relaxed);
			return false;
		}
		cpu_relax();
	}
	return true;
}

bool vq_enter_slow(struct vq *vq)
{
	struct vq_thr *me;
	bool ok;

	(void)pthread_once(&asym_once, asym_init);
	me = thr_get();
	if (unlikely(!me))
		return false;
	/* Held: the control thread has the vq quiesced, or another thread is taking it. */
	if (atomic_exchange_explicit(&vq->busy, 1, memory_order_acquire))
		return false;
	ok = vq_revoke(vq, me, false);
	if (ok)
		atomic_store_explicit(&vq->dp_owner, (uintptr_t)me, memory_order_relaxed);
	/* Release: the owner change is done before another revoker can start. */
	atomic_store_explicit(&vq->busy, 0, memory_order_release);
	return ok && vq_enter_owned(vq, me);
}

void vq_quiesce(struct vq *vq)
{
	(void)pthread_once(&asym_once, asym_init);
	while (atomic_exchange_explicit(&vq->busy, 1, memory_order_acquire))
		cpu_relax();
	(void)vq_revoke(vq, vq_thr_self, true);
}

void vq_unquiesce(struct vq *vq)
{
	atomic_store_explicit(&vq->busy, 0, memory_order_release);
}

int vq_set_num(struct vq *vq, uint32_t num)
{
	struct vring_used_elem *shadow;
	uint64_t *inflight;
	uint32_t *pk_state;

	if (num == 0 || num > VQ_MAX_SIZE || (!cfg_packed(vq) && (num & (num - 1))))
		return -EINVAL;
	if (vq->started)
		return -EBUSY;
	shadow = calloc(num, sizeof(*shadow));
	inflight = calloc((num + 63) / 64, sizeof(*inflight));
	pk_state = calloc(num, sizeof(*pk_state));
	if (!shadow || !inflight || !pk_state) {
		free(shadow);
		free(inflight);
		free(pk_state);
		return -ENOMEM;
	}
	free(vq->shadow_used);
	free(vq->inflight);
	free(vq->pk_state);
	vq->shadow_used = shadow;
	vq->inflight = inflight;
	vq->pk_state = pk_state;
	vq->shadow_count = 0;
	vq->size = (uint16_t)num; /* 32768 fits */
	vq->num_set = true;
	return 0;
}

/* Translate the ring for the current layout. */
static int ring_translate(struct vq *vq)
{
	if (unlikely(vq->packed))
		return vq_packed_start(vq);
	return vq_split_start(vq);
}

int vq_set_addr(struct vq *vq, const struct vq_addr *a)
{
	struct vq_addr ac = *a;

	if (ac.flags & ~VQ_ADDR_F_LOG)
		return -EINVAL;
	vq->addr = ac;
	vq->addr_set = true;
	/* A started ring (e.g. logging toggled for migration) uses the new addresses now. */
	if (vq->started && ring_translate(vq) < 0) {
		vq_stop(vq);
		vq_mark_broken(vq, "new ring address not mapped");
		return -EFAULT;
	}
	vq_log_refresh(vq); /* VHOST_VRING_F_LOG and log_guest_addr */
	return 0;
}

int vq_set_base(struct vq *vq, uint32_t base)
{
	if (!cfg_packed(vq) && (base >> 16))
		return -EINVAL;
	if (vq->started)
		return -EBUSY;
	vq->base = base;
	vq->base_set = true;
	return 0;
}

uint32_t vq_get_base(const struct vq *vq)
{
	if (!vq->started)
		return vq->base;
	return vq->packed ? vq_packed_base(vq) : vq->last_avail_idx;
}

void vq_set_kick_fd(struct vq *vq, int fd)
{
	fd_close(&vq->kick_fd);
	vq->kick_fd = fd;
}

void vq_set_call_fd(struct vq *vq, int fd)
{
	fd_close(&vq->call_fd);
	vq->call_fd = fd;
}

void vq_set_err_fd(struct vq *vq, int fd)
{
	fd_close(&vq->err_fd);
	vq->err_fd = fd;
}

static void update_ready(struct vq *vq)
{
	vq->ready = vq->started && vq->enabled && !vq->broken;
}

/*
 * Packed base: avail position and wrap in bits 0..15, used in 16..31, both
 * positions < size. A frontend that sends only the low half (DPDK's
 * virtio-user does) stopped with nothing in flight: used = avail then.
 * Without any SET_VRING_BASE the ring starts fresh (positions 0, wrap 1).
 */
static int packed_apply_base(struct vq *vq)
{
	if (!vq->base_set)
		vq->base = 0x80008000u;
	uint16_t avail = vqr_packed_pw_pos(vq->base), used = vqr_packed_pw_pos(vq->base >> 16);
	bool avail_wrap = vqr_packed_pw_wrap(vq->base), used_wrap = vqr_packed_pw_wrap(vq->base >> 16);

	if (!(vq->base >> 16)) {
		used = avail;
		used_wrap = avail_wrap;
	}
	if (avail >= vq->size || used >= vq->size)
		return -EINVAL;
	vq->last_avail_idx = vq->shadow_avail_idx = avail;
	vq->avail_wrap = avail_wrap;
	vq->last_used_idx = used;
	vq->used_wrap = used_wrap;
	return 0;
}

/*
 * The split base is a free-running 16-bit avail index (GET_VRING_BASE
 * returns last_avail_idx, which exceeds the ring size after one lap), so
 * any 16-bit value is valid; vq_set_base() rejected the upper bits.
 */
int vq_start(struct vq *vq, const struct mem_table *mem, uint64_t features)
{
	int rc;

	if (!vq->num_set || !vq->addr_set || !mem)
		return -EINVAL;
	vq->features = features;
	vq->packed = cfg_packed(vq);
	if (!vq->packed && ((vq->base >> 16) || (vq->size & (vq->size - 1))))
		return -EINVAL;
	vq->event_idx = features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	vq->in_order = features & (1ull << VIRTIO_F_IN_ORDER);
	vq->mem = mem;
	vq->mem_hint = 0;
	if (vq->packed && packed_apply_base(vq))
		return -EINVAL;
	rc = ring_translate(vq);
	if (rc)
		return rc;
	if (!vq->packed) {
		vq->last_avail_idx = vq->shadow_avail_idx = (uint16_t)vq->base;
		/* Never trust a cached value across a driver reset: read it from the guest. */
		vq->last_used_idx = READ_ONCE(vq->used->idx);
	}
	vq->signalled_used_valid = false;
	vq->shadow_count = 0;
	/* In-order completions start at the first buffer we will pop. */
	vq->io_next = vq->last_avail_idx;
	vq->io_wrap = vq->avail_wrap;
	vq->io_batch_ok = true;
	for (uint32_t i = 0; i < (vq->size + 63u) / 64; i++)
		vq->inflight[i] = 0;
	if (vq->ifl_cfg) {
		/* Inflight tracking: the region may move the positions (a restart). */
		const char *why = "inflight region refused";
		rc = vq_ifl_start(vq, &why);
		if (rc) {
			vq_mark_broken(vq, why);
			return rc;
		}
		vq->io_next = vq->last_avail_idx;
		vq->io_wrap = vq->avail_wrap;
	}
	vq->broken = false;
	vq->broken_logged = false;
	vq->started = true;
	update_ready(vq);
	vq_log_refresh(vq);
	return 0;
}

void vq_stop(struct vq *vq)
{
	vq->ready = false;
	if (!vq->started)
		return;
	vq->base = vq->packed ? vq_packed_base(vq) : vq->last_avail_idx;
	vq->base_set = true;
	vq->started = false;
	vq->shadow_count = 0;
	vq_log_refresh(vq); /* nothing pending once the ring stops */
	vq_ifl_stop(vq);
}

void vq_set_enabled(struct vq *vq, bool enabled)
{
	vq->enabled = enabled;
	update_ready(vq);
}

int vq_remap(struct vq *vq, const struct mem_table *mem)
{
	vq->mem = mem;
	vq->mem_hint = 0;
	if (!vq->started) {
		vq_log_refresh(vq); /* drops what the log cached of the old table */
		return 0;
	}
	if (!mem || ring_translate(vq) < 0) {
		vq_stop(vq);
		vq_mark_broken(vq, "ring not mapped by the new memory table");
		return -EFAULT;
	}
	vq_log_refresh(vq); /* the ring's host addresses moved */
	return 0;
}

/* ---- datapath dispatch ---- */

uint16_t vq_avail_count(struct vq *vq)
{
	return vq_avail_count_max(vq, UINT16_MAX);
}

uint16_t vq_avail_count_max(struct vq *vq, uint16_t max)
{
	if (unlikely(vq->packed))
		return vq_packed_avail_count(vq, max);
	uint16_t n = vq_split_avail_count(vq); /* once: MIN() evaluates twice */
	return MIN(n, max);
}

int vq_pop(struct vq *vq, struct vq_chain *c)
{
	if (unlikely(vq->packed))
		return vq_packed_pop(vq, c, VQ_POP_RW);
	return vq_split_pop(vq, c, VQ_POP_RW);
}

int vq_pop_mode(struct vq *vq, struct vq_chain *c, enum vq_pop_mode mode)
{
	if (unlikely(vq->packed))
		return vq_packed_pop(vq, c, mode);
	return vq_split_pop(vq, c, mode);
}

void vq_rewind(struct vq *vq, const uint16_t *ids, uint16_t n)
{
	if (unlikely(vq->packed)) {
		vq_packed_rewind(vq, ids, n);
		return;
	}
	vq_split_rewind(vq, ids, n);
}

void vq_push(struct vq *vq, uint16_t id, uint32_t len)
{
	if (unlikely(vq->packed)) {
		vq_packed_push(vq, id, len);
		return;
	}
	vq_split_push(vq, id, len);
}

void vq_flush(struct vq *vq)
{
	if (!vq->shadow_count)
		return;
	if (unlikely(vq->packed))
		vq_packed_flush(vq);
	else
		vq_split_flush(vq);
	vq_notify(vq);
}

bool vq_notify(struct vq *vq)
{
	bool need = unlikely(vq->packed) ? vq_packed_need_notify(vq) : vq_split_need_notify(vq);

	if (!need || vq->call_fd < 0)
		return false;
	if (fd_eventfd_write(vq->call_fd) < 0)
		return false;
	store_relaxed(&vq->stats.calls, load_relaxed(&vq->stats.calls) + 1); /* read by any thread */
	return true;
}

bool vq_set_notification(struct vq *vq, bool enable)
{
	if (unlikely(vq->packed))
		return vq_packed_set_notification(vq, enable);
	return vq_split_set_notification(vq, enable);
}

void vq_set_write_observer(struct vq *vq, const struct vq_write_observer *wo)
{
	vq->log.ext = wo;
	vq_log_refresh(vq); /* the log forwards to it while it logs */
}

void vq_mark_broken(struct vq *vq, const char *why)
{
	vq->ready = false;
	vq->broken = true;
	store_relaxed(&vq->stats.errors, load_relaxed(&vq->stats.errors) + 1);
	if (vq->err_fd >= 0)
		(void)fd_eventfd_write(vq->err_fd);
	if (!vq->broken_logged) {
		vq->broken_logged = true;
		log_err_rl("vring %u broken: %s", vq->index, why);
	}
}
