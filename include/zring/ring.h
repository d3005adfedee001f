/*
 * io_uring setup and SQE helpers shared by the worker and control rings.
 */
#ifndef ZRING_RING_H
#define ZRING_RING_H

#include <liburing.h>

#include "zring/op.h"

/*
 * Create a ring of `entries` SQEs for use by the calling thread only:
 * tries SINGLE_ISSUER|DEFER_TASKRUN, then COOP_TASKRUN|TASKRUN_FLAG, then
 * plain, and says which in *mode (a static string). Returns 0 or -errno.
 */
int ring_init(struct io_uring *ring, unsigned entries, const char **mode);

/*
 * An SQE that is never NULL: when the SQ is full, submit what is queued and
 * try again. Aborts only if the kernel refuses to take any SQE at all, which
 * would mean the ring itself is broken.
 */
struct io_uring_sqe *ring_sqe(struct io_uring *ring);

/* An SQE whose completion goes to `op`. */
static inline struct io_uring_sqe *ring_sqe_op(struct io_uring *ring, struct op *op)
{
	struct io_uring_sqe *sqe = ring_sqe(ring);
	io_uring_sqe_set_data(sqe, op);
	return sqe;
}

/* Cancel every request on `fd`; the cancel's own completion is ignored. */
void ring_cancel_fd(struct io_uring *ring, int fd);

/* Cancel the request whose user_data is `op`; completion ignored. */
void ring_cancel_op(struct io_uring *ring, struct op *op);

#endif
