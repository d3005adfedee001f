/*
 * Config watcher: initial load, inotify, debounce, the loader thread that
 * reads, validates and builds snapshots, and publishing them.
 * See include/zring/watch.h.
 */
#include "zring/watch.h"
#include "zring/file.h"
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
#include <sys/eventfd.h>
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

static void log_loaded(const struct watch *w, const struct snapshot *s, uint64_t load_ms)
{
	struct log_line l;
	if (!log_begin(&l, LOG_INFO, "config loaded"))
		return;
	log_str(&l, "file", w->path ? w->path : "-");
	log_u64(&l, "version", s->version);
	log_u64(&l, "loaded_at_ms", s->loaded_at_ms);
	log_u64(&l, "load_ms", load_ms);
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

/* A file that was not applied: its errors (or why it could not be read),
 * then one line with the failure count and the version kept. */
static void log_rejected(struct watch *w, bool initial, int err, const char *why,
			 const struct config_errors *errs)
{
	bool listed = errs->n || errs->dropped;
	struct log_line l;
	log_errors(w, errs);
	if (!log_begin(&l, LOG_ERROR, initial ? "config rejected" : "config reload rejected"))
		return;
	log_str(&l, "file", w->path);
	if (!listed && why && *why)
		log_str(&l, "error", why);
	else if (!listed)
		log_err(&l, "error", err);
	log_u64(&l, "failures", atomic_load(&w->failures));
	if (!initial)
		log_u64(&l, "kept_version", atomic_load(&w->slot->version));
	log_end(&l);
}

/* ---- the loader (its thread; watch_init's before the thread starts) ---- */

static bool loader_quitting(struct watch *w)
{
	pthread_mutex_lock(&w->ld.lock);
	bool q = w->ld.quit;
	pthread_mutex_unlock(&w->ld.lock);
	return q;
}

/*
 * Read and validate the config file. Returns 1 with *out (a new config),
 * 0 when there is nothing to apply (the bytes seen last time, unless
 * `force`; or the loader is quitting), or -errno when the file is
 * rejected (logged and counted).
 */
static int load_config(struct watch *w, bool initial, bool force, struct config **out)
{
	struct watch_loader *ld = &w->ld;
	struct config_errors errs = { 0 };
	char *buf = NULL, why[FILE_WHY_MAX] = "";
	size_t len = 0;
	int err;

	*out = NULL;
	if (!w->path) {
		if (!initial)
			return 0;
		*out = config_empty();
		return *out ? 1 : -ENOMEM;
	}
	err = file_read(w->path, CONFIG_MAX_BYTES, &buf, &len, why, sizeof(why));
	if (err == 0) {
		uint64_t h = fnv64(buf, len);
		if ((!force && ld->seen_valid && h == ld->seen_hash) ||
		    (!initial && loader_quitting(w))) {
			free(buf);
			return 0;
		}
		err = config_parse(buf, len, w->path, out, &errs);
		free(buf);
		/* Bytes that failed for want of memory are not "seen": the
		 * same file is read again on its next event (a bad file is
		 * not, until it changes: its errors would be the same). */
		if (err != -ENOMEM) {
			ld->seen_hash = h;
			ld->seen_valid = true;
		}
	}
	if (err < 0) {
		atomic_fetch_add(&w->failures, 1);
		log_rejected(w, initial, err, why, &errs);
	}
	config_errors_free(&errs);
	return err < 0 ? err : 1;
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

/* Reload the certificates if a file changed or one expired. Returns 1
 * with *out, 0 when nothing changed, -errno when the directory was
 * refused (logged and counted; the previous store stays). */
static int load_certs(struct watch *w, struct certstore **out)
{
	struct watch_loader *ld = &w->ld;
	uint64_t sig = certstore_scan_sig(w->certs_dir);
	*out = NULL;
	if (sig == ld->certs_sig && !certs_expired(ld->certs))
		return 0;
	ld->certs_sig = sig;
	int err = certstore_load(w->certs_dir, ld->certs, out);
	if (err < 0) {
		atomic_fetch_add(&w->cert_failures, 1);
		log_msg(LOG_ERROR, "certificate reload failed: keeping the previous certificates");
		return err;
	}
	if ((*out)->rejected)
		atomic_fetch_add(&w->cert_failures, 1);
	return 1;
}

/*
 * The snapshot of the loader's config and certificates with cfg and/or cs
 * in their place (NULL: unchanged); on success they become the loader's.
 * The references to cfg and cs move in. Returns 0 and *out, or -ENOMEM
 * (logged and counted; nothing changes).
 */
static int build(struct watch *w, struct config *cfg, struct certstore *cs,
		 struct snapshot **out)
{
	struct watch_loader *ld = &w->ld;
	int err = snapshot_new(config_ref(cfg ? cfg : ld->cfg),
			       certstore_ref(cs ? cs : ld->certs), out);
	if (err < 0) {
		atomic_fetch_add(&w->failures, 1);
		log_msg_err(LOG_ERROR, "cannot build a snapshot: keeping the previous one",
			    w->path ? w->path : "-", err);
		config_unref(cfg);
		certstore_unref(cs);
		return err;
	}
	if (cfg) {
		config_unref(ld->cfg);
		ld->cfg = cfg;
	}
	if (cs) {
		certstore_unref(ld->certs);
		ld->certs = cs;
	}
	return 0;
}

/* Leave s for the control thread and wake it. A snapshot it has not
 * taken yet is superseded: s was built on top of it. */
static void hand_over(struct watch *w, struct snapshot *s, unsigned news, uint64_t load_ms)
{
	struct watch_loader *ld = &w->ld;
	uint64_t one = 1;
	pthread_mutex_lock(&ld->lock);
	struct snapshot *old = ld->done;
	ld->done = s;
	ld->done_news |= news;
	if (news & WATCH_WANT_CONFIG)
		ld->done_ms = load_ms;
	pthread_mutex_unlock(&ld->lock);
	snapshot_unref(old);
	if (write(ld->fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_msg_err(LOG_ERROR, "cannot wake the control thread", "eventfd", -errno);
}

/* The config bytes last read did not become a snapshot: the next event
 * reads them again. */
static void ld_forget_config(struct watch *w)
{
	w->ld.seen_valid = false;
}

/* One round: everything asked since the last one. */
static void serve(struct watch *w, unsigned want)
{
	struct config *cfg = NULL;
	struct certstore *cs = NULL;
	struct snapshot *s;
	unsigned news = 0;
	uint64_t t0 = now_ns();

	if ((want & WATCH_WANT_CONFIG) &&
	    load_config(w, false, want & WATCH_WANT_FORCE, &cfg) > 0)
		news |= WATCH_WANT_CONFIG;
	if ((want & WATCH_WANT_CERTS) && w->certs_dir && !loader_quitting(w) &&
	    load_certs(w, &cs) > 0)
		news |= WATCH_WANT_CERTS;
	if (!news || loader_quitting(w)) {
		config_unref(cfg);
		certstore_unref(cs);
		return;
	}
	if (build(w, cfg, cs, &s) == 0)
		hand_over(w, s, news, (now_ns() - t0) / 1000000);
	else if (news & WATCH_WANT_CONFIG)
		ld_forget_config(w);	/* out of memory: try those bytes again */
}

static void *loader_main(void *arg)
{
	struct watch *w = arg;
	struct watch_loader *ld = &w->ld;

	pthread_mutex_lock(&ld->lock);
	for (;;) {
		while (!ld->want && !ld->quit)
			pthread_cond_wait(&ld->cond, &ld->lock);
		if (ld->quit)
			break;
		unsigned want = ld->want;
		ld->want = 0;
		ld->busy = true;
		pthread_mutex_unlock(&ld->lock);
		serve(w, want);
		pthread_mutex_lock(&ld->lock);
		ld->busy = false;
	}
	pthread_mutex_unlock(&ld->lock);
	return NULL;
}

/* Ask the loader for `what`; merged with what it has not started yet. */
static void request(struct watch *w, unsigned what)
{
	struct watch_loader *ld = &w->ld;
	pthread_mutex_lock(&ld->lock);
	if (!ld->quit) {
		ld->want |= what;
		pthread_cond_signal(&ld->cond);
	}
	pthread_mutex_unlock(&ld->lock);
}

/* ---- publishing (control thread; watch_init at startup) ---- */

static void publish(struct watch *w, struct snapshot *s, unsigned news, uint64_t load_ms)
{
	slot_publish(w->slot, s);
	/* s stays the latest until our next publish: safe to read here. */
	if (news & WATCH_WANT_CONFIG) {
		atomic_fetch_add(&w->reloads, 1);
		log_loaded(w, s, load_ms);
	}
	if (news & WATCH_WANT_CERTS) {
		atomic_fetch_add(&w->cert_reloads, 1);
		log_certs(s->certs, "certificates reloaded");
	}
	if (w->on_publish)
		w->on_publish(w->arg);
}

static void arm_loaded(struct watch *w, struct io_uring *ring)
{
	struct io_uring_sqe *sqe = ring_sqe_op(ring, &w->op_loaded);
	io_uring_prep_poll_add(sqe, w->ld.fd, POLLIN);
	w->loaded_armed = true;
}

void watch_on_loaded(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe)
{
	struct watch_loader *ld = &w->ld;
	uint64_t v;
	w->loaded_armed = false;
	if (w->stopping)
		return;		/* watch_deinit frees what is left */
	if (read(ld->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_msg_err(LOG_ERROR, "cannot read the loader's eventfd", "eventfd", -errno);
	pthread_mutex_lock(&ld->lock);
	struct snapshot *s = ld->done;
	unsigned news = ld->done_news;
	uint64_t ms = ld->done_ms;
	ld->done = NULL;
	ld->done_news = 0;
	pthread_mutex_unlock(&ld->lock);
	if (s)
		publish(w, s, news, ms);
	arm_loaded(w, ring);
}

/* ---- startup ---- */

/* Copy path and split it into the watched directory and file name. */
static int set_path(struct watch *w, const char *path)
{
	char tmp[PATH_MAX];
	w->path = strdup(path);
	snprintf(tmp, sizeof(tmp), "%s", path);
	w->dir = strdup(dirname(tmp));
	snprintf(tmp, sizeof(tmp), "%s", path);
	w->base = strdup(basename(tmp));
	return w->path && w->dir && w->base ? 0 : -ENOMEM;
}

int watch_init(struct watch *w, const char *path, const char *certs_dir,
	       struct snapshot_slot *slot)
{
	struct watch_loader *ld = &w->ld;
	struct config *cfg;
	struct snapshot *s;
	uint64_t t0 = now_ns();
	int err;

	memset(w, 0, sizeof(*w));
	w->slot = slot;
	w->ino_fd = -1;
	w->wd = -1;
	op_init(&w->op_event, OP_WATCH_EVENT, 0);
	op_init(&w->op_debounce, OP_WATCH_DEBOUNCE, 0);
	op_init(&w->op_certs, OP_WATCH_CERTS, 0);
	op_init(&w->op_loaded, OP_WATCH_LOADED, 0);
	pthread_mutex_init(&ld->lock, NULL);
	pthread_cond_init(&ld->cond, NULL);
	ld->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ld->fd < 0)
		return -errno;
	if (certs_dir) {
		w->certs_dir = strdup(certs_dir);
		if (!w->certs_dir)
			return -ENOMEM;
		if ((err = certstore_load(certs_dir, NULL, &ld->certs)) < 0)
			return err;
		ld->certs_sig = ld->certs->sig;
		log_certs(ld->certs, "certificates loaded");
	}
	if (path && (err = set_path(w, path)) < 0)
		return err;
	if ((err = load_config(w, true, true, &cfg)) < 0 || (err = build(w, cfg, NULL, &s)) < 0)
		return err;
	publish(w, s, WATCH_WANT_CONFIG, (now_ns() - t0) / 1000000);
	if ((err = -pthread_create(&ld->thread, NULL, loader_main, w)) < 0)
		return err;
	ld->started = true;
	return 0;
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

void watch_on_certs(struct watch *w, struct io_uring *ring, const struct io_uring_cqe *cqe)
{
	w->certs_armed = false;
	if (w->stopping)
		return;
	request(w, WATCH_WANT_CERTS);
	arm_certs(w, ring);
}

int watch_start(struct watch *w, struct io_uring *ring)
{
	arm_loaded(w, ring);
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
	if (w->path)
		request(w, WATCH_WANT_CONFIG | WATCH_WANT_FORCE);
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
	request(w, WATCH_WANT_CONFIG);
}

bool watch_idle(const struct watch *w)
{
	return !w->event_armed && !w->timer_armed && !w->certs_armed && !w->loaded_armed;
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
		if (w->loaded_armed)
			ring_cancel_op(ring, &w->op_loaded);
		pthread_mutex_lock(&w->ld.lock);
		w->ld.quit = true;
		pthread_cond_signal(&w->ld.cond);
		pthread_mutex_unlock(&w->ld.lock);
	}
	return watch_idle(w);
}

void watch_deinit(struct watch *w)
{
	struct watch_loader *ld = &w->ld;
	if (ld->started) {
		pthread_mutex_lock(&ld->lock);
		ld->quit = true;
		pthread_cond_signal(&ld->cond);
		pthread_mutex_unlock(&ld->lock);
		pthread_join(ld->thread, NULL);
		ld->started = false;
	}
	snapshot_unref(ld->done);
	config_unref(ld->cfg);
	certstore_unref(ld->certs);
	ld->done = NULL;
	ld->cfg = NULL;
	ld->certs = NULL;
	if (ld->fd >= 0)
		close(ld->fd);
	ld->fd = -1;
	pthread_cond_destroy(&ld->cond);
	pthread_mutex_destroy(&ld->lock);
	if (w->ino_fd >= 0)
		close(w->ino_fd);
	free(w->certs_dir);
	free(w->path);
	free(w->dir);
	free(w->base);
	w->ino_fd = -1;
	w->certs_dir = w->path = w->dir = w->base = NULL;
}
