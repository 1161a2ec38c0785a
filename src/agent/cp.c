// SPDX-License-Identifier: Apache-2.0
/*
 * msb cp, the guest's half: agentd run again as a tool ("__msb-cp out PATH"
 * or "__msb-cp in DEST"), through an ordinary exec session, so the copy
 * travels with the session's flow control and limits and needs nothing from
 * the image (no tar, no shell).
 *
 * DOC: Theory of Operation
 * "out" writes PATH as a POSIX tar stream on stdout: PATH's own name first,
 * then (for a directory) everything below it; regular files, directories
 * and symlinks with their modes and times, other kinds skipped. Names and
 * link targets that do not fit ustar go in a pax header. "in" reads such a
 * stream (the host writes it with libarchive) and creates its entries under
 * DEST with docker's rule: into DEST when it is an existing directory, else
 * as DEST itself. Every entry must lie under the stream's first name; ".."
 * and absolute names are refused, and nothing is created through a symlink.
 */
#define _GNU_SOURCE
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

#define BLOCK	  512
#define MAX_DEPTH 256
/* The largest size 11 octal digits hold; beyond it the size goes in a pax record. */
#define MAX_USTAR_SIZE 077777777777ull

struct tar_hdr {
	char name[100];
	char mode[8];
	char uid[8];
	char gid[8];
	char size[12];
	char mtime[12];
	char chksum[8];
	char type;
	char linkname[100];
	char magic[6];
	char version[2];
	char uname[32];
	char gname[32];
	char devmajor[8];
	char devminor[8];
	char prefix[155];
	char pad[12];
};

