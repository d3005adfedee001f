/*
 * Authorization micro-benchmark: index build time and checks per second
 * with 10,000 policies and 10,000 workloads, parsed from JSON as users
 * write them.
 *
 *   typical     policies spread over 100 namespaces (1% Global, ~50%
 *               Namespace, ~49% WorkloadSelector, each listed by one
 *               workload): a destination sees ~150 of them
 *   worst case  all 10,000 apply to the destination (30% Global, 30% its
 *               namespace, 40% listed by it) and none matches, so every
 *               one is evaluated
 *
 * Each policy has two rules mixing principals, namespaces, CIDRs and
 * ports; a third of them Deny, 1% dry-run. Prints a table; not a test.
 */
#include <stdio.h>
#include <stdlib.h>

#include "policy_fixture.h"
#include "zring/policy.h"
#include "zring/strbuf.h"
#include "zring/util.h"

#define NPOLICIES 10000
#define NWORKLOADS 10000
#define NNS 100

enum { SC_GLOBAL, SC_NS, SC_SEL };

static int scope_of(int i, bool worst)
{
	int r = i % 100;
	if (worst)
		return r < 30 ? SC_GLOBAL : r < 60 ? SC_NS : SC_SEL;
	return r < 1 ? SC_GLOBAL : r < 50 ? SC_NS : SC_SEL;
}

/* Policy i's namespace, and the workload that lists it when it is a
 * WorkloadSelector one. Worst case: everything targets w0 in ns0. */
static int policy_ns(int i, bool worst)
{
	return worst ? 0 : (i / 100) % NNS;
}

static int listed_by(int i, bool worst)
{
	return worst ? 0 : (i * 7919) % NWORKLOADS;
}

static void add_policy(struct strbuf *b, int i, bool worst)
{
	static const char *const scopes[] = { "Global", "Namespace", "WorkloadSelector" };
	strbuf_printf(b, "%s{\"name\": \"p%d\", \"namespace\": \"ns%d\", \"scope\": \"%s\", "
		      "\"action\": \"%s\", \"dryRun\": %s, \"rules\": ["
		      "[[{\"principals\": [{\"Exact\": \"cluster.local/ns/ns%d/sa/sa%d\"}], "
		      "\"destinationPorts\": [%d, %d]}],"
		      " [{\"sourceIps\": [\"10.%d.0.0/16\", \"fd00:%x::/32\"]}]],"
		      "[[{\"namespaces\": [{\"Prefix\": \"team-%d\"}], \"notDestinationPorts\": [22]},"
		      " {\"serviceAccounts\": [{\"namespace\": \"ns%d\", \"serviceAccount\": \"sa%d\"}],"
		      " \"destinationIps\": [\"10.%d.%d.0/24\"]}]]]}",
		      i ? "," : "", i, policy_ns(i, worst), scopes[scope_of(i, worst)],
		      i % 3 == 0 ? "Deny" : "Allow", i % 100 == 99 ? "true" : "false",
		      i % NNS, i, 1000 + i % 5000, 9000 + i % 500, i % 250, i + 1, i,
		      i % NNS, i, 100 + i % 100, i % 250);
}

static char *make_config(bool worst)
{
	struct strbuf b;
	strbuf_init(&b);
	int **refs = calloc(NWORKLOADS, sizeof(*refs));
	int *nrefs = calloc(NWORKLOADS, sizeof(*nrefs));
	for (int i = 0; i < NPOLICIES; i++) {
		if (scope_of(i, worst) != SC_SEL)
			continue;
		int w = listed_by(i, worst);
		refs[w] = realloc(refs[w], (size_t)(nrefs[w] + 1) * sizeof(int));
		refs[w][nrefs[w]++] = i;
	}
	strbuf_puts(&b, "{\"workloads\": [");
	for (int w = 0; w < NWORKLOADS; w++) {
		strbuf_printf(&b, "%s{\"uid\": \"w%d\", \"namespace\": \"ns%d\", \"serviceAccount\": "
			      "\"sa%d\", \"workloadIps\": [\"10.%d.%d.%d\"], \"protocol\": \"HBONE\", "
			      "\"authorizationPolicies\": [", w ? "," : "", w, w % NNS, w,
			      64 + w / 65536, (w / 256) % 256, w % 256);
		for (int k = 0; k < nrefs[w]; k++)
			strbuf_printf(&b, "%s\"ns%d/p%d\"", k ? "," : "",
				      policy_ns(refs[w][k], worst), refs[w][k]);
		strbuf_puts(&b, "]}");
		free(refs[w]);
	}
	strbuf_puts(&b, "], \"policies\": [");
	for (int i = 0; i < NPOLICIES; i++)
		add_policy(&b, i, worst);
	strbuf_puts(&b, "]}");
	free(refs);
	free(nrefs);
	char *json = strbuf_take(&b, NULL);
	if (!json)
		abort();
	return json;
}

