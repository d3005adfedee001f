/*
 * Policies compiled to compact code, and matching a connection against
 * them. See src/policy_int.h; the semantics (points 3-8 of the list at the
 * top of src/policy.c) are ztunnel's Authorization::matches.
 *
 * Code layout, in 32-bit words ([a b] = header words, then the body):
 *
 *   policy  [index nrules] rule...
 *   rule    [nclauses body_words] clause...
 *   clause  [nmatches body_words] match...
 *   match   [nfields body_words] field...       nfields 0: the empty match
 *   field   [op count body_words] entry...      op: FIELD_* | FIELD_NOT
 *
 *   port    [port]
 *   cidr    [family<<8 | prefix] + 4 words of address bytes
 *   string  [kind len] + the bytes, padded to a word
 *   sa      [nslen salen] + namespace bytes, padded + account bytes, padded
 *
 * Body sizes let a failed clause skip the rest of its rule and a decided
 * field or match skip the rest of its entries. Only non-empty fields are
 * written, cheapest first (ports, addresses, then identity); a match is an
 * AND of its fields, so the order does not change what it matches.
 */
#include "policy_int.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

enum {
	FIELD_PORT, FIELD_DST_IP, FIELD_SRC_IP, FIELD_SA, FIELD_PRINCIPAL, FIELD_NAMESPACE,
	FIELD_NOT = 0x100,
};

#define CIDR_WORDS 5

/* ---- writing ---- */

static void emit(struct policy_code *pc, uint32_t word)
{
	if (pc->n == pc->cap && !pc->oom) {
		size_t cap = pc->cap ? pc->cap * 2 : 1024;
		uint32_t *w = realloc(pc->w, cap * sizeof(*w));
		if (!w)
			pc->oom = true;
		else {
			pc->w = w;
			pc->cap = cap;
		}
	}
	if (!pc->oom)
		pc->w[pc->n++] = word;
}

static void emit_bytes(struct policy_code *pc, const void *p, size_t len)
{
	for (size_t i = 0; i < len; i += 4) {
		uint32_t word = 0;
		memcpy(&word, (const char *)p + i, len - i < 4 ? len - i : 4);
		emit(pc, word);
	}
}

/* Header words [a, <body size>]: returns where to patch the size. */
static size_t open_body(struct policy_code *pc, uint32_t a)
{
	emit(pc, a);
	emit(pc, 0);
	return pc->n;
}

static void close_body(struct policy_code *pc, size_t at)
{
	if (!pc->oom)
		pc->w[at - 1] = (uint32_t)(pc->n - at);
}

static void emit_string(struct policy_code *pc, const struct string_match *m)
{
	size_t len = strlen(m->value);
	emit(pc, m->kind);
	emit(pc, (uint32_t)len);
	emit_bytes(pc, m->value, len);
}

static void emit_sa(struct policy_code *pc, const struct sa_match *m)
{
	size_t nl = strlen(m->namespace), sl = strlen(m->service_account);
	emit(pc, (uint32_t)nl);
	emit(pc, (uint32_t)sl);
	emit_bytes(pc, m->namespace, nl);
	emit_bytes(pc, m->service_account, sl);
}

static void emit_cidr(struct policy_code *pc, const struct cidr *c)
{
	emit(pc, (uint32_t)c->ip.family << 8 | c->prefix);
	emit_bytes(pc, c->ip.bytes, 16);
}

/* One field: op, count, body. Nothing when the field is empty; returns
 * how many fields it wrote (0 or 1). */
static unsigned emit_field(struct policy_code *pc, unsigned op, const void *v, size_t n)
{
	if (!n)
		return 0;
	emit(pc, op);
	size_t at = open_body(pc, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		switch (op & ~FIELD_NOT) {
		case FIELD_PORT:
			emit(pc, ((const uint16_t *)v)[i]);
			break;
		case FIELD_DST_IP:
		case FIELD_SRC_IP:
			emit_cidr(pc, &((const struct cidr *)v)[i]);
			break;
		case FIELD_SA:
			emit_sa(pc, &((const struct sa_match *)v)[i]);
			break;
		default:
			emit_string(pc, &((const struct string_match *)v)[i]);
		}
	}
	close_body(pc, at);
	return 1;
}

