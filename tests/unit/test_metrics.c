/*
 * Metrics: series from connections (through the hooks conn.c calls),
 * byte flushes on the tick, sums across workers, pruning after the grace,
 * the series cap, and the rendered page read back field by field and
 * checked by promtool. Also the access line in JSON with hostile values.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zring/conn.h"
#include "zring/log.h"
#include "zring/metrics.h"
#include "zring/sockopt.h"
#include "zring/strbuf.h"
#include "zring/watch.h"
#include "zring/worker.h"

#define SEC 1000000000ull

/* Hostile but valid values: quote, backslash, newline, tab, unicode. */
#define EVIL_NAME "q\"uote\\back\nnew\tline \xe2\x98\x83 \xc3\xa9"
#define EVIL_NAME_JSON "q\\\"uote\\\\back\\nnew\\tline \xe2\x98\x83 \xc3\xa9"

static const char CONFIG[] =
	"{\"workloads\":["
	"{\"uid\":\"c1\",\"name\":\"client-pod\",\"namespace\":\"ns1\",\"serviceAccount\":\"client\","
	" \"workloadName\":\"client\",\"canonicalName\":\"client-app\",\"canonicalRevision\":\"v1\","
	" \"clusterId\":\"c-1\",\"workloadIps\":[\"10.0.0.1\"],\"protocol\":\"HBONE\"},"
	"{\"uid\":\"s1\",\"name\":\"server-pod\",\"namespace\":\"ns2\",\"serviceAccount\":\"server\","
	" \"workloadName\":\"server\",\"workloadIps\":[\"10.0.0.2\"],\"protocol\":\"HBONE\","
	" \"services\":{\"ns2/web.ns2.svc.cluster.local\":{\"80\":8080}}},"
	"{\"uid\":\"h1\",\"name\":\"" EVIL_NAME_JSON "\",\"namespace\":\"evil\","
	" \"canonicalName\":\"" EVIL_NAME_JSON "\",\"workloadIps\":[\"10.0.0.3\"]}"
	"],\"services\":[{\"name\":\"web\",\"namespace\":\"ns2\",\"hostname\":\"web.ns2.svc.cluster.local\","
	" \"vips\":[\"/10.96.0.10\"],\"ports\":{\"80\":8080}}],\"policies\":[]}";

/* The same mesh after the server workload left. */
static const char CONFIG_NO_SERVER[] =
	"{\"workloads\":["
	"{\"uid\":\"c1\",\"name\":\"client-pod\",\"namespace\":\"ns1\",\"serviceAccount\":\"client\","
	" \"workloadName\":\"client\",\"workloadIps\":[\"10.0.0.1\"],\"protocol\":\"HBONE\"}"
	"],\"services\":[],\"policies\":[]}";

static char fake_certs;		/* stands in for a certstore: "HBONE is on" */

static struct snapshot *snap_of(const char *json, uint64_t version, bool certs)
{
	struct config *cfg;
	struct config_errors errs;
	int err = config_parse(json, strlen(json), "test.json", &cfg, &errs);
	if (err)
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s: %s\n", errs.v[i].path, errs.v[i].msg);
	cr_assert_eq(err, 0);
	struct snapshot *s;
	cr_assert_eq(snapshot_new(cfg, NULL, &s), 0);
	s->version = version;
	s->certs = certs ? (struct certstore *)&fake_certs : NULL;
	return s;
}

static void snap_free(struct snapshot *s)
{
	s->certs = NULL;
	snapshot_unref(s);
}

static struct worker *worker_fake(unsigned id, struct snapshot *s, unsigned max_series)
{
	struct worker *w = calloc(1, sizeof(*w));
	cr_assert(w);
	cr_assert_eq(metrics_init(&w->metrics, 60 * 1000, max_series), 0);
	w->id = id;
	w->snap = s;
	w->snap_version = s ? s->version : 0;
	w->now_ns = 1000 * SEC;
	return w;
}

static void worker_fake_free(struct worker *w)
{
	metrics_deinit(&w->metrics);
	free(w);
}

static void addr_of(const char *s, union addr *a)
{
	cr_assert_eq(addr_parse(s, a), 0, "%s", s);
}

/* A routed connection, as conn_accept / hbone's server_request leave it. */
static struct conn *conn_fake(struct worker *w, enum role role, const char *src, const char *dst)
{
	struct conn *c = calloc(1, sizeof(*c));
	cr_assert(c);
	c->w = w;
	c->role = (uint8_t)role;
	c->snap = w->snap;
	c->start_ns = c->active_ns = w->now_ns;
	addr_of(src, &c->src);
	addr_of(dst, &c->dst);
	struct route r;
	cr_assert_eq(route_lookup(c->snap->routes, &c->dst, 0, &r), 0);
	c->route = (uint8_t)r.kind;
	c->dst_workload = r.workload;
	c->dst_service = r.service;
	c->upstream = r.upstream;
	/* On the LRU list, freshest at the tail. */
	c->lru_prev = w->lru_tail;
	if (w->lru_tail)
		w->lru_tail->lru_next = c;
	else
		w->lru_head = c;
	w->lru_tail = c;
	return c;
}

