// SPDX-License-Identifier: Apache-2.0
/*
 * The supervisor's skeleton: setup, the event loop, signals, timers, stopping and teardown.
 *
 * The per-sandbox supervisor: owns the VM, the agent link and the relay
 * socket, and maps each client's sessions onto guest sessions.
 *
 * DOC: Theory of Operation
 * One epoll loop serves everything: signals (signalfd), one timerfd for all
 * deadlines, the relay listener, clients, the agent link, the guest console,
 * QEMU's stderr and QMP. Every descriptor is non-blocking and every read has
 * a budget, so no peer can stall the loop or starve the others, and
 * stopping a sandbox (graceful power-off, then QMP quit, then SIGKILL)
 * always proceeds on its timers whatever the guest does.
 *
 * The guest is hostile. Its frames are checked against the protocol's
 * rules and against each session's window: output beyond the window, an
 * ACK for bytes never sent, a second STARTED, host-only frame types, or a
 * frame that does not parse are protocol violations that kill the VM.
 * Memory per session is bounded by the window (consecutive output frames
 * of one stream are merged while unsent, so tiny frames cannot multiply
 * the cost), and a client that reads slowly only delays its own sessions:
 * its ACKs are what reopen the guest's window.
 *
 * Towards the guest, data frames (EXEC, STDIN, SIGNAL, RESIZE) are queued
 * only while the agent queue is below its high-water mark; above it, the
 * client that sent them is held (its socket is not read) until the guest
 * catches up. Window credit (ACKs) in either direction is not queued as
 * frames at all but added up per session and sent when there is room, so
 * a peer that stops reading cannot make the other side's queue grow.
 */
#define _GNU_SOURCE
#include "supervisor/sv.h"

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Arms the timerfd for the earliest deadline. */
static void timers_arm(struct sv *sv)
{
	struct itimerspec its = { 0 };
	uint64_t first = 0, now = now_ms();

	for (int i = 0; i < T_COUNT; i++)
		if (sv->deadline[i] && (!first || sv->deadline[i] < first))
			first = sv->deadline[i];
	if (first) {
		uint64_t ms = first > now ? first - now : 1;

		its.it_value.tv_sec = (time_t)(ms / 1000);
		its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
	}
	timerfd_settime(sv->timer_fd, 0, &its, NULL);
}

/* Sets (ms > 0) or clears (ms == 0) one deadline. */
void timer_set(struct sv *sv, enum timer t, uint64_t ms)
{
	sv->deadline[t] = ms ? now_ms() + ms : 0;
	timers_arm(sv);
}

static void watch_fd(struct sv *sv, int fd, uint64_t ref, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = ref };

	epoll_ctl(sv->ep, EPOLL_CTL_ADD, fd, &ev);
}

/*
 * Tells the process that started us how boot went; only the first report
 * counts. Return: false if nobody was there to hear it.
 */
bool ready_report(struct sv *sv, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n, r = -EPIPE;

	if (sv->ready_fd < 0)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n > 0) {
		if ((size_t)n > sizeof(line) - 2)
			n = sizeof(line) - 2;
		line[n++] = '\n';
		r = write_all(sv->ready_fd, line, (size_t)n);
	}
	close(sv->ready_fd);
	sv->ready_fd = -1;
	return r == 0;
}

/* The last non-empty line the guest printed, for error messages; reads only the file's end. */
static void kernel_log_tail(struct sv *sv, char *out, size_t len)
{
	char text[4096];
	char *end, *start;
	struct stat st;
	off_t from;
	ssize_t n;

	out[0] = '\0';
	if (sv->kernel_log.fd < 0 || fstat(sv->kernel_log.fd, &st) < 0)
		return;
	from = st.st_size > (off_t)sizeof(text) - 1 ? st.st_size - (off_t)sizeof(text) + 1 : 0;
	n = pread(sv->kernel_log.fd, text, sizeof(text) - 1, from);
	if (n <= 0)
		return;
	end = text + n;
	while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	*end = '\0';
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	/* The guest wrote this: keep it printable. */
	text_sanitize(out, len, start, (size_t)(end - start));
}

