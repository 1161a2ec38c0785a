// SPDX-License-Identifier: Apache-2.0
/* Guest root assembly: layer disks + writable upper -> overlayfs -> switch root. */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/layers.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/le.h"

#define RUN_DIR "/run/msb"

/* The upper filesystem's root, kept so shutdown can remount it read-only. */
static int upper_fd = -1;
/* The shared-files device, mounted before the switch of root; kept as an fd after it. */
static int share_fd = -1;
/* Where files the host writes go when the root is a live host directory (shadows). */
static int shadow_fd = -1;
#define SHARE_DIR  RUN_DIR "/share"
#define SHADOW_DIR RUN_DIR "/shadow"
/* The volumes on disks, remounted read-only with the upper before power-off. */
static int volume_fds[PROTO_MAX_MOUNTS];
static unsigned int nvolume_fds;

int boot_parse_cmdline(const char *cmdline, struct boot_params *bp)
{
	char buf[4096], *tok, *save = NULL;

	memset(bp, 0, sizeof(*bp));
	snprintf(buf, sizeof(buf), "%s", cmdline);
	for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (strcmp(tok, "msb.poweroff") == 0)
			bp->poweroff = true;
	}
	return 0;
}

static int mkdir_one(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int mount_fs(const char *src, const char *dst, const char *type, unsigned long flags,
		    const char *data)
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

/* The loop-device ABI (linux/loop.h), which musl's headers do not carry. */
struct loop_info64_abi {
	uint64_t lo_device, lo_inode, lo_rdevice, lo_offset, lo_sizelimit;
	uint32_t lo_number, lo_encrypt_type, lo_encrypt_key_size, lo_flags;
	uint8_t lo_file_name[64], lo_crypt_name[64], lo_encrypt_key[32];
	uint64_t lo_init[2];
};
struct loop_config_abi {
	uint32_t fd, block_size;
	struct loop_info64_abi info;
	uint64_t reserved[8];
};
_Static_assert(sizeof(struct loop_info64_abi) == 232, "loop_info64 ABI");
_Static_assert(sizeof(struct loop_config_abi) == 304, "loop_config ABI");
#define LOOP_CONFIGURE_IOC     0x4C0A
#define LOOP_CTL_GET_FREE_IOC  0x4C82
#define LO_FLAGS_READ_ONLY_ABI 1u
#define LO_FLAGS_DIRECT_IO_ABI 16u

/* Reads /sys/block/@name/serial into @out (empty if none). */
static void disk_serial(const char *name, char *out, size_t len)
{
	char path[128];
	_cleanup_close_ int fd = -1;
	ssize_t n;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/sys/block/%.32s/serial", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, out, len - 1);
	out[n > 0 ? n : 0] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

static bool disk_is_volume(const char *name)
{
	char serial[32];

	disk_serial(name, serial, sizeof(serial));
	return !strncmp(serial, PROTO_VOLUME_SERIAL, strlen(PROTO_VOLUME_SERIAL));
}

/* The disk whose serial is @want. Return: 0 with /dev/vdX in @dev, or -ENODEV. */
static int find_disk_by_serial(const char *want, char *dev, size_t len)
{
	_cleanup_closedir_ DIR *d = opendir("/sys/block");
	char serial[32];
	struct dirent *de;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "vd", 2) != 0 || strlen(de->d_name) > 32)
			continue;
		disk_serial(de->d_name, serial, sizeof(serial));
		if (!strcmp(serial, want)) {
			snprintf(dev, len, "/dev/%.32s", de->d_name);
			return 0;
		}
	}
	return -ENODEV;
}

int mount_find_volume_disk(uint32_t index, char *dev, size_t len)
{
	char want[32];

	snprintf(want, sizeof(want), PROTO_VOLUME_SERIAL "%u", index);
	return find_disk_by_serial(want, dev, len);
}