static void conn_fake_free(struct conn *c)
{
	struct worker *w = c->w;
	if (c->lru_prev)
		c->lru_prev->lru_next = c->lru_next;
	else
		w->lru_head = c->lru_next;
	if (c->lru_next)
		c->lru_next->lru_prev = c->lru_prev;
	else
		w->lru_tail = c->lru_prev;
	free(c->peer_id);
	free(c->policy);
	free(c);
}

static void moved(struct conn *c, uint64_t up, uint64_t down)
{
	c->dir[0].bytes += up;
	c->dir[1].bytes += down;
	c->active_ns = c->w->now_ns;
	/* move to the fresh end, as conn_touch does */
	struct worker *w = c->w;
	if (w->lru_tail != c) {
		if (c->lru_prev)
			c->lru_prev->lru_next = c->lru_next;
		else
			w->lru_head = c->lru_next;
		c->lru_next->lru_prev = c->lru_prev;
		c->lru_prev = w->lru_tail;
		c->lru_next = NULL;
		w->lru_tail->lru_next = c;
		w->lru_tail = c;
	}
}

/* --- reading the page back --- */

#define MAX_LABELS 32

struct sample {
	char name[128];
	unsigned n;
	char key[MAX_LABELS][64];
	char val[MAX_LABELS][512];
	double value;
};

/* Parse one sample line `name{k="v",...} value`, unescaping the values. */
static bool parse_sample(const char *p, struct sample *s)
{
	size_t i = 0;
	memset(s, 0, sizeof(*s));
	while (*p && *p != '{' && *p != ' ' && i < sizeof(s->name) - 1)
		s->name[i++] = *p++;
	if (*p == '{') {
		p++;
		while (*p != '}') {
			if (s->n == MAX_LABELS)
				return false;
			i = 0;
			while (*p && *p != '=' && i < 63)
				s->key[s->n][i++] = *p++;
			if (p[0] != '=' || p[1] != '"')
				return false;
			p += 2;
			i = 0;
			while (*p && *p != '"' && i < 511) {
				if (*p == '\\') {
					p++;
					if (*p != '\\' && *p != '"' && *p != 'n')
						return false;
					s->val[s->n][i++] = *p == 'n' ? '\n' : *p;
					p++;
				} else {
					if (*p == '\n')
						return false;
					s->val[s->n][i++] = *p++;
				}
			}
			if (*p++ != '"')
				return false;
			s->n++;
			if (*p == ',')
				p++;
			else if (*p != '}')
				return false;
		}
		p++;
	}
	if (*p != ' ')
		return false;
	char *end;
	s->value = strtod(p + 1, &end);
	return end != p + 1 && (*end == '\n' || *end == '\0');
}

static const char *label(const struct sample *s, const char *key)
{
	for (unsigned i = 0; i < s->n; i++)
		if (strcmp(s->key[i], key) == 0)
			return s->val[i];
	return NULL;
}

/* The samples of `name` whose labels include every pair of want (NULL
 * terminated key, value list): how many, and the value of the last. */
static unsigned find(const char *page, const char *name, const char *const *want, double *value)
{
	unsigned hits = 0;
	for (const char *line = page; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		struct sample s;
		if (*line == '#' || *line == '\n')
			continue;
		cr_assert(parse_sample(line, &s), "unparsable line: %.200s", line);
		if (strcmp(s.name, name) != 0)
			continue;
		bool ok = true;
		for (unsigned i = 0; want && want[i]; i += 2) {
			const char *v = label(&s, want[i]);
			if (!v || strcmp(v, want[i + 1]) != 0)
				ok = false;
		}
		if (ok) {
			hits++;
			*value = s.value;
		}
	}
	return hits;
}

/* The one sample of name with those labels; fails the test otherwise. */
static double value_of(const char *page, const char *name, const char *const *want)
{
	double v = -1;
	unsigned n = find(page, name, want, &v);
	cr_assert_eq(n, 1, "%u samples of %s match (want 1)\n%s", n, name, page);
	return v;
}

static char *render(struct worker **w, unsigned n, const struct watch *wa)
{
	struct strbuf sb;
	strbuf_init(&sb);
	struct metrics_env env = { .workers = w, .nworkers = n, .watch = wa, .draining = true };
	cr_assert_eq(metrics_render(&env, &sb), 0);
	char *page = strbuf_take(&sb, NULL);
	cr_assert(page);
	return page;
}

/* --- series from connections --- */

