/*
 * The watch channel's payload and its single "latest" slot.
 *
 * A snapshot is a validated config plus its routing table and the local
 * identities' certificates: immutable and reference-counted. The watcher publishes a new one into the slot (which
 * holds a reference) and wakes the workers; each worker takes a reference
 * to the latest at a loop boundary, and every connection keeps a reference
 * to the snapshot it started with until it ends. The last unref frees it,
 * on whichever thread that happens.
 */
#ifndef ZRING_SNAPSHOT_H
#define ZRING_SNAPSHOT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "zring/certs.h"
#include "zring/config.h"
#include "zring/policy.h"
#include "zring/route.h"

struct snapshot {
	_Atomic unsigned refs;
	uint64_t version;
	uint64_t loaded_at_ms;
	struct config *cfg;
	struct route_table *routes;
	struct policy_index *policies;	/* cfg's authorization index */
	struct certstore *certs;	/* local identities, or NULL without --certs */
};

/* Wrap cfg and certs (the caller's references move in; certs may be NULL)
 * with cfg's routing table and policy index. Returns 0 and *out
 * (refs = 1), or -ENOMEM (both are released). */
int snapshot_new(struct config *cfg_take, struct certstore *certs_take, struct snapshot **out);

struct snapshot *snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);

struct snapshot_slot {
	pthread_mutex_t lock;
	struct snapshot *latest;	/* the slot's own reference */
	_Atomic uint64_t version;	/* latest->version, readable without the lock */
	uint64_t next_version;
};

void slot_init(struct snapshot_slot *slot);
/* Drops the slot's reference. */
void slot_deinit(struct snapshot_slot *slot);

/* Publish s (the caller's reference moves into the slot): stamps its
 * version and load time. Returns the version. */
uint64_t slot_publish(struct snapshot_slot *slot, struct snapshot *s_take);

/* A new reference to the latest snapshot (NULL if none published). */
struct snapshot *slot_acquire(struct snapshot_slot *slot);

/* Cheap check for workers: has something newer than `have` been published? */
static inline int slot_newer(struct snapshot_slot *slot, uint64_t have)
{
	return atomic_load_explicit(&slot->version, memory_order_acquire) != have;
}

#endif
