/*
 * Workloads and services, field by field, with ztunnel's local-config
 * names (src/state/workload.rs, src/state/service.rs, src/xds.rs
 * LocalConfig in istio/ztunnel). Fields ztunnel accepts but zring does not
 * use yet are validated and dropped; docs/config.md lists which.
 */
#include "config_int.h"

#include <string.h>

static const char *const protocol_names[] = { "TCP", "HBONE", NULL };
static const char *const status_names[] = { "Healthy", "Unhealthy", NULL };
static const char *const network_mode_names[] = { "Standard", "HostNetwork", NULL };
static const char *const app_tunnel_names[] = { "NONE", "PROXY", NULL };
static const char *const lb_mode_names[] = { "Standard", "Strict", "Failover", "Passthrough",
					     NULL };
static const char *const lb_health_names[] = { "OnlyHealthy", "AllowAll", NULL };
static const char *const lb_scope_names[] = { "Region", "Zone", "Subzone", "Node", "Cluster",
					      "Network", NULL };
static const char *const ip_family_names[] = { "Dual", "IPv4", "IPv6", NULL };
static const char *const visibility_names[] = { "Public", "Namespace", NULL };

/* ---- shared shapes ---- */

/* A port number 1-65535 as a JSON number. */
static void v_port(struct vctx *c, const cJSON *v, void *obj)
{
	uint64_t u;
	vuint(c, v, 1, 65535, &u);
}

/* ztunnel's GatewayAddress destination: "network/ip" or "namespace/hostname". */
static void v_gateway_destination(struct vctx *c, const cJSON *v, void *obj)
{
	const char *s, *slash;
	if (!vstring(c, v, &s))
		return;
	slash = strchr(s, '/');
	if (!slash || (slash == s && !slash[1]))
		verr(c, v, false, "invalid destination %s: expected \"network/ip\" or "
		     "\"namespace/hostname\"", vq(c, 0, s));
}

/* waypoint, networkGateway: accepted, not used. */
static void v_gateway(struct vctx *c, const cJSON *v, void *obj)
{
	static const struct field f[] = {
		FIELD_FN("destination", FIELD_REQUIRED, v_gateway_destination),
		FIELD_FN("hboneMtlsPort", FIELD_REQUIRED, v_port),
	};
	vobject(c, v, f, sizeof(f) / sizeof(f[0]), NULL);
}

static void v_weighted_waypoint(struct vctx *c, const cJSON *v, void *obj)
{
	static const struct field f[] = {
		FIELD_FN("destination", FIELD_REQUIRED, v_gateway),
		FIELD_SKIP("weight", FT_U32, FIELD_REQUIRED),
	};
	vobject(c, v, f, sizeof(f) / sizeof(f[0]), NULL);
}

/* Call fn on each element of array v with the path extended by [i]. */
static size_t for_each(struct vctx *c, const cJSON *v, field_fn fn, void *obj)
{
	const cJSON *e;
	size_t n, i = 0;
	if (!varray(c, v, &e, &n))
		return 0;
	for (; e; e = e->next, i++) {
		size_t mark = path_mark(c);
		path_index(c, i);
		fn(c, e, obj);
		path_reset(c, mark);
	}
	return n;
}

static void v_weighted_waypoints(struct vctx *c, const cJSON *v, void *obj)
{
	for_each(c, v, v_weighted_waypoint, NULL);
}

static bool has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

/* "namespace/name" with both parts non-empty; `what` says which. */
static bool check_ns_name(struct vctx *c, const cJSON *v, const char *s, bool at_key,
			  const char *what, const char *name)
{
	const char *slash = strchr(s, '/');
	if (slash && slash != s && slash[1] && !has_control(s))
		return true;
	verr(c, v, at_key, "invalid %s %s: expected \"namespace/%s\"", what, vq(c, 0, s), name);
	return false;
}

/* ---- workloads ---- */

static void wl_service_account(struct vctx *c, const cJSON *v, void *obj)
{
	struct workload *w = obj;
	const char *s;
	if (vstring(c, v, &s) && *s && check_segment(c, v, s))
		w->service_account = vdup(c, s);
}

