/*
 * The config watcher's loader thread (src/watch.c): a reload request
 * returns at once and the snapshot is published later, by the thread that
 * runs the ring; requests made during a load are merged into one more
 * load; stopping during a load joins the loader cleanly (ASan: no leak).
 *
 * The test plays the control thread: it runs a ring and hands the
 * watcher's completions to it, as src/control.c does.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zring/log.h"
#include "zring/ring.h"
#include "zring/snapshot.h"
#include "zring/util.h"
#include "zring/watch.h"

/* Enough workloads that a load takes a good fraction of a second. */
#define BIG 100000

static char dir[] = "/tmp/zr-watch-XXXXXX";
static char path[64];
static struct snapshot_slot slot;
static struct watch w;
static struct io_uring ring;

/* A config of n workloads, each with its own address, written to path. */
static void write_config(size_t n)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("{\"workloads\":[", f);
	for (size_t i = 0; i < n; i++) {
		unsigned a = 0x0a800000u + (unsigned)i;
		fprintf(f, "%s{\"uid\":\"u%zu\",\"namespace\":\"ns\",\"workloadIps\":[\"%u.%u.%u.%u\"]}",
			i ? "," : "", i, a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255);
	}
	fputs("]}", f);
	cr_assert_eq(fclose(f), 0);
}

static void setup(void)
{
	const char *mode;
	log_setup(LOG_ERROR, LOG_TEXT);
	strcpy(dir, "/tmp/zr-watch-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/workloads.json", dir);
	write_config(BIG);
	slot_init(&slot);
	cr_assert_eq(watch_init(&w, path, NULL, &slot), 0);
	cr_assert_eq(atomic_load(&slot.version), 1);
	cr_assert_eq(ring_init(&ring, 64, &mode), 0);
	cr_assert_eq(watch_start(&w, &ring), 0);
}

/* Hand the watcher's completions to it, as the control thread does. */
static void dispatch(const struct io_uring_cqe *cqe)
{
	struct op *op = io_uring_cqe_get_data(cqe);
	if (!op)
		return;
	switch (op->type) {
	case OP_WATCH_EVENT:
		watch_on_event(&w, &ring, cqe);
		break;
	case OP_WATCH_DEBOUNCE:
		watch_on_debounce(&w, &ring, cqe);
		break;
	case OP_WATCH_CERTS:
		watch_on_certs(&w, &ring, cqe);
		break;
	case OP_WATCH_LOADED:
		watch_on_loaded(&w, &ring, cqe);
		break;
	default:
		break;
	}
}

/* Run the ring for up to ms milliseconds. */
static void run_for(unsigned ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	while (now_ns() < end) {
		struct __kernel_timespec ts = { .tv_nsec = 10 * 1000000 };
		struct io_uring_cqe *cqe;
		io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			dispatch(cqe);
			seen++;
		}
		io_uring_cq_advance(&ring, seen);
	}
}

static bool loader_idle(void)
{
	pthread_mutex_lock(&w.ld.lock);
	bool idle = !w.ld.busy && !w.ld.want && !w.ld.done;
	pthread_mutex_unlock(&w.ld.lock);
	return idle;
}

static bool loader_busy(void)
{
	pthread_mutex_lock(&w.ld.lock);
	bool busy = w.ld.busy;
	pthread_mutex_unlock(&w.ld.lock);
	return busy;
}

/* Run the ring until the loader has nothing left to do or hand over. */
static void settle(void)
{
	for (int i = 0; i < 3000 && !loader_idle(); i++)
		run_for(10);
	cr_assert(loader_idle(), "the loader did not finish within 30 s");
	run_for(50);	/* its last eventfd bump */
}

/* Stop as control_run does, then free everything. */
static void stop(void)
{
	for (int i = 0; i < 100 && !watch_stop(&w, &ring); i++)
		run_for(10);
	cr_assert(watch_idle(&w));
	io_uring_queue_exit(&ring);
	watch_deinit(&w);
	slot_deinit(&slot);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(watch, .init = setup, .timeout = 120);

Test(watch, reload_returns_before_the_load_and_publishes_on_the_ring)
{
	watch_reload(&w);
	/* Loading BIG workloads takes far longer than returning: had the
	 * caller loaded the file itself, version 2 would be out already. */
	cr_assert_eq(atomic_load(&slot.version), 1, "watch_reload loaded on the caller's thread");
	settle();
	cr_assert_eq(atomic_load(&slot.version), 2, "the reload was not published");
	cr_assert_eq(atomic_load(&w.reloads), 2);
	struct snapshot *s = slot_acquire(&slot);
	cr_assert_eq(s->cfg->nworkloads, BIG);
	snapshot_unref(s);
	stop();
}

Test(watch, requests_during_a_load_are_merged)
{
	watch_reload(&w);
	for (int i = 0; i < 200 && !loader_busy(); i++)
		usleep(1000);
	cr_assert(loader_busy(), "the loader did not start");
	for (int i = 0; i < 10; i++)
		watch_reload(&w);
	settle();
	/* One load for the first request, one more for the ten made during
	 * it (one publish if the second finished before the first was taken). */
	uint64_t v = atomic_load(&slot.version);
	cr_assert(v == 2 || v == 3, "11 requests gave %lu versions, want 1 or 2 more",
		  (unsigned long)v - 1);
	stop();
}

Test(watch, stop_during_a_load)
{
	watch_reload(&w);
	for (int i = 0; i < 200 && !loader_busy(); i++)
		usleep(1000);
	cr_assert(loader_busy(), "the loader did not start");
	stop();		/* joins the loader; ASan checks nothing leaks */
}

Test(watch, a_fifo_is_rejected_and_the_old_snapshot_stays)
{
	char fifo[80];
	snprintf(fifo, sizeof(fifo), "%s/.f", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(rename(fifo, path), 0);
	watch_reload(&w);
	settle();
	/* (inotify saw the rename too: its reload may be refused as well.) */
	cr_assert_geq(atomic_load(&w.failures), 1);
	cr_assert_eq(atomic_load(&slot.version), 1);
	/* A regular file again: applied. */
	unlink(path);
	write_config(3);
	watch_reload(&w);
	settle();
	cr_assert_geq(atomic_load(&slot.version), 2);
	struct snapshot *s = slot_acquire(&slot);
	cr_assert_eq(s->cfg->nworkloads, 3);
	snapshot_unref(s);
	stop();
}
