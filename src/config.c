/*
 * The workload configuration's public face: read a file, parse it (a
 * lexical check of our own, then cJSON), validate it into a fresh snapshot
 * (config_model.c, config_policy.c, config_validate.c), and report every
 * error with its line:column and JSON path. A snapshot lives in one arena
 * and dies with its last reference. See include/zring/config.h and
 * docs/config.md.
 */
#include "config_int.h"
#include "zring/file.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ---- */

int errs_add(struct config_errors *e, unsigned line, unsigned col, const char *path,
	     const char *msg)
{
	if (e->n >= CONFIG_MAX_ERRORS) {
		e->dropped++;
		return -1;
	}
	if (!e->v && !(e->v = calloc(CONFIG_MAX_ERRORS, sizeof(*e->v)))) {
		e->dropped++;
		return -ENOMEM;
	}
	char *p = strdup(path ? path : ""), *m = strdup(msg);
	if (!p || !m) {
		free(p);
		free(m);
		e->dropped++;
		return -ENOMEM;
	}
	e->v[e->n] = (struct config_error){ .line = line, .col = col, .path = p, .msg = m };
	return (int)e->n++;
}

void config_errors_free(struct config_errors *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].path);
		free(e->v[i].msg);
	}
	free(e->v);
	memset(e, 0, sizeof(*e));
}

void config_errors_print(const struct config_errors *e, const char *source, FILE *f)
{
	if (!source)
		source = "-";
	for (size_t i = 0; i < e->n; i++) {
		const struct config_error *x = &e->v[i];
		fputs(source, f);
		if (x->line)
			fprintf(f, ":%u:%u", x->line, x->col);
		fputs(": ", f);
		if (x->path && *x->path)
			fprintf(f, "%s: ", x->path);
		fprintf(f, "%s\n", x->msg);
	}
	if (e->dropped)
		fprintf(f, "%s: %zu more error%s not shown\n", source, e->dropped,
			e->dropped == 1 ? "" : "s");
}

void config_warnings_print(const struct config *cfg, const char *source, FILE *f)
{
	if (!source)
		source = cfg->source && *cfg->source ? cfg->source : "-";
	for (size_t i = 0; i < cfg->nwarnings; i++) {
		const struct config_error *x = &cfg->warnings[i];
		fputs(source, f);
		if (x->line)
			fprintf(f, ":%u:%u", x->line, x->col);
		fputs(": ", f);
		if (*x->path)
			fprintf(f, "%s: ", x->path);
		fprintf(f, "warning: %s\n", x->msg);
	}
	if (cfg->warnings_total > cfg->nwarnings)
		fprintf(f, "%s: %zu more warning%s not shown\n", source,
			cfg->warnings_total - cfg->nwarnings,
			cfg->warnings_total - cfg->nwarnings == 1 ? "" : "s");
}

/* One error with no JSON path; returns err (or -ENOMEM). */
static int one_error(struct config_errors *errs, int err, unsigned line, unsigned col,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int one_error(struct config_errors *errs, int err, unsigned line, unsigned col,
		     const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return errs_add(errs, line, col, "", msg) == -ENOMEM ? -ENOMEM : err;
}

static int error_at(struct config_errors *errs, const char *buf, size_t len, size_t off,
		    const char *msg)
{
	unsigned line, col;
	json_offset_pos(buf, len, off, &line, &col);
	return one_error(errs, -EINVAL, line, col, "%s", msg);
}

/* ---- JSON ---- */

static void describe(const char *buf, size_t len, size_t off, char *msg, size_t cap)
{
	unsigned char ch = (unsigned char)buf[off];
	if (ch == '"')
		snprintf(msg, cap, "syntax error: unexpected string");
	else if (ch == '-' || (ch >= '0' && ch <= '9'))
		snprintf(msg, cap, "syntax error: unexpected number");
	else if (ch > 0x20 && ch < 0x7f)
		snprintf(msg, cap, "syntax error: unexpected '%c'", ch);
	else
		snprintf(msg, cap, "syntax error");
}

/*
 * Parse buf into *root, or report one syntax error. cJSON gets a copy with
 * a NUL after the text, so that running off the end (a truncated file)
 * fails at exactly `len` and tells itself apart from an error at the last
 * character.
 */
/* cJSON answers NULL for bad input and for a failed allocation alike; its
 * allocations go through this hook so that the second is told apart (an
 * out-of-memory file is not "bad": it is read again on its next event). */
static _Thread_local bool cjson_oom;

static void *cjson_malloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		cjson_oom = true;
	return p;
}

static void cjson_hooks_init(void)
{
	cJSON_Hooks hooks = { .malloc_fn = cjson_malloc, .free_fn = free };
	cJSON_InitHooks(&hooks);
}

