// SPDX-License-Identifier: Apache-2.0
/*
 * The guest's network: loopback up, and eth0 with the addresses, routes and
 * MTU the host leased to this sandbox. The host's stack answers for the
 * gateway (ARP, neighbour discovery, DNS); there is no DHCP or router
 * advertisement to wait for, so the sandbox can use its network as soon as
 * CONFIG is done. Plain ioctls: agentd carries no netlink code, and musl
 * has no kernel headers, so the one kernel structure it lacks is spelt here.
 */
#define _GNU_SOURCE
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/cleanup.h"

#define NET_IF "eth0"

/* The kernel's struct in6_ifreq (include/uapi/linux/ipv6.h). */
struct agent_in6_ifreq {
	struct in6_addr addr;
	uint32_t prefixlen;
	int ifindex;
};

static int if_up(int fd, const char *name, unsigned int mtu)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (mtu) {
		ifr.ifr_mtu = (int)mtu;
		if (ioctl(fd, SIOCSIFMTU, &ifr) < 0)
			alog("%s: mtu %u: %s", name, mtu, strerror(errno));
	}
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(fd, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

void agent_net_down(void)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", NET_IF);
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return;
	ifr.ifr_flags &= ~IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		alog(NET_IF ": down: %s", strerror(errno));
}

/* Best effort: a sysctl of the guest kernel. */
static void sysctl_set(const char *path, const char *value)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		alog("%s: %s", path, strerror(errno));
}

static int setup_v4(int fd, const struct proto_net *n)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	struct rtentry rt = { 0 };
	uint32_t mask = n->prefix4 ? htonl(~0u << (32 - n->prefix4)) : 0;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), NET_IF);
	sin->sin_family = AF_INET;
	memcpy(&sin->sin_addr, n->addr4, 4);
	if (ioctl(fd, SIOCSIFADDR, &ifr) < 0)
		return -errno;
	sin->sin_addr.s_addr = mask;
	if (ioctl(fd, SIOCSIFNETMASK, &ifr) < 0)
		return -errno;
	/* The default route through the gateway. */
	sin = (struct sockaddr_in *)&rt.rt_dst;
	sin->sin_family = AF_INET;
	sin = (struct sockaddr_in *)&rt.rt_genmask;
	sin->sin_family = AF_INET;
	sin = (struct sockaddr_in *)&rt.rt_gateway;
	sin->sin_family = AF_INET;
	memcpy(&sin->sin_addr, n->gw4, 4);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	rt.rt_dev = (char *)NET_IF;
	if (ioctl(fd, SIOCADDRT, &rt) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int setup_v6(int fd, const struct proto_net *n)
{
	struct agent_in6_ifreq ifr6 = { 0 };
	struct in6_rtmsg rt = { 0 };
	int idx = (int)if_nametoindex(NET_IF);

	if (!idx)
		return -errno;
	memcpy(&ifr6.addr, n->addr6, 16);
	ifr6.prefixlen = n->prefix6;
	ifr6.ifindex = idx;
	if (ioctl(fd, SIOCSIFADDR, &ifr6) < 0 && errno != EEXIST)
		return -errno;
	memcpy(&rt.rtmsg_gateway, n->gw6, 16);
	rt.rtmsg_flags = RTF_UP | RTF_GATEWAY;
	rt.rtmsg_metric = 1;
	rt.rtmsg_ifindex = idx;
	if (ioctl(fd, SIOCADDRT, &rt) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int agent_net_setup(const struct proto_config *c, char *why, size_t len)
{
	_cleanup_close_ int fd4 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	_cleanup_close_ int fd6 = -1;
	int r;

	if (fd4 < 0) {
		snprintf(why, len, "network: socket: %s", strerror(errno));
		return -errno;
	}
	r = if_up(fd4, "lo", 0);
	if (r < 0)
		alog("lo: %s", strerror(-r));
	if (!(c->flags & PROTO_CONFIG_NET))
		return 0;
	/* No duplicate address detection (nobody else is on this link), no autoconfiguration. */
	sysctl_set("/proc/sys/net/ipv6/conf/" NET_IF "/accept_dad", "0");
	sysctl_set("/proc/sys/net/ipv6/conf/" NET_IF "/accept_ra", "0");
	sysctl_set("/proc/sys/net/ipv6/conf/" NET_IF "/autoconf", "0");
	/* A guest restored from a template still has the template's address. */
	{
		struct ifreq ifr = { 0 };
		static const uint8_t none[6];

		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", NET_IF);
		ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
		memcpy(ifr.ifr_hwaddr.sa_data, c->net.mac, 6);
		if (memcmp(c->net.mac, none, 6) != 0 && ioctl(fd4, SIOCSIFHWADDR, &ifr) < 0)
			alog("network: " NET_IF " address: %s", strerror(errno));
	}
	r = if_up(fd4, NET_IF, c->net.mtu);
	if (r < 0) {
		snprintf(why, len, "network: " NET_IF ": %s", strerror(-r));
		return r;
	}
	r = setup_v4(fd4, &c->net);
	if (r < 0) {
		snprintf(why, len, "network: " NET_IF " IPv4: %s", strerror(-r));
		return r;
	}
	fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	r = fd6 < 0 ? -errno : setup_v6(fd6, &c->net);
	if (r < 0)
		/* A kernel without IPv6 still has a working IPv4 network. */
		alog("network: " NET_IF " IPv6: %s", strerror(-r));
	return 0;
}
