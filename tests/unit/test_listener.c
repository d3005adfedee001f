#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <unistd.h>

#include "zring/listener.h"
#include "zring/worker.h"

#include <netinet/tcp.h>
#include <stdlib.h>

static union addr loopback_port(uint16_t port)
{
	union addr a = { .in4 = { .sin_family = AF_INET, .sin_port = htons(port) } };
	a.in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static uint16_t free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	union addr a = loopback_port(0);
	socklen_t len = sizeof(a);
	bind(fd, &a.sa, sizeof(a.in4));
	getsockname(fd, &a.sa, &len);
	close(fd);
	return addr_port(&a);
}

Test(listener, workers_share_a_port_through_reuseport)
{
	union addr a = loopback_port(free_port());
	struct listener *l1, *l2;
	cr_assert_eq(listener_open(NULL, ROLE_OUTBOUND, &a, &l1), 0);
	cr_assert_eq(listener_open(NULL, ROLE_OUTBOUND, &a, &l2), 0);
	/* Both listen: a client gets through. */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(c, &a.sa, sizeof(a.in4)), 0);
	close(c);
	listener_free(l1);
	listener_free(l2);
}

Test(listener, a_port_held_by_someone_else_is_an_error)
{
	union addr a = loopback_port(free_port());
	int other = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(other, &a.sa, sizeof(a.in4)), 0);
	cr_assert_eq(listen(other, 1), 0);
	struct listener *l;
	cr_assert_eq(listener_open(NULL, ROLE_INBOUND, &a, &l), -EADDRINUSE);
	close(other);
}

Test(listener, roles_have_names)
{
	cr_assert_str_eq(role_name(ROLE_OUTBOUND), "outbound");
	cr_assert_str_eq(role_name(ROLE_INBOUND), "inbound");
}

static int get_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);
	cr_assert_eq(getsockopt(fd, level, name, &v, &len), 0);
	return v;
}

/* The listener carries the keepalive options, and every socket accepted
 * from it (clients, the server side of tunnels) inherits them. */
static int accepted_from_listener(const struct keepalive_opts *ka, struct listener **l, int *c)
{
	struct opts o = { .keepalive = *ka };
	struct worker *w = calloc(1, sizeof(*w));
	w->opts = &o;
	union addr a = loopback_port(free_port());
	cr_assert_eq(listener_open(w, ROLE_OUTBOUND, &a, l), 0);
	*c = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(*c, &a.sa, sizeof(a.in4)), 0);
	int s = accept((*l)->fd, NULL, NULL);
	cr_assert_geq(s, 0);
	free(w);
	return s;
}

Test(listener, accepted_sockets_carry_tcp_keepalive)
{
	const struct keepalive_opts ka = { .on = true, .idle_s = 11, .interval_s = 5, .probes = 2 };
	struct listener *l;
	int c, s = accepted_from_listener(&ka, &l, &c);
	cr_assert_eq(get_int(s, SOL_SOCKET, SO_KEEPALIVE), 1);
	cr_assert_eq(get_int(s, IPPROTO_TCP, TCP_KEEPIDLE), 11);
	cr_assert_eq(get_int(s, IPPROTO_TCP, TCP_KEEPINTVL), 5);
	cr_assert_eq(get_int(s, IPPROTO_TCP, TCP_KEEPCNT), 2);
	close(s);
	close(c);
	listener_free(l);
}

Test(listener, keepalive_off_leaves_accepted_sockets_without)
{
	const struct keepalive_opts ka = { .on = false, .idle_s = 11, .interval_s = 5, .probes = 2 };
	struct listener *l;
	int c, s = accepted_from_listener(&ka, &l, &c);
	cr_assert_eq(get_int(s, SOL_SOCKET, SO_KEEPALIVE), 0);
	close(s);
	close(c);
	listener_free(l);
}
