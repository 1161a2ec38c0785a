// SPDX-License-Identifier: Apache-2.0
/* Control requests: INFO (live figures), pause and resume, snapshots. */
#define _GNU_SOURCE
#include "supervisor/sv.h"

/* --- INFO: what inspect and metrics show ------------------------------------ */

/* A figure that could not be had this time is unknown (null), never 0 or a wrapped negative. */
static void set_known(json_t *o, const char *key, bool known, uint64_t v)
{
	json_object_set_new(o, key,
			    known && v <= INT64_MAX ? json_integer((json_int_t)v) : json_null());
}

void info_reply(struct sv *sv)
{
	static const char *const states[] = { "starting", "starting", "running",
					      "stopping", "stopping", "stopping" };
	_cleanup_free_ char *text = NULL;
	uint64_t cpu = 0, rss = 0;
	json_t *o;

	timer_set(sv, T_INFO, 0);
	sv->info_busy = sv->stats_wait = sv->disk_wait = false;
	o = json_pack("{s:s, s:s, s:i, s:i, s:s, s:I, s:i, s:i, s:f, s:f}", "name", sv->spec.name,
		      "state", sv->paused && sv->state == ST_RUNNING ? "paused" : states[sv->state],
		      "supervisor_pid", (int)getpid(), "vmm_pid", (int)vm_pid(sv->vm), "accel",
		      vm_accel_name(sv->accel), "uptime_ms",
		      (json_int_t)(now_ms() - sv->started_ms), "sessions", (int)sv->nroutes,
		      "memory_mib", (int)sv->spec.mem_mib, "kernel_ms", (double)sv->kernel_ns / 1e6,
		      "ready_ms", (double)sv->configured_ns / 1e6);
	if (o) {
		bool cpu_ok = vm_cpu_ns(sv->vm, &cpu) == 0;
		bool rss_ok = vm_rss_bytes(sv->vm, &rss) == 0;

		set_known(o, "cpu_ns", cpu_ok, cpu);
		set_known(o, "vmm_rss_bytes", rss_ok, rss);
		/* The guest's figures: only from a STATS answer to this request. */
		set_known(o, "mem_total_bytes", sv->stats_ok, sv->stats.mem_total);
		set_known(o, "mem_available_bytes", sv->stats_ok, sv->stats.mem_available);
		set_known(o, "guest_processes", sv->stats_ok, sv->stats.procs);
		set_known(o, "disk_read_bytes", sv->disk_ok, sv->disk_rd);
		set_known(o, "disk_write_bytes", sv->disk_ok, sv->disk_wr);
	}
	if (o && sv->net.pid > 0) {
		struct net_stats ns = { 0 };
		char a4[IP_STRLEN], a6[IP_STRLEN];

		/* The counters come from the network process; zeros if it cannot say. */
		sbx_netrun_stats(&sv->net, &ns);
		ip_format(&sv->net.cfg.guest4, a4, sizeof(a4));
		ip_format(&sv->net.cfg.guest6, a6, sizeof(a6));
		json_object_set_new(o, "net",
				    json_pack("{s:s, s:s, s:I, s:I, s:i, s:i, s:I}", "ipv4", a4,
					      "ipv6", a6, "rx_bytes", (json_int_t)ns.guest_rx_bytes,
					      "tx_bytes", (json_int_t)ns.guest_tx_bytes,
					      "tcp_connections", (int)ns.tcp_flows, "udp_flows",
					      (int)ns.udp_flows, "denied", (json_int_t)ns.denied));
	}
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &sv->clients[i];

		if (!c->used || c->dead || !c->info)
			continue;
		c->info = false;
		if (!text || proto_put_frame(&c->conn.tx, PROTO_INFO, 0, text, strlen(text)) < 0) {
			client_error(sv, c, 0, "cannot report on the sandbox");
			continue;
		}
		c->tail_ok = false;
		client_flush(sv, c);
	}
}

static void on_disk_stats(void *ctx, bool ok, uint64_t rd, uint64_t wr)
{
	struct sv *sv = ctx;

	if (ok) {
		sv->disk_rd = rd;
		sv->disk_wr = wr;
	}
	sv->disk_ok = ok;
	sv->disk_wait = false;
	if (sv->info_busy && !sv->stats_wait)
		info_reply(sv);
}

void on_stats(struct sv *sv, const struct proto_frame *f)
{
	sv->stats_ok = proto_stats_decode(f->payload, f->len, &sv->stats) == 0;
	if (!sv->stats_ok)
		log_warn_rl("agent: malformed STATS");
	sv->stats_wait = false;
	if (sv->info_busy && !sv->disk_wait)
		info_reply(sv);
}

