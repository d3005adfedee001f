/*
 * The workload configuration: an immutable, reference-counted snapshot of
 * workloads, services and policies, parsed from JSON or YAML with Istio
 * ztunnel's local-config field names (docs/config.md).
 *
 * Parse, validate, then publish: config_parse builds a fresh snapshot and
 * validates all of it, reporting every error with file, line:column and
 * JSON path; a snapshot that exists is valid. States a healthy cluster
 * produces (a service no workload selects, a reference to something not in
 * the file yet) are not errors: they ride along in the snapshot as
 * warnings. Nothing in a snapshot changes after it is built, so any thread
 * may read it while it holds a reference.
 */
#ifndef ZRING_CONFIG_H
#define ZRING_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* An IP address without a port. */
struct ip {
	uint8_t family;		/* AF_INET or AF_INET6 */
	uint8_t bytes[16];	/* network order; IPv4 in the first 4 */
};

struct port_map {
	uint16_t port;		/* service port */
	uint16_t target;	/* workload (target) port; 0 = same as port */
};

enum workload_protocol { PROTO_TCP, PROTO_HBONE };
enum workload_status { STATUS_HEALTHY, STATUS_UNHEALTHY };

/* Where a workload runs (ztunnel's Locality); "" when not given. */
struct locality {
	char *region;
	char *zone;
	char *subzone;
};

/* A workload's membership in a service: "namespace/hostname" -> port map. */
struct workload_service {
	char *key;		/* "ns/hostname" */
	struct port_map *ports;
	size_t nports;
};

struct workload {
	char *uid;
	char *name;
	char *namespace;
	char *service_account;	/* default "default" */
	char *trust_domain;	/* default "cluster.local" */
	char *node;
	char *network;
	char *canonical_name;
	char *canonical_revision;
	char *workload_name;
	char *workload_type;	/* default "pod" */
	enum workload_protocol protocol;	/* default TCP */
	enum workload_status status;		/* default Healthy */
	struct ip *ips;		/* workloadIps */
	size_t nips;
	struct workload_service *services;
	size_t nservices;
	uint32_t capacity;	/* default 1 */
	char **authorization_policies;	/* "ns/name" */
	size_t npolicies;
	char *netns;		/* zring addition "zringNetns": pod netns path, or NULL */
	char *identity;		/* derived: spiffe://<td>/ns/<ns>/sa/<sa> */
	char *hostname;		/* "" when not given */
	char *cluster_id;	/* clusterId, "" when not given */
	struct locality locality;
};

/* An entry of a service's own "endpoints" (ztunnel's Endpoint, as a
 * ServiceEntry or a local config writes them): a workload by uid, with its
 * port map for this service and its health. */
struct service_endpoint {
	char *workload_uid;
	struct port_map *ports;
	size_t nports;
	enum workload_status status;
};

struct service_vip {
	char *network;		/* "" when the VIP was written as a bare ip */
	struct ip ip;
};

struct service {
	char *name;
	char *namespace;
	char *hostname;
	struct service_vip *vips;
	size_t nvips;
	struct port_map *ports;
	size_t nports;
	char **subject_alt_names;
	size_t nsans;
	char *load_balancer_mode;	/* loadBalancer.mode or NULL */
	bool allow_unhealthy;	/* loadBalancer.healthPolicy == AllowAll */
	struct service_endpoint *listed;	/* its own "endpoints", in file order */
	size_t nlisted;
	char *key;		/* derived: "namespace/hostname" */
	/* Derived: indexes into config.workloads of the workloads that
	 * select this service (their services map has "ns/hostname") or that
	 * an entry of `listed` names, each once, in ascending order. A service
	 * may have none (scaled to zero): a connection to it finds no
	 * endpoint. */
	size_t *endpoints;
	size_t nendpoints;
	/* Derived, per endpoints[i]: the `listed` entry it comes from, or NULL
	 * when the workload selects the service itself (which wins when both
	 * do). NULL as a whole when no endpoint comes from `listed`. */
	const struct service_endpoint **endpoint_listed;
};

