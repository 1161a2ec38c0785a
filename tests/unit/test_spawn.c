// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for spawn(): descriptor placement, closing everything else, the
 * child's signal state, errors reported instead of a child that exits 127,
 * and dying with the parent. The test binary re-executes itself
 * (/proc/self/exe --child MODE) to report what a spawned program sees.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/spawn.h"

/* --- the child side: what a spawned program sees ------------------------ */

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* One line per open descriptor: "N:TARGET:MODE", sorted by N. */
static int child_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int fds[256], n = 0;

	if (!d)
		return 2;
	while ((de = readdir(d)) && n < 256) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] != '.' && fd != dirfd(d))
			fds[n++] = fd;
	}
	qsort(fds, (size_t)n, sizeof(int), cmp_int);
	for (int i = 0; i < n; i++) {
		char p[64], target[256];
		int fl = fcntl(fds[i], F_GETFL);
		ssize_t k;

		snprintf(p, sizeof(p), "/proc/self/fd/%d", fds[i]);
		k = readlink(p, target, sizeof(target) - 1);
		target[k > 0 ? k : 0] = '\0';
		printf("%d:%s:%s\n", fds[i], target,
		       (fl & O_ACCMODE) == O_RDWR     ? "rw"
		       : (fl & O_ACCMODE) == O_WRONLY ? "w"
						      : "r");
	}
	closedir(d);
	return 0;
}

/* The blocked and ignored signal sets, as the kernel reports them. */
static int child_sigs(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];

	if (!f)
		return 2;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "SigBlk:", 7) || !strncmp(line, "SigIgn:", 7))
			fputs(line, stdout);
	fclose(f);
	return 0;
}

static int child_ids(void)
{
	printf("%d %d\n", (int)getpid(), (int)getsid(0));
	return 0;
}

static int child_main(const char *mode)
{
	int r = 2;

	if (!strcmp(mode, "fds"))
		r = child_fds();
	else if (!strcmp(mode, "sigs"))
		r = child_sigs();
	else if (!strcmp(mode, "ids"))
		r = child_ids();
	fflush(stdout);
	return r;
}

/* --- helpers for the parent side --------------------------------------- */

