// SPDX-License-Identifier: Apache-2.0
/* Frame parsing and payload codecs; every read goes through a bounds-checked view. */
#include "proto/proto.h"
#include "util/le.h"
#include "util/rd.h"
#include "util/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t rd_u16(struct rd *r)
{
	const uint8_t *p = rd_take(r, 2);

	return p ? get_le16(p) : 0;
}

static uint32_t rd_u32(struct rd *r)
{
	const uint8_t *p = rd_take(r, 4);

	return p ? get_le32(p) : 0;
}

static uint64_t rd_u64(struct rd *r)
{
	const uint8_t *p = rd_take(r, 8);

	return p ? get_le64(p) : 0;
}

/* A string: u32 length then bytes, no NUL inside. */
static const uint8_t *rd_str(struct rd *r, uint32_t *len)
{
	uint32_t n = rd_u32(r);
	const uint8_t *p;

	if (r->bad || n > PROTO_MAX_STR) {
		r->bad = true;
		return NULL;
	}
	p = rd_take(r, n);
	if (p && memchr(p, 0, n)) {
		r->bad = true;
		return NULL;
	}
	*len = n;
	return p;
}

static void rd_copy(struct rd *r, uint8_t *dst, size_t k)
{
	const uint8_t *p = rd_take(r, k);

	if (p)
		memcpy(dst, p, k);
}

static bool rd_done(const struct rd *r)
{
	return !r->bad && r->off == r->n;
}

/* --- frames ----------------------------------------------------------- */

bool proto_type_is_control(uint16_t type)
{
	switch (type) {
	case PROTO_READY:
	case PROTO_SHUTDOWN:
	case PROTO_CONFIG:
	case PROTO_CONFIGURED:
	case PROTO_STATS_REQ:
	case PROTO_STATS:
	case PROTO_INFO:
	case PROTO_KILL:
	case PROTO_QUIESCE:
	case PROTO_QUIESCED:
	case PROTO_CTL:
		return true;
	default:
		return false;
	}
}

