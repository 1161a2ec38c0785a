/* SPDX-License-Identifier: Apache-2.0 */
/* Leveled logging to a sandbox's runtime.log and, optionally, stderr. */
#ifndef MSB_UTIL_LOG_H
#define MSB_UTIL_LOG_H

#include <stdbool.h>

enum log_level { LOG_NONE = -1, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

/*
 * log_setup() - where log lines go. Lines at or above @file_level go to
 * @file_fd (borrowed; -1 for none), lines at or above @stderr_level to stderr.
 */
void log_setup(int file_fd, enum log_level file_level, enum log_level stderr_level);

/* log_enabled() - would a line at @lvl go anywhere? */
bool log_enabled(enum log_level lvl);

void msb_log(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) msb_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  msb_log(LOG_WARN, __VA_ARGS__)
#define log_info(...)  msb_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) msb_log(LOG_DEBUG, __VA_ARGS__)

/* Return: 0 and the level in @out, or -EINVAL for an unknown name. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);

/* Formats the current UTC time as RFC 3339 with milliseconds into @buf (>= 32 bytes). */
void log_timestamp(char *buf, unsigned long len);

#endif
