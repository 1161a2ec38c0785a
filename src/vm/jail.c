// SPDX-License-Identifier: Apache-2.0
/*
 * The VMM's box (see jail.h and docs/security.md).
 *
 * DOC: Theory of Operation
 * spawn() creates the child in new namespaces (jail_clone_flags()); the
 * child, before exec, maps its own uid into the new user namespace (an
 * ordinary user may map exactly itself), makes every mount private, mounts
 * a small tmpfs on the jail directory, recreates the system paths QEMU
 * needs (read-only binds of /usr and friends, or the same symlinks on a
 * merged-/usr system), binds the few device nodes, binds each file it was
 * given at its own absolute path (read-only unless asked), pivots into the
 * tmpfs and detaches the old root. What the VMM can reach afterwards is
 * exactly that list: not the user's home, not the msb database, not other
 * sandboxes. Then resource limits; the capability bounding set emptied
 * (as root with the user's files: cut to DAC_OVERRIDE and FOWNER), the
 * ambient and inheritable sets cleared; as root the switch to an
 * unprivileged uid of this VMM's own; and last msb's seccomp filter (with
 * no_new_privs), so that nothing of the above is refused by it. exec drops
 * every other capability (the uid inside the namespace is not 0).
 *
 * As root no other process has the VMM's uid, so none can trace it or read
 * its memory through /proc/PID/mem. It stays dumpable: the only way to make
 * a new image non-dumpable is a change of credentials across exec, and that
 * change would also clear the parent-death signal, so a supervisor killed
 * outright would leave its QEMU running (it did: an ephemeral run's CLI
 * kills a supervisor that failed, and the VMMs were orphaned).
 */
#define _GNU_SOURCE
#include "vm/jail.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "vm/seccomp.h"

#define VMM_NOFILE 4096

/* System paths QEMU needs: its binary, libraries, firmware and the loader cache. */
static const char *const system_paths[] = {
	"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache",
};

static const char *const dev_nodes[] = { "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random" };

static int env_id(const char *name, unsigned int dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return (int)dflt;
	errno = 0;
	n = strtoul(v, &end, 10);
	return (errno || *end || n == 0 || n > 0x7fffffff) ? (int)dflt : (int)n;
}

/* MSB_VMM_IDS=FIRST:COUNT, or the default range. Return: 0 or -EINVAL. */
static int id_range(uint32_t *first, uint32_t *count)
{
	const char *v = getenv("MSB_VMM_IDS");
	unsigned long long f, c;
	char *end;

	*first = JAIL_IDS_FIRST;
	*count = JAIL_IDS_COUNT;
	if (!v || !*v)
		return 0;
	errno = 0;
	f = strtoull(v, &end, 10);
	if (errno || *end != ':' || !isdigit((unsigned char)end[1]))
		return -EINVAL;
	c = strtoull(end + 1, &end, 10);
	/* Not 0 (root), not beyond 2^32 - 2 ((uid_t)-1 means "unchanged"). */
	if (errno || *end || f == 0 || c == 0 || f + c > 0xffffffffULL)
		return -EINVAL;
	*first = (uint32_t)f;
	*count = (uint32_t)c;
	return 0;
}

/* Adds @id to @used when it is in [@first, @first + @count). */
static void note_id(uint32_t *used, size_t *n, size_t max, unsigned long id, uint32_t first,
		    uint32_t count)
{
	if (id >= first && id - first < count && *n < max)
		used[(*n)++] = (uint32_t)id;
}

/*
 * The ids of the range some process holds, as a real, effective, saved or
 * filesystem uid or gid. Return: how many (at most @max).
 */
