/*
 * The admin endpoints without sockets: /config_dump (a loadable config:
 * parse -> dump -> parse gives the same snapshot, field by field), the
 * certificates part (expiry, no secrets), readiness, and the handlers of
 * /logging, /quitquitquit and /healthz/ready called through their routes.
 *
 * ZRING_CONFIG_CORPUS names tests/data/config, ZRING_SRCDIR the source tree.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zring/admin.h"
#include "zring/log.h"
#include "zring/util.h"

static char *path_join(const char *a, const char *b)
{
	char *p = malloc(strlen(a) + strlen(b) + 2);
	sprintf(p, "%s/%s", a, b);
	return p;
}

static const char *env_dir(const char *var)
{
	const char *d = getenv(var);
	cr_assert_not_null(d, "%s is not set (run through meson test)", var);
	return d;
}

static struct config *load(const char *path)
{
	struct config *c;
	struct config_errors errs;
	int err = config_load_file(path, &c, &errs);
	if (err)
		config_errors_print(&errs, path, stderr);
	config_errors_free(&errs);
	cr_assert_eq(err, 0, "%s does not load", path);
	return c;
}

static char *dump_config(const struct config *c)
{
	cJSON *j = config_to_json(c);
	cr_assert_not_null(j);
	char *s = cJSON_Print(j);
	cJSON_Delete(j);
	return s;
}

static struct config *parse_str(const char *s, const char *what)
{
	struct config *c;
	struct config_errors errs;
	int err = config_parse(s, strlen(s), what, &c, &errs);
	if (err)
		config_errors_print(&errs, what, stderr);
	config_errors_free(&errs);
	cr_assert_eq(err, 0, "the dump of %s does not load:\n%s", what, s);
	return c;
}

/* ---- structural equality of two snapshots ---- */

#define EQ_STR(a, b, what) cr_expect_str_eq((a) ? (a) : "(null)", (b) ? (b) : "(null)", "%s: %s", ctx, what)
#define EQ_NUM(a, b, what) cr_expect_eq((a), (b), "%s: %s", ctx, what)

static void eq_ip(const char *ctx, const struct ip *a, const struct ip *b)
{
	EQ_NUM(a->family, b->family, "ip family");
	cr_expect_eq(memcmp(a->bytes, b->bytes, 16), 0, "%s: ip bytes", ctx);
}

static void eq_ports(const char *ctx, const struct port_map *a, size_t na,
		     const struct port_map *b, size_t nb)
{
	EQ_NUM(na, nb, "port count");
	for (size_t i = 0; i < na && i < nb; i++) {
		EQ_NUM(a[i].port, b[i].port, "port");
		EQ_NUM(a[i].target, b[i].target, "target");
	}
}

static void eq_strs(const char *ctx, char *const *a, size_t na, char *const *b, size_t nb)
{
	EQ_NUM(na, nb, "list length");
	for (size_t i = 0; i < na && i < nb; i++)
		EQ_STR(a[i], b[i], "list entry");
}

static void eq_workload(const char *ctx, const struct workload *a, const struct workload *b)
{
	EQ_STR(a->uid, b->uid, "uid");
	EQ_STR(a->name, b->name, "name");
	EQ_STR(a->namespace, b->namespace, "namespace");
	EQ_STR(a->service_account, b->service_account, "serviceAccount");
	EQ_STR(a->trust_domain, b->trust_domain, "trustDomain");
	EQ_STR(a->node, b->node, "node");
	EQ_STR(a->network, b->network, "network");
	EQ_STR(a->canonical_name, b->canonical_name, "canonicalName");
	EQ_STR(a->canonical_revision, b->canonical_revision, "canonicalRevision");
	EQ_STR(a->workload_name, b->workload_name, "workloadName");
	EQ_STR(a->workload_type, b->workload_type, "workloadType");
	EQ_STR(a->cluster_id, b->cluster_id, "clusterId");
	EQ_STR(a->hostname, b->hostname, "hostname");
	EQ_STR(a->locality.region, b->locality.region, "locality.region");
	EQ_STR(a->locality.zone, b->locality.zone, "locality.zone");
	EQ_STR(a->locality.subzone, b->locality.subzone, "locality.subzone");
	EQ_STR(a->netns, b->netns, "zringNetns");
	EQ_STR(a->identity, b->identity, "identity");
	EQ_NUM(a->protocol, b->protocol, "protocol");
	EQ_NUM(a->status, b->status, "status");
	EQ_NUM(a->capacity, b->capacity, "capacity");
	EQ_NUM(a->nips, b->nips, "workloadIps");
	for (size_t i = 0; i < a->nips && i < b->nips; i++)
		eq_ip(ctx, &a->ips[i], &b->ips[i]);
	EQ_NUM(a->nservices, b->nservices, "services");
	for (size_t i = 0; i < a->nservices && i < b->nservices; i++) {
		EQ_STR(a->services[i].key, b->services[i].key, "services key");
		eq_ports(ctx, a->services[i].ports, a->services[i].nports, b->services[i].ports,
			 b->services[i].nports);
	}
	eq_strs(ctx, a->authorization_policies, a->npolicies, b->authorization_policies,
		b->npolicies);
}