_Static_assert(sizeof(struct tar_hdr) == BLOCK, "tar header is one block");

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr: what the user reads (the host passes it on as msb's own). */
static void complain(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	agent_vline(NULL, fmt, ap);
	va_end(ap);
}

/* --- out ---------------------------------------------------------------- */

static void octal(char *field, size_t len, unsigned long long v)
{
	snprintf(field, len, "%0*llo", (int)len - 1, v);
}

static int put_header(struct tar_hdr *h)
{
	unsigned int sum = 0;

	memcpy(h->magic, "ustar", 6);
	memcpy(h->version, "00", 2);
	memset(h->chksum, ' ', sizeof(h->chksum));
	for (size_t i = 0; i < BLOCK; i++)
		sum += ((unsigned char *)h)[i];
	snprintf(h->chksum, sizeof(h->chksum), "%06o", sum);
	h->chksum[7] = ' ';
	return write_all(1, h, BLOCK);
}

/* A pax record "LEN key=value\n", LEN counting itself. */
static int pax_record(char *out, size_t cap, const char *key, const char *value)
{
	size_t body = strlen(key) + strlen(value) + 3, len = body + 1;

	while (len < body + snprintf(NULL, 0, "%zu", len))
		len++;
	len = body + (size_t)snprintf(NULL, 0, "%zu", len);
	if (len >= cap)
		return -ENAMETOOLONG;
	snprintf(out, cap, "%zu %s=%s\n", len, key, value);
	return (int)len;
}

static int put_entry(const char *name, const struct stat *st, const char *target)
{
	struct tar_hdr h = { 0 };
	char pax[2 * PATH_MAX + 64];
	size_t n = 0;
	int r;

	if (strlen(name) >= sizeof(h.name)) {
		r = pax_record(pax, sizeof(pax), "path", name);
		if (r < 0)
			return r;
		n += (size_t)r;
	}
	if (S_ISREG(st->st_mode) && (unsigned long long)st->st_size > MAX_USTAR_SIZE) {
		char v[32];

		snprintf(v, sizeof(v), "%llu", (unsigned long long)st->st_size);
		r = pax_record(pax + n, sizeof(pax) - n, "size", v);
		if (r < 0)
			return r;
		n += (size_t)r;
	}
	if (target && strlen(target) >= sizeof(h.linkname)) {
		r = pax_record(pax + n, sizeof(pax) - n, "linkpath", target);
		if (r < 0)
			return r;
		n += (size_t)r;
	}
	if (n) {
		struct tar_hdr x = { 0 };
		char zero[BLOCK] = { 0 };

		snprintf(x.name, sizeof(x.name), "PaxHeader");
		octal(x.mode, sizeof(x.mode), 0644);
		octal(x.size, sizeof(x.size), n);
		octal(x.mtime, sizeof(x.mtime), (unsigned long long)st->st_mtime);
		octal(x.uid, sizeof(x.uid), 0);
		octal(x.gid, sizeof(x.gid), 0);
		x.type = 'x';
		if (put_header(&x) < 0 || write_all(1, pax, n) < 0 ||
		    write_all(1, zero, (BLOCK - n % BLOCK) % BLOCK) < 0)
			return -EIO;
	}
	strncpy(h.name, name, sizeof(h.name));
	octal(h.mode, sizeof(h.mode), st->st_mode & 07777);
	octal(h.uid, sizeof(h.uid), st->st_uid & 07777777);
	octal(h.gid, sizeof(h.gid), st->st_gid & 07777777);
	octal(h.mtime, sizeof(h.mtime), (unsigned long long)st->st_mtime);
	octal(h.size, sizeof(h.size),
	      S_ISREG(st->st_mode) && (unsigned long long)st->st_size <= MAX_USTAR_SIZE
		      ? (unsigned long long)st->st_size
		      : 0);
	h.type = S_ISDIR(st->st_mode) ? '5' : S_ISLNK(st->st_mode) ? '2' : '0';
	if (target)
		strncpy(h.linkname, target, sizeof(h.linkname));
	return put_header(&h) < 0 ? -EIO : 0;
}

/* Copies exactly @size bytes of @fd (padding with zeros if it shrank meanwhile). */
static int put_data(int fd, unsigned long long size)
{
	char buf[64 << 10];
	unsigned long long left = size;

	while (left) {
		size_t want = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		ssize_t n = read(fd, buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			memset(buf, 0, want);
			n = (ssize_t)want;
		}
		if (write_all(1, buf, (size_t)n) < 0)
			return -EIO;
		left -= (unsigned long long)n;
	}
	memset(buf, 0, BLOCK);
	return write_all(1, buf, (BLOCK - size % BLOCK) % BLOCK) < 0 ? -EIO : 0;
}

static int out_at(int at, const char *entry, const char *name, int depth)
{
	struct stat st;
	char target[PATH_MAX];
	int r;

	if (fstatat(at, entry, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		complain("msb: cp: %s: %s", name, strerror(errno));
		return -errno;
	}
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlinkat(at, entry, target, sizeof(target) - 1);

		if (n < 0)
			return -errno;
		target[n] = '\0';
		return put_entry(name, &st, target);
	}
	if (S_ISREG(st.st_mode)) {
		_cleanup_close_ int fd = openat(at, entry, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0) {
			complain("msb: cp: %s: %s", name, strerror(errno));
			return -errno;
		}
		r = put_entry(name, &st, NULL);
		return r < 0 ? r : put_data(fd, (unsigned long long)st.st_size);
	}
	if (!S_ISDIR(st.st_mode))
		return 0; /* devices, fifos, sockets: not copied */
	if (depth > MAX_DEPTH) {
		complain("msb: cp: %s: nested too deep", name);
		return -ELOOP;
	}
	r = put_entry(name, &st, NULL);
	if (r < 0)
		return r;
	{
		int fd = openat(at, entry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		_cleanup_closedir_ DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;

		if (!d) {
			if (fd >= 0)
				close(fd);
			complain("msb: cp: %s: %s", name, strerror(errno));
			return -errno;
		}
		while ((de = readdir(d))) {
			_cleanup_free_ char *child = NULL;

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (asprintf(&child, "%s/%s", name, de->d_name) < 0)
				return -ENOMEM;
			r = out_at(dirfd(d), de->d_name, child, depth + 1);
			if (r == -EIO || r == -ENOMEM)
				return r;
		}
	}
	return 0;
}

static int cp_out(const char *path)
{
	_cleanup_free_ char *copy = strdup(path), *dir = NULL;
	char zero[2 * BLOCK] = { 0 };
	const char *base;
	char *slash;
	_cleanup_close_ int dfd = -1;
	int r;

	if (!copy)
		return 1;
	while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
		copy[strlen(copy) - 1] = '\0';
	slash = strrchr(copy, '/');
	base = slash ? slash + 1 : copy;
	dir = strndup(copy, slash ? (size_t)(slash - copy) + 1 : 0);
	if (!dir)
		return 1;
	if (!*base) /* "/": the whole root, named after nothing; use "." */
		base = ".";
	dfd = open(*dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		complain("msb: cp: %s: %s", path, strerror(errno));
		return 1;
	}
	if (faccessat(dfd, base, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		complain("msb: cp: %s: %s", path, strerror(errno));
		return 1;
	}
	r = out_at(dfd, base, !strcmp(base, ".") ? "root" : base, 0);
	if (r == -EIO || r == -ENOMEM || write_all(1, zero, sizeof(zero)) < 0)
		return 1;
	return r < 0 ? 1 : 0;
}

/* --- in ----------------------------------------------------------------- */

static int read_full(void *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t k = read(0, (char *)p + off, n - off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EIO;
		off += (size_t)k;
	}
	return 0;
}

static int skip(unsigned long long n)
{
	char buf[BLOCK];

	while (n) {
		size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);

		if (read_full(buf, k) < 0)
			return -EIO;
		n -= k;
	}
	return 0;
}

static bool parse_octal(const char *f, size_t len, unsigned long long *out)
{
	unsigned long long v = 0;
	size_t i = 0;

	while (i < len && (f[i] == ' ' || f[i] == '\0'))
		i++;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v > (ULLONG_MAX >> 3))
			return false;
		v = v * 8 + (unsigned long long)(f[i] - '0');
	}
	*out = v;
	return true;
}

