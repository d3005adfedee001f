/*
 * HBONE tunnels: socket I/O, TLS, HTTP/2 session, pool.
 * See include/zring/tunnel.h. Request handling is in hbone.c, the
 * stream <-> socket pump in pump_hbone.c.
 */
#include "zring/tunnel.h"
#include "zring/certs.h"
#include "zring/conn.h"
#include "zring/fdbudget.h"
#include "zring/hbone.h"
#include "zring/listener.h"
#include "zring/log.h"
#include "zring/pod.h"
#include "zring/ring.h"
#include "zring/sockopt.h"
#include "zring/worker.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Flow control sized for throughput, as ztunnel does. */
#define STREAM_WINDOW (4 * 1024 * 1024)
#define CONN_WINDOW (16 * 1024 * 1024)
/* Stop asking nghttp2 for output while this much ciphertext waits. */
#define TLS_OUT_HIGH (1024 * 1024)

static void list_add(struct tunnel *t)
{
	struct worker *w = t->w;
	t->prev = NULL;
	t->next = w->tunnels;
	if (w->tunnels)
		w->tunnels->prev = t;
	w->tunnels = t;
	w->ntunnels++;
}

static void list_del(struct tunnel *t)
{
	struct worker *w = t->w;
	if (t->prev)
		t->prev->next = t->next;
	else
		w->tunnels = t->next;
	if (t->next)
		t->next->prev = t->prev;
	w->ntunnels--;
}

static void log_tunnel_end(const struct tunnel *t)
{
	struct log_line l;
	char buf[ADDR_STRLEN];
	enum log_level lv = t->err && t->err != -ECANCELED ? LOG_WARN : LOG_DEBUG;
	if (!log_begin(&l, lv, "tunnel closed"))
		return;
	log_str(&l, "side", t->server ? "server" : "client");
	log_str(&l, "peer", addr_format(&t->peer, buf, sizeof(buf)));
	log_str(&l, "peer_identity", t->peer_id[0] ? t->peer_id : "-");
	if (t->why)
		log_str(&l, "reason", t->why);
	if (t->err)
		log_err(&l, "error", t->err);
	log_end(&l);
}

static void tunnel_free(struct tunnel *t)
{
	struct worker *w = t->w;
	log_tunnel_end(t);
	list_del(t);
	if (t->h2)
		nghttp2_session_del(t->h2);
	tls_deinit(&t->tls);
	if (t->fd >= 0) {
		close(t->fd);
		fdb_closed(1);
	}
	for (size_t i = 0; i < t->nalt; i++)
		free(t->alt_ids[i]);
	free(t->alt_ids);
	free(t->alt_key);
	free(t->rx);
	pod_unref(t->pod);
	free(t);
	w->fds_freed = true;
}

/* How long a tunnel whose handshake failed lingers (see linger_start). */
#define LINGER_NS (1000 * 1000000ull)

/* The receive buffer's size: small until the handshake is done (become_ready). */
static unsigned rx_size(const struct tunnel *t)
{
	return t->ready ? TUNNEL_RX_SIZE : TUNNEL_HANDSHAKE_RX;
}

static void arm_linger_recv(struct tunnel *t)
{
	struct io_uring_sqe *sqe = ring_sqe_op(&t->w->ring, &t->op_recv);
	io_uring_prep_recv(sqe, t->fd, t->rx, rx_size(t), 0);
	t->recv_armed = true;
	t->inflight++;
}

/* A failed handshake's last words. The alert wolfSSL queued goes out if it
 * has not yet (a plain non-blocking send of a few dozen bytes), FIN follows
 * it, and the socket stays open, reading and dropping what the peer still
 * sends, until the peer closes or LINGER_NS pass. Closing at once would
 * reset the connection as soon as the peer's next bytes arrive (a TLS 1.3
 * client writes its first HTTP/2 bytes before it reads the server's
 * verdict), and its failed write would hide the alert from it. */
