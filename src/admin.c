/*
 * The admin, readiness and metrics endpoints: their sockets, route tables
 * and handlers, and what "ready" means. See include/zring/admin.h.
 */
#include "zring/admin.h"
#include "zring/log.h"
#include "zring/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static const char *const server_names[ADMIN_NSERVERS] = { "admin", "readiness", "metrics" };

/* ---- readiness ---- */

/* Identities whose certificate is valid now. */
static size_t valid_identities(const struct certstore *cs)
{
	uint64_t now = wall_ms();
	size_t n = 0;
	for (size_t i = 0; i < cs->n; i++)
		n += now >= cs->ids[i].not_before_ms &&
		     (!cs->ids[i].not_after_ms || now < cs->ids[i].not_after_ms);
	return n;
}

const char *admin_not_ready(const struct admin *a, const struct snapshot *s)
{
	if (a->draining)
		return "draining";
	if (!a->workers_up)
		return "starting: listeners not up yet";
	if (!s)
		return "starting: no config loaded yet";
	if (a->opts->certs) {
		if (!s->certs)
			return "no trust bundle loaded";
		if (!valid_identities(s->certs))
			return "no valid certificate identity loaded";
	}
	return NULL;
}

static void route_ready(void *arg, const struct http_request *req, struct http_response *resp)
{
	struct admin *a = arg;
	struct snapshot *s = slot_acquire(a->slot);
	const char *why = admin_not_ready(a, s);
	snapshot_unref(s);
	if (why) {
		resp->status = 503;
		strbuf_printf(&resp->body, "not ready: %s\n", why);
	} else {
		strbuf_puts(&resp->body, "ready\n");
	}
}

/* ---- admin ---- */

static void route_index(void *arg, const struct http_request *req, struct http_response *resp)
{
	struct admin *a = arg;
	char buf[ADDR_STRLEN], methods[32];
	strbuf_printf(&resp->body, "zring %s admin endpoints:\n", ZRING_VERSION);
	for (const struct http_route *rt = admin_routes; rt->path; rt++)
		strbuf_printf(&resp->body, "  %-9s %-14s %s\n",
			      http_methods_format(rt->methods & ~HTTP_M_HEAD, methods,
						  sizeof(methods)), rt->path, rt->help);
	for (unsigned i = ADMIN_SRV_READINESS; i < ADMIN_NSERVERS; i++) {
		if (!a->open[i])
			continue;
		strbuf_printf(&resp->body, "%s endpoint on %s:", server_names[i],
			      addr_format(&a->srv[i].addr, buf, sizeof(buf)));
		const struct http_route *rt = a->srv[i].routes;
		for (; rt->path; rt++)
			strbuf_printf(&resp->body, " %s", rt->path);
		strbuf_puts(&resp->body, rt == a->srv[i].routes ? " (none yet)\n" : "\n");
	}
}

/* One /config_dump being sent: the document writer and the admin whose
 * count of dumps it holds. */
struct dump_stream {
	struct admin *a;
	struct admin_dump *d;
};

static int dump_next(void *ctx, struct strbuf *out)
{
	struct dump_stream *ds = ctx;
	return admin_dump_next(ds->d, out, ADMIN_DUMP_PIECE);
}

static void dump_free(void *ctx)
{
	struct dump_stream *ds = ctx;
	ds->a->dumps--;
	admin_dump_free(ds->d);
	free(ds);
}

/* Written while it is sent (the control thread does one piece at a time
 * between its other requests), and at most ADMIN_DUMPS_MAX at once. */
static void route_config_dump(void *arg, const struct http_request *req,
			      struct http_response *resp)
{
	struct admin *a = arg;
	if (a->dumps >= ADMIN_DUMPS_MAX) {
		resp->status = 503;
		resp->retry_after = ADMIN_DUMP_RETRY_S;
		strbuf_printf(&resp->body, "%u config dumps are being sent: retry later\n",
			      a->dumps);
		return;
	}
	struct dump_stream *ds = malloc(sizeof(*ds));
	if (!ds || admin_dump_new(slot_acquire(a->slot), &ds->d) < 0) {
		free(ds);
		resp->status = 500;
		strbuf_puts(&resp->body, "out of memory\n");
		return;
	}
	ds->a = a;
	a->dumps++;
	resp->src = (struct http_body_src){ .next = dump_next, .free = dump_free, .ctx = ds };
	resp->content_type = "application/json";
}

static enum log_level current_level(void)
{
	enum log_level l = LOG_DEBUG;
	while (l > LOG_ERROR && !log_enabled(l))
		l--;
	return l;
}

static void log_level_change(enum log_level from, enum log_level to)
{
	struct log_line l;
	if (log_begin(&l, LOG_INFO, "log level changed")) {
		log_str(&l, "from", level_names[from]);
		log_str(&l, "to", level_names[to]);
		log_end(&l);
	}
}

static void set_level(struct http_response *resp, const char *query)
{
	char val[32];
	enum log_level level;
	int err = http_query_get(query, "level", val, sizeof(val));
	if (err == -ENOENT || (err == 0 && !*val)) {
		resp->status = 400;
		strbuf_puts(&resp->body, "missing level: POST /logging?level=error|warn|info|debug\n");
		return;
	}
	if (err < 0 || log_level_parse(val, &level) < 0) {
		resp->status = 400;
		strbuf_puts(&resp->body, "unknown level: expected error, warn, info or debug\n");
		return;
	}
	enum log_level old = current_level();
	/* Logged at info under whichever level shows it: before the switch
	 * when the old one does, after it otherwise. */
	if (old >= LOG_INFO)
		log_level_change(old, level);
	log_set_level(level);
	if (old < LOG_INFO)
		log_level_change(old, level);
}

