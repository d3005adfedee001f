/*
 * Routing micro-benchmark: lookups per second against a mesh of 10,000
 * workloads and 1,000 services, for workload, VIP and passthrough hits.
 * Prints a table; not a test (no time limits).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zring/route.h"
#include "zring/util.h"

#define NWORKLOADS 10000
#define NSERVICES 1000

static struct config *synth(void)
{
	struct config *c = calloc(1, sizeof(*c));
	c->nworkloads = NWORKLOADS;
	c->workloads = calloc(NWORKLOADS, sizeof(struct workload));
	c->nservices = NSERVICES;
	c->services = calloc(NSERVICES, sizeof(struct service));
	static struct port_map ports[2] = { { 80, 8080 }, { 443, 8443 } };
	for (size_t i = 0; i < NWORKLOADS; i++) {
		struct workload *w = &c->workloads[i];
		w->name = "w";
		w->namespace = "ns";
		w->capacity = 1;
		w->ips = calloc(1, sizeof(struct ip));
		w->nips = 1;
		w->ips[0].family = AF_INET;
		uint32_t a = htonl(0x0a000000u + 0x10000u + (uint32_t)i);
		memcpy(w->ips[0].bytes, &a, 4);
		w->services = calloc(1, sizeof(struct workload_service));
		w->nservices = 1;
		w->services[0].key = "ns/svc";
	}
	for (size_t s = 0; s < NSERVICES; s++) {
		struct service *sv = &c->services[s];
		sv->name = "svc";
		sv->namespace = "ns";
		sv->hostname = "svc";
		sv->vips = calloc(1, sizeof(struct service_vip));
		sv->nvips = 1;
		sv->vips[0].network = "";
		sv->vips[0].ip.family = AF_INET;
		uint32_t a = htonl(0x0a600000u + (uint32_t)s);
		memcpy(sv->vips[0].ip.bytes, &a, 4);
		sv->ports = ports;
		sv->nports = 2;
		sv->endpoints = calloc(10, sizeof(size_t));
		sv->nendpoints = 10;
		for (size_t e = 0; e < 10; e++)
			sv->endpoints[e] = s * 10 + e;
	}
	return c;
}

static double run(const struct route_table *t, const union addr *dsts, size_t n, size_t iters)
{
	struct route r;
	uint64_t sink = 0, t0 = now_ns();
	for (size_t i = 0; i < iters; i++) {
		route_lookup(t, &dsts[i % n], (uint32_t)(i * 2654435761u), &r);
		sink += r.kind;
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	if (sink == 42)
		puts("");
	return (double)iters / secs;
}

int main(void)
{
	struct config *c = synth();
	struct route_table *t;
	uint64_t t0 = now_ns();
	if (route_build(c, &t) < 0)
		return 1;
	double build_ms = (double)(now_ns() - t0) / 1e6;
	enum { N = 4096, ITERS = 20000000 };
	static union addr wl[N], vip[N], pass[N];
	for (size_t i = 0; i < N; i++) {
		uint32_t a = htonl(0x0a000000u + 0x10000u + (uint32_t)((i * 7919) % NWORKLOADS));
		wl[i].in4 = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(80) };
		memcpy(&wl[i].in4.sin_addr, &a, 4);
		a = htonl(0x0a600000u + (uint32_t)((i * 131) % NSERVICES));
		vip[i].in4 = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(443) };
		memcpy(&vip[i].in4.sin_addr, &a, 4);
		a = htonl(0xc0000200u + (uint32_t)i);
		pass[i].in4 = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(80) };
		memcpy(&pass[i].in4.sin_addr, &a, 4);
	}
	printf("| lookup (%d workloads, %d services) | lookups/s |\n|---|---:|\n",
	       NWORKLOADS, NSERVICES);
	printf("| workload address | %.3g |\n", run(t, wl, N, ITERS));
	printf("| service VIP:port (weighted pick, port map) | %.3g |\n", run(t, vip, N, ITERS));
	printf("| passthrough (miss) | %.3g |\n", run(t, pass, N, ITERS));
	printf("\ntable build: %.2f ms\n", build_ms);
	route_free(t);
	return 0;
}
