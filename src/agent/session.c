// SPDX-License-Identifier: Apache-2.0
/* agentd's event loop: exec sessions, stdio streaming with windows, reaping, shutdown. */
#define _GNU_SOURCE
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "agent/user.h"
#include "proto/proto.h"
#include "util/cleanup.h"
#include "util/conn.h"
#include "util/fs.h"

#define MAX_SESSIONS 1024
/* How much one event may read from the agent port. */
#define READ_BUDGET ((size_t)256 << 10)
/* Largest frame plus one read: what the port may hold unparsed. */
#define PORT_RX_MAX ((size_t)PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD + (64u << 10))
/* Above this, agentd stops reading the host until its own queue drains. */
#define PORT_TX_HWM  ((size_t)4 << 20)
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum tag { TAG_PORT = 1, TAG_SIG, TAG_IN, TAG_OUT, TAG_ERR };

struct session {
	uint32_t sid;
	pid_t pid;
	bool tty;
	int in_fd, out_fd, err_fd;
	uint32_t in_ev, out_ev, err_ev; /* current epoll interest */
	struct buf in_q;
	bool in_eof;
	uint32_t out_inflight;
	bool exited;
	/* Its host went away (the guest was restored elsewhere): output is drained, unsent. */
	bool orphan;
	struct proto_exited status;
	struct session *next;
};

struct agent {
	int ep, sigfd;
	struct conn port; /* the virtio-serial link to the host */
	struct session *sessions;
	int nsessions;
	char hostname[65];
	bool configured; /* CONFIG applied: sessions may start */
	bool scripts;	 /* /.msb/scripts is on every session's PATH */
	bool init;	 /* the user's init is PID 1, agentd its child */
	/* A graceful stop: SIGTERM sent, waiting for processes until @deadline. */
	bool stopping, killed;
	bool none_left; /* waitpid said there is no process left */
	uint64_t deadline;
};

static uint8_t chunk[PROTO_DATA_CHUNK];

static uint64_t key(uint32_t sid, enum tag t)
{
	return (uint64_t)sid << 8 | t;
}

/* An orphaned session's fds are told apart from a live one's of the same id. */
#define KEY_ORPHAN ((uint64_t)1 << 48)

static uint64_t skey(const struct session *s, enum tag t)
{
	return (s->orphan ? KEY_ORPHAN : 0) | key(s->sid, t);
}

/* Keeps an fd's epoll interest equal to @want (0 = not watched). */
static void watch(struct agent *a, int fd, uint64_t k, uint32_t want, uint32_t *cur)
{
	struct epoll_event ev = { .events = want, .data.u64 = k };
	int op;

	if (fd < 0 || want == *cur)
		return;
	if (!want)
		op = EPOLL_CTL_DEL;
	else
		op = *cur ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(a->ep, op, fd, &ev) < 0)
		alog("epoll_ctl fd %d: %s", fd, strerror(errno));
	*cur = want;
}

/*
 * Writes what the host takes. The port is read only while our own queue is
 * below its mark: the host always reads, so this cannot deadlock, and a host
 * that stops reading cannot make agentd queue without end.
 */
static void port_flush(struct agent *a)
{
	if (conn_flush(&a->port) < 0)
		alog("agent port write: %s", strerror(-a->port.error));
	if (conn_watch(&a->port, a->ep, key(0, TAG_PORT), !conn_tx_full(&a->port)) < 0)
		alog("epoll_ctl agent port: %s", strerror(errno));
}

/* The session @sid of the host (an orphan with @orphan: its id is no longer the host's). */
static struct session *session_find(struct agent *a, uint32_t sid, bool orphan)
{
	for (struct session *s = a->sessions; s; s = s->next)
		if (s->sid == sid && s->orphan == orphan)
			return s;
	return NULL;
}