static void eq_service(const char *ctx, const struct service *a, const struct service *b)
{
	EQ_STR(a->name, b->name, "name");
	EQ_STR(a->namespace, b->namespace, "namespace");
	EQ_STR(a->hostname, b->hostname, "hostname");
	EQ_NUM(a->nvips, b->nvips, "vips");
	for (size_t i = 0; i < a->nvips && i < b->nvips; i++) {
		EQ_STR(a->vips[i].network, b->vips[i].network, "vip network");
		eq_ip(ctx, &a->vips[i].ip, &b->vips[i].ip);
	}
	eq_ports(ctx, a->ports, a->nports, b->ports, b->nports);
	eq_strs(ctx, a->subject_alt_names, a->nsans, b->subject_alt_names, b->nsans);
	EQ_STR(a->load_balancer_mode, b->load_balancer_mode, "loadBalancer.mode");
	EQ_NUM(a->allow_unhealthy, b->allow_unhealthy, "loadBalancer.healthPolicy");
	EQ_NUM(a->nendpoints, b->nendpoints, "endpoints (derived)");
}

static void eq_strmatch(const char *ctx, const struct string_match *a, size_t na,
			const struct string_match *b, size_t nb)
{
	EQ_NUM(na, nb, "string matches");
	for (size_t i = 0; i < na && i < nb; i++) {
		EQ_NUM(a[i].kind, b[i].kind, "match kind");
		EQ_STR(a[i].value, b[i].value, "match value");
	}
}

static void eq_sas(const char *ctx, const struct sa_match *a, size_t na,
		   const struct sa_match *b, size_t nb)
{
	EQ_NUM(na, nb, "service account matches");
	for (size_t i = 0; i < na && i < nb; i++) {
		EQ_STR(a[i].namespace, b[i].namespace, "sa namespace");
		EQ_STR(a[i].service_account, b[i].service_account, "sa name");
	}
}

static void eq_cidrs(const char *ctx, const struct cidr *a, size_t na, const struct cidr *b,
		     size_t nb)
{
	EQ_NUM(na, nb, "cidrs");
	for (size_t i = 0; i < na && i < nb; i++) {
		eq_ip(ctx, &a[i].ip, &b[i].ip);
		EQ_NUM(a[i].prefix, b[i].prefix, "prefix");
	}
}

static void eq_u16s(const char *ctx, const uint16_t *a, size_t na, const uint16_t *b, size_t nb)
{
	EQ_NUM(na, nb, "ports");
	for (size_t i = 0; i < na && i < nb; i++)
		EQ_NUM(a[i], b[i], "port");
}

static void eq_match(const char *ctx, const struct policy_match *a, const struct policy_match *b)
{
	eq_strmatch(ctx, a->namespaces, a->nnamespaces, b->namespaces, b->nnamespaces);
	eq_strmatch(ctx, a->not_namespaces, a->nnot_namespaces, b->not_namespaces,
		    b->nnot_namespaces);
	eq_sas(ctx, a->service_accounts, a->nservice_accounts, b->service_accounts,
	       b->nservice_accounts);
	eq_sas(ctx, a->not_service_accounts, a->nnot_service_accounts, b->not_service_accounts,
	       b->nnot_service_accounts);
	eq_strmatch(ctx, a->principals, a->nprincipals, b->principals, b->nprincipals);
	eq_strmatch(ctx, a->not_principals, a->nnot_principals, b->not_principals,
		    b->nnot_principals);
	eq_cidrs(ctx, a->source_ips, a->nsource_ips, b->source_ips, b->nsource_ips);
	eq_cidrs(ctx, a->not_source_ips, a->nnot_source_ips, b->not_source_ips,
		 b->nnot_source_ips);
	eq_cidrs(ctx, a->destination_ips, a->ndestination_ips, b->destination_ips,
		 b->ndestination_ips);
	eq_cidrs(ctx, a->not_destination_ips, a->nnot_destination_ips, b->not_destination_ips,
		 b->nnot_destination_ips);
	eq_u16s(ctx, a->destination_ports, a->ndestination_ports, b->destination_ports,
		b->ndestination_ports);
	eq_u16s(ctx, a->not_destination_ports, a->nnot_destination_ports,
		b->not_destination_ports, b->nnot_destination_ports);
}

