/*
 * Control thread: signals and the broadcast drain. See include/zring/control.h.
 */
#include "zring/control.h"
#include "zring/log.h"
#include "zring/op.h"
#include "zring/ring.h"
#include "zring/util.h"
#include "zring/worker.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct control {
	struct io_uring ring;
	int sig_fd;
	int done_fd;
	struct signalfd_siginfo si;
	uint64_t done_val;
	struct op op_sig;
	struct op op_done;
	unsigned inflight;
	unsigned ended;
	bool draining;
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
static void arm_poll(struct control *ctl, struct op *op, int fd)
{
	struct io_uring_sqe *sqe = ring_sqe_op(&ctl->ring, op);
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	ctl->inflight++;
}

static void on_signal(struct control *ctl, struct worker **workers, unsigned n)
{
	int sig = (int)ctl->si.ssi_signo;
	if (sig == SIGHUP) {
		log_msg(LOG_INFO, "SIGHUP: nothing to reload yet");
		return;
	}
	if (ctl->draining) {
		struct log_line l;
		if (log_begin(&l, LOG_WARN, "second signal, exiting now")) {
			log_str(&l, "signal", strsignal(sig));
			log_end(&l);
		}
		_exit(1);
	}
	ctl->draining = true;
	struct log_line l;
	if (log_begin(&l, LOG_INFO, "draining")) {
		log_str(&l, "signal", strsignal(sig));
		log_u64(&l, "deadline_ms", workers[0]->opts->drain_timeout_ms);
		log_end(&l);
	}
	for (unsigned i = 0; i < n; i++)
		worker_drain(workers[i]);
}

int control_run(struct worker **workers, unsigned n, int done_fd)
{
	struct control ctl = { .done_fd = done_fd, .sig_fd = -1 };
	const char *mode;
	sigset_t set;

	sigset_handled(&set);
	ctl.sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (ctl.sig_fd < 0)
		return -errno;
	int err = ring_init(&ctl.ring, 16, &mode);
	if (err < 0) {
		close(ctl.sig_fd);
		return err;
	}
	op_init(&ctl.op_sig, OP_WAKE, 0);
	op_init(&ctl.op_done, OP_WAKE, 1);
	arm_poll(&ctl, &ctl.op_sig, ctl.sig_fd);
	arm_poll(&ctl, &ctl.op_done, done_fd);

	bool stopping = false;
	while (ctl.inflight) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_submit_and_wait(&ctl.ring, 1);
		if (ret >= 0)
			ret = io_uring_peek_cqe(&ctl.ring, &cqe);
		if (ret == -EAGAIN)
			continue;
		if (ret == -EINTR)
			continue;
		if (ret < 0)
			break;
		struct op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&ctl.ring, cqe);
		if (!op)
			continue;
		ctl.inflight--;
		if (op == &ctl.op_sig && res > 0) {
			while (read(ctl.sig_fd, &ctl.si, sizeof(ctl.si)) == sizeof(ctl.si))
				on_signal(&ctl, workers, n);
		} else if (op == &ctl.op_done && res > 0) {
			if (read(done_fd, &ctl.done_val, sizeof(ctl.done_val)) == sizeof(ctl.done_val))
				ctl.ended += (unsigned)ctl.done_val;
		}
		if (ctl.ended >= n && !stopping) {
			/* Every worker ended: stop listening for signals. */
			stopping = true;
			ring_cancel_op(&ctl.ring, &ctl.op_sig);
			continue;
		}
		if (stopping)
			continue;
		arm_poll(&ctl, op, op == &ctl.op_sig ? ctl.sig_fd : done_fd);
	}
	io_uring_queue_exit(&ctl.ring);
	close(ctl.sig_fd);
	return 0;
}
