/*
 * Bounded pipe pool. See include/zring/pipepool.h.
 */
#include "zring/fdbudget.h"
#include "zring/pipepool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

void pipepool_init(struct pipepool *pp, unsigned max, unsigned keep)
{
	pp->free = NULL;
	pp->nfree = 0;
	pp->total = 0;
	pp->max = max;
	pp->keep = keep;
}

static void pipe_close(struct pipepool *pp, struct pipe_pair *p)
{
	close(p->rd);
	close(p->wr);
	fdb_closed(2);
	free(p);
	pp->total--;
}

void pipepool_deinit(struct pipepool *pp)
{
	while (pp->free) {
		struct pipe_pair *p = pp->free;
		pp->free = p->next;
		pipe_close(pp, p);
	}
	pp->nfree = 0;
}

int pipepool_get(struct pipepool *pp, struct pipe_pair **out)
{
	struct pipe_pair *p = pp->free;
	if (p) {
		pp->free = p->next;
		pp->nfree--;
		*out = p;
		return 0;
	}
	if (pp->total >= pp->max)
		return -EAGAIN;
	p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	int fds[2];
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		int err = -errno;
		free(p);
		return err;
	}
	fdb_opened(2);
	/* Best effort: an unprivileged user over pipe-user-pages-soft keeps
	 * the default size, which still works. */
	fcntl(fds[1], F_SETPIPE_SZ, PIPE_SIZE);
	int size = fcntl(fds[1], F_GETPIPE_SZ);
	p->size = size > 0 ? (unsigned)size : 65536;
	p->rd = fds[0];
	p->wr = fds[1];
	pp->total++;
	*out = p;
	return 0;
}

int pipepool_prefill(struct pipepool *pp, unsigned n)
{
	while (pp->nfree < n) {
		struct pipe_pair *p, *saved = pp->free;
		/* Hide the free list so that get() creates a new pipe. */
		pp->free = NULL;
		int err = pipepool_get(pp, &p);
		pp->free = saved;
		if (err < 0)
			return err;
		p->next = pp->free;
		pp->free = p;
		pp->nfree++;
	}
	return 0;
}

void pipepool_put(struct pipepool *pp, struct pipe_pair *p, bool empty)
{
	if (!empty || pp->nfree >= pp->keep) {
		pipe_close(pp, p);
		return;
	}
	p->next = pp->free;
	pp->free = p;
	pp->nfree++;
}
