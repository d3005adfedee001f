/*
 * A worker: one thread, one io_uring, its own SO_REUSEPORT listeners and
 * the connections they accepted. Nothing on the data path is shared between
 * workers; the control thread talks to a worker only through an atomic
 * command word and an eventfd, and publishes config snapshots through the
 * latest slot, which the worker reads at a loop boundary.
 */
#ifndef ZRING_WORKER_H
#define ZRING_WORKER_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "zring/bufring.h"
#include "zring/metrics.h"
#include "zring/nodeagent.h"
#include "zring/op.h"
#include "zring/opts.h"
#include "zring/pipepool.h"
#include "zring/snapshot.h"

struct conn;
struct listener;
struct tunnel;
struct pump_dir;

/* Commands from the control thread (bits of worker.cmd). */
enum {
	WORKER_CMD_DRAIN = 1u << 0,	/* close listeners, let connections finish */
	WORKER_CMD_PODS = 1u << 1,	/* node agent: pods came or left (see nodeagent.h) */
};

struct worker {
	unsigned id;
	const struct opts *opts;
	struct snapshot_slot *slot;
	struct snapshot *snap;		/* what new connections use */
	uint64_t snap_version;
	uint64_t rng;			/* xorshift state, endpoint picks */
	pthread_t thread;
	bool thread_started;		/* thread exists: worker_free joins it */
	struct io_uring ring;
	bool ring_ready;

	struct listener **listeners;
	unsigned nlisteners, listeners_cap;
	struct nodeagent_inbox pod_inbox;	/* node-agent mode: pods posted by control */
	bool accept_paused;		/* out of descriptors */
	bool fds_freed;			/* a conn closed since the last loop */
	bool reply_due;			/* a small message went upstream: busy-poll */
	unsigned poll_skip, poll_backoff;	/* busy polls to skip, and the next skip */

	struct bufring bufs;		/* copy pump */
	struct pipepool pipes;		/* splice pump */
	/* Directions waiting for a buffer or a pipe, FIFO. */
	struct pump_dir *wait_head, *wait_tail;

	/* Open connections, least recently active first (idle timeouts). */
	struct conn *lru_head, *lru_tail;
	unsigned nconns;
	struct conn *parked_head, *parked_tail;	/* see conn_retry_parked */
	/* Conns to conn_put at the loop boundary (conn.defer_next): a list
	 * through the conns, so deferring never allocates and cannot fail. */
	struct conn *deferred_head, *deferred_tail;

	struct tunnel *tunnels;		/* HBONE tunnels, both sides */
	unsigned ntunnels;
	uint64_t next_conn_id;

	/* Telemetry. The counters are written by this worker only and read by
	 * the metrics renderer: relaxed atomics. */
	struct metrics metrics;
	_Atomic uint64_t tls_failures;
	_Atomic uint64_t policy_denials;	/* connections refused or closed by policy */
	_Atomic uint64_t busy_polls;		/* see worker_reply_due */
	_Atomic uint64_t busy_poll_replies;	/* ... that saw a completion in time */
	_Atomic uint64_t busy_poll_backoffs;	/* ... that lost the CPU: polling backs off */

	_Atomic unsigned cmd;
	int wake_fd;
	uint64_t wake_val;
	struct op op_wake;
	struct __kernel_timespec connect_ts;	/* linked connect timeout */
	struct op op_tick;
	struct __kernel_timespec tick_ts;
	bool tick_armed;
	bool wake_armed;

	bool draining;
	uint64_t drain_deadline_ns;
	bool stopped;
	bool bufs_trim_due;		/* trim the buffer ring after this batch */
	uint64_t bufs_check_ns;		/* last look at the buffer ring's use */
	uint64_t bufs_puts_seen;	/* bufs.puts then */
	uint64_t now_ns;		/* cached at each loop iteration */

	int done_fd;			/* control's eventfd: "a worker ended" */
	int start_err;			/* set by the thread before it reports in */
};

/*
 * Allocate a worker and open its listeners (bind errors come back here, on
 * the caller's thread); in node-agent mode it starts with none, pods' come
 * later (nodeagent.h). Takes nothing; on failure returns NULL with *err.
 */
struct worker *worker_new(unsigned id, const struct opts *opts, struct snapshot_slot *slot,
			  int done_fd, int *err);

/* Start the thread; it sets up its ring, arms accepts and runs the loop.
 * Returns once it is running (0) or has failed to set up (-errno; its
 * thread has ended). If no thread could be made, thread_started stays
 * false and worker_free does not join one. */
int worker_start(struct worker *w);

/* Ask a running worker to drain (idempotent, any thread). */
void worker_drain(struct worker *w);

/* Set command bits and wake the worker (any thread). */
void worker_post(struct worker *w, unsigned cmd);

/* Wake a worker so it looks at the latest snapshot now (any thread). */
void worker_notify(struct worker *w);

/* A uniformly random 32-bit number (worker-local). */
uint32_t worker_random(struct worker *w);

/* Join the thread (if started) and free everything the worker owns. */
void worker_free(struct worker *w);

/* --- for the modules the worker drives --- */

/* A listener gave up its last in-flight op. */
void worker_listener_closed(struct worker *w, struct listener *l);

/* Own listener l from now on (worker thread; the caller arms it).
 * 0 or -ENOMEM. */
int worker_add_listener(struct worker *w, struct listener *l);

/* Hold c (as an in-flight op would) and conn_put it at the loop boundary:
 * for code inside library callbacks that must not free c under them. */
void worker_defer_put(struct worker *w, struct conn *c);

/* Count a failed TLS handshake (worker thread only). */
void worker_count_tls_failure(struct worker *w);

/* Out of descriptors: pause every listener of this worker for a moment. */
void worker_pause_accept(struct worker *w, int err);

/* Descriptors were freed: retry parked connects, resume paused accepts,
 * hand out waited buffers. Called at a loop boundary. */
void worker_fds_freed(struct worker *w);

/*
 * Busy polling. A pump calls this after it sent a small message upstream
 * (a request, most likely): the reply tends to come back within tens of
 * microseconds. Before it sleeps, the worker then polls its ring for up to
 * --busy-poll-us, calling sched_yield() between polls so that any other
 * thread runnable on this CPU (the upstream itself, often) goes first.
 * Sleeping instead costs a wake-up when the reply comes, and on a VM a
 * halted vCPU takes 10-100 us to wake (docs/benchmarks.md). Under load
 * the ring is rarely empty and the poll ends at once; idle, nothing is
 * sent and nothing polls. Next to a thread that never sleeps a yield can
 * cost a whole time slice: then polling backs off (src/worker.c).
 */
static inline void worker_reply_due(struct worker *w)
{
	w->reply_due = true;
}

/* Queue a direction for the next free buffer / pipe. */
void worker_wait_enqueue(struct worker *w, struct pump_dir *d);
void worker_wait_remove(struct worker *w, struct pump_dir *d);
/* A buffer or pipe was returned: resume the first waiter, if any. */
void worker_wait_wake(struct worker *w);

#endif
