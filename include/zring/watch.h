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
 * the failure counter moves, and the last good snapshot stays.
 *
 * Certificates (--certs) are checked every second: when any file under the
 * directory changed (stat signature) or a loaded certificate expired, the
 * store is rebuilt (see certs.h for what is checked) and published with
 * the current config; open tunnels keep their sessions, new handshakes use
 * the new contexts.
 *
 * Runs on the control thread's io_uring.
 */
#ifndef ZRING_WATCH_H
#define ZRING_WATCH_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "zring/op.h"
#include "zring/snapshot.h"

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
	struct __kernel_timespec certs_ts;
	bool certs_armed;
	char *certs_dir;	/* NULL: no certificates */
	struct certstore *initial_certs;	/* until the first publish */
	uint64_t certs_sig;	/* stat signature of the loaded files */
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
	uint64_t seen_hash;	/* bytes of the last file processed */
	bool seen_valid;
	_Atomic uint64_t reloads;	/* published snapshots */
	_Atomic uint64_t failures;	/* rejected files */
	/* Called after each publish (on the control thread). */
	void (*on_publish)(void *arg);
	void *arg;
};

/*
 * Load `path` (or an empty config if NULL) and publish it as version 1.
 * A file that cannot be read or is invalid is an error here: its problems
 * are logged and -EINVAL (or -errno) is returned, so zring refuses to start
 * on a bad config rather than run without one.
 */
int watch_init(struct watch *w, const char *path, const char *certs_dir,
	       struct snapshot_slot *slot);

/* Start watching (inotify on the directory) on `ring`. 0 or -errno. */
int watch_start(struct watch *w, struct io_uring *ring);

/* Reload now (SIGHUP). */
void watch_reload(struct watch *w);

void watch_on_event(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe);
void watch_on_debounce(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe);
void watch_on_certs(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe);

/* Cancel in-flight ops; true once none is left. */
bool watch_stop(struct watch *w, struct io_uring *ring);
bool watch_idle(const struct watch *w);

void watch_deinit(struct watch *w);

#endif
