/*
 * The JSON text around cJSON: a lexical pre-check for what cJSON accepts
 * silently or reports poorly, and the line:column of any parsed node.
 *
 * cJSON records no positions, and it decodes "\u0000" into a string it
 * then truncates, takes raw control characters inside strings, reads
 * "+1", "01" and ".5" as numbers and does not look at UTF-8. The check
 * here is a flat tokenizer (no recursion, one pass, no allocation) that
 * rejects all of that with a position before cJSON parses anything;
 * cJSON then checks the structure.
 *
 * Positions are only needed when there are errors, so they are found
 * afterwards: a pre-order walk of the cJSON tree advances a cursor over
 * the text in step (cJSON keeps members in document order, duplicates
 * included), recording where each wanted node starts.
 */
#include "config_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef const unsigned char *uptr;

size_t json_bom_len(const char *buf, size_t len)
{
	return len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
}

/* Length of the valid UTF-8 sequence at p (2-4 bytes), or 0 if invalid:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(uptr p, size_t n)
{
	unsigned b = p[0];
	size_t len;
	unsigned lo = 0x80, hi = 0xbf;	/* allowed range of the second byte */

	if (b >= 0xc2 && b <= 0xdf)
		len = 2;
	else if (b >= 0xe0 && b <= 0xef) {
		len = 3;
		if (b == 0xe0)
			lo = 0xa0;
		else if (b == 0xed)
			hi = 0x9f;
	} else if (b >= 0xf0 && b <= 0xf4) {
		len = 4;
		if (b == 0xf0)
			lo = 0x90;
		else if (b == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

static int hexval(unsigned ch)
{
	if (ch >= '0' && ch <= '9')
		return (int)(ch - '0');
	ch |= 0x20;
	return ch >= 'a' && ch <= 'f' ? (int)(ch - 'a' + 10) : -1;
}

/* The code unit of "\uXXXX" at p (p[0] == '\\'), or -1. */
static long u_escape(uptr p, uptr end)
{
	if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
		return -1;
	long v = 0;
	for (int i = 2; i < 6; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

struct lexer {
	uptr start, p, end;
	struct json_lex_error *e;
};

static int lex_fail(struct lexer *l, uptr at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int lex_fail(struct lexer *l, uptr at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->e->msg, sizeof(l->e->msg), fmt, ap);
	va_end(ap);
	l->e->off = (size_t)(at - l->start);
	return -EINVAL;
}

/* A backslash escape at l->p; advances past it. */
static int lex_escape(struct lexer *l)
{
	uptr p = l->p;
	if (p + 1 >= l->end)
		return lex_fail(l, p, "unterminated string");
	if (strchr("\"\\/bfnrt", p[1]) && p[1]) {
		l->p += 2;
		return 0;
	}
	long u = u_escape(p, l->end);
	if (u < 0)
		return lex_fail(l, p, "invalid escape sequence in a string");
	if (u == 0)
		return lex_fail(l, p, "\\u0000 (NUL) is not allowed in a string");
	if (u >= 0xdc00 && u <= 0xdfff)
		return lex_fail(l, p, "unpaired UTF-16 surrogate \\u%04lX in a string", u);
	if (u >= 0xd800 && u <= 0xdbff) {
		long lo = u_escape(p + 6, l->end);
		if (lo < 0xdc00 || lo > 0xdfff)
			return lex_fail(l, p, "unpaired UTF-16 surrogate \\u%04lX in a string", u);
		l->p += 12;
		return 0;
	}
	l->p += 6;
	return 0;
}

static int lex_string(struct lexer *l)
{
	uptr open = l->p++;
	while (l->p < l->end) {
		unsigned ch = *l->p;
		if (ch == '"') {
			l->p++;
			return 0;
		}
		if (ch == '\\') {
			int err = lex_escape(l);
			if (err)
				return err;
		} else if (ch == 0) {
			return lex_fail(l, l->p, "NUL byte in a string");
		} else if (ch < 0x20) {
			return lex_fail(l, l->p, "control character U+%04X in a string (write it "
					"as an escape)", ch);
		} else if (ch < 0x80) {
			l->p++;
		} else {
			size_t n = utf8_len(l->p, (size_t)(l->end - l->p));
			if (!n)
				return lex_fail(l, l->p, "invalid UTF-8");
			l->p += n;
		}
	}
	return lex_fail(l, open, "unterminated string (truncated file?)");
}

static bool is_digit(unsigned ch)
{
	return ch >= '0' && ch <= '9';
}

/* cJSON copies at most 63 characters of a number. */
#define NUMBER_MAX 63

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? then a delimiter. */
static int lex_number(struct lexer *l)
{
	uptr s = l->p, p = l->p, end = l->end;
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && is_digit(*p))
		while (p < end && is_digit(*p))
			p++;
	else
		return lex_fail(l, s, "invalid number");
	if (p < end && *p == '.') {
		if (++p >= end || !is_digit(*p))
			return lex_fail(l, s, "invalid number");
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit(*p))
			return lex_fail(l, s, "invalid number");
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (is_digit(*p) || strchr("+-.eExX", *p)))
		return lex_fail(l, s, "invalid number");
	if (p - s > NUMBER_MAX)
		return lex_fail(l, s, "number longer than %d characters", NUMBER_MAX);
	l->p = p;
	return 0;
}

static bool is_word(unsigned ch)
{
	return (ch | 0x20) >= 'a' && (ch | 0x20) <= 'z';
}

static int lex_literal(struct lexer *l)
{
	uptr s = l->p;
	while (l->p < l->end && (is_word(*l->p) || is_digit(*l->p)))
		l->p++;
	size_t n = (size_t)(l->p - s);
	if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0) ||
	    (n == 4 && memcmp(s, "null", 4) == 0))
		return 0;
	return lex_fail(l, s, "invalid literal (expected true, false, null, a number or a "
			"string)");
}