static void linger_start(struct tunnel *t)
{
	size_t len;
	const uint8_t *p = tls_out_begin(&t->tls, &len);
	if (p)
		(void)!send(t->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	shutdown(t->fd, SHUT_WR);
	t->lingering = true;
	t->linger_since_ns = t->w->now_ns;
	arm_linger_recv(t);
}

void tunnel_put(struct tunnel *t)
{
	if (!t->closing || t->inflight)
		return;
	if (t->tls_failed && !t->lingering && t->fd >= 0 && !t->w->draining) {
		linger_start(t);
		return;
	}
	tunnel_free(t);
}

/* Resets every stream's conn; the conns detach themselves. */
static void reset_streams(struct tunnel *t, int err, const char *why)
{
	struct conn *c = t->w->lru_head;
	while (c) {
		struct conn *next = c->lru_next;
		if (c->tunnel == t) {
			c->tunnel = NULL;
			t->nstreams--;
			if (t->tls_failed && !c->rflag)
				c->rflag = RFLAG_TLS_FAILURE;
			conn_close(c, err, why, true);
			worker_defer_put(t->w, c);
		}
		c = next;
	}
}

void tunnel_close(struct tunnel *t, int err, const char *why)
{
	if (t->closing)
		return;
	t->closing = true;
	t->err = err;
	t->why = why;
	reset_streams(t, err ? err : -ECONNRESET, why ? why : "tunnel closed");
	if (t->inflight && t->fd >= 0)
		ring_cancel_fd(&t->w->ring, t->fd);
}

static void arm_recv(struct tunnel *t)
{
	if (t->recv_armed || t->closing)
		return;
	struct io_uring_sqe *sqe = ring_sqe_op(&t->w->ring, &t->op_recv);
	io_uring_prep_recv(sqe, t->fd, t->rx, rx_size(t), 0);
	t->recv_armed = true;
	t->inflight++;
}

static void kick_send(struct tunnel *t)
{
	if (t->send_armed || t->closing)
		return;
	size_t len;
	const uint8_t *p = tls_out_begin(&t->tls, &len);
	if (!p)
		return;
	struct io_uring_sqe *sqe = ring_sqe_op(&t->w->ring, &t->op_send);
	io_uring_prep_send(sqe, t->fd, p, len, MSG_NOSIGNAL);
	t->send_armed = true;
	t->inflight++;
}

/* nghttp2_session_send once, outside any nghttp2 call. 0 or -EPROTO. */
static int session_send(struct tunnel *t)
{
	t->in_h2 = true;
	int rv = nghttp2_session_send(t->h2);
	t->in_h2 = false;
	if (rv != 0) {
		tunnel_close(t, -EPROTO, nghttp2_strerror(rv));
		return -EPROTO;
	}
	return 0;
}

void tunnel_flush(struct tunnel *t)
{
	if (t->closing)
		return;
	if (t->in_h2) {
		/* A callback asked: nghttp2 forbids re-entering it. Our caller
		 * (pump_plaintext, or the loop below) flushes once it returns. */
		t->flush_due = true;
		return;
	}
	do {
		t->flush_due = false;
		if (t->ready && tls_out_pending(&t->tls) < TLS_OUT_HIGH && session_send(t) < 0)
			return;
	} while (t->flush_due && !t->closing);
	if (t->closing)
		return;
	kick_send(t);
	if (t->ready && !nghttp2_session_want_read(t->h2) && !nghttp2_session_want_write(t->h2) &&
	    tls_out_pending(&t->tls) == 0)
		tunnel_close(t, 0, "session ended");
}

/* --- nghttp2 callbacks: the session's output goes through TLS --- */

static ssize_t cb_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
	struct tunnel *t = ud;
	if (tls_write(&t->tls, data, len) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return (ssize_t)len;
}

static int cb_send_data(nghttp2_session *s, nghttp2_frame *f, const uint8_t *framehd,
			size_t length, nghttp2_data_source *src, void *ud)
{
	struct tunnel *t = ud;
	struct conn *c = src->ptr;
	if (f->data.padlen || pump_hbone_send_data(t, c, framehd, length) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static struct conn *stream_conn(nghttp2_session *s, int32_t id)
{
	return nghttp2_session_get_stream_user_data(s, id);
}

static int cb_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct tunnel *t = ud;
	/* No memory for the stream's conn: that stream alone is reset
	 * (RST_STREAM INTERNAL_ERROR); the tunnel's others go on. */
	if (t->server && f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		return hbone_server_begin(t, f->hd.stream_id) < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
								  : 0;
	return 0;
}

static int cb_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct conn *c = stream_conn(s, f->hd.stream_id);
	if (c)
		hbone_header(c, (const char *)name, namelen, (const char *)value, valuelen);
	return 0;
}

static int cb_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct tunnel *t = ud;
	struct conn *c = f->hd.stream_id ? stream_conn(s, f->hd.stream_id) : NULL;
	if (f->hd.type == NGHTTP2_GOAWAY)
		t->draining = true;
	if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK))
		t->peer_settings = true;
	if (!c)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && (f->hd.flags & NGHTTP2_FLAG_END_HEADERS))
		hbone_headers_done(c);
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		pump_hbone_end(c);
	return 0;
}

