#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "zring/opts.h"

static int parse(struct opts *o, char *err, int argc, char **argv)
{
	return opts_parse(o, argc, argv, err, 256);
}

static void clear_env(void)
{
	const char *vars[] = { "ZRING_OUTBOUND", "ZRING_INBOUND", "ZRING_WORKERS",
			       "ZRING_DRAIN_TIMEOUT", "ZRING_CONNECT_TIMEOUT", "ZRING_IDLE_TIMEOUT",
			       "ZRING_METRICS_GRACE", "ZRING_MARK", "ZRING_PUMP", "ZRING_LOG_LEVEL", "ZRING_LOG_FORMAT",
			       "ZRING_NODE_AGENT", "ZRING_NODE", "ZRING_ADMIN", "ZRING_READINESS", "ZRING_METRICS",
			       "ZRING_HBONE_TUNNEL_STREAMS", "ZRING_BUSY_POLL_US", "ZRING_KEEPALIVE",
			       "ZRING_KEEPALIVE_IDLE", "ZRING_KEEPALIVE_INTERVAL",
			       "ZRING_KEEPALIVE_PROBES" };
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
}

TestSuite(opts, .init = clear_env);

Test(opts, defaults_are_ztunnel_ports)
{
	struct opts o;
	char err[256];
	char *argv[] = { "zring", NULL };
	cr_assert_eq(parse(&o, err, 1, argv), 0);
	cr_assert_eq(o.outbound.n, 2);
	cr_assert_eq(addr_port(&o.outbound.a[0]), 15001);
	cr_assert_eq(addr_port(&o.inbound.a[1]), 15006);
	cr_assert_eq(o.mark, 0x539);
	cr_assert_eq(o.drain_timeout_ms, 5000);
	cr_assert_eq(o.connect_timeout_ms, 10000);
	cr_assert_geq(o.workers, 1);
	cr_assert_eq(o.log_level, LOG_INFO);
	cr_assert_eq(o.metrics_grace_ms, 5 * 60 * 1000);
}

Test(opts, metrics_grace_from_flag_and_environment)
{
	struct opts o;
	char err[256];
	setenv("ZRING_METRICS_GRACE", "90s", 1);
	char *a1[] = { "zring", NULL };
	cr_assert_eq(parse(&o, err, 1, a1), 0, "%s", err);
	cr_assert_eq(o.metrics_grace_ms, 90000);
	char *a2[] = { "zring", "--metrics-grace", "2m", NULL };
	cr_assert_eq(parse(&o, err, 3, a2), 0, "%s", err);
	cr_assert_eq(o.metrics_grace_ms, 120000);
	char *a3[] = { "zring", "--metrics-grace", "soon", NULL };
	cr_assert_eq(parse(&o, err, 3, a3), -EINVAL);
	cr_assert(strstr(err, "--metrics-grace"), "%s", err);
}

Test(opts, flags_set_values)
{
	struct opts o;
	char err[256];
	char *argv[] = { "zring", "--outbound", "127.0.0.1:7001", "--workers", "3",
			 "--drain-timeout", "250ms", "--mark", "0x10", "--pump", "copy",
			 "--log-format", "json", "--idle-timeout", "0", NULL };
	cr_assert_eq(parse(&o, err, 15, argv), 0, "%s", err);
	cr_assert_eq(o.outbound.n, 1);
	cr_assert_eq(addr_port(&o.outbound.a[0]), 7001);
	cr_assert_eq(o.workers, 3);
	cr_assert_eq(o.drain_timeout_ms, 250);
	cr_assert_eq(o.mark, 0x10);
	cr_assert_eq(o.pump, PUMP_COPY);
	cr_assert_eq(o.log_format, LOG_JSON);
	cr_assert_eq(o.idle_timeout_ms, 0);
}

Test(opts, environment_sets_and_flag_wins)
{
	struct opts o;
	char err[256];
	setenv("ZRING_WORKERS", "5", 1);
	setenv("ZRING_DRAIN_TIMEOUT", "2m", 1);
	char *argv[] = { "zring", "--workers", "2", NULL };
	cr_assert_eq(parse(&o, err, 3, argv), 0, "%s", err);
	cr_assert_eq(o.workers, 2);
	cr_assert_eq(o.drain_timeout_ms, 120000);
}

