/*
 * Checks across objects, once every object has been read on its own:
 * unique uids, addresses, service hostnames, policy names and VIP:ports;
 * VIPs that are also workload addresses; and the derived data (each
 * service's endpoints). What a healthy cluster produces is only reported,
 * as a warning: a service that selects no workload, a workload naming a
 * service or policy not in the file (yet), a policy that applies to no
 * workload.
 *
 * Everything is sort-and-scan (O(n log n)), never pairwise, so a large or
 * hostile file costs little. Errors point at the later of two clashing
 * entries and name the earlier one.
 */
#include "config_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool errs_full(struct vctx *c)
{
	if (c->errs->n < CONFIG_MAX_ERRORS)
		return false;
	c->errs->dropped++;
	return true;
}

/* Past CONFIG_MAX_WARNINGS a warning is only counted: callers check this
 * before looking for its node, so that finding nodes stays bounded. */
static bool warns_full(struct vctx *c)
{
	if (c->warns.n < CONFIG_MAX_WARNINGS)
		return false;
	c->warns.dropped++;
	return true;
}

/* The JSON node of element i of top-level array `top`, and of its `field`. */
static const cJSON *jelem(const struct vctx *c, const char *top, size_t i)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(c->root, top);
	return arr ? cJSON_GetArrayItem(arr, (int)i) : NULL;
}

static const cJSON *jfield(const struct vctx *c, const char *top, size_t i, const char *field)
{
	return cJSON_GetObjectItemCaseSensitive(jelem(c, top, i), field);
}

/* Element of array `arr` whose string equals s or parses to ip (the
 * (skip+1)-th such), with its index; NULL if none. */
static const cJSON *jfind(const cJSON *arr, const char *s, const struct ip *ip, int skip,
			  size_t *idx)
{
	size_t i = 0;
	for (const cJSON *e = arr ? arr->child : NULL; e; e = e->next, i++) {
		const char *str = cJSON_GetStringValue(e);
		struct ip x;
		size_t netlen;
		bool hit = str && (s ? strcmp(str, s) == 0 :
				   (network_addr_parse(str, &netlen, &x) &&
				    x.family == ip->family && memcmp(x.bytes, ip->bytes, 16) == 0));
		if (hit && skip-- == 0) {
			*idx = i;
			return e;
		}
	}
	*idx = 0;
	return NULL;
}

/* ---- sorting helpers ---- */

struct sref {
	const char *key;
	size_t i;
};

static int sref_cmp(const void *a, const void *b)
{
	const struct sref *x = a, *y = b;
	int r = strcmp(x->key, y->key);
	return r ? r : (x->i > y->i) - (x->i < y->i);
}

/* Sorted (key, index) pairs; keys that are "" (missing, already reported)
 * are left out. NULL and *n = 0 when there are none. */
static struct sref *sorted_keys(struct vctx *c, size_t count, size_t stride,
				const void *base, size_t off, size_t *n)
{
	struct sref *v = count ? malloc(count * sizeof(*v)) : NULL;
	*n = 0;
	if (count && !v) {
		c->oom = true;
		return NULL;
	}
	for (size_t i = 0; i < count; i++) {
		const char *k = *(char *const *)((const char *)base + i * stride + off);
		if (k && *k)
			v[(*n)++] = (struct sref){ k, i };
	}
	if (*n > 1)
		qsort(v, *n, sizeof(*v), sref_cmp);
	return v;
}

/* First entry with key >= key in sorted v; v[n] if none. */
static const struct sref *lower_bound(const struct sref *v, size_t n, const char *key)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(v[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return &v[lo];
}

static const struct sref *find_key(const struct sref *v, size_t n, const char *key)
{
	if (n == 0)
		return NULL;
	const struct sref *r = lower_bound(v, n, key);
	return r < v + n && strcmp(r->key, key) == 0 ? r : NULL;
}

/* ---- uids, service keys, policy keys ---- */

/* Report every entry whose key an earlier one has; mark it in dup[]. */
static void check_unique(struct vctx *c, const struct sref *v, size_t n, const char *top,
			 const char *field, const char *what, bool *dup)
{
	size_t run = 0;
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i].key, v[run].key) != 0) {
			run = i;
			continue;
		}
		if (dup)
			dup[v[i].i] = true;
		if (errs_full(c))
			continue;
		char path[96];
		snprintf(path, sizeof(path), "%s[%zu].%s", top, v[i].i, field);
		verr_path(c, jfield(c, top, v[i].i, field), false, path,
			  "duplicate %s %s: %s[%zu] has it too", what, vq(c, 0, v[i].key), top,
			  v[run].i);
	}
}

