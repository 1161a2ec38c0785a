// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for the VMM's seccomp filter (src/vm/seccomp.c): each check
 * runs in a forked child that installs the filter and reports through its
 * exit status, so the test process itself stays unfiltered. Every denial
 * has its control: the same call, or the call with harmless arguments,
 * gets through.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "vm/seccomp.h"

static char dir[] = "/tmp/msb-seccomp-XXXXXX";

/* Runs @fn in a child, filtered when @filtered (2: with setgid_dirs); returns its exit status (or
 * 128 + signal). */
static int in_child(int (*fn)(void), int filtered)
{
	pid_t p = fork();
	int st;

	assert_true(p >= 0);
	if (p == 0) {
		/* Not cmocka's handlers: a crash must end this child, not run the tests on. */
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		if (filtered && vmm_seccomp_install(filtered == 2) < 0)
			_exit(99);
		_exit(fn());
	}
	assert_int_equal(waitpid(p, &st, 0), p);
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

/* 0 when the call failed with EPERM, 1 when it got through, 2 for another error. */
static int verdict(long r)
{
	return r >= 0 ? 1 : errno == EPERM ? 0 : 2;
}

static int do_name_to_handle_at(void)
{
	struct {
		struct file_handle h;
		unsigned char b[MAX_HANDLE_SZ];
	} fh = { .h.handle_bytes = MAX_HANDLE_SZ };
	int mnt;

	return verdict(name_to_handle_at(AT_FDCWD, "/", &fh.h, &mnt, 0));
}

static int do_unshare_nothing(void)
{
	return verdict(unshare(0));
}

static int do_keyctl(void)
{
	return verdict(syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* SESSION */, 0));
}

static int do_personality_bsd(void)
{
	return verdict(personality(PER_BSD));
}

static int do_personality_query(void)
{
	return verdict(personality(0xffffffff));
}

static int do_x32(void)
{
	long r = syscall(0x40000000 | SYS_getpid);

	return r >= 0 ? 1 : errno == EPERM ? 0 : 2;
}

static int do_i386(void)
{
	long r;

	__asm__ volatile("int $0x80"
			 : "=a"(r)
			 : "a"(20)
			 : "memory", "rcx", "r8", "r9", "r10", "r11"); /* getpid */
	return r > 0 ? 1 : 2;
}

static int do_clone_newuser(void)
{
	long c = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);

	if (c == 0)
		_exit(0);
	if (c > 0)
		waitpid((pid_t)c, NULL, 0);
	return verdict(c);
}

static int do_fork(void)
{
	pid_t c = fork();

	if (c == 0)
		_exit(0);
	if (c > 0)
		waitpid(c, NULL, 0);
	return verdict(c);
}

static int do_clone3(void)
{
	return syscall(SYS_clone3, NULL, 0) < 0 && errno == ENOSYS ? 0 : 2;
}

static char path[64];

static int do_chmod_suid(void)
{
	return verdict(chmod(path, 04755));
}

static int do_chmod_plain(void)
{
	return verdict(chmod(path, 0755));
}

static int do_fchmodat_sgid(void)
{
	return verdict(fchmodat(AT_FDCWD, path, 02755, 0));
}

static int do_create_suid(void)
{
	char p[80];

	snprintf(p, sizeof(p), "%s.suid", path);
	return verdict(open(p, O_WRONLY | O_CREAT, 04755));
}

static int do_open_suid_mode_without_creat(void)
{
	/* The mode means nothing without O_CREAT: not refused. */
	return verdict(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY, 04755));
}

static int do_mknod_regular(void)
{
	char p[80];

	snprintf(p, sizeof(p), "%s.reg", path);
	return verdict(mknod(p, S_IFREG | 0600, 0));
}

static int do_mknod_char(void)
{
	char p[80];

	snprintf(p, sizeof(p), "%s.null", path);
	return verdict(mknod(p, S_IFCHR | 0600, makedev(1, 3)));
}