static int cb_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
		   void *ud)
{
	struct conn *c = stream_conn(s, id);
	if (!c) {
		/* Nobody will write it out; give the window back now. */
		nghttp2_session_consume(s, id, len);
		return 0;
	}
	return pump_hbone_data(c, data, len) < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int cb_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	struct tunnel *t = ud;
	struct conn *c = stream_conn(s, id);
	if (!c)
		return 0;
	nghttp2_session_set_stream_user_data(s, id, NULL);
	if (c->tunnel == t) {
		/* Bytes still queued for the socket will be written without a
		 * stream to account them to: give their connection window back
		 * now, or the tunnel's window shrinks for good. */
		nghttp2_session_consume_connection(s, pump_hbone_queued(c));
		c->tunnel = NULL;
		t->nstreams--;
		if (!t->nstreams)
			t->idle_since_ns = t->w->now_ns;
	}
	pump_hbone_stream_closed(c, code);
	return 0;
}

static int new_session(struct tunnel *t)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	int rv;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return -ENOMEM;
	nghttp2_session_callbacks_set_send_callback(cbs, cb_send);
	nghttp2_session_callbacks_set_send_data_callback(cbs, cb_send_data);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cbs);
		return -ENOMEM;
	}
	/* We give window back only once bytes reached the socket: a slow
	 * reader holds at most a window's worth in zring. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	/* The server checks CONNECT requests itself (hbone_request.c), so that
	 * a malformed one gets the 400 HBONE promises rather than nghttp2's
	 * RST_STREAM(PROTOCOL_ERROR). */
	if (t->server)
		nghttp2_option_set_no_http_messaging(opt, 1);
	rv = t->server ? nghttp2_session_server_new2(&t->h2, cbs, t, opt)
		       : nghttp2_session_client_new2(&t->h2, cbs, t, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (rv != 0)
		return -ENOMEM;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, t->w->opts->hbone_max_streams },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
	};
	rv = nghttp2_submit_settings(t->h2, NGHTTP2_FLAG_NONE, iv, t->server ? 3 : 3);
	if (rv == 0)
		rv = nghttp2_session_set_local_window_size(t->h2, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
	return rv == 0 ? 0 : -ENOMEM;
}

/* --- handshake and verification --- */

static bool alt_match(const struct tunnel *t)
{
	for (size_t i = 0; i < t->nalt; i++)
		if (strcmp(t->peer_id, t->alt_ids[i]) == 0)
			return true;
	return false;
}

/* Why t's peer (identity in t->peer_id) may not be its peer, or NULL. */
static const char *identity_refusal(struct tunnel *t)
{
	if (!t->peer_id[0])
		return "peer certificate has no spiffe identity";
	if (!t->server && strcmp(t->peer_id, t->want_id) != 0 && !alt_match(t))
		return "server identity mismatch";
	if (t->server && !hbone_trusted_peer(t, t->peer_id))
		return "client identity outside the trust domain";
	return NULL;
}

