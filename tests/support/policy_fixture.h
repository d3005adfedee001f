/*
 * What the authorization unit tests (tests/unit/test_policy*.c) and the
 * policy benchmark (tests/bench/bench_policy.c) share: configs parsed from
 * JSON as users write them, and connections given as "ip:port" strings.
 * Free of Criterion, so that the benchmark links it too; callers decide
 * what a failure means (an assertion, or exit).
 */
#ifndef ZRING_TESTS_POLICY_FIXTURE_H
#define ZRING_TESTS_POLICY_FIXTURE_H

#include "zring/addr.h"
#include "zring/config.h"
#include "zring/policy.h"

/* Parse the config text json into *out (the caller's reference; free with
 * config_unref). name is the file name the errors give; they are printed
 * to stderr. Returns 0 or the parser's negative errno. */
int policy_fixture_parse(const char *json, const char *name, struct config **out);

/* A connection to check: its addresses and the request that points at them
 * (so it is filled in place, never copied). */
struct policy_fixture_conn {
	union addr src, dst;
	struct policy_request req;
};

/* Fill c from source and destination "ip:port" ("[v6]:port") and the
 * source identity (borrowed; NULL: none, as for plaintext). Returns 0, or
 * -EINVAL when an address does not parse. */
int policy_fixture_conn_init(struct policy_fixture_conn *c, const char *src, const char *dst,
			     const char *id);

#endif
