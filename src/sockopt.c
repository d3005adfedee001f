/*
 * TCP keepalive on proxied sockets. See include/zring/sockopt.h.
 */
#include "zring/sockopt.h"
#include "zring/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

#define WARN_EVERY_NS (10 * 1000000000ull)

/* Shared by every worker: only failures touch them, and those are rare. */
static _Atomic uint64_t failures;
static _Atomic uint64_t last_warn_ns;

static int set_int(int fd, int level, int name, int val)
{
	return setsockopt(fd, level, name, &val, sizeof(val)) < 0 ? -errno : 0;
}

int sockopt_keepalive(int fd, const struct keepalive_opts *ka)
{
	int err;
	if (!ka || !ka->on)
		return 0;
	/* The figures first: SO_KEEPALIVE arms the timer with what is set. */
	if ((err = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)ka->idle_s)) < 0 ||
	    (err = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, (int)ka->interval_s)) < 0 ||
	    (err = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, (int)ka->probes)) < 0 ||
	    (err = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1)) < 0)
		return err;
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One warning per WARN_EVERY_NS: a failure that hits one socket likely
 * hits every one, and the counter keeps the exact number. */
static void warn(const char *what, int err, uint64_t total)
{
	uint64_t now = mono_ns(), last = atomic_load_explicit(&last_warn_ns, memory_order_relaxed);
	if (last && now - last < WARN_EVERY_NS)
		return;
	if (!atomic_compare_exchange_strong(&last_warn_ns, &last, now))
		return;
	struct log_line line;
	if (log_begin(&line, LOG_WARN, "tcp keepalive not set; the connection goes on without it")) {
		log_str(&line, "socket", what);
		log_err(&line, "error", err);
		log_u64(&line, "failures", total);
		log_end(&line);
	}
}

void sockopt_keepalive_try(int fd, const struct keepalive_opts *ka, const char *what)
{
	int err = sockopt_keepalive(fd, ka);
	if (err < 0)
		warn(what, err, atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed) + 1);
}

uint64_t sockopt_failures(void)
{
	return atomic_load_explicit(&failures, memory_order_relaxed);
}
