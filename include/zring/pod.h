/*
 * A pod served in node-agent mode, and the network-namespace switch that
 * puts sockets inside it.
 *
 * In node-agent mode zring runs in the node's network namespace, but a
 * pod's sockets must live in the pod's: its 15001/15006/15008 listeners,
 * the upstream socket of every connection they accept, and the HBONE
 * tunnels opened on its behalf. A socket belongs for life to the namespace
 * of the thread that created it, so the creating thread enters the pod's
 * namespace (setns(2)), creates the socket and returns to its own: two
 * syscalls per socket. Everything after that (bind, listen, connect,
 * io_uring accept and I/O) works on the socket from any namespace.
 *
 * A pod is immutable once made and reference-counted across threads: the
 * node agent's table of served pods, every listener opened for it and every
 * connection and tunnel created from those hold a reference. Its namespace
 * descriptor keeps the namespace alive (a connection may outlive the pod's
 * removal by a drain) and is closed with the last reference.
 */
#ifndef ZRING_POD_H
#define ZRING_POD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct pod {
	_Atomic unsigned refs;
	int netns_fd;		/* O_RDONLY descriptor on the namespace */
	dev_t netns_dev;	/* identity of the namespace (two paths, one netns) */
	ino_t netns_ino;
	char *uid;		/* the workload's uid */
	char *name;		/* "namespace/name", for logs */
	char *netns;		/* the path it was opened from */
};

/*
 * Remember the calling thread's network namespace as "home", where every
 * thread returns after creating a pod's socket, and check that this process
 * may switch namespaces (setns needs CAP_SYS_ADMIN). Call once, on the main
 * thread before other threads start. 0 or -errno.
 */
int pod_home_init(void);
void pod_home_deinit(void);

/* Room for any reason pod_new writes. */
#define POD_WHY_MAX 128

/*
 * Open the network namespace at `netns_path` for the pod `uid` ("name" is
 * for logs). Returns 0 and *out (refs = 1), or a negative errno with a
 * one-line reason in why[why_len] (when why is not NULL):
 *   -EINVAL  not a network namespace: "is a FIFO, not a network
 *            namespace", "is a UTS namespace, not a network namespace"...
 *   stat(2)'s or open(2)'s error (-ENOENT, -EACCES...), -ENOMEM.
 * Never blocks: the path comes from the config, and anything may sit there
 * (a FIFO with no writer would block open(2) forever, on the control
 * thread). Only a regular file on nsfs (a /proc/PID/ns/net file or a bind
 * mount of one, as /var/run/netns/NAME) is opened at all, with O_NONBLOCK
 * | O_NOCTTY, and checked again on the descriptor (fstat, fstatfs,
 * NS_GET_NSTYPE).
 */
int pod_new(const char *uid, const char *name, const char *netns_path, struct pod **out,
	    char *why, size_t why_len);

/* Is p's namespace zring's own (pod_home_init's)? */
bool pod_is_home(const struct pod *p);

/* Do a and b name the same namespace? */
bool pod_same_netns(const struct pod *a, const struct pod *b);

/* A new reference (p may be NULL). */
struct pod *pod_ref(struct pod *p);
/* Drop a reference; the last closes the namespace. NULL is fine. */
void pod_unref(struct pod *p);

/*
 * Move the calling thread into p's namespace (0 or -errno); pod_leave goes
 * back home. Only making the pod's sockets belongs between the two: a
 * thread away from home would put any other socket it made (or namespace
 * lookup it did) in the pod's namespace.
 * pod_leave aborts the process if it cannot return (that cannot happen to
 * a namespace we entered from; carrying on in the wrong one would not be
 * safe).
 */
int pod_enter(const struct pod *p);
void pod_leave(void);

/*
 * socket(family, type, 0) inside p's namespace, or in the caller's own
 * when p is NULL (sidecar mode). Returns the descriptor or -errno.
 */
int pod_socket(const struct pod *p, int family, int type);

#endif