static void eq_policy(const char *ctx, const struct policy *a, const struct policy *b)
{
	EQ_STR(a->name, b->name, "name");
	EQ_STR(a->namespace, b->namespace, "namespace");
	EQ_NUM(a->scope, b->scope, "scope");
	EQ_NUM(a->action, b->action, "action");
	EQ_NUM(a->dry_run, b->dry_run, "dryRun");
	EQ_NUM(a->nrules, b->nrules, "rules");
	for (size_t r = 0; r < a->nrules && r < b->nrules; r++) {
		const struct policy_rule *ra = &a->rules[r], *rb = &b->rules[r];
		EQ_NUM(ra->nclauses, rb->nclauses, "clauses");
		for (size_t c = 0; c < ra->nclauses && c < rb->nclauses; c++) {
			EQ_NUM(ra->clauses[c].nmatches, rb->clauses[c].nmatches, "matches");
			for (size_t m = 0; m < ra->clauses[c].nmatches &&
					   m < rb->clauses[c].nmatches; m++)
				eq_match(ctx, &ra->clauses[c].matches[m], &rb->clauses[c].matches[m]);
		}
	}
}

static void eq_config(const char *ctx, const struct config *a, const struct config *b)
{
	cr_assert_eq(a->nworkloads, b->nworkloads, "%s: workloads", ctx);
	cr_assert_eq(a->nservices, b->nservices, "%s: services", ctx);
	cr_assert_eq(a->npolicies, b->npolicies, "%s: policies", ctx);
	for (size_t i = 0; i < a->nworkloads; i++)
		eq_workload(ctx, &a->workloads[i], &b->workloads[i]);
	for (size_t i = 0; i < a->nservices; i++)
		eq_service(ctx, &a->services[i], &b->services[i]);
	for (size_t i = 0; i < a->npolicies; i++)
		eq_policy(ctx, &a->policies[i], &b->policies[i]);
}

/* parse(file) and parse(dump(parse(file))) hold the same snapshot, and the
 * dump is a fixed point. */
static void round_trip(const char *path)
{
	struct config *a = load(path);
	char *text = dump_config(a);
	struct config *b = parse_str(text, path);
	eq_config(path, a, b);
	char *again = dump_config(b);
	cr_expect_str_eq(text, again, "%s: dumping the reloaded snapshot differs", path);
	free(again);
	free(text);
	config_unref(b);
	config_unref(a);
}

Test(config_dump, every_good_corpus_file_round_trips)
{
	char *dir = path_join(env_dir("ZRING_CONFIG_CORPUS"), "good");
	DIR *d = opendir(dir);
	size_t files = 0;
	cr_assert_not_null(d, "no %s", dir);
	for (struct dirent *e; (e = readdir(d));) {
		size_t n = strlen(e->d_name);
		if ((n < 6 || strcmp(e->d_name + n - 5, ".json") != 0) &&
		    (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0))
			continue;
		char *p = path_join(dir, e->d_name);
		round_trip(p);
		free(p);
		files++;
	}
	closedir(d);
	free(dir);
	cr_assert_geq(files, 5);
}

Test(config_dump, the_example_round_trips)
{
	char *p = path_join(env_dir("ZRING_SRCDIR"), "examples/workloads.json");
	round_trip(p);
	free(p);
}