/* Everything from @fd until EOF (NUL-terminated; the caller frees). */
static char *read_all(int fd)
{
	size_t len = 0, cap = 4096;
	char *s = malloc(cap);

	assert_non_null(s);
	for (;;) {
		ssize_t n;

		if (cap - len < 1024) {
			cap *= 2;
			s = realloc(s, cap);
			assert_non_null(s);
		}
		n = read(fd, s + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n >= 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	s[len] = '\0';
	return s;
}

/* What readlink says about one of our descriptors ("pipe:[123]", "/dev/null"...). */
static void fd_target(int fd, char *out, size_t len)
{
	char p[64];
	ssize_t k;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	k = readlink(p, out, len - 1);
	assert_true(k > 0);
	out[k] = '\0';
}

/* Waits for @pid and returns its wait status. */
static int reap(pid_t pid)
{
	int st = -1;

	assert_int_equal(spawn_wait(pid, &st), 0);
	return st;
}

/* No child of ours is left, running or zombie. */
static void assert_no_children(void)
{
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static char *const fds_argv[] = { "/proc/self/exe", "--child", "fds", NULL };
static char *const sigs_argv[] = { "/proc/self/exe", "--child", "sigs", NULL };
static char *const ids_argv[] = { "/proc/self/exe", "--child", "ids", NULL };

/*
 * Runs @o (whose fds[1] must be SPAWN_USE_OUT) with fd 1 on a pipe and
 * returns what the child printed there; checks it exited 0.
 */
#define SPAWN_USE_OUT (-100)
static char *run_capture(struct spawn_opts *o, char *out_target, size_t len)
{
	int p[2], st;
	pid_t pid;
	char *s;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	for (int i = 0; i < o->nfds; i++)
		if (o->fds[i] == SPAWN_USE_OUT)
			o->fds[i] = p[1];
	if (out_target)
		fd_target(p[1], out_target, len);
	assert_int_equal(spawn(o, &pid), 0);
	close(p[1]);
	s = read_all(p[0]);
	close(p[0]);
	st = reap(pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	return s;
}

/*
 * Puts a copy of @src at exactly @target, keeping whatever was there to put
 * back with unpark(). Return: the saved descriptor, or -1 if @target was free.
 */
static int park(int target, int src, bool cloexec)
{
	int saved = fcntl(target, F_DUPFD_CLOEXEC, 100);

	assert_int_equal(dup3(src, target, cloexec ? O_CLOEXEC : 0), target);
	return saved;
}

static void unpark(int target, int saved)
{
	if (saved >= 0) {
		dup2(saved, target);
		close(saved);
	} else {
		close(target);
	}
}

/* --- descriptor placement ---------------------------------------------- */

static void test_stdio_placed_and_nothing_else(void **state)
{
	char out[64], expect[512], *got;
	struct spawn_opts o = spawn_opts_stdio(fds_argv, SPAWN_NULL, SPAWN_USE_OUT, SPAWN_USE_OUT);
	int leak1, leak2, leak3 = 200, saved;

	(void)state;
	/* Descriptors the parent leaves inheritable must not reach the child. */
	leak1 = open("/dev/null", O_RDONLY);
	leak2 = open("/", O_RDONLY | O_DIRECTORY);
	assert_true(leak1 >= 0 && leak2 >= 0);
	saved = park(leak3, leak1, false);
	got = run_capture(&o, out, sizeof(out));
	snprintf(expect, sizeof(expect), "0:/dev/null:rw\n1:%s:w\n2:%s:w\n", out, out);
	assert_string_equal(got, expect);
	free(got);
	unpark(leak3, saved);
	close(leak1);
	close(leak2);
}

static void test_source_already_at_its_target_loses_cloexec(void **state)
{
	char out[64], cpipe[64], expect[512], *got;
	struct spawn_opts o = spawn_opts_stdio(fds_argv, SPAWN_NULL, SPAWN_USE_OUT, SPAWN_NULL);
	int c[2], saved;

	(void)state;
	/* fd 3 is a close-on-exec pipe and must be fd 3 in the child: dup2(3, 3) would keep
	 * CLOEXEC. */
	assert_int_equal(pipe2(c, O_CLOEXEC), 0);
	saved = park(3, c[1], true);
	fd_target(3, cpipe, sizeof(cpipe));
	o.fds[3] = 3;
	o.nfds = 4;
	got = run_capture(&o, out, sizeof(out));
	unpark(3, saved);
	snprintf(expect, sizeof(expect), "0:/dev/null:rw\n1:%s:w\n2:/dev/null:rw\n3:%s:w\n", out,
		 cpipe);
	assert_string_equal(got, expect);
	free(got);
	close(c[0]);
	close(c[1]);
}

static void test_swapped_stdin_and_stdout(void **state)
{
	char ta[64], tb[64], expect[512], *got;
	struct spawn_opts o = spawn_opts_stdio(fds_argv, 1, 0, SPAWN_NULL);
	int a[2], b[2], save0, save1, r, st = -1;
	pid_t pid = -1;

	(void)state;
	/*
	 * fds {1, 0}: the child's stdin is our fd 1 and its stdout our fd 0.
	 * Placing them one after the other without a copy would give the child
	 * the same descriptor twice.
	 */
	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	fd_target(a[1], ta, sizeof(ta));
	fd_target(b[1], tb, sizeof(tb));
	fflush(stdout);
	save0 = park(0, a[1], true); /* our fd 0: pipe A -> the child's stdout */
	save1 = park(1, b[1], true); /* our fd 1: pipe B -> the child's stdin */
	r = spawn(&o, &pid);
	/* Restore before any assertion: cmocka prints on fd 1. */
	unpark(0, save0);
	unpark(1, save1);
	close(a[1]);
	close(b[1]);
	assert_int_equal(r, 0);
	got = read_all(a[0]);
	st = reap(pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	snprintf(expect, sizeof(expect), "0:%s:w\n1:%s:w\n2:/dev/null:rw\n", tb, ta);
	assert_string_equal(got, expect);
	free(got);
	close(a[0]);
	close(b[0]);
}

static void test_rotated_three_way(void **state)
{
	char t[3][64], out[64], expect[512], *got;
	struct spawn_opts o = spawn_opts_stdio(fds_argv, SPAWN_NULL, SPAWN_USE_OUT, SPAWN_NULL);
	int p[3][2], saved[3];

	(void)state;
	/* Our 3, 4, 5 become the child's 4, 5, 3. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pipe2(p[i], O_CLOEXEC), 0);
		fd_target(p[i][1], t[i], sizeof(t[i]));
	}
	for (int i = 0; i < 3; i++)
		saved[i] = park(3 + i, p[i][1], true);
	o.fds[3] = 5;
	o.fds[4] = 3;
	o.fds[5] = 4;
	o.nfds = 6;
	got = run_capture(&o, out, sizeof(out));
	for (int i = 2; i >= 0; i--)
		unpark(3 + i, saved[i]);
	snprintf(expect, sizeof(expect),
		 "0:/dev/null:rw\n1:%s:w\n2:/dev/null:rw\n3:%s:w\n4:%s:w\n5:%s:w\n", out, t[2],
		 t[0], t[1]);
	assert_string_equal(got, expect);
	free(got);
	for (int i = 0; i < 3; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
}

static void test_null_and_closed(void **state)
{
	char out[64], expect[512], *got;
	struct spawn_opts o = spawn_opts_stdio(fds_argv, SPAWN_CLOSED, SPAWN_USE_OUT, SPAWN_NULL);

	(void)state;
	/* Our fd 0 and 2 are open; the child's stay closed or get /dev/null as asked. */
	o.fds[3] = SPAWN_NULL;
	o.fds[4] = SPAWN_CLOSED;
	o.fds[5] = SPAWN_NULL;
	o.nfds = 6;
	got = run_capture(&o, out, sizeof(out));
	snprintf(expect, sizeof(expect), "1:%s:w\n2:/dev/null:rw\n3:/dev/null:rw\n5:/dev/null:rw\n",
		 out);
	assert_string_equal(got, expect);
	free(got);
}

static void test_parent_with_stdin_closed(void **state)
{
	char out[64], expect[512], *got;
	struct spawn_opts o = spawn_opts_stdio(fds_argv, SPAWN_NULL, -1, SPAWN_NULL);
	int p[2], saved, r, st;
	pid_t pid = -1;

	(void)state;
	/*
	 * With our fd 0 free, spawn's own error pipe is created there: it must be
	 * moved away, neither clobbered by the child's fd 0 nor leaked into it.
	 */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fd_target(p[1], out, sizeof(out));
	o.fds[1] = p[1];
	saved = fcntl(0, F_DUPFD_CLOEXEC, 100);
	close(0);
	r = spawn(&o, &pid);
	unpark(0, saved);
	close(p[1]);
	assert_int_equal(r, 0);
	got = read_all(p[0]);
	close(p[0]);
	st = reap(pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	snprintf(expect, sizeof(expect), "0:/dev/null:rw\n1:%s:w\n2:/dev/null:rw\n", out);
	assert_string_equal(got, expect);
	free(got);
}

static void test_invalid_options(void **state)
{
	char *argv[] = { "true", NULL };
	struct spawn_opts o = spawn_opts_stdio(argv, SPAWN_NULL, SPAWN_NULL, SPAWN_NULL);
	pid_t pid = 0;

	(void)state;
	o.nfds = 2;
	assert_int_equal(spawn(&o, &pid), -EINVAL);
	o.nfds = SPAWN_MAX_FDS + 1;
	assert_int_equal(spawn(&o, &pid), -EINVAL);
	o.nfds = 3;
	o.argv = NULL;
	assert_int_equal(spawn(&o, &pid), -EINVAL);
	assert_int_equal(pid, 0);
	/* A source that is not an open descriptor fails the spawn. */
	o.argv = argv;
	o.fds[1] = 250;
	assert_true(fcntl(250, F_GETFD) < 0);
	assert_int_equal(spawn(&o, &pid), -EBADF);
	assert_no_children();
}

/* --- signals ------------------------------------------------------------ */

static void on_usr1(int sig)
{
	(void)sig;
}

/* Runs in the child just before exec: what msb's handlers and mask became. */
static int check_signal_state(void *ctx)
{
	const int sigs[] = { SIGPIPE, SIGINT, SIGTERM, SIGUSR1, SIGCHLD };
	sigset_t cur;

	(void)ctx;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction sa;

		if (sigaction(sigs[i], NULL, &sa) < 0 || sa.sa_handler != SIG_DFL)
			return -EDOM;
	}
	if (sigprocmask(SIG_SETMASK, NULL, &cur) < 0)
		return -EIO;
	for (int s = 1; s < SIGRTMIN; s++)
		if (sigismember(&cur, s) == 1)
			return -ERANGE;
	return 0;
}

static void test_signal_state_is_reset(void **state)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, usr = { .sa_handler = on_usr1 };
	struct sigaction old_pipe, old_int, old_usr1;
	struct spawn_opts o = spawn_opts_stdio(sigs_argv, SPAWN_NULL, SPAWN_USE_OUT, SPAWN_NULL);
	const unsigned long long glibc_internal = 3ULL << 31; /* bits of signals 32 and 33 */
	unsigned long long blk = ~0ULL, ignored = ~0ULL;
	sigset_t block, old_mask;
	char *got;

	(void)state;
	/* As msb does: SIGPIPE and SIGINT ignored, a handler for SIGUSR1, terminal signals blocked.
	 */
	sigaction(SIGPIPE, &ign, &old_pipe);
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGUSR1, &usr, &old_usr1);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old_mask);
	o.pre_exec = check_signal_state;
	got = run_capture(&o, NULL, 0);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGUSR1, &old_usr1, NULL);
	/*
	 * And after exec, as the kernel sees the program: nothing blocked, nothing
	 * ignored. Signals 32 and 33 are glibc's own (SIGCANCEL, SIGSETXID): its
	 * sigaction() refuses them, so a SIG_IGN inherited from further up (GNU make
	 * 4.3 leaves them ignored in its recipes) stays; glibc programs install their
	 * own handlers there when they need them.
	 */
	assert_int_equal(sscanf(got, "SigBlk:\t%llx\nSigIgn:\t%llx\n", &blk, &ignored), 2);
	free(got);
	assert_int_equal(blk, 0);
	assert_int_equal(ignored & ~glibc_internal, 0);
}

/* --- errors --------------------------------------------------------------- */

static void test_missing_program_is_enoent(void **state)
{
	char *in_path[] = { "msb-test-no-such-program", NULL };
	char *absolute[] = { "/nonexistent/msb-test/prog", NULL };
	struct spawn_opts o = spawn_opts_stdio(in_path, SPAWN_NULL, SPAWN_NULL, SPAWN_NULL);
	pid_t pid = 0;

	(void)state;
	assert_int_equal(spawn(&o, &pid), -ENOENT);
	assert_int_equal(pid, 0);
	assert_no_children();
	/* Found nowhere but tried anyway: exec fails in the child, spawn reports it. */
	o = spawn_opts_stdio(absolute, SPAWN_NULL, SPAWN_NULL, SPAWN_NULL);
	assert_int_equal(spawn(&o, &pid), -ENOENT);
	assert_int_equal(pid, 0);
	assert_no_children();
}

static void test_not_executable_is_eacces(void **state)
{
	char *argv[] = { "/etc/passwd", NULL };
	struct spawn_opts o = spawn_opts_stdio(argv, SPAWN_NULL, SPAWN_NULL, SPAWN_NULL);
	pid_t pid = 0;

	(void)state;
	assert_int_equal(spawn(&o, &pid), -EACCES);
	assert_no_children();
}

static int fail_with_edom(void *ctx)
{
	(void)ctx;
	return -EDOM;
}

static void test_pre_exec_failure_is_its_errno(void **state)
{
	char *argv[] = { "true", NULL };
	struct spawn_opts o = spawn_opts_stdio(argv, SPAWN_NULL, SPAWN_NULL, SPAWN_NULL);
	pid_t pid = 0;

	(void)state;
	o.pre_exec = fail_with_edom;
	assert_int_equal(spawn(&o, &pid), -EDOM);
	assert_int_equal(pid, 0);
	assert_no_children();
}

static void test_missing_cwd_fails(void **state)
{
	char *argv[] = { "true", NULL };
	struct spawn_opts o = spawn_opts_stdio(argv, SPAWN_NULL, SPAWN_NULL, SPAWN_NULL);
	pid_t pid = 0;

	(void)state;
	o.cwd = "/nonexistent/msb-test-dir";
	assert_int_equal(spawn(&o, &pid), -ENOENT);
	assert_no_children();
}

/* --- other options ---------------------------------------------------------- */

static void test_env_cwd_and_path_search(void **state)
{
	char *env_argv[] = { "env", NULL }, *pwd_argv[] = { "pwd", NULL };
	char *envp[] = { "ONLY=this", NULL };
	struct spawn_opts o = spawn_opts_stdio(env_argv, SPAWN_NULL, SPAWN_USE_OUT, SPAWN_NULL);
	char *got;

	(void)state;
	o.envp = envp;
	got = run_capture(&o, NULL, 0);
	assert_string_equal(got, "ONLY=this\n");
	free(got);
	o = spawn_opts_stdio(pwd_argv, SPAWN_NULL, SPAWN_USE_OUT, SPAWN_NULL);
	o.cwd = "/proc";
	got = run_capture(&o, NULL, 0);
	assert_string_equal(got, "/proc\n");
	free(got);
}

static void test_exit_status_reaches_the_parent(void **state)
{
	char *argv[] = { "sh", "-c", "exit 42", NULL };
	struct spawn_opts o = spawn_opts_stdio(argv, SPAWN_NULL, SPAWN_NULL, SPAWN_NULL);
	pid_t pid;
	int st;

	(void)state;
	/* Only failures before exec are errors: the program's own 127 or 42 is its status. */
	assert_int_equal(spawn(&o, &pid), 0);
	st = reap(pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 42);
	assert_int_equal(spawn_wait(pid, &st), -ECHILD);
}

static void test_new_session(void **state)
{
	struct spawn_opts o = spawn_opts_stdio(ids_argv, SPAWN_NULL, SPAWN_USE_OUT, SPAWN_NULL);
	int pid = 0, sid = 0;
	char *got;

	(void)state;
	got = run_capture(&o, NULL, 0);
	assert_int_equal(sscanf(got, "%d %d", &pid, &sid), 2);
	assert_int_not_equal(pid, sid);
	assert_int_equal(sid, (int)getsid(0));
	free(got);
	o = spawn_opts_stdio(ids_argv, SPAWN_NULL, SPAWN_USE_OUT, SPAWN_NULL);
	o.new_session = true;
	got = run_capture(&o, NULL, 0);
	assert_int_equal(sscanf(got, "%d %d", &pid, &sid), 2);
	assert_int_equal(pid, sid);
	free(got);
}

/* --- die_with_parent ---------------------------------------------------------- */

/* Waits up to @ms for @pid (our child) to end. Return: its status, or -1 if still alive. */
static int wait_for(pid_t pid, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		int st;
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			return st;
		assert_int_equal(w, 0);
		poll(NULL, 0, 10);
	}
	return -1;
}

