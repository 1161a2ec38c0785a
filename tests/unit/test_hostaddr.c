// SPDX-License-Identifier: Apache-2.0
/* The host's own addresses: read at start, followed as they change (netlink). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/hostaddr.h"

static struct ipaddr ip(const char *s)
{
	struct ipaddr a;

	assert_int_equal(ip_parse(s, &a), 0);
	return a;
}

/* Until @want holds for @s, reading notifications (at most 5 s). */
static bool follow(struct hostaddrs *h, const char *s, bool want)
{
	struct ipaddr a = ip(s);

	for (int i = 0; i < 500; i++) {
		struct pollfd p = { .fd = h->fd, .events = POLLIN };

		if (hostaddr_is_host(h, &a) == want)
			return true;
		if (poll(&p, 1, 10) == 1)
			hostaddr_event(h);
	}
	return hostaddr_is_host(h, &a) == want;
}

static int sh(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* In a network namespace of its own (root): addresses come and go, the set follows. */
static void test_follows_changes(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	if (geteuid() != 0 || sh("command -v ip > /dev/null") != 0) {
		skip();
		return;
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct hostaddrs h;

		if (unshare(CLONE_NEWNET) < 0)
			_exit(77);
		if (hostaddr_open(&h) < 0 || h.fd < 0)
			_exit(1);
		/* A new namespace: lo is down, no address at all. */
		if (h.n != 0)
			_exit(2);
		if (sh("ip link set lo up && ip addr add 198.51.100.77/32 dev lo && "
		       "ip addr add 2001:db8::77/128 dev lo nodad") != 0)
			_exit(3);
		if (!follow(&h, "198.51.100.77", true) || !follow(&h, "2001:db8::77", true) ||
		    !follow(&h, "127.0.0.1", true))
			_exit(4);
		if (hostaddr_is_host(&h, &(struct ipaddr){ 0 }) ||
		    hostaddr_is_host(&h, &(struct ipaddr){ .b = { [15] = 9 } }))
			_exit(5);
		if (sh("ip addr del 198.51.100.77/32 dev lo") != 0)
			_exit(6);
		if (!follow(&h, "198.51.100.77", false) || !follow(&h, "2001:db8::77", true))
			_exit(7);
		hostaddr_close(&h);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77) {
		skip();
		return;
	}
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* Without a namespace: what the host has now, its loopback at least. */
static void test_reads_the_host(void **state)
{
	struct hostaddrs h;
	struct ipaddr doc = ip("192.0.2.231");

	(void)state;
	hostaddr_open(&h);
	assert_true(h.n > 0);
	assert_false(hostaddr_is_host(&h, &doc));
	hostaddr_close(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_the_host),
		cmocka_unit_test(test_follows_changes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
