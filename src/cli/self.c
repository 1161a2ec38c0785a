// SPDX-License-Identifier: Apache-2.0
/*
 * msb self uninstall: undo scripts/setup.sh.
 *
 * Removes what setup.sh installed, $MSB_HOME/bin/msb (only when that is the
 * msb running: a package's or a build tree's msb is not this command's to
 * remove) and $MSB_HOME/lib/{vmlinux,initrd.cpio}; the PATH blocks it put
 * in the shells' configuration (the lines from "# >>> msb >>>" to
 * "# <<< msb <<<", every other byte kept); and the commands `msb install`
 * made, with their records. The user's data (everything else under
 * $MSB_HOME: sandboxes, images, volumes, snapshots, configuration) goes only
 * on an explicit yes: -y, or "y" at the prompt on a terminal.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sandbox/lifecycle.h"
#include "store/db.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define BLOCK_BEGIN  "# >>> msb >>>"
#define BLOCK_END    "# <<< msb <<<"
#define RC_MAX	     (16u << 20)
#define STOP_GRACE_S 10

static void self_usage(void)
{
	printf("Usage: msb self COMMAND\n\n"
	       "Manage the msb installation itself.\n\n"
	       "Commands:\n"
	       "  update      Update msb to the latest release (alias: upgrade; --rollback)\n"
	       "  uninstall   Remove msb, its guest kernel, and its shell configuration\n");
}

static void uninstall_usage(void)
{
	printf("Usage: msb self uninstall [OPTIONS]\n\n"
	       "Remove what scripts/setup.sh installed: ~/.microsandbox/bin/msb (this msb),\n"
	       "lib/vmlinux and lib/initrd.cpio, the releases 'msb self update' keeps in\n"
	       "releases/, the commands 'msb install' made, and the\n"
	       "PATH block in the shells' configuration files. Then asks whether to remove\n"
	       "the data too (sandboxes, images, volumes, snapshots: all of ~/.microsandbox);\n"
	       "without a terminal to ask on, the data is kept.\n\n"
	       "Options:\n"
	       "  -y, --yes        Skip confirmation prompt (remove the data too)\n"
	       "      --keep-data  Keep the data without asking\n"
	       "      --stop       Stop running sandboxes first (else they are a refusal)\n");
}

/* --- the shells' configuration -------------------------------------------- */

/* A line [s, e) (without its newline) that is exactly @marker. */
static bool is_line(const char *s, const char *e, const char *marker)
{
	size_t n = strlen(marker);

	return (size_t)(e - s) == n && !memcmp(s, marker, n);
}

/*
 * @text without its msb blocks, in *@out (*@outlen bytes). Return: how many
 * blocks were taken out, or -1 when a marker has no partner (then nothing is).
 */
static int strip_blocks(const char *text, size_t len, char **out, size_t *outlen)
{
	char *o = malloc(len + 1);
	size_t k = 0;
	bool in = false;
	int blocks = 0;

	if (!o)
		return -1;
	for (const char *l = text, *end = text + len; l < end;) {
		const char *e = memchr(l, '\n', (size_t)(end - l));
		const char *next = e ? e + 1 : end;

		if (!e)
			e = end;
		if (is_line(l, e, BLOCK_BEGIN)) {
			if (in)
				goto unmatched;
			in = true;
		} else if (is_line(l, e, BLOCK_END)) {
			if (!in)
				goto unmatched;
			in = false;
			blocks++;
		} else if (!in) {
			memcpy(o + k, l, (size_t)(next - l));
			k += (size_t)(next - l);
		}
		l = next;
	}
	if (in)
		goto unmatched;
	*out = o;
	*outlen = k;
	return blocks;
unmatched:
	free(o);
	return -1;
}

/* @path replaced by @len bytes of @data, with mode @mode: whole, or not at all. */
static int replace_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int r = write_file_atomic(path, data, len, mode);

	/* The file's own mode, not the umask's version of it. */
	if (!r && chmod(path, mode) < 0)
		r = -errno;
	return r;
}

/*
 * Takes the msb blocks out of @path (a symlinked dotfile: out of its target,
 * the link kept). A file that held nothing else goes. Return: 0, or -1 after
 * a warning (the file is left as it was).
 */
