// SPDX-License-Identifier: Apache-2.0
/* QEMU microvm backend: builds the command line, launches and stops QEMU. */
#define _GNU_SOURCE
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

struct vm {
	pid_t pid;
	int qmp_fd;
	bool running;
	int status;
};

/* A growing argv. Allocation failures are remembered and reported once at the end. */
struct argv {
	char **v;
	size_t n, cap;
	bool oom;
};

static void arg_add(struct argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void arg_add(struct argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		char **nv = realloc(a->v, cap * sizeof(char *));

		if (!nv) {
			a->oom = true;
			return;
		}
		a->v = nv;
		a->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		a->oom = true;
		s = NULL;
	}
	va_end(ap);
	if (!s)
		return;
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void argv_free(struct argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

/* QEMU option values use ',' as a separator; a literal comma is written twice. */
static char *qemu_escape(const char *s)
{
	size_t n = strlen(s), extra = 0;
	char *out, *o;

	for (const char *p = s; *p; p++)
		extra += *p == ',';
	out = malloc(n + extra + 1);
	if (!out)
		return NULL;
	o = out;
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

char *vmm_binary(void)
{
	const char *env = getenv("MSB_QEMU");

	if (env && *env)
		return find_in_path(env);
	return find_in_path(VMM_PROGRAM);
}

static int build_argv(const struct vm_config *c, const char *qemu, struct argv *a)
{
	_cleanup_free_ char *kernel = qemu_escape(c->kernel);
	_cleanup_free_ char *initrd = qemu_escape(c->initrd);
	_cleanup_free_ char *console = qemu_escape(c->console_log);
	bool kvm = c->accel == VM_ACCEL_KVM;

	if (!kernel || !initrd || !console)
		return -ENOMEM;
	arg_add(a, "%s", qemu);
	/* acpi=off makes QEMU announce the virtio-mmio devices on the command line. */
	arg_add(a, "-M");
	arg_add(a, "microvm,x-option-roms=off,rtc=on,acpi=off,isa-serial=on");
	arg_add(a, "-accel");
	arg_add(a, "%s", kvm ? "kvm" : "tcg");
	arg_add(a, "-cpu");
	arg_add(a, "%s", kvm ? "host" : "max");
	arg_add(a, "-m");
	arg_add(a, "%uM", c->mem_mib);
	arg_add(a, "-smp");
	arg_add(a, "%u", c->cpus);
	arg_add(a, "-nodefaults");
	arg_add(a, "-no-user-config");
	arg_add(a, "-display");
	arg_add(a, "none");
	arg_add(a, "-no-reboot");
	arg_add(a, "-kernel");
	arg_add(a, "%s", c->kernel);
	arg_add(a, "-initrd");
	arg_add(a, "%s", c->initrd);
	arg_add(a, "-append");
	/*
	 * no_timer_check: the IO-APIC timer probe costs ~50 ms under TCG and
	 * tells nothing about a VM whose timer is known to work.
	 */
	arg_add(a, "console=ttyS0 quiet no_timer_check reboot=t panic=-1 rdinit=/init %s",
		c->cmdline_extra ? c->cmdline_extra : "");
	arg_add(a, "-chardev");
	arg_add(a, "file,id=con,path=%s", console);
	arg_add(a, "-serial");
	arg_add(a, "chardev:con");
	arg_add(a, "-device");
	arg_add(a, "virtio-rng-device");
	for (size_t i = 0; i < c->ndisks; i++) {
		_cleanup_free_ char *path = qemu_escape(c->disks[i].path);

		if (!path)
			return -ENOMEM;
		arg_add(a, "-drive");
		arg_add(a, "id=d%zu,file=%s,format=%s,if=none,readonly=%s%s", i, path,
			c->disks[i].format ? c->disks[i].format : "raw",
			c->disks[i].readonly ? "on" : "off",
			c->disks[i].readonly ? "" : ",discard=unmap");
		arg_add(a, "-device");
		arg_add(a, "virtio-blk-device,drive=d%zu", i);
	}
	arg_add(a, "-device");
	arg_add(a, "virtio-serial-device,max_ports=2");
	arg_add(a, "-chardev");
	arg_add(a, "socket,id=agent,fd=%d", c->agent_fd);
	arg_add(a, "-device");
	arg_add(a, "virtserialport,chardev=agent,name=agent");
	arg_add(a, "-chardev");
	arg_add(a, "socket,id=qmp,fd=%d", c->qmp_fd);
	arg_add(a, "-mon");
	arg_add(a, "chardev=qmp,mode=control");
	return a->oom ? -ENOMEM : 0;
}

static void __attribute__((noreturn))
child(const struct vm_config *c, char **argv, int errpipe, pid_t parent)
{
	sigset_t none;
	int null = open("/dev/null", O_RDWR), e;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* The VM must not outlive its supervisor. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
	}
	if (c->stderr_fd >= 0)
		dup2(c->stderr_fd, 2);
	fcntl(c->agent_fd, F_SETFD, 0);
	fcntl(c->qmp_fd, F_SETFD, 0);
	execv(argv[0], argv);
	e = errno;
	(void)!write(errpipe, &e, sizeof(e));
	_exit(127);
}

int vm_start(const struct vm_config *c, struct vm **out, struct msb_err **err)
{
	_cleanup_free_ char *qemu = vmm_binary();
	_cleanup_close_ int ep_r = -1, ep_w = -1;
	struct argv a = { 0 };
	int pipefd[2], e = 0, r;
	struct vm *vm;
	ssize_t n;
	pid_t pid, self = getpid();

	if (!qemu)
		return msb_err_set(err, ENOENT, "%s not found in PATH (install %s)", VMM_PROGRAM,
				   VMM_PACKAGE);
	r = build_argv(c, qemu, &a);
	if (r < 0) {
		argv_free(&a);
		return msb_err_sys(err, -r, "qemu command line");
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		argv_free(&a);
		return msb_err_sys(err, errno, "pipe");
	}
	ep_r = pipefd[0];
	ep_w = pipefd[1];
	if (log_enabled(LOG_DEBUG)) {
		char line[4096];
		size_t off = 0;

		for (size_t i = 0; i < a.n && off < sizeof(line) - 1; i++)
			off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s",
						i ? " " : "", a.v[i]);
		log_debug("vmm: %s", line);
	}
	pid = fork();
	if (pid == 0)
		child(c, a.v, ep_w, self);
	argv_free(&a);
	if (pid < 0)
		return msb_err_sys(err, errno, "fork");
	close(steal_fd(ep_w));
	while ((n = read(ep_r, &e, sizeof(e))) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(e)) {
		waitpid(pid, NULL, 0);
		return msb_err_sys(err, e, "exec %s", qemu);
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return msb_err_sys(err, ENOMEM, "vm");
	}
	vm->pid = pid;
	vm->running = true;
	vm->qmp_fd = fcntl(c->qmp_fd, F_DUPFD_CLOEXEC, 3);
	*out = vm;
	return 0;
}

pid_t vm_pid(const struct vm *vm)
{
	return vm->pid;
}

void vm_reaped(struct vm *vm, int status)
{
	vm->running = false;
	vm->status = status;
}

bool vm_running(const struct vm *vm)
{
	return vm->running;
}

void vm_quit(struct vm *vm)
{
	static const char cmds[] = "{\"execute\":\"qmp_capabilities\"}\n"
				   "{\"execute\":\"quit\"}\n";

	if (!vm->running)
		return;
	if (vm->qmp_fd < 0 || write_all(vm->qmp_fd, cmds, sizeof(cmds) - 1) < 0)
		vm_kill(vm);
}

void vm_kill(struct vm *vm)
{
	if (vm->running)
		kill(vm->pid, SIGKILL);
}

void vm_free(struct vm *vm)
{
	if (!vm)
		return;
	if (vm->running) {
		kill(vm->pid, SIGKILL);
		waitpid(vm->pid, NULL, 0);
	}
	if (vm->qmp_fd >= 0)
		close(vm->qmp_fd);
	free(vm);
}