Test(config_dump, uses_ztunnel_field_names)
{
	char *p = path_join(env_dir("ZRING_CONFIG_CORPUS"), "good/all-fields.json");
	struct config *c = load(p);
	char *s = dump_config(c);
	static const char *const want[] = {
		"\"workloadIps\":", "\"serviceAccount\":\t\"sa1\"", "\"trustDomain\":\t\"example.org\"",
		"\"canonicalRevision\":\t\"v3\"", "\"zringNetns\":\t\"/proc/1234/ns/net\"",
		"\"capacity\":\t4294967295", "\"vips\":", "\"net1/10.96.1.1\"", "\"/fd00:96::1\"",
		"\"subjectAltNames\":", "\"mode\":\t\"Strict\"", "\"healthPolicy\":\t\"AllowAll\"",
		"\"notPrincipals\":", "\"Presence\":\t[]", "\"192.168.1.7/32\"", "\"dryRun\":\ttrue",
		"\"authorizationPolicies\":", "\"scope\":\t\"WorkloadSelector\"",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_expect(strstr(s, want[i]), "dump lacks %s:\n%s", want[i], s);
	free(s);
	config_unref(c);
	free(p);
}

/* ---- the whole /config_dump document ---- */

/* A store with the trust bundle only (every identity refused). */
static struct certstore *fake_bundle(void)
{
	struct certstore *cs = calloc(1, sizeof(*cs));
	atomic_init(&cs->refs, 1);
	cs->dir = strdup("/etc/zring/certs");
	cs->rejected = 1;
	return cs;
}

/* One identity (its key included, to check it never shows). */
static struct certstore *fake_certs(uint64_t not_before, uint64_t not_after)
{
	struct certstore *cs = fake_bundle();
	cs->rejected = 0;
	cs->n = 1;
	cs->ids = calloc(1, sizeof(*cs->ids));
	cs->ids[0].id = strdup("spiffe://cluster.local/ns/default/sa/web");
	cs->ids[0].trust_domain = strdup("cluster.local");
	cs->ids[0].not_before_ms = not_before;
	cs->ids[0].not_after_ms = not_after;
	cs->ids[0].chain_pem = strdup("-----BEGIN CERTIFICATE-----\nMIIchain\n");
	cs->ids[0].key_pem = strdup("-----BEGIN PRIVATE KEY-----\nSECRETKEYBYTES\n");
	return cs;
}

static cJSON *dump_doc(const struct snapshot *s, char **text)
{
	struct strbuf sb;
	strbuf_init(&sb);
	cr_assert_eq(admin_config_dump(s, &sb), 0);
	cJSON *j = cJSON_Parse(sb.buf);
	cr_assert_not_null(j, "not JSON:\n%s", sb.buf);
	*text = strbuf_take(&sb, NULL);
	return j;
}

Test(config_dump, snapshot_and_certificates)
{
	char *p = path_join(env_dir("ZRING_SRCDIR"), "examples/workloads.json");
	struct config *c = load(p);
	struct snapshot *s;
	cr_assert_eq(snapshot_new(c, fake_certs(1700000000000ull, 1700086400000ull), &s), 0);
	s->version = 7;
	s->loaded_at_ms = 1700000000123ull;
	char *text;
	cJSON *j = dump_doc(s, &text);
	cr_assert_eq(cJSON_GetObjectItem(j, "version")->valuedouble, 7);
	cr_assert_str_eq(cJSON_GetObjectItem(j, "loadedAt")->valuestring, "2023-11-14T22:13:20.123Z");
	cr_assert_str_eq(cJSON_GetObjectItem(j, "source")->valuestring, p);
	cJSON *certs = cJSON_GetObjectItem(j, "certificates");
	cr_assert_str_eq(cJSON_GetObjectItem(certs, "trustBundle")->valuestring,
			 "/etc/zring/certs/root-cert.pem");
	cJSON *id = cJSON_GetArrayItem(cJSON_GetObjectItem(certs, "identities"), 0);
	cr_assert_str_eq(cJSON_GetObjectItem(id, "identity")->valuestring,
			 "spiffe://cluster.local/ns/default/sa/web");
	cr_assert_str_eq(cJSON_GetObjectItem(id, "notBefore")->valuestring, "2023-11-14T22:13:20Z");
	cr_assert_str_eq(cJSON_GetObjectItem(id, "notAfter")->valuestring, "2023-11-15T22:13:20Z");
	cr_assert_null(strstr(text, "SECRETKEYBYTES"), "a private key in the dump");
	cr_assert_null(strstr(text, "PRIVATE KEY"), "a private key in the dump");
	cr_assert_null(strstr(text, "MIIchain"), "certificate bytes are not needed in the dump");

	/* Its "config" member is itself a loadable workload file. */
	char *cfg_text = cJSON_Print(cJSON_GetObjectItem(j, "config"));
	struct config *again = parse_str(cfg_text, "config_dump.config");
	eq_config("config_dump.config", c, again);
	config_unref(again);
	free(cfg_text);
	cJSON_Delete(j);
	free(text);
	snapshot_unref(s);
	free(p);
}

Test(config_dump, warnings_with_their_position)
{
	static const char yaml[] =
		"workloads:\n"
		"- {uid: w, namespace: ns, serviceAccount: sa, workloadIps: [10.0.0.1]}\n"
		"services:\n"
		"- {name: idle, namespace: ns, hostname: idle, vips: [/10.96.0.1], ports: {80: 80}}\n";
	struct config *c = parse_str(yaml, "w.yaml");
	struct snapshot *s;
	cr_assert_eq(snapshot_new(c, NULL, &s), 0);
	char *text;
	cJSON *j = dump_doc(s, &text);
	cr_assert_eq(cJSON_GetObjectItem(j, "warningsTotal")->valuedouble, 1);
	cJSON *w = cJSON_GetObjectItem(j, "warnings");
	cr_assert_eq(cJSON_GetArraySize(w), 1);
	cJSON *w0 = cJSON_GetArrayItem(w, 0);
	cr_assert_eq(cJSON_GetObjectItem(w0, "line")->valuedouble, 4);
	cr_assert_eq(cJSON_GetObjectItem(w0, "column")->valuedouble, 3);
	cr_assert_str_eq(cJSON_GetObjectItem(w0, "path")->valuestring, "services[0]");
	cr_assert(strstr(cJSON_GetObjectItem(w0, "message")->valuestring,
			 "service \"ns/idle\" selects no workload"));
	cJSON_Delete(j);
	free(text);
	snapshot_unref(s);
}

Test(config_dump, without_config_file_or_certificates)
{
	struct snapshot *s;
	cr_assert_eq(snapshot_new(config_empty(), NULL, &s), 0);
	s->version = 1;
	char *text;
	cJSON *j = dump_doc(s, &text);
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "source")));
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "certificates")));
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "warnings")), 0);
	cr_assert_eq(cJSON_GetObjectItem(j, "warningsTotal")->valuedouble, 0);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "config"),
							    "workloads")), 0);
	cJSON_Delete(j);
	free(text);
	snapshot_unref(s);

	j = dump_doc(NULL, &text);
	cr_assert_eq(cJSON_GetObjectItem(j, "version")->valuedouble, 0, "nothing loaded yet");
	cJSON_Delete(j);
	free(text);
}

