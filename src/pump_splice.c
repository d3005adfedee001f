/*
 * The splice pump: io_uring tells when a socket is readable (or writable),
 * then splice(2) moves the bytes socket -> pipe -> socket without copying
 * them through user space.
 *
 * Pipes are 1 MiB (pipepool.h): one readiness event moves up to that much.
 *
 * Why not IORING_OP_SPLICE: the kernel always runs it on an io-wq worker
 * thread (a thread handoff per chunk, and a blocked io-wq thread per idle
 * socket), and a short splice breaks a linked chain. A non-blocking
 * splice(2) on the worker thread right after readiness costs one syscall
 * and no handoff. See docs/architecture.md for the measurements.
 *
 * A direction borrows a pipe from the worker's pool only while bytes are
 * in it: read a chunk into the pipe, write it all out, and when the source
 * runs dry give the empty pipe back and poll again. If the sink is full the
 * pipe stays with the direction and we poll the sink for POLLOUT.
 *
 * Small messages (requests, responses, anything under 16 KiB a read) are
 * copied instead, as HAProxy's splice-auto does: recv(2) and send(2) through
 * a per-thread buffer cost less than two splices, and whatever the sink does
 * not take goes into the borrowed pipe, so the POLLOUT path above finishes
 * it. A read that fills the buffer switches the direction to splicing until
 * a read comes back small again.
 */
#include "zring/conn.h"
#include "zring/pump.h"
#include "zring/ring.h"
#include "zring/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>


/* Chunks per readiness event before yielding to other connections. */
#define SPLICE_ROUNDS 8

/* Reads up to this size are copied (see the top of this file). */
#define COPY_MAX (16 * 1024)
static _Thread_local uint8_t copy_buf[COPY_MAX];

static void arm_poll(struct conn *c, unsigned d, bool out)
{
	struct pump_dir *pd = &c->dir[d];
	struct io_uring_sqe *sqe = ring_sqe_op(&c->w->ring, out ? &pd->op_out : &pd->op_in);
	io_uring_prep_poll_add(sqe, out ? conn_sink_fd(c, d) : conn_src_fd(c, d),
			       out ? POLLOUT : POLLIN);
	conn_op_submitted(c);
}

static void give_back_pipe(struct conn *c, unsigned d)
{
	struct pump_dir *pd = &c->dir[d];
	if (!pd->pipe)
		return;
	pipepool_put(&c->w->pipes, pd->pipe, pd->len == 0);
	pd->pipe = NULL;
	pd->len = 0;
	worker_wait_wake(c->w);
}

static unsigned src_side(unsigned d)
{
	return d == 0 ? SIDE_CLIENT : SIDE_UPSTREAM;
}

static unsigned sink_side(unsigned d)
{
	return d == 0 ? SIDE_UPSTREAM : SIDE_CLIENT;
}

/* Write the pipe's bytes to the sink. 0 when empty; -EAGAIN when the sink
 * is full (POLLOUT is armed); another -errno ends the connection. */
static int flush(struct conn *c, unsigned d)
{
	struct pump_dir *pd = &c->dir[d];
	while (pd->len > 0) {
		ssize_t n = splice(pd->pipe->rd, NULL, conn_sink_fd(c, d), NULL, pd->len,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			pd->len -= (uint32_t)n;
			pump_dir_moved(c, d, (uint32_t)n);
			continue;
		}
		int err = n == 0 ? -EPIPE : -errno;
		if (err == -EINTR)
			continue;
		if (err == -EAGAIN) {
			arm_poll(c, d, true);
			return err;
		}
		pump_dir_error(c, sink_side(d), err);
		return err;
	}
	return 0;
}

/* The small-message path: recv into copy_buf, send from it, and park what
 * the sink did not take in the direction's empty pipe for flush() to
 * finish (the read is capped at the pipe's size, so the rest always fits:
 * a pipe over pipe-user-pages-soft can be as small as 8 KiB). Returns true
 * when this readiness event is fully handled; false to go on splicing (the
 * read filled the buffer: more is likely waiting). */
