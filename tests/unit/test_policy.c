/*
 * L4 authorization, which policies apply and what they decide together:
 * scopes, evaluation order, Allow/Deny combinations, dry-run, reasons, the
 * example config, the snapshot's index, and the index against a
 * brute-force oracle on a large random config. test_policy_match.c has
 * what a single policy matches.
 *
 * Configs are written as users write them, in JSON, and go through the
 * real parser. Expected values come from ztunnel's own tests (src/rbac.rs,
 * src/state.rs) where it has one for the case.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_fixture.h"
#include "policy_helpers.h"
#include "zring/snapshot.h"
#include "zring/strbuf.h"

TestSuite(policy, .fini = policy_teardown);

/* ---- scopes ---- */

static void expect_applicable(const char *uid, const char *const *keys, size_t n)
{
	const struct policy *got[32];
	size_t k = policy_applicable(ix, wl(uid), got, 32);
	cr_assert_eq(k, n, "%s: %zu policies apply, expected %zu", uid, k, n);
	for (size_t i = 0; i < n; i++)
		cr_expect_str_eq(got[i]->key, keys[i], "%s: policy %zu", uid, i);
}

Test(policy, scopes_decide_which_policies_apply)
{
	load("\"ns1/sel\", \"ns2/other-sel\", \"ns2/ns2-allow\", \"ns1/ns1-deny\", \"ns1/sel\"",
	     "", POL("mesh-deny", "istio-system", "Global", "Deny", PORT(1111)) ","
	     POL("ns1-deny", "ns1", "Namespace", "Deny", PORT(2222)) ","
	     POL("ns2-allow", "ns2", "Namespace", "Allow", ANY) ","
	     POL("sel", "ns1", "WorkloadSelector", "Deny", PORT(3333)) ","
	     POL("other-sel", "ns2", "WorkloadSelector", "Allow", PORT(80)) ","
	     POL("nobody", "ns1", "WorkloadSelector", "Deny", ANY) ","
	     POL("mesh-allow", "ns3", "Global", "Allow", ANY));
	/* a: Global, its namespace's, and what it lists, whatever their
	 * namespace or scope; each once (ns1/sel is listed twice, ns1-deny
	 * both applies by namespace and is listed). Denies first, then
	 * Allows; within each, Global, namespace, own, each in file order. */
	static const char *const a[] = { "istio-system/mesh-deny", "ns1/ns1-deny", "ns1/sel",
					 "ns3/mesh-allow", "ns2/ns2-allow", "ns2/other-sel" };
	expect_applicable("a", a, 6);
	static const char *const b[] = { "istio-system/mesh-deny", "ns3/mesh-allow",
					 "ns2/ns2-allow" };
	expect_applicable("b", b, 3);
	/* a Global policy applies everywhere, even in its own namespace's absence */
	static const char *const c[] = { "istio-system/mesh-deny", "ns3/mesh-allow" };
	expect_applicable("c", c, 2);

	expect("a", (struct conn){ "10.1.0.1:1", "10.0.1.1:1111", NULL }, POLICY_DENY,
	       "istio-system/mesh-deny");
	expect("c", (struct conn){ "10.1.0.1:1", "10.0.3.1:1111", NULL }, POLICY_DENY,
	       "istio-system/mesh-deny");
	expect("a", (struct conn){ "10.1.0.1:1", "10.0.1.1:2222", NULL }, POLICY_DENY,
	       "ns1/ns1-deny");
	expect("b", (struct conn){ "10.1.0.1:1", "10.0.2.1:2222", NULL }, POLICY_ALLOW,
	       "ns3/mesh-allow");
	expect("a", (struct conn){ "10.1.0.1:1", "10.0.1.1:3333", NULL }, POLICY_DENY, "ns1/sel");
	expect("b", (struct conn){ "10.1.0.1:1", "10.0.2.1:3333", NULL }, POLICY_ALLOW,
	       "ns3/mesh-allow");
}

