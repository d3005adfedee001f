/*
 * Loading small configs and asserting verdicts, for the authorization unit
 * tests. See policy_helpers.h.
 */
#include "policy_helpers.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_fixture.h"

struct config *cfg;
struct policy_index *ix;

const struct conn PLAIN = { "10.1.0.1:1234", "10.0.1.1:8080", NULL };
const struct conn TLS = { "10.1.0.1:1234", "10.0.1.1:8080",
			  "spiffe://cluster.local/ns/default/sa/web" };
const struct conn ALT = { "[fd00:2::3]:1234", "[fd00::1:1]:9090",
			  "spiffe://td2/ns/other/sa/api" };

void policy_teardown(void)
{
	policy_index_free(ix);
	config_unref(cfg);
	ix = NULL;
	cfg = NULL;
}

struct config *parse_ok(const char *json)
{
	struct config *c;
	int err = policy_fixture_parse(json, "test.json", &c);
	cr_assert_eq(err, 0, "parse failed (%d): %s", err, json);
	return c;
}

void load(const char *a_refs, const char *b_refs, const char *policies)
{
	char *json;
	cr_assert(asprintf(&json,
		"{\"workloads\": ["
		"{\"uid\": \"a\", \"namespace\": \"ns1\", \"serviceAccount\": \"sa1\","
		" \"workloadIps\": [\"10.0.1.1\", \"fd00::1:1\"], \"authorizationPolicies\": [%s]},"
		"{\"uid\": \"b\", \"namespace\": \"ns2\", \"workloadIps\": [\"10.0.2.1\"],"
		" \"authorizationPolicies\": [%s]},"
		"{\"uid\": \"c\", \"namespace\": \"ns3\", \"workloadIps\": [\"10.0.3.1\"]}"
		"], \"policies\": [%s]}", a_refs, b_refs, policies) > 0);
	policy_teardown();
	cfg = parse_ok(json);
	free(json);
	cr_assert_eq(policy_index_new(cfg, &ix), 0);
}

const struct workload *wl(const char *uid)
{
	for (size_t i = 0; i < cfg->nworkloads; i++)
		if (strcmp(cfg->workloads[i].uid, uid) == 0)
			return &cfg->workloads[i];
	cr_assert_fail("no workload %s", uid);
	return NULL;
}

struct policy_result check(const char *uid, struct conn c)
{
	struct policy_fixture_conn fc;
	cr_assert_eq(policy_fixture_conn_init(&fc, c.src, c.dst, c.id), 0, "%s -> %s", c.src,
		     c.dst);
	struct policy_result r;
	policy_check(ix, wl(uid), &fc.req, &r);
	return r;
}

const char *key_of(const struct policy *p)
{
	return p ? p->key : "(none)";
}

void expect(const char *uid, struct conn c, enum policy_verdict v, const char *by)
{
	struct policy_result r = check(uid, c);
	cr_assert_eq(r.verdict, v, "%s from %s (%s): got %s by %s", uid, c.src,
		     c.id ? c.id : "no identity", policy_verdict_name(r.verdict),
		     key_of(r.decided_by));
	if (by)
		cr_assert(r.decided_by && strcmp(r.decided_by->key, by) == 0,
			  "decided by %s, expected %s", key_of(r.decided_by), by);
	else
		cr_assert_null(r.decided_by, "decided by %s", key_of(r.decided_by));
}
