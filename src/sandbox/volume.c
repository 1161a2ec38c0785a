// SPDX-License-Identifier: Apache-2.0
/*
 * Named volumes and the -v option (see volume.h).
 *
 * DOC: Theory of Operation
 * A volume is made in a hidden temporary directory under volumes/ and renamed
 * into place with RENAME_NOREPLACE, so a half-made volume never shows under
 * its name and two concurrent creates of one name cannot both succeed. msb
 * removes a volume only when volume.json says it made it. A quota volume is
 * an ext4 image; since two kernels writing one ext4 would corrupt it, a
 * sandbox that mounts it takes a lock for its whole run (exclusive to write,
 * shared to read) and records its name in the lock file for the message the
 * next one gets.
 */
#define _GNU_SOURCE
#include "sandbox/volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "sandbox/lifecycle.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/strv.h"
#include "vm/jail.h"

#define VOL_JSON "volume.json"
#define VOL_DATA "data"
#define VOL_DISK "disk.ext4"
#define VOL_LOCK "lock"

static char *vol_root(void)
{
	return path_join(msb_home(), "volumes");
}

static char *vol_dir(const char *name)
{
	_cleanup_free_ char *root = vol_root();

	return root ? path_join(root, name) : NULL;
}

int vol_check_name(const char *name, struct msb_err **err)
{
	if (valid_sandbox_name(name))
		return 0;
	if (strlen(name) > VOL_NAME_MAX)
		return msb_err_set(err, EINVAL,
				   "invalid volume name \"%.40s...\" (at most %d characters)", name,
				   VOL_NAME_MAX);
	return msb_err_set(err, EINVAL,
			   "invalid volume name \"%s\" (use letters, digits, '_', '.' and '-', "
			   "starting with a letter or digit)",
			   name);
}

int vol_create(const char *name, uint64_t size, struct msb_err **err)
{
	_cleanup_free_ char *root = vol_root(), *dir = vol_dir(name), *tmp = NULL, *text = NULL;
	_cleanup_free_ char *inner = NULL, *meta = NULL;
	_cleanup_close_ int lock = -1;
	char ts[40];
	json_t *o;
	int r;

	if (vol_check_name(name, err) < 0)
		return -1;
	if (size && size < VOL_MIN_QUOTA)
		return msb_err_set(err, EINVAL, "volume size %llu bytes is too small (at least 8M)",
				   (unsigned long long)size);
	if (!root || !dir)
		return msb_err_sys(err, ENOMEM, "volume %s", name);
	r = mkdir_p(root, 0700);
	if (r < 0)
		return msb_err_sys(err, -r, "%s", root);
	if (access(dir, F_OK) == 0)
		return msb_err_set(err, EEXIST,
				   "volume %s already exists (remove it with 'msb volume rm %s')",
				   name, name);
	if (asprintf(&tmp, "%s/.tmp-%s-%d", root, name, (int)getpid()) < 0) {
		tmp = NULL;
		return msb_err_sys(err, ENOMEM, "volume %s", name);
	}
	/* Temporaries of makers that died; ours stays locked while it is written. */
	sweep_unlocked(root, ".tmp-");
	rm_rf(tmp);
	if (mkdir(tmp, 0700) < 0)
		return msb_err_sys(err, errno, "%s", tmp);
	lock = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock < 0 || flock(lock, LOCK_EX) < 0) {
		r = msb_err_sys(err, errno, "%s", tmp);
		goto fail;
	}
	inner = path_join(tmp, size ? VOL_DISK : VOL_DATA);
	meta = path_join(tmp, VOL_JSON);
	if (!inner || !meta) {
		r = msb_err_sys(err, ENOMEM, "volume %s", name);
		goto fail;
	}
	if (size) {
		if (sbx_make_ext4(inner, size, "msb-volume", err) < 0) {
			r = msb_err_prefix(err, "volume %s", name);
			goto fail;
		}
	} else if (mkdir(inner, 0755) < 0) {
		r = msb_err_sys(err, errno, "%s", inner);
		goto fail;
	}
	log_timestamp(ts, sizeof(ts));
	o = json_pack("{s:s, s:s, s:I, s:s, s:b}", "name", name, "kind", size ? "quota" : "dir",
		      "size", (json_int_t)size, "created_at", ts, "created_by_msb", 1);
	text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (!text || (r = write_file_atomic(meta, text, strlen(text), 0600)) < 0) {
		r = msb_err_sys(err, text ? -r : ENOMEM, "volume %s", name);
		goto fail;
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) < 0) {
		r = errno == EEXIST ? msb_err_set(err, EEXIST, "volume %s already exists", name)
				    : msb_err_sys(err, errno, "%s", dir);
		goto fail;
	}
	return 0;
