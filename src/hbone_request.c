/*
 * HBONE request headers. See include/zring/hbone_request.h.
 */
#include "zring/hbone_request.h"

#include <errno.h>
#include <string.h>

void hbone_req_init(struct hbone_req *r)
{
	memset(r, 0, sizeof(*r));
}

static bool is(const char *s, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(s, want, len) == 0;
}

/* "ip:port" / "[ip6]:port" of exactly vlen bytes. */
static int parse_addr(const char *v, size_t vlen, union addr *out)
{
	char buf[ADDR_STRLEN];
	if (vlen == 0 || vlen >= sizeof(buf) || memchr(v, '\0', vlen))
		return -EINVAL;
	memcpy(buf, v, vlen);
	buf[vlen] = '\0';
	if (addr_parse(buf, out) < 0 || addr_port(out) == 0)
		return -EINVAL;
	return 0;
}

/* forwarded: for="ip:port" or for=ip:port, possibly among other pairs
 * separated by ';' (RFC 7239); the first for= wins. */
static void parse_forwarded(struct hbone_req *r, const char *v, size_t vlen)
{
	while (vlen && !r->has_forwarded) {
		const char *end = memchr(v, ';', vlen);
		size_t n = end ? (size_t)(end - v) : vlen;
		while (n && (*v == ' ' || *v == '\t')) {
			v++;
			n--;
			vlen--;
		}
		if (n > 4 && strncasecmp(v, "for=", 4) == 0) {
			const char *p = v + 4;
			size_t plen = n - 4;
			if (plen >= 2 && p[0] == '"' && p[plen - 1] == '"') {
				p++;
				plen -= 2;
			}
			if (parse_addr(p, plen, &r->forwarded) == 0)
				r->has_forwarded = true;
		}
		if (!end)
			break;
		vlen -= n + 1;
		v += n + 1;
	}
}

void hbone_req_header(struct hbone_req *r, const char *name, size_t nlen, const char *value,
		      size_t vlen)
{
	if (is(name, nlen, ":method")) {
		r->is_connect = is(value, vlen, "CONNECT");
	} else if (is(name, nlen, ":authority")) {
		if (r->has_authority || parse_addr(value, vlen, &r->authority) < 0)
			r->bad = true;
		r->has_authority = true;
	} else if (is(name, nlen, ":path") || is(name, nlen, ":scheme") ||
		   is(name, nlen, ":protocol")) {
		r->bad = true;	/* a plain CONNECT has none of these */
	} else if (is(name, nlen, "forwarded")) {
		parse_forwarded(r, value, vlen);
	}
}

int hbone_req_finish(const struct hbone_req *r)
{
	return r->is_connect && r->has_authority && !r->bad ? 0 : -EINVAL;
}
