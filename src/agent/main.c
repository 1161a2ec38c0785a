// SPDX-License-Identifier: Apache-2.0
/* agentd: the guest's PID 1. Builds the root filesystem, then serves the host. */
#define _GNU_SOURCE
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "util/cleanup.h"
#include "util/version.h"

#define AGENT_STR_(x) #x
#define AGENT_STR(x)  AGENT_STR_(x)

/* What `msb --version` reads out of the initramfs: agentd's version and protocol. */
__attribute__((used)) static const char agent_ident[] =
	"msb-agentd-version " MSB_VERSION "/protocol-" AGENT_STR(PROTO_VERSION);

void agent_vline(const char *prefix, const char *fmt, va_list ap)
{
	char line[768];
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);

	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (prefix)
		(void)!write(2, prefix, strlen(prefix));
	(void)!write(2, line, (size_t)n);
}

void alog(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	agent_vline("agentd: ", fmt, ap);
	va_end(ap);
}

void agent_poweroff(void)
{
	sync();
	/* No ACPI: with reboot=t and QEMU's -no-reboot, a reboot ends the VM. */
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

/* Points fds 0-2 at the console (kernel.log on the host). */
static void open_console(void)
{
	/* Non-blocking: a guest that floods the console must not stall PID 1's logging. */
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

static int read_file(const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* Finds the virtio-serial port named "agent". Return: an open fd, or -errno. */
static int open_agent_port(void)
{
	_cleanup_closedir_ DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *de;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char path[300], name[64];
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
		if (read_file(path, name, sizeof(name)) < 0)
			continue;
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, "agent") != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/%s", de->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
		return fd < 0 ? -errno : fd;
	}
	return -ENODEV;
}

int main(int argc, char **argv)
{
	struct boot_params bp;
	struct timespec ts;
	uint64_t kernel_ns;
	char cmdline[4096];
	int r, port;

	/* Run again by a session as msb cp's guest half: a tool, not PID 1. */
	if (argc > 0 && !strcmp(argv[0], PROTO_CP_TOOL))
		return agent_cp_main(argc, argv);
	clock_gettime(CLOCK_BOOTTIME, &ts);
	kernel_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;

	r = mount_early();
	open_console();
	if (r < 0 || read_file("/proc/cmdline", cmdline, sizeof(cmdline)) < 0) {
		alog("early mounts failed: %s", strerror(-r));
		agent_poweroff();
	}
	if (boot_parse_cmdline(cmdline, &bp) < 0) {
		alog("bad msb.* parameters on the kernel command line");
		agent_poweroff();
	}
	if (bp.poweroff)
		agent_poweroff();
	/* The root filesystem and the rest come with the host's CONFIG (config.c). */
	port = open_agent_port();
	if (port < 0) {
		alog("agent port: %s", strerror(-port));
		agent_poweroff();
	}
	r = agent_serve(port, kernel_ns);
	alog("agent loop failed: %s", strerror(-r));
	agent_poweroff();
}