fail:
	rm_rf(tmp);
	return r;
}

int vol_load(const char *name, struct vol_info *out, struct msb_err **err)
{
	_cleanup_free_ char *dir = NULL, *meta = NULL;
	json_error_t je;
	const char *kind, *ts;
	json_t *o;

	memset(out, 0, sizeof(*out));
	if (vol_check_name(name, err) < 0)
		return -1;
	dir = vol_dir(name);
	meta = dir ? path_join(dir, VOL_JSON) : NULL;
	if (!meta)
		return msb_err_sys(err, ENOMEM, "volume %s", name);
	o = json_load_file(meta, 0, &je);
	if (!o) {
		if (access(dir, F_OK) < 0)
			return msb_err_set(err, ENOENT,
					   "no such volume: %s (create it with 'msb volume create "
					   "%s')",
					   name, name);
		return msb_err_set(err, EINVAL, "%s: %s", meta, je.text);
	}
	kind = json_string_value(json_object_get(o, "kind"));
	ts = json_string_value(json_object_get(o, "created_at"));
	snprintf(out->name, sizeof(out->name), "%s", name);
	snprintf(out->created_at, sizeof(out->created_at), "%s", ts ? ts : "");
	out->quota = kind && !strcmp(kind, "quota");
	out->size = (uint64_t)json_integer_value(json_object_get(o, "size"));
	if (!kind || (strcmp(kind, "dir") != 0 && strcmp(kind, "quota") != 0) ||
	    !json_is_true(json_object_get(o, "created_by_msb")) || (out->quota && !out->size)) {
		json_decref(o);
		return msb_err_set(err, EINVAL, "%s: not a volume msb made", meta);
	}
	json_decref(o);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct vol_info *)a)->name, ((const struct vol_info *)b)->name);
}

int vol_list(struct vol_info **out, size_t *n, struct msb_err **err)
{
	_cleanup_free_ char *root = vol_root();
	struct vol_info *v = NULL;
	struct dirent *de;
	size_t cap = 0;
	DIR *d;

	*out = NULL;
	*n = 0;
	if (!root)
		return msb_err_sys(err, ENOMEM, "volumes");
	d = opendir(root);
	if (!d)
		return errno == ENOENT ? 0 : msb_err_sys(err, errno, "%s", root);
	while ((de = readdir(d))) {
		struct msb_err *e = NULL;

		if (de->d_name[0] == '.')
			continue;
		if (*n == cap) {
			struct vol_info *nv = reallocarray(v, cap ? cap * 2 : 8, sizeof(*v));

			if (!nv) {
				closedir(d);
				free(v);
				return msb_err_sys(err, ENOMEM, "volumes");
			}
			v = nv;
			cap = cap ? cap * 2 : 8;
		}
		if (vol_load(de->d_name, &v[*n], &e) == 0)
			(*n)++;
		msb_err_free(e);
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(*v), by_name);
	*out = v;
	return 0;
}

char *vol_data(const struct vol_info *v)
{
	_cleanup_free_ char *dir = vol_dir(v->name);

	return dir ? path_join(dir, v->quota ? VOL_DISK : VOL_DATA) : NULL;
}

static uint64_t usage_at(int at, const char *name, int depth)
{
	struct stat st;
	uint64_t sum;
	struct dirent *de;
	DIR *d;
	int fd;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	sum = (uint64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode) || depth > 256)
		return sum;
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return sum;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			sum += usage_at(dirfd(d), de->d_name, depth + 1);
	closedir(d);
	return sum;
}