/* ---- workload addresses ---- */

struct aref {
	const char *net;
	const struct ip *ip;
	size_t w;
};

static int ip_cmp(const struct ip *a, const struct ip *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->bytes, b->bytes, sizeof(a->bytes));
}

static int aref_cmp_addr(const struct aref *x, const struct aref *y)
{
	int r = strcmp(x->net, y->net);
	return r ? r : ip_cmp(x->ip, y->ip);
}

static int aref_cmp(const void *a, const void *b)
{
	const struct aref *x = a, *y = b;
	int r = aref_cmp_addr(x, y);
	return r ? r : (x->w > y->w) - (x->w < y->w);
}

static void addr_error(struct vctx *c, const struct aref *first, const struct aref *e,
		       int skip)
{
	const struct config *cfg = c->cfg;
	char ip[64], path[96];
	size_t idx;
	const cJSON *node = jfind(jfield(c, "workloads", e->w, "workloadIps"), NULL, e->ip, skip,
				  &idx);
	snprintf(path, sizeof(path), "workloads[%zu].workloadIps[%zu]", e->w, idx);
	config_ip_format(e->ip, ip, sizeof(ip));
	if (first->w == e->w)
		verr_path(c, node, false, path, "address %s is listed twice", ip);
	else
		verr_path(c, node, false, path, "address %s on network %s is already used by "
			  "workloads[%zu] (uid %s)", ip, vq(c, 0, e->net), first->w,
			  vq(c, 1, cfg->workloads[first->w].uid));
}

/* Sorted (network, address, workload) of every workload address. */
static struct aref *check_addresses(struct vctx *c, size_t *np)
{
	const struct config *cfg = c->cfg;
	size_t n = 0;
	for (size_t i = 0; i < cfg->nworkloads; i++)
		n += cfg->workloads[i].nips;
	struct aref *v = n ? malloc(n * sizeof(*v)) : NULL;
	*np = 0;
	if (n && !v) {
		c->oom = true;
		return NULL;
	}
	for (size_t i = 0; i < cfg->nworkloads; i++)
		for (size_t j = 0; j < cfg->workloads[i].nips; j++)
			v[(*np)++] = (struct aref){ cfg->workloads[i].network,
						    &cfg->workloads[i].ips[j], i };
	if (n > 1)
		qsort(v, n, sizeof(*v), aref_cmp);
	/* Sorted by (address, workload): within a run of one address, a
	 * workload's own entries are adjacent, so how many times it listed
	 * the address before this entry is counted as we go, never by
	 * looking back over the run (which made 100,000 workloads sharing one
	 * address cost 5e9 comparisons). */
	size_t run = 0;
	int skip = 0;
	for (size_t i = 1; i < n; i++) {
		if (aref_cmp_addr(&v[i], &v[run]) != 0) {
			run = i;
			skip = 0;
			continue;
		}
		skip = v[i].w == v[i - 1].w ? skip + 1 : 0;
		if (!errs_full(c))
			addr_error(c, &v[run], &v[i], skip);
	}
	return v;
}

/* ---- VIPs ---- */

struct vref {
	const char *net;
	const struct ip *ip;
	uint16_t port;
	size_t s;
	size_t v;
};

static int vref_cmp_vip(const struct vref *x, const struct vref *y)
{
	int r = strcmp(x->net, y->net);
	return r ? r : ip_cmp(x->ip, y->ip);
}