/* Records why the sandbox ends; the first reason given wins. */
void end_because(struct sv *sv, const char *reason)
{
	if (!sv->reason)
		sv->reason = reason;
}

void stop(struct sv *sv, uint32_t grace_ms, const char *reason)
{
	end_because(sv, reason);
	if (sv->state >= ST_STOPPING)
		return;
	if (sv->snap.client >= 0 || sv->quiescing)
		snap_fail(sv, "the sandbox is stopping");
	if (sv->paused) {
		char why[256];

		/* A stopped guest cannot shut down: it runs again for that. */
		if (vm_resume_wait(sv->vm, CTL_VMM_MS, why, sizeof(why)) < 0) {
			log_warn("resuming the paused guest to stop it: %s", why);
			vm_kill(sv->vm);
			sv->state = ST_KILLING;
			return;
		}
		sv->paused = false;
	}
	/*
	 * An ephemeral sandbox's writable layer is tmpfs and is thrown away:
	 * there is nothing to flush, so a graceful power-off only costs time;
	 * unless it writes a volume's disk, which must be left clean.
	 */
	if (sv->spec.ephemeral && grace_ms == 0 && !sv->vols.ndisks) {
		log_info("stopping: ephemeral sandbox, ending the VM now");
		vm_kill(sv->vm);
		sv->state = ST_KILLING;
		return;
	}
	/* Always queued, whatever the high-water mark: one frame, once. */
	if (sv->state == ST_RUNNING &&
	    proto_u32_encode(&sv->agent.tx, PROTO_SHUTDOWN, 0, grace_ms) == 0) {
		log_info("stopping (grace %" PRIu32 " ms)", grace_ms);
		sv->state = ST_STOPPING;
		agent_flush(sv);
		timer_set(sv, T_STATE, (uint64_t)grace_ms + STOP_EXTRA_MS);
		return;
	}
	log_info("stopping: killing the VM");
	vm_kill(sv->vm);
	sv->state = ST_KILLING;
}

/* Stops at once, whatever the guest is doing (msb stop -f, msb rm -f). */
void kill_now(struct sv *sv, const char *reason)
{
	end_because(sv, reason);
	if (sv->state >= ST_KILLING)
		return;
	log_info("stopping: killing the VM (%s)", reason);
	vm_kill(sv->vm);
	sv->state = ST_KILLING;
}

/* Guest console -> kernel.log, at a bounded rate so a guest cannot keep the host busy with it. */
static void console_read(struct sv *sv)
{
	uint64_t now = now_ms(), budget;
	ssize_t n;

	sv->console_tokens += (now - sv->console_refill_ms) * CONSOLE_RATE / 1000;
	if (sv->console_tokens > CONSOLE_BURST)
		sv->console_tokens = CONSOLE_BURST;
	sv->console_refill_ms = now;
	budget = sv->console_tokens < READ_BUDGET ? sv->console_tokens : READ_BUDGET;
	n = budget ? conn_fill(&sv->console, (size_t)budget) : 0;
	if (n > 0) {
		rotlog_write(&sv->kernel_log, buf_head(&sv->console.rx), buf_size(&sv->console.rx));
		conn_consume(&sv->console, buf_size(&sv->console.rx));
		sv->console_tokens -= (uint64_t)n;
	}
	if (n < 0 || sv->console.eof) {
		conn_watch(&sv->console, sv->ep, REF(K_CONSOLE, 0), false);
		return;
	}
	if (!sv->console_tokens) {
		/* Out of budget: let QEMU's serial port (and so the guest) wait a little. */
		conn_watch(&sv->console, sv->ep, REF(K_CONSOLE, 0), false);
		timer_set(sv, T_CONSOLE, CONSOLE_PAUSE_MS);
		return;
	}
	conn_watch(&sv->console, sv->ep, REF(K_CONSOLE, 0), true);
}

