/*
 * L4 authorization, what one policy matches: every match field and its
 * `not` form, string matches, CIDRs (IPv4, IPv6, IPv4-mapped), malformed
 * identities, and rule/clause/match nesting. test_policy.c has which
 * policies apply and how their verdicts combine.
 *
 * Configs are written as users write them, in JSON, and go through the
 * real parser. Expected values come from ztunnel's own tests (src/rbac.rs)
 * where it has one for the case.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "policy_helpers.h"

/* ---- helpers ---- */

/* Does a Global Allow policy with these rules match c? (It is the only
 * policy, so allowed <=> matched.) */
static bool rules_match(const char *rules, struct conn c)
{
	char *pol;
	cr_assert(asprintf(&pol, "{\"name\": \"p\", \"namespace\": \"ns1\", \"scope\": \"Global\","
			   " \"action\": \"Allow\", \"rules\": %s}", rules) > 0);
	load("", "", pol);
	free(pol);
	struct policy_result r = check("a", c);
	cr_assert_eq(r.decided_by, r.verdict == POLICY_ALLOW ? &cfg->policies[0] : NULL);
	return r.verdict == POLICY_ALLOW;
}

/* Does one match (a JSON object) match c? */
static bool match1(const char *match, struct conn c)
{
	char *rules;
	cr_assert(asprintf(&rules, "[[[%s]]]", match) > 0);
	bool m = rules_match(rules, c);
	free(rules);
	return m;
}

struct row {
	const char *match;
	int plain, tls, alt;	/* expected: 1 matches, 0 does not */
};

static void run_rows(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cr_expect_eq(match1(rows[i].match, PLAIN), rows[i].plain, "%s, plaintext",
			     rows[i].match);
		cr_expect_eq(match1(rows[i].match, TLS), rows[i].tls, "%s, tls", rows[i].match);
		cr_expect_eq(match1(rows[i].match, ALT), rows[i].alt, "%s, alt", rows[i].match);
	}
}

TestSuite(policy_match, .fini = policy_teardown);

/* ---- match fields ---- */

