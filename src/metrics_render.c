/*
 * The metrics page, Prometheus text format 0.0.4: Istio's TCP metrics
 * summed across workers, the process figures (from /proc/self) and
 * zring's own. Runs on the control thread. See include/zring/metrics.h.
 */
#include "zring/metrics.h"
#include "zring/sockopt.h"
#include "zring/strbuf.h"
#include "zring/util.h"
#include "zring/watch.h"
#include "zring/worker.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The string labels of the TCP families, in ztunnel's order. app and
 * version repeat the canonical service and revision, as ztunnel does. */
static const struct {
	const char *name;
	enum metrics_label idx;
} tcp_labels[] = {
	{ "source_workload", ML_SOURCE_WORKLOAD },
	{ "source_canonical_service", ML_SOURCE_CANONICAL_SERVICE },
	{ "source_canonical_revision", ML_SOURCE_CANONICAL_REVISION },
	{ "source_workload_namespace", ML_SOURCE_WORKLOAD_NAMESPACE },
	{ "source_principal", ML_SOURCE_PRINCIPAL },
	{ "source_app", ML_SOURCE_CANONICAL_SERVICE },
	{ "source_version", ML_SOURCE_CANONICAL_REVISION },
	{ "source_cluster", ML_SOURCE_CLUSTER },
	{ "destination_service", ML_DESTINATION_SERVICE },
	{ "destination_service_namespace", ML_DESTINATION_SERVICE_NAMESPACE },
	{ "destination_service_name", ML_DESTINATION_SERVICE_NAME },
	{ "destination_workload", ML_DESTINATION_WORKLOAD },
	{ "destination_canonical_service", ML_DESTINATION_CANONICAL_SERVICE },
	{ "destination_canonical_revision", ML_DESTINATION_CANONICAL_REVISION },
	{ "destination_workload_namespace", ML_DESTINATION_WORKLOAD_NAMESPACE },
	{ "destination_principal", ML_DESTINATION_PRINCIPAL },
	{ "destination_app", ML_DESTINATION_CANONICAL_SERVICE },
	{ "destination_version", ML_DESTINATION_CANONICAL_REVISION },
	{ "destination_cluster", ML_DESTINATION_CLUSTER },
};

/* What the workers hold besides their series. */
struct totals {
	uint64_t series, overflowed, pruned, tls_failures, policy_denials;
	uint64_t busy_polls, busy_poll_replies, busy_poll_backoffs;
};

void metrics_escape_value(struct strbuf *out, const char *s)
{
	const char *run = s;
	while (*s) {
		unsigned char c = (unsigned char)*s;
		const char *esc;
		size_t step = 1;
		if (c == '\\')
			esc = "\\\\";
		else if (c == '"')
			esc = "\\\"";
		else if (c == '\n')
			esc = "\\n";
		else if (c >= 0x80 && (step = utf8_char_len(s)) == 0)
			esc = "\xef\xbf\xbd";	/* U+FFFD for a byte that is not UTF-8 */
		else {
			s += step;
			continue;
		}
		strbuf_add(out, run, (size_t)(s - run));
		strbuf_puts(out, esc);
		run = ++s;
	}
	strbuf_add(out, run, (size_t)(s - run));
}

static void family(struct strbuf *out, const char *name, const char *type, const char *help)
{
	strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Sum worker w's series into agg (label sets equal across workers become
 * one). Holds w's lock while it copies. 0 or -ENOMEM. */
static int collect(struct metrics *agg, struct worker *w, struct totals *t)
{
	struct metrics *m = &w->metrics;
	int err = 0;
	pthread_mutex_lock(&m->lock);
	for (const struct metrics_series *s = m->head; s; s = s->next) {
		struct metrics_labels l = { .reporter = s->reporter, .security = s->security };
		memcpy(l.v, s->v, sizeof(l.v));
		struct metrics_series *a = metrics_series_get(agg, &l, 0);
		if (!a) {
			err = -ENOMEM;
			break;
		}
		a->opened += s->opened;
		a->received += s->received;
		a->sent += s->sent;
		for (unsigned f = 0; f < RFLAG_COUNT; f++)
			a->closed[f] += s->closed[f];
	}
	t->series += m->nseries;
	t->overflowed += m->overflowed;
	t->pruned += m->pruned;
	pthread_mutex_unlock(&m->lock);
	t->tls_failures += atomic_load_explicit(&w->tls_failures, memory_order_relaxed);
	t->policy_denials += atomic_load_explicit(&w->policy_denials, memory_order_relaxed);
	t->busy_polls += atomic_load_explicit(&w->busy_polls, memory_order_relaxed);
	t->busy_poll_replies += atomic_load_explicit(&w->busy_poll_replies, memory_order_relaxed);
	t->busy_poll_backoffs += atomic_load_explicit(&w->busy_poll_backoffs, memory_order_relaxed);
	return err;
}

