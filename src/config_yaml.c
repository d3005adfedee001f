/*
 * YAML config files (ztunnel's LOCAL_XDS_PATH format) read with libyaml
 * into the cJSON tree the same content written as JSON gives, so that the
 * model, its validation and its error messages are shared with JSON. Every
 * node's line:column is recorded as the tree is built (libyaml's marks),
 * standing in for config_json.c's walk over the JSON text.
 *
 * What YAML may hold (docs/config.md, "YAML"):
 *   - one document; a second one is an error (serde_yaml, which ztunnel
 *     uses, refuses it too);
 *   - scalars resolved as YAML 1.2's core schema does: null, true/false,
 *     integers (decimal, 0x, 0o), floats; anything else, and every quoted
 *     or block scalar, is a string. Mapping keys are always strings ("80");
 *   - the standard tags (!!str, !!int, !!float, !!bool, !!null, !!map,
 *     !!seq); any other tag is an error;
 *   - anchors, but no aliases: an alias is refused, so no input expands
 *     beyond its own size ("billion laughs" cannot happen);
 *   - the same limits as JSON: CONFIG_MAX_DEPTH nesting, CONFIG_MAX_TOKENS
 *     values and keys, no NUL inside a string, UTF-8 only (a BOM is
 *     skipped; UTF-16 is never guessed).
 */
#include "config_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define TAG_PREFIX "tag:yaml.org,2002:"

struct frame {
	cJSON *node;		/* array or object being filled */
	char *key;		/* object: key waiting for its value, or NULL */
	unsigned key_line, key_col;
};

struct ybuild {
	yaml_parser_t parser;
	const char *buf;
	size_t len;
	struct config_errors *errs;
	cJSON *root;
	struct frame stack[CONFIG_MAX_DEPTH + 1];
	size_t depth;
	struct json_pos_req *pos;
	size_t npos, cap;
	size_t tokens;
	unsigned docs;
	size_t bom;		/* bytes of a UTF-8 BOM before what libyaml reads */
	int err;		/* sticky: the first failure */
};

static int fail_at(struct ybuild *b, unsigned line, unsigned col, int err, const char *fmt,
		   ...) __attribute__((format(printf, 5, 6)));

static int fail_at(struct ybuild *b, unsigned line, unsigned col, int err, const char *fmt,
		   ...)
{
	char msg[256];
	va_list ap;
	if (b->err)
		return b->err;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	b->err = errs_add(b->errs, line, col, "", msg) == -ENOMEM ? -ENOMEM : err;
	return b->err;
}

/* An error at an event's start, in 1-based line:column. */
#define FAIL(b, mark, ...) fail_at((b), (unsigned)(mark).line + 1, \
				   (unsigned)(mark).column + 1, -EINVAL, __VA_ARGS__)

static int oom(struct ybuild *b)
{
	return fail_at(b, 0, 0, -ENOMEM, "out of memory");
}

/* libyaml's own complaint: a reader error has a byte offset, the others a mark. */
static int parser_error(struct ybuild *b)
{
	yaml_parser_t *p = &b->parser;
	unsigned line, col;
	if (p->error == YAML_MEMORY_ERROR)
		return oom(b);
	if (p->error == YAML_READER_ERROR) {
		json_offset_pos(b->buf, b->len, b->bom + p->problem_offset, &line, &col);
		return fail_at(b, line, col, -EINVAL, "%s", p->problem ? p->problem :
			       "invalid input");
	}
	const char *problem = p->problem ? p->problem : "invalid YAML";
	line = (unsigned)p->problem_mark.line + 1;
	col = (unsigned)p->problem_mark.column + 1;
	if (p->context)
		return fail_at(b, line, col, -EINVAL, "YAML syntax error: %s (%s at %u:%u)",
			       problem, p->context, (unsigned)p->context_mark.line + 1,
			       (unsigned)p->context_mark.column + 1);
	return fail_at(b, line, col, -EINVAL, "YAML syntax error: %s", problem);
}

/* ---- scalars ---- */

enum kind { K_NULL, K_BOOL, K_INT, K_FLOAT, K_STR };

static bool all_of(const char *s, const char *set)
{
	return *s && strspn(s, set) == strlen(s);
}