/* A client asks about the sandbox: gather the guest's and the VMM's figures, then answer. */
void info_request(struct sv *sv, struct client *c)
{
	c->info = true;
	if (sv->info_busy)
		return;
	sv->info_busy = true;
	sv->stats_ok = sv->disk_ok = false;
	if (sv->state == ST_RUNNING && !sv->paused && !sv->quiescing && !conn_tx_full(&sv->agent) &&
	    proto_put_frame(&sv->agent.tx, PROTO_STATS_REQ, 0, NULL, 0) == 0) {
		sv->stats_wait = true;
		agent_flush(sv);
	}
	sv->disk_wait = vm_disk_stats(sv->vm, on_disk_stats, sv) == 0;
	if (!sv->stats_wait && !sv->disk_wait)
		info_reply(sv);
	else
		timer_set(sv, T_INFO, INFO_WAIT_MS);
}

/* --- pause, resume, snapshots (CTL) ----------------------------------------- */

static void ctl_reply(struct sv *sv, struct client *c, json_t *o)
{
	_cleanup_free_ char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (!text || proto_put_frame(&c->conn.tx, PROTO_CTL, 0, text, strlen(text)) < 0) {
		client_error(sv, c, 0, "out of memory");
		return;
	}
	c->tail_ok = false;
	client_flush(sv, c);
}