Test(policy, namespace_policy_applies_only_to_its_namespace)
{
	load("", "", POL("allow-web", "ns1", "Namespace", "Allow",
			 PRINCIPAL("cluster.local/ns/default/sa/web")) ","
	     POL("deny-9", "ns2", "Namespace", "Deny", PORT(9)));
	expect("a", TLS, POLICY_ALLOW, "ns1/allow-web");
	expect("a", ALT, POLICY_DENY, NULL);
	expect("a", PLAIN, POLICY_DENY, NULL);
	expect("b", ALT, POLICY_ALLOW, NULL);	/* ns1's Allow does not apply to b */
	expect("b", (struct conn){ "10.1.0.1:1", "10.0.2.1:9", NULL }, POLICY_DENY, "ns2/deny-9");
	expect("c", (struct conn){ "10.1.0.1:1", "10.0.3.1:9", NULL }, POLICY_ALLOW, NULL);
	cr_assert_eq(check("c", PLAIN).why, POLICY_WHY_NO_ALLOW_POLICY);
}

Test(policy, workload_selector_policy_applies_only_where_listed)
{
	load("\"ns1/only-a\"", "", POL("only-a", "ns1", "WorkloadSelector", "Deny", ANY));
	expect("a", TLS, POLICY_DENY, "ns1/only-a");
	expect("b", TLS, POLICY_ALLOW, NULL);
	/* b lists it now: it applies to b although b is in ns2 */
	load("", "\"ns1/only-a\"", POL("only-a", "ns1", "WorkloadSelector", "Deny", ANY));
	expect("a", TLS, POLICY_ALLOW, NULL);
	expect("b", TLS, POLICY_DENY, "ns1/only-a");
}

Test(policy, reference_to_a_policy_not_in_the_config)
{
	/* The file loads, with a warning (a policy not there yet)... */
	const char *json = "{\"workloads\": [{\"uid\": \"a\", \"namespace\": \"ns1\","
			   " \"serviceAccount\": \"a\", \"workloadIps\": [],"
			   " \"authorizationPolicies\": [\"ns1/ghost\"]}]}";
	struct config *c = NULL;
	struct config_errors errs;
	cr_assert_eq(config_parse(json, strlen(json), "t", &c, &errs), 0);
	cr_assert_eq(c->nwarnings, 1);
	cr_expect(strstr(c->warnings[0].msg, "\"ns1/ghost\" is not in the file"), "%s",
		  c->warnings[0].msg);
	config_unref(c);
	config_errors_free(&errs);
	/* ...and the index skips it, as ztunnel does, keeping the rest */
	load("\"ns1/real\", \"ns1/other\"", "",
	     POL("real", "ns1", "WorkloadSelector", "Deny", PORT(7)) ","
	     POL("other", "ns1", "WorkloadSelector", "Allow", ANY));
	policy_index_free(ix);
	struct workload *a = (struct workload *)wl("a");
	a->authorization_policies[1] = (char *)"ns1/ghost";
	cr_assert_eq(policy_index_new(cfg, &ix), 0);
	static const char *const keys[] = { "ns1/real" };
	expect_applicable("a", keys, 1);
	expect("a", (struct conn){ "10.1.0.1:1", "10.0.1.1:7", NULL }, POLICY_DENY, "ns1/real");
	expect("a", TLS, POLICY_ALLOW, NULL);
}

Test(policy, destination_outside_the_config_is_denied)
{
	load("", "", "");
	struct workload stranger = { .uid = "x", .namespace = "ns1" };
	struct policy_fixture_conn c;
	cr_assert_eq(policy_fixture_conn_init(&c, "10.1.0.1:1", "10.0.1.1:80", NULL), 0);
	struct policy_result r;
	policy_check(ix, &stranger, &c.req, &r);
	cr_assert_eq(r.verdict, POLICY_DENY);
	cr_assert_eq(r.why, POLICY_WHY_UNKNOWN_WORKLOAD);
	policy_check(ix, NULL, &c.req, &r);
	cr_assert_eq(r.verdict, POLICY_DENY);
	cr_assert_eq(policy_applicable(ix, &stranger, NULL, 0), 0);
}

/* ---- Allow and Deny together ---- */

Test(policy, no_policies_allow)
{
	load("", "", "");
	expect("a", PLAIN, POLICY_ALLOW, NULL);
	expect("a", TLS, POLICY_ALLOW, NULL);
	cr_assert_eq(check("a", TLS).why, POLICY_WHY_NO_ALLOW_POLICY);
	cr_assert_null(check("a", TLS).dry_run);
}

