/*
 * Config validation micro-benchmark: how parse + validate time grows with
 * the number of workloads, for files whose workloads all have their own
 * address (valid) and for files where they all share one (every workload
 * after the first is a duplicate-address error). Both must grow linearly
 * (n log n at worst): the ms-per-1000-workloads column should stay flat as
 * n doubles. For a valid file, the time to build its snapshot (routing
 * table, policy index: the rest of what a reload does) is shown too.
 * Prints a table; not a test (no time limits).
 *
 *   build/bench_config [N...]      default: 50000 100000 200000
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zring/config.h"
#include "zring/snapshot.h"
#include "zring/util.h"

/* n workloads as compact JSON; `shared`: every one at 10.1.2.3. */
static char *synth(size_t n, int shared, size_t *len)
{
	size_t cap = 128 + n * 160, off = 0;
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	off += (size_t)snprintf(buf + off, cap - off, "{\"workloads\":[");
	for (size_t i = 0; i < n; i++) {
		unsigned a = shared ? 0x0a010203u : 0x0a800000u + (unsigned)i;
		off += (size_t)snprintf(buf + off, cap - off,
					"%s{\"uid\":\"u%zu\",\"name\":\"w%zu\",\"namespace\":\"ns\","
					"\"workloadIps\":[\"%u.%u.%u.%u\"]}", i ? "," : "", i, i,
					a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255);
	}
	off += (size_t)snprintf(buf + off, cap - off, "],\"services\":[],\"policies\":[]}");
	*len = off;
	return buf;
}

/* Milliseconds for one config_parse of the file; *errors its error count,
 * *build_ms the time to build its snapshot (valid files; else 0). */
static double parse_ms(const char *buf, size_t len, size_t *errors, double *build_ms)
{
	struct config *cfg;
	struct config_errors errs;
	struct snapshot *s;
	uint64_t t0 = now_ns();
	config_parse(buf, len, "bench.json", &cfg, &errs);
	double ms = (double)(now_ns() - t0) / 1e6;
	*errors = errs.n + errs.dropped;
	*build_ms = 0;
	if (cfg) {
		t0 = now_ns();
		if (snapshot_new(cfg, NULL, &s) == 0) {
			*build_ms = (double)(now_ns() - t0) / 1e6;
			snapshot_unref(s);
		}
	}
	config_errors_free(&errs);
	return ms;
}

int main(int argc, char **argv)
{
	static const size_t defaults[] = { 50000, 100000, 200000 };
	size_t nsizes = argc > 1 ? (size_t)argc - 1 : ARRAY_SIZE(defaults);

	printf("%-9s %-22s %6s %7s %9s %11s %9s\n", "workloads", "addresses", "MiB", "errors",
	       "parse ms", "ms/1000 wl", "build ms");
	for (int shared = 0; shared < 2; shared++) {
		for (size_t k = 0; k < nsizes; k++) {
			size_t n = argc > 1 ? strtoul(argv[k + 1], NULL, 10) : defaults[k];
			size_t len, errors;
			double build;
			char *buf = synth(n, shared, &len);
			if (!buf) {
				fprintf(stderr, "out of memory\n");
				return 1;
			}
			double ms = parse_ms(buf, len, &errors, &build);
			printf("%-9zu %-22s %6.1f %7zu %9.0f %11.2f %9.0f\n", n,
			       shared ? "one shared (invalid)" : "one each (valid)",
			       (double)len / (1 << 20), errors, ms, ms * 1000 / (double)n, build);
			free(buf);
		}
	}
	return 0;
}
