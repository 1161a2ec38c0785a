// SPDX-License-Identifier: Apache-2.0
/* The flags `msb run` and `msb create` share. */
#define _GNU_SOURCE
#include "cli/sbxflags.h"
#include "sandbox/volume.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/secrets.h"
#include "sandbox/tlsca.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/parse.h"

#define MAX_TMPFS   32
#define MAX_SCRIPTS 64

enum {
	OPT_ROOTFS = 256,
	OPT_TIMEOUT,
	OPT_LOG_LEVEL,
	OPT_RLIMIT,
	OPT_UPPER_SIZE,
	OPT_ENTRYPOINT,
	OPT_PULL,
	OPT_SHELL,
	OPT_TMPFS,
	OPT_SCRIPT,
	OPT_SCRIPT_RAW,
	OPT_SCRIPT_PATH,
	OPT_INIT,
	OPT_INIT_ARG,
	OPT_INIT_ENV,
	OPT_MAX_DURATION,
	OPT_IDLE_TIMEOUT,
	OPT_REPLACE,
	OPT_REPLACE_GRACE,
	OPT_DETACH_KEYS,
	OPT_NO_NET,
	OPT_NET_RULE,
	OPT_NET_DEFAULT,
	OPT_NET_DEFAULT_EGRESS,
	OPT_NET_DEFAULT_INGRESS,
	OPT_DNS_BLOCK,
	OPT_NO_REBIND,
	OPT_DNS_SERVER,
	OPT_DNS_TIMEOUT,
	OPT_POOL4,
	OPT_POOL6,
	OPT_MAX_CONN,
	OPT_TRUST_CAS,
	OPT_DISK_SNAPSHOT,
	OPT_ROOTFS_BIND,
	OPT_ALLOW_BACKING,
	OPT_COLD,
	OPT_FROM_SNAPSHOT,
	OPT_SECRET,
	OPT_ON_VIOLATION,
	OPT_TLS_INTERCEPT,
	OPT_TLS_PORT,
	OPT_TLS_BYPASS,
	OPT_NO_BLOCK_QUIC,
	OPT_TLS_CA_CERT,
	OPT_TLS_CA_KEY,
	OPT_TLS_UPSTREAM,
};

static const struct option longopts[] = {
	{ "name", required_argument, NULL, 'n' },
	{ "rootfs", required_argument, NULL, OPT_ROOTFS },
	{ "entrypoint", required_argument, NULL, OPT_ENTRYPOINT },
	{ "pull", required_argument, NULL, OPT_PULL },
	{ "env", required_argument, NULL, 'e' },
	{ "workdir", required_argument, NULL, 'w' },
	{ "user", required_argument, NULL, 'u' },
	{ "hostname", required_argument, NULL, 'H' },
	{ "memory", required_argument, NULL, 'm' },
	{ "cpus", required_argument, NULL, 'c' },
	{ "oci-upper-size", required_argument, NULL, OPT_UPPER_SIZE },
	{ "shell", required_argument, NULL, OPT_SHELL },
	{ "tmpfs", required_argument, NULL, OPT_TMPFS },
	{ "volume", required_argument, NULL, 'v' },
	{ "script", required_argument, NULL, OPT_SCRIPT },
	{ "script-raw", required_argument, NULL, OPT_SCRIPT_RAW },
	{ "script-path", required_argument, NULL, OPT_SCRIPT_PATH },
	{ "init", required_argument, NULL, OPT_INIT },
	{ "init-arg", required_argument, NULL, OPT_INIT_ARG },
	{ "init-env", required_argument, NULL, OPT_INIT_ENV },
	{ "max-duration", required_argument, NULL, OPT_MAX_DURATION },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "replace", no_argument, NULL, OPT_REPLACE },
	{ "replace-with-grace", required_argument, NULL, OPT_REPLACE_GRACE },
	{ "tty", no_argument, NULL, 't' },
	{ "detach", no_argument, NULL, 'd' },
	{ "detach-keys", required_argument, NULL, OPT_DETACH_KEYS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "rlimit", required_argument, NULL, OPT_RLIMIT },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "port", required_argument, NULL, 'p' },
	{ "no-net", no_argument, NULL, OPT_NO_NET },
	{ "no-network", no_argument, NULL, OPT_NO_NET },
	{ "net-rule", required_argument, NULL, OPT_NET_RULE },
	{ "net-default", required_argument, NULL, OPT_NET_DEFAULT },
	{ "net-default-egress", required_argument, NULL, OPT_NET_DEFAULT_EGRESS },
	{ "net-default-ingress", required_argument, NULL, OPT_NET_DEFAULT_INGRESS },
	{ "dns-block-domain", required_argument, NULL, OPT_DNS_BLOCK },
	{ "no-dns-rebind-protection", no_argument, NULL, OPT_NO_REBIND },
	{ "dns-nameserver", required_argument, NULL, OPT_DNS_SERVER },
	{ "dns-query-timeout-ms", required_argument, NULL, OPT_DNS_TIMEOUT },
	{ "net-ipv4-pool", required_argument, NULL, OPT_POOL4 },
	{ "net-ipv6-pool", required_argument, NULL, OPT_POOL6 },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
	{ "trust-host-cas", no_argument, NULL, OPT_TRUST_CAS },
	{ "secret", required_argument, NULL, OPT_SECRET },
	{ "on-secret-violation", required_argument, NULL, OPT_ON_VIOLATION },
	{ "tls-intercept", no_argument, NULL, OPT_TLS_INTERCEPT },
	{ "tls-intercept-port", required_argument, NULL, OPT_TLS_PORT },
	{ "tls-bypass", required_argument, NULL, OPT_TLS_BYPASS },
	{ "no-block-quic", no_argument, NULL, OPT_NO_BLOCK_QUIC },
	{ "tls-intercept-ca-cert", required_argument, NULL, OPT_TLS_CA_CERT },
	{ "tls-intercept-ca-key", required_argument, NULL, OPT_TLS_CA_KEY },
	{ "tls-upstream-ca-cert", required_argument, NULL, OPT_TLS_UPSTREAM },
	{ "disk-snapshot", no_argument, NULL, OPT_DISK_SNAPSHOT },
	{ "rootfs-bind", no_argument, NULL, OPT_ROOTFS_BIND },
	{ "allow-backing", required_argument, NULL, OPT_ALLOW_BACKING },
	{ "cold", no_argument, NULL, OPT_COLD },
	{ "from-snapshot", required_argument, NULL, OPT_FROM_SNAPSHOT },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/*
 * What a snapshot fixes: its sandbox's shape and settings. With
 * --from-snapshot only the name, hostname, environment, command and how to run
 * it may be given.
 */
