// SPDX-License-Identifier: Apache-2.0
/* QEMU microvm backend: builds the command line, launches and stops QEMU. */
#define _GNU_SOURCE
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "util/cleanup.h"
#include "util/conn.h"
#include "util/fs.h"
#include "util/parse.h"
#include "util/log.h"
#include "util/spawn.h"
#include "vm/jail.h"
#include "vm/layers.h"

#define VM_TCG_TB_MIB 32

/* Where the VMM finds its sockets (build_argv names them, vm_start places them). */
enum { VM_FD_AGENT = 3, VM_FD_QMP, VM_FD_CONSOLE, VM_FD_NET };

struct job_step {
	const char *cmd;
	char *args; /* JSON text, or NULL */
	bool pass_fd, migration, cleanup;
};
#define STEP_PASS_FD   0x1u /* hand the job's file to QEMU first */
#define STEP_MIGRATION 0x2u /* wait for the MIGRATION event too */
#define STEP_CLEANUP   0x4u /* runs even when an earlier step failed */

struct vm {
	pid_t pid;
	bool running;
	int status;
	struct conn qmp;
	int ep; /* the owner's epoll, once vm_watch() was called */
	uint64_t ep_data;
	unsigned int next_id;
	/* QMP commands waiting for their answer, by id. */
	struct {
		unsigned int id;
		vm_disk_stats_fn cb;
		void *ctx;
	} pending[8];
	/* The job in progress (see "Jobs"). */
	struct {
		bool active;
		struct job_step steps[40];
		size_t n, at;
		const struct job_step *waiting; /* the step sent, until it is over */
		unsigned int id;		/* its QMP id */
		bool answered, asking_why, failed;
		enum { MIG_NONE, MIG_DONE, MIG_FAILED } mig;
		int fd; /* the state file, until QEMU has it */
		char why[256];
		vm_state_fn cb;
		void *ctx;
	} job;
	/* Layer disks (VMDK): set aside while a running guest is saved. */
	struct {
		unsigned int index;
		char *path;
		uint64_t size;
	} vmdk[VM_MMIO_SLOTS];
	size_t nvmdk;
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

/* A read-only VMDK: the layer disk, whose extents are the cached layer images. */
static bool is_layer_vmdk(const struct vm_disk *d)
{
	return d->readonly && d->format && !strcmp(d->format, "vmdk");
}

/*
 * A disk image's vetted chain as one -blockdev per node, in JSON, the base
 * first: every file name, format, data file and backing node is given, and
 * the last node's backing is null, so QEMU follows no name the image holds.
 * The top node is "d<i>", the drive the device uses.
 */
static int chain_args(struct argv *a, const struct vm_disk *d, size_t i)
{
	for (size_t k = d->nchain; k-- > 0;) {
		const struct vm_disk_node *n = &d->chain[k];
		bool rw = k == 0 && !d->readonly;
		char name[64], below[64];
		json_t *o;
		char *text;

		snprintf(name, sizeof(name), k ? "d%zu-b%zu" : "d%zu", i, k);
		snprintf(below, sizeof(below), "d%zu-b%zu", i, k + 1);
		o = json_pack("{s:s, s:s, s:b, s:{s:s, s:s, s:b}}", "driver", n->format,
			      "node-name", name, "read-only", !rw, "file", "driver", "file",
			      "filename", n->path, "read-only", !rw);
		if (!o)
			return -ENOMEM;
		if (rw) {
			json_object_set_new(o, "discard", json_string("unmap"));
			json_object_set_new(json_object_get(o, "file"), "discard",
					    json_string("unmap"));
		}
		if (strcmp(n->format, "raw") != 0)
			json_object_set_new(o, "backing",
					    k + 1 < d->nchain ? json_string(below) : json_null());
		if (n->data_file)
			json_object_set_new(o, "data-file",
					    json_pack("{s:s, s:s, s:b}", "driver", "file",
						      "filename", n->data_file, "read-only", !rw));
		text = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (!text)
			return -ENOMEM;
		arg_add(a, "-blockdev");
		arg_add(a, "%s", text);
		free(text);
	}
	return 0;
}

static int build_argv(const struct vm_config *c, const char *qemu, struct argv *a)
{
	_cleanup_free_ char *kernel = qemu_escape(c->kernel);
	_cleanup_free_ char *initrd = qemu_escape(c->initrd);
	bool kvm = c->accel == VM_ACCEL_KVM;

	if (!kernel || !initrd)
		return -ENOMEM;
	arg_add(a, "%s", qemu);
	/* acpi=off makes QEMU announce the virtio-mmio devices on the command line. */
	arg_add(a, "-M");
	arg_add(a, "microvm,x-option-roms=off,rtc=on,acpi=off,isa-serial=on,memory-backend=mem");
	/*
	 * One RAM block named "mem" whatever backs it, so a state saved by any
	 * VM of a shape restores into any other.
	 */
	arg_add(a, "-object");
	if (c->mem_file) {
		_cleanup_free_ char *mp = qemu_escape(c->mem_file);

		if (!mp)
			return -ENOMEM;
		arg_add(a, "memory-backend-file,id=mem,size=%uM,mem-path=%s,share=%s", c->mem_mib,
			mp, c->mem_shared ? "on" : "off");
	} else {
		arg_add(a, "memory-backend-ram,id=mem,size=%uM", c->mem_mib);
	}
	arg_add(a, "-accel");
	/*
	 * TCG's translation cache grows with the code a guest runs, up to 1 GiB
	 * by default: bounded, a sandbox costs at most this much for it. Measured
	 * (bench/lifecycle): an idle guest fills 30 MiB of whatever it is given;
	 * 16 and 32 MiB ran a mixed workload no slower than the default.
	 */
	if (kvm)
		arg_add(a, "kvm");
	else
		arg_add(a, "tcg,tb-size=%u", VM_TCG_TB_MIB);
	arg_add(a, "-cpu");
	arg_add(a, "%s", kvm ? "host" : "max");
	arg_add(a, "-m");
	arg_add(a, "%uM", c->mem_mib);
	arg_add(a, "-smp");
	arg_add(a, "%u", c->cpus);
	arg_add(a, "-nodefaults");
	/* QEMU's own seccomp filter: no exec, no setuid, no resource changes, no obsolete calls. */
	arg_add(a, "-sandbox");
	arg_add(a, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
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
	arg_add(a, "socket,id=con,fd=%d", VM_FD_CONSOLE);
	arg_add(a, "-serial");
	arg_add(a, "chardev:con");
	arg_add(a, "-device");
	arg_add(a, "virtio-rng-device");
	for (size_t i = 0; i < c->ndisks; i++) {
		_cleanup_free_ char *path = qemu_escape(c->disks[i].path);

		if (!path)
			return -ENOMEM;
		if (c->disks[i].nchain) {
			if (chain_args(a, &c->disks[i], i) < 0)
				return -ENOMEM;
		} else if (is_layer_vmdk(&c->disks[i])) {
			/*
			 * A raw node over the VMDK node: the VMDK node can be set
			 * aside while the guest is saved (see job_vmdk_swap()). A
			 * VMDK the guest writes (a disk image as the root) is an
			 * ordinary drive.
			 */
			arg_add(a, "-blockdev");
			arg_add(a,
				"driver=vmdk,node-name=d%zu-v,read-only=on,file.driver=file,"
				"file.filename=%s,file.read-only=on",
				i, path);
			arg_add(a, "-blockdev");
			arg_add(a, "driver=raw,node-name=d%zu,file=d%zu-v,read-only=on", i, i);
		} else {
			arg_add(a, "-drive");
			arg_add(a, "id=d%zu,file=%s,format=%s,if=none,readonly=%s%s", i, path,
				c->disks[i].format ? c->disks[i].format : "raw",
				c->disks[i].readonly ? "on" : "off",
				c->disks[i].readonly ? "" : ",discard=unmap");
		}
		arg_add(a, "-device");
		if (c->disks[i].serial)
			arg_add(a, "virtio-blk-device,drive=d%zu,serial=%s", i, c->disks[i].serial);
		else
			arg_add(a, "virtio-blk-device,drive=d%zu", i);
	}
	arg_add(a, "-device");
	arg_add(a, "virtio-serial-device,max_ports=2");
	arg_add(a, "-chardev");
	arg_add(a, "socket,id=agent,fd=%d", VM_FD_AGENT);
	arg_add(a, "-device");
	arg_add(a, "virtserialport,chardev=agent,name=agent");
	if (c->nshares) {
		/*
		 * The export is the jail's directory of binds; remap keeps inode
		 * numbers from different host filesystems apart in the guest.
		 */
		arg_add(a, "-fsdev");
		arg_add(a, "local,id=share,path=%s,security_model=none,multidevs=remap",
			JAIL_SHARE_DIR);
		arg_add(a, "-device");
		arg_add(a, "virtio-9p-device,fsdev=share,mount_tag=%s", PROTO_SHARE_TAG);
	}
	if (c->net_fd >= 0) {
		/*
		 * No vnet header on a stream: the guest checksums and segments
		 * itself, so the card gets a large MTU to keep per-frame costs low.
		 */
		arg_add(a, "-netdev");
		arg_add(a, "stream,id=n0,server=off,addr.type=fd,addr.str=%d", VM_FD_NET);
		arg_add(a, "-device");
		arg_add(a,
			"virtio-net-device,netdev=n0,mac=%02x:%02x:%02x:%02x:%02x:%02x,host_mtu=%u",
			c->net_mac[0], c->net_mac[1], c->net_mac[2], c->net_mac[3], c->net_mac[4],
			c->net_mac[5], c->net_mtu ? c->net_mtu : 1500);
	}
	if (c->incoming) {
		/* The guest's state comes later, through vm_restore(). */
		arg_add(a, "-incoming");
		arg_add(a, "defer");
	}
	arg_add(a, "-chardev");
	arg_add(a, "socket,id=qmp,fd=%d", VM_FD_QMP);
	arg_add(a, "-mon");
	arg_add(a, "chardev=qmp,mode=control");
	return a->oom ? -ENOMEM : 0;
}

/*
 * DOC: QMP
 * The supervisor holds its own end of the QMP socket pair (QEMU gets the
 * other). Capabilities are negotiated as soon as QEMU starts; replies and
 * events are read in bounded batches and never allowed to pile up in QEMU.
 * A line longer than QMP_LINE_MAX means QEMU is not QEMU any more: the
 * channel is dropped and callers fall back to killing the process.
 */
#define QMP_LINE_MAX	((size_t)1 << 20)
#define QMP_TX_HWM	((size_t)64 << 10)
#define QMP_READ_BUDGET ((size_t)256 << 10)

static void qmp_rearm(struct vm *vm)
{
	if (vm->ep >= 0 && conn_watch(&vm->qmp, vm->ep, vm->ep_data, true) < 0)
		log_warn("qmp: epoll: %s", strerror(errno));
}

static int qmp_send(struct vm *vm, const char *cmd);

static void pending_fail_all(struct vm *vm)
{
	for (size_t i = 0; i < ARRAY_SIZE(vm->pending); i++) {
		if (!vm->pending[i].cb)
			continue;
		vm->pending[i].cb(vm->pending[i].ctx, false, 0, 0);
		vm->pending[i].cb = NULL;
	}
}

int vm_disk_stats(struct vm *vm, vm_disk_stats_fn cb, void *ctx)
{
	size_t slot = ARRAY_SIZE(vm->pending);
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(vm->pending) && slot == ARRAY_SIZE(vm->pending); i++)
		if (!vm->pending[i].cb)
			slot = i;
	if (slot == ARRAY_SIZE(vm->pending))
		return -EBUSY;
	r = qmp_send(vm, "query-blockstats");
	if (r < 0)
		return r;
	vm->pending[slot].id = vm->next_id;
	vm->pending[slot].cb = cb;
	vm->pending[slot].ctx = ctx;
	return 0;
}

/* Sums what every drive read and wrote, from query-blockstats' answer. */
static void blockstats(json_t *ret, uint64_t *rd, uint64_t *wr)
{
	size_t i;
	json_t *dev;

	*rd = *wr = 0;
	json_array_foreach(ret, i, dev)
	{
		json_t *st = json_object_get(dev, "stats");

		*rd += (uint64_t)json_integer_value(json_object_get(st, "rd_bytes"));
		*wr += (uint64_t)json_integer_value(json_object_get(st, "wr_bytes"));
	}
}

/* Field @field of the VMM's /proc/PID/stat (see parse_proc_stat()). Return: 0 or -errno. */
static int vmm_stat(const struct vm *vm, unsigned int field, uint64_t *out)
{
	char path[64], text[1024];
	int fd, n;

	if (!vm->running)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)vm->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = (int)read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	text[n] = '\0';
	return parse_proc_stat(text, field, out);
}