/* QEMU's stderr -> runtime.log, line by line, sanitised and rate-limited. */
static void vmm_err_read(struct sv *sv)
{
	struct buf *b = &sv->vmm_err.rx;
	uint8_t *nl;

	if (conn_fill(&sv->vmm_err, READ_BUDGET) < 0 || sv->vmm_err.eof)
		conn_watch(&sv->vmm_err, sv->ep, REF(K_VMM_ERR, 0), false);
	while ((nl = memchr(buf_head(b), '\n', buf_size(b))) || buf_size(b) >= VMM_ERR_LINE_MAX) {
		size_t n = nl ? (size_t)(nl - buf_head(b)) : VMM_ERR_LINE_MAX;
		char line[VMM_ERR_LINE_MAX + 1];

		text_sanitize(line, sizeof(line), buf_head(b), n);
		log_warn_rl("qemu: %s", line);
		conn_consume(&sv->vmm_err, nl ? n + 1 : n);
	}
}

static void on_timer(struct sv *sv)
{
	uint64_t x, now = now_ms();
	char tail[512];
	bool fired[T_COUNT];

	(void)!read(sv->timer_fd, &x, sizeof(x));
	for (int i = 0; i < T_COUNT; i++) {
		fired[i] = sv->deadline[i] && sv->deadline[i] <= now;
		if (fired[i])
			sv->deadline[i] = 0;
	}
	if (fired[T_CONSOLE])
		console_read(sv);
	if (fired[T_OWNER] && sv->attached && !sv->owner_seen && sv->state == ST_RUNNING) {
		log_warn("attached client never connected");
		stop(sv, 0, "killed");
	}
	if (fired[T_IDLE] && sv->state == ST_RUNNING && !sv->nroutes) {
		log_info("no session for the idle timeout; stopping");
		stop(sv, SIGNAL_STOP_GRACE_MS, "idle-timeout");
	}
	if (fired[T_MAX] && sv->state == ST_RUNNING) {
		char d[32];

		format_duration(sv->spec.max_duration_ms, d, sizeof(d));
		log_info("the sandbox reached its maximum duration; stopping");
		notify_sessions(sv, "sandbox %s reached its --max-duration of %s and was stopped",
				sv->spec.name, d);
		stop(sv, SIGNAL_STOP_GRACE_MS, "max-duration");
	}
	if (fired[T_INFO])
		info_reply(sv);
	if (fired[T_MAIN])
		main_timed_out(sv);
	if (fired[T_SNAP] && sv->snap.client >= 0)
		snap_fail(sv, "the guest did not flush its disks for the snapshot within %d s",
			  QUIESCE_MS / 1000);
	if (fired[T_STATE]) {
		switch (sv->state) {
		case ST_BOOTING:
		case ST_CONFIGURING:
			end_because(sv, "crashed");
			kernel_log_tail(sv, tail, sizeof(tail));
			log_error("guest did not become ready within %d s", BOOT_TIMEOUT_MS / 1000);
			ready_report(
				sv,
				"err 125 sandbox %s: guest did not become ready within %d s%s%s",
				sv->spec.name, BOOT_TIMEOUT_MS / 1000, *tail ? ": " : "", tail);
			vm_kill(sv->vm);
			sv->state = ST_KILLING;
			break;
		case ST_STOPPING:
			log_warn("guest did not power off in time; quitting the VM");
			sv->state = ST_QUITTING;
			if (vm_quit(sv->vm) < 0) {
				log_warn("VMM control channel unusable; killing the VM");
				vm_kill(sv->vm);
				sv->state = ST_KILLING;
				break;
			}
			timer_set(sv, T_STATE, QUIT_WAIT_MS);
			break;
		case ST_QUITTING:
			log_warn("VMM did not quit in time; killing it");
			vm_kill(sv->vm);
			sv->state = ST_KILLING;
			break;
		default:
			break;
		}
	}
	timers_arm(sv);
}