Test(policy, deny_wins_over_allow)
{
	load("", "", POL("allow-all", "ns1", "Namespace", "Allow", ANY) ","
	     POL("deny-web", "ns1", "Namespace", "Deny", PRINCIPAL("cluster.local/ns/default/sa/web")));
	expect("a", TLS, POLICY_DENY, "ns1/deny-web");
	expect("a", ALT, POLICY_ALLOW, "ns1/allow-all");
	expect("a", PLAIN, POLICY_ALLOW, "ns1/allow-all");
}

Test(policy, only_deny_policies_allow_the_rest)
{
	load("", "", POL("deny-9090", "ns1", "Namespace", "Deny", PORT(9090)));
	expect("a", TLS, POLICY_ALLOW, NULL);
	expect("a", ALT, POLICY_DENY, "ns1/deny-9090");
}

Test(policy, some_allow_must_match)
{
	load("", "", POL("allow-1", "ns1", "Namespace", "Allow", PORT(1)) ","
	     POL("allow-9090", "ns1", "Namespace", "Allow", PORT(9090)));
	expect("a", ALT, POLICY_ALLOW, "ns1/allow-9090");
	expect("a", TLS, POLICY_DENY, NULL);
	cr_assert_eq(check("a", TLS).why, POLICY_WHY_NO_ALLOW_MATCHED);
}

Test(policy, deny_policy_naming_plaintext_by_negation)
{
	/* "deny anything without a principal": the usual way to refuse
	 * plaintext. notPrincipals holds for a connection with no identity. */
	load("", "", POL("require-mtls", "ns1", "Namespace", "Deny",
			 "[[[{\"notPrincipals\": [{\"Presence\": []}]}]]]"));
	expect("a", PLAIN, POLICY_DENY, "ns1/require-mtls");
	expect("a", TLS, POLICY_ALLOW, NULL);
	/* and a positive identity match never holds without an identity */
	load("", "", POL("deny-web", "ns1", "Namespace", "Deny",
			 "[[[{\"serviceAccounts\": [{\"namespace\": \"default\","
			 " \"serviceAccount\": \"web\"}]}]]]"));
	expect("a", PLAIN, POLICY_ALLOW, NULL);
	expect("a", TLS, POLICY_DENY, "ns1/deny-web");
}

/* ---- dry run ---- */

static void expect_dry(const char *uid, struct conn c, enum policy_verdict v,
		       const char *dry, enum policy_verdict would)
{
	struct policy_result r = check(uid, c);
	cr_assert_eq(r.verdict, v, "verdict %s", policy_verdict_name(r.verdict));
	if (!dry) {
		cr_assert_null(r.dry_run, "dry-run %s", key_of(r.dry_run));
		return;
	}
	cr_assert(r.dry_run && strcmp(r.dry_run->key, dry) == 0, "dry-run %s, expected %s",
		  key_of(r.dry_run), dry);
	cr_assert_eq(r.dry_run_verdict, would);
}

Test(policy, dry_run_is_reported_never_enforced)
{
	load("", "", DRY("dry-deny", "ns1", "Namespace", "Deny", PORT(8080)));
	expect_dry("a", TLS, POLICY_ALLOW, "ns1/dry-deny", POLICY_DENY);
	expect_dry("a", ALT, POLICY_ALLOW, NULL, POLICY_ALLOW);

	/* dry-run Allows alone: not enforced, but they would deny what none matches */
	load("", "", DRY("dry-allow", "ns1", "Namespace", "Allow", PORT(8080)));
	expect_dry("a", TLS, POLICY_ALLOW, NULL, POLICY_ALLOW);
	expect_dry("a", ALT, POLICY_ALLOW, "ns1/dry-allow", POLICY_DENY);
	cr_assert_eq(check("a", ALT).why, POLICY_WHY_NO_ALLOW_POLICY);

	/* a real Allow that does not match, a dry-run Allow that does */
	load("", "", POL("allow-1", "ns1", "Namespace", "Allow", PORT(1)) ","
	     DRY("dry-allow", "ns1", "Namespace", "Allow", PORT(8080)));
	expect_dry("a", TLS, POLICY_DENY, "ns1/dry-allow", POLICY_ALLOW);
	expect_dry("a", ALT, POLICY_DENY, NULL, POLICY_DENY);
}

