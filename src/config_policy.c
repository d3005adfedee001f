/*
 * Authorization policies, as ztunnel's local config writes them (the
 * Authorization struct of src/rbac.rs in istio/ztunnel):
 *
 *   {"name": "deny-9999", "namespace": "default", "scope": "Namespace",
 *    "action": "Allow", "dryRun": false,
 *    "rules": [ [ [ {"notDestinationPorts": [9999]} ] ] ]}
 *
 * rules is an OR of rules; a rule an AND of clauses; a clause an OR of
 * matches. String matches are serde's externally tagged enum:
 * {"Exact": "x"}, {"Prefix": "x"}, {"Suffix": "x"}, {"Presence": []}.
 * Enforcement is not here (see the policy issue); this is the model.
 */
#include "config_int.h"

#include <string.h>

static const char *const scope_names[] = { "Global", "Namespace", "WorkloadSelector", NULL };
static const char *const action_names[] = { "Allow", "Deny", NULL };
static const char *const strmatch_names[] = { "Exact", "Prefix", "Suffix", "Presence", NULL };

static void string_match(struct vctx *c, const cJSON *v, struct string_match *out)
{
	const cJSON *m = cJSON_IsObject(v) ? v->child : NULL;
	int kind = -1;
	for (int i = 0; m && strmatch_names[i]; i++)
		if (strcmp(m->string, strmatch_names[i]) == 0)
			kind = i;
	if (!m || m->next || kind < 0) {
		verr(c, v, false, "expected a string match: {\"Exact\": \"...\"}, "
		     "{\"Prefix\": \"...\"}, {\"Suffix\": \"...\"} or {\"Presence\": []}");
		return;
	}
	size_t mark = path_mark(c);
	path_field(c, m->string);
	const char *s = NULL;
	if (kind == STRMATCH_PRESENCE) {
		if (!cJSON_IsArray(m) || m->child)
			verr(c, m, false, "expected [] (Presence takes no value), got %s",
			     json_type_name(m));
		else
			s = "";
	} else {
		vstring(c, m, &s);
	}
	path_reset(c, mark);
	if (s) {
		out->kind = (enum string_match_kind)kind;
		out->value = vdup(c, s);
	}
}

static void sa_match(struct vctx *c, const cJSON *v, struct sa_match *out)
{
	static const struct field f[] = {
		FIELD_AT("namespace", FT_SEGMENT, FIELD_REQUIRED, struct sa_match, namespace),
		FIELD_AT("serviceAccount", FT_SEGMENT, FIELD_REQUIRED, struct sa_match,
			 service_account),
	};
	vobject(c, v, f, sizeof(f) / sizeof(f[0]), out);
	out->namespace = vor_empty(c, out->namespace);
	out->service_account = vor_empty(c, out->service_account);
}

static void cidr(struct vctx *c, const cJSON *v, struct cidr *out)
{
	const char *s;
	if (vstring(c, v, &s) && !cidr_parse(s, out))
		verr(c, v, false, "invalid CIDR %s: expected an address block such as "
		     "\"10.0.0.0/8\" or an address", vq(c, 0, s));
}

static void port(struct vctx *c, const cJSON *v, uint16_t *out)
{
	uint64_t u;
	if (vuint(c, v, 1, 65535, &u))
		*out = (uint16_t)u;
}

/*
 * Each list field of a match: an array parsed element by element into an
 * arena array. One generator per element type keeps the twelve fields to
 * a line each.
 */
#define LIST_PARSER(fn, type, elem)						\
	static size_t fn(struct vctx *c, const cJSON *v, type **out)		\
	{									\
		const cJSON *e;							\
		size_t n, i = 0;						\
		if (!varray(c, v, &e, &n) || !(*out = vnew(c, n, sizeof(type)))) \
			return 0;						\
		for (; e; e = e->next, i++) {					\
			size_t mark = path_mark(c);				\
			path_index(c, i);					\
			elem(c, e, &(*out)[i]);					\
			path_reset(c, mark);					\
		}								\
		return n;							\
	}

LIST_PARSER(string_matches, struct string_match, string_match)
LIST_PARSER(sa_matches, struct sa_match, sa_match)
LIST_PARSER(cidrs, struct cidr, cidr)
LIST_PARSER(ports, uint16_t, port)

