/*
 * zring: parse options, start the workers, hand the main thread to the
 * control loop, and exit 0 after a graceful drain.
 */
#include "zring/admin.h"
#include "zring/check.h"
#include "zring/control.h"
#include "zring/fdbudget.h"
#include "zring/log.h"
#include "zring/nodeagent.h"
#include "zring/tls.h"
#include "zring/opts.h"
#include "zring/snapshot.h"
#include "zring/watch.h"
#include "zring/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Idle connections cost descriptors, so take every one we may. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Without the mark, our own upstream connections would be redirected back
 * to us in a loop. Refuse to start rather than find out under load. */
static int check_mark(uint32_t mark)
{
	if (!mark)
		return 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int err = setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ? -errno : 0;
	close(fd);
	return err;
}

/* Drain every worker whose thread runs, then join and free them all. */
static void stop_workers(struct worker **ws, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (ws[i]->thread_started)
			worker_drain(ws[i]);
	for (unsigned i = 0; i < n; i++)
		worker_free(ws[i]);
}

static int run(const struct opts *o, struct snapshot_slot *slot, struct watch *watch,
	       struct admin *admin, struct nodeagent *na)
{
	int done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (done_fd < 0)
		return 1;
	struct worker **ws = calloc(o->workers, sizeof(*ws));
	unsigned n = 0, started = 0;
	int err = ws ? 0 : -ENOMEM;

	for (; err == 0 && n < o->workers; n++) {
		ws[n] = worker_new(n, o, slot, done_fd, &err);
		if (!ws[n])
			break;
	}
	if (na)
		nodeagent_attach(na, ws, n);
	for (; err == 0 && started < n; started++)
		err = worker_start(ws[started]);
	if (err == 0) {
		/* Count again now that listeners, rings and pipes exist; the
		 * control thread adds a signalfd, a ring and an inotify fd. */
		fdb_init();
		fdb_opened(3);
		if (na)
			nodeagent_sync(na);	/* the pods of the config loaded at start */
		struct log_line l;
		if (log_begin(&l, LOG_INFO, "ready")) {
			log_u64(&l, "workers", o->workers);
			log_str(&l, "pump", o->pump == PUMP_COPY ? "copy" : "splice");
			log_str(&l, "mode", na ? "node-agent" : "sidecar");
			if (na)
				log_u64(&l, "pods", na->npods);
			log_str(&l, "version", ZRING_VERSION);
			log_end(&l);
		}
		err = control_run(ws, n, done_fd, watch, admin, na);
		if (err < 0)
			log_msg_err(LOG_ERROR, "control thread failed", "control", err);
	}
	stop_workers(ws, n);
	free(ws);
	close(done_fd);
	if (err < 0)
		return 1;
	log_msg(LOG_INFO, "exit");
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	char err[256];

	if (argc > 1 && strcmp(argv[1], "check") == 0)
		return check_main(argc - 1, argv + 1);
	if (opts_parse(&o, argc, argv, err, sizeof(err)) < 0) {
		fprintf(stderr, "zring: %s\nTry 'zring --help'.\n", err);
		return 2;
	}
	if (o.help) {
		opts_usage(stdout);
		return 0;
	}
	if (o.version) {
		printf("zring %s\n", ZRING_VERSION);
		return 0;
	}
	log_setup(o.log_level, o.log_format);
	control_block_signals();
	raise_fd_limit();
	int ret = check_mark(o.mark);
	if (ret < 0) {
		log_msg_err(LOG_ERROR, "cannot set SO_MARK on upstream sockets "
			    "(needs CAP_NET_ADMIN; --mark 0 disables marking)", "mark", ret);
		return 1;
	}
	if (o.node_agent && !o.config)
		log_msg(LOG_WARN, "node-agent mode without --config: no pod to serve");
	if (o.node && !o.node_agent)
		log_msg(LOG_WARN, "--node is ignored without --node-agent");
	struct snapshot_slot slot;
	struct watch watch;
	struct admin admin;
	struct nodeagent *na = NULL;
	slot_init(&slot);
	if (o.node_agent && (ret = nodeagent_new(&o, &slot, &na)) < 0) {
		log_msg_err(LOG_ERROR, "node-agent mode cannot switch network namespaces "
			    "(needs CAP_SYS_ADMIN)", "setns", ret);
		slot_deinit(&slot);
		return 1;
	}
	fdb_init();
	tls_global_init();
	ret = watch_init(&watch, o.config, o.certs, &slot);
	/* The endpoints' sockets before the workers': a port in use is a
	 * startup error, like the workers' own listeners. */
	if (ret == 0 && (ret = admin_open(&admin, &o, &slot)) == 0) {
		ret = run(&o, &slot, &watch, &admin, na);
		admin_close(&admin);
	} else {
		ret = 1;
	}
	nodeagent_free(na);
	watch_deinit(&watch);
	slot_deinit(&slot);
	tls_global_deinit();
	return ret;
}
