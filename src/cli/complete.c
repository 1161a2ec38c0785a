// SPDX-License-Identifier: Apache-2.0
/*
 * Shell completion: `msb completion bash|zsh|fish` prints a script that asks
 * `msb __complete WORD...` (the words after "msb", the last one the word
 * being completed, maybe empty) for candidates, one per line.
 *
 * Nothing is listed twice: commands come from the command table, subcommands
 * from the "Commands:" part of each command's --help, flags from its --help
 * text (so every documented flag completes, and a new one does without a
 * change here), and names from the store, by asking msb itself (`msb ls -q`,
 * `msb images -q`, `msb volume ls -q`, `msb snapshot ls -q`) and the
 * installed commands' records.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/spawn.h"

#define HELP_MAX (64 << 10)

static const char bash_script[] =
	"# msb completion for bash: source it, or put it in "
	"~/.local/share/bash-completion/completions/msb\n"
	"_msb() {\n"
	"  local IFS=$'\\n'\n"
	"  COMPREPLY=($(msb __complete \"${COMP_WORDS[@]:1:COMP_CWORD}\" 2> /dev/null))\n"
	"}\n"
	"complete -o bashdefault -o default -F _msb msb\n";

static const char zsh_script[] =
	"#compdef msb\n"
	"# msb completion for zsh: put it in a directory of $fpath as _msb, or source it\n"
	"_msb() {\n"
	"  local -a c\n"
	"  c=(${(f)\"$(msb __complete \"${(@)words[2,CURRENT]}\" 2> /dev/null)\"})\n"
	"  (( ${#c} )) && compadd -a c || _files\n"
	"}\n"
	"(( $+functions[compdef] )) && compdef _msb msb\n";

static const char fish_script[] =
	"# msb completion for fish: put it in ~/.config/fish/completions/msb.fish\n"
	"function __msb_complete\n"
	"    set -l words (commandline -opc) (commandline -ct)\n"
	"    msb __complete $words[2..-1] 2> /dev/null\n"
	"end\n"
	"complete -c msb -f -a '(__msb_complete)'\n";

int cmd_completion(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("Usage: msb completion bash|zsh|fish\n\n"
		       "Print a completion script for the shell: commands, subcommands, flags,\n"
		       "and sandbox, image, volume, snapshot and installed-command names.\n"
		       "  bash: msb completion bash > "
		       "~/.local/share/bash-completion/completions/msb\n"
		       "  zsh:  msb completion zsh > \"${fpath[1]}/_msb\"\n"
		       "  fish: msb completion fish > ~/.config/fish/completions/msb.fish\n");
		return 0;
	}
	if (argc != 2)
		return cli_error("completion: name one shell (use: msb completion bash|zsh|fish)");
	if (!strcmp(argv[1], "bash"))
		fputs(bash_script, stdout);
	else if (!strcmp(argv[1], "zsh"))
		fputs(zsh_script, stdout);
	else if (!strcmp(argv[1], "fish"))
		fputs(fish_script, stdout);
	else
		return cli_error("completion: unknown shell \"%s\" (use bash, zsh or fish)",
				 argv[1]);
	return 0;
}

/* --- __complete ------------------------------------------------------------- */

static const char *cur;	    /* the word being completed */
static struct strv offered; /* each candidate once */

static void offer(const char *s, size_t n)
{
	_cleanup_free_ char *w = NULL;

	if (n < strlen(cur) || strncmp(s, cur, strlen(cur)) != 0 || !(w = strndup(s, n)))
		return;
	for (size_t i = 0; i < offered.n; i++)
		if (!strcmp(offered.v[i], w))
			return;
	if (strv_push(&offered, w) == 0)
		printf("%s\n", w);
}

