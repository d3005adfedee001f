#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "zring/hbone_request.h"

static void H(struct hbone_req *r, const char *n, const char *v)
{
	hbone_req_header(r, n, strlen(n), v, strlen(v));
}

Test(hbone_request, a_connect_to_ip_port_is_accepted)
{
	struct hbone_req r;
	char buf[ADDR_STRLEN];
	hbone_req_init(&r);
	H(&r, ":method", "CONNECT");
	H(&r, ":authority", "10.0.0.7:8080");
	H(&r, "forwarded", "for=\"10.0.0.1:43210\"");
	cr_assert_eq(hbone_req_finish(&r), 0);
	cr_assert_str_eq(addr_format(&r.authority, buf, sizeof(buf)), "10.0.0.7:8080");
	cr_assert(r.has_forwarded);
	cr_assert_str_eq(addr_format(&r.forwarded, buf, sizeof(buf)), "10.0.0.1:43210");
}

Test(hbone_request, ipv6_and_unquoted_forwarded)
{
	struct hbone_req r;
	char buf[ADDR_STRLEN];
	hbone_req_init(&r);
	H(&r, ":method", "CONNECT");
	H(&r, ":authority", "[fd00::7]:80");
	H(&r, "forwarded", "proto=https; for=[fd00::1]:5");
	cr_assert_eq(hbone_req_finish(&r), 0);
	cr_assert_str_eq(addr_format(&r.authority, buf, sizeof(buf)), "[fd00::7]:80");
	cr_assert_str_eq(addr_format(&r.forwarded, buf, sizeof(buf)), "[fd00::1]:5");
}

Test(hbone_request, malformed_requests_are_refused)
{
	const char *cases[][4] = {
		{ ":method", "GET", ":authority", "10.0.0.7:80" },
		{ ":method", "CONNECT", ":authority", "example.com:80" },
		{ ":method", "CONNECT", ":authority", "10.0.0.7" },
		{ ":method", "CONNECT", ":authority", "10.0.0.7:0" },
		{ ":method", "CONNECT", ":path", "/" },
		{ ":method", "CONNECT", "x", "y" },	/* no authority */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hbone_req r;
		hbone_req_init(&r);
		H(&r, cases[i][0], cases[i][1]);
		H(&r, cases[i][2], cases[i][3]);
		if (strcmp(cases[i][2], ":authority") != 0)
			H(&r, ":authority", "10.0.0.7:80");
		if (i == 5) {
			hbone_req_init(&r);
			H(&r, ":method", "CONNECT");
		}
		cr_expect_eq(hbone_req_finish(&r), -EINVAL, "case %zu accepted", i);
	}
}

Test(hbone_request, extended_connect_and_scheme_are_refused)
{
	struct hbone_req r;
	hbone_req_init(&r);
	H(&r, ":method", "CONNECT");
	H(&r, ":protocol", "websocket");
	H(&r, ":authority", "10.0.0.7:80");
	cr_assert_eq(hbone_req_finish(&r), -EINVAL);
}

Test(hbone_request, a_bad_forwarded_header_is_ignored_not_fatal)
{
	struct hbone_req r;
	hbone_req_init(&r);
	H(&r, ":method", "CONNECT");
	H(&r, ":authority", "10.0.0.7:80");
	H(&r, "forwarded", "for=unknown");
	cr_assert_eq(hbone_req_finish(&r), 0);
	cr_assert_not(r.has_forwarded);
}

Test(hbone_request, embedded_nul_in_authority_is_refused)
{
	struct hbone_req r;
	hbone_req_init(&r);
	H(&r, ":method", "CONNECT");
	hbone_req_header(&r, ":authority", 10, "10.0.0.7:80\0x", 13);
	cr_assert_eq(hbone_req_finish(&r), -EINVAL);
}
