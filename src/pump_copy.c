/*
 * The copy pump: io_uring recv into a provided buffer, then io_uring send.
 *
 * A direction holds one buffer at most, only between a recv that filled it
 * and the send that drained it. recv is armed with no buffer; the kernel
 * picks one from the worker's ring only when bytes arrive, so an idle
 * connection holds none. When the ring is empty the recv fails with
 * -ENOBUFS and the direction queues for the next returned buffer.
 */
#include "zring/conn.h"
#include "zring/pump.h"
#include "zring/ring.h"
#include "zring/worker.h"

#include <errno.h>
#include <sys/socket.h>

static void arm_recv(struct conn *c, unsigned d)
{
	pump_arm_recv(c, d, conn_src_fd(c, d));
}

static void arm_send(struct conn *c, unsigned d)
{
	struct worker *w = c->w;
	struct pump_dir *pd = &c->dir[d];
	struct io_uring_sqe *sqe = ring_sqe_op(&w->ring, &pd->op_out);
	io_uring_prep_send(sqe, conn_sink_fd(c, d), bufring_data(&w->bufs, pd->bid) + pd->off,
			   pd->len - pd->off, MSG_NOSIGNAL);
	conn_op_submitted(c);
}

static void drop_buffer(struct conn *c, unsigned d)
{
	pump_drop_buffer(c, d);
}

static void copy_run(struct conn *c, unsigned d)
{
	arm_recv(c, d);
}

static void copy_on_in(struct conn *c, unsigned d, const struct io_uring_cqe *cqe)
{
	struct pump_dir *pd = &c->dir[d];
	pump_take_buffer(c, d, cqe);
	if (cqe->res > 0) {
		pd->len = (uint32_t)cqe->res;
		pd->off = 0;
		arm_send(c, d);
		return;
	}
	drop_buffer(c, d);
	if (cqe->res == 0)
		pump_dir_eof(c, d);
	else if (cqe->res == -ENOBUFS)
		worker_wait_enqueue(c->w, pd);
	else
		pump_dir_error(c, d == 0 ? SIDE_CLIENT : SIDE_UPSTREAM, cqe->res);
}

static void copy_on_out(struct conn *c, unsigned d, const struct io_uring_cqe *cqe)
{
	struct pump_dir *pd = &c->dir[d];
	if (cqe->res <= 0) {
		pump_dir_error(c, d == 0 ? SIDE_UPSTREAM : SIDE_CLIENT,
			       cqe->res ? cqe->res : -EPIPE);
		return;
	}
	pd->off += (uint32_t)cqe->res;
	pump_dir_moved(c, d, (uint32_t)cqe->res);
	if (pd->off < pd->len) {
		arm_send(c, d);	/* short send: the rest, in order */
		return;
	}
	drop_buffer(c, d);
	arm_recv(c, d);
}

static void copy_release(struct conn *c, unsigned d)
{
	drop_buffer(c, d);
}

const struct pump_ops pump_copy_ops = {
	.name = "copy",
	.run = copy_run,
	.on_in = copy_on_in,
	.on_out = copy_on_out,
	.release = copy_release,
};
