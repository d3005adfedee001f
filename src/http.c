/*
 * The HTTP server's socket half: accept, per-connection recv / respond /
 * send with linked timeouts, lingering close, and the limits that keep it
 * alive under abuse. See include/zring/http.h.
 */
#include "zring/http.h"
#include "zring/fdbudget.h"
#include "zring/log.h"
#include "zring/ring.h"
#include "zring/util.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BACKLOG 128
#define ACCEPT_RETRY_MS 100
#define WARN_EVERY_NS (10 * 1000000000ull)
/* Once the server closes, a send may stall this long, not the full send
 * timeout: nobody should wait on a client that does not read to exit. */
#define CLOSE_GRACE_MS 1000

enum client_state {
	C_READ,		/* waiting for (the rest of) a request */
	C_SEND,		/* writing a response */
	C_LINGER,	/* response out, write side shut: dropping what comes in */
};

struct http_client {
	struct http_server *srv;
	struct http_client *prev, *next;
	int fd;
	uint8_t state;		/* enum client_state */
	bool recv_armed;
	bool send_armed;
	bool close_after;	/* no keep-alive: close once the response is out */
	bool closing;		/* ops cancelled; freed when none is in flight */
	unsigned inflight;
	uint64_t deadline_ns;	/* C_READ: the request; C_LINGER: the linger */
	struct op op_recv, op_recv_timeout, op_send, op_send_timeout;
	struct __kernel_timespec recv_ts, send_ts;
	struct http_reader reader;
	struct strbuf out;	/* what is being sent */
	size_t out_off;
	struct http_body_src src;	/* a body still being written, or none */
	bool chunked;		/* src's pieces are sent as chunks */
	struct strbuf piece;	/* src's next piece, before framing */
	size_t in_off, in_len;	/* unparsed bytes are in[in_off, in_len) */
	char in[HTTP_RECV_BUF];
};

static void client_close(struct http_client *c);
static void client_process(struct http_client *c);

static void ts_set(struct __kernel_timespec *ts, uint64_t ns)
{
	ts->tv_sec = (long long)(ns / 1000000000ull);
	ts->tv_nsec = (long long)(ns % 1000000000ull);
}

/* ---- the listening socket ---- */

int http_server_open(struct http_server *s, const char *name, const union addr *addr,
		     const struct http_route *routes, void *arg)
{
	int one = 1, zero = 0;
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	int fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* No SO_REUSEPORT: a second zring in the same network namespace must
	 * fail to start rather than share our admin port. An unspecified IPv6
	 * address also takes IPv4, so a probe reaches [::]:15021 either way. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (addr->sa.sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, addr_is_any(addr) ? &zero : &one,
			sizeof(int)) < 0) ||
	    bind(fd, &addr->sa, addr_len(addr)) < 0 || listen(fd, BACKLOG) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	s->name = name;
	s->addr = *addr;
	s->fd = fd;
	s->routes = routes;
	s->arg = arg;
	s->max_clients = HTTP_MAX_CLIENTS;
	op_init(&s->op_accept, OP_HTTP_ACCEPT, 0);
	op_init(&s->op_retry, OP_HTTP_ACCEPT_RETRY, 0);
	ts_set(&s->retry_ts, ACCEPT_RETRY_MS * 1000000ull);
	return 0;
}

