// SPDX-License-Identifier: Apache-2.0
/* Parsers for sizes, durations, rlimits and names typed on the command line. */
#include "util/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

int parse_size(const char *s, uint64_t bare_unit, uint64_t *bytes)
{
	static const struct {
		const char *sfx;
		int shift;
	} units[] = {
		{ "", -1 },    { "b", 0 },   { "k", 10 },   { "kb", 10 },  { "kib", 10 },
		{ "m", 20 },   { "mb", 20 }, { "mib", 20 }, { "g", 30 },   { "gb", 30 },
		{ "gib", 30 }, { "t", 40 },  { "tb", 40 },  { "tib", 40 },
	};
	const char *p = s;
	uint64_t whole = 0, frac_num = 0, frac_den = 1;
	bool digits = false;

	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p++ - '0');

		if (whole > (UINT64_MAX - d) / 10)
			return -ERANGE;
		whole = whole * 10 + d;
		digits = true;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			/* Digits past the 18th cannot change a byte count. */
			if (frac_den < 1000000000000000000ull) {
				frac_num = frac_num * 10 + (uint64_t)(*p - '0');
				frac_den *= 10;
			}
			p++;
			digits = true;
		}
	}
	if (!digits)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t unit, v;

		if (strcasecmp(p, units[i].sfx) != 0)
			continue;
		unit = units[i].shift < 0 ? bare_unit : (uint64_t)1 << units[i].shift;
		/* Integer arithmetic throughout: exact for every representable size. */
		if (unit && whole > UINT64_MAX / unit)
			return -ERANGE;
		v = whole * unit;
		if (frac_num) {
			unsigned __int128 f = (unsigned __int128)frac_num * unit / frac_den;

			if (f > UINT64_MAX - v)
				return -ERANGE;
			v += (uint64_t)f;
		}
		*bytes = v;
		return 0;
	}
	return -EINVAL;
}

/* Return: milliseconds per unit at @p and its length in @len, or 0 if none. */
static uint64_t duration_unit(const char *p, size_t *len)
{
	*len = 1;
	if (p[0] == 'm' && p[1] == 's') {
		*len = 2;
		return 1;
	}
	switch (p[0]) {
	case 's':
		return 1000;
	case 'm':
		return 60000;
	case 'h':
		return 3600000;
	case 'd':
		return 86400000;
	default:
		return 0;
	}
}

int parse_duration(const char *s, uint64_t *ms)
{
	const char *p = s;
	uint64_t total = 0;
	/* A bare number is seconds. */
	bool bare = s[strspn(s, "0123456789")] == '\0';

	if (!*p)
		return -EINVAL;
	while (*p) {
		uint64_t n = 0, unit;
		size_t len = 0;

		if (!(*p >= '0' && *p <= '9'))
			return -EINVAL;
		while (*p >= '0' && *p <= '9') {
			unsigned d = (unsigned)(*p++ - '0');

			if (n > (UINT64_MAX - d) / 10)
				return -ERANGE;
			n = n * 10 + d;
		}
		if (bare)
			unit = 1000;
		else if (!(unit = duration_unit(p, &len)))
			return -EINVAL;
		p += len;
		if (n && unit > UINT64_MAX / n)
			return -ERANGE;
		if (total > UINT64_MAX - n * unit)
			return -ERANGE;
		total += n * unit;
	}
	*ms = total;
	return 0;
}