/* YAML 1.2 core schema: what a plain scalar is, and its number. */
static enum kind resolve_plain(const char *s, double *num, bool *truth)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
	static const char *const trues[] = { "true", "True", "TRUE", NULL };
	static const char *const falses[] = { "false", "False", "FALSE", NULL };
	for (size_t i = 0; nulls[i]; i++)
		if (strcmp(s, nulls[i]) == 0)
			return K_NULL;
	for (size_t i = 0; trues[i]; i++)
		if (strcmp(s, trues[i]) == 0 || strcmp(s, falses[i]) == 0) {
			*truth = s[0] == 't' || s[0] == 'T';
			return K_BOOL;
		}
	const char *d = s + (*s == '-' || *s == '+');
	if (all_of(d, "0123456789")) {
		*num = strtod(s, NULL);
		return K_INT;
	}
	if ((strncmp(s, "0x", 2) == 0 && all_of(s + 2, "0123456789abcdefABCDEF")) ||
	    (strncmp(s, "0o", 2) == 0 && all_of(s + 2, "01234567"))) {
		double v = 0;
		int base = s[1] == 'x' ? 16 : 8;
		for (const char *p = s + 2; *p; p++)
			v = v * base + (*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
		*num = v;
		return K_INT;
	}
	if (strcmp(d, ".inf") == 0 || strcmp(d, ".Inf") == 0 || strcmp(d, ".INF") == 0) {
		*num = *s == '-' ? -INFINITY : INFINITY;
		return K_FLOAT;
	}
	if (strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0 || strcmp(s, ".NAN") == 0) {
		*num = NAN;
		return K_FLOAT;
	}
	/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
	const char *p = d;
	size_t digits = strspn(p, "0123456789");
	p += digits;
	if (*p == '.') {
		size_t frac = strspn(p + 1, "0123456789");
		if (!digits && !frac)
			return K_STR;
		p += 1 + frac;
	} else if (!digits) {
		return K_STR;
	}
	if (*p == 'e' || *p == 'E') {
		p += 1 + (p[1] == '-' || p[1] == '+');
		size_t exp = strspn(p, "0123456789");
		if (!exp)
			return K_STR;
		p += exp;
	}
	if (*p)
		return K_STR;
	*num = strtod(s, NULL);
	return K_FLOAT;
}

static cJSON *scalar_node(struct ybuild *b, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	double num = 0;
	bool truth = false;
	enum kind k = K_STR;

	if (strlen(s) != ev->data.scalar.length) {
		FAIL(b, ev->start_mark, "NUL character in a string");
		return NULL;
	}
	if (!tag && plain)
		k = resolve_plain(s, &num, &truth);
	else if (tag && strcmp(tag, "!") != 0 && strcmp(tag, TAG_PREFIX "str") != 0) {
		static const char *const names[] = { "null", "bool", "int", "float" };
		enum kind want = K_STR;
		for (int i = 0; i < 4; i++)
			if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0 &&
			    strcmp(tag + strlen(TAG_PREFIX), names[i]) == 0)
				want = (enum kind)i;
		if (want == K_STR) {
			FAIL(b, ev->start_mark, "unsupported YAML tag %s", tag);
			return NULL;
		}
		k = resolve_plain(s, &num, &truth);
		if (k == K_INT && want == K_FLOAT)
			k = K_FLOAT;
		if (k != want) {
			FAIL(b, ev->start_mark, "value does not match its tag !!%s", names[want]);
			return NULL;
		}
	}
	switch (k) {
	case K_NULL:
		return cJSON_CreateNull();
	case K_BOOL:
		return cJSON_CreateBool(truth);
	case K_INT:
	case K_FLOAT:
		return cJSON_CreateNumber(num);
	default:
		return cJSON_CreateString(s);
	}
}

/* ---- the tree ---- */

static int note_pos(struct ybuild *b, const cJSON *node, const yaml_mark_t *m,
		    const struct frame *parent)
{
	if (b->npos == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct json_pos_req *p = realloc(b->pos, cap * sizeof(*p));
		if (!p)
			return oom(b);
		b->pos = p;
		b->cap = cap;
	}
	b->pos[b->npos++] = (struct json_pos_req){
		.node = node, .line = (unsigned)m->line + 1, .col = (unsigned)m->column + 1,
		.key_line = parent && parent->key ? parent->key_line : 0,
		.key_col = parent && parent->key ? parent->key_col : 0,
	};
	return 0;
}

static int count_token(struct ybuild *b, const yaml_mark_t *m)
{
	if (++b->tokens > CONFIG_MAX_TOKENS)
		return FAIL(b, *m, "more than %u YAML values and keys", CONFIG_MAX_TOKENS);
	return 0;
}

/* Put a finished node where it belongs: the root, an array, or under the
 * object key read before it. Takes node. */
static int place(struct ybuild *b, cJSON *node, const yaml_mark_t *m)
{
	struct frame *top = b->depth ? &b->stack[b->depth - 1] : NULL;
	if (!node)
		return b->err ? b->err : oom(b);
	if (note_pos(b, node, m, top) < 0 || count_token(b, m) < 0) {
		cJSON_Delete(node);
		return b->err;
	}
	if (!top) {
		b->root = node;
		return 0;
	}
	bool ok;
	if (cJSON_IsArray(top->node)) {
		ok = cJSON_AddItemToArray(top->node, node);
	} else {
		ok = cJSON_AddItemToObject(top->node, top->key, node);
		free(top->key);
		top->key = NULL;
	}
	if (!ok) {
		cJSON_Delete(node);
		return oom(b);
	}
	return 0;
}