static void route_logging(void *arg, const struct http_request *req, struct http_response *resp)
{
	if (req->method == HTTP_M_POST)
		set_level(resp, req->query);
	if (resp->status == 200)
		strbuf_printf(&resp->body, "level=%s\n", level_names[current_level()]);
}

static void route_quit(void *arg, const struct http_request *req, struct http_response *resp)
{
	struct admin *a = arg;
	if (!a->quit) {
		resp->status = 503;
		strbuf_puts(&resp->body, "not running yet\n");
		return;
	}
	a->quit(a->quit_arg, "POST /quitquitquit");
	strbuf_puts(&resp->body, "draining\n");
}

const struct http_route admin_routes[] = {
	{ "/", HTTP_M_GET, route_index, "this index" },
	{ "/config_dump", HTTP_M_GET, route_config_dump,
	  "current config snapshot and certificates (JSON)" },
	{ "/logging", HTTP_M_GET | HTTP_M_POST, route_logging,
	  "log level; POST ?level=error|warn|info|debug sets it" },
	{ "/quitquitquit", HTTP_M_POST, route_quit, "graceful drain, as SIGTERM" },
	{ NULL, 0, NULL, NULL },
};

const struct http_route admin_readiness_routes[] = {
	{ "/healthz/ready", HTTP_M_GET, route_ready, "200 when ready, 503 and why if not" },
	{ NULL, 0, NULL, NULL },
};

/* ---- metrics (port 15020) ---- */

static void route_metrics(void *arg, const struct http_request *req, struct http_response *resp)
{
	(void)req;
	struct admin *a = arg;
	if (!a->workers_up || metrics_render(&a->metrics, &resp->body) < 0) {
		strbuf_reset(&resp->body);
		resp->status = a->workers_up ? 500 : 503;
		return;
	}
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

const struct http_route admin_metrics_routes[] = {
	{ "/metrics", HTTP_M_GET, route_metrics, "Prometheus metrics" },
	{ "/stats/prometheus", HTTP_M_GET, route_metrics, "Prometheus metrics (Envoy's path)" },
	{ NULL, 0, NULL, NULL },
};

/* ---- sockets ---- */

static const struct http_route *const server_routes[ADMIN_NSERVERS] = {
	admin_routes, admin_readiness_routes, admin_metrics_routes,
};

static void log_listening(const char *role, const union addr *addr, int err)
{
	struct log_line l;
	char buf[ADDR_STRLEN];
	if (!log_begin(&l, err ? LOG_ERROR : LOG_INFO, err ? "cannot listen" : "listening"))
		return;
	log_str(&l, "role", role);
	log_str(&l, "addr", addr_format(addr, buf, sizeof(buf)));
	if (err)
		log_err(&l, "error", err);
	log_end(&l);
}

/* A default [::]:port on a host without IPv6 becomes 0.0.0.0:port. */
static int open_one(struct admin *a, unsigned i, const struct addr_list *l)
{
	union addr addr = l->a[0];
	int err = http_server_open(&a->srv[i], server_names[i], &addr, server_routes[i], a);
	if (err < 0 && l->is_default && addr.sa.sa_family == AF_INET6 &&
	    (err == -EAFNOSUPPORT || err == -EADDRNOTAVAIL)) {
		log_msg_err(LOG_WARN, "no IPv6: listening on IPv4 only", server_names[i], err);
		addr = (union addr){ .in4 = { .sin_family = AF_INET,
					      .sin_port = addr.in6.sin6_port } };
		err = http_server_open(&a->srv[i], server_names[i], &addr, server_routes[i], a);
	}
	log_listening(server_names[i], &addr, err);
	if (err == 0)
		a->open[i] = true;
	return err;
}

int admin_open(struct admin *a, const struct opts *opts, struct snapshot_slot *slot)
{
	const struct addr_list *lists[ADMIN_NSERVERS] = {
		&opts->admin, &opts->readiness, &opts->metrics,
	};
	memset(a, 0, sizeof(*a));
	a->opts = opts;
	a->slot = slot;
	for (unsigned i = 0; i < ADMIN_NSERVERS; i++) {
		int err = lists[i]->n ? open_one(a, i, lists[i]) : 0;
		if (err < 0) {
			admin_close(a);
			return err;
		}
	}
	return 0;
}

void admin_start(struct admin *a, struct io_uring *ring)
{
	for (unsigned i = 0; i < ADMIN_NSERVERS; i++)
		if (a->open[i])
			http_server_start(&a->srv[i], ring);
}

void admin_set_workers_up(struct admin *a, struct worker *const *ws, unsigned n,
			  const struct watch *watch)
{
	a->metrics.workers = ws;
	a->metrics.nworkers = n;
	a->metrics.watch = watch;
	a->workers_up = true;
}

void admin_set_draining(struct admin *a)
{
	a->draining = true;
	a->metrics.draining = true;
}

void admin_stop(struct admin *a)
{
	for (unsigned i = 0; i < ADMIN_NSERVERS; i++)
		if (a->open[i])
			http_server_close(&a->srv[i]);
}

bool admin_idle(const struct admin *a)
{
	for (unsigned i = 0; i < ADMIN_NSERVERS; i++)
		if (a->open[i] && !http_server_idle(&a->srv[i]))
			return false;
	return true;
}

void admin_close(struct admin *a)
{
	for (unsigned i = 0; i < ADMIN_NSERVERS; i++) {
		if (a->open[i])
			http_server_deinit(&a->srv[i]);
		a->open[i] = false;
	}
}
