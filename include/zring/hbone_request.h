/*
 * Parsing and validating an inbound HBONE request's headers: a plain
 * HTTP/2 CONNECT (RFC 9113 §8.5) with `:authority` = "ip:port" and an
 * optional `forwarded: for="ip:port"` naming the original client.
 * Pure functions over bytes; the fuzz target drives them through nghttp2.
 */
#ifndef ZRING_HBONE_REQUEST_H
#define ZRING_HBONE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "zring/addr.h"

struct hbone_req {
	union addr authority;
	union addr forwarded;
	bool is_connect;
	bool has_authority;
	bool has_forwarded;
	bool bad;		/* a header that a plain CONNECT must not have, or garbage */
};

void hbone_req_init(struct hbone_req *r);

/* Feed one header field (name and value are not NUL-terminated). */
void hbone_req_header(struct hbone_req *r, const char *name, size_t nlen, const char *value,
		      size_t vlen);

/* All headers seen: 0 when the request is a well-formed CONNECT to
 * ip:port, else -EINVAL (answer 400). */
int hbone_req_finish(const struct hbone_req *r);

#endif
