/*
 * The operator's endpoints, served by http.h's server on the control
 * thread, off the data path:
 *
 *   admin      (--admin, 127.0.0.1:15000, loopback only)
 *     GET  /                 index of these endpoints
 *     GET  /config_dump      current snapshot + certificates as JSON,
 *                            written while it is sent (see admin_dump_next);
 *                            at most ADMIN_DUMPS_MAX at once, more get 503
 *                            with Retry-After
 *     GET  /logging          current log level
 *     POST /logging?level=L  set it (error, warn, info, debug)
 *     POST /quitquitquit     graceful drain, as SIGTERM
 *   readiness  (--readiness, [::]:15021)
 *     GET  /healthz/ready    200 when ready, 503 with the reason otherwise
 *   metrics    (--metrics, [::]:15020)
 *     GET  /metrics          Prometheus text format (metrics.h)
 *     GET  /stats/prometheus the same, at Envoy's and ztunnel's path
 *
 * Ready means: every worker's listeners are up, a config snapshot is loaded
 * (no --config loads an empty one), with --certs the trust bundle and at
 * least one identity valid now are loaded, and no drain has begun.
 */
#ifndef ZRING_ADMIN_H
#define ZRING_ADMIN_H

#include <stdbool.h>

#include "zring/http.h"
#include "zring/metrics.h"
#include "zring/opts.h"
#include "zring/snapshot.h"

/* /config_dump responses being sent at once; one more is answered 503 with
 * Retry-After: ADMIN_DUMP_RETRY_S. Each holds a snapshot reference and one
 * piece of about ADMIN_DUMP_PIECE bytes. */
#define ADMIN_DUMPS_MAX 4u
#define ADMIN_DUMP_RETRY_S 1u
#define ADMIN_DUMP_PIECE (64u * 1024)

enum admin_server { ADMIN_SRV_ADMIN, ADMIN_SRV_READINESS, ADMIN_SRV_METRICS, ADMIN_NSERVERS };

struct admin {
	const struct opts *opts;
	struct snapshot_slot *slot;
	struct http_server srv[ADMIN_NSERVERS];
	bool open[ADMIN_NSERVERS];
	/* Readiness inputs, set by the control thread. */
	bool workers_up;
	bool draining;
	unsigned dumps;		/* /config_dump responses being sent */
	/* What /metrics renders: the workers (set with workers_up, valid
	 * until admin_stop), the watch, the drain flag. */
	struct metrics_env metrics;
	/* POST /quitquitquit: start the graceful drain (control's, the same
	 * as SIGTERM's). `why` names the trigger for the log. */
	void (*quit)(void *arg, const char *why);
	void *quit_arg;
};

/*
 * Open the listening sockets that opts enable (bind errors come back here,
 * at startup, logged with the address). A default IPv6 address falls back
 * to IPv4 when the host has no IPv6. Returns 0 or -errno; on failure
 * nothing is left open.
 */
int admin_open(struct admin *a, const struct opts *opts, struct snapshot_slot *slot);

/* Start serving on the control thread's ring. */
void admin_start(struct admin *a, struct io_uring *ring);

/* Every worker is listening (readiness); ws[0..n) and watch stay valid
 * until admin_stop (metrics). */
void admin_set_workers_up(struct admin *a, struct worker *const *ws, unsigned n,
			  const struct watch *watch);

/* A drain began: readiness answers 503 from now on; the endpoints stay up. */
void admin_set_draining(struct admin *a);

/* Stop serving (every worker has ended): see http_server_close. */
void admin_stop(struct admin *a);

/* No op in flight on any server: the control loop may end. */
bool admin_idle(const struct admin *a);

/* Close the listening sockets. After admin_idle, or if never started. */
void admin_close(struct admin *a);

/* Why zring is not ready (a static string), or NULL when it is. `s` is
 * the latest snapshot, NULL if none was published. */
const char *admin_not_ready(const struct admin *a, const struct snapshot *s);

/*
 * The /config_dump document for snapshot s (NULL: none loaded):
 * {"version", "loadedAt", "source", "warningsTotal", "warnings" (the
 * config's, at most 100), "certificates": {"trustBundle",
 * "identities": [{"identity", "notBefore", "notAfter"}]} or null,
 * "config": {workloads, services, policies}} ("config" is null when
 * nothing is loaded). "config" loads with config_parse. Nothing secret (no
 * keys). In src/admin_dump.c.
 *
 * It is written piece by piece: admin_dump_new takes the caller's
 * reference to s (freed on failure); each admin_dump_next appends at least
 * `want` bytes to out (whole items: the snapshot's members, then one
 * workload, service or policy at a time, each built and printed on its
 * own) or the rest of the document, and returns 1 while more follows, 0
 * after the end, -ENOMEM (out's own failure included). Memory and time per
 * call are those of `want` bytes, whatever the config's size; the whole
 * document takes time linear in it. admin_dump_free drops the reference.
 */
struct admin_dump;
int admin_dump_new(struct snapshot *s_take, struct admin_dump **out);
int admin_dump_next(struct admin_dump *d, struct strbuf *out, size_t want);
void admin_dump_free(struct admin_dump *d);

/* The whole document appended to out at once (tests, small configs).
 * Returns 0 or -ENOMEM. */
int admin_config_dump(const struct snapshot *s, struct strbuf *out);

/* Milliseconds since the epoch as RFC 3339 UTC ("2025-01-02T03:04:05Z",
 * with ".123" when ms % 1000 != 0) into buf (at least 32 bytes). */
const char *admin_rfc3339(uint64_t ms, char *buf, size_t len);

/* The routes of each server (NULL-terminated), for tests and the index. */
extern const struct http_route admin_routes[];
extern const struct http_route admin_readiness_routes[];
extern const struct http_route admin_metrics_routes[];

#endif
