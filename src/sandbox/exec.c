// SPDX-License-Identifier: Apache-2.0
/*
 * The client side of an exec session: local stdio <-> relay frames.
 *
 * DOC: Theory of Operation
 * One poll loop over the relay connection, signals, the timeout timer,
 * stdin and (while they have queued output) stdout and stderr. Output is
 * acknowledged to the guest only once written here, so a slow or stopped
 * reader (`| less`, Ctrl-Z) holds the guest back through its window instead
 * of growing a buffer. Local writes never lose data silently: EAGAIN (an
 * inherited non-blocking pipe) waits for POLLOUT, EPIPE becomes SIGPIPE for
 * the command as it would for a local one, and any other error (ENOSPC on
 * /dev/full...) ends the session with an error and exit status 125.
 *
 * The user can always get out: the first terminating signal is forwarded
 * to the command; a second one, while the command still runs, kills the
 * session and returns at once. A --timeout kills the command from the
 * guest side and, if the guest does not confirm within TIMEOUT_GRACE_MS,
 * the session is abandoned from here.
 */
#define _GNU_SOURCE
#include "sandbox/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include "util/cleanup.h"
#include "util/conn.h"
#include "util/fs.h"
#include "util/parse.h"
#include "util/text.h"

#define SID		 1
#define READ_BUDGET	 ((size_t)256 << 10)
#define RX_MAX		 ((size_t)PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD + (64u << 10))
#define TIMEOUT_GRACE_MS 5000

/* A local output stream (stdout or stderr) and what is queued for it. */
struct out {
	int fd;
	const char *name;
	struct buf q;
	size_t chunk; /* largest write that cannot block this fd once POLLOUT said so */
	bool broken;  /* the reader went away (EPIPE): drop what follows */
};

struct xs {
	struct conn c;
	struct out out[2];
	uint32_t in_inflight; /* stdin bytes the guest has not acknowledged */
	uint32_t ack_owed;    /* output written here, not yet acknowledged */
	bool in_done;	      /* local stdin finished (EOF sent) */
	bool timed_out;
	bool exited;
	bool abandon; /* give up on the session without waiting for it */
	int status;
	int nsignals;  /* terminating signals received */
	int write_err; /* fatal local write error (errno), 0 if none */
	const char *write_err_on;
	int tfd;
	/* Detach keys: how many of them were just typed, held back meanwhile. */
	const uint8_t *dkeys;
	size_t ndkeys, dmatch;
	bool detached;
	char notice[512]; /* why the sandbox is ending under the session, said at the end */
};

static void send_signal(struct xs *s, int sig)
{
	proto_u32_encode(&s->c.tx, PROTO_SIGNAL, SID, (uint32_t)sig);
}

static void send_size(struct xs *s)
{
	struct winsize ws;

	if (ioctl(1, TIOCGWINSZ, &ws) == 0 || ioctl(0, TIOCGWINSZ, &ws) == 0)
		proto_resize_encode(&s->c.tx, SID, ws.ws_row, ws.ws_col);
}

/* How much one write to @fd may take without blocking once poll() said POLLOUT. */
static size_t write_chunk(int fd)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	if ((fl >= 0 && (fl & O_NONBLOCK)) || (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)))
		return (size_t)64 << 10;
	return PIPE_BUF;
}

static void arm_timer(int tfd, uint64_t ms)
{
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)(ms / 1000),
						.tv_nsec = (long)(ms % 1000) * 1000000 } };

	timerfd_settime(tfd, 0, &its, NULL);
}

/* The command's output cannot be written here at all: it is stopped, and msb fails. */
static void out_failed(struct xs *s, struct out *o, int e)
{
	s->write_err = e;
	s->write_err_on = o->name;
	s->ack_owed += (uint32_t)buf_size(&o->q);
	buf_clear(&o->q);
	o->broken = true;
	send_signal(s, SIGKILL);
	s->in_done = true;
	arm_timer(s->tfd, TIMEOUT_GRACE_MS);
}

