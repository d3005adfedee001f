/*
 * Telemetry: Istio's TCP metrics, counted per worker and rendered as
 * Prometheus text (format 0.0.4) by the control thread.
 *
 * A series is one label set of istio_tcp_connections_opened_total,
 * _closed_total, istio_tcp_sent_bytes_total and _received_bytes_total.
 * Each worker owns a registry of series (struct metrics, embedded in
 * struct worker). A connection takes a pointer to its series once its
 * labels are known (metrics_conn_open) and counts itself opened; its byte
 * counts are added to the series as deltas on the worker's 1 s tick
 * (metrics_tick, for connections active since the last one) and at close
 * (metrics_conn_close), which also counts it closed with its final
 * response_flags. Nothing is counted per byte or per I/O.
 *
 * The renderer (control thread) reads while workers count: each registry
 * has a mutex that its worker takes only to open, close, flush and prune
 * (uncontended but for a scrape), and that metrics_render takes one worker
 * at a time, summing equal label sets across workers.
 *
 * Labels stay bounded: a series without open connections whose source or
 * destination workload has left the config is dropped --metrics-grace
 * after it left (or after its last connection closed, whichever is later),
 * by its worker on its tick; and a worker holds at most max_series series,
 * beyond which new label sets share one overflow series per reporter and
 * security policy (counted in zring_metrics_overflow_total).
 *
 * Label values follow ztunnel (src/proxy/metrics.rs): "unknown" where a
 * value is not known or empty; source_workload / destination_workload are
 * the workload's workloadName (its name when that is empty);
 * source_app/_version and destination_app/_version repeat the canonical
 * service and revision. docs/operations.md lists every family and label.
 */
#ifndef ZRING_METRICS_H
#define ZRING_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct strbuf;
struct watch;
struct worker;

#define METRICS_MAX_SERIES 10000	/* per worker, overflow series aside */

enum metrics_reporter { REPORTER_SOURCE, REPORTER_DESTINATION };
enum metrics_security { SECURITY_NONE, SECURITY_MUTUAL_TLS };

/* response_flags: why a connection failed ("-" when it did not). */
enum metrics_flag {
	RFLAG_NONE,		/* "-" */
	RFLAG_DENY,		/* "DENY": an authorization policy denied it */
	RFLAG_CONNECT,		/* "CONNECT": the upstream connection was never established */
	RFLAG_TLS_FAILURE,	/* "TLS_FAILURE": the tunnel's TLS handshake failed */
	RFLAG_IDENTITY_ERROR,	/* "IDENTITY_ERROR": no certificate for the source workload */
	RFLAG_COUNT
};

/* The string labels of a series, in the order they are rendered. */
enum metrics_label {
	ML_SOURCE_WORKLOAD,
	ML_SOURCE_CANONICAL_SERVICE,
	ML_SOURCE_CANONICAL_REVISION,
	ML_SOURCE_WORKLOAD_NAMESPACE,
	ML_SOURCE_PRINCIPAL,
	ML_SOURCE_CLUSTER,
	ML_DESTINATION_SERVICE,
	ML_DESTINATION_SERVICE_NAMESPACE,
	ML_DESTINATION_SERVICE_NAME,
	ML_DESTINATION_WORKLOAD,
	ML_DESTINATION_CANONICAL_SERVICE,
	ML_DESTINATION_CANONICAL_REVISION,
	ML_DESTINATION_WORKLOAD_NAMESPACE,
	ML_DESTINATION_PRINCIPAL,
	ML_DESTINATION_CLUSTER,
	ML_COUNT
};

/* A label set to look up; a NULL or "" value means "unknown". */
struct metrics_labels {
	uint8_t reporter;	/* enum metrics_reporter */
	uint8_t security;	/* enum metrics_security */
	const char *v[ML_COUNT];
};

struct metrics_series {
	struct metrics_series *hnext;		/* hash chain */
	struct metrics_series *prev, *next;	/* the registry's list */
	uint64_t hash;
	uint64_t wl_key[2];	/* source / destination (namespace, workload), 0: not tracked */
	uint8_t reporter, security;
	bool overflow;
	uint32_t active;	/* open connections counted here */
	uint64_t gone_ns;	/* when a workload of it left the config, 0 if none did */
	uint64_t last_close_ns;
	/* Counters; written by the owning worker, read by the renderer, both
	 * under the registry's lock. */
	uint64_t opened, received, sent;
	uint64_t closed[RFLAG_COUNT];
	size_t blob_len;
	const char *v[ML_COUNT];	/* into blob, never NULL ("unknown") */
	char blob[];
};

