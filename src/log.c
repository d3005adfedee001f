/*
 * Structured log lines, one write(2) each. See include/zring/log.h.
 */
#include "zring/log.h"
#include "zring/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int g_level = LOG_INFO;
static enum log_format g_format = LOG_TEXT;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_setup(enum log_level level, enum log_format format)
{
	atomic_store(&g_level, level);
	g_format = format;
}

void log_set_level(enum log_level level)
{
	atomic_store(&g_level, level);
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&g_level, memory_order_relaxed);
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = LOG_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_JSON;
	else
		return -EINVAL;
	return 0;
}

/* Leave room for the closing "}\n" or "\n" whatever happens. */
#define LOG_RESERVE 3

static void put(struct log_line *l, const char *s, size_t n)
{
	size_t room = sizeof(l->buf) - LOG_RESERVE - l->len;
	if (n > room) {
		n = room;
		l->truncated = true;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void putc_(struct log_line *l, char c)
{
	put(l, &c, 1);
}

static bool text_needs_quotes(const char *v)
{
	if (*v == '\0')
		return true;
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
			return true;
	}
	return false;
}

/* Escape for a JSON string or a quoted logfmt value; both accept \" \\ \n
 * \t and \u00XX, so one escaper serves both. */
static void put_escaped(struct log_line *l, const char *v)
{
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		char tmp[8];
		if (c == '"' || c == '\\') {
			putc_(l, '\\');
			putc_(l, (char)c);
		} else if (c == '\n') {
			put(l, "\\n", 2);
		} else if (c == '\t') {
			put(l, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", c);
			put(l, tmp, 6);
		} else {
			putc_(l, (char)c);
		}
	}
}

static void put_key(struct log_line *l, const char *key)
{
	if (g_format == LOG_JSON) {
		put(l, ",\"", 2);
		put(l, key, strlen(key));
		put(l, "\":", 2);
	} else {
		putc_(l, ' ');
		put(l, key, strlen(key));
		putc_(l, '=');
	}
}

static void put_timestamp(struct log_line *l)
{
	uint64_t ms = wall_ms();
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	char ts[40];
	gmtime_r(&secs, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(ts + n, sizeof(ts) - n, ".%03uZ", (unsigned)(ms % 1000));
	put(l, ts, n);
}

bool log_begin(struct log_line *l, enum log_level level, const char *msg)
{
	if (!log_enabled(level))
		return false;
	l->len = 0;
	l->truncated = false;
	if (g_format == LOG_JSON) {
		put(l, "{\"ts\":\"", 7);
		put_timestamp(l);
		putc_(l, '"');
	} else {
		put(l, "ts=", 3);
		put_timestamp(l);
	}
	log_str(l, "level", level_names[level]);
	log_str(l, "msg", msg);
	return true;
}

void log_str(struct log_line *l, const char *key, const char *val)
{
	if (!val)
		val = "-";
	put_key(l, key);
	if (g_format == LOG_JSON || text_needs_quotes(val)) {
		putc_(l, '"');
		put_escaped(l, val);
		putc_(l, '"');
	} else {
		put(l, val, strlen(val));
	}
}

void log_u64(struct log_line *l, const char *key, uint64_t val)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, val);
	put_key(l, key);
	put(l, tmp, (size_t)n);
}

void log_i64(struct log_line *l, const char *key, int64_t val)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRId64, val);
	put_key(l, key);
	put(l, tmp, (size_t)n);
}

void log_err(struct log_line *l, const char *key, int neg_errno)
{
	char tmp[64];
	log_str(l, key, strerror_r(-neg_errno, tmp, sizeof(tmp)));
}

void log_end(struct log_line *l)
{
	if (g_format == LOG_JSON)
		l->buf[l->len++] = '}';
	l->buf[l->len++] = '\n';
	/* stderr may be a pipe that is full or gone; a lost log line must never
	 * stall or kill the data path, so the result is deliberately ignored. */
	ssize_t r = write(STDERR_FILENO, l->buf, l->len);
	(void)r;
}

void log_msg(enum log_level level, const char *msg)
{
	struct log_line l;
	if (log_begin(&l, level, msg))
		log_end(&l);
}

void log_msg_err(enum log_level level, const char *msg, const char *what, int neg_errno)
{
	struct log_line l;
	if (!log_begin(&l, level, msg))
		return;
	log_str(&l, "what", what);
	log_err(&l, "error", neg_errno);
	log_end(&l);
}