Test(metrics, an_outbound_mtls_connection_through_a_vip_gets_istio_labels)
{
	struct snapshot *s = snap_of(CONFIG, 1, true);
	struct worker *w = worker_fake(0, s, 100);
	struct conn *c = conn_fake(w, ROLE_OUTBOUND, "10.0.0.1:40000", "10.96.0.10:80");
	metrics_conn_open(c);
	cr_assert(c->series);
	const struct metrics_series *se = c->series;
	cr_assert_eq(se->reporter, REPORTER_SOURCE);
	cr_assert_eq(se->security, SECURITY_MUTUAL_TLS);
	cr_assert_str_eq(se->v[ML_SOURCE_WORKLOAD], "client");
	cr_assert_str_eq(se->v[ML_SOURCE_CANONICAL_SERVICE], "client-app");
	cr_assert_str_eq(se->v[ML_SOURCE_CANONICAL_REVISION], "v1");
	cr_assert_str_eq(se->v[ML_SOURCE_WORKLOAD_NAMESPACE], "ns1");
	cr_assert_str_eq(se->v[ML_SOURCE_PRINCIPAL], "spiffe://cluster.local/ns/ns1/sa/client");
	cr_assert_str_eq(se->v[ML_SOURCE_CLUSTER], "c-1");
	cr_assert_str_eq(se->v[ML_DESTINATION_SERVICE], "web.ns2.svc.cluster.local");
	cr_assert_str_eq(se->v[ML_DESTINATION_SERVICE_NAME], "web");
	cr_assert_str_eq(se->v[ML_DESTINATION_SERVICE_NAMESPACE], "ns2");
	cr_assert_str_eq(se->v[ML_DESTINATION_WORKLOAD], "server");
	cr_assert_str_eq(se->v[ML_DESTINATION_WORKLOAD_NAMESPACE], "ns2");
	cr_assert_str_eq(se->v[ML_DESTINATION_PRINCIPAL], "spiffe://cluster.local/ns/ns2/sa/server");
	cr_assert_str_eq(se->v[ML_DESTINATION_CANONICAL_SERVICE], "unknown");
	cr_assert_eq(se->opened, 1);
	cr_assert_eq(se->active, 1);
	cr_assert_eq(c->src_workload, &s->cfg->workloads[0]);

	/* Same labels, same series; opening again does nothing. */
	struct conn *c2 = conn_fake(w, ROLE_OUTBOUND, "10.0.0.1:40001", "10.96.0.10:80");
	metrics_conn_open(c2);
	metrics_conn_open(c2);
	cr_assert_eq(c2->series, se);
	cr_assert_eq(se->opened, 2);
	cr_assert_eq(w->metrics.nseries, 1);

	c->connected = c2->connected = true;
	moved(c, 100, 2000);
	metrics_conn_close(c);
	cr_assert_null(c->series);
	cr_assert_eq(se->received, 100, "request bytes are received bytes");
	cr_assert_eq(se->sent, 2000, "response bytes are sent bytes");
	cr_assert_eq(se->closed[RFLAG_NONE], 1);
	cr_assert_eq(se->active, 1);
	/* Never connected: CONNECT. */
	c2->connected = false;
	metrics_conn_close(c2);
	cr_assert_eq(se->closed[RFLAG_CONNECT], 1);
	cr_assert_eq(se->active, 0);
	conn_fake_free(c);
	conn_fake_free(c2);
	worker_fake_free(w);
	snap_free(s);
}

Test(metrics, plaintext_and_hbone_inbound_report_as_destination)
{
	struct snapshot *s = snap_of(CONFIG, 1, true);
	struct worker *w = worker_fake(0, s, 100);
	/* Plaintext inbound: no principal for the source, security none. */
	struct conn *c = conn_fake(w, ROLE_INBOUND, "10.0.0.1:5000", "10.0.0.2:8080");
	metrics_conn_open(c);
	cr_assert_eq(c->series->reporter, REPORTER_DESTINATION);
	cr_assert_eq(c->series->security, SECURITY_NONE);
	cr_assert_str_eq(c->series->v[ML_SOURCE_WORKLOAD], "client");
	cr_assert_str_eq(c->series->v[ML_SOURCE_PRINCIPAL], "unknown");
	/* The service guessed from the destination workload's target port. */
	cr_assert_str_eq(c->series->v[ML_DESTINATION_SERVICE], "web.ns2.svc.cluster.local");
	cr_assert_str_eq(c->series->v[ML_DESTINATION_SERVICE_NAMESPACE], "ns2");

	/* HBONE: the peer's proven identity is the source principal; the
	 * forwarded address names the source workload only if it is that
	 * identity's. */
	struct conn *h = conn_fake(w, ROLE_HBONE, "10.0.0.1:5001", "10.0.0.2:8080");
	h->peer_id = strdup("spiffe://cluster.local/ns/ns1/sa/client");
	metrics_conn_open(h);
	cr_assert_eq(h->series->security, SECURITY_MUTUAL_TLS);
	cr_assert_str_eq(h->series->v[ML_SOURCE_PRINCIPAL], "spiffe://cluster.local/ns/ns1/sa/client");
	cr_assert_str_eq(h->series->v[ML_SOURCE_WORKLOAD], "client");
	struct conn *liar = conn_fake(w, ROLE_HBONE, "10.0.0.1:5002", "10.0.0.2:8080");
	liar->peer_id = strdup("spiffe://cluster.local/ns/evil/sa/default");
	metrics_conn_open(liar);
	cr_assert_null(liar->src_workload);
	cr_assert_str_eq(liar->series->v[ML_SOURCE_WORKLOAD], "unknown");
	cr_assert_neq(liar->series, h->series);
	cr_assert_eq(w->metrics.nseries, 3);
	metrics_conn_close(c);
	metrics_conn_close(h);
	metrics_conn_close(liar);
	conn_fake_free(c);
	conn_fake_free(h);
	conn_fake_free(liar);
	worker_fake_free(w);
	snap_free(s);
}

