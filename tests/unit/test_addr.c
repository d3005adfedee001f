#include <criterion/criterion.h>
#include <errno.h>
#include <arpa/inet.h>
#include <string.h>

#include "zring/addr.h"

Test(addr, parses_and_formats_ipv4)
{
	union addr a;
	char buf[ADDR_STRLEN];
	cr_assert_eq(addr_parse("10.1.2.3:8080", &a), 0);
	cr_assert_eq(a.sa.sa_family, AF_INET);
	cr_assert_eq(addr_port(&a), 8080);
	cr_assert_str_eq(addr_format(&a, buf, sizeof(buf)), "10.1.2.3:8080");
}

Test(addr, parses_and_formats_ipv6)
{
	union addr a;
	char buf[ADDR_STRLEN];
	cr_assert_eq(addr_parse("[fd00::1]:15001", &a), 0);
	cr_assert_eq(a.sa.sa_family, AF_INET6);
	cr_assert_eq(addr_port(&a), 15001);
	cr_assert_str_eq(addr_format(&a, buf, sizeof(buf)), "[fd00::1]:15001");
}

Test(addr, rejects_malformed)
{
	union addr a;
	const char *bad[] = { "", "10.0.0.1", "10.0.0.1:", "10.0.0.1:65536", "10.0.0.1:-1",
			      "10.0.0.1:80x", "fd00::1:80", "[fd00::1]80", "[fd00::1]:",
			      "[zz::1]:80", "300.1.1.1:80", "host:80", ":80", "[::1:80" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(addr_parse(bad[i], &a), -EINVAL, "accepted '%s'", bad[i]);
}

Test(addr, equality_needs_family_address_and_port)
{
	union addr a, b;
	addr_parse("10.0.0.1:80", &a);
	addr_parse("10.0.0.1:80", &b);
	cr_assert(addr_equal(&a, &b));
	addr_parse("10.0.0.1:81", &b);
	cr_assert_not(addr_equal(&a, &b));
	addr_parse("[::ffff:10.0.0.1]:80", &b);
	cr_assert_not(addr_equal(&a, &b));
	addr_unmap(&b);
	cr_assert(addr_equal(&a, &b), "a v4-mapped address unmaps to plain IPv4");
}

Test(addr, classifies_any_and_loopback)
{
	union addr a;
	addr_parse("0.0.0.0:1", &a);
	cr_assert(addr_is_any(&a));
	addr_parse("[::]:1", &a);
	cr_assert(addr_is_any(&a));
	addr_parse("127.3.4.5:1", &a);
	cr_assert(addr_is_loopback(&a));
	addr_parse("[::1]:1", &a);
	cr_assert(addr_is_loopback(&a));
	addr_parse("10.0.0.1:1", &a);
	cr_assert_not(addr_is_loopback(&a));
	cr_assert_not(addr_is_any(&a));
}
