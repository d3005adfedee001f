/*
 * The workload config: the good/bad corpus (tests/data/config, see its
 * README), the model built from examples/workloads.json, hostile input,
 * the error report, and `zring check`.
 *
 * ZRING_CONFIG_CORPUS names the corpus directory and ZRING_SRCDIR the
 * source tree (tests/unit/meson.build sets both).
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zring/check.h"
#include "zring/config.h"

/* ---- helpers ---- */

static const char *env_dir(const char *name)
{
	const char *d = getenv(name);
	cr_assert(d && *d, "%s is not set (run through meson test)", name);
	return d;
}

static char *path_join(const char *a, const char *b)
{
	char *p;
	cr_assert(asprintf(&p, "%s/%s", a, b) > 0);
	return p;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	char *buf = malloc((size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* Parse s; the caller frees errs. Returns what config_parse returned. */
static int parse(const char *s, struct config **out, struct config_errors *errs)
{
	return config_parse(s, strlen(s), "test.json", out, errs);
}

static struct config *parse_ok(const char *s)
{
	struct config *c;
	struct config_errors errs;
	int err = parse(s, &c, &errs);
	if (err) {
		config_errors_print(&errs, "test.json", stderr);
		cr_assert_fail("parse failed: %d", err);
	}
	config_errors_free(&errs);
	return c;
}

/* The one error of a bad input; fails unless there is exactly one. */
static struct config_error one_error(const char *s, size_t len, char *msg, size_t cap)
{
	struct config *c;
	struct config_errors errs;
	int err = config_parse(s, len, "t", &c, &errs);
	cr_assert_eq(err, -EINVAL);
	cr_assert_null(c);
	cr_assert_eq(errs.n, 1, "expected one error, got %zu", errs.n);
	struct config_error e = errs.v[0];
	snprintf(msg, cap, "%s", e.msg);
	e.msg = msg;
	e.path = NULL;
	config_errors_free(&errs);
	return e;
}

static struct config *load_example(void)
{
	char *p = path_join(env_dir("ZRING_SRCDIR"), "examples/workloads.json");
	struct config *c;
	struct config_errors errs;
	int err = config_load_file(p, &c, &errs);
	config_errors_print(&errs, p, stderr);
	cr_assert_eq(err, 0);
	config_errors_free(&errs);
	free(p);
	return c;
}

static const struct workload *find_workload(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nworkloads; i++)
		if (strcmp(c->workloads[i].name, name) == 0)
			return &c->workloads[i];
	cr_assert_fail("no workload %s", name);
	return NULL;
}

static const struct service *find_service(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nservices; i++)
		if (strcmp(c->services[i].name, name) == 0)
			return &c->services[i];
	cr_assert_fail("no service %s", name);
	return NULL;
}

static const char *ipstr(const struct ip *ip, char *buf)
{
	return config_ip_format(ip, buf, 64);
}

/* ---- the corpus ---- */

static bool has_ext(const char *name, const char *ext)
{
	size_t n = strlen(name), k = strlen(ext);
	return n > k && strcmp(name + n - k, ext) == 0;
}

/* A config file of the corpus: .json, .yaml or .yml. */
static bool is_json(const struct dirent *d)
{
	return has_ext(d->d_name, ".json") || has_ext(d->d_name, ".yaml") ||
	       has_ext(d->d_name, ".yml");
}

Test(config_corpus, good_files_load)
{
	char *dir = path_join(env_dir("ZRING_CONFIG_CORPUS"), "good");
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "no %s", dir);
	size_t files = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (!is_json(e))
			continue;
		char *p = path_join(dir, e->d_name);
		struct config *c;
		struct config_errors errs;
		int err = config_load_file(p, &c, &errs);
		if (err)
			config_errors_print(&errs, p, stderr);
		cr_expect_eq(err, 0, "%s: rejected (%d)", e->d_name, err);
		config_unref(c);
		config_errors_free(&errs);
		free(p);
		files++;
	}
	closedir(d);
	free(dir);
	cr_assert_geq(files, 5, "corpus too small");
}

struct expect {
	unsigned line, col;
	char path[256];
	char msg[256];	/* a substring of the message; may be empty */
};

/* Lines "LINE:COL PATH | MESSAGE-PART"; PATH "-" for none; # comments. */
static size_t read_expect(const char *path, struct expect *v, size_t cap)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	size_t n = 0;
	cr_assert_not_null(f, "missing %s", path);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		cr_assert_lt(n, cap);
		struct expect *x = &v[n++];
		int off = 0;
		cr_assert_eq(sscanf(line, "%u:%u %n", &x->line, &x->col, &off), 2, "bad line '%s'",
			     line);
		char *bar = strstr(line + off, " | ");
		size_t plen = bar ? (size_t)(bar - (line + off)) : strlen(line + off);
		snprintf(x->path, sizeof(x->path), "%.*s", (int)plen, line + off);
		if (strcmp(x->path, "-") == 0)
			x->path[0] = '\0';
		snprintf(x->msg, sizeof(x->msg), "%s", bar ? bar + 3 : "");
	}
	fclose(f);
	return n;
}

