/*
 * Destination routing over a config snapshot. See include/zring/route.h.
 */
#include "zring/route.h"
#include "zring/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

/* A VIP:port of a service, resolved at build time. */
struct vip_entry {
	struct ip ip;
	uint16_t port;
	uint32_t service;	/* index into cfg->services */
	uint16_t target;	/* service-level target port */
};

struct ip_entry {
	struct ip ip;
	uint32_t workload;	/* index into cfg->workloads */
};

/* The healthy endpoints of a service with cumulative capacity weights. */
struct lb {
	char *key;		/* "namespace/hostname", as workloads name it */
	uint32_t *workload;
	const struct service_endpoint **listed;	/* per endpoint: from the service's own list */
	uint64_t *cum;
	size_t n;
};

struct route_table {
	const struct config *cfg;
	struct ip_entry *ips;	/* open addressing; ip.family 0 = empty */
	size_t ip_mask;
	struct vip_entry *vips;
	size_t vip_mask;
	struct lb *lbs;		/* per service */
};

const char *route_kind_name(enum route_kind k)
{
	static const char *const names[] = { "passthrough", "workload", "service" };
	return names[k];
}

void ip_from_addr(const union addr *a, struct ip *out)
{
	memset(out, 0, sizeof(*out));
	out->family = (uint8_t)a->sa.sa_family;
	if (a->sa.sa_family == AF_INET6)
		memcpy(out->bytes, &a->in6.sin6_addr, 16);
	else
		memcpy(out->bytes, &a->in4.sin_addr, 4);
}

void addr_from_ip(const struct ip *ip, uint16_t port, union addr *out)
{
	memset(out, 0, sizeof(*out));
	if (ip->family == AF_INET6) {
		out->in6.sin6_family = AF_INET6;
		memcpy(&out->in6.sin6_addr, ip->bytes, 16);
		out->in6.sin6_port = htons(port);
	} else {
		out->in4.sin_family = AF_INET;
		memcpy(&out->in4.sin_addr, ip->bytes, 4);
		out->in4.sin_port = htons(port);
	}
}

static uint64_t hash_ip(const struct ip *ip, uint16_t port)
{
	/* FNV-1a over the bytes that matter, then a final mix. */
	uint64_t h = 0xcbf29ce484222325ull ^ ip->family;
	size_t n = ip->family == AF_INET6 ? 16 : 4;
	for (size_t i = 0; i < n; i++)
		h = (h ^ ip->bytes[i]) * 0x100000001b3ull;
	h = (h ^ port) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static bool ip_eq(const struct ip *a, const struct ip *b)
{
	return a->family == b->family &&
	       memcmp(a->bytes, b->bytes, a->family == AF_INET6 ? 16 : 4) == 0;
}

static size_t table_size(size_t n)
{
	size_t cap = 16;
	while (cap < n * 2)
		cap <<= 1;
	return cap;
}

static void put_ip(struct route_table *t, const struct ip *ip, uint32_t workload)
{
	size_t i = hash_ip(ip, 0) & t->ip_mask;
	while (t->ips[i].ip.family && !ip_eq(&t->ips[i].ip, ip))
		i = (i + 1) & t->ip_mask;
	/* Validation rejects duplicates; if one slipped through, first wins. */
	if (!t->ips[i].ip.family)
		t->ips[i] = (struct ip_entry){ .ip = *ip, .workload = workload };
}

static void put_vip(struct route_table *t, const struct vip_entry *e)
{
	size_t i = hash_ip(&e->ip, e->port) & t->vip_mask;
	while (t->vips[i].ip.family &&
	       !(ip_eq(&t->vips[i].ip, &e->ip) && t->vips[i].port == e->port))
		i = (i + 1) & t->vip_mask;
	if (!t->vips[i].ip.family)
		t->vips[i] = *e;
}

static int build_lb(const struct config *cfg, const struct service *s, struct lb *lb)
{
	size_t cap = s->nendpoints ? s->nendpoints : 1;
	lb->workload = calloc(cap, sizeof(*lb->workload));
	lb->listed = calloc(cap, sizeof(*lb->listed));
	lb->cum = calloc(cap, sizeof(*lb->cum));
	size_t klen = strlen(s->namespace) + strlen(s->hostname) + 2;
	lb->key = malloc(klen);
	if (!lb->workload || !lb->listed || !lb->cum || !lb->key)
		return -ENOMEM;
	snprintf(lb->key, klen, "%s/%s", s->namespace, s->hostname);
	uint64_t total = 0;
	for (size_t i = 0; i < s->nendpoints; i++) {
		const struct workload *w = &cfg->workloads[s->endpoints[i]];
		const struct service_endpoint *e = s->endpoint_listed ? s->endpoint_listed[i] : NULL;
		if (w->status != STATUS_HEALTHY || (e && e->status != STATUS_HEALTHY) ||
		    w->capacity == 0 || w->nips == 0)
			continue;
		total += w->capacity;
		lb->workload[lb->n] = (uint32_t)s->endpoints[i];
		lb->listed[lb->n] = e;
		lb->cum[lb->n] = total;
		lb->n++;
	}
	return 0;
}

static int build_tables(struct route_table *t)
{
	const struct config *cfg = t->cfg;
	size_t nips = 0, nvips = 0;
	for (size_t i = 0; i < cfg->nworkloads; i++)
		nips += cfg->workloads[i].nips;
	for (size_t i = 0; i < cfg->nservices; i++)
		nvips += cfg->services[i].nvips * cfg->services[i].nports;
	size_t ipcap = table_size(nips), vipcap = table_size(nvips);
	t->ips = calloc(ipcap, sizeof(*t->ips));
	t->vips = calloc(vipcap, sizeof(*t->vips));
	t->lbs = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*t->lbs));
	if (!t->ips || !t->vips || !t->lbs)
		return -ENOMEM;
	t->ip_mask = ipcap - 1;
	t->vip_mask = vipcap - 1;
	for (size_t i = 0; i < cfg->nworkloads; i++)
		for (size_t j = 0; j < cfg->workloads[i].nips; j++)
			put_ip(t, &cfg->workloads[i].ips[j], (uint32_t)i);
	for (size_t i = 0; i < cfg->nservices; i++) {
		const struct service *s = &cfg->services[i];
		for (size_t v = 0; v < s->nvips; v++) {
			for (size_t p = 0; p < s->nports; p++) {
				struct vip_entry e = {
					.ip = s->vips[v].ip,
					.port = s->ports[p].port,
					.service = (uint32_t)i,
					.target = s->ports[p].target,
				};
				put_vip(t, &e);
			}
		}
		if (build_lb(cfg, s, &t->lbs[i]) < 0)
			return -ENOMEM;
	}
	return 0;
}

