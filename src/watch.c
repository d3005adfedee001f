/*
 * Config watcher: initial load, inotify, debounce, validate, publish.
 * See include/zring/watch.h.
 */
#include "zring/watch.h"
#include "zring/log.h"
#include "zring/ring.h"
#include "zring/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEBOUNCE_MS 100
/* How long a reload waits for an in-place writer to close the file. */
#define WRITE_WAIT_NS (2 * 1000000000ull)
#define WATCH_MASK (IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_CREATE | \
		    IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

static uint64_t fnv64(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
	return h ^ n;
}

/* Read the whole file, refusing anything over CONFIG_MAX_BYTES before
 * reading it. Returns 0 with *buf (caller frees) or -errno / -EFBIG. */
static int read_file(const char *path, char **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int err = 0;
	if (fstat(fd, &st) < 0) {
		err = -errno;
	} else if (!S_ISREG(st.st_mode)) {
		err = -EISDIR;
	} else if ((uint64_t)st.st_size > CONFIG_MAX_BYTES) {
		err = -EFBIG;
	} else {
		size_t cap = (size_t)st.st_size + 1, n = 0;
		char *p = malloc(cap);
		while (p) {
			ssize_t r = read(fd, p + n, cap - n);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				err = r < 0 ? -errno : 0;
				break;
			}
			n += (size_t)r;
			if (n == cap) {
				/* It grew while we read: allow up to the cap. */
				if (cap > CONFIG_MAX_BYTES) {
					err = -EFBIG;
					break;
				}
				char *q = realloc(p, cap * 2);
				if (!q)
					break;
				p = q;
				cap *= 2;
			}
		}
		if (!p)
			err = -ENOMEM;
		if (err < 0)
			free(p);
		else {
			*buf = p;
			*len = n;
		}
	}
	close(fd);
	return err;
}

static void log_errors(const struct watch *w, const struct config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++) {
		const struct config_error *e = &errs->v[i];
		struct log_line l;
		if (!log_begin(&l, LOG_ERROR, "config error"))
			return;
		log_str(&l, "file", w->path);
		log_u64(&l, "line", e->line);
		log_u64(&l, "col", e->col);
		log_str(&l, "path", e->path && *e->path ? e->path : "$");
		log_str(&l, "error", e->msg);
		log_end(&l);
	}
	if (errs->dropped) {
		struct log_line l;
		if (log_begin(&l, LOG_ERROR, "config error")) {
			log_str(&l, "file", w->path);
			log_u64(&l, "more_errors", errs->dropped);
			log_end(&l);
		}
	}
}

static void log_loaded(const struct watch *w, const struct snapshot *s)
{
	struct log_line l;
	if (!log_begin(&l, LOG_INFO, "config loaded"))
		return;
	log_str(&l, "file", w->path ? w->path : "-");
	log_u64(&l, "version", s->version);
	log_u64(&l, "loaded_at_ms", s->loaded_at_ms);
	log_u64(&l, "workloads", s->cfg->nworkloads);
	log_u64(&l, "services", s->cfg->nservices);
	log_u64(&l, "policies", s->cfg->npolicies);
	log_u64(&l, "warnings", s->cfg->warnings_total);
	log_end(&l);
	for (size_t i = 0; i < s->cfg->nwarnings; i++) {
		const struct config_error *e = &s->cfg->warnings[i];
		if (!log_begin(&l, LOG_DEBUG, "config warning"))
			break;
		log_str(&l, "file", w->path ? w->path : "-");
		log_u64(&l, "line", e->line);
		log_u64(&l, "col", e->col);
		log_str(&l, "path", *e->path ? e->path : "$");
		log_str(&l, "warning", e->msg);
		log_end(&l);
	}
}

/* Load, validate and publish. `initial` makes failure fatal to the caller
 * instead of keeping the previous snapshot. */
static int load(struct watch *w, bool initial)
{
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	char *buf = NULL;
	size_t len = 0;
	int err;

	if (!w->path) {
		cfg = config_empty();
		err = cfg ? 0 : -ENOMEM;
	} else if ((err = read_file(w->path, &buf, &len)) == 0) {
		uint64_t h = fnv64(buf, len);
		if (!initial && w->seen_valid && h == w->seen_hash) {
			free(buf);
			return 0;	/* same bytes as last time: nothing to do */
		}
		w->seen_hash = h;
		w->seen_valid = true;
		err = config_parse(buf, len, w->path, &cfg, &errs);
		free(buf);
	}
	if (err < 0) {
		bool listed = errs.n || errs.dropped;
		atomic_fetch_add(&w->failures, 1);
		log_errors(w, &errs);
		config_errors_free(&errs);
		struct log_line l;
		if (log_begin(&l, LOG_ERROR, initial ? "config rejected" : "config reload rejected")) {
			log_str(&l, "file", w->path);
			if (!listed)
				log_err(&l, "error", err);
			log_u64(&l, "failures", atomic_load(&w->failures));
			if (!initial)
				log_u64(&l, "kept_version", atomic_load(&w->slot->version));
			log_end(&l);
		}
		return err;
	}
	config_errors_free(&errs);
	struct snapshot *cur = slot_acquire(w->slot);
	struct certstore *certs = cur ? certstore_ref(cur->certs) : w->initial_certs;
	w->initial_certs = NULL;
	snapshot_unref(cur);
	struct snapshot *s;
	if ((err = snapshot_new(cfg, certs, &s)) < 0)
		return err;
	slot_publish(w->slot, s);
	atomic_fetch_add(&w->reloads, 1);
	log_loaded(w, s);
	if (w->on_publish)
		w->on_publish(w->arg);
	return 0;
}