/* got[] (errors or warnings) against the .expect list, in order. */
static void check_expected(const char *name, const struct config_error *got, size_t n,
			   const struct expect *want, size_t nwant)
{
	cr_expect_eq(n, nwant, "%s: %zu reported, expected %zu", name, n, nwant);
	for (size_t i = 0; i < n && i < nwant; i++) {
		const struct config_error *e = &got[i];
		cr_expect(e->line == want[i].line && e->col == want[i].col,
			  "%s: entry %zu at %u:%u, expected %u:%u (%s)", name, i, e->line, e->col,
			  want[i].line, want[i].col, e->msg);
		cr_expect_str_eq(e->path, want[i].path, "%s: entry %zu path", name, i);
		cr_expect(strstr(e->msg, want[i].msg) != NULL, "%s: entry %zu: '%s' lacks '%s'",
			  name, i, e->msg, want[i].msg);
		if (i > 0)
			cr_expect(e->line > got[i - 1].line ||
				  (e->line == got[i - 1].line && e->col >= got[i - 1].col),
				  "%s: not in file order", name);
	}
}

/* dir/name's sidecar dir/STEM.expect, read into want[]. */
static size_t read_sidecar(const char *p, struct expect *want)
{
	char *ex;
	const char *dot = strrchr(p, '.');
	cr_assert(asprintf(&ex, "%.*s.expect", (int)(dot - p), p) > 0);
	size_t n = read_expect(ex, want, CONFIG_MAX_ERRORS);
	free(ex);
	return n;
}

static void check_bad_file(const char *dir, const char *name)
{
	char *p = path_join(dir, name);
	struct expect want[CONFIG_MAX_ERRORS];
	size_t nwant = read_sidecar(p, want);
	struct config *c;
	struct config_errors errs;

	int err = config_load_file(p, &c, &errs);
	cr_expect_eq(err, -EINVAL, "%s: accepted or failed oddly (%d)", name, err);
	cr_expect_null(c);
	if (errs.n != nwant)
		config_errors_print(&errs, name, stderr);
	check_expected(name, errs.v, errs.n, want, nwant);
	config_unref(c);
	config_errors_free(&errs);
	free(p);
}

/* A file that loads, with exactly the warnings of its .expect. */
static void check_warn_file(const char *dir, const char *name)
{
	char *p = path_join(dir, name);
	struct expect want[CONFIG_MAX_ERRORS];
	size_t nwant = read_sidecar(p, want);
	struct config *c;
	struct config_errors errs;

	int err = config_load_file(p, &c, &errs);
	if (err)
		config_errors_print(&errs, name, stderr);
	cr_expect_eq(err, 0, "%s: rejected (%d)", name, err);
	if (c) {
		if (c->nwarnings != nwant)
			config_warnings_print(c, NULL, stderr);
		check_expected(name, c->warnings, c->nwarnings, want, nwant);
		cr_expect_eq(c->warnings_total, c->nwarnings, "%s: warnings dropped", name);
	}
	config_unref(c);
	config_errors_free(&errs);
	free(p);
}

static size_t each_file(const char *sub, void (*fn)(const char *dir, const char *name))
{
	char *dir = path_join(env_dir("ZRING_CONFIG_CORPUS"), sub);
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "no %s", dir);
	size_t files = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (is_json(e)) {
			fn(dir, e->d_name);
			files++;
		}
	}
	closedir(d);
	free(dir);
	return files;
}

Test(config_corpus, bad_files_report_expected_errors)
{
	cr_assert_geq(each_file("bad", check_bad_file), 20, "corpus too small");
}

Test(config_corpus, warn_files_load_and_report_expected_warnings)
{
	cr_assert_geq(each_file("warn", check_warn_file), 4, "corpus too small");
}

Test(config_corpus, every_prefix_of_the_example_fails_cleanly)
{
	char *p = path_join(env_dir("ZRING_SRCDIR"), "examples/workloads.json");
	size_t len, whole;
	char *buf = read_all(p, &len);
	for (whole = len; whole > 0 && strchr(" \n", buf[whole - 1]); whole--)
		;
	for (size_t n = 0; n < whole; n++) {
		char *copy = malloc(n ? n : 1);	/* exact size: ASan sees any overread */
		memcpy(copy, buf, n);
		struct config *c;
		struct config_errors errs;
		int err = config_parse(copy, n, p, &c, &errs);
		cr_assert_eq(err, -EINVAL, "prefix of %zu bytes accepted", n);
		cr_assert_eq(errs.n, 1, "prefix of %zu bytes: %zu errors", n, errs.n);
		cr_assert_geq(errs.v[0].line, 1);
		config_errors_free(&errs);
		free(copy);
	}
	free(buf);
	free(p);
}