/* The filesystem on @dev, by its superblock: "ext4" (ext2/3/4), "xfs", or NULL. */
static const char *probe_fs(const char *dev)
{
	_cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC);
	uint8_t sb[2048];

	if (fd < 0 || pread(fd, sb, sizeof(sb), 0) != (ssize_t)sizeof(sb))
		return NULL;
	if (!memcmp(sb, "XFSB", 4))
		return "xfs";
	if (sb[1024 + 56] == 0x53 && sb[1024 + 57] == 0xef)
		return "ext4";
	return NULL;
}

/*
 * A disk image as the root: its first partition holding ext4 or xfs, else
 * the whole disk; mounted read-write at /newroot as it is, nothing added.
 */
static int mount_disk_root(void)
{
	char disk[64], dev[80];
	const char *fs = NULL, *name;
	int r = find_disk_by_serial(PROTO_ROOT_SERIAL, disk, sizeof(disk));

	if (r < 0) {
		alog("root disk not found");
		return r;
	}
	name = disk + 5;
	for (unsigned int i = 1; i <= 128 && !fs; i++) {
		struct stat st;

		snprintf(dev, sizeof(dev), "%s%u", disk, i);
		if (stat(dev, &st) < 0) {
			char sys[160];

			snprintf(sys, sizeof(sys), "/sys/block/%s/%s%u", name, name, i);
			if (access(sys, F_OK) < 0)
				break;
			continue;
		}
		fs = probe_fs(dev);
	}
	if (!fs) {
		snprintf(dev, sizeof(dev), "%s", disk);
		fs = probe_fs(dev);
	}
	if (!fs) {
		alog("the disk image has no ext4 or xfs filesystem (on its partitions or whole)");
		return -EINVAL;
	}
	r = mount_fs(dev, "/newroot", fs, 0, NULL);
	if (r < 0)
		return r;
	upper_fd = open("/newroot", O_PATH | O_DIRECTORY | O_CLOEXEC);
	return 0;
}

/*
 * Finds the disks: the one starting with the layer table, and (when
 * @upper is set) the other one. Return: 0, or -ENODEV.
 */
static int find_disks(uint8_t *table, char *layers_dev, char *upper_dev, size_t len)
{
	_cleanup_closedir_ DIR *d = opendir("/sys/block");
	struct dirent *de;
	bool found = false;

	if (!d)
		return -errno;
	if (upper_dev)
		upper_dev[0] = '\0';
	while ((de = readdir(d))) {
		char dev[64];
		_cleanup_close_ int fd = -1;

		if (strncmp(de->d_name, "vd", 2) != 0 || strlen(de->d_name) > 32)
			continue;
		snprintf(dev, sizeof(dev), "/dev/%.32s", de->d_name);
		if (!found) {
			fd = open(dev, O_RDONLY | O_CLOEXEC);
			if (fd >= 0 &&
			    pread(fd, table, LAYERS_TABLE_SIZE, 0) == LAYERS_TABLE_SIZE &&
			    memcmp(table, LAYERS_MAGIC, 8) == 0) {
				snprintf(layers_dev, len, "%s", dev);
				found = true;
				continue;
			}
		}
		/* A volume's disk is not the upper one, whatever the order. */
		if (upper_dev && !upper_dev[0] && !disk_is_volume(de->d_name))
			snprintf(upper_dev, len, "%s", dev);
	}
	return found ? 0 : -ENODEV;
}

/* Maps [@off, @off + @size) of @disk_fd to a new read-only loop device. */
static int attach_loop(int ctl, int disk_fd, uint64_t off, uint64_t size, char *dev, size_t len)
{
	struct loop_config_abi cfg = { 0 };
	_cleanup_close_ int fd = -1;
	int n = ioctl(ctl, LOOP_CTL_GET_FREE_IOC);

	if (n < 0)
		return -errno;
	snprintf(dev, len, "/dev/loop%d", n);
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	cfg.fd = (uint32_t)disk_fd;
	cfg.info.lo_offset = off;
	cfg.info.lo_sizelimit = size;
	cfg.info.lo_flags = LO_FLAGS_READ_ONLY_ABI | LO_FLAGS_DIRECT_IO_ABI;
	if (ioctl(fd, LOOP_CONFIGURE_IOC, &cfg) < 0)
		return -errno;
	return 0;
}

