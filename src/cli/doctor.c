// SPDX-License-Identifier: Apache-2.0
/*
 * msb doctor: what makes this host good or bad for msb, one line per check,
 * each with ok, warn or fail and, when not ok, the fix. Exit status 1 when a
 * check failed (msb cannot run a sandbox here), else 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <jansson.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/keyring.h"
#include "util/spawn.h"
#include "vm/vm.h"

enum level { OK, WARN, FAIL };

struct check {
	const char *name;
	enum level level;
	char detail[256];
	char fix[256];
};

#define MAX_CHECKS 12

struct report {
	struct check c[MAX_CHECKS];
	size_t n;
};

/* A check's result, its detail formatted from @fmt. */
__attribute__((format(printf, 4, 5))) static struct check *add(struct report *r, const char *name,
							       enum level l, const char *fmt, ...)
{
	struct check *c = &r->c[r->n < MAX_CHECKS ? r->n++ : MAX_CHECKS - 1];
	va_list ap;

	memset(c, 0, sizeof(*c));
	c->name = name;
	c->level = l;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	return c;
}

/* What to do about @c, formatted from @fmt. */
__attribute__((format(printf, 2, 3))) static void set_fix(struct check *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->fix, sizeof(c->fix), fmt, ap);
	va_end(ap);
}

static bool in_group(gid_t g)
{
	gid_t groups[256];
	int n = getgroups(256, groups);

	if (getegid() == g)
		return true;
	for (int i = 0; i < n; i++)
		if (groups[i] == g)
			return true;
	return false;
}

static void check_kvm(struct report *r)
{
	bool hw = access("/sys/module/kvm_intel", F_OK) == 0 ||
		  access("/sys/module/kvm_amd", F_OK) == 0;
	struct stat st;
	struct check *c;
	int fd;

	if (stat("/dev/kvm", &st) < 0) {
		c = add(r, "kvm", WARN,
			"no /dev/kvm: guests run under QEMU's TCG (software emulation, several "
			"times slower)");
		set_fix(c,
			"enable virtualization (VT-x/AMD-V) in the firmware and load kvm_intel or "
			"kvm_amd");
		return;
	}
	if (!hw) {
		c = add(r, "kvm", WARN,
			"/dev/kvm is not hardware KVM (no kvm_intel or kvm_amd; PVM or nested "
			"without VMX?): guests run under QEMU's TCG");
		set_fix(c, "run on a host or VM with hardware virtualization exposed");
		return;
	}
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		struct group *g = getgrgid(st.st_gid);
		const char *gn = g ? g->gr_name : "kvm";

		c = add(r, "kvm", WARN,
			"hardware KVM, but this user may not open /dev/kvm (%s): guests fall back "
			"to TCG",
			strerror(errno));
		if (!in_group(st.st_gid))
			set_fix(c, "sudo usermod -aG %s %s, then log in again", gn,
				getenv("USER") ? getenv("USER") : "$USER");
		else
			set_fix(c, "you are in group %s already: log in again so it takes effect",
				gn);
		return;
	}
	close(fd);
	add(r, "kvm", OK, "hardware KVM (%s), /dev/kvm opens read-write",
	    access("/sys/module/kvm_intel", F_OK) == 0 ? "kvm_intel" : "kvm_amd");
}

static void check_qemu(struct report *r)
{
	_cleanup_free_ char *q = vmm_binary();
	char out[512] = "";
	struct check *c;
	int maj = 0, min = 0;

	if (!q) {
		const char *env = getenv("MSB_QEMU");

		c = env && *env ? add(r, "qemu", FAIL, "MSB_QEMU=%s is not an executable", env)
				: add(r, "qemu", FAIL, "%s not found in PATH", VMM_PROGRAM);
		set_fix(c, "sudo apt-get install %s", VMM_PACKAGE);
		return;
	}
	{
		char *argv[] = { q, "--version", NULL };
		const char *v = NULL;
		char *end = NULL;

		if (spawn_io(argv, NULL, out, sizeof(out)) == 0 && (v = strstr(out, "version "))) {
			maj = (int)strtol(v + 8, &end, 10);
			if (end && *end == '.')
				min = (int)strtol(end + 1, NULL, 10);
		}
		if (!end || end == v + 8) {
			c = add(r, "qemu", FAIL, "%s --version did not answer", q);
			set_fix(c, "reinstall %s", VMM_PACKAGE);
			return;
		}
	}
	if (maj < 7) {
		c = add(r, "qemu", FAIL,
			"QEMU %d.%d at %s: msb needs 7.0 or later (microvm, -netdev stream)", maj,
			min, q);
		set_fix(c, "install QEMU 7.0 or later (Debian 12 has 7.2)");
		return;
	}
	add(r, "qemu", OK, "QEMU %d.%d at %s (microvm, -netdev stream)", maj, min, q);
}

static void check_guest(struct report *r)
{
	_cleanup_err_ struct msb_err *err = NULL;
	_cleanup_free_ char *k = NULL, *i = NULL;
	struct check *c;

	if (msb_lib_file("vmlinux", &k, &err) < 0 || msb_lib_file("initrd.cpio", &i, &err) < 0) {
		c = add(r, "guest", FAIL, "%s", err && err->msg ? err->msg : "not found");
		set_fix(c, "install msb with scripts/setup.sh, or set MSB_LIB_DIR to the build "
			   "directory");
		return;
	}
	add(r, "guest", OK, "kernel %s, agent %s", k, i);
}