/* A field of struct policy_match and its `not_` form, positive first. */
static unsigned emit_pair(struct policy_code *pc, unsigned op, const void *v, size_t n,
			  const void *not_v, size_t not_n)
{
	unsigned nfields = emit_field(pc, op, v, n);
	return nfields + emit_field(pc, op | FIELD_NOT, not_v, not_n);
}

/* emit_pair's arguments for the field `name` of match m. */
#define FIELD_PAIR(m, name) (m)->name, (m)->n##name, (m)->not_##name, (m)->nnot_##name

static void emit_match(struct policy_code *pc, const struct policy_match *m)
{
	size_t at = open_body(pc, 0);
	size_t head = at - 2;
	/* cheapest first: ports, addresses, then identity */
	unsigned nfields = emit_pair(pc, FIELD_PORT, FIELD_PAIR(m, destination_ports));
	nfields += emit_pair(pc, FIELD_DST_IP, FIELD_PAIR(m, destination_ips));
	nfields += emit_pair(pc, FIELD_SRC_IP, FIELD_PAIR(m, source_ips));
	nfields += emit_pair(pc, FIELD_SA, FIELD_PAIR(m, service_accounts));
	nfields += emit_pair(pc, FIELD_PRINCIPAL, FIELD_PAIR(m, principals));
	nfields += emit_pair(pc, FIELD_NAMESPACE, FIELD_PAIR(m, namespaces));
	close_body(pc, at);
	if (!pc->oom)
		pc->w[head] = nfields;
}

size_t policy_compile(struct policy_code *pc, const struct policy *p, uint32_t index)
{
	size_t start = pc->n;
	emit(pc, index);
	emit(pc, (uint32_t)p->nrules);
	for (size_t r = 0; r < p->nrules; r++) {
		const struct policy_rule *rule = &p->rules[r];
		size_t rat = open_body(pc, (uint32_t)rule->nclauses);
		for (size_t c = 0; c < rule->nclauses; c++) {
			const struct policy_clause *cl = &rule->clauses[c];
			size_t cat = open_body(pc, (uint32_t)cl->nmatches);
			for (size_t m = 0; m < cl->nmatches; m++)
				emit_match(pc, &cl->matches[m]);
			close_body(pc, cat);
		}
		close_body(pc, rat);
	}
	return start;
}

/* ---- the connection ---- */

static void canonical_ip(const union addr *a, struct policy_ip *out)
{
	memset(out, 0, sizeof(*out));
	if (a->sa.sa_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr)) {
		out->family = AF_INET6;
		memcpy(out->w, &a->in6.sin6_addr, 16);
	} else if (a->sa.sa_family == AF_INET6) {
		out->family = AF_INET;
		memcpy(out->w, &a->in6.sin6_addr.s6_addr[12], 4);
	} else if (a->sa.sa_family == AF_INET) {
		out->family = AF_INET;
		memcpy(out->w, &a->in4.sin_addr, 4);
	}
}

/* "spiffe://td/ns/<ns>/sa/<sa>": exactly five segments, as ztunnel's
 * Identity::from_str; anything else leaves f without an identity. */
static void parse_identity(const char *id, struct policy_facts *f)
{
	static const char scheme[] = "spiffe://";
	struct policy_slice seg[5];
	size_t n = 0;
	if (!id || strncmp(id, scheme, sizeof(scheme) - 1) != 0)
		return;
	const char *p = id + sizeof(scheme) - 1, *start = p;
	for (;;) {
		const char *slash = strchr(p, '/');
		if (n == 5)
			return;
		seg[n].p = p;
		seg[n++].n = slash ? (size_t)(slash - p) : strlen(p);
		if (!slash)
			break;
		p = slash + 1;
	}
	if (n != 5 || seg[1].n != 2 || memcmp(seg[1].p, "ns", 2) != 0 || seg[3].n != 2 ||
	    memcmp(seg[3].p, "sa", 2) != 0)
		return;
	f->has_id = true;
	f->principal = (struct policy_slice){ start, (size_t)(seg[4].p + seg[4].n - start) };
	f->ns = seg[2];
	f->sa = seg[4];
}

void policy_facts_init(const struct policy_request *req, struct policy_facts *f)
{
	memset(f, 0, sizeof(*f));
	canonical_ip(req->src, &f->src);
	canonical_ip(req->dst, &f->dst);
	f->dst_port = addr_port(req->dst);
	f->ns = f->sa = f->principal = (struct policy_slice){ "", 0 };
	parse_identity(req->src_identity, f);
}

