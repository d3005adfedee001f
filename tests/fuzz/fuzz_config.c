/*
 * libFuzzer target over config_parse: any bytes in, and never a crash, a
 * leak or a read outside the input. An accepted input must give a
 * consistent snapshot; a rejected one must say why. Built by
 * `-Dfuzz=true` with clang, run by scripts/fuzz.sh.
 */
#include "zring/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
		if (!s->key || s->nendpoints == 0)
			abort();
		for (size_t e = 0; e < s->nendpoints; e++)
			if (s->endpoints[e] >= c->nworkloads)
				abort();
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
	int err = config_parse((const char *)data, size, "fuzz", &c, &errs);
	if (err == 0) {
		if (!c || errs.n || errs.dropped)
			abort();
		check_snapshot(c);
	} else {
		if (c || (err != -EINVAL && err != -ENOMEM) || (errs.n == 0 && !errs.dropped))
			abort();
		for (size_t i = 0; i < errs.n; i++)
			if (!errs.v[i].path || !errs.v[i].msg || !*errs.v[i].msg)
				abort();
		if (devnull)
			config_errors_print(&errs, "fuzz", devnull);
	}
	config_unref(c);
	config_errors_free(&errs);
	return 0;
}