/* Why the peer has no identity, given err from certs_*_identity (0: it
 * has one, NULL). Several spiffe:// SANs, one too long, or a certificate
 * wolfSSL could not copy each say so. */
static const char *no_identity(struct tunnel *t, int err)
{
	if (err == 0)
		return NULL;
	t->peer_id[0] = '\0';
	return err == -ENOMEM ? "out of memory (peer certificate)" :
	       err == -EINVAL ? "peer certificate has more than one spiffe identity" :
	       err == -ENAMETOOLONG ? "peer certificate identity too long" :
				      "peer certificate has no spiffe identity";
}

/* tls_check_peer's check: the identity is decided inside the handshake,
 * so a refused peer gets a bad_certificate alert (as from rustls). */
static int check_leaf(void *ctx, WOLFSSL_X509 *leaf)
{
	struct tunnel *t = ctx;
	int err = certs_x509_identity(leaf, t->peer_id, sizeof(t->peer_id));
	if (!(t->why = no_identity(t, err)))
		t->why = identity_refusal(t);
	return t->why == NULL;
}

/* After the handshake: ALPN h2, and (again, failing closed) the peer is
 * who it must be. The chain itself was verified by wolfSSL against the
 * trust bundle. */
static int verify_peer(struct tunnel *t)
{
	if (!tls_alpn_h2(&t->tls)) {
		t->why = "peer did not agree to ALPN h2";
		return -EPROTO;
	}
	int err = certs_peer_identity(t->tls.ssl, t->peer_id, sizeof(t->peer_id));
	if ((t->why = no_identity(t, err)) || (t->why = identity_refusal(t)))
		return err == -ENOMEM ? -ENOMEM : -EACCES;
	return 0;
}

static void handshake_failed(struct tunnel *t, int err)
{
	char buf[128];
	struct log_line l;
	if (log_begin(&l, LOG_WARN, "tls handshake failed")) {
		char a[ADDR_STRLEN];
		log_str(&l, "side", t->server ? "server" : "client");
		log_str(&l, "peer", addr_format(&t->peer, a, sizeof(a)));
		if (t->want_id[0])
			log_str(&l, "want_identity", t->want_id);
		if (t->peer_id[0])
			log_str(&l, "peer_identity", t->peer_id);
		log_str(&l, "error", t->why ? t->why : tls_error_string(&t->tls, buf, sizeof(buf)));
		log_end(&l);
	}
	worker_count_tls_failure(t->w);
	t->tls_failed = true;
	tunnel_close(t, err, t->why ? t->why : "tls handshake failed");
}

/* Handshake done: what only a tunnel that carries streams needs, so that
 * a peer that never gets this far costs little (docs/architecture.md,
 * "Memory after a burst"): the server's HTTP/2 session, and a full-size
 * receive buffer (the ciphertext not yet read moves along). */
static int become_ready(struct tunnel *t)
{
	size_t left = t->tls.in_len;
	size_t off = left ? (size_t)((uintptr_t)t->tls.in - (uintptr_t)t->rx) : 0;
	uint8_t *rx = realloc(t->rx, TUNNEL_RX_SIZE);
	if (!rx || (t->rx = rx, tls_input(&t->tls, rx + off, left), !t->h2 && new_session(t) < 0)) {
		t->why = "out of memory";
		return -ENOMEM;
	}
	t->ready = true;
	return 0;
}

/* Decrypted bytes into nghttp2. 0, or -errno when the tunnel must close. */
static int pump_plaintext(struct tunnel *t)
{
	uint8_t buf[16384];
	for (;;) {
		long n = tls_read(&t->tls, buf, sizeof(buf));
		if (n == -EAGAIN)
			return 0;
		if (n == 0)
			return -ECONNRESET;	/* close_notify */
		if (n < 0) {
			t->why = "tls error";
			return (int)n;
		}
		t->in_h2 = true;	/* callbacks only record what to send */
		ssize_t rv = nghttp2_session_mem_recv(t->h2, buf, (size_t)n);
		t->in_h2 = false;
		if (rv < 0) {
			t->why = nghttp2_strerror((int)rv);
			return -EPROTO;
		}
		if (t->closing)
			return -ECANCELED;
	}
}

