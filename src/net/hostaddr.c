// SPDX-License-Identifier: Apache-2.0
/*
 * The host's own addresses, kept current, so that the policy can treat them as
 * the host (like its loopback) and never as "public".
 *
 * DOC: Theory of Operation
 * A service on the host listening on a wildcard address answers on every
 * address of every interface: a desktop's global IPv6 address or a server's
 * public IPv4 address reach it as well as 127.0.0.1 does. Those addresses
 * belong to the host, whatever ip_groups() says of their ranges. The set
 * starts from getifaddrs() and follows the kernel's RTM_NEWADDR/RTM_DELADDR
 * notifications on a NETLINK_ROUTE socket opened before the network process
 * confines itself (reading it needs no other system call than recv). The
 * kernel is the only sender on that socket, but its messages are still read
 * through checked lengths. At most HOSTADDR_MAX addresses are kept (a host
 * with more, or one whose notifications overflowed the socket, is flagged in
 * @overflow and logged once by the stack: its extra addresses count by their
 * ranges only).
 */
#define _GNU_SOURCE
#include "net/hostaddr.h"

#include <errno.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void add(struct hostaddrs *h, const struct ipaddr *ip)
{
	if (hostaddr_is_host(h, ip))
		return;
	if (h->n < HOSTADDR_MAX)
		h->addr[h->n++] = *ip;
	else
		h->overflow = true;
}

static void del(struct hostaddrs *h, const struct ipaddr *ip)
{
	for (size_t i = 0; i < h->n; i++) {
		if (ip_equal(&h->addr[i], ip)) {
			h->addr[i] = h->addr[--h->n];
			return;
		}
	}
}

/* The whole set from getifaddrs(). Return: 0 or -errno. */
static int load(struct hostaddrs *h)
{
	struct ifaddrs *ifa = NULL;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	h->n = 0;
	h->overflow = false;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		struct ipaddr ip;

		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			ip = ip_from4_bytes(
				(const uint8_t *)&((const struct sockaddr_in *)i->ifa_addr)
					->sin_addr);
		else if (i->ifa_addr->sa_family == AF_INET6)
			ip = ip_from6(
				((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr.s6_addr);
		else
			continue;
		add(h, &ip);
	}
	freeifaddrs(ifa);
	return 0;
}

int hostaddr_open(struct hostaddrs *h)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
				  .nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR };
	int r;

	memset(h, 0, sizeof(*h));
	/* Subscribed first, so that no change between the two is missed. */
	h->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (h->fd >= 0 && bind(h->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(h->fd);
		h->fd = -1;
	}
	r = h->fd < 0 ? -errno : 0;
	if (load(h) < 0)
		r = -errno;
	return r;
}

/* One RTM_NEWADDR/RTM_DELADDR message of @len bytes at @m (its header checked). */
static void on_addr(struct hostaddrs *h, const struct nlmsghdr *m, size_t len)
{
	const struct ifaddrmsg *ifa = NLMSG_DATA(m);
	size_t off = NLMSG_LENGTH(sizeof(*ifa));
	struct ipaddr ip;
	bool have = false;

	if (len < off)
		return;
	while (off + sizeof(struct rtattr) <= len) {
		const struct rtattr *a = (const struct rtattr *)((const char *)m + off);
		size_t alen = a->rta_len;

		if (alen < sizeof(*a) || alen > len - off)
			return;
		/* IFA_LOCAL is the interface's own address on point-to-point links. */
		if ((a->rta_type == IFA_LOCAL || (a->rta_type == IFA_ADDRESS && !have))) {
			size_t dl = alen - RTA_LENGTH(0);

			if (ifa->ifa_family == AF_INET && dl == 4) {
				ip = ip_from4_bytes(RTA_DATA(a));
				have = true;
			} else if (ifa->ifa_family == AF_INET6 && dl == 16) {
				ip = ip_from6(RTA_DATA(a));
				have = true;
			}
		}
		off += RTA_ALIGN(alen);
	}
	if (!have)
		return;
	if (m->nlmsg_type == RTM_NEWADDR)
		add(h, &ip);
	else
		del(h, &ip);
}

void hostaddr_event(struct hostaddrs *h)
{
	uint8_t buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));

	for (int k = 0; k < 64; k++) {
		ssize_t n = recv(h->fd, buf, sizeof(buf), MSG_DONTWAIT);
		size_t off = 0;

		if (n < 0) {
			/* ENOBUFS: notifications were lost; the set may be stale. */
			if (errno == ENOBUFS)
				h->overflow = true;
			return;
		}
		while (off + sizeof(struct nlmsghdr) <= (size_t)n) {
			const struct nlmsghdr *m = (const struct nlmsghdr *)(buf + off);
			size_t ml = m->nlmsg_len;

			if (ml < sizeof(*m) || ml > (size_t)n - off)
				break;
			if (m->nlmsg_type == RTM_NEWADDR || m->nlmsg_type == RTM_DELADDR)
				on_addr(h, m, ml);
			off += NLMSG_ALIGN(ml);
		}
	}
}

bool hostaddr_is_host(const struct hostaddrs *h, const struct ipaddr *ip)
{
	for (size_t i = 0; i < h->n; i++)
		if (ip_equal(&h->addr[i], ip))
			return true;
	return false;
}

void hostaddr_close(struct hostaddrs *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}
