// SPDX-License-Identifier: Apache-2.0
/* exec.log: every session's output as JSON Lines, rotated and bounded. */
#define _GNU_SOURCE
#include "supervisor/sv.h"

/* --- exec.log ------------------------------------------------------------ */

/* One JSON line: {"t":..., "s":..., "d":..., "id":N} (no id for system lines). */
/* @n bytes of UTF-8 as a JSON string, quotes included. Return: 0 or -ENOMEM. */
static int json_str_put(struct buf *b, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;
	int r = buf_append(b, "\"", 1);

	for (size_t i = 0; !r && i < n; i++) {
		uint8_t c = p[i];
		char esc[6] = { '\\', 0 };
		size_t elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		r = buf_append(b, p + run, i - run);
		run = i + 1;
		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		if (!r)
			r = buf_append(b, esc, elen);
	}
	if (!r)
		r = buf_append(b, p + run, n - run);
	return r ? r : buf_append(b, "\"", 1);
}

/*
 * One exec.log line, built by hand in a buffer kept for the purpose: output
 * arrives in frames as small as a byte, and a line must not cost a JSON tree.
 */
static void exec_log_line(struct sv *sv, const char *stream, uint32_t id, const void *p, size_t n,
			  bool b64)
{
	_cleanup_free_ char *enc = NULL;
	struct buf *b = &sv->exec_line;
	char ts[40], tail[48];
	int r;

	log_timestamp(ts, sizeof(ts));
	if (b64 && !(enc = b64_encode(p, n)))
		return;
	buf_clear(b);
	r = buf_append(b, "{\"t\":\"", 6);
	if (!r)
		r = buf_append(b, ts, strlen(ts));
	if (!r)
		r = buf_append(b, "\",\"s\":\"", 7);
	if (!r)
		r = buf_append(b, stream, strlen(stream));
	if (!r)
		r = buf_append(b, "\",\"d\":", 6);
	if (!r)
		r = json_str_put(b, enc ? (const uint8_t *)enc : p, enc ? strlen(enc) : n);
	snprintf(tail, sizeof(tail), "%s%.0" PRIu32 "%s}\n", id ? ",\"id\":" : "", id,
		 b64 ? ",\"b64\":true" : "");
	if (!r)
		r = buf_append(b, tail, strlen(tail));
	if (!r)
		rotlog_write(&sv->exec_log, buf_head(b), buf_size(b));
	/* A burst of big chunks may have grown it: do not keep that. */
	if (b->cap > (256u << 10))
		buf_free(b);
}

void exec_log_system(struct sv *sv, const char *text)
{
	exec_log_line(sv, "system", 0, text, strlen(text), false);
}

/* Is line @p (@n bytes, the last of a chunk when @last) text? A cut character may end the last. */
static bool line_is_text(const uint8_t *p, size_t n, bool last)
{
	size_t tail = 0;

	return utf8_prefix(p, n, &tail) != (size_t)-1 && (last || !tail);
}

/*
 * Logs a session's output. Text stays text; lines that are not UTF-8 are
 * logged as base64 so that --raw can give the bytes back. A chunk becomes one
 * record per run of lines of one kind (a text line next to a binary one is
 * not swallowed by it, however the frames fell); a multi-byte character cut
 * at a chunk boundary is carried to the next chunk.
 */
void exec_log_output(struct sv *sv, struct route *r, uint16_t type, const uint8_t *p, size_t n)
{
	int k = type == PROTO_STDERR ? 1 : 0;
	const char *stream = r->tty ? "output" : k ? "stderr" : "stdout";
	uint8_t *buf = NULL;
	const uint8_t *d = p;
	size_t len = n, ok, tail;

	if (r->ncarry[k]) {
		buf = malloc(r->ncarry[k] + n);
		if (!buf)
			return;
		memcpy(buf, r->carry[k], r->ncarry[k]);
		memcpy(buf + r->ncarry[k], p, n);
		d = buf;
		len = r->ncarry[k] + n;
		r->ncarry[k] = 0;
	}
	for (size_t start = 0, i; start < len; start = i) {
		int kind = -1; /* of this run: 1 text, 0 binary */

		for (i = start; i < len;) {
			const uint8_t *nl = memchr(d + i, '\n', len - i);
			size_t end = nl ? (size_t)(nl - d) + 1 : len;
			int text = line_is_text(d + i, end - i, !nl);

			if (kind >= 0 && text != kind)
				break;
			kind = text;
			i = end;
		}
		if (!kind) {
			exec_log_line(sv, stream, r->seq, d + start, i - start, true);
			continue;
		}
		ok = utf8_prefix(d + start, i - start, &tail);
		if (ok)
			exec_log_line(sv, stream, r->seq, d + start, ok, false);
		if (i == len) { /* only the last line can end in a cut character */
			memcpy(r->carry[k], d + start + ok, tail);
			r->ncarry[k] = (uint8_t)tail;
		}
	}
	free(buf);
}

/* At a session's end: what was carried is not a character after all. */
void exec_log_flush(struct sv *sv, struct route *r)
{
	for (int k = 0; k < 2; k++) {
		if (r->ncarry[k])
			exec_log_line(sv,
				      r->tty ? "output"
				      : k    ? "stderr"
					     : "stdout",
				      r->seq, r->carry[k], r->ncarry[k], true);
		r->ncarry[k] = 0;
	}
}
