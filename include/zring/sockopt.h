/*
 * Socket options zring sets on the TCP sockets it proxies through, beyond
 * the ones each owner sets itself (SO_MARK, TCP_NODELAY): TCP keepalive.
 *
 * Keepalive is what finds a peer that vanished without a FIN or a reset
 * (a node that lost power, a pod whose network was torn down, a NAT or
 * firewall that forgot the flow) on a connection that is silent on
 * purpose, such as a database pool's spare connection. zring has no idle
 * timeout by default (as ztunnel), so without keepalive such a connection,
 * and its descriptors, would live for ever.
 *
 * Listening sockets get it too: Linux copies SO_KEEPALIVE and the three
 * figures to every socket accepted from them, so accepted sockets need no
 * syscall of their own (as TCP_NODELAY, listener.c).
 */
#ifndef ZRING_SOCKOPT_H
#define ZRING_SOCKOPT_H

#include "zring/opts.h"

#include <stdint.h>

/*
 * Turn TCP keepalive on for fd with ka's figures; nothing when ka is NULL
 * or ka->on is false (a socket starts without keepalive). Call it before
 * connect or listen. Returns 0, or the -errno of the first setsockopt that
 * failed (the socket is then left as it was or partly configured).
 */
int sockopt_keepalive(int fd, const struct keepalive_opts *ka);

/*
 * sockopt_keepalive for a socket that should carry on without it: a
 * failure is counted (sockopt_failures) and logged as a warning naming
 * what ("upstream", "tunnel", "listener"), at most one line per 10 s for
 * the whole process, and the caller goes on.
 */
void sockopt_keepalive_try(int fd, const struct keepalive_opts *ka, const char *what);

/* Setsockopt failures so far, all threads (for zring_socket_option_failures_total). */
uint64_t sockopt_failures(void);

#endif
