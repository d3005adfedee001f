#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zring/sockopt.h"

static int get_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);
	cr_assert_eq(getsockopt(fd, level, name, &v, &len), 0);
	return v;
}

static void assert_keepalive(int fd, int idle, int intvl, int cnt)
{
	cr_assert_eq(get_int(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
	cr_assert_eq(get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), idle);
	cr_assert_eq(get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), intvl);
	cr_assert_eq(get_int(fd, IPPROTO_TCP, TCP_KEEPCNT), cnt);
}

static const struct keepalive_opts ka = { .on = true, .idle_s = 7, .interval_s = 3, .probes = 4 };

Test(sockopt, keepalive_sets_the_flag_and_the_three_figures)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(sockopt_keepalive(fd, &ka), 0);
	assert_keepalive(fd, 7, 3, 4);
	close(fd);
}

Test(sockopt, off_leaves_the_socket_alone)
{
	struct keepalive_opts off = ka;
	off.on = false;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(sockopt_keepalive(fd, &off), 0);
	cr_assert_eq(sockopt_keepalive(fd, NULL), 0);
	cr_assert_eq(get_int(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
	close(fd);
}

/* listener.c relies on it: an accepted socket carries the listener's
 * keepalive flag and figures without a syscall of its own. */
Test(sockopt, accepted_sockets_inherit_the_listeners_keepalive)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(sockopt_keepalive(l, &ka), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	int s = accept(l, NULL, NULL);
	cr_assert_geq(s, 0);
	assert_keepalive(s, 7, 3, 4);
	cr_assert_eq(get_int(c, SOL_SOCKET, SO_KEEPALIVE), 0, "the connecting side is its own");
	close(s);
	close(c);
	close(l);
}

Test(sockopt, a_refused_setting_is_an_error_and_try_counts_it)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(sockopt_keepalive(p[0], &ka), -ENOTSOCK);
	uint64_t before = sockopt_failures();
	sockopt_keepalive_try(p[0], &ka, "test");
	sockopt_keepalive_try(p[0], &ka, "test");
	cr_assert_eq(sockopt_failures(), before + 2);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sockopt_keepalive_try(fd, &ka, "test");
	cr_assert_eq(sockopt_failures(), before + 2, "a success is not counted");
	assert_keepalive(fd, 7, 3, 4);
	close(fd);
	close(p[0]);
	close(p[1]);
}
