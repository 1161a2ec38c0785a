// SPDX-License-Identifier: Apache-2.0
/*
 * msb cp SRC DEST: files and trees between the host and a sandbox, one side
 * written SANDBOX:/path. The guest's half is agentd's copy tool run through
 * an exec session (a child process here, with the tar stream as its stdin or
 * stdout); this process writes or extracts the stream. A stopped sandbox is
 * started for the copy and stopped again, as msb exec does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "proto/proto.h"
#include "sandbox/cp.h"
#include "sandbox/create.h"
#include "sandbox/exec.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/parse.h"

/* A failure the guest's half already described on stderr. */
#define REPORTED (-2)

/* "NAME:PATH" with a valid sandbox name before the first ':' (and no '/' in it). */
static bool split_remote(const char *arg, char *name, size_t cap, const char **path)
{
	const char *colon = strchr(arg, ':');
	size_t n;

	if (!colon || memchr(arg, '/', (size_t)(colon - arg)))
		return false;
	n = (size_t)(colon - arg);
	if (!n || n >= cap)
		return false;
	memcpy(name, arg, n);
	name[n] = '\0';
	if (!valid_sandbox_name(name))
		return false;
	*path = colon + 1;
	return true;
}

/* An absolute guest path with no ".." component: nothing that leaves the guest's root. */
static bool guest_path_ok(const char *p)
{
	return p[0] == '/' && strlen(p) <= 4000 && !path_has_dotdot(p);
}

/* The top name agentd gives the stream for @path: its last component ("root" for /). */
static char *top_name(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	char *slash;

	if (!copy)
		return NULL;
	while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
		copy[strlen(copy) - 1] = '\0';
	slash = strrchr(copy, '/');
	return strdup(slash && slash[1] ? slash + 1 : "root");
}

/*
 * Runs the copy tool in @name in a child whose stdin (@in) or stdout (@out)
 * is the stream. Return: the child's pid, or -1 with @err.
 */
static pid_t spawn_tool(const char *name, char *mode, const char *path, int in, int out,
			int close_fd, struct msb_err **err)
{
	pid_t pid = fork();

	if (pid < 0)
		return msb_err_sys(err, errno, "fork");
	if (pid == 0) {
		struct msb_err *e = NULL;
		char *argv[] = { PROTO_CP_TOOL, mode, (char *)path, NULL }, *none[] = { NULL };
		struct sbx_exec x = {
			.argv = argv, .env = none, .user = "root", .forward_stdin = in >= 0
		};
		int fd, status = 0;

		close(close_fd);
		if ((in >= 0 && dup2(in, 0) < 0) || (out >= 0 && dup2(out, 1) < 0))
			_exit(EXIT_MSB);
		if (in < 0) {
			int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

			if (nul >= 0)
				dup2(nul, 0);
		}
		fd = sbx_connect(name, &e);
		if (fd < 0 || sbx_exec_run(fd, &x, &status, &e) < 0) {
			cli_fail(e);
			_exit(EXIT_MSB);
		}
		_exit(status > 255 ? 1 : status);
	}
	return pid;
}

static int wait_tool(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return EXIT_MSB;
	return WIFEXITED(st) ? WEXITSTATUS(st) : EXIT_MSB;
}

static int copy_out(const char *name, const char *gpath, const char *dest, bool quiet,
		    struct msb_err **err)
{
	_cleanup_free_ char *top = top_name(gpath), *target = NULL;
	uint64_t n = 0;
	int p[2], r, rc;
	pid_t pid;

	if (!top)
		return msb_err_sys(err, ENOMEM, "cp");
	target = sbx_cp_target(dest, top, err);
	if (!target)
		return -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return msb_err_sys(err, errno, "pipe");
	pid = spawn_tool(name, "out", gpath, -1, p[1], p[0], err);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	r = sbx_cp_extract(p[0], target, &n, err);
	close(p[0]);
	rc = wait_tool(pid);
	/* The guest's half said what went wrong, in one line, already. */
	if (rc)
		return REPORTED;
	if (r < 0)
		return -1;
	if (!quiet) {
		char size[32];

		format_size(n, size, sizeof(size));
		fprintf(stderr, "Copied %s:%s to %s (%s)\n", name, gpath, target, size);
	}
	return 0;
}

static int copy_in(const char *src, const char *name, const char *gpath, bool quiet,
		   struct msb_err **err)
{
	uint64_t n = 0;
	int p[2], r, rc;
	pid_t pid;

	if (access(src, F_OK) < 0 && errno == ENOENT)
		return msb_err_set(err, ENOENT, "%s: No such file or directory", src);
	if (pipe2(p, O_CLOEXEC) < 0)
		return msb_err_sys(err, errno, "pipe");
	pid = spawn_tool(name, "in", gpath, p[0], -1, p[1], err);
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return -1;
	}
	r = sbx_cp_archive(src, p[1], &n, err);
	close(p[1]);
	rc = wait_tool(pid);
	if (r < 0)
		return -1;
	if (rc)
		return REPORTED;
	if (!quiet) {
		char size[32];

		format_size(n, size, sizeof(size));
		fprintf(stderr, "Copied %s to %s:%s (%s)\n", src, name, gpath, size);
	}
	return 0;
}

int cmd_cp(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	char sname[SBX_NAME_MAX + 1], dname[SBX_NAME_MAX + 1];
	const char *spath = NULL, *dpath = NULL, *name, *gpath;
	bool quiet = false, from, to, started = false;
	int c, r;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+qh", lo, NULL)) != -1) {
		if (c == 'q') {
			quiet = true;
		} else if (c == 'h') {
			printf("Usage: msb cp [-q] SANDBOX:PATH HOSTPATH\n"
			       "       msb cp [-q] HOSTPATH SANDBOX:PATH\n\n"
			       "Copy files or directory trees between the host and a sandbox "
			       "(modes "
			       "and times kept).\nInto DEST when it is an existing directory, else "
			       "as DEST. A stopped sandbox is started for the copy.\n");
			return 0;
		} else {
			return cli_bad_flag("cp", argv, lo);
		}
	}
	if (argc - optind != 2)
		return cli_error("cp: expected SRC and DEST (see 'msb cp --help')");
	from = split_remote(argv[optind], sname, sizeof(sname), &spath);
	to = split_remote(argv[optind + 1], dname, sizeof(dname), &dpath);
	if (from == to)
		return cli_error(
			"cp: exactly one of SRC and DEST must be SANDBOX:PATH (a host path "
			"with ':' can be written ./%s)",
			from ? argv[optind + 1] : argv[optind]);
	name = from ? sname : dname;
	gpath = from ? spath : dpath;
	if (!guest_path_ok(gpath))
		return cli_error("cp: %s:%s: use an absolute path inside the sandbox, without '..'",
				 name, gpath);
	if (cli_sandbox_up(name, &started, &err) < 0)
		return cli_fail(err);
	r = from ? copy_out(name, gpath, argv[optind + 1], quiet, &err)
		 : copy_in(argv[optind], name, gpath, quiet, &err);
	if (r == REPORTED) {
		cli_sandbox_down(name, started, 0, &err);
		return EXIT_MSB;
	}
	r = cli_sandbox_down(name, started, r, &err);
	return r < 0 ? cli_fail(err) : 0;
}
