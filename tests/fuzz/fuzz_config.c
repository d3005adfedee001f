/*
 * libFuzzer target over config_parse: any bytes in, and never a crash, a
 * leak or a read outside the input. An accepted input must give a
 * consistent snapshot; a rejected one must say why. Built by
 * `-Dfuzz=true` with clang, run by scripts/fuzz.sh: as fuzz_config (the
 * input named "fuzz": JSON or YAML by its first character) and as
 * fuzz_config_yaml (FUZZ_SOURCE "fuzz.yaml": always the YAML reader).
 */
#include "zring/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_SOURCE
#define FUZZ_SOURCE "fuzz"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_warnings(const struct config *c)
{
	if (c->nwarnings > CONFIG_MAX_WARNINGS || c->nwarnings > c->warnings_total ||
	    (c->nwarnings < c->warnings_total && c->nwarnings != CONFIG_MAX_WARNINGS))
		abort();
	for (size_t i = 0; i < c->nwarnings; i++)
		if (!c->warnings[i].path || !c->warnings[i].msg || !*c->warnings[i].msg)
			abort();
}

static void check_snapshot(const struct config *c)
{
	for (size_t i = 0; i < c->nworkloads; i++) {
		const struct workload *w = &c->workloads[i];
		if (!w->uid || !*w->uid || !w->identity || strncmp(w->identity, "spiffe://", 9))
			abort();
		for (size_t k = 0; k < w->nservices; k++)
			if (!w->services[k].key || !strchr(w->services[k].key, '/'))
				abort();
	}
	for (size_t i = 0; i < c->nservices; i++) {
		const struct service *s = &c->services[i];
		if (!s->key || s->nendpoints > c->nworkloads)
			abort();
		for (size_t e = 0; e < s->nendpoints; e++) {
			if (s->endpoints[e] >= c->nworkloads ||
			    (e > 0 && s->endpoints[e] <= s->endpoints[e - 1]))
				abort();
			const struct service_endpoint *l = s->endpoint_listed ?
							   s->endpoint_listed[e] : NULL;
			if (l && (l < s->listed || l >= s->listed + s->nlisted ||
				  strcmp(l->workload_uid, c->workloads[s->endpoints[e]].uid)))
				abort();
		}
		for (size_t p = 0; p < s->nports; p++)
			if (s->ports[p].port == 0)
				abort();
	}
	for (size_t i = 0; i < c->npolicies; i++)
		if (!c->policies[i].key || !*c->policies[i].key)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	struct config *c;
	struct config_errors errs;

	if (!devnull)
		devnull = fopen("/dev/null", "w");
	int err = config_parse((const char *)data, size, FUZZ_SOURCE, &c, &errs);
	if (err == 0) {
		if (!c || errs.n || errs.dropped)
			abort();
		check_snapshot(c);
		check_warnings(c);
		if (devnull)
			config_warnings_print(c, FUZZ_SOURCE, devnull);
	} else {
		if (c || (err != -EINVAL && err != -ENOMEM) || (errs.n == 0 && !errs.dropped))
			abort();
		for (size_t i = 0; i < errs.n; i++)
			if (!errs.v[i].path || !errs.v[i].msg || !*errs.v[i].msg)
				abort();
		if (devnull)
			config_errors_print(&errs, FUZZ_SOURCE, devnull);
	}
	config_unref(c);
	config_errors_free(&errs);
	return 0;
}
