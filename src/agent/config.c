// SPDX-License-Identifier: Apache-2.0
/*
 * Applying the sandbox's configuration (CONFIG): the guest boots knowing
 * nothing about which sandbox it is, so that a booted guest can be saved and
 * restored for any sandbox of its shape; this turns it into one: root
 * filesystem, hostname, tmpfs mounts, scripts, and an optional init that
 * takes over PID 1 while agentd keeps serving from a child process.
 * Everything here comes from the host, which is trusted, but it is still
 * validated: a bad value is a clear error, not a guest in a strange state.
 */
#define _GNU_SOURCE
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

bool agent_valid_hostname(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (const char *p = s; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return false;
	}
	return true;
}

/* An absolute path without "." or ".." components, which mkdir -p may follow. */
static bool clean_path(const char *p)
{
	if (p[0] != '/' || strlen(p) > 1024)
		return false;
	for (const char *c = p; *c; c++) {
		if (c[0] == '/' && c[1] == '.' &&
		    (c[2] == '/' || c[2] == '\0' || (c[2] == '.' && (c[3] == '/' || c[3] == '\0'))))
			return false;
	}
	return true;
}

static bool valid_script_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || s[0] == '.')
		return false;
	for (const char *p = s; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return false;
	}
	return true;
}

static int mount_tmpfs(const struct proto_tmpfs *t, char *why, size_t len)
{
	char opts[64];
	int r;

	if (!clean_path(t->path) || !strcmp(t->path, "/")) {
		snprintf(why, len, "tmpfs %.200s: not an absolute path", t->path);
		return -EINVAL;
	}
	r = mkdir_p(t->path, 0755);
	if (r < 0) {
		snprintf(why, len, "tmpfs %.200s: %s", t->path, strerror(-r));
		return r;
	}
	/* docker's --tmpfs: world-writable with the sticky bit, like /tmp. */
	if (t->size)
		snprintf(opts, sizeof(opts), "mode=1777,size=%llu", (unsigned long long)t->size);
	else
		snprintf(opts, sizeof(opts), "mode=1777");
	if (mount("tmpfs", t->path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
		r = -errno;
		snprintf(why, len, "tmpfs %.200s: %s", t->path, strerror(errno));
		return r;
	}
	return 0;
}

/* Creates @path as what @src is (a directory, else an empty file), parents included. */
static int make_mountpoint(const char *path, bool dir)
{
	_cleanup_free_ char *parent = strdup(path);
	struct stat st;
	int fd, r;

	if (!parent)
		return -ENOMEM;
	if (lstat(path, &st) == 0)
		return S_ISDIR(st.st_mode) == dir ? 0 : dir ? -ENOTDIR : -EISDIR;
	if (dir)
		return mkdir_p(path, 0755);
	*strrchr(parent, '/') = '\0';
	if (parent[0] && (r = mkdir_p(parent, 0755)) < 0)
		return r;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int path_depth(const char *p)
{
	int n = 0;

	for (; *p; p++)
		n += *p == '/';
	return n;
}

/* One volume: a share of the shared-files device bound at its place, or a quota disk. */
static int mount_volume(const struct proto_mount *m, char *why, size_t len)
{
	unsigned long fl = MS_NOSUID | MS_NODEV | (m->flags & PROTO_MOUNT_RO ? MS_RDONLY : 0) |
			   (m->flags & PROTO_MOUNT_NOEXEC ? MS_NOEXEC : 0);
	char src[64];
	struct stat st;
	bool dir = true;
	int r;

	if (!clean_path(m->path) || !strcmp(m->path, "/")) {
		snprintf(why, len, "volume %.200s: not an absolute path", m->path);
		return -EINVAL;
	}
	if (m->flags & PROTO_MOUNT_DISK) {
		r = mount_find_volume_disk(m->index, src, sizeof(src));
		if (r < 0) {
			snprintf(why, len, "volume %.200s: its disk is missing", m->path);
			return r;
		}
	} else {
		if (mount_share_source(m->index, src, sizeof(src)) < 0 || lstat(src, &st) < 0) {
			r = -errno;
			snprintf(why, len, "volume %.200s: %s", m->path, strerror(errno));
			return r;
		}
		dir = S_ISDIR(st.st_mode);
	}
	r = make_mountpoint(m->path, dir);
	if (r < 0) {
		snprintf(why, len, "volume %.200s: %s", m->path,
			 r == -ENOTDIR	? "exists in the image and is not a directory"
			 : r == -EISDIR ? "exists in the image as a directory, the source is a file"
					: strerror(-r));
		return r;
	}
	if (m->flags & PROTO_MOUNT_DISK) {
		r = mount(src, m->path, "ext4", fl, NULL);
		/* A writer that crashed left a journal a reader cannot replay: read what was
		 * committed. */
		if (r < 0 && errno == EROFS && (fl & MS_RDONLY))
			r = mount(src, m->path, "ext4", fl, "noload");
		if (r == 0 && !(fl & MS_RDONLY))
			mount_track_volume(m->path);
	} else if ((r = mount(src, m->path, NULL, MS_BIND, NULL)) == 0)
		r = mount(NULL, m->path, NULL, MS_REMOUNT | MS_BIND | fl, NULL);
	if (r < 0) {
		r = -errno;
		snprintf(why, len, "volume %.200s: %s", m->path, strerror(errno));
		return r;
	}
	return 0;
}

/*
 * Mounts the volumes, parents before children whatever the order given. The
 * shared-files device is mounted once, out of the way, each share bound
 * where it belongs, and then the device's own mount is detached: only the
 * binds remain.
 */
static int mount_volumes(const struct proto_config *c, char *why, size_t len)
{
	uint32_t order[PROTO_MAX_MOUNTS];
	int r = 0;

	for (uint32_t i = 0; i < c->nmounts; i++)
		order[i] = i;
	for (uint32_t i = 1; i < c->nmounts; i++)
		for (uint32_t k = i; k > 0 && path_depth(c->mounts[order[k - 1]].path) >
						      path_depth(c->mounts[order[k]].path);
		     k--) {
			uint32_t t = order[k];

			order[k] = order[k - 1];
			order[k - 1] = t;
		}
	for (uint32_t i = 0; !r && i < c->nmounts; i++)
		r = mount_volume(&c->mounts[order[i]], why, len);
	return r;
}

static int write_script(const struct proto_script *s, char *why, size_t len)
{
	char path[128];
	_cleanup_close_ int fd = -1;
	size_t off = 0;

	if (!valid_script_name(s->name)) {
		snprintf(why, len, "script name \"%.64s\" is not valid", s->name);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), AGENT_SCRIPTS_DIR "/%s", s->name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0755);
	if (fd < 0) {
		snprintf(why, len, "script %s: %s", s->name, strerror(errno));
		return -errno;
	}
	while (off < s->len) {
		ssize_t n = write(fd, s->body + off, s->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, len, "script %s: %s", s->name, strerror(errno));
			return -errno;
		}
		off += (size_t)n;
	}
	/* umask must not take the exec bits away. */
	fchmod(fd, 0755);
	return 0;
}