#define MATCH_FIELD(fn, list, arr, cnt)						\
	static void fn(struct vctx *c, const cJSON *v, void *obj)		\
	{									\
		struct policy_match *m = obj;					\
		m->cnt = list(c, v, &m->arr);					\
	}

MATCH_FIELD(m_namespaces, string_matches, namespaces, nnamespaces)
MATCH_FIELD(m_not_namespaces, string_matches, not_namespaces, nnot_namespaces)
MATCH_FIELD(m_sas, sa_matches, service_accounts, nservice_accounts)
MATCH_FIELD(m_not_sas, sa_matches, not_service_accounts, nnot_service_accounts)
MATCH_FIELD(m_principals, string_matches, principals, nprincipals)
MATCH_FIELD(m_not_principals, string_matches, not_principals, nnot_principals)
MATCH_FIELD(m_src_ips, cidrs, source_ips, nsource_ips)
MATCH_FIELD(m_not_src_ips, cidrs, not_source_ips, nnot_source_ips)
MATCH_FIELD(m_dst_ips, cidrs, destination_ips, ndestination_ips)
MATCH_FIELD(m_not_dst_ips, cidrs, not_destination_ips, nnot_destination_ips)
MATCH_FIELD(m_dst_ports, ports, destination_ports, ndestination_ports)
MATCH_FIELD(m_not_dst_ports, ports, not_destination_ports, nnot_destination_ports)

static const struct field match_fields[] = {
	FIELD_FN("namespaces", 0, m_namespaces),
	FIELD_FN("notNamespaces", 0, m_not_namespaces),
	FIELD_FN("serviceAccounts", 0, m_sas),
	FIELD_FN("notServiceAccounts", 0, m_not_sas),
	FIELD_FN("principals", 0, m_principals),
	FIELD_FN("notPrincipals", 0, m_not_principals),
	FIELD_FN("sourceIps", 0, m_src_ips),
	FIELD_FN("notSourceIps", 0, m_not_src_ips),
	FIELD_FN("destinationIps", 0, m_dst_ips),
	FIELD_FN("notDestinationIps", 0, m_not_dst_ips),
	FIELD_FN("destinationPorts", 0, m_dst_ports),
	FIELD_FN("notDestinationPorts", 0, m_not_dst_ports),
};

static void match(struct vctx *c, const cJSON *v, struct policy_match *m)
{
	vobject(c, v, match_fields, sizeof(match_fields) / sizeof(match_fields[0]), m);
}

LIST_PARSER(matches, struct policy_match, match)

static void clause(struct vctx *c, const cJSON *v, struct policy_clause *cl)
{
	cl->nmatches = matches(c, v, &cl->matches);
}

LIST_PARSER(clauses, struct policy_clause, clause)

static void rule(struct vctx *c, const cJSON *v, struct policy_rule *r)
{
	r->nclauses = clauses(c, v, &r->clauses);
}

LIST_PARSER(rules, struct policy_rule, rule)

static void p_rules(struct vctx *c, const cJSON *v, void *obj)
{
	struct policy *p = obj;
	p->nrules = rules(c, v, &p->rules);
}

#define P(n, t, fl, m) FIELD_AT(n, t, fl, struct policy, m)

static const struct field policy_fields[] = {
	P("name", FT_ID, FIELD_REQUIRED, name),
	P("namespace", FT_SEGMENT, FIELD_REQUIRED, namespace),
	FIELD_ENUM("scope", FIELD_REQUIRED, struct policy, scope, scope_names),
	FIELD_ENUM("action", FIELD_REQUIRED, struct policy, action, action_names),
	FIELD_FN("rules", FIELD_REQUIRED, p_rules),
	P("dryRun", FT_BOOL, 0, dry_run),
};

void policy_parse(struct vctx *c, const cJSON *v, struct policy *p)
{
	vobject(c, v, policy_fields, sizeof(policy_fields) / sizeof(policy_fields[0]), p);
	p->name = vor_empty(c, p->name);
	p->namespace = vor_empty(c, p->namespace);
	p->key = *p->namespace && *p->name ? vprintf_dup(c, "%s/%s", p->namespace, p->name) :
						 c->empty;
}