void tunnel_on_recv(struct tunnel *t, const struct io_uring_cqe *cqe)
{
	t->recv_armed = false;
	t->inflight--;
	if (t->closing) {
		if (t->lingering && cqe->res > 0 && !t->linger_cancelled)
			arm_linger_recv(t);	/* dropped: the tunnel is over */
		tunnel_put(t);
		return;
	}
	if (cqe->res <= 0) {
		int err = cqe->res ? cqe->res : -ECONNRESET;
		if (!t->ready) {
			/* A peer that hangs up on our handshake (a TLS 1.2-only
			 * server may just close) failed it. */
			t->why = "peer closed the tunnel during the handshake";
			handshake_failed(t, err);
		} else {
			tunnel_close(t, err, cqe->res ? "tunnel read error" : "peer closed the tunnel");
		}
		tunnel_put(t);
		return;
	}
	t->last_rx_ns = t->w->now_ns;
	t->ping_sent_ns = 0;
	tls_input(&t->tls, t->rx, (size_t)cqe->res);
	if (!t->ready) {
		int err = tls_handshake(&t->tls);
		if (err == 0 && (err = verify_peer(t)) == 0 && (err = become_ready(t)) == 0) {
			hbone_tunnel_ready(t);
		} else if (err != -EAGAIN) {
			kick_send(t);	/* an alert may be waiting */
			handshake_failed(t, err);
			tunnel_put(t);
			return;
		}
	}
	if (t->ready) {
		int err = pump_plaintext(t);
		if (err < 0 && t->tls.last_error && !t->server && !t->peer_settings) {
			/* TLS 1.3: the server checks our certificate after our side
			 * of the handshake is done, and its refusal (an alert)
			 * comes before any HTTP/2: the handshake failed. */
			t->why = NULL;
			handshake_failed(t, err);
			tunnel_put(t);
			return;
		}
		if (err < 0) {
			tunnel_close(t, err, t->why);
			tunnel_put(t);
			return;
		}
	}
	arm_recv(t);
	tunnel_flush(t);
	tunnel_put(t);
}

void tunnel_on_send(struct tunnel *t, const struct io_uring_cqe *cqe)
{
	t->send_armed = false;
	t->inflight--;
	if (t->closing) {
		/* What went, went (farewell sends the rest of an alert). */
		tls_out_done(&t->tls, cqe->res > 0 ? (size_t)cqe->res : 0);
		tunnel_put(t);
		return;
	}
	if (cqe->res <= 0) {
		tunnel_close(t, cqe->res ? cqe->res : -EPIPE, "tunnel write error");
		tunnel_put(t);
		return;
	}
	tls_out_done(&t->tls, (size_t)cqe->res);
	tunnel_flush(t);
	tunnel_put(t);
}

static struct tunnel *tunnel_new(struct worker *w, bool server, int fd)
{
	struct tunnel *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->rx = malloc(TUNNEL_HANDSHAKE_RX);
	if (!t->rx) {
		free(t);
		return NULL;
	}
	t->w = w;
	t->server = server;
	t->fd = fd;
	t->idle_since_ns = t->created_ns = t->last_rx_ns = w->now_ns;
	op_init(&t->op_connect, OP_TUNNEL_CONNECT, 0);
	op_init(&t->op_connect_timeout, OP_TUNNEL_CONNECT_TIMEOUT, 0);
	op_init(&t->op_recv, OP_TUNNEL_RECV, 0);
	op_init(&t->op_send, OP_TUNNEL_SEND, 0);
	list_add(t);
	return t;
}

