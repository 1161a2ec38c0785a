// SPDX-License-Identifier: Apache-2.0
/*
 * Snapshots (see snapshot.h).
 *
 * DOC: Theory of Operation
 * A snapshot is made in a hidden directory next to the others and renamed
 * into place once complete, so a failed or interrupted one is never seen as a
 * snapshot (and leaves nothing behind but a ".new-" directory that the next
 * snapshot_create() of any name sweeps away when its maker is gone). Of a
 * running sandbox, the supervisor writes the disk copy and the memory into
 * that directory itself (CTL "snapshot"), because only it may stop the VM;
 * of a stopped one, the disk is copied here under the sandbox's lock, so it
 * cannot start meanwhile.
 */
#define _GNU_SOURCE
#include "sandbox/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/proto.h"
#include "sandbox/create.h"
#include "sandbox/lifecycle.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

#define SNAP_META "snapshot.json"

int snap_check_name(const char *name, struct msb_err **err)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > SBX_NAME_MAX)
		return msb_err_set(err, EINVAL, "invalid snapshot name \"%s\" (1 to %d characters)",
				   name ? name : "", SBX_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9');

		if (!alnum && (i == 0 || (ch != '-' && ch != '_' && ch != '.')))
			return msb_err_set(err, EINVAL,
					   "invalid snapshot name \"%s\" (letters, digits, '-', "
					   "'_' and '.', starting with a letter or digit)",
					   name);
	}
	return 0;
}

static char *snap_root(void)
{
	return path_join(msb_home(), "snapshots");
}

char *snap_dir(const char *name)
{
	_cleanup_free_ char *root = snap_root();

	return root ? path_join(root, name) : NULL;
}

/*
 * The sandbox's layers, linked into @dir/layers/N (a snapshot must not lose
 * them to `msb rmi`), and its configuration pointing at them.
 */
static int take_layers(const struct sbx_spec *spec, int dirfd, const char *dir,
		       struct msb_err **err)
{
	if (mkdirat(dirfd, "layers", 0700) < 0)
		return msb_err_sys(err, errno, "%s/layers", dir);
	for (size_t i = 0; spec->layers[i]; i++) {
		char name[32];
		int r;

		snprintf(name, sizeof(name), "layers/%zu", i);
		r = copy_at(AT_FDCWD, spec->layers[i], dirfd, name, true);
		if (r < 0)
			return msb_err_sys(err, -r, "layer %s", spec->layers[i]);
	}
	return 0;
}

/* Removes the ".new-" directories of snapshots whose makers are gone (a maker locks its own). */
static void sweep(const char *root)
{
	sweep_unlocked(root, ".new-");
}

/* A running sandbox: its supervisor pauses it and writes into @dir. */
static int take_live(const char *sandbox, const char *dir, bool full, struct snap_result *res,
		     struct msb_err **err)
{
	json_t *req = json_pack("{s:s,s:s,s:b}", "op", "snapshot", "dir", dir, "full", full);
	_cleanup_free_ char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_t *reply = NULL;

	json_decref(req);
	if (!text)
		return msb_err_sys(err, ENOMEM, "snapshot");
	if (sbx_ask(sandbox, PROTO_CTL, text, &reply, err) < 0)
		return -1;
	res->live = true;
	res->pause_ms = (uint64_t)json_integer_value(json_object_get(reply, "pause_ms"));
	res->quiesce_ms = (uint64_t)json_integer_value(json_object_get(reply, "quiesce_ms"));
	res->memory_bytes = (uint64_t)json_integer_value(json_object_get(reply, "memory_bytes"));
	res->disk_bytes = (uint64_t)json_integer_value(json_object_get(reply, "disk_bytes"));
	json_decref(reply);
	return 0;
}

/* A stopped sandbox: its disk, copied while its lock keeps it from starting. */
static int take_stopped(const char *sandbox, int dirfd, struct snap_result *res,
			struct msb_err **err)
{
	_cleanup_free_ char *sdir = sbx_dir(sandbox);
	_cleanup_close_ int sfd = sdir ? open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	_cleanup_close_ int lock = -1, in = -1, out = -1;
	long long n;
	int r;

	if (sfd < 0)
		return msb_err_set(err, ENOENT, "sandbox %s: not found", sandbox);
	lock = openat(sfd, SBX_LOCK_FILE, O_RDWR | O_CLOEXEC);
	r = lock < 0 ? -errno : sbx_lock_take(lock);
	if (r == -EAGAIN || r == -EACCES)
		return msb_err_set(err, EBUSY, "sandbox %s is starting; try again", sandbox);
	if (r < 0)
		return msb_err_sys(err, -r, "sandbox %s: lock", sandbox);
	in = openat(sfd, "upper.ext4", O_RDONLY | O_CLOEXEC);
	out = openat(dirfd, "upper.ext4", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (in < 0 || out < 0)
		return msb_err_sys(err, errno, "sandbox %s: its writable disk", sandbox);
	n = copy_sparse(in, out);
	if (n < 0)
		return msb_err_sys(err, (int)-n, "copying sandbox %s's writable disk", sandbox);
	res->live = false;
	res->disk_bytes = (uint64_t)n;
	return 0;
}

static int write_meta(int dirfd, const char *name, const char *sandbox, bool full,
		      const struct sbx_spec *spec, const struct snap_result *res,
		      struct msb_err **err)
{
	char ts[40];
	json_t *o;
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int fd = -1;