/* Random damage to the example: never a crash, a leak or a bad read. */
Test(config_corpus, mutated_example_never_crashes)
{
	char *p = path_join(env_dir("ZRING_SRCDIR"), "examples/workloads.json");
	static const char junk[] = "{}[]\":,0-9e.\\\x00\xff\xc3 tfn/";
	size_t len;
	char *orig = read_all(p, &len);
	unsigned seed = 12345;
	for (int round = 0; round < 3000; round++) {
		char *buf = malloc(len);
		memcpy(buf, orig, len);
		int edits = 1 + rand_r(&seed) % 4;
		for (int k = 0; k < edits; k++)
			buf[(size_t)rand_r(&seed) % len] = junk[rand_r(&seed) % (sizeof(junk) - 1)];
		struct config *c;
		struct config_errors errs;
		int err = config_parse(buf, len, "m", &c, &errs);
		cr_assert(err == 0 || err == -EINVAL, "round %d: %d", round, err);
		cr_assert(err ? errs.n > 0 && !c : errs.n == 0 && c);
		config_unref(c);
		config_errors_free(&errs);
		free(buf);
	}
	free(orig);
	free(p);
}

/* ---- the model ---- */

Test(config_model, example_workloads)
{
	struct config *c = load_example();
	char b[64];
	cr_assert_eq(c->nworkloads, 10);
	cr_assert_eq(atomic_load(&c->refs), 1);
	const struct workload *w = find_workload(c, "productpage-v1-6c5f9d8b7-x2k4q");
	cr_assert_str_eq(w->uid, "cluster1//v1/Pod/bookinfo/productpage-v1-6c5f9d8b7-x2k4q");
	cr_assert_str_eq(w->namespace, "bookinfo");
	cr_assert_str_eq(w->identity, "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage");
	cr_assert_eq(w->protocol, PROTO_HBONE);
	cr_assert_eq(w->status, STATUS_HEALTHY);
	cr_assert_eq(w->nips, 2);
	cr_assert_str_eq(ipstr(&w->ips[0], b), "10.0.1.10");
	cr_assert_eq(w->ips[1].family, AF_INET6);
	cr_assert_str_eq(ipstr(&w->ips[1], b), "fd00:10:1::a");
	cr_assert_str_eq(w->netns, "/var/run/netns/cni-productpage-v1");
	cr_assert_str_eq(w->locality.zone, "eu-west1-b");
	cr_assert_str_eq(w->cluster_id, "cluster1");
	cr_assert_eq(w->nservices, 1);
	cr_assert_str_eq(w->services[0].key, "bookinfo/productpage.bookinfo.svc.cluster.local");
	cr_assert_eq(w->services[0].nports, 1);
	cr_assert_eq(w->services[0].ports[0].port, 9080);
	cr_assert_eq(w->services[0].ports[0].target, 9080);

	w = find_workload(c, "postgres-0");
	cr_assert_eq(w->protocol, PROTO_TCP);
	cr_assert_null(w->netns);
	w = find_workload(c, "cart-1");
	cr_assert_eq(w->status, STATUS_UNHEALTHY);
	w = find_workload(c, "reviews-v2-7d79d5bd5d-9pgvw");
	cr_assert_eq(w->capacity, 2);
	w = find_workload(c, "ratings-v1-85c74b6cb4-2lqhn");
	cr_assert_eq(w->npolicies, 1);
	cr_assert_str_eq(w->authorization_policies[0], "bookinfo/ratings-viewer");
	w = find_workload(c, "billing-vm");
	cr_assert_str_eq(w->service_account, "default");
	cr_assert_str_eq(w->identity, "spiffe://cluster.local/ns/legacy/sa/default");
	cr_assert_str_eq(w->workload_type, "workloadentry");
	config_unref(c);
}

Test(config_model, example_services)
{
	struct config *c = load_example();
	char b[64];
	cr_assert_eq(c->nservices, 8);
	const struct service *s = find_service(c, "reviews");
	cr_assert_str_eq(s->key, "bookinfo/reviews.bookinfo.svc.cluster.local");
	cr_assert_eq(s->nvips, 2);
	cr_assert_str_eq(s->vips[0].network, "");
	cr_assert_str_eq(ipstr(&s->vips[0].ip, b), "10.96.10.3");
	cr_assert_str_eq(ipstr(&s->vips[1].ip, b), "fd00:10:96::a03");
	cr_assert_eq(s->nsans, 1);
	cr_assert_str_eq(s->subject_alt_names[0],
			 "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews");
	cr_assert_eq(s->nendpoints, 2);
	cr_assert_str_eq(c->workloads[s->endpoints[0]].name, "reviews-v1-5b5d6494f4-vd7dl");
	cr_assert_str_eq(c->workloads[s->endpoints[1]].name, "reviews-v2-7d79d5bd5d-9pgvw");
	cr_assert_null(s->load_balancer_mode);

	s = find_service(c, "cart");
	cr_assert_str_eq(s->load_balancer_mode, "Failover");
	cr_assert_not(s->allow_unhealthy);
	cr_assert_eq(s->nendpoints, 2, "unhealthy endpoints are still listed");

	s = find_service(c, "frontend");
	cr_assert_eq(s->nports, 2);
	cr_assert_eq(s->ports[0].port, 80);
	cr_assert_eq(s->ports[0].target, 8080);
	cr_assert_eq(s->ports[1].port, 443);
	cr_assert_eq(s->ports[1].target, 8443);
	config_unref(c);
}

