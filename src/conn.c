/*
 * Connection lifecycle: accept, original destination, upstream connect,
 * close and free. The byte moving itself is in pump*.c.
 */
#include "zring/conn.h"
#include "zring/authorize.h"
#include "zring/fdbudget.h"
#include "zring/hbone.h"
#include "zring/log.h"
#include "zring/metrics.h"
#include "zring/tunnel.h"
#include "zring/origdst.h"
#include "zring/pod.h"
#include "zring/ring.h"
#include "zring/sockopt.h"
#include "zring/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void lru_unlink(struct conn *c)
{
	struct worker *w = c->w;
	if (c->lru_prev)
		c->lru_prev->lru_next = c->lru_next;
	else
		w->lru_head = c->lru_next;
	if (c->lru_next)
		c->lru_next->lru_prev = c->lru_prev;
	else
		w->lru_tail = c->lru_prev;
	c->lru_prev = c->lru_next = NULL;
}

static void lru_append(struct conn *c)
{
	struct worker *w = c->w;
	c->lru_prev = w->lru_tail;
	c->lru_next = NULL;
	if (w->lru_tail)
		w->lru_tail->lru_next = c;
	else
		w->lru_head = c;
	w->lru_tail = c;
}

void conn_touch(struct conn *c)
{
	c->active_ns = c->w->now_ns;
	if (c->w->lru_tail != c) {
		lru_unlink(c);
		lru_append(c);
	}
}

static struct conn *conn_alloc(struct worker *w, enum role role, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->w = w;
	c->pump = w->opts->pump == PUMP_COPY ? &pump_copy_ops : &pump_splice_ops;
	c->id = ++w->next_conn_id;
	c->start_ns = c->active_ns = w->now_ns;
	c->fd[SIDE_CLIENT] = fd;
	c->fd[SIDE_UPSTREAM] = -1;
	c->role = (uint8_t)role;
	c->snap = snapshot_ref(w->snap);
	op_init(&c->op_connect, OP_CONNECT, 0);
	op_init(&c->op_connect_timeout, OP_CONNECT_TIMEOUT, 0);
	for (unsigned d = 0; d < 2; d++) {
		op_init(&c->dir[d].op_in, OP_PUMP_IN, (uint8_t)d);
		op_init(&c->dir[d].op_out, OP_PUMP_OUT, (uint8_t)d);
	}
	lru_append(c);
	w->nconns++;
	metrics_set_conns(&w->metrics, w->nconns);
	return c;
}

static struct conn *conn_new(struct listener *l, int fd)
{
	struct conn *c = conn_alloc(l->w, l->role, fd);
	if (c)
		c->pod = pod_ref(l->pod);
	return c;
}

struct conn *conn_new_stream(struct worker *w, enum role role)
{
	return conn_alloc(w, role, -1);
}

