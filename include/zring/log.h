/*
 * Logging: leveled, text (logfmt) or JSON lines on stderr.
 *
 * A line is built field by field in a caller-owned buffer and written with
 * one write(2), so lines from different threads never interleave:
 *
 *	struct log_line l;
 *	if (log_begin(&l, LOG_INFO, "listening")) {
 *		log_str(&l, "role", "outbound");
 *		log_u64(&l, "worker", 0);
 *		log_end(&l);
 *	}
 *
 * log_begin returns false when the level is filtered out; nothing else needs
 * to be called then. Values are quoted and escaped as the format requires
 * (bytes that are not UTF-8 become U+FFFD). A line that would not fit its
 * buffer is cut field by field and ends with truncated=true: it is still
 * one valid JSON object (or logfmt line). The level is a process-wide atomic and can change at run time.
 */
#ifndef ZRING_LOG_H
#define ZRING_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_TEXT, LOG_JSON };

struct log_line {
	size_t len;
	bool truncated;
	char buf[2048];
};

void log_setup(enum log_level level, enum log_format format);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Parse a level ("error", "warn", "info", "debug") or format ("text",
 * "json"); return 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
int log_format_parse(const char *s, enum log_format *out);

bool log_begin(struct log_line *l, enum log_level level, const char *msg);
void log_str(struct log_line *l, const char *key, const char *val);
void log_u64(struct log_line *l, const char *key, uint64_t val);
void log_i64(struct log_line *l, const char *key, int64_t val);
/* A negative errno as its strerror text. */
void log_err(struct log_line *l, const char *key, int neg_errno);
void log_end(struct log_line *l);

/* One-liners for the common shapes. */
void log_msg(enum log_level level, const char *msg);
void log_msg_err(enum log_level level, const char *msg, const char *what, int neg_errno);

#endif