Test(config_model, example_policies)
{
	struct config *c = load_example();
	char b[64];
	cr_assert_eq(c->npolicies, 5);
	const struct policy *p = &c->policies[0];
	cr_assert_str_eq(p->key, "istio-system/deny-quarantine");
	cr_assert_eq(p->scope, SCOPE_GLOBAL);
	cr_assert_eq(p->action, ACTION_DENY);
	cr_assert_eq(p->nrules, 1);
	cr_assert_eq(p->rules[0].nclauses, 1);
	const struct policy_clause *cl = &p->rules[0].clauses[0];
	cr_assert_eq(cl->nmatches, 2);
	cr_assert_eq(cl->matches[0].nnamespaces, 1);
	cr_assert_eq(cl->matches[0].namespaces[0].kind, STRMATCH_EXACT);
	cr_assert_str_eq(cl->matches[0].namespaces[0].value, "quarantine");
	cr_assert_eq(cl->matches[1].nsource_ips, 1);
	cr_assert_str_eq(ipstr(&cl->matches[1].source_ips[0].ip, b), "10.66.0.0");
	cr_assert_eq(cl->matches[1].source_ips[0].prefix, 16);

	p = &c->policies[2];
	cr_assert_eq(p->scope, SCOPE_WORKLOAD_SELECTOR);
	cr_assert_eq(p->rules[0].nclauses, 2);
	const struct policy_match *m = &p->rules[0].clauses[0].matches[0];
	cr_assert_eq(m->nservice_accounts, 1);
	cr_assert_str_eq(m->service_accounts[0].namespace, "bookinfo");
	cr_assert_str_eq(m->service_accounts[0].service_account, "bookinfo-reviews");
	m = &p->rules[0].clauses[1].matches[0];
	cr_assert_eq(m->ndestination_ports, 1);
	cr_assert_eq(m->destination_ports[0], 9080);
	cr_assert_eq(m->nnot_source_ips, 1);

	p = &c->policies[3];
	cr_assert(p->dry_run);
	m = &p->rules[0].clauses[0].matches[0];
	cr_assert_eq(m->not_principals[0].kind, STRMATCH_PREFIX);
	cr_assert_str_eq(m->not_principals[0].value, "cluster.local/ns/shop/");
	config_unref(c);
}

Test(config_model, defaults)
{
	struct config *c = parse_ok("{\"workloads\": [{\"uid\": \"u\", \"namespace\": \"ns\", "
				    "\"workloadIps\": [\"10.0.0.1\"]}]}");
	const struct workload *w = &c->workloads[0];
	cr_assert_str_eq(w->service_account, "default");
	cr_assert_str_eq(w->trust_domain, "cluster.local");
	cr_assert_str_eq(w->identity, "spiffe://cluster.local/ns/ns/sa/default");
	cr_assert_str_eq(w->workload_type, "pod");
	cr_assert_str_eq(w->name, "");
	cr_assert_str_eq(w->network, "");
	cr_assert_str_eq(w->node, "");
	cr_assert_str_eq(w->locality.region, "");
	cr_assert_eq(w->capacity, 1);
	cr_assert_eq(w->protocol, PROTO_TCP);
	cr_assert_eq(w->status, STATUS_HEALTHY);
	cr_assert_eq(w->nservices, 0);
	cr_assert_null(w->netns);
	cr_assert_eq(c->nservices, 0);
	cr_assert_eq(c->npolicies, 0);
	cr_assert_str_eq(c->source, "test.json");
	config_unref(c);
}

Test(config_model, empty_identity_fields_take_defaults_and_trust_domain_counts)
{
	struct config *c = parse_ok(
		"{\"workloads\": [{\"uid\": \"a\", \"namespace\": \"ns\", \"workloadIps\": [], "
		"\"serviceAccount\": \"\", \"trustDomain\": \"\"}, "
		"{\"uid\": \"b\", \"namespace\": \"ns2\", \"workloadIps\": [], "
		"\"serviceAccount\": \"api\", \"trustDomain\": \"mesh.example.org\"}]}");
	cr_assert_str_eq(c->workloads[0].identity, "spiffe://cluster.local/ns/ns/sa/default");
	cr_assert_str_eq(c->workloads[1].identity, "spiffe://mesh.example.org/ns/ns2/sa/api");
	config_unref(c);
}

