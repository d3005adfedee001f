/*
 * Worker threads: one io_uring each, a flat CQE dispatcher, periodic tick
 * for idle timeouts and the drain deadline, and the drain itself.
 * See include/zring/worker.h.
 */
#include "zring/worker.h"
#include "zring/authorize.h"
#include "zring/conn.h"
#include "zring/fdbudget.h"
#include "zring/listener.h"
#include "zring/log.h"
#include "zring/memtrim.h"
#include "zring/nodeagent.h"
#include "zring/ring.h"
#include "zring/tls.h"
#include "zring/tunnel.h"

#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define RING_ENTRIES 4096
#define BUF_SIZE (64 * 1024)
#define BUF_GROUP 1
#define PIPES_KEPT 32
#define PIPES_PREFILL 8
#define TICK_MS 1000
#define DRAIN_TICK_MS 50
#define MEMTRIM_EVERY_NS 1000000000ull

/* The heap is the process's, not a worker's: worker 0 watches it for all
 * (memtrim.h). Only worker 0's thread touches these. */
static struct memtrim g_memtrim;
static uint64_t g_memtrim_last_ns;

static sem_t g_started;
static pthread_once_t g_started_once = PTHREAD_ONCE_INIT;

static void started_init(void)
{
	sem_init(&g_started, 0, 0);
}

/* A default IPv6 address on a host without IPv6 is not an error. */
static bool tolerable(const struct addr_list *l, const union addr *a, int err)
{
	return l->is_default && a->sa.sa_family == AF_INET6 &&
	       (err == -EAFNOSUPPORT || err == -EADDRNOTAVAIL);
}

static int open_listeners(struct worker *w, enum role role, const struct addr_list *l)
{
	for (unsigned i = 0; i < l->n; i++) {
		struct listener *lis;
		char buf[ADDR_STRLEN];
		int err = listener_open(w, role, &l->a[i], &lis);
		if (err < 0 && tolerable(l, &l->a[i], err)) {
			if (w->id == 0)
				log_msg_err(LOG_WARN, "listener skipped",
					    addr_format(&l->a[i], buf, sizeof(buf)), err);
			continue;
		}
		if (err < 0) {
			struct log_line line;
			if (log_begin(&line, LOG_ERROR, "cannot listen")) {
				log_str(&line, "role", role_name(role));
				log_str(&line, "addr", addr_format(&l->a[i], buf, sizeof(buf)));
				log_err(&line, "error", err);
				log_end(&line);
			}
			return err;
		}
		w->listeners[w->nlisteners++] = lis;
		if (w->id == 0) {
			struct log_line line;
			if (log_begin(&line, LOG_INFO, "listening")) {
				log_str(&line, "role", role_name(role));
				log_str(&line, "addr", addr_format(&l->a[i], buf, sizeof(buf)));
				log_end(&line);
			}
		}
	}
	return 0;
}

static void free_listeners(struct worker *w)
{
	for (unsigned i = 0; i < w->nlisteners; i++)
		listener_free(w->listeners[i]);
	free(w->listeners);
	w->listeners = NULL;
	w->nlisteners = 0;
}

struct worker *worker_new(unsigned id, const struct opts *opts, struct snapshot_slot *slot,
			  int done_fd, int *err)
{
	pthread_once(&g_started_once, started_init);
	struct worker *w = calloc(1, sizeof(*w));
	if (!w) {
		*err = -ENOMEM;
		return NULL;
	}
	if ((*err = metrics_init(&w->metrics, opts->metrics_grace_ms, METRICS_MAX_SERIES)) < 0) {
		free(w);
		return NULL;
	}
	w->id = id;
	w->opts = opts;
	w->slot = slot;
	w->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)id << 32) ^ now_ns();
	w->done_fd = done_fd;
	w->wake_fd = -1;
	nodeagent_inbox_init(&w->pod_inbox);
	w->listeners_cap = opts->outbound.n + opts->inbound.n + opts->hbone.n;
	w->listeners = calloc(w->listeners_cap, sizeof(*w->listeners));
	w->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (!w->listeners || w->wake_fd < 0) {
		*err = w->listeners ? -errno : -ENOMEM;
		goto fail;
	}
	/* A node agent listens in its pods' namespaces only (nodeagent.c). */
	*err = 0;
	if (!opts->node_agent) {
		*err = open_listeners(w, ROLE_OUTBOUND, &opts->outbound);
		if (*err == 0)
			*err = open_listeners(w, ROLE_INBOUND, &opts->inbound);
		if (*err == 0 && opts->certs)
			*err = open_listeners(w, ROLE_HBONE, &opts->hbone);
		if (*err == 0 && w->nlisteners == 0)
			*err = -EADDRNOTAVAIL;
	}
	if (*err < 0)
		goto fail;
	op_init(&w->op_wake, OP_WAKE, 0);
	op_init(&w->op_tick, OP_TICK, 0);
	w->connect_ts.tv_sec = (long long)(opts->connect_timeout_ms / 1000);
	w->connect_ts.tv_nsec = (long long)(opts->connect_timeout_ms % 1000) * 1000000;
	return w;