int vm_cpu_ns(const struct vm *vm, uint64_t *ns)
{
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t utime = 0, stime = 0;
	int r;

	if (hz <= 0)
		return -EINVAL;
	r = vmm_stat(vm, 14, &utime);
	if (!r)
		r = vmm_stat(vm, 15, &stime);
	if (r < 0)
		return r;
	*ns = (utime + stime) * (1000000000ull / (uint64_t)hz);
	return 0;
}

int vm_rss_bytes(const struct vm *vm, uint64_t *bytes)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t pages = 0;
	int r;

	if (page <= 0)
		return -EINVAL;
	r = vmm_stat(vm, 24, &pages);
	if (r < 0)
		return r;
	*bytes = pages * (uint64_t)page;
	return 0;
}

static int qmp_send(struct vm *vm, const char *cmd)
{
	char line[256];
	int n;

	if (vm->qmp.fd < 0 || vm->qmp.error)
		return -EPIPE;
	if (conn_tx_full(&vm->qmp))
		return -EAGAIN;
	n = snprintf(line, sizeof(line), "{\"execute\":\"%s\",\"id\":%u}\n", cmd, ++vm->next_id);
	if (n < 0 || (size_t)n >= sizeof(line) || buf_append(&vm->qmp.tx, line, (size_t)n) < 0)
		return -ENOMEM;
	conn_flush(&vm->qmp);
	qmp_rearm(vm);
	return vm->qmp.error;
}