static bool header_ok(const struct tar_hdr *h)
{
	unsigned long long want;
	unsigned int sum = 0;

	if (!parse_octal(h->chksum, sizeof(h->chksum), &want))
		return false;
	for (size_t i = 0; i < BLOCK; i++) {
		unsigned char c = ((const unsigned char *)h)[i];

		sum += (i >= 148 && i < 156) ? ' ' : c;
	}
	return sum == want;
}

/* Applies pax records "LEN key=value\n" to @path, @link and @size (the keys that matter here). */
static int parse_pax(char *p, size_t n, char **path, char **link, unsigned long long *size)
{
	while (n) {
		char *sp = memchr(p, ' ', n), *eq, *end;
		unsigned long len = strtoul(p, &end, 10);

		if (!sp || end != sp || len < 5 || len > n || p[len - 1] != '\n')
			return -EBADMSG;
		eq = memchr(sp + 1, '=', len - (size_t)(sp + 1 - p));
		if (!eq)
			return -EBADMSG;
		p[len - 1] = '\0';
		*eq = '\0';
		if (!strcmp(sp + 1, "size")) {
			char *e;

			errno = 0;
			*size = strtoull(eq + 1, &e, 10);
			if (errno || *e || e == eq + 1)
				return -EBADMSG;
		} else if (!strcmp(sp + 1, "path") || !strcmp(sp + 1, "linkpath")) {
			char **dst = sp[1] == 'p' ? path : link;

			free(*dst);
			*dst = strdup(eq + 1);
			if (!*dst)
				return -ENOMEM;
		}
		p += len;
		n -= len;
	}
	return 0;
}

/* No "..", no absolute name, not empty; at most PATH_MAX. */
static bool safe_name(const char *n)
{
	return *n && n[0] != '/' && strlen(n) < PATH_MAX && !path_has_dotdot(n);
}

/*
 * Opens the directory that will hold @rel (a name below @root, which is a
 * directory fd), component by component, never through a symlink.
 * Return: the fd, or -errno; *@last points to the final component.
 */
static int open_parent(int root, const char *rel, const char **last)
{
	_cleanup_free_ char *copy = strdup(rel);
	char *c, *slash;
	int fd;

	*last = rel;
	if (!copy)
		return -ENOMEM;
	fd = dup(root);
	if (fd < 0)
		return -errno;
	c = copy;
	while ((slash = strchr(c, '/'))) {
		int next;

		*slash = '\0';
		if (*c && strcmp(c, ".") != 0) {
			next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			close(fd);
			if (next < 0)
				return -errno;
			fd = next;
		}
		c = slash + 1;
	}
	*last = rel + (c - copy);
	return fd;
}