static int unblock_rc(const char *path)
{
	_cleanup_free_ char *real = NULL, *text = NULL, *out = NULL;
	size_t len = 0, outlen = 0;
	struct stat st, lst;
	int n, r;

	if (lstat(path, &lst) < 0 || !(real = realpath(path, NULL)) || stat(real, &st) < 0 ||
	    !S_ISREG(st.st_mode))
		return 0;
	r = read_file(real, RC_MAX, &text, &len);
	if (r < 0) {
		fprintf(stderr, "msb: warning: cannot read %s: %s; delete its msb block yourself\n",
			path, strerror(-r));
		return -1;
	}
	n = strip_blocks(text, len, &out, &outlen);
	if (n < 0) {
		fprintf(stderr,
			"msb: warning: %s has a '" BLOCK_BEGIN "' line without its '" BLOCK_END
			"' (or the reverse); left alone\n",
			path);
		return -1;
	}
	if (n == 0)
		return 0;
	if (outlen == 0 && S_ISREG(lst.st_mode)) {
		if (unlink(path) < 0) {
			fprintf(stderr, "msb: warning: cannot remove %s: %s\n", path,
				strerror(errno));
			return -1;
		}
		printf("removed %s (it held only msb's PATH block)\n", path);
		return 0;
	}
	r = replace_file(real, out, outlen, st.st_mode & 07777);
	if (r < 0) {
		fprintf(stderr,
			"msb: warning: cannot rewrite %s: %s; delete its msb block yourself\n",
			path, strerror(-r));
		return -1;
	}
	printf("removed the PATH block from %s\n", path);
	return 0;
}

/* Every file setup.sh may have given a block, each once. */
static int unblock_all_rc(void)
{
	const char *home = getenv("HOME"), *zdot = getenv("ZDOTDIR"),
		   *xdg = getenv("XDG_CONFIG_HOME");
	char *files[8] = { 0 };
	size_t n = 0;
	int rc = 0;

	if (!home || !*home)
		return 0;
	if (asprintf(&files[n], "%s/.bashrc", home) >= 0)
		n++;
	if (asprintf(&files[n], "%s/.profile", home) >= 0)
		n++;
	if (asprintf(&files[n], "%s/.bash_profile", home) >= 0)
		n++;
	if (asprintf(&files[n], "%s/.bash_login", home) >= 0)
		n++;
	if (asprintf(&files[n], "%s/.zshrc", home) >= 0)
		n++;
	if (zdot && *zdot && asprintf(&files[n], "%s/.zshrc", zdot) >= 0)
		n++;
	if (asprintf(&files[n], "%s/.config/fish/config.fish", home) >= 0)
		n++;
	if (xdg && *xdg && asprintf(&files[n], "%s/fish/config.fish", xdg) >= 0)
		n++;
	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			seen = seen || !strcmp(files[i], files[j]);
		if (!seen && unblock_rc(files[i]) < 0)
			rc = -1;
	}
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	return rc;
}

/* --- what msb install made --------------------------------------------------- */

/* Is @path a command `msb install` wrote (its second line "# msb install: ...")? */
static bool is_alias_exe(int dirfd_, const char *name)
{
	char buf[256];
	ssize_t n;
	int fd = openat(dirfd_, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	char *nl;

	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return false;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	return nl && !strncmp(nl + 1, "# msb install:", 14);
}

static int remove_aliases(const char *home)
{
	_cleanup_free_ char *bin = path_join(home, "bin"), *rec = path_join(home, "aliases");
	_cleanup_closedir_ DIR *d = bin ? opendir(bin) : NULL;
	struct dirent *e;
	struct stat st;
	int rc = 0, r;

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' || !is_alias_exe(dirfd(d), e->d_name))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0) {
			fprintf(stderr, "msb: cannot remove %s/%s: %s\n", bin, e->d_name,
				strerror(errno));
			rc = -1;
			continue;
		}
		printf("removed command %s (%s/%s)\n", e->d_name, bin, e->d_name);
	}
	if (rec && lstat(rec, &st) == 0) {
		r = rm_rf(rec);
		if (r < 0) {
			fprintf(stderr, "msb: cannot remove %s: %s\n", rec, strerror(-r));
			rc = -1;
		} else {
			printf("removed %s\n", rec);
		}
	}
	return rc;
}

