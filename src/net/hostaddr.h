/* SPDX-License-Identifier: Apache-2.0 */
/* The host's own addresses, kept current (see hostaddr.c). */
#ifndef MSB_NET_HOSTADDR_H
#define MSB_NET_HOSTADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "net/addr.h"

#define HOSTADDR_MAX 1024

struct hostaddrs {
	int fd; /* NETLINK_ROUTE, address notifications; -1 when none */
	struct ipaddr addr[HOSTADDR_MAX];
	size_t n;
	bool overflow; /* more addresses than HOSTADDR_MAX, or lost notifications */
};

/*
 * hostaddr_open() - the host's addresses now, and a socket that reports
 * changes (watch @h->fd for EPOLLIN, then call hostaddr_event()).
 * Return: 0, or -errno when either could not be had (what could is kept:
 * @h->fd is -1 without the socket).
 */
int hostaddr_open(struct hostaddrs *h);
void hostaddr_event(struct hostaddrs *h);

/* hostaddr_is_host() - is @ip one of the host's own addresses? */
bool hostaddr_is_host(const struct hostaddrs *h, const struct ipaddr *ip);
void hostaddr_close(struct hostaddrs *h);

#endif