static int lex_stray(struct lexer *l)
{
	unsigned ch = *l->p;
	if (ch == 0)
		return lex_fail(l, l->p, "NUL byte");
	if (ch >= 0x80) {
		if (!utf8_len(l->p, (size_t)(l->end - l->p)))
			return lex_fail(l, l->p, "invalid UTF-8");
		return lex_fail(l, l->p, "unexpected character outside a string");
	}
	if (ch < 0x20 || ch == 0x7f)
		return lex_fail(l, l->p, "unexpected control character U+%04X", ch);
	return lex_fail(l, l->p, "unexpected character '%c'", (char)ch);
}

int json_lex_check(const char *buf, size_t len, struct json_lex_error *e,
		   unsigned *depth_left)
{
	struct lexer l = { (uptr)buf, (uptr)buf, (uptr)buf + len, e };
	unsigned depth = 0;
	size_t tokens = 0;
	int err = 0;

	l.p += json_bom_len(buf, len);
	while (!err && l.p < l.end) {
		unsigned ch = *l.p;
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == ',' || ch == ':') {
			l.p++;
			continue;
		}
		if (ch == '}' || ch == ']') {
			depth -= depth > 0;
			l.p++;
			continue;
		}
		if (++tokens > CONFIG_MAX_TOKENS)
			return lex_fail(&l, l.p, "more than %u JSON values and keys",
					CONFIG_MAX_TOKENS);
		if (ch == '{' || ch == '[') {
			if (++depth > CONFIG_MAX_DEPTH)
				return lex_fail(&l, l.p, "nested deeper than %d levels",
						CONFIG_MAX_DEPTH);
			l.p++;
		} else if (ch == '"')
			err = lex_string(&l);
		else if (ch == '-' || is_digit(ch))
			err = lex_number(&l);
		else if (is_word(ch))
			err = lex_literal(&l);
		else
			err = lex_stray(&l);
	}
	if (!err && tokens == 0)
		return lex_fail(&l, l.end, "empty document (expected a JSON object)");
	*depth_left = depth;
	return err;
}