/* ---- matching ---- */

static size_t padded(size_t len)
{
	return (len + 3) / 4;
}

static bool str_match(uint32_t kind, const char *v, size_t n, struct policy_slice s)
{
	switch (kind) {
	case STRMATCH_EXACT:
		return n == s.n && memcmp(s.p, v, n) == 0;
	case STRMATCH_PREFIX:
		return n <= s.n && memcmp(s.p, v, n) == 0;
	case STRMATCH_SUFFIX:
		return n <= s.n && memcmp(s.p + s.n - n, v, n) == 0;
	default:	/* STRMATCH_PRESENCE */
		return s.n > 0;
	}
}

/* Prefix compare, a 32-bit word at a time (both in network order); the
 * CIDR's host bits are already clear. */
static bool cidr_has(const uint32_t *w, const struct policy_ip *ip)
{
	unsigned prefix = w[0] & 0xff;
	if ((w[0] >> 8) != ip->family)
		return false;
	for (unsigned i = 0; prefix; i++) {
		unsigned bits = prefix < 32 ? prefix : 32;
		if ((w[1 + i] ^ ip->w[i]) & htonl((uint32_t)(0xffffffffull << (32 - bits))))
			return false;
		prefix -= bits;
	}
	return true;
}

static bool sa_has(const uint32_t *w, const struct policy_facts *f)
{
	const char *ns = (const char *)(w + 2), *sa = ns + 4 * padded(w[0]);
	return w[0] == f->ns.n && w[1] == f->sa.n && memcmp(ns, f->ns.p, w[0]) == 0 &&
	       memcmp(sa, f->sa.p, w[1]) == 0;
}

/* Does one entry of the field at w (count w[1], entries from w[3]) match? */
static bool field_any(const uint32_t *w, const struct policy_facts *f)
{
	const uint32_t *e = w + 3;
	unsigned op = w[0] & ~FIELD_NOT;
	for (uint32_t i = 0; i < w[1]; i++) {
		switch (op) {
		case FIELD_PORT:
			if (e[0] == f->dst_port)
				return true;
			e++;
			break;
		case FIELD_DST_IP:
		case FIELD_SRC_IP:
			if (cidr_has(e, op == FIELD_DST_IP ? &f->dst : &f->src))
				return true;
			e += CIDR_WORDS;
			break;
		case FIELD_SA:
			if (f->has_id && sa_has(e, f))
				return true;
			e += 2 + padded(e[0]) + padded(e[1]);
			break;
		default:	/* a string match: principal or namespace */
			if ((op == FIELD_NAMESPACE || f->has_id) &&
			    str_match(e[0], (const char *)(e + 2), e[1],
				      op == FIELD_NAMESPACE ? f->ns : f->principal))
				return true;
			e += 2 + padded(e[1]);
		}
	}
	return false;
}

/* Every field holds: positive ones have a matching entry, negated ones none. */
static bool match_ok(const uint32_t *w, const struct policy_facts *f)
{
	const uint32_t *field = w + 2, *end = field + w[1];
	if (w[0] == 0)
		return false;	/* the empty match never matches */
	for (; field < end; field += 3 + field[2])
		if (field_any(field, f) == !!(field[0] & FIELD_NOT))
			return false;
	return true;
}

/* One of the clause's matches holds (an empty clause holds). */
static bool clause_ok(const uint32_t *w, const struct policy_facts *f)
{
	const uint32_t *m = w + 2, *end = m + w[1];
	if (w[0] == 0)
		return true;
	for (; m < end; m += 2 + m[1])
		if (match_ok(m, f))
			return true;
	return false;
}

bool policy_code_matches(const uint32_t *code, const struct policy_facts *f)
{
	const uint32_t *rule = code + 2;
	for (uint32_t r = 0; r < code[1]; r++, rule += 2 + rule[1]) {
		const uint32_t *cl = rule + 2, *end = cl + rule[1];
		while (cl < end && clause_ok(cl, f))
			cl += 2 + cl[1];
		if (cl == end)
			return true;	/* every clause held (or there were none) */
	}
	return false;	/* no rule matched, or there were no rules */
}
