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

/*
 * A line never overflows its buffer and is always well formed: a field that
 * does not fit is left out whole, a string value that does not fit is cut
 * at a character boundary and its quote still closed, and a cut line ends
 * with truncated=true. LOG_RESERVE keeps room for that marker and the
 * line's end ("}\n" or "\n").
 */
#define TRUNCATED_JSON ",\"truncated\":true"
#define TRUNCATED_TEXT " truncated=true"
#define LOG_RESERVE (sizeof(TRUNCATED_JSON) + 2)

static size_t room(const struct log_line *l)
{
	return sizeof(l->buf) - LOG_RESERVE - l->len;
}

/* All of s, or nothing (and the line is marked truncated). */
static bool put(struct log_line *l, const char *s, size_t n)
{
	if (n > room(l)) {
		l->truncated = true;
		return false;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	return true;
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
 * \t and \u00XX, so one escaper serves both. Bytes that are not UTF-8
 * become U+FFFD. Stops (the line is marked truncated) where the next
 * character would not leave `keep` bytes free. */
static void put_escaped(struct log_line *l, const char *v, size_t keep)
{
	while (*v) {
		unsigned char c = (unsigned char)*v;
		char tmp[8];
		const char *out = tmp;
		size_t n = 2, step = 1;
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
		} else if (c == '\n') {
			out = "\\n";
		} else if (c == '\t') {
			out = "\\t";
		} else if (c < 0x20 || c == 0x7f) {
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
		} else if ((step = utf8_char_len(v)) == 0) {
			out = "\xef\xbf\xbd";	/* U+FFFD */
			n = 3;
			step = 1;
		} else {
			out = v;
			n = step;
		}
		if (n + keep > room(l)) {
			l->truncated = true;
			return;
		}
		put(l, out, n);
		v += step;
	}
}

static bool put_key(struct log_line *l, const char *key)
{
	size_t n = strlen(key);
	if (g_format == LOG_JSON) {
		/* ,"key": and both quotes of a string value */
		if (n + 6 > room(l)) {
			l->truncated = true;
			return false;
		}
		put(l, ",\"", 2);
		put(l, key, n);
		return put(l, "\":", 2);
	}
	if (n + 4 > room(l)) {		/* " key=" and two quotes */
		l->truncated = true;
		return false;
	}
	put(l, " ", 1);
	put(l, key, n);
	return put(l, "=", 1);
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
		put(l, "\"", 1);
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
	size_t mark = l->len;
	if (!put_key(l, key))
		return;
	if (g_format == LOG_JSON || text_needs_quotes(val)) {
		put(l, "\"", 1);
		put_escaped(l, val, 1);
		l->buf[l->len++] = '"';		/* put_escaped kept room for it */
	} else if (!put(l, val, strlen(val))) {
		l->len = mark;		/* unquoted means short and plain: all or nothing */
	}
}

/* A number: the whole field or none of it. */
static void put_number(struct log_line *l, const char *key, const char *num, size_t n)
{
	size_t mark = l->len;
	if (!put_key(l, key) || !put(l, num, n))
		l->len = mark;
}

void log_u64(struct log_line *l, const char *key, uint64_t val)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, val);
	put_number(l, key, tmp, (size_t)n);
}

void log_i64(struct log_line *l, const char *key, int64_t val)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRId64, val);
	put_number(l, key, tmp, (size_t)n);
}

void log_err(struct log_line *l, const char *key, int neg_errno)
{
	char tmp[64];
	log_str(l, key, strerror_r(-neg_errno, tmp, sizeof(tmp)));
}

void log_end(struct log_line *l)
{
	const char *mark = g_format == LOG_JSON ? TRUNCATED_JSON : TRUNCATED_TEXT;
	if (l->truncated) {		/* LOG_RESERVE kept room for this */
		memcpy(l->buf + l->len, mark, strlen(mark));
		l->len += strlen(mark);
	}
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
