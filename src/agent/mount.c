// SPDX-License-Identifier: Apache-2.0
/* Guest root assembly: layer disks + writable upper -> overlayfs -> switch root. */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"

#define MAX_LAYERS 128
#define RUN_DIR "/run/msb"

/* The upper filesystem's root, kept so shutdown can remount it read-only. */
static int upper_fd = -1;

static bool valid_hostname(const char *s)
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

int boot_parse_cmdline(const char *cmdline, struct boot_params *bp)
{
	char buf[4096], *tok, *save = NULL;

	memset(bp, 0, sizeof(*bp));
	snprintf(bp->hostname, sizeof(bp->hostname), "msb");
	snprintf(buf, sizeof(buf), "%s", cmdline);
	for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (strncmp(tok, "msb.layers=", 11) == 0) {
			char *end;
			long n = strtol(tok + 11, &end, 10);

			if (*end || n < 0 || n > MAX_LAYERS)
				return -EINVAL;
			bp->layers = (int)n;
		} else if (strcmp(tok, "msb.upper=disk") == 0) {
			bp->upper_disk = true;
		} else if (strcmp(tok, "msb.upper=tmpfs") == 0) {
			bp->upper_disk = false;
		} else if (strncmp(tok, "msb.hostname=", 13) == 0) {
			if (!valid_hostname(tok + 13))
				return -EINVAL;
			snprintf(bp->hostname, sizeof(bp->hostname), "%s", tok + 13);
		} else if (strcmp(tok, "msb.poweroff") == 0) {
			bp->poweroff = true;
		}
	}
	return 0;
}

