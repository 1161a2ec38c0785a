// SPDX-License-Identifier: Apache-2.0
/* Leveled logging with RFC 3339 timestamps. */
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/rotlog.h"

static struct rotlog *log_file;
static enum log_level file_lvl = LOG_INFO;
static enum log_level err_lvl = LOG_NONE;

static const char *const names[] = { "error", "warn", "info", "debug", "trace" };

static void (*log_sink)(enum log_level lvl, const char *msg, void *ctx);
static void *log_sink_ctx;

void log_setup(struct rotlog *file, enum log_level file_level, enum log_level stderr_level)
{
	log_file = file;
	file_lvl = file_level;
	err_lvl = stderr_level;
	log_sink = NULL;
}

void log_setup_sink(void (*sink)(enum log_level lvl, const char *msg, void *ctx), void *ctx,
		    enum log_level level)
{
	log_file = NULL;
	err_lvl = LOG_NONE;
	log_sink = sink;
	log_sink_ctx = ctx;
	file_lvl = level;
}

bool log_enabled(enum log_level lvl)
{
	return ((log_file || log_sink) && lvl <= file_lvl) || lvl <= err_lvl;
}

void log_timestamp(char *buf, unsigned long len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static void log_line(enum log_level lvl, const char *msg)
{
	char line[2200], ts[40];
	int n;

	if (log_sink && lvl <= file_lvl) {
		log_sink(lvl, msg, log_sink_ctx);
		return;
	}
	if (log_file && lvl <= file_lvl) {
		log_timestamp(ts, sizeof(ts));
		n = snprintf(line, sizeof(line), "%s %-5s %s\n", ts, names[lvl], msg);
		if (n > 0)
			rotlog_write(log_file, line,
				     (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	}
	if (lvl <= err_lvl) {
		n = snprintf(line, sizeof(line), "msb: %s%s%s\n", lvl <= LOG_WARN ? names[lvl] : "",
			     lvl <= LOG_WARN ? ": " : "", msg);
		if (n > 0)
			(void)!write(2, line,
				     (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	}
}

void msb_log(enum log_level lvl, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_line(lvl, msg);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void msb_log_rl(struct log_rl *rl, enum log_level lvl, const char *fmt, ...)
{
	char msg[2048];
	uint64_t now = mono_ms();
	va_list ap;
	int n = 0;

	if (!log_enabled(lvl))
		return;
	if (now - rl->window_ms >= LOG_RL_INTERVAL_MS) {
		rl->window_ms = now;
		rl->count = 0;
	}
	if (rl->count >= (rl->burst ? rl->burst : LOG_RL_BURST)) {
		rl->suppressed++;
		return;
	}
	rl->count++;
	if (rl->suppressed)
		n = snprintf(msg, sizeof(msg), "(%u similar messages suppressed) ", rl->suppressed);
	rl->suppressed = 0;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	log_line(lvl, msg);
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level lvl)
{
	return lvl >= LOG_ERROR && lvl <= LOG_TRACE ? names[lvl] : "none";
}
