/*
 * Pods and network-namespace switching. See include/zring/pod.h.
 */
#include "zring/pod.h"
#include "zring/fdbudget.h"
#include "zring/file.h"
#include "zring/log.h"
#include "zring/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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

static const char *ns_type_name(int type)
{
	switch (type) {
	case CLONE_NEWNET:
		return "network";
	case CLONE_NEWUTS:
		return "UTS";
	case CLONE_NEWIPC:
		return "IPC";
	case CLONE_NEWNS:
		return "mount";
	case CLONE_NEWPID:
		return "PID";
	case CLONE_NEWUSER:
		return "user";
	case CLONE_NEWCGROUP:
		return "cgroup";
	default:
		return "non-network";
	}
}

/* Is this (a stat and a statfs of one file) a namespace file? A namespace
 * is a regular file on nsfs; anything else (a FIFO, a device, a socket, a
 * directory, a file on another file system) is refused. */
static int check_nsfs(const struct stat *st, const struct statfs *sfs, char *why, size_t len)
{
	if (!S_ISREG(st->st_mode))
		return why_fail(-EINVAL, why, len, "is %s, not a network namespace",
			      file_type_name(st->st_mode));
	if (sfs->f_type != NSFS_MAGIC)
		return why_fail(-EINVAL, why, len, "is a file, not a network namespace (not on nsfs)");
	return 0;
}

/* Is fd a network namespace? */
static int check_netns(int fd, char *why, size_t len)
{
	struct stat st;
	struct statfs sfs;
	int err;
	if (fstat(fd, &st) < 0 || fstatfs(fd, &sfs) < 0) {
		err = -errno;
		return why_fail(err, why, len, "cannot stat: %s", strerror(-err));
	}
	if ((err = check_nsfs(&st, &sfs, why, len)) < 0)
		return err;
	int type = ioctl(fd, NS_GET_NSTYPE);
	if (type < 0) {
		err = -errno;
		return why_fail(err, why, len, "cannot tell its namespace type: %s", strerror(-err));
	}
	if (type != CLONE_NEWNET)
		return why_fail(-EINVAL, why, len, "is a %s namespace, not a network namespace",
			      ns_type_name(type));
	return 0;
}

/*
 * Open the namespace at path without ever blocking: it is looked at before
 * it is opened (a FIFO or a device is never opened at all), then opened
 * with O_NONBLOCK | O_NOCTTY and checked again on the descriptor, so a
 * swap between the two cannot block either. Returns the descriptor or
 * -errno with the reason in why.
 */
static int open_netns(const char *path, char *why, size_t len)
{
	struct stat st;
	struct statfs sfs;
	int err;
	if (stat(path, &st) < 0 || statfs(path, &sfs) < 0) {
		err = -errno;
		return why_fail(err, why, len, "%s", strerror(-err));
	}
	if ((err = check_nsfs(&st, &sfs, why, len)) < 0)
		return err;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		return why_fail(err, why, len, "%s", strerror(-err));
	}
	fdb_opened(1);
	if ((err = check_netns(fd, why, len)) < 0) {
		close(fd);
		fdb_closed(1);
		return err;
	}
	return fd;
}

int pod_new(const char *uid, const char *name, const char *netns_path, struct pod **out,
	    char *why, size_t why_len)
{
	struct pod *p = calloc(1, sizeof(*p));
	struct stat st;
	int err = -ENOMEM;
	if (why && why_len)
		why[0] = '\0';
	if (!p)
		return why_fail(-ENOMEM, why, why_len, "out of memory");
	p->netns_fd = -1;
	p->uid = strdup(uid);
	p->name = strdup(name);
	p->netns = strdup(netns_path);
	if (!p->uid || !p->name || !p->netns) {
		why_fail(err, why, why_len, "out of memory");
		goto fail;
	}
	p->netns_fd = open_netns(netns_path, why, why_len);
	if (p->netns_fd < 0) {
		err = p->netns_fd;
		goto fail;
	}
	if (fstat(p->netns_fd, &st) < 0) {
		err = -errno;
		why_fail(err, why, why_len, "cannot stat: %s", strerror(-err));
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
