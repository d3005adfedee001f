/*
 * Descriptor budget. See include/zring/fdbudget.h.
 */
#include "zring/fdbudget.h"

#include <dirent.h>
#include <stdatomic.h>
#include <sys/resource.h>

static long g_limit = 1024;
static _Atomic long g_open;
static _Atomic long g_parked;

void fdb_init(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		g_limit = (long)rl.rlim_cur;
	long n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		while (readdir(d))
			n++;
		closedir(d);
		n -= 3;		/* ".", ".." and the directory's own descriptor */
	}
	atomic_store(&g_open, n > 0 ? n : 0);
}

void fdb_opened(int n)
{
	atomic_fetch_add_explicit(&g_open, n, memory_order_relaxed);
}

void fdb_closed(int n)
{
	atomic_fetch_sub_explicit(&g_open, n, memory_order_relaxed);
}

void fdb_parked(int n)
{
	atomic_fetch_add_explicit(&g_parked, n, memory_order_relaxed);
}

long fdb_reserve(void)
{
	long r = g_limit / 16;
	return r < 4 ? 4 : r > 32 ? 32 : r;
}

long fdb_limit(void)
{
	return g_limit;
}

long fdb_free(void)
{
	return g_limit - atomic_load_explicit(&g_open, memory_order_relaxed);
}

bool fdb_can_accept(void)
{
	long owed = atomic_load_explicit(&g_parked, memory_order_relaxed);
	return fdb_free() - owed >= 2 + fdb_reserve();
}

bool fdb_multishot_ok(unsigned backlog)
{
	return fdb_free() >= 2 * (long)backlog + fdb_reserve();
}