/* Return: true once the VM is gone. */
static bool on_signal(struct sv *sv)
{
	struct signalfd_siginfo si;
	bool gone = false;
	char tail[512];

	while (read(sv->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo != SIGCHLD) {
			log_info("signal %u received", si.ssi_signo);
			stop(sv, SIGNAL_STOP_GRACE_MS, "signal");
		}
	}
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);

		if (pid <= 0)
			break;
		if (sbx_netrun_reaped(&sv->net, pid, st))
			continue;
		if (pid != vm_pid(sv->vm))
			continue;
		vm_reaped(sv->vm, st);
		gone = true;
		/* What the guest printed last is still in the socket: keep it. */
		console_read(sv);
		end_because(sv, "crashed");
		if (sv->state <= ST_CONFIGURING) {
			kernel_log_tail(sv, tail, sizeof(tail));
			log_error("VM exited during boot (status %d)", st);
			ready_report(sv,
				     "err 125 sandbox %s: guest failed to boot%s%s (see %s/logs)",
				     sv->spec.name, *tail ? ": " : "", tail, sv->dir);
		} else if (sv->state == ST_RUNNING) {
			kernel_log_tail(sv, tail, sizeof(tail));
			log_error("VM exited unexpectedly%s%s", *tail ? ": " : "", tail);
			broadcast(sv, "sandbox %s: the VM exited unexpectedly%s%s", sv->spec.name,
				  *tail ? ": " : "", tail);
		} else {
			if (WIFSIGNALED(st))
				log_info("VM stopped (killed by signal %d)", WTERMSIG(st));
			else
				log_info("VM stopped (%s)",
					 sv->state == ST_QUITTING ? "quit" : "powered off");
			if (sv->nroutes)
				broadcast(sv, "sandbox %s was stopped before the command finished",
					  sv->spec.name);
		}
	}
	return gone;
}

static int setup_signals(struct sv *sv, struct msb_err **err)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	sv->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	sv->ep = epoll_create1(EPOLL_CLOEXEC);
	sv->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (sv->sigfd < 0 || sv->ep < 0 || sv->timer_fd < 0)
		return msb_err_sys(err, errno, "supervisor setup");
	watch_fd(sv, sv->sigfd, REF(K_SIG, 0), EPOLLIN);
	watch_fd(sv, sv->timer_fd, REF(K_TIMER, 0), EPOLLIN);
	return 0;
}

/* The secrets' values: wiped once the network process has them (or at the end). */
static void secrets_wipe(struct sv *sv)
{
	sbx_secret_values_free(sv->secret_values, sv->nsecret_values);
	free(sv->secret_lens);
	sv->secret_values = NULL;
	sv->secret_lens = NULL;
	sv->nsecret_values = 0;
}

