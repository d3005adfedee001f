#include <criterion/criterion.h>

#include "zring/ring.h"

Test(ring, sets_up_with_the_best_mode_the_kernel_allows)
{
	struct io_uring ring;
	const char *mode = NULL;
	cr_assert_eq(ring_init(&ring, 8, &mode), 0);
	cr_assert_not_null(mode);
	io_uring_queue_exit(&ring);
}

Test(ring, sqe_is_never_null_when_the_queue_is_full)
{
	struct io_uring ring;
	const char *mode;
	cr_assert_eq(ring_init(&ring, 4, &mode), 0);
	static struct op ops[64];
	for (int i = 0; i < 64; i++) {
		op_init(&ops[i], OP_TICK, 0);
		struct io_uring_sqe *sqe = ring_sqe_op(&ring, &ops[i]);
		cr_assert_not_null(sqe);
		io_uring_prep_nop(sqe);
	}
	io_uring_submit(&ring);
	/* All 64 completions arrive, each naming its op. */
	int seen[64] = { 0 };
	for (int n = 0; n < 64; n++) {
		struct io_uring_cqe *cqe;
		cr_assert_eq(io_uring_wait_cqe(&ring, &cqe), 0);
		struct op *op = io_uring_cqe_get_data(cqe);
		seen[op - ops]++;
		io_uring_cqe_seen(&ring, cqe);
	}
	for (int i = 0; i < 64; i++)
		cr_assert_eq(seen[i], 1);
	io_uring_queue_exit(&ring);
}