int proto_parse(const struct buf *in, struct proto_frame *f)
{
	const uint8_t *h = buf_head(in);
	size_t have = buf_size(in);
	uint32_t len;

	if (have < PROTO_HDR_SIZE)
		return 0;
	len = get_le32(h);
	if (len > PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	f->len = len;
	f->sid = get_le32(h + 4);
	f->type = get_le16(h + 8);
	f->flags = get_le16(h + 10);
	if (f->type == 0 || f->type >= PROTO_TYPE_MAX || f->flags != 0)
		return -EPROTO;
	/* ERROR may be about the whole link (0) or one session. */
	if (f->type != PROTO_ERROR && proto_type_is_control(f->type) != (f->sid == 0))
		return -EPROTO;
	if (have - PROTO_HDR_SIZE < len)
		return 0;
	f->payload = h + PROTO_HDR_SIZE;
	return 1;
}

/* Start a frame whose payload length is patched in by frame_end(). */
static int frame_begin(struct buf *out, uint16_t type, uint32_t sid, size_t *start)
{
	uint8_t *h = buf_tail(out, PROTO_HDR_SIZE);

	if (!h)
		return -ENOMEM;
	put_le32(h, 0);
	put_le32(h + 4, sid);
	put_le16(h + 8, type);
	put_le16(h + 10, 0);
	*start = buf_size(out);
	buf_commit(out, PROTO_HDR_SIZE);
	return 0;
}

static int frame_end(struct buf *out, size_t start, int r)
{
	size_t len;

	if (r < 0) {
		out->len = out->off + start; /* drop the partial frame */
		return r;
	}
	len = buf_size(out) - start - PROTO_HDR_SIZE;
	if (len > PROTO_MAX_PAYLOAD) {
		out->len = out->off + start;
		return -EMSGSIZE;
	}
	put_le32(buf_head(out) + start, (uint32_t)len);
	return 0;
}

int proto_put_frame(struct buf *out, uint16_t type, uint32_t sid, const void *payload, size_t len)
{
	size_t start;
	int r;

	if (len > PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	r = frame_begin(out, type, sid, &start);
	if (r < 0)
		return r;
	return frame_end(out, start, buf_append(out, payload, len));
}

static int w16(struct buf *b, uint16_t v)
{
	uint8_t p[2];

	put_le16(p, v);
	return buf_append(b, p, 2);
}

static int w32(struct buf *b, uint32_t v)
{
	uint8_t p[4];

	put_le32(p, v);
	return buf_append(b, p, 4);
}

static int w64(struct buf *b, uint64_t v)
{
	uint8_t p[8];

	put_le64(p, v);
	return buf_append(b, p, 8);
}

static int wstr(struct buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	int r;

	if (n > PROTO_MAX_STR)
		return -E2BIG;
	r = w32(b, (uint32_t)n);
	return r < 0 ? r : buf_append(b, s, n);
}

static int wstrv(struct buf *b, char *const *v)
{
	size_t n = 0;
	int r;

	while (v && v[n])
		n++;
	if (n > PROTO_MAX_STRV)
		return -E2BIG;
	r = w32(b, (uint32_t)n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = wstr(b, v[i]);
	return r;
}

/* --- READY ------------------------------------------------------------ */

int proto_ready_encode(struct buf *out, const struct proto_ready *rd)
{
	size_t start;
	int r = frame_begin(out, PROTO_READY, 0, &start);

	if (r < 0)
		return r;
	r = w32(out, rd->version);
	if (!r)
		r = w64(out, rd->kernel_ns);
	if (!r)
		r = w64(out, rd->ready_ns);
	return frame_end(out, start, r);
}

int proto_ready_decode(const uint8_t *p, size_t n, struct proto_ready *out)
{
	struct rd r = { .p = p, .n = n };

	out->version = rd_u32(&r);
	out->kernel_ns = rd_u64(&r);
	out->ready_ns = rd_u64(&r);
	/* Later versions may append fields: accept a longer payload. */
	return r.bad ? -EBADMSG : 0;
}

/* --- EXEC ------------------------------------------------------------- */

int proto_exec_encode(struct buf *out, uint32_t sid, const struct proto_exec *e)
{
	size_t start;
	int r;

	if (!e->argv || !e->argv[0] || e->nrlimits > PROTO_MAX_RLIMITS ||
	    (e->flags & ~(PROTO_EXEC_FLAGS_ALL | PROTO_EXEC_MAIN)))
		return -EINVAL;
	r = frame_begin(out, PROTO_EXEC, sid, &start);
	if (r < 0)
		return r;
	r = w32(out, e->flags);
	if (!r)
		r = w16(out, e->rows);
	if (!r)
		r = w16(out, e->cols);
	if (!r)
		r = wstr(out, e->user);
	if (!r)
		r = wstr(out, e->cwd);
	if (!r)
		r = wstrv(out, e->argv);
	if (!r)
		r = wstrv(out, e->env);
	if (!r)
		r = w32(out, e->nrlimits);
	for (uint32_t i = 0; !r && i < e->nrlimits; i++) {
		r = w32(out, e->rlimits[i].resource);
		if (!r)
			r = w64(out, e->rlimits[i].soft);
		if (!r)
			r = w64(out, e->rlimits[i].hard);
	}
	return frame_end(out, start, r);
}

/*
 * Walks a string vector; with @dst set, copies the strings into @chars and
 * fills @dst. Return: number of entries, or -1 when malformed.
 */
static long rd_strv(struct rd *r, char **dst, char **chars)
{
	uint32_t n = rd_u32(r);

	if (r->bad || n > PROTO_MAX_STRV) {
		r->bad = true;
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t len;
		const uint8_t *s = rd_str(r, &len);

		if (!s)
			return -1;
		if (dst) {
			memcpy(*chars, s, len);
			(*chars)[len] = '\0';
			dst[i] = *chars;
			*chars += len + 1;
		}
	}
	if (dst)
		dst[n] = NULL;
	return n;
}

int proto_exec_decode(const uint8_t *p, size_t n, struct proto_exec *e)
{
	struct rd r = { .p = p, .n = n };
	uint32_t ulen, clen;
	const uint8_t *user, *cwd;
	long argc, envc;
	size_t body;
	char *chars;
	char **ptrs;

	memset(e, 0, sizeof(*e));
	/* Pass 1: validate and count. */
	e->flags = rd_u32(&r);
	e->rows = rd_u16(&r);
	e->cols = rd_u16(&r);
	user = rd_str(&r, &ulen);
	cwd = rd_str(&r, &clen);
	argc = rd_strv(&r, NULL, NULL);
	envc = rd_strv(&r, NULL, NULL);
	e->nrlimits = rd_u32(&r);
	if (r.bad || !user || !cwd || argc < 0 || envc < 0)
		return -EBADMSG;
	if (argc == 0 || (e->flags & ~PROTO_EXEC_FLAGS_ALL))
		return -EBADMSG;
	if (e->nrlimits > PROTO_MAX_RLIMITS)
		return -E2BIG;
	for (uint32_t i = 0; i < e->nrlimits; i++) {
		e->rlimits[i].resource = rd_u32(&r);
		e->rlimits[i].soft = rd_u64(&r);
		e->rlimits[i].hard = rd_u64(&r);
	}
	if (!rd_done(&r))
		return -EBADMSG;

	/* Pass 2: one allocation holds the pointer arrays and the strings. */
	body = n + 2; /* every string's bytes plus NULs fit in n + 2 */
	ptrs = malloc(sizeof(char *) * ((size_t)argc + (size_t)envc + 2) + body);
	if (!ptrs)
		return -ENOMEM;
	chars = (char *)(ptrs + argc + envc + 2);
	e->storage_ = ptrs;
	e->argv = ptrs;
	e->env = ptrs + argc + 1;

	memcpy(chars, user, ulen);
	chars[ulen] = '\0';
	e->user = chars;
	chars += ulen + 1;
	memcpy(chars, cwd, clen);
	chars[clen] = '\0';
	e->cwd = chars;
	chars += clen + 1;

	r = (struct rd){ .p = p, .n = n, .off = 4 + 2 + 2 + 4 + ulen + 4 + clen };
	rd_strv(&r, e->argv, &chars);
	rd_strv(&r, e->env, &chars);
	for (char **kv = e->env; *kv; kv++) {
		/* The environment is KEY=VALUE with a non-empty KEY, nothing else. */
		if ((*kv)[0] == '=' || !strchr(*kv, '=')) {
			proto_exec_free(e);
			return -EBADMSG;
		}
	}
	return 0;
}

void proto_exec_free(struct proto_exec *e)
{
	free(e->storage_);
	memset(e, 0, sizeof(*e));
}

/* --- small payloads --------------------------------------------------- */

int proto_u32_encode(struct buf *out, uint16_t type, uint32_t sid, uint32_t v)
{
	uint8_t p[4];

	put_le32(p, v);
	return proto_put_frame(out, type, sid, p, sizeof(p));
}

int proto_u32_decode(const uint8_t *p, size_t n, uint32_t *v)
{
	if (n != 4)
		return -EBADMSG;
	*v = get_le32(p);
	return 0;
}

int proto_resize_encode(struct buf *out, uint32_t sid, uint16_t rows, uint16_t cols)
{
	uint8_t p[4];

	put_le16(p, rows);
	put_le16(p + 2, cols);
	return proto_put_frame(out, PROTO_RESIZE, sid, p, sizeof(p));
}

int proto_resize_decode(const uint8_t *p, size_t n, uint16_t *rows, uint16_t *cols)
{
	if (n != 4)
		return -EBADMSG;
	*rows = get_le16(p);
	*cols = get_le16(p + 2);
	return 0;
}

int proto_exited_encode(struct buf *out, uint32_t sid, const struct proto_exited *x)
{
	uint8_t p[8];

	put_le32(p, (uint32_t)x->code);
	put_le32(p + 4, x->signal);
	return proto_put_frame(out, PROTO_EXITED, sid, p, sizeof(p));
}

int proto_exited_decode(const uint8_t *p, size_t n, struct proto_exited *x)
{
	if (n != 8)
		return -EBADMSG;
	x->code = (int32_t)get_le32(p);
	x->signal = get_le32(p + 4);
	if (x->code < 0 || x->code > 255 || x->signal > 64)
		return -EBADMSG;
	return 0;
}

int proto_failed_encode(struct buf *out, uint32_t sid, uint32_t kind, int32_t err, const char *msg)
{
	size_t start;
	int r = frame_begin(out, PROTO_FAILED, sid, &start);

	if (r < 0)
		return r;
	r = w32(out, kind);
	if (!r)
		r = w32(out, (uint32_t)err);
	if (!r)
		r = wstr(out, msg);
	return frame_end(out, start, r);
}

/* Copies a string the peer sent so that it prints safely on a terminal. */
static void copy_printable(char *dst, size_t cap, const uint8_t *s, size_t len)
{
	text_sanitize(dst, cap, s, len);
}

int proto_failed_decode(const uint8_t *p, size_t n, struct proto_failed *f)
{
	struct rd r = { .p = p, .n = n };
	const uint8_t *s;
	uint32_t len;

	f->kind = rd_u32(&r);
	f->err = (int32_t)rd_u32(&r);
	s = rd_str(&r, &len);
	if (!s || !rd_done(&r) || f->kind == 0 || f->kind >= PROTO_FAIL_MAX)
		return -EBADMSG;
	copy_printable(f->msg, sizeof(f->msg), s, len);
	return 0;
}

int proto_error_encode(struct buf *out, uint32_t sid, const char *msg)
{
	size_t start;
	int r = frame_begin(out, PROTO_ERROR, sid, &start);

	if (r < 0)
		return r;
	return frame_end(out, start, wstr(out, msg));
}

int proto_error_decode(const uint8_t *p, size_t n, char *msg, size_t cap)
{
	struct rd r = { .p = p, .n = n };
	const uint8_t *s;
	uint32_t len;

	s = rd_str(&r, &len);
	if (!s || !rd_done(&r))
		return -EBADMSG;
	copy_printable(msg, cap, s, len);
	return 0;
}

/* --- CONFIG ---------------------------------------------------------- */

/* Bytes that may hold NULs: u32 length then bytes. */
static int wblob(struct buf *b, const void *p, uint32_t n)
{
	int r = w32(b, n);

	return r ? r : buf_append(b, p, n);
}

static const uint8_t *rd_blob(struct rd *r, uint32_t *len)
{
	uint32_t n = rd_u32(r);

	if (r->bad || n > PROTO_MAX_STR) {
		r->bad = true;
		return NULL;
	}
	*len = n;
	return rd_take(r, n);
}

/* A decoded string, NUL-terminated and owned. */
static char *rd_strdup(struct rd *r)
{
	uint32_t len;
	const uint8_t *s = rd_str(r, &len);
	char *out;

	if (!s)
		return NULL;
	out = malloc(len + 1);
	if (!out) {
		r->bad = true;
		return NULL;
	}
	memcpy(out, s, len);
	out[len] = '\0';
	return out;
}

static char **rd_strv_dup(struct rd *r)
{
	uint32_t n = rd_u32(r);
	char **v;

	if (r->bad || n > PROTO_MAX_STRV) {
		r->bad = true;
		return NULL;
	}
	v = calloc(n + 1, sizeof(char *));
	if (!v) {
		r->bad = true;
		return NULL;
	}
	for (uint32_t i = 0; i < n && !r->bad; i++)
		v[i] = rd_strdup(r);
	return v;
}

static void strv_release(char **v)
{
	for (char **s = v; s && *s; s++)
		free(*s);
	free(v);
}

int proto_config_encode(struct buf *out, const struct proto_config *c)
{
	char *none[] = { NULL };
	size_t start;
	int r;

	if ((c->flags & ~PROTO_CONFIG_FLAGS_ALL) || c->ntmpfs > PROTO_MAX_TMPFS ||
	    c->nscripts > PROTO_MAX_SCRIPTS || c->nfiles > PROTO_MAX_FILES ||
	    c->nmounts > PROTO_MAX_MOUNTS)
		return -EINVAL;
	for (uint32_t i = 0; i < c->nmounts; i++)
		if (!c->mounts[i].path || (c->mounts[i].flags & ~PROTO_MOUNT_FLAGS_ALL))
			return -EINVAL;
	for (uint32_t i = 0; i < c->nfiles; i++)
		if (c->files[i].len > PROTO_MAX_FILE || (c->files[i].flags & ~PROTO_FILE_FLAGS_ALL))
			return -EINVAL;
	r = frame_begin(out, PROTO_CONFIG, 0, &start);
	if (r < 0)
		return r;
	r = w32(out, c->flags);
	if (!r)
		r = wstr(out, c->hostname ? c->hostname : "");
	if (!r)
		r = w32(out, c->ntmpfs);
	for (uint32_t i = 0; !r && i < c->ntmpfs; i++) {
		r = wstr(out, c->tmpfs[i].path);
		if (!r)
			r = w64(out, c->tmpfs[i].size);
	}
	if (!r)
		r = w32(out, c->nscripts);
	for (uint32_t i = 0; !r && i < c->nscripts; i++) {
		r = wstr(out, c->scripts[i].name);
		if (!r)
			r = wblob(out, c->scripts[i].body, c->scripts[i].len);
	}
	if (!r)
		r = wstr(out, c->init ? c->init : "");
	if (!r)
		r = wstrv(out, c->init_argv ? c->init_argv : none);
	if (!r)
		r = wstrv(out, c->init_env ? c->init_env : none);
	if (!r)
		r = buf_append(out, c->net.mac, 6);
	if (!r)
		r = buf_append(out, c->net.addr4, 4);
	if (!r)
		r = buf_append(out, c->net.gw4, 4);
	if (!r)
		r = w32(out, c->net.prefix4);
	if (!r)
		r = buf_append(out, c->net.addr6, 16);
	if (!r)
		r = buf_append(out, c->net.gw6, 16);
	if (!r)
		r = w32(out, c->net.prefix6);
	if (!r)
		r = w32(out, c->net.mtu);
	if (!r)
		r = w32(out, c->nfiles);
	for (uint32_t i = 0; !r && i < c->nfiles; i++) {
		r = wstr(out, c->files[i].path ? c->files[i].path : "");
		if (!r)
			r = w32(out, c->files[i].mode);
		if (!r)
			r = w32(out, c->files[i].flags);
		if (!r)
			r = wblob(out, c->files[i].data, c->files[i].len);
	}
	if (!r)
		r = w32(out, c->nmounts);
	for (uint32_t i = 0; !r && i < c->nmounts; i++) {
		r = wstr(out, c->mounts[i].path);
		if (!r)
			r = w32(out, c->mounts[i].index);
		if (!r)
			r = w32(out, c->mounts[i].flags);
	}
	if (!r)
		r = buf_append(out, c->seed, sizeof(c->seed));
	if (!r)
		r = w64(out, c->wall_ns);
	if (!r)
		r = buf_append(out, c->resync, sizeof(c->resync));
	return frame_end(out, start, r);
}

int proto_config_decode(const uint8_t *p, size_t n, struct proto_config *c)
{
	struct rd r = { .p = p, .n = n };

	memset(c, 0, sizeof(*c));
	c->flags = rd_u32(&r);
	c->hostname = rd_strdup(&r);
	c->ntmpfs = rd_u32(&r);
	if (!r.bad && (c->ntmpfs > PROTO_MAX_TMPFS || (c->flags & ~PROTO_CONFIG_FLAGS_ALL))) {
		c->ntmpfs = 0;
		proto_config_free(c);
		return -E2BIG;
	}
	for (uint32_t i = 0; i < c->ntmpfs && !r.bad; i++) {
		c->tmpfs[i].path = rd_strdup(&r);
		c->tmpfs[i].size = rd_u64(&r);
	}
	c->nscripts = r.bad ? 0 : rd_u32(&r);
	if (!r.bad && c->nscripts > PROTO_MAX_SCRIPTS) {
		c->nscripts = 0;
		proto_config_free(c);
		return -E2BIG;
	}
	for (uint32_t i = 0; i < c->nscripts && !r.bad; i++) {
		const uint8_t *b;

		c->scripts[i].name = rd_strdup(&r);
		b = rd_blob(&r, &c->scripts[i].len);
		if (b) {
			c->scripts[i].body = malloc(c->scripts[i].len ? c->scripts[i].len : 1);
			if (c->scripts[i].body)
				memcpy(c->scripts[i].body, b, c->scripts[i].len);
			else
				r.bad = true;
		}
	}
	c->init = r.bad ? NULL : rd_strdup(&r);
	c->init_argv = r.bad ? NULL : rd_strv_dup(&r);
	c->init_env = r.bad ? NULL : rd_strv_dup(&r);
	rd_copy(&r, c->net.mac, 6);
	rd_copy(&r, c->net.addr4, 4);
	rd_copy(&r, c->net.gw4, 4);
	c->net.prefix4 = rd_u32(&r);
	rd_copy(&r, c->net.addr6, 16);
	rd_copy(&r, c->net.gw6, 16);
	c->net.prefix6 = rd_u32(&r);
	c->net.mtu = rd_u32(&r);
	if (!r.bad && (c->net.prefix4 > 32 || c->net.prefix6 > 128))
		r.bad = true;
	c->nfiles = r.bad ? 0 : rd_u32(&r);
	if (!r.bad && c->nfiles > PROTO_MAX_FILES) {
		c->nfiles = 0;
		proto_config_free(c);
		return -E2BIG;
	}
	for (uint32_t i = 0; i < c->nfiles && !r.bad; i++) {
		struct proto_file *f = &c->files[i];
		const uint8_t *b;

		f->path = rd_strdup(&r);
		f->mode = rd_u32(&r);
		f->flags = rd_u32(&r);
		f->len = rd_u32(&r);
		if (!r.bad &&
		    (f->len > PROTO_MAX_FILE || (f->flags & ~PROTO_FILE_FLAGS_ALL) || !f->path ||
		     (f->path[0] != '/' && !(f->flags & PROTO_FILE_CA_BUNDLE)))) {
			r.bad = true;
			break;
		}
		b = rd_take(&r, f->len);
		if (b) {
			f->data = malloc(f->len ? f->len : 1);
			if (f->data)
				memcpy(f->data, b, f->len);
			else
				r.bad = true;
		}
	}
	c->nmounts = r.bad ? 0 : rd_u32(&r);
	if (!r.bad && c->nmounts > PROTO_MAX_MOUNTS) {
		c->nmounts = 0;
		proto_config_free(c);
		return -E2BIG;
	}
	for (uint32_t i = 0; i < c->nmounts && !r.bad; i++) {
		struct proto_mount *m = &c->mounts[i];

		m->path = rd_strdup(&r);
		m->index = rd_u32(&r);
		m->flags = rd_u32(&r);
		if (!r.bad && (!m->path || m->path[0] != '/' ||
			       (m->flags & ~PROTO_MOUNT_FLAGS_ALL) || m->index > PROTO_MAX_MOUNTS))
			r.bad = true;
	}
	rd_copy(&r, c->seed, sizeof(c->seed));
	c->wall_ns = rd_u64(&r);
	rd_copy(&r, c->resync, sizeof(c->resync));
	/* Later versions may append fields. */
	if (r.bad) {
		proto_config_free(c);
		return -EBADMSG;
	}
	for (char **kv = c->init_env; *kv; kv++) {
		if ((*kv)[0] == '=' || !strchr(*kv, '=')) {
			proto_config_free(c);
			return -EBADMSG;
		}
	}
	return 0;
}

void proto_config_free(struct proto_config *c)
{
	free(c->hostname);
	for (uint32_t i = 0; i < c->ntmpfs && i < PROTO_MAX_TMPFS; i++)
		free(c->tmpfs[i].path);
	for (uint32_t i = 0; i < c->nscripts && i < PROTO_MAX_SCRIPTS; i++) {
		free(c->scripts[i].name);
		free(c->scripts[i].body);
	}
	free(c->init);
	strv_release(c->init_argv);
	strv_release(c->init_env);
	for (uint32_t i = 0; i < c->nfiles && i < PROTO_MAX_FILES; i++) {
		free(c->files[i].path);
		free(c->files[i].data);
	}
	for (uint32_t i = 0; i < c->nmounts && i < PROTO_MAX_MOUNTS; i++)
		free(c->mounts[i].path);
	memset(c, 0, sizeof(*c));
}

/* --- STATS, u64 -------------------------------------------------------- */

int proto_stats_encode(struct buf *out, const struct proto_stats *st)
{
	size_t start;
	int r = frame_begin(out, PROTO_STATS, 0, &start);

	if (r < 0)
		return r;
	r = w64(out, st->mem_total);
	if (!r)
		r = w64(out, st->mem_available);
	if (!r)
		r = w32(out, st->procs);
	if (!r)
		r = w64(out, st->uptime_ns);
	return frame_end(out, start, r);
}

int proto_stats_decode(const uint8_t *p, size_t n, struct proto_stats *st)
{
	struct rd r = { .p = p, .n = n };

	st->mem_total = rd_u64(&r);
	st->mem_available = rd_u64(&r);
	st->procs = rd_u32(&r);
	st->uptime_ns = rd_u64(&r);
	return r.bad ? -EBADMSG : 0;
}

int proto_u64_encode(struct buf *out, uint16_t type, uint32_t sid, uint64_t v)
{
	uint8_t p[8];

	put_le64(p, v);
	return proto_put_frame(out, type, sid, p, sizeof(p));
}

int proto_u64_decode(const uint8_t *p, size_t n, uint64_t *v)
{
	if (n != 8)
		return -EBADMSG;
	*v = get_le64(p);
	return 0;
}

const char *proto_type_name(uint16_t type)
{
	static const char *const names[PROTO_TYPE_MAX] = {
		[PROTO_READY] = "READY",
		[PROTO_EXEC] = "EXEC",
		[PROTO_STARTED] = "STARTED",
		[PROTO_STDIN] = "STDIN",
		[PROTO_STDOUT] = "STDOUT",
		[PROTO_STDERR] = "STDERR",
		[PROTO_ACK] = "ACK",
		[PROTO_RESIZE] = "RESIZE",
		[PROTO_SIGNAL] = "SIGNAL",
		[PROTO_EXITED] = "EXITED",
		[PROTO_FAILED] = "FAILED",
		[PROTO_SHUTDOWN] = "SHUTDOWN",
		[PROTO_ERROR] = "ERROR",
		[PROTO_CONFIG] = "CONFIG",
		[PROTO_CONFIGURED] = "CONFIGURED",
		[PROTO_STATS_REQ] = "STATS_REQ",
		[PROTO_STATS] = "STATS",
		[PROTO_INFO] = "INFO",
		[PROTO_KILL] = "KILL",
		[PROTO_QUIESCE] = "QUIESCE",
		[PROTO_QUIESCED] = "QUIESCED",
		[PROTO_CTL] = "CTL",
		[PROTO_DETACH] = "DETACH",
	};

	if (type >= PROTO_TYPE_MAX || !names[type])
		return "UNKNOWN";
	return names[type];
}