static int extract(int root, const char *rel, const struct tar_hdr *h, unsigned long long size,
		   const char *link)
{
	unsigned long long mode = 0644, mtime = 0;
	const char *last = rel;
	_cleanup_close_ int dir = open_parent(root, rel, &last);
	int r = 0;

	if (dir < 0) {
		/* The data still has to be read past. */
		if (h->type != '5' && h->type != '2' &&
		    skip(size + (BLOCK - size % BLOCK) % BLOCK) < 0)
			return -EIO;
		return dir;
	}
	parse_octal(h->mode, sizeof(h->mode), &mode);
	parse_octal(h->mtime, sizeof(h->mtime), &mtime);
	mode &= 07777;
	if (h->type == '5') {
		if (*last && strcmp(last, ".") != 0 && mkdirat(dir, last, 0700) < 0 &&
		    errno != EEXIST)
			return -errno;
		if (*last && strcmp(last, ".") != 0) {
			_cleanup_close_ int d =
				openat(dir, last, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (d < 0)
				return -errno;
			fchmod(d, (mode_t)mode);
		}
		return 0;
	}
	if (h->type == '2') {
		unlinkat(dir, last, 0);
		return symlinkat(link, dir, last) < 0 ? -errno : 0;
	}
	{
		_cleanup_close_ int fd = -1;
		char buf[64 << 10];
		unsigned long long left = size;
		struct timespec ts[2] = { { (time_t)mtime, 0 }, { (time_t)mtime, 0 } };

		unlinkat(dir, last, 0);
		fd = openat(dir, last, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			r = -errno;
		while (left) {
			size_t k = left < sizeof(buf) ? (size_t)left : sizeof(buf);

			if (read_full(buf, k) < 0)
				return -EIO;
			if (fd >= 0 && r == 0 && write_all(fd, buf, k) < 0)
				r = -errno;
			left -= k;
		}
		if (skip((BLOCK - size % BLOCK) % BLOCK) < 0)
			return -EIO;
		if (fd >= 0) {
			fchmod(fd, (mode_t)mode);
			futimens(fd, ts);
		}
		return r;
	}
}

static int cp_in(const char *dest)
{
	_cleanup_free_ char *pax_path = NULL, *pax_link = NULL, *top = NULL, *target = NULL;
	unsigned long long pax_size = ULLONG_MAX;
	_cleanup_close_ int root = -1;
	struct stat st;
	bool into;
	int rc = 0;

	/* docker's rule: into an existing directory, else as the path given. */
	into = stat(dest, &st) == 0 && S_ISDIR(st.st_mode);
	if (into) {
		root = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		_cleanup_free_ char *copy = strdup(dest);
		char *slash = copy ? strrchr(copy, '/') : NULL;

		if (!slash)
			return 1;
		target = strdup(slash + 1);
		*slash = '\0';
		root = open(*copy ? copy : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (root < 0 || (!into && (!target || !*target))) {
		complain("msb: cp: %s: %s", dest, root < 0 ? strerror(errno) : "not a valid name");
		return 1;
	}
	for (;;) {
		struct tar_hdr h;
		unsigned long long size;
		char name[PATH_MAX + 160], link[PATH_MAX];
		const char *n, *l;
		_cleanup_free_ char *mapped = NULL;
		size_t tl;
		int r;

		if (read_full(&h, BLOCK) < 0) {
			complain("msb: cp: the archive ended early");
			return 1;
		}
		if (!h.name[0])
			break; /* the end blocks */
		if (!header_ok(&h) || !parse_octal(h.size, sizeof(h.size), &size)) {
			complain("msb: cp: a damaged archive header");
			return 1;
		}
		if (h.type == 'x' || h.type == 'g') {
			_cleanup_free_ char *buf = NULL;

			if (size > (1u << 20) || !(buf = malloc((size_t)size + 1)) ||
			    read_full(buf, (size_t)size) < 0 ||
			    skip((BLOCK - size % BLOCK) % BLOCK) < 0 ||
			    (h.type == 'x' &&
			     parse_pax(buf, (size_t)size, &pax_path, &pax_link, &pax_size) < 0)) {
				complain("msb: cp: a damaged pax header");
				return 1;
			}
			continue;
		}
		if (pax_path) {
			snprintf(name, sizeof(name), "%s", pax_path);
		} else if (h.prefix[0]) {
			snprintf(name, sizeof(name), "%.155s/%.100s", h.prefix, h.name);
		} else {
			snprintf(name, sizeof(name), "%.100s", h.name);
		}
		snprintf(link, sizeof(link), "%s", pax_link ? pax_link : "");
		if (!pax_link)
			snprintf(link, sizeof(link), "%.100s", h.linkname);
		if (pax_size != ULLONG_MAX)
			size = pax_size;
		free(pax_path);
		free(pax_link);
		pax_path = pax_link = NULL;
		pax_size = ULLONG_MAX;
		n = name;
		while (n[0] == '.' && n[1] == '/')
			n += 2;
		/* Directories may be written "name/". */
		while (strlen(n) > 1 && n[strlen(n) - 1] == '/')
			name[strlen(name) - 1] = '\0';
		tl = strcspn(n, "/");
		if (!top && !(top = strndup(n, tl)))
			return 1;
		if (!safe_name(n) || strncmp(n, top, tl) != 0 || strlen(top) != tl) {
			complain("msb: cp: refusing \"%s\" (outside the copied tree)", name);
			return 1;
		}
		/* The top name becomes the target's when copying "as" a new name. */
		if (asprintf(&mapped, "%s%s", into ? top : target, n + tl) < 0)
			return 1;
		l = link;
		if (h.type != '0' && h.type != '\0' && h.type != '5' && h.type != '2') {
			if (skip(size + (BLOCK - size % BLOCK) % BLOCK) < 0)
				return 1;
			continue; /* hard links, devices, fifos: not copied */
		}
		r = extract(root, mapped, &h, h.type == '5' || h.type == '2' ? 0 : size, l);
		if (r == -EIO) {
			complain("msb: cp: the archive ended early");
			return 1;
		}
		if (r < 0) {
			complain("msb: cp: %s: %s", mapped, strerror(-r));
			rc = 1;
		}
	}
	return rc;
}

int agent_cp_main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "out"))
		return cp_out(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "in"))
		return cp_in(argv[2]);
	complain("usage: %s out PATH | in DEST", PROTO_CP_TOOL);
	return 2;
}
