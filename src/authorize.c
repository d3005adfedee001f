/*
 * Authorization enforcement: asks the policy engine about a connection,
 * records the outcome for the access log and metrics, and re-checks open
 * connections when the config changes. See include/zring/authorize.h.
 */
#include "zring/authorize.h"
#include "zring/conn.h"
#include "zring/log.h"
#include "zring/policy.h"
#include "zring/route.h"
#include "zring/snapshot.h"
#include "zring/worker.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Only destination-side connections are authorized here. */
static bool enforced_on(const struct conn *c)
{
	return c->role == ROLE_INBOUND || c->role == ROLE_HBONE;
}

/* The workload at c's destination address in s, or NULL. */
static const struct workload *dst_workload(const struct conn *c, const struct snapshot *s)
{
	struct route r;
	if (!s || !s->routes || route_lookup(s->routes, &c->dst, 0, &r) < 0 ||
	    r.kind != ROUTE_WORKLOAD)
		return NULL;
	return r.workload;
}

static void log_dry_run(const struct conn *c, const struct policy_result *res)
{
	struct log_line l;
	char a[ADDR_STRLEN];
	if (!log_begin(&l, LOG_INFO, "policy dry run"))
		return;
	log_u64(&l, "id", c->id);
	log_str(&l, "policy", res->dry_run->key);
	log_str(&l, "would", res->dry_run_verdict == POLICY_DENY ? "deny" : "allow");
	log_str(&l, "verdict", res->verdict == POLICY_DENY ? "deny" : "allow");
	log_str(&l, "src", addr_format(&c->src, a, sizeof(a)));
	log_str(&l, "dst", addr_format(&c->dst, a, sizeof(a)));
	if (c->peer_id)
		log_str(&l, "src_identity", c->peer_id);
	log_end(&l);
}

static int deny(struct conn *c, const struct policy_result *res, const char *why)
{
	free(c->policy);
	c->policy = res->decided_by ? strdup(res->decided_by->key) : NULL;
	c->why = why;
	if (res->decided_by && !c->policy)	/* still denied; the log says why it is unnamed */
		c->why = "denied by policy (name not recorded: out of memory)";
	c->rflag = RFLAG_DENY;	/* also when no policy decided (none allowed) */
	atomic_fetch_add_explicit(&c->w->policy_denials, 1, memory_order_relaxed);
	return -EACCES;
}

/* The verdict of s's policies on c; 0 or -EACCES (c->why/policy set). */
static int check(struct conn *c, const struct snapshot *s, bool again)
{
	const struct workload *wl = dst_workload(c, s);
	if (!wl || !s->policies)
		return 0;	/* no workload there: no policy applies */
	/* An HBONE stream always has the identity its tunnel proved; without
	 * it (a lost allocation) rules on identity could not match: refuse
	 * rather than check it as a plaintext peer. */
	if (c->role == ROLE_HBONE && !c->peer_id) {
		c->why = "no authenticated identity";
		c->rflag = RFLAG_DENY;
		atomic_fetch_add_explicit(&c->w->policy_denials, 1, memory_order_relaxed);
		return -EACCES;
	}
	const struct policy_request req = {
		.src = &c->src,
		.dst = &c->dst,
		.src_identity = c->role == ROLE_HBONE ? c->peer_id : NULL,
	};
	struct policy_result res;
	policy_check(s->policies, wl, &req, &res);
	if (res.dry_run)
		log_dry_run(c, &res);
	if (res.verdict == POLICY_ALLOW)
		return 0;
	if (res.decided_by)
		return deny(c, &res, again ? "denied by policy after a config change" :
					     "denied by policy");
	return deny(c, &res, again ? "no allow policy matched after a config change" :
				     "no allow policy matched");
}

int authorize_conn(struct conn *c, const struct snapshot *s)
{
	if (!enforced_on(c))
		return 0;
	return check(c, s, false);
}

void authorize_recheck(struct worker *w, const struct snapshot *s)
{
	struct conn *c = w->lru_head;
	while (c) {
		struct conn *next = c->lru_next;
		/* An HBONE stream whose CONNECT is not whole yet has no
		 * destination: it is checked (with s) once it has. */
		if (!c->closing && enforced_on(c) && check(c, s, true) < 0) {
			conn_close(c, -EACCES, c->why, true);
			conn_put(c);
		}
		c = next;
	}
}
