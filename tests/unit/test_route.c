#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "zring/route.h"

/* A hand-built config: the routing table only reads the structs. */
static struct ip ip4(const char *s)
{
	struct ip ip = { .family = AF_INET };
	inet_pton(AF_INET, s, ip.bytes);
	return ip;
}

static struct ip ip6(const char *s)
{
	struct ip ip = { .family = AF_INET6 };
	inet_pton(AF_INET6, s, ip.bytes);
	return ip;
}

static union addr A(const char *s)
{
	union addr a;
	cr_assert_eq(addr_parse(s, &a), 0);
	return a;
}

static struct ip w_ips[3][2];
static struct port_map w1_map[] = { { 80, 9080 } };
static struct workload_service w_svc[3] = {
	{ .key = "default/web.default.svc.cluster.local" },
	{ .key = "default/web.default.svc.cluster.local", .ports = w1_map, .nports = 1 },
	{ .key = "default/web.default.svc.cluster.local" },
};
static struct workload wl[3];
static struct port_map svc_ports[] = { { 80, 8080 }, { 443, 0 } };
static struct service_vip vips[2];
static size_t endpoints[] = { 0, 1, 2 };
static struct service svc;
static struct config cfg;

static void build(void)
{
	const char *names[] = { "web-a", "web-b", "web-c" };
	w_ips[0][0] = ip4("10.0.1.1");
	w_ips[0][1] = ip6("fd00::1:1");
	w_ips[1][0] = ip4("10.0.1.2");
	w_ips[2][0] = ip4("10.0.1.3");
	for (int i = 0; i < 3; i++) {
		memset(&wl[i], 0, sizeof(wl[i]));
		wl[i].name = (char *)names[i];
		wl[i].namespace = "default";
		wl[i].ips = w_ips[i];
		wl[i].nips = i == 0 ? 2 : 1;
		wl[i].capacity = 1;
		wl[i].services = &w_svc[i];
		wl[i].nservices = 1;
	}
	vips[0] = (struct service_vip){ .network = "", .ip = ip4("10.96.0.10") };
	vips[1] = (struct service_vip){ .network = "", .ip = ip6("fd00:96::10") };
	svc = (struct service){
		.name = "web", .namespace = "default", .hostname = "web.default.svc.cluster.local",
		.vips = vips, .nvips = 2, .ports = svc_ports, .nports = 2,
		.endpoints = endpoints, .nendpoints = 3,
	};
	cfg = (struct config){ .workloads = wl, .nworkloads = 3, .services = &svc, .nservices = 1 };
}

TestSuite(route, .init = build);

Test(route, a_workload_address_routes_to_that_workload)
{
	struct route_table *t;
	struct route r;
	cr_assert_eq(route_build(&cfg, &t), 0);
	union addr dst = A("10.0.1.2:5000");
	cr_assert_eq(route_lookup(t, &dst, 0, &r), 0);
	cr_assert_eq(r.kind, ROUTE_WORKLOAD);
	cr_assert_str_eq(r.workload->name, "web-b");
	cr_assert(addr_equal(&r.upstream, &dst), "same address and port");
	dst = A("[fd00::1:1]:5000");
	cr_assert_eq(route_lookup(t, &dst, 0, &r), 0);
	cr_assert_str_eq(r.workload->name, "web-a");
	route_free(t);
}

Test(route, unknown_addresses_pass_through)
{
	struct route_table *t;
	struct route r;
	cr_assert_eq(route_build(&cfg, &t), 0);
	union addr dst = A("192.0.2.1:80");
	cr_assert_eq(route_lookup(t, &dst, 0, &r), 0);
	cr_assert_eq(r.kind, ROUTE_PASSTHROUGH);
	cr_assert(addr_equal(&r.upstream, &dst));
	dst = A("10.96.0.10:81");	/* a VIP, but not a service port */
	cr_assert_eq(route_lookup(t, &dst, 0, &r), 0);
	cr_assert_eq(r.kind, ROUTE_PASSTHROUGH);
	route_free(t);
}

Test(route, a_vip_spreads_over_endpoints_and_maps_the_port)
{
	struct route_table *t;
	struct route r;
	int hits[3] = { 0 };
	cr_assert_eq(route_build(&cfg, &t), 0);
	union addr dst = A("10.96.0.10:80");
	for (uint32_t i = 0; i < 3000; i++) {
		cr_assert_eq(route_lookup(t, &dst, i * 1431655u, &r), 0);
		cr_assert_eq(r.kind, ROUTE_SERVICE);
		int k = (int)(r.workload - wl);
		hits[k]++;
		/* web-b maps 80 -> 9080 itself; the others use the service's 8080. */
		cr_assert_eq(addr_port(&r.upstream), k == 1 ? 9080 : 8080);
		cr_assert_eq(r.upstream.sa.sa_family, AF_INET);
	}
	for (int k = 0; k < 3; k++)
		cr_assert(hits[k] > 800 && hits[k] < 1200, "endpoint %d got %d of 3000", k, hits[k]);
	/* A port without a target keeps its number. */
	dst = A("10.96.0.10:443");
	cr_assert_eq(route_lookup(t, &dst, 7, &r), 0);
	cr_assert_eq(addr_port(&r.upstream), 443);
	route_free(t);
}

Test(route, capacity_weights_and_unhealthy_endpoints_are_skipped)
{
	struct route_table *t;
	struct route r;
	int hits[3] = { 0 };
	wl[0].capacity = 3;
	wl[2].status = STATUS_UNHEALTHY;
	cr_assert_eq(route_build(&cfg, &t), 0);
	union addr dst = A("10.96.0.10:80");
	for (uint32_t i = 0; i < 4000; i++) {
		route_lookup(t, &dst, i * 1073741u, &r);
		hits[r.workload - wl]++;
	}
	cr_assert_eq(hits[2], 0, "an unhealthy endpoint gets nothing");
	cr_assert(hits[0] > 2 * hits[1], "capacity 3 vs 1: %d vs %d", hits[0], hits[1]);
	route_free(t);
}

Test(route, an_ipv6_vip_prefers_ipv6_endpoints)
{
	struct route_table *t;
	struct route r;
	wl[1].status = STATUS_UNHEALTHY;
	wl[2].status = STATUS_UNHEALTHY;
	cr_assert_eq(route_build(&cfg, &t), 0);
	union addr dst = A("[fd00:96::10]:80");
	cr_assert_eq(route_lookup(t, &dst, 1, &r), 0);
	cr_assert_eq(r.upstream.sa.sa_family, AF_INET6);
	char buf[ADDR_STRLEN];
	cr_assert_str_eq(addr_format(&r.upstream, buf, sizeof(buf)), "[fd00::1:1]:8080");
	route_free(t);
}

Test(route, a_service_without_healthy_endpoints_is_unreachable)
{
	struct route_table *t;
	struct route r;
	for (int i = 0; i < 3; i++)
		wl[i].status = STATUS_UNHEALTHY;
	cr_assert_eq(route_build(&cfg, &t), 0);
	union addr dst = A("10.96.0.10:80");
	cr_assert_eq(route_lookup(t, &dst, 1, &r), -EHOSTUNREACH);
	cr_assert_eq(r.kind, ROUTE_SERVICE);
	route_free(t);
}
