/*
 * Inside the authorization engine: policies compiled to compact code, and
 * the facts about a connection that the code is run against. Only
 * src/policy.c and src/policy_code.c include this.
 *
 * A config's policies are spread over many small arena arrays (a match
 * alone is 192 bytes, mostly empty fields), so evaluating thousands of
 * them is bound by cache misses. The index therefore compiles each policy
 * once into a run of 32-bit words holding only its non-empty fields, with
 * the values inline, and lays the runs out in evaluation order.
 */
#ifndef ZRING_POLICY_INT_H
#define ZRING_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zring/config.h"
#include "zring/policy.h"

/* A growing buffer of code words; oom is set (and nothing more written)
 * once an allocation fails. */
struct policy_code {
	uint32_t *w;
	size_t n, cap;
	bool oom;
};

/* Append policy p (cfg->policies[index]) to pc; returns the offset of its
 * code (whose first word is `index`). */
size_t policy_compile(struct policy_code *pc, const struct policy *p, uint32_t index);

/* A string without its terminator. */
struct policy_slice {
	const char *p;
	size_t n;
};

/* An address as words in network order (IPv4 in w[0]), for CIDR compares. */
struct policy_ip {
	uint32_t family;
	uint32_t w[4];
};

/* What a check knows about the connection, computed once per check. */
struct policy_facts {
	struct policy_ip src, dst;	/* canonical: IPv4-mapped IPv6 is IPv4 */
	uint16_t dst_port;
	bool has_id;
	struct policy_slice principal;	/* identity without "spiffe://" */
	struct policy_slice ns, sa;	/* "" without an identity */
};

void policy_facts_init(const struct policy_request *req, struct policy_facts *f);

/* Does the compiled policy at code match? */
bool policy_code_matches(const uint32_t *code, const struct policy_facts *f);

#endif
