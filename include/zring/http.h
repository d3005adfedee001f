/*
 * A small HTTP/1.1 server for the admin, readiness and metrics endpoints.
 * It runs on the control thread's io_uring, off the data path, and is built
 * to survive abuse rather than to be fast.
 *
 * Requests are parsed by http_parser (Debian's libhttp-parser) into an
 * http_reader; an http_route table maps (path, method) to a handler that
 * fills an http_response. One request is handled at a time per connection:
 * sequential (and pipelined) requests share a keep-alive connection;
 * `Connection: close` and HTTP/1.0 close it after the response.
 *
 * Limits, each answered with its status and then the connection closed:
 *   - HTTP_MAX_HEADER bytes of request line and headers (431),
 *   - HTTP_MAX_TARGET bytes of request target (414),
 *   - HTTP_MAX_BODY bytes of body: these endpoints take none (413),
 *   - anything http_parser refuses (400).
 * And without an answer:
 *   - more than max_clients connections at once: new ones closed at once,
 *   - no complete request within HTTP_REQUEST_TIMEOUT_MS of the connection
 *     (or of the previous response) being ready: closed (slowloris, idle
 *     keep-alive),
 *   - a send that makes no progress for HTTP_SEND_TIMEOUT_MS: closed (a
 *     client that never reads its response).
 * After a response that closes, the socket is shut down for writing and the
 * client's remaining bytes are read and dropped for up to HTTP_LINGER_MS, so
 * the response is not destroyed by a reset (lingering close).
 * Out of descriptors on accept (EMFILE), accepting pauses on a timer, as the
 * workers' listeners do: it never spins.
 *
 * Lifetimes: every in-flight SQE is an op embedded in the server or in a
 * client; recv and send carry a linked timeout. Owners count in-flight ops
 * and a client is freed (its socket closed) only after every completion.
 */
#ifndef ZRING_HTTP_H
#define ZRING_HTTP_H

#include <http_parser.h>
#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zring/addr.h"
#include "zring/op.h"
#include "zring/strbuf.h"

#define HTTP_MAX_HEADER (8u * 1024)
#define HTTP_MAX_TARGET (4u * 1024)
#define HTTP_MAX_BODY 1024u
#define HTTP_MAX_CLIENTS 128u
#define HTTP_REQUEST_TIMEOUT_MS 5000u
#define HTTP_SEND_TIMEOUT_MS 5000u
#define HTTP_LINGER_MS 1000u
#define HTTP_RECV_BUF 4096u

/* Methods, as bits so that a route can take several (http_parser's own
 * enum http_method holds the HTTP_GET names). */
enum {
	HTTP_M_GET = 1u << 0,
	HTTP_M_HEAD = 1u << 1,	/* served wherever GET is, without the body */
	HTTP_M_POST = 1u << 2,
	HTTP_M_PUT = 1u << 3,
	HTTP_M_DELETE = 1u << 4,
	HTTP_M_OTHER = 1u << 5,	/* any other method: no route takes it */
};

struct http_request {
	unsigned method;	/* one HTTP_M_* bit */
	const char *path;	/* "/healthz/ready": no query, not decoded */
	const char *query;	/* after '?', "" when none; see http_query_get */
	unsigned http_minor;	/* 1.0 or 1.1 */
};

/*
 * A body written while it is sent, for documents too big to hold whole
 * (the config dump): the server asks for the next piece each time the
 * previous one is out, so a response holds one piece in memory, and the
 * loop does one piece of work at a time between its other requests, at
 * the pace the client reads. Sent with `Transfer-Encoding: chunked`, or to
 * an HTTP/1.0 client without framing, ended by closing the connection.
 */
struct http_body_src {
	/* Append the next piece to out. Returns 1 when more follows, 0 after
	 * the last piece, -errno on failure: the response is cut (the
	 * connection closes before the last chunk, so the client sees an
	 * incomplete body, never a short one that looks whole). NULL: none. */
	int (*next)(void *ctx, struct strbuf *out);
	/* Called once when the response is done with ctx: sent, cut, or
	 * dropped unsent (HEAD, a closed connection, http_response_deinit). */
	void (*free)(void *ctx);
	void *ctx;
};

struct http_response {
	int status;			/* 200 unless the handler says otherwise */
	const char *content_type;	/* NULL: text/plain; charset=utf-8 */
	struct strbuf body;
	struct http_body_src src;	/* instead of body: see above */
	unsigned allow;			/* 405: the methods the path takes */
	unsigned retry_after;		/* seconds, for a Retry-After header; 0: none */
	unsigned http_minor;		/* the request's (1 unless set): 0 takes no chunks */
	bool close;			/* close the connection after this one */
};

/* A handler fills resp (status, body); `arg` is the server's. */
typedef void (*http_handler)(void *arg, const struct http_request *req,
			     struct http_response *resp);

struct http_route {
	const char *path;	/* matched exactly; NULL ends a table */
	unsigned methods;	/* HTTP_M_* bits */
	http_handler fn;
	const char *help;	/* one line for an index page */
};