Test(metrics, response_flags_follow_how_the_connection_ended)
{
	struct snapshot *s = snap_of(CONFIG, 1, false);
	struct worker *w = worker_fake(0, s, 100);
	struct conn *c = conn_fake(w, ROLE_INBOUND, "10.0.0.1:5000", "10.0.0.2:8080");
	c->connected = true;
	cr_assert_eq(metrics_conn_flag(c), RFLAG_NONE);
	c->rflag = RFLAG_TLS_FAILURE;
	cr_assert_eq(metrics_conn_flag(c), RFLAG_TLS_FAILURE);
	c->rflag = RFLAG_DENY;	/* denied with no policy to name: none allowed it */
	cr_assert_eq(metrics_conn_flag(c), RFLAG_DENY);
	c->rflag = RFLAG_NONE;
	c->policy = strdup("ns2/deny-all");
	cr_assert_eq(metrics_conn_flag(c), RFLAG_DENY);
	cr_assert_str_eq(metrics_flag_name(RFLAG_DENY), "DENY");
	cr_assert_str_eq(metrics_flag_name(RFLAG_NONE), "-");
	cr_assert_str_eq(metrics_flag_name(RFLAG_CONNECT), "CONNECT");
	conn_fake_free(c);
	worker_fake_free(w);
	snap_free(s);
}

/* --- the tick's flush --- */

Test(metrics, the_tick_flushes_bytes_of_recently_active_connections)
{
	struct snapshot *s = snap_of(CONFIG, 1, false);
	struct worker *w = worker_fake(0, s, 100);
	struct conn *a = conn_fake(w, ROLE_OUTBOUND, "10.0.0.1:1", "10.0.0.2:8080");
	struct conn *b = conn_fake(w, ROLE_OUTBOUND, "10.0.0.1:2", "10.0.0.2:8080");
	metrics_conn_open(a);
	metrics_conn_open(b);
	struct metrics_series *se = a->series;
	cr_assert_eq(b->series, se);

	moved(a, 10, 20);
	moved(b, 1, 2);
	metrics_tick(w);
	cr_assert_eq(se->received, 11);
	cr_assert_eq(se->sent, 22);

	/* A tick with nothing new adds nothing. */
	w->now_ns += SEC;
	metrics_tick(w);
	cr_assert_eq(se->received, 11);
	/* a is idle since, b moves more: only b is walked, and only the delta
	 * is added. */
	w->now_ns += SEC;
	a->dir[0].bytes += 1000;	/* bytes without a touch are not seen... */
	moved(b, 5, 5);
	metrics_tick(w);
	cr_assert_eq(se->received, 16);
	cr_assert_eq(se->sent, 27);
	/* ...until the conn closes, which reports everything left. */
	a->connected = b->connected = true;
	metrics_conn_close(a);
	metrics_conn_close(b);
	cr_assert_eq(se->received, 1016);
	cr_assert_eq(se->closed[RFLAG_NONE], 2);
	conn_fake_free(a);
	conn_fake_free(b);
	worker_fake_free(w);
	snap_free(s);
}

/* --- rendering --- */

Test(metrics, render_sums_equal_label_sets_across_workers)
{
	struct snapshot *s = snap_of(CONFIG, 1, false);
	struct worker *w[2] = { worker_fake(0, s, 100), worker_fake(1, s, 100) };
	struct conn *c[3] = {
		conn_fake(w[0], ROLE_OUTBOUND, "10.0.0.1:1", "10.0.0.2:8080"),
		conn_fake(w[1], ROLE_OUTBOUND, "10.0.0.1:2", "10.0.0.2:8080"),
		conn_fake(w[1], ROLE_OUTBOUND, "10.0.0.3:3", "10.0.0.2:8080"),
	};
	for (unsigned i = 0; i < 3; i++) {
		metrics_conn_open(c[i]);
		c[i]->connected = true;
		moved(c[i], 100 * (i + 1), 1000 * (i + 1));
	}
	metrics_conn_close(c[0]);
	metrics_tick(w[1]);	/* c[1] and c[2] stay open, flushed */
	metrics_set_conns(&w[1]->metrics, 2);
	atomic_store(&w[0]->tls_failures, 3);
	atomic_store(&w[1]->tls_failures, 4);
	atomic_store(&w[1]->policy_denials, 5);
	atomic_store(&w[0]->busy_polls, 40);
	atomic_store(&w[1]->busy_polls, 2);
	atomic_store(&w[0]->busy_poll_replies, 30);
	atomic_store(&w[1]->busy_poll_backoffs, 1);
	/* One keepalive setting refused (a pipe is no socket). */
	int p[2];
	const struct keepalive_opts ka = { .on = true, .idle_s = 1, .interval_s = 1, .probes = 1 };
	cr_assert_eq(pipe(p), 0);
	sockopt_keepalive_try(p[0], &ka, "test");
	close(p[0]);
	close(p[1]);

	char *page = render(w, 2, NULL);
	const char *client[] = { "reporter", "source", "source_workload", "client",
				 "destination_workload", "server", "response_flags", "-",
				 "connection_security_policy", "none", "request_protocol", "tcp", NULL };
	cr_assert_eq(value_of(page, "istio_tcp_connections_opened_total", client), 2);
	cr_assert_eq(value_of(page, "istio_tcp_connections_closed_total", client), 1);
	cr_assert_eq(value_of(page, "istio_tcp_received_bytes_total", client), 300);
	cr_assert_eq(value_of(page, "istio_tcp_sent_bytes_total", client), 3000);
	/* The hostile workload's series, its values read back unescaped: the
	 * pod name is the workload label when workloadName is empty. */
	const char *evil[] = { "source_workload", EVIL_NAME, "source_canonical_service", EVIL_NAME,
			       "source_app", EVIL_NAME, "source_workload_namespace", "evil", NULL };
	cr_assert_eq(value_of(page, "istio_tcp_connections_opened_total", evil), 1);
	cr_assert_eq(value_of(page, "istio_tcp_received_bytes_total", evil), 300);
	cr_assert_eq(value_of(page, "zring_tls_handshake_failures_total", NULL), 7);
	cr_assert_eq(value_of(page, "zring_policy_denials_total", NULL), 5);
	cr_assert_eq(value_of(page, "zring_busy_polls_total", NULL), 42, "summed over workers");
	cr_assert_eq(value_of(page, "zring_busy_poll_replies_total", NULL), 30);
	cr_assert_eq(value_of(page, "zring_busy_poll_backoffs_total", NULL), 1);
	cr_assert_eq(value_of(page, "zring_socket_option_failures_total", NULL), 1);
	const char *w1[] = { "worker", "1", NULL };
	cr_assert_eq(value_of(page, "zring_connections_active", w1), 2);
	cr_assert_eq(value_of(page, "zring_draining", NULL), 1);
	cr_assert_eq(value_of(page, "zring_metrics_series", NULL), 3);
	free(page);
	for (unsigned i = 0; i < 3; i++) {
		metrics_conn_close(c[i]);
		conn_fake_free(c[i]);
	}
	worker_fake_free(w[0]);
	worker_fake_free(w[1]);
	snap_free(s);
}

