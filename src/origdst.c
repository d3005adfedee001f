/*
 * Original destination lookup and loop guard. See include/zring/origdst.h.
 */
#include "zring/origdst.h"

#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <string.h>

int origdst_get(int fd, int family, union addr *out)
{
	socklen_t len = sizeof(*out);
	int ret;

	memset(out, 0, sizeof(*out));
	if (family == AF_INET6)
		ret = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, &len);
	else
		ret = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, &len);
	if (ret < 0)
		return -errno;
	addr_unmap(out);
	return 0;
}

static bool same_host(const union addr *a, const union addr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET6)
		return memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
	return a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
}

static bool port_in(uint16_t port, const struct addr_list *l)
{
	for (unsigned i = 0; i < l->n; i++)
		if (addr_port(&l->a[i]) == port)
			return true;
	return false;
}

bool origdst_capture_port(uint16_t port, const struct opts *o)
{
	return port_in(port, &o->outbound) || port_in(port, &o->inbound) ||
	       port_in(port, &o->hbone);
}

bool origdst_own_port(uint16_t port, const struct opts *o)
{
	return origdst_capture_port(port, o) || port_in(port, &o->admin) ||
	       port_in(port, &o->readiness) || port_in(port, &o->metrics);
}

bool origdst_is_self(const union addr *dst, const union addr *local,
		     const struct opts *opts)
{
	if (addr_equal(dst, local))
		return true;
	if (addr_port(dst) == 0)
		return true;
	/* A redirected connection reports a loopback or local destination
	 * only when it was aimed at this host; with one of our ports that is
	 * zring itself. A remote host's 15001 is a legitimate destination. */
	uint16_t port = addr_port(dst);
	if (origdst_own_port(port, opts))
		return addr_is_loopback(dst) || addr_is_any(dst) || same_host(dst, local);
	return false;
}

bool origdst_is_self_fd(const union addr *dst, int fd, const struct opts *opts)
{
	uint16_t port = addr_port(dst);
	if (port == 0)
		return true;
	if (!origdst_own_port(port, opts))
		return false;
	union addr local;
	socklen_t len = sizeof(local);
	if (getsockname(fd, &local.sa, &len) < 0)
		return true;	/* cannot tell: refuse, the safe side */
	addr_unmap(&local);
	return origdst_is_self(dst, &local, opts);
}
