// SPDX-License-Identifier: Apache-2.0
/* msb run: create an ephemeral sandbox, run one command in it, remove it. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sandbox/exec.h"
#include "sandbox/rootfs.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/parse.h"
#include "vm/vm.h"

struct run_opts {
	const char *rootfs;
	struct strv env;
	const char *workdir;
	const char *user;
	unsigned int cpus;
	unsigned int mem_mib;
	unsigned int upper_mib;
	bool tty;
	bool quiet;
	uint64_t timeout_ms;
	enum log_level log_level;
	uint32_t nrlimits;
	struct proto_rlimit rlimits[PROTO_MAX_RLIMITS];
	char **cmd;
};

enum { OPT_ROOTFS = 256, OPT_TIMEOUT, OPT_LOG_LEVEL, OPT_RLIMIT, OPT_UPPER_SIZE };

static const struct option run_longopts[] = {
	{ "rootfs", required_argument, NULL, OPT_ROOTFS },
	{ "env", required_argument, NULL, 'e' },
	{ "workdir", required_argument, NULL, 'w' },
	{ "user", required_argument, NULL, 'u' },
	{ "memory", required_argument, NULL, 'm' },
	{ "cpus", required_argument, NULL, 'c' },
	{ "oci-upper-size", required_argument, NULL, OPT_UPPER_SIZE },
	{ "tty", no_argument, NULL, 't' },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "rlimit", required_argument, NULL, OPT_RLIMIT },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void run_usage(void)
{
	printf("Usage: msb run --rootfs PATH [OPTIONS] -- COMMAND [ARG...]\n\n"
	       "Create a sandbox, run COMMAND in it, and remove the sandbox afterwards.\n\n"
	       "Options:\n"
	       "      --rootfs PATH       Root filesystem: a directory or a squashfs image\n"
	       "  -e, --env KEY=VALUE     Set an environment variable (KEY alone copies it from "
	       "here)\n"
	       "  -w, --workdir DIR       Working directory inside the sandbox (created if "
	       "missing)\n"
	       "  -u, --user USER         Run as USER (name, UID, or UID:GID)\n"
	       "  -m, --memory SIZE       Guest memory, e.g. 512M or 1G (default 512M)\n"
	       "  -c, --cpus N            Virtual CPUs (default 1)\n"
	       "      --oci-upper-size SIZE  Writable layer on a disk of SIZE (e.g. 4G) instead of "
	       "memory\n"
	       "  -t, --tty               Allocate a pseudo-terminal\n"
	       "      --timeout DURATION  Kill the command after DURATION (e.g. 30s, 5m)\n"
	       "      --rlimit NAME=N[:M] Set a resource limit (e.g. nofile=1024)\n"
	       "      --log-level LEVEL   Runtime log level: error, warn, info, debug, trace\n"
	       "  -q, --quiet             Suppress progress output\n");
}

static int parse_memory(const char *s, unsigned int *mib)
{
	uint64_t bytes;

	if (parse_size(s, 1 << 20, &bytes) < 0)
		return cli_error(
			"invalid memory size \"%s\" (use a number with a unit, e.g. 512M or 1G)",
			s);
	if (bytes < (uint64_t)SBX_MIN_MEM_MIB << 20)
		return cli_error("memory size %s is too small (the minimum is %dM)", s,
				 SBX_MIN_MEM_MIB);
	if (bytes > (uint64_t)1 << 40)
		return cli_error("memory size %s is too large (the maximum is 1T)", s);
	*mib = (unsigned int)(bytes >> 20);
	return 0;
}

static int add_env(struct run_opts *o, const char *s)
{
	if (!strchr(s, '=')) {
		/* docker's -e KEY: pass this process's value along, if it has one */
		const char *v = getenv(s);
		char *kv = NULL;
		int r;

		if (!*s || strchr(s, '='))
			return cli_error("invalid --env \"%s\" (use KEY=VALUE)", s);
		if (!v)
			return 0;
		if (asprintf(&kv, "%s=%s", s, v) < 0)
			return cli_error("out of memory");
		r = strv_push(&o->env, kv);
		free(kv);
		return r < 0 ? cli_error("out of memory") : 0;
	}
	if (!env_has_valid_key(s))
		return cli_error("invalid --env \"%s\" (use KEY=VALUE)", s);
	return strv_push(&o->env, s) < 0 ? cli_error("out of memory") : 0;
}