static void server_arm(struct http_server *s)
{
	if (s->accepting || s->paused || s->closing || !s->ring)
		return;
	struct io_uring_sqe *sqe = ring_sqe_op(s->ring, &s->op_accept);
	io_uring_prep_multishot_accept(sqe, s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	s->accepting = true;
	s->inflight++;
}

void http_server_start(struct http_server *s, struct io_uring *ring)
{
	s->ring = ring;
	server_arm(s);
}

/* Rate-limited warning: at most one per WARN_EVERY_NS and server. */
static void server_warn(struct http_server *s, const char *msg, int err)
{
	uint64_t now = now_ns();
	if (s->warned_ns && now - s->warned_ns < WARN_EVERY_NS)
		return;
	s->warned_ns = now;
	struct log_line l;
	char buf[ADDR_STRLEN];
	if (!log_begin(&l, LOG_WARN, msg))
		return;
	log_str(&l, "server", s->name);
	log_str(&l, "addr", addr_format(&s->addr, buf, sizeof(buf)));
	if (err)
		log_err(&l, "error", err);
	log_u64(&l, "clients", s->nclients);
	log_u64(&l, "max_clients", s->max_clients);
	log_u64(&l, "rejected", s->rejected);
	log_end(&l);
}

/* Out of descriptors (or unknown trouble): retry on a timer, never spin. */
static void server_pause(struct http_server *s, int err)
{
	server_warn(s, "http accept paused", err);
	s->paused = true;
	if (s->retry_armed)
		return;
	struct io_uring_sqe *sqe = ring_sqe_op(s->ring, &s->op_retry);
	io_uring_prep_timeout(sqe, &s->retry_ts, 0, 0);
	s->retry_armed = true;
	s->inflight++;
}

static void drop_fd(int fd)
{
	close(fd);
	fdb_closed(1);
}

static void client_new(struct http_server *s, int fd);

static void on_accept(struct http_server *s, const struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		s->accepting = false;
		s->inflight--;
	}
	int res = cqe->res;
	if (res >= 0) {
		fdb_opened(1);
		if (s->closing) {
			drop_fd(res);
		} else if (s->nclients >= s->max_clients) {
			s->rejected++;
			drop_fd(res);
			server_warn(s, "http client limit reached: closing new connections", 0);
		} else {
			client_new(s, res);
		}
	} else if (res != -ECANCELED && res != -ECONNABORTED && res != -EINTR) {
		server_pause(s, res);	/* EMFILE, ENFILE, ENOBUFS, ENOMEM, ... */
	}
	server_arm(s);
}

static void on_retry(struct http_server *s)
{
	s->retry_armed = false;
	s->inflight--;
	s->paused = false;
	server_arm(s);
}

/* ---- one connection ---- */

static void client_new(struct http_server *s, int fd)
{
	struct http_client *c = malloc(sizeof(*c));
	if (!c) {
		drop_fd(fd);
		return;
	}
	memset(c, 0, offsetof(struct http_client, in));
	c->srv = s;
	c->fd = fd;
	op_init(&c->op_recv, OP_HTTP_RECV, 0);
	op_init(&c->op_recv_timeout, OP_HTTP_RECV_TIMEOUT, 0);
	op_init(&c->op_send, OP_HTTP_SEND, 0);
	op_init(&c->op_send_timeout, OP_HTTP_SEND_TIMEOUT, 0);
	http_reader_init(&c->reader);
	strbuf_init(&c->out);
	strbuf_init(&c->piece);
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	s->nclients++;
	c->state = C_READ;
	c->deadline_ns = now_ns() + HTTP_REQUEST_TIMEOUT_MS * 1000000ull;
	client_process(c);
}

/* The body source is done with (sent, cut, or never to be sent). */
static void src_end(struct http_client *c)
{
	if (c->src.free)
		c->src.free(c->src.ctx);
	c->src = (struct http_body_src){ 0 };
	strbuf_deinit(&c->piece);
}

static void client_free(struct http_client *c)
{
	struct http_server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nclients--;
	drop_fd(c->fd);
	src_end(c);
	http_reader_deinit(&c->reader);
	strbuf_deinit(&c->out);
	free(c);
}

static void maybe_free(struct http_client *c)
{
	if (c->closing && c->inflight == 0)
		client_free(c);
}

static void client_close(struct http_client *c)
{
	if (c->closing)
		return;
	c->closing = true;
	/* Only while something is in flight: once nothing is, the descriptor
	 * is closed at once and its number may be reused. */
	if (c->inflight)
		ring_cancel_fd(c->srv->ring, c->fd);
	maybe_free(c);
}

/* An op and its linked timeout must reach the kernel in one submit. */
static void link_timeout(struct http_client *c, struct io_uring_sqe *sqe, struct op *op,
			 struct __kernel_timespec *ts)
{
	sqe->flags |= IOSQE_IO_LINK;
	struct io_uring_sqe *t = ring_sqe_op(c->srv->ring, op);
	io_uring_prep_link_timeout(t, ts, 0);
	c->inflight += 2;
}