/* --- running sandboxes -------------------------------------------------------- */

/* The sandboxes running now, into @out (nothing when there is no database yet). */
static int running_sandboxes(const char *home, struct strv *out, struct msb_err **err)
{
	_cleanup_free_ char *dbp = NULL;
	_cleanup_strv_ char **names = NULL;
	struct db *db = NULL;

	if (asprintf(&dbp, "%s/db/msb.db", home) < 0)
		return msb_err_sys(err, ENOMEM, "sandboxes");
	if (access(dbp, F_OK) < 0)
		return 0;
	if (db_open(&db, err) < 0)
		return -1;
	if (db_sandbox_names(db, &names, err) < 0) {
		db_close(db);
		return -1;
	}
	db_close(db);
	for (char **n = names; n && *n; n++)
		if (sbx_alive(*n) && strv_push(out, *n) < 0)
			return msb_err_sys(err, ENOMEM, "sandboxes");
	return 0;
}

/* --- msb self uninstall ------------------------------------------------------- */

enum { OPT_KEEP_DATA = 256, OPT_STOP };

/* Does @a name the same directory as @b (both resolved)? */
static bool same_dir(const char *a, const char *b)
{
	_cleanup_free_ char *ra = a ? realpath(a, NULL) : NULL, *rb = b ? realpath(b, NULL) : NULL;

	return ra && rb && !strcmp(ra, rb);
}

/* Is @b (resolved) inside directory @a (resolved)? */
static bool holds(const char *a, const char *b)
{
	_cleanup_free_ char *ra = a ? realpath(a, NULL) : NULL, *rb = b ? realpath(b, NULL) : NULL;
	size_t n = ra ? strlen(ra) : 0;

	return ra && rb && !strncmp(ra, rb, n) && (rb[n] == '/' || rb[n] == '\0');
}

/* "y" or "yes" on stdin after @question on stderr. */
static bool ask(const char *question)
{
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	fprintf(stderr, "%s [y/N] ", question);
	fflush(stderr);
	n = getline(&line, &cap, stdin);
	if (n < 0) {
		fputc('\n', stderr);
		return false;
	}
	line[strcspn(line, "\r\n")] = '\0';
	return !strcasecmp(line, "y") || !strcasecmp(line, "yes");
}

