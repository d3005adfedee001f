#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "zring/pipepool.h"

static int open_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

Test(pipepool, bounded_by_max)
{
	struct pipepool pp;
	struct pipe_pair *p[3];
	pipepool_init(&pp, 2, 2);
	cr_assert_eq(pipepool_get(&pp, &p[0]), 0);
	cr_assert_eq(pipepool_get(&pp, &p[1]), 0);
	cr_assert_eq(pipepool_get(&pp, &p[2]), -EAGAIN);
	pipepool_put(&pp, p[0], true);
	cr_assert_eq(pipepool_get(&pp, &p[2]), 0);
	cr_assert_eq(p[2], p[0], "an empty returned pipe is reused");
	pipepool_put(&pp, p[1], true);
	pipepool_put(&pp, p[2], true);
	pipepool_deinit(&pp);
	cr_assert_eq(pp.total, 0);
}

Test(pipepool, keeps_at_most_keep_idle_pipes)
{
	struct pipepool pp;
	struct pipe_pair *p[4];
	int before = open_fds();
	pipepool_init(&pp, 8, 1);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pipepool_get(&pp, &p[i]), 0);
	cr_assert_eq(open_fds(), before + 8);
	for (int i = 0; i < 4; i++)
		pipepool_put(&pp, p[i], true);
	cr_assert_eq(pp.nfree, 1);
	cr_assert_eq(open_fds(), before + 2, "idle pipes beyond `keep` give their fds back");
	pipepool_deinit(&pp);
	cr_assert_eq(open_fds(), before);
}

Test(pipepool, a_pipe_with_leftover_bytes_is_closed)
{
	struct pipepool pp;
	struct pipe_pair *p, *q;
	pipepool_init(&pp, 4, 4);
	cr_assert_eq(pipepool_get(&pp, &p), 0);
	cr_assert_eq(write(p->wr, "x", 1), 1);
	pipepool_put(&pp, p, false);
	cr_assert_eq(pp.nfree, 0);
	cr_assert_eq(pp.total, 0);
	cr_assert_eq(pipepool_get(&pp, &q), 0);
	char c;
	cr_assert_eq(read(q->rd, &c, 1), -1, "a fresh pipe is empty");
	cr_assert_eq(errno, EAGAIN);
	pipepool_put(&pp, q, true);
	pipepool_deinit(&pp);
}

Test(pipepool, prefill_creates_idle_pipes_up_to_n)
{
	struct pipepool pp;
	int before = open_fds();
	pipepool_init(&pp, 16, 8);
	cr_assert_eq(pipepool_prefill(&pp, 4), 0);
	cr_assert_eq(pp.nfree, 4);
	cr_assert_eq(pp.total, 4);
	cr_assert_eq(open_fds(), before + 8);
	cr_assert_eq(pipepool_prefill(&pp, 4), 0, "idempotent");
	cr_assert_eq(pp.total, 4);
	pipepool_deinit(&pp);
	cr_assert_eq(open_fds(), before);
}
