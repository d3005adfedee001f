/*
 * A config snapshot written back as JSON with ztunnel's local-config field
 * names: the inverse of config_parse for every field zring keeps, so the
 * output loads again (the admin's /config_dump, `zring check`). Fields
 * zring only accepts and drops (waypoints, cidrVips...) are not in the
 * snapshot and so not written; derived values (identities, service keys,
 * endpoints) are not written either: the parser derives them again. A
 * service's own "endpoints" are kept and written, keyed by workload uid.
 */
#include "zring/config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <sys/socket.h>

/* Allocation failure is sticky: once an add fails, the writer stops adding
 * and config_to_json returns NULL. */
struct jw {
	bool oom;
};

/* Add item under key (object) or at the end (array, key NULL); frees item
 * when it cannot be added. Returns item or NULL. */
static cJSON *put(struct jw *w, cJSON *parent, const char *key, cJSON *item)
{
	if (!item || !parent || w->oom) {
		cJSON_Delete(item);
		w->oom = true;
		return NULL;
	}
	cJSON_bool ok = key ? cJSON_AddItemToObject(parent, key, item) :
			      cJSON_AddItemToArray(parent, item);
	if (!ok) {
		cJSON_Delete(item);
		w->oom = true;
		return NULL;
	}
	return item;
}

static void put_str(struct jw *w, cJSON *o, const char *key, const char *s)
{
	put(w, o, key, cJSON_CreateString(s ? s : ""));
}

static void put_num(struct jw *w, cJSON *o, const char *key, double v)
{
	put(w, o, key, cJSON_CreateNumber(v));
}

static void put_ip(struct jw *w, cJSON *arr, const struct ip *ip, int prefix)
{
	char buf[64], out[80];
	config_ip_format(ip, buf, sizeof(buf));
	if (prefix >= 0)
		snprintf(out, sizeof(out), "%s/%d", buf, prefix);
	else
		snprintf(out, sizeof(out), "%s", buf);
	put_str(w, arr, NULL, out);
}

/* {"80": 8080, ...} */
static void put_port_map(struct jw *w, cJSON *o, const char *key, const struct port_map *pm,
			 size_t n)
{
	cJSON *m = put(w, o, key, cJSON_CreateObject());
	for (size_t i = 0; i < n && m; i++) {
		char port[8];
		snprintf(port, sizeof(port), "%u", pm[i].port);
		put_num(w, m, port, pm[i].target);
	}
}

static void put_strings(struct jw *w, cJSON *o, const char *key, char *const *v, size_t n)
{
	cJSON *a = put(w, o, key, cJSON_CreateArray());
	for (size_t i = 0; i < n && a; i++)
		put_str(w, a, NULL, v[i]);
}

static void put_workload(struct jw *w, cJSON *arr, const struct workload *wl)
{
	cJSON *o = put(w, arr, NULL, cJSON_CreateObject());
	put_str(w, o, "uid", wl->uid);
	put_str(w, o, "name", wl->name);
	put_str(w, o, "namespace", wl->namespace);
	put_str(w, o, "serviceAccount", wl->service_account);
	put_str(w, o, "trustDomain", wl->trust_domain);
	cJSON *ips = put(w, o, "workloadIps", cJSON_CreateArray());
	for (size_t i = 0; i < wl->nips; i++)
		put_ip(w, ips, &wl->ips[i], -1);
	put_str(w, o, "protocol", config_protocol_name(wl->protocol));
	put_str(w, o, "status", config_status_name(wl->status));
	put_str(w, o, "node", wl->node);
	put_str(w, o, "network", wl->network);
	put_str(w, o, "canonicalName", wl->canonical_name);
	put_str(w, o, "canonicalRevision", wl->canonical_revision);
	put_str(w, o, "workloadName", wl->workload_name);
	put_str(w, o, "workloadType", wl->workload_type);
	put_str(w, o, "clusterId", wl->cluster_id);
	put_str(w, o, "hostname", wl->hostname);
	cJSON *svcs = put(w, o, "services", cJSON_CreateObject());
	for (size_t i = 0; i < wl->nservices; i++)
		put_port_map(w, svcs, wl->services[i].key, wl->services[i].ports,
			     wl->services[i].nports);
	put_num(w, o, "capacity", wl->capacity);
	put_strings(w, o, "authorizationPolicies", wl->authorization_policies, wl->npolicies);
	cJSON *loc = put(w, o, "locality", cJSON_CreateObject());
	put_str(w, loc, "region", wl->locality.region);
	put_str(w, loc, "zone", wl->locality.zone);
	put_str(w, loc, "subzone", wl->locality.subzone);
	if (wl->netns)
		put_str(w, o, "zringNetns", wl->netns);
}