static void arm_recv(struct http_client *c)
{
	uint64_t now = now_ns();
	if (now >= c->deadline_ns) {
		client_close(c);	/* too slow: no whole request in time */
		return;
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	ts_set(&c->recv_ts, c->deadline_ns - now);
	struct io_uring *ring = c->srv->ring;
	if (io_uring_sq_space_left(ring) < 2)
		io_uring_submit(ring);
	struct io_uring_sqe *sqe = ring_sqe_op(ring, &c->op_recv);
	io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
	link_timeout(c, sqe, &c->op_recv_timeout, &c->recv_ts);
	c->recv_armed = true;
}

static void start_send(struct http_client *c)
{
	struct io_uring *ring = c->srv->ring;
	ts_set(&c->send_ts, (c->srv->closing ? CLOSE_GRACE_MS : HTTP_SEND_TIMEOUT_MS) * 1000000ull);
	if (io_uring_sq_space_left(ring) < 2)
		io_uring_submit(ring);
	struct io_uring_sqe *sqe = ring_sqe_op(ring, &c->op_send);
	io_uring_prep_send(sqe, c->fd, c->out.buf + c->out_off, c->out.len - c->out_off,
			   MSG_NOSIGNAL);
	link_timeout(c, sqe, &c->op_send_timeout, &c->send_ts);
	c->send_armed = true;
}

static void queue_response(struct http_client *c, struct http_response *resp,
			   unsigned method, bool keep_alive)
{
	c->close_after = !keep_alive;
	strbuf_reset(&c->out);
	c->out_off = 0;
	if (http_response_format(resp, method, keep_alive, &c->out) < 0 || !c->out.len) {
		client_close(c);
		return;
	}
	if (resp->src.next && method != HTTP_M_HEAD) {
		c->src = resp->src;	/* moved: written as it is sent */
		resp->src = (struct http_body_src){ 0 };
		c->chunked = resp->http_minor >= 1;
	}
	c->state = C_SEND;
	start_send(c);
}

static void respond_error(struct http_client *c, int status)
{
	struct http_response resp;
	http_response_init(&resp);
	resp.status = status;
	strbuf_printf(&resp.body, "%d %s\n", status, http_reason(status));
	queue_response(c, &resp, HTTP_M_GET, false);
	http_response_deinit(&resp);
}

static void log_request(const struct http_client *c, int status)
{
	struct log_line l;
	if (!log_begin(&l, LOG_DEBUG, "http request"))
		return;
	log_str(&l, "server", c->srv->name);
	log_str(&l, "method", http_method_str((enum http_method)c->reader.parser.method));
	log_str(&l, "path", c->reader.req.path);
	log_u64(&l, "status", (uint64_t)status);
	log_end(&l);
}

static void respond(struct http_client *c)
{
	const struct http_request *req = &c->reader.req;
	struct http_response resp;
	int status;
	http_response_init(&resp);
	const struct http_route *rt = http_route_find(c->srv->routes, req->path, req->method,
						      &status, &resp.allow);
	if (rt) {
		rt->fn(c->srv->arg, req, &resp);
	} else {
		resp.status = status;
		strbuf_printf(&resp.body, "%d %s\n", status, http_reason(status));
	}
	resp.http_minor = req->http_minor;
	bool keep = http_reader_keep_alive(&c->reader) && !resp.close && !c->srv->closing;
	log_request(c, resp.status);
	queue_response(c, &resp, req->method, keep);
	http_response_deinit(&resp);
}

/* Parse what is buffered: answer a whole request, or read more. */
static void client_process(struct http_client *c)
{
	size_t used;
	int ret = http_reader_feed(&c->reader, c->in + c->in_off, c->in_len - c->in_off, &used);
	c->in_off += used;
	if (ret == 0)
		arm_recv(c);
	else if (ret == 1)
		respond(c);
	else if (ret >= 400)
		respond_error(c, ret);
	else
		client_close(c);
}

/* Answered and closing: shut our side, then drop what the client still
 * sends, so that a close with unread bytes does not reset the answer away. */
static void linger(struct http_client *c)
{
	shutdown(c->fd, SHUT_WR);
	if (c->srv->closing) {
		client_close(c);
		return;
	}
	c->state = C_LINGER;
	c->in_off = c->in_len = 0;
	c->deadline_ns = now_ns() + HTTP_LINGER_MS * 1000000ull;
	arm_recv(c);
}

static void sent(struct http_client *c)
{
	/* Freed, not kept: one large answer must not pin its size for the
	 * rest of a keep-alive connection. */
	strbuf_deinit(&c->out);
	c->out_off = 0;
	if (c->close_after || c->srv->closing) {
		linger(c);
		return;
	}
	http_reader_next(&c->reader);
	c->state = C_READ;
	c->deadline_ns = now_ns() + HTTP_REQUEST_TIMEOUT_MS * 1000000ull;
	client_process(c);	/* a pipelined request may be buffered already */
}

static void on_recv(struct http_client *c, int res)
{
	c->recv_armed = false;
	c->inflight--;
	if (c->closing) {
		maybe_free(c);
		return;
	}
	if (res <= 0) {
		client_close(c);	/* EOF, error, or the deadline cancelled it */
		return;
	}
	if (c->state == C_LINGER) {
		arm_recv(c);		/* dropped: in_off == in_len */
		return;
	}
	c->in_len += (size_t)res;
	client_process(c);
}

/* Frame src's next piece into out: "<hex length>\r\n<piece>\r\n", and
 * after the last one the empty chunk that ends the body. */
static void frame_piece(struct http_client *c, int more)
{
	if (!c->chunked) {
		strbuf_add(&c->out, c->piece.buf, c->piece.len);
	} else if (c->piece.len) {
		strbuf_printf(&c->out, "%zx\r\n", c->piece.len);
		strbuf_add(&c->out, c->piece.buf, c->piece.len);
		strbuf_puts(&c->out, "\r\n");
	}
	if (!more && c->chunked)
		strbuf_puts(&c->out, "0\r\n\r\n");
}

/* What was queued is out: write the body source's next piece and send it.
 * A source that fails cuts the response: the connection closes before the
 * last chunk. */
static void send_piece(struct http_client *c)
{
	int more = 1;
	strbuf_reset(&c->out);
	c->out_off = 0;
	while (more > 0 && !c->out.len && !c->out.err) {
		strbuf_reset(&c->piece);
		more = c->src.next(c->src.ctx, &c->piece);
		if (more < 0 || c->piece.err)
			break;
		frame_piece(c, more);
	}
	if (more < 0 || c->piece.err || c->out.err) {
		client_close(c);
		return;
	}
	if (!more)
		src_end(c);
	if (c->out.len)
		start_send(c);
	else
		sent(c);
}

static void on_send(struct http_client *c, int res)
{
	c->send_armed = false;
	c->inflight--;
	if (c->closing) {
		maybe_free(c);
		return;
	}
	if (res <= 0) {
		client_close(c);	/* error, or no progress within the timeout */
		return;
	}
	c->out_off += (size_t)res;
	if (c->out_off < c->out.len)
		start_send(c);
	else if (c->src.next)
		send_piece(c);
	else
		sent(c);
}

static void on_timeout_done(struct http_client *c)
{
	c->inflight--;
	maybe_free(c);
}

void http_on_cqe(struct op *op, const struct io_uring_cqe *cqe)
{
	switch (op->type) {
	case OP_HTTP_ACCEPT:
		on_accept(container_of(op, struct http_server, op_accept), cqe);
		break;
	case OP_HTTP_ACCEPT_RETRY:
		on_retry(container_of(op, struct http_server, op_retry));
		break;
	case OP_HTTP_RECV:
		on_recv(container_of(op, struct http_client, op_recv), cqe->res);
		break;
	case OP_HTTP_RECV_TIMEOUT:
		on_timeout_done(container_of(op, struct http_client, op_recv_timeout));
		break;
	case OP_HTTP_SEND:
		on_send(container_of(op, struct http_client, op_send), cqe->res);
		break;
	case OP_HTTP_SEND_TIMEOUT:
		on_timeout_done(container_of(op, struct http_client, op_send_timeout));
		break;
	default:
		break;
	}
}

/* ---- shutdown ---- */

/* Cut the running send's timeout down to the close grace. */
static void shorten_send(struct http_client *c)
{
	static struct __kernel_timespec grace = { .tv_sec = CLOSE_GRACE_MS / 1000,
						  .tv_nsec = CLOSE_GRACE_MS % 1000 * 1000000L };
	struct io_uring_sqe *sqe = ring_sqe(c->srv->ring);
	io_uring_prep_timeout_update(sqe, &grace, (uint64_t)(uintptr_t)&c->op_send_timeout,
				     IORING_LINK_TIMEOUT_UPDATE);
	io_uring_sqe_set_data64(sqe, 0);
}

void http_server_close(struct http_server *s)
{
	if (s->closing)
		return;
	s->closing = true;
	if (!s->ring)
		return;		/* never started: nothing in flight */
	if (s->accepting)
		ring_cancel_op(s->ring, &s->op_accept);
	if (s->retry_armed)
		ring_cancel_op(s->ring, &s->op_retry);
	struct http_client *c = s->clients, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->state == C_SEND && !c->closing && !c->src.next) {
			c->close_after = true;	/* finish the answer first */
			if (c->send_armed)
				shorten_send(c);
		} else {
			client_close(c);	/* idle, reading, or a streamed body: cut */
		}
	}
}

bool http_server_idle(const struct http_server *s)
{
	return s->inflight == 0 && s->nclients == 0;
}

void http_server_deinit(struct http_server *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}
