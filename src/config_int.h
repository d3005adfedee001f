/*
 * Internals of the config module, shared by src/config*.c only.
 *
 *   config.c           public API: parse, load, errors, references
 *   config_json.c      what cJSON does not check (UTF-8, NUL, numbers,
 *                      depth) and the line:column of any cJSON node
 *   config_yaml.c      YAML (libyaml) into the same cJSON tree, with the
 *                      line:column of every node
 *   config_fields.c    the validation context: arena, JSON paths, errors,
 *                      typed values, table-driven objects
 *   config_shapes.c    names, hostnames, addresses, CIDRs, VIPs
 *   config_model.c     workloads and services, field by field
 *   config_policy.c    authorization policies
 *   config_validate.c  checks across objects and derived data
 */
#ifndef ZRING_CONFIG_INT_H
#define ZRING_CONFIG_INT_H

#include "zring/config.h"

#include <cjson/cJSON.h>
#include <stdarg.h>

/* ---- arena (config_fields.c): every string and array of a snapshot ---- */

/* Zeroed memory owned by *a; NULL on allocation failure. */
void *arena_alloc(struct config_arena **a, size_t size);
void arena_free(struct config_arena *a);

/* ---- JSON text (config_json.c) ---- */

struct json_lex_error {
	size_t off;		/* byte offset of the problem */
	char msg[96];
};

/*
 * Check, before cJSON sees them, the things cJSON accepts or reports
 * poorly: UTF-8, NUL and control bytes, "\u0000" escapes and unpaired
 * surrogates, number syntax and length, literals, stray characters,
 * nesting deeper than CONFIG_MAX_DEPTH, more than CONFIG_MAX_TOKENS
 * tokens, an empty document. One pass, no recursion. Returns 0, or
 * -EINVAL with the first problem in *e. *depth_left is the nesting still
 * open at the end (an unclosed, probably truncated, document).
 */
int json_lex_check(const char *buf, size_t len, struct json_lex_error *e,
		   unsigned *depth_left);

/* 1-based line and column (in code points) of byte offset `off`. */
void json_offset_pos(const char *buf, size_t len, size_t off, unsigned *line, unsigned *col);

/* Bytes of the UTF-8 BOM at the start of buf, if any (cJSON skips it). */
size_t json_bom_len(const char *buf, size_t len);

struct json_pos_req {
	const cJSON *node;
	unsigned line, col;		/* of the value */
	unsigned key_line, key_col;	/* of its key, if an object member */
};

/*
 * Fill in the positions of the nodes in reqs (sorted by node pointer, as
 * json_pos_req_cmp sorts them) by walking the tree and the text together.
 * `root` must be what cJSON parsed from exactly this text, which must have
 * passed json_lex_check.
 */
void json_resolve_positions(const char *buf, size_t len, const cJSON *root,
			    struct json_pos_req *reqs, size_t n);
int json_pos_req_cmp(const void *a, const void *b);

/* ---- YAML text (config_yaml.c) ---- */

/*
 * Read one YAML document into the cJSON tree the same content written as
 * JSON would give (YAML 1.2 core schema scalars; mapping keys as strings),
 * with the position of every node in *pos (*npos of them, sorted as
 * json_pos_req_cmp sorts; the caller frees it). Refused with one error in
 * errs: syntax, aliases, unknown tags, more than one document, complex
 * keys, NUL in a string, nesting past CONFIG_MAX_DEPTH, more than
 * CONFIG_MAX_TOKENS values and keys. Returns 0, -EINVAL or -ENOMEM;
 * *root and *pos are NULL on failure.
 */
int yaml_to_json(const char *buf, size_t len, cJSON **root, struct json_pos_req **pos,
		 size_t *npos, struct config_errors *errs);

/* ---- errors (config.c) ---- */

/* Append an error (copies path and msg). Returns its index, -1 if it was
 * dropped over the cap, -ENOMEM. */
int errs_add(struct config_errors *e, unsigned line, unsigned col, const char *path,
	     const char *msg);

/* ---- validation context (config_fields.c) ---- */

#define VPATH_MAX 1024

struct verr_ref {
	const cJSON *node;	/* where the error is, or NULL */
	bool at_key;		/* at the member's key rather than its value */
	unsigned seq;		/* order of discovery, to sort stably */
};

struct vctx {
	struct config *cfg;
	struct config_errors *errs;
	struct verr_ref refs[CONFIG_MAX_ERRORS];
	struct config_errors warns;	/* moved into cfg when the file is valid */
	struct verr_ref wrefs[CONFIG_MAX_WARNINGS];
	unsigned seq;
	bool oom;
	const cJSON *root;
	size_t plen;
	char path[VPATH_MAX];
	char quote[2][112];	/* scratch for quoted values in messages */
	char *empty;		/* one "" for every absent string */
	uint64_t ports_seen[65536 / 64];	/* duplicate ports in one map */
};

