/* Unit tests for src/strbuf.c: appends, growth, printf, hand-over. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zring/strbuf.h"

Test(strbuf, appends_and_grows)
{
	struct strbuf sb;
	strbuf_init(&sb);
	for (int i = 0; i < 1000; i++)
		strbuf_printf(&sb, "%d,", i);
	cr_assert_eq(sb.err, 0);
	cr_assert(strncmp(sb.buf, "0,1,2,", 6) == 0);
	cr_assert(strstr(sb.buf, ",999,") != NULL);
	cr_assert_eq(strlen(sb.buf), sb.len);
	strbuf_deinit(&sb);
	cr_assert_null(sb.buf);
}

Test(strbuf, binary_and_reset)
{
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_add(&sb, "a\0b", 3);
	cr_assert_eq(sb.len, 3);
	cr_assert_eq(memcmp(sb.buf, "a\0b", 3), 0);
	strbuf_reset(&sb);
	cr_assert_eq(sb.len, 0);
	strbuf_puts(&sb, "x");
	cr_assert_str_eq(sb.buf, "x");
	strbuf_deinit(&sb);
}

Test(strbuf, take_hands_over)
{
	struct strbuf sb;
	size_t n = 99;
	strbuf_init(&sb);
	cr_assert_null(strbuf_take(&sb, &n));
	cr_assert_eq(n, 0);
	strbuf_puts(&sb, "hello");
	char *p = strbuf_take(&sb, &n);
	cr_assert_str_eq(p, "hello");
	cr_assert_eq(n, 5);
	cr_assert_null(sb.buf);
	free(p);
}

Test(strbuf, sticky_error)
{
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_puts(&sb, "ok");
	strbuf_add(&sb, "x", (size_t)-1 / 2);	/* impossible size */
	cr_assert_eq(sb.err, -ENOMEM);
	strbuf_puts(&sb, "more");
	cr_assert_eq(sb.len, 2);
	cr_assert_null(strbuf_take(&sb, NULL));
}
