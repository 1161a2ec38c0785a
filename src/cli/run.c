// SPDX-License-Identifier: Apache-2.0
/* msb run: create an ephemeral sandbox, run one command in it, remove it. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "image/manifest.h"
#include "image/progress.h"
#include "image/pull.h"
#include "image/regconfig.h"
#include "image/store.h"
#include "store/db.h"
#include "sandbox/exec.h"
#include "sandbox/rootfs.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/parse.h"
#include "vm/vm.h"

/* How long the supervisor gets to tear the sandbox down once the command is over. */
#define SUPERVISOR_EXIT_MS 10000

struct run_opts {
	const char *rootfs;
	const char *image;
	const char *entrypoint; /* set by --entrypoint ("" clears the image's) */
	enum pull_policy pull;
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

enum {
	OPT_ROOTFS = 256,
	OPT_TIMEOUT,
	OPT_LOG_LEVEL,
	OPT_RLIMIT,
	OPT_UPPER_SIZE,
	OPT_ENTRYPOINT,
	OPT_PULL,
};

static const struct option run_longopts[] = {
	{ "rootfs", required_argument, NULL, OPT_ROOTFS },
	{ "entrypoint", required_argument, NULL, OPT_ENTRYPOINT },
	{ "pull", required_argument, NULL, OPT_PULL },
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
	printf("Usage: msb run [OPTIONS] IMAGE [--] [COMMAND [ARG...]]\n"
	       "       msb run [OPTIONS] --rootfs PATH [--] COMMAND [ARG...]\n\n"
	       "Create a sandbox, run COMMAND in it, and remove the sandbox afterwards.\n"
	       "With an image, COMMAND replaces the image's Cmd and keeps its Entrypoint;\n"
	       "with neither, /bin/sh runs.\n\n"
	       "Options:\n"
	       "      --rootfs PATH       Root filesystem: a directory or a squashfs image\n"
	       "      --entrypoint CMD    Override the image's entrypoint (clears its Cmd)\n"
	       "      --pull POLICY       if-missing (default), always, or never\n"
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
	case OPT_ENTRYPOINT:
		o->entrypoint = arg;
		return 0;
	case OPT_PULL:
		if (!strcmp(arg, "if-missing") || !strcmp(arg, "missing"))
			o->pull = PULL_IF_MISSING;
		else if (!strcmp(arg, "always"))
			o->pull = PULL_ALWAYS;
		else if (!strcmp(arg, "never"))
			o->pull = PULL_NEVER;
		else
			return cli_error("invalid --pull \"%s\" (use always, if-missing or never)",
					 arg);
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

/* What the sandbox runs: argv, environment, cwd and user, from the image and the flags. */
struct plan {
	struct strv argv, env;
	const char *cwd, *user;
};

/* Replaces KEY's entry in @env (or appends it). */
static int env_set(struct strv *env, const char *kv)
{
	size_t klen = (size_t)(strchr(kv, '=') - kv);

	for (size_t i = 0; i < env->n; i++) {
		if (!strncmp(env->v[i], kv, klen) && env->v[i][klen] == '=') {
			char *dup = strdup(kv);

			if (!dup)
				return -1;
			free(env->v[i]);
			env->v[i] = dup;
			return 0;
		}
	}
	return strv_push(env, kv);
}

static int make_plan(const struct run_opts *o, const struct image_config *ic, struct plan *p)
{
	char **entry = ic ? ic->entrypoint : NULL, **cmd = o->cmd && o->cmd[0] ? o->cmd : NULL;
	int r = 0;

	memset(p, 0, sizeof(*p));
	if (o->entrypoint)
		entry = NULL;
	/* docker: --entrypoint also drops the image's Cmd */
	if (!cmd && ic && !o->entrypoint)
		cmd = ic->cmd;
	if (o->entrypoint && *o->entrypoint)
		r |= strv_push(&p->argv, o->entrypoint);
	for (char **e = entry; e && *e; e++)
		r |= strv_push(&p->argv, *e);
	for (char **c = cmd; c && *c; c++)
		r |= strv_push(&p->argv, *c);
	if (!p->argv.n)
		r |= strv_push(&p->argv, "/bin/sh");
	for (char **e = ic ? ic->env : NULL; e && *e; e++)
		r |= env_set(&p->env, *e);
	for (size_t i = 0; i < o->env.n; i++)
		r |= env_set(&p->env, o->env.v[i]);
	p->cwd = o->workdir ? o->workdir : ic ? ic->workdir : NULL;
	p->user = o->user ? o->user : ic ? ic->user : NULL;
	return r ? -1 : 0;
}

static void plan_free(struct plan *p)
{
	strv_free(&p->argv);
	strv_free(&p->env);
}

/*
 * Resolves the image (pulling per --pull) into layer paths and its config,
 * and holds its layers (image_hold_layers()) so that `msb rmi` cannot delete
 * them before the sandbox has linked them. A Ctrl-C stops a pull at once.
 */
static int image_layers(const struct run_opts *o, struct image_record *img, struct image_config *ic,
			struct strv *layers, int **held, struct msb_err **err)
{
	_cleanup_close_ int sfd = -1;
	struct progress *pr = NULL;
	struct pull_opts po = { .cancel_fd = -1 };
	struct db *db = NULL;
	json_t *cfg = NULL;
	sigset_t set;
	int r;

	/* cmd_run() blocked these: a signalfd sees them without a handler. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	po.cancel_fd = sfd;
	if (!o->quiet) {
		/* stdout belongs to the command: progress goes to stderr */
		pr = progress_new(stderr);
		po.progress = progress_event;
		po.ctx = pr;
	}
	r = msbcfg_load(&cfg, err);
	if (!r)
		r = db_open(&db, err);
	if (!r)
		r = image_get(db, cfg, o->image, o->pull, &po, img, err);
	if (!r && image_hold_layers(img, held, NULL) < 0) {
		/* Removed between the lookup and the hold: fetch it again, once. */
		image_record_free(img);
		r = image_get(db, cfg, o->image, o->pull == PULL_NEVER ? PULL_NEVER : PULL_ALWAYS,
			      &po, img, err);
		if (!r)
			r = image_hold_layers(img, held, err);
	}
	if (!r)
		r = image_config_parse(img->config, strlen(img->config), ic, err);
	for (size_t i = 0; !r && i < img->nlayers; i++) {
		_cleanup_free_ char *f = layer_file(img->layers[i].diff_id);

		if (!f || strv_push(layers, f) < 0)
			r = msb_err_sys(err, ENOMEM, "run");
	}
	progress_free(pr);
	db_close(db);
	json_decref(cfg);
	return r < 0 ? -1 : 0;
}

static void sandbox_record(const char *name, const struct image_record *img, bool add)
{
	struct db *db = NULL;

	if (!*name || !img || !img->reference || db_open(&db, NULL) < 0)
		return;
	if (add)
		db_sandbox_put(db, name, img->reference, img->manifest_digest, "running", NULL);
	else
		db_sandbox_delete(db, name, NULL);
	db_close(db);
}

static int run_sandbox(struct run_opts *o, int *status, struct msb_err **err)
{
	_cleanup_free_ char *dir = NULL, *layer = NULL;
	struct image_record img = { 0 };
	struct image_config ic = { 0 };
	struct strv layers = { 0 };
	struct sbx_boot_info info;
	struct sbx_spec spec = { 0 };
	struct plan plan = { 0 };
	char name[32] = "";
	bool booted = false;
	int fd = -1, lock = -1, r = -1, *held = NULL;

	if (preflight(err) < 0)
		return -1;
	/* Sandboxes whose msb was killed leave their directories: clear them first. */
	sbx_reap();
	if (o->image && image_layers(o, &img, &ic, &layers, &held, err) < 0)
		goto out;
	if (make_plan(o, o->image ? &ic : NULL, &plan) < 0) {
		msb_err_sys(err, ENOMEM, "run");
		goto out;
	}
	sbx_ephemeral_name(name, sizeof(name));
	lock = sbx_make_dir(name, err);
	if (lock < 0) {
		name[0] = '\0';
		goto out;
	}
	dir = sbx_dir(name);
	if (o->rootfs) {
		if (rootfs_prepare(o->rootfs, dir, &layer, err) < 0 ||
		    strv_push(&layers, layer) < 0)
			goto out;
	}
	if (o->upper_mib && sbx_make_upper(name, o->upper_mib, err) < 0)
		goto out;
	spec = (struct sbx_spec){ .name = name,
				  .ephemeral = true,
				  .cpus = o->cpus,
				  .mem_mib = o->mem_mib,
				  .upper_mib = o->upper_mib,
				  .hostname = name,
				  .layers = layers.v,
				  .image = img.reference,
				  .image_digest = img.manifest_digest,
				  .log_level = o->log_level };
	if (sbx_spec_save(&spec, err) < 0)
		goto out;
	sandbox_record(name, &img, true);
	if (sbx_boot(name, true, lock, &info, err) < 0)
		goto out;
	booted = true;
	/* The sandbox has its own links to the layer images now. */
	if (held) {
		image_release_layers(held, img.nlayers);
		held = NULL;
	}
	if (o->log_level >= LOG_DEBUG)
		fprintf(stderr, "msb: debug: boot: accel %s, kernel %.1f ms, agent ready %.1f ms\n",
			info.accel, (double)info.kernel_ns / 1e6, (double)info.ready_ns / 1e6);
	fd = sbx_connect(name, err);
	if (fd < 0) {
		kill(info.supervisor, SIGTERM);
		goto out;
	}
	{
		struct sbx_exec x = {
			.argv = plan.argv.v,
			.env = plan.env.v,
			.cwd = plan.cwd,
			.user = plan.user,
			.tty = o->tty,
			.mkcwd = plan.cwd != NULL,
			/* like docker without -i: a terminal's input is not read without -t */
			.forward_stdin = o->tty || !isatty(0),
			.stdout_closed = cli_stdio_closed[1],
			.stderr_closed = cli_stdio_closed[2],
			.timeout_ms = o->timeout_ms,
			.nrlimits = o->nrlimits,
		};

		memcpy(x.rlimits, o->rlimits, sizeof(x.rlimits));
		r = sbx_exec_run(fd, &x, status, err);
	}
out:
	/* Leaving is enough: an attached sandbox ends when its owner goes. */
	if (fd >= 0)
		close(fd);
	/* The supervisor removes the VM and the directory; be done only after it. */
	if (booted)
		sbx_wait_supervisor(info.supervisor, SUPERVISOR_EXIT_MS);
	if (dir)
		rm_rf(dir);
	if (lock >= 0)
		close(lock);
	if (held)
		image_release_layers(held, img.nlayers);
	sandbox_record(name, &img, false);
	strv_free(&layers);
	plan_free(&plan);
	image_config_free(&ic);
	image_record_free(&img);
	return r;
}

int cmd_run(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	struct run_opts o = { .cpus = SBX_DEFAULT_CPUS,
			      .mem_mib = SBX_DEFAULT_MEM_MIB,
			      .log_level = LOG_INFO,
			      .pull = PULL_IF_MISSING };
	struct strv pos = { 0 };
	sigset_t set;
	int r, status = 0;
	size_t first = 0;

	r = parse_args(argc, argv, &o, &pos);
	if (r) {
		r = r < 0 ? 0 : r;
		goto out;
	}
	if (!o.rootfs) {
		if (!pos.n) {
			r = cli_error("run: no image given (use: msb run IMAGE [COMMAND], or "
				      "--rootfs PATH)");
			goto out;
		}
		o.image = pos.v[0];
		first = 1;
	}
	/* Without "--", everything after the image is the command. */
	if (!o.cmd) {
		o.cmd = pos.v ? pos.v + first : NULL;
	} else if (pos.n > first) {
		r = cli_error("run: unexpected argument \"%s\" before \"--\"", pos.v[first]);
		goto out;
	}
	if (o.rootfs && (!o.cmd || !o.cmd[0])) {
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