Test(config_model, mapped_addresses_become_ipv4_and_cidrs_are_masked)
{
	struct config *c = parse_ok(
		"{\"workloads\": [{\"uid\": \"a\", \"namespace\": \"ns\", "
		"\"workloadIps\": [\"::ffff:10.1.2.3\"]}], \"policies\": [{\"name\": \"p\", "
		"\"namespace\": \"ns\", \"scope\": \"Global\", \"action\": \"Allow\", \"rules\": "
		"[[[{\"sourceIps\": [\"10.1.2.3/8\", \"10.9.9.9\", \"fd00::1/16\", "
		"\"::ffff:10.0.0.0/104\"]}]]]}]}");
	char b[64];
	cr_assert_eq(c->workloads[0].ips[0].family, AF_INET);
	cr_assert_str_eq(ipstr(&c->workloads[0].ips[0], b), "10.1.2.3");
	const struct policy_match *m = &c->policies[0].rules[0].clauses[0].matches[0];
	cr_assert_str_eq(ipstr(&m->source_ips[0].ip, b), "10.0.0.0");
	cr_assert_eq(m->source_ips[0].prefix, 8);
	cr_assert_eq(m->source_ips[1].prefix, 32);
	cr_assert_str_eq(ipstr(&m->source_ips[2].ip, b), "fd00::");
	cr_assert_eq(m->source_ips[3].ip.family, AF_INET);
	cr_assert_eq(m->source_ips[3].prefix, 8);
	config_unref(c);
}

Test(config_model, vip_networks_and_endpoint_order)
{
	struct config *c = parse_ok(
		"{\"workloads\": ["
		"{\"uid\": \"a\", \"namespace\": \"ns\", \"workloadIps\": [\"10.0.0.1\"], "
		" \"services\": {\"ns/s\": {\"80\": 8080}}},"
		"{\"uid\": \"b\", \"namespace\": \"ns\", \"workloadIps\": [\"10.0.0.2\"]},"
		"{\"uid\": \"c\", \"namespace\": \"ns\", \"workloadIps\": [\"10.0.0.3\"], "
		" \"services\": {\"ns/s\": {}}}],"
		"\"services\": [{\"name\": \"s\", \"namespace\": \"ns\", \"hostname\": \"s\", "
		"\"vips\": [\"net1/10.96.0.1\", \"/10.96.0.2\", \"10.96.0.3\"], "
		"\"ports\": {\"80\": 0}}]}");
	const struct service *s = &c->services[0];
	cr_assert_str_eq(s->vips[0].network, "net1");
	cr_assert_str_eq(s->vips[1].network, "");
	cr_assert_str_eq(s->vips[2].network, "");
	cr_assert_eq(s->ports[0].target, 0);
	cr_assert_eq(s->nendpoints, 2);
	cr_assert_eq(s->endpoints[0], 0);
	cr_assert_eq(s->endpoints[1], 2);
	config_unref(c);
}

Test(config_model, a_scaled_to_zero_service_and_missing_references_load)
{
	/* A Deployment scaled to zero leaves its Service behind; a workload's
	 * Service or policy may not have arrived yet. Such a file loads (it
	 * used to be refused, and with it every later reload). */
	struct config *c = parse_ok(
		"{\"workloads\": [{\"uid\": \"a\", \"namespace\": \"ns\", \"serviceAccount\": \"a\", "
		"\"workloadIps\": [\"10.0.0.1\"], \"services\": {\"ns/web\": {}, \"ns/later\": {}}, "
		"\"authorizationPolicies\": [\"ns/later\"]}],"
		"\"services\": [{\"name\": \"web\", \"namespace\": \"ns\", \"hostname\": \"web\", "
		"\"vips\": [\"/10.96.0.1\"], \"ports\": {\"80\": 8080}}, "
		"{\"name\": \"idle\", \"namespace\": \"ns\", \"hostname\": \"idle\", "
		"\"vips\": [\"/10.96.0.2\"], \"ports\": {\"80\": 8080}}]}");
	cr_assert_eq(c->nservices, 2);
	cr_assert_eq(c->services[0].nendpoints, 1);
	cr_assert_eq(c->services[1].nendpoints, 0);
	config_unref(c);
}

Test(config_model, names_of_enums)
{
	cr_assert_str_eq(config_protocol_name(PROTO_HBONE), "HBONE");
	cr_assert_str_eq(config_protocol_name(PROTO_TCP), "TCP");
	cr_assert_str_eq(config_status_name(STATUS_UNHEALTHY), "Unhealthy");
	cr_assert_str_eq(config_scope_name(SCOPE_WORKLOAD_SELECTOR), "WorkloadSelector");
	cr_assert_str_eq(config_action_name(ACTION_DENY), "Deny");
}

/* ---- hostile input ---- */

Test(config_hostile, oversized_file_is_refused_before_reading)
{
	char tmpl[] = "/tmp/zring-config-XXXXXX";
	int fd = mkstemp(tmpl);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 100 << 20), 0);	/* 100 MB, sparse */
	close(fd);
	struct config *c;
	struct config_errors errs;
	int err = config_load_file(tmpl, &c, &errs);
	unlink(tmpl);
	cr_assert_eq(err, -EFBIG);
	cr_assert_null(c);
	cr_assert_eq(errs.n, 1);
	cr_assert_eq(errs.v[0].line, 0);
	cr_assert(strstr(errs.v[0].msg, "limit"), "%s", errs.v[0].msg);
	config_errors_free(&errs);

	/* The buffer API checks the length before touching a byte. */
	err = config_parse("{}", (size_t)CONFIG_MAX_BYTES + 1, "big", &c, &errs);
	cr_assert_eq(err, -EINVAL);
	cr_assert_eq(errs.n, 1);
	config_errors_free(&errs);
}