void format_size(uint64_t bytes, char *buf, unsigned long len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = -1;

	if (!len)
		return;
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

void format_duration(uint64_t ms, char *buf, unsigned long len)
{
	uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, r = ms % 1000;
	int n = 0;

	if (!len)
		return;
	buf[0] = '\0';
	if (h)
		n += snprintf(buf + n, len - (unsigned long)n, "%lluh", (unsigned long long)h);
	if (m && (unsigned long)n < len)
		n += snprintf(buf + n, len - (unsigned long)n, "%llum", (unsigned long long)m);
	if (s && (unsigned long)n < len)
		n += snprintf(buf + n, len - (unsigned long)n, "%llus", (unsigned long long)s);
	if ((r || ms == 0) && (unsigned long)n < len)
		snprintf(buf + n, len - (unsigned long)n, "%llums", (unsigned long long)r);
}

void format_ago(uint64_t secs, char *buf, unsigned long len)
{
	static const struct {
		uint64_t below, per;
		const char *unit;
	} steps[] = {
		{ 60, 1, "second" },
		{ 3600, 60, "minute" },
		{ 86400, 3600, "hour" },
		{ 86400ull * 60, 86400, "day" },
		{ 86400ull * 730, 86400ull * 30, "month" },
		{ UINT64_MAX, 86400ull * 365, "year" },
	};
	size_t i = 0;
	uint64_t n;

	if (!len)
		return;
	while (i + 1 < sizeof(steps) / sizeof(steps[0]) && secs >= steps[i].below)
		i++;
	n = secs / steps[i].per;
	snprintf(buf, len, "%llu %s%s ago", (unsigned long long)n, steps[i].unit,
		 n == 1 ? "" : "s");
}

static int parse_limit_value(const char *s, uint64_t *v)
{
	char *end;

	if (strcmp(s, "unlimited") == 0 || strcmp(s, "infinity") == 0) {
		*v = RLIM_INFINITY;
		return 0;
	}
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return (errno || *end) ? -EINVAL : 0;
}

int parse_rlimit(const char *s, uint32_t *resource, uint64_t *soft, uint64_t *hard)
{
	static const struct {
		const char *name;
		int res;
	} names[] = {
		{ "as", RLIMIT_AS },
		{ "core", RLIMIT_CORE },
		{ "cpu", RLIMIT_CPU },
		{ "data", RLIMIT_DATA },
		{ "fsize", RLIMIT_FSIZE },
		{ "locks", RLIMIT_LOCKS },
		{ "memlock", RLIMIT_MEMLOCK },
		{ "msgqueue", RLIMIT_MSGQUEUE },
		{ "nice", RLIMIT_NICE },
		{ "nofile", RLIMIT_NOFILE },
		{ "nproc", RLIMIT_NPROC },
		{ "rss", RLIMIT_RSS },
		{ "rtprio", RLIMIT_RTPRIO },
		{ "rttime", RLIMIT_RTTIME },
		{ "sigpending", RLIMIT_SIGPENDING },
		{ "stack", RLIMIT_STACK },
	};
	char buf[128], *val, *colon;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", s);
	val = strchr(buf, '=');
	if (!val)
		return -EINVAL;
	*val++ = '\0';
	colon = strchr(val, ':');
	if (colon)
		*colon++ = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(buf, names[i].name) != 0 &&
		    !(strncasecmp(buf, "RLIMIT_", 7) == 0 &&
		      strcasecmp(buf + 7, names[i].name) == 0))
			continue;
		if (parse_limit_value(val, soft) < 0)
			return -EINVAL;
		if (colon) {
			if (parse_limit_value(colon, hard) < 0)
				return -EINVAL;
		} else {
			*hard = *soft;
		}
		if (*soft > *hard)
			return -EINVAL;
		*resource = (uint32_t)names[i].res;
		return 0;
	}
	return -EINVAL;
}

bool env_has_valid_key(const char *s)
{
	const char *eq = strchr(s, '=');

	return eq && eq != s;
}

bool valid_sandbox_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return false;
	return true;
}

int parse_proc_stat(const char *text, unsigned int field, uint64_t *out)
{
	/* The command name (field 2) may hold spaces and ')': field 3 follows the last ')'. */
	const char *p = strrchr(text, ')');
	char num[24];
	size_t n;

	if (!p || field < 3)
		return -EINVAL;
	p++;
	for (unsigned int i = 3; i <= field; i++) {
		if (*p != ' ')
			return -EINVAL;
		p++;
		n = strcspn(p, " \n");
		if (i == field) {
			if (!n || n >= sizeof(num))
				return -EINVAL;
			memcpy(num, p, n);
			num[n] = '\0';
			return parse_u64(num, out) < 0 ? -EINVAL : 0;
		}
		p += n;
	}
	return -EINVAL;
}

int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}
