/*
 * A growable byte buffer for text built piece by piece off the data path:
 * HTTP responses, metrics pages, config dumps.
 *
 * Allocation failure is sticky: once an append fails, sb->err is -ENOMEM,
 * later appends do nothing, and the caller checks err once at the end.
 * The buffer is always NUL-terminated when len > 0 and err == 0.
 */
#ifndef ZRING_STRBUF_H
#define ZRING_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
	int err;	/* 0, or -ENOMEM after a failed append */
};

void strbuf_init(struct strbuf *sb);
/* Free the buffer; sb is empty and usable again. */
void strbuf_deinit(struct strbuf *sb);
/* Forget the contents, keep the allocation. */
void strbuf_reset(struct strbuf *sb);

void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
__attribute__((format(printf, 2, 3)))
void strbuf_printf(struct strbuf *sb, const char *fmt, ...);
void strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap);

/* Hand the buffer over: returns it (caller frees) and leaves sb empty.
 * NULL if nothing was appended or an append failed. */
char *strbuf_take(struct strbuf *sb, size_t *len);

#endif