static void park(struct conn *c);

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Open the upstream socket and submit connect + linked timeout. */
int conn_connect(struct conn *c)
{
	struct worker *w = c->w;
	int fd = pod_socket(c->pod, c->upstream.sa.sa_family,
			    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return fd;
	fdb_opened(1);
	c->fd[SIDE_UPSTREAM] = fd;
	uint32_t mark = w->opts->mark;
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		return -errno;
	set_nodelay(fd);	/* the client socket inherited it from the listener */
	/* Keepalive too (the client socket inherited it). It only finds dead
	 * peers sooner and nothing enforced rests on it: a socket without it
	 * still serves, so a failure is logged and counted, never fatal. */
	sockopt_keepalive_try(fd, &w->opts->keepalive, "upstream");

	/* The connect and its timeout must reach the kernel in one submit, or
	 * the link would be cut at the batch boundary. */
	if (io_uring_sq_space_left(&w->ring) < 2)
		io_uring_submit(&w->ring);
	struct io_uring_sqe *sqe = ring_sqe_op(&w->ring, &c->op_connect);
	io_uring_prep_connect(sqe, fd, &c->upstream.sa, addr_len(&c->upstream));
	sqe->flags |= IOSQE_IO_LINK;
	conn_op_submitted(c);
	sqe = ring_sqe_op(&w->ring, &c->op_connect_timeout);
	io_uring_prep_link_timeout(sqe, &w->connect_ts, 0);
	conn_op_submitted(c);
	return 0;
}

/* Decide where to connect: a workload, a service endpoint (port mapped),
 * or the original destination itself. */
static int conn_route(struct conn *c)
{
	struct route r;
	c->upstream = c->dst;
	if (!c->snap)
		return 0;
	int err = route_lookup(c->snap->routes, &c->dst, worker_random(c->w), &r);
	c->route = (uint8_t)r.kind;
	c->dst_workload = r.workload;
	c->dst_service = r.service;
	if (err == 0)
		c->upstream = r.upstream;
	return err;
}

void conn_accept(struct listener *l, int fd)
{
	struct conn *c = conn_new(l, fd);
	if (!c) {
		log_msg_err(LOG_WARN, "connection dropped", "allocate", -ENOMEM);
		close(fd);
		fdb_closed(1);
		return;
	}
	/* The client's address is what sourceIps rules match: a connection
	 * without one (reset before we got to it) is not proxied unchecked. */
	socklen_t len = sizeof(c->src);
	if (getpeername(fd, &c->src.sa, &len) < 0) {
		conn_close(c, -errno, "no peer address", true);
		conn_put(c);
		return;
	}
	addr_unmap(&c->src);

	int err = origdst_get(fd, l->addr.sa.sa_family, &c->dst);
	if (err < 0) {
		conn_close(c, err, "no original destination", true);
		conn_put(c);
		return;
	}
	err = conn_route(c);
	metrics_conn_open(c);	/* labels known: from here on it is counted */
	if (err < 0) {
		conn_close(c, err, "no healthy endpoint", true);
	} else if ((err = authorize_conn(c, c->snap)) < 0) {
		conn_close(c, err, c->why, true);
	} else if (origdst_is_self_fd(&c->dst, fd, c->w->opts) ||
		   origdst_is_self_fd(&c->upstream, fd, c->w->opts)) {
		conn_close(c, 0, "destination is zring itself", true);
	} else if (conn_via_hbone(c)) {
		if ((err = hbone_client_start(c)) < 0)
			conn_close(c, err, c->why ? c->why : "hbone", true);
	} else if ((err = conn_connect(c)) == -EMFILE || err == -ENFILE) {
		worker_pause_accept(c->w, err);
		park(c);
	} else if (err < 0) {
		conn_close(c, err, "upstream socket", true);
	}
	conn_put(c);
}

static void park(struct conn *c)
{
	struct worker *w = c->w;
	fdb_parked(1);
	c->parked = true;
	c->park_next = NULL;
	if (w->parked_tail)
		w->parked_tail->park_next = c;
	else
		w->parked_head = c;
	w->parked_tail = c;
}

static void unpark(struct conn *c)
{
	struct worker *w = c->w;
	struct conn **pp = &w->parked_head, *prev = NULL;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->park_next;
	}
	if (*pp) {
		*pp = c->park_next;
		if (w->parked_tail == c)
			w->parked_tail = prev;
	}
	c->parked = false;
	c->park_next = NULL;
	fdb_parked(-1);
}

void conn_retry_parked(struct worker *w)
{
	uint64_t timeout_ns = w->opts->connect_timeout_ms * 1000000ull;
	struct conn *c;
	while ((c = w->parked_head)) {
		int err = 0;
		if (w->now_ns - c->start_ns >= timeout_ns)
			err = -ETIMEDOUT;
		else if ((err = conn_connect(c)) == -EMFILE || err == -ENFILE)
			return;	/* still none; the rest keep waiting too */
		unpark(c);
		if (err < 0)
			conn_close(c, err, "upstream socket", true);
		conn_put(c);
	}
}

bool conn_op_completed(struct conn *c)
{
	c->inflight--;
	return !c->closing;
}

void conn_on_connect(struct conn *c, const struct io_uring_cqe *cqe)
{
	if (conn_op_completed(c) && c->role == ROLE_HBONE) {
		hbone_connected(c, cqe->res);
	} else if (!c->closing) {
		if (cqe->res < 0) {
			/* -ECANCELED here means the linked timeout fired. */
			int err = cqe->res == -ECANCELED ? -ETIMEDOUT : cqe->res;
			conn_close(c, err, "upstream connect", true);
		} else {
			c->connected = true;
			conn_touch(c);
			pump_start(c);
		}
	}
	conn_put(c);
}

void conn_on_connect_timeout(struct conn *c, const struct io_uring_cqe *cqe)
{
	conn_op_completed(c);
	conn_put(c);
}

void conn_close(struct conn *c, int err, const char *why, bool reset)
{
	if (c->closing)
		return;
	c->closing = true;
	c->err = err;
	c->why = why;
	c->reset = reset;
	if (c->tunnel)
		tunnel_detach(c->tunnel, c, reset ||
			      !((c->dir[0].flags & DIR_EOF) && (c->dir[1].flags & DIR_EOF)));
	if (c->inflight == 0)
		return;
	for (unsigned s = 0; s < 2; s++)
		if (c->fd[s] >= 0)
			ring_cancel_fd(&c->w->ring, c->fd[s]);
}

