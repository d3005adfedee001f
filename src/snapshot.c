/*
 * Snapshots and the latest slot. See include/zring/snapshot.h.
 */
#include "zring/snapshot.h"
#include "zring/util.h"

#include <errno.h>
#include <stdlib.h>

int snapshot_new(struct config *cfg_take, struct certstore *certs_take, struct snapshot **out)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	if (!s || route_build(cfg_take, &s->routes) < 0 ||
	    policy_index_new(cfg_take, &s->policies) < 0) {
		if (s)
			route_free(s->routes);
		free(s);
		config_unref(cfg_take);
		certstore_unref(certs_take);
		return -ENOMEM;
	}
	atomic_init(&s->refs, 1);
	s->cfg = cfg_take;
	s->certs = certs_take;
	*out = s;
	return 0;
}

struct snapshot *snapshot_ref(struct snapshot *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void snapshot_unref(struct snapshot *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	route_free(s->routes);
	policy_index_free(s->policies);
	config_unref(s->cfg);
	certstore_unref(s->certs);
	free(s);
}

void slot_init(struct snapshot_slot *slot)
{
	pthread_mutex_init(&slot->lock, NULL);
	slot->latest = NULL;
	atomic_init(&slot->version, 0);
	slot->next_version = 1;
}

void slot_deinit(struct snapshot_slot *slot)
{
	snapshot_unref(slot->latest);
	slot->latest = NULL;
	pthread_mutex_destroy(&slot->lock);
}

uint64_t slot_publish(struct snapshot_slot *slot, struct snapshot *s_take)
{
	pthread_mutex_lock(&slot->lock);
	struct snapshot *old = slot->latest;
	s_take->version = slot->next_version++;
	s_take->loaded_at_ms = wall_ms();
	slot->latest = s_take;
	atomic_store_explicit(&slot->version, s_take->version, memory_order_release);
	pthread_mutex_unlock(&slot->lock);
	/* Outside the lock: the old one may be freed here, or live on in
	 * workers and connections that still use it. */
	snapshot_unref(old);
	return s_take->version;
}

struct snapshot *slot_acquire(struct snapshot_slot *slot)
{
	pthread_mutex_lock(&slot->lock);
	struct snapshot *s = snapshot_ref(slot->latest);
	pthread_mutex_unlock(&slot->lock);
	return s;
}
