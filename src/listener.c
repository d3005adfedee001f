/*
 * Listening sockets with multishot accept. See include/zring/listener.h.
 */
#include "zring/listener.h"
#include "zring/conn.h"
#include "zring/fdbudget.h"
#include "zring/tunnel.h"
#include "zring/log.h"
#include "zring/pod.h"
#include "zring/ring.h"
#include "zring/sockopt.h"
#include "zring/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096
#define ACCEPT_RETRY_MS 100
#define PAUSE_WARN_NS (10 * 1000000000ull)

const char *role_name(enum role r)
{
	static const char *const names[] = { "outbound", "inbound", "hbone" };
	return names[r];
}

static int open_socket(const union addr *addr, const struct keepalive_opts *ka)
{
	int one = 1;
	int fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Accepted sockets inherit TCP_NODELAY, which saves a syscall per
	 * connection; a proxy must not add Nagle delays to small messages. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (addr->sa.sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, &addr->sa, addr_len(addr)) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	/* Inherited by accepted sockets (Linux copies the keepalive flag and
	 * figures): clients and the server side of tunnels get it for free. */
	sockopt_keepalive_try(fd, ka, "listener");
	return fd;
}

int listener_open(struct worker *w, enum role role, const union addr *addr,
		  struct listener **out)
{
	struct listener *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	int fd = open_socket(addr, w ? &w->opts->keepalive : NULL);
	if (fd < 0) {
		free(l);
		return fd;
	}
	/* Counted here and in listener_free: node-agent mode opens and closes
	 * listeners while running, as pods come and go. */
	fdb_opened(1);
	l->w = w;
	l->fd = fd;
	l->role = role;
	l->addr = *addr;
	op_init(&l->op_accept, OP_ACCEPT, 0);
	op_init(&l->op_retry, OP_ACCEPT_RETRY, 0);
	l->retry_ts.tv_nsec = ACCEPT_RETRY_MS * 1000000L;
	*out = l;
	return 0;
}

void listener_arm(struct listener *l)
{
	if (l->accepting || l->paused || l->closing)
		return;
	if (!fdb_can_accept()) {
		listener_pause(l, -EMFILE);	/* the backlog holds the clients */
		return;
	}
	struct io_uring_sqe *sqe = ring_sqe_op(&l->w->ring, &l->op_accept);
	if (fdb_multishot_ok(LISTEN_BACKLOG))
		io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	l->accepting = true;
	l->inflight++;
}

static void maybe_done(struct listener *l)
{
	if (l->closing && l->inflight == 0)
		worker_listener_closed(l->w, l);
}

void listener_close(struct listener *l)
{
	if (l->closing)
		return;
	l->closing = true;
	if (l->accepting)
		ring_cancel_op(&l->w->ring, &l->op_accept);
	if (l->retry_armed)
		ring_cancel_op(&l->w->ring, &l->op_retry);
	maybe_done(l);
}

/* Out of descriptors (or kernel memory): stop accepting for a moment. The
 * clients wait in the backlog; nothing is dropped. */
void listener_pause(struct listener *l, int err)
{
	uint64_t now = l->w->now_ns;
	if (!l->paused && (!l->warned_ns || now - l->warned_ns >= PAUSE_WARN_NS)) {
		struct log_line line;
		char buf[ADDR_STRLEN];
		l->warned_ns = now;
		if (log_begin(&line, LOG_WARN, "accept paused")) {
			log_str(&line, "role", role_name(l->role));
			log_str(&line, "addr", addr_format(&l->addr, buf, sizeof(buf)));
			log_err(&line, "error", err);
			log_i64(&line, "free_fds", fdb_free());
			log_u64(&line, "retry_ms", ACCEPT_RETRY_MS);
			log_end(&line);
		}
	}
	l->paused = true;
	l->w->accept_paused = true;
	if (!l->retry_armed) {
		struct io_uring_sqe *sqe = ring_sqe_op(&l->w->ring, &l->op_retry);
		io_uring_prep_timeout(sqe, &l->retry_ts, 0, 0);
		l->retry_armed = true;
		l->inflight++;
	}
}

void listener_resume(struct listener *l)
{
	if (!l->paused || l->closing)
		return;
	l->paused = false;
	listener_arm(l);
}

void listener_on_accept(struct listener *l, const struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		l->accepting = false;
		l->inflight--;
	}
	int res = cqe->res;
	if (res >= 0)
		fdb_opened(1);
	if (res >= 0) {
		if (l->closing) {
			close(res);
			fdb_closed(1);
		}
		else if (l->role == ROLE_HBONE)
			tunnel_accept(l, res);
		else
			conn_accept(l, res);
	} else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
		listener_pause(l, res);
	} else if (res != -ECANCELED && res != -ECONNABORTED && res != -EINTR) {
		/* Unknown trouble: back off rather than spin on it. */
		log_msg_err(LOG_WARN, "accept failed", role_name(l->role), res);
		listener_pause(l, res);
	}
	if (l->closing)
		maybe_done(l);
	else
		listener_arm(l);
}

void listener_on_retry(struct listener *l, const struct io_uring_cqe *cqe)
{
	l->retry_armed = false;
	l->inflight--;
	if (l->closing) {
		maybe_done(l);
		return;
	}
	if (l->paused)
		log_msg(LOG_DEBUG, "accept retry");
	listener_resume(l);
}

void listener_free(struct listener *l)
{
	if (!l)
		return;
	if (l->fd >= 0) {
		close(l->fd);
		fdb_closed(1);
	}
	pod_unref(l->pod);
	free(l);
}
