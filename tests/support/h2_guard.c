/*
 * h2_guard: an LD_PRELOAD shim that enforces nghttp2's re-entrancy rule on
 * the process it is loaded into. nghttp2 forbids calling
 * nghttp2_session_send / nghttp2_session_mem_send from inside its own
 * callbacks, i.e. while nghttp2_session_recv / _mem_recv / _send /
 * _mem_send is running on the same thread. The shim wraps those four
 * entry points, counts how deep the thread is inside them, and aborts with
 * a message on stderr when a send starts while the count is not zero.
 *
 * Test-only (tests/e2e/hbone-h2-contract.sh). Under ASan, load it with
 * ASAN_OPTIONS=verify_asan_link_order=0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>

static __thread int depth;

static void *next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (!f) {
		fprintf(stderr, "h2_guard: %s not found\n", name);
		abort();
	}
	return f;
}

static void check_send(const char *name)
{
	if (depth > 0) {
		fprintf(stderr, "h2_guard: %s called from inside an nghttp2 callback "
				"(nghttp2 forbids it)\n", name);
		abort();
	}
}

ssize_t nghttp2_session_mem_recv(nghttp2_session *s, const uint8_t *in, size_t len)
{
	static ssize_t (*real)(nghttp2_session *, const uint8_t *, size_t);
	if (!real)
		real = next("nghttp2_session_mem_recv");
	depth++;
	ssize_t rv = real(s, in, len);
	depth--;
	return rv;
}

int nghttp2_session_recv(nghttp2_session *s)
{
	static int (*real)(nghttp2_session *);
	if (!real)
		real = next("nghttp2_session_recv");
	depth++;
	int rv = real(s);
	depth--;
	return rv;
}

int nghttp2_session_send(nghttp2_session *s)
{
	static int (*real)(nghttp2_session *);
	if (!real)
		real = next("nghttp2_session_send");
	check_send("nghttp2_session_send");
	depth++;
	int rv = real(s);
	depth--;
	return rv;
}

ssize_t nghttp2_session_mem_send(nghttp2_session *s, const uint8_t **out)
{
	static ssize_t (*real)(nghttp2_session *, const uint8_t **);
	if (!real)
		real = next("nghttp2_session_mem_send");
	check_send("nghttp2_session_mem_send");
	depth++;
	ssize_t rv = real(s, out);
	depth--;
	return rv;
}