/* A config of n workloads (each with a service map and a policy name),
 * two services and a policy, as JSON text. */
static char *many_workloads(size_t n)
{
	struct strbuf b;
	strbuf_init(&b);
	strbuf_puts(&b, "{\"workloads\": [");
	for (size_t i = 0; i < n; i++)
		strbuf_printf(&b, "%s{\"uid\": \"c//Pod/ns/w%zu\", \"name\": \"w%zu\", "
			      "\"namespace\": \"ns\", \"serviceAccount\": \"sa\", "
			      "\"workloadIps\": [\"10.%zu.%zu.%zu\"], \"protocol\": \"HBONE\", "
			      "\"services\": {\"ns/web.ns.svc.cluster.local\": {\"80\": 8080}}}",
			      i ? ", " : "", i, i, i >> 16 & 255, i >> 8 & 255, i & 255);
	strbuf_puts(&b, "], \"services\": [{\"name\": \"web\", \"namespace\": \"ns\", "
		    "\"hostname\": \"web.ns.svc.cluster.local\", \"vips\": [\"/10.96.0.1\"], "
		    "\"ports\": {\"80\": 8080}}, {\"name\": \"db\", \"namespace\": \"ns\", "
		    "\"hostname\": \"db.ns.svc.cluster.local\", \"vips\": [\"/10.96.0.2\"], "
		    "\"ports\": {\"5432\": 5432}}], \"policies\": [{\"name\": \"p\", "
		    "\"namespace\": \"ns\", \"scope\": \"Namespace\", \"action\": \"Allow\", "
		    "\"rules\": [[[{\"namespaces\": [{\"Exact\": \"ns\"}]}]]]}]}");
	cr_assert_eq(b.err, 0);
	return strbuf_take(&b, NULL);
}