static void wl_trust_domain(struct vctx *c, const cJSON *v, void *obj)
{
	struct workload *w = obj;
	const char *s;
	if (vstring(c, v, &s) && *s && check_trust_domain(c, v, s))
		w->trust_domain = vdup(c, s);
}

static void wl_ips(struct vctx *c, const cJSON *v, void *obj)
{
	struct workload *w = obj;
	const cJSON *e;
	size_t n, i = 0;
	const char *s;
	struct ip scratch;
	if (!varray(c, v, &e, &n))
		return;
	w->ips = vnew(c, n, sizeof(*w->ips));
	for (; e; e = e->next, i++) {
		size_t mark = path_mark(c);
		path_index(c, i);
		if (vstring(c, e, &s)) {
			struct ip *ip = w->ips ? &w->ips[w->nips] : &scratch;
			if (!ip_parse(s, ip))
				verr(c, e, false, "invalid IP address %s", vq(c, 0, s));
			else if (w->ips)
				w->nips++;
		}
		path_reset(c, mark);
	}
}

static void wl_services(struct vctx *c, const cJSON *v, void *obj)
{
	struct workload *w = obj;
	size_t n = 0;
	if (!vobject_type(c, v))
		return;
	vdup_keys(c, v);
	for (const cJSON *m = v->child; m; m = m->next)
		n++;
	w->services = vnew(c, n, sizeof(*w->services));
	for (const cJSON *m = v->child; m && w->services; m = m->next) {
		size_t mark = path_mark(c);
		struct workload_service *ws = &w->services[w->nservices];
		path_key(c, m->string);
		if (check_ns_name(c, m, m->string, true, "service key", "hostname"))
			ws->key = vdup(c, m->string);
		vport_map(c, m, &ws->ports, &ws->nports);
		if (ws->key)
			w->nservices++;
		path_reset(c, mark);
	}
}

static void wl_policy_ref(struct vctx *c, const cJSON *v, void *obj)
{
	struct workload *w = obj;
	const char *s;
	if (vstring(c, v, &s) && check_ns_name(c, v, s, false, "policy reference", "name"))
		w->authorization_policies[w->npolicies++] = vdup(c, s);
}

static void wl_policies(struct vctx *c, const cJSON *v, void *obj)
{
	struct workload *w = obj;
	const cJSON *e;
	size_t n;
	if (!varray(c, v, &e, &n))
		return;
	w->authorization_policies = vnew(c, n, sizeof(char *));
	if (w->authorization_policies || n == 0)
		for_each(c, v, wl_policy_ref, w);
}

static void wl_locality(struct vctx *c, const cJSON *v, void *obj)
{
	static const struct field f[] = {
		FIELD_AT("region", FT_STRING, 0, struct locality, region),
		FIELD_AT("zone", FT_STRING, 0, struct locality, zone),
		FIELD_AT("subzone", FT_STRING, 0, struct locality, subzone),
	};
	struct workload *w = obj;
	vobject(c, v, f, sizeof(f) / sizeof(f[0]), &w->locality);
}

static void v_app_tunnel(struct vctx *c, const cJSON *v, void *obj)
{
	static const struct field f[] = {
		FIELD_SKIP_ENUM("protocol", FIELD_REQUIRED, app_tunnel_names),
		FIELD_FN("port", FIELD_NULLABLE, v_port),
	};
	vobject(c, v, f, sizeof(f) / sizeof(f[0]), NULL);
}

static void wl_netns(struct vctx *c, const cJSON *v, void *obj)
{
	struct workload *w = obj;
	const char *s;
	if (!vstring(c, v, &s) || !check_id(c, v, s))
		return;
	if (s[0] != '/')
		verr(c, v, false, "invalid network namespace %s: expected an absolute path such "
		     "as \"/var/run/netns/pod1\"", vq(c, 0, s));
	else
		w->netns = vdup(c, s);
}

#define W(n, t, fl, m) FIELD_AT(n, t, fl, struct workload, m)