/* ---- pure parts (no sockets): src/http_request.c ---- */

/*
 * The request being read on one connection: http_parser plus what its
 * callbacks collected. Feed it bytes as they arrive.
 */
struct http_reader {
	http_parser parser;
	struct strbuf target;	/* the request target, as sent */
	size_t body_len;
	int status;		/* an error a callback found (413, 414), or 0 */
	bool done;		/* a whole request is in (parser paused) */
	char *path;		/* parsed from target once done (owned) */
	struct http_request req;
};

void http_reader_init(struct http_reader *r);
void http_reader_deinit(struct http_reader *r);

/*
 * Parse up to len bytes; *used says how many were consumed.
 * Returns 0 when more bytes are needed, 1 when a whole request is in
 * r->req (bytes after it are left unconsumed for the next one), or an HTTP
 * status >= 400 for a request that must be answered with it and the
 * connection closed (400 garbage, 413 body, 414 target, 431 headers).
 * -ENOMEM when out of memory.
 */
int http_reader_feed(struct http_reader *r, const char *buf, size_t len, size_t *used);

/* After a response: ready for the next request on the same connection. */
void http_reader_next(struct http_reader *r);

/* May the connection stay open after this request's response? False for
 * HTTP/1.0, `Connection: close` and upgrades. */
bool http_reader_keep_alive(const struct http_reader *r);

/*
 * Find the route for path and method. Returns it, or NULL with *status 404
 * (no such path) or 405 (*allow: the methods the path takes).
 */
const struct http_route *http_route_find(const struct http_route *routes, const char *path,
					 unsigned method, int *status, unsigned *allow);

/*
 * The value of `key` in a query string ("a=1&level=debug"), percent- and
 * '+'-decoded into out (len bytes, NUL-terminated). A key without '=' has
 * the value "". Returns 0, -ENOENT (absent), -EINVAL (bad escape or a NUL)
 * or -ENAMETOOLONG (does not fit).
 */
int http_query_get(const char *query, const char *key, char *out, size_t len);

/* The reason phrase of a status ("Not Found"); "Unknown" for others. */
const char *http_reason(int status);

/* "GET, HEAD, POST" for a set of method bits, into buf. */
const char *http_methods_format(unsigned methods, char *buf, size_t len);

/*
 * Status line, headers and (unless HEAD) body of resp into out.
 * `keep_alive` false adds `Connection: close`. With a body source, only
 * the head, which says how the body is framed (chunked for HTTP/1.1; for
 * HTTP/1.0, neither length nor chunks: `keep_alive` must be false).
 * Returns 0 or -ENOMEM.
 */
int http_response_format(const struct http_response *resp, unsigned method,
			 bool keep_alive, struct strbuf *out);

void http_response_init(struct http_response *resp);
/* Frees the body, and the body source's ctx if it still holds one. */
void http_response_deinit(struct http_response *resp);

/* ---- the server: src/http.c ---- */

struct http_client;

struct http_server {
	const char *name;		/* "admin", "readiness", "metrics": for logs */
	union addr addr;
	int fd;
	struct io_uring *ring;		/* set by http_server_start */
	const struct http_route *routes;
	void *arg;			/* handlers' argument */
	unsigned max_clients;
	struct http_client *clients;	/* open connections */
	unsigned nclients;
	struct op op_accept;
	struct op op_retry;
	struct __kernel_timespec retry_ts;
	unsigned inflight;		/* accept + retry timer */
	bool accepting;
	bool retry_armed;
	bool paused;			/* out of descriptors */
	bool closing;
	uint64_t rejected;		/* connections closed over max_clients */
	uint64_t warned_ns;		/* last warning (rate limit) */
};

/*
 * Open, bind and listen on addr (an unspecified IPv6 address is dual-stack).
 * The socket exists from here, so bind errors surface at startup; nothing
 * is accepted before http_server_start. `routes` (NULL-terminated) and
 * `arg` must outlive the server. Returns 0 or -errno.
 */
int http_server_open(struct http_server *s, const char *name, const union addr *addr,
		     const struct http_route *routes, void *arg);

/* Start accepting on `ring` (the caller's thread owns it from now on). */
void http_server_start(struct http_server *s, struct io_uring *ring);

/*
 * Stop: no new connections; idle and reading clients are closed, a
 * response being sent is finished first, as long as each send makes
 * progress within a second; a body still being written (http_body_src)
 * is cut: however slowly its client reads, it does not hold the exit.
 * http_server_idle turns true once every op has completed.
 */
void http_server_close(struct http_server *s);

bool http_server_idle(const struct http_server *s);

/* Close the listening socket; the server must be idle (or never started). */
void http_server_deinit(struct http_server *s);

/* Dispatch a completion whose op is one of the OP_HTTP_* types. */
void http_on_cqe(struct op *op, const struct io_uring_cqe *cqe);

#endif
