#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zring/bufring.h"
#include "zring/ring.h"

static struct io_uring ring;
static int sv[2];

static void setup(void)
{
	const char *mode;
	cr_assert_eq(ring_init(&ring, 8, &mode), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void teardown(void)
{
	close(sv[0]);
	close(sv[1]);
	io_uring_queue_exit(&ring);
}

TestSuite(bufring, .init = setup, .fini = teardown);

static struct io_uring_cqe recv_one(struct bufring *b)
{
	struct io_uring_sqe *sqe = ring_sqe(&ring);
	io_uring_prep_recv(sqe, sv[1], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = b->bgid;
	io_uring_submit(&ring);
	struct io_uring_cqe *cqe, copy;
	cr_assert_eq(io_uring_wait_cqe(&ring, &cqe), 0);
	copy = *cqe;
	io_uring_cqe_seen(&ring, cqe);
	return copy;
}

Test(bufring, the_kernel_picks_a_buffer_and_we_give_it_back)
{
	struct bufring b;
	cr_assert_eq(bufring_init(&b, &ring, 3, 2, 4096), 0);
	cr_assert_eq(write(sv[0], "hello", 5), 5);
	struct io_uring_cqe cqe = recv_one(&b);
	cr_assert_eq(cqe.res, 5);
	cr_assert(cqe.flags & IORING_CQE_F_BUFFER);
	uint16_t bid = (uint16_t)(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
	cr_assert_lt(bid, 2);
	cr_assert_eq(memcmp(bufring_data(&b, bid), "hello", 5), 0);
	b.out++;
	bufring_put(&b, bid);
	cr_assert_eq(b.out, 0);
	bufring_deinit(&b, &ring);
}

Test(bufring, an_empty_ring_fails_the_recv_with_enobufs)
{
	struct bufring b;
	cr_assert_eq(bufring_init(&b, &ring, 4, 2, 4096), 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(write(sv[0], "x", 1), 1);
		cr_assert_eq(recv_one(&b).res, 1);
	}
	cr_assert_eq(write(sv[0], "y", 1), 1);
	struct io_uring_cqe cqe = recv_one(&b);
	cr_assert_eq(cqe.res, -ENOBUFS, "got %d", cqe.res);
	/* One buffer back and the same bytes can be read. */
	bufring_put(&b, 0);
	cqe = recv_one(&b);
	cr_assert_eq(cqe.res, 1);
	cr_assert_eq(*bufring_data(&b, 0), 'y');
	bufring_deinit(&b, &ring);
}

/* Resident pages of [p, p + len), by mincore. */
static size_t resident(const void *p, size_t len)
{
	size_t pages = len / 4096, n = 0;
	unsigned char vec[64];
	cr_assert_leq(pages, sizeof(vec));
	cr_assert_eq(mincore((void *)p, len, vec), 0);
	for (size_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	return n;
}

Test(bufring, trim_gives_the_pages_back_and_the_ring_still_works)
{
	struct bufring b;
	cr_assert_eq(bufring_init(&b, &ring, 5, 4, 16384), 0);
	size_t span = 4 * (16384 + BUFRING_HEADROOM);
	char big[16384];
	memset(big, 'z', sizeof(big));
	/* Traffic walks the ring: every buffer gets filled once. */
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(write(sv[0], big, sizeof(big)), (ssize_t)sizeof(big));
		struct io_uring_cqe cqe = recv_one(&b);
		cr_assert_gt(cqe.res, 0);
		b.out++;
		cr_assert_eq(bufring_trim(&b), -EBUSY, "a buffer is out");
		bufring_put(&b, (uint16_t)(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
	}
	size_t before = resident(b.base, span);
	cr_assert_geq(before, 16, "%zu pages resident after the traffic", before);
	cr_assert_eq(bufring_trim(&b), 0);
	cr_assert_leq(resident(b.base, span), 1, "%zu pages resident after the trim",
		      resident(b.base, span));
	cr_assert_eq(write(sv[0], "after", 5), 5);
	struct io_uring_cqe cqe = recv_one(&b);
	cr_assert_eq(cqe.res, 5);
	cr_assert_eq(memcmp(bufring_data(&b, (uint16_t)(cqe.flags >> IORING_CQE_BUFFER_SHIFT)),
			    "after", 5), 0);
	bufring_deinit(&b, &ring);
}