Test(opts, tunnel_streams_default_flag_environment_and_bounds)
{
	struct opts o;
	char err[256];
	char *a1[] = { "zring", NULL };
	cr_assert_eq(parse(&o, err, 1, a1), 0, "%s", err);
	cr_assert_eq(o.hbone_tunnel_streams, 0, "default: retire only when stream IDs run out");
	setenv("ZRING_HBONE_TUNNEL_STREAMS", "1000", 1);
	cr_assert_eq(parse(&o, err, 1, a1), 0, "%s", err);
	cr_assert_eq(o.hbone_tunnel_streams, 1000);
	char *a2[] = { "zring", "--hbone-tunnel-streams", "2", NULL };
	cr_assert_eq(parse(&o, err, 3, a2), 0, "%s", err);
	cr_assert_eq(o.hbone_tunnel_streams, 2, "the flag wins over the environment");
	char *a3[] = { "zring", "--hbone-tunnel-streams", "1073741825", NULL };
	cr_assert_eq(parse(&o, err, 3, a3), -EINVAL, "more than 2^30: a client has no more stream IDs");
	cr_assert(strstr(err, "--hbone-tunnel-streams"), "%s", err);
	char *a4[] = { "zring", "--hbone-tunnel-streams", "-1", NULL };
	cr_assert_eq(parse(&o, err, 3, a4), -EINVAL);
}

Test(opts, busy_poll_default_flag_environment_and_bounds)
{
	struct opts o;
	char err[256];
	char *a1[] = { "zring", NULL };
	cr_assert_eq(parse(&o, err, 1, a1), 0, "%s", err);
	cr_assert_eq(o.busy_poll_us, 30);
	setenv("ZRING_BUSY_POLL_US", "0", 1);
	cr_assert_eq(parse(&o, err, 1, a1), 0, "%s", err);
	cr_assert_eq(o.busy_poll_us, 0, "0 turns it off");
	char *a2[] = { "zring", "--busy-poll-us", "100", NULL };
	cr_assert_eq(parse(&o, err, 3, a2), 0, "%s", err);
	cr_assert_eq(o.busy_poll_us, 100, "the flag wins over the environment");
	char *a3[] = { "zring", "--busy-poll-us", "1001", NULL };
	cr_assert_eq(parse(&o, err, 3, a3), -EINVAL, "over 1 ms is a spin, not a poll");
	cr_assert(strstr(err, "--busy-poll-us"), "%s", err);
	char *a4[] = { "zring", "--busy-poll-us", "5ms", NULL };
	cr_assert_eq(parse(&o, err, 3, a4), -EINVAL, "microseconds, a bare number");
}

Test(opts, no_idle_timeout_and_ztunnel_keepalive_by_default)
{
	struct opts o;
	char err[256];
	char *a1[] = { "zring", NULL };
	cr_assert_eq(parse(&o, err, 1, a1), 0, "%s", err);
	cr_assert_eq(o.idle_timeout_ms, 0, "idle connections are never cut by default");
	cr_assert(o.keepalive.on);
	cr_assert_eq(o.keepalive.idle_s, 180);
	cr_assert_eq(o.keepalive.interval_s, 180);
	cr_assert_eq(o.keepalive.probes, 9);
	char *a2[] = { "zring", "--idle-timeout", "30m", NULL };
	cr_assert_eq(parse(&o, err, 3, a2), 0, "%s", err);
	cr_assert_eq(o.idle_timeout_ms, 30 * 60 * 1000, "the flag still sets one");
}

Test(opts, keepalive_flags_environment_and_off_switch)
{
	struct opts o;
	char err[256];
	setenv("ZRING_KEEPALIVE_IDLE", "1m", 1);
	setenv("ZRING_KEEPALIVE_INTERVAL", "20", 1);
	setenv("ZRING_KEEPALIVE_PROBES", "3", 1);
	char *a1[] = { "zring", NULL };
	cr_assert_eq(parse(&o, err, 1, a1), 0, "%s", err);
	cr_assert_eq(o.keepalive.idle_s, 60);
	cr_assert_eq(o.keepalive.interval_s, 20);
	cr_assert_eq(o.keepalive.probes, 3);
	char *a2[] = { "zring", "--keepalive-idle", "1s", "--keepalive-interval", "2s",
		       "--keepalive-probes", "127", NULL };
	cr_assert_eq(parse(&o, err, 7, a2), 0, "%s", err);
	cr_assert_eq(o.keepalive.idle_s, 1, "the flag wins over the environment");
	cr_assert_eq(o.keepalive.interval_s, 2);
	cr_assert_eq(o.keepalive.probes, 127);
	cr_assert(o.keepalive.on);

	setenv("ZRING_KEEPALIVE", "off", 1);
	cr_assert_eq(parse(&o, err, 1, a1), 0, "%s", err);
	cr_assert_not(o.keepalive.on);
	char *a3[] = { "zring", "--keepalive", "on", NULL };
	cr_assert_eq(parse(&o, err, 3, a3), 0, "%s", err);
	cr_assert(o.keepalive.on, "the flag wins over the environment");
	char *a4[] = { "zring", "--keepalive", "false", NULL };
	cr_assert_eq(parse(&o, err, 3, a4), 0, "%s", err);
	cr_assert_not(o.keepalive.on);
}

