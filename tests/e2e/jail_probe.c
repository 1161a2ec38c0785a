// SPDX-License-Identifier: Apache-2.0
/*
 * A stand-in VMM for tests/e2e/test_jail.sh: msb runs it as QEMU
 * (MSB_QEMU), in the real jail, and it tries what a guest that took over its
 * QEMU would try. It writes one line per attempt ("name ERRNO" or "name OK")
 * to <dir>/result, where <dir> is the first share (/msb-share/0), then exits.
 *
 *   jail_probe --handle PATH       (on the host) print PATH's file handle
 *   jail_probe --open-handle HEX   (on the host) open it by handle, print what it finds
 *   jail_probe anything else       the stand-in VMM
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHARE "/msb-share/0"

static FILE *out;

static void report(const char *name, long r)
{
	fprintf(out, "%s %s\n", name, r < 0 ? strerrorname_np(errno) : "OK");
	fflush(out);
}

static int handle_of(const char *path, char *hex, size_t len)
{
	struct file_handle *h = calloc(1, sizeof(*h) + MAX_HANDLE_SZ);
	int mnt;

	h->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(AT_FDCWD, path, h, &mnt, 0) < 0)
		return -1;
	snprintf(hex, len, "%d:", h->handle_type);
	for (unsigned int i = 0; i < h->handle_bytes; i++)
		snprintf(hex + strlen(hex), len - strlen(hex), "%02x", h->f_handle[i]);
	free(h);
	return 0;
}

/* Opens @hex ("type:bytes") on the filesystem of /usr; prints a directory's entries or a file. */
static int open_handle(const char *hex, FILE *to)
{
	struct file_handle *h = calloc(1, sizeof(*h) + MAX_HANDLE_SZ);
	char buf[4096];
	int mnt, fd, type;
	const char *p = strchr(hex, ':');
	ssize_t n;

	if (!p || sscanf(hex, "%d", &type) != 1)
		return -1;
	h->handle_type = type;
	for (p++; p[0] && p[1] && h->handle_bytes < MAX_HANDLE_SZ; p += 2)
		sscanf(p, "%2hhx", &h->f_handle[h->handle_bytes++]);
	mnt = open("/usr", O_RDONLY | O_DIRECTORY);
	fd = open_by_handle_at(mnt, h, O_RDONLY);
	if (fd < 0)
		return -1;
	n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
	if (n >= 0) {
		for (ssize_t off = 0; off < n;) {
			unsigned short reclen;

			memcpy(&reclen, buf + off + 16, sizeof(reclen));
			fprintf(to, " %s", buf + off + 19);
			off += reclen;
		}
		fprintf(to, "\n");
	} else {
		n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		fprintf(to, "%s", buf);
	}
	return 0;
}

/* An i386 system call (int 0x80) in a child: the filter must kill it. */
static void foreign_arch(void)
{
	pid_t p = fork();
	int st;

	if (p == 0) {
		long r;

		__asm__ volatile("int $0x80"
				 : "=a"(r)
				 : "a"(20)
				 : "memory", "rcx", "r8", "r9", "r10", "r11"); /* getpid */
		_exit(0);
	}
	waitpid(p, &st, 0);
	fprintf(out, "i386 %s\n",
		WIFSIGNALED(st) ? (WTERMSIG(st) == SIGSYS ? "SIGSYS" : "SIGNAL") : "RAN");
}

static void status_lines(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	if (!f) {
		fprintf(out, "status %s\n", strerrorname_np(errno));
		return;
	}
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Cap", 3) || !strncmp(line, "Seccomp:", 8) ||
		    !strncmp(line, "NoNewPrivs:", 11) || !strncmp(line, "Uid:", 4))
			fprintf(out, "status %s", line);
	fclose(f);
}