Test(config_dump, written_piece_by_piece)
{
	char *text = many_workloads(3000);
	struct config *c = parse_str(text, "many.json");
	free(text);
	struct snapshot *s;
	cr_assert_eq(snapshot_new(config_ref(c), NULL, &s), 0);
	s->version = 3;

	struct admin_dump *d;
	struct strbuf doc, piece;
	strbuf_init(&doc);
	strbuf_init(&piece);
	cr_assert_eq(admin_dump_new(snapshot_ref(s), &d), 0);
	size_t pieces = 0, biggest = 0;
	int more;
	do {
		strbuf_reset(&piece);
		more = admin_dump_next(d, &piece, 4096);
		cr_assert_geq(more, 0);
		cr_assert(piece.len > 0, "an empty piece");
		biggest = piece.len > biggest ? piece.len : biggest;
		strbuf_add(&doc, piece.buf, piece.len);
		pieces++;
	} while (more);
	admin_dump_free(d);
	cr_assert_eq(doc.err, 0);
	/* Bounded pieces: what was asked for, plus at most one item. */
	cr_assert_lt(biggest, 4096 + 2048, "a piece of %zu bytes", biggest);
	cr_assert_gt(pieces, doc.len / 8192, "%zu pieces for %zu bytes", pieces, doc.len);

	/* The pieces make one document: cJSON's own print of it, member for
	 * member; its "config" is config_to_json's, and loads again. */
	cJSON *j = cJSON_Parse(doc.buf);
	cr_assert_not_null(j, "not JSON: ...%s", doc.buf + (doc.len > 300 ? doc.len - 300 : 0));
	char *again = cJSON_Print(j);
	cr_assert(strlen(again) + 1 == doc.len && strncmp(again, doc.buf, doc.len - 1) == 0,
		  "not formatted as cJSON prints the whole document");
	free(again);
	cJSON *whole = config_to_json(c);
	cr_assert(cJSON_Compare(cJSON_GetObjectItem(j, "config"), whole, true),
		  "the pieces' config differs from config_to_json's");
	cJSON_Delete(whole);
	cr_assert_eq(cJSON_GetObjectItem(j, "version")->valuedouble, 3);

	/* admin_config_dump writes the same document at once. */
	struct strbuf at_once;
	strbuf_init(&at_once);
	cr_assert_eq(admin_config_dump(s, &at_once), 0);
	cr_assert_str_eq(at_once.buf, doc.buf);
	strbuf_deinit(&at_once);
	cJSON_Delete(j);
	strbuf_deinit(&doc);
	strbuf_deinit(&piece);
	snapshot_unref(s);
	config_unref(c);
}

Test(config_dump, rfc3339)
{
	char b[40];
	cr_assert_str_eq(admin_rfc3339(0, b, sizeof(b)), "1970-01-01T00:00:00Z");
	cr_assert_str_eq(admin_rfc3339(1700000000000ull, b, sizeof(b)), "2023-11-14T22:13:20Z");
	cr_assert_str_eq(admin_rfc3339(1700000000005ull, b, sizeof(b)),
			 "2023-11-14T22:13:20.005Z");
	cr_assert_str_eq(admin_rfc3339(4102444799000ull, b, sizeof(b)), "2099-12-31T23:59:59Z");
}

/* ---- readiness ---- */

static struct opts no_certs_opts, certs_opts = { .certs = "/etc/zring/certs" };

Test(readiness, each_reason)
{
	struct admin a = { .opts = &no_certs_opts };
	struct snapshot *s;
	cr_assert_eq(snapshot_new(config_empty(), NULL, &s), 0);
	cr_assert_str_eq(admin_not_ready(&a, s), "starting: listeners not up yet");
	a.workers_up = true;
	cr_assert_str_eq(admin_not_ready(&a, NULL), "starting: no config loaded yet");
	cr_assert_null(admin_not_ready(&a, s), "up, empty config, no --certs: ready");
	a.draining = true;
	cr_assert_str_eq(admin_not_ready(&a, s), "draining");
	snapshot_unref(s);
}

Test(readiness, certificates_when_certs_are_configured)
{
	struct admin a = { .opts = &certs_opts, .workers_up = true };
	uint64_t now = wall_ms();
	struct snapshot *none, *valid, *expired, *empty;
	cr_assert_eq(snapshot_new(config_empty(), NULL, &none), 0);
	cr_assert_eq(snapshot_new(config_empty(), fake_certs(now - 1000, now + 3600000), &valid), 0);
	cr_assert_eq(snapshot_new(config_empty(), fake_certs(now - 7200000, now - 3600000),
				  &expired), 0);
	cr_assert_eq(snapshot_new(config_empty(), fake_bundle(), &empty), 0);

	cr_assert_str_eq(admin_not_ready(&a, none), "no trust bundle loaded");
	cr_assert_str_eq(admin_not_ready(&a, empty), "no valid certificate identity loaded");
	cr_assert_str_eq(admin_not_ready(&a, expired), "no valid certificate identity loaded");
	cr_assert_null(admin_not_ready(&a, valid));
	snapshot_unref(none);
	snapshot_unref(valid);
	snapshot_unref(expired);
	snapshot_unref(empty);
}

/* ---- handlers, called through their route tables ---- */

struct call {
	int status;
	char body[16384];
	unsigned allow;
	const char *content_type;
};