struct metrics {
	pthread_mutex_t lock;
	/* Owner-only (the worker): the hash index, the prune state. */
	struct metrics_series **buckets;
	unsigned nbuckets;
	uint64_t grace_ns;
	unsigned max_series;
	uint64_t last_flush_ns;
	uint64_t *present;	/* (namespace, workload) keys of the latest config */
	size_t present_mask;
	uint64_t present_version;	/* its snapshot version, 0: none built */
	unsigned ngone;		/* series with gone_ns set */
	/* Under the lock: the series and their bookkeeping. */
	struct metrics_series *head;
	unsigned nseries;
	uint64_t overflowed;	/* connections folded into an overflow series */
	uint64_t pruned;	/* series dropped after their workload left */
	/* Mirror of the worker's open connection count (relaxed atomic). */
	_Atomic unsigned conns;
};

/* An empty registry. grace_ms: how long a series whose workload left the
 * config is kept; max_series: the cap before overflow. 0 or -errno. */
int metrics_init(struct metrics *m, uint64_t grace_ms, unsigned max_series);
/* Free every series. No connection may point at one any more. */
void metrics_deinit(struct metrics *m);

/*
 * The series for label set l, created if new (owner thread only). Returns
 * NULL only when it cannot allocate. Beyond max_series a new label set
 * gets its reporter's overflow series instead. now_ns is the worker's clock.
 */
struct metrics_series *metrics_series_get(struct metrics *m, const struct metrics_labels *l,
					  uint64_t now_ns);

/* Count one connection opened on s / closed on s with flag (owner only). */
void metrics_series_opened(struct metrics *m, struct metrics_series *s);
void metrics_series_closed(struct metrics *m, struct metrics_series *s, uint64_t received,
			   uint64_t sent, enum metrics_flag flag, uint64_t now_ns);

/*
 * Connection hooks (worker thread).
 *
 * metrics_conn_open: c's labels are known (outbound and inbound plaintext:
 * routed; HBONE server: the CONNECT was accepted). Finds the source
 * workload (c->src_workload) and c's series, and counts it opened. Once
 * per conn; later calls do nothing.
 *
 * metrics_conn_close: c is being freed; adds its last bytes and counts it
 * closed with metrics_conn_flag(c). Does nothing for a conn never opened.
 */
void metrics_conn_open(struct conn *c);
void metrics_conn_close(struct conn *c);

/* The response flag a conn ends with: DENY when c->policy is set, else the
 * flag recorded in c->rflag (authorize.c records DENY there), CONNECT when
 * it never connected, else NONE. */
enum metrics_flag metrics_conn_flag(const struct conn *c);
const char *metrics_flag_name(enum metrics_flag f);

/* Is c's traffic carried by mutual TLS (an HBONE tunnel)? */
bool metrics_conn_mtls(const struct conn *c);

/* Worker tick: flush the bytes of recently active connections, then drop
 * series whose workload left the config more than the grace ago. */
void metrics_tick(struct worker *w);

/* The worker's open connection count changed (any thread may read it). */
static inline void metrics_set_conns(struct metrics *m, unsigned n)
{
	atomic_store_explicit(&m->conns, n, memory_order_relaxed);
}

struct metrics_env {
	struct worker *const *workers;
	unsigned nworkers;
	const struct watch *watch;	/* reload counters, config version; NULL: left out */
	bool draining;
	uint64_t start_wall_ms;		/* process start; 0: read from /proc */
};

/*
 * Append the whole metrics page to out: every family with # HELP and
 * # TYPE, Istio's TCP metrics summed across workers, the process figures
 * and zring's own. Takes each worker's registry lock in turn (never two at
 * once). Returns 0 or -ENOMEM (out->err).
 */
int metrics_render(const struct metrics_env *env, struct strbuf *out);

/* Append s as a Prometheus label value (without the quotes): backslash,
 * double quote and newline escaped, bytes that are not UTF-8 as U+FFFD. */
void metrics_escape_value(struct strbuf *out, const char *s);

#endif