Test(config_hostile, unreadable_files)
{
	struct config *c;
	struct config_errors errs;
	cr_assert_eq(config_load_file("/nonexistent/zring.json", &c, &errs), -ENOENT);
	cr_assert_eq(errs.n, 1);
	cr_assert(strstr(errs.v[0].msg, "cannot open"));
	config_errors_free(&errs);
	cr_assert_eq(config_load_file("/tmp", &c, &errs), -EISDIR);
	config_errors_free(&errs);
	/* Not a regular file: refused before anything is read (test_file.c
	 * covers FIFOs, sockets and symlinks to devices). */
	cr_assert_eq(config_load_file("/dev/null", &c, &errs), -EINVAL);
	cr_assert_eq(errs.n, 1);
	cr_assert_eq(errs.v[0].line, 0);
	cr_assert_str_eq(errs.v[0].msg, "is a character device, not a regular file");
	config_errors_free(&errs);
}

/* A FIFO with no writer: open(2) would wait for one forever. */
Test(config_hostile, fifo_refused_at_once, .timeout = 10)
{
	char dir[] = "/tmp/zr-config-XXXXXX", path[64];
	struct config *c;
	struct config_errors errs;
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/workloads.json", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_eq(config_load_file(path, &c, &errs), -EINVAL);
	cr_assert_null(c);
	cr_assert_eq(errs.n, 1);
	cr_assert_str_eq(errs.v[0].msg, "is a FIFO, not a regular file");
	config_errors_free(&errs);
	unlink(path);
	rmdir(dir);
}

/* `zring check -`: stdin may be a pipe, and is read to its end. */
Test(config_hostile, load_fd_reads_a_pipe)
{
	static const char doc[] = "{\"workloads\": [{\"uid\": \"a\", \"namespace\": \"ns\", "
				  "\"workloadIps\": [\"10.0.0.1\"]}]}";
	int p[2];
	struct config *c;
	struct config_errors errs;
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], doc, sizeof(doc) - 1), (ssize_t)sizeof(doc) - 1);
	close(p[1]);
	cr_assert_eq(config_load_fd(p[0], "-", &c, &errs), 0);
	cr_assert_eq(c->nworkloads, 1);
	cr_assert_str_eq(c->source, "-");
	config_unref(c);
	config_errors_free(&errs);
	close(p[0]);
}

static void deep(const char *open, const char *close, bool closed)
{
	size_t n = 10000, lo = strlen(open), lc = strlen(close);
	char *buf = malloc(n * (lo + lc) + 8), *p = buf;
	for (size_t i = 0; i < n; i++, p += lo)
		memcpy(p, open, lo);
	*p++ = '1';
	for (size_t i = 0; closed && i < n; i++, p += lc)
		memcpy(p, close, lc);
	char msg[128];
	struct config_error e = one_error(buf, (size_t)(p - buf), msg, sizeof(msg));
	cr_assert(strstr(e.msg, "nested deeper than 64"), "%s", e.msg);
	size_t depth = 0, at = 0;
	while (depth <= CONFIG_MAX_DEPTH)
		depth += strchr("[{", buf[at++]) != NULL;
	cr_assert_eq(e.line, 1);
	cr_assert_eq(e.col, at, "%s: at %u, expected %zu", open, e.col, at);
	free(buf);
}

Test(config_hostile, ten_thousand_levels_deep)
{
	deep("[", "]", true);
	deep("[", "]", false);
	deep("{\"a\":", "}", true);
	deep("{\"a\":[", "]}", false);
}

Test(config_hostile, huge_numbers)
{
	char msg[128];
	struct config_error e;
	const char *s = "{\"workloads\": [{\"uid\": \"u\", \"namespace\": \"n\", \"workloadIps\": [], "
			"\"capacity\": 1e400}]}";
	e = one_error(s, strlen(s), msg, sizeof(msg));
	cr_assert(strstr(e.msg, "out of range"), "%s", e.msg);
	s = "{\"policies\": [{\"name\": \"p\", \"namespace\": \"n\", \"scope\": "
			"\"Global\", \"action\": \"Deny\", \"rules\": [[[{\"destinationPorts\": "
			"[99999999999999999999]}]]]}]}";
	e = one_error(s, strlen(s), msg, sizeof(msg));
	cr_assert(strstr(e.msg, "out of range"), "%s", e.msg);
	s = "[-1e-400, 123456789012345678901234567890123456789012345678901234567890123456]";
	e = one_error(s, strlen(s), msg, sizeof(msg));
	cr_assert(strstr(e.msg, "number longer than"), "%s", e.msg);
}