static int mount_upper(bool upper_disk, const char *upper_dev)
{
	const char *up = RUN_DIR "/upper";
	int r;

	if (upper_disk) {
		if (!upper_dev[0]) {
			alog("writable disk not found");
			return -ENODEV;
		}
		r = mount_fs(upper_dev, up, "ext4", MS_NOATIME, NULL);
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

/* Mounts every layer of the table; fills @lower with overlayfs's lowerdir (top first). */
static int mount_layers(const char *disk, const uint8_t *table, char *lower, size_t len)
{
	uint32_t count = (uint32_t)table[8] | (uint32_t)table[9] << 8 | (uint32_t)table[10] << 16 |
			 (uint32_t)table[11] << 24;
	_cleanup_close_ int disk_fd = open(disk, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	size_t off = 0;

	if (disk_fd < 0 || ctl < 0)
		return -errno;
	if (count == 0 || count > LAYERS_MAX) {
		alog("layer table lists %u layers", count);
		return -EINVAL;
	}
	lower[0] = '\0';
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = table + 16 + (size_t)(count - 1 - i) * 16; /* top first */
		char dev[32], dst[64];
		int r, n;

		r = attach_loop(ctl, disk_fd, get_le64(e), get_le64(e + 8), dev, sizeof(dev));
		if (r < 0) {
			alog("layer %u: loop device: %s", count - 1 - i, strerror(-r));
			return r;
		}
		snprintf(dst, sizeof(dst), RUN_DIR "/layers/%u", count - 1 - i);
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
static int mount_in_root(const char *src, const char *rel, const char *type, unsigned long flags,
			 const char *data)
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

static int mount_layered_root(bool upper_disk)
{
	char lower[LAYERS_MAX * 24], opts[sizeof(lower) + 128];
	char layers_dev[64] = "", upper_dev[64] = "";
	_cleanup_free_ uint8_t *table = calloc(1, LAYERS_TABLE_SIZE);
	int r;

	if (!table)
		return -ENOMEM;
	r = find_disks(table, layers_dev, upper_dev, sizeof(layers_dev));
	if (r < 0) {
		alog("no layer disk found");
		return r;
	}
	r = mkdir_one(RUN_DIR "/layers", 0700);
	if (!r)
		r = mount_layers(layers_dev, table, lower, sizeof(lower));
	if (!r)
		r = mount_upper(upper_disk, upper_dev);
	if (r < 0)
		return r;
	snprintf(opts, sizeof(opts),
		 "lowerdir=%s,upperdir=" RUN_DIR "/upper/root,workdir=" RUN_DIR "/upper/work",
		 lower);
	return mount_fs("overlay", "/newroot", "overlay", 0, opts);
}

/* Mounts the shared-files device at SHARE_DIR, before the root changes. */
static int mount_shares(void)
{
	int r = mkdir_one(SHARE_DIR, 0700);

	if (r < 0)
		return r;
	r = mount_fs(PROTO_SHARE_TAG, SHARE_DIR, "9p", MS_NOSUID | MS_NODEV,
		     "trans=virtio,version=9p2000.L,msize=512000");
	if (r < 0)
		return r;
	share_fd = open(SHARE_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return share_fd < 0 ? -errno : 0;
}

/* --rootfs-bind: share 0 is the root, as it is on the host; host-written files are shadowed. */
static int mount_share_root(void)
{
	int r = mount(SHARE_DIR "/0", "/newroot", NULL, MS_BIND | MS_REC, NULL) < 0 ? -errno : 0;

	if (r < 0) {
		alog("bind the root directory: %s", strerror(-r));
		return r;
	}
	r = mkdir_one(SHADOW_DIR, 0700);
	if (r < 0)
		return r;
	shadow_fd = open(SHADOW_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
	upper_fd = open("/newroot", O_PATH | O_DIRECTORY | O_CLOEXEC);
	return shadow_fd < 0 ? -errno : 0;
}

int mount_share_source(uint32_t index, char *out, size_t len)
{
	if (share_fd < 0)
		return -ENODEV;
	snprintf(out, len, "/proc/self/fd/%d/%u", share_fd, index);
	return 0;
}

void mount_shares_done(void)
{
	char path[64];

	if (share_fd < 0)
		return;
	/* The binds keep what they need; the device's own mount goes. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", share_fd);
	umount2(path, MNT_DETACH);
	close(share_fd);
	share_fd = -1;
}

bool mount_live_root(void)
{
	return shadow_fd >= 0;
}

int mount_shadow(const char *path)
{
	char name[32], src[64];
	static unsigned int n;
	_cleanup_close_ int in = -1, out = -1;
	struct stat st;

	if (shadow_fd < 0)
		return 0;
	if (lstat(path, &st) < 0)
		return -ENOENT;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	in = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	snprintf(name, sizeof(name), "%u", n++);
	out = openat(shadow_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
	if (in < 0 || out < 0)
		return -errno;
	for (;;) {
		char buf[16384];
		ssize_t k = read(in, buf, sizeof(buf));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		if (write_all(out, buf, (size_t)k) < 0)
			return -errno;
	}
	snprintf(src, sizeof(src), "/proc/self/fd/%d", out);
	return mount(src, path, NULL, MS_BIND, NULL) < 0 ? -errno : 0;
}

/*
 * Forgets what the kernel cached of every disk. A guest restored from a
 * template read its template's disks when it booted (partition scans read
 * their first pages); this sandbox's disks have other contents.
 */
static void flush_disks(void)
{
	_cleanup_closedir_ DIR *d = opendir("/sys/block");
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char dev[64];
		_cleanup_close_ int fd = -1;

		if (strncmp(de->d_name, "vd", 2) != 0 || strlen(de->d_name) > 32)
			continue;
		snprintf(dev, sizeof(dev), "/dev/%.32s", de->d_name);
		fd = open(dev, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || ioctl(fd, BLKFLSBUF, 0) < 0)
			alog("%s: dropping its cache: %s", dev, strerror(errno));
	}
}

int mount_root(const struct proto_config *c)
{
	bool shares = c->flags & PROTO_CONFIG_SHARE_ROOT;
	int r;

	flush_disks();
	for (uint32_t i = 0; i < c->nmounts; i++)
		shares |= !(c->mounts[i].flags & PROTO_MOUNT_DISK);
	r = mount_fs("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	if (!r)
		r = mkdir_one(RUN_DIR, 0700);
	if (!r && shares && (r = mount_shares()) < 0)
		alog("cannot mount the shared directories: %s", strerror(-r));
	if (r < 0)
		return r;
	if (c->flags & PROTO_CONFIG_SHARE_ROOT)
		r = mount_share_root();
	else if (c->flags & PROTO_CONFIG_DISK_ROOT)
		r = mount_disk_root();
	else
		r = mount_layered_root(c->flags & PROTO_CONFIG_UPPER_DISK);
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
		r = mount_in_root("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	if (!r)
		r = mount_in_root("cgroup2", "/sys/fs/cgroup", "cgroup2",
				  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (r < 0)
		return r;
	dev_links();

	if (chdir("/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0) {
		r = -errno;
		alog("switch root: %s", strerror(errno));
		return r;
	}
	return 0;
}

void mount_track_volume(const char *path)
{
	int fd;

	if (nvolume_fds >= PROTO_MAX_MOUNTS)
		return;
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		volume_fds[nvolume_fds++] = fd;
}

void mount_quiesce(void)
{
	char path[64];

	sync();
	for (unsigned int i = 0; i < nvolume_fds; i++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", volume_fds[i]);
		(void)mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY, NULL);
	}
	if (upper_fd < 0)
		return;
	/* A read-only upper is clean on disk; failure just means a journal replay. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", upper_fd);
	(void)mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY, NULL);
}
