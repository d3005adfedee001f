/*
 * Control thread: signals, the config watcher, the admin / readiness /
 * metrics endpoints and the broadcast drain. See include/zring/control.h.
 */
#include "zring/control.h"
#include "zring/admin.h"
#include "zring/http.h"
#include "zring/log.h"
#include "zring/nodeagent.h"
#include "zring/op.h"
#include "zring/ring.h"
#include "zring/util.h"
#include "zring/watch.h"
#include "zring/worker.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* SQ size; HTTP clients keep up to two requests each in flight, which the
 * kernel holds beyond the SQ, so this only bounds one batch. */
#define CONTROL_RING_ENTRIES 256

struct control {
	struct io_uring ring;
	struct worker **workers;
	unsigned nworkers;
	struct watch *watch;
	struct admin *admin;
	struct nodeagent *na;	/* node-agent mode, else NULL */
	int sig_fd;
	int done_fd;
	struct op op_sig;
	struct op op_done;
	bool sig_armed;
	bool done_armed;
	unsigned ended;
	bool draining;
	bool signaled;		/* a SIGTERM/SIGINT was seen: the next one exits */
	bool stopping;
};

static void sigset_handled(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

void control_block_signals(void)
{
	sigset_t set;
	sigset_handled(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Poll through the ring, then read(2) on this thread: signalfd dequeues
 * from the reading task, which must be ours, not an io-wq helper. */
static void arm_poll(struct control *ctl, struct op *op, int fd, bool *armed)
{
	struct io_uring_sqe *sqe = ring_sqe_op(&ctl->ring, op);
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	*armed = true;
}

/* The one way a drain starts, whoever asks (a signal, POST /quitquitquit):
 * readiness turns 503 at once, then every worker is told. Idempotent. */
static void start_drain(struct control *ctl, const char *key, const char *why)
{
	if (ctl->draining)
		return;
	ctl->draining = true;
	admin_set_draining(ctl->admin);
	struct log_line l;
	if (log_begin(&l, LOG_INFO, "draining")) {
		log_str(&l, key, why);
		log_u64(&l, "deadline_ms", ctl->workers[0]->opts->drain_timeout_ms);
		log_end(&l);
	}
	for (unsigned i = 0; i < ctl->nworkers; i++)
		worker_drain(ctl->workers[i]);
}

/* POST /quitquitquit: a second one is harmless, and a SIGTERM after it
 * (Kubernetes sends one after a preStop hook) still counts as the first
 * signal, so it does not cut the drain short. */
static void on_quit(void *arg, const char *why)
{
	start_drain(arg, "request", why);
}

/* SIGTERM/SIGINT: drain; a second signal exits at once. */
static void on_stop_signal(struct control *ctl, int sig)
{
	if (ctl->signaled) {
		struct log_line l;
		if (log_begin(&l, LOG_WARN, "second signal, exiting now")) {
			log_str(&l, "signal", strsignal(sig));
			log_end(&l);
		}
		_exit(1);
	}
	ctl->signaled = true;
	if (ctl->draining) {
		struct log_line l;
		if (log_begin(&l, LOG_INFO, "already draining; a second signal exits at once")) {
			log_str(&l, "signal", strsignal(sig));
			log_end(&l);
		}
	}
	start_drain(ctl, "signal", strsignal(sig));
}

static void on_signal(struct control *ctl)
{
	struct signalfd_siginfo si;
	ctl->sig_armed = false;
	while (read(ctl->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			watch_reload(ctl->watch);
		else
			on_stop_signal(ctl, (int)si.ssi_signo);
	}
	if (!ctl->stopping)
		arm_poll(ctl, &ctl->op_sig, ctl->sig_fd, &ctl->sig_armed);
}

static void on_done(struct control *ctl)
{
	uint64_t v;
	ctl->done_armed = false;
	if (read(ctl->done_fd, &v, sizeof(v)) == sizeof(v))
		ctl->ended += (unsigned)v;
	if (ctl->ended < ctl->nworkers) {
		arm_poll(ctl, &ctl->op_done, ctl->done_fd, &ctl->done_armed);
		return;
	}
	/* Every worker ended: stop listening for signals, file changes and
	 * HTTP clients (a response being sent is finished first). */
	ctl->stopping = true;
	if (ctl->sig_armed)
		ring_cancel_op(&ctl->ring, &ctl->op_sig);
	watch_stop(ctl->watch, &ctl->ring);
	admin_stop(ctl->admin);
}

static void dispatch(struct control *ctl, const struct io_uring_cqe *cqe)
{
	struct op *op = io_uring_cqe_get_data(cqe);
	if (!op)
		return;
	switch (op->type) {
	case OP_CTL_SIGNAL:
		on_signal(ctl);
		break;
	case OP_CTL_DONE:
		on_done(ctl);
		break;
	case OP_WATCH_EVENT:
		watch_on_event(ctl->watch, &ctl->ring, cqe);
		break;
	case OP_WATCH_DEBOUNCE:
		watch_on_debounce(ctl->watch, &ctl->ring, cqe);
		break;
	case OP_WATCH_CERTS:
		watch_on_certs(ctl->watch, &ctl->ring, cqe);
		break;
	case OP_WATCH_LOADED:
		watch_on_loaded(ctl->watch, &ctl->ring, cqe);
		break;
	case OP_HTTP_ACCEPT:
	case OP_HTTP_ACCEPT_RETRY:
	case OP_HTTP_RECV:
	case OP_HTTP_RECV_TIMEOUT:
	case OP_HTTP_SEND:
	case OP_HTTP_SEND_TIMEOUT:
		http_on_cqe(op, cqe);
		break;
	default:
		break;
	}
}

static bool busy(const struct control *ctl)
{
	return ctl->sig_armed || ctl->done_armed || !watch_idle(ctl->watch) ||
	       !admin_idle(ctl->admin);
}

/* Wake workers so they pick up a new snapshot without waiting for I/O;
 * a node agent first serves the snapshot's pods. */
static void notify_workers(void *arg)
{
	struct control *ctl = arg;
	if (ctl->na)
		nodeagent_sync(ctl->na);
	for (unsigned i = 0; i < ctl->nworkers; i++)
		worker_notify(ctl->workers[i]);
}

int control_run(struct worker **workers, unsigned n, int done_fd, struct watch *watch,
		struct admin *admin, struct nodeagent *na)
{
	struct control ctl = {
		.workers = workers, .nworkers = n, .watch = watch, .admin = admin, .na = na,
		.done_fd = done_fd, .sig_fd = -1,
	};
	const char *mode;
	sigset_t set;

	sigset_handled(&set);
	ctl.sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (ctl.sig_fd < 0)
		return -errno;
	int err = ring_init(&ctl.ring, CONTROL_RING_ENTRIES, &mode);
	if (err < 0) {
		close(ctl.sig_fd);
		return err;
	}
	op_init(&ctl.op_sig, OP_CTL_SIGNAL, 0);
	op_init(&ctl.op_done, OP_CTL_DONE, 0);
	arm_poll(&ctl, &ctl.op_sig, ctl.sig_fd, &ctl.sig_armed);
	arm_poll(&ctl, &ctl.op_done, done_fd, &ctl.done_armed);
	watch->on_publish = notify_workers;
	watch->arg = &ctl;
	err = watch_start(watch, &ctl.ring);
	if (err < 0)
		log_msg_err(LOG_WARN, "config file not watched; SIGHUP still reloads",
			    "inotify", err);
	admin->quit = on_quit;
	admin->quit_arg = &ctl;
	/* Every worker_start has returned: their listeners accept. */
	admin_set_workers_up(admin, workers, n, watch);
	admin_start(admin, &ctl.ring);

	while (busy(&ctl)) {
		int ret = io_uring_submit_and_wait(&ctl.ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			break;
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ctl.ring, head, cqe) {
			dispatch(&ctl, cqe);
			seen++;
		}
		io_uring_cq_advance(&ctl.ring, seen);
	}
	watch->on_publish = NULL;
	admin->quit = NULL;
	io_uring_queue_exit(&ctl.ring);
	close(ctl.sig_fd);
	return 0;
}