static struct call call(const struct http_route *routes, struct admin *a, unsigned method,
			const char *path, const char *query)
{
	struct http_request req = { .method = method, .path = path, .query = query,
				    .http_minor = 1 };
	struct http_response resp;
	struct call out = { 0 };
	http_response_init(&resp);
	const struct http_route *rt = http_route_find(routes, path, method, &out.status,
						      &out.allow);
	if (rt) {
		rt->fn(a, &req, &resp);
		/* A body written as it is sent: write it all here. */
		while (resp.src.next && resp.src.next(resp.src.ctx, &resp.body) > 0)
			;
		out.status = resp.status;
		out.content_type = resp.content_type;
		snprintf(out.body, sizeof(out.body), "%s", resp.body.buf ? resp.body.buf : "");
	}
	http_response_deinit(&resp);
	return out;
}

static struct snapshot_slot slot;

static void with_slot(void)
{
	struct snapshot *s;
	slot_init(&slot);
	cr_assert_eq(snapshot_new(config_empty(), NULL, &s), 0);
	slot_publish(&slot, s);
	log_setup(LOG_INFO, LOG_TEXT);
}

static void drop_slot(void)
{
	slot_deinit(&slot);
}

TestSuite(admin_routes, .init = with_slot, .fini = drop_slot);

Test(admin_routes, logging_get_and_set)
{
	struct admin a = { .opts = &no_certs_opts, .slot = &slot };
	struct call c = call(admin_routes, &a, HTTP_M_GET, "/logging", "");
	cr_assert_eq(c.status, 200);
	cr_assert_str_eq(c.body, "level=info\n");
	c = call(admin_routes, &a, HTTP_M_POST, "/logging", "level=debug");
	cr_assert_eq(c.status, 200);
	cr_assert_str_eq(c.body, "level=debug\n");
	cr_assert(log_enabled(LOG_DEBUG));
	c = call(admin_routes, &a, HTTP_M_POST, "/logging", "level=warning");
	cr_assert_str_eq(c.body, "level=warn\n");
	cr_assert_not(log_enabled(LOG_INFO));
	c = call(admin_routes, &a, HTTP_M_POST, "/logging", "level=error");
	cr_assert_str_eq(c.body, "level=error\n");
	cr_assert_not(log_enabled(LOG_WARN));
}

Test(admin_routes, bad_levels_are_400_and_change_nothing)
{
	struct admin a = { .opts = &no_certs_opts, .slot = &slot };
	static const char *const bad[] = { "level=loud", "level=", "", "lvl=debug", "level=%00",
					   "level=DEBUG" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct call c = call(admin_routes, &a, HTTP_M_POST, "/logging", bad[i]);
		cr_expect_eq(c.status, 400, "'%s': %d", bad[i], c.status);
		cr_expect(log_enabled(LOG_INFO) && !log_enabled(LOG_DEBUG), "'%s' changed it", bad[i]);
	}
}

static unsigned quits;

static void count_quit(void *arg, const char *why)
{
	quits++;
	cr_assert_str_eq(why, "POST /quitquitquit");
}

Test(admin_routes, quitquitquit_asks_for_the_drain)
{
	struct admin a = { .opts = &no_certs_opts, .slot = &slot };
	struct call c = call(admin_routes, &a, HTTP_M_POST, "/quitquitquit", "");
	cr_assert_eq(c.status, 503, "before control runs there is nothing to drain");
	a.quit = count_quit;
	c = call(admin_routes, &a, HTTP_M_POST, "/quitquitquit", "");
	cr_assert_eq(c.status, 200);
	cr_assert_str_eq(c.body, "draining\n");
	cr_assert_eq(quits, 1);
	c = call(admin_routes, &a, HTTP_M_GET, "/quitquitquit", "");
	cr_assert_eq(c.status, 405, "a GET (a crawler, a typo) must not stop zring");
	cr_assert_eq(c.allow, HTTP_M_POST);
	cr_assert_eq(quits, 1);
}

Test(admin_routes, ready_then_draining)
{
	struct admin a = { .opts = &no_certs_opts, .slot = &slot };
	struct call c = call(admin_readiness_routes, &a, HTTP_M_GET, "/healthz/ready", "");
	cr_assert_eq(c.status, 503);
	cr_assert_str_eq(c.body, "not ready: starting: listeners not up yet\n");
	a.workers_up = true;
	c = call(admin_readiness_routes, &a, HTTP_M_GET, "/healthz/ready", "");
	cr_assert_eq(c.status, 200);
	cr_assert_str_eq(c.body, "ready\n");
	a.draining = true;
	c = call(admin_readiness_routes, &a, HTTP_M_HEAD, "/healthz/ready", "");
	cr_assert_eq(c.status, 503);
	cr_assert_str_eq(c.body, "not ready: draining\n");
	c = call(admin_readiness_routes, &a, HTTP_M_GET, "/config_dump", "");
	cr_assert_eq(c.status, 404, "the readiness port serves readiness only");
}

