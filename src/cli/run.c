// SPDX-License-Identifier: Apache-2.0
/* msb run and msb create: make a sandbox, boot it, and (run) run a command in it. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sbxflags.h"
#include "sandbox/create.h"
#include "sandbox/exec.h"
#include "sandbox/lifecycle.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "vm/vm.h"

/* How long the supervisor gets to tear the sandbox down once the command is over. */
#define SUPERVISOR_EXIT_MS 30000

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
	vm_accel_warn(accel, why);
	if (msb_lib_file("vmlinux", &k, err) < 0 || msb_lib_file("initrd.cpio", &i, err) < 0)
		return -1;
	return 0;
}

/* --replace: the old sandbox gets SIGTERM, the grace, SIGKILL; then it is removed. */
static int replace(const char *name, uint64_t grace_ms, struct msb_err **err)
{
	if (!sbx_exists(name))
		return 0;
	if (sbx_alive(name) && sbx_stop(name, (uint32_t)((grace_ms + 999) / 1000), false, err) < 0)
		return -1;
	return sbx_remove(name, true, err);
}

/* Positional arguments: IMAGE (unless --rootfs) and the command. */
static int split_positionals(const char *cmd, struct sbx_flags *f)
{
	size_t first = 0;

	if (f->co.from_snapshot) {
		/* IMAGE is optional (a check of the snapshot's base): only before "--". */
		if (f->cmd && f->pos.n > 1)
			return cli_error("%s: unexpected argument \"%s\" before \"--\"", cmd,
					 f->pos.v[1]);
		if (f->cmd && f->pos.n == 1)
			f->co.image = f->pos.v[0];
		else if (!f->cmd)
			f->cmd = f->pos.v;
		f->co.cmd = f->cmd;
		return 0;
	}
	if (!f->co.rootfs) {
		if (!f->pos.n)
			return cli_error(
				"%s: no image given (use: msb %s IMAGE%s, or --rootfs PATH)", cmd,
				cmd, !strcmp(cmd, "run") ? " [COMMAND]" : "");
		f->co.image = f->pos.v[0];
		first = 1;
	}
	/* Without "--", everything after the image is the command. */
	if (!f->cmd)
		f->cmd = f->pos.v ? f->pos.v + first : NULL;
	else if (f->pos.n > first)
		return cli_error("%s: unexpected argument \"%s\" before \"--\"", cmd,
				 f->pos.v[first]);
	f->co.cmd = f->cmd;
	return 0;
}

/* Creates the sandbox (replacing one if asked), pulling with Ctrl-C able to stop it. */
static int make(struct sbx_flags *f, struct sbx_made *m, struct msb_err **err)
{
	_cleanup_close_ int cancel = cli_cancel_fd();

	if (preflight(err) < 0)
		return -1;
	/* Sandboxes whose msb was killed leave their directories: clear them first. */
	sbx_reap();
	if (f->co.name && sbx_check_name(f->co.name, err) < 0)
		return -1;
	if (f->co.name && sbx_exists(f->co.name)) {
		if (!f->replace)
			return msb_err_set(err, EEXIST,
					   "sandbox %s already exists (use --replace, or remove it "
					   "with 'msb rm %s')",
					   f->co.name, f->co.name);
		if (replace(f->co.name, f->replace_grace_ms, err) < 0)
			return -1;
	}
	f->co.cancel_fd = cancel;
	return sbx_create(&f->co, m, err);
}

