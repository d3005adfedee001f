/*
 * Giving the heap back after a burst. See include/zring/memtrim.h.
 */
#include "zring/memtrim.h"
#include "zring/log.h"

#include <errno.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

void memtrim_init(struct memtrim *m)
{
	m->peak = 0;
	m->prev = 0;
	m->trims = 0;
}

bool memtrim_due(struct memtrim *m, size_t in_use)
{
	bool growing = in_use > m->prev;
	m->prev = in_use;
	if (in_use > m->peak)
		m->peak = in_use;
	if (growing || m->peak - in_use < MEMTRIM_SLACK)
		return false;
	m->peak = in_use;
	return true;
}

/* Resident set in KiB from /proc/self/statm, 0 if unreadable. For the log. */
static unsigned long rss_kib(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "re");
	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * 4;
}

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
int memtrim_check(struct memtrim *m)
{
	struct mallinfo2 mi = mallinfo2();
	size_t peak = m->peak > mi.uordblks ? m->peak : mi.uordblks;
	if (!memtrim_due(m, mi.uordblks))
		return 0;
	unsigned long before = rss_kib();
	malloc_trim(0);
	m->trims++;
	struct log_line l;
	if (log_begin(&l, LOG_DEBUG, "heap trimmed")) {
		log_u64(&l, "in_use_kib", mi.uordblks >> 10);
		log_u64(&l, "peak_kib", peak >> 10);
		log_u64(&l, "rss_before_kib", before);
		log_u64(&l, "rss_after_kib", rss_kib());
		log_end(&l);
	}
	return 1;
}
#else
int memtrim_check(struct memtrim *m)
{
	(void)m;
	return -ENOTSUP;
}
#endif