static const struct field workload_fields[] = {
	W("uid", FT_ID, FIELD_REQUIRED, uid),
	W("name", FT_STRING, 0, name),
	W("namespace", FT_SEGMENT, FIELD_REQUIRED, namespace),
	FIELD_FN("serviceAccount", 0, wl_service_account),
	FIELD_FN("trustDomain", 0, wl_trust_domain),
	FIELD_FN("workloadIps", FIELD_REQUIRED, wl_ips),
	FIELD_ENUM("protocol", 0, struct workload, protocol, protocol_names),
	FIELD_ENUM("status", 0, struct workload, status, status_names),
	W("node", FT_STRING, 0, node),
	W("network", FT_STRING, 0, network),
	W("canonicalName", FT_STRING, 0, canonical_name),
	W("canonicalRevision", FT_STRING, 0, canonical_revision),
	W("workloadName", FT_STRING, 0, workload_name),
	W("workloadType", FT_STRING, 0, workload_type),
	W("clusterId", FT_STRING, 0, cluster_id),
	W("hostname", FT_STRING, 0, hostname),
	FIELD_FN("services", 0, wl_services),
	W("capacity", FT_U32, 0, capacity),
	FIELD_FN("authorizationPolicies", 0, wl_policies),
	FIELD_FN("locality", 0, wl_locality),
	FIELD_SKIP_ENUM("networkMode", 0, network_mode_names),
	FIELD_SKIP("nativeTunnel", FT_BOOL, 0),
	FIELD_FN("waypoint", FIELD_NULLABLE, v_gateway),
	FIELD_FN("networkGateway", FIELD_NULLABLE, v_gateway),
	FIELD_FN("applicationTunnel", FIELD_NULLABLE, v_app_tunnel),
	FIELD_FN("zringNetns", 0, wl_netns),
};

static void workload_defaults(struct vctx *c, struct workload *w)
{
	char **strs[] = { &w->uid, &w->name, &w->namespace, &w->node, &w->network,
			  &w->canonical_name, &w->canonical_revision, &w->workload_name,
			  &w->cluster_id, &w->hostname, &w->locality.region,
			  &w->locality.zone, &w->locality.subzone };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		*strs[i] = vor_empty(c, *strs[i]);
	if (!w->service_account)
		w->service_account = vdup(c, "default");
	if (!w->trust_domain)
		w->trust_domain = vdup(c, "cluster.local");
	if (!w->workload_type || !*w->workload_type)
		w->workload_type = vdup(c, "pod");
	if (!c->oom)
		w->identity = vprintf_dup(c, "spiffe://%s/ns/%s/sa/%s", w->trust_domain,
					  w->namespace, w->service_account);
}

static void workload_parse(struct vctx *c, const cJSON *v, void *obj)
{
	struct config *cfg = c->cfg;
	struct workload *w = &cfg->workloads[cfg->nworkloads++];
	w->capacity = 1;
	vobject(c, v, workload_fields, sizeof(workload_fields) / sizeof(workload_fields[0]), w);
	workload_defaults(c, w);
	const cJSON *sa = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "serviceAccount") :
					      NULL;
	if (cJSON_IsObject(v) && (!sa || (cJSON_IsString(sa) && !*sa->valuestring)))
		vwarn_path(c, v, false, c->path, "no serviceAccount: the identity is %s",
			   c->warns.n < CONFIG_MAX_WARNINGS ?
			   vq(c, 0, w->identity ? w->identity : "") : "");
}

/* ---- services ---- */

static void svc_hostname(struct vctx *c, const cJSON *v, void *obj)
{
	struct service *s = obj;
	const char *h;
	if (vstring(c, v, &h) && check_hostname(c, v, h))
		s->hostname = vdup(c, h);
}

static void svc_vip(struct vctx *c, const cJSON *v, void *obj)
{
	struct service *s = obj;
	struct service_vip *vip = &s->vips[s->nvips];
	const char *str;
	size_t netlen;
	if (!vstring(c, v, &str))
		return;
	if (!network_addr_parse(str, &netlen, &vip->ip)) {
		verr(c, v, false, "invalid VIP %s: expected \"network/ip\" such as "
		     "\"/10.96.0.10\"", vq(c, 0, str));
		return;
	}
	vip->network = vnew(c, netlen + 1, 1);
	if (vip->network) {
		memcpy(vip->network, str, netlen);
		s->nvips++;
	}
}