Test(opts, keepalive_figures_within_the_kernel_bounds)
{
	struct opts o;
	char err[256];
	/* The kernel takes whole seconds, 1-32767, and 1-127 probes. */
	const char *bad[][2] = {
		{ "--keepalive-idle", "0" },	    { "--keepalive-idle", "500ms" },
		{ "--keepalive-idle", "1.5s" },	    { "--keepalive-idle", "32768" },
		{ "--keepalive-interval", "0s" },   { "--keepalive-interval", "10h" },
		{ "--keepalive-probes", "0" },	    { "--keepalive-probes", "128" },
		{ "--keepalive-probes", "3s" },	    { "--keepalive", "maybe" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "zring", (char *)bad[i][0], (char *)bad[i][1], NULL };
		cr_assert_eq(parse(&o, err, 3, argv), -EINVAL, "%s %s", bad[i][0], bad[i][1]);
		cr_assert(strstr(err, bad[i][0]), "%s", err);
	}
	char *ok[] = { "zring", "--keepalive-idle", "32767", "--keepalive-interval", "2000ms", NULL };
	cr_assert_eq(parse(&o, err, 5, ok), 0, "%s", err);
	cr_assert_eq(o.keepalive.idle_s, 32767);
	cr_assert_eq(o.keepalive.interval_s, 2);
	setenv("ZRING_KEEPALIVE_PROBES", "lots", 1);
	char *a1[] = { "zring", NULL };
	cr_assert_eq(parse(&o, err, 1, a1), -EINVAL);
	cr_assert(strstr(err, "ZRING_KEEPALIVE_PROBES"), "%s", err);
}

Test(opts, bad_values_name_the_flag)
{
	struct opts o;
	char err[256];
	char *a1[] = { "zring", "--workers", "zero", NULL };
	cr_assert_eq(parse(&o, err, 3, a1), -EINVAL);
	cr_assert(strstr(err, "--workers"), "%s", err);
	char *a2[] = { "zring", "--nope", NULL };
	cr_assert_eq(parse(&o, err, 2, a2), -EINVAL);
	cr_assert(strstr(err, "--nope"), "%s", err);
	char *a3[] = { "zring", "--outbound", "1.2.3.4", NULL };
	cr_assert_eq(parse(&o, err, 3, a3), -EINVAL);
	char *a4[] = { "zring", "--drain-timeout", NULL };
	cr_assert_eq(parse(&o, err, 2, a4), -EINVAL);
	cr_assert(strstr(err, "needs a value"), "%s", err);
	char *a5[] = { "zring", "--connect-timeout", "0", NULL };
	cr_assert_eq(parse(&o, err, 3, a5), -EINVAL);
}

Test(opts, bad_environment_names_the_variable)
{
	struct opts o;
	char err[256];
	setenv("ZRING_PUMP", "teleport", 1);
	char *argv[] = { "zring", NULL };
	cr_assert_eq(parse(&o, err, 1, argv), -EINVAL);
	cr_assert(strstr(err, "ZRING_PUMP"), "%s", err);
}

Test(opts, durations)
{
	uint64_t ms;
	cr_assert_eq(opts_parse_duration("5", &ms), 0);
	cr_assert_eq(ms, 5000);
	cr_assert_eq(opts_parse_duration("1.5s", &ms), 0);
	cr_assert_eq(ms, 1500);
	cr_assert_eq(opts_parse_duration("1h", &ms), 0);
	cr_assert_eq(ms, 3600000);
	cr_assert_eq(opts_parse_duration("5d", &ms), -EINVAL);
	cr_assert_eq(opts_parse_duration("-1s", &ms), -EINVAL);
	cr_assert_eq(opts_parse_duration("", &ms), -EINVAL);
}

Test(opts, address_lists)
{
	struct addr_list l;
	cr_assert_eq(opts_parse_addrs("1.1.1.1:1,[::1]:2", &l), 0);
	cr_assert_eq(l.n, 2);
	cr_assert_eq(opts_parse_addrs("1.1.1.1:1,,", &l), 0);
	cr_assert_eq(l.n, 1);
	cr_assert_eq(opts_parse_addrs(",", &l), -EINVAL);
	cr_assert_eq(opts_parse_addrs("1:1:1:1,1.1.1.1:1", &l), -EINVAL);
}

