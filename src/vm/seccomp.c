// SPDX-License-Identifier: Apache-2.0
/*
 * The VMM's seccomp filter (see seccomp.h and docs/security.md).
 *
 * DOC: Theory of Operation
 * A classic BPF program, built once per spawn in the child: the
 * architecture is checked first (anything but x86-64, such as an int 0x80
 * i386 call, kills the process); x32 system calls are refused; then a list
 * of calls is refused with EPERM whatever their arguments; a few calls are
 * refused only for some arguments (a set-id mode, a node other than a
 * regular file, a namespace
 * flag, a personality other than Linux's); a few are answered ENOSYS so
 * that libraries fall back to an older call whose arguments the filter can
 * see (clone3, openat2) or to a plain event loop (io_uring, whose
 * operations bypass seccomp). Everything else is left to QEMU's own filter.
 */
#define _GNU_SOURCE
#include "vm/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "util/cleanup.h"

/* x86-64 only (the architecture check and the call numbers below), as msb itself. */

/* Newer than some headers. */
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif
#ifndef __NR_open_tree_attr
#define __NR_open_tree_attr 467
#endif
#define X32_SYSCALL_BIT 0x40000000u

struct denied {
	int nr;
	const char *name;
};

#define D(x)                                                                                       \
	{                                                                                          \
		__NR_##x, #x                                                                       \
	}
/* Refused with EPERM, whatever the arguments. */
static const struct denied denied[] = {
	/* file handles: open_by_handle_at() reaches any inode of a filesystem */
	D(open_by_handle_at),
	D(name_to_handle_at),
	/* mounts and the root */
	D(mount),
	D(umount2),
	D(pivot_root),
	D(chroot),
	D(move_mount),
	D(open_tree),
	D(open_tree_attr),
	D(fsopen),
	D(fsmount),
	D(fsconfig),
	D(fspick),
	D(mount_setattr),
	/* namespaces (clone's flags are checked below) */
	D(unshare),
	D(setns),
	/* other processes' memory, and the kernel's */
	D(ptrace),
	D(process_vm_readv),
	D(process_vm_writev),
	D(pidfd_getfd),
	D(kcmp),
	D(bpf),
	D(perf_event_open),
	/* no postcopy migration: msb saves to a file descriptor */
	D(userfaultfd),
	/* the kernel keyring */
	D(keyctl),
	D(add_key),
	D(request_key),
	/* modules, kexec, reboot, swap, accounting, the kernel log, the clock, names */
	D(init_module),
	D(finit_module),
	D(delete_module),
	D(kexec_load),
	D(kexec_file_load),
	D(reboot),
	D(swapon),
	D(swapoff),
	D(acct),
	D(syslog),
	D(quotactl),
	D(quotactl_fd),
	D(settimeofday),
	D(clock_settime),
	D(clock_adjtime),
	D(adjtimex),
	D(sethostname),
	D(setdomainname),
	D(iopl),
	D(ioperm),
	D(vhangup),
	D(uselib),
	D(lookup_dcookie),
	D(fanotify_init),
};
#undef D

/* Answered ENOSYS: the callers fall back to a call the filter can inspect or do without. */
static const int enosys[] = {
	__NR_clone3, __NR_openat2, __NR_io_uring_setup, __NR_io_uring_enter, __NR_io_uring_register,
};

/* A call whose argument @arg must not have any bit of @bits. */
struct mode_rule {
	int nr;
	unsigned int arg;
	int flags;   /* the open flags' argument: the mode counts only with O_CREAT or O_TMPFILE */
	bool device; /* also: the mode must make a regular file (no device, FIFO or socket) */
	bool dirs;   /* may change a directory: setgid allowed with setgid_dirs */
};

/* Files the VMM creates or changes through a share: no set-id bit, no device. */
static const struct mode_rule mode_rules[] = {
	{ __NR_chmod, 1, -1, false, true },    { __NR_fchmod, 1, -1, false, true },
	{ __NR_fchmodat, 2, -1, false, true }, { __NR_fchmodat2, 2, -1, false, true },
	{ __NR_mkdir, 1, -1, false, true },    { __NR_mkdirat, 2, -1, false, true },
	{ __NR_open, 2, 1, false, false },     { __NR_openat, 3, 2, false, false },
	{ __NR_creat, 1, -1, false, false },   { __NR_mknod, 1, -1, true, false },
	{ __NR_mknodat, 2, -1, true, false },
};

#define NS_FLAGS                                                                                   \
	(CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | \
	 CLONE_NEWCGROUP)
#define PROG_MAX 256

struct prog {
	struct sock_filter f[PROG_MAX];
	unsigned short n;
	bool full;
};

