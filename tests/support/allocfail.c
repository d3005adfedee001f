/*
 * allocfail: an LD_PRELOAD shim for tests that makes one chosen heap
 * allocation (or address query) fail, so that a test can prove that every
 * one on a path is checked and that its failure fails closed.
 *
 * It interposes malloc, calloc, realloc, strdup, strndup, posix_memalign,
 * aligned_alloc, memalign and valloc and forwards them to the next
 * definition (glibc's, or ASan's when the shim is preloaded in front of
 * an ASan build: then ASan still sees and checks every allocation). Nothing
 * is counted until the test arms it, so startup allocations are not the
 * target:
 *
 *   ZR_ALLOCFAIL_CTL=FILE   the test writes "GEN N [KIND]" there (GEN a
 *                           number it raises each time, N >= 1: fail the
 *                           Nth call counted from now; N = 0: count only).
 *                           KIND is "alloc" (the default: the allocators
 *                           above) or "addr": getpeername and getsockname,
 *                           which then fail with ENOTCONN, as for a peer
 *                           that reset before the program asked. The shim
 *                           polls FILE every 2 ms; on a new GEN it resets
 *                           its count and arms.
 *   ZR_ALLOCFAIL_STATE=FILE the shim answers there (written whole, by
 *                           rename): "gen=GEN prev_count=C prev_fired=F",
 *                           where C and F are how many allocations the
 *                           previous generation counted and whether its Nth
 *                           one was failed. The test waits for its GEN.
 *
 *   ZR_ALLOCFAIL_TRACE=1    each failed allocation writes its backtrace to
 *                           stderr (the zring log), to find the call site.
 *
 * One failure per generation: allocations after the failed one succeed, as
 * under transient memory pressure. The shim's own thread never allocates
 * and is never counted.
 */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);
typedef int (*memalign_fn)(void **, size_t, size_t);
typedef void *(*aligned_fn)(size_t, size_t);

static malloc_fn real_malloc;
static calloc_fn real_calloc;
static realloc_fn real_realloc;
static free_fn real_free;
static memalign_fn real_posix_memalign;
static aligned_fn real_aligned_alloc;
static aligned_fn real_memalign;
typedef int (*addr_fn)(int, struct sockaddr *, socklen_t *);
static addr_fn real_getpeername, real_getsockname;

static atomic_ulong count;	/* allocations counted in this generation */
static atomic_ulong target;	/* the one to fail; 0: none */
enum kind { KIND_ALLOC, KIND_ADDR };
static atomic_int armed;
static atomic_int kind;		/* enum kind: which calls are counted */
static atomic_int fired;
static int trace;		/* ZR_ALLOCFAIL_TRACE=1: log where it failed */

/* dlsym itself may allocate before the real functions are known: those
 * few come from here and are never freed. */
static _Alignas(16) char boot[8192];
static atomic_size_t boot_used;

static void *boot_alloc(size_t n)
{
	n = (n + 15) & ~(size_t)15;
	size_t at = atomic_fetch_add(&boot_used, n);
	if (at + n > sizeof(boot))
		return NULL;
	return boot + at;
}

static int from_boot(const void *p)
{
	return (const char *)p >= boot && (const char *)p < boot + sizeof(boot);
}

/* Not thread-local: under ASan a TLS access before ASan's own start goes
 * through its __tls_get_addr interceptor, not ready yet. The first
 * allocation happens while the process has one thread. */
static int resolving;

static void resolve(void)
{
	if (real_malloc || resolving)
		return;
	resolving = 1;
	real_calloc = (calloc_fn)dlsym(RTLD_NEXT, "calloc");
	real_realloc = (realloc_fn)dlsym(RTLD_NEXT, "realloc");
	real_free = (free_fn)dlsym(RTLD_NEXT, "free");
	real_posix_memalign = (memalign_fn)dlsym(RTLD_NEXT, "posix_memalign");
	real_aligned_alloc = (aligned_fn)dlsym(RTLD_NEXT, "aligned_alloc");
	real_memalign = (aligned_fn)dlsym(RTLD_NEXT, "memalign");
	real_getpeername = (addr_fn)dlsym(RTLD_NEXT, "getpeername");
	real_getsockname = (addr_fn)dlsym(RTLD_NEXT, "getsockname");
	real_malloc = (malloc_fn)dlsym(RTLD_NEXT, "malloc");
	resolving = 0;
}