static void tcp_line(struct strbuf *out, const char *name, const struct metrics_series *s,
		     enum metrics_flag flag, uint64_t value)
{
	strbuf_printf(out, "%s{reporter=\"%s\"", name,
		      s->reporter == REPORTER_SOURCE ? "source" : "destination");
	for (size_t i = 0; i < ARRAY_SIZE(tcp_labels); i++) {
		strbuf_printf(out, ",%s=\"", tcp_labels[i].name);
		metrics_escape_value(out, s->v[tcp_labels[i].idx]);
		strbuf_add(out, "\"", 1);
	}
	strbuf_printf(out, ",request_protocol=\"tcp\",response_flags=\"%s\","
		      "connection_security_policy=\"%s\"} %" PRIu64 "\n",
		      metrics_flag_name(flag),
		      s->security == SECURITY_MUTUAL_TLS ? "mutual_tls" : "none", value);
}

static void render_tcp(struct strbuf *out, const struct metrics *agg)
{
	const struct metrics_series *s;
	family(out, "istio_tcp_connections_opened_total", "counter",
	       "TCP connections opened, by the label set known when they opened.");
	for (s = agg->head; s; s = s->next)
		tcp_line(out, "istio_tcp_connections_opened_total", s, RFLAG_NONE, s->opened);
	family(out, "istio_tcp_connections_closed_total", "counter",
	       "TCP connections closed, by how they ended (response_flags).");
	for (s = agg->head; s; s = s->next)
		for (unsigned f = 0; f < RFLAG_COUNT; f++)
			if (f == RFLAG_NONE || s->closed[f])
				tcp_line(out, "istio_tcp_connections_closed_total", s,
					 (enum metrics_flag)f, s->closed[f]);
	family(out, "istio_tcp_received_bytes_total", "counter",
	       "Bytes of TCP connections in the request direction (client to server).");
	for (s = agg->head; s; s = s->next)
		tcp_line(out, "istio_tcp_received_bytes_total", s, RFLAG_NONE, s->received);
	family(out, "istio_tcp_sent_bytes_total", "counter",
	       "Bytes of TCP connections in the response direction (server to client).");
	for (s = agg->head; s; s = s->next)
		tcp_line(out, "istio_tcp_sent_bytes_total", s, RFLAG_NONE, s->sent);
}

/* --- process figures --- */

struct proc_figures {
	double cpu_s;
	uint64_t vsize, rss_bytes;
	double start_s;		/* since the epoch; 0 if the boot time is unknown */
	bool ok;
};

/* Seconds since the epoch at which the system booted, 0 if unknown. */
static uint64_t boot_time(void)
{
	FILE *f = fopen("/proc/stat", "re");
	char line[256];
	unsigned long long btime = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %llu", &btime) == 1)
			break;
	if (f)
		fclose(f);
	return btime;
}

static void read_proc_stat(struct proc_figures *p)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip past the
	 * last ')'. Then field 3 (state) on: utime stime are 14 15,
	 * starttime 22, vsize 23, rss 24. */
	char *q = strrchr(buf, ')');
	unsigned long long utime, stime, start, vsize, rss;
	if (!q || sscanf(q + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
			 "%*d %*d %*d %*d %*d %*d %llu %llu %llu",
			 &utime, &stime, &start, &vsize, &rss) != 5)
		return;
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	if (hz <= 0 || page <= 0)
		return;
	p->cpu_s = (double)(utime + stime) / (double)hz;
	p->vsize = vsize;
	p->rss_bytes = rss * (uint64_t)page;
	uint64_t boot = boot_time();	/* 0 where /proc/stat is hidden (ProcSubset=pid) */
	p->start_s = boot ? (double)boot + (double)start / (double)hz : 0;
	p->ok = true;
}

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			n++;
	closedir(d);
	return n;
}

static void gauge(struct strbuf *out, const char *name, const char *help, double v)
{
	family(out, name, "gauge", help);
	strbuf_printf(out, "%s %.17g\n", name, v);
}

