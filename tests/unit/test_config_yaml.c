/*
 * The workload config in YAML (src/config_yaml.c) and what healthy clusters
 * produce: the same snapshot as JSON for ztunnel's local-config shape,
 * YAML 1.2 scalars, what YAML may not hold (aliases, tags, a second
 * document, NUL, depth), the choice of syntax, and the warnings and
 * routing of services whose endpoints are their own or absent.
 *
 * The corpus's bad and warn YAML files are checked by
 * test_config.c with the JSON ones.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zring/config.h"
#include "zring/route.h"
#include "zring/util.h"

static const char *corpus(void)
{
	const char *d = getenv("ZRING_CONFIG_CORPUS");
	cr_assert(d && *d, "ZRING_CONFIG_CORPUS is not set (run through meson test)");
	return d;
}

static struct config *load(const char *rel)
{
	char *p;
	struct config *c;
	struct config_errors errs;
	cr_assert(asprintf(&p, "%s/%s", corpus(), rel) > 0);
	int err = config_load_file(p, &c, &errs);
	config_errors_print(&errs, p, stderr);
	cr_assert_eq(err, 0, "%s: %d", rel, err);
	config_errors_free(&errs);
	free(p);
	return c;
}

/* Parse YAML text; returns config_parse's result, errors in *errs. */
static int yaml(const char *s, struct config **c, struct config_errors *errs)
{
	return config_parse(s, strlen(s), "t.yaml", c, errs);
}

static struct config *yaml_ok(const char *s)
{
	struct config *c;
	struct config_errors errs;
	int err = yaml(s, &c, &errs);
	config_errors_print(&errs, "t.yaml", stderr);
	cr_assert_eq(err, 0);
	config_errors_free(&errs);
	return c;
}

/* The one error of a bad YAML text, as "LINE:COL PATH: MSG". */
static char *yaml_error(const char *s)
{
	struct config *c;
	struct config_errors errs;
	char *out;
	cr_assert_eq(yaml(s, &c, &errs), -EINVAL, "accepted: %s", s);
	cr_assert_null(c);
	cr_assert_eq(errs.n, 1, "%zu errors for: %s", errs.n, s);
	cr_assert(asprintf(&out, "%u:%u %s: %s", errs.v[0].line, errs.v[0].col,
			   *errs.v[0].path ? errs.v[0].path : "-", errs.v[0].msg) > 0);
	config_errors_free(&errs);
	return out;
}

#define EXPECT_ERROR(text, want) do {						\
		char *got_ = yaml_error(text);					\
		cr_expect(strncmp(got_, (want), strlen(want)) == 0,		\
			  "got \"%s\", want \"%s...\"", got_, (want));		\
		free(got_);							\
	} while (0)

