/* SPDX-License-Identifier: Apache-2.0 */
/* Parsers for the values users type: sizes, durations, env pairs, rlimits, names. */
#ifndef MSB_UTIL_PARSE_H
#define MSB_UTIL_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * parse_size() - "512M", "1G", "1.5G", "4096K", "2GiB", "100MB" -> bytes.
 * Suffixes are binary (K = 1024). A bare number is in @bare_unit bytes.
 * Return: 0, or -EINVAL (malformed) / -ERANGE (overflow).
 */
int parse_size(const char *s, uint64_t bare_unit, uint64_t *bytes);

/*
 * parse_duration() - "500ms", "30s", "5m", "1h", "1h30m", "2d" -> ms.
 * A bare number means seconds. Return: 0, -EINVAL or -ERANGE.
 */
int parse_duration(const char *s, uint64_t *ms);

/* parse_u64() - a plain decimal number, digits only. Return: 0, -EINVAL or -ERANGE. */
int parse_u64(const char *s, uint64_t *out);

/*
 * parse_proc_stat() - field @field (numbered from 1 as in proc(5): 14 utime,
 * 24 rss) of a /proc/PID/stat line, an unsigned number. Fields 1 and 2 (pid,
 * comm) are not numbers this reads. Return: 0, or -EINVAL (no such field, or
 * not an unsigned number).
 */
int parse_proc_stat(const char *text, unsigned int field, uint64_t *out);

/* format_size() - "512 B", "3.4 KiB", "12.3 MiB", "1.2 GiB". */
void format_size(uint64_t bytes, char *buf, unsigned long len);

/* Formats @ms the way users wrote it: "1h30m", "2s", "250ms". */
void format_duration(uint64_t ms, char *buf, unsigned long len);

/* format_ago() - an age in words for a table: "1 second ago", "5 minutes ago", "2 years ago". */
void format_ago(uint64_t secs, char *buf, unsigned long len);

/*
 * parse_rlimit() - "nofile=1024" or "nofile=1024:4096" (soft:hard);
 * "unlimited" is accepted for either value.
 * Return: 0 with the RLIMIT_* number, or -EINVAL.
 */
int parse_rlimit(const char *s, uint32_t *resource, uint64_t *soft, uint64_t *hard);

/* parse_env_key() - true if @s starts with a valid "KEY=" (KEY non-empty, no '='). */
bool env_has_valid_key(const char *s);

/* A sandbox name: [A-Za-z0-9][A-Za-z0-9_.-]{0,62}. */
bool valid_sandbox_name(const char *s);

#endif
