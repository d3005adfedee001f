/*
 * Per-worker metrics registry: series lookup, connection hooks, the tick's
 * byte flush and the pruning of series whose workloads left the config.
 * Rendering is in metrics_render.c. See include/zring/metrics.h.
 */
#include "zring/metrics.h"
#include "zring/conn.h"
#include "zring/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS_MIN 64
#define UNKNOWN "unknown"
#define OVERFLOW "overflow"

static const char *label_value(const char *v)
{
	return v && *v ? v : UNKNOWN;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ull

static uint64_t labels_hash(const struct metrics_labels *l)
{
	uint8_t head[2] = { l->reporter, l->security };
	uint64_t h = fnv(FNV_INIT, head, sizeof(head));
	for (unsigned i = 0; i < ML_COUNT; i++) {
		const char *v = label_value(l->v[i]);
		h = fnv(h, v, strlen(v) + 1);	/* the NUL separates values */
	}
	return h;
}

/* The key of a (namespace, workload label) pair; 0 when either is unknown,
 * which is never tracked. */
static uint64_t wl_key(const char *ns, const char *wl)
{
	if (!ns || !*ns || !wl || !*wl || strcmp(ns, UNKNOWN) == 0 || strcmp(wl, UNKNOWN) == 0)
		return 0;
	uint64_t h = fnv(fnv(FNV_INIT, ns, strlen(ns) + 1), wl, strlen(wl));
	return h ? h : 1;
}

/* The workload label Istio reports: the Deployment (...) name, else the
 * workload's own name. */
static const char *workload_label(const struct workload *w)
{
	return *w->workload_name ? w->workload_name : w->name;
}

int metrics_init(struct metrics *m, uint64_t grace_ms, unsigned max_series)
{
	memset(m, 0, sizeof(*m));
	int err = pthread_mutex_init(&m->lock, NULL);
	if (err)
		return -err;
	m->grace_ns = grace_ms * 1000000ull;
	m->max_series = max_series;
	return 0;
}

void metrics_deinit(struct metrics *m)
{
	struct metrics_series *s = m->head;
	while (s) {
		struct metrics_series *next = s->next;
		free(s);
		s = next;
	}
	free(m->buckets);
	free(m->present);
	pthread_mutex_destroy(&m->lock);
	memset(m, 0, sizeof(*m));
}

static bool series_equal(const struct metrics_series *s, const struct metrics_labels *l)
{
	if (s->reporter != l->reporter || s->security != l->security)
		return false;
	for (unsigned i = 0; i < ML_COUNT; i++)
		if (strcmp(s->v[i], label_value(l->v[i])) != 0)
			return false;
	return true;
}

static struct metrics_series *find(const struct metrics *m, const struct metrics_labels *l,
				   uint64_t hash)
{
	if (!m->nbuckets)
		return NULL;
	for (struct metrics_series *s = m->buckets[hash & (m->nbuckets - 1)]; s; s = s->hnext)
		if (s->hash == hash && series_equal(s, l))
			return s;
	return NULL;
}

static struct metrics_series *series_new(const struct metrics_labels *l, uint64_t hash)
{
	size_t len[ML_COUNT], total = 0;
	for (unsigned i = 0; i < ML_COUNT; i++) {
		len[i] = strlen(label_value(l->v[i])) + 1;
		total += len[i];
	}
	struct metrics_series *s = calloc(1, sizeof(*s) + total);
	if (!s)
		return NULL;
	char *p = s->blob;
	for (unsigned i = 0; i < ML_COUNT; i++) {
		memcpy(p, label_value(l->v[i]), len[i]);
		s->v[i] = p;
		p += len[i];
	}
	s->blob_len = total;
	s->hash = hash;
	s->reporter = l->reporter;
	s->security = l->security;
	s->wl_key[0] = wl_key(s->v[ML_SOURCE_WORKLOAD_NAMESPACE], s->v[ML_SOURCE_WORKLOAD]);
	s->wl_key[1] = wl_key(s->v[ML_DESTINATION_WORKLOAD_NAMESPACE], s->v[ML_DESTINATION_WORKLOAD]);
	return s;
}

/* Double the index before it gets fuller than one series per bucket; on
 * failure chains just get longer. */
static void grow_buckets(struct metrics *m)
{
	if (m->nseries < m->nbuckets)
		return;
	unsigned n = m->nbuckets ? m->nbuckets * 2 : BUCKETS_MIN;
	struct metrics_series **b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (struct metrics_series *s = m->head; s; s = s->next) {
		s->hnext = b[s->hash & (n - 1)];
		b[s->hash & (n - 1)] = s;
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

static bool present(const struct metrics *m, uint64_t key)
{
	if (!key)
		return true;
	for (size_t i = key & m->present_mask;; i = (i + 1) & m->present_mask) {
		if (m->present[i] == key)
			return true;
		if (!m->present[i])
			return false;
	}
}

/* Note (or clear) that one of s's workloads is not in the latest config. */
static void check_present(struct metrics *m, struct metrics_series *s, uint64_t now_ns)
{
	bool here = present(m, s->wl_key[0]) && present(m, s->wl_key[1]);
	if (!here && !s->gone_ns) {
		s->gone_ns = now_ns ? now_ns : 1;
		m->ngone++;
	} else if (here && s->gone_ns) {
		s->gone_ns = 0;
		m->ngone--;
	}
}

static struct metrics_series *insert(struct metrics *m, const struct metrics_labels *l,
				     uint64_t hash, uint64_t now_ns)
{
	struct metrics_series *s = series_new(l, hash);
	if (!s)
		return NULL;
	if (m->present_version)
		check_present(m, s, now_ns);
	grow_buckets(m);
	if (m->nbuckets) {
		s->hnext = m->buckets[hash & (m->nbuckets - 1)];
		m->buckets[hash & (m->nbuckets - 1)] = s;
	}
	pthread_mutex_lock(&m->lock);
	s->next = m->head;
	if (m->head)
		m->head->prev = s;
	m->head = s;
	m->nseries++;
	pthread_mutex_unlock(&m->lock);
	return s;
}

/* The overflow series of l's reporter and security policy. */
static struct metrics_series *overflow(struct metrics *m, const struct metrics_labels *l,
				       uint64_t now_ns)
{
	struct metrics_labels o = { .reporter = l->reporter, .security = l->security };
	for (unsigned i = 0; i < ML_COUNT; i++)
		o.v[i] = OVERFLOW;
	uint64_t hash = labels_hash(&o);
	struct metrics_series *s = find(m, &o, hash);
	if (!s && (s = insert(m, &o, hash, now_ns)))
		s->overflow = true;
	return s;
}

struct metrics_series *metrics_series_get(struct metrics *m, const struct metrics_labels *l,
					  uint64_t now_ns)
{
	uint64_t hash = labels_hash(l);
	struct metrics_series *s = find(m, l, hash);
	if (s)
		return s;
	if (m->nseries < m->max_series && (s = insert(m, l, hash, now_ns)))
		return s;
	s = overflow(m, l, now_ns);
	if (s) {
		pthread_mutex_lock(&m->lock);
		m->overflowed++;
		pthread_mutex_unlock(&m->lock);
	}
	return s;
}

void metrics_series_opened(struct metrics *m, struct metrics_series *s)
{
	pthread_mutex_lock(&m->lock);
	s->opened++;
	s->active++;
	pthread_mutex_unlock(&m->lock);
}

void metrics_series_closed(struct metrics *m, struct metrics_series *s, uint64_t received,
			   uint64_t sent, enum metrics_flag flag, uint64_t now_ns)
{
	pthread_mutex_lock(&m->lock);
	s->received += received;
	s->sent += sent;
	s->closed[flag < RFLAG_COUNT ? flag : RFLAG_NONE]++;
	if (s->active)
		s->active--;
	s->last_close_ns = now_ns;
	pthread_mutex_unlock(&m->lock);
}

/* --- connections --- */

bool metrics_conn_mtls(const struct conn *c)
{
	return c->role == ROLE_HBONE || conn_via_hbone(c);
}

/* The workload the client is. For an HBONE stream the address is the
 * tunnel's TCP peer (a node's or pod's address, never a header), and it
 * counts only when that workload is the identity the peer proved. */
static const struct workload *source_workload(const struct conn *c)
{
	const struct workload *w = c->snap ? route_workload_at(c->snap->routes, &c->src) : NULL;
	if (w && c->role == ROLE_HBONE && (!c->peer_id || strcmp(w->identity, c->peer_id) != 0))
		return NULL;
	return w;
}

/* Inbound, the service the client meant is not on the wire: take the
 * destination workload's service whose target port is the one connected
 * to (ztunnel guesses the same way). */
static const char *inbound_service(const struct conn *c, char *ns, size_t nslen)
{
	const struct workload *w = c->dst_workload;
	uint16_t port = addr_port(&c->dst);
	for (size_t i = 0; w && i < w->nservices; i++) {
		const struct workload_service *ws = &w->services[i];
		for (size_t p = 0; p < ws->nports; p++) {
			uint16_t target = ws->ports[p].target ? ws->ports[p].target : ws->ports[p].port;
			const char *slash = strchr(ws->key, '/');
			if (target != port || !slash || (size_t)(slash - ws->key) >= nslen)
				continue;
			memcpy(ns, ws->key, (size_t)(slash - ws->key));
			ns[slash - ws->key] = '\0';
			return slash + 1;
		}
	}
	return NULL;
}

static void workload_labels(struct metrics_labels *l, const struct workload *w, unsigned first)
{
	if (!w)
		return;
	l->v[first] = workload_label(w);
	l->v[first + 1] = w->canonical_name;
	l->v[first + 2] = w->canonical_revision;
	l->v[first + 3] = w->namespace;
	l->v[first + 5] = w->cluster_id;
}

static void labels_of(const struct conn *c, struct metrics_labels *l, char *ns, size_t nslen)
{
	bool outbound = c->role == ROLE_OUTBOUND;
	memset(l, 0, sizeof(*l));
	l->reporter = outbound ? REPORTER_SOURCE : REPORTER_DESTINATION;
	l->security = metrics_conn_mtls(c) ? SECURITY_MUTUAL_TLS : SECURITY_NONE;
	workload_labels(l, c->src_workload, ML_SOURCE_WORKLOAD);
	workload_labels(l, c->dst_workload, ML_DESTINATION_WORKLOAD);
	/* The source principal is the identity mTLS proves: ours outbound,
	 * the peer's inbound; plaintext proves none. */
	if (c->role == ROLE_HBONE)
		l->v[ML_SOURCE_PRINCIPAL] = c->peer_id;
	else if (outbound && l->security == SECURITY_MUTUAL_TLS && c->src_workload)
		l->v[ML_SOURCE_PRINCIPAL] = c->src_workload->identity;
	if (c->dst_workload)
		l->v[ML_DESTINATION_PRINCIPAL] = c->dst_workload->identity;
	if (outbound && c->route == ROUTE_SERVICE && c->dst_service) {
		l->v[ML_DESTINATION_SERVICE] = c->dst_service->hostname;
		l->v[ML_DESTINATION_SERVICE_NAMESPACE] = c->dst_service->namespace;
		l->v[ML_DESTINATION_SERVICE_NAME] = c->dst_service->name;
	} else if (!outbound) {
		l->v[ML_DESTINATION_SERVICE] = inbound_service(c, ns, nslen);
		if (l->v[ML_DESTINATION_SERVICE])
			l->v[ML_DESTINATION_SERVICE_NAMESPACE] = ns;
	}
}

void metrics_conn_open(struct conn *c)
{
	struct metrics *m = &c->w->metrics;
	struct metrics_labels l;
	char ns[256];
	if (c->series)
		return;
	if (!c->src_workload)
		c->src_workload = source_workload(c);
	labels_of(c, &l, ns, sizeof(ns));
	c->series = metrics_series_get(m, &l, c->w->now_ns);
	if (c->series)
		metrics_series_opened(m, c->series);
}

enum metrics_flag metrics_conn_flag(const struct conn *c)
{
	if (c->policy)
		return RFLAG_DENY;
	if (c->rflag)
		return (enum metrics_flag)c->rflag;
	return c->connected ? RFLAG_NONE : RFLAG_CONNECT;
}

const char *metrics_flag_name(enum metrics_flag f)
{
	static const char *const names[RFLAG_COUNT] = {
		[RFLAG_NONE] = "-",
		[RFLAG_DENY] = "DENY",
		[RFLAG_CONNECT] = "CONNECT",
		[RFLAG_TLS_FAILURE] = "TLS_FAILURE",
		[RFLAG_IDENTITY_ERROR] = "IDENTITY_ERROR",
	};
	return f < RFLAG_COUNT ? names[f] : "-";
}

/* Bytes moved since the last report: dir[0] is the request direction
 * (Istio's received bytes), dir[1] the response (sent), whoever reports. */
static void take_delta(struct conn *c, uint64_t *received, uint64_t *sent)
{
	*received = c->dir[0].bytes - c->reported[0];
	*sent = c->dir[1].bytes - c->reported[1];
	c->reported[0] = c->dir[0].bytes;
	c->reported[1] = c->dir[1].bytes;
}

void metrics_conn_close(struct conn *c)
{
	uint64_t received, sent;
	if (!c->series)
		return;
	take_delta(c, &received, &sent);
	metrics_series_closed(&c->w->metrics, c->series, received, sent, metrics_conn_flag(c),
			      c->w->now_ns);
	c->series = NULL;
}

/* --- the tick --- */

/* The idle list is ordered by last activity and a conn is touched whenever
 * bytes move, so the conns with bytes to report are at its fresh end. */
static void flush_active(struct worker *w)
{
	struct metrics *m = &w->metrics;
	struct conn *c = w->lru_tail;
	if (c && c->active_ns >= m->last_flush_ns) {
		pthread_mutex_lock(&m->lock);
		for (; c && c->active_ns >= m->last_flush_ns; c = c->lru_prev) {
			uint64_t received, sent;
			if (!c->series)
				continue;
			take_delta(c, &received, &sent);
			c->series->received += received;
			c->series->sent += sent;
		}
		pthread_mutex_unlock(&m->lock);
	}
	m->last_flush_ns = w->now_ns;
}

/* The (namespace, workload) keys of every workload in cfg. */
static int build_present(struct metrics *m, const struct config *cfg)
{
	size_t cap = 16;
	while (cap < cfg->nworkloads * 2)
		cap *= 2;
	uint64_t *set = calloc(cap, sizeof(*set));
	if (!set)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->nworkloads; i++) {
		const struct workload *w = &cfg->workloads[i];
		uint64_t key = wl_key(w->namespace, workload_label(w));
		if (!key)
			continue;
		size_t j = key & (cap - 1);
		while (set[j] && set[j] != key)
			j = (j + 1) & (cap - 1);
		set[j] = key;
	}
	free(m->present);
	m->present = set;
	m->present_mask = cap - 1;
	return 0;
}

static void recheck(struct metrics *m, const struct snapshot *s, uint64_t version, uint64_t now)
{
	if (build_present(m, s->cfg) < 0)
		return;		/* try again next tick */
	m->present_version = version;
	for (struct metrics_series *se = m->head; se; se = se->next)
		check_present(m, se, now);
}

static void unlink_series(struct metrics *m, struct metrics_series *s)
{
	struct metrics_series **pp = m->nbuckets ? &m->buckets[s->hash & (m->nbuckets - 1)] : NULL;
	while (pp && *pp && *pp != s)
		pp = &(*pp)->hnext;
	if (pp && *pp)
		*pp = s->hnext;
	if (s->prev)
		s->prev->next = s->next;
	else
		m->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	m->nseries--;
}

static void prune(struct metrics *m, uint64_t now)
{
	bool locked = false;
	struct metrics_series *s = m->head;
	while (s) {
		struct metrics_series *next = s->next;
		uint64_t since = s->gone_ns > s->last_close_ns ? s->gone_ns : s->last_close_ns;
		if (s->gone_ns && !s->active && now - since >= m->grace_ns) {
			if (!locked) {
				pthread_mutex_lock(&m->lock);
				locked = true;
			}
			unlink_series(m, s);
			m->ngone--;
			m->pruned++;
			free(s);
		}
		s = next;
	}
	if (locked)
		pthread_mutex_unlock(&m->lock);
}

void metrics_tick(struct worker *w)
{
	struct metrics *m = &w->metrics;
	flush_active(w);
	if (w->snap && w->snap_version != m->present_version)
		recheck(m, w->snap, w->snap_version, w->now_ns);
	if (m->ngone)
		prune(m, w->now_ns);
}