static char *dump(const struct config *c)
{
	cJSON *j = config_to_json(c);
	cr_assert_not_null(j);
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

Test(config_yaml, ztunnel_local_config_gives_the_same_snapshot_as_json)
{
	struct config *y = load("good/ztunnel-local.yaml"), *j = load("good/ztunnel-local.json");
	char *a = dump(y), *b = dump(j);
	cr_assert_str_eq(a, b);
	cr_assert_eq(y->nwarnings, 0);
	cr_assert_eq(y->services[0].nendpoints, 2);
	cr_assert_str_eq(y->services[1].vips[0].network, "remote");
	cr_assert_eq(y->policies[0].rules[0].clauses[0].matches[0].not_destination_ports[0], 9999);
	free(a);
	free(b);
	config_unref(y);
	config_unref(j);
}

Test(config_yaml, the_yaml_example_is_the_json_example)
{
	const char *src = getenv("ZRING_SRCDIR");
	cr_assert(src && *src);
	struct config *c[2];
	const char *const names[2] = { "examples/workloads.yaml", "examples/workloads.json" };
	for (int i = 0; i < 2; i++) {
		char *p;
		struct config_errors errs;
		cr_assert(asprintf(&p, "%s/%s", src, names[i]) > 0);
		int err = config_load_file(p, &c[i], &errs);
		config_errors_print(&errs, p, stderr);
		cr_assert_eq(err, 0, "%s", names[i]);
		config_errors_free(&errs);
		free(p);
	}
	char *a = dump(c[0]), *b = dump(c[1]);
	cr_assert_str_eq(a, b);
	cr_assert_eq(c[0]->warnings_total, c[1]->warnings_total);
	cr_assert_str_eq(c[0]->warnings[0].path, c[1]->warnings[0].path);
	free(a);
	free(b);
	config_unref(c[0]);
	config_unref(c[1]);
}

Test(config_yaml, syntax_by_extension_then_content)
{
	cr_assert_eq(config_format_of("a.yaml", "{}", 2), CONFIG_YAML);
	cr_assert_eq(config_format_of("a.yml", "{}", 2), CONFIG_YAML);
	cr_assert_eq(config_format_of("a.json", "workloads: []", 13), CONFIG_JSON);
	cr_assert_eq(config_format_of("-", " \n{", 3), CONFIG_JSON);
	cr_assert_eq(config_format_of("-", "\xef\xbb\xbf[", 4), CONFIG_JSON);
	cr_assert_eq(config_format_of("config", "# c\nworkloads: []", 16), CONFIG_YAML);
	cr_assert_eq(config_format_of(NULL, "workloads: []", 13), CONFIG_YAML);
	cr_assert_eq(config_format_of("-", "", 0), CONFIG_JSON);
	/* A .json file holding YAML gets JSON's error, not a guess. */
	struct config *c;
	struct config_errors errs;
	cr_assert_eq(config_parse("workloads: []", 13, "w.json", &c, &errs), -EINVAL);
	config_errors_free(&errs);
	cr_assert_eq(config_parse("workloads: []", 13, "-", &c, &errs), 0);
	config_unref(c);
	config_errors_free(&errs);
}

Test(config_yaml, scalars_are_yaml_1_2_core_schema)
{
	struct config *c = yaml_ok(
		"workloads:\n"
		"- uid: '007'\n"			/* quoted: a string */
		"  namespace: ns\n"
		"  serviceAccount: \"true\"\n"		/* quoted: a string */
		"  workloadIps: []\n"
		"  capacity: 0x10\n"			/* hex integer */
		"  waypoint: ~\n"			/* null, allowed there */
		"  nativeTunnel: True\n"
		"  name: yes\n"				/* 1.2: a string, not a bool */
		"  node: 1.5e3x\n"			/* not a number: a string */
		"policies:\n"
		"- {name: p, namespace: ns, scope: Namespace, action: Deny, dryRun: false,\n"
		"   rules: [[[{destinationPorts: [0o17, 80]}]]]}\n");
	const struct workload *w = &c->workloads[0];
	cr_assert_str_eq(w->uid, "007");
	cr_assert_str_eq(w->service_account, "true");
	cr_assert_eq(w->capacity, 16);
	cr_assert_str_eq(w->name, "yes");
	cr_assert_str_eq(w->node, "1.5e3x");
	cr_assert_eq(c->policies[0].rules[0].clauses[0].matches[0].destination_ports[0], 15);
	config_unref(c);
	EXPECT_ERROR("workloads:\n- uid: 5\n  namespace: ns\n  workloadIps: []\n",
		     "2:8 workloads[0].uid: expected a string, got a number");
	EXPECT_ERROR("policies:\n- {name: p, namespace: ns, scope: Global, action: Deny, "
		     "rules: [], dryRun: yes}\n",
		     "2:76 policies[0].dryRun: expected true or false, got a string");
	EXPECT_ERROR("services:\n- {name: s, namespace: ns, hostname: h, vips: [], "
		     "ports: {80: \"8080\"}}\n",
		     "2:63 services[0].ports[\"80\"]: expected an integer, got a string");
	EXPECT_ERROR("workloads:\n- uid: u\n  namespace: ns\n  workloadIps: []\n  capacity: .inf\n",
		     "5:13 workloads[0].capacity: number out of range");
}

Test(config_yaml, tags)
{
	struct config *c = yaml_ok("workloads:\n- uid: !!str 5\n  namespace: !!str ns\n"
				   "  workloadIps: !!seq []\n  capacity: !!int 3\n");
	cr_assert_str_eq(c->workloads[0].uid, "5");
	cr_assert_eq(c->workloads[0].capacity, 3);
	config_unref(c);
	EXPECT_ERROR("workloads: !workloads []\n", "1:12 -: unsupported YAML tag !workloads");
	EXPECT_ERROR("a: !!int abc\n", "1:4 -: value does not match its tag !!int");
	EXPECT_ERROR("a: !!binary aGk=\n", "1:4 -: unsupported YAML tag tag:yaml.org,2002:binary");
}

Test(config_yaml, what_yaml_may_not_hold)
{
	EXPECT_ERROR("a: &x 1\nb: *x\n",
		     "2:4 -: YAML alias *x: aliases are not supported");
	EXPECT_ERROR("workloads: []\n---\nservices: []\n",
		     "2:1 -: a second YAML document: a config file holds one");
	EXPECT_ERROR("workloads:\n- uid: \"a\\0b\"\n", "2:8 -: NUL character in a string");
	EXPECT_ERROR("? [a]\n: b\n", "1:3 -: a key must be a scalar, not a sequence");
	EXPECT_ERROR("# only a comment\n", "2:1 -: empty document");
	EXPECT_ERROR("", "1:1 -: empty document");	/* "-" sniffs JSON; t.yaml is YAML */
	EXPECT_ERROR("[1, 2]\n", "1:1 -: expected an object with \"workloads\"");
	EXPECT_ERROR("workloads:\n- uid: w\xff\n", "2:9 -: invalid leading UTF-8 octet");
	EXPECT_ERROR("workloads:\n- uid: w\n namespace: x\n", "3:2 -: YAML syntax error");
	/* UTF-8 only: a UTF-16 file is not guessed from its byte-order mark. */
	struct config *c16;
	struct config_errors e16;
	cr_assert_eq(config_parse("\xff\xfew\0o\0", 6, "t.yaml", &c16, &e16), -EINVAL);
	cr_assert_str_eq(e16.v[0].msg, "invalid leading UTF-8 octet");
	config_errors_free(&e16);
	/* A UTF-8 one takes no column; columns count characters. */
	EXPECT_ERROR("\xef\xbb\xbfworkloads:\n- {uid: \"\xc3\xa9\xc3\xa9\", namespace: n, "
		     "workloadIps: [1.2.3.x]}\n",
		     "2:43 workloads[0].workloadIps[0]: invalid IP address \"1.2.3.x\"");
	/* One document, with its markers, is fine. */
	struct config *c = yaml_ok("%YAML 1.2\n---\nworkloads: []\n...\n");
	config_unref(c);
}

Test(config_yaml, nesting_and_size_are_bounded)
{
	char deep[400] = "a: ";
	for (int i = 0; i < 100; i++)
		strcat(deep, "[");
	EXPECT_ERROR(deep, "1:67 -: nested deeper than 64 levels");
	/* A billion laughs costs nothing: the first alias ends it. */
	char laughs[1024] = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
	for (char x = 'b'; x <= 'i'; x++) {
		char line[96];
		snprintf(line, sizeof(line), "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n",
			 x, x, x - 1, x - 1, x - 1, x - 1, x - 1, x - 1, x - 1, x - 1, x - 1);
		strcat(laughs, line);
	}
	EXPECT_ERROR(laughs, "2:8 -: YAML alias *a");
}

Test(config_yaml, duplicate_keys_and_unknown_fields_at_the_key)
{
	EXPECT_ERROR("workloads: []\nworkloads: []\n", "2:1 workloads: duplicate field \"workloads\"");
	EXPECT_ERROR("workloads:\n- uid: u\n  namespace: ns\n  workloadIps: []\n  serviceaccount: x\n",
		     "5:3 workloads[0].serviceaccount: unknown field \"serviceaccount\"");
}

/* ---- healthy cluster states ---- */

static const char *const scaled_to_zero =
	"workloads:\n"
	"- {uid: w1, namespace: ns, serviceAccount: sa, workloadIps: [10.0.0.1],\n"
	"   services: {ns/web: {80: 8080}}}\n"
	"services:\n"
	"- {name: web, namespace: ns, hostname: web, vips: [/10.96.0.1], ports: {80: 8080}}\n"
	"- {name: idle, namespace: ns, hostname: idle, vips: [/10.96.0.2], ports: {80: 8080}}\n";

Test(config_yaml, a_scaled_to_zero_service_loads_and_finds_no_endpoint)
{
	struct config *c = yaml_ok(scaled_to_zero);
	cr_assert_eq(c->nwarnings, 1);
	cr_assert_eq(c->warnings_total, 1);
	cr_assert_eq(c->warnings[0].line, 6);
	cr_assert_eq(c->warnings[0].col, 3);
	cr_assert_str_eq(c->warnings[0].path, "services[1]");
	cr_assert(strstr(c->warnings[0].msg, "service \"ns/idle\" selects no workload"), "%s",
		  c->warnings[0].msg);
	struct route_table *t;
	struct route r;
	cr_assert_eq(route_build(c, &t), 0);
	union addr dst;
	cr_assert_eq(addr_parse("10.96.0.2:80", &dst), 0);
	cr_assert_eq(route_lookup(t, &dst, 0, &r), -EHOSTUNREACH);
	cr_assert_eq(r.kind, ROUTE_SERVICE);
	cr_assert_eq(addr_parse("10.96.0.1:80", &dst), 0);
	cr_assert_eq(route_lookup(t, &dst, 0, &r), 0);
	cr_assert_eq(addr_port(&r.upstream), 8080);
	route_free(t);
	config_unref(c);
}

Test(config_yaml, warnings_are_capped_and_counted)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);
	fputs("services:\n", f);
	for (int i = 0; i < CONFIG_MAX_WARNINGS + 20; i++)
		fprintf(f, "- {name: s%d, namespace: ns, hostname: s%d, vips: [], ports: {}}\n", i, i);
	fclose(f);
	struct config *c = yaml_ok(s);
	cr_assert_eq(c->nwarnings, CONFIG_MAX_WARNINGS);
	cr_assert_eq(c->warnings_total, CONFIG_MAX_WARNINGS + 20);
	cr_assert_eq(c->warnings[0].line, 2);
	cr_assert_eq(c->warnings[CONFIG_MAX_WARNINGS - 1].line, CONFIG_MAX_WARNINGS + 1);
	config_unref(c);
	free(s);
}

