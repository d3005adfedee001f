/*
 * `zring check FILE`: load and validate a workload config exactly as the
 * running proxy would, then print what it holds (counts by kind) or every
 * error as "file:line:col: path: message". Nothing is started.
 */
#include "zring/check.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fputs("Usage: zring check [-q] FILE\n"
	      "Validate a workload config (JSON or YAML, ztunnel local-config fields;\n"
	      "see docs/config.md) without starting. FILE may be - for stdin.\n"
	      "Warnings (what is valid but worth a look) go to stderr.\n"
	      "\n"
	      "  -q, --quiet   print nothing when the file is valid\n"
	      "  -h, --help    this help\n"
	      "\n"
	      "Exit status: 0 valid, 1 invalid or unreadable, 2 usage error.\n", f);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Distinct namespaces over workloads, services and policies. */
static size_t count_namespaces(const struct config *cfg)
{
	size_t n = cfg->nworkloads + cfg->nservices + cfg->npolicies, k = 0, distinct = 0;
	const char **v = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return 0;
	for (size_t i = 0; i < cfg->nworkloads; i++)
		v[k++] = cfg->workloads[i].namespace;
	for (size_t i = 0; i < cfg->nservices; i++)
		v[k++] = cfg->services[i].namespace;
	for (size_t i = 0; i < cfg->npolicies; i++)
		v[k++] = cfg->policies[i].namespace;
	qsort(v, n, sizeof(*v), str_cmp);
	for (size_t i = 0; i < n; i++)
		distinct += i == 0 || strcmp(v[i], v[i - 1]) != 0;
	free(v);
	return distinct;
}

static void summary_workloads(const struct config *cfg, FILE *out)
{
	size_t hbone = 0, unhealthy = 0, v4 = 0, v6 = 0;
	for (size_t i = 0; i < cfg->nworkloads; i++) {
		const struct workload *w = &cfg->workloads[i];
		hbone += w->protocol == PROTO_HBONE;
		unhealthy += w->status == STATUS_UNHEALTHY;
		for (size_t j = 0; j < w->nips; j++) {
			v4 += w->ips[j].family == AF_INET;
			v6 += w->ips[j].family == AF_INET6;
		}
	}
	fprintf(out, "  workloads   %zu: HBONE %zu, TCP %zu; %zu unhealthy; %zu addresses "
		"(IPv4 %zu, IPv6 %zu)\n", cfg->nworkloads, hbone, cfg->nworkloads - hbone,
		unhealthy, v4 + v6, v4, v6);
}

static void summary_services(const struct config *cfg, FILE *out)
{
	size_t vips = 0, ports = 0, endpoints = 0;
	for (size_t i = 0; i < cfg->nservices; i++) {
		vips += cfg->services[i].nvips;
		ports += cfg->services[i].nports;
		endpoints += cfg->services[i].nendpoints;
	}
	fprintf(out, "  services    %zu: %zu VIPs, %zu ports, %zu endpoints\n", cfg->nservices,
		vips, ports, endpoints);
}

static void summary_policies(const struct config *cfg, FILE *out)
{
	size_t deny = 0, dry = 0;
	for (size_t i = 0; i < cfg->npolicies; i++) {
		deny += cfg->policies[i].action == ACTION_DENY;
		dry += cfg->policies[i].dry_run;
	}
	fprintf(out, "  policies    %zu: Allow %zu, Deny %zu; %zu dry run\n", cfg->npolicies,
		cfg->npolicies - deny, deny, dry);
}

void check_summary(const struct config *cfg, const char *source, FILE *out)
{
	fprintf(out, "%s: valid\n", source);
	summary_workloads(cfg, out);
	summary_services(cfg, out);
	summary_policies(cfg, out);
	fprintf(out, "  namespaces  %zu\n", count_namespaces(cfg));
	if (cfg->warnings_total)
		fprintf(out, "  warnings    %zu (valid; listed on stderr)\n", cfg->warnings_total);
}

int check_run(const char *path, bool quiet, FILE *out, FILE *err)
{
	struct config *cfg;
	struct config_errors errs;
	bool in = strcmp(path, "-") == 0;
	int rc = in ? config_load_fd(STDIN_FILENO, "-", &cfg, &errs) :
		      config_load_file(path, &cfg, &errs);

	if (rc < 0) {
		config_errors_print(&errs, path, err);
		config_errors_free(&errs);
		return 1;
	}
	if (!quiet) {
		check_summary(cfg, path, out);
		config_warnings_print(cfg, path, err);
	}
	config_unref(cfg);
	config_errors_free(&errs);
	return 0;
}

int check_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool quiet = false;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "+qh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "zring check: expected one FILE\n");
		usage(stderr);
		return 2;
	}
	return check_run(argv[optind], quiet, stdout, stderr);
}
