// SPDX-License-Identifier: Apache-2.0
/*
 * Warm-start templates (see warm.h).
 *
 * DOC: Theory of Operation
 * A template of shape K is <MSB_HOME>/templates/K/<sha256>.state: the file's
 * name is its own checksum, so publishing is one rename (no checksum file to
 * keep in step with it) and verifying is hashing the file and comparing the
 * name. A template that fails the comparison is deleted and the start boots
 * cold; a concurrent maker of the same shape may publish a second copy,
 * which is harmless (the first valid one is used; each publication removes
 * older copies).
 */
#define _GNU_SOURCE
#include "sandbox/warm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/digest.h"
#include "proto/proto.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/le.h"
#include "util/log.h"
#include "vm/layers.h"

#define STATE_SUFFIX ".state"
#define RAM_SUFFIX   ".ram"
/* A RAM file a template maker left behind (it died) is removed after this long. */
/* Templates of a shape no start has used for this long go when another is made. */
#define UNUSED_TEMPLATE_S    ((time_t)14 * 24 * 3600)
#define HASH_HEX	     64
#define WARM_BOOT_TIMEOUT_MS 60000
#define WARM_SAVE_TIMEOUT_MS 30000

/* What identifies @path's content: its path, device, inode, size and modification time. */
static int identity(FILE *f, const char *what, const char *path)
{
	struct stat st;

	if (!path)
		return -ENOENT;
	if (stat(path, &st) < 0)
		return -errno;
	fprintf(f, "%s=%s dev=%llu ino=%llu size=%lld mtime=%lld.%09ld\n", what, path,
		(unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (long long)st.st_size,
		(long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	return 0;
}

/* The size the guest sees of a disk: a raw file's size, a VMDK descriptor's extents. */
static int disk_size(const struct vm_disk *d, unsigned long long *out)
{
	struct stat st;

	*out = 0;
	if (!strcmp(d->format ? d->format : "raw", "vmdk")) {
		uint64_t size;
		int r = vm_vmdk_size(d->path, &size);

		*out = size;
		return r;
	}
	if (strcmp(d->format ? d->format : "raw", "raw") != 0)
		return -EOPNOTSUPP; /* qcow2: its own size lives inside; not a warm shape */
	if (stat(d->path, &st) < 0)
		return -errno;
	*out = (unsigned long long)st.st_size;
	return 0;
}

static int shape_text(const struct vm_config *c, const char *qemu, char **out)
{
	size_t len = 0;
	FILE *f = open_memstream(out, &len);
	int r;

	if (!f)
		return -ENOMEM;
	fprintf(f, "msb template v2\naccel=%d cpus=%u memory_mib=%u ram=%s\n", (int)c->accel,
		c->cpus, c->mem_mib, warm_ram_mapped() ? "mapped" : "stream");
	r = identity(f, "vmm", qemu);
	if (!r)
		r = identity(f, "kernel", c->kernel);
	if (!r)
		r = identity(f, "initrd", c->initrd);
	for (size_t i = 0; !r && i < c->ndisks; i++) {
		unsigned long long size;

		r = disk_size(&c->disks[i], &size);
		if (!r)
			fprintf(f, "disk%zu format=%s size=%llu readonly=%d serial=%s\n", i,
				c->disks[i].format ? c->disks[i].format : "raw", size,
				(int)c->disks[i].readonly,
				c->disks[i].serial ? c->disks[i].serial : "-");
	}
	fprintf(f, "shares=%d net=%d mtu=%u\n", c->nshares > 0, c->net_fd >= 0, c->net_mtu);
	if (fclose(f) != 0 && !r)
		r = -ENOMEM;
	if (r < 0) {
		free(*out);
		*out = NULL;
	}
	return r;
}

int warm_key(const struct vm_config *c, const char *qemu, char key[WARM_KEY_LEN])
{
	_cleanup_free_ char *text = NULL;
	char digest[DIGEST_LEN];
	int r = shape_text(c, qemu, &text);

	if (r < 0)
		return r;
	if (sha256_digest(text, strlen(text), digest) < 0)
		return -ENOMEM;
	/* "sha256:" then hex: 64 bits of it name the shape. */
	snprintf(key, WARM_KEY_LEN, "%.16s", digest + 7);
	return 0;
}

bool warm_ram_mapped(void)
{
	const char *v = getenv("MSB_WARM_RAM");

	return v && !strcmp(v, "map");
}

bool warm_wanted(const struct vm_config *c)
{
	const char *v = getenv("MSB_WARM");

	if (v && !strcmp(v, "0"))
		return false;
	for (size_t i = 0; i < c->ndisks; i++) {
		unsigned long long size;

		/* A disk image root: its partitions are read at boot, from the placeholder. */
		if (c->disks[i].serial && !strcmp(c->disks[i].serial, PROTO_ROOT_SERIAL))
			return false;
		if (disk_size(&c->disks[i], &size) < 0)
			return false;
	}
	return true;
}

static char *key_dir(const char *key)
{
	_cleanup_free_ char *root = path_join(msb_home(), "templates");

	return root ? path_join(root, key) : NULL;
}

/* Hashes @fd from @from to @to (or its end). Return: 0 or -errno. */
static int hash_range(struct sha256 *h, int fd, off_t from, off_t to)
{
	static char buf[1 << 20];

	while (to < 0 || from < to) {
		size_t want = to < 0 || to - from > (off_t)sizeof(buf) ? sizeof(buf)
								       : (size_t)(to - from);
		ssize_t n = pread(fd, buf, want, from);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		sha256_update(h, buf, (size_t)n);
		from += n;
	}
	return 0;
}

/*
 * A template's checksum, in hex: the sha256 of its state file, then of each
 * run of data in its RAM file (offset and length, then the bytes). The RAM
 * file is as large as the guest's memory but mostly holes: those cost nothing.
 */
static int hash_template(int state, int ram, char hex[HASH_HEX + 1])
{
	struct sha256 h;
	char digest[DIGEST_LEN];
	struct stat st;
	off_t pos = 0;
	int r;

	if (ram < 0)
		st.st_size = 0; /* the RAM is in the state */
	else if (fstat(ram, &st) < 0)
		return -errno;
	if (sha256_init(&h) < 0)
		return -ENOMEM;
	r = hash_range(&h, state, 0, -1);
	while (!r && pos < st.st_size) {
		off_t data = lseek(ram, pos, SEEK_DATA), hole;
		uint8_t ext[16];

		if (data < 0) {
			r = errno == ENXIO ? 0 : -errno;
			break;
		}
		hole = lseek(ram, data, SEEK_HOLE);
		if (hole < 0) {
			r = -errno;
			break;
		}
		put_le64(ext, (uint64_t)data);
		put_le64(ext + 8, (uint64_t)(hole - data));
		sha256_update(&h, ext, sizeof(ext));
		r = hash_range(&h, ram, data, hole);
		pos = hole;
	}
	sha256_final(&h, digest);
	if (r < 0)
		return r;
	snprintf(hex, HASH_HEX + 1, "%s", digest + 7);
	return 0;
}

struct warm_check {
	pid_t pid;  /* the process computing the checksum */
	int answer; /* its pipe: the checksum in hex, or nothing */
	char name[HASH_HEX + 1];
	char *dir;
};

/*
 * Starts computing the checksum in a child process (the supervisor starts
 * QEMU meanwhile, and threads do not mix with its forks).
 */
static int check_start(struct warm_check *c, int state, int ram)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	c->pid = fork();
	if (c->pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (c->pid == 0) {
		char hex[HASH_HEX + 1];

		close(p[0]);
		if (hash_template(state, ram, hex) == 0)
			(void)!write(p[1], hex, HASH_HEX);
		_exit(0);
	}
	close(p[1]);
	c->answer = p[0];
	return 0;
}

int warm_open(const char *key, char **ram, struct warm_check **check, char *why, size_t len)
{
	_cleanup_free_ char *dir = key_dir(key);
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;

	why[0] = '\0';
	*ram = NULL;
	*check = NULL;
	if (!dir)
		return -ENOMEM;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? -ENOENT : -errno;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char rname[HASH_HEX + sizeof(RAM_SUFFIX)];
		struct warm_check *c;
		int fd, rfd;

		if (de->d_name[0] == '.' || n != HASH_HEX + strlen(STATE_SUFFIX) ||
		    strcmp(de->d_name + HASH_HEX, STATE_SUFFIX) != 0)
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		snprintf(rname, sizeof(rname), "%.*s" RAM_SUFFIX, HASH_HEX, de->d_name);
		rfd = openat(dirfd(d), rname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (rfd < 0 && (errno != ENOENT || warm_ram_mapped())) {
			snprintf(why, len, "template %s/%s: its RAM file: %s; removed", dir,
				 de->d_name, strerror(errno));
			unlinkat(dirfd(d), de->d_name, 0);
			close(fd);
			return -EBADMSG;
		}
		c = calloc(1, sizeof(*c));
		if (!c || (rfd >= 0 && !(*ram = path_join(dir, rname)))) {
			free(c);
			close(fd);
			if (rfd >= 0)
				close(rfd);
			return -ENOMEM;
		}
		c->dir = steal_ptr(dir);
		snprintf(c->name, sizeof(c->name), "%.*s", HASH_HEX, de->d_name);
		c->answer = -1;
		if (check_start(c, fd, rfd) < 0)
			c->pid = -1;
		if (rfd >= 0)
			close(rfd);
		*check = c;
		/* Its directory's time says when the shape was last used (see prune()). */
		futimens(dirfd(d), NULL);
		return fd;
	}
	return -ENOENT;
}

int warm_verified(struct warm_check *c, char *why, size_t len)
{
	char hex[HASH_HEX + 1] = "";
	ssize_t n = 0;
	int r = 0;

	if (!c)
		return 0;
	if (c->answer >= 0) {
		while ((n = read(c->answer, hex, HASH_HEX)) < 0 && errno == EINTR)
			;
		close(c->answer);
	}
	if (c->pid > 0)
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
	if (n != HASH_HEX)
		r = -EIO;
	else if (strncmp(hex, c->name, HASH_HEX) != 0)
		r = -EBADMSG;
	if (r < 0) {
		_cleanup_free_ char *state = NULL, *ram = NULL;

		snprintf(why, len, "template %s/%s does not match its checksum%s", c->dir, c->name,
			 r != -EBADMSG ? " (unreadable)" : "; removed");
		if (asprintf(&state, "%s/%s" STATE_SUFFIX, c->dir, c->name) >= 0)
			unlink(state);
		else
			state = NULL;
		if (asprintf(&ram, "%s/%s" RAM_SUFFIX, c->dir, c->name) >= 0)
			unlink(ram);
		else
			ram = NULL;
		r = -EBADMSG;
	}
	free(c->dir);
	free(c);
	return r;
}

/* A new, unnamed template file for @key. Return: fd (write the state into it), or -errno. */
static int warm_create(const char *key)
{
	_cleanup_free_ char *dir = key_dir(key);
	int fd, r;

	if (!dir)
		return -ENOMEM;
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	/* Unnamed until published: nothing half-written is ever a template. */
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

/*
 * Checksums the state written to @fd and the RAM in @ram_tmp and publishes
 * them as @key's template (atomically; a concurrent one of the same key may
 * win): the RAM as <sum>.ram, then the state as <sum>.state, which makes it
 * a template. Neither is ever written again: clones map the RAM privately.
 * Closes @fd. Return: 0 or -errno.
 */
static int warm_commit(const char *key, int fd, const char *ram_tmp)
{
	_cleanup_free_ char *dir = key_dir(key), *path = NULL, *rpath = NULL;
	_cleanup_closedir_ DIR *d = NULL;
	_cleanup_close_ int ram = ram_tmp ? open(ram_tmp, O_RDONLY | O_CLOEXEC) : -1;
	char hex[HASH_HEX + 1], proc[64];
	struct dirent *de;
	int r = !dir ? -ENOMEM : ram_tmp && ram < 0 ? -errno : 0;

	if (!r && ram >= 0 && (fchmod(ram, 0600) < 0 || fsync(ram) < 0))
		r = -errno;
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (!r)
		r = hash_template(fd, ram, hex);
	if (!r && (asprintf(&path, "%s/%s" STATE_SUFFIX, dir, hex) < 0 ||
		   asprintf(&rpath, "%s/%s" RAM_SUFFIX, dir, hex) < 0)) {
		path = rpath = NULL;
		r = -ENOMEM;
	}
	if (!r && ram_tmp && rename(ram_tmp, rpath) < 0)
		r = -errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (!r && linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0 &&
	    errno != EEXIST) {
		r = -errno;
		unlink(rpath);
	}
	close(fd);
	if (r < 0)
		return r;
	/* RAM files of makers that died (a live maker holds a lock on its own), then older
	 * copies of this shape. */
	sweep_unlocked(dir, ".ram-");
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (de->d_name[0] == '.' || strncmp(de->d_name, hex, HASH_HEX) == 0)
			continue;
		if ((n > strlen(STATE_SUFFIX) &&
		     !strcmp(de->d_name + n - strlen(STATE_SUFFIX), STATE_SUFFIX)) ||
		    (n > strlen(RAM_SUFFIX) &&
		     !strcmp(de->d_name + n - strlen(RAM_SUFFIX), RAM_SUFFIX)))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	return 0;
}

/* Reads the agent's socket until READY (every other byte is boot noise). Return: 0 or -errno. */
static int wait_ready(int agent, int console, int net, unsigned int timeout_ms)
{
	struct buf rx = { 0 };
	uint64_t waited = 0;
	int r = -ETIMEDOUT;

	while (waited < timeout_ms) {
		struct pollfd p[3] = { { agent, POLLIN, 0 },
				       { console, POLLIN, 0 },
				       { net, POLLIN, 0 } };
		struct proto_frame f;
		uint8_t junk[4096];
		int n = poll(p, net >= 0 ? 3 : 2, 100);

		waited += 100;
		if (n < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		for (int i = 1; i < 3; i++)
			if (p[i].fd >= 0 && (p[i].revents & POLLIN))
				(void)!read(p[i].fd, junk, sizeof(junk));
		if (!(p[0].revents & (POLLIN | POLLHUP)))
			continue;
		{
			uint8_t *tail = buf_tail(&rx, 4096);
			ssize_t k = tail ? read(agent, tail, 4096) : -1;

			if (k <= 0) {
				r = k == 0 ? -EPIPE : -errno;
				break;
			}
			buf_commit(&rx, (size_t)k);
		}
		while ((n = proto_parse(&rx, &f)) > 0) {
			struct proto_ready rd;

			if (f.type == PROTO_READY) {
				r = proto_ready_decode(f.payload, f.len, &rd) == 0 &&
						    rd.version == PROTO_VERSION
					    ? 0
					    : -EPROTO;
				buf_free(&rx);
				return r;
			}
			buf_consume(&rx, PROTO_HDR_SIZE + f.len);
		}
		if (n < 0 || buf_size(&rx) > (1u << 20)) {
			r = -EPROTO;
			break;
		}
	}
	buf_free(&rx);
	return r;
}

bool warm_stale(const struct stat *st, time_t now)
{
	return S_ISDIR(st->st_mode) && now - st->st_mtime >= UNUSED_TEMPLATE_S;
}

/*
 * Removes the templates of shapes no start has used for UNUSED_TEMPLATE_S (a
 * kernel rebuilt long ago, a memory size no longer asked for): each is tens of
 * megabytes. A sandbox running from one keeps what it has open.
 */
static void prune(const char *keep)
{
	_cleanup_free_ char *root = path_join(msb_home(), "templates");
	_cleanup_closedir_ DIR *d = root ? opendir(root) : NULL;
	struct dirent *de;
	time_t now = time(NULL);

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		struct stat st;

		if (de->d_name[0] == '.' || !strcmp(de->d_name, keep) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !warm_stale(&st, now))
			continue;
		p = path_join(root, de->d_name);
		if (p && rm_rf(p) == 0)
			log_info("warm start: removed template %s, unused for %lld days",
				 de->d_name, (long long)((now - st.st_mtime) / 86400));
	}
}

int warm_make(const struct vm_config *real, const char *key, char *why, size_t len)
{
	_cleanup_free_ char *dir = key_dir(key), *share = NULL, *ram = NULL;
	struct vm_disk disks[VM_MMIO_SLOTS];
	char paths[VM_MMIO_SLOTS][512];
	struct vm_share sh = { 0 };
	struct vm_config c = *real;
	int agent[2] = { -1, -1 }, con[2] = { -1, -1 }, net[2] = { -1, -1 }, fd = -1, r;
	struct vm *vm = NULL;
	struct msb_err *e = NULL;
	_cleanup_close_ int ram_lock = -1;

	why[0] = '\0';
	if (!dir || real->ndisks > VM_MMIO_SLOTS)
		return -ENOMEM;
	r = mkdir_p(dir, 0700);
	if (r < 0) {
		snprintf(why, len, "%s: %s", dir, strerror(-r));
		return r;
	}
	/* Disks of the same sizes and kinds, with nothing of any sandbox on them. */
	for (size_t i = 0; i < real->ndisks; i++) {
		unsigned long long size;

		r = disk_size(&real->disks[i], &size);
		snprintf(paths[i], sizeof(paths[i]), "%s/disk%zu.raw", dir, i);
		if (r == 0) {
			_cleanup_close_ int f = open(paths[i], O_RDWR | O_CREAT | O_CLOEXEC, 0600);

			if (f < 0 || ftruncate(f, (off_t)size) < 0)
				r = -errno;
		}
		if (r < 0) {
			snprintf(why, len, "placeholder disk %zu: %s", i, strerror(-r));
			return r;
		}
		disks[i] = real->disks[i];
		disks[i].path = paths[i];
		disks[i].format = "raw";
	}
	c.disks = disks;
	if (real->nshares) {
		share = path_join(dir, "share");
		if (!share || ((r = mkdir_p(share, 0700)) < 0)) {
			snprintf(why, len, "placeholder share: %s", strerror(share ? -r : ENOMEM));
			return share ? r : -ENOMEM;
		}
		sh.path = share;
		c.shares = &sh;
		c.nshares = 1;
	}
	/* The guest's RAM lives in this file: the template is its device state plus the file. */
	if (warm_ram_mapped() && asprintf(&ram, "%s/.ram-XXXXXX", dir) < 0) {
		ram = NULL;
		return -ENOMEM;
	}
	if (ram) {
		/* Held locked until it is published or removed: no sweep takes it meanwhile. */
		ram_lock = mkstemp(ram);
		if (ram_lock < 0 || flock(ram_lock, LOCK_EX) < 0 ||
		    ftruncate(ram_lock, (off_t)real->mem_mib << 20) < 0) {
			r = -errno;
			snprintf(why, len, "template RAM file: %s", strerror(errno));
			if (ram_lock >= 0)
				unlink(ram);
			return r;
		}
	}
	c.mem_file = ram;
	c.mem_shared = ram != NULL;
	c.files = NULL;
	c.workdir = dir;
	c.jail_root = real->jail_root ? "jail" : NULL;
	c.incoming = false;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, agent) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con) < 0 ||
	    (real->net_fd >= 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, net) < 0)) {
		r = -errno;
		snprintf(why, len, "socketpair: %s", strerror(errno));
		goto out;
	}
	c.agent_fd = agent[1];
	c.console_fd = con[1];
	c.net_fd = net[1];
	c.stderr_fd = -1;
	c.saves_state = true;
	if (vm_start(&c, &vm, &e) < 0) {
		snprintf(why, len, "%s", e ? e->msg : "cannot start the VMM");
		msb_err_free(e);
		r = -EIO;
		goto out;
	}
	/* The VMM has its ends: ours closed, its exit is an end of file, not a timeout. */
	{
		int *ends[] = { &agent[1], &con[1], &net[1] };

		for (size_t i = 0; i < 3; i++) {
			if (*ends[i] >= 0)
				close(*ends[i]);
			*ends[i] = -1;
		}
	}
	r = wait_ready(agent[0], con[0], net[0], WARM_BOOT_TIMEOUT_MS);
	if (r < 0) {
		snprintf(why, len, "the template's guest did not come up: %s", strerror(-r));
		goto out;
	}
	fd = warm_create(key);
	if (fd < 0) {
		r = fd;
		snprintf(why, len, "%s: %s", dir, strerror(-r));
		goto out;
	}
	/* Stopped for good: the RAM file must stay as the state describes it. */
	r = vm_pause_wait(vm, WARM_SAVE_TIMEOUT_MS, why, len);
	if (r == 0)
		r = vm_save_wait(vm, fd, VM_SAVE_PAUSED | (ram ? VM_STATE_SHARED_RAM : 0),
				 WARM_SAVE_TIMEOUT_MS, why, len);
	if (r == 0) {
		vm_free(steal_ptr(vm));
		r = warm_commit(key, fd, ram);
		if (r == 0)
			prune(key);
		fd = -1;
		if (r < 0)
			snprintf(why, len, "publishing the template: %s", strerror(-r));
	}
out:
	if (ram && r < 0)
		unlink(ram);
	if (fd >= 0)
		close(fd);
	vm_free(vm);
	for (int i = 0; i < 2; i++) {
		if (agent[i] >= 0)
			close(agent[i]);
		if (con[i] >= 0)
			close(con[i]);
		if (net[i] >= 0)
			close(net[i]);
	}
	return r;
}
