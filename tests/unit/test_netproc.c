// SPDX-License-Identifier: Apache-2.0
/*
 * The network process: its configuration round trip, its wire, and its
 * confinement, probed the way Firecracker tests its jailer: a child confines
 * itself exactly as the process does, then tries what it must not do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/addr.h"
#include "net/netproc.h"

static struct ipaddr ip(const char *s)
{
	struct ipaddr a;

	assert_int_equal(ip_parse(s, &a), 0);
	return a;
}

static void test_config_round_trip(void **state)
{
	struct net_policy pol;
	struct net_port ports[2] = {
		{ .bind = ip("127.0.0.1"), .host_port = 8080, .guest_port = 80 },
		{ .udp = true, .bind = ip("::1"), .host_port = 5353, .guest_port = 53 },
	};
	struct net_config c = {
		.guest4 = ip("172.16.0.2"),
		.gw4 = ip("172.16.0.1"),
		.prefix4 = 30,
		.guest6 = ip("fd42:6d73:62::2"),
		.gw6 = ip("fd42:6d73:62::1"),
		.prefix6 = 64,
		.guest_mac = { 2, 0x6d, 0x73, 1, 2, 3 },
		.gw_mac = { 2, 0x6d, 0x73, 0, 0, 1 },
		.policy = &pol,
		.dns_timeout_ms = 300,
		.rebind_protection = true,
		.max_connections = 7,
		.ports = ports,
		.nports = 2,
	};
	struct sockaddr_in *s4 = (struct sockaddr_in *)&c.dns[0];
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&c.dns[1];
	struct netconf nc;
	char err[256], *text;

	(void)state;
	policy_init(&pol);
	assert_int_equal(
		policy_add(&pol, "allow@good.test:tcp:443,deny@10.0.0.0/8", err, sizeof(err)), 0);
	s4->sin_family = AF_INET;
	s4->sin_port = htons(53);
	s4->sin_addr.s_addr = htonl(0xc6336435);
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(5300);
	s6->sin6_addr.s6_addr[15] = 1;
	c.ndns = 2;
	text = netconf_to_json(&c, 1234, 5678);
	assert_non_null(text);
	assert_int_equal(netconf_from_json(text, &nc, err, sizeof(err)), 0);
	free(text);
	assert_memory_equal(&nc.cfg.guest4, &c.guest4, sizeof(c.guest4));
	assert_memory_equal(&nc.cfg.gw6, &c.gw6, sizeof(c.gw6));
	assert_int_equal(nc.cfg.prefix4, 30);
	assert_int_equal(nc.cfg.prefix6, 64);
	assert_memory_equal(nc.cfg.guest_mac, c.guest_mac, 6);
	assert_memory_equal(nc.cfg.gw_mac, c.gw_mac, 6);
	assert_int_equal(nc.cfg.dns_timeout_ms, 300);
	assert_true(nc.cfg.rebind_protection);
	assert_int_equal(nc.cfg.max_connections, 7);
	assert_int_equal(nc.cfg.ndns, 2);
	assert_memory_equal(&nc.cfg.dns[0], &c.dns[0], sizeof(struct sockaddr_in));
	assert_memory_equal(&nc.cfg.dns[1], &c.dns[1], sizeof(struct sockaddr_in6));
	assert_int_equal(nc.cfg.nports, 2);
	assert_true(nc.cfg.ports[1].udp);
	assert_int_equal(nc.cfg.ports[1].host_port, 5353);
	assert_int_equal(nc.cfg.ports[0].guest_port, 80);
	assert_int_equal(nc.policy.n, 2);
	assert_true(nc.policy.rules[0].allow);
	assert_int_equal(nc.uid, 1234);
	assert_int_equal(nc.gid, 5678);
	netconf_free(&nc);
	policy_free(&pol);

	/* Damaged configurations are refused, not half-read. */
	assert_int_equal(netconf_from_json("{}", &nc, err, sizeof(err)), -EINVAL);
	netconf_free(&nc);
	assert_int_equal(netconf_from_json("not json", &nc, err, sizeof(err)), -EINVAL);
	netconf_free(&nc);
}

