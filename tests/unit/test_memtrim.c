#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zring/memtrim.h"

#define MIB ((size_t)1 << 20)

/* A process with 8 MiB that is not heap. */
#define OTHER (8 * MIB)

/* One sample: `heap` in use, `held` more freed but resident. */
static bool due(struct memtrim *m, size_t heap, size_t held)
{
	return memtrim_due(m, heap, OTHER + heap + held);
}

static void trimmed(struct memtrim *m, size_t heap)
{
	memtrim_trimmed(m, heap, OTHER + heap);
}

Test(memtrim, steady_load_never_trims)
{
	struct memtrim m;
	memtrim_init(&m);
	/* A busy proxy: the heap wobbles by less than the slack. */
	for (int i = 0; i < 1000; i++) {
		size_t heap = 50 * MIB + (size_t)(i % 7) * (MIB / 2);
		cr_assert_not(due(&m, heap, 50 * MIB + 3 * MIB - heap + MIB));
	}
}

Test(memtrim, trims_once_after_a_burst)
{
	struct memtrim m;
	memtrim_init(&m);
	cr_assert_not(due(&m, 10 * MIB, 0));
	cr_assert_not(due(&m, 200 * MIB, 0), "growing: the burst is on");
	cr_assert(due(&m, 11 * MIB, 189 * MIB), "the burst is over");
	trimmed(&m, 11 * MIB);
	cr_assert_not(due(&m, 11 * MIB, 0), "nothing new to give back");
	cr_assert_not(due(&m, 10 * MIB, MIB));
}

Test(memtrim, a_burst_between_two_samples_is_seen)
{
	struct memtrim m;
	memtrim_init(&m);
	cr_assert_not(due(&m, 10 * MIB, 0));
	/* Up to 200 MiB and back within the second: only the RSS shows it. */
	cr_assert(due(&m, 10 * MIB, 190 * MIB));
}

Test(memtrim, waits_while_the_heap_grows)
{
	struct memtrim m;
	memtrim_init(&m);
	cr_assert_not(due(&m, 10 * MIB, 0));
	cr_assert_not(due(&m, 20 * MIB, 90 * MIB), "growing (a new burst on top of freed memory)");
	cr_assert_not(due(&m, 30 * MIB, 80 * MIB));
	cr_assert(due(&m, 30 * MIB, 80 * MIB), "stopped growing");
}

Test(memtrim, a_swinging_load_is_trimmed_at_most_every_gap)
{
	struct memtrim m;
	memtrim_init(&m);
	cr_assert_not(due(&m, 40 * MIB, 0));
	cr_assert(due(&m, 30 * MIB, 10 * MIB));
	trimmed(&m, 30 * MIB);
	int trims = 0;
	for (int i = 0; i < 60; i++) {
		/* Up 10 MiB one second, down the next, the freed part kept. */
		if (i % 2 == 0) {
			cr_assert_not(due(&m, 40 * MIB, 0));
		} else if (due(&m, 30 * MIB, 10 * MIB)) {
			trimmed(&m, 30 * MIB);
			trims++;
		}
	}
	cr_assert_leq(trims, 60 / MEMTRIM_GAP, "%d trims in 60 samples", trims);
	cr_assert_geq(trims, 60 / (MEMTRIM_GAP + 1) - 1, "%d trims in 60 samples", trims);
}

Test(memtrim, memory_that_went_back_by_itself_lowers_the_floor)
{
	struct memtrim m;
	memtrim_init(&m);
	cr_assert_not(due(&m, 10 * MIB, 30 * MIB));	/* e.g. buffers resident at start */
	cr_assert_not(due(&m, 10 * MIB, 0));		/* dropped by their owner */
	cr_assert_not(due(&m, 10 * MIB, 3 * MIB));
	cr_assert(due(&m, 10 * MIB, 5 * MIB), "judged from the new floor");
}

static size_t rss(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	cr_assert(f);
	cr_assert_eq(fscanf(f, "%lu %lu", &size, &resident), 2);
	fclose(f);
	return resident * 4096;
}

Test(memtrim, check_gives_back_freed_memory)
{
#ifdef __SANITIZE_ADDRESS__
	cr_skip_test("ASan's allocator stands in for glibc's arenas: this is about glibc's");
#endif
	struct memtrim m;
	memtrim_init(&m);
	cr_assert_geq(memtrim_check(&m), 0);
	/* 64 MiB in 64 KiB blocks (under the mmap threshold: heap memory),
	 * with a small block after each that stays, as a long-lived
	 * allocation would: free() alone cannot shrink the heap. */
	enum { N = 1024 };
	void **big = calloc(N, sizeof(*big)), **small = calloc(N, sizeof(*small));
	cr_assert(big && small);
	for (int i = 0; i < N; i++) {
		big[i] = malloc(64 << 10);
		small[i] = malloc(32);
		cr_assert(big[i] && small[i]);
		memset(big[i], 1, 64 << 10);
	}
	cr_assert_eq(memtrim_check(&m), 0, "growing: no trim");
	for (int i = 0; i < N; i++)
		free(big[i]);
	size_t held = rss();
	cr_assert_eq(memtrim_check(&m), 1, "64 MiB freed: trim");
	cr_assert_lt(rss() + 48 * MIB, held, "RSS %zu MiB after the trim, %zu MiB before",
		     rss() / MIB, held / MIB);
	cr_assert_eq(m.trims, 1);
	cr_assert_eq(memtrim_check(&m), 0);
	for (int i = 0; i < N; i++)
		free(small[i]);
	free(big);
	free(small);
}