static void put_service(struct jw *w, cJSON *arr, const struct service *s)
{
	cJSON *o = put(w, arr, NULL, cJSON_CreateObject());
	put_str(w, o, "name", s->name);
	put_str(w, o, "namespace", s->namespace);
	put_str(w, o, "hostname", s->hostname);
	cJSON *vips = put(w, o, "vips", cJSON_CreateArray());
	for (size_t i = 0; i < s->nvips && vips; i++) {
		char ip[64], vip[160];
		config_ip_format(&s->vips[i].ip, ip, sizeof(ip));
		snprintf(vip, sizeof(vip), "%s/%s", s->vips[i].network, ip);
		put_str(w, vips, NULL, vip);
	}
	put_port_map(w, o, "ports", s->ports, s->nports);
	if (s->nlisted) {
		cJSON *eps = put(w, o, "endpoints", cJSON_CreateObject());
		for (size_t i = 0; i < s->nlisted && eps; i++) {
			const struct service_endpoint *e = &s->listed[i];
			cJSON *ep = put(w, eps, e->workload_uid, cJSON_CreateObject());
			put_str(w, ep, "workloadUid", e->workload_uid);
			put_port_map(w, ep, "port", e->ports, e->nports);
			put_str(w, ep, "status", config_status_name(e->status));
		}
	}
	put_strings(w, o, "subjectAltNames", s->subject_alt_names, s->nsans);
	if (s->load_balancer_mode) {
		cJSON *lb = put(w, o, "loadBalancer", cJSON_CreateObject());
		put_str(w, lb, "mode", s->load_balancer_mode);
		put_str(w, lb, "healthPolicy", s->allow_unhealthy ? "AllowAll" : "OnlyHealthy");
	}
}

static void put_string_matches(struct jw *w, cJSON *o, const char *key,
			       const struct string_match *m, size_t n)
{
	static const char *const kinds[] = { "Exact", "Prefix", "Suffix", "Presence" };
	if (!n)
		return;
	cJSON *a = put(w, o, key, cJSON_CreateArray());
	for (size_t i = 0; i < n && a; i++) {
		cJSON *e = put(w, a, NULL, cJSON_CreateObject());
		if (m[i].kind == STRMATCH_PRESENCE)
			put(w, e, kinds[m[i].kind], cJSON_CreateArray());
		else
			put_str(w, e, kinds[m[i].kind], m[i].value);
	}
}

static void put_sa_matches(struct jw *w, cJSON *o, const char *key, const struct sa_match *m,
			   size_t n)
{
	if (!n)
		return;
	cJSON *a = put(w, o, key, cJSON_CreateArray());
	for (size_t i = 0; i < n && a; i++) {
		cJSON *e = put(w, a, NULL, cJSON_CreateObject());
		put_str(w, e, "namespace", m[i].namespace);
		put_str(w, e, "serviceAccount", m[i].service_account);
	}
}

static void put_cidrs(struct jw *w, cJSON *o, const char *key, const struct cidr *c, size_t n)
{
	if (!n)
		return;
	cJSON *a = put(w, o, key, cJSON_CreateArray());
	for (size_t i = 0; i < n && a; i++)
		put_ip(w, a, &c[i].ip, c[i].prefix);
}

static void put_ports(struct jw *w, cJSON *o, const char *key, const uint16_t *p, size_t n)
{
	if (!n)
		return;
	cJSON *a = put(w, o, key, cJSON_CreateArray());
	for (size_t i = 0; i < n && a; i++)
		put_num(w, a, NULL, p[i]);
}

