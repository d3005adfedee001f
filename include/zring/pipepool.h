/*
 * A bounded pool of pipes for the splice pump.
 *
 * A pipe costs two descriptors and up to PIPE_SIZE of kernel memory while
 * bytes sit in it, so a direction borrows one only while bytes are moving and gives it back as
 * soon as the pipe is empty. Pipes are created lazily up to `max`; at most
 * `keep` idle ones are kept, the rest are closed so a past burst does not
 * keep descriptors that idle connections may need.
 */
#ifndef ZRING_PIPEPOOL_H
#define ZRING_PIPEPOOL_H

#include <stdbool.h>

/* Pipes are grown to this (fs.pipe-max-size permitting): one readiness
 * event then moves up to 1 MiB with two splice calls. Measured against the
 * 64 KiB default: 0.5-0.7x the CPU per GB on one stream, 0.4x on four
 * (docs/benchmarks.md). The pages are the socket's own, held only while
 * bytes sit in the pipe. */
#define PIPE_SIZE (1024 * 1024)

struct pipe_pair {
	int rd, wr;
	unsigned size;		/* capacity in bytes */
	struct pipe_pair *next;
};

struct pipepool {
	struct pipe_pair *free;
	unsigned nfree;
	unsigned total;		/* created and not yet closed */
	unsigned max;
	unsigned keep;
};

void pipepool_init(struct pipepool *pp, unsigned max, unsigned keep);
void pipepool_deinit(struct pipepool *pp);

/* Create pipes up to n idle ones now, so that running out of descriptors
 * later never leaves the pump with no pipe at all. 0 or -errno. */
int pipepool_prefill(struct pipepool *pp, unsigned n);

/* Borrow an empty pipe: 0 and *out, or -EAGAIN when `max` are out, or the
 * -errno of pipe2 (e.g. -EMFILE). */
int pipepool_get(struct pipepool *pp, struct pipe_pair **out);

/* Return a borrowed pipe. `empty` says whether it holds no bytes; a pipe
 * with leftovers (a connection cut mid-transfer) is closed, never reused. */
void pipepool_put(struct pipepool *pp, struct pipe_pair *p, bool empty);

#endif
