// SPDX-License-Identifier: Apache-2.0
/*
 * Confinement of the network process (netproc.h), after passt's isolation.c.
 *
 * DOC: Theory of Operation
 * The process has made everything it needs (its sockets, listeners, epoll
 * instance and timer) before it gets here; afterwards it can make network
 * sockets and nothing else. The order matters:
 *
 * 1. As root: no supplementary groups, then the unprivileged gid and uid the
 *    supervisor chose (the parent-death signal is set again: a change of
 *    credentials clears it).
 * 2. A new user namespace that maps only the process's own ids, then new
 *    mount, IPC and UTS namespaces (not a network one: its sockets must
 *    reach the host's network, or the pod's for the OCI runtime). The mounts
 *    are made private, an empty tmpfs (two inodes, 4 KiB) becomes the root
 *    with pivot_root(".", "."), the old root is detached and the new one
 *    remounted read-only. Nothing of the host's file system is left to name.
 *    A host that forbids unprivileged user namespaces skips this step, with a
 *    warning: the seccomp filter below forbids opening files anyway.
 * 3. No capabilities: bounding, ambient, effective, permitted, inheritable.
 * 4. RLIMIT_FSIZE, RLIMIT_NPROC and RLIMIT_CORE 0; not dumpable (no ptrace
 *    or /proc/PID/mem from processes of the same uid); no_new_privs.
 * 5. The seccomp allowlist, default action: kill the process. clone3 gets
 *    ENOSYS (so a library would fall back to clone, which is killed).
 *
 * The filter checks the architecture (a foreign one, or the x32 ABI, kills)
 * and three system calls' arguments: socket() takes AF_INET or AF_INET6,
 * SOCK_STREAM or SOCK_DGRAM (with NONBLOCK/CLOEXEC), and protocol 0, TCP,
 * UDP, ICMP or ICMPv6, both 32-bit halves compared; mmap() and mprotect()
 * never map executable memory. Others get EPERM for a bad argument.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net/netproc.h"
#include "util/log.h"

#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

/* System calls the event loop makes, allowed whatever their arguments. */
static const int allowed[] = {
	__NR_read,
	__NR_write,
	__NR_readv,
	__NR_writev,
	__NR_close,
#ifdef __NR_epoll_wait
	__NR_epoll_wait,
#endif
	__NR_epoll_pwait,
	__NR_epoll_ctl,
	__NR_connect,
	__NR_bind,
	__NR_listen,
#ifdef __NR_accept
	__NR_accept,
#endif
	__NR_accept4,
	__NR_getsockname,
	__NR_getpeername,
	__NR_getsockopt,
	__NR_setsockopt,
	__NR_sendto,
	__NR_recvfrom,
	__NR_sendmsg,
	__NR_recvmsg,
	__NR_sendmmsg,
	__NR_recvmmsg,
	__NR_shutdown,
	__NR_timerfd_settime,
	__NR_timerfd_gettime,
	__NR_clock_gettime,
	__NR_gettimeofday,
	__NR_getrandom,
	__NR_getpid,
	__NR_gettid,
	__NR_fcntl,
	__NR_brk,
	__NR_munmap,
	__NR_mremap,
	__NR_madvise,
	__NR_futex,
	__NR_sched_yield,
	__NR_rt_sigreturn,
	__NR_rt_sigprocmask,
	__NR_sigaltstack, /* the sanitizers' runtime, on the way out */
	__NR_restart_syscall,
	__NR_exit,
	__NR_exit_group,
};

/* The kernel's macros are initialisers: these make them values. */
#define STMT(c, k)	 ((struct sock_filter)BPF_STMT((c), (k)))
#define JUMP(c, k, t, f) ((struct sock_filter)BPF_JUMP((c), (k), (t), (f)))
#define LD_NR		 STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LD_ARG(i, hi)                                                                              \
	STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[(i)]) + ((hi) ? 4 : 0))
