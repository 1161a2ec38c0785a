// SPDX-License-Identifier: Apache-2.0
/* spawn(): the one fork/exec path of msb (see spawn.h for the rules). */
#define _GNU_SOURCE
#include "util/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

struct spawn_opts spawn_opts_stdio(char *const *argv, int in, int out, int err)
{
	struct spawn_opts o = { .path = argv[0], .argv = argv, .nfds = 3 };

	o.fds[0] = in;
	o.fds[1] = out;
	o.fds[2] = err;
	return o;
}

/* Marks every descriptor from @lowest up close-on-exec. */
static void cloexec_from(int lowest)
{
	long max;

	if (syscall(SYS_close_range, (unsigned int)lowest, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	/* Kernels before 5.11: walk the table. */
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = lowest; fd < max; fd++)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/*
 * Moves the requested descriptors to 0..n-1. Sources are first copied above
 * every target, so a source that is also a target cannot be overwritten
 * before it is used, and dup2() onto a different number always clears
 * FD_CLOEXEC. Return: 0 or -errno.
 */
static int place_fds(const int *fds, int n)
{
	int high[SPAWN_MAX_FDS];
	int null = -1;

	for (int i = 0; i < n; i++) {
		int src = fds[i];

		high[i] = -1;
		if (src == SPAWN_CLOSED)
			continue;
		if (src == SPAWN_NULL) {
			if (null < 0)
				null = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (null < 0)
				return -errno;
			src = null;
		}
		high[i] = fcntl(src, F_DUPFD_CLOEXEC, SPAWN_MAX_FDS + 3);
		if (high[i] < 0)
			return -errno;
	}
	for (int i = 0; i < n; i++) {
		if (high[i] < 0) {
			close(i);
			continue;
		}
		if (dup2(high[i], i) < 0)
			return -errno;
	}
	return 0;
}

static void __attribute__((noreturn))
child(const struct spawn_opts *o, const char *exe, int errfd, pid_t parent)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int e;

	/* Handlers first, then the mask: a signal pending now must not run msb's handler. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (o->die_with_parent) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* The parent may already be gone; in a new PID namespace it is not visible. */
		if (!(o->clone_flags & CLONE_NEWPID) && getppid() != parent)
			_exit(127);
	}
	if (o->new_session)
		setsid();
	/* errfd stays above the placed range and is closed by exec itself. */
	e = place_fds(o->fds, o->nfds);
	if (!e) {
		cloexec_from(o->nfds);
		if (o->cwd && chdir(o->cwd) < 0)
			e = -errno;
	}
	if (!e && o->pre_exec)
		e = o->pre_exec(o->ctx);
	/* Changing uid or gid (a pre_exec dropping privileges) clears the death signal: again. */
	if (!e && o->die_with_parent) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!(o->clone_flags & CLONE_NEWPID) && getppid() != parent)
			_exit(127);
	}
	if (!e) {
		execve(exe, o->argv, o->envp ? o->envp : environ);
		e = -errno;
	}
	e = -e;
	(void)!write(errfd, &e, sizeof(e));
	_exit(127);
}

int spawn(const struct spawn_opts *o, pid_t *pid)
{
	_cleanup_free_ char *found = NULL;
	const char *exe = o->path;
	pid_t self = getpid(), p;
	int ep[2], e = 0, st;
	ssize_t n;

	if (o->nfds < 3 || o->nfds > SPAWN_MAX_FDS || !o->argv || !o->argv[0])
		return -EINVAL;
	if (!strchr(exe, '/')) {
		found = find_in_path(exe);
		if (!found)
			return -ENOENT;
		exe = found;
	}
	/* The error pipe must not land on a descriptor the child is about to place. */
	if (pipe2(ep, O_CLOEXEC) < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		if (ep[i] < SPAWN_MAX_FDS + 3) {
			int moved = fcntl(ep[i], F_DUPFD_CLOEXEC, SPAWN_MAX_FDS + 3);

			if (moved < 0) {
				e = -errno;
				close(ep[0]);
				close(ep[1]);
				return e;
			}
			close(ep[i]);
			ep[i] = moved;
		}
	}
	if (o->clone_flags)
		p = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD | o->clone_flags, NULL, NULL,
				   NULL, NULL);
	else
		p = fork();
	if (p == 0)
		child(o, exe, ep[1], self);
	e = p < 0 ? -errno : 0;
	close(ep[1]);
	if (e < 0) {
		close(ep[0]);
		return e;
	}
	while ((n = read(ep[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(ep[0]);
	if (n == (ssize_t)sizeof(e)) {
		spawn_wait(p, &st);
		return -(e > 0 ? e : EIO);
	}
	*pid = p;
	return 0;
}

int spawn_wait(pid_t pid, int *status)
{
	int st = 0;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (status)
		*status = st;
	return 0;
}

int spawn_io(char *const argv[], const char *input, char *out, size_t cap)
{
	int in[2], outp[2], st = 0, r;
	size_t n = 0;
	pid_t pid = -1;

	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(outp, O_CLOEXEC) < 0) {
		r = -errno;
		close(in[0]);
		close(in[1]);
		return r;
	}
	{
		struct spawn_opts o = spawn_opts_stdio(argv, in[0], outp[1], SPAWN_NULL);

		r = spawn(&o, &pid);
	}
	close(in[0]);
	close(outp[1]);
	if (r < 0) {
		close(in[1]);
		close(outp[0]);
		return r;
	}
	if (input)
		(void)write_all(in[1], input, strlen(input));
	close(in[1]);
	for (;;) {
		char sink[256];
		ssize_t k = read(outp[0], out ? out + n : sink, out ? cap - 1 - n : sizeof(sink));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (out)
			n += (size_t)k;
		if (out && n >= cap - 1)
			break;
	}
	close(outp[0]);
	if (out)
		out[n] = '\0';
	spawn_wait(pid, &st);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}