static int parse_opt(struct run_opts *o, int c, const char *arg)
{
	uint64_t v;

	switch (c) {
	case OPT_ROOTFS:
		o->rootfs = arg;
		return 0;
	case 'e':
		return add_env(o, arg);
	case 'w':
		if (arg[0] != '/')
			return cli_error("invalid --workdir \"%s\" (use an absolute path)", arg);
		o->workdir = arg;
		return 0;
	case 'u':
		if (!*arg)
			return cli_error("invalid --user \"\" (use NAME, UID, or UID:GID)");
		o->user = arg;
		return 0;
	case 'm':
		return parse_memory(arg, &o->mem_mib);
	case 'c': {
		char *end;
		long n = strtol(arg, &end, 10);

		if (*end || end == arg || n < 1 || n > SBX_MAX_CPUS)
			return cli_error("invalid --cpus \"%s\" (use 1 to %d)", arg, SBX_MAX_CPUS);
		o->cpus = (unsigned int)n;
		return 0;
	}
	case OPT_UPPER_SIZE:
		if (parse_size(arg, 1 << 20, &v) < 0 || v < (64ull << 20) || v > (16ull << 40))
			return cli_error("invalid --oci-upper-size \"%s\" (use a size from 64M to "
					 "16T, e.g. 4G)",
					 arg);
		o->upper_mib = (unsigned int)(v >> 20);
		return 0;
	case 't':
		o->tty = true;
		return 0;
	case OPT_TIMEOUT:
		if (parse_duration(arg, &v) < 0 || v == 0)
			return cli_error(
				"invalid --timeout \"%s\" (use a duration like 30s, 5m or 1h)",
				arg);
		o->timeout_ms = v;
		return 0;
	case OPT_RLIMIT: {
		struct proto_rlimit *rl;

		if (o->nrlimits >= PROTO_MAX_RLIMITS)
			return cli_error("too many --rlimit flags (at most %d)", PROTO_MAX_RLIMITS);
		rl = &o->rlimits[o->nrlimits];
		if (parse_rlimit(arg, &rl->resource, &rl->soft, &rl->hard) < 0)
			return cli_error(
				"invalid --rlimit \"%s\" (use NAME=SOFT[:HARD], e.g. nofile=1024)",
				arg);
		o->nrlimits++;
		return 0;
	}
	case OPT_LOG_LEVEL:
		if (log_level_parse(arg, &o->log_level) < 0)
			return cli_error("invalid --log-level \"%s\" (use error, warn, info, debug "
					 "or trace)",
					 arg);
		return 0;
	case 'q':
		o->quiet = true;
		return 0;
	default:
		return EXIT_MSB;
	}
}

/*
 * Splits at the first "--": flags and positionals may mix before it and the
 * command follows it. Without "--", flags stop at the first positional, as
 * with docker, so "msb run IMG ls -l" passes -l to ls.
 */
static int parse_args(int argc, char **argv, struct run_opts *o, struct strv *pos)
{
	int sep = argc, c, r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			sep = i;
			break;
		}
	}
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(sep, argv, sep < argc ? "e:w:u:m:c:tqh" : "+e:w:u:m:c:tqh",
				run_longopts, NULL)) != -1) {
		if (c == 'h') {
			run_usage();
			return -1;
		}
		if (c == '?' || c == ':')
			return cli_bad_flag("run", argv, run_longopts);
		r = parse_opt(o, c, optarg);
		if (r)
			return r;
	}
	for (int i = optind; i < sep; i++)
		if (strv_push(pos, argv[i]) < 0)
			return cli_error("out of memory");
	o->cmd = sep < argc ? argv + sep + 1 : NULL;
	return 0;
}

/* Everything a run needs that can be checked before anything is created. */
static int preflight(struct msb_err **err)
{
	_cleanup_free_ char *vmm = vmm_binary(), *k = NULL, *i = NULL;
	enum vm_accel accel;
	char why[256];

	if (!vmm)
		return msb_err_set(err, ENOENT, "%s not found in PATH (install %s)", VMM_PROGRAM,
				   VMM_PACKAGE);
	if (vm_accel_detect(&accel, why, sizeof(why), err) < 0)
		return -1;
	if (msb_lib_file("vmlinux", &k, err) < 0 || msb_lib_file("initrd.cpio", &i, err) < 0)
		return -1;
	return 0;
}