/* Writes what poll() said the fd can take; acknowledges what was written. */
static void out_write(struct xs *s, struct out *o)
{
	while (buf_size(&o->q)) {
		size_t n = buf_size(&o->q) < o->chunk ? buf_size(&o->q) : o->chunk;
		ssize_t w = write(o->fd, buf_head(&o->q), n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0 && errno == EPIPE) {
			/* As for a local command: the writer gets SIGPIPE. */
			o->broken = true;
			s->ack_owed += (uint32_t)buf_size(&o->q);
			buf_clear(&o->q);
			send_signal(s, SIGPIPE);
			return;
		}
		if (w < 0) {
			out_failed(s, o, errno);
			return;
		}
		buf_consume(&o->q, (size_t)w);
		s->ack_owed += (uint32_t)w;
		if ((size_t)w < n)
			return;
		/* A blocking fd gets one chunk per POLLOUT. */
		if (o->chunk == PIPE_BUF)
			return;
	}
}

static int deliver(struct xs *s, struct out *o, const uint8_t *p, size_t n, struct msb_err **err)
{
	if (o->fd < 0 && !o->broken)
		out_failed(s, o, EBADF);
	if (o->broken) {
		s->ack_owed += (uint32_t)n;
		return 0;
	}
	if (buf_size(&o->q) + n > 2 * (size_t)PROTO_WINDOW)
		return msb_err_set(err, EPROTO, "sandbox sent output beyond its window");
	if (buf_append(&o->q, p, n) < 0)
		return msb_err_sys(err, ENOMEM, "exec");
	return 0;
}

static int fail_exit(uint32_t kind)
{
	switch (kind) {
	case PROTO_FAIL_NOT_FOUND:
		return 127;
	case PROTO_FAIL_NOT_EXECUTABLE:
		return 126;
	default:
		return 125;
	}
}

/* Return: 1 when the session is over, 0 to go on, -1 with @err on failure. */
static int on_frame(struct xs *s, const struct proto_frame *f, struct msb_err **err)
{
	struct proto_exited x;
	struct proto_failed fl;
	char msg[512];
	uint32_t v;

	/* An error for the whole sandbox: why it is going away. */
	if (f->sid == 0 && f->type == PROTO_ERROR) {
		if (proto_error_decode(f->payload, f->len, msg, sizeof(msg)) < 0)
			snprintf(msg, sizeof(msg), "the sandbox failed");
		return msb_err_set(err, EIO, "%s", msg);
	}
	/* Not an error: why the sandbox is ending (the command's status still comes). */
	if (f->sid == 0 && f->type == PROTO_INFO) {
		json_t *o = json_loadb((const char *)f->payload, f->len, 0, NULL);
		const char *n = json_string_value(json_object_get(o, "notice"));

		if (n)
			text_sanitize(s->notice, sizeof(s->notice), n, strlen(n));
		json_decref(o);
		return 0;
	}
	if (f->sid != SID)
		return msb_err_set(err, EPROTO, "sandbox sent a frame for session %u", f->sid);
	switch (f->type) {
	case PROTO_STARTED:
		return 0;
	case PROTO_STDOUT:
	case PROTO_STDERR:
		return deliver(s, &s->out[f->type == PROTO_STDOUT ? 0 : 1], f->payload, f->len,
			       err);
	case PROTO_ACK:
		if (proto_u32_decode(f->payload, f->len, &v) == 0)
			s->in_inflight -= v < s->in_inflight ? v : s->in_inflight;
		return 0;
	case PROTO_EXITED:
		if (proto_exited_decode(f->payload, f->len, &x) < 0)
			return msb_err_set(err, EPROTO, "malformed exit status from the sandbox");
		s->exited = true;
		s->status = x.code;
		return 1;
	case PROTO_FAILED:
		if (proto_failed_decode(f->payload, f->len, &fl) < 0)
			return msb_err_set(err, EPROTO,
					   "malformed failure report from the sandbox");
		msb_err_set(err, fl.err, "%s", fl.msg);
		msb_err_exit(err, fail_exit(fl.kind));
		return -1;
	case PROTO_ERROR:
		if (proto_error_decode(f->payload, f->len, msg, sizeof(msg)) < 0)
			snprintf(msg, sizeof(msg), "unspecified error");
		/* The supervisor's own sentences name the sandbox already. */
		return msb_err_set(err, EIO, "%s%s", strncmp(msg, "sandbox ", 8) ? "sandbox: " : "",
				   msg);
	default:
		return msb_err_set(err, EPROTO, "unexpected %s frame from the sandbox",
				   proto_type_name(f->type));
	}
}

