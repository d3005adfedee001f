/*
 * HBONE requests: opening streams (client) and answering CONNECT (server).
 * See include/zring/hbone.h.
 */
#include "zring/hbone.h"
#include "zring/hbone_request.h"
#include "zring/authorize.h"
#include "zring/certs.h"
#include "zring/conn.h"
#include "zring/log.h"
#include "zring/metrics.h"
#include "zring/origdst.h"
#include "zring/pod.h"
#include "zring/route.h"
#include "zring/tunnel.h"
#include "zring/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The workload that owns address a in snapshot s, or NULL. */
static const struct workload *workload_at(const struct snapshot *s, const union addr *a)
{
	struct route r;
	if (!s || route_lookup(s->routes, a, 0, &r) < 0 || r.kind != ROUTE_WORKLOAD)
		return NULL;
	return r.workload;
}

/* The workload at address a for a connection of `pod`. In node-agent mode
 * a pod speaks only as itself: an address of another workload that it
 * holds (or claims) gets no identity. */
static const struct workload *pod_workload_at(const struct snapshot *s, const struct pod *pod,
					      const union addr *a)
{
	const struct workload *wl = workload_at(s, a);
	return wl && pod && strcmp(wl->uid, pod->uid) != 0 ? NULL : wl;
}

static const struct local_identity *identity_of(const struct snapshot *s, const struct workload *wl)
{
	return wl && s->certs ? certstore_find(s->certs, wl->identity) : NULL;
}

/* Open c's stream; `settled`: only on a tunnel whose peer's SETTINGS are
 * known (a retry must not land where the limits are still unknown). */
static int client_open(struct conn *c, bool settled)
{
	struct worker *w = c->w;
	const struct snapshot *s = c->snap;
	const struct workload *from = pod_workload_at(s, c->pod, &c->src);
	const struct local_identity *src = identity_of(s, from);
	if (!src) {
		c->why = !from && c->pod && workload_at(s, &c->src) ? "source address is not the pod's own"
								    : "no certificate for the source workload";
		c->rflag = RFLAG_IDENTITY_ERROR;
		return -EACCES;
	}
	union addr peer = c->upstream;
	if (peer.sa.sa_family == AF_INET6)
		peer.in6.sin6_port = htons(w->opts->hbone_port);
	else
		peer.in4.sin_port = htons(w->opts->hbone_port);
	/* Before a tunnel is taken: a failure here leaves none half-used. */
	free(c->peer_id);
	c->peer_id = strdup(c->dst_workload->identity);
	if (!c->peer_id) {
		c->why = "out of memory (peer identity)";
		return -ENOMEM;
	}
	int err;
	const struct service *svc = c->route == ROUTE_SERVICE ? c->dst_service : NULL;
	struct tunnel *t = tunnel_get(w, c->pod, src, c->dst_workload->identity, svc, &peer,
				      settled, &err);
	if (!t) {
		c->why = "tunnel";
		return err;
	}
	c->stream_side = SIDE_UPSTREAM;
	c->pump = &pump_hbone_ops;
	err = tunnel_open_stream(t, c, &c->upstream, &c->src);
	if (err < 0)
		c->why = "tunnel stream";
	return err;
}

int hbone_client_start(struct conn *c)
{
	return client_open(c, false);
}

int hbone_client_retry(struct conn *c)
{
	/* Unprocessed means nothing of c went anywhere: no answer came, and
	 * the pump (which starts on 200) has read nothing from the client. */
	if (c->stream_side != SIDE_UPSTREAM || c->closing || c->connected || c->status ||
	    c->tunnel || c->refused >= HBONE_REFUSED_RETRIES)
		return -EAGAIN;
	c->refused++;
	return client_open(c, true);
}