Test(policy, dry_run_next_to_real_policies)
{
	/* ztunnel's assert_rbac_logic_deny_allow, with its wildcard dry-runs */
	load("", "", DRY("wildcard-allow", "ns1", "Namespace", "Allow", ANY) ","
	     DRY("wildcard-deny", "ns1", "Namespace", "Deny", ANY) ","
	     POL("foo", "ns1", "Namespace", "Allow", PRINCIPAL("cluster.local/ns/default/sa/defaultacct")) ","
	     POL("deny", "ns1", "Namespace", "Deny", PRINCIPAL("cluster.local/ns/default/sa/denyacct")));
	struct conn c = { "192.168.1.1:1234", "10.0.1.1:8080", NULL };
	c.id = "spiffe://cluster.local/ns/default/sa/not-defaultacct";
	expect("b", c, POLICY_ALLOW, NULL);	/* ns2 has no policies */
	expect("a", c, POLICY_DENY, NULL);	/* NotAllowed */
	expect_dry("a", c, POLICY_DENY, NULL, POLICY_DENY);	/* dry-run deny matches too */
	c.id = "spiffe://cluster.local/ns/default/sa/defaultacct";
	expect("a", c, POLICY_ALLOW, "ns1/foo");
	expect_dry("a", c, POLICY_ALLOW, "ns1/wildcard-deny", POLICY_DENY);
	c.id = "spiffe://cluster.local/ns/default/sa/denyacct";
	expect("a", c, POLICY_DENY, "ns1/deny");
	expect_dry("a", c, POLICY_DENY, NULL, POLICY_DENY);
}

/* ---- reasons ---- */

Test(policy, reasons_name_the_policy)
{
	char buf[POLICY_REASON_LEN];
	load("", "", POL("deny-web", "ns1", "Namespace", "Deny", PRINCIPAL("cluster.local/ns/default/sa/web")) ","
	     POL("allow-9090", "ns1", "Namespace", "Allow", PORT(9090)) ","
	     DRY("dry", "ns1", "Namespace", "Allow", "[[[{\"sourceIps\": [\"10.0.0.0/8\"]}]]]"));
	struct policy_result r = check("a", TLS);
	cr_expect_str_eq(policy_reason(&r, buf, sizeof(buf)), "denied by policy ns1/deny-web");
	r = check("a", ALT);
	cr_expect_str_eq(policy_reason(&r, buf, sizeof(buf)), "allowed by policy ns1/allow-9090");
	r = check("a", PLAIN);
	cr_expect_str_eq(policy_reason(&r, buf, sizeof(buf)),
			 "no allow policy matched; dry-run policy ns1/dry would allow");
	load("", "", "");
	r = check("a", PLAIN);
	cr_expect_str_eq(policy_reason(&r, buf, sizeof(buf)), "allowed: no allow policy applies");
	char small[8];
	cr_expect_str_eq(policy_reason(&r, small, sizeof(small)), "allowed");
}

/* ---- the example config ---- */

static const char *ex_uid(const char *name)
{
	static char buf[128];
	snprintf(buf, sizeof(buf), "cluster1//v1/Pod/%s", name);
	return buf;
}