static void svc_vips(struct vctx *c, const cJSON *v, void *obj)
{
	struct service *s = obj;
	const cJSON *e;
	size_t n;
	if (!varray(c, v, &e, &n))
		return;
	s->vips = vnew(c, n, sizeof(*s->vips));
	if (s->vips || n == 0)
		for_each(c, v, svc_vip, s);
}

static void v_cidr(struct vctx *c, const cJSON *v, void *obj)
{
	const char *s;
	struct cidr cidr;
	if (vstring(c, v, &s) && (!strchr(s, '/') || !cidr_parse(s, &cidr)))
		verr(c, v, false, "invalid CIDR %s: expected an address block such as "
		     "\"10.96.0.0/16\"", vq(c, 0, s));
}

static void v_cidr_vip(struct vctx *c, const cJSON *v, void *obj)
{
	static const struct field f[] = {
		FIELD_SKIP("network", FT_STRING, FIELD_REQUIRED),
		FIELD_FN("cidr", FIELD_REQUIRED, v_cidr),
	};
	vobject(c, v, f, sizeof(f) / sizeof(f[0]), NULL);
}

static void svc_cidr_vips(struct vctx *c, const cJSON *v, void *obj)
{
	for_each(c, v, v_cidr_vip, NULL);
}

static void svc_ports(struct vctx *c, const cJSON *v, void *obj)
{
	struct service *s = obj;
	vport_map(c, v, &s->ports, &s->nports);
}

static void ep_ports(struct vctx *c, const cJSON *v, void *obj)
{
	struct service_endpoint *e = obj;
	vport_map(c, v, &e->ports, &e->nports);
}

static void v_endpoint(struct vctx *c, const cJSON *v, struct service_endpoint *e)
{
	static const struct field f[] = {
		FIELD_AT("workloadUid", FT_ID, FIELD_REQUIRED, struct service_endpoint,
			 workload_uid),
		FIELD_FN("port", FIELD_REQUIRED, ep_ports),
		FIELD_ENUM("status", FIELD_REQUIRED, struct service_endpoint, status,
			   status_names),
	};
	vobject(c, v, f, sizeof(f) / sizeof(f[0]), e);
}

/* endpoints: {"key": Endpoint}; ztunnel keys them by workload uid. Each
 * names a workload the service sends to besides those that select it
 * (config_validate.c derives the endpoints). */
static void svc_endpoints(struct vctx *c, const cJSON *v, void *obj)
{
	struct service *s = obj;
	size_t n = 0;
	if (!vobject_type(c, v))
		return;
	vdup_keys(c, v);
	for (const cJSON *m = v->child; m; m = m->next)
		n++;
	s->listed = vnew(c, n, sizeof(*s->listed));
	for (const cJSON *m = v->child; m && s->listed; m = m->next) {
		size_t mark = path_mark(c);
		struct service_endpoint *e = &s->listed[s->nlisted];
		path_key(c, m->string);
		v_endpoint(c, m, e);
		if (e->workload_uid)
			s->nlisted++;
		else
			*e = (struct service_endpoint){ 0 };
		path_reset(c, mark);
	}
}

static void svc_san(struct vctx *c, const cJSON *v, void *obj)
{
	struct service *s = obj;
	const char *str;
	if (vstring(c, v, &str) && check_id(c, v, str))
		s->subject_alt_names[s->nsans++] = vdup(c, str);
}

static void svc_sans(struct vctx *c, const cJSON *v, void *obj)
{
	struct service *s = obj;
	const cJSON *e;
	size_t n;
	if (!varray(c, v, &e, &n))
		return;
	s->subject_alt_names = vnew(c, n, sizeof(char *));
	if (s->subject_alt_names || n == 0)
		for_each(c, v, svc_san, s);
}

static void v_lb_scope(struct vctx *c, const cJSON *v, void *obj)
{
	venum(c, v, lb_scope_names);
}

static void v_lb_scopes(struct vctx *c, const cJSON *v, void *obj)
{
	for_each(c, v, v_lb_scope, NULL);
}

struct lb_fields {
	int mode;
	int health;
};

