/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading a sandbox's logs: logs/exec.log (JSON Lines of every session's
 * output, rotated as exec.log.1..3) and, for the "system" source, the
 * lifecycle markers in it plus runtime.log and kernel.log. Files only: works
 * on running and stopped sandboxes alike.
 */
#ifndef MSB_SANDBOX_LOGS_H
#define MSB_SANDBOX_LOGS_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"

/* Sources, as --source names them. */
#define LOGS_STDOUT  0x1u
#define LOGS_STDERR  0x2u
#define LOGS_OUTPUT  0x4u /* a pty session: stdout and stderr merged */
#define LOGS_SYSTEM  0x8u
#define LOGS_NET     0x10u /* runtime.log lines of the network (also part of "system") */
#define LOGS_ALL     0x1fu
#define LOGS_DEFAULT (LOGS_STDOUT | LOGS_STDERR | LOGS_OUTPUT)

/* One entry: a chunk of a session's output, or a system line. */
struct log_entry {
	char t[32];	  /* RFC 3339, UTC, milliseconds; "" when unknown (kernel.log) */
	unsigned int src; /* one LOGS_* bit */
	uint32_t id;	  /* the session, 0 for system lines */
	uint8_t *d;	  /* the bytes, exactly as the command wrote them */
	size_t len;
	bool utf8; /* @d is valid UTF-8 */
};

struct log_query {
	unsigned int sources;
	char since[32]; /* "" = no bound; entries at or after */
	char until[32]; /* "" = no bound; entries strictly before */
	const regex_t *grep;
};

/*
 * logs_parse_sources() - "stdout,stderr" and the like (repeated flags OR
 * together). Return: 0, or -EINVAL naming nothing: the caller prints.
 */
int logs_parse_sources(const char *s, unsigned int *out);

/*
 * logs_parse_time() - RFC 3339 (any offset) or a relative "5m", "2h", "1d"
 * before now, into the UTC form entries use. Return: 0 or -EINVAL.
 */
int logs_parse_time(const char *s, char *out, size_t len);

/* A log file followed from where it was last read, across rotations. */
struct log_cursor {
	char path[4200];
	int fd;
	ino_t ino;
	struct buf partial; /* the start of a line not yet complete */
};

/* struct logs - the sources of one sandbox, read so far. */
struct logs {
	struct log_cursor exec, runtime, kernel;
	bool system;
	bool net; /* runtime.log is read for the network's lines alone */
	uint64_t kernel_mtime_ms;
};

/*
 * logs_read_all() - every entry of @dir (a sandbox directory) matching @q,
 * oldest first, leaving @l ready to follow. Return: 0 and a newly allocated
 * array in *@out (logs_entries_free), or -1 with @err.
 */
int logs_read_all(struct logs *l, const char *dir, const struct log_query *q,
		  struct log_entry **out, size_t *n, struct msb_err **err);

/*
 * logs_read_new() - entries written since the last read (following
 * rotations: the rest of the old file, then the new one).
 */
int logs_read_new(struct logs *l, const struct log_query *q, struct log_entry **out, size_t *n);

void logs_close(struct logs *l);
void logs_entries_free(struct log_entry *v, size_t n);

/* logs_entry_json() - the entry as one JSON line (base64 for non-UTF-8 with @raw). */
char *logs_entry_json(const struct log_entry *e, bool raw);

#endif