fail:
	free_listeners(w);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	metrics_deinit(&w->metrics);
	free(w);
	return NULL;
}

static void arm_wake(struct worker *w)
{
	struct io_uring_sqe *sqe = ring_sqe_op(&w->ring, &w->op_wake);
	io_uring_prep_read(sqe, w->wake_fd, &w->wake_val, sizeof(w->wake_val), 0);
	w->wake_armed = true;
}

static void arm_tick(struct worker *w)
{
	/* Idle timeouts are enforced to within a quarter of their length. */
	uint64_t ms = w->draining ? DRAIN_TICK_MS : TICK_MS;
	uint64_t idle = w->opts->idle_timeout_ms;
	if (idle && idle / 4 < ms)
		ms = idle / 4 > 10 ? idle / 4 : 10;
	w->tick_ts.tv_sec = (long long)(ms / 1000);
	w->tick_ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	struct io_uring_sqe *sqe = ring_sqe_op(&w->ring, &w->op_tick);
	io_uring_prep_timeout(sqe, &w->tick_ts, 0, 0);
	w->tick_armed = true;
}

static void start_drain(struct worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	w->drain_deadline_ns = w->now_ns + w->opts->drain_timeout_ms * 1000000ull;
	/* Backwards: a closed listener is swapped out of the array. */
	for (unsigned i = w->nlisteners; i-- > 0;)
		listener_close(w->listeners[i]);
	tunnel_drain_all(w);
}


/* Close every open connection, e.g. at the drain deadline. */
static void close_all(struct worker *w, int err, const char *why)
{
	struct conn *c = w->lru_head;
	while (c) {
		struct conn *next = c->lru_next;
		conn_close(c, err, why, true);
		conn_put(c);
		c = next;
	}
}

static void expire_idle(struct worker *w)
{
	uint64_t idle_ns = w->opts->idle_timeout_ms * 1000000ull;
	if (!idle_ns)
		return;
	struct conn *c = w->lru_head;
	while (c && w->now_ns - c->active_ns >= idle_ns) {
		struct conn *next = c->lru_next;
		if (!c->closing) {
			conn_close(c, -ETIMEDOUT, "idle timeout", true);
			conn_put(c);
		}
		c = next;
	}
}

/* About once a second: a buffer ring that was used, then saw no buffer
 * come back for a whole second and has none out, is trimmed once this
 * batch of completions is handled (bufring_trim says why not sooner).
 * Only under DEFER_TASKRUN: in the other ring modes the kernel may fill
 * a buffer whenever this thread returns to user space. */
static void bufs_check(struct worker *w)
{
	if (!w->bufs.br || !(w->ring.flags & IORING_SETUP_DEFER_TASKRUN) ||
	    w->now_ns - w->bufs_check_ns < MEMTRIM_EVERY_NS)
		return;
	w->bufs_check_ns = w->now_ns;
	bool quiet = w->bufs.puts == w->bufs_puts_seen;
	w->bufs_puts_seen = w->bufs.puts;
	w->bufs_trim_due = quiet && w->bufs.puts != w->bufs.puts_at_trim && !w->bufs.out;
}

static void on_tick(struct worker *w, const struct io_uring_cqe *cqe)
{
	w->tick_armed = false;
	if (w->stopped)
		return;
	expire_idle(w);
	conn_retry_parked(w);
	nodeagent_worker_tick(w);
	tunnel_tick(w);
	metrics_tick(w);
	if (w->id == 0 && w->now_ns - g_memtrim_last_ns >= MEMTRIM_EVERY_NS) {
		g_memtrim_last_ns = w->now_ns;
		memtrim_check(&g_memtrim);
	}
	bufs_check(w);
	if (w->draining && w->now_ns >= w->drain_deadline_ns && w->nconns)
		close_all(w, 0, "drain deadline");
	arm_tick(w);
}

