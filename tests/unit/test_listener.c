#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <unistd.h>

#include "zring/listener.h"

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
