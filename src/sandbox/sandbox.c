// SPDX-License-Identifier: Apache-2.0
/* Sandbox directories, config.json, and starting/connecting to the supervisor. */
#define _GNU_SOURCE
#include "sandbox/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "sandbox/rootfs.h"
#include "sandbox/secrets.h"
#include "store/db.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/sock.h"
#include "util/spawn.h"
#include "util/strv.h"

/* How long a failing or interrupted supervisor gets to clean up before it is killed. */
#define SUPERVISOR_EXIT_MS 10000

char *sbx_dir(const char *name)
{
	char *p = NULL;
	const char *home = msb_home();

	if (!home || asprintf(&p, "%s/sandboxes/%s", home, name) < 0)
		return NULL;
	return p;
}

/*
 * The sandbox lock is an open-file-description lock (fcntl F_OFD_*): like
 * flock() it belongs to the open file, so a supervisor inherits its
 * creator's; unlike flock() it can be tested without being taken, so looking
 * at a sandbox never gets in the way of one that is starting.
 */
int sbx_lock_take(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

bool sbx_lock_held(int dirfd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = openat(dirfd, SBX_LOCK_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	bool held;

	if (fd < 0)
		return false;
	held = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
	close(fd);
	return held;
}

/* The directory every sandbox lives in: <MSB_HOME>/sandboxes. Return: newly allocated, or NULL. */
static char *sandboxes_dir(void)
{
	const char *home = msb_home();

	return home ? path_join(home, "sandboxes") : NULL;
}

int sbx_make_dir(const char *name, struct msb_err **err)
{
	_cleanup_free_ char *parent = sandboxes_dir(), *dir = sbx_dir(name), *tmp = NULL;
	_cleanup_close_ int lock = -1;
	int r;

	if (!parent || !dir)
		return msb_err_set(err, ENOMEM, "cannot locate the msb home (set MSB_HOME)");
	r = mkdir_p(parent, 0700);
	if (r < 0)
		return msb_err_sys(err, -r, "%s", parent);
	/* Built under a temporary name, then renamed into place with the lock held. */
	if (asprintf(&tmp, "%s/.new-XXXXXX", parent) < 0) {
		tmp = NULL;
		return msb_err_sys(err, ENOMEM, "sandbox %s", name);
	}
	if (!mkdtemp(tmp))
		return msb_err_sys(err, errno, "%s", parent);
	{
		_cleanup_close_ int dfd = open(tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);

		r = dfd < 0 ? -errno : 0;
		if (!r && mkdirat(dfd, "logs", 0700) < 0)
			r = -errno;
		if (!r) {
			lock = openat(dfd, SBX_LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
			if (lock < 0 || sbx_lock_take(lock) < 0)
				r = -errno;
		}
	}
	if (!r && renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) < 0) {
		r = -errno;
		/* A filesystem without RENAME_NOREPLACE: check, then rename (racy but rare). */
		if (r == -EINVAL) {
			r = access(dir, F_OK) == 0 ? -EEXIST : 0;
			if (!r && rename(tmp, dir) < 0)
				r = -errno;
		}
	}
	if (r < 0) {
		rm_rf(tmp);
		if (r == -EEXIST || r == -ENOTEMPTY)
			return msb_err_set(err, EEXIST,
					   "sandbox %s already exists (use --replace, or remove it "
					   "with 'msb rm %s')",
					   name, name);
		return msb_err_sys(err, -r, "%s", dir);
	}
	return steal_fd(lock);
}

void sbx_forget(const char *name)
{
	struct db *db = NULL;

	if (db_open(&db, NULL) < 0)
		return;
	db_sandbox_delete(db, name, NULL);
	db_close(db);
}

/*
 * Is entry @name of the sandboxes directory (@parent) a sandbox whose
 * supervisor is gone and of which nothing is meant to last (an ephemeral
 * sandbox, or one whose creator died half-way)? *@orphan: the latter, named.
 * Looking takes no lock (sbx_lock_held()), so a sandbox starting meanwhile is
 * never disturbed.
 */
static bool is_leftover(int parent, const char *name, bool *orphan)
{
	_cleanup_close_ int dfd =
		openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int cfg = -1;
	struct stat st;
	json_t *o = NULL;
	bool ephemeral;

	*orphan = false;
	if (dfd < 0 || sbx_lock_held(dfd))
		return false;
	/* A directory being made has no lock for an instant: only old ones are leftovers. */
	if (name[0] == '.' && (fstat(dfd, &st) < 0 || time(NULL) - st.st_mtime < 60))
		return false;
	cfg = openat(dfd, "config.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	o = cfg >= 0 ? json_loadfd(cfg, 0, NULL) : NULL;
	ephemeral = name[0] == '.' || (o && json_is_true(json_object_get(o, "ephemeral")));
	/* A named sandbox without config.json: its creator died before writing it. */
	if (!o && name[0] != '.' && fstat(dfd, &st) == 0 && time(NULL) - st.st_mtime >= 60) {
		ephemeral = true;
		*orphan = true;
	}
	json_decref(o);
	return ephemeral;
}

/* Removes leftover @name (see is_leftover()) under its lock. Return: true if removed. */
static bool reap_one(const char *parent_path, int parent, const char *name)
{
	_cleanup_close_ int dfd = -1, lock = -1;
	_cleanup_free_ char *path = NULL;
	bool orphan;

	if (!is_leftover(parent, name, &orphan))
		return false;
	dfd = openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	lock = dfd >= 0 ? openat(dfd, SBX_LOCK_FILE, O_RDWR | O_CLOEXEC | O_NOFOLLOW) : -1;
	/* The lock is taken only to remove: a supervisor that has it keeps its sandbox. */
	if (lock < 0 || sbx_lock_take(lock) < 0)
		return false;
	path = path_join(parent_path, name);
	if (!path || rm_rf(path) < 0)
		return false;
	if (name[0] != '.')
		sbx_forget(name);
	/* Its maker may have stored its secrets' values before it died. */
	if (orphan)
		sbx_secrets_remove(name, false);
	return true;
}

bool sbx_leftover(const char *name)
{
	_cleanup_free_ char *parent = sandboxes_dir();
	_cleanup_close_ int pfd = parent ? open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	bool orphan;

	return pfd >= 0 && strchr(name, '/') == NULL && is_leftover(pfd, name, &orphan);
}

bool sbx_reap_one(const char *name)
{
	_cleanup_free_ char *parent = sandboxes_dir();
	_cleanup_close_ int pfd = parent ? open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;

	return pfd >= 0 && strchr(name, '/') == NULL && reap_one(parent, pfd, name);
}

void sbx_reap(void)
{
	_cleanup_free_ char *parent = sandboxes_dir();
	_cleanup_closedir_ DIR *d = NULL;
	_cleanup_strv_ char **rows = NULL;
	struct db *db = NULL;
	struct dirent *de;

	if (!parent || !(d = opendir(parent)))
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		reap_one(parent, dirfd(d), de->d_name);
	}
	/* Rows whose sandbox directory is gone altogether. */
	if (db_open(&db, NULL) < 0)
		return;
	if (db_sandbox_names(db, &rows, NULL) == 0) {
		for (char **n = rows; *n; n++) {
			struct stat st;

			if (fstatat(dirfd(d), *n, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
				db_sandbox_delete(db, *n, NULL);
		}
	}
	db_close(db);
}

bool sbx_valid_hostname(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || s[0] == '-' || s[0] == '.')
		return false;
	for (const char *p = s; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return false;
	}
	return true;
}

void sbx_ephemeral_name(char *buf, size_t len)
{
	uint8_t rnd[4] = { 0 };

	random_bytes(rnd, sizeof(rnd));
	snprintf(buf, len, "msb-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
}

int sbx_make_ext4(const char *path, uint64_t bytes, const char *label, struct msb_err **err)
{
	char size[32];
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return msb_err_sys(err, errno, "%s", path);
	if (ftruncate(fd, (off_t)bytes) < 0) {
		int e = errno;

		close(fd);
		unlink(path);
		return msb_err_sys(err, e, "%s", path);
	}
	close(fd);
	snprintf(size, sizeof(size), "%lluk", (unsigned long long)(bytes >> 10));
	{
		/* Sparse, lazily initialised: creating a big disk costs almost nothing. */
		char *argv[] = { "mkfs.ext4",
				 "-q",
				 "-F",
				 "-m",
				 "0",
				 "-E",
				 "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1,nodiscard",
				 "-L",
				 (char *)label,
				 (char *)path,
				 size,
				 NULL };

		if (run_tool(argv, -1, err) < 0) {
			unlink(path);
			return -1;
		}
	}
	return 0;
}

int sbx_make_upper(const char *name, unsigned int mib, struct msb_err **err)
{
	_cleanup_free_ char *dir = sbx_dir(name), *path = NULL;

	if (!dir || !(path = path_join(dir, "upper.ext4")))
		return msb_err_sys(err, ENOMEM, "sandbox %s", name);
	if (sbx_make_ext4(path, (uint64_t)mib << 20, "msb-upper", err) < 0)
		return msb_err_prefix(err, "sandbox %s: writable disk", name);
	return 0;
}

/* Reads the supervisor's one-line report: "ok K R ACCEL" or "err CODE MESSAGE". */
static int read_ready(int fd, pid_t pid, struct sbx_boot_info *info, struct msb_err **err)
{
	char line[2048];
	size_t n = 0;

	for (;;) {
		ssize_t k = read(fd, line + n, sizeof(line) - 1 - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
		if (n >= sizeof(line) - 1 || memchr(line, '\n', n))
			break;
	}
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
	if (strncmp(line, "ok ", 3) == 0) {
		char *end;

		info->supervisor = pid;
		errno = 0;
		info->kernel_ns = strtoull(line + 3, &end, 10);
		if (!errno && *end == ' ')
			info->ready_ns = strtoull(end + 1, &end, 10);
		if (errno || *end != ' ' || strlen(end + 1) >= sizeof(info->accel))
			return msb_err_set(err, EPROTO, "supervisor: garbled ready report");
		snprintf(info->accel, sizeof(info->accel), "%s", end + 1);
		return 0;
	}
	if (strncmp(line, "err ", 4) == 0) {
		char *msg;
		long code = strtol(line + 4, &msg, 10);

		msb_err_set(err, EIO, "%s", *msg == ' ' ? msg + 1 : msg);
		msb_err_exit(err, code > 0 && code < 256 ? (int)code : 125);
		return -1;
	}
	return msb_err_set(err, EIO, "sandbox supervisor exited during boot");
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Waits for the supervisor to finish (it removes what it made), for at most
 * @ms or until another signal arrives on @sfd; then it is killed, and QEMU
 * with it (PR_SET_PDEATHSIG).
 */
static void reap_supervisor(pid_t pid, int sfd, uint64_t ms);

void sbx_wait_supervisor(pid_t pid, uint64_t ms)
{
	_cleanup_close_ int sfd = -1;
	sigset_t set, blocked;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, NULL, &blocked);
	if (sigismember(&blocked, SIGINT))
		sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	reap_supervisor(pid, sfd, ms);
}

static void reap_supervisor(pid_t pid, int sfd, uint64_t ms)
{
	/* A pidfd becomes readable the moment the process exits: no polling delay. */
	_cleanup_close_ int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	uint64_t until = mono_ms() + ms;

	for (;;) {
		struct pollfd p[2] = { { .fd = sfd, .events = POLLIN },
				       { .fd = pfd, .events = POLLIN } };
		uint64_t now = mono_ms();
		pid_t w = waitpid(pid, NULL, WNOHANG);
		int n;

		if (w == pid || (w < 0 && errno != EINTR))
			return;
		if (now >= until)
			break;
		/* Without pidfds (Linux < 5.3), look again every 10 ms. */
		n = poll(p, 2, pfd >= 0 ? (int)(until - now) : 10);
		if (n > 0 && (p[0].revents & POLLIN))
			break;
	}
	kill(pid, SIGKILL);
	spawn_wait(pid, NULL);
}

/*
 * Waits for the ready report, unless SIGINT, SIGTERM or SIGHUP (blocked by
 * the caller) arrives first: then the half-booted sandbox is torn down.
 */
static int wait_ready(int fd, pid_t pid, struct sbx_boot_info *info, struct msb_err **err)
{
	_cleanup_close_ int sfd = -1;
	sigset_t set, blocked;
	struct pollfd p[2];
	int r;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, NULL, &blocked);
	if (sigismember(&blocked, SIGINT))
		sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	p[0] = (struct pollfd){ .fd = fd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	while (poll(p, 2, -1) < 0 && errno == EINTR)
		;
	if (p[1].revents & POLLIN) {
		struct signalfd_siginfo si;

		(void)!read(sfd, &si, sizeof(si));
		kill(pid, SIGTERM);
		/* A second signal, or a supervisor that does not finish, gets it killed. */
		reap_supervisor(pid, sfd, SUPERVISOR_EXIT_MS);
		msb_err_set(err, EINTR, "interrupted while the sandbox was starting");
		msb_err_exit(err, 128 + (int)si.ssi_signo);
		return -1;
	}
	r = read_ready(fd, pid, info, err);
	if (r < 0)
		/* The supervisor cleans up after itself; do not return before it has. */
		reap_supervisor(pid, sfd, SUPERVISOR_EXIT_MS);
	return r;
}

extern char **environ;

/*
 * This process's environment without the secrets' variables: msb's own
 * $ENV of --secret ENV@HOST holds the value, and the supervisor, QEMU and
 * the network process would all inherit it. Return: 0 or -ENOMEM.
 */
static int env_without(char *const *names, struct strv *out)
{
	for (char **e = environ; e && *e; e++) {
		bool drop = false;

		for (char *const *k = names; *k && !drop; k++) {
			size_t n = strlen(*k);

			drop = !strncmp(*e, *k, n) && (*e)[n] == '=';
		}
		if (!drop && strv_push(out, *e) < 0)
			return -ENOMEM;
	}
	/* An empty environment is an empty array, not NULL ("inherit"). */
	if (!out->v && !(out->v = calloc(1, sizeof(char *))))
		return -ENOMEM;
	return 0;
}

int sbx_boot(const char *name, unsigned int flags, int lock_fd, struct sbx_boot_info *info,
	     struct msb_err **err)
{
	bool attached = flags & SBX_BOOT_ATTACHED;
	char ready[16], lock[16], secrets[16];
	char *argv[12];
	struct spawn_opts so;
	int p[2], sp[2] = { -1, -1 }, r, n = 0;
	char **values = NULL;
	_cleanup_strv_ char **names = NULL;
	struct strv env = { 0 };
	size_t nvalues = 0;
	pid_t pid;

	memset(info, 0, sizeof(*info));
	if (sbx_secrets_for_boot(name, &values, &nvalues, &names, err) < 0)
		return -1;
	if (names[0] && env_without(names, &env) < 0) {
		strv_free(&env);
		sbx_secret_values_free(values, nvalues);
		return msb_err_sys(err, ENOMEM, "sandbox %s", name);
	}
	if (nvalues) {
		if (pipe2(sp, O_CLOEXEC) < 0) {
			r = errno;
			strv_free(&env);
			sbx_secret_values_free(values, nvalues);
			return msb_err_sys(err, r, "pipe");
		}
		(void)fcntl(sp[1], F_SETPIPE_SZ, 256 << 10);
	}
	snprintf(ready, sizeof(ready), "%d", SBX_READY_FD);
	snprintf(lock, sizeof(lock), "%d", SBX_LOCK_FD);
	snprintf(secrets, sizeof(secrets), "%d", SBX_SECRETS_FD);
	argv[n++] = "msb";
	argv[n++] = "__supervise";
	argv[n++] = "--ready-fd";
	argv[n++] = ready;
	if (lock_fd >= 0) {
		argv[n++] = "--lock-fd";
		argv[n++] = lock;
	}
	if (attached)
		argv[n++] = "--attached";
	if (flags & SBX_BOOT_RUN_MAIN)
		argv[n++] = "--run-main";
	if (nvalues) {
		argv[n++] = "--secrets-fd";
		argv[n++] = secrets;
	}
	argv[n++] = (char *)name;
	argv[n] = NULL;
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = -errno;
		if (sp[0] >= 0) {
			close(sp[0]);
			close(sp[1]);
		}
		strv_free(&env);
		sbx_secret_values_free(values, nvalues);
		return msb_err_sys(err, -r, "pipe");
	}
	so = spawn_opts_stdio(argv, SPAWN_NULL, SPAWN_NULL, attached ? 2 : SPAWN_NULL);
	so.path = "/proc/self/exe";
	so.fds[SBX_READY_FD] = p[1];
	so.fds[SBX_LOCK_FD] = lock_fd >= 0 ? lock_fd : SPAWN_CLOSED;
	so.fds[SBX_SECRETS_FD] = sp[0] >= 0 ? sp[0] : SPAWN_CLOSED;
	so.nfds = (nvalues ? SBX_SECRETS_FD : SBX_LOCK_FD) + 1;
	if (env.v)
		so.envp = env.v;
	r = spawn(&so, &pid);
	strv_free(&env);
	close(p[1]);
	if (sp[0] >= 0)
		close(sp[0]);
	/*
	 * The values go through a pipe, never argv or the environment. The
	 * supervisor reads it first thing, so writing after the spawn cannot
	 * wait long (the larger pipe usually takes it all at once). A failed
	 * write (EPIPE from a supervisor that died early; SIGPIPE is ignored)
	 * needs no report of its own: the supervisor's says what went wrong.
	 */
	if (r == 0 && nvalues)
		(void)sbx_secrets_write_fd(sp[1], values, nvalues);
	if (sp[1] >= 0)
		close(sp[1]);
	sbx_secret_values_free(values, nvalues);
	if (r < 0) {
		close(p[0]);
		return msb_err_sys(err, -r, "start the sandbox supervisor");
	}
	r = wait_ready(p[0], pid, info, err);
	close(p[0]);
	return r < 0 ? -1 : 0;
}

int sbx_connect(const char *name, struct msb_err **err)
{
	_cleanup_free_ char *dir = sbx_dir(name);
	_cleanup_close_ int dfd = -1;
	int fd;

	if (!dir)
		return msb_err_sys(err, ENOMEM, "sandbox %s", name);
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return msb_err_set(err, ENOENT, "sandbox %s: not found", name);
	fd = unix_connect_at(dfd, "relay.sock");
	if (fd < 0)
		return msb_err_set(err, -fd, "sandbox %s: not running", name);
	return fd;
}

int msb_lib_file(const char *name, char **out, struct msb_err **err)
{
	const char *env = getenv("MSB_LIB_DIR"), *home = msb_home();
	char *cand[5] = { NULL, NULL, NULL, NULL, NULL };
	size_t n = 0;
	int found = -1;

	if (env && *env)
		cand[n++] = path_join(env, name);
	else {
		cand[n++] = path_join(self_dir(), name);
		if (asprintf(&cand[n], "%s/../lib/msb/%s", self_dir(), name) >= 0)
			n++;
		/* An unpacked release tarball or ~/.microsandbox: bin/msb, lib/NAME. */
		if (asprintf(&cand[n], "%s/../lib/%s", self_dir(), name) >= 0)
			n++;
		if (home && asprintf(&cand[n], "%s/lib/%s", home, name) >= 0)
			n++;
	}
	for (size_t i = 0; i < n; i++) {
		if (found < 0 && cand[i] && access(cand[i], R_OK) == 0)
			found = (int)i;
	}
	/*
	 * Canonical: the confined VMM sees only the file itself, so a path
	 * through bin/.. would not resolve there.
	 */
	if (found >= 0) {
		*out = realpath(cand[found], NULL);
		if (!*out)
			*out = steal_ptr(cand[found]);
	}
	for (size_t i = 0; i < n; i++)
		free(cand[i]);
	if (found < 0)
		return msb_err_set(err, ENOENT,
				   "guest %s not found (run 'make', or set MSB_LIB_DIR)", name);
	return 0;
}

int sbx_shutdown(int fd, uint32_t grace_ms)
{
	struct buf b = { 0 };
	int r = proto_u32_encode(&b, PROTO_SHUTDOWN, 0, grace_ms);

	if (!r)
		r = write_all(fd, buf_head(&b), buf_size(&b));
	buf_free(&b);
	return r;
}