Test(config_yaml, every_kind_of_warning_is_counted_past_the_cap)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);
	fputs("workloads:\n- uid: w\n  namespace: ns\n  serviceAccount: sa\n  workloadIps: []\n"
	      "  services:\n", f);
	for (int i = 0; i < 150; i++)
		fprintf(f, "    ns/missing%d: {}\n", i);
	fputs("  authorizationPolicies:\n", f);
	for (int i = 0; i < 150; i++)
		fprintf(f, "  - ns/gone%d\n", i);
	fputs("services:\n- {name: s, namespace: ns, hostname: s, vips: [], ports: {}, endpoints: {\n", f);
	for (int i = 0; i < 150; i++)
		fprintf(f, "   e%d: {workloadUid: nobody%d, port: {}, status: Healthy},\n", i, i);
	fputs("  }}\npolicies:\n", f);
	for (int i = 0; i < 150; i++)
		fprintf(f, "- {name: p%d, namespace: ns, scope: WorkloadSelector, action: Deny, "
			"rules: []}\n", i);
	fclose(f);
	struct config *c = yaml_ok(s);
	cr_assert_eq(c->warnings_total, 600);
	cr_assert_eq(c->nwarnings, CONFIG_MAX_WARNINGS);
	cr_assert_eq(c->warnings[0].line, 7, "in file order: the first missing service");
	config_unref(c);
	free(s);
}