static void on_wake(struct worker *w, const struct io_uring_cqe *cqe)
{
	w->wake_armed = false;
	if (w->stopped)
		return;
	unsigned cmd = atomic_exchange(&w->cmd, 0);
	/* Pods first: a drain then closes the listeners just adopted too. */
	if (cmd & WORKER_CMD_PODS)
		nodeagent_worker_wake(w);
	if (cmd & WORKER_CMD_DRAIN)
		start_drain(w);
	arm_wake(w);
}

static void dispatch(struct worker *w, const struct io_uring_cqe *cqe)
{
	struct op *op = io_uring_cqe_get_data(cqe);
	if (!op)
		return;
	switch (op->type) {
	case OP_ACCEPT:
		listener_on_accept(container_of(op, struct listener, op_accept), cqe);
		break;
	case OP_ACCEPT_RETRY:
		listener_on_retry(container_of(op, struct listener, op_retry), cqe);
		break;
	case OP_WAKE:
		on_wake(w, cqe);
		break;
	case OP_TICK:
		on_tick(w, cqe);
		break;
	case OP_CONNECT:
		conn_on_connect(container_of(op, struct conn, op_connect), cqe);
		break;
	case OP_CONNECT_TIMEOUT:
		conn_on_connect_timeout(container_of(op, struct conn, op_connect_timeout), cqe);
		break;
	case OP_PUMP_IN:
		pump_on_in(conn_of_dir(container_of(op, struct pump_dir, op_in), op->idx), op, cqe);
		break;
	case OP_PUMP_OUT:
		pump_on_out(conn_of_dir(container_of(op, struct pump_dir, op_out), op->idx), op, cqe);
		break;
	case OP_TUNNEL_CONNECT:
		tunnel_on_connect(container_of(op, struct tunnel, op_connect), cqe);
		break;
	case OP_TUNNEL_CONNECT_TIMEOUT:
		tunnel_on_connect_timeout(container_of(op, struct tunnel, op_connect_timeout), cqe);
		break;
	case OP_TUNNEL_RECV:
		tunnel_on_recv(container_of(op, struct tunnel, op_recv), cqe);
		break;
	case OP_TUNNEL_SEND:
		tunnel_on_send(container_of(op, struct tunnel, op_send), cqe);
		break;
	default:
		break;
	}
}

/* Drained: nothing open, every listener closed. Cancel our own timers and
 * let the loop run until their completions are in. */
static void maybe_stop(struct worker *w)
{
	if (!w->draining || w->stopped || w->nconns || w->nlisteners || w->ntunnels)
		return;
	w->stopped = true;
	if (w->tick_armed)
		ring_cancel_op(&w->ring, &w->op_tick);
	if (w->wake_armed)
		ring_cancel_op(&w->ring, &w->op_wake);
}

/* Loop boundary: switch new connections to the latest snapshot. Open
 * connections keep the one they started with. */
static void refresh_snapshot(struct worker *w)
{
	if (!slot_newer(w->slot, w->snap_version))
		return;
	struct snapshot *s = slot_acquire(w->slot);
	if (!s)
		return;
	snapshot_unref(w->snap);
	w->snap = s;
	w->snap_version = s->version;
	authorize_recheck(w, s);
}

uint32_t worker_random(struct worker *w)
{
	uint64_t x = w->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	w->rng = x;
	return (uint32_t)(x >> 32);
}

void worker_defer_put(struct worker *w, struct conn *c)
{
	c->inflight++;
	if (c->ndeferred++)
		return;		/* already listed */
	c->defer_next = NULL;
	if (w->deferred_tail)
		w->deferred_tail->defer_next = c;
	else
		w->deferred_head = c;
	w->deferred_tail = c;
}

static void run_deferred(struct worker *w)
{
	/* Puts may defer more; handle those in the same pass. */
	struct conn *c;
	while ((c = w->deferred_head)) {
		w->deferred_head = c->defer_next;
		if (!w->deferred_head)
			w->deferred_tail = NULL;
		c->inflight = (uint8_t)(c->inflight - c->ndeferred);
		c->ndeferred = 0;
		conn_put(c);
	}
}