	log_timestamp(ts, sizeof(ts));
	o = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?,s:i,s:i,s:i,s:b,s:I,s:I,s:I}", "name", name,
		      "created_at", ts, "sandbox", sandbox, "kind", full ? "full" : "disk", "image",
		      spec->image, "image_digest", spec->image_digest, "cpus", (int)spec->cpus,
		      "memory_mib", (int)spec->mem_mib, "disk_mib", (int)spec->upper_mib, "live",
		      res->live, "pause_ms", (json_int_t)res->pause_ms, "memory_bytes",
		      (json_int_t)res->memory_bytes, "disk_bytes", (json_int_t)res->disk_bytes);
	text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (!text)
		return msb_err_sys(err, ENOMEM, "snapshot %s", name);
	fd = openat(dirfd, SNAP_META, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || write_all(fd, "\n", 1) < 0 ||
	    fsync(fd) < 0)
		return msb_err_sys(err, errno, "snapshot %s", name);
	return 0;
}

/*
 * Takes the snapshot into a new hidden directory, returned in *@tmp (held
 * locked through *@lockfd so no sweep() removes it). Nothing is left on failure.
 */
static int snap_make(const char *name, const char *sandbox, bool full, char **tmp, int *lockfd,
		     struct snap_result *res, struct msb_err **err)
{
	_cleanup_free_ char *root = snap_root(), *sdir = NULL;
	_cleanup_close_ int sfd = -1;
	struct sbx_spec spec = { 0 };
	int dirfd = -1, r = -1;

	*tmp = NULL;
	*lockfd = -1;
	memset(res, 0, sizeof(*res));
	if (!root || !(sdir = sbx_dir(sandbox)))
		return msb_err_sys(err, ENOMEM, "snapshot %s", name);
	if (sbx_spec_load(sandbox, &spec, err) < 0)
		return -1;
	if (spec.disk_image || spec.rootfs_bind) {
		msb_err_set(err, EINVAL,
			    "sandbox %s runs on %s, which msb cannot snapshot; snapshot an image's "
			    "sandbox, or copy the disk itself",
			    sandbox, spec.disk_image ? "a disk image" : "a live host directory");
		goto out;
	}
	if (!sbx_alive(sandbox) && full) {
		msb_err_set(err, EINVAL,
			    "sandbox %s is not running: --full takes its memory (start it with "
			    "'msb start %s')",
			    sandbox, sandbox);
		goto out;
	}
	if (!sbx_alive(sandbox) && !spec.upper_mib) {
		msb_err_set(err, EINVAL, "sandbox %s has no writable disk to snapshot", sandbox);
		goto out;
	}
	if ((r = mkdir_p(root, 0700)) < 0) {
		msb_err_sys(err, -r, "%s", root);
		r = -1;
		goto out;
	}
	r = -1;
	sweep(root);
	if (asprintf(tmp, "%s/.new-%s-XXXXXX", root, name) < 0) {
		*tmp = NULL;
		msb_err_sys(err, ENOMEM, "snapshot %s", name);
		goto out;
	}
	if (!mkdtemp(*tmp)) {
		msb_err_sys(err, errno, "%s", root);
		free(steal_ptr(*tmp));
		goto out;
	}
	dirfd = open(*tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sfd = open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || flock(dirfd, LOCK_EX | LOCK_NB) < 0 || sfd < 0) {
		msb_err_sys(err, errno, "snapshot %s", name);
		goto fail;
	}
	if (take_layers(&spec, dirfd, *tmp, err) < 0)
		goto fail;
	{
		int k = copy_at(sfd, "config.json", dirfd, "config.json", false);

		if (!k)
			k = copy_dir_files_at(sfd, "scripts", dirfd);
		if (k < 0) {
			msb_err_sys(err, -k, "snapshot %s: the sandbox's configuration", name);
			goto fail;
		}
	}
	if (sbx_alive(sandbox) ? take_live(sandbox, *tmp, full, res, err) < 0
			       : take_stopped(sandbox, dirfd, res, err) < 0)
		goto fail;
	if (write_meta(dirfd, name, sandbox, full, &spec, res, err) < 0)
		goto fail;
	*lockfd = dirfd;
	dirfd = -1;
	r = 0;
	goto out;
fail:
	rm_rf(*tmp);
	free(steal_ptr(*tmp));
out:
	if (dirfd >= 0)
		close(dirfd);
	sbx_spec_free(&spec);
	return r;
}

int snap_create(const char *name, const char *sandbox, bool full, struct snap_result *res,
		struct msb_err **err)
{
	_cleanup_free_ char *root = snap_root(), *final = NULL, *tmp = NULL;
	_cleanup_close_ int lock = -1;
	struct stat st;