void tunnel_accept(struct listener *l, int fd)
{
	struct worker *w = l->w;
	WOLFSSL_CTX *ctx;
	struct tunnel *t = tunnel_new(w, true, fd);
	if (!t) {
		close(fd);
		fdb_closed(1);
		return;
	}
	t->pod = pod_ref(l->pod);
	/* The peer address is the source that policy checks: without it (a
	 * peer that reset at once) there is nothing to authorize. */
	socklen_t len = sizeof(t->peer), llen = sizeof(t->local);
	int err = 0;
	if (getpeername(fd, &t->peer.sa, &len) < 0 || getsockname(fd, &t->local.sa, &llen) < 0) {
		err = -errno;
		t->why = "no peer or local address";
	}
	addr_unmap(&t->peer);
	addr_unmap(&t->local);
	if (err == 0 && (err = hbone_server_ctx(t, &ctx)) < 0)
		t->why = "no certificate for the local workload";
	if (err == 0 && (err = tls_init(&t->tls, ctx, true)) == 0)
		tls_check_peer(&t->tls, check_leaf, t);
	if (err < 0 && !t->why)
		t->why = "out of memory (tunnel setup)";
	if (err < 0) {
		t->closing = true;
		t->err = err;
		tunnel_put(t);
		return;
	}
	arm_recv(t);
}

/* --- client side: pool and connect --- */

/* Room for one more stream: under our cap and, once the peer's SETTINGS
 * are known, under its MAX_CONCURRENT_STREAMS (nghttp2 would queue the
 * stream until one of the others ends, however long that takes). */