static void test_wire(void **state)
{
	int sp[2];
	uint8_t buf[16], type;
	size_t len;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
	assert_int_equal(np_send(sp[0], NP_LOG, "\2hello", 6), 0);
	assert_int_equal(np_recv(sp[1], buf, sizeof(buf), &type, &len), 1);
	assert_int_equal(type, NP_LOG);
	assert_int_equal(len, 6);
	assert_memory_equal(buf + 1, "\2hello", 6);
	/* Longer than the receiver takes: refused, not cut and believed. */
	assert_int_equal(np_send(sp[0], NP_LOG, "0123456789abcdefghij", 20), 0);
	assert_int_equal(np_recv(sp[1], buf, sizeof(buf), &type, &len), -EMSGSIZE);
	close(sp[0]);
	assert_int_equal(np_recv(sp[1], buf, sizeof(buf), &type, &len), 0);
	close(sp[1]);
}

/* --- confinement probes ----------------------------------------------------------- */

enum probe {
	P_NOTHING,
	P_OPEN,
	P_EXEC,
	P_FORK,
	P_PTRACE,
	P_KILL,
	P_MOUNT,
	P_UNSHARE,
	P_UNIX,
	P_PACKET,
	P_NETLINK,
	P_RAW,
	P_EXEC_MAP,
	P_TCP,
	P_UDP,
	P_PING,
	P_CONNECT,
};

static int listener = -1;
static unsigned short listen_port;

/* What the child does once confined: return its errno (0: it worked). */
static int run_probe(enum probe p)
{
	int fd = -1;

	switch (p) {
	case P_NOTHING:
		return 0;
	case P_OPEN:
		fd = open("/etc/passwd", O_RDONLY);
		break;
	case P_EXEC:
		execl("/bin/true", "true", (char *)NULL);
		return errno;
	case P_FORK: {
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		return pid < 0 ? errno : 0;
	}
	case P_PTRACE:
		return ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 ? errno : 0;
	case P_KILL:
		return kill(getppid(), 0) < 0 ? errno : 0;
	case P_MOUNT:
		return mount("none", "/", "tmpfs", 0, NULL) < 0 ? errno : 0;
	case P_UNSHARE:
		return unshare(CLONE_NEWNET) < 0 ? errno : 0;
	case P_UNIX:
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		break;
	case P_PACKET:
		fd = socket(AF_PACKET, SOCK_RAW, 0);
		break;
	case P_NETLINK:
		fd = socket(AF_NETLINK, SOCK_RAW, 0);
		break;
	case P_RAW:
		fd = socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
		break;
	case P_EXEC_MAP: {
		void *m =
			mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		return m == MAP_FAILED ? errno : 0;
	}
	case P_TCP:
		fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		break;
	case P_UDP:
		fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
		break;
	case P_PING:
		/* The filter lets it through; the kernel may still say no (ping_group_range). */
		fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
		if (fd < 0 && errno == EACCES)
			return 0;
		break;
	case P_CONNECT: {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(listen_port) };

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			return errno;
		return write(fd, "x", 1) == 1 ? 0 : errno;
	}
	}
	return fd < 0 ? errno : 0;
}

/*
 * Fork, confine (or not), probe. Return: the wait status. With @status_out, the
 * child's /proc/PID/status is read while it waits, confined.
 */