static int drop_to_nobody(void *ctx)
{
	(void)ctx;
	/* As a VMM jail does: a credential change after PR_SET_PDEATHSIG. */
	if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
	    setresuid(65534, 65534, 65534) < 0)
		return -errno;
	return 0;
}

/*
 * A middle process spawns "sleep 30" with die_with_parent (and @pre_exec),
 * then is SIGKILLed. We are a subreaper, so the sleep becomes our child:
 * it must die of SIGKILL at once, not live on.
 */
static void die_with_parent_case(int (*pre_exec)(void *))
{
	int rep[2], st;
	pid_t mid, grandchild = 0;

	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	mid = fork();
	assert_true(mid >= 0);
	if (mid == 0) {
		char *argv[] = { "sleep", "30", NULL };
		struct spawn_opts o = spawn_opts_stdio(argv, SPAWN_NULL, SPAWN_NULL, SPAWN_NULL);
		pid_t g = 0;
		int r;

		o.die_with_parent = true;
		o.pre_exec = pre_exec;
		r = spawn(&o, &g);
		if (r < 0)
			g = r;
		(void)!write(rep[1], &g, sizeof(g));
		for (;;)
			pause();
	}
	close(rep[1]);
	assert_int_equal(read(rep[0], &grandchild, sizeof(grandchild)), sizeof(grandchild));
	close(rep[0]);
	assert_true(grandchild > 0);
	kill(mid, SIGKILL);
	st = reap(mid);
	assert_true(WIFSIGNALED(st));
	st = wait_for(grandchild, 3000);
	if (st == -1) {
		kill(grandchild, SIGKILL);
		reap(grandchild);
	}
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	if (st == -1)
		fail_msg("the child outlived its parent by 3 s");
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
	assert_no_children();
}

