/*
 * Where a redirected connection was really going.
 *
 * iptables REDIRECT rewrites the destination; conntrack remembers the
 * original, which SO_ORIGINAL_DST (IPv4) and IP6T_SO_ORIGINAL_DST (IPv6)
 * return. This needs the real socket and a plain getsockopt, so it runs
 * synchronously right after accept.
 */
#ifndef ZRING_ORIGDST_H
#define ZRING_ORIGDST_H

#include <stdbool.h>

#include "zring/addr.h"
#include "zring/opts.h"

/* The original destination of accepted socket `fd`. 0 or -errno (-ENOENT:
 * the connection was not redirected and conntrack has no entry). */
int origdst_get(int fd, int family, union addr *out);

/*
 * Is `port` one zring listens on: a capture listener (outbound, inbound
 * plaintext, inbound HBONE) or an HTTP endpoint (admin, readiness,
 * metrics)? Proxying to it on this host would reach zring itself.
 */
bool origdst_own_port(uint16_t port, const struct opts *opts);

/* Is `port` one of the capture listeners' (outbound, inbound plaintext,
 * inbound HBONE)? In node-agent mode these are the only ports zring opens
 * inside a pod; its HTTP endpoints live in the node's namespace. */
bool origdst_capture_port(uint16_t port, const struct opts *opts);

/*
 * Would proxying to `dst` reach zring itself? True when dst is the local
 * address the client connected to (nothing was redirected), or when its
 * port is one of zring's own ports (origdst_own_port) and its address is
 * loopback, unspecified or one zring listens on.
 */
bool origdst_is_self(const union addr *dst, const union addr *local,
		     const struct opts *opts);

/*
 * The same question for accepted socket `fd`, asking the kernel for the
 * local address only when dst's port is one of ours (the common case, any
 * other port, costs no syscall).
 */
bool origdst_is_self_fd(const union addr *dst, int fd, const struct opts *opts);

#endif
