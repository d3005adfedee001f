/*
 * L4 authorization engine and its per-snapshot index. See
 * include/zring/policy.h.
 *
 * Semantics, each checked against istio/ztunnel (commit 62d82653, files
 * src/rbac.rs, src/state/policy.rs, src/state.rs `assert_rbac`,
 * src/identity/manager.rs, src/tls/certificate.rs, src/socket.rs):
 *
 *  1. Which policies apply to a workload: those in PolicyStore's
 *     by_namespace[""] (every Global policy, whatever its own namespace),
 *     those in by_namespace[workload namespace] (Namespace scope, keyed by
 *     the policy's namespace), and every key the workload's
 *     authorizationPolicies lists, whatever that policy's scope or
 *     namespace. WorkloadSelector policies apply only through such lists.
 *     Unknown keys are skipped ("skipping unknown policy"). ztunnel does
 *     not deduplicate; a policy listed twice gives the same answer twice,
 *     so the index keeps each policy once per workload.
 *  2. Order: any matching non-dry-run Deny denies (ExplicitlyDenied);
 *     else no non-dry-run Allow applying means allow; else a matching
 *     Allow allows; else deny (NotAllowed). Dry-run policies are split off
 *     first and only logged: ztunnel logs each matching dry-run Deny and
 *     Allow, and "no allow policies match" when dry-run Allows are the
 *     only Allows and none matched. zring reports the one dry-run policy
 *     that would change the verdict (see policy_result).
 *  3. A policy with no rules never matches. A rule (AND of clauses) with no
 *     clauses matches. A clause (OR of matches) with no matches matches.
 *     A match with every field empty never matches (is skipped).
 *  4. A match: each field pair (x, notX) holds when x is empty or one
 *     entry of x matches, and no entry of notX matches; all six pairs must
 *     hold (destination IPs, source IPs, destination ports, service
 *     accounts, principals, namespaces).
 *  5. No source identity (plaintext): its principal is "" and its
 *     namespace "". A principal entry only matches an identity starting
 *     "spiffe://" (matches_principal strips it or fails), so principals
 *     never match and notPrincipals always hold; serviceAccounts never
 *     match (None => false) and notServiceAccounts always hold; namespaces
 *     are string-matched against "": Exact "" / Prefix "" / Suffix ""
 *     match it, Presence does not.
 *  6. An identity is "spiffe://" + 5 '/'-separated segments with "ns" and
 *     "sa" in the 2nd and 4th (Identity::from_str; segments may be empty).
 *     A peer certificate whose URI SAN does not parse gives no identity
 *     (tls::identity returns None), so a malformed src_identity counts
 *     as none here.
 *  7. String matches: Exact is equality, Prefix starts_with, Suffix
 *     ends_with, Presence non-empty. Principals are matched against the
 *     identity without "spiffe://" ("td/ns/x/sa/y"), so a principal written
 *     with "spiffe://" never matches. serviceAccounts compare namespace
 *     and service account exactly, never the trust domain.
 *  8. CIDRs contain an address of their own family only (ipnet); source
 *     and destination addresses are canonicalized first (IPv4-mapped IPv6
 *     becomes IPv4, socket::to_canonical). Ports compare exactly.
 *
 * Points 1-2 are this file (the index and the order of evaluation), 3-8
 * src/policy_code.c (policies compiled to compact code and matched).
 */
#include "policy_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The four lists a group is split into, in this order in its array. */
enum { SEC_DENY, SEC_ALLOW, SEC_DRY_DENY, SEC_DRY_ALLOW, NSEC };

/* Policies that apply together, as their compiled code: v + off[s] holds
 * the n[s] policies of section s, each list in file order. */
struct pgroup {
	const uint32_t **v;
	uint32_t n[NSEC];
	uint32_t off[NSEC];
};

struct wentry {
	const struct pgroup *ns;	/* its namespace's group, or the empty group */
	struct pgroup own;		/* from authorizationPolicies, minus the above */
};

struct policy_index {
	const struct config *cfg;
	struct policy_code code;	/* every policy, compiled, in group order */
	struct pgroup *groups;		/* [0] Global, [1] empty, [2..] one per namespace */
	size_t ngroups;
	const uint32_t **shared;	/* the groups' arrays */
	struct wentry *wl;		/* per workload, as cfg->workloads */
	const uint32_t **own;		/* the workloads' own arrays */
};

