/*
 * Giving the heap back after a burst. See include/zring/memtrim.h.
 */
#include "zring/memtrim.h"
#include "zring/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

void memtrim_init(struct memtrim *m)
{
	m->floor = 0;
	m->prev = 0;
	m->started = false;
	m->since = MEMTRIM_GAP;
	m->trims = 0;
}

static size_t excess(size_t in_use, size_t rss)
{
	return rss > in_use ? rss - in_use : 0;
}

bool memtrim_due(struct memtrim *m, size_t in_use, size_t rss)
{
	size_t x = excess(in_use, rss);
	bool growing = in_use > m->prev;
	m->prev = in_use;
	if (m->since < MEMTRIM_GAP)
		m->since++;
	if (!m->started || x < m->floor) {
		m->started = true;
		m->floor = x;
		return false;
	}
	return !growing && m->since >= MEMTRIM_GAP && x - m->floor >= MEMTRIM_SLACK;
}

void memtrim_trimmed(struct memtrim *m, size_t in_use, size_t rss)
{
	m->floor = excess(in_use, rss);
	m->prev = in_use;
	m->started = true;
	m->since = 0;
	m->trims++;
}

/* Resident set in bytes from /proc/self/statm, 0 if unreadable. Plain
 * read(2) into the stack: no allocation while judging the heap. */
static size_t rss_bytes(void)
{
	char buf[128];
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	unsigned long size = 0, resident = 0;
	if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
		return 0;
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
int memtrim_check(struct memtrim *m)
{
	struct mallinfo2 mi = mallinfo2();
	size_t before = rss_bytes();
	if (!before || !memtrim_due(m, mi.uordblks, before))
		return 0;
	malloc_trim(0);
	size_t after = rss_bytes();
	memtrim_trimmed(m, mi.uordblks, after);
	struct log_line l;
	if (log_begin(&l, LOG_DEBUG, "heap trimmed")) {
		log_u64(&l, "in_use_kib", mi.uordblks >> 10);
		log_u64(&l, "rss_before_kib", before >> 10);
		log_u64(&l, "rss_after_kib", after >> 10);
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