static int read_frames(struct xs *s, struct msb_err **err)
{
	struct proto_frame f;
	int r;

	if (conn_fill(&s->c, READ_BUDGET) < 0)
		return msb_err_sys(err, -s->c.error, "sandbox connection");
	while ((r = proto_parse(&s->c.rx, &f)) > 0) {
		int done = on_frame(s, &f, err);

		conn_consume(&s->c, PROTO_HDR_SIZE + f.len);
		if (done)
			return done;
	}
	if (r < 0)
		return msb_err_set(err, EPROTO, "malformed frame from the sandbox");
	if (s->c.eof)
		return msb_err_set(err, ECONNRESET,
				   "lost connection to the sandbox before the command finished");
	return 0;
}

static void send_stdin(struct xs *s, const uint8_t *p, size_t n)
{
	if (!n)
		return;
	proto_put_frame(&s->c.tx, PROTO_STDIN, SID, p, n);
	s->in_inflight += (uint32_t)n;
}

/*
 * Passes typed bytes on, watching for the detach keys: a partial match is
 * held back until the next key decides, as docker does.
 */
static void filter_detach(struct xs *s, const uint8_t *p, size_t n)
{
	uint8_t out[PROTO_DATA_CHUNK + sizeof(((struct sbx_exec *)0)->detach_keys)];
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == s->dkeys[s->dmatch]) {
			if (++s->dmatch == s->ndkeys) {
				send_stdin(s, out, o);
				proto_put_frame(&s->c.tx, PROTO_DETACH, SID, NULL, 0);
				s->detached = true;
				return;
			}
			continue;
		}
		/* Not the sequence after all: what was held back is input. */
		memcpy(out + o, s->dkeys, s->dmatch);
		o += s->dmatch;
		s->dmatch = 0;
		if (p[i] == s->dkeys[0]) {
			s->dmatch = 1;
			continue;
		}
		out[o++] = p[i];
	}
	send_stdin(s, out, o);
}

static void read_stdin(struct xs *s)
{
	uint8_t chunk[PROTO_DATA_CHUNK];
	size_t room = PROTO_WINDOW - s->in_inflight;
	ssize_t n = read(0, chunk, room < sizeof(chunk) ? room : sizeof(chunk));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		proto_put_frame(&s->c.tx, PROTO_STDIN, SID, NULL, 0);
		s->in_done = true;
		return;
	}
	if (s->ndkeys)
		filter_detach(s, chunk, (size_t)n);
	else
		send_stdin(s, chunk, (size_t)n);
}

int sbx_parse_detach_keys(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = 0;

	if (!s || !*s)
		s = "ctrl-]";
	while (*s) {
		const char *comma = strchr(s, ',');
		size_t k = comma ? (size_t)(comma - s) : strlen(s);
		uint8_t key;

		if (n >= cap)
			return -EINVAL;
		if (k == 6 && !strncmp(s, "ctrl-", 5)) {
			char c = s[5];

			if (c >= 'a' && c <= 'z')
				key = (uint8_t)(c - 'a' + 1);
			else if (c >= 'A' && c <= 'Z')
				key = (uint8_t)(c - 'A' + 1);
			else if (c == '@' || c == '[' || c == '\\' || c == ']' || c == '^' ||
				 c == '_')
				key = (uint8_t)(c ^ 0x40);
			else
				return -EINVAL;
		} else if (k == 1) {
			key = (uint8_t)s[0];
		} else {
			return -EINVAL;
		}
		out[n++] = key;
		s += k;
		if (*s == ',') {
			s++;
			if (!*s)
				return -EINVAL;
		}
	}
	*len = n;
	return 0;
}

static void on_signals(struct xs *s, int sigfd, bool tty)
{
	struct signalfd_siginfo si;

	while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGWINCH) {
			if (tty)
				send_size(s);
			continue;
		}
		if (s->nsignals++ == 0 && !s->exited) {
			send_signal(s, (int)si.ssi_signo);
			continue;
		}
		/* Asked twice: do not wait for a guest that may never answer. */
		fprintf(stderr, "msb: interrupted again; killing the command\n");
		send_signal(s, SIGKILL);
		s->abandon = true;
		s->status = 128 + (int)si.ssi_signo;
	}
}