Test(opts, node_agent_is_a_switch_and_node_a_name)
{
	struct opts o;
	char err[256];
	char *a0[] = { "zring", NULL };
	cr_assert_eq(parse(&o, err, 1, a0), 0, "%s", err);
	cr_assert_not(o.node_agent);
	cr_assert_null(o.node);
	/* The switch takes no value: what follows is the next flag. */
	char *a1[] = { "zring", "--node-agent", "--node", "node-1", "--workers", "2", NULL };
	cr_assert_eq(parse(&o, err, 6, a1), 0, "%s", err);
	cr_assert(o.node_agent);
	cr_assert_str_eq(o.node, "node-1");
	cr_assert_eq(o.workers, 2);
	char *a2[] = { "zring", "--node", "", NULL };
	cr_assert_eq(parse(&o, err, 3, a2), -EINVAL);
	cr_assert(strstr(err, "--node"), "%s", err);
}

Test(opts, node_agent_from_the_environment)
{
	struct opts o;
	char err[256];
	char *argv[] = { "zring", NULL };
	const char *yes[] = { "1", "true", "TRUE", "yes", "on" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		setenv("ZRING_NODE_AGENT", yes[i], 1);
		cr_assert_eq(parse(&o, err, 1, argv), 0, "%s", err);
		cr_assert(o.node_agent, "%s", yes[i]);
	}
	setenv("ZRING_NODE_AGENT", "false", 1);
	setenv("ZRING_NODE", "node-2", 1);
	cr_assert_eq(parse(&o, err, 1, argv), 0, "%s", err);
	cr_assert_not(o.node_agent);
	cr_assert_str_eq(o.node, "node-2");
	/* The flag wins over a variable that says no. */
	char *a1[] = { "zring", "--node-agent", NULL };
	cr_assert_eq(parse(&o, err, 2, a1), 0, "%s", err);
	cr_assert(o.node_agent);
	setenv("ZRING_NODE_AGENT", "maybe", 1);
	cr_assert_eq(parse(&o, err, 1, argv), -EINVAL);
	cr_assert(strstr(err, "ZRING_NODE_AGENT"), "%s", err);
}

Test(opts, endpoints_default_to_ztunnel_ports)
{
	struct opts o;
	char err[256], buf[ADDR_STRLEN];
	char *argv[] = { "zring", NULL };
	cr_assert_eq(parse(&o, err, 1, argv), 0, "%s", err);
	cr_assert_eq(o.admin.n, 1);
	cr_assert_str_eq(addr_format(&o.admin.a[0], buf, sizeof(buf)), "127.0.0.1:15000");
	cr_assert_str_eq(addr_format(&o.readiness.a[0], buf, sizeof(buf)), "[::]:15021");
	cr_assert_str_eq(addr_format(&o.metrics.a[0], buf, sizeof(buf)), "[::]:15020");
	cr_assert(o.readiness.is_default && o.metrics.is_default);
}

Test(opts, endpoints_off_and_moved)
{
	struct opts o;
	char err[256], buf[ADDR_STRLEN];
	setenv("ZRING_METRICS", "off", 1);
	setenv("ZRING_READINESS", "0.0.0.0:9021", 1);
	char *argv[] = { "zring", "--admin", "[::1]:9000", "--readiness", "off", NULL };
	cr_assert_eq(parse(&o, err, 5, argv), 0, "%s", err);
	cr_assert_eq(o.metrics.n, 0, "off from the environment");
	cr_assert_eq(o.readiness.n, 0, "the flag wins over ZRING_READINESS");
	cr_assert_str_eq(addr_format(&o.admin.a[0], buf, sizeof(buf)), "[::1]:9000");
	cr_assert_not(o.admin.is_default);
	char *a2[] = { "zring", "--admin", "off", NULL };
	cr_assert_eq(parse(&o, err, 3, a2), 0, "%s", err);
	cr_assert_eq(o.admin.n, 0);
}

Test(opts, admin_must_be_loopback)
{
	struct opts o;
	char err[256];
	char *a1[] = { "zring", "--admin", "0.0.0.0:15000", NULL };
	cr_assert_eq(parse(&o, err, 3, a1), -EINVAL);
	cr_assert(strstr(err, "not a loopback address"), "%s", err);
	char *a2[] = { "zring", "--admin", "10.1.2.3:15000", NULL };
	cr_assert_eq(parse(&o, err, 3, a2), -EINVAL);
	setenv("ZRING_ADMIN", "[::]:15000", 1);
	char *a3[] = { "zring", NULL };
	cr_assert_eq(parse(&o, err, 1, a3), -EINVAL);
	cr_assert(strstr(err, "[::]:15000"), "%s", err);
	char *a4[] = { "zring", "--admin", "127.0.0.2:15000", NULL };
	cr_assert_eq(parse(&o, err, 3, a4), 0, "all of 127/8 is loopback: %s", err);
	char *a5[] = { "zring", "--readiness", "1.2.3.4:0", NULL };
	cr_assert_eq(parse(&o, err, 3, a5), -EINVAL, "port 0 is no address to probe");
}