uint64_t vol_usage(const struct vol_info *v)
{
	_cleanup_free_ char *p = vol_data(v);

	return p ? usage_at(AT_FDCWD, p, 0) : 0;
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **vol_users(const char *name)
{
	_cleanup_free_ char *root = path_join(msb_home(), "sandboxes");
	struct strv users = { 0 };
	struct dirent *de;
	DIR *d = root ? opendir(root) : NULL;

	while (d && (de = readdir(d))) {
		struct sbx_spec s;
		struct msb_err *e = NULL;

		if (de->d_name[0] == '.' || sbx_spec_load(de->d_name, &s, &e) < 0) {
			msb_err_free(e);
			continue;
		}
		for (size_t i = 0; i < s.nvolumes; i++) {
			if (s.volumes[i].named && !strcmp(s.volumes[i].source, name)) {
				strv_push(&users, s.name);
				break;
			}
		}
		sbx_spec_free(&s);
	}
	if (d)
		closedir(d);
	if (users.n > 1)
		qsort(users.v, users.n, sizeof(char *), by_str);
	return strv_steal(&users);
}

int vol_remove(const char *name, bool force, struct msb_err **err)
{
	_cleanup_strv_ char **users = NULL;
	_cleanup_free_ char *root = NULL, *dir = NULL, *hidden = NULL;
	struct vol_info v;
	int r;

	if (vol_load(name, &v, err) < 0)
		return -1;
	users = vol_users(name);
	/* Not even -f takes a volume from under a running sandbox. */
	for (char **u = users; u && *u; u++)
		if (sbx_alive(*u))
			return msb_err_set(err, EBUSY,
					   "volume %s is in use by running sandbox %s (stop it "
					   "first)",
					   name, *u);
	if (users && users[0] && !force)
		return msb_err_set(err, EBUSY,
				   "volume %s is in use by sandbox %s%s (remove the sandbox first, "
				   "or use -f)",
				   name, users[0], users[1] ? " and others" : "");
	/* Gone from its name at once, then deleted: never seen half-removed. */
	root = vol_root();
	dir = vol_dir(name);
	if (!root || !dir || asprintf(&hidden, "%s/.rm-%s-%d", root, name, (int)getpid()) < 0) {
		hidden = NULL;
		return msb_err_sys(err, ENOMEM, "volume %s", name);
	}
	if (rename(dir, hidden) < 0)
		return msb_err_sys(err, errno, "%s", dir);
	r = rm_rf(hidden);
	if (r < 0)
		return msb_err_sys(err, -r, "removing %s", hidden);
	return 0;
}

/* --- -v SOURCE:DEST[:OPTIONS] ------------------------------------------ */

/* An absolute path without empty, "." or ".." components, not "/". */
static bool clean_dest(const char *p)
{
	if (p[0] != '/' || !p[1] || strlen(p) > 1024 || strchr(p, ','))
		return false;
	for (const char *c = p; *c; c++) {
		if (c[0] != '/')
			continue;
		if (c[1] == '/' || c[1] == '\0')
			return false;
		if (c[1] == '.' &&
		    (c[2] == '/' || c[2] == '\0' || (c[2] == '.' && (c[3] == '/' || c[3] == '\0'))))
			return false;
	}
	return true;
}

static int parse_options(const char *opts, struct sbx_volume *v, const char *arg,
			 struct msb_err **err)
{
	_cleanup_free_ char *copy = strdup(opts);
	char *save = NULL;

	if (!copy)
		return msb_err_sys(err, ENOMEM, "-v");
	for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (!strcmp(o, "ro"))
			v->readonly = true;
		else if (!strcmp(o, "rw"))
			v->readonly = false;
		else if (!strcmp(o, "noexec"))
			v->noexec = true;
		else
			return msb_err_set(err, EINVAL,
					   "invalid -v \"%s\": unknown option \"%s\" (use ro, rw "
					   "or noexec)",
					   arg, o);
	}
	return 0;
}

