/*
 * The validation context: the arena a snapshot lives in, JSON paths,
 * error recording, typed values, and objects checked against a field
 * table (unknown, duplicate and missing fields).
 *
 * Validation never stops at the first problem: every function reports
 * what it finds and returns, and its caller goes on with the next field.
 */
#include "config_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

struct config_arena {
	struct config_arena *next;
	size_t used, cap;
	max_align_t data[];
};

#define ARENA_CHUNK (64u * 1024)
#define ARENA_ALIGN 16u

void *arena_alloc(struct config_arena **a, size_t size)
{
	if (size > SIZE_MAX / 2)
		return NULL;
	size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	struct config_arena *h = *a;
	if (h && h->cap - h->used >= size) {
		void *p = (char *)h->data + h->used;
		h->used += size;
		return p;
	}
	size_t cap = size > ARENA_CHUNK / 4 ? size : ARENA_CHUNK;
	struct config_arena *n = calloc(1, sizeof(*n) + cap);
	if (!n)
		return NULL;
	n->cap = cap;
	n->used = size;
	if (h && cap == size) {
		/* A big block of its own: keep the current chunk's free room. */
		n->next = h->next;
		h->next = n;
	} else {
		n->next = h;
		*a = n;
	}
	return n->data;
}

void arena_free(struct config_arena *a)
{
	while (a) {
		struct config_arena *next = a->next;
		free(a);
		a = next;
	}
}

void *vnew(struct vctx *c, size_t n, size_t size)
{
	if (n == 0)
		return NULL;
	void *p = n > SIZE_MAX / size ? NULL : arena_alloc(&c->cfg->arena, n * size);
	if (!p)
		c->oom = true;
	return p;
}

char *vdup(struct vctx *c, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = vnew(c, n, 1);
	if (p)
		memcpy(p, s, n);
	return p;
}

