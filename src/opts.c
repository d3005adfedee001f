/*
 * Options: defaults, then ZRING_* environment variables, then flags.
 * See include/zring/opts.h.
 */
#include "zring/opts.h"
#include "zring/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum opt_id {
	O_CONFIG = 256, O_CERTS, O_HBONE, O_HBONE_PORT, O_MAX_STREAMS, O_TUNNEL_STREAMS, O_POOL_IDLE, O_OUTBOUND, O_INBOUND, O_WORKERS, O_DRAIN, O_CONNECT, O_IDLE,
	O_KEEPALIVE, O_KA_IDLE, O_KA_INTERVAL, O_KA_PROBES,
	O_METRICS_GRACE, O_MARK, O_PUMP, O_BUSY_POLL, O_PIPES, O_BUFFERS, O_LEVEL, O_FORMAT, O_NODE_AGENT, O_NODE, O_ADMIN, O_METRICS, O_READINESS,
};

struct opt_def {
	const char *flag;
	const char *env;
	int id;
	const char *arg;	/* NULL: a switch (its variable takes 1/true/0/false) */
	const char *help;
};

static const struct opt_def defs[] = {
	{ "config", "ZRING_CONFIG", O_CONFIG, "FILE",
	  "workload config (JSON, or YAML: .yaml/.yml); watched and hot-reloaded (default: none, all passthrough)" },
	{ "certs", "ZRING_CERTS", O_CERTS, "DIR",
	  "certificate directory (root-cert.pem, <td>/ns/<ns>/sa/<sa>/...); enables HBONE" },
	{ "hbone", "ZRING_HBONE", O_HBONE, "ADDR[,ADDR]",
	  "inbound HBONE (mTLS) listeners (default 0.0.0.0:15008,[::]:15008; needs --certs)" },
	{ "hbone-port", "ZRING_HBONE_PORT", O_HBONE_PORT, "PORT",
	  "port of peers' HBONE listeners (default 15008)" },
	{ "hbone-max-streams", "ZRING_HBONE_MAX_STREAMS", O_MAX_STREAMS, "N",
	  "streams per pooled tunnel (default 100)" },
	{ "hbone-tunnel-streams", "ZRING_HBONE_TUNNEL_STREAMS", O_TUNNEL_STREAMS, "N",
	  "retire a pooled tunnel once it has opened N streams; 0 = when HTTP/2 stream IDs run out (default 0)" },
	{ "hbone-idle-timeout", "ZRING_HBONE_IDLE_TIMEOUT", O_POOL_IDLE, "DUR",
	  "close pooled tunnels without streams after this long (default 60s)" },
	{ "outbound", "ZRING_OUTBOUND", O_OUTBOUND, "ADDR[,ADDR]",
	  "outbound capture listeners (default 0.0.0.0:15001,[::]:15001)" },
	{ "inbound", "ZRING_INBOUND", O_INBOUND, "ADDR[,ADDR]",
	  "inbound plaintext listeners (default 0.0.0.0:15006,[::]:15006)" },
	{ "workers", "ZRING_WORKERS", O_WORKERS, "N",
	  "worker threads (default: online CPUs)" },
	{ "drain-timeout", "ZRING_DRAIN_TIMEOUT", O_DRAIN, "DUR",
	  "how long open connections may finish after SIGTERM (default 5s)" },
	{ "connect-timeout", "ZRING_CONNECT_TIMEOUT", O_CONNECT, "DUR",
	  "upstream connect timeout (default 10s)" },
	{ "idle-timeout", "ZRING_IDLE_TIMEOUT", O_IDLE, "DUR",
	  "close connections idle this long, 0 = never (default 0: dead peers are found by TCP keepalive)" },
	{ "keepalive", "ZRING_KEEPALIVE", O_KEEPALIVE, "on|off",
	  "TCP keepalive on client, upstream and tunnel sockets (default on)" },
	{ "keepalive-idle", "ZRING_KEEPALIVE_IDLE", O_KA_IDLE, "DUR",
	  "keepalive: first probe after this long without traffic, whole seconds (default 180s)" },
	{ "keepalive-interval", "ZRING_KEEPALIVE_INTERVAL", O_KA_INTERVAL, "DUR",
	  "keepalive: time between unanswered probes, whole seconds (default 180s)" },
	{ "keepalive-probes", "ZRING_KEEPALIVE_PROBES", O_KA_PROBES, "N",
	  "keepalive: unanswered probes before the connection is closed, 1-127 (default 9)" },
	{ "metrics-grace", "ZRING_METRICS_GRACE", O_METRICS_GRACE, "DUR",
	  "keep the metrics of workloads that left the config this long (default 5m)" },
	{ "mark", "ZRING_MARK", O_MARK, "N",
	  "SO_MARK on upstream sockets, exempt from redirection (default 0x539)" },
	{ "pump", "ZRING_PUMP", O_PUMP, "splice|copy",
	  "plaintext data pump (default splice)" },
	{ "busy-poll-us", "ZRING_BUSY_POLL_US", O_BUSY_POLL, "US",
	  "after a small message goes upstream, poll for the reply up to US microseconds before sleeping, yielding to any other runnable thread; 0 = off (default 30)" },
	{ "pipe-pool", "ZRING_PIPE_POOL", O_PIPES, "N",
	  "pipes per worker for the splice pump (default 512)" },
	{ "buffers", "ZRING_BUFFERS", O_BUFFERS, "N",
	  "64 KiB buffers per worker for the copy pump (default 512)" },
	{ "log-level", "ZRING_LOG_LEVEL", O_LEVEL, "LEVEL",
	  "error, warn, info or debug (default info)" },
	{ "log-format", "ZRING_LOG_FORMAT", O_FORMAT, "FMT",
	  "text (logfmt) or json (default text)" },
	{ "node-agent", "ZRING_NODE_AGENT", O_NODE_AGENT, NULL,
	  "serve every pod of the config in its own network namespace (zringNetns)" },
	{ "node", "ZRING_NODE", O_NODE, "NAME",
	  "node-agent mode: serve only the workloads whose node is NAME (default: all)" },
	{ "admin", "ZRING_ADMIN", O_ADMIN, "ADDR|off",
	  "admin endpoints, loopback addresses only (default 127.0.0.1:15000)" },
	{ "readiness", "ZRING_READINESS", O_READINESS, "ADDR|off",
	  "readiness probe GET /healthz/ready (default [::]:15021, else 0.0.0.0:15021)" },
	{ "metrics", "ZRING_METRICS", O_METRICS, "ADDR|off",
	  "metrics endpoint (default [::]:15020, else 0.0.0.0:15020)" },
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int opts_parse_duration(const char *s, uint64_t *ms)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno)
		return -EINVAL;
	double mul;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else
		return -EINVAL;
	v *= mul;
	if (v > 1e15)
		return -EINVAL;
	*ms = (uint64_t)v;
	return 0;
}

