// SPDX-License-Identifier: Apache-2.0
/*
 * msb __supervise: the hidden command a sandbox's supervisor process runs;
 * msb __net: the one its network process runs (net/netproc.h).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "net/netproc.h"
#include "sandbox/sandbox.h"

int cmd_supervise(int argc, char **argv)
{
	int ready_fd = -1, lock_fd = -1, secrets_fd = -1;
	bool attached = false, run_main = false;
	const char *name = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ready-fd") && i + 1 < argc) {
			char *end;
			long fd = strtol(argv[++i], &end, 10);

			if (*end || fd < 3 || fd > 1024)
				return cli_error("__supervise: invalid --ready-fd");
			ready_fd = (int)fd;
		} else if (!strcmp(argv[i], "--lock-fd") && i + 1 < argc) {
			char *end;
			long fd = strtol(argv[++i], &end, 10);

			if (*end || fd < 3 || fd > 1024)
				return cli_error("__supervise: invalid --lock-fd");
			lock_fd = (int)fd;
		} else if (!strcmp(argv[i], "--secrets-fd") && i + 1 < argc) {
			char *end;
			long fd = strtol(argv[++i], &end, 10);

			if (*end || fd < 3 || fd > 1024)
				return cli_error("__supervise: invalid --secrets-fd");
			secrets_fd = (int)fd;
		} else if (!strcmp(argv[i], "--attached"))
			attached = true;
		else if (!strcmp(argv[i], "--run-main"))
			run_main = true;
		else
			name = argv[i];
	}
	if (!name)
		return cli_error("__supervise: missing sandbox name");
	return sbx_supervise(name, ready_fd, lock_fd, secrets_fd, attached, run_main);
}

/* The supervisor placed the control socket at 3 and the guest's link at 4. */
int cmd_net(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return netproc_main(3, 4);
}
