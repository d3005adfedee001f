/*
 * Command-line and environment options.
 *
 * Every flag has an environment variable (Kubernetes style: ZRING_<FLAG>);
 * a flag on the command line wins over its variable. Parsing never exits:
 * it returns an error and a message, and main() turns that into exit 2.
 */
#ifndef ZRING_OPTS_H
#define ZRING_OPTS_H

#include "zring/addr.h"
#include "zring/log.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define OPTS_MAX_ADDRS 8
#define OPTS_MAX_BUSY_POLL_US 1000

enum pump_mode { PUMP_SPLICE, PUMP_COPY };

/* Linux's bounds for TCP_KEEPIDLE / TCP_KEEPINTVL (seconds) and TCP_KEEPCNT. */
#define OPTS_MAX_KEEPALIVE_S 32767
#define OPTS_MAX_KEEPALIVE_PROBES 127

/*
 * TCP keepalive on every proxied socket (client, upstream, both ends of a
 * tunnel): after idle_s seconds without traffic, a probe every interval_s
 * seconds; probes unanswered in a row end the connection. Defaults are
 * ztunnel's (180 s, 180 s, 9). Whole seconds, as the kernel takes them.
 */
struct keepalive_opts {
	bool on;
	unsigned idle_s;
	unsigned interval_s;
	unsigned probes;
};

struct addr_list {
	unsigned n;
	union addr a[OPTS_MAX_ADDRS];
	/* Index set when the address came from a default, so a missing IPv6
	 * stack can be tolerated for defaults but not for explicit flags. */
	bool is_default;
};

struct opts {
	const char *config;		/* workload JSON file, or NULL */
	struct addr_list outbound;
	struct addr_list inbound;
	struct addr_list hbone;		/* inbound HBONE (mTLS) listeners */
	const char *certs;		/* certificate directory, or NULL */
	uint16_t hbone_port;		/* peers' HBONE port */
	unsigned hbone_max_streams;	/* per pooled tunnel */
	unsigned hbone_tunnel_streams;	/* streams a pooled tunnel opens before it retires; 0: all its IDs */
	uint64_t hbone_idle_timeout_ms;	/* close pooled tunnels idle this long */
	unsigned workers;
	uint64_t drain_timeout_ms;
	uint64_t connect_timeout_ms;
	uint64_t idle_timeout_ms;	/* 0: never (the default) */
	struct keepalive_opts keepalive;
	uint64_t metrics_grace_ms;	/* keep series of departed workloads this long */
	uint32_t mark;
	enum pump_mode pump;
	unsigned busy_poll_us;		/* see worker.h, busy polling; 0: off */
	unsigned pipe_pool;		/* pipes per worker (splice pump) */
	unsigned buffers;		/* provided buffers per worker (copy pump) */
	/* HTTP endpoints on the control thread: one address each, n = 0 when
	 * "off". The admin address is always loopback (checked here). */
	struct addr_list admin;
	struct addr_list metrics;
	struct addr_list readiness;
	enum log_level log_level;
	enum log_format log_format;
	/* Node-agent mode: the listeners above are opened inside every
	 * served pod's network namespace instead of zring's own. */
	bool node_agent;
	const char *node;		/* serve only workloads on this node, or NULL */
	bool help;
	bool version;
};

/*
 * Fill *o from defaults, then the environment (envp-style lookup through
 * getenv), then argv. Returns 0, or -EINVAL with a one-line message in
 * err (errlen bytes).
 */
int opts_parse(struct opts *o, int argc, char **argv, char *err, size_t errlen);

/* Parse "500ms", "5s", "2m", "1h", or a bare number of seconds; 0 or -EINVAL. */
int opts_parse_duration(const char *s, uint64_t *ms);

/* Parse a comma-separated list of addresses; 0 or -EINVAL. */
int opts_parse_addrs(const char *s, struct addr_list *out);

void opts_usage(FILE *f);

#endif