int opts_parse_addrs(const char *s, struct addr_list *out)
{
	char buf[1024];
	if (strlen(s) >= sizeof(buf) || *s == '\0')
		return -EINVAL;
	strcpy(buf, s);
	out->n = 0;
	out->is_default = false;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (out->n == OPTS_MAX_ADDRS || addr_parse(tok, &out->a[out->n]) < 0)
			return -EINVAL;
		out->n++;
	}
	return out->n ? 0 : -EINVAL;
}

/* One listening address with a non-zero port, or "off" (n = 0). */
static int parse_endpoint(const char *s, struct addr_list *out)
{
	out->is_default = false;
	if (strcmp(s, "off") == 0) {
		out->n = 0;
		return 0;
	}
	if (addr_parse(s, &out->a[0]) < 0 || addr_port(&out->a[0]) == 0)
		return -EINVAL;
	out->n = 1;
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* A switch's environment value: 1/true/yes/on or 0/false/no/off. */
static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return -EINVAL;
}

/* A keepalive time: a duration of whole seconds within the kernel's bounds. */
static int parse_keepalive_s(const char *s, unsigned *out)
{
	uint64_t ms;
	if (opts_parse_duration(s, &ms) < 0 || ms % 1000 || ms < 1000 ||
	    ms > OPTS_MAX_KEEPALIVE_S * 1000ull)
		return -EINVAL;
	*out = (unsigned)(ms / 1000);
	return 0;
}