/* A command with arguments (a JSON object's text, or NULL). Return: its id, or -errno. */
static int qmp_exec(struct vm *vm, const char *cmd, const char *args)
{
	_cleanup_free_ char *line = NULL;
	int n;

	if (vm->qmp.fd < 0 || vm->qmp.error)
		return -EPIPE;
	n = asprintf(&line, "{\"execute\":\"%s\",%s%s%s\"id\":%u}\n", cmd,
		     args ? "\"arguments\":" : "", args ? args : "", args ? "," : "",
		     ++vm->next_id);
	if (n < 0) {
		line = NULL;
		return -ENOMEM;
	}
	if (buf_append(&vm->qmp.tx, line, (size_t)n) < 0)
		return -ENOMEM;
	conn_flush(&vm->qmp);
	qmp_rearm(vm);
	return vm->qmp.error ? vm->qmp.error : (int)vm->next_id;
}

/*
 * Hands @fd to QEMU: one byte carrying it (SCM_RIGHTS), which QEMU keeps for
 * the next getfd. Everything queued before goes first.
 */
static int qmp_pass_fd(struct vm *vm, int fd)
{
	char byte = ' ', ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &byte, 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	conn_flush(&vm->qmp);
	if (buf_size(&vm->qmp.tx))
		return -EAGAIN;
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	while (sendmsg(vm->qmp.fd, &mh, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/*
 * DOC: Jobs
 * A job is a short list of QMP commands run one after the other, each sent
 * when the previous one was answered: stop, cont, a save or a restore. A
 * step may first hand the job's file to QEMU (getfd), and a migration step
 * also waits for the MIGRATION event that ends it. When a step fails, the
 * rest are skipped except the cleanup steps (putting back what an earlier
 * step changed, letting the guest run again), and the job reports the
 * first failure.
 */
static void job_free_steps(struct vm *vm)
{
	for (size_t i = 0; i < vm->job.n; i++) {
		free(vm->job.steps[i].args);
		vm->job.steps[i].args = NULL;
	}
	vm->job.n = 0;
}

static void job_end(struct vm *vm)
{
	vm_state_fn cb = vm->job.cb;
	bool ok = !vm->job.failed;
	char why[sizeof(vm->job.why)];

	snprintf(why, sizeof(why), "%s", vm->job.why);
	if (vm->job.fd >= 0)
		close(vm->job.fd);
	vm->job.fd = -1;
	vm->job.active = false;
	vm->job.cb = NULL;
	job_free_steps(vm);
	if (cb)
		cb(vm->job.ctx, ok, ok ? NULL : why);
}

static void job_fail(struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void job_fail(struct vm *vm, const char *fmt, ...)
{
	va_list ap;

	if (vm->job.failed)
		return; /* the first failure is the one to report */
	vm->job.failed = true;
	va_start(ap, fmt);
	vsnprintf(vm->job.why, sizeof(vm->job.why), fmt, ap);
	va_end(ap);
}

/* Sends the job's next step (after a failure, the next cleanup step), or ends the job. */
static void job_next(struct vm *vm)
{
	while (vm->job.at < vm->job.n) {
		struct job_step *st = &vm->job.steps[vm->job.at++];
		int id = 0;

		if (vm->job.failed && !st->cleanup)
			continue;
		if (st->pass_fd) {
			id = vm->job.fd >= 0 ? qmp_pass_fd(vm, vm->job.fd) : -EBADF;
			if (vm->job.fd >= 0)
				close(vm->job.fd);
			vm->job.fd = -1;
		}
		vm->job.mig = MIG_NONE;
		if (id == 0)
			id = qmp_exec(vm, st->cmd, st->args);
		if (id < 0) {
			job_fail(vm, "%s: %s", st->cmd, strerror(-id));
			if (vm->qmp.fd < 0)
				break; /* nothing more can be sent */
			continue;
		}
		vm->job.id = (unsigned int)id;
		vm->job.answered = false;
		vm->job.waiting = st;
		return;
	}
	job_end(vm);
}

/* The current step is over once answered and, for a migration, once the event said how it went. */
static void job_step_done(struct vm *vm)
{
	const struct job_step *st = vm->job.waiting;

	if (!st || !vm->job.answered || vm->job.asking_why)
		return;
	if (st->migration && vm->job.mig == MIG_NONE)
		return;
	if (st->migration && vm->job.mig == MIG_FAILED) {
		/* Ask why: query-migrate's answer goes on with the job. */
		int id = qmp_exec(vm, "query-migrate", NULL);

		if (id >= 0) {
			vm->job.id = (unsigned int)id;
			vm->job.asking_why = true;
			return;
		}
		job_fail(vm, "the VMM's migration failed");
	}
	vm->job.waiting = NULL;
	job_next(vm);
}

static void job_answer(struct vm *vm, json_t *o)
{
	json_t *e = json_object_get(o, "error");

	if (vm->job.asking_why) {
		const char *d = json_string_value(
			json_object_get(json_object_get(o, "return"), "error-desc"));

		vm->job.asking_why = false;
		vm->job.mig = MIG_NONE;
		job_fail(vm, "the VMM's migration failed: %s", d ? d : "no reason given");
		vm->job.waiting = NULL;
		job_next(vm);
		return;
	}
	vm->job.answered = true;
	if (e) {
		job_fail(vm, "%s: %s", vm->job.waiting ? vm->job.waiting->cmd : "qmp",
			 json_string_value(json_object_get(e, "desc")) ?: "?");
		vm->job.waiting = NULL;
		job_next(vm);
		return;
	}
	job_step_done(vm);
}

static void job_event(struct vm *vm, json_t *o)
{
	const char *st = json_string_value(json_object_get(json_object_get(o, "data"), "status"));

	if (!st || !vm->job.waiting || !vm->job.waiting->migration)
		return;
	if (!strcmp(st, "failed") || !strcmp(st, "cancelled"))
		vm->job.mig = MIG_FAILED;
	else if (!strcmp(st, "completed"))
		vm->job.mig = MIG_DONE;
	else
		return;
	job_step_done(vm);
}

static int job_add(struct vm *vm, const char *cmd, json_t *args, unsigned int flags)
{
	struct job_step *st;

	if (vm->job.n >= ARRAY_SIZE(vm->job.steps)) {
		json_decref(args);
		return -E2BIG;
	}
	st = &vm->job.steps[vm->job.n];
	st->cmd = cmd;
	st->args = args ? json_dumps(args, JSON_COMPACT) : NULL;
	json_decref(args);
	if (args && !st->args)
		return -ENOMEM;
	st->pass_fd = flags & STEP_PASS_FD;
	st->migration = flags & STEP_MIGRATION;
	st->cleanup = flags & STEP_CLEANUP;
	vm->job.n++;
	return 0;
}

static int job_caps(struct vm *vm, unsigned int flags)
{
	return job_add(vm, "migrate-set-capabilities",
		       json_pack("{s:[{s:s,s:b},{s:s,s:b}]}", "capabilities", "capability",
				 "events", "state", 1, "capability", "x-ignore-shared", "state",
				 (flags & VM_STATE_SHARED_RAM) != 0),
		       0);
}

/*
 * QEMU refuses to save a VM with a VMDK disk open (a migration blocker), so
 * each layer disk's VMDK node steps aside for a null node of the same size
 * while the stopped guest is saved, and comes back after.
 */
static int job_vmdk_swap(struct vm *vm, bool out)
{
	int r = 0;

	for (size_t i = 0; !r && i < vm->nvmdk; i++) {
		char raw[16], vm_node[16], null_node[16];
		unsigned int fl = out ? 0 : STEP_CLEANUP;

		snprintf(raw, sizeof(raw), "d%u", vm->vmdk[i].index);
		snprintf(vm_node, sizeof(vm_node), "d%u-v", vm->vmdk[i].index);
		snprintf(null_node, sizeof(null_node), "d%u-n", vm->vmdk[i].index);
		if (out)
			r = job_add(vm, "blockdev-add",
				    json_pack("{s:s,s:s,s:I,s:b,s:b}", "driver", "null-co",
					      "node-name", null_node, "size",
					      (json_int_t)vm->vmdk[i].size, "read-zeroes", 1,
					      "read-only", 1),
				    fl);
		else
			r = job_add(vm, "blockdev-add",
				    json_pack("{s:s,s:s,s:b,s:{s:s,s:s,s:b}}", "driver", "vmdk",
					      "node-name", vm_node, "read-only", 1, "file",
					      "driver", "file", "filename", vm->vmdk[i].path,
					      "read-only", 1),
				    fl);
		if (!r)
			r = job_add(vm, "blockdev-reopen",
				    json_pack("{s:[{s:s,s:s,s:s,s:b}]}", "options", "driver", "raw",
					      "node-name", raw, "file", out ? null_node : vm_node,
					      "read-only", 1),
				    fl);
		if (!r)
			r = job_add(vm, "blockdev-del",
				    json_pack("{s:s}", "node-name", out ? vm_node : null_node), fl);
	}
	return r;
}

static int job_begin(struct vm *vm, int fd, vm_state_fn cb, void *ctx)
{
	if (vm->job.active)
		return -EBUSY;
	job_free_steps(vm);
	vm->job.fd = -1;
	if (fd >= 0) {
		vm->job.fd = dup(fd);
		if (vm->job.fd < 0)
			return -errno;
	}
	vm->job.at = 0;
	vm->job.failed = false;
	vm->job.why[0] = '\0';
	vm->job.cb = cb;
	vm->job.ctx = ctx;
	return 0;
}

/* Runs the steps job_begin() and job_add() prepared; on a setup error, nothing ran. */
static int job_run(struct vm *vm, int r)
{
	if (r < 0) {
		if (vm->job.fd >= 0)
			close(vm->job.fd);
		vm->job.fd = -1;
		job_free_steps(vm);
		return r;
	}
	vm->job.active = true;
	vm->job.waiting = NULL;
	vm->job.asking_why = false;
	job_next(vm);
	return 0;
}

/* The job's file handed to QEMU, then the stream out of it or into it (@cmd), to its end. */
static int job_stream(struct vm *vm, const char *cmd)
{
	int r = job_add(vm, "getfd", json_pack("{s:s}", "fdname", "msbstate"), STEP_PASS_FD);

	return r ? r : job_add(vm, cmd, json_pack("{s:s}", "uri", "fd:msbstate"), STEP_MIGRATION);
}

int vm_save(struct vm *vm, int fd, unsigned int flags, vm_state_fn cb, void *ctx)
{
	int r = job_begin(vm, fd, cb, ctx);

	if (r < 0)
		return r;
	r = job_caps(vm, flags);
	if (!r && !(flags & VM_SAVE_PAUSED))
		r = job_add(vm, "stop", NULL, 0);
	if (!r)
		r = job_vmdk_swap(vm, true);
	if (!r)
		r = job_stream(vm, "migrate");
	if (!r)
		r = job_vmdk_swap(vm, false);
	/* Saved in a single pass while stopped: the guest goes on where it was. */
	if (!r && !(flags & VM_SAVE_PAUSED))
		r = job_add(vm, "cont", NULL, STEP_CLEANUP);
	return job_run(vm, r);
}

int vm_restore(struct vm *vm, int fd, unsigned int flags, vm_state_fn cb, void *ctx)
{
	int r = job_begin(vm, fd, cb, ctx);

	if (r < 0)
		return r;
	r = job_caps(vm, flags);
	if (!r)
		r = job_stream(vm, "migrate-incoming");
	/* It was saved stopped, so it arrives stopped. */
	if (!r)
		r = job_add(vm, "cont", NULL, 0);
	return job_run(vm, r);
}

/* A job of one command (stop, cont). */
static int job_one(struct vm *vm, const char *cmd, vm_state_fn cb, void *ctx)
{
	int r = job_begin(vm, -1, cb, ctx);

	return r < 0 ? r : job_run(vm, job_add(vm, cmd, NULL, 0));
}

int vm_pause(struct vm *vm, vm_state_fn cb, void *ctx)
{
	return job_one(vm, "stop", cb, ctx);
}

int vm_resume(struct vm *vm, vm_state_fn cb, void *ctx)
{
	return job_one(vm, "cont", cb, ctx);
}

struct sync_job {
	bool done, ok;
	char *why;
	size_t len;
};

static void sync_done(void *ctx, bool ok, const char *why)
{
	struct sync_job *j = ctx;

	j->done = true;
	j->ok = ok;
	if (!ok)
		snprintf(j->why, j->len, "%s", why ? why : "failed");
}

/* Waits for the job just begun with @j as its context (at most @timeout_ms). */
static int job_wait(struct vm *vm, struct sync_job *j, unsigned int timeout_ms)
{
	uint64_t end;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	end = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + timeout_ms;
	while (!j->done) {
		struct pollfd p = { .fd = vm->qmp.fd, .events = POLLIN };
		uint64_t now;

		if (vm->qmp.fd < 0)
			break;
		if (buf_size(&vm->qmp.tx))
			p.events |= POLLOUT;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
		if (now >= end) {
			vm->job.cb = NULL;
			job_end(vm);
			snprintf(j->why, j->len, "no answer from the VMM within %u ms", timeout_ms);
			return -ETIMEDOUT;
		}
		if (poll(&p, 1, (int)(end - now)) < 0 && errno != EINTR)
			break;
		vm_handle(vm);
	}
	if (!j->done) {
		vm->job.cb = NULL;
		if (vm->job.active)
			job_end(vm);
		snprintf(j->why, j->len, "the VMM went away");
		return -EPIPE;
	}
	return j->ok ? 0 : -EIO;
}

#define SYNC_JOB(call, timeout_ms, why, len)                                                       \
	({                                                                                         \
		struct sync_job j_ = { .why = (why), .len = (len) };                               \
		int r_ = (call);                                                                   \
		if (r_ < 0)                                                                        \
			snprintf((why), (len), "%s", strerror(-r_));                               \
		else                                                                               \
			r_ = job_wait(vm, &j_, (timeout_ms));                                      \
		r_;                                                                                \
	})

int vm_restore_wait(struct vm *vm, int fd, unsigned int flags, unsigned int timeout_ms, char *why,
		    size_t len)
{
	return SYNC_JOB(vm_restore(vm, fd, flags, sync_done, &j_), timeout_ms, why, len);
}

int vm_save_wait(struct vm *vm, int fd, unsigned int flags, unsigned int timeout_ms, char *why,
		 size_t len)
{
	return SYNC_JOB(vm_save(vm, fd, flags, sync_done, &j_), timeout_ms, why, len);
}

int vm_pause_wait(struct vm *vm, unsigned int timeout_ms, char *why, size_t len)
{
	return SYNC_JOB(vm_pause(vm, sync_done, &j_), timeout_ms, why, len);
}

int vm_resume_wait(struct vm *vm, unsigned int timeout_ms, char *why, size_t len)
{
	return SYNC_JOB(vm_resume(vm, sync_done, &j_), timeout_ms, why, len);
}

static void qmp_line(struct vm *vm, const char *line, size_t n)
{
	json_t *o = json_loadb(line, n, 0, NULL), *e;
	json_int_t id;

	if (!o) {
		log_warn_rl("qmp: unparsable message from the VMM");
		return;
	}
	id = json_integer_value(json_object_get(o, "id"));
	if (vm->job.active) {
		if (id > 0 && (vm->job.waiting || vm->job.asking_why) &&
		    (unsigned int)id == vm->job.id) {
			job_answer(vm, o);
			json_decref(o);
			return;
		}
		e = json_object_get(o, "event");
		if (e && !strcmp(json_string_value(e) ?: "", "MIGRATION"))
			job_event(vm, o);
	}
	for (size_t i = 0; id > 0 && i < ARRAY_SIZE(vm->pending); i++) {
		struct json_t *ret = json_object_get(o, "return");
		uint64_t rd = 0, wr = 0;
		vm_disk_stats_fn cb = vm->pending[i].cb;

		if (!cb || vm->pending[i].id != (unsigned int)id)
			continue;
		vm->pending[i].cb = NULL;
		if (json_is_array(ret))
			blockstats(ret, &rd, &wr);
		cb(vm->pending[i].ctx, json_is_array(ret), rd, wr);
	}
	if ((e = json_object_get(o, "error"))) {
		log_warn_rl("qmp: command %" JSON_INTEGER_FORMAT " failed: %.200s",
			    json_integer_value(json_object_get(o, "id")),
			    json_string_value(json_object_get(e, "desc")) ?: "?");
	} else if ((e = json_object_get(o, "event"))) {
		log_debug_rl("qmp: event %.100s", json_string_value(e) ?: "?");
	}
	json_decref(o);
}

static void qmp_drop(struct vm *vm, const char *why)
{
	log_warn("qmp: %s; the control channel is closed", why);
	if (vm->job.active) {
		job_fail(vm, "%s", why);
		job_end(vm);
	}
	if (vm->ep >= 0 && vm->qmp.ev)
		epoll_ctl(vm->ep, EPOLL_CTL_DEL, vm->qmp.fd, NULL);
	conn_close(&vm->qmp);
	vm->qmp.error = -EPIPE;
	pending_fail_all(vm);
}

void vm_handle(struct vm *vm)
{
	uint8_t *nl;

	if (vm->qmp.fd < 0)
		return;
	conn_flush(&vm->qmp);
	if (conn_fill(&vm->qmp, QMP_READ_BUDGET) < 0 || vm->qmp.error) {
		qmp_drop(vm, "VMM connection failed");
		return;
	}
	while ((nl = memchr(buf_head(&vm->qmp.rx), '\n', buf_size(&vm->qmp.rx)))) {
		size_t n = (size_t)(nl - buf_head(&vm->qmp.rx));

		qmp_line(vm, (const char *)buf_head(&vm->qmp.rx), n);
		conn_consume(&vm->qmp, n + 1);
	}
	if (buf_size(&vm->qmp.rx) >= QMP_LINE_MAX) {
		qmp_drop(vm, "oversized message from the VMM");
		return;
	}
	if (vm->qmp.eof) {
		/* QEMU is exiting; SIGCHLD follows. */
		if (vm->ep >= 0 && vm->qmp.ev)
			epoll_ctl(vm->ep, EPOLL_CTL_DEL, vm->qmp.fd, NULL);
		conn_close(&vm->qmp);
		vm->qmp.error = -EPIPE;
		pending_fail_all(vm);
		if (vm->job.active) {
			job_fail(vm, "the VMM exited");
			job_end(vm);
		}
		return;
	}
	qmp_rearm(vm);
}

int vm_watch(struct vm *vm, int ep, uint64_t data)
{
	vm->ep = ep;
	vm->ep_data = data;
	if (vm->qmp.fd < 0)
		return 0;
	return conn_watch(&vm->qmp, ep, data, true);
}

/* The largest file the VMM may write to: its writable disks. */
static uint64_t largest_writable(const struct vm_config *c)
{
	uint64_t max = 0;

	for (size_t i = 0; i < c->ndisks; i++) {
		struct stat st;

		if (!c->disks[i].readonly && stat(c->disks[i].path, &st) == 0 &&
		    (uint64_t)st.st_size > max)
			max = (uint64_t)st.st_size;
	}
	return max;
}

static int jail_file(struct jail *j, const char *path, bool rw, struct msb_err **err)
{
	int r = jail_add(j, path, rw);

	if (r == -EACCES)
		return msb_err_set(
			err, EACCES,
			"confining the VMM: %s is not readable by uid %u, which QEMU runs "
			"as (make it world-readable, or set MSB_VMM_UID)",
			path, (unsigned int)j->uid);
	if (r < 0)
		return msb_err_sys(err, -r, "confining the VMM: %s", path);
	return 0;
}

/* Everything the confined VMM (@qemu) may see. Return: 0 or -1 with @err. */
static int jail_setup(const struct vm_config *c, const char *qemu, struct jail *j,
		      struct msb_err **err)
{
	int r = jail_init(j, c->jail_root, c->workdir ? c->workdir : ".");

	if (r == -EUSERS)
		return msb_err_set(err, EUSERS,
				   "confining the VMM: every uid of its range is in use "
				   "(set MSB_VMM_IDS=FIRST:COUNT to a larger free range)");
	if (r < 0)
		return msb_err_sys(err, -r, "confining the VMM: %s", c->jail_root);
	r = jail_add_exe(j, qemu);
	if (r < 0)
		return msb_err_sys(err, -r,
				   "confining the VMM: %s (it must be readable and executable by "
				   "everyone)",
				   qemu);
	if (c->user_files && !j->userns) {
		j->keep_root = true;
		j->uid = 0;
		j->gid = 0;
	}
	r = jail_file(j, c->kernel, false, err);
	for (size_t i = 0; !r && i < c->nshares; i++) {
		r = jail_add_share(j, c->shares[i].path, !c->shares[i].readonly);
		if (r < 0)
			r = msb_err_sys(err, -r, "sharing %s with the guest", c->shares[i].path);
	}
	if (!r)
		r = jail_file(j, c->initrd, false, err);
	for (size_t i = 0; !r && i < c->ndisks; i++) {
		const struct vm_disk *d = &c->disks[i];

		r = jail_file(j, d->path, !d->readonly, err);
		/* A chain: its files, vetted; only the top node's own files are written. */
		for (size_t k = 0; !r && k < d->nchain; k++) {
			bool rw = k == 0 && !d->readonly;

			if (k)
				r = jail_file(j, d->chain[k].path, false, err);
			if (!r && d->chain[k].data_file)
				r = jail_file(j, d->chain[k].data_file, rw, err);
			for (const char *const *e = d->chain[k].extra; !r && e && *e; e++)
				r = jail_file(j, *e, rw, err);
		}
	}
	for (const char *const *f = c->files; !r && f && *f; f++)
		r = jail_file(j, *f, false, err);
	if (!r && c->mem_file)
		r = jail_file(j, c->mem_file, true, err);
	j->kvm = c->accel == VM_ACCEL_KVM;
	/* The guest writes files of any size into shared directories, overlays grow. */
	j->fsize = c->user_files ? RLIM_INFINITY : largest_writable(c);
	/* A saved state is the guest's memory at most, and the devices' few KiB. */
	if (c->saves_state && j->fsize < ((uint64_t)c->mem_mib + 64) << 20)
		j->fsize = ((uint64_t)c->mem_mib + 64) << 20;
	return r;
}

static bool jail_wanted(void)
{
	const char *v = getenv("MSB_JAIL");

	return !v || strcmp(v, "0") != 0;
}

int vm_start(const struct vm_config *c, struct vm **out, struct msb_err **err)
{
	_cleanup_free_ char *qemu = vmm_binary();
	struct jail jail = { .ids_lock = -1 };
	struct argv a = { 0 };
	struct spawn_opts so;
	int qmp[2], r;
	struct vm *vm;
	pid_t pid;

	if (!qemu)
		return msb_err_set(err, ENOENT, "%s not found in PATH (install %s)", VMM_PROGRAM,
				   VMM_PACKAGE);
	r = build_argv(c, qemu, &a);
	if (r < 0) {
		argv_free(&a);
		return msb_err_sys(err, -r, "qemu command line");
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmp) < 0) {
		argv_free(&a);
		return msb_err_sys(err, errno, "socketpair");
	}
	if (log_enabled(LOG_DEBUG)) {
		char line[4096];
		size_t off = 0;

		for (size_t i = 0; i < a.n && off < sizeof(line) - 1; i++)
			off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s",
						i ? " " : "", a.v[i]);
		log_debug("vmm: %s", line);
	}
	so = spawn_opts_stdio(a.v, SPAWN_NULL, SPAWN_NULL,
			      c->stderr_fd >= 0 ? c->stderr_fd : SPAWN_NULL);
	/* The numbers build_argv() names: agent, QMP, console. */
	so.fds[VM_FD_AGENT] = c->agent_fd;
	so.fds[VM_FD_QMP] = qmp[1];
	so.fds[VM_FD_CONSOLE] = c->console_fd;
	so.fds[VM_FD_NET] = c->net_fd;
	so.nfds = c->net_fd >= 0 ? VM_FD_NET + 1 : VM_FD_CONSOLE + 1;
	/* The VM must not outlive its supervisor. */
	so.die_with_parent = true;
	so.cwd = c->workdir;
	so.pre_exec = jail_enter;
	so.ctx = &jail;
	if (c->jail_root && jail_wanted()) {
		if (jail_setup(c, qemu, &jail, err) < 0)
			goto fail;
		so.clone_flags = jail_clone_flags(&jail);
		so.cwd = NULL; /* the jail enters it, inside */
		r = spawn(&so, &pid);
		if (c->nshares &&
		    (r == -EPERM || r == -EACCES || r == -EINVAL || r == -ENOSPC || r == -EUSERS)) {
			msb_err_sys(err, -r,
				    "sharing directories with the guest needs the VMM's own mount "
				    "namespace, which cannot be had here");
			goto fail;
		}
		if (r == -EPERM || r == -EACCES || r == -EINVAL || r == -ENOSPC || r == -EUSERS) {
			/* No namespaces for this user here (a sysctl, an LSM): limits only. */
			log_warn("cannot confine the VMM in namespaces (%s); it runs with seccomp, "
				 "no_new_privs and resource limits only",
				 strerror(-r));
			jail.bare = true;
			so.clone_flags = 0;
			so.cwd = c->workdir;
			r = spawn(&so, &pid);
		} else if (r == 0) {
			log_info("vmm confined: own namespaces, %zu file(s) and %zu share(s) "
				 "visible, running as uid %u%s",
				 jail.n, jail.nshares, (unsigned int)jail.uid,
				 jail.keep_root ? " with file capabilities only" : "");
		}
	} else if (c->nshares) {
		msb_err_set(err, EPERM,
			    "volumes need the VMM's own namespaces: unset MSB_JAIL=0 to use -v");
		goto fail;
	} else {
		log_warn("the VMM runs without its namespaces (MSB_JAIL=0)");
		jail.bare = true;
		jail.fsize = largest_writable(c);
		r = spawn(&so, &pid);
	}
	jail_free(&jail);
	argv_free(&a);
	close(qmp[1]);
	if (r < 0) {
		close(qmp[0]);
		return msb_err_sys(err, -r, "exec %s", qemu);
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		close(qmp[0]);
		kill(pid, SIGKILL);
		spawn_wait(pid, NULL);
		return msb_err_sys(err, ENOMEM, "vm");
	}
	for (size_t i = 0; i < c->ndisks && vm->nvmdk < ARRAY_SIZE(vm->vmdk); i++) {
		uint64_t size;

		if (c->disks[i].nchain || !is_layer_vmdk(&c->disks[i]) ||
		    vm_vmdk_size(c->disks[i].path, &size) < 0)
			continue;
		vm->vmdk[vm->nvmdk].path = strdup(c->disks[i].path);
		if (!vm->vmdk[vm->nvmdk].path)
			continue;
		vm->vmdk[vm->nvmdk].index = (unsigned int)i;
		vm->vmdk[vm->nvmdk++].size = size;
	}
	vm->pid = pid;
	vm->running = true;
	vm->ep = -1;
	vm->job.fd = -1;
	conn_init(&vm->qmp, qmp[0], QMP_TX_HWM, QMP_LINE_MAX);
	/* Negotiate now, so later commands are answered at once. */
	qmp_send(vm, "qmp_capabilities");
	*out = vm;
	return 0;
fail:
	jail_free(&jail);
	close(qmp[0]);
	close(qmp[1]);
	argv_free(&a);
	return -1;
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

int vm_quit(struct vm *vm)
{
	if (!vm || !vm->running)
		return 0;
	return qmp_send(vm, "quit");
}

void vm_kill(struct vm *vm)
{
	if (vm && vm->running)
		kill(vm->pid, SIGKILL);
}

void vm_free(struct vm *vm)
{
	if (!vm)
		return;
	if (vm->running) {
		kill(vm->pid, SIGKILL);
		spawn_wait(vm->pid, NULL);
	}
	conn_close(&vm->qmp);
	if (vm->job.fd >= 0)
		close(vm->job.fd);
	job_free_steps(vm);
	for (size_t i = 0; i < vm->nvmdk; i++)
		free(vm->vmdk[i].path);
	/* No callbacks from here: the owner is tearing down. */
	free(vm);
}
