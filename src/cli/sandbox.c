// SPDX-License-Identifier: Apache-2.0
/* msb start, stop, rm, ls, ps/status, inspect, metrics: persistent sandboxes. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sandbox/volume.h"
#include "cli/sbxflags.h"
#include "proto/proto.h"
#include "sandbox/lifecycle.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/parse.h"
#include "util/text.h"

/* Parses "-q", "-f", "-t N" style options shared by the small commands. */
static int getopts(const char *cmd, int argc, char **argv, const char *shortopts,
		   const struct option *lo, const char *usage,
		   int (*on)(int c, const char *arg, void *ctx), void *ctx)
{
	int c, r;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, shortopts, lo, NULL)) != -1) {
		if (c == 'h') {
			printf("%s", usage);
			return -1;
		}
		if (c == '?' || c == ':')
			return cli_bad_flag(cmd, argv, lo);
		r = on(c, optarg, ctx);
		if (r)
			return r;
	}
	return 0;
}

/* --- start ------------------------------------------------------------------- */

struct simple_opts {
	bool quiet, force, json;
	bool running, stopped, all;
	uint64_t timeout_ms;
};

static int simple_opt(int c, const char *arg, void *ctx)
{
	struct simple_opts *o = ctx;

	switch (c) {
	case 'q':
		o->quiet = true;
		return 0;
	case 'f':
		o->force = true;
		return 0;
	case 'a':
		o->all = true;
		return 0;
	case 't':
		/* Seconds when bare, like docker; units like every other duration flag. */
		if (cli_duration("--timeout", arg, &o->timeout_ms, true))
			return EXIT_MSB;
		if (o->timeout_ms > 86400000)
			return cli_error("invalid --timeout \"%s\" (at most 24h)", arg);
		return 0;
	case 'F':
		return cli_parse_format("ls", arg, &o->json);
	case 'R':
		o->running = true;
		return 0;
	case 'S':
		o->stopped = true;
		return 0;
	case 'C':
		setenv("MSB_WARM", "0", 1); /* the supervisor boots instead of restoring */
		return 0;
	default:
		return EXIT_MSB;
	}
}

