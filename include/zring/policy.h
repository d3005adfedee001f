/*
 * L4 authorization: does a config snapshot's policies let this connection
 * reach that workload? The semantics are Istio ztunnel's (src/rbac.rs,
 * src/state/policy.rs, DemandProxyState::assert_rbac in src/state.rs);
 * docs/config.md "Authorization" states them for users, src/policy.c lists
 * each detail checked against ztunnel.
 *
 * A policy index is built once per snapshot: for every workload it knows
 * the policies that apply (Global ones, its namespace's Namespace ones, the
 * ones its authorizationPolicies name), pre-split into deny, allow, dry-run
 * deny and dry-run allow lists and shared between workloads wherever the
 * lists are the same. A check touches only the policies that apply to the
 * destination, parses the source identity once and compares addresses as
 * bytes; it allocates nothing and never fails.
 */
#ifndef ZRING_POLICY_H
#define ZRING_POLICY_H

#include <stddef.h>

#include "zring/addr.h"
#include "zring/config.h"

struct policy_index;

/* Build the index for cfg (which must outlive it). Returns 0 and *out, or
 * -ENOMEM. A workload reference to a policy not in cfg is skipped (the
 * validator rejects such files; ztunnel skips them too). */
int policy_index_new(const struct config *cfg, struct policy_index **out);
/* NULL is fine. */
void policy_index_free(struct policy_index *ix);

/* The connection being authorized. */
struct policy_request {
	const union addr *src;		/* source ip:port (IPv4-mapped is fine) */
	const union addr *dst;		/* destination ip:port: the workload address and
					 * port the connection goes to */
	const char *src_identity;	/* "spiffe://td/ns/x/sa/y", or NULL when unknown
					 * (plaintext :15006); a string that is not such an
					 * identity counts as unknown, as in ztunnel */
};

enum policy_verdict { POLICY_ALLOW, POLICY_DENY };

/* Why the verdict is what it is. */
enum policy_why {
	POLICY_WHY_DENY_MATCHED,	/* a Deny policy matched: decided_by */
	POLICY_WHY_ALLOW_MATCHED,	/* an Allow policy matched: decided_by */
	POLICY_WHY_NO_ALLOW_POLICY,	/* allowed: no Allow policy applies */
	POLICY_WHY_NO_ALLOW_MATCHED,	/* denied: Allow policies apply, none matched */
	POLICY_WHY_UNKNOWN_WORKLOAD,	/* denied: dst is not a workload of the index's
					 * config (a caller bug; fail closed) */
};

struct policy_result {
	enum policy_verdict verdict;
	enum policy_why why;
	/* The Deny that matched or the Allow that matched; NULL when no
	 * policy decided. When several match, the first in evaluation order:
	 * Global policies, then the namespace's, then the workload's own, each
	 * in file order. */
	const struct policy *decided_by;
	/* A dry-run policy that would change the verdict if dry-run policies
	 * were enforced too, or NULL: a matching dry-run Deny (when allowed),
	 * a matching dry-run Allow (when denied for lack of a matching Allow),
	 * or, when dry-run Allows are the only Allows and none matches, the
	 * first of them. */
	const struct policy *dry_run;
	enum policy_verdict dry_run_verdict;	/* meaningful when dry_run != NULL */
};

/*
 * Decide for a connection to workload dst, which must be one of the
 * index's config's workloads (a pointer into cfg->workloads). Fills *res;
 * the policies it points at live as long as the config.
 */
void policy_check(const struct policy_index *ix, const struct workload *dst,
		  const struct policy_request *req, struct policy_result *res);

/* The policies that apply to dst, in evaluation order within each list:
 * non-dry-run Deny, non-dry-run Allow, dry-run Deny, dry-run Allow. Writes
 * up to max into out and returns how many there are (for the admin dump,
 * `zring check` and tests). 0 for a workload not in the index's config. */
size_t policy_applicable(const struct policy_index *ix, const struct workload *dst,
			 const struct policy **out, size_t max);

const char *policy_verdict_name(enum policy_verdict v);	/* "allow", "deny" */

/* A short reason for logs, e.g. "denied by policy ns/name", "no allow
 * policy matched", "allowed: no allow policy applies", followed by
 * "; dry-run policy ns/name would deny" when res->dry_run is set.
 * Writes into buf (POLICY_REASON_LEN is always enough for keys up to 200
 * bytes; longer ones are cut) and returns buf. */
#define POLICY_REASON_LEN 512
const char *policy_reason(const struct policy_result *res, char *buf, size_t len);

#endif