static void ctl_error(struct sv *sv, struct client *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ctl_error(struct sv *sv, struct client *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctl_reply(sv, c, json_pack("{s:s}", "error", msg));
}

static void set_paused(struct sv *sv, bool paused)
{
	struct db *db = NULL;

	sv->paused = paused;
	if (db_open(&db, NULL) == 0)
		db_sandbox_set_paused(db, sv->spec.name, paused, NULL);
	db_close(db);
}

/* The guest may be sent frames again: what waited goes now. */
static void unquiesce(struct sv *sv)
{
	sv->quiescing = false;
	sv->acks_owed = true;
	agent_pump(sv);
	agent_flush(sv);
	clients_resume(sv);
}

static void snap_end(struct sv *sv)
{
	timer_set(sv, T_SNAP, 0);
	if (sv->snap.dirfd >= 0)
		close(sv->snap.dirfd);
	sv->snap.dirfd = -1;
	sv->snap.client = -1;
	sv->snap.gone = false;
	if (sv->quiescing)
		unquiesce(sv);
}

void snap_fail(struct sv *sv, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("snapshot: %s", msg);
	if (sv->snap.client >= 0 && !sv->snap.gone)
		ctl_error(sv, &sv->clients[sv->snap.client], "%s", msg);
	snap_end(sv);
}

/* Copies the writable disk into the snapshot. Return: bytes of data, or -errno. */
static long long snap_copy_upper(struct sv *sv)
{
	_cleanup_close_ int in = openat(sv->dirfd, "upper.ext4", O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out = -1;

	if (in < 0)
		return -errno;
	out = openat(sv->snap.dirfd, "upper.ext4", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	return copy_sparse(in, out);
}

/*
 * The guest has flushed its disks and the host sends it nothing: stop it,
 * save what was asked for, let it run again. The pause is what the sandbox
 * notices; it is reported.
 */
void snapshot_take(struct sv *sv)
{
	struct client *c = &sv->clients[sv->snap.client];
	uint64_t t0 = now_ms(), paused_ms;
	long long disk = 0;
	off_t mem = 0;
	char why[512];
	int r;

	timer_set(sv, T_SNAP, 0);
	r = vm_pause_wait(sv->vm, CTL_VMM_MS, why, sizeof(why));
	if (r < 0) {
		snap_fail(sv, "cannot pause the guest: %s", why);
		return;
	}
	if (sv->snap.full) {
		_cleanup_close_ int fd = openat(sv->snap.dirfd, "memory.state",
						O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		struct stat st = { 0 };

		r = fd < 0 ? -errno
			   : vm_save_wait(sv->vm, fd, VM_SAVE_PAUSED, SNAP_SAVE_MS, why,
					  sizeof(why));
		if (fd < 0)
			snprintf(why, sizeof(why), "memory.state: %s", strerror(errno));
		else if (r == 0 && fstat(fd, &st) < 0) {
			r = -EIO;
			snprintf(why, sizeof(why), "memory.state: %s", strerror(errno));
		}
		mem = st.st_size;
	}
	if (r == 0 && sv->spec.upper_mib) {
		disk = snap_copy_upper(sv);
		if (disk < 0) {
			r = (int)disk;
			snprintf(why, sizeof(why), "copying the writable disk: %s", strerror(-r));
		}
	}
	{
		char why2[256];

		if (vm_resume_wait(sv->vm, CTL_VMM_MS, why2, sizeof(why2)) < 0) {
			log_error("snapshot: cannot resume the guest: %s; stopping it", why2);
			snap_fail(sv, "the guest could not be resumed after the snapshot: %s",
				  why2);
			kill_now(sv, "crashed");
			return;
		}
	}
	paused_ms = now_ms() - t0;
	/* Made durable with the guest running again: the pause is only the copy. */
	for (int i = 0; r == 0 && i < 2; i++) {
		_cleanup_close_ int fd = openat(sv->snap.dirfd, i ? "upper.ext4" : "memory.state",
						O_RDONLY | O_CLOEXEC);

		if ((fd < 0 && errno != ENOENT) || (fd >= 0 && fsync(fd) < 0)) {
			r = -errno;
			snprintf(why, sizeof(why), "%s: %s", i ? "upper.ext4" : "memory.state",
				 strerror(errno));
		}
	}
	if (r < 0) {
		snap_fail(sv, "%s", why);
		return;
	}
	log_info("snapshot taken%s: guest paused %" PRIu64 " ms (quiesce %" PRIu64
		 " ms), memory %lld bytes, disk %lld bytes of data",
		 sv->snap.full ? " with memory" : "", paused_ms, t0 - sv->snap.asked_ms,
		 (long long)mem, disk);
	if (!sv->snap.gone)
		ctl_reply(sv, c,
			  json_pack("{s:b,s:I,s:I,s:I,s:I}", "ok", 1, "pause_ms",
				    (json_int_t)paused_ms, "quiesce_ms",
				    (json_int_t)(t0 - sv->snap.asked_ms), "memory_bytes",
				    (json_int_t)mem, "disk_bytes", (json_int_t)disk));
	snap_end(sv);
}

static void ctl_snapshot(struct sv *sv, struct client *c, json_t *req)
{
	const char *dir = json_string_value(json_object_get(req, "dir"));
	bool full = json_is_true(json_object_get(req, "full"));

	if (!dir || dir[0] != '/') {
		ctl_error(sv, c, "snapshot: no directory to write to");
		return;
	}
	if (sv->paused) {
		ctl_error(sv, c, "sandbox %s is paused; resume it first (msb resume %s)",
			  sv->spec.name, sv->spec.name);
		return;
	}
	if (!full && !sv->spec.upper_mib) {
		ctl_error(sv, c,
			  "sandbox %s keeps its writes in memory (no writable disk); snapshot it "
			  "with --full",
			  sv->spec.name);
		return;
	}
	if (sv->vols.ndisks) {
		ctl_error(sv, c,
			  "sandbox %s has a volume with a size quota, which a snapshot cannot take "
			  "along",
			  sv->spec.name);
		return;
	}
	/* Refused before the guest is paused: QEMU 7.2 cannot migrate a mounted 9p export. */
	if (full && sv->vols.nshares) {
		ctl_error(sv, c,
			  "sandbox %s shares host directories (-v, --rootfs-bind), and the memory "
			  "of a VM with a shared directory cannot be saved; snapshot its disk "
			  "without --full",
			  sv->spec.name);
		return;
	}
	sv->snap.dirfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sv->snap.dirfd < 0) {
		ctl_error(sv, c, "snapshot: %s: %s", dir, strerror(errno));
		return;
	}
	if (proto_put_frame(&sv->agent.tx, PROTO_QUIESCE, 0, NULL, 0) < 0) {
		close(sv->snap.dirfd);
		sv->snap.dirfd = -1;
		ctl_error(sv, c, "out of memory");
		return;
	}
	sv->snap.client = (int)(c - sv->clients);
	sv->snap.full = full;
	sv->snap.asked_ms = now_ms();
	sv->quiescing = true;
	agent_flush(sv);
	timer_set(sv, T_SNAP, QUIESCE_MS);
}

void on_ctl(struct sv *sv, struct client *c, const struct proto_frame *f)
{
	json_t *req = json_loadb((const char *)f->payload, f->len, 0, NULL);
	const char *op = json_string_value(json_object_get(req, "op"));
	char why[256];

	if (!op) {
		ctl_error(sv, c, "malformed request");
	} else if (sv->state != ST_RUNNING) {
		ctl_error(sv, c, "sandbox %s is %s", sv->spec.name,
			  sv->state < ST_RUNNING ? "still starting" : "stopping");
	} else if (sv->snap.client >= 0) {
		ctl_error(sv, c, "sandbox %s is being snapshotted; try again", sv->spec.name);
	} else if (!strcmp(op, "pause")) {
		if (sv->paused)
			ctl_error(sv, c, "sandbox %s is already paused", sv->spec.name);
		else if (vm_pause_wait(sv->vm, CTL_VMM_MS, why, sizeof(why)) < 0)
			ctl_error(sv, c, "cannot pause sandbox %s: %s", sv->spec.name, why);
		else {
			set_paused(sv, true);
			log_info("paused");
			exec_log_system(sv, "--- sandbox paused ---");
			ctl_reply(sv, c, json_pack("{s:b}", "ok", 1));
		}
	} else if (!strcmp(op, "resume")) {
		if (!sv->paused)
			ctl_error(sv, c, "sandbox %s is not paused", sv->spec.name);
		else if (vm_resume_wait(sv->vm, CTL_VMM_MS, why, sizeof(why)) < 0)
			ctl_error(sv, c, "cannot resume sandbox %s: %s", sv->spec.name, why);
		else {
			set_paused(sv, false);
			log_info("resumed");
			exec_log_system(sv, "--- sandbox resumed ---");
			ctl_reply(sv, c, json_pack("{s:b}", "ok", 1));
		}
	} else if (!strcmp(op, "snapshot")) {
		ctl_snapshot(sv, c, req);
	} else {
		ctl_error(sv, c, "unknown request \"%.40s\"", op);
	}
	json_decref(req);
}
