/*
 * The config watcher: loads the workload file, publishes good snapshots
 * into the latest slot, and reloads on change.
 *
 * It watches the file's *directory* with inotify, so every real update
 * style is seen: an in-place write (IN_CLOSE_WRITE / IN_MODIFY), write to a
 * temporary file then rename over it (IN_MOVED_TO), and Kubernetes
 * ConfigMap/Secret volumes, where the kubelet swaps a "..data" symlink
 * (events on names starting with ".."). Bursts are debounced; a reload whose
 * bytes equal the last ones seen does nothing. A bad file never replaces a
 * good snapshot: the errors are logged with file, line:column and JSON path,
 * the failure counter moves, and the last good snapshot stays. Only a
 * regular file is read (file.h): a FIFO or a device swapped in is refused
 * at once, like any other bad file.
 *
 * Certificates (--certs) are checked every second: when any file under the
 * directory changed (stat signature) or a loaded certificate expired, the
 * store is rebuilt (see certs.h for what is checked) and published with
 * the current config; open tunnels keep their sessions, new handshakes use
 * the new contexts.
 *
 * Threads. Inotify, the timers and publishing run on the control thread's
 * io_uring; reading, parsing, validating and building a snapshot (config
 * or certificates) run on the watcher's own loader thread, so that however
 * big the file, the control thread's endpoints and signals never wait on
 * it. The control thread asks (watch_reload, a settled inotify burst, the
 * certificate timer); the loader serves one request at a time, and
 * requests made while it works are merged into one more round after it.
 * It hands each finished snapshot back through an eventfd, and the control
 * thread publishes it (version, "config loaded" log line, counters, waking
 * the workers). Only the loader builds snapshots after startup, so config
 * and certificate changes never undo each other.
 */
#ifndef ZRING_WATCH_H
#define ZRING_WATCH_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "zring/op.h"
#include "zring/snapshot.h"

/* What the loader thread is asked to do (watch_loader.want). */
enum {
	WATCH_WANT_CONFIG = 1,	/* read the config file, apply it if it changed */
	WATCH_WANT_FORCE = 2,	/* ... even if its bytes did not change (SIGHUP) */
	WATCH_WANT_CERTS = 4,	/* reload certificates if any file changed or expired */
};

/* The loader thread's side of the watcher. */
struct watch_loader {
	pthread_t thread;
	bool started;
	int fd;			/* eventfd: a snapshot waits in `done` */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Under lock: */
	unsigned want;		/* WATCH_WANT_* asked and not started */
	bool quit;
	bool busy;		/* serving a request */
	struct snapshot *done;	/* built, not yet taken for publishing */
	unsigned done_news;	/* WATCH_WANT_CONFIG / _CERTS: what is new in it */
	uint64_t done_ms;	/* how long its config took to read and build */
	/* The thread's own (watch_init's before the thread starts): */
	struct config *cfg;	/* the config of the last snapshot built */
	struct certstore *certs;	/* its certificates (NULL without --certs) */
	uint64_t seen_hash;	/* bytes of the last file processed */
	bool seen_valid;
	uint64_t certs_sig;	/* stat signature of the loaded certificate files */
};

struct watch {
	struct snapshot_slot *slot;
	char *path;		/* NULL: no config file, an empty snapshot */
	char *dir;		/* watched directory */
	char *base;		/* file name within dir */
	int ino_fd;
	int wd;
	struct op op_event;
	struct op op_debounce;
	struct op op_certs;	/* certificate poll timer */
	struct op op_loaded;	/* the loader's eventfd */
	struct __kernel_timespec certs_ts;
	bool certs_armed;
	bool loaded_armed;
	char *certs_dir;	/* NULL: no certificates */
	_Atomic uint64_t cert_reloads;
	_Atomic uint64_t cert_failures;
	struct __kernel_timespec debounce_ts;
	bool event_armed;
	bool timer_armed;
	bool pending;		/* a change was seen, reload when quiet */
	bool stopping;
	uint64_t due_ns;	/* reload no earlier than this */
	bool writing;		/* our file was modified and not yet closed */
	uint64_t writing_since_ns;
	_Atomic uint64_t reloads;	/* published snapshots */
	_Atomic uint64_t failures;	/* rejected files */
	/* Called after each publish (on the control thread). */
	void (*on_publish)(void *arg);
	void *arg;
	struct watch_loader ld;
};

/*
 * Load `path` (or an empty config if NULL) and the certificates, publish
 * them as version 1 (on the calling thread: startup waits for its config),
 * and start the loader thread. A file that cannot be read or is invalid is
 * an error here: its problems are logged and -EINVAL (or -errno) is
 * returned, so zring refuses to start on a bad config rather than run
 * without one. Call with the signals that control.h handles blocked (the
 * loader inherits the mask). Whatever it returns, watch_deinit cleans up.
 */
int watch_init(struct watch *w, const char *path, const char *certs_dir,
	       struct snapshot_slot *slot);

/* Start watching on `ring` (control thread): the loader's results, the
 * certificate timer, inotify on the directory. 0 or -errno (inotify could
 * not be set up: SIGHUP still reloads). */
int watch_start(struct watch *w, struct io_uring *ring);

/* Reload now, even identical bytes (SIGHUP). Returns at once: the loader
 * thread does the work and the result is published when it is done. */
void watch_reload(struct watch *w);

void watch_on_event(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe);
void watch_on_debounce(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe);
void watch_on_certs(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe);
/* The loader finished a snapshot: publish it. */
void watch_on_loaded(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe);

/* Cancel in-flight ops and tell the loader to take no new request; true
 * once no op is left. */
bool watch_stop(struct watch *w, struct io_uring *ring);
bool watch_idle(const struct watch *w);

/* Stop the loader thread and free everything. A load in progress is
 * waited for: it stops at its next step (after reading, after parsing and
 * validating) and applies nothing, so this waits at most one load. */
void watch_deinit(struct watch *w);

#endif
