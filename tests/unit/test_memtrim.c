#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zring/memtrim.h"

#define MIB ((size_t)1 << 20)

Test(memtrim, steady_load_never_trims)
{
	struct memtrim m;
	memtrim_init(&m);
	/* A busy proxy: the heap wobbles by less than the slack. */
	for (int i = 0; i < 1000; i++)
		cr_assert_not(memtrim_due(&m, 50 * MIB + (size_t)(i % 7) * (MIB / 2)));
}

Test(memtrim, trims_once_after_a_burst)
{
	struct memtrim m;
	memtrim_init(&m);
	cr_assert_not(memtrim_due(&m, 10 * MIB));
	cr_assert_not(memtrim_due(&m, 200 * MIB), "growing: the burst is on");
	cr_assert(memtrim_due(&m, 11 * MIB), "the burst is over");
	cr_assert_not(memtrim_due(&m, 11 * MIB), "nothing new to give back");
	cr_assert_not(memtrim_due(&m, 10 * MIB));
}

Test(memtrim, waits_while_the_heap_grows)
{
	struct memtrim m;
	memtrim_init(&m);
	cr_assert_not(memtrim_due(&m, 100 * MIB));
	cr_assert(memtrim_due(&m, 20 * MIB));
	/* A new burst: it climbs back, though still below the old peak. */
	cr_assert_not(memtrim_due(&m, 30 * MIB));
	cr_assert_not(memtrim_due(&m, 60 * MIB));
	cr_assert_not(memtrim_due(&m, 90 * MIB));
	cr_assert(memtrim_due(&m, 20 * MIB));
}

Test(memtrim, steps_down_trim_each_step)
{
	struct memtrim m;
	memtrim_init(&m);
	cr_assert_not(memtrim_due(&m, 100 * MIB));
	cr_assert(memtrim_due(&m, 60 * MIB));	/* the junk went */
	cr_assert_not(memtrim_due(&m, 59 * MIB));
	cr_assert(memtrim_due(&m, 20 * MIB));	/* the slow ones timed out */
}

Test(memtrim, a_new_burst_after_a_trim_trims_again)
{
	struct memtrim m;
	memtrim_init(&m);
	cr_assert_not(memtrim_due(&m, 100 * MIB));
	cr_assert(memtrim_due(&m, 10 * MIB));
	cr_assert_not(memtrim_due(&m, 100 * MIB));
	cr_assert(memtrim_due(&m, 10 * MIB));
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