int hbone_server_ctx(struct tunnel *t, WOLFSSL_CTX **ctx)
{
	const struct snapshot *s = t->w->snap;
	const struct local_identity *id = identity_of(s, pod_workload_at(s, t->pod, &t->local));
	if (!id)
		return -ENOENT;
	*ctx = id->server;
	return 0;
}

bool hbone_trusted_peer(struct tunnel *t, const char *peer_id)
{
	const struct snapshot *s = t->w->snap;
	const struct local_identity *id = identity_of(s, pod_workload_at(s, t->pod, &t->local));
	if (!id)
		return false;
	snprintf(t->src_id, sizeof(t->src_id), "%s", id->id);
	/* spiffe://<td>/... : the trust domains must be the same. */
	size_t n = strlen("spiffe://") + strlen(id->trust_domain);
	return strncmp(peer_id, id->id, n) == 0 && peer_id[n] == '/';
}

void hbone_tunnel_ready(struct tunnel *t)
{
	struct log_line l;
	char a[ADDR_STRLEN];
	if (log_begin(&l, LOG_DEBUG, "tunnel ready")) {
		log_str(&l, "side", t->server ? "server" : "client");
		log_str(&l, "peer", addr_format(&t->peer, a, sizeof(a)));
		log_str(&l, "peer_identity", t->peer_id);
		log_end(&l);
	}
}

int hbone_server_begin(struct tunnel *t, int32_t stream_id)
{
	struct conn *c = conn_new_stream(t->w, ROLE_HBONE);
	if (!c)
		return -ENOMEM;
	c->tunnel = t;
	c->pod = pod_ref(t->pod);	/* its upstream socket goes in the pod's netns */
	c->stream_id = stream_id;
	c->stream_side = SIDE_CLIENT;
	c->pump = &pump_hbone_ops;
	c->src = t->peer;
	/* Either may fail: the stream stays, to be refused with 503 once its
	 * request is whole (server_request), never checked without them. */
	c->peer_id = strdup(t->peer_id);
	c->req = malloc(sizeof(*c->req));
	if (c->req)
		hbone_req_init(c->req);
	t->nstreams++;
	nghttp2_session_set_stream_user_data(t->h2, stream_id, c);
	return 0;
}

void hbone_header(struct conn *c, const char *name, size_t nlen, const char *value, size_t vlen)
{
	if (c->stream_side == SIDE_UPSTREAM) {	/* client: the response */
		if (nlen == 7 && memcmp(name, ":status", 7) == 0 && vlen == 3 &&
		    value[0] >= '1' && value[0] <= '5')
			c->status = (uint16_t)((value[0] - '0') * 100 + (value[1] - '0') * 10 +
					       (value[2] - '0'));
		return;
	}
	if (c->req)
		hbone_req_header(c->req, name, nlen, value, vlen);
}

/* Answer the CONNECT; `status` 200 keeps the stream open for data.
 * 0, or -ENOMEM when nghttp2 could not queue it (the caller resets the
 * stream: a client must never be left waiting for an answer). */