/* v is NULL for a switch given on the command line. */
static int apply(struct opts *o, int id, const char *v)
{
	unsigned long n;
	switch (id) {
	case O_NODE_AGENT:
		if (!v) {
			o->node_agent = true;
			return 0;
		}
		return parse_bool(v, &o->node_agent);
	case O_NODE:
		if (!*v)
			return -EINVAL;
		o->node = v;
		return 0;
	case O_CONFIG:
		if (!*v)
			return -EINVAL;
		o->config = v;
		return 0;
	case O_CERTS:
		if (!*v)
			return -EINVAL;
		o->certs = v;
		return 0;
	case O_HBONE:
		return opts_parse_addrs(v, &o->hbone);
	case O_HBONE_PORT:
		if (parse_uint(v, 65535, &n) < 0 || n == 0)
			return -EINVAL;
		o->hbone_port = (uint16_t)n;
		return 0;
	case O_MAX_STREAMS:
		if (parse_uint(v, 10000, &n) < 0 || n == 0)
			return -EINVAL;
		o->hbone_max_streams = (unsigned)n;
		return 0;
	case O_TUNNEL_STREAMS:
		if (parse_uint(v, 1ul << 30, &n) < 0)
			return -EINVAL;
		o->hbone_tunnel_streams = (unsigned)n;
		return 0;
	case O_POOL_IDLE:
		return opts_parse_duration(v, &o->hbone_idle_timeout_ms);
	case O_OUTBOUND:
		return opts_parse_addrs(v, &o->outbound);
	case O_INBOUND:
		return opts_parse_addrs(v, &o->inbound);
	case O_WORKERS:
		if (parse_uint(v, 256, &n) < 0 || n == 0)
			return -EINVAL;
		o->workers = (unsigned)n;
		return 0;
	case O_DRAIN:
		return opts_parse_duration(v, &o->drain_timeout_ms);
	case O_CONNECT:
		if (opts_parse_duration(v, &o->connect_timeout_ms) < 0 || !o->connect_timeout_ms)
			return -EINVAL;
		return 0;
	case O_IDLE:
		return opts_parse_duration(v, &o->idle_timeout_ms);
	case O_KEEPALIVE:
		return parse_bool(v, &o->keepalive.on);
	case O_KA_IDLE:
		return parse_keepalive_s(v, &o->keepalive.idle_s);
	case O_KA_INTERVAL:
		return parse_keepalive_s(v, &o->keepalive.interval_s);
	case O_KA_PROBES:
		if (parse_uint(v, OPTS_MAX_KEEPALIVE_PROBES, &n) < 0 || n == 0)
			return -EINVAL;
		o->keepalive.probes = (unsigned)n;
		return 0;
	case O_METRICS_GRACE:
		return opts_parse_duration(v, &o->metrics_grace_ms);
	case O_MARK:
		if (parse_uint(v, UINT32_MAX, &n) < 0)
			return -EINVAL;
		o->mark = (uint32_t)n;
		return 0;
	case O_PUMP:
		if (strcmp(v, "splice") == 0)
			o->pump = PUMP_SPLICE;
		else if (strcmp(v, "copy") == 0)
			o->pump = PUMP_COPY;
		else
			return -EINVAL;
		return 0;
	case O_BUSY_POLL:
		if (parse_uint(v, OPTS_MAX_BUSY_POLL_US, &n) < 0)
			return -EINVAL;
		o->busy_poll_us = (unsigned)n;
		return 0;
	case O_PIPES:
		if (parse_uint(v, 65536, &n) < 0 || n == 0)
			return -EINVAL;
		o->pipe_pool = (unsigned)n;
		return 0;
	case O_BUFFERS:
		if (parse_uint(v, 32768, &n) < 0 || n == 0 || (n & (n - 1)))
			return -EINVAL;
		o->buffers = (unsigned)n;
		return 0;
	case O_LEVEL:
		return log_level_parse(v, &o->log_level);
	case O_FORMAT:
		return log_format_parse(v, &o->log_format);
	case O_ADMIN:
		return parse_endpoint(v, &o->admin);
	case O_METRICS:
		return parse_endpoint(v, &o->metrics);
	case O_READINESS:
		return parse_endpoint(v, &o->readiness);
	}
	return -EINVAL;
}