/* An address block; host bits are cleared when parsed. */
struct cidr {
	struct ip ip;
	uint8_t prefix;
};

/* ztunnel's StringMatch, written {"Exact": "x"}, {"Prefix": "x"},
 * {"Suffix": "x"} or {"Presence": []}. Presence matches any non-empty
 * value; its `value` is "". */
enum string_match_kind { STRMATCH_EXACT, STRMATCH_PREFIX, STRMATCH_SUFFIX, STRMATCH_PRESENCE };

struct string_match {
	enum string_match_kind kind;
	char *value;
};

/* ztunnel's ServiceAccountMatch: {"namespace": ..., "serviceAccount": ...}. */
struct sa_match {
	char *namespace;
	char *service_account;
};

/* One match of a policy clause: every non-empty field must match (a field
 * matches when any of its entries does), and no entry of a `not` field may.
 * Principals are identities without "spiffe://" ("td/ns/x/sa/y"). */
struct policy_match {
	struct string_match *namespaces, *not_namespaces;
	size_t nnamespaces, nnot_namespaces;
	struct sa_match *service_accounts, *not_service_accounts;
	size_t nservice_accounts, nnot_service_accounts;
	struct string_match *principals, *not_principals;
	size_t nprincipals, nnot_principals;
	struct cidr *source_ips, *not_source_ips;
	size_t nsource_ips, nnot_source_ips;
	struct cidr *destination_ips, *not_destination_ips;
	size_t ndestination_ips, nnot_destination_ips;
	uint16_t *destination_ports, *not_destination_ports;
	size_t ndestination_ports, nnot_destination_ports;
};

/* rules: OR of rules; a rule is an AND of clauses; a clause is an OR of
 * matches (ztunnel's Vec<Vec<Vec<RbacMatch>>>). */
struct policy_clause {
	struct policy_match *matches;
	size_t nmatches;
};

struct policy_rule {
	struct policy_clause *clauses;
	size_t nclauses;
};

enum policy_scope { SCOPE_GLOBAL, SCOPE_NAMESPACE, SCOPE_WORKLOAD_SELECTOR };
enum policy_action { ACTION_ALLOW, ACTION_DENY };

struct policy {
	char *name;
	char *namespace;
	char *key;		/* derived: "namespace/name", as workloads refer to it */
	enum policy_scope scope;
	enum policy_action action;
	struct policy_rule *rules;
	size_t nrules;
	bool dry_run;
};

struct config_arena;

/* One validation or syntax error; also the shape of a warning. */
struct config_error {
	unsigned line, col;	/* 1-based; 0 when unknown */
	char *path;		/* JSON path, e.g. "workloads[3].workloadIps[0]"; "" for the root */
	char *msg;
};

struct config {
	_Atomic unsigned refs;
	uint64_t version;	/* set by the publisher (watch), 0 until then */
	uint64_t loaded_at_ms;	/* wall clock, set by the publisher */
	char *source;		/* file it came from */
	struct workload *workloads;
	size_t nworkloads;
	struct service *services;
	size_t nservices;
	struct policy *policies;
	size_t npolicies;
	/* What the file holds that is valid yet worth a look (docs/config.md,
	 * "Invalid or only reported"): in file order, at most
	 * CONFIG_MAX_WARNINGS kept; warnings_total counts them all. */
	struct config_error *warnings;
	size_t nwarnings;
	size_t warnings_total;
	struct config_arena *arena;	/* owns every string and array above */
};

struct config_errors {
	struct config_error *v;
	size_t n;
	size_t dropped;		/* errors beyond the cap that were not kept */
};

/* Limits on what config_parse accepts (each an error, never a crash). */
#define CONFIG_MAX_ERRORS 100		/* kept; the rest are counted in `dropped` */
#define CONFIG_MAX_WARNINGS 100		/* kept; the rest only counted */
#define CONFIG_MAX_DEPTH 64		/* JSON or YAML nesting */
#define CONFIG_MAX_TOKENS 4000000u	/* JSON or YAML values and keys */
#define CONFIG_MAX_VIP_PORTS 1000000u	/* sum over services of VIPs x ports */