static int mkdir_one(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int mount_fs(const char *src, const char *dst, const char *type,
		    unsigned long flags, const char *data)
{
	int r = mkdir_one(dst, 0755);

	if (r < 0)
		return r;
	if (mount(src, dst, type, flags, data) < 0) {
		r = -errno;
		alog("mount %s on %s (%s): %s", src, dst, type, strerror(errno));
		return r;
	}
	return 0;
}

int mount_early(void)
{
	int r;

	r = mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	if (r < 0)
		return r;
	r = mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (r < 0)
		return r;
	return mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* Finds the vdX whose virtio serial is @serial. Return: 0 and "/dev/vdX" in @dev. */
static int find_disk(const char *serial, char *dev, size_t len)
{
	_cleanup_closedir_ DIR *d = opendir("/sys/block");
	struct dirent *de;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char path[300], got[64] = "";
		if (strlen(de->d_name) > 32)
			continue;
		_cleanup_close_ int fd = -1;
		ssize_t n;

		if (strncmp(de->d_name, "vd", 2) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/serial", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, got, sizeof(got) - 1);
		if (n <= 0)
			continue;
		got[n] = '\0';
		got[strcspn(got, "\n")] = '\0';
		if (strcmp(got, serial) == 0) {
			snprintf(dev, len, "/dev/%.32s", de->d_name);
			return 0;
		}
	}
	return -ENODEV;
}

static int mount_upper(const struct boot_params *bp)
{
	const char *up = RUN_DIR "/upper";
	int r;

	if (bp->upper_disk) {
		char dev[64];

		r = find_disk("upper", dev, sizeof(dev));
		if (r < 0) {
			alog("writable disk not found");
			return r;
		}
		r = mount_fs(dev, up, "ext4", MS_NOATIME, NULL);
	} else {
		r = mount_fs("tmpfs", up, "tmpfs", 0, "mode=0755");
	}
	if (r < 0)
		return r;
	upper_fd = open(up, O_PATH | O_DIRECTORY | O_CLOEXEC);
	r = mkdir_one(RUN_DIR "/upper/root", 0755);
	if (r < 0)
		return r;
	return mkdir_one(RUN_DIR "/upper/work", 0700);
}

static int mount_layers(const struct boot_params *bp, char *lower, size_t len)
{
	size_t off = 0;

	lower[0] = '\0';
	/* overlayfs wants the top layer first. */
	for (int i = bp->layers - 1; i >= 0; i--) {
		char serial[32], dev[64], dst[64];
		int r, n;

		snprintf(serial, sizeof(serial), "layer%d", i);
		r = find_disk(serial, dev, sizeof(dev));
		if (r < 0) {
			alog("layer disk %s not found", serial);
			return r;
		}
		snprintf(dst, sizeof(dst), RUN_DIR "/layers/%d", i);
		r = mount_fs(dev, dst, "squashfs", MS_RDONLY, NULL);
		if (r < 0)
			return r;
		n = snprintf(lower + off, len - off, "%s%s", off ? ":" : "", dst);
		if (n < 0 || (size_t)n >= len - off)
			return -E2BIG;
		off += (size_t)n;
	}
	return 0;
}

/* Creates a mount point inside the new root if the image lacks it. */
static int mount_in_root(const char *src, const char *rel, const char *type,
			 unsigned long flags, const char *data)
{
	char path[128];

	snprintf(path, sizeof(path), "/newroot%s", rel);
	return mount_fs(src, path, type, flags, data);
}

static int move_into_root(const char *what)
{
	char dst[64];
	int r;

	snprintf(dst, sizeof(dst), "/newroot%s", what);
	r = mkdir_one(dst, 0755);
	if (r < 0)
		return r;
	if (mount(what, dst, NULL, MS_MOVE, NULL) < 0) {
		alog("move %s: %s", what, strerror(errno));
		return -errno;
	}
	return 0;
}

static void dev_links(void)
{
	static const char *const links[][2] = {
		{ "/proc/self/fd", "/newroot/dev/fd" },
		{ "/proc/self/fd/0", "/newroot/dev/stdin" },
		{ "/proc/self/fd/1", "/newroot/dev/stdout" },
		{ "/proc/self/fd/2", "/newroot/dev/stderr" },
		{ "/proc/kcore", "/newroot/dev/core" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(links); i++)
		(void)symlink(links[i][0], links[i][1]);
}

int mount_root(const struct boot_params *bp)
{
	char lower[MAX_LAYERS * 32], opts[sizeof(lower) + 128];
	int r;

	if (bp->layers < 1) {
		alog("no root filesystem layers");
		return -EINVAL;
	}
	r = mount_fs("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	if (r < 0)
		return r;
	r = mkdir_one(RUN_DIR, 0700);
	if (!r)
		r = mkdir_one(RUN_DIR "/layers", 0700);
	if (!r)
		r = mount_layers(bp, lower, sizeof(lower));
	if (!r)
		r = mount_upper(bp);
	if (r < 0)
		return r;
	snprintf(opts, sizeof(opts),
		 "lowerdir=%s,upperdir=" RUN_DIR "/upper/root,workdir=" RUN_DIR "/upper/work",
		 lower);
	r = mount_fs("overlay", "/newroot", "overlay", 0, opts);
	if (r < 0)
		return r;

	r = move_into_root("/dev");
	if (!r)
		r = move_into_root("/proc");
	if (!r)
		r = move_into_root("/sys");
	if (r < 0)
		return r;
	r = mount_in_root("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
			  "newinstance,ptmxmode=0666,mode=0620,gid=5");
	if (!r)
		r = mount_in_root("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
				  "mode=1777");
	if (!r)
		r = mount_in_root("cgroup2", "/sys/fs/cgroup", "cgroup2",
				  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (r < 0)
		return r;
	dev_links();

	if (chdir("/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 ||
	    chroot(".") < 0 || chdir("/") < 0) {
		r = -errno;
		alog("switch root: %s", strerror(errno));
		return r;
	}
	return 0;
}

void mount_quiesce(void)
{
	char path[64];

	sync();
	if (upper_fd < 0)
		return;
	/* A read-only upper is clean on disk; failure just means a journal replay. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", upper_fd);
	(void)mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY, NULL);
}
