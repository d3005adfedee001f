/*
 * A proxied connection: the accepted client socket, the upstream socket,
 * and the two pump directions between them.
 *
 * Lifetime: conn_accept creates it, takes a reference to the worker's
 * current config snapshot and routes the original destination through it;
 * it connects upstream (io_uring connect with a linked timeout), then
 * pumps. The snapshot reference is dropped when the conn is freed, so a
 * connection keeps the config it started with however often it reloads. conn_close starts the end: it cancels
 * every in-flight op; the conn is freed (sockets closed, access line
 * logged) only once its in-flight count is back to zero, so the kernel
 * never writes into freed memory and a descriptor is never reused while an
 * op still refers to it.
 */
#ifndef ZRING_CONN_H
#define ZRING_CONN_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "zring/addr.h"
#include "zring/listener.h"
#include "zring/op.h"
#include "zring/pump.h"
#include "zring/route.h"
#include "zring/snapshot.h"
#include "zring/util.h"

struct worker;
struct hbone_req;
struct pod;
struct metrics_series;

enum { SIDE_CLIENT = 0, SIDE_UPSTREAM = 1 };

struct conn {
	struct worker *w;
	struct conn *lru_prev, *lru_next;
	struct conn *park_next;	/* waiting for a descriptor to connect with */
	struct conn *defer_next;	/* worker_defer_put's list */
	uint8_t ndeferred;	/* holds taken by worker_defer_put, not yet put */
	const struct pump_ops *pump;
	uint64_t id;
	uint64_t start_ns;
	uint64_t active_ns;	/* last I/O, for the idle timeout */
	union addr src;		/* the client */
	union addr dst;		/* its original destination */
	union addr upstream;	/* where routing sent it */
	struct snapshot *snap;	/* the config it started with (a reference) */
	struct pod *pod;	/* node-agent mode: its pod (a reference), else NULL */
	const struct workload *dst_workload;	/* in snap, or NULL */
	const struct service *dst_service;	/* in snap, for service routes */
	uint8_t route;		/* enum route_kind */
	int fd[2];		/* SIDE_CLIENT, SIDE_UPSTREAM */
	struct op op_connect;
	struct op op_connect_timeout;
	struct pump_dir dir[2];	/* 0: client -> upstream, 1: upstream -> client */
	uint8_t role;		/* enum role */
	uint8_t inflight;
	bool connected;
	bool parked;
	bool closing;
	bool reset;		/* close both sockets with RST */
	int err;		/* first error, negative errno, 0 if none */
	struct tunnel *tunnel;	/* hbone: the tunnel carrying our stream */
	int32_t stream_id;
	uint8_t stream_side;	/* hbone: which side is the stream */
	uint16_t status;	/* hbone: response status (client) / answer (server) */
	uint8_t refused;	/* hbone client: streams refused unprocessed (retried) */
	char *peer_id;		/* hbone: the other end's identity */
	struct hbone_req *req;	/* hbone server: headers until the request is whole */
	/* hbone server: the client's `forwarded: for=` (owned), or NULL.
	 * Information for the access log only: src is the tunnel's TCP peer,
	 * and policy, metrics and logs take the source from there. */
	union addr *forwarded;
	const char *why;	/* short reason for the access log, or NULL */
	/* Telemetry (metrics.h): set by metrics_conn_open once the labels are
	 * known; reported[d] is how much of dir[d].bytes the series has. */
	const struct workload *src_workload;	/* in snap, or NULL */
	struct metrics_series *series;
	uint64_t reported[2];
	uint8_t rflag;		/* enum metrics_flag, where a failure's kind is known */
	/* "ns/name" of the policy that denied it (owned), or NULL; logged as
	 * policy= (authorize.c sets it, and rflag to DENY). */
	char *policy;
};

/* Does c (routed, not yet started) go through an HBONE tunnel? Outbound
 * only: inbound plaintext (15006) is for a local pod, reached directly. */
static inline bool conn_via_hbone(const struct conn *c)
{
	return c->role == ROLE_OUTBOUND && c->dst_workload &&
	       c->dst_workload->protocol == PROTO_HBONE && c->snap && c->snap->certs;
}

/* Take an accepted socket `fd` from listener l: find its original
 * destination and connect upstream. Takes ownership of fd in every case. */
void conn_accept(struct listener *l, int fd);

/* A conn for an inbound HBONE stream: no client socket, the stream is its
 * client side. NULL on allocation failure. */
struct conn *conn_new_stream(struct worker *w, enum role role);

/* Open the upstream socket (in c->pod's network namespace, if any) and
 * connect (io_uring, linked timeout). */
int conn_connect(struct conn *c);

/*
 * Connections that could not open their upstream socket because the
 * process ran out of descriptors wait, accepted and unharmed, until a
 * descriptor frees up; this retries them in order, and ends those that
 * waited longer than the connect timeout.
 */
void conn_retry_parked(struct worker *w);

/*
 * End the connection. `err` (negative errno or 0) and `why` (static string
 * or NULL) go to the access log; `reset` closes both sockets with RST.
 * Idempotent: the first call's reason wins.
 */
void conn_close(struct conn *c, int err, const char *why, bool reset);

/* Count an op submitted on behalf of c. */
static inline void conn_op_submitted(struct conn *c)
{
	c->inflight++;
}

/*
 * Account one completion for c. Returns true when the caller may go on
 * handling it, false when c is closing (the caller must then only release
 * what the CQE carries, e.g. a selected buffer, and call conn_put).
 */
bool conn_op_completed(struct conn *c);

/* Log c's access line (conn_put does, as it frees c): addresses,
 * workloads, identities, bytes each way, duration, response flags, error. */
void conn_log_access(const struct conn *c);

/* Free c if it is closing and nothing is in flight. */
void conn_put(struct conn *c);

/* I/O happened: move c to the fresh end of the idle list. */
void conn_touch(struct conn *c);

/* The conn that owns direction d (index idx). */
static inline struct conn *conn_of_dir(struct pump_dir *d, unsigned idx)
{
	return container_of(d - idx, struct conn, dir[0]);
}

/* The socket a direction reads from / writes to. */
static inline int conn_src_fd(const struct conn *c, unsigned d)
{
	return c->fd[d == 0 ? SIDE_CLIENT : SIDE_UPSTREAM];
}

static inline int conn_sink_fd(const struct conn *c, unsigned d)
{
	return c->fd[d == 0 ? SIDE_UPSTREAM : SIDE_CLIENT];
}

void conn_on_connect(struct conn *c, const struct io_uring_cqe *cqe);
void conn_on_connect_timeout(struct conn *c, const struct io_uring_cqe *cqe);

#endif
