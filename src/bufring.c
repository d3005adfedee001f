/*
 * Provided-buffer ring. See include/zring/bufring.h.
 */
#include "zring/bufring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t bgid,
		 unsigned count, unsigned size)
{
	size_t ring_bytes = count * sizeof(struct io_uring_buf);
	int ret;

	memset(b, 0, sizeof(*b));
	b->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->br == MAP_FAILED) {
		b->br = NULL;
		return -errno;
	}
	b->base = mmap(NULL, (size_t)count * (size + BUFRING_HEADROOM), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->base == MAP_FAILED) {
		ret = -errno;
		b->base = NULL;
		goto err_ring;
	}
	struct io_uring_buf_reg reg = {
		.ring_addr = (uint64_t)(uintptr_t)b->br,
		.ring_entries = count,
		.bgid = bgid,
	};
	ret = io_uring_register_buf_ring(ring, &reg, 0);
	if (ret < 0)
		goto err_base;

	b->count = count;
	b->size = size;
	b->bgid = bgid;
	io_uring_buf_ring_init(b->br);
	for (unsigned i = 0; i < count; i++)
		io_uring_buf_ring_add(b->br, bufring_data(b, (uint16_t)i), size, (uint16_t)i,
				      io_uring_buf_ring_mask(count), (int)i);
	io_uring_buf_ring_advance(b->br, (int)count);
	return 0;

err_base:
	munmap(b->base, (size_t)count * (size + BUFRING_HEADROOM));
	b->base = NULL;
err_ring:
	munmap(b->br, ring_bytes);
	b->br = NULL;
	return ret;
}

void bufring_deinit(struct bufring *b, struct io_uring *ring)
{
	if (!b->br)
		return;
	io_uring_unregister_buf_ring(ring, b->bgid);
	munmap(b->base, (size_t)b->count * (b->size + BUFRING_HEADROOM));
	munmap(b->br, b->count * sizeof(struct io_uring_buf));
	memset(b, 0, sizeof(*b));
}

void bufring_put(struct bufring *b, uint16_t bid)
{
	io_uring_buf_ring_add(b->br, bufring_data(b, bid), b->size, bid,
			      io_uring_buf_ring_mask(b->count), 0);
	io_uring_buf_ring_advance(b->br, 1);
	b->out--;
	b->puts++;
}

int bufring_trim(struct bufring *b)
{
	if (!b->br)
		return 0;
	if (b->out)
		return -EBUSY;
	if (madvise(b->base, (size_t)b->count * (b->size + BUFRING_HEADROOM), MADV_DONTNEED) < 0)
		return -errno;
	b->puts_at_trim = b->puts;
	return 0;
}