static void set_defaults(struct opts *o)
{
	memset(o, 0, sizeof(*o));
	opts_parse_addrs("0.0.0.0:15001,[::]:15001", &o->outbound);
	opts_parse_addrs("0.0.0.0:15006,[::]:15006", &o->inbound);
	opts_parse_addrs("0.0.0.0:15008,[::]:15008", &o->hbone);
	o->outbound.is_default = o->inbound.is_default = o->hbone.is_default = true;
	parse_endpoint("127.0.0.1:15000", &o->admin);
	parse_endpoint("[::]:15020", &o->metrics);
	parse_endpoint("[::]:15021", &o->readiness);
	o->admin.is_default = o->metrics.is_default = o->readiness.is_default = true;
	o->hbone_port = 15008;
	o->hbone_max_streams = 100;
	o->hbone_idle_timeout_ms = 60000;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	o->workers = cpus > 0 ? (unsigned)cpus : 1;
	o->drain_timeout_ms = 5000;
	o->connect_timeout_ms = 10000;
	/* No idle timeout, as ztunnel: a proxy that cuts silent connections
	 * cuts every database pool's idle connections behind it. Keepalive
	 * finds the peers that vanished instead (docs/operations.md). */
	o->idle_timeout_ms = 0;
	o->keepalive = (struct keepalive_opts){ .on = true, .idle_s = 180, .interval_s = 180,
						.probes = 9 };
	o->metrics_grace_ms = 5 * 60 * 1000;
	o->mark = 0x539;
	o->pump = PUMP_SPLICE;
	o->busy_poll_us = 30;
	o->pipe_pool = 512;
	o->buffers = 512;
	o->log_level = LOG_INFO;
	o->log_format = LOG_TEXT;
}

static const struct opt_def *def_by_id(int id)
{
	for (size_t i = 0; i < ARRAY_SIZE(defs); i++)
		if (defs[i].id == id)
			return &defs[i];
	return NULL;
}

int opts_parse(struct opts *o, int argc, char **argv, char *err, size_t errlen)
{
	struct option longopts[ARRAY_SIZE(defs) + 3];
	size_t i;

	set_defaults(o);
	for (i = 0; i < ARRAY_SIZE(defs); i++) {
		const char *v = getenv(defs[i].env);
		if (v && apply(o, defs[i].id, v) < 0)
			return fail(err, errlen, "invalid value '%s' for %s (expected %s)",
				    v, defs[i].env, defs[i].arg ? defs[i].arg : "1, true, 0 or false");
		longopts[i] = (struct option){ defs[i].flag,
					       defs[i].arg ? required_argument : no_argument,
					       NULL, defs[i].id };
	}
	longopts[i++] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[i++] = (struct option){ "version", no_argument, NULL, 'V' };
	longopts[i] = (struct option){ 0 };

	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		if (c == 'h') {
			o->help = true;
		} else if (c == 'V') {
			o->version = true;
		} else if (c == ':') {
			return fail(err, errlen, "option '%s' needs a value", argv[optind - 1]);
		} else if (c == '?') {
			return fail(err, errlen, "unknown option '%s'", argv[optind - 1]);
		} else if (apply(o, c, optarg) < 0) {
			const struct opt_def *d = def_by_id(c);
			return fail(err, errlen, "invalid value '%s' for --%s (expected %s)",
				    optarg, d->flag, d->arg);
		}
	}
	if (optind < argc)
		return fail(err, errlen, "unexpected argument '%s'", argv[optind]);
	/* The admin endpoints can stop the proxy and have no authentication:
	 * reach them through the pod (kubectl port-forward, nsenter), never
	 * over the network. */
	if (o->admin.n && !addr_is_loopback(&o->admin.a[0])) {
		char buf[ADDR_STRLEN];
		return fail(err, errlen, "--admin %s is not a loopback address: the admin "
			    "endpoints have no authentication, so they listen on 127.0.0.1 "
			    "or [::1] only (or 'off')",
			    addr_format(&o->admin.a[0], buf, sizeof(buf)));
	}
	return 0;
}

void opts_usage(FILE *f)
{
	fprintf(f, "usage: zring [options]\n\n"
		   "Transparent L4 mesh proxy. Each option can also be set by the\n"
		   "environment variable in brackets; the flag wins.\n\n");
	for (size_t i = 0; i < ARRAY_SIZE(defs); i++) {
		char lhs[64];
		snprintf(lhs, sizeof(lhs), "--%s %s", defs[i].flag, defs[i].arg ? defs[i].arg : "");
		fprintf(f, "  %-30s %s [%s]\n", lhs, defs[i].help, defs[i].env);
	}
	fprintf(f, "  %-30s %s\n  %-30s %s\n", "-h, --help", "this help",
		"-V, --version", "print the version");
	fprintf(f, "\nDurations: 500ms, 5s, 2m, 1h or a bare number of seconds.\n");
}