enum { G_GLOBAL, G_EMPTY, G_FIRST_NS };

/* ---- a small open-addressing string set (index + 1 in each slot) ---- */

struct strtab {
	uint32_t *slot;
	size_t mask;
	const char *base;	/* entry i's string is *(char **)(base + i * stride) */
	size_t stride;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

static int strtab_init(struct strtab *t, size_t n, const void *base, size_t stride)
{
	size_t cap = 16;
	while (cap < n * 2)
		cap <<= 1;
	t->slot = calloc(cap, sizeof(*t->slot));
	t->mask = cap - 1;
	t->base = base;
	t->stride = stride;
	return t->slot ? 0 : -ENOMEM;
}

static const char *strtab_str(const struct strtab *t, uint32_t i)
{
	return *(const char *const *)(const void *)(t->base + (size_t)i * t->stride);
}

/* The slot holding s, or the empty slot where it would go. */
static uint32_t *strtab_find(const struct strtab *t, const char *s)
{
	size_t i = hash_str(s) & t->mask;
	while (t->slot[i] && strcmp(strtab_str(t, t->slot[i] - 1), s) != 0)
		i = (i + 1) & t->mask;
	return &t->slot[i];
}

/* Entry index of s, or UINT32_MAX. */
static uint32_t strtab_get(const struct strtab *t, const char *s)
{
	uint32_t v = *strtab_find(t, s);
	return v ? v - 1 : UINT32_MAX;
}

/* ---- building ---- */

/* Scratch space of one build. */
struct build {
	struct strtab ns;		/* namespace -> group - G_FIRST_NS */
	const char **names;		/* the namespaces in ns */
	uint32_t *gid;			/* per policy: its shared group, or UINT32_MAX */
	uint32_t *order;		/* the shared arrays, as policy indexes */
	const uint32_t **code;		/* per policy: its compiled code */
};

static unsigned section(const struct policy *p)
{
	return (p->dry_run ? SEC_DRY_DENY : SEC_DENY) + (p->action == ACTION_ALLOW);
}

static void group_offsets(struct pgroup *g)
{
	uint32_t off = 0;
	for (unsigned s = 0; s < NSEC; s++) {
		g->off[s] = off;
		off += g->n[s];
	}
}

/* Each policy's shared group: 0 for Global, one per namespace for
 * Namespace scope, none for WorkloadSelector. */
static int assign_groups(struct policy_index *ix, struct build *b)
{
	const struct config *cfg = ix->cfg;
	size_t ng = G_FIRST_NS;
	if (strtab_init(&b->ns, cfg->npolicies, b->names, sizeof(*b->names)) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->npolicies; i++) {
		const struct policy *p = &cfg->policies[i];
		b->gid[i] = p->scope == SCOPE_GLOBAL ? G_GLOBAL : UINT32_MAX;
		if (p->scope != SCOPE_NAMESPACE)
			continue;
		uint32_t *slot = strtab_find(&b->ns, p->namespace);
		if (!*slot) {
			b->names[ng - G_FIRST_NS] = p->namespace;
			*slot = (uint32_t)(ng++ - G_FIRST_NS + 1);
		}
		b->gid[i] = *slot - 1 + G_FIRST_NS;
	}
	ix->ngroups = ng;
	ix->groups = calloc(ng, sizeof(*ix->groups));
	return ix->groups ? 0 : -ENOMEM;
}

/*
 * Lay the shared groups out: one stable counting sort on (group, section)
 * puts each group's lists side by side, each in file order, into
 * b->order. Returns how many policies the shared groups hold.
 */
static size_t layout_groups(struct policy_index *ix, struct build *b, uint32_t *next)
{
	const struct config *cfg = ix->cfg;
	size_t at = 0;
	for (size_t i = 0; i < cfg->npolicies; i++)
		if (b->gid[i] != UINT32_MAX)
			ix->groups[b->gid[i]].n[section(&cfg->policies[i])]++;
	for (size_t g = 0; g < ix->ngroups; g++) {
		ix->groups[g].v = ix->shared + at;
		group_offsets(&ix->groups[g]);
		for (unsigned s = 0; s < NSEC; s++)
			at += ix->groups[g].n[s];
	}
	for (size_t i = 0; i < cfg->npolicies; i++) {
		uint32_t g = b->gid[i];
		if (g == UINT32_MAX)
			continue;
		unsigned s = section(&cfg->policies[i]);
		size_t base = (size_t)(ix->groups[g].v - ix->shared) + ix->groups[g].off[s];
		b->order[base + next[g * NSEC + s]++] = (uint32_t)i;
	}
	return at;
}

/* Compile every policy, the shared groups' first and in their order (a
 * check then reads them front to back), then the rest in file order. */
static int compile_all(struct policy_index *ix, struct build *b, size_t nshared)
{
	const struct config *cfg = ix->cfg;
	size_t *off = calloc(cfg->npolicies + 1, sizeof(*off));
	if (!off)
		return -ENOMEM;
	for (size_t k = 0; k < nshared; k++)
		off[b->order[k]] = policy_compile(&ix->code, &cfg->policies[b->order[k]],
						  b->order[k]);
	for (size_t i = 0; i < cfg->npolicies; i++)
		if (b->gid[i] == UINT32_MAX)
			off[i] = policy_compile(&ix->code, &cfg->policies[i], (uint32_t)i);
	if (!ix->code.oom) {
		for (size_t i = 0; i < cfg->npolicies; i++)
			b->code[i] = ix->code.w + off[i];
		for (size_t k = 0; k < nshared; k++)
			ix->shared[k] = b->code[b->order[k]];
	}
	free(off);
	return ix->code.oom ? -ENOMEM : 0;
}

static int build_groups(struct policy_index *ix, struct build *b)
{
	size_t np = ix->cfg->npolicies;
	int err = assign_groups(ix, b);
	if (err < 0)
		return err;
	uint32_t *next = calloc(ix->ngroups * NSEC, sizeof(*next));
	ix->shared = calloc(np + 1, sizeof(*ix->shared));
	if (!next || !ix->shared) {
		free(next);
		return -ENOMEM;
	}
	size_t nshared = layout_groups(ix, b, next);
	free(next);
	return compile_all(ix, b, nshared);
}

/* Already applies through a shared group? (ztunnel would evaluate it twice.) */
static bool in_shared(const struct policy *p, const struct workload *w)
{
	return p->scope == SCOPE_GLOBAL ||
	       (p->scope == SCOPE_NAMESPACE && strcmp(p->namespace, w->namespace) == 0);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/*
 * Workload w's own group: the policies its authorizationPolicies name that
 * no shared group already holds, each once, stably partitioned into
 * sections at dst. seen[i] == w + 1 marks policy i as taken for w.
 */
static void build_own(struct policy_index *ix, const struct build *b, size_t w,
		      const struct strtab *keys, uint32_t *seen, uint32_t *tmp,
		      const uint32_t **dst)
{
	const struct config *cfg = ix->cfg;
	const struct workload *wl = &cfg->workloads[w];
	struct pgroup *g = &ix->wl[w].own;
	size_t n = 0;
	for (size_t k = 0; k < wl->npolicies; k++) {
		uint32_t i = strtab_get(keys, wl->authorization_policies[k]);
		if (i == UINT32_MAX || seen[i] == w + 1 || in_shared(&cfg->policies[i], wl))
			continue;
		seen[i] = (uint32_t)(w + 1);
		tmp[n++] = i;
		g->n[section(&cfg->policies[i])]++;
	}
	qsort(tmp, n, sizeof(*tmp), cmp_u32);	/* file order, as the shared groups */
	g->v = dst;
	group_offsets(g);
	uint32_t next[NSEC] = { 0 };
	for (size_t k = 0; k < n; k++) {
		unsigned s = section(&cfg->policies[tmp[k]]);
		dst[g->off[s] + next[s]++] = b->code[tmp[k]];
	}
}

static int build_workloads(struct policy_index *ix, const struct build *b)
{
	const struct config *cfg = ix->cfg;
	struct strtab keys = { 0 };
	size_t nrefs = 0, maxrefs = 0;
	for (size_t w = 0; w < cfg->nworkloads; w++) {
		nrefs += cfg->workloads[w].npolicies;
		if (cfg->workloads[w].npolicies > maxrefs)
			maxrefs = cfg->workloads[w].npolicies;
	}
	uint32_t *seen = calloc(cfg->npolicies + 1, sizeof(*seen));
	uint32_t *tmp = calloc(maxrefs + 1, sizeof(*tmp));
	ix->wl = calloc(cfg->nworkloads + 1, sizeof(*ix->wl));
	ix->own = calloc(nrefs + 1, sizeof(*ix->own));
	int err = -ENOMEM;
	if (!seen || !tmp || !ix->wl || !ix->own ||
	    strtab_init(&keys, cfg->npolicies, cfg->npolicies ? &cfg->policies[0].key : NULL,
			sizeof(struct policy)) < 0)
		goto out;
	for (size_t i = 0; i < cfg->npolicies; i++) {
		uint32_t *slot = strtab_find(&keys, cfg->policies[i].key);
		if (!*slot)	/* keys are unique in a valid config; first wins */
			*slot = (uint32_t)(i + 1);
	}
	size_t at = 0;
	for (size_t w = 0; w < cfg->nworkloads; w++) {
		uint32_t g = strtab_get(&b->ns, cfg->workloads[w].namespace);
		ix->wl[w].ns = &ix->groups[g == UINT32_MAX ? G_EMPTY : g + G_FIRST_NS];
		build_own(ix, b, w, &keys, seen, tmp, ix->own + at);
		for (unsigned s = 0; s < NSEC; s++)
			at += ix->wl[w].own.n[s];
	}
	err = 0;
out:
	free(keys.slot);
	free(tmp);
	free(seen);
	return err;
}

int policy_index_new(const struct config *cfg, struct policy_index **out)
{
	size_t np = cfg->npolicies + 1;
	struct policy_index *ix = calloc(1, sizeof(*ix));
	struct build b = {
		.names = calloc(np, sizeof(*b.names)),
		.gid = calloc(np, sizeof(*b.gid)),
		.order = calloc(np, sizeof(*b.order)),
		.code = calloc(np, sizeof(*b.code)),
	};
	int err = -ENOMEM;
	if (!ix || !b.names || !b.gid || !b.order || !b.code)
		goto out;
	ix->cfg = cfg;
	err = build_groups(ix, &b);
	if (err == 0)
		err = build_workloads(ix, &b);
out:
	free(b.ns.slot);
	free(b.names);
	free(b.gid);
	free(b.order);
	free(b.code);
	if (err < 0) {
		policy_index_free(ix);
		return err;
	}
	*out = ix;
	return 0;
}

void policy_index_free(struct policy_index *ix)
{
	if (!ix)
		return;
	free(ix->code.w);
	free(ix->groups);
	free(ix->shared);
	free(ix->wl);
	free(ix->own);
	free(ix);
}

/* ---- checking ---- */

/* The groups that apply to one workload, in evaluation order. */
struct applying {
	const struct config *cfg;
	const struct pgroup *g[3];
};

static bool applying_init(const struct policy_index *ix, const struct workload *w,
			  struct applying *a)
{
	uintptr_t base = (uintptr_t)ix->cfg->workloads, at = (uintptr_t)w;
	if (!w || at < base || (at - base) % sizeof(*w) != 0 ||
	    (at - base) / sizeof(*w) >= ix->cfg->nworkloads)
		return false;
	const struct wentry *e = &ix->wl[(at - base) / sizeof(*w)];
	*a = (struct applying){ ix->cfg, { &ix->groups[G_GLOBAL], e->ns, &e->own } };
	return true;
}

static const struct policy *policy_of(const struct applying *a, const uint32_t *code)
{
	return &a->cfg->policies[code[0]];
}

static size_t count(const struct applying *a, unsigned s)
{
	return (size_t)a->g[0]->n[s] + a->g[1]->n[s] + a->g[2]->n[s];
}

static const struct policy *first_in(const struct applying *a, unsigned s)
{
	for (int i = 0; i < 3; i++)
		if (a->g[i]->n[s])
			return policy_of(a, a->g[i]->v[a->g[i]->off[s]]);
	return NULL;
}

static const struct policy *first_match(const struct applying *a, unsigned s,
					const struct policy_facts *f)
{
	for (int i = 0; i < 3; i++) {
		const uint32_t *const *v = a->g[i]->v + a->g[i]->off[s];
		for (uint32_t k = 0; k < a->g[i]->n[s]; k++)
			if (policy_code_matches(v[k], f))
				return policy_of(a, v[k]);
	}
	return NULL;
}

/* Would enforcing the dry-run policies too change res->verdict? */
static void dry_run(const struct applying *a, const struct policy_facts *f,
		    struct policy_result *res)
{
	const struct policy *p;
	if (res->why == POLICY_WHY_DENY_MATCHED)
		return;		/* a real Deny matched: nothing can allow it */
	if (res->verdict == POLICY_ALLOW) {
		if ((p = first_match(a, SEC_DRY_DENY, f)) ||
		    (res->why == POLICY_WHY_NO_ALLOW_POLICY && count(a, SEC_DRY_ALLOW) &&
		     !first_match(a, SEC_DRY_ALLOW, f) && (p = first_in(a, SEC_DRY_ALLOW)))) {
			res->dry_run = p;
			res->dry_run_verdict = POLICY_DENY;
		}
		return;
	}
	if ((p = first_match(a, SEC_DRY_ALLOW, f)) && !first_match(a, SEC_DRY_DENY, f)) {
		res->dry_run = p;
		res->dry_run_verdict = POLICY_ALLOW;
	}
}

static void decide(struct policy_result *res, enum policy_verdict v, enum policy_why why,
		   const struct policy *by)
{
	res->verdict = v;
	res->why = why;
	res->decided_by = by;
}

void policy_check(const struct policy_index *ix, const struct workload *dst,
		  const struct policy_request *req, struct policy_result *res)
{
	struct applying a;
	struct policy_facts f;
	const struct policy *p;
	memset(res, 0, sizeof(*res));
	if (!applying_init(ix, dst, &a)) {
		decide(res, POLICY_DENY, POLICY_WHY_UNKNOWN_WORKLOAD, NULL);
		return;
	}
	policy_facts_init(req, &f);
	if ((p = first_match(&a, SEC_DENY, &f)))
		decide(res, POLICY_DENY, POLICY_WHY_DENY_MATCHED, p);
	else if (!count(&a, SEC_ALLOW))
		decide(res, POLICY_ALLOW, POLICY_WHY_NO_ALLOW_POLICY, NULL);
	else if ((p = first_match(&a, SEC_ALLOW, &f)))
		decide(res, POLICY_ALLOW, POLICY_WHY_ALLOW_MATCHED, p);
	else
		decide(res, POLICY_DENY, POLICY_WHY_NO_ALLOW_MATCHED, NULL);
	dry_run(&a, &f, res);
}

size_t policy_applicable(const struct policy_index *ix, const struct workload *dst,
			 const struct policy **out, size_t max)
{
	struct applying a;
	size_t n = 0;
	if (!applying_init(ix, dst, &a))
		return 0;
	for (unsigned s = 0; s < NSEC; s++)
		for (int i = 0; i < 3; i++)
			for (uint32_t k = 0; k < a.g[i]->n[s]; k++, n++)
				if (n < max)
					out[n] = policy_of(&a, a.g[i]->v[a.g[i]->off[s] + k]);
	return n;
}

const char *policy_verdict_name(enum policy_verdict v)
{
	return v == POLICY_ALLOW ? "allow" : "deny";
}

const char *policy_reason(const struct policy_result *res, char *buf, size_t len)
{
	int n = 0;
	switch (res->why) {
	case POLICY_WHY_DENY_MATCHED:
		n = snprintf(buf, len, "denied by policy %s", res->decided_by->key);
		break;
	case POLICY_WHY_ALLOW_MATCHED:
		n = snprintf(buf, len, "allowed by policy %s", res->decided_by->key);
		break;
	case POLICY_WHY_NO_ALLOW_POLICY:
		n = snprintf(buf, len, "allowed: no allow policy applies");
		break;
	case POLICY_WHY_NO_ALLOW_MATCHED:
		n = snprintf(buf, len, "no allow policy matched");
		break;
	case POLICY_WHY_UNKNOWN_WORKLOAD:
		n = snprintf(buf, len, "destination is not a known workload");
		break;
	}
	if (res->dry_run && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "; dry-run policy %s would %s",
			 res->dry_run->key, policy_verdict_name(res->dry_run_verdict));
	return buf;
}
