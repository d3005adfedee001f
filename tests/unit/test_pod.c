#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zring/pod.h"

/* A fresh network namespace, made on a helper thread so that ours is
 * untouched; the descriptor keeps it alive. */
static void *unshare_thread(void *arg)
{
	int *fd = arg;
	if (unshare(CLONE_NEWNET) == 0)
		*fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	return NULL;
}

static int new_netns(char *path, size_t len)
{
	int fd = -1;
	pthread_t t;
	pthread_create(&t, NULL, unshare_thread, &fd);
	pthread_join(t, NULL);
	if (fd >= 0)
		snprintf(path, len, "/proc/self/fd/%d", fd);
	return fd;
}

/* The inode of the namespace socket fd lives in. */
static ino_t socket_netns(int fd)
{
	struct stat st;
	int ns = ioctl(fd, SIOCGSKNS);
	cr_assert_geq(ns, 0, "SIOCGSKNS: %s", strerror(errno));
	cr_assert_eq(fstat(ns, &st), 0);
	close(ns);
	return st.st_ino;
}

static ino_t own_netns(void)
{
	struct stat st;
	cr_assert_eq(stat("/proc/thread-self/ns/net", &st), 0);
	return st.st_ino;
}

/* Everything below needs CAP_SYS_ADMIN (setns, unshare). */
static void need_setns(void)
{
	if (pod_home_init() < 0)
		cr_skip_test("cannot switch network namespaces here (not root?)");
}

Test(pod, a_missing_namespace_is_enoent)
{
	struct pod *p;
	cr_assert_eq(pod_new("u1", "ns/a", "/var/run/netns/zring-test-none", &p, NULL, 0), -ENOENT);
}

Test(pod, a_file_that_is_not_a_network_namespace_is_einval)
{
	struct pod *p;
	cr_assert_eq(pod_new("u1", "ns/a", "/etc/hostname", &p, NULL, 0), -EINVAL);
	/* A namespace, but not a network one. */
	cr_assert_eq(pod_new("u1", "ns/a", "/proc/self/ns/uts", &p, NULL, 0), -EINVAL);
}

/* pod_new's refusal of path: its errno and reason. */
static void expect_refused(const char *path, int err, const char *why_has)
{
	struct pod *p = NULL;
	char why[POD_WHY_MAX] = "unset";
	cr_assert_eq(pod_new("u1", "ns/a", path, &p, why, sizeof(why)), err, "%s: %s", path, why);
	cr_assert_null(p);
	cr_assert(strstr(why, why_has), "%s: reason '%s' lacks '%s'", path, why, why_has);
}

/* A FIFO with no writer would block open(2) forever (on the control
 * thread, in node-agent mode): refused at once, never opened. */
Test(pod, a_fifo_is_refused_at_once, .timeout = 5)
{
	char dir[] = "/tmp/zring-pod-XXXXXX", path[64];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/netns", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	expect_refused(path, -EINVAL, "is a FIFO, not a network namespace");
	unlink(path);
	rmdir(dir);
}

Test(pod, each_refusal_says_why)
{
	expect_refused("/dev/null", -EINVAL, "is a character device, not a network namespace");
	expect_refused("/tmp", -EINVAL, "is a directory, not a network namespace");
	expect_refused("/etc/hostname", -EINVAL, "not on nsfs");
	expect_refused("/proc/self/ns/uts", -EINVAL, "is a UTS namespace, not a network namespace");
	expect_refused("/var/run/netns/zring-test-none", -ENOENT, "No such file");
	struct pod *p;
	char why[POD_WHY_MAX];
	cr_assert_eq(pod_new("s", "ns/s", "/proc/self/ns/net", &p, why, sizeof(why)), 0, "%s", why);
	pod_unref(p);
}

Test(pod, sockets_are_made_in_the_pods_namespace_and_the_thread_returns)
{
	need_setns();
	char path[64];
	int keep = new_netns(path, sizeof(path));
	cr_assert_geq(keep, 0, "cannot make a network namespace");
	struct pod *p;
	cr_assert_eq(pod_new("uid-1", "default/pod1", path, &p, NULL, 0), 0);
	close(keep);	/* the pod's own descriptor keeps it alive */
	cr_assert_str_eq(p->uid, "uid-1");
	cr_assert_str_eq(p->name, "default/pod1");
	cr_assert_not(pod_is_home(p));

	ino_t home = own_netns();
	int fd = pod_socket(p, AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(socket_netns(fd), p->netns_ino, "the socket is not in the pod's namespace");
	cr_assert_neq(p->netns_ino, home);
	cr_assert_eq(own_netns(), home, "the thread did not return to its namespace");
	/* Without a pod: our own namespace. */
	int own = pod_socket(NULL, AF_INET6, SOCK_STREAM | SOCK_CLOEXEC);
	cr_assert_geq(own, 0);
	cr_assert_eq(socket_netns(own), home);
	close(fd);
	close(own);
	pod_unref(p);
	pod_home_deinit();
}

Test(pod, a_port_taken_in_a_pod_is_free_in_ours)
{
	need_setns();
	char path[64];
	int keep = new_netns(path, sizeof(path));
	cr_assert_geq(keep, 0);
	struct pod *p;
	cr_assert_eq(pod_new("u", "ns/n", path, &p, NULL, 0), 0);
	close(keep);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int in_pod = pod_socket(p, AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
	cr_assert_geq(in_pod, 0);
	cr_assert_eq(bind(in_pod, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
	cr_assert_eq(listen(in_pod, 1), 0);
	cr_assert_eq(getsockname(in_pod, (struct sockaddr *)&a, &len), 0);
	/* Ports are per namespace: the same one is free here, no REUSEADDR. */
	int here = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(here, (struct sockaddr *)&a, sizeof(a)), 0,
		     "port %u is taken in our namespace too: %s", ntohs(a.sin_port), strerror(errno));
	close(here);
	close(in_pod);
	pod_unref(p);
	pod_home_deinit();
}

Test(pod, two_paths_to_one_namespace_are_the_same_and_home_is_home)
{
	need_setns();
	char path[64];
	int keep = new_netns(path, sizeof(path));
	cr_assert_geq(keep, 0);
	struct pod *a, *b, *self;
	cr_assert_eq(pod_new("a", "ns/a", path, &a, NULL, 0), 0);
	cr_assert_eq(pod_new("b", "ns/b", path, &b, NULL, 0), 0);
	cr_assert_eq(pod_new("s", "ns/s", "/proc/self/ns/net", &self, NULL, 0), 0);
	cr_assert(pod_same_netns(a, b));
	cr_assert_not(pod_same_netns(a, self));
	cr_assert(pod_is_home(self));
	/* References: the pod lives until the last one goes. */
	struct pod *r = pod_ref(a);
	pod_unref(a);
	cr_assert_str_eq(r->uid, "a");
	pod_unref(r);
	pod_unref(b);
	pod_unref(self);
	close(keep);
	pod_home_deinit();
}
