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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zring/policy.h"
#include "zring/util.h"

#define NPOLICIES 10000
#define NWORKLOADS 10000
#define NNS 100

struct sbuf {
	char *p;
	size_t n, cap;
};

__attribute__((format(printf, 2, 3))) static void sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (n < 0)
			abort();
		if ((size_t)n < b->cap - b->n) {
			b->n += (size_t)n;
			return;
		}
		b->cap = b->cap * 2 + (size_t)n + 1;
		if (!(b->p = realloc(b->p, b->cap)))
			abort();
	}
}

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

static void add_policy(struct sbuf *b, int i, bool worst)
{
	static const char *const scopes[] = { "Global", "Namespace", "WorkloadSelector" };
	sb_add(b, "%s{\"name\": \"p%d\", \"namespace\": \"ns%d\", \"scope\": \"%s\", "
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
	struct sbuf b = { 0 };
	int **refs = calloc(NWORKLOADS, sizeof(*refs));
	int *nrefs = calloc(NWORKLOADS, sizeof(*nrefs));
	for (int i = 0; i < NPOLICIES; i++) {
		if (scope_of(i, worst) != SC_SEL)
			continue;
		int w = listed_by(i, worst);
		refs[w] = realloc(refs[w], (size_t)(nrefs[w] + 1) * sizeof(int));
		refs[w][nrefs[w]++] = i;
	}
	sb_add(&b, "{\"workloads\": [");
	for (int w = 0; w < NWORKLOADS; w++) {
		sb_add(&b, "%s{\"uid\": \"w%d\", \"namespace\": \"ns%d\", \"serviceAccount\": "
		       "\"sa%d\", \"workloadIps\": [\"10.%d.%d.%d\"], \"protocol\": \"HBONE\", "
		       "\"authorizationPolicies\": [", w ? "," : "", w, w % NNS, w,
		       64 + w / 65536, (w / 256) % 256, w % 256);
		for (int k = 0; k < nrefs[w]; k++)
			sb_add(&b, "%s\"ns%d/p%d\"", k ? "," : "", policy_ns(refs[w][k], worst),
			       refs[w][k]);
		sb_add(&b, "]}");
		free(refs[w]);
	}
	sb_add(&b, "], \"policies\": [");
	for (int i = 0; i < NPOLICIES; i++)
		add_policy(&b, i, worst);
	sb_add(&b, "]}");
	free(refs);
	free(nrefs);
	return b.p;
}

struct setup {
	struct config *cfg;
	struct policy_index *ix;
	double parse_ms, build_ms;
};

static void setup(bool worst, struct setup *s)
{
	char *json = make_config(worst);
	struct config_errors errs;
	uint64_t t0 = now_ns();
	if (config_parse(json, strlen(json), "bench", &s->cfg, &errs) < 0) {
		config_errors_print(&errs, "bench", stderr);
		exit(1);
	}
	config_errors_free(&errs);
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
	union addr a_src, a_dst;
	addr_parse(src, &a_src);
	addr_parse(dst, &a_dst);
	struct policy_request req = { .src = &a_src, .dst = &a_dst, .src_identity = id };
	const struct workload *wk = &s->cfg->workloads[w];
	double best = 0;
	for (int round = 0; round < 5; round++) {
		size_t iters = 0, batch = 16;
		uint64_t t0 = now_ns(), el;
		do {
			for (size_t i = 0; i < batch; i++)
				policy_check(s->ix, wk, &req, last);
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