static void emit(struct prog *p, struct sock_filter ins)
{
	if (p->n >= PROG_MAX) {
		p->full = true;
		return;
	}
	p->f[p->n++] = ins;
}

#define LD_NR	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define RET(v)	BPF_STMT(BPF_RET | BPF_K, (v))
#define EPERM_R (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
#define ALLOW_R SECCOMP_RET_ALLOW

/* The low 32 bits of argument @i (x86-64 is little-endian). */
static struct sock_filter ld_arg(unsigned int i)
{
	uint32_t off = (uint32_t)(offsetof(struct seccomp_data, args) + sizeof(uint64_t) * i);

	return (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, off);
}

/* if (nr == @nr) { @body } ; @body ends with a return, and the accumulator is reloaded after */
static void block(struct prog *p, int nr, const struct sock_filter *body, unsigned char len)
{
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, len));
	for (unsigned char i = 0; i < len; i++)
		emit(p, body[i]);
}

static void build(struct prog *p, bool setgid_dirs)
{
	emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					     offsetof(struct seccomp_data, arch)));
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
	emit(p, (struct sock_filter)RET(SECCOMP_RET_KILL_PROCESS));
	emit(p, (struct sock_filter)LD_NR);
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, 0, 1));
	emit(p, (struct sock_filter)RET(EPERM_R));
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		const struct sock_filter body[] = { RET(EPERM_R) };

		block(p, denied[i].nr, body, 1);
	}
	for (size_t i = 0; i < sizeof(enosys) / sizeof(enosys[0]); i++) {
		const struct sock_filter body[] = { RET(SECCOMP_RET_ERRNO | ENOSYS) };

		block(p, enosys[i], body, 1);
	}
	for (size_t i = 0; i < sizeof(mode_rules) / sizeof(mode_rules[0]); i++) {
		const struct mode_rule *m = &mode_rules[i];
		uint32_t setid = m->dirs && setgid_dirs ? S_ISUID : S_ISUID | S_ISGID;
		const struct sock_filter created[] = {
			ld_arg((unsigned int)m->flags),
			BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, O_CREAT | (__O_TMPFILE & ~O_DIRECTORY),
				 0, 3),
			ld_arg(m->arg),
			BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, S_ISUID | S_ISGID, 0, 1),
			RET(EPERM_R),
			RET(ALLOW_R),
		};
		const struct sock_filter plain[] = {
			ld_arg(m->arg),
			BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, setid, 0, 1),
			RET(EPERM_R),
			RET(ALLOW_R),
		};
		/* A regular file only: QEMU 7.2 refuses to open special files it made anyway. */
		const struct sock_filter device[] = {
			ld_arg(m->arg),
			BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, S_ISUID | S_ISGID, 3, 0),
			BPF_STMT(BPF_ALU | BPF_AND | BPF_K, S_IFMT),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 0),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, S_IFREG, 1, 0),
			RET(EPERM_R),
			RET(ALLOW_R),
		};
		if (m->flags >= 0)
			block(p, m->nr, created, sizeof(created) / sizeof(created[0]));
		else if (m->device)
			block(p, m->nr, device, sizeof(device) / sizeof(device[0]));
		else
			block(p, m->nr, plain, sizeof(plain) / sizeof(plain[0]));
	}
	{
		/* Threads, not namespaces. */
		const struct sock_filter clone_body[] = {
			ld_arg(0),
			BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 0, 1),
			RET(EPERM_R),
			RET(ALLOW_R),
		};
		/* Only the query (0xffffffff) and plain Linux (0): no READ_IMPLIES_EXEC, no
		 * ADDR_NO_RANDOMIZE. */
		const struct sock_filter pers_body[] = {
			ld_arg(0),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffffu, 1, 0),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
			RET(ALLOW_R),
			RET(EPERM_R),
		};

		block(p, __NR_clone, clone_body, sizeof(clone_body) / sizeof(clone_body[0]));
		block(p, __NR_personality, pers_body, sizeof(pers_body) / sizeof(pers_body[0]));
	}
	emit(p, (struct sock_filter)RET(ALLOW_R));
}

int vmm_seccomp_install(bool setgid_dirs)
{
	static struct prog p; /* the child of a fork: no other thread shares it */
	struct sock_fprog fprog;

	p.n = 0;
	p.full = false;
	build(&p, setgid_dirs);
	if (p.full)
		return -E2BIG;
	fprog.len = p.n;
	fprog.filter = p.f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
		return -errno;
	return 0;
}

const char *const *vmm_seccomp_denied(size_t *n)
{
	static const char *names[sizeof(denied) / sizeof(denied[0])];

	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		names[i] = denied[i].name;
	*n = sizeof(denied) / sizeof(denied[0]);
	return names;
}
