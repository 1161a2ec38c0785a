// SPDX-License-Identifier: Apache-2.0
/* msb: entry point and command dispatch. */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct command commands[] = {
	{ "run", cmd_run, "Create a sandbox and run a command in it" },
	{ "create", cmd_create, "Create and boot a named sandbox in the background" },
	{ "start", cmd_start, "Start stopped sandboxes" },
	{ "stop", cmd_stop, "Stop running sandboxes" },
	{ "exec", cmd_exec, "Run a command in a sandbox" },
	{ "shell", cmd_shell, "Open a shell in a sandbox" },
	{ "ls", cmd_ls, "List sandboxes" },
	{ "ps", cmd_ps, "Show running sandboxes with their command and resources" },
	{ "status", cmd_ps, "Same as ps" },
	{ "inspect", cmd_inspect, "Show a sandbox's configuration and state" },
	{ "metrics", cmd_metrics, "Show CPU, memory and disk use of running sandboxes" },
	{ "logs", cmd_logs, "Show a sandbox's captured output" },
	{ "rm", cmd_rm, "Remove sandboxes" },
	{ "pull", cmd_pull, "Pull an image into the local cache" },
	{ "image", cmd_image, "Manage cached images (ls, inspect, rm, prune)" },
	{ "images", cmd_images, "List cached images" },
	{ "rmi", cmd_rmi, "Remove cached images" },
	{ "cp", cmd_cp, "Copy files between the host and a sandbox" },
	{ "volume", cmd_volume, "Manage named volumes (create, ls, inspect, rm)" },
	{ "volumes", cmd_volume, NULL },
	{ "snapshot", cmd_snapshot, "Manage snapshots of sandboxes (create, ls, inspect, rm)" },
	{ "snapshots", cmd_snapshot, NULL },
	{ "branch", cmd_branch, "Fork a running sandbox into a new one" },
	{ "pause", cmd_pause, "Suspend running sandboxes in place" },
	{ "resume", cmd_resume, "Continue paused sandboxes" },
	{ "registry", cmd_registry, "Manage registry credentials (login, logout, ls)" },
	{ "install", cmd_install, "Install an image's program as a command on the host" },
	{ "uninstall", cmd_uninstall, "Remove installed commands" },
	{ "df", cmd_df, "Show the disk msb uses, by kind, and what could be reclaimed" },
	{ "prune", cmd_prune, "Remove what msb df calls reclaimable" },
	{ "doctor", cmd_doctor, "Check this host for msb (KVM, QEMU, namespaces, disk, ...)" },
	{ "self", cmd_self, "Manage the msb installation itself (update, uninstall)" },
	{ "completion", cmd_completion, "Print a shell completion script (bash, zsh, fish)" },
	{ "__alias", cmd_alias, NULL },
	{ "__complete", cmd_complete, NULL },
	{ "__supervise", cmd_supervise, NULL },
	{ "__net", cmd_net, NULL },
};

const char *cli_command_name(size_t i)
{
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (commands[k].help && !i--)
			return commands[k].name;
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: msb COMMAND [OPTIONS]\n\n"
		   "Run OCI images and root filesystems as hardware-isolated microVMs.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].help)
			fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nRun 'msb COMMAND --help' or 'msb help COMMAND [SUBCOMMAND]' for a command's "
		   "options.\n");
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			return &commands[i];
	return NULL;
}

/* msb help CMD [SUBCMD...]: the same as msb CMD [SUBCMD...] --help. */
static int help(int argc, char **argv)
{
	const struct command *c;
	char *args[8];
	int n = 0;

	if (argc < 3) {
		usage(stdout);
		return 0;
	}
	c = find_command(argv[2]);
	/* __supervise is msb's own, not the user's. */
	if (!c || !strncmp(c->name, "__", 2))
		return cli_error("help: unknown command \"%s\" (see 'msb --help')", argv[2]);
	if (argc - 2 > (int)(sizeof(args) / sizeof(args[0])) - 2)
		return cli_error("help: too many arguments");
	for (int i = 2; i < argc; i++)
		args[n++] = argv[i];
	args[n++] = "--help";
	args[n] = NULL;
	return c->fn(n, args);
}

bool cli_stdio_closed[3];

/*
 * A descriptor 0-2 that was closed when msb started gets /dev/null, so the
 * next file msb opens cannot take its number and receive the command's
 * output; commands that write output know it was closed (cli_stdio_closed).
 */
static void fill_stdio(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		cli_stdio_closed[fd] = true;
		if (open("/dev/null", O_RDWR) != fd)
			_exit(EXIT_MSB);
	}
}

int main(int argc, char **argv)
{
	fill_stdio();
	/* A closed pipe is an error to handle where it happens, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	setlocale(LC_CTYPE, "C.UTF-8");
	if (argc < 2) {
		usage(stderr);
		return EXIT_MSB;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") ||
	    !strcmp(argv[1], "version")) {
		return cli_version();
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "help"))
		return help(argc, argv);
	if (find_command(argv[1]))
		return find_command(argv[1])->fn(argc - 1, argv + 1);
	return cli_error("unknown command \"%s\" (see 'msb --help')", argv[1]);
}