static void put_match(struct jw *w, cJSON *arr, const struct policy_match *m)
{
	cJSON *o = put(w, arr, NULL, cJSON_CreateObject());
	put_string_matches(w, o, "namespaces", m->namespaces, m->nnamespaces);
	put_string_matches(w, o, "notNamespaces", m->not_namespaces, m->nnot_namespaces);
	put_sa_matches(w, o, "serviceAccounts", m->service_accounts, m->nservice_accounts);
	put_sa_matches(w, o, "notServiceAccounts", m->not_service_accounts,
		       m->nnot_service_accounts);
	put_string_matches(w, o, "principals", m->principals, m->nprincipals);
	put_string_matches(w, o, "notPrincipals", m->not_principals, m->nnot_principals);
	put_cidrs(w, o, "sourceIps", m->source_ips, m->nsource_ips);
	put_cidrs(w, o, "notSourceIps", m->not_source_ips, m->nnot_source_ips);
	put_cidrs(w, o, "destinationIps", m->destination_ips, m->ndestination_ips);
	put_cidrs(w, o, "notDestinationIps", m->not_destination_ips, m->nnot_destination_ips);
	put_ports(w, o, "destinationPorts", m->destination_ports, m->ndestination_ports);
	put_ports(w, o, "notDestinationPorts", m->not_destination_ports,
		  m->nnot_destination_ports);
}

static void put_policy(struct jw *w, cJSON *arr, const struct policy *p)
{
	cJSON *o = put(w, arr, NULL, cJSON_CreateObject());
	put_str(w, o, "name", p->name);
	put_str(w, o, "namespace", p->namespace);
	put_str(w, o, "scope", config_scope_name(p->scope));
	put_str(w, o, "action", config_action_name(p->action));
	cJSON *rules = put(w, o, "rules", cJSON_CreateArray());
	for (size_t r = 0; r < p->nrules && rules; r++) {
		cJSON *rule = put(w, rules, NULL, cJSON_CreateArray());
		const struct policy_rule *pr = &p->rules[r];
		for (size_t c = 0; c < pr->nclauses && rule; c++) {
			cJSON *clause = put(w, rule, NULL, cJSON_CreateArray());
			const struct policy_clause *pc = &pr->clauses[c];
			for (size_t m = 0; m < pc->nmatches && clause; m++)
				put_match(w, clause, &pc->matches[m]);
		}
	}
	put(w, o, "dryRun", cJSON_CreateBool(p->dry_run));
}

/* The item that put_* wrote into the scratch array arr, detached; arr is
 * freed. NULL when out of memory. */
static cJSON *detach_alone(struct jw *w, cJSON *arr)
{
	cJSON *item = arr && !w->oom ? cJSON_DetachItemFromArray(arr, 0) : NULL;
	cJSON_Delete(arr);
	return item;
}

struct cJSON *config_workload_to_json(const struct workload *wl)
{
	struct jw w = { 0 };
	cJSON *arr = cJSON_CreateArray();
	put_workload(&w, arr, wl);
	return detach_alone(&w, arr);
}

struct cJSON *config_service_to_json(const struct service *s)
{
	struct jw w = { 0 };
	cJSON *arr = cJSON_CreateArray();
	put_service(&w, arr, s);
	return detach_alone(&w, arr);
}

struct cJSON *config_policy_to_json(const struct policy *p)
{
	struct jw w = { 0 };
	cJSON *arr = cJSON_CreateArray();
	put_policy(&w, arr, p);
	return detach_alone(&w, arr);
}

struct cJSON *config_to_json(const struct config *cfg)
{
	struct jw w = { 0 };
	cJSON *root = cJSON_CreateObject();
	cJSON *a = put(&w, root, "workloads", cJSON_CreateArray());
	for (size_t i = 0; i < cfg->nworkloads && !w.oom; i++)
		put_workload(&w, a, &cfg->workloads[i]);
	a = put(&w, root, "services", cJSON_CreateArray());
	for (size_t i = 0; i < cfg->nservices && !w.oom; i++)
		put_service(&w, a, &cfg->services[i]);
	a = put(&w, root, "policies", cJSON_CreateArray());
	for (size_t i = 0; i < cfg->npolicies && !w.oom; i++)
		put_policy(&w, a, &cfg->policies[i]);
	if (w.oom) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}