/* msb's own output for @args (its stdout), NUL-terminated in @out. */
static int self(char *const *args, char *out, size_t cap)
{
	_cleanup_free_ char *exe = realpath("/proc/self/exe", NULL);
	char *argv[8];
	size_t n = 0;

	if (!exe)
		return -1;
	argv[n++] = exe;
	for (; *args && n < 7; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	out[0] = '\0';
	return spawn_io(argv, NULL, out, cap) == 0 ? 0 : -1;
}

/* Every line of msb @args' output, offered. */
static void offer_lines(char *const *args)
{
	_cleanup_free_ char *out = malloc(HELP_MAX);

	if (!out || self(args, out, HELP_MAX) < 0)
		return;
	for (char *l = out, *e; *l; l = e + (*e != '\0')) {
		e = strchrnul(l, '\n');
		if (e > l)
			offer(l, (size_t)(e - l));
	}
}

/*
 * From msb @cmd [@sub] --help: the subcommands (the words under
 * "Commands:") when @subs, else every flag written in it.
 * Return: how many were found (offered or not).
 */
static int from_help(const char *cmd, const char *sub, bool subs)
{
	_cleanup_free_ char *out = malloc(HELP_MAX);
	char *args[] = { (char *)cmd, (char *)(sub ? sub : "--help"), sub ? "--help" : NULL, NULL };
	bool in_cmds = false;
	int found = 0;

	if (!out || self(args, out, HELP_MAX) < 0)
		return 0;
	for (char *l = out, *e; *l; l = e + (*e != '\0')) {
		e = strchrnul(l, '\n');
		if (subs) {
			if (!strncmp(l, "Commands:", 9)) {
				in_cmds = true;
			} else if (in_cmds && l[0] == ' ') {
				char *w = l + strspn(l, " ");
				size_t n = strcspn(w, " \n");

				if (n) {
					offer(w, n);
					found++;
				}
			} else {
				in_cmds = false;
			}
			continue;
		}
		for (char *p = l; p < e; p++) {
			size_t n;

			if (*p != '-' || (p > l && !strchr(" [,(|", p[-1])))
				continue;
			n = 1 + (p[1] == '-');
			if (!isalpha((unsigned char)p[n]))
				continue;
			while (p + n < e && (isalnum((unsigned char)p[n]) || p[n] == '-'))
				n++;
			offer(p, n);
			found++;
			p += n - 1;
		}
	}
	return found;
}

static void offer_aliases(void)
{
	const char *h = msb_home();
	_cleanup_free_ char *d = h ? path_join(h, "aliases") : NULL;
	DIR *dir = d ? opendir(d) : NULL;
	struct dirent *e;

	while (dir && (e = readdir(dir))) {
		size_t n = strlen(e->d_name);

		if (n > 5 && e->d_name[0] != '.' && !strcmp(e->d_name + n - 5, ".json"))
			offer(e->d_name, n - 5);
	}
	if (dir)
		closedir(dir);
}

static bool among(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (!strcmp(s, *set))
			return true;
	return false;
}

int cmd_complete(int argc, char **argv)
{
	static const char *const sandbox_cmds[] = { "start",   "stop",	  "exec",   "shell",
						    "inspect", "metrics", "logs",   "rm",
						    "branch",  "pause",	  "resume", NULL };
	static const char *const image_cmds[] = { "rmi", "run", "create", "install", NULL };
	char *ls_sbx[] = { "ls", "-q", NULL }, *ls_img[] = { "images", "-q", NULL };
	char *ls_vol[] = { "volume", "ls", "-q", NULL },
	     *ls_snap[] = { "snapshot", "ls", "-q", NULL };
	const char *cmd, *sub, *prev;

	/* argv: __complete WORD... CUR */
	if (argc < 2)
		return 0;
	cur = argv[argc - 1];
	if (argc == 2) {
		for (size_t i = 0; cli_command_name(i); i++)
			offer(cli_command_name(i), strlen(cli_command_name(i)));
		offer("help", 4);
		return 0;
	}
	cmd = argv[1];
	sub = argc > 3 ? argv[2] : NULL;
	prev = argv[argc - 2];
	if (!strcmp(cmd, "help")) {
		if (argc == 3)
			for (size_t i = 0; cli_command_name(i); i++)
				offer(cli_command_name(i), strlen(cli_command_name(i)));
		return 0;
	}
	if (!strcmp(cmd, "completion")) {
		if (argc == 3) {
			offer("bash", 4);
			offer("zsh", 3);
			offer("fish", 4);
		}
		return 0;
	}
	/* A command with subcommands: the subcommand first. */
	if (argc == 3 && from_help(cmd, NULL, true) > 0)
		return 0;
	if (sub && sub[0] == '-')
		sub = NULL;
	if (cur[0] == '-') {
		/* The subcommand's flags when it has subcommands, else the command's. */
		char *probe[] = { (char *)cmd, "--help", NULL };
		_cleanup_free_ char *out = malloc(HELP_MAX);
		bool has_subs =
			out && self(probe, out, HELP_MAX) == 0 && strstr(out, "\nCommands:");

		from_help(cmd, has_subs ? argv[2] : NULL, false);
		return 0;
	}
	if (!strcmp(prev, "--from-snapshot")) {
		offer_lines(ls_snap);
		return 0;
	}
	if (!strcmp(prev, "--from")) {
		offer_lines(ls_sbx);
		return 0;
	}
	{
		/* What the positional names: image inspect|rm|save, volume ..., snapshot ... */
		bool named_sub = sub && (!strcmp(sub, "inspect") || !strcmp(sub, "rm"));
		char **list = NULL;

		if (among(cmd, sandbox_cmds))
			list = ls_sbx;
		else if (among(cmd, image_cmds) ||
			 ((named_sub || (sub && !strcmp(sub, "save"))) && !strcmp(cmd, "image")))
			list = ls_img;
		else if (named_sub && !strcmp(cmd, "volume"))
			list = ls_vol;
		else if (named_sub && !strcmp(cmd, "snapshot"))
			list = ls_snap;
		if (list)
			offer_lines(list);
		else if (!strcmp(cmd, "uninstall"))
			offer_aliases();
	}
	return 0;
}