/* The syntax a file is read in. */
enum config_format { CONFIG_JSON, CONFIG_YAML };

/*
 * Which syntax config_parse reads: by `source`'s extension (".json" JSON,
 * ".yaml" or ".yml" YAML), else by content: JSON when the first character
 * after any BOM and whitespace is '{' or '[' (or there is none), YAML
 * otherwise. `source` may be NULL.
 */
enum config_format config_format_of(const char *source, const char *buf, size_t len);

/*
 * Parse and validate `len` bytes of JSON or YAML (config_format_of; YAML
 * is read into the same tree JSON gives, so the model and its errors are
 * the same; docs/config.md says what YAML may hold). On success returns 0
 * and *out (refs = 1), with what is valid but worth reporting in
 * (*out)->warnings. On failure returns -EINVAL (or -ENOMEM) with every error found
 * in *errs (which the caller frees with config_errors_free), and *out NULL.
 * *errs is overwritten (it need not be initialized); errors are sorted by
 * position, at most CONFIG_MAX_ERRORS are kept.
 * `source` names the input in messages (a file path). Never reads past len;
 * input may contain NUL bytes and invalid UTF-8 (both are errors).
 */
int config_parse(const char *buf, size_t len, const char *source,
		 struct config **out, struct config_errors *errs);

/* Read and parse a file (size cap: CONFIG_MAX_BYTES, checked before
 * reading). Same contract; a file that cannot be read is one error with
 * line 0 saying why, returned as its negative errno (-ENOENT, -EISDIR,
 * -EFBIG...). Only a regular file is read (file.h): a FIFO, a device or a
 * socket is refused at once with -EINVAL ("is a FIFO, not a regular
 * file"), never opened for reading or waited on. */
#define CONFIG_MAX_BYTES (64u << 20)
int config_load_file(const char *path, struct config **out, struct config_errors *errs);

/* The same for an open descriptor of any kind (`zring check -` reads a
 * pipe on stdin), read to its end; `source` names it in messages. */
int config_load_fd(int fd, const char *source, struct config **out,
		   struct config_errors *errs);

/* Print "source:line:col: path: msg" lines (and a dropped count). */
void config_errors_print(const struct config_errors *errs, const char *source, FILE *f);
/* Print cfg's warnings the same way, each message after "warning: ";
 * `source` names the file (NULL: cfg->source). */
void config_warnings_print(const struct config *cfg, const char *source, FILE *f);
void config_errors_free(struct config_errors *errs);

struct config *config_ref(struct config *c);
/* Drop a reference; frees the snapshot with its last one. NULL is fine. */
void config_unref(struct config *c);

/* An empty, valid snapshot (no workloads): everything is passthrough. */
struct config *config_empty(void);

/* Names of enum values as written in the file ("HBONE", "Deny", ...). */
const char *config_protocol_name(enum workload_protocol p);
const char *config_status_name(enum workload_status s);
const char *config_scope_name(enum policy_scope s);
const char *config_action_name(enum policy_action a);

/*
 * The snapshot as JSON with the file's field names (src/config_write.c):
 * every field zring keeps, so the output loads again with config_parse.
 * Returns a new cJSON tree (the caller cJSON_Deletes it), or NULL when out
 * of memory.
 */
struct cJSON;
struct cJSON *config_to_json(const struct config *cfg);

/* One workload, service or policy as config_to_json writes it, as a tree
 * of its own (the caller cJSON_Deletes it), or NULL when out of memory:
 * for writing a large config piece by piece (the admin's /config_dump). */
struct cJSON *config_workload_to_json(const struct workload *wl);
struct cJSON *config_service_to_json(const struct service *s);
struct cJSON *config_policy_to_json(const struct policy *p);

/* Format an IP (no port) into buf (at least 46 bytes); returns buf. */
const char *config_ip_format(const struct ip *ip, char *buf, size_t len);

#endif
