/*
 * Routing: where a connection goes, given its original destination and the
 * current config snapshot.
 *
 *   a workload address        -> that workload, same port
 *   a service VIP : port      -> one of the service's healthy endpoints,
 *                                weighted by capacity, port mapped to the
 *                                target port
 *   anything else             -> passthrough to the original destination
 *
 * The table is built once per snapshot (open-addressing hash tables keyed by
 * address), so a lookup is O(1) whatever the size of the mesh.
 */
#ifndef ZRING_ROUTE_H
#define ZRING_ROUTE_H

#include <stdint.h>

#include "zring/addr.h"
#include "zring/config.h"

struct route_table;

enum route_kind { ROUTE_PASSTHROUGH, ROUTE_WORKLOAD, ROUTE_SERVICE };

struct route {
	enum route_kind kind;
	const struct workload *workload;	/* destination workload, or NULL */
	const struct service *service;		/* for ROUTE_SERVICE */
	union addr upstream;			/* where to connect */
};

/* Build the lookup table for cfg (which must outlive it). 0 or -ENOMEM. */
int route_build(const struct config *cfg, struct route_table **out);
void route_free(struct route_table *t);

/*
 * Route dst. `rnd` is a uniformly random number that picks the endpoint.
 * Returns 0 and *out, or -EHOSTUNREACH when dst is a service VIP:port whose
 * service has no healthy endpoint.
 */
int route_lookup(const struct route_table *t, const union addr *dst, uint32_t rnd,
		 struct route *out);

/* The workload that owns address a (any port), or NULL: t may be NULL. */
const struct workload *route_workload_at(const struct route_table *t, const union addr *a);

const char *route_kind_name(enum route_kind k);

/* IP helpers shared with the config code. */
void ip_from_addr(const union addr *a, struct ip *out);
void addr_from_ip(const struct ip *ip, uint16_t port, union addr *out);

#endif
