/*
 * Giving the heap back after a burst.
 *
 * glibc keeps what zring frees in its arenas (one per worker thread) and
 * gives the system back only what lies at the very top of a heap: after
 * a burst of thousands of short-lived tunnels (each a TLS session, an
 * HTTP/2 session and a receive buffer) the freed chunks stay resident,
 * scattered between the few allocations that outlive the burst, until
 * malloc_trim() returns their pages (docs/architecture.md, "Memory after
 * a burst"). memtrim decides when that is worth doing: once the heap in
 * use has fallen well below its highest point since the last trim and is
 * no longer growing, i.e. at a quiet moment after a burst, never on a
 * steady load.
 */
#ifndef ZRING_MEMTRIM_H
#define ZRING_MEMTRIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Trim once the heap in use is this far below its peak. */
#define MEMTRIM_SLACK ((size_t)4 << 20)

struct memtrim {
	size_t peak;		/* heap in use, highest since the last trim */
	size_t prev;		/* heap in use at the previous check */
	uint64_t trims;		/* trims done */
};

void memtrim_init(struct memtrim *m);

/* The decision alone, for a sample of the heap in use: true when the
 * heap has shrunk by MEMTRIM_SLACK or more since its peak and did not
 * grow since the previous sample. Updates the peak and the previous
 * sample; a true answer starts a new peak at `in_use`. */
bool memtrim_due(struct memtrim *m, size_t in_use);

/* Sample the allocator (glibc's mallinfo2) and trim every arena when
 * memtrim_due says so. Call it from one thread, about once a second.
 * Returns 1 when it trimmed, 0 when not, -ENOTSUP when the C library
 * offers neither (another allocator then returns memory by itself). */
int memtrim_check(struct memtrim *m);

#endif