#define RET(v)	     STMT(BPF_RET | BPF_K, (v))
#define JEQ(k, t, f) JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))

static int sigsys_ctl = -1;

/* Debugging (MSB_NET_SECCOMP=trap): say which call it was, then die as the filter would. */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	char b[96];
	int n;

	(void)sig;
	(void)uc;
	n = snprintf(b, sizeof(b), "%cnetwork process: system call %d is outside its allowlist",
		     LOG_ERROR, si->si_syscall);
	if (n > 0 && sigsys_ctl >= 0) {
		uint8_t type = NP_LOG;
		struct iovec iov[2] = { { .iov_base = &type, .iov_len = 1 },
					{ .iov_base = b, .iov_len = (size_t)n } };
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };

		(void)!sendmsg(sigsys_ctl, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	_exit(128 + SIGSYS);
}

int netproc_seccomp(bool trap)
{
#ifndef SECCOMP_ARCH
	(void)trap;
	return -ENOSYS;
#else
	enum { NALLOWED = sizeof(allowed) / sizeof(allowed[0]) };
	struct sock_filter f[8 + 2 * NALLOWED + 32];
	struct sock_fprog prog;
	const uint32_t deny = trap ? SECCOMP_RET_TRAP : SECCOMP_RET_KILL_PROCESS;
	const uint32_t eperm = SECCOMP_RET_ERRNO | EPERM;
	size_t n = 0;

	f[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[n++] = JEQ(SECCOMP_ARCH, 1, 0);
	f[n++] = RET(SECCOMP_RET_KILL_PROCESS);
	f[n++] = LD_NR;
	f[n++] = JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1);
	f[n++] = RET(SECCOMP_RET_KILL_PROCESS);
	for (size_t i = 0; i < NALLOWED; i++) {
		f[n++] = JEQ((uint32_t)allowed[i], 0, 1);
		f[n++] = RET(SECCOMP_RET_ALLOW);
	}
	/* socket(domain, type, protocol): offsets below count to the EPERM at the end. */
	f[n++] = JEQ(__NR_socket, 0, 21);
	f[n++] = LD_ARG(0, 1);
	f[n++] = JEQ(0, 0, 18);
	f[n++] = LD_ARG(0, 0);
	f[n++] = JEQ(AF_INET, 1, 0);
	f[n++] = JEQ(AF_INET6, 0, 15);
	f[n++] = LD_ARG(1, 1);
	f[n++] = JEQ(0, 0, 13);
	f[n++] = LD_ARG(1, 0);
	f[n++] = STMT(BPF_ALU | BPF_AND | BPF_K, ~(uint32_t)(SOCK_NONBLOCK | SOCK_CLOEXEC));
	f[n++] = JEQ(SOCK_STREAM, 1, 0);
	f[n++] = JEQ(SOCK_DGRAM, 0, 9);
	f[n++] = LD_ARG(2, 1);
	f[n++] = JEQ(0, 0, 7);
	f[n++] = LD_ARG(2, 0);
	f[n++] = JEQ(0, 4, 0);
	f[n++] = JEQ(IPPROTO_TCP, 3, 0);
	f[n++] = JEQ(IPPROTO_UDP, 2, 0);
	f[n++] = JEQ(IPPROTO_ICMP, 1, 0);
	f[n++] = JEQ(IPPROTO_ICMPV6, 0, 1);
	f[n++] = RET(SECCOMP_RET_ALLOW);
	f[n++] = RET(eperm);
	/* The socket block returned; A still holds the number only on the skip path. */
	f[n++] = LD_NR;
	/* mmap and mprotect: never PROT_EXEC (the third argument of both). */
	f[n++] = JEQ(__NR_mmap, 1, 0);
	f[n++] = JEQ(__NR_mprotect, 0, 4);
	f[n++] = LD_ARG(2, 0);
	f[n++] = JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 1, 0);
	f[n++] = RET(SECCOMP_RET_ALLOW);
	f[n++] = RET(eperm);
	f[n++] = LD_NR;