Test(config_hostile, embedded_nul)
{
	char msg[128];
	static const char a[] = "{\"workloads\": [\0]}";
	struct config_error e = one_error(a, sizeof(a) - 1, msg, sizeof(msg));
	cr_assert_str_eq(e.msg, "NUL byte");
	cr_assert_eq(e.col, 16);
	static const char b[] = "{}\0";
	e = one_error(b, sizeof(b) - 1, msg, sizeof(msg));
	cr_assert_str_eq(e.msg, "NUL byte");
	static const char d[] = "{\"a\": \"x\\u0000y\"}";
	e = one_error(d, sizeof(d) - 1, msg, sizeof(msg));
	cr_assert(strstr(e.msg, "\\u0000"), "%s", e.msg);
}

Test(config_hostile, invalid_utf8)
{
	static const char *const bad[] = {
		"\"\x80\"", "\"\xc0\xaf\"", "\"\xc1\xbf\"", "\"\xe0\x80\xaf\"",
		"\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"",
		"\"\xe2\x82\"", "\"\xff\"", "\"\xf0\x9f\x98\"",
	};
	char buf[64], msg[128];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n = snprintf(buf, sizeof(buf), "{\"a\": %s}", bad[i]);
		struct config_error e = one_error(buf, (size_t)n, msg, sizeof(msg));
		cr_expect_str_eq(e.msg, "invalid UTF-8", "case %zu", i);
		cr_expect_eq(e.col, 8, "case %zu", i);
	}
	/* Valid multi-byte text (2, 3 and 4 bytes) passes the lexical check. */
	struct config *c;
	struct config_errors errs;
	const char *ok = "{\"workloads\": [{\"uid\": \"\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\", "
			 "\"namespace\": \"n\", \"workloadIps\": []}]}";
	cr_assert_eq(parse(ok, &c, &errs), 0);
	cr_assert_str_eq(c->workloads[0].uid, "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80");
	config_unref(c);
	config_errors_free(&errs);
}

Test(config_hostile, columns_count_characters_not_bytes)
{
	char msg[128];
	const char *s = "{\"\xc3\xa9\xc3\xa9\": 1, x}";
	struct config_error e = one_error(s, strlen(s), msg, sizeof(msg));
	cr_assert_eq(e.col, 11, "%s at %u", e.msg, e.col);
}

Test(config_hostile, never_reads_past_len)
{
	static const char *const docs[] = { "{}", "{\"workloads\": [", "{\"a\": \"abc", "{\"a\": 12",
					    "{\"a\": tru", "{\"a\": \"\\u12", "" };
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		size_t n = strlen(docs[i]);
		char *buf = malloc(n ? n : 1);
		memcpy(buf, docs[i], n);
		struct config *c;
		struct config_errors errs;
		int err = config_parse(buf, n, "t", &c, &errs);
		cr_expect_eq(err, i == 0 ? 0 : -EINVAL, "case %zu", i);
		config_unref(c);
		config_errors_free(&errs);
		free(buf);
	}
}

Test(config_hostile, too_many_values)
{
	size_t n = CONFIG_MAX_TOKENS + 10, len = 2 * n + 1;
	char *buf = malloc(len);
	buf[0] = '[';
	for (size_t i = 0; i < n; i++) {
		buf[1 + 2 * i] = '0';
		buf[2 + 2 * i] = i + 1 < n ? ',' : ']';
	}
	char msg[128];
	struct config_error e = one_error(buf, len, msg, sizeof(msg));
	cr_assert(strstr(e.msg, "more than"), "%s", e.msg);
	free(buf);
}

Test(config_hostile, vip_port_pairs_are_capped)
{
	/* 1001 VIPs x 1000 ports: more than CONFIG_MAX_VIP_PORTS pairs. */
	size_t cap = 64 << 10, o = 0;
	char *buf = malloc(cap);
	o += (size_t)snprintf(buf + o, cap - o,
			      "{\"workloads\": [{\"uid\": \"u\", \"namespace\": \"n\", "
			      "\"workloadIps\": [], \"services\": {\"n/s\": {}}}], \"services\": "
			      "[{\"name\": \"s\", \"namespace\": \"n\", \"hostname\": \"s\", "
			      "\"vips\": [");
	for (int i = 0; i < 1001; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s\"/10.96.%d.%d\"", i ? "," : "",
				      i / 250, i % 250 + 1);
	o += (size_t)snprintf(buf + o, cap - o, "], \"ports\": {");
	for (int i = 0; i < 1000; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s\"%d\": 80", i ? "," : "", i + 1);
	o += (size_t)snprintf(buf + o, cap - o, "}}]}");
	cr_assert_lt(o, cap);
	char msg[128];
	struct config_error e = one_error(buf, o, msg, sizeof(msg));
	cr_assert(strstr(e.msg, "VIP:port pairs"), "%s", e.msg);
	free(buf);
}

/* ---- the error report ---- */