static int vref_cmp(const void *a, const void *b)
{
	const struct vref *x = a, *y = b;
	int r = vref_cmp_vip(x, y);
	if (!r)
		r = (x->port > y->port) - (x->port < y->port);
	if (!r)
		r = (x->s > y->s) - (x->s < y->s);
	return r ? r : (x->v > y->v) - (x->v < y->v);
}

/* The node and path of services[s].vips[v] (v counts parsed VIPs). */
static const cJSON *vip_node(struct vctx *c, size_t s, size_t v, char *path, size_t len)
{
	const struct service *svc = &c->cfg->services[s];
	int skip = 0;
	size_t idx;
	for (size_t k = 0; k < v; k++)
		skip += strcmp(svc->vips[k].network, svc->vips[v].network) == 0 &&
			ip_cmp(&svc->vips[k].ip, &svc->vips[v].ip) == 0;
	const cJSON *node = jfind(jfield(c, "services", s, "vips"), NULL, &svc->vips[v].ip,
				  skip, &idx);
	snprintf(path, len, "services[%zu].vips[%zu]", s, idx);
	return node;
}

static void vip_error(struct vctx *c, size_t s, size_t v, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void vip_error(struct vctx *c, size_t s, size_t v, const char *fmt, ...)
{
	char path[96];
	va_list ap;
	if (errs_full(c))
		return;
	const cJSON *node = vip_node(c, s, v, path, sizeof(path));
	va_start(ap, fmt);
	verr_v(c, node, false, path, fmt, ap);
	va_end(ap);
}

/* (network, VIP, port, service, vip index) of every service VIP, with
 * port 0 and one entry per VIP when ports is false. */
static struct vref *vip_list(struct vctx *c, bool ports, size_t *np)
{
	const struct config *cfg = c->cfg;
	size_t n = 0;
	for (size_t s = 0; s < cfg->nservices; s++)
		n += cfg->services[s].nvips * (ports ? cfg->services[s].nports : 1);
	struct vref *v = n ? malloc(n * sizeof(*v)) : NULL;
	*np = 0;
	if (n && !v) {
		c->oom = true;
		return NULL;
	}
	for (size_t s = 0; s < cfg->nservices; s++) {
		const struct service *svc = &cfg->services[s];
		for (size_t k = 0; k < svc->nvips; k++) {
			struct vref e = { svc->vips[k].network, &svc->vips[k].ip, 0, s, k };
			for (size_t p = 0; p < (ports ? svc->nports : 1); p++) {
				e.port = ports ? svc->ports[p].port : 0;
				v[(*np)++] = e;
			}
		}
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), vref_cmp);
	return v;
}