static int wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int run_sandbox(struct run_opts *o, int *status, struct msb_err **err)
{
	_cleanup_free_ char *dir = NULL, *layer = NULL;
	struct sbx_boot_info info;
	struct sbx_spec spec = { 0 };
	char name[32];
	char *layers[2] = { NULL, NULL };
	int fd, r;

	if (preflight(err) < 0)
		return -1;
	sbx_ephemeral_name(name, sizeof(name));
	if (sbx_make_dir(name, err) < 0)
		return -1;
	dir = sbx_dir(name);
	if (rootfs_prepare(o->rootfs, dir, &layer, err) < 0) {
		rm_rf(dir);
		return -1;
	}
	layers[0] = layer;
	if (o->upper_mib && sbx_make_upper(name, o->upper_mib, err) < 0) {
		rm_rf(dir);
		return -1;
	}
	spec = (struct sbx_spec){ .name = name,
				  .ephemeral = true,
				  .cpus = o->cpus,
				  .mem_mib = o->mem_mib,
				  .upper_mib = o->upper_mib,
				  .hostname = name,
				  .layers = layers,
				  .log_level = o->log_level };
	if (sbx_spec_save(&spec, err) < 0) {
		rm_rf(dir);
		return -1;
	}
	if (sbx_boot(name, true, &info, err) < 0) {
		rm_rf(dir);
		return -1;
	}
	if (o->log_level >= LOG_DEBUG)
		fprintf(stderr, "msb: debug: boot: accel %s, kernel %.1f ms, agent ready %.1f ms\n",
			info.accel, (double)info.kernel_ns / 1e6, (double)info.ready_ns / 1e6);

	fd = sbx_connect(name, err);
	if (fd < 0) {
		kill(info.supervisor, SIGTERM);
		wait_child(info.supervisor);
		rm_rf(dir);
		return -1;
	}
	{
		struct sbx_exec x = {
			.argv = o->cmd,
			.env = o->env.v,
			.cwd = o->workdir,
			.user = o->user,
			.tty = o->tty,
			.mkcwd = o->workdir != NULL,
			/* like docker without -i: a terminal's input is not read without -t */
			.forward_stdin = o->tty || !isatty(0),
			.timeout_ms = o->timeout_ms,
			.nrlimits = o->nrlimits,
		};

		memcpy(x.rlimits, o->rlimits, sizeof(x.rlimits));
		r = sbx_exec_run(fd, &x, status, err);
	}
	/* Leaving is enough: an attached sandbox ends when its owner goes. */
	close(fd);
	/* The supervisor removes the VM and the directory; be done only after it. */
	wait_child(info.supervisor);
	rm_rf(dir);
	return r;
}

int cmd_run(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	struct run_opts o = { .cpus = SBX_DEFAULT_CPUS,
			      .mem_mib = SBX_DEFAULT_MEM_MIB,
			      .log_level = LOG_INFO };
	struct strv pos = { 0 };
	sigset_t set;
	int r, status = 0;

	r = parse_args(argc, argv, &o, &pos);
	if (r) {
		r = r < 0 ? 0 : r;
		goto out;
	}
	if (!o.rootfs) {
		r = cli_error("run: no root filesystem given (use --rootfs PATH)");
		goto out;
	}
	/* Without "--", everything after the options is the command. */
	if (!o.cmd) {
		o.cmd = pos.v;
	} else if (pos.n) {
		r = cli_error("run: unexpected argument \"%s\" before \"--\"", pos.v[0]);
		goto out;
	}
	if (!o.cmd || !o.cmd[0]) {
		r = cli_error("run: no command given (use: msb run --rootfs PATH -- COMMAND)");
		goto out;
	}

	/* Signals are handled through signalfd from here on. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	r = run_sandbox(&o, &status, &err) < 0 ? cli_fail(err) : status;
out:
	strv_free(&o.env);
	strv_free(&pos);
	return r;
}
