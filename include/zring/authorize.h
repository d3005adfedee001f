/*
 * Enforcing L4 authorization on connections (the decision itself is
 * src/policy.c's).
 *
 * Policies are enforced on the destination side only, as ztunnel does: on
 * :15008 with the client's mTLS identity, on :15006 with the source
 * address alone. A connection is checked once when its destination is
 * known, and again whenever its worker switches to a new config snapshot,
 * so a policy change closes the open connections it now denies.
 */
#ifndef ZRING_AUTHORIZE_H
#define ZRING_AUTHORIZE_H

#include <stdbool.h>

struct conn;
struct snapshot;
struct worker;

/*
 * Decide for c (an inbound or HBONE-server conn whose dst and, for HBONE,
 * peer identity are known) with snapshot s. Returns 0 when allowed, or
 * -EACCES with c->why and c->policy (the deciding policy's "ns/name", or
 * NULL) set for the access log; counts the denial. Dry-run policies whose
 * verdict differs are logged, never enforced.
 */
int authorize_conn(struct conn *c, const struct snapshot *s);

/*
 * w switched to snapshot s: re-check every open connection it enforces
 * policy on and close (with a reset) those s now denies. Called at a loop
 * boundary, never from inside a callback.
 */
void authorize_recheck(struct worker *w, const struct snapshot *s);

#endif
