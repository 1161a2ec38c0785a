// SPDX-License-Identifier: Apache-2.0
/* Reading a sandbox's logs (see logs.h): exec.log, and runtime.log/kernel.log for "system". */
#define _GNU_SOURCE
#include "sandbox/logs.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/b64.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/parse.h"
#include "util/text.h"

/* A line longer than this is not one msb wrote: it is cut. */
#define LINE_MAX_BYTES ((size_t)1 << 20)

int logs_parse_sources(const char *s, unsigned int *out)
{
	_cleanup_free_ char *copy = strdup(s);
	char *tok, *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "stdout"))
			*out |= LOGS_STDOUT;
		else if (!strcmp(tok, "stderr"))
			*out |= LOGS_STDERR;
		else if (!strcmp(tok, "output"))
			*out |= LOGS_OUTPUT;
		else if (!strcmp(tok, "system"))
			*out |= LOGS_SYSTEM;
		else if (!strcmp(tok, "net"))
			*out |= LOGS_NET;
		else if (!strcmp(tok, "all"))
			*out |= LOGS_ALL;
		else
			return -EINVAL;
	}
	return *s ? 0 : -EINVAL;
}

static void format_utc(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

int logs_parse_time(const char *s, char *out, size_t len)
{
	struct tm tm = { 0 };
	const char *p;
	int64_t ms;
	uint64_t rel;

	if (parse_duration(s, &rel) == 0) {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - (int64_t)rel;
		format_utc(ms, out, len);
		return 0;
	}
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	ms = (int64_t)timegm(&tm) * 1000;
	if (*p == '.') {
		int64_t frac = 0, scale = 1000;

		for (p++; *p >= '0' && *p <= '9'; p++) {
			if (scale > 1) {
				scale /= 10;
				frac += (*p - '0') * scale;
			}
		}
		ms += frac;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int h = (int)strtol(p + 1, NULL, 10), m = (int)strtol(p + 4, NULL, 10);
		int64_t off = ((int64_t)h * 60 + m) * 60000;

		ms -= *p == '+' ? off : -off;
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	format_utc(ms, out, len);
	return 0;
}

static bool wanted(const struct log_query *q, const struct log_entry *e)
{
	if (!(q->sources & e->src))
		return false;
	if (q->since[0] && e->t[0] && strcmp(e->t, q->since) < 0)
		return false;
	if (q->until[0] && e->t[0] && strcmp(e->t, q->until) >= 0)
		return false;
	if (q->grep) {
		/* regexec needs a string: NULs in output cannot match anyway. */
		_cleanup_free_ char *s = strndup((const char *)e->d, e->len);

		if (!s || regexec(q->grep, s, 0, NULL, 0) != 0)
			return false;
	}
	return true;
}

struct entries {
	struct log_entry *v;
	size_t n, cap;
};

static int push(struct entries *es, const struct log_query *q, struct log_entry *e)
{
	if (!wanted(q, e)) {
		free(e->d);
		return 0;
	}
	if (es->n == es->cap) {
		size_t cap = es->cap ? es->cap * 2 : 256;
		struct log_entry *nv = realloc(es->v, cap * sizeof(*nv));

		if (!nv) {
			free(e->d);
			return -ENOMEM;
		}
		es->v = nv;
		es->cap = cap;
	}
	es->v[es->n++] = *e;
	return 0;
}

/* An exec.log line: {"t":..,"s":..,"d":..,"id":N[,"b64":true]}. Malformed lines are skipped. */
static int exec_line(const char *line, size_t n, const struct log_query *q, struct entries *es)
{
	json_t *o = json_loadb(line, n, 0, NULL);
	struct log_entry e = { 0 };
	const char *t, *s, *d;
	size_t dlen;
	int r = 0;

	if (!o)
		return 0;
	t = json_string_value(json_object_get(o, "t"));
	s = json_string_value(json_object_get(o, "s"));
	d = json_string_value(json_object_get(o, "d"));
	dlen = json_string_length(json_object_get(o, "d"));
	e.src = !s		       ? 0
		: !strcmp(s, "stdout") ? LOGS_STDOUT
		: !strcmp(s, "stderr") ? LOGS_STDERR
		: !strcmp(s, "output") ? LOGS_OUTPUT
		: !strcmp(s, "system") ? LOGS_SYSTEM
		: !strcmp(s, "net")    ? LOGS_NET
				       : 0;
	if (!t || !d || !e.src || strlen(t) >= sizeof(e.t)) {
		json_decref(o);
		return 0;
	}
	snprintf(e.t, sizeof(e.t), "%s", t);
	e.id = (uint32_t)json_integer_value(json_object_get(o, "id"));
	if (json_is_true(json_object_get(o, "b64"))) {
		e.d = malloc(dlen + 1);
		if (e.d) {
			long k = b64_decode(d, e.d, dlen + 1);

			e.len = k > 0 ? (size_t)k : 0;
		}
		e.utf8 = false;
	} else {
		e.d = malloc(dlen + 1);
		if (e.d)
			memcpy(e.d, d, dlen);
		e.len = dlen;
		e.utf8 = true;
	}
	json_decref(o);
	if (!e.d)
		return -ENOMEM;
	r = push(es, q, &e);
	return r;
}

/* A runtime.log line: "2026-...Z level message". */
static int runtime_line(const char *line, size_t n, const struct log_query *q, struct entries *es)
{
	struct log_entry e = { .src = LOGS_SYSTEM };
	const char *sp = memchr(line, ' ', n);
	size_t tl = sp ? (size_t)(sp - line) : 0;

	if (!sp || tl >= sizeof(e.t))
		return 0;
	memcpy(e.t, line, tl);
	e.t[tl] = '\0';
	e.len = n - tl - 1;
	e.d = malloc(e.len + 1);
	if (!e.d)
		return -ENOMEM;
	memcpy(e.d, sp + 1, e.len);
	e.utf8 = utf8_prefix(e.d, e.len, &tl) == e.len;
	/* The network's lines (its audit and refusals): "net" when asked for by that name. */
	if (q->sources & LOGS_NET) {
		const char *msg = memchr(e.d, ' ', e.len), *end = (const char *)e.d + e.len;

		while (msg && msg < end && *msg == ' ')
			msg++; /* the level is padded */
		if (msg && ((end - msg >= 4 && !memcmp(msg, "net:", 4)) ||
			    (end - msg >= 8 && !memcmp(msg, "network:", 8))))
			e.src = LOGS_NET;
	}
	return push(es, q, &e);
}

/* A kernel.log line: no time of its own; it gets the file's modification time. */
static int kernel_line(const char *line, size_t n, const struct log_query *q, struct entries *es,
		       uint64_t mtime_ms)
{
	struct log_entry e = { .src = LOGS_SYSTEM };
	size_t tail;

	while (n && (line[n - 1] == '\r'))
		n--;
	if (!n)
		return 0;
	format_utc((int64_t)mtime_ms, e.t, sizeof(e.t));
	e.d = malloc(n + 8);
	if (!e.d)
		return -ENOMEM;
	memcpy(e.d, "kernel: ", 8);
	memcpy(e.d + 8, line, n);
	e.len = n + 8;
	e.utf8 = utf8_prefix(e.d, e.len, &tail) == e.len;
	return push(es, q, &e);
}

enum kind { EXEC, RUNTIME, KERNEL };

static int feed(const char *line, size_t n, enum kind k, const struct log_query *q,
		struct entries *es, uint64_t mtime_ms)
{
	switch (k) {
	case EXEC:
		return exec_line(line, n, q, es);
	case RUNTIME:
		return runtime_line(line, n, q, es);
	default:
		return kernel_line(line, n, q, es, mtime_ms);
	}
}

/* Splits what was read into lines; an incomplete last line waits in @partial. */
static int drain(int fd, struct buf *partial, enum kind k, const struct log_query *q,
		 struct entries *es, uint64_t mtime_ms)
{
	for (;;) {
		uint8_t *p = buf_tail(partial, 65536), *nl;
		ssize_t got = p ? read(fd, p, 65536) : -1;

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return p ? -errno : -ENOMEM;
		buf_commit(partial, (size_t)got);
		while ((nl = memchr(buf_head(partial), '\n', buf_size(partial)))) {
			size_t n = (size_t)(nl - buf_head(partial));
			int r = feed((const char *)buf_head(partial), n, k, q, es, mtime_ms);

			buf_consume(partial, n + 1);
			if (r < 0)
				return r;
		}
		if (buf_size(partial) > LINE_MAX_BYTES) {
			int r = feed((const char *)buf_head(partial), LINE_MAX_BYTES, k, q, es,
				     mtime_ms);

			buf_clear(partial);
			if (r < 0)
				return r;
		}
		if (got == 0)
			return 0;
	}
}

static uint64_t mtime_ms(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return 0;
	return (uint64_t)st.st_mtim.tv_sec * 1000 + (uint64_t)st.st_mtim.tv_nsec / 1000000;
}

/* The rotated files, oldest first, read whole and closed. */
static int read_rotated(const char *base, unsigned int keep, enum kind k, const struct log_query *q,
			struct entries *es)
{
	for (unsigned int i = keep; i >= 1; i--) {
		char path[4300];
		struct buf partial = { 0 };
		int fd, r;

		snprintf(path, sizeof(path), "%s.%u", base, i);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		r = drain(fd, &partial, k, q, es, mtime_ms(fd));
		if (!r && buf_size(&partial))
			r = feed((const char *)buf_head(&partial), buf_size(&partial), k, q, es,
				 mtime_ms(fd));
		buf_free(&partial);
		close(fd);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Reads what @c has that is new, then follows a rotation to the new file. */
static int cursor_read(struct log_cursor *c, enum kind k, const struct log_query *q,
		       struct entries *es)
{
	struct stat st;
	int r;

	if (c->fd < 0) {
		c->fd = open(c->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (c->fd < 0)
			return 0; /* not written yet */
		if (fstat(c->fd, &st) == 0)
			c->ino = st.st_ino;
	}
	r = drain(c->fd, &c->partial, k, q, es, mtime_ms(c->fd));
	if (r < 0)
		return r;
	/* Rotated: what the old file still had is read; go on with the new one. */
	if (stat(c->path, &st) == 0 && st.st_ino != c->ino) {
		if (buf_size(&c->partial))
			feed((const char *)buf_head(&c->partial), buf_size(&c->partial), k, q, es,
			     mtime_ms(c->fd));
		buf_clear(&c->partial);
		close(c->fd);
		c->fd = -1;
		return cursor_read(c, k, q, es);
	}
	return 0;
}

/* Oldest first; entries of equal time keep the order they were read in. */
static int by_time(const void *a, const void *b)
{
	const struct log_entry *x = a, *y = b;
	int c = strcmp(x->t, y->t);

	if (c)
		return c;
	return x < y ? -1 : x > y;
}

static void cursor_init(struct log_cursor *c, const char *dir, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	snprintf(c->path, sizeof(c->path), "%s/logs/%s", dir, name);
}

static int finish(struct entries *es, struct log_entry **out, size_t *n)
{
	/* The sources interleave in time; within each the order is already right. */
	if (es->n > 1)
		qsort(es->v, es->n, sizeof(*es->v), by_time);
	*out = es->v;
	*n = es->n;
	return 0;
}

int logs_read_all(struct logs *l, const char *dir, const struct log_query *q,
		  struct log_entry **out, size_t *n, struct msb_err **err)
{
	struct entries es = { 0 };
	int r;

	memset(l, 0, sizeof(*l));
	cursor_init(&l->exec, dir, "exec.log");
	cursor_init(&l->runtime, dir, "runtime.log");
	cursor_init(&l->kernel, dir, "kernel.log");
	l->system = q->sources & LOGS_SYSTEM;
	l->net = q->sources & LOGS_NET;
	r = read_rotated(l->exec.path, 3, EXEC, q, &es);
	if (!r)
		r = cursor_read(&l->exec, EXEC, q, &es);
	if (!r && (l->system || l->net)) {
		r = read_rotated(l->runtime.path, 2, RUNTIME, q, &es);
		if (!r)
			r = cursor_read(&l->runtime, RUNTIME, q, &es);
	}
	if (!r && l->system) {
		r = read_rotated(l->kernel.path, 1, KERNEL, q, &es);
		if (!r)
			r = cursor_read(&l->kernel, KERNEL, q, &es);
	}
	if (r < 0) {
		logs_entries_free(es.v, es.n);
		return msb_err_sys(err, -r, "%s/logs", dir);
	}
	return finish(&es, out, n);
}

int logs_read_new(struct logs *l, const struct log_query *q, struct log_entry **out, size_t *n)
{
	struct entries es = { 0 };
	int r = cursor_read(&l->exec, EXEC, q, &es);

	if (!r && (l->system || l->net))
		r = cursor_read(&l->runtime, RUNTIME, q, &es);
	if (!r && l->system)
		r = cursor_read(&l->kernel, KERNEL, q, &es);
	if (r < 0) {
		logs_entries_free(es.v, es.n);
		return r;
	}
	return finish(&es, out, n);
}

void logs_close(struct logs *l)
{
	struct log_cursor *cs[] = { &l->exec, &l->runtime, &l->kernel };

	for (size_t i = 0; i < 3; i++) {
		if (cs[i]->fd >= 0)
			close(cs[i]->fd);
		cs[i]->fd = -1;
		buf_free(&cs[i]->partial);
	}
}

void logs_entries_free(struct log_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].d);
	free(v);
}

char *logs_entry_json(const struct log_entry *e, bool raw)
{
	/* Indexed by bit position: LOGS_STDOUT is bit 0, LOGS_SYSTEM bit 3. */
	static const char *const names[] = { "stdout", "stderr", "output", "system", "net" };
	_cleanup_free_ char *enc = NULL;
	struct buf text = { 0 };
	char *line = NULL;
	json_t *o;

	/* One source per entry, a known one: checked before anything is allocated. */
	if (!e->src || e->src & ~LOGS_ALL || e->src & (e->src - 1))
		return NULL;
	if (!e->utf8 && raw) {
		enc = b64_encode(e->d, e->len);
		if (!enc)
			return NULL;
	} else if (utf8_lossy(e->d, e->len, &text) < 0) {
		buf_free(&text);
		return NULL;
	}
	_Static_assert(LOGS_STDOUT == 1u << 0 && LOGS_STDERR == 1u << 1 && LOGS_OUTPUT == 1u << 2 &&
			       LOGS_SYSTEM == 1u << 3 && LOGS_NET == 1u << 4,
		       "names[] follows the LOGS_* bits");
	o = json_pack("{s:s, s:s, s:s%}", "t", e->t, "s", names[__builtin_ctz(e->src)], "d",
		      enc		? enc
		      : buf_size(&text) ? (const char *)buf_head(&text)
					: "",
		      enc ? strlen(enc) : buf_size(&text));
	buf_free(&text);
	if (!o)
		return NULL;
	if (e->id)
		json_object_set_new(o, "id", json_integer(e->id));
	if (enc)
		json_object_set_new(o, "b64", json_true());
	line = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return line;
}