int cmd_start(int argc, char **argv)
{
	static const struct option lo[] = { { "quiet", no_argument, NULL, 'q' },
					    { "cold", no_argument, NULL, 'C' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	struct simple_opts o = { 0 };
	int r = getopts(
		    "start", argc, argv, "qh", lo,
		    "Usage: msb start [-q] [--cold] NAME...\n\nStart stopped sandboxes (from the "
		    "warm template of their shape unless --cold); returns when they are ready.\n",
		    simple_opt, &o),
	    rc = 0;

	if (r)
		return r < 0 ? 0 : r;
	if (optind >= argc)
		return cli_error("start: expected a sandbox name (see 'msb start --help')");
	cli_block_signals();
	for (int i = optind; i < argc; i++) {
		_cleanup_err_ struct msb_err *err = NULL;
		struct sbx_boot_info info;

		if (sbx_start(argv[i], 0, &info, &err) < 0)
			rc = cli_fail(err);
	}
	return rc;
}

/* --- stop -------------------------------------------------------------------- */

int cmd_stop(int argc, char **argv)
{
	static const struct option lo[] = { { "force", no_argument, NULL, 'f' },
					    { "timeout", required_argument, NULL, 't' },
					    { "quiet", no_argument, NULL, 'q' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	struct simple_opts o = { .timeout_ms = 10000 };
	int r = getopts(
		    "stop", argc, argv, "ft:qh", lo,
		    "Usage: msb stop [-t DURATION] [-f] [-q] NAME...\n\n"
		    "Stop sandboxes: processes get SIGTERM, then SIGKILL after the timeout\n"
		    "(-t: seconds, or a duration like 500ms or 2m; default 10s), the guest syncs\n"
		    "its disk and powers off. -f kills at once; writes not yet synced may be\n"
		    "lost, as on a power cut. A sandbox that is not running is left as it is.\n",
		    simple_opt, &o),
	    rc = 0;

	if (r)
		return r < 0 ? 0 : r;
	if (optind >= argc)
		return cli_error("stop: expected a sandbox name (see 'msb stop --help')");
	for (int i = optind; i < argc; i++) {
		_cleanup_err_ struct msb_err *err = NULL;

		if (sbx_stop_ms(argv[i], o.timeout_ms, o.force, &err) < 0)
			rc = cli_fail(err);
	}
	return rc;
}

/* --- rm ---------------------------------------------------------------------- */

int cmd_rm(int argc, char **argv)
{
	static const struct option lo[] = { { "force", no_argument, NULL, 'f' },
					    { "quiet", no_argument, NULL, 'q' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	struct simple_opts o = { 0 };
	int r = getopts("rm", argc, argv, "fqh", lo,
			"Usage: msb rm [-f] [-q] NAME...\n\nRemove sandboxes and everything they "
			"keep (disk, logs). A running one\nneeds -f, which kills it first.\n",
			simple_opt, &o),
	    rc = 0;

	if (r)
		return r < 0 ? 0 : r;
	if (optind >= argc)
		return cli_error("rm: expected a sandbox name (see 'msb rm --help')");
	for (int i = optind; i < argc; i++) {
		_cleanup_err_ struct msb_err *err = NULL;

		if (sbx_remove(argv[i], o.force, &err) < 0)
			rc = cli_fail(err);
	}
	return rc;
}

/* --- ls, ps ------------------------------------------------------------------ */

static bool is_running(const struct sandbox_row *r)
{
	return !strcmp(r->status, "running") || !strcmp(r->status, "starting") ||
	       !strcmp(r->status, "paused");
}

/* What the sandbox was made from, for a column. */
static const char *source(const struct sbx_spec *s, const struct sandbox_row *r)
{
	if (r->image)
		return r->image;
	return s->rootfs ? s->rootfs : "-";
}

static void command_line(char *const *argv, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (; argv && *argv && o + 1 < len; argv++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? " " : "", *argv);
	if (!buf[0])
		snprintf(buf, len, "-");
}

static int list(bool ps, int argc, char **argv)
{
	static const struct option lo[] = { { "running", no_argument, NULL, 'R' },
					    { "stopped", no_argument, NULL, 'S' },
					    { "all", no_argument, NULL, 'a' },
					    { "format", required_argument, NULL, 'F' },
					    { "quiet", no_argument, NULL, 'q' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	_cleanup_err_ struct msb_err *err = NULL;
	struct simple_opts o = { 0 };
	struct sandbox_row *rows = NULL;
	json_t *arr = NULL;
	size_t n = 0;
	int r;

	r = getopts(ps ? "ps" : "ls", argc, argv, ps ? "aqh" : "qh", lo,
		    ps ? "Usage: msb ps [-a] [--format json] [-q]\n\nRunning sandboxes (-a: all), "
			 "with their command and resources.\n"
		       : "Usage: msb ls [--running|--stopped] [--format json] [-q]\n\nEvery "
			 "sandbox.\n",
		    simple_opt, &o);
	if (r)
		return r < 0 ? 0 : r;
	if ((!ps && o.all) || (ps && (o.running || o.stopped)))
		return cli_error("%s: unknown flag (see 'msb %s --help')", ps ? "ps" : "ls",
				 ps ? "ps" : "ls");
	if (o.running && o.stopped)
		return cli_error("ls: --running and --stopped cannot be used together");
	if (optind < argc)
		return cli_error("%s: unexpected argument \"%s\"", ps ? "ps" : "ls", argv[optind]);
	if (sbx_list(&rows, &n, &err) < 0)
		return cli_fail(err);
	if (o.json)
		arr = json_array();
	else if (!o.quiet && ps)
		printf("%-20s %-28s %-24s %-4s %-6s %-10s %s\n", "NAME", "IMAGE", "COMMAND", "CPUS",
		       "MEM", "STATUS", "PORTS");
	else if (!o.quiet)
		printf("%-24s %-36s %-10s %s\n", "NAME", "IMAGE", "STATUS", "CREATED");
	for (size_t i = 0; i < n; i++) {
		struct sandbox_row *row = &rows[i];
		struct sbx_spec spec = { 0 };
		char name[80], img[80], cmdl[256], cmdc[80], when[64];
		bool running = is_running(row);

		if ((ps && !o.all && !running) || (o.running && !running) || (o.stopped && running))
			continue;
		if (o.quiet) {
			cli_cell(name, sizeof(name), row->name, 79);
			printf("%s\n", name);
			continue;
		}
		if (sbx_spec_load(row->name, &spec, NULL) < 0)
			memset(&spec, 0, sizeof(spec));
		/* What runs, not what could: a created sandbox runs no command of its own. */
		command_line(sbx_runs_command(row->name) ? spec.command : NULL, cmdl, sizeof(cmdl));
		if (arr) {
			json_t *e = json_pack("{s:s, s:s, s:s?, s:s?}", "name", row->name, "status",
					      row->status, "image", source(&spec, row),
					      "created_at", row->created_at);

			if (e && ps) {
				json_t *ports = json_array();

				for (size_t k = 0; ports && k < spec.net.nports; k++) {
					char pt[80];

					sbx_format_port(&spec.net.ports[k], pt, sizeof(pt));
					json_array_append_new(ports, json_string(pt));
				}
				json_object_set_new(e, "command", json_string(cmdl));
				json_object_set_new(e, "cpus", json_integer(spec.cpus));
				json_object_set_new(e, "memory_mib", json_integer(spec.mem_mib));
				json_object_set_new(e, "ports", ports ? ports : json_array());
			}
			json_array_append_new(arr, e);
		} else if (ps) {
			char mem[32], ports[512] = "-";
			size_t off = 0;

			for (size_t k = 0; k < spec.net.nports && off < sizeof(ports) - 1; k++) {
				char pt[80];

				sbx_format_port(&spec.net.ports[k], pt, sizeof(pt));
				off += (size_t)snprintf(ports + off, sizeof(ports) - off, "%s%s",
							off ? ", " : "", pt);
			}
			cli_cell(name, sizeof(name), row->name, 20);
			cli_cell(img, sizeof(img), source(&spec, row), 28);
			cli_cell(cmdc, sizeof(cmdc), cmdl, 24);
			snprintf(mem, sizeof(mem), "%uM", spec.mem_mib);
			printf("%-20s %-28s %-24s %-4u %-6s %-10s %s\n", name, img, cmdc, spec.cpus,
			       mem, row->status, ports);
		} else {
			cli_cell(name, sizeof(name), row->name, 24);
			cli_cell(img, sizeof(img), source(&spec, row), 36);
			cli_ago(row->created_at, when, sizeof(when));
			printf("%-24s %-36s %-10s %s\n", name, img, row->status, when);
		}
		sbx_spec_free(&spec);
	}
	if (arr) {
		cli_print_json(arr);
		json_decref(arr);
	}
	sandbox_rows_free(rows, n);
	return 0;
}

int cmd_ls(int argc, char **argv)
{
	return list(false, argc, argv);
}

int cmd_ps(int argc, char **argv)
{
	return list(true, argc, argv);
}

/* --- asking a running sandbox (INFO) ------------------------------------------ */

/* Return: the supervisor's INFO answer, or NULL with @err. */
static json_t *ask_info(const char *name, struct msb_err **err)
{
	json_t *o = NULL;

	return sbx_ask(name, PROTO_INFO, NULL, &o, err) < 0 ? NULL : o;
}

/* --- inspect ------------------------------------------------------------------ */

static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();

	for (; a && v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

/* "a.b.c.d" of a leased network @text plus @k, with "/@prefix" when @prefix. */
static json_t *lease_addr(const char *text, uint8_t k, int prefix)
{
	struct ipaddr a;
	char buf[IP_STRLEN + 8];

	if (!text || ip_parse(text, &a) < 0)
		return json_null();
	a.b[15] = (uint8_t)(a.b[15] + k);
	ip_format(&a, buf, IP_STRLEN);
	if (prefix)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "/%d", prefix);
	return json_string(buf);
}

/* Addresses (once leased), published ports and the effective policy, in one place. */
static json_t *network_json(const struct sandbox_row *row, const struct sbx_spec *s)
{
	json_t *ports = json_array(), *rules = json_array(), *pol = policy_to_json(&s->net.policy);
	char pt[80], rule[NET_MAX_TOKEN + 64];

	for (size_t i = 0; ports && i < s->net.nports; i++) {
		sbx_format_port(&s->net.ports[i], pt, sizeof(pt));
		json_array_append_new(ports, json_string(pt));
	}
	for (unsigned int i = 0; rules && i < s->net.policy.n; i++) {
		policy_rule_describe(&s->net.policy, (int)i, rule, sizeof(rule));
		json_array_append_new(rules, json_string(rule));
	}
	if (pol)
		json_object_set_new(pol, "rules_explained", rules ? rules : json_array());
	else
		json_decref(rules);
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "ipv4", lease_addr(row->net4, 2, 30),
			 "gateway_ipv4", lease_addr(row->net4, 1, 0), "ipv6",
			 lease_addr(row->net6, 2, 64), "gateway_ipv6", lease_addr(row->net6, 1, 0),
			 "ports", ports ? ports : json_array(), "policy", pol ? pol : json_null());
}

/* Every mount a user asked for, docker's "Mounts": volumes then tmpfs. */
static json_t *mounts_json(const struct sbx_spec *s)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < s->nvolumes; i++) {
		const struct sbx_volume *v = &s->volumes[i];
		struct vol_info vi;
		struct msb_err *e = NULL;
		_cleanup_free_ char *path = NULL;

		if (v->named && vol_load(v->source, &vi, &e) == 0)
			path = vol_data(&vi);
		msb_err_free(e);
		json_array_append_new(
			a, json_pack("{s:s, s:s, s:s?, s:s, s:b, s:b}", "type",
				     v->named ? "volume" : "bind", "source", v->source, "host_path",
				     v->named ? path : v->source, "destination", v->dest,
				     "readonly", v->readonly, "noexec", v->noexec));
	}
	for (size_t i = 0; a && i < s->ntmpfs; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "type", "tmpfs",
						   "destination", s->tmpfs[i].path, "size_bytes",
						   (json_int_t)s->tmpfs[i].size));
	return a ? a : json_array();
}

static json_t *inspect_json(const struct sandbox_row *row, const struct sbx_spec *s, json_t *live)
{
	json_t *o, *cfg, *run, *tmpfs = json_array();

	for (size_t i = 0; i < s->ntmpfs; i++)
		json_array_append_new(tmpfs, json_pack("{s:s, s:I}", "path", s->tmpfs[i].path,
						       "size_bytes", (json_int_t)s->tmpfs[i].size));
	cfg = json_pack(
		"{s:s?, s:s?, s:s?, s:i, s:i, s:i, s:s, s:o, s:o, s:s?, s:s?, s:s?, s:o, s:o,"
		" s:s?, s:o, s:o, s:I, s:I, s:s, s:b}",
		"image", s->image, "image_digest", s->image_digest, "rootfs", s->rootfs, "cpus",
		(int)s->cpus, "memory_mib", (int)s->mem_mib, "upper_mib", (int)s->upper_mib,
		"hostname", s->hostname, "command", strv_json(s->command), "env", strv_json(s->env),
		"workdir", s->workdir, "user", s->user, "shell", s->shell, "tmpfs", tmpfs,
		"scripts", strv_json(s->scripts), "init", s->init, "init_args",
		strv_json(s->init_args), "init_env", strv_json(s->init_env), "max_duration_ms",
		(json_int_t)s->max_duration_ms, "idle_timeout_ms", (json_int_t)s->idle_timeout_ms,
		"log_level", log_level_name(s->log_level), "ephemeral", s->ephemeral);
	run = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:f, s:f}", "started_at", row->started_at,
			"ended_at", row->ended_at, "ended_because", row->reason, "accelerator",
			row->accel, "accelerator_reason", row->accel_reason, "boot_kernel_ms",
			row->kernel_ms, "boot_ready_ms", row->ready_ms);
	if (run)
		json_object_set_new(run, "exit_code",
				    row->has_exit ? json_integer(row->exit_code) : json_null());
	if (cfg) {
		json_object_set_new(cfg, "network", sbx_net_to_json(&s->net));
		json_object_set_new(cfg, "rlimits", strv_json(s->rlimits));
	}
	if (cfg && s->disk_image)
		json_object_set_new(cfg, "disk",
				    json_pack("{s:s, s:s?, s:b}", "image", s->disk_image, "format",
					      s->disk_format, "snapshot", s->disk_snapshot));
	o = json_pack("{s:s, s:s, s:s?, s:o, s:o, s:o, s:o}", "name", row->name, "status",
		      row->status, "created_at", row->created_at, "config", cfg, "mounts",
		      mounts_json(s), "network", network_json(row, s), "last_run", run);
	if (o && live) {
		json_object_set_new(o, "pid", json_incref(json_object_get(live, "supervisor_pid")));
		json_object_set_new(o, "vmm_pid", json_incref(json_object_get(live, "vmm_pid")));
		json_object_set(o, "live", live);
	} else if (o) {
		json_object_set_new(o, "pid", json_null());
	}
	return o;
}

/* Human form: "key: value" lines, like `podman inspect --format` would be read by people. */
static void print_flat(json_t *v, const char *prefix)
{
	const char *k;
	json_t *e;
	size_t i;
	char line[4096], safe[4096];

	if (json_is_object(v)) {
		json_object_foreach(v, k, e)
		{
			char p[256];

			snprintf(p, sizeof(p), "%s%s%s", prefix, *prefix ? "." : "", k);
			print_flat(e, p);
		}
		return;
	}
	if (json_is_array(v)) {
		if (!json_array_size(v))
			printf("%s: []\n", prefix);
		json_array_foreach(v, i, e)
		{
			char p[256];

			snprintf(p, sizeof(p), "%s[%zu]", prefix, i);
			print_flat(e, p);
		}
		return;
	}
	if (json_is_string(v))
		snprintf(line, sizeof(line), "%s", json_string_value(v));
	else if (json_is_null(v))
		snprintf(line, sizeof(line), "-");
	else {
		_cleanup_free_ char *t = json_dumps(v, JSON_ENCODE_ANY);

		snprintf(line, sizeof(line), "%s", t ? t : "?");
	}
	text_sanitize(safe, sizeof(safe), line, strlen(line));
	printf("%s: %s\n", prefix, safe);
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option lo[] = { { "format", required_argument, NULL, 'F' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	struct simple_opts o = { 0 };
	int r = getopts("inspect", argc, argv, "h", lo,
			"Usage: msb inspect [--format json] NAME...\n\nA sandbox's whole "
			"configuration, status, accelerator, boot timings and last run.\n",
			simple_opt, &o),
	    rc = 0;
	json_t *all;

	if (r)
		return r < 0 ? 0 : r;
	if (optind >= argc)
		return cli_error("inspect: expected a sandbox name (see 'msb inspect --help')");
	all = json_array();
	for (int i = optind; i < argc; i++) {
		_cleanup_err_ struct msb_err *err = NULL;
		struct sandbox_row row;
		struct sbx_spec spec;
		json_t *live = NULL, *one;

		if (sbx_get(argv[i], &row, &err) < 0) {
			rc = cli_fail(err);
			continue;
		}
		if (sbx_spec_load(argv[i], &spec, &err) < 0) {
			sandbox_row_free(&row);
			rc = cli_fail(err);
			continue;
		}
		if (is_running(&row))
			live = ask_info(argv[i], NULL);
		one = inspect_json(&row, &spec, live);
		json_decref(live);
		if (one && o.json) {
			json_array_append_new(all, one);
		} else if (one) {
			print_flat(one, "");
			json_decref(one);
		}
		sandbox_row_free(&row);
		sbx_spec_free(&spec);
	}
	if (o.json)
		cli_print_json(json_array_size(all) == 1 ? json_array_get(all, 0) : all);
	json_decref(all);
	return rc;
}

/* --- metrics ------------------------------------------------------------------- */

static uint64_t jnum(json_t *o, const char *k)
{
	json_int_t v = json_integer_value(json_object_get(o, k));

	return v > 0 ? (uint64_t)v : 0;
}

/* A figure the supervisor could not have is null: it stays unknown here too. */
static bool jknown(json_t *o, const char *k)
{
	return json_is_integer(json_object_get(o, k));
}

static json_t *jsize_or_null(bool known, uint64_t v)
{
	return known ? json_integer((json_int_t)v) : json_null();
}

int cmd_metrics(int argc, char **argv)
{
	static const struct option lo[] = { { "format", required_argument, NULL, 'F' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	_cleanup_err_ struct msb_err *err = NULL;
	struct simple_opts o = { 0 };
	struct sandbox_row *rows = NULL;
	json_t *arr;
	json_t *first[256] = { 0 };
	size_t n = 0, nsel = 0;
	const char *sel[256];
	struct timespec t0, t1;
	double wall;
	int r = getopts("metrics", argc, argv, "h", lo,
			"Usage: msb metrics [NAME...] [--format json]\n\nCPU, memory, disk and "
			"network use of running sandboxes.\n",
			simple_opt, &o),
	    rc = 0;

	if (r)
		return r < 0 ? 0 : r;
	/* After the options: --help and bad flags return above, holding nothing. */
	arr = json_array();
	if (optind < argc) {
		for (int i = optind; i < argc && nsel < 256; i++) {
			if (!sbx_alive(argv[i])) {
				rc = cli_error(sbx_exists(argv[i]) ? "sandbox %s is not running"
								   : "sandbox %s: not found",
					       argv[i]);
				continue;
			}
			sel[nsel++] = argv[i];
		}
		/* Only errors: no empty table (or []) before them. */
		if (!nsel) {
			json_decref(arr);
			return rc;
		}
	} else {
		if (sbx_list(&rows, &n, &err) < 0) {
			json_decref(arr);
			return cli_fail(err);
		}
		for (size_t i = 0; i < n && nsel < 256; i++)
			if (is_running(&rows[i]))
				sel[nsel++] = rows[i].name;
	}
	/* CPU use is a rate: two samples, half a second apart. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < nsel; i++)
		first[i] = ask_info(sel[i], NULL);
	if (nsel)
		usleep(500000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (!o.json)
		printf("%-24s %-8s %6s %-21s %-21s %-21s %s\n", "NAME", "STATE", "CPU", "MEM",
		       "DISK R/W", "NET RX/TX", "UPTIME");
	for (size_t i = 0; i < nsel; i++) {
		json_t *b = ask_info(sel[i], NULL), *a = first[i];
		uint64_t cpu0 = jnum(a, "cpu_ns"), cpu1 = jnum(b, "cpu_ns");
		bool cpu_ok = jknown(a, "cpu_ns") && jknown(b, "cpu_ns") && cpu1 >= cpu0;
		double cpu = cpu1 > cpu0 && wall > 0 ? (double)(cpu1 - cpu0) / 1e9 / wall * 100 : 0;
		uint64_t total = jnum(b, "mem_total_bytes"), avail = jnum(b, "mem_available_bytes");
		uint64_t used = total > avail ? total - avail : 0;
		bool mem_ok = jknown(b, "mem_total_bytes") && jknown(b, "mem_available_bytes");
		bool disk_ok = jknown(b, "disk_read_bytes") && jknown(b, "disk_write_bytes");
		uint64_t limit = jnum(b, "memory_mib") << 20;
		json_t *net = json_object_get(b, "net");
		uint64_t nrx = jnum(net, "rx_bytes"), ntx = jnum(net, "tx_bytes");
		char nm[80], us[32], li[32], rd[32], wr[32], up[32], memc[80], diskc[80];
		char nr[32], nt[32], netc[80], cpuc[16] = "-";

		if (!b) {
			json_decref(a);
			continue;
		}
		if (o.json) {
			json_array_append_new(
				arr, json_pack("{s:s, s:s, s:o, s:o, s:I, s:o, s:o, s:I, s:I, s:I}",
					       "name", sel[i], "state",
					       json_string_value(json_object_get(b, "state")),
					       "cpu_percent", cpu_ok ? json_real(cpu) : json_null(),
					       "memory_bytes", jsize_or_null(mem_ok, used),
					       "memory_limit_bytes", (json_int_t)limit,
					       "disk_read_bytes",
					       jsize_or_null(disk_ok, jnum(b, "disk_read_bytes")),
					       "disk_write_bytes",
					       jsize_or_null(disk_ok, jnum(b, "disk_write_bytes")),
					       "net_rx_bytes", (json_int_t)nrx, "net_tx_bytes",
					       (json_int_t)ntx, "uptime_secs",
					       (json_int_t)(jnum(b, "uptime_ms") / 1000)));
		} else {
			cli_cell(nm, sizeof(nm), sel[i], 24);
			format_size(used, us, sizeof(us));
			format_size(limit, li, sizeof(li));
			format_size(jnum(b, "disk_read_bytes"), rd, sizeof(rd));
			format_size(jnum(b, "disk_write_bytes"), wr, sizeof(wr));
			format_duration(jnum(b, "uptime_ms") / 1000 * 1000, up, sizeof(up));
			snprintf(memc, sizeof(memc), "%s / %s", mem_ok ? us : "-", li);
			snprintf(diskc, sizeof(diskc), "%s / %s", disk_ok ? rd : "-",
				 disk_ok ? wr : "-");
			format_size(nrx, nr, sizeof(nr));
			format_size(ntx, nt, sizeof(nt));
			snprintf(netc, sizeof(netc), "%s / %s", nr, nt);
			if (cpu_ok)
				snprintf(cpuc, sizeof(cpuc), "%.1f%%", cpu);
			printf("%-24s %-8s %6s %-21s %-21s %-21s %s\n", nm,
			       json_string_value(json_object_get(b, "state")) ?: "?", cpuc, memc,
			       diskc, net ? netc : "-", up);
		}
		json_decref(a);
		json_decref(b);
	}
	if (o.json)
		cli_print_json(arr);
	json_decref(arr);
	sandbox_rows_free(rows, n);
	return rc;
}