static bool snapshot_allows(int c)
{
	switch (c) {
	case 'n':
	case 'H':
	case 'e':
	case 'q':
	case 't':
	case 'd':
	case OPT_TIMEOUT:
	case OPT_RLIMIT:
	case OPT_DETACH_KEYS:
	case OPT_PULL:
	case OPT_COLD:
	case OPT_FROM_SNAPSHOT:
	case OPT_REPLACE:
	case OPT_REPLACE_GRACE:
	case OPT_LOG_LEVEL:
		return true;
	default:
		return false;
	}
}

/* "--cpus" for 'c': how a flag is named in messages. */
static const char *flag_name(int c)
{
	static char buf[64];

	for (const struct option *o = longopts; o->name; o++) {
		if (o->val == c) {
			snprintf(buf, sizeof(buf), "--%s", o->name);
			return buf;
		}
	}
	return "a flag";
}

/* Flags about the command msb run runs: msb create runs none. The rest is shared. */
static bool run_only(int c)
{
	return c == 't' || c == 'd' || c == OPT_TIMEOUT || c == OPT_DETACH_KEYS;
}

static void usage(const char *cmd)
{
	bool run = !strcmp(cmd, "run");

	if (run)
		printf("Usage: msb run [OPTIONS] IMAGE [--] [COMMAND [ARG...]]\n"
		       "       msb run [OPTIONS] --rootfs PATH [--] [COMMAND [ARG...]]\n\n"
		       "Create a sandbox and run a command in it. Without --name the sandbox is\n"
		       "ephemeral and removed when the command ends; with --name it persists.\n"
		       "With an image, COMMAND replaces the image's Cmd and keeps its Entrypoint;\n"
		       "with no command and no image default, an interactive shell (--shell) "
		       "runs.\n\n");
	else
		printf("Usage: msb create --name NAME [OPTIONS] IMAGE|--rootfs PATH\n\n"
		       "Create and boot a sandbox in the background; returns when it is "
		       "ready.\n\n");
	printf("Options:\n"
	       "  -n, --name NAME         Sandbox name%s\n"
	       "      --rootfs PATH       Root filesystem: a directory or a squashfs image\n"
	       "                          (IMAGE may also be a qcow2, vmdk or raw disk image)\n"
	       "      --rootfs-bind       With --rootfs DIR: DIR itself is the root, live (not a "
	       "copy)\n"
	       "      --disk-snapshot     Write to an overlay of the disk image, never the image\n"
	       "      --allow-backing PATH  Let the disk image use PATH, outside its directory,\n"
	       "                          as a backing file, data file or extent (repeatable)\n"
	       "      --cold              Boot the guest; do not restore the warm template\n"
	       "      --from-snapshot NAME  Make the sandbox from a snapshot (IMAGE, before --, "
	       "checks its base)\n"
	       "      --entrypoint CMD    Override the image's entrypoint (clears its Cmd)\n"
	       "      --pull POLICY       if-missing (default), always, or never\n"
	       "  -e, --env KEY=VALUE     Set an environment variable (KEY alone copies it from "
	       "here)\n"
	       "  -w, --workdir DIR       Working directory inside the sandbox (created if "
	       "missing)\n"
	       "  -u, --user USER         Run as USER (name, UID, or UID:GID)\n"
	       "  -H, --hostname NAME     Guest hostname (default: the sandbox name)\n"
	       "  -m, --memory SIZE       Guest memory, e.g. 512M or 1G (default 512M)\n"
	       "  -c, --cpus N            Virtual CPUs (default 1)\n"
	       "      --oci-upper-size SIZE  Writable layer on a disk of SIZE (named sandboxes: "
	       "4G;\n"
	       "                          not with --rootfs-bind or a disk image, their own root)\n"
	       "      --shell PATH        Shell for interactive sessions, 'msb shell' and "
	       "--script\n"
	       "                          (default /bin/sh)\n"
	       "      --tmpfs PATH[:SIZE] Mount a tmpfs at PATH\n"
	       "  -v, --volume SRC:DEST[:OPTS]  Mount a host path (SRC starts with / or .) or a "
	       "named volume\n"
	       "                          at DEST; OPTS: ro, rw (default), noexec (repeatable)\n"
	       "      --script NAME=BODY  Script at /.msb/scripts/NAME, on PATH (escapes "
	       "decoded);\n"
	       "                          NAME:PATH of an existing file works as --script-path\n"
	       "      --script-raw NAME=BODY  Script with exactly BODY\n"
	       "      --script-path NAME:PATH Script read from a host file\n"
	       "      --init PATH         Hand PID 1 to this init after setup\n"
	       "      --init-arg ARG      Argument appended to --init's argv (repeatable)\n"
	       "      --init-env KEY=VALUE  Environment for --init only (repeatable)\n"
	       "      --max-duration DURATION  Stop the sandbox after this long\n"
	       "      --idle-timeout DURATION  Stop the sandbox after no session for this long\n"
	       "      --replace           Replace a sandbox of the same name\n"
	       "      --replace-with-grace DURATION  Grace for the replaced sandbox's processes "
	       "(default 10s)\n"
	       "      --rlimit NAME=N[:M] A resource limit for every session (e.g. nofile=1024)\n"
	       "      --log-level LEVEL   Runtime log level: error, warn, info, debug, trace\n"
	       "\nNetwork (default: egress to public addresses only; see docs/network.md):\n"
	       "  -p, --port [BIND:]HOST:GUEST[/udp]  Publish a guest port on 127.0.0.1 (not\n"
	       "                          docker's 0.0.0.0): give BIND, e.g. 0.0.0.0, to expose "
	       "it\n"
	       "      --no-net, --no-network  Deny all traffic unless a --net-rule allows it\n"
	       "      --net-rule RULES    ACTION[:DIRECTION]@TARGET[:PROTO[:PORTS]],... in order\n"
	       "      --net-default allow|deny  Default for both directions\n"
	       "      --net-default-egress allow|deny, --net-default-ingress allow|deny\n"
	       "      --dns-block-domain NAME  Same as --net-rule deny@NAME\n"
	       "      --dns-nameserver IP[:PORT]  Forward DNS there (repeatable; default: the "
	       "host's)\n"
	       "      --dns-query-timeout-ms MS  Per-query DNS timeout (default 5000)\n"
	       "      --no-dns-rebind-protection  Let names resolve to private addresses\n"
	       "      --net-ipv4-pool CIDR, --net-ipv6-pool CIDR  Where sandbox subnets come "
	       "from\n"
	       "      --max-connections N Concurrent connections at most\n"
	       "      --trust-host-cas    Add the host's CA certificates to the guest's\n"
	       "\nSecrets and TLS interception (see docs/network.md):\n"
	       "      --secret ENV@HOST   The guest's $ENV holds a placeholder; msb swaps in the\n"
	       "                          value of msb's own $ENV only in requests to HOST (the\n"
	       "                          value stays off the command line: prefer this form)\n"
	       "      --secret ENV=VALUE@HOST  The same with the value given here. HOST: a name\n"
	       "                          or *.suffix, a,b for several; append "
	       ";header=NAME[,NAME]\n"
	       "                          to swap it only in those request headers (repeatable)\n"
	       "      --on-secret-violation ACTION  A placeholder sent to another host: block\n"
	       "                          (default), block-and-log, block-and-terminate, "
	       "passthrough\n"
	       "      --tls-intercept     Terminate the guest's TLS in msb to inspect HTTPS\n"
	       "      --tls-intercept-port PORT  Intercept TLS on PORT (repeatable; default 443)\n"
	       "      --tls-bypass NAME   Never intercept NAME (a name or *.suffix; repeatable)\n"
	       "      --no-block-quic     Let QUIC through while intercepting (blocked by "
	       "default)\n"
	       "      --tls-intercept-ca-cert PEM, --tls-intercept-ca-key PEM  Sign with this CA\n"
	       "                          (both; default msb's own, made in ~/.microsandbox/tls)\n"
	       "      --tls-upstream-ca-cert PEM  Also trust this CA for servers (repeatable)\n"
	       "  -q, --quiet             Suppress progress output\n",
	       run ? " (without it the sandbox is ephemeral)" : "");
	if (run)
		printf("  -t, --tty               Allocate a pseudo-terminal\n"
		       "  -d, --detach            Run in the background and print the sandbox "
		       "name\n"
		       "      --detach-keys KEYS  Keys that detach a -t session (default ctrl-])\n"
		       "      --timeout DURATION  Kill the command after DURATION (e.g. 30s, "
		       "5m)\n");
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

int cli_add_env(struct strv *env, const char *s, const char *flag)
{
	if (!strchr(s, '=')) {
		/* docker's -e KEY: pass this process's value along, if it has one */
		const char *v = getenv(s);
		_cleanup_free_ char *kv = NULL;

		if (!*s)
			return cli_error("invalid %s \"%s\" (use KEY=VALUE)", flag, s);
		if (!v)
			return 0;
		if (asprintf(&kv, "%s=%s", s, v) < 0)
			return cli_error("out of memory");
		return strv_push(env, kv) < 0 ? cli_error("out of memory") : 0;
	}
	if (!env_has_valid_key(s))
		return cli_error("invalid %s \"%s\" (use KEY=VALUE)", flag, s);
	return strv_push(env, s) < 0 ? cli_error("out of memory") : 0;
}

int cli_duration(const char *flag, const char *arg, uint64_t *ms, bool zero_ok)
{
	uint64_t v;

	if (parse_duration(arg, &v) < 0 || (!zero_ok && v == 0))
		return cli_error("invalid %s \"%s\" (use a duration like 30s, 5m or 1h)", flag,
				 arg);
	*ms = v;
	return 0;
}

int cli_add_rlimit(struct proto_rlimit *rlimits, uint32_t *n, const char *arg)
{
	struct proto_rlimit *rl;

	if (*n >= PROTO_MAX_RLIMITS)
		return cli_error("too many --rlimit flags (at most %d)", PROTO_MAX_RLIMITS);
	rl = &rlimits[*n];
	if (parse_rlimit(arg, &rl->resource, &rl->soft, &rl->hard) < 0)
		return cli_error("invalid --rlimit \"%s\" (use NAME=SOFT[:HARD], e.g. nofile=1024)",
				 arg);
	(*n)++;
	return 0;
}

static bool script_name_ok(const char *n, size_t len)
{
	if (!len || len > 64 || n[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = n[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* --script NAME=BODY, --script-raw NAME=BODY, --script-path NAME:PATH: the name is checked now. */
static int add_script(struct sbx_flags *f, int kind, const char *arg)
{
	const char *flag = kind == OPT_SCRIPT	    ? "--script"
			   : kind == OPT_SCRIPT_RAW ? "--script-raw"
						    : "--script-path";
	const char *sep = strchr(arg, kind == OPT_SCRIPT_PATH ? ':' : '=');
	_cleanup_free_ char *item = NULL;

	if (kind == OPT_SCRIPT && (!sep || !script_name_ok(arg, (size_t)(sep - arg)))) {
		/* The quick reference's --script NAME:./file.sh: a file, as --script-path. */
		const char *colon = strchr(arg, ':');
		struct stat st;

		if (colon && script_name_ok(arg, (size_t)(colon - arg)) && colon[1] &&
		    stat(colon + 1, &st) == 0 && S_ISREG(st.st_mode)) {
			kind = OPT_SCRIPT_PATH;
			sep = colon;
		} else {
			return cli_error("invalid --script \"%.60s\" (use NAME=BODY, or NAME:PATH "
					 "with an existing file, as --script-path NAME:PATH)",
					 arg);
		}
	}
	if (!sep || !script_name_ok(arg, (size_t)(sep - arg)))
		return cli_error("invalid %s \"%.60s\" (use %s, NAME of letters, digits, '-', '_', "
				 "'.')",
				 flag, arg, kind == OPT_SCRIPT_PATH ? "NAME:PATH" : "NAME=BODY");
	if (f->script_args.n >= MAX_SCRIPTS)
		return cli_error("too many scripts (at most %d)", MAX_SCRIPTS);
	if (asprintf(&item, "%d\x1f%.*s\x1f%s", kind, (int)(sep - arg), arg, sep + 1) < 0)
		return cli_error("out of memory");
	return strv_push(&f->script_args, item) < 0 ? cli_error("out of memory") : 0;
}

/* Scripts are decoded once --shell is known, wherever it was on the line. */
static int build_scripts(struct sbx_flags *f)
{
	const char *shell = f->shell_flag ? f->shell_flag : "/bin/sh";

	f->scripts = calloc(f->script_args.n + 1, sizeof(*f->scripts));
	if (!f->scripts)
		return cli_error("out of memory");
	for (size_t i = 0; i < f->script_args.n; i++) {
		char *kind_s = f->script_args.v[i], *name = strchr(kind_s, '\x1f') + 1;
		char *value = strchr(name, '\x1f') + 1;
		int kind = (int)strtol(kind_s, NULL, 10);
		struct sbx_script_src *s = &f->scripts[i];

		value[-1] = '\0';
		for (size_t j = 0; j < i; j++)
			if (!strcmp(f->scripts[j].name, name))
				return cli_error("script %s given twice", name);
		s->name = name;
		if (kind == OPT_SCRIPT) {
			if (sbx_script_decode(value, shell, s) < 0)
				return cli_error("out of memory");
		} else if (kind == OPT_SCRIPT_RAW) {
			s->body = strdup(value);
			s->len = strlen(value);
			if (!s->body)
				return cli_error("out of memory");
		} else {
			size_t n = 0;
			int r = read_file(value, PROTO_MAX_STR + 1, &s->body, &n);

			if (r == -EFBIG || (r == 0 && n > PROTO_MAX_STR))
				return cli_error("--script-path %s: larger than %u KiB", value,
						 PROTO_MAX_STR >> 10);
			if (r < 0)
				return cli_error("--script-path %s: %s", value, strerror(-r));
			s->len = n;
		}
		f->co.nscripts++;
	}
	f->co.scripts = f->scripts;
	return 0;
}

static int net_default(struct sbx_flags *f, const char *flag, unsigned int dirs, const char *arg)
{
	char why[256];

	if (strcmp(arg, "allow") != 0 && strcmp(arg, "deny") != 0)
		return cli_error("invalid %s \"%s\" (use allow or deny)", flag, arg);
	if (policy_set_default(&f->net.policy, dirs, !strcmp(arg, "allow"), why, sizeof(why)) < 0)
		return cli_error("%s", why);
	return 0;
}

/* A path flag's file, absolute and resolved (config.json keeps it; the cwd does not last). */
static int abs_file(const char *flag, const char *arg, char **out)
{
	char *p = realpath(arg, NULL);
	struct stat st;

	if (!p) {
		cli_error("%s %s: %s", flag, arg, strerror(errno));
		return EXIT_MSB;
	}
	if (stat(p, &st) < 0 || !S_ISREG(st.st_mode) || access(p, R_OK) < 0) {
		free(p);
		cli_error("%s %s: not a readable file", flag, arg);
		return EXIT_MSB;
	}
	free(*out);
	*out = p;
	return 0;
}

/* Appends @s to NULL-terminated *@v unless it is there already. */
static int strv_add_once(char ***v, const char *s)
{
	size_t n = 0;
	char **nv;

	for (; *v && (*v)[n]; n++)
		if (!strcmp((*v)[n], s))
			return 0;
	nv = realloc(*v, (n + 2) * sizeof(char *));
	if (!nv)
		return cli_error("out of memory");
	*v = nv;
	nv[n] = strdup(s);
	nv[n + 1] = NULL;
	return nv[n] ? 0 : cli_error("out of memory");
}

static int parse_tls_opt(struct sbx_flags *f, int c, const char *arg)
{
	struct sbx_tls *t = &f->net.tls;
	char why[512], name[SBX_HOST_PATTERN_MAX];
	uint64_t v;

	switch (c) {
	case OPT_SECRET: {
		const char *at = strrchr(arg, '@');

		if (sbx_secret_parse(&f->net, &f->secret_values, arg, why, sizeof(why)) < 0)
			return cli_error("%s", why);
		/*
		 * ENV@HOST: the value is copied; msb's own $ENV goes, so that no
		 * helper msb starts (pulls, mkfs, secret-tool) inherits it.
		 */
		if (at && !memchr(arg, '=', (size_t)(at - arg))) {
			_cleanup_free_ char *env = strndup(arg, (size_t)(at - arg));

			if (env)
				unsetenv(env);
		}
		return 0;
	}
	case OPT_ON_VIOLATION:
		if (sbx_violation_parse(arg, &t->on_violation) < 0)
			return cli_error("invalid --on-secret-violation \"%s\" (use block, "
					 "block-and-log, block-and-terminate or passthrough)",
					 arg);
		return 0;
	case OPT_TLS_INTERCEPT:
		t->intercept = true;
		return 0;
	case OPT_TLS_PORT:
		if (parse_u64(arg, &v) < 0 || v < 1 || v > 65535)
			return cli_error("invalid --tls-intercept-port \"%s\" (use 1 to 65535)",
					 arg);
		/* The first one given replaces the default 443. */
		if (!f->tls_port_given)
			t->nports = 0;
		f->tls_port_given = true;
		for (size_t i = 0; i < t->nports; i++)
			if (t->ports[i] == v)
				return 0;
		if (t->nports >= SBX_MAX_TLS_PORTS)
			return cli_error("too many --tls-intercept-port (at most %d)",
					 SBX_MAX_TLS_PORTS);
		t->ports[t->nports++] = (uint16_t)v;
		return 0;
	case OPT_TLS_BYPASS:
		if (sbx_host_pattern(arg, name, sizeof(name), why, sizeof(why)) < 0)
			return cli_error("invalid --tls-bypass: %s", why);
		return strv_add_once(&t->bypass, name);
	case OPT_NO_BLOCK_QUIC:
		t->no_block_quic = true;
		return 0;
	case OPT_TLS_CA_CERT:
		return abs_file("--tls-intercept-ca-cert", arg, &t->ca_cert);
	case OPT_TLS_CA_KEY:
		return abs_file("--tls-intercept-ca-key", arg, &t->ca_key);
	case OPT_TLS_UPSTREAM: {
		_cleanup_free_ char *p = NULL;
		_cleanup_err_ struct msb_err *e = NULL;
		int r = abs_file("--tls-upstream-ca-cert", arg, &p);

		if (r)
			return r;
		if (sbx_tls_check_certs(p, &e) < 0) {
			msb_err_prefix(&e, "--tls-upstream-ca-cert");
			return cli_fail(e);
		}
		return strv_add_once(&t->upstream_cas, p);
	}
	default:
		return EXIT_MSB;
	}
}

static int parse_net_opt(struct sbx_flags *f, int c, const char *arg)
{
	struct sbx_net *n = &f->net;
	char why[320];
	uint64_t v;

	switch (c) {
	case 'p': {
		struct net_port port;

		if (sbx_parse_port(arg, &port, why, sizeof(why)) < 0 ||
		    sbx_net_add_port(n, &port, why, sizeof(why)) < 0)
			return cli_error("%s", why);
		return 0;
	}
	case OPT_NO_NET:
		f->no_net = true;
		if (policy_set_default(&n->policy, NET_BOTH, false, why, sizeof(why)) < 0)
			return cli_error("%s", why);
		return 0;
	case OPT_NET_RULE:
		if (policy_add(&n->policy, arg, why, sizeof(why)) < 0)
			return cli_error("%s", why);
		return 0;
	case OPT_NET_DEFAULT:
		f->net_default_allow = !strcmp(arg, "allow");
		return net_default(f, "--net-default", NET_BOTH, arg);
	case OPT_NET_DEFAULT_EGRESS:
		return net_default(f, "--net-default-egress", NET_EGRESS, arg);
	case OPT_NET_DEFAULT_INGRESS:
		return net_default(f, "--net-default-ingress", NET_INGRESS, arg);
	case OPT_DNS_BLOCK: {
		_cleanup_free_ char *rule = NULL;

		if (!*arg || strchr(arg, ',') || strchr(arg, '@') || strchr(arg, ':'))
			return cli_error("invalid --dns-block-domain \"%s\" (use a name such as "
					 "ads.example.com or *.example.com)",
					 arg);
		if (asprintf(&rule, "deny@%s", arg) < 0)
			return cli_error("out of memory");
		if (policy_add(&n->policy, rule, why, sizeof(why)) < 0)
			return cli_error("--dns-block-domain %s: %s", arg, why);
		return 0;
	}
	case OPT_NO_REBIND:
		n->rebind_protection = false;
		return 0;
	case OPT_DNS_SERVER: {
		struct sockaddr_storage ss;
		size_t k = 0;

		if (sbx_parse_nameserver(arg, &ss, why, sizeof(why)) < 0)
			return cli_error("%s", why);
		while (n->nameservers[k])
			k++;
		if (k >= NET_MAX_NAMESERVERS)
			return cli_error("too many --dns-nameserver (at most %d)",
					 NET_MAX_NAMESERVERS);
		{
			char **nv = realloc(n->nameservers, (k + 2) * sizeof(char *));

			if (!nv)
				return cli_error("out of memory");
			n->nameservers = nv;
			nv[k] = strdup(arg);
			nv[k + 1] = NULL;
			if (!nv[k])
				return cli_error("out of memory");
		}
		return 0;
	}
	case OPT_DNS_TIMEOUT:
		if (parse_u64(arg, &v) < 0 || v < 1 || v > SBX_NET_MAX_DNS_TIMEOUT_MS)
			return cli_error("invalid --dns-query-timeout-ms \"%s\" (use 1 to %u)", arg,
					 SBX_NET_MAX_DNS_TIMEOUT_MS);
		n->dns_timeout_ms = (uint32_t)v;
		return 0;
	case OPT_POOL4:
	case OPT_POOL6:
		if (sbx_parse_pool(arg, c == OPT_POOL6, c == OPT_POOL6 ? &n->pool6 : &n->pool4,
				   c == OPT_POOL6 ? &n->pool6_prefix : &n->pool4_prefix, why,
				   sizeof(why)) < 0)
			return cli_error("invalid %s", why);
		return 0;
	case OPT_MAX_CONN:
		if (parse_u64(arg, &v) < 0 || v < 1 || v > 65536)
			return cli_error("invalid --max-connections \"%s\" (use 1 to 65536)", arg);
		n->max_connections = (unsigned int)v;
		return 0;
	case OPT_TRUST_CAS:
		n->trust_host_cas = true;
		return 0;
	default:
		return parse_tls_opt(f, c, arg);
	}
}

static int parse_opt(struct sbx_flags *f, int c, const char *arg)
{
	struct sbx_create_opts *o = &f->co;
	uint64_t v;

	switch (c) {
	case 'n':
		o->name = arg;
		return 0;
	case OPT_ROOTFS:
		o->rootfs = arg;
		return 0;
	case OPT_DISK_SNAPSHOT:
		o->disk_snapshot = true;
		return 0;
	case OPT_ROOTFS_BIND:
		o->rootfs_bind = true;
		return 0;
	case OPT_ALLOW_BACKING:
		return strv_push(&f->allow_backing, arg) < 0 ? cli_error("out of memory") : 0;
	case OPT_FROM_SNAPSHOT:
		o->from_snapshot = arg;
		return 0;
	case OPT_COLD:
		/* The supervisor inherits it: this start boots, not restores. */
		setenv("MSB_WARM", "0", 1);
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
		return cli_add_env(&f->env, arg, "--env");
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
	case 'H':
		if (!sbx_valid_hostname(arg))
			return cli_error("invalid --hostname \"%s\" (letters, digits, '-' and '.', "
					 "at most 64)",
					 arg);
		o->hostname = arg;
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
	case OPT_SHELL:
		if (arg[0] != '/')
			return cli_error("invalid --shell \"%s\" (use an absolute path)", arg);
		f->shell_flag = arg;
		o->shell = arg;
		return 0;
	case 'v': {
		struct msb_err *e = NULL;
		int rc;

		if (o->nvolumes >= SBX_MAX_VOLUMES)
			return cli_error("too many -v (at most %d)", SBX_MAX_VOLUMES);
		if (sbx_parse_volume(arg, &f->volumes[o->nvolumes], &e) < 0) {
			rc = cli_fail(e);
			msb_err_free(e);
			return rc;
		}
		for (size_t i = 0; i < o->nvolumes; i++)
			if (!strcmp(f->volumes[i].dest, f->volumes[o->nvolumes].dest)) {
				sbx_volume_free(&f->volumes[o->nvolumes]);
				return cli_error("invalid -v \"%s\": %s is already a mount "
						 "destination",
						 arg, f->volumes[i].dest);
			}
		o->nvolumes++;
		return 0;
	}
	case OPT_TMPFS: {
		struct sbx_tmpfs *t;

		if (o->ntmpfs >= MAX_TMPFS)
			return cli_error("too many --tmpfs (at most %d)", MAX_TMPFS);
		t = &f->tmpfs[o->ntmpfs];
		if (sbx_parse_tmpfs(arg, t) < 0)
			return cli_error(
				"invalid --tmpfs \"%s\" (use PATH or PATH:SIZE, an absolute "
				"path, e.g. /scratch:64M)",
				arg);
		o->ntmpfs++;
		return 0;
	}
	case OPT_SCRIPT:
	case OPT_SCRIPT_RAW:
	case OPT_SCRIPT_PATH:
		return add_script(f, c, arg);
	case OPT_INIT:
		if (arg[0] != '/')
			return cli_error("invalid --init \"%s\" (use an absolute path)", arg);
		o->init = arg;
		return 0;
	case OPT_INIT_ARG:
		return strv_push(&f->init_args, arg) < 0 ? cli_error("out of memory") : 0;
	case OPT_INIT_ENV:
		if (!strchr(arg, '='))
			return cli_error("invalid --init-env \"%s\" (use KEY=VALUE)", arg);
		return cli_add_env(&f->init_env, arg, "--init-env");
	case OPT_MAX_DURATION:
		return cli_duration("--max-duration", arg, &o->max_duration_ms, false);
	case OPT_IDLE_TIMEOUT:
		return cli_duration("--idle-timeout", arg, &o->idle_timeout_ms, false);
	case OPT_REPLACE:
		f->replace = true;
		return 0;
	case OPT_REPLACE_GRACE:
		f->replace = true;
		return cli_duration("--replace-with-grace", arg, &f->replace_grace_ms, true);
	case 't':
		f->tty = true;
		return 0;
	case 'd':
		f->detach = true;
		return 0;
	case OPT_DETACH_KEYS:
		f->detach_keys = arg;
		return 0;
	case OPT_TIMEOUT:
		return cli_duration("--timeout", arg, &f->timeout_ms, false);
	case OPT_RLIMIT: {
		int r = cli_add_rlimit(f->rlimits, &f->nrlimits, arg);

		if (r)
			return r;
		return strv_push(&f->rlimit_args, arg) < 0 ? cli_error("out of memory") : 0;
	}
	case 'p':
	case OPT_NO_NET:
	case OPT_NET_RULE:
	case OPT_NET_DEFAULT:
	case OPT_NET_DEFAULT_EGRESS:
	case OPT_NET_DEFAULT_INGRESS:
	case OPT_DNS_BLOCK:
	case OPT_NO_REBIND:
	case OPT_DNS_SERVER:
	case OPT_DNS_TIMEOUT:
	case OPT_POOL4:
	case OPT_POOL6:
	case OPT_MAX_CONN:
	case OPT_TRUST_CAS:
	case OPT_SECRET:
	case OPT_ON_VIOLATION:
	case OPT_TLS_INTERCEPT:
	case OPT_TLS_PORT:
	case OPT_TLS_BYPASS:
	case OPT_NO_BLOCK_QUIC:
	case OPT_TLS_CA_CERT:
	case OPT_TLS_CA_KEY:
	case OPT_TLS_UPSTREAM:
		return parse_net_opt(f, c, arg);
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

/* What only all the flags together tell: the CA pair, secrets against -e and the policy. */
static int check_secrets_tls(const char *cmd, struct sbx_flags *f)
{
	const struct sbx_tls *t = &f->net.tls;
	char why[512];

	if (!t->ca_cert != !t->ca_key)
		return cli_error(
			"%s: --tls-intercept-ca-cert and --tls-intercept-ca-key go together "
			"(give both, or neither for msb's own CA)",
			cmd);
	if (t->ca_cert) {
		_cleanup_err_ struct msb_err *e = NULL;

		if (sbx_tls_check_ca(t->ca_cert, t->ca_key, &e) < 0) {
			msb_err_prefix(&e, "--tls-intercept-ca-cert/--tls-intercept-ca-key");
			return cli_fail(e);
		}
	}
	if (sbx_secrets_check(&f->net, f->env.v, why, sizeof(why)) < 0)
		return cli_error("%s", why);
	/* Settings of an interception that never happens are a mistake worth saying. */
	if (!t->intercept && !f->net.nsecrets) {
		const char *flag = NULL;

		if (t->bypass && t->bypass[0])
			flag = "--tls-bypass";
		else if (f->tls_port_given)
			flag = "--tls-intercept-port";
		else if (t->ca_cert)
			flag = "--tls-intercept-ca-cert";
		else if (t->no_block_quic)
			flag = "--no-block-quic";

		if (flag)
			return cli_error(
				"%s: %s has no effect without --tls-intercept or a --secret "
				"(add one of them, or drop %s)",
				cmd, flag, flag);
	}
	return 0;
}

/*
 * Splits at the first "--": flags and positionals may mix before it and the
 * command follows it. Without "--", flags stop at the first positional, as
 * with docker, so "msb run IMG ls -l" passes -l to ls.
 */
int sbxflags_parse(const char *cmd, int argc, char **argv, struct sbx_flags *f)
{
	bool run = !strcmp(cmd, "run");
	int sep = argc, c, r;

	memset(f, 0, sizeof(*f));
	f->co = (struct sbx_create_opts){ .cpus = SBX_DEFAULT_CPUS,
					  .mem_mib = SBX_DEFAULT_MEM_MIB,
					  .log_level = LOG_INFO,
					  .pull = PULL_IF_MISSING,
					  .cancel_fd = -1 };
	f->replace_grace_ms = 10000;
	sbx_net_init(&f->net);
	f->co.net = &f->net;
	if (!f->net.nameservers)
		return cli_error("out of memory");
	f->tmpfs = calloc(MAX_TMPFS, sizeof(*f->tmpfs));
	if (!f->tmpfs)
		return cli_error("out of memory");
	f->co.tmpfs = f->tmpfs;
	f->volumes = calloc(SBX_MAX_VOLUMES, sizeof(*f->volumes));
	if (!f->volumes)
		return cli_error("out of memory");
	f->co.volumes = f->volumes;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			sep = i;
			break;
		}
	}
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(sep, argv,
				sep < argc ? "n:e:w:u:H:m:c:p:v:tdqh" : "+n:e:w:u:H:m:c:p:v:tdqh",
				longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(cmd);
			return -1;
		}
		if (c == '?' || c == ':')
			return cli_bad_flag(cmd, argv, longopts);
		if (!run && run_only(c))
			return cli_error("%s: %s is for 'msb run' only (%s)", cmd, flag_name(c),
					 c == 'd'
						 ? "create always returns once the sandbox is up"
						 : "create runs no command; give it to 'msb exec'");
		if (!snapshot_allows(c) && !f->shape_flag)
			f->shape_flag = flag_name(c);
		r = parse_opt(f, c, optarg);
		if (r)
			return r;
	}
	if (f->co.from_snapshot && f->shape_flag)
		return cli_error(
			"%s: %s cannot be used with --from-snapshot (the snapshot keeps its "
			"sandbox's settings)",
			cmd, f->shape_flag);
	for (int i = optind; i < sep; i++)
		if (strv_push(&f->pos, argv[i]) < 0)
			return cli_error("out of memory");
	f->cmd = sep < argc ? argv + sep + 1 : NULL;
	if (f->init_args.n && !f->co.init)
		return cli_error("%s: --init-arg needs --init", cmd);
	if (f->init_env.n && !f->co.init)
		return cli_error("%s: --init-env needs --init", cmd);
	if (f->detach_keys && !f->tty)
		return cli_error("%s: --detach-keys needs -t", cmd);
	if (f->detach && f->tty)
		return cli_error("%s: -d and -t cannot be used together", cmd);
	if (f->replace && !f->co.name)
		return cli_error("%s: --replace needs --name", cmd);
	if (f->no_net && f->net_default_allow)
		return cli_error(
			"%s: --no-net cannot be combined with --net-default allow (--no-net "
			"is --net-default deny)",
			cmd);
	r = check_secrets_tls(cmd, f);
	if (r)
		return r;
	f->co.secret_values = f->secret_values;
	f->co.env = f->env.v;
	f->co.init_args = f->init_args.v;
	f->co.init_env = f->init_env.v;
	f->co.rlimits = f->rlimit_args.v;
	f->co.main_timeout_ms = f->timeout_ms;
	f->co.allow_backing = f->allow_backing.v;
	return build_scripts(f);
}

void sbxflags_free(struct sbx_flags *f)
{
	for (size_t i = 0; f->tmpfs && i < f->co.ntmpfs; i++)
		free(f->tmpfs[i].path);
	free(f->tmpfs);
	for (size_t i = 0; f->volumes && i < f->co.nvolumes; i++)
		sbx_volume_free(&f->volumes[i]);
	free(f->volumes);
	for (size_t i = 0; f->scripts && i < f->co.nscripts; i++)
		free(f->scripts[i].body);
	free(f->scripts);
	strv_free(&f->env);
	strv_free(&f->init_args);
	strv_free(&f->init_env);
	strv_free(&f->allow_backing);
	strv_free(&f->pos);
	strv_free(&f->script_args);
	strv_free(&f->rlimit_args);
	sbx_secret_values_free(f->secret_values, f->net.nsecrets);
	f->secret_values = NULL;
	sbx_net_free(&f->net);
}

void cli_block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

int cli_cancel_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}
