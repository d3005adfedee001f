/*
 * Small helpers every module uses: container_of, array sizes, branch hints.
 *
 * Error convention (stated once, used everywhere): functions return 0 or a
 * negative errno and forward a callee's error unchanged; a function that
 * takes a callback and fails never calls it.
 */
#ifndef ZRING_UTIL_H
#define ZRING_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/* Wall clock in milliseconds since the epoch (for log timestamps). */
uint64_t wall_ms(void);

/* The length (1-4) of the well-formed UTF-8 character that starts at s (a
 * non-empty string), or 0 when the bytes there are not one: a stray
 * continuation byte, a truncated or overlong sequence, a surrogate or a
 * code point above U+10FFFF. Escapers replace such bytes with U+FFFD so
 * that what they write is always valid UTF-8. */
size_t utf8_char_len(const char *s);

/* Write a reason into why[why_len] (printf-style; nothing if why is NULL
 * or why_len 0) and return err: `return why_fail(-EINVAL, why, n, ...)`. */
int why_fail(int err, char *why, size_t why_len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
