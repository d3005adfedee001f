/*
 * HBONE: HTTP/2 CONNECT over mutual TLS, wire-compatible with Istio's
 * ztunnel.
 *
 * Client (outbound to an HBONE workload): a CONNECT stream on a pooled
 * tunnel to <endpoint ip>:15008, `:authority` = endpoint ip:target port,
 * `forwarded: for="<client ip:port>"`; bytes flow once the server answers
 * 200. Server (port 15008): the client's chain is verified against the
 * trust bundle and its SPIFFE identity must be in our trust domain; the
 * request must be a CONNECT whose `:authority` is a local workload's
 * ip:port (else 400 when malformed, 401 when not allowed); zring connects
 * there and answers 200 only once the upstream connection is up, 503 when
 * it fails.
 */
#ifndef ZRING_HBONE_H
#define ZRING_HBONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "zring/addr.h"

struct conn;
struct tunnel;
struct worker;

/* Outbound: carry conn c (routed to an HBONE workload) through a tunnel.
 * 0 or -errno (the caller closes c). */
int hbone_client_start(struct conn *c);

/* The server refused c's stream unprocessed (REFUSED_STREAM, RFC 9113
 * 8.7), before any answer: open it again, on a tunnel whose peer's
 * SETTINGS are known and leave room, or on a new one, up to
 * HBONE_REFUSED_RETRIES times. 0 retried; -EAGAIN not retried (the
 * caller resets c); other -errno: the new stream failed (c->why says). */
#define HBONE_REFUSED_RETRIES 3
int hbone_client_retry(struct conn *c);

/* Server side: the TLS context for the local workload at t->local (in
 * node-agent mode, only if that is t's pod). 0 or -ENOENT. */
int hbone_server_ctx(struct tunnel *t, WOLFSSL_CTX **ctx);
bool hbone_trusted_peer(struct tunnel *t, const char *peer_id);

/* Tunnel callbacks. */
int hbone_server_begin(struct tunnel *t, int32_t stream_id);
void hbone_header(struct conn *c, const char *name, size_t namelen, const char *value,
		  size_t valuelen);
void hbone_headers_done(struct conn *c);
void hbone_tunnel_ready(struct tunnel *t);

/* The upstream connect of an inbound HBONE stream finished with `res`. */
void hbone_connected(struct conn *c, int res);

/* The stream <-> socket pump (pump_hbone.c). */
extern const struct pump_ops pump_hbone_ops;
ssize_t pump_hbone_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
			uint32_t *flags, nghttp2_data_source *src, void *ud);
int pump_hbone_data(struct conn *c, const uint8_t *data, size_t len);
/* nghttp2 sends a DATA frame whose payload pump_hbone_read left in place. */
int pump_hbone_send_data(struct tunnel *t, struct conn *c, const uint8_t *framehd, size_t length);
void pump_hbone_end(struct conn *c);
/* Stream bytes received but not yet written to the socket. */
size_t pump_hbone_queued(const struct conn *c);
void pump_hbone_stream_closed(struct conn *c, uint32_t code);

#endif