static int probe(enum probe p, bool confine, char *status_out, size_t len)
{
	int go[2], ready[2], st;
	pid_t pid;
	char c = 0;

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char why[256];

		close(go[1]);
		close(ready[0]);
		if (confine && netproc_confine(65533, 65533, why, sizeof(why)) < 0) {
			(void)!write(2, why, strlen(why));
			_exit(200);
		}
		(void)!write(ready[1], "r", 1);
		(void)!read(go[0], &c, 1);
		_exit(run_probe(p));
	}
	close(go[0]);
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	if (status_out) {
		char path[64];
		FILE *f;
		size_t n;

		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		f = fopen(path, "r");
		assert_non_null(f);
		n = fread(status_out, 1, len - 1, f);
		status_out[n] = '\0';
		fclose(f);
	}
	(void)!write(go[1], "g", 1);
	close(go[1]);
	close(ready[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void expect_killed(enum probe p, const char *what)
{
	int st = probe(p, true, NULL, 0);

	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
		fail_msg("%s: expected SIGSYS, got %s %d", what,
			 WIFSIGNALED(st) ? "signal" : "exit",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void expect_errno(enum probe p, int want, const char *what)
{
	int st = probe(p, true, NULL, 0);

	if (!WIFEXITED(st) || WEXITSTATUS(st) != want)
		fail_msg("%s: expected errno %d, got %s %d", what, want,
			 WIFSIGNALED(st) ? "signal" : "exit",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void test_confined_process_state(void **state)
{
	char st[4096];
	int w;

	(void)state;
	w = probe(P_NOTHING, true, st, sizeof(st));
	assert_true(WIFEXITED(w));
	assert_int_equal(WEXITSTATUS(w), 0);
	assert_non_null(strstr(st, "NoNewPrivs:\t1"));
	assert_non_null(strstr(st, "Seccomp:\t2"));
	assert_non_null(strstr(st, "CapEff:\t0000000000000000"));
	assert_non_null(strstr(st, "CapPrm:\t0000000000000000"));
	assert_non_null(strstr(st, "CapBnd:\t0000000000000000"));
	if (geteuid() == 0)
		assert_non_null(strstr(st, "Uid:\t65533\t65533\t65533\t65533"));
	/* The control: not confined, the same child shows none of it. */
	w = probe(P_NOTHING, false, st, sizeof(st));
	assert_non_null(strstr(st, "Seccomp:\t0"));
}

static void test_confined_refusals(void **state)
{
	(void)state;
	/* Positive controls: unconfined, each probe does what it tries. */
	assert_int_equal(WEXITSTATUS(probe(P_OPEN, false, NULL, 0)), 0);
	assert_int_equal(WEXITSTATUS(probe(P_UNIX, false, NULL, 0)), 0);
	assert_int_equal(WEXITSTATUS(probe(P_FORK, false, NULL, 0)), 0);
	assert_int_equal(WEXITSTATUS(probe(P_KILL, false, NULL, 0)), 0);
	assert_int_equal(WEXITSTATUS(probe(P_EXEC_MAP, false, NULL, 0)), 0);

	expect_killed(P_OPEN, "open");
	expect_killed(P_EXEC, "execve");
	expect_killed(P_FORK, "fork");
	expect_killed(P_PTRACE, "ptrace");
	expect_killed(P_KILL, "kill");
	expect_killed(P_MOUNT, "mount");
	expect_killed(P_UNSHARE, "unshare");
	expect_errno(P_UNIX, EPERM, "AF_UNIX socket");
	expect_errno(P_PACKET, EPERM, "AF_PACKET socket");
	expect_errno(P_NETLINK, EPERM, "AF_NETLINK socket");
	expect_errno(P_RAW, EPERM, "raw socket");
	expect_errno(P_EXEC_MAP, EPERM, "executable mapping");
}

static void test_confined_network_still_works(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	char c;
	int fd;

	(void)state;
	listener = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(listener, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(listener, 4), 0);
	assert_int_equal(getsockname(listener, (struct sockaddr *)&a, &al), 0);
	listen_port = ntohs(a.sin_port);

	assert_int_equal(WEXITSTATUS(probe(P_TCP, true, NULL, 0)), 0);
	assert_int_equal(WEXITSTATUS(probe(P_UDP, true, NULL, 0)), 0);
	assert_int_equal(WEXITSTATUS(probe(P_PING, true, NULL, 0)), 0);
	assert_int_equal(WEXITSTATUS(probe(P_CONNECT, true, NULL, 0)), 0);
	fd = accept(listener, NULL, NULL);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, &c, 1), 1);
	assert_int_equal(c, 'x');
	close(fd);
	close(listener);
}

/* The whole process: configured, READY, and it answers every request, one after another. */
static void test_process_answers_each_request(void **state)
{
	struct net_policy pol;
	struct net_config c = {
		.guest4 = ip("172.16.0.2"),
		.gw4 = ip("172.16.0.1"),
		.prefix4 = 30,
		.guest6 = ip("fd42:6d73:62::2"),
		.gw6 = ip("fd42:6d73:62::1"),
		.prefix6 = 64,
		.guest_mac = { 2, 0x6d, 0x73, 1, 2, 3 },
		.gw_mac = { 2, 0x6d, 0x73, 0, 0, 1 },
		.policy = &pol,
		.dns_timeout_ms = 300,
	};
	int ctl[2], link[2], st;
	uint8_t buf[256], type;
	size_t len;
	char *text;
	pid_t pid;

	(void)state;
	alarm(60); /* a process that stops answering is a failure, not a stuck build */
	policy_init(&pol);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, link), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ctl[0]);
		close(link[0]);
		fcntl(link[1], F_SETFL, O_NONBLOCK);
		netproc_main(ctl[1], link[1]);
		_exit(99);
	}
	close(ctl[1]);
	close(link[1]);
	text = netconf_to_json(&c, 65533, 65533);
	assert_non_null(text);
	assert_int_equal(np_send(ctl[0], NP_CONFIG, text, strlen(text)), 0);
	free(text);
	do
		assert_int_equal(np_recv(ctl[0], buf, sizeof(buf), &type, &len), 1);
	while (type == NP_LOG);
	assert_int_equal(type, NP_READY);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(np_send(ctl[0], NP_STATS_REQ, NULL, 0), 0);
		do
			assert_int_equal(np_recv(ctl[0], buf, sizeof(buf), &type, &len), 1);
		while (type == NP_LOG);
		assert_int_equal(type, NP_STATS);
		assert_int_equal(len, sizeof(struct np_stats_wire));
	}
	/* Between requests the loop still serves the guest: an ARP request for the gateway
	 * (length-prefixed, as QEMU's stream netdev sends it) gets its answer. */
	{
		static const uint8_t arp[4 + 42] = {
			0,    0, 0, 42,	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0x6d,
			0x73, 1, 2, 3,	  0x08, 0x06, 0,    1,	  0x08, 0,    6, 4,
			0,    1, 2, 0x6d, 0x73, 1,    2,    3,	  172,	16,   0, 2,
			0,    0, 0, 0,	  0,	0,    172,  16,	  0,	1,
		};
		struct pollfd p = { .fd = link[0], .events = POLLIN };
		uint8_t reply[4 + 64];

		assert_int_equal(write(link[0], arp, sizeof(arp)), (ssize_t)sizeof(arp));
		assert_int_equal(poll(&p, 1, 5000), 1);
		assert_true(read(link[0], reply, sizeof(reply)) >= 4 + 42);
		assert_int_equal(reply[4 + 12], 0x08);
		assert_int_equal(reply[4 + 13], 0x06);
		assert_int_equal(reply[4 + 21], 2); /* a reply */
	}
	/* The supervisor goes: so does the process, at once. */
	close(ctl[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(link[0]);
	policy_free(&pol);
	alarm(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_round_trip),
		cmocka_unit_test(test_wire),
		cmocka_unit_test(test_confined_process_state),
		cmocka_unit_test(test_confined_refusals),
		cmocka_unit_test(test_confined_network_still_works),
		cmocka_unit_test(test_process_answers_each_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
