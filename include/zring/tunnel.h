/*
 * An HBONE tunnel: one TCP connection to (or from) a peer zring on port
 * 15008, carrying TLS 1.3 (wolfSSL, memory-buffer I/O) and HTTP/2
 * (nghttp2), with one HTTP/2 CONNECT stream per proxied connection.
 *
 * io_uring moves the ciphertext: a recv into the tunnel's buffer feeds
 * wolfSSL, whose plaintext feeds nghttp2; nghttp2's output is encrypted
 * into the TLS output buffer and sent. The tunnel owns its socket, TLS
 * session and HTTP/2 session; each stream belongs to a conn (its user
 * data), which the tunnel calls back for response headers, data and
 * stream end. A tunnel is freed like a conn: cancel, reap, then free.
 *
 * Client tunnels are pooled per worker, keyed by (source identity,
 * destination identity, destination address, and in node-agent mode the
 * source pod, whose network namespace the socket lives in), up to --hbone-max-streams
 * streams each, and closed after --hbone-idle-timeout without streams.
 * An idle client tunnel sends an HTTP/2 PING every 10 s and is closed if
 * nothing comes back within 10 s more; a tunnel whose TLS handshake has
 * not finished within the connect timeout is closed (slow or garbage
 * peers cost one 64 KiB buffer for that long, no more).
 */
#ifndef ZRING_TUNNEL_H
#define ZRING_TUNNEL_H

#include <liburing.h>
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>

#include "zring/addr.h"
#include "zring/op.h"
#include "zring/tls.h"

struct worker;
struct conn;
struct listener;
struct local_identity;
struct pod;

#define TUNNEL_RX_SIZE (64 * 1024)
#define TUNNEL_HANDSHAKE_RX 4096	/* the receive buffer until the handshake is done */
#define TUNNEL_ID_MAX 256

struct tunnel {
	struct worker *w;
	struct tunnel *prev, *next;	/* worker's list */
	struct pod *pod;		/* node-agent mode: the pod it serves (a reference) */
	int fd;
	bool server;
	struct tls tls;
	nghttp2_session *h2;
	struct op op_connect;
	struct op op_connect_timeout;
	struct op op_recv;
	struct op op_send;
	struct op op_ping;		/* keepalive timer (client) */
	uint8_t inflight;
	bool recv_armed;
	bool send_armed;
	bool ready;			/* handshake done, ALPN h2, peer verified */
	bool tls_failed;		/* the handshake failed: streams end as TLS_FAILURE */
	bool closing;
	bool draining;			/* no new streams (GOAWAY either way) */
	/* Inside nghttp2_session_mem_recv or _send, whose callbacks must not
	 * call _send again: tunnel_flush then only marks flush_due, and the
	 * caller flushes once nghttp2 has returned. */
	bool in_h2;
	bool flush_due;
	bool peer_settings;		/* the peer's SETTINGS arrived: its limits are known */
	bool lingering;			/* handshake failed: alert sent, reading until the peer closes */
	bool linger_cancelled;
	uint64_t linger_since_ns;
	uint8_t *rx;
	union addr peer;
	union addr local;
	char peer_id[TUNNEL_ID_MAX];	/* verified peer identity */
	char want_id[TUNNEL_ID_MAX];	/* client: the identity the server must have */
	char src_id[TUNNEL_ID_MAX];	/* client: our identity */
	/* client, routed through a service: its subjectAltNames are accepted
	 * too; alt_key ("ns/hostname") keeps such tunnels apart in the pool */
	char **alt_ids;
	size_t nalt;
	char *alt_key;
	uint64_t created_ns;
	uint64_t last_rx_ns;		/* for keepalive pings */
	uint64_t ping_sent_ns;
	unsigned nstreams;
	unsigned opened;		/* client: streams opened over its life */
	uint64_t idle_since_ns;
	int err;
	const char *why;
};

/* Server side: take an accepted socket from the 15008 listener. */
void tunnel_accept(struct listener *l, int fd);

/*
 * Client side: a tunnel from identity `src` to the peer at `addr` that
 * must prove identity `want`, from the worker's pool (one with room for a
 * stream, within the peer's MAX_CONCURRENT_STREAMS once known) or newly
 * connecting, its socket in `pod`'s network namespace (NULL: zring's own).
 * `settled`: reuse only a tunnel whose peer's SETTINGS arrived. NULL with
 * *err on failure.
 */
struct service;
struct tunnel *tunnel_get(struct worker *w, struct pod *pod, const struct local_identity *src,
			  const char *want, const struct service *svc, const union addr *addr,
			  bool settled, int *err);

/* Open a CONNECT stream for c to `authority` ("ip:port"), with the client's
 * address in a forwarded header. 0 or -errno; c->stream_id is set. */
int tunnel_open_stream(struct tunnel *t, struct conn *c, const union addr *authority,
		       const union addr *src);

/* Push pending HTTP/2 output through TLS to the socket. */
void tunnel_flush(struct tunnel *t);

/* A conn leaves its stream (it is being freed): reset the stream if it is
 * still open. */
void tunnel_detach(struct tunnel *t, struct conn *c, bool reset);

/* Close, resetting every stream. Idempotent. */
void tunnel_close(struct tunnel *t, int err, const char *why);

/* Free t if it is closing and nothing is in flight. */
void tunnel_put(struct tunnel *t);

/* No new streams on t (a server tunnel sends GOAWAY); the worker tick
 * closes it once its last stream has ended. */
void tunnel_drain(struct tunnel *t);

/* Close idle pooled tunnels (worker tick) and, when draining, send GOAWAY. */
void tunnel_tick(struct worker *w);
void tunnel_drain_all(struct worker *w);

void tunnel_on_connect(struct tunnel *t, const struct io_uring_cqe *cqe);
void tunnel_on_connect_timeout(struct tunnel *t, const struct io_uring_cqe *cqe);
void tunnel_on_recv(struct tunnel *t, const struct io_uring_cqe *cqe);
void tunnel_on_send(struct tunnel *t, const struct io_uring_cqe *cqe);

#endif