static void test_die_with_parent(void **state)
{
	(void)state;
	die_with_parent_case(NULL);
}

static void test_die_with_parent_survives_a_pre_exec_that_drops_privileges(void **state)
{
	(void)state;
	/*
	 * The kernel clears the parent-death signal when the uid or gid
	 * changes, so a pre_exec that drops privileges (the VMM jail does)
	 * silently turns die_with_parent off unless spawn() arms it again.
	 */
	if (geteuid() != 0)
		skip();
	die_with_parent_case(drop_to_nobody);
}

static void test_without_die_with_parent_the_child_lives_on(void **state)
{
	int rep[2], st;
	pid_t mid, grandchild = 0;

	(void)state;
	/* The control for the two tests above: the death is spawn's doing, not the setup's. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	mid = fork();
	assert_true(mid >= 0);
	if (mid == 0) {
		char *argv[] = { "sleep", "30", NULL };
		struct spawn_opts o = spawn_opts_stdio(argv, SPAWN_NULL, SPAWN_NULL, SPAWN_NULL);
		pid_t g = 0;

		if (spawn(&o, &g) < 0)
			g = -1;
		(void)!write(rep[1], &g, sizeof(g));
		for (;;)
			pause();
	}
	close(rep[1]);
	assert_int_equal(read(rep[0], &grandchild, sizeof(grandchild)), sizeof(grandchild));
	close(rep[0]);
	assert_true(grandchild > 0);
	kill(mid, SIGKILL);
	reap(mid);
	st = wait_for(grandchild, 300);
	kill(grandchild, SIGKILL);
	if (st == -1)
		reap(grandchild);
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	assert_int_equal(st, -1);
	assert_no_children();
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stdio_placed_and_nothing_else),
		cmocka_unit_test(test_source_already_at_its_target_loses_cloexec),
		cmocka_unit_test(test_swapped_stdin_and_stdout),
		cmocka_unit_test(test_rotated_three_way),
		cmocka_unit_test(test_null_and_closed),
		cmocka_unit_test(test_parent_with_stdin_closed),
		cmocka_unit_test(test_invalid_options),
		cmocka_unit_test(test_signal_state_is_reset),
		cmocka_unit_test(test_missing_program_is_enoent),
		cmocka_unit_test(test_not_executable_is_eacces),
		cmocka_unit_test(test_pre_exec_failure_is_its_errno),
		cmocka_unit_test(test_missing_cwd_fails),
		cmocka_unit_test(test_env_cwd_and_path_search),
		cmocka_unit_test(test_exit_status_reaches_the_parent),
		cmocka_unit_test(test_new_session),
		cmocka_unit_test(test_die_with_parent),
		cmocka_unit_test(test_die_with_parent_survives_a_pre_exec_that_drops_privileges),
		cmocka_unit_test(test_without_die_with_parent_the_child_lives_on),
	};

	if (argc >= 3 && !strcmp(argv[1], "--child"))
		return child_main(argv[2]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
