/*
 * Socket addresses: one type for IPv4 and IPv6, parsing "ip:port" and
 * "[ip6]:port", formatting, comparison.
 */
#ifndef ZRING_ADDR_H
#define ZRING_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

union addr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

/* "1.2.3.4:80", "[::1]:80" (brackets required for IPv6). Returns 0 or
 * -EINVAL. A port of 0 is accepted; range is checked. */
int addr_parse(const char *s, union addr *out);

/* Length of the sockaddr for its family. */
socklen_t addr_len(const union addr *a);

uint16_t addr_port(const union addr *a);

/* Format as "ip:port" / "[ip6]:port" into buf (ADDR_STRLEN bytes). */
#define ADDR_STRLEN 64
const char *addr_format(const union addr *a, char *buf, size_t len);

/* Same family, address and port. */
bool addr_equal(const union addr *a, const union addr *b);

/* The unspecified address (0.0.0.0 or ::). */
bool addr_is_any(const union addr *a);

bool addr_is_loopback(const union addr *a);

/* An IPv4-mapped IPv6 address becomes plain IPv4; others are unchanged. */
void addr_unmap(union addr *a);

#endif