static int host_source(const char *src, const char *arg, struct sbx_volume *v, struct msb_err **err)
{
	struct stat st;

	if (lstat(src, &st) < 0)
		return msb_err_set(err, errno,
				   "invalid -v \"%s\": %s: %s (the source must exist on the host)",
				   arg, src, strerror(errno));
	if (S_ISLNK(st.st_mode)) {
		_cleanup_free_ char *target = realpath(src, NULL);

		return msb_err_set(err, EINVAL,
				   "invalid -v \"%s\": %s is a symlink; give the path it points "
				   "to%s%s%s",
				   arg, src, target ? " (" : "", target ? target : "",
				   target ? ")" : "");
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return msb_err_set(
			err, EINVAL,
			"invalid -v \"%s\": %s is neither a directory nor a regular file", arg,
			src);
	/* The VMM serves it as this user: say so now rather than fail inside the guest. */
	if (access(src, S_ISDIR(st.st_mode) ? R_OK | X_OK : R_OK) < 0)
		return msb_err_set(err, errno, "invalid -v \"%s\": %s: %s (msb runs as uid %u)",
				   arg, src, strerror(errno), (unsigned int)getuid());
	v->source = realpath(src, NULL);
	if (!v->source)
		return msb_err_sys(err, errno, "%s", src);
	return 0;
}

int sbx_parse_volume(const char *arg, struct sbx_volume *out, struct msb_err **err)
{
	_cleanup_free_ char *copy = strdup(arg);
	struct sbx_volume v = { 0 };
	char *src, *dst, *opts;
	struct vol_info vi;

	memset(out, 0, sizeof(*out));
	if (!copy)
		return msb_err_sys(err, ENOMEM, "-v");
	src = copy;
	dst = strchr(src, ':');
	if (!dst || dst == src)
		return msb_err_set(err, EINVAL,
				   "invalid -v \"%s\" (use SOURCE:DEST[:ro|rw|noexec], for example "
				   "./project:/app)",
				   arg);
	*dst++ = '\0';
	opts = strchr(dst, ':');
	if (opts)
		*opts++ = '\0';
	if (!clean_dest(dst))
		return msb_err_set(err, EINVAL,
				   "invalid -v \"%s\": the destination must be an absolute path "
				   "other than / (no '.', '..' or ',')",
				   arg);
	if (opts && parse_options(opts, &v, arg, err) < 0)
		return -1;
	if (src[0] == '/' || src[0] == '.') {
		if (host_source(src, arg, &v, err) < 0)
			return -1;
	} else {
		if (vol_load(src, &vi, err) < 0)
			return msb_err_prefix(err, "invalid -v \"%s\"", arg);
		v.named = true;
		v.source = strdup(src);
	}
	v.dest = strdup(dst);
	if (!v.source || !v.dest) {
		sbx_volume_free(&v);
		return msb_err_sys(err, ENOMEM, "-v");
	}
	*out = v;
	return 0;
}

void sbx_volume_free(struct sbx_volume *v)
{
	free(v->source);
	free(v->dest);
	memset(v, 0, sizeof(*v));
}

/* --- at start ---------------------------------------------------------- */

/* Takes a quota volume's lock for this run; refuses a second writer by name. */
static int lock_quota(const struct vol_info *vi, bool ro, const char *sandbox, struct vol_plan *p,
		      struct msb_err **err)
{
	_cleanup_free_ char *dir = vol_dir(vi->name), *path = NULL;
	char holder[VOL_NAME_MAX + 1] = "";
	int fd;

	path = dir ? path_join(dir, VOL_LOCK) : NULL;
	if (!path)
		return msb_err_sys(err, ENOMEM, "volume %s", vi->name);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return msb_err_sys(err, errno, "%s", path);
	if (flock(fd, (ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);

		holder[n > 0 ? n : 0] = '\0';
		close(fd);
		if (*holder)
			return msb_err_set(
				err, EBUSY,
				"volume %s is being written by sandbox %s: a volume with a "
				"size quota has one writer and no readers meanwhile (stop "
				"%s first)",
				vi->name, holder, holder);
		return msb_err_set(err, EBUSY,
				   "volume %s is mounted read-only by a running sandbox: a volume "
				   "with a size quota has one writer and no readers meanwhile",
				   vi->name);
	}
	/* The file names the writer, and only while there is one. */
	if (ftruncate(fd, 0) < 0 || (!ro && pwrite(fd, sandbox, strlen(sandbox), 0) < 0))
		log_warn("%s: %s", path, strerror(errno));
	p->locks[p->nlocks++] = fd;
	return 0;
}

/*
 * A host source was stored resolved when the sandbox was made; a symlink on
 * its path now (the guest of this or another sandbox may have planted one)
 * is refused, never followed. The jail binds what it opens the same way.
 */
static int source_unchanged(const struct sbx_spec *s, const char *what, const char *path,
			    struct msb_err **err)
{
	int fd = jail_open_nofollow(path);

	if (fd == -ELOOP)
		return msb_err_set(err, ELOOP,
				   "sandbox %s: %s %s is now reached through a symlink; msb "
				   "does not follow it (make it a directory again, or recreate "
				   "the sandbox with the path it should use)",
				   s->name, what, path);
	if (fd >= 0)
		close(fd);
	return 0;
}

int vol_plan(const struct sbx_spec *s, struct vol_plan *p, struct msb_err **err)
{
	memset(p, 0, sizeof(*p));
	/* A live root directory is share 0. */
	if (s->rootfs_bind && s->rootfs) {
		struct stat st;

		if (stat(s->rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
			return msb_err_set(err, ENOENT, "sandbox %s: root directory %s: %s",
					   s->name, s->rootfs,
					   errno ? strerror(errno) : "not a directory");
		if (source_unchanged(s, "root directory", s->rootfs, err) < 0)
			return -1;
		p->share[0] = strdup(s->rootfs);
		if (!p->share[0])
			return msb_err_sys(err, ENOMEM, "sandbox %s", s->name);
		p->nshares = 1;
	}
	for (size_t i = 0; i < s->nvolumes && i < SBX_MAX_VOLUMES; i++) {
		const struct sbx_volume *v = &s->volumes[i];
		struct vol_info vi;
		char *path;

		if (v->named) {
			if (vol_load(v->source, &vi, err) < 0)
				return msb_err_prefix(err, "sandbox %s", s->name);
			path = vol_data(&vi);
			if (!path)
				return msb_err_sys(err, ENOMEM, "volume %s", v->source);
			if (!vi.quota) {
				/* msb's own directory: shared by its path without symlinks. */
				char *real = realpath(path, NULL);

				if (real) {
					free(path);
					path = real;
				}
			}
			if (vi.quota) {
				p->index[i] = (uint32_t)p->ndisks;
				p->is_disk[i] = true;
				p->disk_ro[p->ndisks] = v->readonly;
				p->disk[p->ndisks++] = path;
				if (lock_quota(&vi, v->readonly, s->name, p, err) < 0)
					return -1;
				continue;
			}
		} else {
			struct stat st;

			if (stat(v->source, &st) < 0)
				return msb_err_set(
					err, errno,
					"sandbox %s: volume source %s: %s (it must exist "
					"on the host)",
					s->name, v->source, strerror(errno));
			if (source_unchanged(s, "volume source", v->source, err) < 0)
				return -1;
			path = strdup(v->source);
			if (!path)
				return msb_err_sys(err, ENOMEM, "volume %s", v->source);
		}
		p->index[i] = (uint32_t)p->nshares;
		p->share_ro[p->nshares] = v->readonly;
		p->share[p->nshares++] = path;
	}
	return 0;
}

void vol_plan_free(struct vol_plan *p)
{
	for (size_t i = 0; i < p->nshares; i++)
		free((char *)p->share[i]);
	for (size_t i = 0; i < p->ndisks; i++)
		free(p->disk[i]);
	for (size_t i = 0; i < p->nlocks; i++)
		close(p->locks[i]);
	memset(p, 0, sizeof(*p));
}