/* Every family has HELP and TYPE before its samples, counters end in
 * _total, and no family appears twice. */
static void check_structure(const char *page)
{
	char seen[64][128];
	unsigned nseen = 0;
	char current[128] = "";
	for (const char *line = page; *line; line = strchr(line, '\n') + 1) {
		char name[128], type[32];
		if (sscanf(line, "# HELP %127s", name) == 1) {
			for (unsigned i = 0; i < nseen; i++)
				cr_assert_str_neq(seen[i], name, "family %s twice", name);
			cr_assert_lt(nseen, 64);
			strcpy(seen[nseen++], name);
			strcpy(current, name);
			const char *next = strchr(line, '\n') + 1;
			cr_assert_eq(sscanf(next, "# TYPE %127s %31s", name, type), 2, "%.80s", next);
			cr_assert_str_eq(name, current);
			size_t n = strlen(name);
			if (strcmp(type, "counter") == 0)
				cr_assert(n > 6 && strcmp(name + n - 6, "_total") == 0, "%s", name);
			else
				cr_assert_str_eq(type, "gauge");
		} else if (*line != '#') {
			struct sample s;
			cr_assert(parse_sample(line, &s), "%.200s", line);
			cr_assert_str_eq(s.name, current, "sample outside its family: %.200s", line);
		}
	}
}

/* `promtool check metrics` on page: must pass. Missing promtool fails
 * under CI=true and skips elsewhere. */
static void promtool_check(const char *page)
{
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		const char *ci = getenv("CI");
		cr_assert(!ci || strcmp(ci, "true") != 0,
			  "promtool not found (Debian package prometheus) and CI=true");
		cr_skip_test("promtool not found (install the Debian package prometheus)");
	}
	FILE *p = popen("promtool check metrics", "w");
	cr_assert(p);
	fputs(page, p);
	int status = pclose(p);
	cr_assert_eq(status, 0, "promtool check metrics failed (status %d) on:\n%s", status, page);
}