/* Record an error at `node` with the current path. */
void verr(struct vctx *c, const cJSON *node, bool at_key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Same with an explicit path. */
void verr_path(struct vctx *c, const cJSON *node, bool at_key, const char *path,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void verr_v(struct vctx *c, const cJSON *node, bool at_key, const char *path,
	    const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

/* Record a warning (valid, worth reporting) at `node` with this path. */
void vwarn_path(struct vctx *c, const cJSON *node, bool at_key, const char *path,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* s quoted and escaped for a message, cut at ~80 bytes; slot 0 or 1. */
const char *vq(struct vctx *c, int slot, const char *s);

/* JSON paths: remember the length, push a component, go back. */
static inline size_t path_mark(const struct vctx *c) { return c->plen; }
void path_reset(struct vctx *c, size_t mark);
void path_field(struct vctx *c, const char *name);
void path_index(struct vctx *c, size_t i);
void path_key(struct vctx *c, const char *key);

/* Arena helpers bound to the snapshot under construction (set c->oom). */
void *vnew(struct vctx *c, size_t n, size_t size);
char *vdup(struct vctx *c, const char *s);
char *vprintf_dup(struct vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "a string", "a number", ... for messages. */
const char *json_type_name(const cJSON *v);

/* Typed values. Each reports its own error and returns false on a bad one. */
bool vstring(struct vctx *c, const cJSON *v, const char **out);
bool vuint(struct vctx *c, const cJSON *v, uint64_t min, uint64_t max, uint64_t *out);
bool vbool(struct vctx *c, const cJSON *v, bool *out);
/* Index of v's string in the NULL-terminated names, or -1 (error). */
int venum(struct vctx *c, const cJSON *v, const char *const *names);
/* An array: its first element and length. */
bool varray(struct vctx *c, const cJSON *v, const cJSON **first, size_t *n);
bool vobject_type(struct vctx *c, const cJSON *v);
/* A map key that must be a port "1".."65535"; error at the key. */
bool vport_key(struct vctx *c, const cJSON *member, uint16_t *out);
/* {"port": targetPort, ...}: ports 1-65535, targets 0-65535 (0: unset).
 * Stored into *out and *n unless out is NULL (validate only). */
void vport_map(struct vctx *c, const cJSON *v, struct port_map **out, size_t *n);
/* Report object members whose key repeats an earlier one. */
void vdup_keys(struct vctx *c, const cJSON *v);
/* s, or the shared "" when s is NULL. */
static inline char *vor_empty(struct vctx *c, char *s) { return s ? s : c->empty; }

/* String shapes (config_shapes.c); each reports its error at v. */
bool check_id(struct vctx *c, const cJSON *v, const char *s);		/* non-empty, no control */
bool check_segment(struct vctx *c, const cJSON *v, const char *s);	/* [A-Za-z0-9._-]+ */
bool check_hostname(struct vctx *c, const cJSON *v, const char *s);
bool check_trust_domain(struct vctx *c, const cJSON *v, const char *s);

/* Addresses. "10.0.0.1", "fd00::1"; IPv4-mapped IPv6 becomes IPv4. */
bool ip_parse(const char *s, struct ip *out);
/* "10.0.0.0/8", or a bare address as a host prefix; host bits cleared. */
bool cidr_parse(const char *s, struct cidr *out);
/* "network/ip" (ztunnel's NetworkAddress) or a bare ip (network ""): the
 * network is the first *netlen bytes of s. */
bool network_addr_parse(const char *s, size_t *netlen, struct ip *out);

/* ---- table-driven objects ---- */

enum field_type {
	FT_STRING,	/* any string -> char * */
	FT_ID,		/* check_id -> char * */
	FT_SEGMENT,	/* check_segment -> char * */
	FT_BOOL,	/* -> bool */
	FT_U32,		/* -> uint32_t */
	FT_ENUM,	/* one of `enums` -> int-sized enum */
	FT_FN,		/* fn(c, value, obj) does it all */
};

#define FIELD_REQUIRED	0x1
#define FIELD_NULLABLE	0x2	/* null counts as absent (an Option in ztunnel) */
#define FIELD_NOSTORE	0xffff	/* validated, not kept */

struct vctx;
typedef void (*field_fn)(struct vctx *c, const cJSON *v, void *obj);

struct field {
	const char *name;
	uint8_t type;
	uint8_t flags;
	uint16_t off;
	const char *const *enums;
	field_fn fn;
};

#define FIELD_AT(n, t, fl, T, m) { (n), (t), (fl), (uint16_t)offsetof(T, m), NULL, NULL }
#define FIELD_ENUM(n, fl, T, m, e) { (n), FT_ENUM, (fl), (uint16_t)offsetof(T, m), (e), NULL }
#define FIELD_FN(n, fl, f) { (n), FT_FN, (fl), FIELD_NOSTORE, NULL, (f) }
#define FIELD_SKIP(n, t, fl) { (n), (t), (fl), FIELD_NOSTORE, NULL, NULL }
#define FIELD_SKIP_ENUM(n, fl, e) { (n), FT_ENUM, (fl), FIELD_NOSTORE, (e), NULL }

/*
 * Validate object `v` against `fields`: unknown, duplicate and missing
 * required fields are errors; each present field is stored into obj or
 * handed to its fn with the path extended. Returns the mask of fields
 * present (bit i for fields[i]), 0 if v is not an object. At most 64
 * fields.
 */
uint64_t vobject(struct vctx *c, const cJSON *v, const struct field *fields, size_t n,
		 void *obj);

/* ---- the model ---- */

/* config_model.c: the top-level object and everything in it. */
void model_parse(struct vctx *c, const cJSON *root);
/* config_policy.c: one policy. */
void policy_parse(struct vctx *c, const cJSON *v, struct policy *p);
/* config_validate.c: duplicates, references, derived endpoints and
 * identities; runs after model_parse whatever it found. */
void model_validate(struct vctx *c);

#endif
