/*
 * Configs and connections for the authorization tests and benchmark.
 * See policy_fixture.h.
 */
#include "policy_fixture.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int policy_fixture_parse(const char *json, const char *name, struct config **out)
{
	struct config_errors errs;
	int err = config_parse(json, strlen(json), name, out, &errs);
	if (err < 0)
		config_errors_print(&errs, name, stderr);
	config_errors_free(&errs);
	return err;
}

int policy_fixture_conn_init(struct policy_fixture_conn *c, const char *src, const char *dst,
			     const char *id)
{
	if (addr_parse(src, &c->src) < 0 || addr_parse(dst, &c->dst) < 0)
		return -EINVAL;
	c->req = (struct policy_request){ .src = &c->src, .dst = &c->dst, .src_identity = id };
	return 0;
}
