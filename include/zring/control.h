/*
 * The control thread: signals through signalfd on its own io_uring, the
 * config watcher (its ring side: inotify, timers, publishing; files are
 * read and parsed on the watcher's loader thread, so nothing here waits on
 * one), the admin / readiness / metrics endpoints (admin.h), and the
 * broadcast shutdown. SIGTERM, SIGINT or POST /quitquitquit asks every
 * worker to drain (readiness answers 503 from then on); a second signal
 * exits at once; SIGHUP reloads the config.
 */
#ifndef ZRING_CONTROL_H
#define ZRING_CONTROL_H

#include <signal.h>

struct admin;
struct worker;
struct watch;
struct nodeagent;

/* Block the signals control handles; call before starting any thread so
 * every thread inherits the mask. Also ignores SIGPIPE. */
void control_block_signals(void);

/*
 * Run until every worker has ended (after a drain). `done_fd` is the
 * eventfd workers bump when they end; `watch` (already loaded) is started
 * here and reloads on file changes and SIGHUP; `admin` (sockets open) is
 * served here until every worker has ended, then stopped: the caller
 * closes it. `na` (node-agent mode, else NULL) serves the pods of every
 * snapshot published. Returns 0, or -errno if the control ring could not
 * be set up (the caller then drains the workers).
 */
int control_run(struct worker **workers, unsigned n, int done_fd, struct watch *watch,
		struct admin *admin, struct nodeagent *na);

#endif