char *vprintf_dup(struct vctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *p = n < 0 ? NULL : vnew(c, (size_t)n + 1, 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

/* ---- quoting and paths ---- */

/* Write s as a JSON string literal into dst (cap bytes), cutting it after
 * about `max` bytes of input at a character boundary. */
static void quote_into(char *dst, size_t cap, const char *s, size_t max)
{
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)s;
	dst[o++] = '"';
	for (size_t i = 0; p[i] && o + 12 < cap; i++) {
		if (i >= max && (p[i] & 0xc0) != 0x80) {
			o += (size_t)snprintf(dst + o, cap - o, "...");
			break;
		}
		if (p[i] == '"' || p[i] == '\\')
			o += (size_t)snprintf(dst + o, cap - o, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", p[i]);
		else
			dst[o++] = (char)p[i];
	}
	dst[o++] = '"';
	dst[o] = '\0';
}

const char *vq(struct vctx *c, int slot, const char *s)
{
	quote_into(c->quote[slot], sizeof(c->quote[slot]), s, 80);
	return c->quote[slot];
}

void path_reset(struct vctx *c, size_t mark)
{
	c->plen = mark;
	c->path[mark] = '\0';
}

static void path_append(struct vctx *c, const char *s)
{
	size_t n = strlen(s);
	if (c->plen + n + 1 > sizeof(c->path))
		return;	/* cannot happen below CONFIG_MAX_DEPTH; stay correct anyway */
	memcpy(c->path + c->plen, s, n + 1);
	c->plen += n;
}

static bool is_ident(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

void path_field(struct vctx *c, const char *name)
{
	if (!is_ident(name)) {
		path_key(c, name);
		return;
	}
	if (c->plen)
		path_append(c, ".");
	path_append(c, name);
}

void path_index(struct vctx *c, size_t i)
{
	char b[32];
	snprintf(b, sizeof(b), "[%zu]", i);
	path_append(c, b);
}

void path_key(struct vctx *c, const char *key)
{
	char b[160];
	b[0] = '[';
	quote_into(b + 1, sizeof(b) - 2, key, 64);
	strcat(b, "]");
	path_append(c, b);
}

/* ---- errors ---- */

void verr_v(struct vctx *c, const cJSON *node, bool at_key, const char *path,
	    const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	int i = errs_add(c->errs, 0, 0, path, msg);
	if (i == -ENOMEM)
		c->oom = true;
	if (i < 0)
		return;
	c->refs[i] = (struct verr_ref){ .node = node, .at_key = at_key, .seq = c->seq++ };
}

void verr(struct vctx *c, const cJSON *node, bool at_key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verr_v(c, node, at_key, c->path, fmt, ap);
	va_end(ap);
}

void verr_path(struct vctx *c, const cJSON *node, bool at_key, const char *path,
	       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verr_v(c, node, at_key, path, fmt, ap);
	va_end(ap);
}

/* errs_add keeps CONFIG_MAX_ERRORS entries; warnings use the same list. */
_Static_assert(CONFIG_MAX_WARNINGS == CONFIG_MAX_ERRORS, "warnings use an error list");

void vwarn_path(struct vctx *c, const cJSON *node, bool at_key, const char *path,
		const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	if (c->warns.n >= CONFIG_MAX_WARNINGS) {
		c->warns.dropped++;	/* only counted: no message to format */
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int i = errs_add(&c->warns, 0, 0, path, msg);
	if (i == -ENOMEM)
		c->oom = true;
	if (i < 0)
		return;	/* counted in warns.dropped */
	c->wrefs[i] = (struct verr_ref){ .node = node, .at_key = at_key, .seq = c->seq++ };
}

/* ---- typed values ---- */

const char *json_type_name(const cJSON *v)
{
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	return "an invalid value";
}

bool vstring(struct vctx *c, const cJSON *v, const char **out)
{
	if (!cJSON_IsString(v) || !v->valuestring) {
		verr(c, v, false, "expected a string, got %s", json_type_name(v));
		return false;
	}
	*out = v->valuestring;
	return true;
}

bool vuint(struct vctx *c, const cJSON *v, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!cJSON_IsNumber(v)) {
		verr(c, v, false, "expected an integer, got %s", json_type_name(v));
		return false;
	}
	double d = v->valuedouble;
	if (isfinite(d) && d != floor(d)) {
		verr(c, v, false, "expected an integer, got %g", d);
		return false;
	}
	if (!isfinite(d)) {
		verr(c, v, false, "number out of range: expected an integer from %llu to %llu",
		     (unsigned long long)min, (unsigned long long)max);
		return false;
	}
	if (d < (double)min || d > (double)max) {
		verr(c, v, false, fabs(d) < 1e18 ? "%.0f is out of range: expected an integer "
		     "from %llu to %llu" : "%g is out of range: expected an integer from %llu to "
		     "%llu", d, (unsigned long long)min, (unsigned long long)max);
		return false;
	}
	*out = (uint64_t)d;
	return true;
}

bool vbool(struct vctx *c, const cJSON *v, bool *out)
{
	if (!cJSON_IsBool(v)) {
		verr(c, v, false, "expected true or false, got %s", json_type_name(v));
		return false;
	}
	*out = cJSON_IsTrue(v);
	return true;
}

int venum(struct vctx *c, const cJSON *v, const char *const *names)
{
	const char *s;
	if (!vstring(c, v, &s))
		return -1;
	char list[256] = "";
	size_t o = 0;
	for (int i = 0; names[i]; i++) {
		if (strcmp(s, names[i]) == 0)
			return i;
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s\"%s\"",
				      i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
		if (o >= sizeof(list))
			o = sizeof(list) - 1;
	}
	verr(c, v, false, "invalid value %s: expected %s", vq(c, 0, s), list);
	return -1;
}

bool varray(struct vctx *c, const cJSON *v, const cJSON **first, size_t *n)
{
	if (!cJSON_IsArray(v)) {
		verr(c, v, false, "expected an array, got %s", json_type_name(v));
		return false;
	}
	size_t k = 0;
	for (const cJSON *e = v->child; e; e = e->next)
		k++;
	*first = v->child;
	*n = k;
	return true;
}

bool vobject_type(struct vctx *c, const cJSON *v)
{
	if (!cJSON_IsObject(v)) {
		verr(c, v, false, "expected an object, got %s", json_type_name(v));
		return false;
	}
	return true;
}

static bool parse_port(const char *k, uint16_t *out)
{
	unsigned long v = 0;
	size_t i = 0;
	for (; k[i] >= '0' && k[i] <= '9' && i < 6; i++)
		v = v * 10 + (unsigned long)(k[i] - '0');
	if (i == 0 || k[i] || v < 1 || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

bool vport_key(struct vctx *c, const cJSON *member, uint16_t *out)
{
	if (parse_port(member->string, out))
		return true;
	verr(c, member, true, "invalid port %s: expected a number from 1 to 65535",
	     vq(c, 0, member->string));
	return false;
}

static bool port_seen(struct vctx *c, uint16_t p, bool set)
{
	uint64_t bit = 1ull << (p % 64);
	bool was = c->ports_seen[p / 64] & bit;
	if (set)
		c->ports_seen[p / 64] |= bit;
	else
		c->ports_seen[p / 64] &= ~bit;
	return was;
}

void vport_map(struct vctx *c, const cJSON *v, struct port_map **out, size_t *n)
{
	size_t cnt = 0, k = 0;
	if (!vobject_type(c, v))
		return;
	for (const cJSON *m = v->child; m; m = m->next)
		cnt++;
	struct port_map *pm = out ? vnew(c, cnt, sizeof(*pm)) : NULL;
	for (const cJSON *m = v->child; m; m = m->next) {
		size_t mark = path_mark(c);
		uint16_t port = 0;
		uint64_t target;
		path_key(c, m->string);
		bool ok = vport_key(c, m, &port);
		if (ok && port_seen(c, port, true)) {
			verr(c, m, true, "duplicate port %u", port);
			ok = false;
		}
		if (vuint(c, m, 0, 65535, &target) && ok && pm)
			pm[k++] = (struct port_map){ .port = port, .target = (uint16_t)target };
		path_reset(c, mark);
	}
	for (const cJSON *m = v->child; m; m = m->next) {
		uint16_t port;
		if (parse_port(m->string, &port))
			port_seen(c, port, false);
	}
	if (out) {
		*out = pm;
		*n = k;
	}
}

struct keyref {
	const cJSON *m;
	size_t i;
};

static int keyref_cmp(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	int r = strcmp(x->m->string, y->m->string);
	return r ? r : (x->i > y->i) - (x->i < y->i);
}

void vdup_keys(struct vctx *c, const cJSON *v)
{
	size_t n = 0;
	for (const cJSON *m = v->child; m; m = m->next)
		n++;
	if (n < 2)
		return;
	struct keyref *k = malloc(n * sizeof(*k));
	if (!k) {
		c->oom = true;
		return;
	}
	n = 0;
	for (const cJSON *m = v->child; m; m = m->next, n++)
		k[n] = (struct keyref){ m, n };
	qsort(k, n, sizeof(*k), keyref_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(k[i].m->string, k[i - 1].m->string) != 0)
			continue;
		size_t mark = path_mark(c);
		path_key(c, k[i].m->string);
		verr(c, k[i].m, true, "duplicate key %s", vq(c, 0, k[i].m->string));
		path_reset(c, mark);
	}
	free(k);
}

/* ---- objects ---- */

/* Edit distance, for "did you mean"; short strings only. */
static unsigned edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned row[65];
	if (la > 64 || lb > 64)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned diag = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned up = row[j];
			unsigned sub = diag + ((a[i - 1] | 0x20) != (b[j - 1] | 0x20));
			unsigned best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
			row[j] = sub < best ? sub : best;
			diag = up;
		}
	}
	return row[lb];
}

static void unknown_field(struct vctx *c, const cJSON *m, const struct field *f, size_t n)
{
	const char *best = NULL;
	unsigned bestd = 3;
	for (size_t i = 0; i < n; i++) {
		unsigned d = edit_distance(m->string, f[i].name);
		if (d < bestd && d < strlen(f[i].name) / 2) {
			bestd = d;
			best = f[i].name;
		}
	}
	if (best)
		verr(c, m, true, "unknown field %s (did you mean \"%s\"?)", vq(c, 0, m->string),
		     best);
	else
		verr(c, m, true, "unknown field %s", vq(c, 0, m->string));
}

static void *field_at(void *obj, const struct field *f)
{
	return (char *)obj + f->off;
}

_Static_assert(sizeof(enum workload_protocol) == sizeof(int), "enums are int-sized");

static void store_string(struct vctx *c, const struct field *f, const cJSON *v, void *obj)
{
	const char *s;
	if (!vstring(c, v, &s))
		return;
	if (f->type == FT_ID && !check_id(c, v, s))
		return;
	if (f->type == FT_SEGMENT && !check_segment(c, v, s))
		return;
	if (f->off != FIELD_NOSTORE)
		*(char **)field_at(obj, f) = vdup(c, s);
}

static void store_field(struct vctx *c, const struct field *f, const cJSON *v, void *obj)
{
	uint64_t u;
	bool b;
	int e;

	switch (f->type) {
	case FT_STRING:
	case FT_ID:
	case FT_SEGMENT:
		store_string(c, f, v, obj);
		break;
	case FT_BOOL:
		if (vbool(c, v, &b) && f->off != FIELD_NOSTORE)
			*(bool *)field_at(obj, f) = b;
		break;
	case FT_U32:
		if (vuint(c, v, 0, UINT32_MAX, &u) && f->off != FIELD_NOSTORE)
			*(uint32_t *)field_at(obj, f) = (uint32_t)u;
		break;
	case FT_ENUM:
		if ((e = venum(c, v, f->enums)) >= 0 && f->off != FIELD_NOSTORE)
			memcpy(field_at(obj, f), &e, sizeof(e));
		break;
	case FT_FN:
		f->fn(c, v, obj);
		break;
	}
}

uint64_t vobject(struct vctx *c, const cJSON *v, const struct field *fields, size_t n,
		 void *obj)
{
	uint64_t seen = 0;
	if (!vobject_type(c, v))
		return 0;
	for (const cJSON *m = v->child; m; m = m->next) {
		size_t mark = path_mark(c), i;
		path_field(c, m->string);
		for (i = 0; i < n && strcmp(fields[i].name, m->string) != 0; i++)
			;
		if (i == n) {
			unknown_field(c, m, fields, n);
		} else if (seen & (1ull << i)) {
			verr(c, m, true, "duplicate field \"%s\"", fields[i].name);
		} else {
			seen |= 1ull << i;
			if (!((fields[i].flags & FIELD_NULLABLE) && cJSON_IsNull(m)))
				store_field(c, &fields[i], m, obj);
		}
		path_reset(c, mark);
	}
	for (size_t i = 0; i < n; i++)
		if ((fields[i].flags & FIELD_REQUIRED) && !(seen & (1ull << i)))
			verr(c, v, false, "missing required field \"%s\"", fields[i].name);
	return seen;
}