struct setup {
	struct config *cfg;
	struct policy_index *ix;
	double parse_ms, build_ms;
};

static void setup(bool worst, struct setup *s)
{
	char *json = make_config(worst);
	uint64_t t0 = now_ns();
	if (policy_fixture_parse(json, "bench", &s->cfg) < 0)
		exit(1);
	free(json);
	uint64_t t1 = now_ns();
	/* build a few times; report the best (the first also faults pages in) */
	double best = 1e18;
	for (int i = 0; i < 5; i++) {
		uint64_t b0 = now_ns();
		struct policy_index *ix;
		if (policy_index_new(s->cfg, &ix) < 0)
			exit(1);
		double ms = (double)(now_ns() - b0) / 1e6;
		best = ms < best ? ms : best;
		if (i < 4)
			policy_index_free(ix);
		else
			s->ix = ix;
	}
	s->parse_ms = (double)(t1 - t0) / 1e6;
	s->build_ms = best;
}

/* Checks per second of one connection to workload w: the best of five
 * 0.2 s windows (the machine may be busy with other work). */
static double rate(const struct setup *s, size_t w, const char *src, const char *dst,
		   const char *id, struct policy_result *last)
{
	struct policy_fixture_conn c;
	if (policy_fixture_conn_init(&c, src, dst, id) < 0)
		abort();
	const struct workload *wk = &s->cfg->workloads[w];
	double best = 0;
	for (int round = 0; round < 5; round++) {
		size_t iters = 0, batch = 16;
		uint64_t t0 = now_ns(), el;
		do {
			for (size_t i = 0; i < batch; i++)
				policy_check(s->ix, wk, &c.req, last);
			iters += batch;
			if (batch < (1u << 16))
				batch *= 2;
			el = now_ns() - t0;
		} while (el < 200000000ull);
		double r = (double)iters / ((double)el / 1e9);
		best = r > best ? r : best;
	}
	return best;
}

static void row(const char *name, const struct setup *s, size_t w, const char *src,
		const char *dst, const char *id)
{
	struct policy_result r;
	char why[POLICY_REASON_LEN];
	size_t n = policy_applicable(s->ix, &s->cfg->workloads[w], NULL, 0);
	double cps = rate(s, w, src, dst, id, &r);
	printf("| %s | %zu | %.3g | %.0f | %s |\n", name, n, cps, 1e9 / cps,
	       policy_reason(&r, why, sizeof(why)));
}

int main(void)
{
	struct setup typ, worst;
	setup(false, &typ);
	setup(true, &worst);
	const char *id = "spiffe://cluster.local/ns/client/sa/app";
	printf("| connection (%d policies, %d workloads) | policies applying | checks/s | "
	       "ns/check | verdict |\n|---|---:|---:|---:|---|\n", NPOLICIES, NWORKLOADS);
	row("typical, mTLS, no match", &typ, 4242, "10.250.0.1:40000", "10.64.16.146:8080", id);
	row("typical, matches a Deny", &typ, 4242, "10.0.0.5:40000", "10.64.16.146:1000",
	    "spiffe://cluster.local/ns/ns0/sa/sa0");
	row("typical, plaintext", &typ, 4242, "10.250.0.1:40000", "10.64.16.146:8080", NULL);
	row("worst case, mTLS, no match", &worst, 0, "10.250.0.1:40000", "10.64.0.0:8080", id);
	row("worst case, plaintext IPv6", &worst, 0, "[2001:db8::1]:40000", "[fd00::1]:8080",
	    NULL);
	row("worst case, the first Deny matches", &worst, 0, "10.0.0.5:40000",
	    "10.64.0.0:1000", "spiffe://cluster.local/ns/ns0/sa/sa0");
	printf("\n| config | parse | index build (best of 5) |\n|---|---:|---:|\n");
	printf("| typical | %.1f ms | %.2f ms |\n", typ.parse_ms, typ.build_ms);
	printf("| worst case | %.1f ms | %.2f ms |\n", worst.parse_ms, worst.build_ms);
	policy_index_free(typ.ix);
	policy_index_free(worst.ix);
	config_unref(typ.cfg);
	config_unref(worst.cfg);
	return 0;
}
