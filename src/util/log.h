/* SPDX-License-Identifier: Apache-2.0 */
/* Leveled logging to a sandbox's runtime.log and, optionally, stderr. */
#ifndef MSB_UTIL_LOG_H
#define MSB_UTIL_LOG_H

#include <stdbool.h>
#include <stdint.h>

struct rotlog;

enum log_level { LOG_NONE = -1, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

/*
 * log_setup() - where log lines go. Lines at or above @file_level go to
 * @file (borrowed, capped and rotated; NULL for none), lines at or above
 * @stderr_level to stderr.
 */
void log_setup(struct rotlog *file, enum log_level file_level, enum log_level stderr_level);

/*
 * log_setup_sink() - send every line at or above @level to @sink instead of
 * a file or stderr (a confined process hands its lines to its parent). The
 * message comes without timestamp or level prefix.
 */
void log_setup_sink(void (*sink)(enum log_level lvl, const char *msg, void *ctx), void *ctx,
		    enum log_level level);

/* log_enabled() - would a line at @lvl go anywhere? */
bool log_enabled(enum log_level lvl);

void msb_log(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) msb_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  msb_log(LOG_WARN, __VA_ARGS__)
#define log_info(...)  msb_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) msb_log(LOG_DEBUG, __VA_ARGS__)

/*
 * struct log_rl - a rate limit for log lines a peer can trigger: at most
 * LOG_RL_BURST lines per LOG_RL_INTERVAL_MS from one call site; the next line
 * after a quiet spell says how many were suppressed.
 */
struct log_rl {
	uint64_t window_ms;
	unsigned int count;
	unsigned int suppressed;
	unsigned int burst; /* lines per interval; 0: LOG_RL_BURST */
};
#define LOG_RL_BURST	   5
#define LOG_RL_INTERVAL_MS 10000

void msb_log_rl(struct log_rl *rl, enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Rate-limited logging, one limit per call site. */
#define log_rl(lvl, ...)                                                                           \
	do {                                                                                       \
		static struct log_rl rl_;                                                          \
		msb_log_rl(&rl_, lvl, __VA_ARGS__);                                                \
	} while (0)
/* The same with its own burst, for call sites where each line is worth more (policy denials). */
#define log_rl_burst(lvl, n, ...)                                                                  \
	do {                                                                                       \
		static struct log_rl rl_ = { .burst = (n) };                                       \
		msb_log_rl(&rl_, lvl, __VA_ARGS__);                                                \
	} while (0)
#define log_warn_rl(...)  log_rl(LOG_WARN, __VA_ARGS__)
#define log_error_rl(...) log_rl(LOG_ERROR, __VA_ARGS__)
#define log_debug_rl(...) log_rl(LOG_DEBUG, __VA_ARGS__)

/* Return: 0 and the level in @out, or -EINVAL for an unknown name. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);

/* Formats the current UTC time as RFC 3339 with milliseconds into @buf (>= 32 bytes). */
void log_timestamp(char *buf, unsigned long len);

#endif