	memset(res, 0, sizeof(*res));
	if (snap_check_name(name, err) < 0 || sbx_check_name(sandbox, err) < 0)
		return -1;
	if (!root || !(final = path_join(root, name)))
		return msb_err_sys(err, ENOMEM, "snapshot %s", name);
	if (stat(final, &st) == 0)
		return msb_err_set(
			err, EEXIST,
			"snapshot %s already exists (remove it with 'msb snapshot rm %s')", name,
			name);
	if (snap_make(name, sandbox, full, &tmp, &lock, res, err) < 0)
		return -1;
	if (rename(tmp, final) < 0) {
		if (errno == EEXIST || errno == ENOTEMPTY)
			msb_err_set(err, EEXIST, "snapshot %s already exists", name);
		else
			msb_err_sys(err, errno, "snapshot %s", name);
		rm_rf(tmp);
		return -1;
	}
	fsync_path(root);
	return 0;
}

int snap_branch(const char *sandbox, const char *new_name, struct snap_result *res,
		struct msb_err **err)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int lock = -1;
	struct sbx_create_opts o = { .name = new_name, .quiet = true, .cancel_fd = -1 };
	struct sbx_made m;
	struct sbx_boot_info info;
	int r;

	if (sbx_check_name(sandbox, err) < 0 || sbx_check_name(new_name, err) < 0)
		return -1;
	if (!sbx_exists(sandbox))
		return msb_err_set(err, ENOENT, "sandbox %s: not found", sandbox);
	if (sbx_exists(new_name))
		return msb_err_set(err, EEXIST,
				   "sandbox %s already exists (remove it with 'msb rm %s')",
				   new_name, new_name);
	if (!sbx_alive(sandbox))
		return msb_err_set(err, EINVAL,
				   "sandbox %s is not running: a branch forks a running sandbox "
				   "(start it, or use 'msb snapshot create' and '--from-snapshot')",
				   sandbox);
	if (snap_make(new_name, sandbox, true, &tmp, &lock, res, err) < 0)
		return -1;
	o.from_snapshot = sandbox;
	o.from_snapshot_dir = tmp;
	r = sbx_create(&o, &m, err);
	if (r == 0) {
		r = sbx_boot(m.name, 0, m.lock, &info, err);
		if (r < 0)
			sbx_discard(&m);
		else
			sbx_made_release(&m);
	}
	rm_rf(tmp);
	return r;
}

int snap_info(const char *name, json_t **out, struct msb_err **err)
{
	_cleanup_free_ char *dir = NULL;

	*out = NULL;
	if (snap_check_name(name, err) < 0)
		return -1;
	dir = snap_dir(name);
	if (!dir)
		return msb_err_sys(err, ENOMEM, "snapshot %s", name);
	return snap_info_at(name, dir, out, err);
}

int snap_info_at(const char *name, const char *dir, json_t **out, struct msb_err **err)
{
	_cleanup_free_ char *meta = path_join(dir, SNAP_META);
	json_error_t je;

	*out = NULL;
	if (!meta)
		return msb_err_sys(err, ENOMEM, "snapshot %s", name);
	if (access(dir, F_OK) < 0)
		return msb_err_set(err, ENOENT, "snapshot %s: not found", name);
	*out = json_load_file(meta, 0, &je);
	if (!*out || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return msb_err_set(err, EINVAL, "snapshot %s is damaged (%s)", name, je.text);
	}
	json_object_set_new(*out, "path", json_string(dir));
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int snap_list(json_t **out, struct msb_err **err)
{
	_cleanup_free_ char *root = snap_root();
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	json_t *a = json_array();

	*out = NULL;
	if (!root || !a) {
		json_decref(a);
		return msb_err_sys(err, ENOMEM, "snapshots");
	}
	d = opendir(root);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || snap_check_name(de->d_name, NULL) < 0)
			continue;
		if (n == cap) {
			char **g = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));

			if (!g)
				break;
			names = g;
		}
		names[n] = strdup(de->d_name);
		if (names[n])
			n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		json_t *o = NULL;

		if (snap_info(names[i], &o, NULL) == 0)
			json_array_append_new(a, o);
		free(names[i]);
	}
	free(names);
	*out = a;
	return 0;
}

int snap_remove(const char *name, struct msb_err **err)
{
	_cleanup_free_ char *dir = NULL, *root = snap_root(), *gone = NULL;

	if (snap_check_name(name, err) < 0)
		return -1;
	dir = snap_dir(name);
	if (!dir || !root)
		return msb_err_sys(err, ENOMEM, "snapshot %s", name);
	if (access(dir, F_OK) < 0)
		return msb_err_set(err, ENOENT, "snapshot %s: not found", name);
	/* Out of sight at once, then deleted: never half a snapshot under its name. */
	if (asprintf(&gone, "%s/.new-rm-%s-%d", root, name, (int)getpid()) < 0)
		return msb_err_sys(err, ENOMEM, "snapshot %s", name);
	if (rename(dir, gone) < 0)
		return msb_err_sys(err, errno, "snapshot %s", name);
	rm_rf(gone);
	return 0;
}
