#include <criterion/criterion.h>
#include <errno.h>
#include <unistd.h>

#include "zring/origdst.h"

static struct opts defaults(void)
{
	struct opts o;
	char err[256];
	char *argv[] = { "zring", NULL };
	unsetenv("ZRING_OUTBOUND");
	unsetenv("ZRING_INBOUND");
	unsetenv("ZRING_HBONE");
	unsetenv("ZRING_ADMIN");
	unsetenv("ZRING_READINESS");
	unsetenv("ZRING_METRICS");
	opts_parse(&o, 1, argv, err, sizeof(err));
	return o;
}

static union addr A(const char *s)
{
	union addr a;
	cr_assert_eq(addr_parse(s, &a), 0, "%s", s);
	return a;
}

Test(origdst, a_connection_that_was_not_redirected_is_self)
{
	struct opts o = defaults();
	union addr local = A("10.0.0.5:15001"), dst = A("10.0.0.5:15001");
	cr_assert(origdst_is_self(&dst, &local, &o));
}

Test(origdst, our_ports_on_local_or_loopback_addresses_are_self)
{
	struct opts o = defaults();
	union addr local = A("127.0.0.1:15001");
	union addr d1 = A("127.0.0.1:15006"), d2 = A("0.0.0.0:15001"), d3 = A("[::1]:15001");
	cr_assert(origdst_is_self(&d1, &local, &o));
	cr_assert(origdst_is_self(&d2, &local, &o));
	cr_assert(origdst_is_self(&d3, &local, &o));
	union addr local2 = A("10.0.0.5:15006"), d4 = A("10.0.0.5:15001");
	cr_assert(origdst_is_self(&d4, &local2, &o));
}

Test(origdst, remote_destinations_are_not_self)
{
	struct opts o = defaults();
	union addr local = A("127.0.0.1:15001");
	union addr d1 = A("10.0.0.9:80"), d2 = A("10.0.0.9:15001"), d3 = A("[fd00::9]:443");
	cr_assert_not(origdst_is_self(&d1, &local, &o));
	cr_assert_not(origdst_is_self(&d2, &local, &o), "another host's 15001 is legitimate");
	cr_assert_not(origdst_is_self(&d3, &local, &o));
}

Test(origdst, the_endpoint_ports_are_ours_too)
{
	struct opts o = defaults();
	union addr local = A("10.0.0.5:15001");
	union addr d1 = A("127.0.0.1:15000"), d2 = A("10.0.0.5:15021"), d3 = A("[::1]:15020");
	cr_assert(origdst_is_self(&d1, &local, &o));
	cr_assert(origdst_is_self(&d2, &local, &o));
	cr_assert(origdst_is_self(&d3, &local, &o));
	union addr remote = A("10.0.0.9:15021");
	cr_assert_not(origdst_is_self(&remote, &local, &o), "another pod's readiness port");
}

Test(origdst, port_zero_is_refused)
{
	struct opts o = defaults();
	union addr local = A("127.0.0.1:15001"), d = A("10.0.0.9:0");
	cr_assert(origdst_is_self(&d, &local, &o));
}

Test(origdst, a_plain_socket_has_no_original_destination)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	union addr a;
	cr_assert_geq(fd, 0);
	int err = origdst_get(fd, AF_INET, &a);
	cr_assert_lt(err, 0, "an unconnected socket cannot have an original destination");
	close(fd);
}

Test(origdst, the_hbone_listener_port_is_ours)
{
	struct opts o = defaults();
	union addr local = A("10.0.0.5:15001");
	union addr d1 = A("10.0.0.5:15008"), d2 = A("127.0.0.1:15008");
	cr_assert(origdst_own_port(15008, &o));
	cr_assert(origdst_is_self(&d1, &local, &o), "our own HBONE listener");
	cr_assert(origdst_is_self(&d2, &local, &o));
	union addr remote = A("10.0.0.9:15008");
	cr_assert_not(origdst_is_self(&remote, &local, &o), "another node's HBONE port is a destination");
	cr_assert_not(origdst_own_port(8080, &o));
}