static int setup(struct sv *sv, struct msb_err **err)
{
	_cleanup_free_ char *kernel = NULL, *initrd = NULL, *layer_disk = NULL;
	_cleanup_strv_ char **extents = NULL;
	struct vm_disk disks[2 + SBX_MAX_VOLUMES];
	struct vm_share shares[SBX_MAX_VOLUMES + 1];
	char serials[SBX_MAX_VOLUMES][32];
	struct vm_config cfg = { 0 };
	size_t ndisks;
	enum vm_accel accel;
	char *why = sv->accel_why;
	size_t n = 0;
	int agent[2] = { -1, -1 }, con[2] = { -1, -1 }, errp[2] = { -1, -1 }, r;

	if (setup_signals(sv, err) < 0)
		return -1;
	if (vm_accel_detect(&accel, why, sizeof(sv->accel_why), err) < 0)
		return -1;
	sv->accel = accel;
	log_info("accelerator: %s (%s)", vm_accel_name(accel), why);

	r = msb_lib_file("vmlinux", &kernel, err);
	if (!r)
		r = msb_lib_file("initrd.cpio", &initrd, err);
	if (r < 0)
		return -1;

	if (sv->spec.disk_image) {
		if (disk_root(sv, &disks[0], &extents, err) < 0)
			return -1;
		ndisks = 1;
	} else if (sv->spec.rootfs_bind) {
		ndisks = 0; /* the root is share 0 (vol_plan()) */
	} else {
		while (sv->spec.layers[n])
			n++;
		if (vm_layers_disk(".", sv->spec.layers, n, &layer_disk, &extents, err) < 0)
			return -1;
		disks[0] =
			(struct vm_disk){ .path = layer_disk, .format = "vmdk", .readonly = true };
		disks[1] = (struct vm_disk){ .path = "upper.ext4",
					     .format = "raw",
					     .readonly = false };
		ndisks = sv->spec.upper_mib ? 2 : 1;
	}
	if (vol_plan(&sv->spec, &sv->vols, err) < 0)
		return -1;
	/* microvm has 8 virtio-mmio slots: rng, the disks, the agent port, shares, network. */
	if (VM_MMIO_SLOTS - 3 - ndisks - (sv->vols.nshares ? 1 : 0) < sv->vols.ndisks)
		return msb_err_set(err, E2BIG,
				   "sandbox %s: too many volumes with a size quota (%zu; this "
				   "sandbox has room for %zu)",
				   sv->spec.name, sv->vols.ndisks,
				   VM_MMIO_SLOTS - 3 - ndisks - (sv->vols.nshares ? 1 : 0));
	for (size_t i = 0; i < sv->vols.ndisks; i++) {
		snprintf(serials[i], sizeof(serials[i]), PROTO_VOLUME_SERIAL "%zu", i);
		disks[ndisks++] = (struct vm_disk){ .path = sv->vols.disk[i],
						    .format = "raw",
						    .serial = serials[i],
						    .readonly = sv->vols.disk_ro[i] };
	}
	for (size_t i = 0; i < sv->vols.nshares; i++)
		shares[i] = (struct vm_share){ .path = sv->vols.share[i],
					       .readonly = sv->vols.share_ro[i] };
	/*
	 * The network process confines itself while the VM starts; a published port
	 * already in use fails the start at sbx_netrun_ready(), before the guest runs.
	 */
	r = sbx_netrun_start(&sv->spec, &sv->net, sv->secret_values, sv->secret_lens, err);
	/* The network process holds them now, and nothing else. */
	secrets_wipe(sv);
	if (r < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, agent) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0) {
		r = msb_err_sys(err, errno, "socketpair");
		goto out;
	}
	cfg = (struct vm_config){
		.accel = accel,
		.cpus = sv->spec.cpus,
		.mem_mib = sv->spec.mem_mib,
		.kernel = kernel,
		.initrd = initrd,
		/* Nothing about the sandbox on the command line: it comes with CONFIG. */
		.cmdline_extra = NULL,
		.disks = disks,
		.ndisks = ndisks,
		.shares = shares,
		.nshares = sv->vols.nshares,
		.user_files = sv->vols.nshares || sv->spec.disk_image,
		.workdir = sv->dir,
		.files = (const char *const *)extents,
		.jail_root = "jail",
		.console_fd = con[1],
		.agent_fd = agent[1],
		.stderr_fd = errp[1],
		.net_fd = sv->net.vmm_fd,
		.net_mtu = NET_MTU,
	};
	memcpy(cfg.net_mac, sv->net.cfg.guest_mac, sizeof(cfg.net_mac));
	/* Room for a snapshot's memory (msb snapshot create --full, msb branch). */
	cfg.saves_state = true;
	if (faccessat(sv->dirfd, RESTORE_STATE, F_OK, 0) == 0) {
		if (state_restore(sv, &cfg, err) < 0) {
			r = -1;
			goto out;
		}
	} else {
		warm_start(sv, &cfg);
	}
	r = sv->vm ? 0 : vm_start(&cfg, &sv->vm, err);
	if (r == 0)
		r = sbx_netrun_ready(&sv->spec, &sv->net, err);
	if (r < 0)
		goto out;
	conn_init(&sv->agent, steal_fd(agent[0]), AGENT_TX_HWM, RX_MAX);
	conn_init(&sv->console, steal_fd(con[0]), 0, READ_BUDGET);
	conn_init(&sv->vmm_err, steal_fd(errp[0]), 0, VMM_ERR_LINE_MAX + READ_BUDGET);
	log_info("vm started: pid %d, %u vcpu, %u MiB, %zu layer(s)", (int)vm_pid(sv->vm),
		 sv->spec.cpus, sv->spec.mem_mib, n);
	/* QEMU has its end now. */
	close(sv->net.vmm_fd);
	sv->net.vmm_fd = -1;
	watch_fd(sv, sv->net.ctl, REF(K_NET, 0), EPOLLIN);

	sv->listen_fd = unix_listen_at(sv->dirfd, "relay.sock");
	if (sv->listen_fd < 0) {
		r = msb_err_sys(err, -sv->listen_fd, "%s/relay.sock", sv->dir);
		goto out;
	}
	watch_fd(sv, sv->listen_fd, REF(K_LISTEN, 0), EPOLLIN);
	vm_watch(sv->vm, sv->ep, REF(K_QMP, 0));
	agent_rearm(sv);
	sv->console_tokens = CONSOLE_BURST;
	sv->console_refill_ms = now_ms();
	conn_watch(&sv->console, sv->ep, REF(K_CONSOLE, 0), true);
	conn_watch(&sv->vmm_err, sv->ep, REF(K_VMM_ERR, 0), true);
	timer_set(sv, T_STATE, BOOT_TIMEOUT_MS);
	/* A restored guest said READY to its template's supervisor, long ago: configure it now. */
	if (sv->restored)
		configure_guest(sv);
	r = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (agent[i] >= 0)
			close(agent[i]);
		if (con[i] >= 0)
			close(con[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	return r;
}

/*
 * The VM is gone, but clients may still have output and the reason it ended
 * queued: give them up to LINGER_MS to take it, never waiting on a client that
 * does not read.
 */
static void clients_linger(struct sv *sv)
{
	uint64_t deadline = now_ms() + LINGER_MS;

	for (;;) {
		struct pollfd pfd[MAX_CLIENTS];
		int idx[MAX_CLIENTS], n = 0;
		uint64_t now = now_ms();

		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &sv->clients[i];

			if (!c->used || c->dead || !buf_size(&c->conn.tx))
				continue;
			if (conn_flush(&c->conn) < 0 || !buf_size(&c->conn.tx))
				continue;
			pfd[n] = (struct pollfd){ .fd = c->conn.fd, .events = POLLOUT };
			idx[n++] = i;
		}
		if (!n || now >= deadline)
			return;
		if (poll(pfd, (nfds_t)n, (int)(deadline - now)) < 0 && errno != EINTR)
			return;
		for (int k = 0; k < n; k++)
			if (pfd[k].revents & (POLLERR | POLLHUP | POLLNVAL))
				sv->clients[idx[k]].conn.error = -EPIPE;
	}
}