static int parse_json(const char *buf, size_t len, cJSON **root, struct config_errors *errs)
{
	static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
	pthread_once(&hooks_once, cjson_hooks_init);
	struct json_lex_error le;
	unsigned open;
	char msg[128];

	*root = NULL;
	if (json_lex_check(buf, len, &le, &open) < 0)
		return error_at(errs, buf, len, le.off, le.msg);
	char *copy = malloc(len + 1);
	if (!copy)
		return one_error(errs, -ENOMEM, 0, 0, "out of memory");
	memcpy(copy, buf, len);
	copy[len] = '\0';
	const char *end = NULL;
	cjson_oom = false;
	*root = cJSON_ParseWithLengthOpts(copy, len + 1, &end, false);
	size_t off = end ? (size_t)(end - copy) : 0;
	free(copy);
	if (!*root && cjson_oom)
		return one_error(errs, -ENOMEM, 0, 0, "out of memory");
	if (!*root && off >= len) {
		snprintf(msg, sizeof(msg), "unexpected end of input%s (truncated file?)",
			 open ? ": unclosed '{' or '['" : "");
		return error_at(errs, buf, len, len, msg);
	}
	if (!*root) {
		describe(buf, len, off, msg, sizeof(msg));
		return error_at(errs, buf, len, off, msg);
	}
	while (off < len && strchr(" \t\r\n", buf[off]))
		off++;
	if (off < len) {
		cJSON_Delete(*root);
		*root = NULL;
		return error_at(errs, buf, len, off,
				"unexpected content after the end of the document");
	}
	return 0;
}

/* ---- positions and order of errors ---- */

/* Where the nodes of a parsed tree are: found in the JSON text afterwards,
 * or recorded by the YAML reader as it built the tree. */
struct positions {
	const char *buf;
	size_t len;
	const struct json_pos_req *table;	/* YAML: every node, sorted; NULL for JSON */
	size_t ntable;
};

struct sorted_error {
	struct config_error e;
	unsigned seq;
};