Test(metrics, the_page_passes_promtool_with_hostile_values)
{
	struct snapshot *s = snap_of(CONFIG, 7, true);
	struct worker *w[2] = { worker_fake(0, s, 100), worker_fake(1, s, 100) };
	struct conn *c = conn_fake(w[0], ROLE_OUTBOUND, "10.0.0.3:1", "10.96.0.10:80");
	struct conn *h = conn_fake(w[1], ROLE_HBONE, "10.0.0.3:2", "10.0.0.2:8080");
	/* A peer identity that is not even UTF-8 (a certificate says what it
	 * says): rendered with U+FFFD in place of the bad byte. */
	h->peer_id = strdup("spiffe://cluster.local/ns/evil/sa/\xff\"x\\y\nz");
	metrics_conn_open(c);
	metrics_conn_open(h);
	c->policy = strdup("ns2/deny");
	metrics_conn_close(c);
	h->rflag = RFLAG_TLS_FAILURE;
	metrics_conn_close(h);

	struct snapshot_slot slot;
	slot_init(&slot);
	atomic_store(&slot.version, 7);
	struct watch wa = { .slot = &slot };
	atomic_store(&wa.reloads, 7);
	atomic_store(&wa.failures, 2);
	atomic_store(&wa.cert_reloads, 1);
	char *page = render(w, 2, &wa);

	const char *denied[] = { "reporter", "source", "source_workload", EVIL_NAME,
				 "destination_service", "web.ns2.svc.cluster.local",
				 "connection_security_policy", "mutual_tls",
				 "response_flags", "DENY", NULL };
	cr_assert_eq(value_of(page, "istio_tcp_connections_closed_total", denied), 1);
	const char *tls[] = { "reporter", "destination",
			      "source_principal", "spiffe://cluster.local/ns/evil/sa/\xef\xbf\xbd\"x\\y\nz",
			      "source_workload", "unknown", "response_flags", "TLS_FAILURE", NULL };
	cr_assert_eq(value_of(page, "istio_tcp_connections_closed_total", tls), 1);
	/* Closed with "-" is always there, at 0 when none ended cleanly. */
	const char *clean[] = { "reporter", "destination", "response_flags", "-", NULL };
	double v;
	cr_assert_eq(find(page, "istio_tcp_connections_closed_total", clean, &v), 1);
	cr_assert_eq(v, 0);
	const char *ok[] = { "result", "success", NULL }, *bad[] = { "result", "failure", NULL };
	cr_assert_eq(value_of(page, "zring_config_reloads_total", ok), 7);
	cr_assert_eq(value_of(page, "zring_config_reloads_total", bad), 2);
	cr_assert_eq(value_of(page, "zring_certificate_reloads_total", ok), 1);
	cr_assert_eq(value_of(page, "zring_config_version", NULL), 7);
	cr_assert_eq(value_of(page, "zring_config_warnings", NULL), 0, "nothing published");
	cr_assert_gt(value_of(page, "process_resident_memory_bytes", NULL), 0);
	cr_assert_gt(value_of(page, "process_open_fds", NULL), 2);
	cr_assert_gt(value_of(page, "process_max_fds", NULL), 0);
	cr_assert_gt(value_of(page, "process_start_time_seconds", NULL), 1.5e9);
	cr_assert_geq(value_of(page, "process_cpu_seconds_total", NULL), 0);
	check_structure(page);
	promtool_check(page);
	free(page);
	slot_deinit(&slot);
	conn_fake_free(c);
	conn_fake_free(h);
	worker_fake_free(w[0]);
	worker_fake_free(w[1]);
	snap_free(s);
}

Test(metrics, an_empty_registry_still_renders_a_valid_page)
{
	struct worker *w = worker_fake(0, NULL, 100);
	char *page = render(&w, 1, NULL);
	cr_assert(strstr(page, "# TYPE istio_tcp_connections_opened_total counter\n"), "%s", page);
	check_structure(page);
	promtool_check(page);
	free(page);
	worker_fake_free(w);
}

Test(metrics, label_values_are_escaped)
{
	struct strbuf sb;
	strbuf_init(&sb);
	metrics_escape_value(&sb, "a\\b\"c\nd\xff\xc3\xa9\xe2\x98");
	cr_assert_str_eq(sb.buf, "a\\\\b\\\"c\\nd\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd");
	strbuf_deinit(&sb);
}

/* --- bounded labels --- */

static unsigned series_count(struct worker *w)
{
	unsigned n = 0;
	for (struct metrics_series *s = w->metrics.head; s; s = s->next)
		n++;
	cr_assert_eq(n, w->metrics.nseries);
	return n;
}

Test(metrics, series_of_a_workload_that_left_are_dropped_after_the_grace)
{
	struct snapshot *s1 = snap_of(CONFIG, 1, false);
	struct snapshot *s2 = snap_of(CONFIG_NO_SERVER, 2, false);
	struct worker *w = worker_fake(0, s1, 100);	/* grace: 60 s */
	struct conn *gone = conn_fake(w, ROLE_OUTBOUND, "10.0.0.1:1", "10.0.0.2:8080");
	struct conn *open = conn_fake(w, ROLE_INBOUND, "10.0.0.3:1", "10.0.0.2:8080");
	struct conn *stays = conn_fake(w, ROLE_OUTBOUND, "10.0.0.1:2", "10.9.9.9:443");
	metrics_conn_open(gone);
	metrics_conn_open(open);
	metrics_conn_open(stays);
	gone->connected = stays->connected = true;
	metrics_conn_close(gone);
	metrics_conn_close(stays);
	metrics_tick(w);
	cr_assert_eq(series_count(w), 3);

	/* The server leaves the config. */
	w->snap = s2;
	w->snap_version = 2;
	w->now_ns += SEC;
	metrics_tick(w);
	cr_assert_eq(series_count(w), 3, "nothing goes before the grace");
	w->now_ns += 58 * SEC;
	metrics_tick(w);
	cr_assert_eq(series_count(w), 3, "nothing goes before the grace");
	w->now_ns += 2 * SEC;	/* 60 s since it left */
	metrics_tick(w);
	/* client -> server (closed) went; client -> passthrough stays (its
	 * workload is still here); the one with an open connection stays. */
	cr_assert_eq(series_count(w), 2);
	cr_assert_eq(w->metrics.pruned, 1);
	char *page = render(&w, 1, NULL);
	const char *srv[] = { "reporter", "source", "destination_workload", "server", NULL };
	double v;
	cr_assert_eq(find(page, "istio_tcp_connections_opened_total", srv, &v), 0, "%s", page);
	cr_assert_eq(value_of(page, "zring_metrics_series_pruned_total", NULL), 1);
	free(page);

	/* The open connection's series goes a grace after it closes. */
	w->now_ns += 100 * SEC;
	open->connected = true;
	metrics_conn_close(open);
	metrics_tick(w);
	cr_assert_eq(series_count(w), 2);
	w->now_ns += 60 * SEC;
	metrics_tick(w);
	cr_assert_eq(series_count(w), 1);
	cr_assert_str_eq(w->metrics.head->v[ML_DESTINATION_WORKLOAD], "unknown");

	/* A new connection to the departed workload (an old snapshot) makes a
	 * new series, marked gone at once. */
	w->snap = s1;
	struct conn *late = conn_fake(w, ROLE_OUTBOUND, "10.0.0.1:3", "10.0.0.2:8080");
	w->snap = s2;
	metrics_conn_open(late);
	cr_assert_str_eq(late->series->v[ML_DESTINATION_WORKLOAD], "server");
	cr_assert_neq(late->series->gone_ns, 0);
	metrics_conn_close(late);
	conn_fake_free(late);
	conn_fake_free(gone);
	conn_fake_free(open);
	conn_fake_free(stays);
	worker_fake_free(w);
	snap_free(s1);
	snap_free(s2);
}

