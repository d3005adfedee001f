/*
 * Node-agent mode: one zring serves every pod on its node, each in the
 * pod's own network namespace (as Istio ztunnel's in-pod mode does).
 *
 * The served pods are the config's workloads with a `zringNetns` (and, with
 * --node, on that node). After each published snapshot the control thread
 * diffs them against the pods it serves, by uid and namespace path:
 *
 *   appeared  open the namespace, enter it once and open the pod's
 *             listeners (--outbound, --inbound, and --hbone with --certs;
 *             one SO_REUSEPORT socket per worker and address), return to
 *             zring's own namespace, and post each worker its listeners;
 *   left      post each worker "pod left": it closes that pod's listeners
 *             at once, lets the pod's connections and tunnels finish until
 *             --drain-timeout, then closes what is left. Other pods are
 *             untouched;
 *   moved     (same uid, another namespace path) leaves, then appears.
 *
 * A pod whose namespace cannot be opened or entered, or whose listeners
 * cannot be bound, is logged and counted and is not served; the next
 * config change tries it again.
 *
 * Workers own their listeners and rings (SINGLE_ISSUER), so the control
 * thread hands over through a small mutex-protected inbox per worker and
 * a WORKER_CMD_PODS wake; the worker adopts the listeners and arms their
 * accepts on its own thread.
 */
#ifndef ZRING_NODEAGENT_H
#define ZRING_NODEAGENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "zring/opts.h"
#include "zring/snapshot.h"

struct worker;
struct pod;
struct nodeagent_msg;
struct nodeagent_drain;

/* Control side: the pods this zring serves. */
struct nodeagent {
	const struct opts *opts;
	struct snapshot_slot *slot;
	struct worker **workers;
	unsigned nworkers;
	struct pod **pods;		/* served, sorted by uid; one reference each */
	size_t npods, cap;
	_Atomic uint64_t netns_failures;	/* namespace not opened or entered */
	_Atomic uint64_t listen_failures;	/* listeners not opened in a namespace */
	uint64_t added, removed;
};

/* Worker side: what the control thread posted, and pods leaving. */
struct nodeagent_inbox {
	pthread_mutex_t lock;
	struct nodeagent_msg *head, *tail;	/* under lock */
	struct nodeagent_drain *draining;	/* worker thread only */
};

/*
 * Set up node-agent mode: remember zring's own network namespace and check
 * that it may switch namespaces (needs CAP_SYS_ADMIN). Call on the main
 * thread before any other thread starts. Returns 0 and *out, or -errno.
 */
int nodeagent_new(const struct opts *o, struct snapshot_slot *slot, struct nodeagent **out);

/* The workers pods are served by (before nodeagent_sync). */
void nodeagent_attach(struct nodeagent *na, struct worker **ws, unsigned n);

/*
 * Control thread: serve the pods of the latest snapshot (see above), and
 * wake the workers that have something to adopt or close. Call after each
 * publish and once at start, after the workers started.
 */
void nodeagent_sync(struct nodeagent *na);

/* Drop the served pods (after the workers ended) and zring's namespace. */
void nodeagent_free(struct nodeagent *na);

/* Part of worker_new: an empty inbox. */
void nodeagent_inbox_init(struct nodeagent_inbox *in);

/* Worker thread, on WORKER_CMD_PODS: adopt posted listeners, close those
 * of pods that left and start draining them. */
void nodeagent_worker_wake(struct worker *w);

/* Worker tick: close what is left of pods whose drain deadline passed. */
void nodeagent_worker_tick(struct worker *w);

/* Free what the worker's inbox and drain list hold (its thread has
 * ended; part of worker_free). */
void nodeagent_worker_free(struct worker *w);

#endif