static int sorted_error_cmp(const void *a, const void *b)
{
	const struct sorted_error *x = a, *y = b;
	if (x->e.line != y->e.line)
		return x->e.line < y->e.line ? -1 : 1;
	if (x->e.col != y->e.col)
		return x->e.col < y->e.col ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static void resolve(const struct positions *pos, const cJSON *root, struct json_pos_req *reqs,
		    size_t n)
{
	if (!pos->table) {
		json_resolve_positions(pos->buf, pos->len, root, reqs, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct json_pos_req *r = bsearch(&reqs[i], pos->table, pos->ntable,
						       sizeof(*r), json_pos_req_cmp);
		if (r)
			reqs[i] = *r;
	}
}

/* Give each entry of errs (errors or warnings, recorded with refs) its
 * line:column, then sort them by position. */
static void place_errors(struct config_errors *errs, const struct verr_ref *refs,
			 const cJSON *root, const struct positions *pos)
{
	size_t n = errs->n;
	struct json_pos_req *reqs = calloc(n, sizeof(*reqs));
	struct sorted_error *s = calloc(n, sizeof(*s));
	if (!reqs || !s)
		goto out;
	for (size_t i = 0; i < n; i++)
		reqs[i].node = refs[i].node;
	qsort(reqs, n, sizeof(*reqs), json_pos_req_cmp);
	resolve(pos, root, reqs, n);
	for (size_t i = 0; i < n; i++) {
		struct config_error *e = &errs->v[i];
		const struct verr_ref *ref = &refs[i];
		struct json_pos_req key = { .node = ref->node };
		const struct json_pos_req *r =
			ref->node ? bsearch(&key, reqs, n, sizeof(*reqs), json_pos_req_cmp) : NULL;
		if (r && ref->at_key && r->key_line) {
			e->line = r->key_line;
			e->col = r->key_col;
		} else if (r) {
			e->line = r->line;
			e->col = r->col;
		}
		s[i] = (struct sorted_error){ *e, ref->seq };
	}
	qsort(s, n, sizeof(*s), sorted_error_cmp);
	for (size_t i = 0; i < n; i++)
		errs->v[i] = s[i].e;
out:
	free(reqs);
	free(s);
}

/* ---- snapshots ---- */

static void config_free(struct config *cfg)
{
	arena_free(cfg->arena);
	free(cfg);
}

/* Move the warnings, placed and sorted, into the snapshot's arena. */
static void keep_warnings(struct vctx *c, const cJSON *root, const struct positions *pos)
{
	struct config *cfg = c->cfg;
	struct config_errors *w = &c->warns;
	cfg->warnings_total = w->n + w->dropped;
	if (!w->n)
		return;
	place_errors(w, c->wrefs, root, pos);
	cfg->warnings = vnew(c, w->n, sizeof(*cfg->warnings));
	for (size_t i = 0; cfg->warnings && i < w->n; i++) {
		cfg->warnings[i] = (struct config_error){
			.line = w->v[i].line, .col = w->v[i].col,
			.path = vdup(c, w->v[i].path), .msg = vdup(c, w->v[i].msg),
		};
		cfg->nwarnings += cfg->warnings[i].path && cfg->warnings[i].msg;
	}
}

static int validate(const struct positions *pos, cJSON *root, const char *source,
		    struct config **out, struct config_errors *errs)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	struct vctx *c = calloc(1, sizeof(*c));
	int err = 0;

	if (!cfg || !c) {
		free(cfg);
		free(c);
		return one_error(errs, -ENOMEM, 0, 0, "out of memory");
	}
	atomic_init(&cfg->refs, 1);
	c->cfg = cfg;
	c->errs = errs;
	c->root = root;
	c->empty = vdup(c, "");
	cfg->source = vdup(c, source ? source : "-");
	if (!c->oom)
		model_parse(c, root);
	model_validate(c);
	if (!c->oom && !errs->n && !errs->dropped)
		keep_warnings(c, root, pos);
	if (c->oom)
		err = one_error(errs, -ENOMEM, 0, 0, "out of memory");
	else if (errs->n || errs->dropped)
		err = -EINVAL;
	if (errs->n && !c->oom)
		place_errors(errs, c->refs, root, pos);
	if (err)
		config_free(cfg);
	else
		*out = cfg;
	config_errors_free(&c->warns);
	free(c);
	return err;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

enum config_format config_format_of(const char *source, const char *buf, size_t len)
{
	if (source && ends_with(source, ".json"))
		return CONFIG_JSON;
	if (source && (ends_with(source, ".yaml") || ends_with(source, ".yml")))
		return CONFIG_YAML;
	for (size_t i = json_bom_len(buf, len); i < len; i++) {
		if (strchr(" \t\r\n", buf[i]) && buf[i])
			continue;
		return buf[i] == '{' || buf[i] == '[' ? CONFIG_JSON : CONFIG_YAML;
	}
	return CONFIG_JSON;	/* empty: JSON's "empty document" error */
}

int config_parse(const char *buf, size_t len, const char *source, struct config **out,
		 struct config_errors *errs)
{
	struct positions pos = { buf, len, NULL, 0 };
	struct json_pos_req *table = NULL;
	cJSON *root;
	int err;

	memset(errs, 0, sizeof(*errs));
	*out = NULL;
	if (len > CONFIG_MAX_BYTES)
		return one_error(errs, -EINVAL, 0, 0, "input is %zu bytes; the limit is %u bytes",
				 len, CONFIG_MAX_BYTES);
	if (config_format_of(source, buf, len) == CONFIG_YAML) {
		err = yaml_to_json(buf, len, &root, &table, &pos.ntable, errs);
		pos.table = table;
	} else {
		err = parse_json(buf, len, &root, errs);
	}
	if (err)
		return err;
	err = validate(&pos, root, source, out, errs);
	cJSON_Delete(root);
	free(table);
	return err;
}

/* ---- files ---- */

/* Parse what a file or stream gave, or report why it could not be read
 * as one error with no position. */
static int parse_read(int err, char *buf, size_t len, const char *why, const char *source,
		      struct config **out, struct config_errors *errs)
{
	if (err < 0)
		return one_error(errs, err, 0, 0, "%s", why);
	err = config_parse(buf, len, source, out, errs);
	free(buf);
	return err;
}

int config_load_file(const char *path, struct config **out, struct config_errors *errs)
{
	char *buf = NULL, why[FILE_WHY_MAX];
	size_t len = 0;

	memset(errs, 0, sizeof(*errs));
	*out = NULL;
	int err = file_read(path, CONFIG_MAX_BYTES, &buf, &len, why, sizeof(why));
	return parse_read(err, buf, len, why, path, out, errs);
}

int config_load_fd(int fd, const char *source, struct config **out,
		   struct config_errors *errs)
{
	char *buf = NULL, why[FILE_WHY_MAX];
	size_t len = 0;

	memset(errs, 0, sizeof(*errs));
	*out = NULL;
	int err = file_read_fd(fd, CONFIG_MAX_BYTES, &buf, &len, why, sizeof(why));
	return parse_read(err, buf, len, why, source, out, errs);
}

/* ---- references ---- */

struct config *config_ref(struct config *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void config_unref(struct config *c)
{
	if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		config_free(c);
}

struct config *config_empty(void)
{
	struct config *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	atomic_init(&c->refs, 1);
	c->source = arena_alloc(&c->arena, 1);
	if (!c->source) {
		free(c);
		return NULL;
	}
	return c;
}

/* ---- names ---- */

const char *config_protocol_name(enum workload_protocol p)
{
	return p == PROTO_HBONE ? "HBONE" : "TCP";
}

const char *config_status_name(enum workload_status s)
{
	return s == STATUS_UNHEALTHY ? "Unhealthy" : "Healthy";
}

const char *config_scope_name(enum policy_scope s)
{
	return s == SCOPE_GLOBAL ? "Global" : s == SCOPE_NAMESPACE ? "Namespace" :
	       "WorkloadSelector";
}

const char *config_action_name(enum policy_action a)
{
	return a == ACTION_DENY ? "Deny" : "Allow";
}
