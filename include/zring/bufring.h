/*
 * A provided-buffer ring (io_uring buffer group) for the copy pump.
 *
 * The kernel picks a buffer only when data arrives, so an idle connection
 * holds none. The buffers live in one lazily-populated mapping per worker,
 * whose pages bufring_trim drops again once traffic has stopped.
 * Each buffer has BUFRING_HEADROOM writable bytes before it, so a frame
 * header can be put in front of received bytes without copying them.
 */
#ifndef ZRING_BUFRING_H
#define ZRING_BUFRING_H

#include <liburing.h>
#include <stdint.h>

#define BUFRING_HEADROOM 64

struct bufring {
	struct io_uring_buf_ring *br;
	uint8_t *base;
	unsigned count;		/* power of two */
	unsigned size;		/* bytes per buffer */
	uint16_t bgid;
	unsigned out;		/* buffers handed to the kernel's consumers */
	uint64_t puts;		/* buffers given back, ever */
	uint64_t puts_at_trim;	/* puts at the last bufring_trim */
};

/* Register `count` buffers of `size` bytes as group `bgid`. 0 or -errno. */
int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t bgid,
		 unsigned count, unsigned size);

/* Unregister and unmap. Safe on a zeroed or failed bufring. */
void bufring_deinit(struct bufring *b, struct io_uring *ring);

static inline uint8_t *bufring_data(const struct bufring *b, uint16_t bid)
{
	return b->base + (size_t)bid * (b->size + BUFRING_HEADROOM) + BUFRING_HEADROOM;
}

/* Give buffer `bid` back to the kernel. */
void bufring_put(struct bufring *b, uint16_t bid);

/* The kernel takes the ring's buffers in turn, so traffic touches every
 * one of them and, untrimmed, the whole mapping stays resident after it.
 * bufring_trim drops the pages of every buffer (MADV_DONTNEED: the next
 * use gets zeroed pages). Only when no buffer is out (b->out == 0) and the
 * kernel cannot be filling one meanwhile: with DEFER_TASKRUN, between two
 * io_uring_enter calls of the ring's thread, after every CQE is handled.
 * Returns 0, -EBUSY when a buffer is out, or -errno from madvise. */
int bufring_trim(struct bufring *b);

#endif