static void svc_lb(struct vctx *c, const cJSON *v, void *obj)
{
	static const struct field f[] = {
		FIELD_FN("routingPreferences", 0, v_lb_scopes),
		FIELD_ENUM("mode", FIELD_REQUIRED, struct lb_fields, mode, lb_mode_names),
		FIELD_ENUM("healthPolicy", 0, struct lb_fields, health, lb_health_names),
	};
	struct service *s = obj;
	struct lb_fields lb = { -1, 0 };
	vobject(c, v, f, sizeof(f) / sizeof(f[0]), &lb);
	if (lb.mode >= 0)
		s->load_balancer_mode = vdup(c, lb_mode_names[lb.mode]);
	s->allow_unhealthy = lb.health == 1;
}

#define S(n, t, fl, m) FIELD_AT(n, t, fl, struct service, m)

static const struct field service_fields[] = {
	S("name", FT_ID, FIELD_REQUIRED, name),
	S("namespace", FT_SEGMENT, FIELD_REQUIRED, namespace),
	FIELD_FN("hostname", FIELD_REQUIRED, svc_hostname),
	FIELD_FN("vips", FIELD_REQUIRED, svc_vips),
	FIELD_FN("cidrVips", 0, svc_cidr_vips),
	FIELD_FN("ports", FIELD_REQUIRED, svc_ports),
	FIELD_FN("endpoints", 0, svc_endpoints),
	FIELD_FN("subjectAltNames", 0, svc_sans),
	FIELD_FN("waypoint", FIELD_NULLABLE, v_gateway),
	FIELD_FN("weightedWaypoints", 0, v_weighted_waypoints),
	FIELD_FN("loadBalancer", FIELD_NULLABLE, svc_lb),
	FIELD_SKIP_ENUM("ipFamilies", FIELD_NULLABLE, ip_family_names),
	FIELD_SKIP("canonical", FT_BOOL, 0),
	FIELD_SKIP_ENUM("visibility", 0, visibility_names),
};

static void service_parse(struct vctx *c, const cJSON *v, void *obj)
{
	struct config *cfg = c->cfg;
	struct service *s = &cfg->services[cfg->nservices++];
	vobject(c, v, service_fields, sizeof(service_fields) / sizeof(service_fields[0]), s);
	s->name = vor_empty(c, s->name);
	s->namespace = vor_empty(c, s->namespace);
	s->hostname = vor_empty(c, s->hostname);
	s->key = *s->namespace && *s->hostname ?
		 vprintf_dup(c, "%s/%s", s->namespace, s->hostname) : c->empty;
}

/* ---- top level ---- */

static void policy_parse_fn(struct vctx *c, const cJSON *v, void *obj)
{
	struct config *cfg = c->cfg;
	policy_parse(c, v, &cfg->policies[cfg->npolicies++]);
}

static void top_array(struct vctx *c, const cJSON *v, void **arr, size_t size, field_fn fn)
{
	const cJSON *e;
	size_t n;
	if (!varray(c, v, &e, &n))
		return;
	*arr = vnew(c, n, size);
	if (*arr)
		for_each(c, v, fn, NULL);
}

static void top_workloads(struct vctx *c, const cJSON *v, void *obj)
{
	top_array(c, v, (void **)&c->cfg->workloads, sizeof(struct workload), workload_parse);
}

static void top_services(struct vctx *c, const cJSON *v, void *obj)
{
	top_array(c, v, (void **)&c->cfg->services, sizeof(struct service), service_parse);
}

static void top_policies(struct vctx *c, const cJSON *v, void *obj)
{
	top_array(c, v, (void **)&c->cfg->policies, sizeof(struct policy), policy_parse_fn);
}

void model_parse(struct vctx *c, const cJSON *root)
{
	static const struct field f[] = {
		FIELD_FN("workloads", 0, top_workloads),
		FIELD_FN("services", 0, top_services),
		FIELD_FN("policies", 0, top_policies),
	};
	if (!cJSON_IsObject(root)) {
		verr(c, root, false, "expected an object with \"workloads\", \"services\" "
		     "and \"policies\", got %s", json_type_name(root));
		return;
	}
	vobject(c, root, f, sizeof(f) / sizeof(f[0]), NULL);
}