static void counter(struct strbuf *out, const char *name, const char *help, uint64_t v)
{
	family(out, name, "counter", help);
	strbuf_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void render_process(struct strbuf *out, const struct metrics_env *env)
{
	struct proc_figures p = { 0 };
	struct rlimit rl;
	read_proc_stat(&p);
	if (p.ok) {
		family(out, "process_cpu_seconds_total", "counter",
		       "User and system CPU time spent, in seconds.");
		strbuf_printf(out, "process_cpu_seconds_total %.17g\n", p.cpu_s);
		gauge(out, "process_resident_memory_bytes", "Resident memory size, in bytes.",
		      (double)p.rss_bytes);
		gauge(out, "process_virtual_memory_bytes", "Virtual memory size, in bytes.",
		      (double)p.vsize);
	}
	long fds = open_fds();
	if (fds >= 0)
		gauge(out, "process_open_fds", "Open file descriptors.", (double)fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		gauge(out, "process_max_fds", "Limit of open file descriptors (soft).",
		      rl.rlim_cur == RLIM_INFINITY ? 1e308 : (double)rl.rlim_cur);
	double start = env->start_wall_ms ? (double)env->start_wall_ms / 1000.0 : p.start_s;
	if (start > 0) {
		family(out, "process_start_time_seconds", "gauge",
		       "Start time of the process since the Unix epoch, in seconds.");
		strbuf_printf(out, "process_start_time_seconds %.3f\n", start);
	}
}

/* --- zring's own --- */

static void by_result(struct strbuf *out, const char *name, const char *help, uint64_t ok,
		      uint64_t failed)
{
	family(out, name, "counter", help);
	strbuf_printf(out, "%s{result=\"success\"} %" PRIu64 "\n%s{result=\"failure\"} %" PRIu64 "\n",
		      name, ok, name, failed);
}

static void render_watch(struct strbuf *out, const struct watch *wa)
{
	by_result(out, "zring_config_reloads_total",
		  "Workload config loads (the one at startup included), by result.",
		  atomic_load(&wa->reloads), atomic_load(&wa->failures));
	by_result(out, "zring_certificate_reloads_total",
		  "Certificate directory reloads, by result (failure: the directory or one of its "
		  "certificates was refused).",
		  atomic_load(&wa->cert_reloads), atomic_load(&wa->cert_failures));
	gauge(out, "zring_config_version", "Version of the config snapshot new connections use.",
	      wa->slot ? (double)atomic_load(&wa->slot->version) : 0);
	struct snapshot *s = wa->slot ? slot_acquire(wa->slot) : NULL;
	gauge(out, "zring_config_warnings", "Warnings in the config snapshot new connections use "
	      "(valid states worth a look, listed in /config_dump).",
	      s ? (double)s->cfg->warnings_total : 0);
	snapshot_unref(s);
}

static void render_zring(struct strbuf *out, const struct metrics_env *env,
			 const struct totals *t)
{
	family(out, "zring_build_info", "gauge", "zring's version, as a label; always 1.");
	strbuf_puts(out, "zring_build_info{version=\"" ZRING_VERSION "\"} 1\n");
	if (env->watch)
		render_watch(out, env->watch);
	gauge(out, "zring_draining", "1 once zring has begun to drain, else 0.",
	      env->draining ? 1 : 0);
	family(out, "zring_connections_active", "gauge", "Open proxied connections, by worker.");
	for (unsigned i = 0; i < env->nworkers; i++) {
		const struct worker *w = env->workers[i];
		strbuf_printf(out, "zring_connections_active{worker=\"%u\"} %u\n", w->id,
			      atomic_load_explicit(&w->metrics.conns, memory_order_relaxed));
	}
	counter(out, "zring_tls_handshake_failures_total",
		"HBONE TLS handshakes that failed (either side).", t->tls_failures);
	counter(out, "zring_policy_denials_total",
		"Connections an authorization policy denied.", t->policy_denials);
	counter(out, "zring_busy_polls_total",
		"Busy polls after a small message went upstream (--busy-poll-us).", t->busy_polls);
	counter(out, "zring_busy_poll_replies_total",
		"Busy polls that saw a completion before their budget ran out.", t->busy_poll_replies);
	counter(out, "zring_busy_poll_backoffs_total",
		"Busy polls that lost the CPU to another thread for over 250 us; polling then backs off.",
		t->busy_poll_backoffs);
	counter(out, "zring_socket_option_failures_total",
		"TCP keepalive settings the kernel refused (the socket went on without).",
		sockopt_failures());
	gauge(out, "zring_metrics_series", "Label sets the workers hold for the istio_tcp families.",
	      (double)t->series);
	counter(out, "zring_metrics_overflow_total",
		"Connections counted in an overflow series because a worker held the most label "
		"sets it may.", t->overflowed);
	counter(out, "zring_metrics_series_pruned_total",
		"Label sets dropped after their workload left the config.", t->pruned);
}

int metrics_render(const struct metrics_env *env, struct strbuf *out)
{
	struct metrics agg;
	struct totals t = { 0 };
	int err = metrics_init(&agg, 0, UINT_MAX);
	if (err < 0)
		return err;
	for (unsigned i = 0; i < env->nworkers && err == 0; i++)
		err = collect(&agg, env->workers[i], &t);
	if (err == 0) {
		render_tcp(out, &agg);
		render_process(out, env);
		render_zring(out, env, &t);
		err = out->err;
	}
	metrics_deinit(&agg);
	return err;
}