Test(metrics, a_workload_that_comes_back_in_time_keeps_its_series)
{
	struct snapshot *s1 = snap_of(CONFIG, 1, false);
	struct snapshot *s2 = snap_of(CONFIG_NO_SERVER, 2, false);
	struct snapshot *s3 = snap_of(CONFIG, 3, false);
	struct worker *w = worker_fake(0, s1, 100);
	struct conn *c = conn_fake(w, ROLE_OUTBOUND, "10.0.0.1:1", "10.0.0.2:8080");
	metrics_conn_open(c);
	metrics_conn_close(c);
	w->snap = s2;
	w->snap_version = 2;
	metrics_tick(w);
	cr_assert_eq(w->metrics.ngone, 1);
	w->snap = s3;
	w->snap_version = 3;
	w->now_ns += 30 * SEC;
	metrics_tick(w);
	cr_assert_eq(w->metrics.ngone, 0);
	w->now_ns += 600 * SEC;
	metrics_tick(w);
	cr_assert_eq(series_count(w), 1);
	conn_fake_free(c);
	worker_fake_free(w);
	snap_free(s1);
	snap_free(s2);
	snap_free(s3);
}

Test(metrics, config_warnings_of_the_latest_snapshot)
{
	static const char json[] =
		"{\"services\": [{\"name\": \"a\", \"namespace\": \"ns\", \"hostname\": \"a\", "
		"\"vips\": [], \"ports\": {}}, {\"name\": \"b\", \"namespace\": \"ns\", "
		"\"hostname\": \"b\", \"vips\": [], \"ports\": {}}]}";
	struct config *cfg;
	struct config_errors errs;
	cr_assert_eq(config_parse(json, strlen(json), "w.json", &cfg, &errs), 0);
	config_errors_free(&errs);
	cr_assert_eq(cfg->warnings_total, 2, "two services that select nothing");
	struct snapshot_slot slot;
	slot_init(&slot);
	struct snapshot *s;
	cr_assert_eq(snapshot_new(cfg, NULL, &s), 0);
	slot_publish(&slot, s);
	struct watch wa = { .slot = &slot };
	char *page = render(NULL, 0, &wa);
	cr_assert_eq(value_of(page, "zring_config_warnings", NULL), 2);
	check_structure(page);
	free(page);
	slot_deinit(&slot);
}

Test(metrics, label_sets_beyond_the_cap_fold_into_one_overflow_series)
{
	struct snapshot *s = snap_of(CONFIG, 1, false);
	struct worker *w = worker_fake(0, s, 3);
	char buf[64];
	/* Each passthrough destination port... is the same label set; vary the
	 * source principal through HBONE peers instead. */
	for (unsigned i = 0; i < 10; i++) {
		struct conn *c = conn_fake(w, ROLE_HBONE, "10.9.0.1:1", "10.0.0.2:8080");
		snprintf(buf, sizeof(buf), "spiffe://cluster.local/ns/x/sa/sa%u", i);
		c->peer_id = strdup(buf);
		metrics_conn_open(c);
		cr_assert(c->series);
		cr_assert_eq(c->series->overflow, i >= 3);
		c->connected = true;
		metrics_conn_close(c);
		conn_fake_free(c);
	}
	cr_assert_eq(series_count(w), 4, "3 label sets and the overflow series");
	cr_assert_eq(w->metrics.overflowed, 7);
	char *page = render(&w, 1, NULL);
	const char *of[] = { "reporter", "destination", "source_principal", "overflow",
			     "destination_workload", "overflow", NULL };
	cr_assert_eq(value_of(page, "istio_tcp_connections_opened_total", of), 7);
	cr_assert_eq(value_of(page, "zring_metrics_overflow_total", NULL), 7);
	free(page);
	worker_fake_free(w);
	snap_free(s);
}

/* --- the access line --- */

static char captured[8192];

static void capture_access(const struct conn *c)
{
	int p[2], saved = dup(STDERR_FILENO);
	cr_assert_eq(pipe(p), 0);
	dup2(p[1], STDERR_FILENO);
	conn_log_access(c);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	ssize_t n = read(p[0], captured, sizeof(captured) - 1);
	close(p[0]);
	captured[n < 0 ? 0 : n] = '\0';
}

