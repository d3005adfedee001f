/*
 * What node-agent mode pays per socket: socket()+close() in zring's own
 * network namespace against pod_socket() (setns into a pod's namespace,
 * socket(), setns back) +close(), and a bare setns round trip, in CPU time
 * of the calling thread. Needs CAP_SYS_ADMIN (run as root). Prints a
 * table; not a test.
 *
 *   build/bench_setns [ITERATIONS]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "zring/pod.h"

static void *unshare_thread(void *arg)
{
	int *fd = arg;
	if (unshare(CLONE_NEWNET) == 0)
		*fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	return NULL;
}

/* This thread's CPU time (user + system): unlike the wall clock, it does
 * not count time spent waiting for a busy machine's CPUs. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU ns per iteration of one of the three loops. */
static double run(const struct pod *p, int what, long iters)
{
	uint64_t t0 = cpu_ns();
	for (long i = 0; i < iters; i++) {
		if (what == 2) {
			if (pod_enter(p) < 0)
				abort();
			pod_leave();
			continue;
		}
		int fd = pod_socket(what ? p : NULL, AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			abort();
		close(fd);
	}
	return (double)(cpu_ns() - t0) / (double)iters;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 200000;
	int err = pod_home_init();
	if (err < 0) {
		fprintf(stderr, "bench_setns: cannot switch namespaces: %s (run as root)\n",
			strerror(-err));
		return 77;
	}
	int nsfd = -1;
	pthread_t t;
	pthread_create(&t, NULL, unshare_thread, &nsfd);
	pthread_join(t, NULL);
	if (nsfd < 0) {
		fprintf(stderr, "bench_setns: cannot make a network namespace\n");
		return 1;
	}
	char path[64];
	struct pod *p;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", nsfd);
	if ((err = pod_new("bench", "bench/pod", path, &p, NULL, 0)) < 0) {
		fprintf(stderr, "bench_setns: %s\n", strerror(-err));
		return 1;
	}
	close(nsfd);
	run(p, 1, iters / 10);	/* warm up */
	double plain = run(NULL, 0, iters);
	double in_pod = run(p, 1, iters);
	double round = run(p, 2, iters);
	printf("%-44s %10s\n", "per socket (AF_INET stream, +close)", "CPU ns");
	printf("%-44s %10.0f\n", "socket() in zring's namespace", plain);
	printf("%-44s %10.0f\n", "pod_socket(): setns, socket(), setns back", in_pod);
	printf("%-44s %10.0f\n", "setns into the pod and back alone", round);
	printf("%-44s %10.0f\n", "added by node-agent mode", in_pod - plain);
	printf("(%ld iterations each)\n", iters);
	pod_unref(p);
	pod_home_deinit();
	return 0;
}