static int do_mknod_fifo(void)
{
	char p[80];

	snprintf(p, sizeof(p), "%s.fifo%d", path, getpid());
	return verdict(mknod(p, S_IFIFO | 0600, 0));
}

static void test_denied_calls_get_eperm(void **state)
{
	(void)state;
	/* Controls first: unfiltered, these calls work here. */
	assert_int_equal(in_child(do_name_to_handle_at, 0), 1);
	assert_int_equal(in_child(do_unshare_nothing, 0), 1);
	assert_int_equal(in_child(do_personality_bsd, 0), 1);
	assert_int_equal(in_child(do_name_to_handle_at, 1), 0);
	assert_int_equal(in_child(do_unshare_nothing, 1), 0);
	assert_int_equal(in_child(do_keyctl, 1), 0);
	assert_int_equal(in_child(do_personality_bsd, 1), 0);
	assert_int_equal(in_child(do_personality_query, 1), 1);
	assert_int_equal(in_child(do_clone_newuser, 1), 0);
	assert_int_equal(in_child(do_fork, 1), 1);
	assert_int_equal(in_child(do_clone3, 1), 0);
}

static void test_foreign_abis(void **state)
{
	(void)state;
	assert_int_equal(in_child(do_x32, 1), 0);
	/* Only where this kernel runs i386 calls at all (ia32 emulation). */
	if (in_child(do_i386, 0) != 1) {
		print_message("      (no ia32 emulation here: the i386 check is skipped)\n");
		return;
	}
	assert_int_equal(in_child(do_i386, 1), 128 + SIGSYS);
}

static void test_no_set_id_modes_or_devices(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(in_child(do_chmod_plain, 1), 1);
	assert_int_equal(in_child(do_chmod_suid, 1), 0);
	assert_int_equal(in_child(do_fchmodat_sgid, 1), 0);
	assert_int_equal(in_child(do_create_suid, 1), 0);
	assert_int_equal(in_child(do_open_suid_mode_without_creat, 1), 1);
	/* An ordinary user's VMM may make set-gid directories (and so files), never set-uid. */
	assert_int_equal(in_child(do_fchmodat_sgid, 2), 1);
	assert_int_equal(in_child(do_chmod_suid, 2), 0);
	assert_int_equal(in_child(do_create_suid, 2), 0);
	assert_int_equal(in_child(do_chmod_plain, 1), 1);
	assert_int_equal(in_child(do_mknod_fifo, 0), 1);
	assert_int_equal(in_child(do_mknod_fifo, 1), 0);
	assert_int_equal(in_child(do_mknod_char, 1), 0);
	assert_int_equal(in_child(do_mknod_regular, 1), 1);
	{
		struct stat st;
		char p[80];

		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0755);
		snprintf(p, sizeof(p), "%s.suid", path);
		assert_int_equal(access(p, F_OK), -1);
		snprintf(p, sizeof(p), "%s.null", path);
		assert_int_equal(access(p, F_OK), -1);
	}
	/* The unfiltered control: as root, the same chmod works. */
	if (getuid() == 0)
		assert_int_equal(in_child(do_chmod_suid, 0), 1);
}

static void test_denied_names(void **state)
{
	size_t n;
	const char *const *names = vmm_seccomp_denied(&n);
	const char *want[] = { "open_by_handle_at", "mount",   "ptrace", "bpf",	   "userfaultfd",
			       "kexec_load",	    "unshare", "setns",	 "chroot", "syslog" };

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		bool found = false;

		for (size_t k = 0; k < n && !found; k++)
			found = !strcmp(names[k], want[i]);
		if (!found)
			fail_msg("%s is not denied", want[i]);
	}
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_denied_calls_get_eperm),
		cmocka_unit_test(test_foreign_abis),
		cmocka_unit_test(test_no_set_id_modes_or_devices),
		cmocka_unit_test(test_denied_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
