/*
 * The shapes of config strings: names, trust domains, hostnames, IP
 * addresses, CIDRs and ztunnel's "network/ip" VIPs. The address parsers
 * are pure (no context, no errors); the string checks report their own
 * error at the value.
 */
#include "config_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* ---- string shapes ---- */

bool check_id(struct vctx *c, const cJSON *v, const char *s)
{
	if (!*s) {
		verr(c, v, false, "must not be empty");
		return false;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			verr(c, v, false, "%s contains a control character", vq(c, 0, s));
			return false;
		}
	}
	return true;
}

static bool only_chars(const char *s, bool upper)
{
	for (; *s; s++) {
		char ch = *s;
		if (!((ch >= 'a' && ch <= 'z') || (upper && ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

bool check_segment(struct vctx *c, const cJSON *v, const char *s)
{
	if (!*s) {
		verr(c, v, false, "must not be empty");
		return false;
	}
	if (!only_chars(s, true) || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
		verr(c, v, false, "invalid name %s: only letters, digits, '.', '_' and '-' "
		     "are allowed", vq(c, 0, s));
		return false;
	}
	return true;
}

bool check_trust_domain(struct vctx *c, const cJSON *v, const char *s)
{
	if (!only_chars(s, false) || strlen(s) > 255) {
		verr(c, v, false, "invalid trust domain %s: only lowercase letters, digits, "
		     "'.', '_' and '-' are allowed", vq(c, 0, s));
		return false;
	}
	return true;
}

bool check_hostname(struct vctx *c, const cJSON *v, const char *s)
{
	if (!*s) {
		verr(c, v, false, "must not be empty");
		return false;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '/') {
			verr(c, v, false, "invalid hostname %s", vq(c, 0, s));
			return false;
		}
	}
	return true;
}

/* ---- addresses ---- */

static bool ip_parse_raw(const char *s, struct ip *out)
{
	memset(out, 0, sizeof(*out));
	if (strlen(s) >= INET6_ADDRSTRLEN)
		return false;
	if (inet_pton(AF_INET, s, out->bytes) == 1) {
		out->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, out->bytes) == 1) {
		out->family = AF_INET6;
		return true;
	}
	return false;
}

static bool ip_is_mapped(const struct ip *ip)
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return ip->family == AF_INET6 && memcmp(ip->bytes, prefix, 12) == 0;
}

static void ip_unmap(struct ip *ip)
{
	memmove(ip->bytes, ip->bytes + 12, 4);
	memset(ip->bytes + 4, 0, 12);
	ip->family = AF_INET;
}

bool ip_parse(const char *s, struct ip *out)
{
	if (!ip_parse_raw(s, out))
		return false;
	if (ip_is_mapped(out))
		ip_unmap(out);
	return true;
}

static void cidr_mask(struct cidr *c)
{
	unsigned bits = c->ip.family == AF_INET ? 32 : 128;
	for (unsigned i = c->prefix; i < bits; i++)
		c->ip.bytes[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
}

bool cidr_parse(const char *s, struct cidr *out)
{
	char ip[INET6_ADDRSTRLEN];
	const char *slash = strrchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n >= sizeof(ip))
		return false;
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (!ip_parse_raw(ip, &out->ip))
		return false;
	unsigned bits = out->ip.family == AF_INET ? 32 : 128, prefix = 0;
	if (slash) {
		const char *p = slash + 1;
		size_t i = 0;
		for (; p[i] >= '0' && p[i] <= '9' && i < 4; i++)
			prefix = prefix * 10 + (unsigned)(p[i] - '0');
		if (i == 0 || p[i] || prefix > bits)
			return false;
	} else {
		prefix = bits;
	}
	out->prefix = (uint8_t)prefix;
	if (ip_is_mapped(&out->ip) && prefix >= 96) {
		ip_unmap(&out->ip);
		out->prefix = (uint8_t)(prefix - 96);
	}
	cidr_mask(out);
	return true;
}

bool network_addr_parse(const char *s, size_t *netlen, struct ip *out)
{
	const char *slash = strchr(s, '/');
	*netlen = slash ? (size_t)(slash - s) : 0;
	return ip_parse(slash ? slash + 1 : s, out);
}

const char *config_ip_format(const struct ip *ip, char *buf, size_t len)
{
	if (!inet_ntop(ip->family == AF_INET6 ? AF_INET6 : AF_INET, ip->bytes, buf,
		       (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}