static bool copy_small(struct conn *c, unsigned d)
{
	struct pump_dir *pd = &c->dir[d];
	size_t cap = pd->pipe->size < COPY_MAX ? pd->pipe->size : COPY_MAX;
	ssize_t n = recv(conn_src_fd(c, d), copy_buf, cap, MSG_DONTWAIT);
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN) {
			give_back_pipe(c, d);
			arm_poll(c, d, false);
		} else if (n == 0) {
			give_back_pipe(c, d);
			pump_dir_eof(c, d);
		} else if (errno == EINTR) {
			return false;
		} else {
			give_back_pipe(c, d);
			pump_dir_error(c, src_side(d), -errno);
		}
		return true;
	}
	ssize_t sent = send(conn_sink_fd(c, d), copy_buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (sent < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			give_back_pipe(c, d);
			pump_dir_error(c, sink_side(d), -errno);
			return true;
		}
		sent = 0;
	}
	if (sent > 0)
		pump_dir_moved(c, d, (uint32_t)sent);
	if (sent < n) {
		ssize_t left = n - sent;
		ssize_t put = write(pd->pipe->wr, copy_buf + sent, (size_t)left);
		if (put != left) {
			/* Not the peers' fault: a local failure, labelled so. */
			give_back_pipe(c, d);
			conn_close(c, put < 0 ? -errno : -EIO, "pipe write", true);
			return true;
		}
		pd->len = (uint32_t)left;
		if (flush(c, d) < 0)
			return true;
	}
	if ((size_t)n == cap) {
		pd->flags |= DIR_BULK;
		return false;
	}
	give_back_pipe(c, d);
	arm_poll(c, d, false);
	if (d == 0)
		worker_reply_due(c->w);	/* all of it went out, flush() or not */
	return true;
}

/* Make sure the direction holds a pipe. False when the pool has none: the
 * direction is queued and move() runs again once one is given back. */
static bool take_pipe(struct conn *c, unsigned d)
{
	struct pump_dir *pd = &c->dir[d];
	if (pd->pipe)
		return true;
	if (pipepool_get(&c->w->pipes, &pd->pipe) >= 0)
		return true;
	pd->pipe = NULL;
	worker_wait_enqueue(c->w, pd);
	return false;
}

/* Move bytes from source to sink until the source runs dry, the sink is
 * full, or this connection has had its turn. */
static void move(struct conn *c, unsigned d)
{
	struct pump_dir *pd = &c->dir[d];
	if (!(pd->flags & DIR_BULK) && !pd->pipe) {
		if (!take_pipe(c, d) || copy_small(c, d))
			return;
	}
	for (unsigned round = 0; round < SPLICE_ROUNDS; round++) {
		if (!take_pipe(c, d))
			return;
		ssize_t chunk = pd->pipe->size;
		ssize_t n = splice(conn_src_fd(c, d), NULL, pd->pipe->wr, NULL, (size_t)chunk,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			pd->len = (uint32_t)n;
			if (n < COPY_MAX)
				pd->flags &= (uint8_t)~DIR_BULK;
			if (flush(c, d) < 0)
				return;
			if (n < chunk)
				break;	/* most likely drained: let poll say, not EAGAIN */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		give_back_pipe(c, d);
		if (n == 0) {
			pump_dir_eof(c, d);
			return;
		}
		if (errno != EAGAIN) {
			pump_dir_error(c, src_side(d), -errno);
			return;
		}
		break;
	}
	give_back_pipe(c, d);
	arm_poll(c, d, false);
}

static void splice_run(struct conn *c, unsigned d)
{
	arm_poll(c, d, false);
}

static void splice_on_in(struct conn *c, unsigned d, const struct io_uring_cqe *cqe)
{
	if (cqe->res < 0)
		pump_dir_error(c, src_side(d), cqe->res);
	else
		move(c, d);
}

static void splice_on_out(struct conn *c, unsigned d, const struct io_uring_cqe *cqe)
{
	if (cqe->res < 0) {
		pump_dir_error(c, sink_side(d), cqe->res);
		return;
	}
	if (flush(c, d) == 0)
		move(c, d);
}

static void splice_release(struct conn *c, unsigned d)
{
	give_back_pipe(c, d);
}

const struct pump_ops pump_splice_ops = {
	.name = "splice",
	.run = splice_run,
	.on_in = splice_on_in,
	.on_out = splice_on_out,
	.release = splice_release,
};