static void close_fd(struct agent *a, int *fd, uint32_t *ev, uint64_t k)
{
	watch(a, *fd, k, 0, ev);
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Recomputes what each of the session's fds should be watched for. */
static void session_rewatch(struct agent *a, struct session *s)
{
	bool room = s->orphan || s->out_inflight < PROTO_WINDOW;

	watch(a, s->in_fd, skey(s, TAG_IN), buf_size(&s->in_q) ? EPOLLOUT : 0, &s->in_ev);
	watch(a, s->out_fd, skey(s, TAG_OUT), room ? EPOLLIN : 0, &s->out_ev);
	watch(a, s->err_fd, skey(s, TAG_ERR), room ? EPOLLIN : 0, &s->err_ev);
}

static void session_free(struct agent *a, struct session *s)
{
	struct session **pp;

	close_fd(a, &s->in_fd, &s->in_ev, skey(s, TAG_IN));
	close_fd(a, &s->out_fd, &s->out_ev, skey(s, TAG_OUT));
	close_fd(a, &s->err_fd, &s->err_ev, skey(s, TAG_ERR));
	buf_free(&s->in_q);
	for (pp = &a->sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	a->nsessions--;
	free(s);
}

/*
 * Reads what one output stream has, within the window. After the process
 * exited, an empty stream counts as finished even if a background process
 * still holds it open. Return: true once the stream is finished.
 */
static bool pump_out(struct agent *a, struct session *s, int *fd, uint32_t *ev, enum tag t)
{
	uint16_t type = (t == TAG_ERR) ? PROTO_STDERR : PROTO_STDOUT;

	while (*fd >= 0 && (s->orphan || s->out_inflight < PROTO_WINDOW)) {
		size_t room = s->orphan ? sizeof(chunk) : PROTO_WINDOW - s->out_inflight;
		ssize_t n = read(*fd, chunk, room < sizeof(chunk) ? room : sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (s->exited)
				close_fd(a, fd, ev, skey(s, t));
			break;
		}
		if (n <= 0) { /* EOF, or EIO from a pty whose other side closed */
			close_fd(a, fd, ev, skey(s, t));
			break;
		}
		if (s->orphan)
			continue;
		if (proto_put_frame(&a->port.tx, type, s->sid, chunk, (size_t)n) < 0) {
			alog("out of memory queueing output");
			close_fd(a, fd, ev, skey(s, t));
			break;
		}
		s->out_inflight += (uint32_t)n;
	}
	return *fd < 0;
}

/* Sends EXITED once the process is gone and its output is drained. */
static void session_progress(struct agent *a, struct session *s)
{
	bool out_done = pump_out(a, s, &s->out_fd, &s->out_ev, TAG_OUT);
	bool err_done = pump_out(a, s, &s->err_fd, &s->err_ev, TAG_ERR);

	if (s->exited && out_done && err_done) {
		if (!s->orphan)
			proto_exited_encode(&a->port.tx, s->sid, &s->status);
		session_free(a, s);
	} else {
		session_rewatch(a, s);
	}
	port_flush(a);
}

static void pump_in(struct agent *a, struct session *s)
{
	size_t done = 0;

	while (s->in_fd >= 0 && buf_size(&s->in_q)) {
		ssize_t n = write(s->in_fd, buf_head(&s->in_q), buf_size(&s->in_q));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) { /* the reader is gone: drop what it will never read */
			done += buf_size(&s->in_q);
			buf_clear(&s->in_q);
			close_fd(a, &s->in_fd, &s->in_ev, skey(s, TAG_IN));
			break;
		}
		buf_consume(&s->in_q, (size_t)n);
		done += (size_t)n;
	}
	if (s->in_fd >= 0 && s->in_eof && !buf_size(&s->in_q)) {
		if (s->tty) {
			/*
			 * A pty has no EOF of its own: the line discipline's VEOF is
			 * one. The master's termios is not the slave's, so ask the peer.
			 */
			struct termios tio;
			char eof = 4;
			int peer = ioctl(s->in_fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);

			if (peer >= 0) {
				if (tcgetattr(peer, &tio) == 0 && tio.c_cc[VEOF])
					eof = (char)tio.c_cc[VEOF];
				close(peer);
			}
			(void)!write(s->in_fd, &eof, 1);
		}
		close_fd(a, &s->in_fd, &s->in_ev, skey(s, TAG_IN));
	}
	if (done)
		proto_u32_encode(&a->port.tx, PROTO_ACK, s->sid, (uint32_t)done);
	session_rewatch(a, s);
	port_flush(a);
}

static void send_failed(struct agent *a, uint32_t sid, enum proto_fail kind, int err,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void send_failed(struct agent *a, uint32_t sid, enum proto_fail kind, int err,
			const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	proto_failed_encode(&a->port.tx, sid, kind, err, msg);
	port_flush(a);
}

static const char *env_get(char **env, const char *k)
{
	size_t n = strlen(k);

	for (; env && *env; env++)
		if (strncmp(*env, k, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

/*
 * Builds the session environment: the request's, plus defaults for PATH,
 * HOSTNAME, HOME and (with a tty) TERM. Return: malloc'd array of borrowed
 * and owned strings; *@owned lists what the caller frees.
 */
static char **build_env(struct agent *a, const struct proto_exec *e, const struct user_info *u,
			char **owned)
{
	size_t n = 0, k = 0;
	char **env;

	while (e->env[n])
		n++;
	env = calloc(n + 5, sizeof(char *));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		/* --script files are on the PATH, whatever PATH the image sets. */
		if (a->scripts && !strncmp(e->env[i], "PATH=", 5) && !owned[2] &&
		    asprintf(&owned[2], "%s:" AGENT_SCRIPTS_DIR, e->env[i]) > 0) {
			env[k++] = owned[2];
			continue;
		}
		env[k++] = e->env[i];
	}
	if (!env_get(e->env, "PATH"))
		env[k++] = a->scripts ? "PATH=" DEFAULT_PATH ":" AGENT_SCRIPTS_DIR
				      : "PATH=" DEFAULT_PATH;
	if (!env_get(e->env, "HOSTNAME") && asprintf(&owned[0], "HOSTNAME=%s", a->hostname) > 0)
		env[k++] = owned[0];
	if (!env_get(e->env, "HOME") && asprintf(&owned[1], "HOME=%s", u->home) > 0)
		env[k++] = owned[1];
	if ((e->flags & PROTO_EXEC_TTY) && !env_get(e->env, "TERM"))
		env[k++] = "TERM=xterm";
	env[k] = NULL;
	return env;
}

/*
 * Finds argv[0] like execvp would. Return: 0 with the path in @out,
 * -ENOENT if nothing matched, -EACCES if only non-executables matched.
 */
static int resolve_exe(const char *name, const char *path, char *out, size_t len)
{
	char dirs[4096], *dir, *save = NULL;
	int r = -ENOENT;

	if (strchr(name, '/')) {
		snprintf(out, len, "%s", name);
		return 0;
	}
	/* msb cp: agentd itself, whatever the image has. */
	if (!strcmp(name, PROTO_CP_TOOL)) {
		snprintf(out, len, "/proc/self/exe");
		return 0;
	}
	snprintf(dirs, sizeof(dirs), "%s", path);
	for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		struct stat st;

		if ((size_t)snprintf(out, len, "%s/%s", *dir ? dir : ".", name) >= len)
			continue;
		if (stat(out, &st) < 0 || S_ISDIR(st.st_mode))
			continue;
		if (S_ISREG(st.st_mode) && (st.st_mode & 0111))
			return 0;
		r = -EACCES;
	}
	return r;
}

/* Runs in the child between fork and exec; reports failure on @errfd. */
static void __attribute__((noreturn))
child_exec(const struct proto_exec *e, const struct user_info *u, const char *exe, char **env,
	   const char *cwd, int slave, int in, int out, int err, int errfd)
{
	sigset_t none;
	int code;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	if (slave >= 0) {
		ioctl(slave, TIOCSCTTY, 0);
		in = out = err = slave;
	}
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		goto fail;
	for (uint32_t i = 0; i < e->nrlimits; i++) {
		struct rlimit rl = { .rlim_cur = e->rlimits[i].soft,
				     .rlim_max = e->rlimits[i].hard };

		if (setrlimit((int)e->rlimits[i].resource, &rl) < 0)
			goto fail;
	}
	if (setgroups((size_t)u->ngroups, u->groups) < 0 || setgid(u->gid) < 0 ||
	    setuid(u->uid) < 0)
		goto fail;
	if (chdir(cwd) < 0)
		goto fail;
	execve(exe, e->argv, env);
fail:
	code = errno;
	(void)!write(errfd, &code, sizeof(code));
	_exit(127);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) ? -errno : 0;
}

/* Opens a pty pair sized @rows x @cols. Return: 0, or -errno. */
static int open_pty(uint16_t rows, uint16_t cols, int *master, int *slave)
{
	struct winsize ws = { .ws_row = rows ? rows : 24, .ws_col = cols ? cols : 80 };
	_cleanup_close_ int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	const char *name;
	int s;

	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		return -errno;
	name = ptsname(m);
	if (!name)
		return -errno;
	s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		return -errno;
	ioctl(m, TIOCSWINSZ, &ws);
	*slave = s;
	*master = steal_fd(m);
	return 0;
}

static void session_start(struct agent *a, uint32_t sid, struct proto_exec *e)
{
	_cleanup_fclose_ FILE *pw = NULL, *gr = NULL;
	_cleanup_free_ char **env = NULL;
	char *owned[3] = { NULL, NULL, NULL };
	struct user_info u;
	char why[256], exe[4096];
	const char *cwd = *e->cwd ? e->cwd : "/";
	int p_in[2] = { -1, -1 }, p_out[2] = { -1, -1 }, p_err[2] = { -1, -1 };
	int p_exec[2] = { -1, -1 }, master = -1, slave = -1;
	struct session *s = NULL;
	int r, code = 0;
	pid_t pid;

#ifdef MSB_AGENT_HOSTILE
	if (!strcmp(e->argv[0], "__hostile")) {
		port_flush(a);
		hostile_run(a->port.fd, sid, e->argv);
		return;
	}
#endif
	if (session_find(a, sid, false) || a->nsessions >= MAX_SESSIONS) {
		send_failed(a, sid, PROTO_FAIL_INVALID, 0,
			    "session %u: already in use or too many sessions", sid);
		return;
	}
	pw = fopen("/etc/passwd", "re");
	gr = fopen("/etc/group", "re");
	r = user_resolve(e->user, pw, gr, &u, why, sizeof(why));
	if (r < 0) {
		send_failed(a, sid, PROTO_FAIL_USER, -r, "%s", why);
		return;
	}
	if (e->flags & PROTO_EXEC_MKCWD) {
		r = mkdir_p(cwd, 0755);
		if (r < 0) {
			send_failed(a, sid, PROTO_FAIL_CWD, -r, "workdir %s: %s", cwd,
				    strerror(-r));
			return;
		}
	}
	env = build_env(a, e, &u, owned);
	if (!env) {
		send_failed(a, sid, PROTO_FAIL_INTERNAL, ENOMEM, "out of memory");
		return;
	}
	r = resolve_exe(e->argv[0], env_get(env, "PATH"), exe, sizeof(exe));
	if (r == -ENOENT) {
		send_failed(a, sid, PROTO_FAIL_NOT_FOUND, ENOENT,
			    "exec: \"%s\": executable file not found in $PATH", e->argv[0]);
		goto out;
	} else if (r < 0) {
		send_failed(a, sid, PROTO_FAIL_NOT_EXECUTABLE, EACCES,
			    "exec: \"%s\": permission denied", e->argv[0]);
		goto out;
	}

	if (e->flags & PROTO_EXEC_TTY) {
		r = open_pty(e->rows, e->cols, &master, &slave);
	} else if (pipe2(p_in, O_CLOEXEC) < 0 || pipe2(p_out, O_CLOEXEC) < 0 ||
		   pipe2(p_err, O_CLOEXEC) < 0) {
		r = -errno;
	}
	if (r < 0 || pipe2(p_exec, O_CLOEXEC) < 0) {
		send_failed(a, sid, PROTO_FAIL_INTERNAL, r < 0 ? -r : errno,
			    "cannot set up stdio: %s", strerror(r < 0 ? -r : errno));
		goto out;
	}

	pid = fork();
	if (pid == 0)
		child_exec(e, &u, exe, env, cwd, slave, p_in[0], p_out[1], p_err[1], p_exec[1]);
	if (pid < 0) {
		send_failed(a, sid, PROTO_FAIL_INTERNAL, errno, "fork: %s", strerror(errno));
		goto out;
	}
	close(p_exec[1]);
	p_exec[1] = -1;
	/* Blocks only until the child has exec'd (or failed to). */
	while ((r = (int)read(p_exec[0], &code, sizeof(code))) < 0 && errno == EINTR)
		;
	if (r == (int)sizeof(code)) {
		enum proto_fail kind =
			(code == ENOENT) ? PROTO_FAIL_NOT_FOUND
			: (code == EACCES || code == ENOEXEC || code == EISDIR || code == EPERM)
				? PROTO_FAIL_NOT_EXECUTABLE
				: PROTO_FAIL_INTERNAL;

		/* The child is reaped by the SIGCHLD handler like any orphan. */
		if (code == ENOENT && access(cwd, F_OK) < 0)
			send_failed(a, sid, PROTO_FAIL_CWD, code, "workdir %s: %s", cwd,
				    strerror(code));
		else
			send_failed(a, sid, kind, code, "exec: \"%s\": %s", e->argv[0],
				    strerror(code));
		goto out;
	}

	s = calloc(1, sizeof(*s));
	if (!s) {
		kill(pid, SIGKILL);
		send_failed(a, sid, PROTO_FAIL_INTERNAL, ENOMEM, "out of memory");
		goto out;
	}
	s->sid = sid;
	s->pid = pid;
	s->tty = master >= 0;
	if (s->tty) {
		s->out_fd = master;
		s->in_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
		s->err_fd = -1;
		master = -1;
	} else {
		s->in_fd = steal_fd(p_in[1]);
		s->out_fd = steal_fd(p_out[0]);
		s->err_fd = steal_fd(p_err[0]);
	}
	set_nonblock(s->in_fd);
	set_nonblock(s->out_fd);
	if (s->err_fd >= 0)
		set_nonblock(s->err_fd);
	s->next = a->sessions;
	a->sessions = s;
	a->nsessions++;
	proto_u32_encode(&a->port.tx, PROTO_STARTED, sid, (uint32_t)pid);
	session_rewatch(a, s);
	port_flush(a);
out:
	for (int i = 0; i < 2; i++) {
		int *fds[] = { &p_in[i], &p_out[i], &p_err[i], &p_exec[i] };

		for (size_t j = 0; j < ARRAY_SIZE(fds); j++)
			if (*fds[j] >= 0)
				close(*fds[j]);
	}
	if (master >= 0)
		close(master);
	if (slave >= 0)
		close(slave);
	free(owned[0]);
	free(owned[1]);
	free(owned[2]);
}

static void reap(struct agent *a)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (struct session *s = a->sessions; s; s = s->next) {
			if (s->pid != pid || s->exited)
				continue;
			s->exited = true;
			if (WIFSIGNALED(st)) {
				s->status.signal = (uint32_t)WTERMSIG(st);
				s->status.code = 128 + WTERMSIG(st);
			} else {
				s->status.code = WEXITSTATUS(st);
			}
			session_progress(a, s);
			break;
		}
	}
	a->none_left = pid < 0 && errno == ECHILD;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Last words: what is queued for the host goes out before the VM does. */
static void flush_before_poweroff(struct agent *a)
{
	uint64_t until = now_ms() + 500;

	while (buf_size(&a->port.tx) && now_ms() < until) {
		struct pollfd p = { .fd = a->port.fd, .events = POLLOUT };

		port_flush(a);
		if (buf_size(&a->port.tx))
			poll(&p, 1, 50);
	}
}

static void __attribute__((noreturn)) poweroff_now(struct agent *a)
{
	flush_before_poweroff(a);
	mount_quiesce();
	agent_poweroff();
}

/*
 * Stops everything like `docker stop`: SIGTERM now, SIGKILL when @grace_ms
 * runs out. The loop keeps serving meanwhile, so sessions' last output and
 * exit codes still reach the host; the VM powers off once nothing is left.
 */
static void shutdown_begin(struct agent *a, uint32_t grace_ms)
{
	if (a->stopping)
		return;
	a->stopping = true;
	a->deadline = now_ms() + grace_ms;
	/*
	 * kill(-1) spares PID 1. With the user's init there it is left alone:
	 * if it exited the kernel would panic before the disk is synced; it ends
	 * with the power-off instead.
	 */
	kill(-1, SIGTERM);
	reap(a);
}

/* With an init as PID 1, its processes are not our children: look in /proc. */
static bool user_processes_left(void)
{
	_cleanup_closedir_ DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t self = getpid();

	while (d && (de = readdir(d))) {
		char path[64], stat[512], *close_paren;
		long pid = strtol(de->d_name, NULL, 10);
		int fd, ppid = 0;
		ssize_t n;

		if (pid <= 2 || pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, stat, sizeof(stat) - 1);
		close(fd);
		stat[n > 0 ? n : 0] = '\0';
		close_paren = strrchr(stat, ')');
		/* Kernel threads are children of kthreadd (2): " STATE PPID ..." after the name. */
		if (close_paren && close_paren[1] == ' ' && close_paren[2] && close_paren[3] == ' ')
			ppid = (int)strtol(close_paren + 4, NULL, 10);
		if (ppid && ppid != 2)
			return true;
	}
	return false;
}

/* Called after every loop iteration while stopping. Return: ms until the next check. */
static int shutdown_step(struct agent *a)
{
	uint64_t now = now_ms();

	if (!a->sessions && (a->init ? !user_processes_left() : a->none_left))
		poweroff_now(a);
	if (now >= a->deadline) {
		if (a->killed)
			poweroff_now(a); /* what is left after SIGKILL cannot be waited for */
		a->killed = true;
		kill(-1, SIGKILL);
		a->deadline = now + 2000;
		reap(a);
	}
	return 10;
}

static uint64_t boottime_ns(void);

/*
 * CONFIG with PROTO_CONFIG_REFRESH: this guest was restored from a saved
 * state into a new sandbox. Its sessions belong to the old host: their
 * processes run on, their input ends, their output is drained unsent. The
 * resync marker goes after everything queued before, then CONFIGURED.
 */
static void refresh(struct agent *a, const struct proto_config *c)
{
	char why[320];
	int r;

	for (struct session *s = a->sessions; s; s = s->next) {
		if (s->orphan)
			continue;
		/* Watched again under orphan keys: the host may reuse the id. */
		watch(a, s->out_fd, skey(s, TAG_OUT), 0, &s->out_ev);
		watch(a, s->err_fd, skey(s, TAG_ERR), 0, &s->err_ev);
		close_fd(a, &s->in_fd, &s->in_ev, skey(s, TAG_IN));
		s->orphan = true;
		buf_clear(&s->in_q);
		s->in_eof = true;
		session_rewatch(a, s);
	}
	r = agent_refresh(c, why, sizeof(why));
	if (buf_append(&a->port.tx, c->resync, sizeof(c->resync)) < 0)
		alog("out of memory queueing the resync marker");
	if (r < 0) {
		char msg[400];

		snprintf(msg, sizeof(msg), "config: %s", why);
		alog("%s", msg);
		proto_error_encode(&a->port.tx, 0, msg);
		return;
	}
	if (c->hostname[0])
		snprintf(a->hostname, sizeof(a->hostname), "%s", c->hostname);
	proto_u64_encode(&a->port.tx, PROTO_CONFIGURED, 0, boottime_ns());
}

/* CONFIG: becomes the sandbox, then says so (CONFIGURED) or why not (ERROR). */
static void configure(struct agent *a, const struct proto_frame *f)
{
	struct proto_config c;
	char why[320];
	int r;

	r = proto_config_decode(f->payload, f->len, &c);
	if (r < 0) {
		proto_error_encode(&a->port.tx, 0, "config: malformed");
		port_flush(a);
		return;
	}
	if (a->configured && (c.flags & PROTO_CONFIG_REFRESH)) {
		refresh(a, &c);
		proto_config_free(&c);
		port_flush(a);
		return;
	}
	if (a->configured) {
		proto_config_free(&c);
		proto_error_encode(&a->port.tx, 0, "config: already configured");
		port_flush(a);
		return;
	}
	r = agent_configure(&c, why, sizeof(why));
	if (r < 0) {
		char msg[400];

		snprintf(msg, sizeof(msg), "config: %s", why);
		alog("%s", msg);
		proto_error_encode(&a->port.tx, 0, msg);
	} else {
		a->configured = true;
		a->scripts = c.nscripts > 0;
		a->init = c.init && c.init[0];
		/*
		 * We are now PID 1's child. A signalfd in epoll wakes the process
		 * that registered it: register ours again, or SIGCHLD never comes.
		 */
		if (a->init) {
			struct epoll_event ev = { .events = EPOLLIN, .data.u64 = key(0, TAG_SIG) };

			epoll_ctl(a->ep, EPOLL_CTL_DEL, a->sigfd, NULL);
			if (epoll_ctl(a->ep, EPOLL_CTL_ADD, a->sigfd, &ev) < 0)
				alog("epoll_ctl signalfd: %s", strerror(errno));
		}
		if (c.hostname[0])
			snprintf(a->hostname, sizeof(a->hostname), "%s", c.hostname);
		proto_u64_encode(&a->port.tx, PROTO_CONFIGURED, 0, boottime_ns());
	}
	proto_config_free(&c);
	port_flush(a);
}

/* Reads "Key:   N kB" from /proc/meminfo. Return: bytes, or 0. */
static uint64_t meminfo(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtoull(p + strlen(key), NULL, 10) * 1024 : 0;
}

static void send_stats(struct agent *a)
{
	struct proto_stats st = { .uptime_ns = boottime_ns() };
	char text[4096];
	int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
	_cleanup_closedir_ DIR *d = opendir("/proc");
	struct dirent *de;

	if (fd >= 0) {
		ssize_t n = read(fd, text, sizeof(text) - 1);

		close(fd);
		text[n > 0 ? n : 0] = '\0';
		st.mem_total = meminfo(text, "MemTotal:");
		st.mem_available = meminfo(text, "MemAvailable:");
	}
	while (d && (de = readdir(d)))
		if (de->d_name[0] >= '1' && de->d_name[0] <= '9')
			st.procs++;
	proto_stats_encode(&a->port.tx, &st);
	port_flush(a);
}

static void on_frame(struct agent *a, const struct proto_frame *f)
{
	struct session *s = f->sid ? session_find(a, f->sid, false) : NULL;
	uint32_t v;
	uint16_t rows, cols;
	int r;

	switch (f->type) {
	case PROTO_EXEC: {
		struct proto_exec e;

		if (!a->configured) {
			send_failed(a, f->sid, PROTO_FAIL_INVALID, 0,
				    "the sandbox is not configured yet");
			return;
		}
		r = proto_exec_decode(f->payload, f->len, &e);
		if (r < 0) {
			send_failed(a, f->sid, PROTO_FAIL_INVALID, -r, "malformed exec request");
			return;
		}
		session_start(a, f->sid, &e);
		proto_exec_free(&e);
		return;
	}
	case PROTO_STDIN:
		/* Input for a finished session is dropped: the host may race its end. */
		if (!s || s->in_eof)
			return;
		if (f->len == 0)
			s->in_eof = true;
		else if (buf_size(&s->in_q) + f->len > (size_t)2 * PROTO_WINDOW ||
			 buf_append(&s->in_q, f->payload, f->len) < 0)
			return;
		pump_in(a, s);
		return;
	case PROTO_ACK:
		if (!s || proto_u32_decode(f->payload, f->len, &v) < 0)
			return;
		s->out_inflight -= v < s->out_inflight ? v : s->out_inflight;
		session_progress(a, s);
		return;
	case PROTO_RESIZE:
		if (s && s->tty && proto_resize_decode(f->payload, f->len, &rows, &cols) == 0) {
			struct winsize ws = { .ws_row = rows, .ws_col = cols };

			ioctl(s->out_fd, TIOCSWINSZ, &ws);
		}
		return;
	case PROTO_SIGNAL:
		if (!s || proto_u32_decode(f->payload, f->len, &v) < 0 || v < 1 || v > 64)
			return;
		/* SIGKILL ends the whole session; other signals go to its process. */
		kill(v == SIGKILL ? -s->pid : s->pid, (int)v);
		return;
	case PROTO_SHUTDOWN:
		if (proto_u32_decode(f->payload, f->len, &v) < 0)
			v = 0;
		shutdown_begin(a, v);
		return;
	case PROTO_CONFIG:
		configure(a, f);
		return;
	case PROTO_STATS_REQ:
		send_stats(a);
		return;
	case PROTO_QUIESCE:
#ifdef MSB_AGENT_HOSTILE
		if (hostile_ignore_quiesce)
			return;
#endif
		/* What is written reaches the disks before the host copies them. */
		sync();
		proto_put_frame(&a->port.tx, PROTO_QUIESCED, 0, NULL, 0);
		port_flush(a);
		return;
	default:
		proto_error_encode(&a->port.tx, f->sid, "unexpected frame type");
		port_flush(a);
	}
}

static void port_read(struct agent *a)
{
	struct proto_frame f;
	ssize_t n = conn_fill(&a->port, READ_BUDGET);
	int r;

	if (n < 0 || (a->port.eof && !buf_size(&a->port.rx))) {
		alog("host closed the agent port");
		kill(-1, SIGKILL);
		poweroff_now(a);
	}
	while ((r = proto_parse(&a->port.rx, &f)) > 0) {
		on_frame(a, &f);
		conn_consume(&a->port, PROTO_HDR_SIZE + f.len);
	}
	if (r < 0) {
		/* No way to find the next frame boundary: the link is lost. */
		alog("protocol error from host: %s", strerror(-r));
		kill(-1, SIGKILL);
		poweroff_now(a);
	}
	port_flush(a);
}

static uint64_t boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int agent_serve(int port_fd, uint64_t kernel_ns)
{
	struct agent a = { .ep = -1, .sigfd = -1 };
	struct proto_ready ready = { .version = PROTO_VERSION, .kernel_ns = kernel_ns };
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = key(0, TAG_SIG) };
	sigset_t set;

	snprintf(a.hostname, sizeof(a.hostname), "msb");
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	a.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	a.ep = epoll_create1(EPOLL_CLOEXEC);
	if (a.sigfd < 0 || a.ep < 0 || epoll_ctl(a.ep, EPOLL_CTL_ADD, a.sigfd, &ev) < 0)
		return -errno;
	conn_init(&a.port, port_fd, PORT_TX_HWM, PORT_RX_MAX);

	ready.ready_ns = boottime_ns();
	proto_ready_encode(&a.port.tx, &ready);
	port_flush(&a);

	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(a.ep, evs, 64, a.stopping ? shutdown_step(&a) : -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (int i = 0; i < n; i++) {
			uint32_t sid = (uint32_t)(evs[i].data.u64 >> 8);
			bool orphan = evs[i].data.u64 & KEY_ORPHAN;
			enum tag t = (enum tag)(evs[i].data.u64 & 0xff);
			struct session *s;

			if (t == TAG_SIG) {
				struct signalfd_siginfo si;

				while (read(a.sigfd, &si, sizeof(si)) == sizeof(si))
					;
				reap(&a);
				continue;
			}
			if (t == TAG_PORT) {
				if (evs[i].events & EPOLLOUT)
					port_flush(&a);
				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					port_read(&a);
				continue;
			}
			s = session_find(&a, sid, orphan);
			if (!s)
				continue;
			if (t == TAG_IN)
				pump_in(&a, s);
			else
				session_progress(&a, s);
		}
	}
}