static void log_certs(const struct certstore *cs, const char *msg)
{
	struct log_line l;
	if (!log_begin(&l, LOG_INFO, msg))
		return;
	log_str(&l, "dir", cs->dir);
	log_u64(&l, "identities", cs->n);
	log_u64(&l, "refused", cs->rejected);
	log_end(&l);
	for (size_t i = 0; i < cs->n; i++) {
		if (!log_begin(&l, LOG_INFO, "identity"))
			return;
		log_str(&l, "identity", cs->ids[i].id);
		log_u64(&l, "not_after_ms", cs->ids[i].not_after_ms);
		log_end(&l);
	}
}

int watch_init(struct watch *w, const char *path, const char *certs_dir,
	       struct snapshot_slot *slot)
{
	memset(w, 0, sizeof(*w));
	w->slot = slot;
	w->ino_fd = -1;
	w->wd = -1;
	op_init(&w->op_event, OP_WATCH_EVENT, 0);
	op_init(&w->op_debounce, OP_WATCH_DEBOUNCE, 0);
	op_init(&w->op_certs, OP_WATCH_CERTS, 0);
	if (certs_dir) {
		int err;
		w->certs_dir = strdup(certs_dir);
		if (!w->certs_dir)
			return -ENOMEM;
		if ((err = certstore_load(certs_dir, NULL, &w->initial_certs)) < 0)
			return err;
		w->certs_sig = w->initial_certs->sig;
		log_certs(w->initial_certs, "certificates loaded");
	}
	if (path) {
		char tmp[PATH_MAX];
		w->path = strdup(path);
		snprintf(tmp, sizeof(tmp), "%s", path);
		w->dir = strdup(dirname(tmp));
		snprintf(tmp, sizeof(tmp), "%s", path);
		w->base = strdup(basename(tmp));
		if (!w->path || !w->dir || !w->base)
			return -ENOMEM;
	}
	return load(w, true);
}

static void arm_event(struct watch *w, struct io_uring *ring)
{
	struct io_uring_sqe *sqe = ring_sqe_op(ring, &w->op_event);
	io_uring_prep_poll_add(sqe, w->ino_fd, POLLIN);
	w->event_armed = true;
}

static void arm_timer(struct watch *w, struct io_uring *ring, uint64_t ns)
{
	w->debounce_ts.tv_sec = (long long)(ns / 1000000000ull);
	w->debounce_ts.tv_nsec = (long long)(ns % 1000000000ull);
	struct io_uring_sqe *sqe = ring_sqe_op(ring, &w->op_debounce);
	io_uring_prep_timeout(sqe, &w->debounce_ts, 0, 0);
	w->timer_armed = true;
}

static void arm_certs(struct watch *w, struct io_uring *ring)
{
	w->certs_ts.tv_sec = 1;
	w->certs_ts.tv_nsec = 0;
	struct io_uring_sqe *sqe = ring_sqe_op(ring, &w->op_certs);
	io_uring_prep_timeout(sqe, &w->certs_ts, 0, 0);
	w->certs_armed = true;
}

/* Has any loaded identity expired since it was loaded? */
static bool certs_expired(const struct certstore *cs)
{
	uint64_t now = wall_ms();
	for (size_t i = 0; cs && i < cs->n; i++)
		if (cs->ids[i].not_after_ms && cs->ids[i].not_after_ms <= now)
			return true;
	return false;
}

static void reload_certs(struct watch *w)
{
	struct snapshot *cur = slot_acquire(w->slot);
	struct certstore *cs;
	uint64_t sig = certstore_scan_sig(w->certs_dir);
	if (sig == w->certs_sig && !certs_expired(cur ? cur->certs : NULL)) {
		snapshot_unref(cur);
		return;
	}
	w->certs_sig = sig;
	if (certstore_load(w->certs_dir, cur ? cur->certs : NULL, &cs) < 0) {
		atomic_fetch_add(&w->cert_failures, 1);
		log_msg(LOG_ERROR, "certificate reload failed: keeping the previous certificates");
		snapshot_unref(cur);
		return;
	}
	if (cs->rejected)
		atomic_fetch_add(&w->cert_failures, 1);
	struct snapshot *s;
	if (cur && snapshot_new(config_ref(cur->cfg), cs, &s) == 0) {
		slot_publish(w->slot, s);
		atomic_fetch_add(&w->cert_reloads, 1);
		log_certs(cs, "certificates reloaded");
		if (w->on_publish)
			w->on_publish(w->arg);
	}
	snapshot_unref(cur);
}