static int respond(struct conn *c, unsigned status)
{
	char s[4];
	snprintf(s, sizeof(s), "%u", status);
	const nghttp2_nv hdrs[] = {
		{ (uint8_t *)":status", (uint8_t *)s, 7, 3, NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider dp = { .source.ptr = c, .read_callback = pump_hbone_read };
	c->status = (uint16_t)status;
	if (c->tunnel) {
		if (nghttp2_submit_response(c->tunnel->h2, c->stream_id, hdrs, 1,
					    status == 200 ? &dp : NULL) != 0)
			return -ENOMEM;
		tunnel_flush(c->tunnel);
	}
	return 0;
}

static void refuse(struct conn *c, unsigned status, int err, const char *why)
{
	bool answered = respond(c, status) == 0;
	/* The answer is queued; detaching without reset lets it go out. */
	if (c->tunnel)
		tunnel_detach(c->tunnel, c, !answered);
	conn_close(c, err, why, false);
}

/* Take the parsed request into c: the destination, and the client's
 * `forwarded` address as information only (c->src stays the tunnel's TCP
 * peer: a header is never proof of where a client is). 0, -EINVAL for a
 * malformed request, -ENOMEM. */
static int take_request(struct conn *c)
{
	struct hbone_req *req = c->req;
	int err = 0;
	c->req = NULL;
	if (!req || !c->peer_id) {
		err = -ENOMEM;	/* hbone_server_begin could not allocate them */
	} else if (hbone_req_finish(req) < 0) {
		err = -EINVAL;
	} else {
		c->dst = req->authority;
		if (req->has_forwarded) {
			c->forwarded = malloc(sizeof(*c->forwarded));
			if (c->forwarded)
				*c->forwarded = req->forwarded;
			else
				err = -ENOMEM;
		}
	}
	free(req);
	return err;
}

static void server_request(struct conn *c)
{
	int err = take_request(c);
	if (err < 0) {
		refuse(c, err == -EINVAL ? 400 : 503, err,
		       err == -EINVAL ? "bad CONNECT request" : "out of memory");
		worker_defer_put(c->w, c);
		return;
	}
	/* Local: the workload that owns the address the tunnel came in on. */
	struct route r;
	const struct workload *here =
		c->tunnel ? pod_workload_at(c->snap, c->pod, &c->tunnel->local) : NULL;
	if (!c->snap || route_lookup(c->snap->routes, &c->dst, 0, &r) < 0 ||
	    r.kind != ROUTE_WORKLOAD || r.workload != here) {
		refuse(c, 401, -EACCES, "destination is not a local workload");
		worker_defer_put(c->w, c);
		return;
	}
	c->route = ROUTE_WORKLOAD;
	c->dst_workload = r.workload;
	c->upstream = c->dst;
	/* One of the ports zring listens on in this workload's namespace: a
	 * tunnel in a tunnel, or a way round the capture rules. ztunnel
	 * answers 503 (SelfCall). A node agent's HTTP endpoints are in the
	 * node's namespace, so there the pod's 15000/15020/15021 are the
	 * application's own. */
	uint16_t port = addr_port(&c->dst);
	if (c->pod ? origdst_capture_port(port, c->w->opts) : origdst_own_port(port, c->w->opts)) {
		refuse(c, 503, 0, "destination is zring itself");
		worker_defer_put(c->w, c);
		return;
	}
	metrics_conn_open(c);	/* accepted: counted from here (a denial too) */
	err = authorize_conn(c, c->snap);
	if (err < 0) {
		refuse(c, 401, err, c->why);
		worker_defer_put(c->w, c);
		return;
	}
	err = conn_connect(c);
	if (err < 0) {
		refuse(c, 503, err, "upstream socket");
		worker_defer_put(c->w, c);
	}
}

static void client_response(struct conn *c)
{
	if (c->status == 200) {
		c->connected = true;
		conn_touch(c);
		pump_start(c);
		return;
	}
	char *why = c->status == 401 ? "tunnel refused: 401" :
		    c->status == 503 ? "tunnel refused: 503" :
		    c->status == 400 ? "tunnel refused: 400" : "tunnel refused";
	conn_close(c, -ECONNREFUSED, why, true);
	worker_defer_put(c->w, c);
}

void hbone_headers_done(struct conn *c)
{
	if (c->closing)
		return;
	if (c->stream_side == SIDE_UPSTREAM)
		client_response(c);
	else if (!c->status)
		server_request(c);
}

void hbone_connected(struct conn *c, int res)
{
	if (res < 0) {
		int err = res == -ECANCELED ? -ETIMEDOUT : res;
		refuse(c, 503, err, "upstream connect");
		return;
	}
	if (respond(c, 200) < 0) {
		conn_close(c, -ENOMEM, "out of memory (response)", true);
		return;
	}
	c->connected = true;
	conn_touch(c);
	pump_start(c);
}