Test(config_errors, capped_and_counted)
{
	size_t cap = 32 << 10, o = 0;
	char *buf = malloc(cap);
	o += (size_t)snprintf(buf + o, cap - o, "{\"workloads\": [{\"uid\": \"u\", \"namespace\": "
			      "\"n\", \"workloadIps\": [");
	for (int i = 0; i < 300; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s\"bad%d\"", i ? "," : "", i);
	o += (size_t)snprintf(buf + o, cap - o, "]}]}");
	struct config *c;
	struct config_errors errs;
	cr_assert_eq(config_parse(buf, o, "t", &c, &errs), -EINVAL);
	cr_assert_eq(errs.n, CONFIG_MAX_ERRORS);
	cr_assert_eq(errs.dropped, 300 - CONFIG_MAX_ERRORS);
	cr_assert_str_eq(errs.v[0].path, "workloads[0].workloadIps[0]");
	cr_assert_str_eq(errs.v[99].path, "workloads[0].workloadIps[99]");
	for (size_t i = 0; i < errs.n; i++)
		cr_assert_eq(errs.v[i].line, 1);

	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	config_errors_print(&errs, "t.json", f);
	fclose(f);
	cr_assert(strstr(out, "t.json:1:63: workloads[0].workloadIps[0]: invalid IP address "
			      "\"bad0\"\n"), "%s", out);
	cr_assert(strstr(out, "t.json: 200 more errors not shown\n"));
	free(out);
	config_errors_free(&errs);
	cr_assert_eq(errs.n, 0);
	cr_assert_null(errs.v);
	free(buf);
}

Test(config_errors, print_without_position_or_path)
{
	struct config *c;
	struct config_errors errs;
	config_load_file("/nonexistent/x.json", &c, &errs);
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	config_errors_print(&errs, "x.json", f);
	fclose(f);
	cr_assert_str_eq(out, "x.json: cannot open: No such file or directory\n");
	free(out);
	config_errors_free(&errs);
	config_errors_free(NULL);
}

/* ---- references ---- */

Test(config_refs, ref_unref_and_empty)
{
	struct config *c = config_empty();
	cr_assert_not_null(c);
	cr_assert_eq(c->nworkloads + c->nservices + c->npolicies, 0);
	cr_assert_eq(config_ref(c), c);
	cr_assert_eq(atomic_load(&c->refs), 2);
	config_unref(c);
	config_unref(c);	/* freed here; LSan checks nothing leaks */
	config_unref(NULL);

	c = load_example();
	struct config *d = config_ref(c);
	config_unref(c);
	cr_assert_eq(d->nworkloads, 10, "still alive while referenced");
	config_unref(d);
}

/* ---- zring check ---- */

static int run_check(const char *path, bool quiet, char **out, char **err)
{
	size_t ol, el;
	FILE *o = open_memstream(out, &ol), *e = open_memstream(err, &el);
	int rc = check_run(path, quiet, o, e);
	fclose(o);
	fclose(e);
	return rc;
}

Test(check, valid_file_prints_a_summary)
{
	char *p = path_join(env_dir("ZRING_SRCDIR"), "examples/workloads.json");
	char *out, *err;
	cr_assert_eq(run_check(p, false, &out, &err), 0);
	cr_assert(strstr(err, "examples/workloads.json:159:5: workloads[9]: warning: no "
			      "serviceAccount: the identity is \"spiffe://cluster.local/ns/legacy/"
			      "sa/default\"\n"), "%s", err);
	cr_assert(strstr(out, ": valid\n"), "%s", out);
	cr_assert(strstr(out, "warnings    1 (valid; listed on stderr)\n"), "%s", out);
	cr_assert(strstr(out, "workloads   10: HBONE 8, TCP 2; 1 unhealthy; 14 addresses "
			      "(IPv4 10, IPv6 4)\n"), "%s", out);
	cr_assert(strstr(out, "services    8: 11 VIPs, 10 ports, 10 endpoints\n"), "%s", out);
	cr_assert(strstr(out, "policies    5: Allow 3, Deny 2; 1 dry run\n"), "%s", out);
	cr_assert(strstr(out, "namespaces  4\n"), "%s", out);
	free(out);
	free(err);
	cr_assert_eq(run_check(p, true, &out, &err), 0);
	cr_assert_str_eq(out, "");
	cr_assert_str_eq(err, "");
	free(out);
	free(err);
	free(p);
}

Test(check, invalid_file_prints_every_error)
{
	char *p = path_join(env_dir("ZRING_CONFIG_CORPUS"), "bad/duplicate-addresses.json");
	char *out, *err;
	cr_assert_eq(run_check(p, false, &out, &err), 1);
	cr_assert_str_eq(out, "");
	size_t lines = 0;
	for (const char *s = err; (s = strchr(s, '\n')); s++)
		lines++;
	cr_assert_eq(lines, 4, "%s", err);
	cr_assert(strstr(err, "duplicate-addresses.json:4:66: workloads[1].workloadIps[1]: "),
		  "%s", err);
	free(out);
	free(err);
	free(p);
}

Test(check, usage_errors_exit_2)
{
	char *none[] = { "check", NULL };
	char *two[] = { "check", "a", "b", NULL };
	char *bogus[] = { "check", "--bogus", "a", NULL };
	cr_assert_eq(check_main(1, none), 2);
	cr_assert_eq(check_main(3, two), 2);
	cr_assert_eq(check_main(3, bogus), 2);
	char *missing[] = { "check", "-q", "/nonexistent.json", NULL };
	cr_assert_eq(check_main(3, missing), 1);
}
