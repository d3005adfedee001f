/*
 * Giving the heap back after a burst.
 *
 * glibc keeps what zring frees in its arenas (one per worker thread) and
 * gives the system back only what lies at the very top of a heap: after
 * a burst of thousands of short-lived tunnels (each a TLS session, an
 * HTTP/2 session and a receive buffer) the freed chunks stay resident,
 * scattered between the few allocations that outlive the burst, until
 * malloc_trim() returns their pages (docs/architecture.md, "Memory after
 * a burst"). memtrim decides when that is worth doing, from two figures
 * sampled about once a second: the heap in use, and the resident set. What
 * is resident beyond the heap in use (the "excess": freed chunks still
 * resident, plus everything that is not heap) is steady under a steady
 * load; it grows when heap memory is freed and kept. A trim is due once
 * the excess has grown by MEMTRIM_SLACK since the last trim and the heap
 * in use did not grow since the previous sample: at a quiet moment after
 * a burst, even one that began and ended between two samples. A load that
 * swings up and down by more than the slack is trimmed at most every
 * MEMTRIM_GAP samples.
 */
#ifndef ZRING_MEMTRIM_H
#define ZRING_MEMTRIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Trim once this much more than at the last trim is resident and unused. */
#define MEMTRIM_SLACK ((size_t)4 << 20)
/* Samples (seconds) from one trim to the next, at least. */
#define MEMTRIM_GAP 3

struct memtrim {
	size_t floor;		/* lowest excess since the last trim */
	size_t prev;		/* heap in use at the previous sample */
	bool started;		/* floor and prev hold a sample */
	unsigned since;		/* samples since the last trim */
	uint64_t trims;		/* trims done */
};

void memtrim_init(struct memtrim *m);

/* The decision alone, for a sample: `in_use` bytes of heap in use and
 * `rss` bytes resident. True when a trim is due (see above); the caller
 * then trims and reports the resident set after it with memtrim_trimmed. */
bool memtrim_due(struct memtrim *m, size_t in_use, size_t rss);

/* After a trim: `rss` is the resident set now; the new floor. */
void memtrim_trimmed(struct memtrim *m, size_t in_use, size_t rss);

/* Sample the allocator (glibc's mallinfo2) and the resident set, and trim
 * every arena when memtrim_due says so. Call it from one thread, about
 * once a second. Returns 1 when it trimmed, 0 when not, -ENOTSUP when the
 * C library offers neither (another allocator then returns memory its own
 * way). */
int memtrim_check(struct memtrim *m);

#endif