#ifdef __NR_clone3
	f[n++] = JEQ(__NR_clone3, 0, 1);
	f[n++] = RET(SECCOMP_RET_ERRNO | ENOSYS);
#endif
	f[n++] = RET(deny);
	prog = (struct sock_fprog){ .len = (unsigned short)n, .filter = f };

	if (trap) {
		struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };

		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSYS, &sa, NULL) < 0)
			return -errno;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return -errno;
	return 0;
#endif
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t w;

	if (fd < 0)
		return -errno;
	w = write(fd, text, strlen(text));
	if (w < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	close(fd);
	return 0;
}

/* Step 2: own namespaces and an empty root. Return: 0, 1 when user namespaces are forbidden. */
static int namespaces(char *why, size_t len)
{
	char map[64];
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int r;

	if (unshare(CLONE_NEWUSER) < 0) {
		if (errno == EPERM || errno == EINVAL || errno == ENOSPC || errno == EUSERS)
			return 1;
		snprintf(why, len, "network process: unshare(CLONE_NEWUSER): %s", strerror(errno));
		return -errno;
	}
	snprintf(map, sizeof(map), "%u %u 1\n", uid, uid);
	r = write_file("/proc/self/setgroups", "deny");
	if (!r)
		r = write_file("/proc/self/uid_map", map);
	snprintf(map, sizeof(map), "%u %u 1\n", gid, gid);
	if (!r)
		r = write_file("/proc/self/gid_map", map);
	if (r < 0) {
		snprintf(why, len, "network process: user namespace map: %s", strerror(-r));
		return r;
	}
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) < 0 ||
	    mount("", "/", "", MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("msb-net", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "size=4k,nr_inodes=2,mode=0500") < 0 ||
	    chdir("/tmp") < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0 ||
	    mount("", "/", "", MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) <
		    0) {
		r = -errno;
		snprintf(why, len, "network process: an empty root: %s", strerror(-r));
		return r;
	}
	return 0;
}

static int drop_caps(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { { 0 } };

	for (int c = 0; c <= 63; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno == EINVAL)
			break;
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

int netproc_confine(uid_t uid, gid_t gid, char *why, size_t len)
{
	static const int zero_limits[] = { RLIMIT_FSIZE, RLIMIT_NPROC, RLIMIT_CORE };
	const char *mode = getenv("MSB_NET_SECCOMP");
	int r;

	if (geteuid() == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0) {
			r = -errno;
			snprintf(why, len, "network process: become %u:%u: %s", uid, gid,
				 strerror(-r));
			return r;
		}
		/* Changing credentials cleared both: the death signal, and the dumpable flag that
		 * lets this process write its own /proc/self/uid_map (it is cleared again below).
		 */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		if (getppid() == 1)
			_exit(1);
	}
	r = namespaces(why, len);
	if (r < 0)
		return r;
	if (r == 1)
		log_warn("network process: user namespaces are not available here: confined by "
			 "seccomp, no_new_privs and limits only");
	r = drop_caps();
	if (r < 0) {
		snprintf(why, len, "network process: drop capabilities: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < sizeof(zero_limits) / sizeof(zero_limits[0]); i++) {
		struct rlimit rl = { 0, 0 };

		if (setrlimit(zero_limits[i], &rl) < 0) {
			r = -errno;
			snprintf(why, len, "network process: limits: %s", strerror(-r));
			return r;
		}
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		r = -errno;
		snprintf(why, len, "network process: not dumpable: %s", strerror(-r));
		return r;
	}
	r = netproc_seccomp(mode && !strcmp(mode, "trap"));
	if (r < 0) {
		snprintf(why, len, "network process: seccomp: %s", strerror(-r));
		return r;
	}
	return 0;
}

void netproc_set_sigsys_fd(int fd)
{
	sigsys_ctl = fd;
}
