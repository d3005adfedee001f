/*
 * Node-agent mode: which pods are served, their listeners (opened inside
 * each pod's network namespace on the control thread, adopted by the
 * workers), and the drain of pods that leave. See include/zring/nodeagent.h.
 */
#include "zring/nodeagent.h"
#include "zring/conn.h"
#include "zring/listener.h"
#include "zring/log.h"
#include "zring/pod.h"
#include "zring/tunnel.h"
#include "zring/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum msg_kind { MSG_ADD, MSG_LEAVE };

/* One worker's share of a pod change, control thread -> worker. */
struct nodeagent_msg {
	struct nodeagent_msg *next;
	enum msg_kind kind;
	struct pod *pod;		/* a reference */
	unsigned nlisteners;
	struct listener *listeners[];	/* MSG_ADD: the worker's, not yet armed */
};

/* A pod that left, on one worker: its connections may finish until then. */
struct nodeagent_drain {
	struct nodeagent_drain *next;
	struct pod *pod;		/* a reference */
	uint64_t deadline_ns;
};

/* ------------------------------------------------------------ control side */

int nodeagent_new(const struct opts *o, struct snapshot_slot *slot, struct nodeagent **out)
{
	int err = pod_home_init();
	if (err < 0)
		return err;
	struct nodeagent *na = calloc(1, sizeof(*na));
	if (!na) {
		pod_home_deinit();
		return -ENOMEM;
	}
	na->opts = o;
	na->slot = slot;
	*out = na;
	return 0;
}

void nodeagent_attach(struct nodeagent *na, struct worker **ws, unsigned n)
{
	na->workers = ws;
	na->nworkers = n;
}

void nodeagent_free(struct nodeagent *na)
{
	if (!na)
		return;
	for (size_t i = 0; i < na->npods; i++)
		pod_unref(na->pods[i]);
	free(na->pods);
	free(na);
	pod_home_deinit();
}

static bool serves(const struct nodeagent *na, const struct workload *wl)
{
	return wl->netns && (!na->opts->node || strcmp(wl->node, na->opts->node) == 0);
}

static int cmp_pod(const void *a, const void *b)
{
	return strcmp((*(struct pod *const *)a)->uid, (*(struct pod *const *)b)->uid);
}