static void stand_in(void)
{
	char hex[512] = "", buf[64];
	int fd, mnt;
	struct iovec l = { buf, 8 }, r = { &out, 8 };
	struct file_handle *h = calloc(1, sizeof(*h) + MAX_HANDLE_SZ);
	FILE *hf;

	out = fopen(SHARE "/result", "w");
	if (!out)
		exit(2);
	status_lines();
	/* File handles: the host's root, read from the share. */
	hf = fopen(SHARE "/root.handle", "r");
	if (hf && fgets(hex, sizeof(hex), hf)) {
		hex[strcspn(hex, "\n")] = '\0';
		report("open_by_handle_at", open_handle(hex, out));
	}
	if (hf)
		fclose(hf);
	hf = fopen(SHARE "/secret.handle", "r");
	if (hf && fgets(hex, sizeof(hex), hf)) {
		hex[strcspn(hex, "\n")] = '\0';
		report("open_by_handle_at_secret", open_handle(hex, out));
	}
	if (hf)
		fclose(hf);
	h->handle_bytes = MAX_HANDLE_SZ;
	report("name_to_handle_at", name_to_handle_at(AT_FDCWD, "/usr", h, &mnt, 0));
	report("mount", mount("none", "/usr", "tmpfs", 0, NULL));
	report("umount2", umount2("/usr", MNT_DETACH));
	report("pivot_root", syscall(SYS_pivot_root, ".", "."));
	report("chroot", chroot("/usr"));
	report("move_mount", syscall(SYS_move_mount, -1, "", -1, "", 0));
	report("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/usr", 0));
	report("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
	report("fsmount", syscall(SYS_fsmount, -1, 0, 0));
	report("fsconfig", syscall(SYS_fsconfig, -1, 0, NULL, NULL, 0));
	report("fspick", syscall(SYS_fspick, AT_FDCWD, "/usr", 0));
	report("unshare", unshare(0));
	report("setns", setns(-1, 0));
	report("ptrace", syscall(SYS_ptrace, 3 /* PEEKUSER */, 999999, 0, 0));
	report("process_vm_readv", process_vm_readv(getpid(), &l, 1, &r, 1, 0));
	report("process_vm_writev", process_vm_writev(getpid(), &r, 1, &l, 1, 0));
	report("bpf", syscall(SYS_bpf, 0, NULL, 0));
	report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
	report("userfaultfd", fd);
	report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
	report("add_key", syscall(SYS_add_key, NULL, NULL, NULL, 0, 0));
	report("request_key", syscall(SYS_request_key, NULL, NULL, NULL, 0));
	report("init_module", syscall(SYS_init_module, NULL, 0, ""));
	report("finit_module", syscall(SYS_finit_module, -1, "", 0));
	report("delete_module", syscall(SYS_delete_module, "msb_no_such_module", O_NONBLOCK));
	report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
	report("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, NULL, 0));
	report("reboot", syscall(SYS_reboot, 0, 0, 0, NULL)); /* no magic: never reboots */
	report("swapon", syscall(SYS_swapon, "/msb-no-such-file", 0));
	report("swapoff", syscall(SYS_swapoff, "/msb-no-such-file"));
	report("acct", syscall(SYS_acct, "/msb-no-such-file"));
	report("syslog", syscall(SYS_syslog, 10 /* SIZE_BUFFER */, NULL, 0));
	report("personality_bsd", personality(PER_BSD));
	report("personality_query", personality(0xffffffff));
	report("personality_linux", personality(PER_LINUX));
	{
		long c = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);

		if (c == 0)
			_exit(0);
		if (c > 0)
			waitpid((pid_t)c, NULL, 0);
		report("clone_newuser", c);
	}
	report("clone3", syscall(SYS_clone3, NULL, 0));
	report("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
	report("x32_getpid", syscall(0x40000000 | SYS_getpid));
	/* Files through the share: no set-id bit, no device; the plain modes still work. */
	fd = open(SHARE "/created", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	report("create_0644", fd);
	if (fd >= 0)
		close(fd);
	report("chmod_0755", chmod(SHARE "/created", 0755));
	report("chmod_4755", chmod(SHARE "/created", 04755));
	report("chmod_2755", chmod(SHARE "/created", 02755));
	report("create_4755", open(SHARE "/created-suid", O_WRONLY | O_CREAT, 04755));
	report("mknod_char", mknod(SHARE "/null", S_IFCHR | 0666, makedev(1, 3)));
	report("mknod_fifo", mknod(SHARE "/fifo", S_IFIFO | 0644, 0));
	report("chown_other", chown(SHARE "/created", 12345, 12345));
	foreign_arch();
	fprintf(out, "done\n");
	fclose(out);
}

int main(int argc, char **argv)
{
	char hex[512];

	if (argc == 3 && !strcmp(argv[1], "--handle")) {
		if (handle_of(argv[2], hex, sizeof(hex)) < 0) {
			perror("name_to_handle_at");
			return 1;
		}
		printf("%s\n", hex);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "--open-handle")) {
		if (open_handle(argv[2], stdout) < 0) {
			perror("open_by_handle_at");
			return 1;
		}
		return 0;
	}
	stand_in();
	return 0;
}