static int uninstall(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "yes", no_argument, NULL, 'y' },
		{ "keep-data", no_argument, NULL, OPT_KEEP_DATA },
		{ "stop", no_argument, NULL, OPT_STOP },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	_cleanup_free_ char *self = NULL, *bin = NULL, *installed = NULL, *lib = NULL;
	struct strv running = { 0 };
	bool yes = false, keep = false, stop = false, asked_none = false, data;
	const char *home, *user_home = getenv("HOME");
	int c, rc = 0, r;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+yh", lo, NULL)) != -1) {
		switch (c) {
		case 'y':
			yes = true;
			break;
		case OPT_KEEP_DATA:
			keep = true;
			break;
		case OPT_STOP:
			stop = true;
			break;
		case 'h':
			uninstall_usage();
			return 0;
		default:
			return cli_bad_flag("self uninstall", argv, lo);
		}
	}
	if (optind < argc)
		return cli_error("self uninstall: unexpected argument \"%s\" (it takes only flags)",
				 argv[optind]);
	home = msb_home();
	if (!home)
		return cli_error("self uninstall: no home directory (set MSB_HOME or HOME)");
	bin = path_join(home, "bin");
	installed = path_join(home, "bin/msb");
	lib = path_join(home, "lib");
	self = realpath("/proc/self/exe", NULL);
	if (!bin || !installed || !lib || !self)
		return cli_error("self uninstall: cannot tell where this msb is: %s",
				 strerror(errno));
	/* Only setup.sh's install: another msb belongs to a package or a build tree. */
	{
		_cleanup_free_ char *inst = realpath(installed, NULL);

		if (!inst || strcmp(inst, self) != 0) {
			if (inst)
				return cli_error(
					"msb self uninstall removes a setup.sh install; this "
					"msb is %s (run %s self uninstall, or remove this "
					"one with your package manager / make uninstall)",
					self, installed);
			return cli_error("msb self uninstall removes a setup.sh install; this msb "
					 "is %s (remove it with your package manager / make "
					 "uninstall)",
					 self);
		}
	}

	if (running_sandboxes(home, &running, &err) < 0) {
		strv_free(&running);
		return cli_fail(err);
	}
	if (running.n && !stop) {
		char list[1024] = "";
		size_t k = 0;

		for (size_t i = 0; i < running.n && k < sizeof(list); i++)
			k += (size_t)snprintf(list + k, sizeof(list) - k, "%s%s", i ? ", " : "",
					      running.v[i]);
		r = cli_error("self uninstall: %zu sandbox%s running: %s (stop them first, or use "
			      "--stop)",
			      running.n, running.n == 1 ? " is" : "es are", list);
		strv_free(&running);
		return r;
	}

	/* The data: only on an explicit yes, never in the user's home itself. */
	if (keep) {
		data = false;
	} else if (yes) {
		data = true;
	} else if (isatty(0)) {
		char q[PATH_MAX + 96];

		snprintf(q, sizeof(q),
			 "Also remove all sandboxes, images, volumes and snapshots in %s?", home);
		data = ask(q);
	} else {
		data = false;
		asked_none = true;
	}
	if (data && (same_dir(home, "/") || same_dir(home, user_home) || holds(home, user_home))) {
		fprintf(stderr,
			"msb: warning: %s is or holds your home directory: not removing it\n",
			home);
		data = false;
	}

	for (size_t i = 0; i < running.n; i++) {
		if (sbx_stop(running.v[i], STOP_GRACE_S, false, &err) < 0) {
			rc = cli_fail(err);
			msb_err_free(err);
			err = NULL;
			continue;
		}
		printf("stopped sandbox %s\n", running.v[i]);
	}
	strv_free(&running);
	if (rc) {
		fprintf(stderr, "msb: nothing removed (a sandbox did not stop)\n");
		return rc;
	}

	if (unblock_all_rc() < 0)
		rc = EXIT_MSB;
	if (remove_aliases(home) < 0)
		rc = EXIT_MSB;
	for (int i = 0; i < 2; i++) {
		_cleanup_free_ char *p = path_join(lib, i ? "initrd.cpio" : "vmlinux");

		if (!p)
			continue;
		if (unlink(p) == 0) {
			printf("removed %s\n", p);
		} else if (errno != ENOENT) {
			fprintf(stderr, "msb: cannot remove %s: %s\n", p, strerror(errno));
			rc = EXIT_MSB;
		}
	}
	rmdir(lib);
	/* The binary last: it is this process's, which runs on from the unlinked inode. */
	if (unlink(installed) < 0) {
		fprintf(stderr, "msb: cannot remove %s: %s\n", installed, strerror(errno));
		return EXIT_MSB;
	}
	printf("removed %s\n", installed);
	rmdir(bin);
	/* The releases `msb self update` keeps (setup.sh's install is one of them). */
	{
		_cleanup_free_ char *rel = path_join(home, "releases");

		if (rel && access(rel, F_OK) == 0) {
			r = rm_rf(rel);
			if (r < 0) {
				fprintf(stderr, "msb: cannot remove %s: %s\n", rel, strerror(-r));
				return EXIT_MSB;
			}
			printf("removed %s\n", rel);
		}
	}
	if (data) {
		r = rm_rf(home);
		if (r < 0) {
			fprintf(stderr, "msb: cannot remove all of %s: %s\n", home, strerror(-r));
			return EXIT_MSB;
		}
		printf("removed %s (all sandboxes, images, volumes and snapshots)\n", home);
	} else if (access(home, F_OK) == 0) {
		printf("kept %s: sandboxes, images, volumes and snapshots (%s: rm -rf %s)\n", home,
		       asked_none ? "no terminal to ask on; to remove them too" : "to remove them",
		       home);
	}
	return rc;
}

int cmd_self(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		self_usage();
		return argc < 2 ? EXIT_MSB : 0;
	}
	if (!strcmp(argv[1], "update") || !strcmp(argv[1], "upgrade"))
		return self_update(argc - 1, argv + 1);
	if (!strcmp(argv[1], "uninstall"))
		return uninstall(argc - 1, argv + 1);
	return cli_error("self: unknown command \"%s\" (see 'msb self --help')", argv[1]);
}