static const struct aref *find_addr(const struct aref *a, size_t n, const struct vref *vip)
{
	struct aref key = { vip->net, vip->ip, 0 };
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (aref_cmp_addr(&a[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && aref_cmp_addr(&a[lo], &key) == 0 ? &a[lo] : NULL;
}

/* A VIP listed twice by one service, or that is also a workload address. */
static void check_vips(struct vctx *c, const struct aref *addrs, size_t naddrs)
{
	const struct config *cfg = c->cfg;
	size_t n;
	char ip[64];
	struct vref *v = vip_list(c, false, &n);
	for (size_t i = 0; i < n; i++) {
		config_ip_format(v[i].ip, ip, sizeof(ip));
		if (i > 0 && v[i].s == v[i - 1].s && vref_cmp_vip(&v[i], &v[i - 1]) == 0) {
			vip_error(c, v[i].s, v[i].v, "VIP %s is listed twice", ip);
			continue;
		}
		const struct aref *a = find_addr(addrs, naddrs, &v[i]);
		if (a)
			vip_error(c, v[i].s, v[i].v, "VIP %s is also the address of workloads[%zu] "
				  "(uid %s)", ip, a->w, vq(c, 0, cfg->workloads[a->w].uid));
	}
	free(v);
}

/* Where services[s]'s VIPs start in one flat numbering of all VIPs. */
static size_t *vip_bases(struct vctx *c, size_t *total)
{
	const struct config *cfg = c->cfg;
	size_t *base = malloc((cfg->nservices + 1) * sizeof(*base));
	if (!base) {
		c->oom = true;
		return NULL;
	}
	base[0] = 0;
	for (size_t s = 0; s < cfg->nservices; s++)
		base[s + 1] = base[s] + cfg->services[s].nvips;
	*total = base[cfg->nservices];
	return base;
}

/* Two services with the same VIP and port: one error per clashing VIP. */
static void check_vip_ports(struct vctx *c)
{
	const struct config *cfg = c->cfg;
	uint64_t pairs = 0;
	for (size_t s = 0; s < cfg->nservices && pairs <= CONFIG_MAX_VIP_PORTS; s++)
		pairs += (uint64_t)cfg->services[s].nvips * cfg->services[s].nports;
	if (pairs > CONFIG_MAX_VIP_PORTS) {
		verr_path(c, cJSON_GetObjectItemCaseSensitive(c->root, "services"), false,
			  "services", "more than %u VIP:port pairs (VIPs times ports, summed "
			  "over services)", CONFIG_MAX_VIP_PORTS);
		return;
	}
	size_t n, nvips, run = 0;
	size_t *base = vip_bases(c, &nvips);
	bool *reported = base ? calloc(nvips + 1, sizeof(bool)) : NULL;
	struct vref *v = reported ? vip_list(c, true, &n) : NULL;
	for (size_t i = 1; v && i < n; i++) {
		if (vref_cmp_vip(&v[i], &v[run]) != 0 || v[i].port != v[run].port) {
			run = i;
			continue;
		}
		bool *r = &reported[base[v[i].s] + v[i].v];
		if (v[i].s == v[run].s || *r)
			continue;	/* a VIP listed twice (check_vips), or said already */
		*r = true;
		char ip[64];
		vip_error(c, v[i].s, v[i].v, "VIP %s port %u is already used by services[%zu] "
			  "(%s)", config_ip_format(v[i].ip, ip, sizeof(ip)), v[i].port, v[run].s,
			  cfg->services[v[run].s].key);
	}
	if (base && !reported)
		c->oom = true;
	free(v);
	free(reported);
	free(base);
}

/* ---- endpoints and references ---- */

/* A workload's service that is not in the file: allowed (it may come
 * later, as in ztunnel), reported at the key. */
static void warn_missing_service(struct vctx *c, size_t w, const char *key)
{
	if (warns_full(c))
		return;
	const cJSON *svcs = jfield(c, "workloads", w, "services");
	size_t mark = path_mark(c);
	path_field(c, "workloads");
	path_index(c, w);
	path_field(c, "services");
	path_key(c, key);
	vwarn_path(c, cJSON_GetObjectItemCaseSensitive(svcs, key), true, c->path,
		   "service %s is not in the file (yet): this workload is one of its endpoints "
		   "once it is", vq(c, 0, key));
	path_reset(c, mark);
}

/* Fill each service's endpoints from the workloads' services maps. */
static void derive_selected(struct vctx *c, const struct sref *svcs, size_t nsvcs)
{
	struct config *cfg = c->cfg;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t w = 0; w < cfg->nworkloads; w++) {
			const struct workload *wl = &cfg->workloads[w];
			for (size_t k = 0; k < wl->nservices; k++) {
				const struct sref *r = find_key(svcs, nsvcs, wl->services[k].key);
				if (!r) {
					if (pass == 0)
						warn_missing_service(c, w, wl->services[k].key);
					continue;
				}
				struct service *s = &cfg->services[r->i];
				if (pass == 1 && s->endpoints)
					s->endpoints[s->nendpoints] = w;
				s->nendpoints++;
			}
		}
		for (size_t s = 0; pass == 0 && s < cfg->nservices; s++) {
			struct service *svc = &cfg->services[s];
			/* room for the listed endpoints too */
			svc->endpoints = vnew(c, svc->nendpoints + svc->nlisted, sizeof(size_t));
			svc->nendpoints = 0;
		}
	}
}

struct ep {
	size_t w;
	const struct service_endpoint *listed;	/* NULL: selected by the workload */
	size_t order;
};

static int ep_cmp(const void *a, const void *b)
{
	const struct ep *x = a, *y = b;
	if (x->w != y->w)
		return x->w < y->w ? -1 : 1;
	return (x->order > y->order) - (x->order < y->order);
}

/* Entry `m` (a member of services[s].endpoints) names workload uid, which
 * is not in the file. */
static void warn_listed_unknown(struct vctx *c, size_t s, const cJSON *m, const char *uid)
{
	size_t mark = path_mark(c);
	path_field(c, "services");
	path_index(c, s);
	path_field(c, "endpoints");
	if (m) {
		path_key(c, m->string);
		path_field(c, "workloadUid");
	}
	vwarn_path(c, cJSON_GetObjectItemCaseSensitive(m, "workloadUid"), false, c->path,
		   "workload %s is not in the file (yet): this endpoint is skipped until it is",
		   vq(c, 0, uid));
	path_reset(c, mark);
}

/* Add the workloads a service's own "endpoints" name: merged with the
 * selected ones (a workload once, its own selection winning), ascending. */
static void derive_listed(struct vctx *c, size_t s, const struct sref *uids, size_t nuids)
{
	struct service *svc = &c->cfg->services[s];
	size_t n = 0;
	if (!svc->nlisted || !svc->endpoints)
		return;
	struct ep *v = malloc((svc->nendpoints + svc->nlisted) * sizeof(*v));
	if (!v) {
		c->oom = true;
		return;
	}
	for (size_t i = 0; i < svc->nendpoints; i++, n++)
		v[n] = (struct ep){ svc->endpoints[i], NULL, n };
	/* listed[i] is the i-th member of "endpoints" when the file is valid
	 * (and warnings are dropped when it is not). */
	const cJSON *eps = jfield(c, "services", s, "endpoints");
	const cJSON *m = eps ? eps->child : NULL;
	for (size_t i = 0; i < svc->nlisted; i++, m = m ? m->next : NULL) {
		const struct sref *r = find_key(uids, nuids, svc->listed[i].workload_uid);
		if (r) {
			v[n] = (struct ep){ r->i, &svc->listed[i], n };
			n++;
		} else if (!warns_full(c)) {
			warn_listed_unknown(c, s, m, svc->listed[i].workload_uid);
		}
	}
	qsort(v, n, sizeof(*v), ep_cmp);
	svc->endpoint_listed = vnew(c, n, sizeof(*svc->endpoint_listed));
	svc->nendpoints = 0;
	for (size_t i = 0; i < n && svc->endpoint_listed; i++) {
		if (i > 0 && v[i].w == v[i - 1].w)
			continue;
		svc->endpoint_listed[svc->nendpoints] = v[i].listed;
		svc->endpoints[svc->nendpoints++] = v[i].w;
	}
	free(v);
}

static void derive_endpoints(struct vctx *c, const struct sref *svcs, size_t nsvcs,
			     const struct sref *uids, size_t nuids, const bool *dup)
{
	struct config *cfg = c->cfg;
	derive_selected(c, svcs, nsvcs);
	for (size_t s = 0; s < cfg->nservices && !c->oom; s++)
		derive_listed(c, s, uids, nuids);
	for (size_t s = 0; s < cfg->nservices; s++) {
		const struct service *svc = &cfg->services[s];
		char path[64];
		if (svc->nendpoints || svc->nlisted || dup[s] || !*svc->namespace ||
		    !*svc->hostname || warns_full(c))
			continue;
		snprintf(path, sizeof(path), "services[%zu]", s);
		vwarn_path(c, jelem(c, "services", s), false, path, "service %s selects no "
			   "workload (none lists it in its \"services\", it has no \"endpoints\"): "
			   "its VIPs have no endpoint", vq(c, 0, svc->key));
	}
}

/* A workload naming a policy not in the file: skipped when authorizing, as
 * ztunnel skips a policy it has not received. Marks listed policies. */
static void check_policy_refs(struct vctx *c, const struct sref *pols, size_t npols,
			      bool *listed)
{
	const struct config *cfg = c->cfg;
	for (size_t w = 0; w < cfg->nworkloads; w++) {
		const struct workload *wl = &cfg->workloads[w];
		for (size_t k = 0; k < wl->npolicies; k++) {
			const char *ref = wl->authorization_policies[k];
			const struct sref *r = find_key(pols, npols, ref);
			if (r) {
				listed[r->i] = true;
				continue;
			}
			if (warns_full(c))
				continue;
			char path[96];
			size_t idx;
			const cJSON *node = jfind(jfield(c, "workloads", w, "authorizationPolicies"),
						  ref, NULL, 0, &idx);
			snprintf(path, sizeof(path), "workloads[%zu].authorizationPolicies[%zu]", w,
				 idx);
			vwarn_path(c, node, false, path, "policy %s is not in the file (yet): "
				   "skipped when authorizing", vq(c, 0, ref));
		}
	}
}

/* Namespace and WorkloadSelector policies that apply to no workload. */
static void check_policy_reach(struct vctx *c, const bool *listed)
{
	const struct config *cfg = c->cfg;
	size_t nns = 0, scoped = 0;
	for (size_t i = 0; i < cfg->npolicies; i++)
		scoped += cfg->policies[i].scope == SCOPE_NAMESPACE;
	struct sref *ns = scoped ? sorted_keys(c, cfg->nworkloads, sizeof(struct workload),
					       cfg->workloads, offsetof(struct workload, namespace),
					       &nns) : NULL;
	for (size_t i = 0; i < cfg->npolicies && !c->oom; i++) {
		const struct policy *p = &cfg->policies[i];
		bool nowhere = p->scope == SCOPE_NAMESPACE && *p->namespace && !listed[i] &&
			       !find_key(ns, nns, p->namespace);
		bool unlisted = p->scope == SCOPE_WORKLOAD_SELECTOR && *p->key && !listed[i];
		char path[64];
		if ((!nowhere && !unlisted) || warns_full(c))
			continue;
		snprintf(path, sizeof(path), "policies[%zu]", i);
		if (nowhere)
			vwarn_path(c, jelem(c, "policies", i), false, path, "policy %s applies to "
				   "no workload: namespace %s has none", vq(c, 0, p->key),
				   vq(c, 1, p->namespace));
		else
			vwarn_path(c, jelem(c, "policies", i), false, path, "policy %s applies to "
				   "no workload: none lists it in its \"authorizationPolicies\"",
				   vq(c, 0, p->key));
	}
	free(ns);
}

void model_validate(struct vctx *c)
{
	struct config *cfg = c->cfg;
	size_t nuids, nsvcs, npols, naddrs;
	if (c->oom)
		return;
	bool *dup = calloc(cfg->nservices + 1, sizeof(bool));
	bool *listed = calloc(cfg->npolicies + 1, sizeof(bool));
	struct sref *uids = sorted_keys(c, cfg->nworkloads, sizeof(struct workload),
					cfg->workloads, offsetof(struct workload, uid), &nuids);
	struct sref *svcs = sorted_keys(c, cfg->nservices, sizeof(struct service),
					cfg->services, offsetof(struct service, key), &nsvcs);
	struct sref *pols = sorted_keys(c, cfg->npolicies, sizeof(struct policy),
					cfg->policies, offsetof(struct policy, key), &npols);
	if (!dup || !listed)
		c->oom = true;
	if (!c->oom) {
		check_unique(c, uids, nuids, "workloads", "uid", "uid", NULL);
		check_unique(c, svcs, nsvcs, "services", "hostname", "service", dup);
		check_unique(c, pols, npols, "policies", "name", "policy", NULL);
		struct aref *addrs = check_addresses(c, &naddrs);
		if (!c->oom)
			check_vips(c, addrs, naddrs);
		free(addrs);
		if (!c->oom)
			check_vip_ports(c);
		if (!c->oom)
			derive_endpoints(c, svcs, nsvcs, uids, nuids, dup);
		check_policy_refs(c, pols, npols, listed);
		check_policy_reach(c, listed);
	}
	free(dup);
	free(listed);
	free(uids);
	free(svcs);
	free(pols);
}
