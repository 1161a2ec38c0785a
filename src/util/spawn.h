/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One way to start a child process: every helper msb runs (the supervisor,
 * QEMU, tar2sqfs, mkfs, credential helpers) goes through spawn(), so the
 * rules below hold for all of them.
 *
 * In the child, before exec: every signal handler is reset to SIG_DFL and
 * the signal mask is emptied (msb blocks and ignores signals the child must
 * see); the requested descriptors are placed at 0..nfds-1 without the
 * FD_CLOEXEC trap of dup2(fd, fd); every other descriptor is closed at exec;
 * optionally the child dies with its parent. A failure before or at exec is
 * reported to the parent as an errno, so spawn() fails instead of returning
 * a pid that exits 127.
 */
#ifndef MSB_UTIL_SPAWN_H
#define MSB_UTIL_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

#define SPAWN_MAX_FDS 8
/* In spawn_opts.fds: give the child /dev/null there (read-write). */
#define SPAWN_NULL (-2)
/* In spawn_opts.fds: leave that descriptor closed in the child. */
#define SPAWN_CLOSED (-1)

struct spawn_opts {
	const char *path;	/* program; searched in PATH when it has no '/' */
	char *const *argv;	/* NULL-terminated */
	char *const *envp;	/* NULL: the current environment */
	int fds[SPAWN_MAX_FDS]; /* child's fd i is a copy of fds[i] (or SPAWN_NULL / SPAWN_CLOSED)
				 */
	int nfds;		/* how many of @fds to place; at least 3 */
	bool die_with_parent;	/* SIGKILL the child when the caller exits */
	bool new_session;	/* setsid() */
	const char *cwd;	/* chdir() before exec, or NULL */
	/*
	 * Extra namespaces for the child (CLONE_NEW* flags), created with the
	 * child itself. With CLONE_NEWPID the child is PID 1 of its namespace.
	 */
	unsigned long clone_flags;
	/*
	 * Runs in the child after the descriptors are placed and before exec.
	 * Return: 0, or -errno to fail the spawn with that error.
	 */
	int (*pre_exec)(void *ctx);
	void *ctx;
};

/* spawn_opts_stdio() - options for @argv with stdin/stdout/stderr set to @in, @out, @err. */
struct spawn_opts spawn_opts_stdio(char *const *argv, int in, int out, int err);

/*
 * spawn() - start a child as described by @o.
 * Return: 0 with *@pid set, or -errno (-ENOENT when the program is missing,
 * or whatever exec or @pre_exec failed with); on failure no child is left.
 */
int spawn(const struct spawn_opts *o, pid_t *pid);

/* spawn_wait() - waitpid() that retries on EINTR. Return: 0 with *@status, or -errno. */
int spawn_wait(pid_t pid, int *status);

/*
 * spawn_io() - run @argv with @input (may be NULL) on stdin and stderr on
 * /dev/null; capture up to @cap - 1 bytes of its stdout into @out (NUL
 * terminated; @out NULL: discarded). For helpers handed a secret: it never
 * travels on argv. Return: the exit status (0 = success, 128 when killed),
 * or -errno if it could not run.
 */
int spawn_io(char *const argv[], const char *input, char *out, size_t cap);

#endif