static const char *const own_endpoints =
	"workloads:\n"
	"- {uid: vm1, namespace: ns, serviceAccount: vm, workloadIps: [10.0.9.1]}\n"
	"- {uid: vm2, namespace: ns, serviceAccount: vm, workloadIps: [10.0.9.2]}\n"
	"- {uid: pod, namespace: ns, serviceAccount: p, workloadIps: [10.0.9.3],\n"
	"   services: {ns/legacy: {80: 7070}}}\n"
	"services:\n"
	"- name: legacy\n"
	"  namespace: ns\n"
	"  hostname: legacy\n"
	"  vips: [/10.96.9.1]\n"
	"  ports: {80: 0}\n"
	"  endpoints:\n"
	"    vm1: {workloadUid: vm1, port: {80: 8080}, status: Healthy}\n"
	"    vm2: {workloadUid: vm2, port: {80: 8080}, status: Unhealthy}\n"
	"    pod: {workloadUid: pod, port: {80: 9999}, status: Healthy}\n"
	"    gone: {workloadUid: vm9, port: {80: 8080}, status: Healthy}\n";

Test(config_yaml, a_services_own_endpoints_are_routed_to)
{
	struct config *c = yaml_ok(own_endpoints);
	const struct service *s = &c->services[0];
	cr_assert_eq(s->nlisted, 4);
	cr_assert_eq(s->nendpoints, 3, "vm1, vm2 and pod once each");
	cr_assert_eq(s->endpoints[0], 0);
	cr_assert_eq(s->endpoints[1], 1);
	cr_assert_eq(s->endpoints[2], 2);
	cr_assert_eq(s->endpoint_listed[0], &s->listed[0]);
	cr_assert_null(s->endpoint_listed[2], "the workload's own selection wins");
	cr_assert_eq(c->nwarnings, 1);
	cr_assert_str_eq(c->warnings[0].path, "services[0].endpoints[\"gone\"].workloadUid");
	cr_assert_eq(c->warnings[0].line, 16);
	cr_assert(strstr(c->warnings[0].msg, "workload \"vm9\" is not in the file (yet)"));

	struct route_table *t;
	struct route r;
	union addr dst;
	int to_vm1 = 0, to_pod = 0;
	cr_assert_eq(route_build(c, &t), 0);
	cr_assert_eq(addr_parse("10.96.9.1:80", &dst), 0);
	for (uint32_t rnd = 0; rnd < 64; rnd++) {
		cr_assert_eq(route_lookup(t, &dst, rnd * 0x04000000u, &r), 0);
		char up[64];
		addr_format(&r.upstream, up, sizeof(up));
		if (strcmp(up, "10.0.9.1:8080") == 0)
			to_vm1++;
		else if (strcmp(up, "10.0.9.3:7070") == 0)
			to_pod++;
		else
			cr_assert_fail("routed to %s (the unhealthy entry, or a wrong port)", up);
	}
	cr_assert(to_vm1 && to_pod, "vm1 %d, pod %d", to_vm1, to_pod);
	route_free(t);

	/* The dump writes them back, and loads to the same endpoints. */
	char *a = dump(c);
	struct config *again;
	struct config_errors errs;
	cr_assert_eq(config_parse(a, strlen(a), "dump.json", &again, &errs), 0);
	cr_assert_eq(again->services[0].nendpoints, 3);
	cr_assert_eq(again->services[0].nlisted, 4);
	char *b = dump(again);
	cr_assert_str_eq(a, b);
	free(a);
	free(b);
	config_unref(again);
	config_errors_free(&errs);
	config_unref(c);
}

Test(config_yaml, warnings_print_like_errors)
{
	struct config *c;
	struct config_errors errs;
	cr_assert_eq(config_parse(scaled_to_zero, strlen(scaled_to_zero), "w.yaml", &c, &errs),
		     0);
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);
	config_warnings_print(c, NULL, f);
	fclose(f);
	cr_assert_str_eq(s, "w.yaml:6:3: services[1]: warning: service \"ns/idle\" selects no "
			    "workload (none lists it in its \"services\", it has no \"endpoints\"): "
			    "its VIPs have no endpoint\n");
	free(s);
	config_unref(c);
	config_errors_free(&errs);
}
