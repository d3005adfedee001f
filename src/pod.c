/*
 * Pods and network-namespace switching. See include/zring/pod.h.
 */
#include "zring/pod.h"
#include "zring/fdbudget.h"
#include "zring/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The namespace threads return to; threads start in the main thread's. */
static int g_home_fd = -1;

int pod_home_init(void)
{
	if (g_home_fd >= 0)
		return 0;
	int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Entering the namespace we are in changes nothing, and fails
	 * exactly when entering a pod's would (no CAP_SYS_ADMIN). */
	if (setns(fd, CLONE_NEWNET) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	g_home_fd = fd;
	return 0;
}

void pod_home_deinit(void)
{
	if (g_home_fd >= 0)
		close(g_home_fd);
	g_home_fd = -1;
}

/* Is fd a network namespace? NS_GET_NSTYPE answers for nsfs files only. */
static int check_netns(int fd)
{
	int type = ioctl(fd, NS_GET_NSTYPE);
	if (type < 0)
		return errno == ENOTTY || errno == EINVAL ? -EINVAL : -errno;
	return type == CLONE_NEWNET ? 0 : -EINVAL;
}

int pod_new(const char *uid, const char *name, const char *netns_path, struct pod **out)
{
	struct pod *p = calloc(1, sizeof(*p));
	struct stat st;
	int err = -ENOMEM;
	if (!p)
		return -ENOMEM;
	p->netns_fd = -1;
	p->uid = strdup(uid);
	p->name = strdup(name);
	p->netns = strdup(netns_path);
	if (!p->uid || !p->name || !p->netns)
		goto fail;
	p->netns_fd = open(netns_path, O_RDONLY | O_CLOEXEC);
	if (p->netns_fd < 0) {
		err = -errno;
		goto fail;
	}
	fdb_opened(1);
	if ((err = check_netns(p->netns_fd)) < 0)
		goto fail;
	if (fstat(p->netns_fd, &st) < 0) {
		err = -errno;
		goto fail;
	}
	p->netns_dev = st.st_dev;
	p->netns_ino = st.st_ino;
	atomic_init(&p->refs, 1);
	*out = p;
	return 0;
fail:
	atomic_init(&p->refs, 1);
	pod_unref(p);
	return err;
}

bool pod_is_home(const struct pod *p)
{
	struct stat st;
	return g_home_fd >= 0 && fstat(g_home_fd, &st) == 0 && st.st_dev == p->netns_dev &&
	       st.st_ino == p->netns_ino;
}

bool pod_same_netns(const struct pod *a, const struct pod *b)
{
	return a->netns_dev == b->netns_dev && a->netns_ino == b->netns_ino;
}

struct pod *pod_ref(struct pod *p)
{
	if (p)
		atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

void pod_unref(struct pod *p)
{
	if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (p->netns_fd >= 0) {
		close(p->netns_fd);
		fdb_closed(1);
	}
	free(p->uid);
	free(p->name);
	free(p->netns);
	free(p);
}

int pod_enter(const struct pod *p)
{
	return setns(p->netns_fd, CLONE_NEWNET) < 0 ? -errno : 0;
}

void pod_leave(void)
{
	if (setns(g_home_fd, CLONE_NEWNET) == 0)
		return;
	log_msg_err(LOG_ERROR, "cannot return to zring's own network namespace", "setns", -errno);
	abort();
}

int pod_socket(const struct pod *p, int family, int type)
{
	int fd, err;
	if (!p) {
		fd = socket(family, type, 0);
		return fd < 0 ? -errno : fd;
	}
	if ((err = pod_enter(p)) < 0)
		return err;
	fd = socket(family, type, 0);
	err = fd < 0 ? -errno : 0;
	pod_leave();
	return fd < 0 ? err : fd;
}