void watch_on_certs(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe)
{
	w->certs_armed = false;
	if (w->stopping)
		return;
	reload_certs(w);
	arm_certs(w, ring);
}

int watch_start(struct watch *w, struct io_uring *ring)
{
	if (w->certs_dir)
		arm_certs(w, ring);
	if (!w->path)
		return 0;
	w->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ino_fd < 0)
		return -errno;
	w->wd = inotify_add_watch(w->ino_fd, w->dir, WATCH_MASK);
	if (w->wd < 0)
		return -errno;
	arm_event(w, ring);
	return 0;
}

void watch_reload(struct watch *w)
{
	if (!w->path)
		return;
	/* An explicit request reloads even identical bytes. */
	w->seen_valid = false;
	load(w, false);
}

/* Does this event concern our file? Our name, a Kubernetes "..data" swap,
 * or the directory itself. */
static bool relevant(const struct watch *w, const struct inotify_event *ev)
{
	if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW))
		return true;
	if (!ev->len)
		return false;
	return strcmp(ev->name, w->base) == 0 || strncmp(ev->name, "..", 2) == 0;
}

/* An in-place write shows as IN_MODIFY ... IN_CLOSE_WRITE on our name;
 * reading in between could see half a file. */
static void track_writer(struct watch *w, const struct inotify_event *ev)
{
	if (!ev->len || strcmp(ev->name, w->base) != 0)
		return;
	if ((ev->mask & IN_MODIFY) && !w->writing) {
		w->writing = true;
		w->writing_since_ns = now_ns();
	}
	if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE))
		w->writing = false;
}

static void drain_events(struct watch *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(w->ino_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			if (relevant(w, ev))
				w->pending = true;
			track_writer(w, ev);
			/* The directory was moved or deleted: the watch follows the
			 * old inode, so drop it and watch the path again. */
			if ((ev->mask & (IN_MOVE_SELF | IN_DELETE_SELF)) && w->wd >= 0) {
				inotify_rm_watch(w->ino_fd, w->wd);
				w->wd = -1;
			}
			if (ev->mask & IN_IGNORED)
				w->wd = -1;
			p += sizeof(*ev) + ev->len;
		}
	}
}

void watch_on_event(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe)
{
	w->event_armed = false;
	if (w->stopping)
		return;
	drain_events(w);
	if (w->pending) {
		w->due_ns = now_ns() + DEBOUNCE_MS * 1000000ull;
		if (!w->timer_armed)
			arm_timer(w, ring, DEBOUNCE_MS * 1000000ull);
	}
	arm_event(w, ring);
}

void watch_on_debounce(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe)
{
	w->timer_armed = false;
	if (w->stopping)
		return;
	uint64_t now = now_ns();
	if (now < w->due_ns) {
		arm_timer(w, ring, w->due_ns - now);	/* more events came: wait on */
		return;
	}
	if (w->writing && now - w->writing_since_ns < WRITE_WAIT_NS) {
		arm_timer(w, ring, DEBOUNCE_MS * 1000000ull);	/* let the writer finish */
		return;
	}
	w->writing = false;
	if (w->wd < 0) {
		/* The directory was replaced: watch the new one, retry soon. */
		w->wd = inotify_add_watch(w->ino_fd, w->dir, WATCH_MASK);
		if (w->wd < 0) {
			arm_timer(w, ring, 1000 * 1000000ull);
			return;
		}
	}
	w->pending = false;
	load(w, false);
}

bool watch_idle(const struct watch *w)
{
	return !w->event_armed && !w->timer_armed && !w->certs_armed;
}

bool watch_stop(struct watch *w, struct io_uring *ring)
{
	if (!w->stopping) {
		w->stopping = true;
		if (w->event_armed)
			ring_cancel_op(ring, &w->op_event);
		if (w->timer_armed)
			ring_cancel_op(ring, &w->op_debounce);
		if (w->certs_armed)
			ring_cancel_op(ring, &w->op_certs);
	}
	return watch_idle(w);
}

void watch_deinit(struct watch *w)
{
	if (w->ino_fd >= 0)
		close(w->ino_fd);
	certstore_unref(w->initial_certs);
	free(w->certs_dir);
	free(w->path);
	free(w->dir);
	free(w->base);
	w->ino_fd = -1;
	w->path = w->dir = w->base = NULL;
}
