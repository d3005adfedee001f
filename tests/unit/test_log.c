#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "zring/log.h"

/* Run f with stderr redirected into a pipe; return what it wrote. */
static char *capture(void (*f)(void))
{
	static char out[4096];
	int p[2], saved = dup(STDERR_FILENO);
	cr_assert_eq(pipe(p), 0);
	dup2(p[1], STDERR_FILENO);
	f();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	ssize_t n = read(p[0], out, sizeof(out) - 1);
	close(p[0]);
	out[n < 0 ? 0 : n] = '\0';
	return out;
}

static void emit(void)
{
	struct log_line l;
	if (log_begin(&l, LOG_INFO, "access")) {
		log_str(&l, "dir", "outbound");
		log_str(&l, "error", "upstream reset: \"x\"");
		log_u64(&l, "up_bytes", 42);
		log_end(&l);
	}
}

static void emit_debug(void)
{
	log_msg(LOG_DEBUG, "hidden");
}

Test(log, text_is_logfmt_with_quoted_values)
{
	log_setup(LOG_INFO, LOG_TEXT);
	char *s = capture(emit);
	cr_assert(strstr(s, " level=info msg=access dir=outbound "), "%s", s);
	cr_assert(strstr(s, "error=\"upstream reset: \\\"x\\\"\""), "%s", s);
	cr_assert(strstr(s, "up_bytes=42\n"), "%s", s);
	cr_assert_eq(strncmp(s, "ts=", 3), 0);
}

Test(log, json_is_one_object_per_line)
{
	log_setup(LOG_INFO, LOG_JSON);
	char *s = capture(emit);
	cr_assert_eq(s[0], '{');
	cr_assert(strstr(s, "\"msg\":\"access\""), "%s", s);
	cr_assert(strstr(s, "\"up_bytes\":42}\n"), "%s", s);
	cr_assert(strstr(s, "\"error\":\"upstream reset: \\\"x\\\"\""), "%s", s);
	log_setup(LOG_INFO, LOG_TEXT);
}

Test(log, levels_filter)
{
	log_setup(LOG_INFO, LOG_TEXT);
	cr_assert_str_eq(capture(emit_debug), "");
	log_set_level(LOG_DEBUG);
	cr_assert(strstr(capture(emit_debug), "msg=hidden"));
	log_set_level(LOG_INFO);
}

static void emit_huge(void)
{
	struct log_line l;
	char big[4000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	if (log_begin(&l, LOG_WARN, "big")) {
		log_str(&l, "v", big);
		log_end(&l);
	}
}

Test(log, an_oversized_value_is_truncated_not_overflowed)
{
	log_setup(LOG_INFO, LOG_JSON);
	char *s = capture(emit_huge);
	size_t n = strlen(s);
	cr_assert_leq(n, sizeof(((struct log_line *)0)->buf));
	cr_assert_eq(s[n - 1], '\n');
	cr_assert_eq(s[n - 2], '}');
	log_setup(LOG_INFO, LOG_TEXT);
}

static void emit_huge_escaped(void)
{
	struct log_line l;
	static char big[3000];
	/* Every character needs escaping or is multi-byte. */
	for (size_t i = 0; i + 3 < sizeof(big); i += 3)
		memcpy(big + i, i % 2 ? "\xc3\xa9\"" : "\\\n\t", 3);
	if (log_begin(&l, LOG_WARN, "big")) {
		log_u64(&l, "before", 1);
		log_str(&l, "v", big);
		log_u64(&l, "after", 2);
		log_end(&l);
	}
}

Test(log, a_cut_text_line_closes_its_quote_and_says_truncated)
{
	log_setup(LOG_INFO, LOG_TEXT);
	char *s = capture(emit_huge_escaped);
	size_t n = strlen(s);
	cr_assert_leq(n, sizeof(((struct log_line *)0)->buf));
	cr_assert(strstr(s, " before=1 v=\""), "%s", s);
	cr_assert_null(strstr(s, "after="), "a field after the cut must not appear: %s", s);
	const char *end = " truncated=true\n";
	cr_assert_str_eq(s + n - strlen(end), end, "%s", s + n - 40);
	/* The value's closing quote is right before the marker, not escaped. */
	cr_assert_eq(s[n - strlen(end) - 1], '"');
	cr_assert_neq(s[n - strlen(end) - 2], '\\');
}

static void emit_not_utf8(void)
{
	struct log_line l;
	if (log_begin(&l, LOG_INFO, "x")) {
		log_str(&l, "v", "a\xff" "b\xe2\x98" "c\xed\xa0\x80" "d\xc3\xa9");
		log_end(&l);
	}
}

Test(log, bytes_that_are_not_utf8_become_replacement_characters)
{
	log_setup(LOG_INFO, LOG_JSON);
	char *s = capture(emit_not_utf8);
	log_setup(LOG_INFO, LOG_TEXT);
	/* \xff, a cut 3-byte sequence (two bytes) and a surrogate (three). */
	cr_assert(strstr(s, "\"v\":\"a\xef\xbf\xbd"
			    "b\xef\xbf\xbd\xef\xbf\xbd"
			    "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
			    "d\xc3\xa9\"}"), "%s", s);
}

Test(log, parses_levels_and_formats)
{
	enum log_level lv;
	enum log_format f;
	cr_assert_eq(log_level_parse("debug", &lv), 0);
	cr_assert_eq(lv, LOG_DEBUG);
	cr_assert_eq(log_level_parse("loud", &lv), -EINVAL);
	cr_assert_eq(log_format_parse("json", &f), 0);
	cr_assert_eq(f, LOG_JSON);
	cr_assert_eq(log_format_parse("xml", &f), -EINVAL);
}
