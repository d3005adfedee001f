/*
 * io_uring setup with a clean fallback and never-NULL SQEs.
 */
#include "zring/ring.h"
#include "zring/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ring_init(struct io_uring *ring, unsigned entries, const char **mode)
{
	static const struct {
		unsigned flags;
		const char *name;
	} tries[] = {
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "single-issuer+defer-taskrun" },
		{ IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "coop-taskrun" },
		{ 0, "plain" },
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		p.flags = tries[i].flags | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		ret = io_uring_queue_init_params(entries, ring, &p);
		if (ret == -EINVAL) {
			/* Older kernels know neither SUBMIT_ALL nor these. */
			p.flags = tries[i].flags | IORING_SETUP_CQSIZE;
			ret = io_uring_queue_init_params(entries, ring, &p);
		}
		if (ret == 0) {
			*mode = tries[i].name;
			return 0;
		}
		if (ret != -EINVAL)
			return ret;
	}
	return ret;
}

struct io_uring_sqe *ring_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (sqe)
		return sqe;
	int ret = io_uring_submit(ring);
	sqe = io_uring_get_sqe(ring);
	if (!sqe) {
		log_msg_err(LOG_ERROR, "io_uring refuses submissions", "submit", ret < 0 ? ret : -EBUSY);
		abort();
	}
	return sqe;
}

void ring_cancel_fd(struct io_uring *ring, int fd)
{
	struct io_uring_sqe *sqe = ring_sqe(ring);
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, 0);
}

void ring_cancel_op(struct io_uring *ring, struct op *op)
{
	struct io_uring_sqe *sqe = ring_sqe(ring);
	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data64(sqe, 0);
}