/* Index of the served pod `uid` among the first n (sorted), or -1. */
static long find_pod(const struct nodeagent *na, size_t n, const char *uid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(na->pods[mid]->uid, uid);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void post(struct worker *w, struct nodeagent_msg *m)
{
	struct nodeagent_inbox *in = &w->pod_inbox;
	m->next = NULL;
	pthread_mutex_lock(&in->lock);
	if (in->tail)
		in->tail->next = m;
	else
		in->head = m;
	in->tail = m;
	pthread_mutex_unlock(&in->lock);
}

static void msg_free(struct nodeagent_msg *m)
{
	for (unsigned i = 0; i < m->nlisteners; i++)
		listener_free(m->listeners[i]);
	pod_unref(m->pod);
	free(m);
}

static void msgs_free(struct nodeagent_msg **msgs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (msgs[i])
			msg_free(msgs[i]);
	free(msgs);
}

/* One message per worker about p, each with room for `room` listeners. */
static struct nodeagent_msg **msgs_new(struct nodeagent *na, enum msg_kind kind, struct pod *p,
				       unsigned room)
{
	struct nodeagent_msg **msgs = calloc(na->nworkers, sizeof(*msgs));
	for (unsigned i = 0; msgs && i < na->nworkers; i++) {
		msgs[i] = calloc(1, sizeof(**msgs) + room * sizeof(struct listener *));
		if (!msgs[i]) {
			msgs_free(msgs, na->nworkers);
			return NULL;
		}
		msgs[i]->kind = kind;
		msgs[i]->pod = pod_ref(p);
	}
	return msgs;
}

static void post_all(struct nodeagent *na, struct nodeagent_msg **msgs)
{
	for (unsigned i = 0; i < na->nworkers; i++)
		post(na->workers[i], msgs[i]);
	free(msgs);
}

/* Begin a line about p: msg, then which pod (name, uid, netns). False when
 * the level is filtered out, and then there is no line to end. */
static bool log_pod_begin(struct log_line *l, enum log_level lv, const char *msg,
			  const struct pod *p)
{
	if (!log_begin(l, lv, msg))
		return false;
	log_str(l, "pod", p->name);
	log_str(l, "uid", p->uid);
	log_str(l, "netns", p->netns);
	return true;
}

static void log_pod(enum log_level lv, const char *msg, const struct pod *p, int err)
{
	struct log_line l;
	if (!log_pod_begin(&l, lv, msg, p))
		return;
	if (err)
		log_err(&l, "error", err);
	log_end(&l);
}

/* A default IPv6 address in a pod without IPv6 is not an error. */
static bool tolerable(const struct addr_list *l, const union addr *a, int err)
{
	return l->is_default && a->sa.sa_family == AF_INET6 &&
	       (err == -EAFNOSUPPORT || err == -EADDRNOTAVAIL);
}

static void log_listen_failed(const struct pod *p, enum role role, const union addr *a, int err)
{
	struct log_line l;
	char buf[ADDR_STRLEN];
	if (!log_pod_begin(&l, LOG_WARN, "cannot listen in pod", p))
		return;
	log_str(&l, "role", role_name(role));
	log_str(&l, "addr", addr_format(a, buf, sizeof(buf)));
	log_err(&l, "error", err);
	log_end(&l);
}

/* Worker w's listeners for one role, into m. Runs inside the pod's
 * namespace: listener_open's socket lands there. */
static int open_role(struct worker *w, struct pod *p, enum role role, const struct addr_list *al,
		     struct nodeagent_msg *m)
{
	for (unsigned i = 0; i < al->n; i++) {
		struct listener *l;
		int err = listener_open(w, role, &al->a[i], &l);
		if (err < 0 && tolerable(al, &al->a[i], err))
			continue;
		if (err < 0) {
			log_listen_failed(p, role, &al->a[i], err);
			return err;
		}
		l->pod = pod_ref(p);
		m->listeners[m->nlisteners++] = l;
	}
	return 0;
}

/* Every worker's listeners for p. The caller is inside p's namespace. */
static int open_listeners(struct nodeagent *na, struct pod *p, struct nodeagent_msg **msgs)
{
	const struct opts *o = na->opts;
	int err = 0;
	for (unsigned i = 0; err == 0 && i < na->nworkers; i++) {
		err = open_role(na->workers[i], p, ROLE_OUTBOUND, &o->outbound, msgs[i]);
		if (err == 0)
			err = open_role(na->workers[i], p, ROLE_INBOUND, &o->inbound, msgs[i]);
		if (err == 0 && o->certs)
			err = open_role(na->workers[i], p, ROLE_HBONE, &o->hbone, msgs[i]);
	}
	return err;
}

static unsigned listeners_per_worker(const struct opts *o)
{
	return o->outbound.n + o->inbound.n + (o->certs ? o->hbone.n : 0);
}

/* p may not be served next to the pods already served if its namespace is
 * zring's own or one of theirs: logged and counted, -EEXIST. */
static int check_conflict(struct nodeagent *na, const struct pod *p)
{
	const char *why = pod_is_home(p) ? "the pod's network namespace is zring's own" : NULL;
	for (size_t i = 0; !why && i < na->npods; i++)
		if (pod_same_netns(na->pods[i], p))
			why = "another served pod has the same network namespace";
	if (!why)
		return 0;
	atomic_fetch_add(&na->netns_failures, 1);
	struct log_line l;
	if (log_pod_begin(&l, LOG_WARN, "pod not served", p)) {
		log_str(&l, "reason", why);
		log_end(&l);
	}
	return -EEXIST;
}

static int table_add(struct nodeagent *na, struct pod *p)
{
	if (na->npods == na->cap) {
		size_t cap = na->cap ? na->cap * 2 : 16;
		struct pod **v = realloc(na->pods, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		na->pods = v;
		na->cap = cap;
	}
	na->pods[na->npods++] = p;
	return 0;
}

static void log_added(const struct nodeagent *na, const struct pod *p, unsigned nlisteners)
{
	struct log_line l;
	if (!log_pod_begin(&l, LOG_INFO, "pod added", p))
		return;
	log_u64(&l, "listeners", nlisteners);
	log_u64(&l, "workers", na->nworkers);
	log_u64(&l, "pods", na->npods);
	log_end(&l);
}

static void log_unavailable(struct nodeagent *na, const struct workload *wl, const char *name,
			    int err, const char *why)
{
	uint64_t n = atomic_fetch_add(&na->netns_failures, 1) + 1;
	struct log_line l;
	if (log_begin(&l, LOG_WARN, "pod netns unavailable")) {
		log_str(&l, "pod", name);
		log_str(&l, "uid", wl->uid);
		log_str(&l, "netns", wl->netns);
		if (why && *why)
			log_str(&l, "error", why);
		else
			log_err(&l, "error", err);
		log_u64(&l, "failures", n);
		log_end(&l);
	}
}

/* Enter p's namespace once, open every worker's listeners there, return.
 * A namespace that cannot be entered or a listener that cannot be bound
 * is logged and counted. */
static int open_in_pod(struct nodeagent *na, struct pod *p, struct nodeagent_msg **msgs)
{
	int err = pod_enter(p);
	if (err < 0) {
		atomic_fetch_add(&na->netns_failures, 1);
		log_pod(LOG_WARN, "cannot enter pod netns", p, err);
		return err;
	}
	err = open_listeners(na, p, msgs);
	pod_leave();
	if (err < 0)
		atomic_fetch_add(&na->listen_failures, 1);
	return err;
}

/* Serve workload wl: open its namespace and its listeners, post them. */
static int add_pod(struct nodeagent *na, const struct workload *wl)
{
	char name[512];
	struct pod *p;
	snprintf(name, sizeof(name), "%s/%s", wl->namespace, wl->name);
	char why[POD_WHY_MAX];
	int err = pod_new(wl->uid, name, wl->netns, &p, why, sizeof(why));
	if (err < 0) {
		log_unavailable(na, wl, name, err, why);
		return err;
	}
	if ((err = check_conflict(na, p)) < 0) {
		pod_unref(p);
		return err;
	}
	struct nodeagent_msg **msgs = msgs_new(na, MSG_ADD, p, listeners_per_worker(na->opts));
	err = msgs ? open_in_pod(na, p, msgs) : -ENOMEM;
	if (err == 0)
		err = table_add(na, p);
	if (err == -ENOMEM)
		log_pod(LOG_WARN, "pod not served", p, err);
	if (err < 0) {
		if (msgs)
			msgs_free(msgs, na->nworkers);
		pod_unref(p);
		return err;
	}
	unsigned per = msgs[0]->nlisteners;
	post_all(na, msgs);	/* the table keeps p's first reference */
	na->added++;
	log_added(na, p, per);
	return 0;
}

/* Tell every worker that p leaves. Fails only for lack of memory, and p
 * then stays served until the next sync tries again. */
static int leave_pod(struct nodeagent *na, struct pod *p)
{
	struct nodeagent_msg **msgs = msgs_new(na, MSG_LEAVE, p, 0);
	if (!msgs)
		return -ENOMEM;
	post_all(na, msgs);
	na->removed++;
	struct log_line l;
	if (log_pod_begin(&l, LOG_INFO, "pod removed", p)) {
		log_u64(&l, "drain_ms", na->opts->drain_timeout_ms);
		log_end(&l);
	}
	pod_unref(p);
	return 0;
}

/* Mark the served pods still in the config with the same namespace. */
static void mark_kept(const struct nodeagent *na, const struct config *cfg, bool *keep)
{
	for (size_t i = 0; i < cfg->nworkloads; i++) {
		const struct workload *wl = &cfg->workloads[i];
		if (!serves(na, wl))
			continue;
		long k = find_pod(na, na->npods, wl->uid);
		if (k >= 0 && strcmp(na->pods[k]->netns, wl->netns) == 0)
			keep[k] = true;
	}
}

/* Remove the pods not kept; the table stays sorted. True if any left. */
static bool remove_unkept(struct nodeagent *na, const bool *keep)
{
	size_t n = 0;
	bool changed = false;
	for (size_t i = 0; i < na->npods; i++) {
		struct pod *p = na->pods[i];
		if (!keep[i] && leave_pod(na, p) == 0) {
			changed = true;
			continue;
		}
		if (!keep[i])
			log_pod(LOG_WARN, "pod removal postponed", p, -ENOMEM);
		na->pods[n++] = p;
	}
	na->npods = n;
	return changed;
}

void nodeagent_sync(struct nodeagent *na)
{
	struct snapshot *s = slot_acquire(na->slot);
	if (!s)
		return;
	const struct config *cfg = s->cfg;
	bool *keep = calloc(na->npods + 1, sizeof(*keep));
	if (!keep) {
		log_msg_err(LOG_WARN, "pods not updated", "nodeagent", -ENOMEM);
		snapshot_unref(s);
		return;
	}
	mark_kept(na, cfg, keep);
	bool changed = remove_unkept(na, keep);
	free(keep);
	/* Uids are unique in a config: a pod added here is never looked up
	 * again in this pass, so the unsorted tail does not matter. */
	size_t sorted = na->npods;
	for (size_t i = 0; i < cfg->nworkloads; i++) {
		const struct workload *wl = &cfg->workloads[i];
		if (serves(na, wl) && find_pod(na, sorted, wl->uid) < 0 && add_pod(na, wl) == 0)
			changed = true;
	}
	qsort(na->pods, na->npods, sizeof(*na->pods), cmp_pod);
	if (changed)
		for (unsigned i = 0; i < na->nworkers; i++)
			worker_post(na->workers[i], WORKER_CMD_PODS);
	snapshot_unref(s);
}

/* ------------------------------------------------------------- worker side */

void nodeagent_inbox_init(struct nodeagent_inbox *in)
{
	pthread_mutex_init(&in->lock, NULL);
	in->head = in->tail = NULL;
	in->draining = NULL;
}

/* Take the pod's listeners and start accepting; a draining worker closes
 * them instead (zring's own drain has begun). */
static void adopt(struct worker *w, struct nodeagent_msg *m)
{
	for (unsigned i = 0; i < m->nlisteners; i++) {
		struct listener *l = m->listeners[i];
		if (w->draining || worker_add_listener(w, l) < 0) {
			listener_free(l);
			continue;
		}
		listener_arm(l);
	}
	m->nlisteners = 0;
}

/* Close p's listeners (new connections from the pod are refused from now
 * on), stop its tunnels taking streams, and start its drain clock. */
static void leave(struct worker *w, struct nodeagent_msg *m)
{
	/* Backwards: a closed listener is swapped out of the array. */
	for (unsigned i = w->nlisteners; i-- > 0;)
		if (w->listeners[i]->pod == m->pod)
			listener_close(w->listeners[i]);
	for (struct tunnel *t = w->tunnels; t; t = t->next)
		if (t->pod == m->pod)
			tunnel_drain(t);
	struct nodeagent_drain *d = malloc(sizeof(*d));
	if (!d) {
		/* Cannot keep the clock: the next tick cannot find the pod,
		 * so its connections run to their own end (or zring's drain). */
		log_msg_err(LOG_WARN, "pod drain not tracked", m->pod->name, -ENOMEM);
		return;
	}
	d->pod = m->pod;
	m->pod = NULL;
	d->deadline_ns = w->now_ns + w->opts->drain_timeout_ms * 1000000ull;
	d->next = w->pod_inbox.draining;
	w->pod_inbox.draining = d;
}

void nodeagent_worker_wake(struct worker *w)
{
	struct nodeagent_inbox *in = &w->pod_inbox;
	pthread_mutex_lock(&in->lock);
	struct nodeagent_msg *m = in->head;
	in->head = in->tail = NULL;
	pthread_mutex_unlock(&in->lock);
	while (m) {
		struct nodeagent_msg *next = m->next;
		if (m->kind == MSG_ADD)
			adopt(w, m);
		else
			leave(w, m);
		msg_free(m);
		m = next;
	}
}

/* Connections and tunnels of p still open on w; with `cut`, close them
 * (the drain deadline) and return how many were. */
static unsigned pod_sweep(struct worker *w, const struct pod *p, bool cut)
{
	unsigned n = 0;
	for (struct conn *c = w->lru_head, *next; c; c = next) {
		next = c->lru_next;
		if (c->pod != p || c->closing)
			continue;
		n++;
		if (cut) {
			conn_close(c, 0, "pod drain deadline", true);
			conn_put(c);
		}
	}
	for (struct tunnel *t = w->tunnels, *next; t; t = next) {
		next = t->next;
		if (t->pod != p || t->closing)
			continue;
		n++;
		if (cut) {
			tunnel_close(t, -ETIMEDOUT, "pod drain deadline");
			tunnel_put(t);
		}
	}
	return n;
}

static void log_drained(const struct worker *w, const struct pod *p, unsigned cut)
{
	struct log_line l;
	if (!log_begin(&l, cut ? LOG_INFO : LOG_DEBUG, cut ? "pod drain deadline" : "pod drained"))
		return;
	log_str(&l, "pod", p->name);
	log_u64(&l, "worker", w->id);
	if (cut)
		log_u64(&l, "closed", cut);
	log_end(&l);
}

static void drain_free(struct nodeagent_drain *d)
{
	pod_unref(d->pod);
	free(d);
}

void nodeagent_worker_tick(struct worker *w)
{
	struct nodeagent_drain **pp = &w->pod_inbox.draining;
	while (*pp) {
		struct nodeagent_drain *d = *pp;
		bool expired = w->now_ns >= d->deadline_ns;
		unsigned n = pod_sweep(w, d->pod, expired);
		if (!expired && n) {
			pp = &d->next;
			continue;
		}
		log_drained(w, d->pod, expired ? n : 0);
		*pp = d->next;
		drain_free(d);
	}
}

void nodeagent_worker_free(struct worker *w)
{
	struct nodeagent_inbox *in = &w->pod_inbox;
	while (in->head) {
		struct nodeagent_msg *m = in->head;
		in->head = m->next;
		msg_free(m);
	}
	in->tail = NULL;
	while (in->draining) {
		struct nodeagent_drain *d = in->draining;
		in->draining = d->next;
		drain_free(d);
	}
	pthread_mutex_destroy(&in->lock);
}
