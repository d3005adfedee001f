/*
 * The process's descriptor budget.
 *
 * A proxied connection needs two descriptors (its client and its
 * upstream), but accept hands over the first before we can open the
 * second: accepting into the last free descriptors would leave accepted
 * clients with no way to reach their upstream. So zring counts the
 * descriptors it holds (one atomic shared by all workers) and accepts only
 * while a new connection can be completed, keeping a reserve for pipes,
 * tunnels and config reads. Parked connections (accepted, waiting for an
 * upstream descriptor) are owed theirs first. Multishot accept, which may
 * take the whole backlog at once, is used only while that much is free;
 * closer to the limit zring accepts one connection at a time.
 */
#ifndef ZRING_FDBUDGET_H
#define ZRING_FDBUDGET_H

#include <stdbool.h>

/* Room kept for pipes, tunnels, file reads and the like: 1/16 of the
 * limit, between 4 and 32. */
long fdb_reserve(void);

/* The descriptor limit (soft RLIMIT_NOFILE at start). */
long fdb_limit(void);

/* Take the limit and count what is open now. Call once, at start. */
void fdb_init(void);

void fdb_opened(int n);
void fdb_closed(int n);
void fdb_parked(int n);		/* +1 when a conn parks, -1 when it leaves */

/* May one more connection be accepted (and completed)? */
bool fdb_can_accept(void);

/* Is there room for a whole backlog's worth of accepts at once? */
bool fdb_multishot_ok(unsigned backlog);

long fdb_free(void);

#endif