Test(policy, example_config_decisions)
{
	const char *dir = getenv("ZRING_SRCDIR");
	cr_assert(dir && *dir, "ZRING_SRCDIR is not set (run through meson test)");
	char path[512];
	snprintf(path, sizeof(path), "%s/examples/workloads.json", dir);
	struct config_errors errs;
	cr_assert_eq(config_load_file(path, &cfg, &errs), 0);
	config_errors_free(&errs);
	cr_assert_eq(policy_index_new(cfg, &ix), 0);
	const char *reviews = "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews";
	const char *gw = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway";
	const char *pp = ex_uid("bookinfo/productpage-v1-6c5f9d8b7-x2k4q");
	expect(pp, (struct conn){ "10.0.1.12:5000", "10.0.1.10:9080", reviews }, POLICY_ALLOW,
	       "bookinfo/bookinfo-internal");
	expect(pp, (struct conn){ "10.0.9.1:5000", "10.0.1.10:9080", gw }, POLICY_ALLOW,
	       "bookinfo/bookinfo-internal");
	expect(pp, (struct conn){ "10.0.9.1:5000", "10.0.1.10:15000", gw }, POLICY_DENY, NULL);
	expect(pp, (struct conn){ "10.0.9.1:5000", "[fd00:10:1::a]:9080",
				  "spiffe://cluster.local/ns/quarantine/sa/x" },
	       POLICY_DENY, "istio-system/deny-quarantine");
	expect(pp, (struct conn){ "10.66.0.7:5000", "10.0.1.10:9080", NULL }, POLICY_DENY,
	       "istio-system/deny-quarantine");
	expect(pp, (struct conn){ "10.0.1.11:5000", "10.0.1.10:9080", NULL }, POLICY_DENY, NULL);

	const char *ratings = ex_uid("bookinfo/ratings-v1-85c74b6cb4-2lqhn");
	expect(ratings, (struct conn){ "10.0.1.12:5000", "10.0.2.13:9080", reviews },
	       POLICY_ALLOW, "bookinfo/bookinfo-internal");
	expect(ratings, (struct conn){ "10.0.2.20:5000", "10.0.2.13:9080",
				       "spiffe://cluster.local/ns/shop/sa/frontend" },
	       POLICY_DENY, NULL);

	const char *cart = ex_uid("shop/cart-0");
	expect_dry(cart, (struct conn){ "10.0.1.12:5000", "10.0.1.21:7070", reviews },
		   POLICY_ALLOW, "shop/cart-only-from-shop", POLICY_DENY);
	expect_dry(cart, (struct conn){ "10.0.2.20:5000", "10.0.1.21:7070",
					"spiffe://cluster.local/ns/shop/sa/frontend" },
		   POLICY_ALLOW, NULL, POLICY_ALLOW);

	const char *pg = ex_uid("legacy/postgres-0");
	expect(pg, (struct conn){ "10.0.1.12:5000", "10.0.3.30:5432", NULL }, POLICY_ALLOW,
	       "legacy/no-debug-port");
	expect(pg, (struct conn){ "10.0.1.12:5000", "10.0.3.30:9999", NULL }, POLICY_DENY, NULL);
}

/* ---- the snapshot carries the index ---- */

Test(policy, snapshot_builds_the_index)
{
	load("", "", POL("deny-all", "ns1", "Namespace", "Deny", ANY));
	struct snapshot *s;
	cr_assert_eq(snapshot_new(config_ref(cfg), NULL, &s), 0);
	cr_assert_not_null(s->policies);
	struct policy_fixture_conn c;
	cr_assert_eq(policy_fixture_conn_init(&c, "10.1.0.1:1", "10.0.1.1:80", NULL), 0);
	struct policy_result r;
	policy_check(s->policies, &s->cfg->workloads[0], &c.req, &r);
	cr_assert_eq(r.verdict, POLICY_DENY);
	cr_assert_str_eq(r.decided_by->key, "ns1/deny-all");
	snapshot_unref(s);
}

/* ---- the index against a brute-force oracle ---- */

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
	return (x > y) - (x < y);
}

/* Which policies apply, straight from the definition. */
static size_t oracle(const struct workload *w, const struct policy **out)
{
	size_t n = 0;
	for (size_t i = 0; i < cfg->npolicies; i++) {
		const struct policy *p = &cfg->policies[i];
		bool in = p->scope == SCOPE_GLOBAL ||
			  (p->scope == SCOPE_NAMESPACE && strcmp(p->namespace, w->namespace) == 0);
		for (size_t k = 0; !in && k < w->npolicies; k++)
			in = strcmp(w->authorization_policies[k], p->key) == 0;
		if (in)
			out[n++] = p;
	}
	return n;
}

