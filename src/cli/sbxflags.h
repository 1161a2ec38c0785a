/* SPDX-License-Identifier: Apache-2.0 */
/* The flags `msb run` and `msb create` share, parsed into sbx_create_opts. */
#ifndef MSB_CLI_SBXFLAGS_H
#define MSB_CLI_SBXFLAGS_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/cli.h"
#include "proto/proto.h"
#include "sandbox/create.h"

struct sbx_flags {
	struct sbx_create_opts co; /* pointers into the fields below and argv */
	struct strv env, init_args, init_env, pos;
	struct strv allow_backing; /* --allow-backing PATH */
	struct sbx_tmpfs *tmpfs;
	struct sbx_volume *volumes;
	struct sbx_script_src *scripts;
	const char *shell_flag;
	/* run only */
	bool tty, detach;
	uint64_t timeout_ms;
	uint32_t nrlimits;
	struct proto_rlimit rlimits[PROTO_MAX_RLIMITS];
	struct strv rlimit_args; /* the --rlimit texts, kept in the spec (create too) */
	const char *detach_keys;
	/* --replace / --replace-with-grace */
	bool replace;
	uint64_t replace_grace_ms;
	char **cmd; /* after "--" (or after the image without it) */
	/* --script bodies wait for --shell, which may come later on the line */
	struct strv script_args; /* "kind\x1fNAME\x1fVALUE" */
	struct sbx_net net;
	bool no_net, net_default_allow; /* --no-net and --net-default allow contradict */
	char **secret_values;	/* --secret values, as net.secrets (wiped by sbxflags_free) */
	bool tls_port_given;	/* a --tls-intercept-port replaced the default 443 */
	const char *shape_flag; /* the first flag --from-snapshot does not allow */
};

/*
 * sbxflags_parse() - parse @argv for `msb @cmd` (run or create). Return: 0,
 * -1 after printing help, or the exit status of a usage error (already
 * printed, one line).
 */
int sbxflags_parse(const char *cmd, int argc, char **argv, struct sbx_flags *f);
void sbxflags_free(struct sbx_flags *f);

/* Flags every session has (run, create, exec); each returns 0 or a printed usage error's status. */
/* -e KEY=VALUE, or KEY alone: this process's value, if it has one. */
int cli_add_env(struct strv *env, const char *s, const char *flag);
/* A duration flag (30s, 5m, 1h); 0 only when @zero_ok. */
int cli_duration(const char *flag, const char *arg, uint64_t *ms, bool zero_ok);
/* --rlimit NAME=SOFT[:HARD], appended to @rlimits (PROTO_MAX_RLIMITS of them). */
int cli_add_rlimit(struct proto_rlimit *rlimits, uint32_t *n, const char *arg);

/* The signals a CLI blocks so that a signalfd sees them (SIGINT, SIGTERM, SIGHUP, SIGQUIT). */
void cli_block_signals(void);
/* A signalfd for SIGINT, SIGTERM and SIGHUP (blocked already), for cancelling pulls; -1 on failure.
 */
int cli_cancel_fd(void);

#endif