/* Can this user make a user namespace (QEMU's jail and the network process use one)? */
static void check_userns(struct report *r)
{
	pid_t pid = fork();
	int st = 0;
	struct check *c;

	if (pid == 0)
		_exit(unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		c = add(r, "userns", FAIL,
			"unprivileged user namespaces are off: msb confines QEMU and its network "
			"process in them");
		set_fix(c, "sudo sysctl -w kernel.unprivileged_userns_clone=1 (Debian) or "
			   "user.max_user_namespaces=15000");
		return;
	}
	add(r, "userns", OK, "unprivileged user namespaces work");
}

static void check_seccomp(struct report *r)
{
	struct check *c;

	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL) {
		c = add(r, "seccomp", FAIL, "the kernel has no seccomp");
		set_fix(c, "use a kernel built with CONFIG_SECCOMP_FILTER");
		return;
	}
	add(r, "seccomp", OK, "seccomp filters available");
}

static void check_disk(struct report *r)
{
	const char *h = msb_home();
	_cleanup_free_ char *p = h ? strdup(h) : NULL;
	struct statvfs sv;
	struct check *c;
	double gib;

	/* The home, or the nearest directory above it that exists. */
	while (p && statvfs(p, &sv) < 0) {
		char *slash = strrchr(p, '/');

		if (!slash || slash == p) {
			p[0] = '/';
			p[1] = '\0';
			if (statvfs(p, &sv) < 0) {
				free(p);
				p = NULL;
			}
			break;
		}
		*slash = '\0';
	}
	if (!p) {
		add(r, "disk", WARN, "cannot tell the free space under %s", h ? h : "MSB_HOME");
		return;
	}
	gib = (double)sv.f_bavail * (double)sv.f_frsize / (1024.0 * 1024 * 1024);
	c = add(r, "disk", gib < 1 ? FAIL : gib < 5 ? WARN : OK, "%.1f GiB free under %s", gib, h);
	if (c->level != OK)
		set_fix(c, "free space there (msb prune when it lands; msb rmi, msb rm), or set "
			   "MSB_HOME elsewhere");
}

static void check_keyring(struct report *r)
{
	struct check *c;

	if (keyring_available()) {
		add(r, "keyring", OK,
		    "Secret Service reachable: registry passwords and secrets go there");
		return;
	}
	c = add(r, "keyring", WARN,
		"no Secret Service (secret-tool and a D-Bus session): credentials and secrets "
		"are kept in 0600 files under ~/.microsandbox/secrets");
	set_fix(c, "sudo apt-get install libsecret-tools gnome-keyring, in a desktop session");
}

static void check_ping(struct report *r)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ping_group_range", "re");
	long lo = 1, hi = 0;
	gid_t g = getegid();
	struct check *c;

	if (f) {
		char line[64], *end = NULL;

		if (fgets(line, sizeof(line), f)) {
			lo = strtol(line, &end, 10);
			hi = end ? strtol(end, NULL, 10) : 0;
		}
		fclose(f);
	}
	if (lo <= (long)g && (long)g <= hi) {
		add(r, "ping", OK,
		    "ping sockets allowed for group %ld: the guest's ping reaches allowed "
		    "hosts",
		    (long)g);
		return;
	}
	c = add(r, "ping", WARN,
		"ping sockets not allowed for group %ld (ping_group_range %ld %ld): the guest's "
		"ICMP echo gets no answer",
		(long)g, lo, hi);
	set_fix(c, "sudo sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"");
}

static const char *level_name(enum level l)
{
	return l == OK ? "ok" : l == WARN ? "warn" : "fail";
}

int cmd_doctor(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "format", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct report r = { .n = 0 };
	bool json = false, failed = false;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'F') {
			if (cli_parse_format("doctor", optarg, &json))
				return EXIT_MSB;
		} else if (c == 'h') {
			printf("Usage: msb doctor [--format json]\n\nCheck this host for msb: "
			       "KVM, QEMU, the guest kernel, user namespaces, seccomp, disk "
			       "space,\n"
			       "the keyring and ping sockets. One line each: ok, warn or fail, and "
			       "the fix.\nExit status 1 when a check failed.\n");
			return 0;
		} else {
			return cli_bad_flag("doctor", argv, lo);
		}
	}
	if (optind < argc)
		return cli_error("doctor: unexpected argument \"%s\"", argv[optind]);
	check_kvm(&r);
	check_qemu(&r);
	check_guest(&r);
	check_userns(&r);
	check_seccomp(&r);
	check_disk(&r);
	check_keyring(&r);
	check_ping(&r);
	for (size_t i = 0; i < r.n; i++)
		failed |= r.c[i].level == FAIL;
	if (json) {
		json_t *a = json_array();

		for (size_t i = 0; a && i < r.n; i++)
			json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s?}", "check",
							   r.c[i].name, "status",
							   level_name(r.c[i].level), "detail",
							   r.c[i].detail, "fix",
							   r.c[i].fix[0] ? r.c[i].fix : NULL));
		if (!a || cli_print_json(a) < 0) {
			json_decref(a);
			return cli_error("doctor: out of memory");
		}
		json_decref(a);
		return failed ? 1 : 0;
	}
	for (size_t i = 0; i < r.n; i++) {
		printf("%-5s %-8s %s\n", level_name(r.c[i].level), r.c[i].name, r.c[i].detail);
		if (r.c[i].fix[0])
			printf("%-5s %-8s fix: %s\n", "", "", r.c[i].fix);
	}
	return failed ? 1 : 0;
}