/* The verdict from the applicable set, for policies that match one port. */
static enum policy_verdict oracle_verdict(const struct policy *const *v, size_t n, int port)
{
	bool any_allow = false, allowed = false;
	for (size_t i = 0; i < n; i++) {
		bool m = v[i]->rules[0].clauses[0].matches[0].destination_ports[0] == port;
		if (v[i]->dry_run)
			continue;
		if (v[i]->action == ACTION_DENY && m)
			return POLICY_DENY;
		any_allow |= v[i]->action == ACTION_ALLOW;
		allowed |= v[i]->action == ACTION_ALLOW && m;
	}
	return !any_allow || allowed ? POLICY_ALLOW : POLICY_DENY;
}

/*
 * 40 namespaces, 600 workloads each listing up to 5 policies (duplicates
 * and policies that also apply by scope included), 1500 policies of every
 * scope, action and dry-run, policy pN matching port N+1 only.
 */
static char *big_config(void)
{
	enum { NS = 40, NW = 600, NP = 1500 };
	static const char *const scopes[] = { "Global", "Namespace", "WorkloadSelector" };
	struct strbuf b;
	unsigned seed = 12345;
	strbuf_init(&b);
	strbuf_puts(&b, "{\"workloads\": [");
	for (int w = 0; w < NW; w++) {
		strbuf_printf(&b, "%s{\"uid\": \"w%d\", \"namespace\": \"ns%d\", \"workloadIps\": "
			      "[\"10.%d.%d.1\"], \"authorizationPolicies\": [", w ? "," : "", w,
			      rand_r(&seed) % NS, w / 256, w % 256);
		int nrefs = rand_r(&seed) % 6;
		for (int k = 0; k < nrefs; k++) {
			int p = rand_r(&seed) % NP;
			strbuf_printf(&b, "%s\"ns%d/p%d\"", k ? "," : "", p % NS, p);
		}
		strbuf_puts(&b, "]}");
	}
	strbuf_puts(&b, "], \"policies\": [");
	for (int p = 0; p < NP; p++) {
		int r = rand_r(&seed);
		strbuf_printf(&b, "%s{\"name\": \"p%d\", \"namespace\": \"ns%d\", \"scope\": \"%s\","
			      " \"action\": \"%s\", \"dryRun\": %s, \"rules\": [[[{\"destinationPorts\":"
			      " [%d]}]]]}", p ? "," : "", p, p % NS, scopes[r % 50 == 0 ? 0 : 1 + r % 2],
			      r & 64 ? "Allow" : "Deny", r & 128 ? "true" : "false", p + 1);
	}
	strbuf_puts(&b, "]}");
	char *json = strbuf_take(&b, NULL);
	cr_assert_not_null(json);
	return json;
}

Test(policy, index_agrees_with_the_definition_on_a_large_config)
{
	char *json = big_config();
	cfg = parse_ok(json);
	free(json);
	cr_assert_eq(policy_index_new(cfg, &ix), 0);
	const struct policy **want = calloc(cfg->npolicies, sizeof(*want));
	const struct policy **got = calloc(cfg->npolicies, sizeof(*got));
	size_t checked = 0, denied = 0;
	for (size_t w = 0; w < cfg->nworkloads; w++) {
		const struct workload *wk = &cfg->workloads[w];
		size_t n = oracle(wk, want);
		cr_assert_eq(policy_applicable(ix, wk, got, cfg->npolicies), n, "w%zu", w);
		/* each section in file order within a scope group; compare as sets */
		qsort(got, n, sizeof(*got), cmp_ptr);
		cr_assert_eq(memcmp(got, want, n * sizeof(*got)), 0, "w%zu", w);
		/* the verdict for a port each applicable policy names, and one none does */
		for (size_t i = 0; i <= n; i++) {
			int port = i < n ? want[i]->rules[0].clauses[0].matches[0].destination_ports[0]
					 : 65000;
			char dst[32];
			snprintf(dst, sizeof(dst), "10.0.0.1:%d", port);
			struct policy_result r = check(wk->uid, (struct conn){ "10.9.0.1:1", dst, NULL });
			cr_assert_eq(r.verdict, oracle_verdict(want, n, port), "w%zu port %d", w, port);
			checked++;
			denied += r.verdict == POLICY_DENY;
		}
	}
	/* the config exercises both outcomes */
	cr_assert(denied > 100 && denied < checked - 100, "%zu of %zu denied", denied, checked);
	free(want);
	free(got);
}
