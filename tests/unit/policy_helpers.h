/*
 * What test_policy.c and test_policy_match.c share: a small config loaded
 * from JSON, connections to check against it, and assertions on the
 * verdict. Configs go through the real parser (tests/support/policy_fixture).
 */
#ifndef ZRING_TESTS_POLICY_HELPERS_H
#define ZRING_TESTS_POLICY_HELPERS_H

#include <stdbool.h>

#include "zring/config.h"
#include "zring/policy.h"

/* The config and index under test: set by load() (or by a test itself),
 * freed by policy_teardown, the suites' .fini. */
extern struct config *cfg;
extern struct policy_index *ix;

void policy_teardown(void);

/* The config text json, parsed; asserts that it parses. */
struct config *parse_ok(const char *json);

/*
 * Three workloads: a (ns1/sa1, 10.0.1.1 and fd00::1:1), b (ns2, 10.0.2.1),
 * c (ns3, 10.0.3.1). a_refs and b_refs are the insides of their
 * authorizationPolicies arrays; policies the inside of "policies". Replaces
 * cfg and ix.
 */
void load(const char *a_refs, const char *b_refs, const char *policies);

/* The workload of cfg with this uid; asserts there is one. */
const struct workload *wl(const char *uid);

/* A connection: source and destination "ip:port", source identity or NULL. */
struct conn {
	const char *src, *dst, *id;
};

/* ztunnel's rbac.rs fixtures, with an IPv6 twist for the third. */
extern const struct conn PLAIN, TLS, ALT;

/* ix's verdict on c to workload uid. */
struct policy_result check(const char *uid, struct conn c);

/* p's key, "(none)" for NULL: for messages. */
const char *key_of(const struct policy *p);

/* Asserts the verdict and the deciding policy ("ns/name" or NULL). */
void expect(const char *uid, struct conn c, enum policy_verdict v, const char *by);

/* Policies as JSON: POL(name, ns, scope, action, rules), DRY the same with
 * dryRun; rules that match one port, one exact principal, or anything. */
#define POL(name, ns, scope, action, rules) \
	"{\"name\": \"" name "\", \"namespace\": \"" ns "\", \"scope\": \"" scope \
	"\", \"action\": \"" action "\", \"rules\": " rules "}"
#define DRY(name, ns, scope, action, rules) \
	"{\"name\": \"" name "\", \"namespace\": \"" ns "\", \"scope\": \"" scope \
	"\", \"action\": \"" action "\", \"dryRun\": true, \"rules\": " rules "}"

#define PORT(p) "[[[{\"destinationPorts\": [" #p "]}]]]"
#define PRINCIPAL(p) "[[[{\"principals\": [{\"Exact\": \"" p "\"}]}]]]"
#define ANY "[[]]"

#endif