/* Single writer: a relaxed load and store, no locked instruction. */
static void count(_Atomic uint64_t *n)
{
	atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

void worker_count_tls_failure(struct worker *w)
{
	count(&w->tls_failures);
}


/* A yield that kept the CPU away this long means a thread that does not
 * sleep shares it (a runnable upstream answers well within this). */
#define BUSY_POLL_CONTENDED_NS (250 * 1000ull)
#define BUSY_POLL_MAX_SKIP 1024u

/* After a contended poll skip the next 1, 2, 4 ... 1024 polls (doubling
 * with each contended poll); each clean poll halves the next skip, so
 * contention that comes and goes keeps polling rare. */
static void busy_poll_backoff(struct worker *w, bool contended)
{
	if (!contended) {
		w->poll_backoff /= 2;
		return;
	}
	count(&w->busy_poll_backoffs);
	w->poll_backoff = w->poll_backoff ? w->poll_backoff * 2 : 1;
	if (w->poll_backoff > BUSY_POLL_MAX_SKIP)
		w->poll_backoff = BUSY_POLL_MAX_SKIP;
	w->poll_skip = w->poll_backoff;
}

/* See worker_reply_due. Submits what is queued, then polls until a
 * completion is ready or the budget is spent. Each poll is one
 * io_uring_get_events(): with DEFER_TASKRUN only io_uring_enter runs the
 * ring's task work; in the fallback modes it runs on any return to user
 * space, and the call is merely cheap. A failed submit skips the poll and
 * is io_uring_submit_and_wait's to report.
 *
 * The yield has a price: the scheduler (EEVDF) moves a yielding thread's
 * deadline back, and a thread that is runnable, not woken, cannot preempt.
 * Next to a CPU-bound thread one yield can cost a whole time slice (1.5 ms
 * here), where a sleeping worker would have been woken at once. So a yield
 * that took over BUSY_POLL_CONTENDED_NS backs polling off. */
static void busy_poll(struct worker *w)
{
	w->reply_due = false;
	uint64_t budget_ns = (uint64_t)w->opts->busy_poll_us * 1000;
	if (!budget_ns)
		return;
	if (w->poll_skip) {
		w->poll_skip--;
		return;
	}
	if (io_uring_submit(&w->ring) < 0)
		return;
	count(&w->busy_polls);
	bool contended = false;
	uint64_t t = now_ns(), until = t + budget_ns;
	while (!io_uring_cq_ready(&w->ring) && t < until) {
		sched_yield();
		uint64_t after = now_ns();
		contended |= after - t > BUSY_POLL_CONTENDED_NS;
		t = after;
		io_uring_get_events(&w->ring);
	}
	if (io_uring_cq_ready(&w->ring))
		count(&w->busy_poll_replies);
	busy_poll_backoff(w, contended);
}

static void run_loop(struct worker *w)
{
	while (!w->stopped || w->tick_armed || w->wake_armed) {
		if (w->reply_due)
			busy_poll(w);
		int ret = io_uring_submit_and_wait(&w->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			log_msg_err(LOG_ERROR, "io_uring wait failed", "worker", ret);
			abort();
		}
		w->now_ns = now_ns();
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			dispatch(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
		run_deferred(w);
		if (w->bufs_trim_due && !io_uring_cq_ready(&w->ring)) {
			w->bufs_trim_due = false;
			bufring_trim(&w->bufs);
		}
		refresh_snapshot(w);
		if (w->fds_freed) {
			w->fds_freed = false;
			worker_fds_freed(w);
		}
		maybe_stop(w);
	}
}

static int setup_ring(struct worker *w)
{
	const char *mode;
	int err = ring_init(&w->ring, RING_ENTRIES, &mode);
	if (err < 0) {
		log_msg_err(LOG_ERROR, "io_uring setup failed", "worker", err);
		return err;
	}
	w->ring_ready = true;
	if (w->id == 0) {
		struct log_line l;
		if (log_begin(&l, LOG_DEBUG, "io_uring ready")) {
			log_str(&l, "mode", mode);
			log_end(&l);
		}
	}
	/* The copy pump and HBONE streams read into provided buffers. */
	if (w->opts->pump == PUMP_COPY || w->opts->certs) {
		err = bufring_init(&w->bufs, &w->ring, BUF_GROUP, w->opts->buffers, BUF_SIZE);
		if (err < 0) {
			log_msg_err(LOG_ERROR, "buffer ring setup failed", "worker", err);
			return err;
		}
	}
	pipepool_init(&w->pipes, w->opts->pipe_pool, PIPES_KEPT);
	/* A few pipes up front (fewer under a tiny descriptor limit). */
	unsigned prefill = (unsigned)(fdb_limit() / 32);
	if (prefill > PIPES_PREFILL)
		prefill = PIPES_PREFILL;
	if (prefill < 1)
		prefill = 1;
	if (w->opts->pump == PUMP_SPLICE &&
	    (err = pipepool_prefill(&w->pipes, prefill)) < 0) {
		log_msg_err(LOG_ERROR, "cannot create pipes", "worker", err);
		return err;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	w->now_ns = now_ns();
	refresh_snapshot(w);
	w->start_err = setup_ring(w);
	if (w->start_err == 0) {
		arm_wake(w);
		arm_tick(w);
		for (unsigned i = 0; i < w->nlisteners; i++)
			listener_arm(w->listeners[i]);
	}
	sem_post(&g_started);
	if (w->start_err == 0) {
		/* A drain requested before we got here is waiting in cmd. */
		if (atomic_load(&w->cmd))
			eventfd_write(w->wake_fd, 1);
		run_loop(w);
	}
	pipepool_deinit(&w->pipes);
	bufring_deinit(&w->bufs, &w->ring);
	if (w->ring_ready)
		io_uring_queue_exit(&w->ring);
	w->ring_ready = false;
	snapshot_unref(w->snap);
	w->snap = NULL;
	tls_thread_deinit();
	eventfd_write(w->done_fd, 1);
	return NULL;
}

int worker_start(struct worker *w)
{
	int err = pthread_create(&w->thread, NULL, worker_main, w);
	if (err)
		return -err;
	w->thread_started = true;
	while (sem_wait(&g_started) < 0 && errno == EINTR)
		;
	return w->start_err;
}

void worker_post(struct worker *w, unsigned cmd)
{
	atomic_fetch_or(&w->cmd, cmd);
	eventfd_write(w->wake_fd, 1);
}

void worker_drain(struct worker *w)
{
	worker_post(w, WORKER_CMD_DRAIN);
}

void worker_notify(struct worker *w)
{
	eventfd_write(w->wake_fd, 1);
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	if (w->thread_started)
		pthread_join(w->thread, NULL);
	nodeagent_worker_free(w);
	free_listeners(w);
	close(w->wake_fd);
	metrics_deinit(&w->metrics);
	free(w);
}

void worker_listener_closed(struct worker *w, struct listener *l)
{
	for (unsigned i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i] == l) {
			w->listeners[i] = w->listeners[--w->nlisteners];
			break;
		}
	}
	listener_free(l);
}

int worker_add_listener(struct worker *w, struct listener *l)
{
	if (w->nlisteners == w->listeners_cap) {
		unsigned cap = w->listeners_cap ? w->listeners_cap * 2 : 8;
		struct listener **p = realloc(w->listeners, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		w->listeners = p;
		w->listeners_cap = cap;
	}
	w->listeners[w->nlisteners++] = l;
	return 0;
}

void worker_pause_accept(struct worker *w, int err)
{
	for (unsigned i = 0; i < w->nlisteners; i++)
		listener_pause(w->listeners[i], err);
}

void worker_fds_freed(struct worker *w)
{
	conn_retry_parked(w);
	/* Waiters first: they hold accepted connections. */
	struct pump_dir *d = w->wait_head;
	w->wait_head = w->wait_tail = NULL;
	while (d) {
		struct pump_dir *next = d->wait_next;
		d->flags &= (uint8_t)~DIR_WAITING;
		d->wait_next = NULL;
		pump_resume(d);		/* may queue itself again */
		d = next;
	}
	if (w->accept_paused) {
		w->accept_paused = false;
		for (unsigned i = 0; i < w->nlisteners; i++)
			listener_resume(w->listeners[i]);
	}
}

void worker_wait_enqueue(struct worker *w, struct pump_dir *d)
{
	if (d->flags & DIR_WAITING)
		return;
	d->flags |= DIR_WAITING;
	d->wait_next = NULL;
	if (w->wait_tail)
		w->wait_tail->wait_next = d;
	else
		w->wait_head = d;
	w->wait_tail = d;
}

void worker_wait_remove(struct worker *w, struct pump_dir *d)
{
	struct pump_dir **pp = &w->wait_head, *prev = NULL;
	while (*pp && *pp != d) {
		prev = *pp;
		pp = &(*pp)->wait_next;
	}
	if (!*pp)
		return;
	*pp = d->wait_next;
	if (w->wait_tail == d)
		w->wait_tail = prev;
	d->flags &= (uint8_t)~DIR_WAITING;
	d->wait_next = NULL;
}

void worker_wait_wake(struct worker *w)
{
	struct pump_dir *d = w->wait_head;
	if (!d)
		return;
	w->wait_head = d->wait_next;
	if (!w->wait_head)
		w->wait_tail = NULL;
	d->flags &= (uint8_t)~DIR_WAITING;
	d->wait_next = NULL;
	pump_resume(d);
}