static void on_timer(struct xs *s)
{
	uint64_t n;

	(void)!read(s->tfd, &n, sizeof(n));
	if (s->write_err) {
		s->abandon = true; /* the guest did not confirm the kill: stop waiting */
		return;
	}
	if (!s->timed_out) {
		s->timed_out = true;
		send_signal(s, SIGKILL);
		arm_timer(s->tfd, TIMEOUT_GRACE_MS);
		return;
	}
	fprintf(stderr, "msb: the command did not stop within %d s of its timeout; abandoning it\n",
		TIMEOUT_GRACE_MS / 1000);
	s->abandon = true;
	s->status = 128 + SIGKILL;
}

static int setup_fds(const struct sbx_exec *x, int *sigfd, int *tfd, struct msb_err **err)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGWINCH);
	sigprocmask(SIG_BLOCK, &set, NULL);
	*sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (*sigfd < 0)
		return msb_err_sys(err, errno, "signalfd");
	*tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (*tfd < 0)
		return msb_err_sys(err, errno, "timerfd");
	if (x->timeout_ms)
		arm_timer(*tfd, x->timeout_ms);
	return 0;
}

/*
 * A write to the supervisor failed: it has gone (a guest that broke the
 * protocol, a stop). What it sent before it went is the news, not the broken
 * pipe: read that. Return: 1 (the command's exit status came) or -1 with @err.
 */
static int hung_up(struct xs *s, struct msb_err **err)
{
	int e = s->c.error;

	s->c.error = 0;
	buf_clear(&s->c.tx);
	/* Its end is closed: each read gets data or the end, never waits. */
	for (int i = 0; i < 1024; i++) {
		int r = read_frames(s, err);

		if (r)
			return r;
	}
	return msb_err_sys(err, -e, "sandbox connection");
}

static bool out_pending(const struct xs *s)
{
	return buf_size(&s->out[0].q) || buf_size(&s->out[1].q);
}