/* Who is who: workloads, the service, and the identities mTLS proved. */
static void log_parties(struct log_line *l, const struct conn *c, bool mtls)
{
	bool outbound = c->role == ROLE_OUTBOUND;
	const struct workload *sw = c->src_workload, *dw = c->dst_workload;
	if (sw) {
		log_str(l, "src_workload", sw->name);
		log_str(l, "src_namespace", sw->namespace);
	}
	if (dw) {
		log_str(l, "dst_workload", dw->name);
		log_str(l, "dst_namespace", dw->namespace);
	}
	if (c->route == ROUTE_SERVICE && c->dst_service)
		log_str(l, "dst_service", c->dst_service->hostname);
	if (!mtls)
		return;
	const char *src_id = outbound ? (sw ? sw->identity : NULL) : c->peer_id;
	const char *dst_id = outbound ? (dw ? dw->identity : c->peer_id) : (dw ? dw->identity : NULL);
	if (src_id)
		log_str(l, "src_identity", src_id);
	if (dst_id)
		log_str(l, "dst_identity", dst_id);
}

/*
 * One line per connection at its end (docs/operations.md, "Access log").
 * See conn.h.
 * up_bytes / down_bytes: client -> upstream / upstream -> client;
 * bytes_sent / bytes_recv: from the reporting side's pod toward its peer
 * and back (outbound: what the client sent; inbound: what the server
 * answered), as ztunnel logs them.
 */
void conn_log_access(const struct conn *c)
{
	struct log_line l;
	char buf[ADDR_STRLEN], msg[160];
	bool mtls = metrics_conn_mtls(c), outbound = c->role == ROLE_OUTBOUND;
	if (!log_begin(&l, LOG_INFO, "access"))
		return;
	log_u64(&l, "id", c->id);
	log_u64(&l, "worker", c->w->id);
	log_str(&l, "dir", role_name((enum role)c->role));
	if (c->pod)
		log_str(&l, "pod", c->pod->name);
	log_str(&l, "src", addr_format(&c->src, buf, sizeof(buf)));
	if (c->forwarded)
		log_str(&l, "forwarded_for", addr_format(c->forwarded, buf, sizeof(buf)));
	log_str(&l, "dst", addr_format(&c->dst, buf, sizeof(buf)));
	log_str(&l, "route", route_kind_name((enum route_kind)c->route));
	if (!addr_equal(&c->dst, &c->upstream))
		log_str(&l, "upstream", addr_format(&c->upstream, buf, sizeof(buf)));
	log_parties(&l, c, mtls);
	log_str(&l, "security", mtls ? "mutual_tls" : "none");
	log_u64(&l, "up_bytes", c->dir[0].bytes);
	log_u64(&l, "down_bytes", c->dir[1].bytes);
	log_u64(&l, "bytes_sent", c->dir[outbound ? 0 : 1].bytes);
	log_u64(&l, "bytes_recv", c->dir[outbound ? 1 : 0].bytes);
	log_u64(&l, "duration_ms", (c->w->now_ns - c->start_ns) / 1000000);
	log_str(&l, "response_flags", metrics_flag_name(metrics_conn_flag(c)));
	if (c->policy)
		log_str(&l, "policy", c->policy);
	if (c->err) {
		char e[64];
		snprintf(msg, sizeof(msg), "%s%s%s", c->why ? c->why : "",
			 c->why ? ": " : "", strerror_r(-c->err, e, sizeof(e)));
		log_str(&l, "error", msg);
	} else {
		log_str(&l, "error", c->why ? c->why : "-");
	}
	log_end(&l);
}

static void close_socket(int fd, bool reset)
{
	if (fd < 0)
		return;
	if (reset) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(fd);
	fdb_closed(1);
}

static void conn_free(struct conn *c)
{
	struct worker *w = c->w;
	if (c->parked)
		unpark(c);
	pump_release(c);
	metrics_conn_close(c);
	conn_log_access(c);
	close_socket(c->fd[SIDE_CLIENT], c->reset);
	close_socket(c->fd[SIDE_UPSTREAM], c->reset);
	lru_unlink(c);
	w->nconns--;
	metrics_set_conns(&w->metrics, w->nconns);
	snapshot_unref(c->snap);
	pod_unref(c->pod);
	free(c->peer_id);
	free(c->policy);
	free(c->req);
	free(c->forwarded);
	free(c);
	/* Handled at the loop boundary: resuming others from inside a free
	 * would let them free conns our callers are still iterating over. */
	w->fds_freed = true;
}

void conn_put(struct conn *c)
{
	if (c->closing && c->inflight == 0)
		conn_free(c);
}