/* True if this call (of kind k) is the one to fail (it sets errno). */
static int should_fail_kind(int k, int err)
{
	if (!atomic_load_explicit(&armed, memory_order_relaxed) ||
	    atomic_load_explicit(&kind, memory_order_relaxed) != k)
		return 0;
	unsigned long n = atomic_fetch_add(&count, 1) + 1;
	if (n != atomic_load(&target))
		return 0;
	atomic_store(&fired, 1);
	if (trace) {
		void *pc[24];
		static const char head[] = "allocfail: failing this allocation:\n";
		if (write(2, head, sizeof(head) - 1) > 0)
			backtrace_symbols_fd(pc, backtrace(pc, 24), 2);
	}
	errno = err;
	return 1;
}

static int should_fail(void)
{
	return should_fail_kind(KIND_ALLOC, ENOMEM);
}

void *malloc(size_t n)
{
	resolve();
	if (!real_malloc)
		return boot_alloc(n);
	return should_fail() ? NULL : real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	resolve();
	if (!real_calloc)
		return boot_alloc(a * b);	/* static: already zero */
	return should_fail() ? NULL : real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	resolve();
	if (from_boot(p)) {
		void *q = malloc(n);
		if (q)
			memcpy(q, p, n < sizeof(boot) ? n : sizeof(boot));
		return q;
	}
	if (n && should_fail())
		return NULL;
	return real_realloc(p, n);
}

void free(void *p)
{
	if (!p || from_boot(p))
		return;
	resolve();
	real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	resolve();
	if (should_fail())
		return ENOMEM;
	return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
	resolve();
	return should_fail() ? NULL : real_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n)
{
	resolve();
	return should_fail() ? NULL : real_memalign(align, n);
}

void *valloc(size_t n)
{
	return memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

char *strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);
	return p ? memcpy(p, s, n) : NULL;
}

char *strndup(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	char *p = malloc(n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	resolve();
	if (should_fail_kind(KIND_ADDR, ENOTCONN))
		return -1;
	return real_getpeername(fd, sa, len);
}

int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	resolve();
	if (should_fail_kind(KIND_ADDR, ENOTCONN))
		return -1;
	return real_getsockname(fd, sa, len);
}

/* --- control: polled from a thread of our own --- */

static const char *ctl_path, *state_path;

/* Read "GEN N [KIND]" from the control file; 0 if it is not there (yet). */
static int read_ctl(unsigned long *gen, unsigned long *n, int *k)
{
	char buf[64];
	int fd = open(ctl_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return -1;
	buf[r] = '\0';
	char *end;
	*gen = strtoul(buf, &end, 10);
	*n = strtoul(end, &end, 10);
	*k = strstr(end, "addr") ? KIND_ADDR : KIND_ALLOC;
	return 0;
}

static void write_state(unsigned long gen, unsigned long prev_count, int prev_fired)
{
	char tmp[4096], buf[128];
	int len = snprintf(buf, sizeof(buf), "gen=%lu prev_count=%lu prev_fired=%d\n", gen,
			   prev_count, prev_fired);
	snprintf(tmp, sizeof(tmp), "%s.tmp", state_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	ssize_t w = write(fd, buf, (size_t)len);
	close(fd);
	if (w == len)
		rename(tmp, state_path);
}

static void *poll_ctl(void *arg)
{
	unsigned long seen = 0;
	const struct timespec tick = { 0, 2 * 1000 * 1000 };
	(void)arg;
	for (;;) {
		unsigned long gen, n;
		int k;
		if (read_ctl(&gen, &n, &k) == 0 && gen != seen) {
			atomic_store(&armed, 0);
			unsigned long prev = atomic_exchange(&count, 0);
			int prev_fired = atomic_exchange(&fired, 0);
			atomic_store(&target, n);
			atomic_store(&kind, k);
			atomic_store(&armed, 1);
			write_state(gen, prev, prev_fired);
			seen = gen;
		}
		nanosleep(&tick, NULL);
	}
	return NULL;
}

__attribute__((constructor)) static void allocfail_init(void)
{
	resolve();
	ctl_path = getenv("ZR_ALLOCFAIL_CTL");
	state_path = getenv("ZR_ALLOCFAIL_STATE");
	if (!ctl_path || !state_path)
		return;
	const char *t = getenv("ZR_ALLOCFAIL_TRACE");
	if (t && *t == '1') {
		void *pc[1];
		backtrace(pc, 1);	/* loads libgcc now, not inside a failure */
		trace = 1;
	}
	/* The thread takes no signal: a process-directed SIGTERM must reach
	 * the program's own threads (zring waits for it on a signalfd). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t th;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, poll_ctl, NULL) != 0)
		fprintf(stderr, "allocfail: cannot start its control thread\n");
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}