static bool has_room(const struct tunnel *t, unsigned cap, bool settled)
{
	if (!t->peer_settings)
		return !settled && t->nstreams < cap;
	uint32_t peer = nghttp2_session_get_remote_settings(t->h2,
							    NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
	return t->nstreams < cap && t->nstreams < peer;
}

static bool pool_match(const struct tunnel *t, const struct pod *pod, const char *src,
		       const char *want, const char *alt_key, const union addr *addr, unsigned cap,
		       bool settled)
{
	return !t->server && !t->closing && !t->draining && has_room(t, cap, settled) &&
	       t->pod == pod &&
	       addr_equal(&t->peer, addr) && strcmp(t->want_id, want) == 0 &&
	       strcmp(t->src_id, src) == 0 &&
	       strcmp(t->alt_key ? t->alt_key : "", alt_key ? alt_key : "") == 0;
}

static int copy_alts(struct tunnel *t, const struct service *svc)
{
	if (!svc || !svc->nsans)
		return 0;
	t->alt_ids = calloc(svc->nsans, sizeof(*t->alt_ids));
	t->alt_key = strdup(svc->key);
	if (!t->alt_ids || !t->alt_key)
		return -ENOMEM;
	for (size_t i = 0; i < svc->nsans; i++) {
		if (!(t->alt_ids[i] = strdup(svc->subject_alt_names[i])))
			return -ENOMEM;
		t->nalt++;
	}
	return 0;
}

static int tunnel_connect(struct tunnel *t)
{
	struct worker *w = t->w;
	int fd = pod_socket(t->pod, t->peer.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return fd;
	fdb_opened(1);
	t->fd = fd;
	uint32_t mark = w->opts->mark;
	int one = 1;
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sockopt_keepalive_try(fd, &w->opts->keepalive, "tunnel");	/* server side: listener.c */
	if (io_uring_sq_space_left(&w->ring) < 2)
		io_uring_submit(&w->ring);
	struct io_uring_sqe *sqe = ring_sqe_op(&w->ring, &t->op_connect);
	io_uring_prep_connect(sqe, fd, &t->peer.sa, addr_len(&t->peer));
	sqe->flags |= IOSQE_IO_LINK;
	sqe = ring_sqe_op(&w->ring, &t->op_connect_timeout);
	io_uring_prep_link_timeout(sqe, &w->connect_ts, 0);
	t->inflight += 2;
	return 0;
}

struct tunnel *tunnel_get(struct worker *w, struct pod *pod, const struct local_identity *src,
			  const char *want, const struct service *svc, const union addr *addr,
			  bool settled, int *err)
{
	unsigned cap = w->opts->hbone_max_streams;
	const char *alt_key = svc && svc->nsans ? svc->key : NULL;
	for (struct tunnel *t = w->tunnels; t; t = t->next)
		if (pool_match(t, pod, src->id, want, alt_key, addr, cap, settled))
			return t;
	struct tunnel *t = tunnel_new(w, false, -1);
	if (!t) {
		*err = -ENOMEM;
		return NULL;
	}
	t->pod = pod_ref(pod);
	t->peer = *addr;
	/* A cut identity would let a server whose name is its prefix pass
	 * the identity check: one that does not fit is refused whole. */
	if (snprintf(t->want_id, sizeof(t->want_id), "%s", want) >= (int)sizeof(t->want_id) ||
	    snprintf(t->src_id, sizeof(t->src_id), "%s", src->id) >= (int)sizeof(t->src_id)) {
		t->closing = true;
		t->err = *err = -ENAMETOOLONG;
		t->why = "identity too long";
		tunnel_put(t);
		return NULL;
	}
	if ((*err = copy_alts(t, alt_key ? svc : NULL)) == 0 &&
	    (*err = tls_init(&t->tls, src->client, false)) == 0)
		tls_check_peer(&t->tls, check_leaf, t);
	if (*err < 0 || (*err = new_session(t)) < 0 || (*err = tunnel_connect(t)) < 0) {
		t->closing = true;
		t->err = *err;
		t->why = "tunnel setup";
		tunnel_put(t);
		return NULL;
	}
	return t;
}

void tunnel_on_connect(struct tunnel *t, const struct io_uring_cqe *cqe)
{
	t->inflight--;
	if (!t->closing && cqe->res < 0) {
		int err = cqe->res == -ECANCELED ? -ETIMEDOUT : cqe->res;
		tunnel_close(t, err, "tunnel connect");
	} else if (!t->closing) {
		socklen_t len = sizeof(t->local);
		if (getsockname(t->fd, &t->local.sa, &len) < 0) {
			tunnel_close(t, -errno, "no local address");
			tunnel_put(t);
			return;
		}
		int err = tls_handshake(&t->tls);	/* writes the ClientHello */
		if (err != -EAGAIN && err != 0)
			handshake_failed(t, err);
		else {
			kick_send(t);
			arm_recv(t);
		}
	}
	tunnel_put(t);
}

void tunnel_on_connect_timeout(struct tunnel *t, const struct io_uring_cqe *cqe)
{
	t->inflight--;
	tunnel_put(t);
}

/* A client tunnel that may open no more streams leaves the pool: new
 * connections get a fresh tunnel, its own streams run to their end, and
 * the tick closes it once it has none (as after a GOAWAY). */
static void retire(struct tunnel *t, const char *why)
{
	struct log_line l;
	char a[ADDR_STRLEN];
	t->draining = true;
	if (log_begin(&l, LOG_DEBUG, "tunnel retired")) {
		log_str(&l, "peer", addr_format(&t->peer, a, sizeof(a)));
		log_str(&l, "peer_identity", t->want_id);
		log_u64(&l, "streams", t->opened);
		log_str(&l, "reason", why);
		log_end(&l);
	}
}

int tunnel_open_stream(struct tunnel *t, struct conn *c, const union addr *authority,
		       const union addr *src)
{
	char auth[ADDR_STRLEN], fwd[ADDR_STRLEN + 16], s[ADDR_STRLEN];
	addr_format(authority, auth, sizeof(auth));
	snprintf(fwd, sizeof(fwd), "for=\"%s\"", addr_format(src, s, sizeof(s)));
	const nghttp2_nv hdrs[] = {
		{ (uint8_t *)":method", (uint8_t *)"CONNECT", 7, 7, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":authority", (uint8_t *)auth, 10, strlen(auth), NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"forwarded", (uint8_t *)fwd, 9, strlen(fwd), NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider dp = { .source.ptr = c, .read_callback = pump_hbone_read };
	int32_t id = nghttp2_submit_request(t->h2, NULL, hdrs, 3, &dp, c);
	if (id < 0)	/* no IDs left cannot happen: the tunnel retired at its last */
		return id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? -EAGAIN : -EPROTO;
	c->tunnel = t;
	c->stream_id = id;
	t->nstreams++;
	t->opened++;
	unsigned life = t->w->opts->hbone_tunnel_streams;
	if (life && t->opened >= life)
		retire(t, "stream limit reached");
	else if (nghttp2_session_get_next_stream_id(t->h2) > INT32_MAX)
		retire(t, "stream IDs exhausted");
	tunnel_flush(t);
	return 0;
}

void tunnel_detach(struct tunnel *t, struct conn *c, bool reset)
{
	if (c->tunnel != t)
		return;
	if (!t->closing)
		nghttp2_session_consume(t->h2, c->stream_id, pump_hbone_queued(c));
	c->tunnel = NULL;
	t->nstreams--;
	if (!t->nstreams)
		t->idle_since_ns = t->w->now_ns;
	nghttp2_session_set_stream_user_data(t->h2, c->stream_id, NULL);
	if (reset && !t->closing) {
		/* A stream that cannot be reset would hang its client: the
		 * tunnel goes instead. */
		if (nghttp2_submit_rst_stream(t->h2, NGHTTP2_FLAG_NONE, c->stream_id,
					      NGHTTP2_CANCEL) != 0)
			tunnel_close(t, -ENOMEM, "out of memory (stream reset)");
		else
			tunnel_flush(t);
	}
}

#define PING_NS (10 * 1000000000ull)

/* Handshake deadline and keepalive. True if t was closed. */
static bool check_liveness(struct tunnel *t)
{
	struct worker *w = t->w;
	if (!t->ready && w->now_ns - t->created_ns >= w->opts->connect_timeout_ms * 1000000ull) {
		t->why = "tls handshake timeout";
		handshake_failed(t, -ETIMEDOUT);
		tunnel_put(t);
		return true;
	}
	if (t->server || !t->ready)
		return false;
	if (t->ping_sent_ns && w->now_ns - t->ping_sent_ns >= PING_NS) {
		tunnel_close(t, -ETIMEDOUT, "ping timeout");
		tunnel_put(t);
		return true;
	}
	if (!t->ping_sent_ns && w->now_ns - t->last_rx_ns >= PING_NS) {
		nghttp2_submit_ping(t->h2, NGHTTP2_FLAG_NONE, NULL);
		t->ping_sent_ns = w->now_ns;
		tunnel_flush(t);
	}
	return false;
}

void tunnel_tick(struct worker *w)
{
	uint64_t idle = w->opts->hbone_idle_timeout_ms * 1000000ull;
	struct tunnel *t = w->tunnels;
	while (t) {
		struct tunnel *next = t->next;
		if (t->lingering && !t->linger_cancelled && t->inflight &&
		    (w->draining || w->now_ns - t->linger_since_ns >= LINGER_NS)) {
			t->linger_cancelled = true;
			ring_cancel_fd(&w->ring, t->fd);
		}
		if (!t->closing && check_liveness(t)) {
			t = next;
			continue;
		}
		if (t->nstreams == 0)
			tls_out_shrink(&t->tls);	/* an idle tunnel keeps no bulk buffers */
		/* Idle pooled tunnels go after the timeout; while draining (the
		 * worker, the tunnel's pod, or the peer: GOAWAY), a tunnel
		 * without streams has nothing left to carry. */
		if (!t->closing && t->nstreams == 0 &&
		    ((!t->server && w->now_ns - t->idle_since_ns >= idle) || w->draining ||
		     t->draining)) {
			tunnel_close(t, 0, w->draining || t->draining ? "drained" : "idle");
			tunnel_put(t);
		}
		t = next;
	}
}

void tunnel_drain(struct tunnel *t)
{
	if (t->closing || t->draining)
		return;
	t->draining = true;
	if (t->server && t->ready) {
		nghttp2_submit_goaway(t->h2, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(t->h2),
				      NGHTTP2_NO_ERROR, NULL, 0);
		tunnel_flush(t);
	}
}

void tunnel_drain_all(struct worker *w)
{
	for (struct tunnel *t = w->tunnels; t; t = t->next)
		tunnel_drain(t);
}