void json_offset_pos(const char *buf, size_t len, size_t off, unsigned *line, unsigned *col)
{
	unsigned ln = 1, cl = 1;
	if (off > len)
		off = len;
	for (size_t i = json_bom_len(buf, len); i < off; i++) {
		unsigned char ch = (unsigned char)buf[i];
		if (ch == '\n') {
			ln++;
			cl = 1;
		} else if ((ch & 0xc0) != 0x80) {
			cl++;
		}
	}
	*line = ln;
	*col = cl;
}

/* ---- positions ---- */

struct cursor {
	uptr p, end;
	unsigned line, col;
};

static void cur_step(struct cursor *c)
{
	if (*c->p == '\n') {
		c->line++;
		c->col = 1;
	} else if ((*c->p & 0xc0) != 0x80) {
		c->col++;
	}
	c->p++;
}

/* Past whitespace, separators and closing brackets: to the next token. */
static void cur_skip_gap(struct cursor *c)
{
	while (c->p < c->end && strchr(" \t\r\n,:]}", *c->p) && *c->p)
		cur_step(c);
}

static void cur_skip_string(struct cursor *c)
{
	cur_step(c);	/* the opening quote */
	while (c->p < c->end && *c->p != '"') {
		if (*c->p == '\\' && c->p + 1 < c->end)
			cur_step(c);
		cur_step(c);
	}
	if (c->p < c->end)
		cur_step(c);
}

static void cur_skip_scalar(struct cursor *c)
{
	if (c->p < c->end && *c->p == '"') {
		cur_skip_string(c);
		return;
	}
	while (c->p < c->end && (is_word(*c->p) || is_digit(*c->p) || strchr("+-.", *c->p)) &&
	       *c->p)
		cur_step(c);
}

int json_pos_req_cmp(const void *a, const void *b)
{
	const struct json_pos_req *x = a, *y = b;
	return (x->node > y->node) - (x->node < y->node);
}

/* Fill every request for node n (they are adjacent in the sorted array). */
static void fill(struct json_pos_req *reqs, size_t n, const cJSON *node,
		 const struct cursor *val, unsigned kl, unsigned kc)
{
	struct json_pos_req key = { .node = node };
	struct json_pos_req *r = bsearch(&key, reqs, n, sizeof(*reqs), json_pos_req_cmp);
	if (!r)
		return;
	while (r > reqs && r[-1].node == node)
		r--;
	for (; r < reqs + n && r->node == node; r++) {
		r->line = val->line;
		r->col = val->col;
		r->key_line = kl;
		r->key_col = kc;
	}
}

/* Move the cursor over node n's key (if any) and to its value. */
static void visit(struct cursor *c, const cJSON *n, struct json_pos_req *reqs, size_t nreqs)
{
	unsigned kl = 0, kc = 0;
	cur_skip_gap(c);
	if (n->string) {
		kl = c->line;
		kc = c->col;
		cur_skip_string(c);
		cur_skip_gap(c);	/* the colon */
	}
	fill(reqs, nreqs, n, c, kl, kc);
	if ((cJSON_IsArray(n) || cJSON_IsObject(n)) && c->p < c->end)
		cur_step(c);	/* the opening bracket */
	else
		cur_skip_scalar(c);
}

void json_resolve_positions(const char *buf, size_t len, const cJSON *root,
			    struct json_pos_req *reqs, size_t n)
{
	/* Depth is bounded by json_lex_check; cJSON allows no more either. */
	const cJSON *stack[CONFIG_MAX_DEPTH + 2];
	size_t depth = 0;
	size_t bom = json_bom_len(buf, len);
	struct cursor c = { (uptr)buf + bom, (uptr)buf + len, 1, 1 };
	const cJSON *node = root;

	while (node) {
		visit(&c, node, reqs, n);
		if ((cJSON_IsArray(node) || cJSON_IsObject(node)) && node->child &&
		    depth < sizeof(stack) / sizeof(stack[0])) {
			stack[depth++] = node;
			node = node->child;
			continue;
		}
		while (node && !node->next)
			node = depth ? stack[--depth] : NULL;
		if (node)
			node = node->next;
	}
}