/* Valid UTF-8, checked by iconv (not by the code under test). */
static bool valid_utf8(const char *s)
{
	iconv_t cd = iconv_open("UTF-8", "UTF-8");
	cr_assert_neq(cd, (iconv_t)-1);
	char out[8192], *in = (char *)s, *o = out;
	size_t inleft = strlen(s), outleft = sizeof(out);
	size_t r = iconv(cd, &in, &inleft, &o, &outleft);
	iconv_close(cd);
	return r != (size_t)-1 && inleft == 0;
}

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	cr_assert(cJSON_IsString(v), "%s is not a string in %s", key, captured);
	return v->valuestring;
}

static double json_num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	cr_assert(cJSON_IsNumber(v), "%s is not a number in %s", key, captured);
	return v->valuedouble;
}

Test(metrics, the_json_access_line_is_valid_with_hostile_values)
{
	struct snapshot *s = snap_of(CONFIG, 1, true);
	struct worker *w = worker_fake(3, s, 100);
	struct conn *c = conn_fake(w, ROLE_HBONE, "10.0.0.3:4444", "10.0.0.2:8080");
	c->peer_id = strdup("spiffe://cluster.local/ns/evil/sa/\xff\"x");
	metrics_conn_open(c);
	c->src_workload = &s->cfg->workloads[2];	/* the hostile one, for the log */
	c->connected = true;
	c->dir[0].bytes = 123;
	c->dir[1].bytes = 45678;
	w->now_ns += 2 * SEC;
	c->policy = strdup("ns2/\"deny\"\n");
	c->err = -ECONNRESET;
	c->why = "client reset";

	log_setup(LOG_INFO, LOG_JSON);
	capture_access(c);
	log_setup(LOG_INFO, LOG_TEXT);
	size_t n = strlen(captured);
	cr_assert_gt(n, 0);
	cr_assert_eq(captured[n - 1], '\n');
	cr_assert_eq(strchr(captured, '\n'), captured + n - 1, "more than one line: %s", captured);
	cr_assert(valid_utf8(captured), "%s", captured);
	cJSON *o = cJSON_Parse(captured);
	cr_assert(o, "not JSON: %s", captured);
	cr_assert_str_eq(json_str(o, "msg"), "access");
	cr_assert_str_eq(json_str(o, "dir"), "hbone");
	cr_assert_str_eq(json_str(o, "src"), "10.0.0.3:4444");
	cr_assert_str_eq(json_str(o, "dst"), "10.0.0.2:8080");
	cr_assert_str_eq(json_str(o, "src_workload"), EVIL_NAME);
	cr_assert_str_eq(json_str(o, "src_namespace"), "evil");
	cr_assert_str_eq(json_str(o, "dst_workload"), "server-pod");
	cr_assert_str_eq(json_str(o, "dst_namespace"), "ns2");
	cr_assert_str_eq(json_str(o, "src_identity"), "spiffe://cluster.local/ns/evil/sa/\xef\xbf\xbd\"x");
	cr_assert_str_eq(json_str(o, "dst_identity"), "spiffe://cluster.local/ns/ns2/sa/server");
	cr_assert_str_eq(json_str(o, "security"), "mutual_tls");
	cr_assert_eq(json_num(o, "up_bytes"), 123);
	cr_assert_eq(json_num(o, "down_bytes"), 45678);
	cr_assert_eq(json_num(o, "bytes_sent"), 45678, "inbound: sent is what the server answered");
	cr_assert_eq(json_num(o, "bytes_recv"), 123);
	cr_assert_eq(json_num(o, "duration_ms"), 2000);
	cr_assert_eq(json_num(o, "worker"), 3);
	cr_assert_str_eq(json_str(o, "response_flags"), "DENY");
	cr_assert_str_eq(json_str(o, "policy"), "ns2/\"deny\"\n");
	cr_assert(strstr(json_str(o, "error"), "client reset: "), "%s", captured);
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "truncated"));
	cJSON_Delete(o);
	metrics_conn_close(c);
	conn_fake_free(c);
	worker_fake_free(w);
	snap_free(s);
}

Test(metrics, an_access_line_too_long_for_its_buffer_stays_valid_json)
{
	struct snapshot *s = snap_of(CONFIG, 1, false);
	struct worker *w = worker_fake(0, s, 100);
	struct conn *c = conn_fake(w, ROLE_OUTBOUND, "10.0.0.1:1", "10.0.0.2:8080");
	/* A policy key of 3000 characters, mostly ones that need escaping or
	 * are multi-byte: the cut must fall between characters. */
	static char big[3001];
	for (size_t i = 0; i + 2 < sizeof(big); i += 3)
		memcpy(big + i, i % 2 ? "\xe2\x98\x83" : "\"\\\n", 3);
	c->policy = strdup(big);
	log_setup(LOG_INFO, LOG_JSON);
	capture_access(c);
	log_setup(LOG_INFO, LOG_TEXT);
	cr_assert_leq(strlen(captured), sizeof(((struct log_line *)0)->buf));
	cr_assert(valid_utf8(captured), "%s", captured);
	cJSON *o = cJSON_Parse(captured);
	cr_assert(o, "not JSON: %s", captured);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "truncated")));
	const char *p = json_str(o, "policy");
	cr_assert_gt(strlen(p), 100);
	cr_assert_eq(strncmp(p, big, strlen(p)), 0, "the kept part is a prefix of the value");
	cJSON_Delete(o);
	conn_fake_free(c);
	worker_fake_free(w);
	snap_free(s);
}
