/*
 * What both pump engines share: starting, CQE routing, half-close, errors.
 * See include/zring/pump.h.
 */
#include "zring/pump.h"
#include "zring/conn.h"
#include "zring/ring.h"
#include "zring/worker.h"

#include <errno.h>
#include <sys/socket.h>

void pump_start(struct conn *c)
{
	c->pump->run(c, 0);
	if (!c->closing)
		c->pump->run(c, 1);
}

/* A CQE that carries a provided buffer owes it back if nobody will use it. */
static bool live_or_return_buffer(struct conn *c, const struct io_uring_cqe *cqe)
{
	if (conn_op_completed(c))
		return true;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		c->w->bufs.out++;
		bufring_put(&c->w->bufs, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
		worker_wait_wake(c->w);
	}
	return false;
}

void pump_on_in(struct conn *c, struct op *op, const struct io_uring_cqe *cqe)
{
	if (live_or_return_buffer(c, cqe)) {
		conn_touch(c);
		c->pump->on_in(c, op->idx, cqe);
	}
	conn_put(c);
}

void pump_on_out(struct conn *c, struct op *op, const struct io_uring_cqe *cqe)
{
	if (live_or_return_buffer(c, cqe)) {
		conn_touch(c);
		c->pump->on_out(c, op->idx, cqe);
	}
	conn_put(c);
}

void pump_resume(struct pump_dir *d)
{
	struct conn *c = conn_of_dir(d, d->op_in.idx);
	if (!c->closing)
		c->pump->run(c, d->op_in.idx);
}

void pump_release(struct conn *c)
{
	for (unsigned d = 0; d < 2; d++) {
		if (c->dir[d].flags & DIR_WAITING)
			worker_wait_remove(c->w, &c->dir[d]);
		c->pump->release(c, d);
	}
}

void pump_dir_eof(struct conn *c, unsigned d)
{
	c->dir[d].flags |= DIR_EOF;
	/* The peer may already be gone; then the other direction reports it. */
	shutdown(conn_sink_fd(c, d), SHUT_WR);
	if ((c->dir[0].flags & DIR_EOF) && (c->dir[1].flags & DIR_EOF))
		conn_close(c, 0, NULL, false);
}

void pump_dir_error(struct conn *c, unsigned side, int err)
{
	static const char *const why[2][2] = {
		{ "client error", "upstream error" },
		{ "client reset", "upstream reset" },
	};
	bool reset = err == -ECONNRESET || err == -EPIPE;
	conn_close(c, err, why[reset][side], true);
}

void pump_arm_recv(struct conn *c, unsigned d, int fd)
{
	struct worker *w = c->w;
	struct io_uring_sqe *sqe = ring_sqe_op(&w->ring, &c->dir[d].op_in);
	io_uring_prep_recv(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = w->bufs.bgid;
	conn_op_submitted(c);
}

void pump_take_buffer(struct conn *c, unsigned d, const struct io_uring_cqe *cqe)
{
	struct pump_dir *pd = &c->dir[d];
	if (!(cqe->flags & IORING_CQE_F_BUFFER))
		return;
	pd->bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	pd->flags |= DIR_HAS_BUF;
	c->w->bufs.out++;
}

void pump_drop_buffer(struct conn *c, unsigned d)
{
	struct pump_dir *pd = &c->dir[d];
	if (!(pd->flags & DIR_HAS_BUF))
		return;
	pd->flags &= (uint8_t)~DIR_HAS_BUF;
	bufring_put(&c->w->bufs, pd->bid);
	worker_wait_wake(c->w);
}

void pump_dir_moved(struct conn *c, unsigned d, uint32_t n)
{
	c->dir[d].bytes += n;
	/* Keeps "bytes moved => at the fresh end of the idle list", which the
	 * metrics flush relies on; usually c is there already. */
	conn_touch(c);
}