/* The command in the sandbox, attached to this terminal; it is the sandbox's main command. */
static int attach(struct sbx_flags *f, const char *name, int *status, struct msb_err **err)
{
	struct sbx_spec spec;
	int fd, r;

	if (sbx_spec_load(name, &spec, err) < 0)
		return -1;
	fd = sbx_connect(name, err);
	if (fd < 0) {
		sbx_spec_free(&spec);
		return -1;
	}
	{
		/* No command and no image default: an interactive shell, the --shell one. */
		char *sh[] = { spec.shell, NULL };
		struct sbx_exec x = {
			.argv = spec.command && spec.command[0] ? spec.command : sh,
			.env = spec.env,
			.cwd = spec.workdir,
			.user = spec.user,
			.tty = f->tty,
			.mkcwd = spec.workdir != NULL,
			/* like docker without -i: a terminal's input is not read without -t */
			.forward_stdin = f->tty || !isatty(0),
			.stdout_closed = cli_stdio_closed[1],
			.stderr_closed = cli_stdio_closed[2],
			.main = true,
			.timeout_ms = f->timeout_ms,
		};

		/* The spec's limits hold the --rlimits (and a snapshot's). */
		if (sbx_exec_rlimits(spec.rlimits, f->rlimits, f->nrlimits, x.rlimits,
				     &x.nrlimits) < 0) {
			close(fd);
			sbx_spec_free(&spec);
			return msb_err_set(err, EINVAL, "sandbox %s: bad rlimits in its config",
					   name);
		}
		if (f->tty && sbx_parse_detach_keys(f->detach_keys, x.detach_keys,
						    sizeof(x.detach_keys), &x.ndetach_keys) < 0) {
			close(fd);
			sbx_spec_free(&spec);
			return msb_err_set(err, EINVAL,
					   "invalid --detach-keys \"%s\" (use e.g. ctrl-] or "
					   "ctrl-p,ctrl-q)",
					   f->detach_keys);
		}
		r = sbx_exec_run(fd, &x, status, err);
	}
	close(fd);
	sbx_spec_free(&spec);
	return r;
}

static int run(struct sbx_flags *f, int *status, struct msb_err **err)
{
	struct sbx_boot_info info;
	struct sbx_made m = { .lock = -1 };
	unsigned int flags = f->detach ? SBX_BOOT_RUN_MAIN : SBX_BOOT_ATTACHED;
	int r;

	if (make(f, &m, err) < 0)
		return -1;
	if (sbx_boot(m.name, flags, m.lock, &info, err) < 0) {
		/* A sandbox that never booted is not kept. */
		sbx_discard(&m);
		return -1;
	}
	/* The sandbox has its own links to the layer images now, and its own lock. */
	sbx_made_release(&m);
	if (f->co.log_level >= LOG_DEBUG)
		fprintf(stderr, "msb: debug: boot: accel %s, kernel %.1f ms, ready %.1f ms\n",
			info.accel, (double)info.kernel_ns / 1e6, (double)info.ready_ns / 1e6);
	if (f->detach) {
		printf("%s\n", m.name);
		*status = 0;
		return 0;
	}
	r = attach(f, m.name, status, err);
	if (r == 0 && *status == SBX_EXEC_DETACHED) {
		/* Ctrl-] : the command and its sandbox run on. */
		fprintf(stderr, "\r\nmsb: detached from %s (still running)\n", m.name);
		*status = 0;
		return 0;
	}
	/* The main command ended (or we gave up on it): the sandbox ends; be done after it. */
	sbx_wait_supervisor(info.supervisor, r < 0 && !f->co.name ? 0 : SUPERVISOR_EXIT_MS);
	if (!f->co.name) {
		_cleanup_free_ char *dir = sbx_dir(m.name);

		if (dir)
			rm_rf(dir);
		sbx_forget(m.name);
	}
	return r;
}

int cmd_run(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	struct sbx_flags f;
	int r, status = 0;

	r = sbxflags_parse("run", argc, argv, &f);
	if (!r)
		r = split_positionals("run", &f);
	if (r) {
		sbxflags_free(&f);
		return r < 0 ? 0 : r;
	}
	/* Signals are handled through signalfd from here on. */
	cli_block_signals();
	r = run(&f, &status, &err) < 0 ? cli_fail(err) : status;
	sbxflags_free(&f);
	return r;
}

int cmd_create(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	struct sbx_boot_info info;
	struct sbx_flags f;
	struct sbx_made m = { .lock = -1 };
	int r;

	r = sbxflags_parse("create", argc, argv, &f);
	if (!r && !f.co.name)
		r = cli_error("create: a sandbox needs a name (use --name NAME)");
	if (!r)
		r = split_positionals("create", &f);
	if (r) {
		sbxflags_free(&f);
		return r < 0 ? 0 : r;
	}
	cli_block_signals();
	if (make(&f, &m, &err) < 0) {
		r = cli_fail(err);
	} else if (sbx_boot(m.name, 0, m.lock, &info, &err) < 0) {
		/* A sandbox that never booted is not kept. */
		sbx_discard(&m);
		r = cli_fail(err);
	} else {
		sbx_made_release(&m);
		r = 0;
	}
	sbxflags_free(&f);
	return r;
}
