// SPDX-License-Identifier: Apache-2.0
/* --rootfs PATH: pack a directory with gensquashfs, or use a squashfs image as is. */
#define _GNU_SOURCE
#include "sandbox/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/spawn.h"
#include "vm/jail.h"

int is_squashfs(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char magic[4];

	if (fd < 0)
		return -errno;
	if (read(fd, magic, 4) != 4)
		return 0;
	return memcmp(magic, "hsqs", 4) == 0;
}

int disk_image_probe(const char *path, const char **format)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t b[2048];
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return 0;
	if (pread(fd, b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return 0;
	if (!memcmp(b, "QFI\xfb", 4)) {
		*format = "qcow2";
		return 1;
	}
	if (!memcmp(b, "KDMV", 4)) {
		*format = "vmdk";
		return 1;
	}
	/* Raw: a partition table (MBR or GPT) or a filesystem msb boots from. */
	if ((b[510] == 0x55 && b[511] == 0xaa) || !memcmp(b + 512, "EFI PART", 8) ||
	    !memcmp(b, "XFSB", 4) || (b[1024 + 56] == 0x53 && b[1024 + 57] == 0xef)) {
		*format = "raw";
		return 1;
	}
	return 0;
}

int run_tool(char *const argv[], int in_fd, struct msb_err **err)
{
	struct spawn_opts so;
	char out[4096];
	size_t n = 0;
	int p[2], st = 0, r;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return msb_err_sys(err, errno, "pipe");
	so = spawn_opts_stdio(argv, in_fd >= 0 ? in_fd : SPAWN_NULL, p[1], p[1]);
	r = spawn(&so, &pid);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		if (r == -ENOENT)
			return msb_err_set(err, ENOENT, "%s not found in PATH (install %s)",
					   argv[0],
					   strncmp(argv[0], "mkfs", 4) == 0 ? "e2fsprogs"
									    : "squashfs-tools-ng");
		return msb_err_sys(err, -r, "%s", argv[0]);
	}
	for (;;) {
		ssize_t k = read(p[0], out + n, sizeof(out) - 1 - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
		if (n == sizeof(out) - 1) { /* keep the tail, where the error is */
			memmove(out, out + n / 2, n - n / 2);
			n -= n / 2;
		}
	}
	close(p[0]);
	spawn_wait(pid, &st);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	out[n] = '\0';
	while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
	{
		char *last = strrchr(out, '\n');

		return msb_err_set(err, EIO, "%s failed%s%s", argv[0], n ? ": " : "",
				   last ? last + 1 : out);
	}
}

int rootfs_prepare(const char *path, const char *workdir, char **layer, struct msb_err **err)
{
	_cleanup_free_ char *abs = realpath(path, NULL), *out = NULL;
	unsigned int vmm_uid;
	char jobs[16];
	struct stat st;
	int r;

	if (!abs || stat(abs, &st) < 0)
		return msb_err_sys(err, errno, "rootfs %s", path);
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
		r = is_squashfs(abs);
		if (r < 0)
			return msb_err_sys(err, -r, "rootfs %s", path);
		if (!r)
			return msb_err_set(err, EINVAL,
					   "rootfs %s: not a directory or a squashfs image", path);
		if (!jail_readable(abs, &vmm_uid))
			return msb_err_set(err, EACCES,
					   "rootfs %s: not readable by QEMU, which runs as an "
					   "unprivileged uid of its own (make it world-readable: "
					   "chmod o+r)",
					   path);
		*layer = steal_ptr(abs);
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		return msb_err_set(err, EINVAL, "rootfs %s: not a directory or a squashfs image",
				   path);
	out = path_join(workdir, "rootfs.sqfs");
	if (!out)
		return msb_err_sys(err, ENOMEM, "rootfs");
	snprintf(jobs, sizeof(jobs), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
	{
		/* lz4: the fastest to pack and to read back; this image is throwaway. */
		char *argv[] = { "gensquashfs",
				 "--pack-dir",
				 abs,
				 "--compressor",
				 "lz4",
				 "--keep-time",
				 "--keep-xattr",
				 "--num-jobs",
				 jobs,
				 "--quiet",
				 "--force",
				 out,
				 NULL };

		if (run_tool(argv, -1, err) < 0) {
			unlink(out);
			return msb_err_prefix(err, "rootfs %s", path);
		}
	}
	*layer = steal_ptr(out);
	return 0;
}