Test(admin_routes, index_and_dump)
{
	struct admin a = { .opts = &no_certs_opts, .slot = &slot };
	struct call c = call(admin_routes, &a, HTTP_M_GET, "/", "");
	cr_assert_eq(c.status, 200);
	for (const struct http_route *rt = admin_routes; rt->path; rt++)
		cr_expect(strstr(c.body, rt->path), "index lacks %s:\n%s", rt->path, c.body);
	c = call(admin_routes, &a, HTTP_M_GET, "/config_dump", "");
	cr_assert_eq(c.status, 200);
	cr_assert_str_eq(c.content_type, "application/json");
	cJSON *j = cJSON_Parse(c.body);
	cr_assert_not_null(j, "%s", c.body);
	cr_assert_eq(cJSON_GetObjectItem(j, "version")->valuedouble, 1);
	cJSON_Delete(j);
	c = call(admin_routes, &a, HTTP_M_POST, "/config_dump", "");
	cr_assert_eq(c.status, 405);
}

Test(admin_routes, dumps_at_once_are_capped_with_retry_after)
{
	struct admin a = { .opts = &no_certs_opts, .slot = &slot };
	struct http_request req = { .method = HTTP_M_GET, .path = "/config_dump", .query = "",
				    .http_minor = 1 };
	struct http_response held[ADMIN_DUMPS_MAX + 1];
	const struct http_route *rt = http_route_find(admin_routes, "/config_dump", HTTP_M_GET,
						      &(int){ 0 }, &(unsigned){ 0 });
	for (unsigned i = 0; i < ADMIN_DUMPS_MAX; i++) {
		http_response_init(&held[i]);
		rt->fn(&a, &req, &held[i]);
		cr_assert_eq(held[i].status, 200);
		cr_assert_not_null(held[i].src.next, "not written as it is sent");
	}
	cr_assert_eq(a.dumps, ADMIN_DUMPS_MAX);
	struct http_response *busy = &held[ADMIN_DUMPS_MAX];
	http_response_init(busy);
	rt->fn(&a, &req, busy);
	cr_assert_eq(busy->status, 503);
	cr_assert_eq(busy->retry_after, ADMIN_DUMP_RETRY_S);
	cr_assert_null(busy->src.next);
	struct strbuf out;
	strbuf_init(&out);
	cr_assert_eq(http_response_format(busy, HTTP_M_GET, true, &out), 0);
	cr_assert(strstr(out.buf, "\r\nRetry-After: 1\r\n"), "%s", out.buf);
	strbuf_deinit(&out);
	http_response_deinit(busy);

	/* One ends (sent, cut, or dropped): room for the next. */
	http_response_deinit(&held[0]);
	cr_assert_eq(a.dumps, ADMIN_DUMPS_MAX - 1);
	http_response_init(&held[0]);
	rt->fn(&a, &req, &held[0]);
	cr_assert_eq(held[0].status, 200);
	for (unsigned i = 0; i < ADMIN_DUMPS_MAX; i++)
		http_response_deinit(&held[i]);
	cr_assert_eq(a.dumps, 0);
}

Test(admin_routes, metrics_on_both_paths_and_draining_shows)
{
	struct admin a = { .opts = &no_certs_opts, .slot = &slot };
	admin_set_workers_up(&a, NULL, 0, NULL);
	struct call c = call(admin_metrics_routes, &a, HTTP_M_GET, "/metrics", "");
	cr_assert_eq(c.status, 200);
	cr_assert_str_eq(c.content_type, "text/plain; version=0.0.4; charset=utf-8");
	cr_assert(strstr(c.body, "# TYPE istio_tcp_connections_opened_total counter\n"), "%s", c.body);
	cr_assert(strstr(c.body, "\nzring_draining 0\n"), "%s", c.body);
	admin_set_draining(&a);
	c = call(admin_metrics_routes, &a, HTTP_M_GET, "/stats/prometheus", "");
	cr_assert_eq(c.status, 200);
	cr_assert(strstr(c.body, "\nzring_draining 1\n"), "%s", c.body);
	cr_assert(strstr(c.body, "zring_build_info{version=\"" ZRING_VERSION "\"} 1\n"), "%s", c.body);
	c = call(admin_metrics_routes, &a, HTTP_M_POST, "/metrics", "");
	cr_assert_eq(c.status, 405);
	c = call(admin_metrics_routes, &a, HTTP_M_GET, "/config_dump", "");
	cr_assert_eq(c.status, 404, "the metrics port serves metrics only");
}