static size_t ids_in_use(uint32_t first, uint32_t count, uint32_t *used, size_t max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[300], line[256];
		FILE *f;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			char *p = line + 4, *end;

			if (strncmp(line, "Uid:", 4) != 0 && strncmp(line, "Gid:", 4) != 0)
				continue;
			/* Real, effective, saved, filesystem. */
			for (int i = 0; i < 4; i++, p = end) {
				unsigned long id = strtoul(p, &end, 10);

				if (end == p)
					break;
				note_id(used, &n, max, id, first, count);
			}
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

/* The range's lock this process holds across a pick (jail_hold_ids()), and the id it reserved. */
static int held_lock = -1;
static uint32_t held_id;

void jail_hold_ids(int lock, uint32_t reserved)
{
	held_lock = lock;
	held_id = reserved;
}

void jail_release_ids(void)
{
	held_lock = -1;
	held_id = 0;
}

int jail_pick_id(const char *key, uint32_t *id, int *lock)
{
	static uint32_t used[4096];
	uint32_t first, count, start, h = 2166136261u;
	size_t nused;
	int r = id_range(&first, &count);

	*lock = -1;
	if (r < 0)
		return r;
	if (held_lock >= 0) {
		/* The same open file description: its flock is ours already, nothing waits. */
		*lock = fcntl(held_lock, F_DUPFD_CLOEXEC, 3);
		if (*lock < 0)
			return -errno;
	} else {
		*lock = open(JAIL_IDS_LOCK, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (*lock < 0)
			return -errno;
		while (flock(*lock, LOCK_EX) < 0)
			if (errno != EINTR)
				return -errno;
	}
	for (const char *c = key; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u; /* FNV-1a */
	start = h % count;
	nused = ids_in_use(first, count, used, sizeof(used) / sizeof(used[0]));
	for (uint32_t i = 0; i < count; i++) {
		uint32_t cand = first + (start + i) % count;
		bool taken = false;

		for (size_t k = 0; k < nused && !taken; k++)
			taken = used[k] == cand;
		if (held_lock >= 0 && cand == held_id)
			taken = true;
		if (taken || getpwuid(cand) || getgrgid(cand))
			continue;
		*id = cand;
		return 0;
	}
	return -EUSERS;
}

/*
 * Chooses this VMM's uid and gid under JAIL_IDS_LOCK (kept in j->ids_lock):
 * a free id of the range, starting from a hash of the sandbox directory.
 */
static int choose_id(struct jail *j)
{
	uint32_t id = 0;
	int r = jail_pick_id(j->cwd, &id, &j->ids_lock);

	if (r < 0)
		return r;
	j->uid = id;
	j->gid = id;
	return 0;
}

int jail_init(struct jail *j, const char *root, const char *cwd)
{
	char *abs_cwd;

	memset(j, 0, sizeof(*j));
	j->ids_lock = -1;
	if (mkdir(root, 0700) < 0 && errno != EEXIST)
		return -errno;
	j->root = realpath(root, NULL);
	abs_cwd = realpath(cwd, NULL);
	if (!j->root || !abs_cwd) {
		free(abs_cwd);
		return -errno;
	}
	j->cwd = abs_cwd;
	if (getuid() == 0) {
		/* Root does not hand root to the VMM, nor an identity another process has. */
		const char *fixed = getenv("MSB_VMM_UID");
		int r;

		if (fixed && *fixed) {
			j->uid = (uid_t)env_id("MSB_VMM_UID", 65534);
			j->gid = (gid_t)env_id("MSB_VMM_GID", (unsigned int)j->uid);
		} else if ((r = choose_id(j)) < 0) {
			return r;
		}
		j->userns = false;
		if (chown(j->root, j->uid, j->gid) < 0)
			return -errno;
	} else {
		j->uid = getuid();
		j->gid = getgid();
		j->userns = true;
	}
	return 0;
}

/* The absolute path of @path's own entry (its directory resolved, not the entry itself). */
static char *entry_path(const char *path)
{
	char *copy = strdup(path), *slash, *dir, *out = NULL;
	const char *base;

	if (!copy)
		return NULL;
	slash = strrchr(copy, '/');
	if (slash) {
		*slash = '\0';
		base = slash + 1;
		dir = realpath(slash == copy ? "/" : copy, NULL);
	} else {
		base = copy;
		dir = realpath(".", NULL);
	}
	if (dir && asprintf(&out, "%s/%s", strcmp(dir, "/") ? dir : "", base) < 0)
		out = NULL;
	free(dir);
	free(copy);
	return out;
}

int jail_add(struct jail *j, const char *path, bool rw)
{
	struct jail_path p = { .rw = rw };
	struct stat st;

	if (j->n >= JAIL_MAX_PATHS)
		return -E2BIG;
	p.path = realpath(path, NULL);
	if (!p.path)
		return -errno;
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
		p.link = entry_path(path);
		if (!p.link) {
			free(p.path);
			return -ENOMEM;
		}
	}
	/*
	 * As root the VMM runs as another uid: it is given the files it writes
	 * and those it reads that others cannot, when they are this sandbox's
	 * own (one link: the writable disk, the layer table). A shared file it
	 * cannot read (a 0600 rootfs image) is refused rather than chowned.
	 */
	if (!j->userns && !j->keep_root && stat(p.path, &st) == 0 &&
	    (rw || !(st.st_mode & S_IROTH))) {
		int e = st.st_nlink != 1 ? EACCES : chown(p.path, j->uid, j->gid) < 0 ? errno : 0;

		if (e) {
			free(p.path);
			free(p.link);
			return -e;
		}
	}
	j->paths[j->n++] = p;
	return 0;
}

bool jail_readable(const char *path, unsigned int *uid)
{
	uint32_t first, count;
	struct stat st;

	if (id_range(&first, &count) < 0)
		first = JAIL_IDS_FIRST;
	*uid = (unsigned int)env_id("MSB_VMM_UID", first);
	if (getuid() != 0)
		return true; /* the VMM runs as the caller */
	return stat(path, &st) == 0 && (st.st_mode & S_IROTH);
}

unsigned long jail_clone_flags(const struct jail *j)
{
	if (j->bare)
		return 0;
	return CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
	       CLONE_NEWCGROUP | (j->userns ? CLONE_NEWUSER : 0);
}

void jail_free(struct jail *j)
{
	for (size_t i = 0; i < j->n; i++) {
		free(j->paths[i].path);
		free(j->paths[i].link);
	}
	for (size_t i = 0; i < j->nshares; i++)
		free(j->shares[i].path);
	free(j->root);
	free(j->cwd);
	if (j->ids_lock >= 0)
		close(j->ids_lock);
	memset(j, 0, sizeof(*j));
	j->ids_lock = -1;
}

/* --- in the child, before exec ------------------------------------------- */

/* Says which step failed on stderr (the supervisor logs it) and returns -errno. */
static int fail(const char *what, const char *arg)
{
	int e = errno ? errno : EIO;
	char line[512];
	int n = snprintf(line, sizeof(line), "msb jail: %s %s: %s\n", what, arg ? arg : "",
			 strerror(e));

	if (n > 0)
		(void)!write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	return -e;
}

static int write_proc(const char *file, const char *text)
{
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* mkdir -p of @path below the jail root @root. */
static int make_dirs(const char *root, const char *path)
{
	char p[PATH_MAX];

	if ((size_t)snprintf(p, sizeof(p), "%s%s", root, path) >= sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *s = p + strlen(root) + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Creates what @src will be bound on, @at below @root: a directory or an empty file, parents
 * included. */
static int make_target(const char *root, const char *src, const char *at, char *dst, size_t len)
{
	struct stat st;
	char parent[PATH_MAX];
	char *slash;
	int fd;

	if (stat(src, &st) < 0)
		return -1;
	if ((size_t)snprintf(dst, len, "%s%s", root, at) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return make_dirs(root, at);
	snprintf(parent, sizeof(parent), "%s", at);
	slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (make_dirs(root, parent) < 0)
			return -1;
	}
	fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/*
 * Binds @src at @at under @root (NULL: at the same path), then remounts it
 * read-only unless @rw. A bind keeps the flags of its source mount, and inside
 * a user namespace those (nosuid, nodev, noexec, atime) are locked: the
 * remount must repeat them.
 */
static int bind(const char *root, const char *src, const char *at, bool rw, bool dev)
{
	char dst[PATH_MAX];
	struct statvfs sv;
	unsigned long fl = MS_REMOUNT | MS_BIND | MS_NOSUID | (dev ? 0 : MS_NODEV);

	if (make_target(root, src, at ? at : src, dst, sizeof(dst)) < 0)
		return fail("create", src);
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail("bind", src);
	if (statvfs(dst, &sv) < 0)
		return fail("statvfs", src);
	if (!rw)
		fl |= MS_RDONLY;
	if (sv.f_flag & ST_NODEV)
		fl |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		fl |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		fl |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		fl |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		fl |= MS_RELATIME;
	if (mount(NULL, dst, NULL, fl, NULL) < 0)
		return fail("remount", src);
	return 0;
}

/* A system path: the same symlink where the host has one (merged /usr), else a read-only bind. */
static int system_path(const char *root, const char *path)
{
	char target[PATH_MAX], dst[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (lstat(path, &st) < 0)
		return 0; /* not on this host */
	if (!S_ISLNK(st.st_mode))
		return bind(root, path, NULL, false, false);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return fail("readlink", path);
	target[n] = '\0';
	snprintf(dst, sizeof(dst), "%s%s", root, path);
	if (symlink(target, dst) < 0 && errno != EEXIST)
		return fail("symlink", path);
	return 0;
}

/* Recreates the symlink @link -> @target inside. */
static int add_link(const char *root, const char *link, const char *target)
{
	char parent[PATH_MAX], dst[PATH_MAX];
	char *slash;

	snprintf(parent, sizeof(parent), "%s", link);
	slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (make_dirs(root, parent) < 0)
			return fail("create", parent);
	}
	if ((size_t)snprintf(dst, sizeof(dst), "%s%s", root, link) >= sizeof(dst) ||
	    (symlink(target, dst) < 0 && errno != EEXIST))
		return fail("symlink", link);
	return 0;
}

static int dev_node(const struct jail *j, const char *path)
{
	char dst[PATH_MAX];
	struct stat st;

	if (j->userns)
		return bind(j->root, path, NULL, true, true);
	/* As root: a private node owned by the VMM's uid, whatever the host's permissions. */
	if (stat(path, &st) < 0)
		return fail("stat", path);
	snprintf(dst, sizeof(dst), "%s%s", j->root, path);
	if (make_dirs(j->root, "/dev") < 0)
		return fail("mkdir", "/dev");
	if (mknod(dst, S_IFCHR | 0600, st.st_rdev) < 0 || chown(dst, j->uid, j->gid) < 0)
		return fail("mknod", path);
	return 0;
}

static int set_limits(const struct jail *j)
{
	struct rlimit core = { 0, 0 }, nofile = { VMM_NOFILE, VMM_NOFILE },
		      fsize = { j->fsize, j->fsize };
	struct rlimit cur;

	if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max < VMM_NOFILE)
		nofile.rlim_cur = nofile.rlim_max = cur.rlim_max;
	if (setrlimit(RLIMIT_CORE, &core) < 0 || setrlimit(RLIMIT_NOFILE, &nofile) < 0 ||
	    setrlimit(RLIMIT_FSIZE, &fsize) < 0)
		return fail("setrlimit", NULL);
	return 0;
}

/*
 * As root with the user's own files (volumes, a disk image), the VMM keeps
 * uid 0 so that it can serve files of any owner as the user who ran msb
 * could: DAC_OVERRIDE (read and write them) and FOWNER (change the modes and
 * times of files it does not own). Nothing else: not CHOWN (a guest would
 * give its files to other users), not FSETID (keep set-id bits while
 * writing), not DAC_READ_SEARCH (open_by_handle_at() would reach every file
 * of the host filesystem), not MKNOD; no mounts, ptrace, network
 * administration or modules. Set-id modes and device nodes are refused by
 * the seccomp filter whoever the VMM runs as.
 */
#define FILE_CAPS ((UINT64_C(1) << CAP_DAC_OVERRIDE) | (UINT64_C(1) << CAP_FOWNER))

/* The bounding set cut to @keep, the ambient set emptied. */
static int drop_bounding(uint64_t keep)
{
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
		if (cap < 64 && (keep & (UINT64_C(1) << cap)))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return fail("drop capabilities", NULL);
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return fail("clear ambient capabilities", NULL);
	return 0;
}

/* Effective and permitted sets: @keep; nothing inheritable. */
static int set_caps(uint64_t keep)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	for (int i = 0; i < 2; i++) {
		uint32_t v = (uint32_t)(keep >> (32 * i));

		d[i].effective = d[i].permitted = v;
		d[i].inheritable = 0;
	}
	if (syscall(SYS_capset, &h, d) < 0)
		return fail("set capabilities", NULL);
	return 0;
}

/* Who the VMM is after exec: see jail.h. */
static int drop_privileges(const struct jail *j)
{
	int r;

	if (j->userns) {
		/* Root of its own namespace until exec, which drops all: none before either. */
		if ((r = drop_bounding(0)) < 0)
			return r;
		return set_caps(0);
	}
	if (setgroups(0, NULL) < 0)
		return fail("drop groups", NULL);
	if (j->keep_root) {
		if ((r = drop_bounding(FILE_CAPS)) < 0)
			return r;
		/* exec as uid 0 under no_new_privs keeps what is permitted now: these. */
		return set_caps(FILE_CAPS);
	}
	if ((r = drop_bounding(0)) < 0)
		return r;
	if (setresgid(j->gid, j->gid, j->gid) < 0 || setresuid(j->uid, j->uid, j->uid) < 0)
		return fail("drop to the VMM's uid", NULL);
	return set_caps(0);
}

int jail_add_exe(struct jail *j, const char *path)
{
	_cleanup_free_ char *real = realpath(path, NULL);
	struct stat st;

	if (!real)
		return -errno;
	for (size_t i = 0; i < sizeof(system_paths) / sizeof(system_paths[0]); i++) {
		size_t n = strlen(system_paths[i]);

		if (!strncmp(real, system_paths[i], n) && (real[n] == '/' || !real[n]))
			return 0; /* already there */
	}
	if (stat(real, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IROTH | S_IXOTH)) != (S_IROTH | S_IXOTH))
		return -EACCES;
	return jail_add(j, real, false);
}

int jail_open_nofollow(const char *path)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	int fd;

	if (path[0] != '/')
		return -EINVAL;
	fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

int jail_add_share(struct jail *j, const char *path, bool rw)
{
	char *copy;
	int fd;

	if (j->nshares >= JAIL_MAX_SHARES)
		return -E2BIG;
	/* Resolved once, when the sandbox was made: a symlink found now is refused. */
	fd = jail_open_nofollow(path);
	if (fd < 0)
		return fd;
	close(fd);
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	j->shares[j->nshares].path = copy;
	j->shares[j->nshares].rw = rw;
	j->nshares++;
	return 0;
}

int jail_enter(void *arg)
{
	const struct jail *j = arg;
	char map[64];
	int r;

	if (j->bare) {
		if ((r = set_limits(j)) < 0)
			return r;
		if ((r = vmm_seccomp_install(getuid() != 0)) < 0) {
			errno = -r;
			return fail("install the seccomp filter", NULL);
		}
		return 0;
	}
	if (j->userns) {
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned int)j->uid, (unsigned int)j->uid);
		if (write_proc("/proc/self/setgroups", "deny") < 0 ||
		    write_proc("/proc/self/uid_map", map) < 0)
			return fail("map uid in the user namespace", NULL);
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned int)j->gid, (unsigned int)j->gid);
		if (write_proc("/proc/self/gid_map", map) < 0)
			return fail("map gid in the user namespace", NULL);
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail("make mounts private", NULL);
	if (mount("msb-jail", j->root, "tmpfs", MS_NOSUID | (j->userns ? MS_NODEV : 0),
		  "size=1m,nr_inodes=4096,mode=0755") < 0)
		return fail("mount tmpfs on", j->root);
	for (size_t i = 0; i < sizeof(system_paths) / sizeof(system_paths[0]); i++)
		if ((r = system_path(j->root, system_paths[i])) < 0)
			return r;
	for (size_t i = 0; i < sizeof(dev_nodes) / sizeof(dev_nodes[0]); i++)
		if ((r = dev_node(j, dev_nodes[i])) < 0)
			return r;
	if (j->kvm && (r = dev_node(j, "/dev/kvm")) < 0)
		return r;
	for (size_t i = 0; i < j->n; i++) {
		const struct jail_path *p = &j->paths[i];

		if ((r = bind(j->root, p->path, NULL, p->rw, false)) < 0)
			return r;
		if (p->link && (r = add_link(j->root, p->link, p->path)) < 0)
			return r;
	}
	for (size_t i = 0; i < j->nshares; i++) {
		char at[32], src[64];
		int fd = jail_open_nofollow(j->shares[i].path);

		/*
		 * The source is opened without following any symlink, here in the
		 * jail's own mount namespace, and that very descriptor is bound: a
		 * component swapped for a symlink is refused, never followed.
		 */
		if (fd < 0) {
			errno = -fd;
			return fail("open (without following symlinks)", j->shares[i].path);
		}
		snprintf(at, sizeof(at), JAIL_SHARE_DIR "/%zu", i);
		snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
		r = bind(j->root, src, at, j->shares[i].rw, false);
		close(fd);
		if (r < 0)
			return r;
	}
	if (j->nshares && make_dirs(j->root, JAIL_SHARE_DIR) < 0)
		return fail("create", JAIL_SHARE_DIR);
	/*
	 * QEMU's 9p server changes modes through /proc/self/fd. This is the
	 * jail's own PID namespace, and subset=pid shows nothing but processes:
	 * no /proc/sys, no kernel files.
	 */
	if (j->nshares) {
		char proc[PATH_MAX];

		snprintf(proc, sizeof(proc), "%s/proc", j->root);
		if (make_dirs(j->root, "/proc") < 0 ||
		    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid") < 0)
			return fail("mount proc on", proc);
	}
	if (make_dirs(j->root, j->cwd) < 0)
		return fail("create", j->cwd);
	/* pivot_root(".", "."): the old root ends up on top, and is detached at once. */
	if (chdir(j->root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
		return fail("pivot_root into", j->root);
	if (umount2(".", MNT_DETACH) < 0)
		return fail("detach the old root", NULL);
	if (mount(NULL, "/", NULL,
		  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (j->userns ? MS_NODEV : 0),
		  NULL) < 0)
		return fail("remount the jail root read-only", NULL);
	if (chdir(j->cwd) < 0)
		return fail("chdir", j->cwd);
	if ((r = set_limits(j)) < 0)
		return r;
	if ((r = drop_privileges(j)) < 0)
		return r;
	if ((r = vmm_seccomp_install(j->userns)) < 0) {
		errno = -r;
		return fail("install the seccomp filter", NULL);
	}
	return 0;
}
