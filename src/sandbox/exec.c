// SPDX-License-Identifier: Apache-2.0
/* The client side of an exec session: local stdio <-> relay frames. */
#define _GNU_SOURCE
#include "sandbox/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/parse.h"

#define SID 1
/* How much one read from the relay socket takes at most. */
#define READ_CHUNK ((size_t)64 * 1024)

struct xs {
	int fd;
	struct buf rx, tx;
	uint32_t in_inflight; /* stdin bytes the guest has not acknowledged */
	bool in_done;	      /* local stdin finished (EOF sent) */
	bool out_broken;      /* local stdout/stderr reader went away */
	bool timed_out;
	bool exited;
	int status;
};

static int tx_flush(struct xs *s)
{
	while (buf_size(&s->tx)) {
		ssize_t n = send(s->fd, buf_head(&s->tx), buf_size(&s->tx), MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		buf_consume(&s->tx, (size_t)n);
	}
	return 0;
}

static void send_signal(struct xs *s, int sig)
{
	proto_u32_encode(&s->tx, PROTO_SIGNAL, SID, (uint32_t)sig);
}

static void send_size(struct xs *s)
{
	struct winsize ws;

	if (ioctl(1, TIOCGWINSZ, &ws) == 0 || ioctl(0, TIOCGWINSZ, &ws) == 0)
		proto_resize_encode(&s->tx, SID, ws.ws_row, ws.ws_col);
}

/* Writes guest output locally; a vanished reader becomes SIGPIPE in the guest. */
static void deliver(struct xs *s, int fd, const uint8_t *p, size_t n)
{
	if (!s->out_broken && write_all(fd, p, n) == -EPIPE) {
		s->out_broken = true;
		send_signal(s, SIGPIPE);
	}
	proto_u32_encode(&s->tx, PROTO_ACK, SID, (uint32_t)n);
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

	if (f->sid != SID)
		return msb_err_set(err, EPROTO, "sandbox sent a frame for session %u", f->sid);
	switch (f->type) {
	case PROTO_STARTED:
		return 0;
	case PROTO_STDOUT:
	case PROTO_STDERR:
		deliver(s, f->type == PROTO_STDOUT ? 1 : 2, f->payload, f->len);
		return 0;
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
		return msb_err_set(err, EIO, "sandbox: %s", msg);
	default:
		return msb_err_set(err, EPROTO, "unexpected %s frame from the sandbox",
				   proto_type_name(f->type));
	}
}

static int read_frames(struct xs *s, struct msb_err **err)
{
	uint8_t *p = buf_tail(&s->rx, READ_CHUNK);
	struct proto_frame f;
	ssize_t n;
	int r;

	if (!p)
		return msb_err_sys(err, ENOMEM, "exec");
	n = recv(s->fd, p, READ_CHUNK, MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0)
		return msb_err_set(err, ECONNRESET,
				   "lost connection to the sandbox before the command finished");
	buf_commit(&s->rx, (size_t)n);
	while ((r = proto_parse(&s->rx, &f)) > 0) {
		int done = on_frame(s, &f, err);

		buf_consume(&s->rx, PROTO_HDR_SIZE + f.len);
		if (done)
			return done;
	}
	if (r < 0)
		return msb_err_set(err, EPROTO, "malformed frame from the sandbox");
	return 0;
}

static void read_stdin(struct xs *s)
{
	uint8_t chunk[PROTO_DATA_CHUNK];
	size_t room = PROTO_WINDOW - s->in_inflight;
	ssize_t n = read(0, chunk, room < sizeof(chunk) ? room : sizeof(chunk));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		proto_put_frame(&s->tx, PROTO_STDIN, SID, NULL, 0);
		s->in_done = true;
		return;
	}
	proto_put_frame(&s->tx, PROTO_STDIN, SID, chunk, (size_t)n);
	s->in_inflight += (uint32_t)n;
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
	if (x->timeout_ms) {
		struct itimerspec its = { .it_value = { .tv_sec = (time_t)(x->timeout_ms / 1000),
							.tv_nsec = (long)(x->timeout_ms % 1000) *
								   1000000 } };

		*tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (*tfd < 0 || timerfd_settime(*tfd, 0, &its, NULL) < 0)
			return msb_err_sys(err, errno, "timerfd");
	}
	return 0;
}

int sbx_exec_run(int fd, const struct sbx_exec *x, int *status, struct msb_err **err)
{
	struct proto_exec req = {
		.flags = (x->tty ? PROTO_EXEC_TTY : 0) | (x->mkcwd ? PROTO_EXEC_MKCWD : 0),
		.user = (char *)(x->user ? x->user : ""),
		.cwd = (char *)(x->cwd ? x->cwd : ""),
		.argv = x->argv,
		.env = x->env,
		.nrlimits = x->nrlimits,
	};
	struct xs s = { .fd = fd, .in_done = !x->forward_stdin };
	_cleanup_close_ int sigfd = -1, tfd = -1;
	struct termios saved;
	bool raw = false;
	int r = 0;

	signal(SIGPIPE, SIG_IGN);
	if (setup_fds(x, &sigfd, &tfd, err) < 0)
		return -1;
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
	if (proto_exec_encode(&s.tx, SID, &req) < 0) {
		r = msb_err_set(err, E2BIG, "command line or environment too large");
		goto out;
	}
	if (s.in_done)
		proto_put_frame(&s.tx, PROTO_STDIN, SID, NULL, 0);

	while (!s.exited) {
		struct pollfd p[4] = {
			{ .fd = fd, .events = POLLIN | (buf_size(&s.tx) ? POLLOUT : 0) },
			{ .fd = sigfd, .events = POLLIN },
			{ .fd = tfd, .events = POLLIN },
			{ .fd = (!s.in_done && s.in_inflight < PROTO_WINDOW) ? 0 : -1,
			  .events = POLLIN },
		};

		if ((r = tx_flush(&s)) < 0) {
			r = msb_err_sys(err, -r, "sandbox connection");
			goto out;
		}
		p[0].events = POLLIN | (buf_size(&s.tx) ? POLLOUT : 0);
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = msb_err_sys(err, errno, "poll");
			goto out;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGWINCH) {
					if (x->tty)
						send_size(&s);
				} else {
					send_signal(&s, (int)si.ssi_signo);
				}
			}
		}
		if (p[2].revents & POLLIN) {
			uint64_t n;

			(void)!read(tfd, &n, sizeof(n));
			s.timed_out = true;
			send_signal(&s, SIGKILL);
		}
		/* A closed fd 0 (POLLNVAL) reads as EOF too. */
		if (p[3].revents)
			read_stdin(&s);
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = read_frames(&s, err);
			if (r < 0)
				goto out;
		}
	}
	tx_flush(&s);
	if (s.timed_out) {
		char d[32];

		format_duration(x->timeout_ms, d, sizeof(d));
		fprintf(stderr, "msb: command timed out after %s and was killed\n", d);
	}
	*status = s.status;
	r = 0;
out:
	if (raw)
		tcsetattr(0, TCSANOW, &saved);
	buf_free(&s.rx);
	buf_free(&s.tx);
	return r < 0 ? -1 : 0;
}