Test(policy_match, identity_fields_and_their_not_forms)
{
	static const struct row rows[] = {
		{ "{\"namespaces\": [{\"Exact\": \"default\"}]}", 0, 1, 0 },
		{ "{\"notNamespaces\": [{\"Exact\": \"default\"}]}", 1, 0, 1 },
		{ "{\"serviceAccounts\": [{\"namespace\": \"default\", \"serviceAccount\": \"web\"}]}",
		  0, 1, 0 },
		{ "{\"notServiceAccounts\": [{\"namespace\": \"default\", \"serviceAccount\": \"web\"}]}",
		  1, 0, 1 },
		/* the trust domain is not part of a service-account match */
		{ "{\"serviceAccounts\": [{\"namespace\": \"other\", \"serviceAccount\": \"api\"}]}",
		  0, 0, 1 },
		/* namespace and account must both match */
		{ "{\"serviceAccounts\": [{\"namespace\": \"default\", \"serviceAccount\": \"api\"}]}",
		  0, 0, 0 },
		{ "{\"principals\": [{\"Exact\": \"cluster.local/ns/default/sa/web\"}]}", 0, 1, 0 },
		{ "{\"notPrincipals\": [{\"Exact\": \"cluster.local/ns/default/sa/web\"}]}", 1, 0, 1 },
		/* principals are written without spiffe:// */
		{ "{\"principals\": [{\"Exact\": \"spiffe://cluster.local/ns/default/sa/web\"}]}",
		  0, 0, 0 },
		/* any entry of a field may match */
		{ "{\"namespaces\": [{\"Exact\": \"x\"}, {\"Exact\": \"other\"}]}", 0, 0, 1 },
	};
	run_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

Test(policy_match, address_and_port_fields_and_their_not_forms)
{
	static const struct row rows[] = {
		{ "{\"sourceIps\": [\"10.1.0.1\"]}", 1, 1, 0 },
		{ "{\"notSourceIps\": [\"10.1.0.1\"]}", 0, 0, 1 },
		{ "{\"sourceIps\": [\"fd00:2::/32\"]}", 0, 0, 1 },
		{ "{\"notSourceIps\": [\"fd00:2::/32\"]}", 1, 1, 0 },
		{ "{\"destinationIps\": [\"10.0.1.1/32\"]}", 1, 1, 0 },
		{ "{\"notDestinationIps\": [\"10.0.1.1/32\"]}", 0, 0, 1 },
		{ "{\"destinationIps\": [\"10.0.1.0/24\", \"fd00::/16\"]}", 1, 1, 1 },
		{ "{\"destinationIps\": [\"fd00::1:1\"]}", 0, 0, 1 },
		{ "{\"destinationPorts\": [8080]}", 1, 1, 0 },
		{ "{\"notDestinationPorts\": [8080]}", 0, 0, 1 },
		{ "{\"destinationPorts\": [80, 9090]}", 0, 0, 1 },
		/* every field of one match must hold (AND) */
		{ "{\"namespaces\": [{\"Exact\": \"default\"}], \"destinationPorts\": [9090]}", 0, 0, 0 },
		{ "{\"namespaces\": [{\"Exact\": \"other\"}], \"destinationPorts\": [9090]}", 0, 0, 1 },
		/* a positive and a negative of the same field */
		{ "{\"namespaces\": [{\"Presence\": []}], \"notNamespaces\": [{\"Exact\": \"default\"}]}",
		  0, 0, 1 },
		{ "{\"sourceIps\": [\"10.0.0.0/8\"], \"notSourceIps\": [\"10.1.0.1\"]}", 0, 0, 0 },
	};
	run_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

Test(policy_match, string_match_kinds_on_namespaces_and_principals)
{
	static const struct row rows[] = {
		{ "{\"namespaces\": [{\"Prefix\": \"def\"}]}", 0, 1, 0 },
		{ "{\"namespaces\": [{\"Prefix\": \"default-more\"}]}", 0, 0, 0 },
		{ "{\"namespaces\": [{\"Suffix\": \"her\"}]}", 0, 0, 1 },
		{ "{\"namespaces\": [{\"Suffix\": \"xother\"}]}", 0, 0, 0 },
		{ "{\"namespaces\": [{\"Exact\": \"defaul\"}]}", 0, 0, 0 },
		{ "{\"namespaces\": [{\"Presence\": []}]}", 0, 1, 1 },
		{ "{\"notNamespaces\": [{\"Presence\": []}]}", 1, 0, 0 },
		/* no identity: the namespace is "", which these match (as in ztunnel) */
		{ "{\"namespaces\": [{\"Exact\": \"\"}]}", 1, 0, 0 },
		{ "{\"namespaces\": [{\"Prefix\": \"\"}]}", 1, 1, 1 },
		{ "{\"namespaces\": [{\"Suffix\": \"\"}]}", 1, 1, 1 },
		{ "{\"principals\": [{\"Prefix\": \"cluster.local/\"}]}", 0, 1, 0 },
		{ "{\"principals\": [{\"Suffix\": \"/sa/api\"}]}", 0, 0, 1 },
		{ "{\"principals\": [{\"Presence\": []}]}", 0, 1, 1 },
		/* no identity: no principal entry matches, not even an empty prefix */
		{ "{\"principals\": [{\"Prefix\": \"\"}]}", 0, 1, 1 },
		{ "{\"notPrincipals\": [{\"Presence\": []}]}", 1, 0, 0 },
		{ "{\"notPrincipals\": [{\"Prefix\": \"td2/\"}]}", 1, 1, 0 },
	};
	run_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

Test(policy_match, cidr_edges_ipv4_ipv6_and_mapped)
{
	static const struct {
		const char *cidr, *src;
		bool in;
	} rows[] = {
		{ "10.0.0.2/31", "10.0.0.3:1", true },
		{ "10.0.0.2/31", "10.0.0.4:1", false },
		{ "10.0.0.2/31", "10.0.0.1:1", false },
		{ "10.1.2.3/20", "10.1.15.255:1", true },	/* host bits of the CIDR ignored */
		{ "10.1.2.3/20", "10.1.16.0:1", false },
		{ "0.0.0.0/0", "192.0.2.1:1", true },
		{ "0.0.0.0/0", "[2001:db8::1]:1", false },	/* families never mix */
		{ "::/0", "[2001:db8::1]:1", true },
		{ "::/0", "192.0.2.1:1", false },
		{ "fd00:ab80::/25", "[fd00:abff::1]:1", true },
		{ "fd00:ab80::/25", "[fd00:ab7f::1]:1", false },
		{ "2001:db8::1", "[2001:db8::1]:1", true },
		{ "2001:db8::1", "[2001:db8::2]:1", false },
		/* an IPv4-mapped source is its IPv4 address */
		{ "10.1.0.0/16", "[::ffff:10.1.200.1]:1", true },
		{ "10.1.0.0/16", "[::ffff:10.2.0.1]:1", false },
		/* a mapped CIDR is its IPv4 block */
		{ "::ffff:10.1.0.0/112", "10.1.0.9:1", true },
		{ "::ffff:10.1.0.0/112", "[::ffff:10.1.0.9]:1", true },
		{ "::ffff:10.1.0.0/112", "10.2.0.9:1", false },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char m[128];
		snprintf(m, sizeof(m), "{\"sourceIps\": [\"%s\"]}", rows[i].cidr);
		struct conn c = { rows[i].src, "10.0.1.1:80", NULL };
		cr_expect_eq(match1(m, c), rows[i].in, "%s contains %s", rows[i].cidr, rows[i].src);
		snprintf(m, sizeof(m), "{\"notSourceIps\": [\"%s\"]}", rows[i].cidr);
		cr_expect_eq(match1(m, c), !rows[i].in, "%s does not contain %s", rows[i].cidr,
			     rows[i].src);
	}
	/* the destination is canonicalized too */
	cr_expect(match1("{\"destinationIps\": [\"10.0.1.1\"]}",
			 (struct conn){ "10.1.0.1:1", "[::ffff:10.0.1.1]:80", NULL }));
	cr_expect(match1("{\"destinationPorts\": [80]}",
			 (struct conn){ "10.1.0.1:1", "[::ffff:10.0.1.1]:80", NULL }));
}

Test(policy_match, malformed_identity_counts_as_none)
{
	static const char *const bad[] = {
		"cluster.local/ns/default/sa/web",		/* no scheme */
		"spiffe://cluster.local/ns/default",		/* too short */
		"spiffe://cluster.local/ns/default/sa",		/* no account segment */
		"spiffe://cluster.local/ns/default/sa/web/x",	/* too long */
		"spiffe://cluster.local/namespace/default/sa/web",
		"spiffe://cluster.local/ns/default/serviceaccount/web",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conn c = { "10.1.0.1:1", "10.0.1.1:80", bad[i] };
		cr_expect(!match1("{\"principals\": [{\"Presence\": []}]}", c), "%s", bad[i]);
		cr_expect(match1("{\"notPrincipals\": [{\"Presence\": []}]}", c), "%s", bad[i]);
		cr_expect(!match1("{\"namespaces\": [{\"Exact\": \"default\"}]}", c), "%s", bad[i]);
		cr_expect(match1("{\"namespaces\": [{\"Exact\": \"\"}]}", c), "%s", bad[i]);
	}
	/* names compare whole, never as prefixes */
	const char *sa = "{\"serviceAccounts\": [{\"namespace\": \"default\", \"serviceAccount\": \"web\"}]}";
	cr_expect(!match1(sa, (struct conn){ "10.1.0.1:1", "10.0.1.1:80",
					     "spiffe://td/ns/defaultx/sa/web" }));
	cr_expect(!match1(sa, (struct conn){ "10.1.0.1:1", "10.0.1.1:80",
					     "spiffe://td/ns/default/sa/webx" }));
	cr_expect(!match1(sa, (struct conn){ "10.1.0.1:1", "10.0.1.1:80",
					     "spiffe://td/ns/defaul/sa/web" }));
	/* empty segments parse, as Identity::from_str allows them */
	struct conn c = { "10.1.0.1:1", "10.0.1.1:80", "spiffe://td/ns//sa/x" };
	cr_expect(match1("{\"principals\": [{\"Exact\": \"td/ns//sa/x\"}]}", c));
	/* and a whole namespace and account match */
	cr_expect(match1("{\"serviceAccounts\": [{\"namespace\": \"ns\", \"serviceAccount\": \"x\"}]}",
			 (struct conn){ "10.1.0.1:1", "10.0.1.1:80", "spiffe://td/ns/ns/sa/x" }));
}

/* ---- rules, clauses, matches ---- */

Test(policy_match, empty_rules_clauses_and_matches)
{
	/* ztunnel's rbac_empty_policy */
	cr_expect(!rules_match("[]", PLAIN), "no rules: never matches");
	cr_expect(rules_match("[[]]", PLAIN), "a rule without clauses matches");
	cr_expect(rules_match("[[[]]]", PLAIN), "an empty clause matches");
	cr_expect(!rules_match("[[[{}]]]", PLAIN), "an empty match never matches");
	cr_expect(!rules_match("[[[{}, {}]]]", TLS));
	/* an empty match is skipped, the clause's other matches still count */
	cr_expect(rules_match("[[[{}, {\"destinationPorts\": [8080]}]]]", TLS));
	/* an empty clause inside a rule does not stop the other clauses */
	cr_expect(!rules_match("[[[], [{\"destinationPorts\": [1]}]]]", TLS));
	/* a policy with no rules still counts as an Allow policy: denies all */
	load("", "", POL("none", "ns1", "Namespace", "Allow", "[]"));
	expect("a", TLS, POLICY_DENY, NULL);
	cr_assert_eq(check("a", TLS).why, POLICY_WHY_NO_ALLOW_MATCHED);
}

Test(policy_match, rule_or_clause_and_match_or)
{
	/* ztunnel's rbac_nesting: (ns a OR ns b) AND port 80 */
	const char *nested = "[[[{\"namespaces\": [{\"Exact\": \"a\"}]}, "
			     "{\"namespaces\": [{\"Exact\": \"b\"}]}], "
			     "[{\"destinationPorts\": [80]}]]]";
	cr_expect(rules_match(nested, (struct conn){ "10.1.0.1:1", "10.0.1.1:80",
						     "spiffe://td/ns/a/sa/x" }));
	cr_expect(rules_match(nested, (struct conn){ "10.1.0.1:1", "10.0.1.1:80",
						     "spiffe://td/ns/b/sa/x" }));
	cr_expect(!rules_match(nested, (struct conn){ "10.1.0.1:1", "10.0.1.1:80",
						      "spiffe://td/ns/bad/sa/x" }));
	cr_expect(!rules_match(nested, (struct conn){ "10.1.0.1:1", "10.0.1.1:12345",
						      "spiffe://td/ns/b/sa/x" }));
	/* ztunnel's rbac_multi_rule: ns a OR ns b as two rules */
	const char *multi = "[[[{\"namespaces\": [{\"Exact\": \"a\"}]}]], "
			    "[[{\"namespaces\": [{\"Exact\": \"b\"}]}]]]";
	cr_expect(rules_match(multi, (struct conn){ "10.1.0.1:1", "10.0.1.1:80",
						    "spiffe://td/ns/a/sa/x" }));
	cr_expect(rules_match(multi, (struct conn){ "10.1.0.1:1", "10.0.1.1:80",
						    "spiffe://td/ns/b/sa/x" }));
	cr_expect(!rules_match(multi, (struct conn){ "10.1.0.1:1", "10.0.1.1:80",
						     "spiffe://td/ns/c/sa/x" }));
	/* the docs' example: from bookinfo, or (from the gateway and to 9080) */
	const char *doc = "[[[{\"namespaces\": [{\"Exact\": \"bookinfo\"}]}]],"
			  " [[{\"principals\": [{\"Exact\": \"cluster.local/ns/istio-system/sa/gw\"}]}],"
			  "  [{\"destinationPorts\": [9080]}]]]";
	const char *gw = "spiffe://cluster.local/ns/istio-system/sa/gw";
	cr_expect(rules_match(doc, (struct conn){ "10.1.0.1:1", "10.0.1.1:1",
						  "spiffe://cluster.local/ns/bookinfo/sa/x" }));
	cr_expect(rules_match(doc, (struct conn){ "10.1.0.1:1", "10.0.1.1:9080", gw }));
	cr_expect(!rules_match(doc, (struct conn){ "10.1.0.1:1", "10.0.1.1:9081", gw }));
	cr_expect(!rules_match(doc, (struct conn){ "10.1.0.1:1", "10.0.1.1:9080", NULL }));
}