static void teardown(struct sv *sv)
{
	clients_linger(sv);
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (sv->clients[i].used)
			client_drop(sv, &sv->clients[i], NULL);
	bury(sv);
	vm_free(sv->vm);
	sv->vm = NULL;
	if (sv->listen_fd >= 0) {
		close(sv->listen_fd);
		unlinkat(sv->dirfd, "relay.sock", 0);
	}
	conn_close(&sv->agent);
	conn_close(&sv->console);
	conn_close(&sv->vmm_err);
	sbx_netrun_free(&sv->net);
	vol_plan_free(&sv->vols);
	if (sv->disk_lock >= 0)
		close(sv->disk_lock);
	dchain_free(&sv->disk_chain);
	rotlog_close(&sv->kernel_log);
	exec_log_system(sv, "--- sandbox stopped ---");
	rotlog_close(&sv->exec_log);
	if (sv->seq_fd >= 0)
		close(sv->seq_fd);
	sv->seq_fd = -1;
	buf_free(&sv->exec_line);
	secrets_wipe(sv);
	record_end(sv);
	if (sv->spec.ephemeral) {
		/* Nothing of an ephemeral sandbox outlives it. */
		sbx_forget(sv->spec.name);
		if (chdir("/") == 0)
			rm_rf(sv->dir);
	}
}