static int loop(struct xs *s, int sigfd, bool tty, struct msb_err **err)
{
	while (!s->abandon && !s->detached && (!s->exited || out_pending(s))) {
		struct pollfd p[6] = {
			/* Once it exited, only output is left to write: a hang-up is no news. */
			{ .fd = s->exited ? -1 : s->c.fd, .events = POLLIN },
			{ .fd = sigfd, .events = POLLIN },
			{ .fd = s->tfd, .events = POLLIN },
			{ .fd = (!s->in_done && s->in_inflight < PROTO_WINDOW) ? 0 : -1,
			  .events = POLLIN },
			{ .fd = buf_size(&s->out[0].q) ? s->out[0].fd : -1, .events = POLLOUT },
			{ .fd = buf_size(&s->out[1].q) ? s->out[1].fd : -1, .events = POLLOUT },
		};
		int r;

		if (s->ack_owed) {
			proto_u32_encode(&s->c.tx, PROTO_ACK, SID, s->ack_owed);
			s->ack_owed = 0;
		}
		if (conn_flush(&s->c) < 0 && !s->exited) {
			if (hung_up(s, err) < 0)
				return -1;
			continue;
		}
		if (buf_size(&s->c.tx) && !s->exited)
			p[0].events |= POLLOUT;
		if (poll(p, 6, -1) < 0) {
			if (errno == EINTR)
				continue;
			return msb_err_sys(err, errno, "poll");
		}
		if (p[1].revents & POLLIN)
			on_signals(s, sigfd, tty);
		if (p[2].revents & POLLIN)
			on_timer(s);
		/* A closed fd 0 (POLLNVAL) reads as EOF too. */
		if (p[3].revents)
			read_stdin(s);
		for (int i = 0; i < 2; i++) {
			if (p[4 + i].revents & POLLNVAL)
				out_failed(s, &s->out[i], EBADF);
			else if (p[4 + i].revents) {
				out_write(s, &s->out[i]);
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = read_frames(s, err);
			if (r < 0)
				return -1;
		}
	}
	return 0;
}

/* Sets @rl in @out, replacing the entry of the same resource if there is one. */
static int rlimit_put(struct proto_rlimit *out, uint32_t *n, const struct proto_rlimit *rl)
{
	for (uint32_t i = 0; i < *n; i++) {
		if (out[i].resource == rl->resource) {
			out[i] = *rl;
			return 0;
		}
	}
	if (*n >= PROTO_MAX_RLIMITS)
		return -E2BIG;
	out[(*n)++] = *rl;
	return 0;
}

int sbx_exec_rlimits(char *const *spec, const struct proto_rlimit *own, uint32_t nown,
		     struct proto_rlimit *out, uint32_t *nout)
{
	struct proto_rlimit rl;
	int r = 0;

	*nout = 0;
	for (; !r && spec && *spec; spec++)
		r = parse_rlimit(*spec, &rl.resource, &rl.soft, &rl.hard) < 0
			    ? -EINVAL
			    : rlimit_put(out, nout, &rl);
	for (uint32_t i = 0; !r && i < nown; i++)
		r = rlimit_put(out, nout, &own[i]);
	return r;
}

int sbx_exec_run(int fd, const struct sbx_exec *x, int *status, struct msb_err **err)
{
	struct proto_exec req = {
		.flags = (x->tty ? PROTO_EXEC_TTY : 0) | (x->mkcwd ? PROTO_EXEC_MKCWD : 0) |
			 (x->main ? PROTO_EXEC_MAIN : 0),
		.user = (char *)(x->user ? x->user : ""),
		.cwd = (char *)(x->cwd ? x->cwd : ""),
		.argv = x->argv,
		.env = x->env,
		.nrlimits = x->nrlimits,
	};
	struct xs s = { .in_done = !x->forward_stdin,
			.tfd = -1,
			.dkeys = x->detach_keys,
			.ndkeys = x->tty ? x->ndetach_keys : 0 };
	_cleanup_close_ int sigfd = -1;
	struct termios saved;
	bool raw = false;
	int r = 0;

	signal(SIGPIPE, SIG_IGN);
	conn_init(&s.c, fd, (size_t)1 << 20, RX_MAX);
	s.out[0] = (struct out){ .fd = x->stdout_closed ? -1 : 1,
				 .name = "stdout",
				 .chunk = write_chunk(1) };
	s.out[1] = (struct out){ .fd = x->stderr_closed ? -1 : 2,
				 .name = "stderr",
				 .chunk = write_chunk(2) };
	if (setup_fds(x, &sigfd, &s.tfd, err) < 0) {
		r = -1;
		goto out;
	}
	memcpy(req.rlimits, x->rlimits, sizeof(req.rlimits));
	if (x->tty) {
		struct winsize ws;

		if (ioctl(1, TIOCGWINSZ, &ws) == 0 || ioctl(0, TIOCGWINSZ, &ws) == 0) {
			req.rows = ws.ws_row;
			req.cols = ws.ws_col;
		}
		if (isatty(0) && tcgetattr(0, &saved) == 0) {
			struct termios rawt = saved;

			cfmakeraw(&rawt);
			raw = tcsetattr(0, TCSANOW, &rawt) == 0;
		}
	}
	if (proto_exec_encode(&s.c.tx, SID, &req) < 0) {
		r = msb_err_set(err, E2BIG, "command line or environment too large");
		goto out;
	}
	if (s.in_done)
		proto_put_frame(&s.c.tx, PROTO_STDIN, SID, NULL, 0);
	r = loop(&s, sigfd, x->tty, err);
	if (r == 0 && !s.abandon && buf_size(&s.c.tx))
		conn_flush(&s.c); /* last ACKs (or the DETACH); the session is over either way */
	if (r == 0 && s.detached) {
		*status = SBX_EXEC_DETACHED;
		goto out;
	}
	if (r == 0 && s.write_err) {
		r = msb_err_sys(err, s.write_err, "writing the command's %s", s.write_err_on);
	} else if (r == 0) {
		if (s.timed_out && !s.abandon) {
			char d[32];

			format_duration(x->timeout_ms, d, sizeof(d));
			fprintf(stderr, "msb: command timed out after %s and was killed\n", d);
		}
		*status = s.status;
	}
	if (s.notice[0] && !s.detached)
		fprintf(stderr, "msb: %s%s", s.notice, raw ? "\r\n" : "\n");
out:
	if (raw)
		tcsetattr(0, TCSANOW, &saved);
	if (s.tfd >= 0)
		close(s.tfd);
	/* The caller owns @fd. */
	buf_free(&s.c.rx);
	buf_free(&s.c.tx);
	buf_free(&s.out[0].q);
	buf_free(&s.out[1].q);
	return r < 0 ? -1 : 0;
}