/* In an object with no key pending, a scalar is the next key. */
static bool wants_key(const struct ybuild *b)
{
	const struct frame *top = b->depth ? &b->stack[b->depth - 1] : NULL;
	return top && cJSON_IsObject(top->node) && !top->key;
}

static int on_scalar(struct ybuild *b, const yaml_event_t *ev)
{
	if (!wants_key(b))
		return place(b, scalar_node(b, ev), &ev->start_mark);
	struct frame *top = &b->stack[b->depth - 1];
	if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length)
		return FAIL(b, ev->start_mark, "NUL character in a key");
	if (count_token(b, &ev->start_mark) < 0)
		return b->err;
	top->key = strdup((const char *)ev->data.scalar.value);
	if (!top->key)
		return oom(b);
	top->key_line = (unsigned)ev->start_mark.line + 1;
	top->key_col = (unsigned)ev->start_mark.column + 1;
	return 0;
}

static int on_start(struct ybuild *b, const yaml_event_t *ev, bool map)
{
	const char *tag = (const char *)(map ? ev->data.mapping_start.tag :
					       ev->data.sequence_start.tag);
	if (wants_key(b))
		return FAIL(b, ev->start_mark, "a key must be a scalar, not a %s",
			    map ? "mapping" : "sequence");
	if (tag && strcmp(tag, map ? TAG_PREFIX "map" : TAG_PREFIX "seq") != 0)
		return FAIL(b, ev->start_mark, "unsupported YAML tag %s", tag);
	if (b->depth >= CONFIG_MAX_DEPTH)
		return FAIL(b, ev->start_mark, "nested deeper than %d levels", CONFIG_MAX_DEPTH);
	cJSON *node = map ? cJSON_CreateObject() : cJSON_CreateArray();
	if (place(b, node, &ev->start_mark) < 0)
		return b->err;
	b->stack[b->depth++] = (struct frame){ .node = node };
	return 0;
}

static int on_event(struct ybuild *b, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++b->docs > 1)
			return FAIL(b, ev->start_mark, "a second YAML document: a config file "
				    "holds one");
		return 0;
	case YAML_ALIAS_EVENT:
		return FAIL(b, ev->start_mark, "YAML alias *%s: aliases are not supported, "
			    "write the value out", (const char *)ev->data.alias.anchor);
	case YAML_SCALAR_EVENT:
		return on_scalar(b, ev);
	case YAML_SEQUENCE_START_EVENT:
		return on_start(b, ev, false);
	case YAML_MAPPING_START_EVENT:
		return on_start(b, ev, true);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (b->depth) {
			b->depth--;
			free(b->stack[b->depth].key);	/* NULL after a well-formed mapping */
		}
		return 0;
	default:
		return 0;
	}
}

static void build_run(struct ybuild *b)
{
	yaml_event_t ev;
	bool done = false;
	while (!done && !b->err) {
		if (!yaml_parser_parse(&b->parser, &ev)) {
			parser_error(b);
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		on_event(b, &ev);
		yaml_event_delete(&ev);
	}
	if (!b->err && !b->root) {
		unsigned line, col;
		json_offset_pos(b->buf, b->len, b->len, &line, &col);
		fail_at(b, line, col, -EINVAL, "empty document (expected a mapping with "
			"\"workloads\", \"services\" and \"policies\")");
	}
}

int yaml_to_json(const char *buf, size_t len, cJSON **root, struct json_pos_req **pos,
		 size_t *npos, struct config_errors *errs)
{
	struct ybuild *b = calloc(1, sizeof(*b));
	*root = NULL;
	*pos = NULL;
	*npos = 0;
	if (!b || !yaml_parser_initialize(&b->parser)) {
		free(b);
		errs_add(errs, 0, 0, "", "out of memory");
		return -ENOMEM;
	}
	b->buf = buf;
	b->len = len;
	b->errs = errs;
	/* UTF-8 only, as JSON and ztunnel (serde_yaml reads a &str): no
	 * guessing UTF-16 from a byte-order mark. A UTF-8 one is skipped here,
	 * as for JSON (it takes no column). */
	size_t bom = json_bom_len(buf, len);
	b->bom = bom;
	yaml_parser_set_encoding(&b->parser, YAML_UTF8_ENCODING);
	yaml_parser_set_input_string(&b->parser, (const unsigned char *)buf + bom, len - bom);
	build_run(b);
	for (size_t i = 0; i < b->depth; i++)
		free(b->stack[i].key);
	yaml_parser_delete(&b->parser);
	int err = b->err;
	if (err) {
		cJSON_Delete(b->root);
		free(b->pos);
	} else {
		qsort(b->pos, b->npos, sizeof(*b->pos), json_pos_req_cmp);
		*root = b->root;
		*pos = b->pos;
		*npos = b->npos;
	}
	free(b);
	return err;
}