static void loop(struct sv *sv)
{
	for (;;) {
		struct epoll_event evs[32];
		int n = epoll_wait(sv->ep, evs, 32, -1);
		bool gone = false;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;
		for (int i = 0; i < n; i++) {
			uint32_t idx = (uint32_t)evs[i].data.u64, e = evs[i].events;
			struct client *c;

			switch ((enum kind)(evs[i].data.u64 >> 32)) {
			case K_SIG:
				gone |= on_signal(sv);
				break;
			case K_LISTEN:
				on_accept(sv);
				break;
			case K_TIMER:
				on_timer(sv);
				break;
			case K_AGENT:
				if (e & EPOLLOUT)
					agent_write(sv);
				if (e & (EPOLLIN | EPOLLHUP | EPOLLERR))
					agent_read(sv);
				break;
			case K_CLIENT:
				if (idx >= MAX_CLIENTS)
					break;
				c = &sv->clients[idx];
				if (!c->used || c->dead)
					break;
				if (e & EPOLLOUT) {
					client_pump(sv, c);
					client_flush(sv, c);
				}
				if (e & (EPOLLIN | EPOLLHUP | EPOLLERR))
					client_read(sv, c);
				break;
			case K_CONSOLE:
				console_read(sv);
				break;
			case K_VMM_ERR:
				vmm_err_read(sv);
				break;
			case K_QMP:
				vm_handle(sv->vm);
				break;
			case K_NET: {
				int r = sv->net.ctl >= 0 ? sbx_netrun_event(&sv->net) : 0;

				if (r < 0)
					log_info("network: the network process's control socket "
						 "ended");
				if (r == 1) {
					log_error("network: %s: the sandbox is stopped "
						  "(--on-secret-violation block-and-terminate)",
						  sv->net.terminate);
					notify_sessions(sv, "sandbox %s stopped: %s", sv->spec.name,
							sv->net.terminate);
					stop(sv, 0, "secret-violation");
				}
				break;
			}
			}
		}
		if (!conn_tx_full(&sv->agent))
			clients_resume(sv);
		bury(sv);
		if (gone)
			return;
	}
}

/*
 * The values of the spec's secrets, from @fd (the CLI's pipe), before
 * anything else can keep the CLI waiting. Return: 0 or -1 with @err.
 */
static int read_secrets(struct sv *sv, int fd, struct msb_err **err)
{
	size_t n = sv->spec.net.nsecrets;
	int r;

	if (fd < 0 && !n)
		return 0;
	if (fd < 0)
		return msb_err_set(err, EINVAL,
				   "sandbox %s: the values of its secrets were not handed over",
				   sv->spec.name);
	r = sbx_secrets_read_fd(fd, n, &sv->secret_values, &sv->secret_lens);
	close(fd);
	if (r < 0)
		return msb_err_set(err, -r,
				   "sandbox %s: the values of its secrets did not arrive whole",
				   sv->spec.name);
	sv->nsecret_values = n;
	return 0;
}