int route_build(const struct config *cfg, struct route_table **out)
{
	struct route_table *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->cfg = cfg;
	if (build_tables(t) < 0) {
		route_free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

void route_free(struct route_table *t)
{
	if (!t)
		return;
	if (t->lbs) {
		for (size_t i = 0; i < t->cfg->nservices; i++) {
			free(t->lbs[i].key);
			free(t->lbs[i].workload);
			free(t->lbs[i].listed);
			free(t->lbs[i].cum);
		}
	}
	free(t->lbs);
	free(t->ips);
	free(t->vips);
	free(t);
}

static const struct ip_entry *find_ip(const struct route_table *t, const struct ip *ip)
{
	size_t i = hash_ip(ip, 0) & t->ip_mask;
	while (t->ips[i].ip.family) {
		if (ip_eq(&t->ips[i].ip, ip))
			return &t->ips[i];
		i = (i + 1) & t->ip_mask;
	}
	return NULL;
}

static const struct vip_entry *find_vip(const struct route_table *t, const struct ip *ip,
					uint16_t port)
{
	size_t i = hash_ip(ip, port) & t->vip_mask;
	while (t->vips[i].ip.family) {
		if (t->vips[i].port == port && ip_eq(&t->vips[i].ip, ip))
			return &t->vips[i];
		i = (i + 1) & t->vip_mask;
	}
	return NULL;
}

/* The endpoint (its index in lb) whose cumulative weight range holds r. */
static size_t pick(const struct lb *lb, uint32_t rnd)
{
	uint64_t r = (uint64_t)rnd * lb->cum[lb->n - 1] >> 32;
	size_t lo = 0, hi = lb->n - 1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (lb->cum[mid] > r)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static uint16_t mapped(const struct port_map *pm, size_t n, uint16_t port)
{
	for (size_t p = 0; p < n; p++)
		if (pm[p].port == port && pm[p].target)
			return pm[p].target;
	return 0;
}

/* The target port on endpoint `ep` of lb for the service's port `port`: the
 * endpoint's own mapping wins (its entry in the service's "endpoints", or
 * the workload's services map), then the service's, then the port itself. */
static uint16_t target_port(const struct workload *w, const struct lb *lb, size_t ep,
			    uint16_t port, uint16_t svc_target)
{
	const struct service_endpoint *e = lb->listed[ep];
	uint16_t t = e ? mapped(e->ports, e->nports, port) : 0;
	if (t)
		return t;
	for (size_t i = 0; !e && !t && i < w->nservices; i++)
		if (strcmp(w->services[i].key, lb->key) == 0)
			t = mapped(w->services[i].ports, w->services[i].nports, port);
	return t ? t : svc_target ? svc_target : port;
}

/* An endpoint's address in dst's family if it has one, else its first. */
static const struct ip *endpoint_ip(const struct workload *w, int family)
{
	for (size_t i = 0; i < w->nips; i++)
		if (w->ips[i].family == family)
			return &w->ips[i];
	return &w->ips[0];
}

int route_lookup(const struct route_table *t, const union addr *dst, uint32_t rnd,
		 struct route *out)
{
	struct ip ip;
	uint16_t port = addr_port(dst);
	ip_from_addr(dst, &ip);
	memset(out, 0, sizeof(*out));
	out->upstream = *dst;

	const struct ip_entry *we = find_ip(t, &ip);
	if (we) {
		out->kind = ROUTE_WORKLOAD;
		out->workload = &t->cfg->workloads[we->workload];
		return 0;
	}
	const struct vip_entry *ve = find_vip(t, &ip, port);
	if (!ve)
		return 0;	/* passthrough */
	const struct service *s = &t->cfg->services[ve->service];
	const struct lb *lb = &t->lbs[ve->service];
	out->kind = ROUTE_SERVICE;
	out->service = s;
	if (lb->n == 0)
		return -EHOSTUNREACH;
	size_t ep = pick(lb, rnd);
	const struct workload *w = &t->cfg->workloads[lb->workload[ep]];
	out->workload = w;
	addr_from_ip(endpoint_ip(w, ip.family), target_port(w, lb, ep, port, ve->target),
		     &out->upstream);
	return 0;
}

const struct workload *route_workload_at(const struct route_table *t, const union addr *a)
{
	struct route r;
	if (!t || route_lookup(t, a, 0, &r) < 0 || r.kind != ROUTE_WORKLOAD)
		return NULL;
	return r.workload;
}