/*
 * The host's CA bundle goes at the end of every bundle the image has (the
 * Debian, Red Hat and Alpine/BSD places), each file once however many names
 * it has; an image with none gets the Debian one.
 */
static int append_ca_bundle(const struct proto_file *f, char *why, size_t len)
{
	static const char *const bundles[] = {
		"/etc/ssl/certs/ca-certificates.crt",
		"/etc/pki/tls/certs/ca-bundle.crt",
		"/etc/ssl/cert.pem",
	};
	struct stat seen[3] = { 0 };
	size_t nseen = 0;
	const char *path = NULL;
	int r = 0;

	for (size_t i = 0; i < sizeof(bundles) / sizeof(bundles[0]) && !r; i++) {
		_cleanup_close_ int fd = -1;
		struct stat st;
		bool dup = false;

		if (stat(bundles[i], &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		for (size_t k = 0; k < nseen; k++)
			dup |= seen[k].st_dev == st.st_dev && seen[k].st_ino == st.st_ino;
		if (dup)
			continue;
		path = bundles[i];
		r = mount_shadow(path);
		if (r == -EINVAL || r == -ENOENT) {
			r = 0; /* a link, with a live root: its target is covered on its own */
			continue;
		}
		if (r < 0)
			break;
		/* Opening for writing copies the file up: what it is after that is what counts. */
		fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &seen[nseen]) < 0) {
			r = -errno;
			break;
		}
		nseen++;
		if ((r = write_all(fd, (const uint8_t *)"\n", 1)) == 0)
			r = write_all(fd, f->data, f->len);
	}
	if (!nseen && !r && !mount_live_root()) {
		_cleanup_close_ int fd = -1;

		path = bundles[0];
		r = mkdir_p("/etc/ssl/certs", 0755);
		if (!r && (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
			r = -errno;
		if (!r)
			r = write_all(fd, f->data, f->len);
	}
	if (r < 0)
		snprintf(why, len, "the host's CA bundle into %s: %s", path, strerror(-r));
	return r;
}

/* A file the host wrote for this sandbox (/etc/hosts, /etc/resolv.conf): replaces what is there. */
static int write_config_file(const struct proto_file *f, bool refresh, char *why, size_t len)
{
	_cleanup_close_ int fd = -1;
	char dir[4096];
	char *slash;
	struct stat st;
	int r;

	if (f->flags & PROTO_FILE_CA_BUNDLE)
		return refresh ? 0 : append_ca_bundle(f, why, len); /* it is there already */
	if (!clean_path(f->path)) {
		snprintf(why, len, "file path \"%.200s\" is not valid", f->path);
		return -EINVAL;
	}
	/* A live host directory as the root: a private copy takes the write, or it is skipped. */
	if (mount_live_root() && !refresh) {
		r = mount_shadow(f->path);
		if (r == -ENOENT || r == -EINVAL) {
			alog("%s: not a file in the root directory; left alone", f->path);
			return 0;
		}
		if (r < 0) {
			snprintf(why, len, "%.200s: %s", f->path, strerror(-r));
			return r;
		}
	}
	snprintf(dir, sizeof(dir), "%s", f->path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if ((r = mkdir_p(dir, 0755)) < 0) {
			snprintf(why, len, "%.200s: %s", dir, strerror(-r));
			return r;
		}
	}
	/* Images often make these links (to systemd-resolved's file): ours replaces the link. */
	if (lstat(f->path, &st) == 0 && !S_ISREG(st.st_mode) && unlink(f->path) < 0 &&
	    errno != ENOENT) {
		snprintf(why, len, "%.200s: %s", f->path, strerror(errno));
		return -errno;
	}
	fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, f->mode & 07777);
	if (fd < 0 || write_all(fd, f->data, f->len) < 0) {
		snprintf(why, len, "%.200s: %s", f->path, strerror(errno));
		return -errno;
	}
	fchmod(fd, f->mode & 07777);
	return 0;
}

extern char **environ;

/* agentd's environment with @extra (KEY=VALUE) on top. Return: allocated, or environ. */
static char **init_env(char **extra)
{
	size_t n = 0, k = 0, m = 0;
	char **env;

	while (environ && environ[n])
		n++;
	while (extra && extra[m])
		m++;
	env = calloc(n + m + 1, sizeof(char *));
	if (!env)
		return environ;
	for (size_t i = 0; i < n; i++) {
		size_t kl = strcspn(environ[i], "=");
		bool replaced = false;

		for (size_t j = 0; j < m && !replaced; j++)
			replaced = !strncmp(extra[j], environ[i], kl) && extra[j][kl] == '=';
		if (!replaced)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		env[k++] = extra[j];
	env[k] = NULL;
	return env;
}

/*
 * PID 1 becomes the user's init; agentd goes on in a child. The child keeps
 * every descriptor (the port, epoll, the signalfd); the parent execs init
 * with the signal mask and handlers an init expects. The init's argv is its
 * path and then the --init-arg entries. The child waits for the exec: one
 * that fails is this configuration's error (the parent, PID 1, must not
 * exit, which would panic the kernel: it waits to be powered off).
 * Return: 0 in the child (agentd), or -errno; the parent never returns.
 */
static int hand_off_pid1(const struct proto_config *c, char *why, size_t len)
{
	size_t n = 0;
	char **argv;
	struct stat st;
	sigset_t none;
	int p[2], e = 0;
	ssize_t k;
	pid_t pid;

	if (!clean_path(c->init) || stat(c->init, &st) < 0 || !S_ISREG(st.st_mode) ||
	    !(st.st_mode & 0111)) {
		snprintf(why, len, "init %.200s: not an executable file in the sandbox", c->init);
		return -ENOENT;
	}
	while (c->init_argv && c->init_argv[n])
		n++;
	argv = calloc(n + 2, sizeof(char *));
	if (!argv || pipe2(p, O_CLOEXEC) < 0) {
		e = argv ? errno : ENOMEM;
		free(argv);
		snprintf(why, len, "init: %s", strerror(e));
		return -e;
	}
	argv[0] = c->init;
	for (size_t i = 0; i < n; i++)
		argv[i + 1] = c->init_argv[i];
	pid = fork();
	if (pid < 0) {
		e = errno;
		close(p[0]);
		close(p[1]);
		free(argv);
		snprintf(why, len, "init: fork: %s", strerror(e));
		return -e;
	}
	if (pid == 0) {
		close(p[1]);
		free(argv);
		/* EOF: the exec happened (the pipe was close-on-exec); an errno: it failed. */
		do
			k = read(p[0], &e, sizeof(e));
		while (k < 0 && errno == EINTR);
		close(p[0]);
		if (k == (ssize_t)sizeof(e)) {
			snprintf(why, len, "init %.200s: cannot run it: %s", c->init, strerror(e));
			return -e;
		}
		return 0;
	}
	close(p[0]);
	/* PID 1, from here on the user's init. */
	for (int sig = 1; sig < 65; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	execve(c->init, argv, init_env(c->init_env));
	e = errno;
	alog("init %s: %s; the sandbox cannot go on", c->init, strerror(e));
	(void)!write(p[1], &e, sizeof(e));
	close(p[1]);
	/* agentd reports it and the host ends the VM; PID 1 exiting would panic first. */
	for (;;)
		pause();
}

/*
 * What a restored guest shares with every other guest of its template: the
 * kernel's RNG state and its clock. The host's entropy goes in (credited) and
 * the CRNG reseeds from it at once; the wall clock becomes the host's.
 */
/* <linux/random.h>, which musl does not ship: the ioctls and their argument. */
#define RNDADDENTROPY_ABI _IOW('R', 0x03, int[2])
#define RNDRESEEDCRNG_ABI _IO('R', 0x07)

static void make_unique(const struct proto_config *c)
{
	struct {
		int entropy_count; /* bits credited */
		int buf_size;	   /* bytes */
		uint8_t bytes[PROTO_SEED_SIZE];
	} pool;
	_cleanup_close_ int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
	struct timespec ts = { (time_t)(c->wall_ns / 1000000000ull),
			       (long)(c->wall_ns % 1000000000ull) };

	pool.entropy_count = PROTO_SEED_SIZE * 8;
	pool.buf_size = PROTO_SEED_SIZE;
	memcpy(pool.bytes, c->seed, PROTO_SEED_SIZE);
	if (fd < 0 || ioctl(fd, RNDADDENTROPY_ABI, &pool) < 0 || ioctl(fd, RNDRESEEDCRNG_ABI) < 0)
		alog("reseeding the RNG: %s", strerror(errno));
	explicit_bzero(&pool, sizeof(pool));
	if (c->wall_ns && clock_settime(CLOCK_REALTIME, &ts) < 0)
		alog("setting the clock: %s", strerror(errno));
}

/* What makes any guest this one: entropy, clock, and a valid hostname (set later). */
static int take_identity(const struct proto_config *c, char *why, size_t len)
{
	why[0] = '\0';
	make_unique(c);
	if (c->hostname[0] && !agent_valid_hostname(c->hostname)) {
		snprintf(why, len, "hostname \"%.64s\" is not valid", c->hostname);
		return -EINVAL;
	}
	return 0;
}

int agent_configure(const struct proto_config *c, char *why, size_t len)
{
	int r;

	r = take_identity(c, why, len);
	if (r < 0)
		return r;
	r = mount_root(c);
	if (r < 0) {
		snprintf(why, len, "cannot assemble the root filesystem: %s", strerror(-r));
		return r;
	}
	if (c->hostname[0] && sethostname(c->hostname, strlen(c->hostname)) < 0)
		alog("sethostname: %s", strerror(errno));
	r = agent_net_setup(c, why, len);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < c->nfiles; i++)
		if ((r = write_config_file(&c->files[i], false, why, len)) < 0)
			return r;
	for (uint32_t i = 0; i < c->ntmpfs; i++)
		if ((r = mount_tmpfs(&c->tmpfs[i], why, len)) < 0)
			return r;
	r = c->nmounts ? mount_volumes(c, why, len) : 0;
	mount_shares_done();
	if (r < 0)
		return r;
	if (c->nscripts) {
		r = mkdir_p(AGENT_SCRIPTS_DIR, 0755);
		if (r < 0) {
			snprintf(why, len, AGENT_SCRIPTS_DIR ": %s", strerror(-r));
			return r;
		}
		for (uint32_t i = 0; i < c->nscripts; i++)
			if ((r = write_script(&c->scripts[i], why, len)) < 0)
				return r;
	}
	if (c->init && c->init[0])
		return hand_off_pid1(c, why, len);
	return 0;
}

int agent_refresh(const struct proto_config *c, char *why, size_t len)
{
	int r;

	r = take_identity(c, why, len);
	if (r < 0)
		return r;
	if (c->hostname[0] && sethostname(c->hostname, strlen(c->hostname)) < 0)
		alog("sethostname: %s", strerror(errno));
	if (c->flags & PROTO_CONFIG_NET) {
		agent_net_down();
		r = agent_net_setup(c, why, len);
		if (r < 0)
			return r;
	}
	for (uint32_t i = 0; i < c->nfiles; i++)
		if ((r = write_config_file(&c->files[i], true, why, len)) < 0)
			return r;
	return 0;
}