int sbx_supervise(const char *name, int ready_fd, int lock_fd, int secrets_fd, bool attached,
		  bool run_main)
{
	_cleanup_err_ struct msb_err *err = NULL;
	struct sv sv = { .ready_fd = ready_fd,
			 .lock_fd = lock_fd,
			 .attached = attached,
			 .run_main = run_main,
			 .main_exit = -1,
			 .listen_fd = -1,
			 .dirfd = -1,
			 .ep = -1,
			 .sigfd = -1,
			 .timer_fd = -1,
			 .agent = { .fd = -1 },
			 .console = { .fd = -1 },
			 .vmm_err = { .fd = -1 },
			 .runtime_log = { .fd = -1 },
			 .kernel_log = { .fd = -1 },
			 .exec_log = { .fd = -1 },
			 .seq_fd = -1,
			 .disk_lock = -1,
			 .snap = { .client = -1, .dirfd = -1 },
			 .net = { .vmm_fd = -1, .ctl = -1 } };

	/* Our starter gave us /dev/null for stdin and stdout (spawn()); stderr only when attached.
	 */
	setsid();
	sv.dir = sbx_dir(name);
	if (!sv.dir || chdir(sv.dir) < 0 ||
	    (sv.dirfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		ready_report(&sv, "err 125 sandbox %s: not found", name);
		return 1;
	}
	if (sbx_spec_load(name, &sv.spec, &err) < 0) {
		ready_report(&sv, "err 125 %s", err->msg);
		return 1;
	}
	if (read_secrets(&sv, secrets_fd, &err) < 0) {
		ready_report(&sv, "err 125 %s", err->msg);
		sbx_spec_free(&sv.spec);
		return 1;
	}
	/* What this run runs, for msb ps: the spec's command (msb run), or nothing. */
	if (attached || run_main) {
		int mfd = openat(sv.dirfd, SBX_MAIN_FILE,
				 O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

		if (mfd >= 0)
			close(mfd);
	} else {
		unlinkat(sv.dirfd, SBX_MAIN_FILE, 0);
	}
	rotlog_open(&sv.runtime_log, sv.dirfd, "logs/runtime.log", RUNTIME_LOG_MAX,
		    RUNTIME_LOG_KEEP);
	log_setup(&sv.runtime_log, sv.spec.log_level,
		  sv.spec.log_level >= LOG_DEBUG && attached ? sv.spec.log_level : LOG_NONE);
	log_info("--- sandbox %s starting (supervisor pid %d) ---", name, (int)getpid());
	if (rotlog_open(&sv.kernel_log, sv.dirfd, "logs/kernel.log", KERNEL_LOG_MAX,
			KERNEL_LOG_KEEP) < 0)
		log_warn("logs/kernel.log: %s", strerror(errno));
	if (rotlog_open(&sv.exec_log, sv.dirfd, "logs/exec.log", EXEC_LOG_MAX, EXEC_LOG_KEEP) < 0)
		log_warn("logs/exec.log: %s", strerror(errno));
	seq_load(&sv);
	sv.started_ms = now_ms();
	{
		struct db *db = NULL;

		if (db_open(&db, &err) < 0 ||
		    db_run_begin(db, name, getpid(), &sv.run_id, &err) < 0)
			log_warn("recording the run: %s", err ? err->msg : "?");
		db_close(db);
		msb_err_free(steal_ptr(err));
	}

	if (setup(&sv, &err) < 0) {
		log_error("%s", err->msg);
		ready_report(&sv, "err %d %s", err->exit, err->msg);
		teardown(&sv);
	} else {
		loop(&sv);
		if (attached)
			log_setup(&sv.runtime_log, sv.spec.log_level, LOG_NONE);
		log_info("--- sandbox %s stopped ---", name);
		teardown(&sv);
		ready_report(&sv, "err 125 sandbox %s stopped during boot", name);
	}
	log_setup(NULL, LOG_NONE, LOG_NONE);
	rotlog_close(&sv.runtime_log);
	secrets_wipe(&sv);
	sbx_spec_free(&sv.spec);
	free(sv.dir);
	if (sv.lock_fd >= 0)
		close(sv.lock_fd);
	return 0;
}
