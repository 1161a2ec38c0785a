// SPDX-License-Identifier: Apache-2.0
/* The guest's port: frames from agentd checked and routed, violations, READY and CONFIGURED, the
 * configuration sent, the run recorded. */
#define _GNU_SOURCE
#include "supervisor/sv.h"

void agent_rearm(struct sv *sv)
{
	conn_watch(&sv->agent, sv->ep, REF(K_AGENT, 0), sv->state <= ST_STOPPING);
}

/* The guest broke the protocol: it is not trusted to do anything else, so the VM goes. */
static bool violation(struct sv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool violation(struct sv *sv, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_error("guest agent violated the protocol (%s); stopping the VM", why);
	end_because(sv, "crashed");
	ready_report(sv, "err 125 sandbox %s: guest agent violated the protocol (%s)",
		     sv->spec.name, why);
	broadcast(sv, "sandbox %s: guest agent violated the protocol (%s); the VM was stopped",
		  sv->spec.name, why);
	if (sv->agent.ev)
		epoll_ctl(sv->ep, EPOLL_CTL_DEL, sv->agent.fd, NULL);
	sv->agent.ev = 0;
	buf_clear(&sv->agent.rx);
	vm_kill(sv->vm);
	sv->state = ST_KILLING;
	return false;
}

void agent_flush(struct sv *sv)
{
	if (conn_flush(&sv->agent) < 0)
		log_debug("agent link: %s", strerror(-sv->agent.error));
	agent_rearm(sv);
}

/* Sends the window credit owed to the guest, as far as the agent queue allows. */
void agent_pump(struct sv *sv)
{
	if (!sv->acks_owed || sv->quiescing)
		return;
	sv->acks_owed = false;
	for (unsigned int i = 0; i < MAX_ROUTES; i++) {
		struct route *r = &sv->routes[i];

		if (r->gsid && r->kill_owed &&
		    proto_u32_encode(&sv->agent.tx, PROTO_SIGNAL, r->gsid, SIGKILL) == 0)
			r->kill_owed = false;
		if (!r->gsid || !r->ack_guest)
			continue;
		if (conn_tx_full(&sv->agent) ||
		    proto_u32_encode(&sv->agent.tx, PROTO_ACK, r->gsid, r->ack_guest) < 0) {
			sv->acks_owed = true;
			continue;
		}
		r->ack_guest = 0;
	}
}

/* --- the database --------------------------------------------------------- */

static void record_ready(struct sv *sv)
{
	struct db *db = NULL;

	if (db_open(&db, NULL) < 0)
		return;
	db_run_ready(db, sv->spec.name, vm_accel_name(sv->accel), sv->accel_why,
		     (double)sv->kernel_ns / 1e6, (double)sv->configured_ns / 1e6, NULL);
	db_close(db);
}

void record_end(struct sv *sv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	const char *reason = sv->reason ? sv->reason : "crashed";
	struct db *db = NULL;

	if (sv->spec.ephemeral || !sv->run_id)
		return;
	if (db_open(&db, &err) < 0 || db_run_end(db, sv->spec.name, sv->run_id,
						 strcmp(reason, "crashed") ? "stopped" : "crashed",
						 reason, sv->main_exit, &err) < 0)
		log_warn("recording the end of the run: %s", err ? err->msg : "?");
	db_close(db);
}

/* --- boot: READY, CONFIG, CONFIGURED ---------------------------------------- */

/* Reads <sandbox-dir>/scripts/NAME. Return: 0 and a malloc'd body, or -errno. */
static int script_body(struct sv *sv, const char *name, struct proto_script *out)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	size_t n = 0;
	int r;

	if (asprintf(&path, "scripts/%s", name) < 0)
		return -ENOMEM;
	r = read_file(path, PROTO_MAX_STR, &text, &n);
	if (r < 0)
		return r;
	out->name = (char *)name;
	out->body = (uint8_t *)steal_ptr(text);
	out->len = (uint32_t)n;
	(void)sv;
	return 0;
}

/* After READY: tell the guest which sandbox it is. */
static int send_config(struct sv *sv)
{
	struct proto_config c = { .hostname = sv->spec.hostname,
				  .init = sv->spec.init,
				  .init_argv = sv->spec.init_args,
				  .init_env = sv->spec.init_env };
	int r = 0;

	if (sv->spec.upper_mib)
		c.flags |= PROTO_CONFIG_UPPER_DISK;
	if (sv->spec.disk_image)
		c.flags |= PROTO_CONFIG_DISK_ROOT;
	if (sv->spec.rootfs_bind)
		c.flags |= PROTO_CONFIG_SHARE_ROOT;
	if (sv->from_state) {
		c.flags |= PROTO_CONFIG_REFRESH;
		if (random_bytes(sv->resync, sizeof(sv->resync)) < 0)
			return -EIO;
		memcpy(c.resync, sv->resync, sizeof(c.resync));
		sv->resyncing = true;
	}
	for (size_t i = 0; i < sv->spec.ntmpfs && i < PROTO_MAX_TMPFS; i++) {
		c.tmpfs[i].path = sv->spec.tmpfs[i].path;
		c.tmpfs[i].size = sv->spec.tmpfs[i].size;
		c.ntmpfs++;
	}
	for (size_t i = 0; i < sv->spec.nvolumes && i < PROTO_MAX_MOUNTS; i++) {
		const struct sbx_volume *v = &sv->spec.volumes[i];
		struct proto_mount *m = &c.mounts[c.nmounts++];

		m->path = v->dest;
		m->index = sv->vols.index[i];
		m->flags = (v->readonly ? PROTO_MOUNT_RO : 0) |
			   (v->noexec ? PROTO_MOUNT_NOEXEC : 0) |
			   (sv->vols.is_disk[i] ? PROTO_MOUNT_DISK : 0);
	}
	for (char **n = sv->spec.scripts; !r && *n && c.nscripts < PROTO_MAX_SCRIPTS; n++) {
		r = script_body(sv, *n, &c.scripts[c.nscripts]);
		if (!r)
			c.nscripts++;
		else
			log_error("script %s: %s", *n, strerror(-r));
	}
	if (!r && sv->net.pid > 0) {
		char why[512] = "";

		r = sbx_netrun_config(&sv->spec, &sv->net, &c, why, sizeof(why));
		if (r < 0)
			log_error("%s", why);
	}
	/* The same for a cold boot and a restored template: the guest's own entropy and time. */
	if (!r && random_bytes(c.seed, sizeof(c.seed)) < 0)
		r = -EIO;
	if (!r) {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		c.wall_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
		r = proto_config_encode(&sv->agent.tx, &c);
	}
	explicit_bzero(c.seed, sizeof(c.seed));
	sbx_netrun_config_free(&c);
	for (uint32_t i = 0; i < c.nscripts; i++)
		free(c.scripts[i].body);
	if (r < 0)
		return r;
	agent_flush(sv);
	return 0;
}

/* The guest is up and waiting (booted, or restored from a template): make it this sandbox. */
void configure_guest(struct sv *sv)
{
	int r = send_config(sv);

	if (r < 0) {
		ready_report(sv, "err 125 sandbox %s: cannot send its configuration: %s",
			     sv->spec.name, strerror(-r));
		kill_now(sv, "crashed");
		return;
	}
	sv->state = ST_CONFIGURING;
}

static void on_ready(struct sv *sv, const struct proto_frame *f)
{
	struct proto_ready rd = { 0 };

	if (sv->state != ST_BOOTING) {
		log_warn_rl("agent sent READY again; ignored");
		return;
	}
	if (proto_ready_decode(f->payload, f->len, &rd) < 0 || rd.version != PROTO_VERSION) {
		log_error("agent speaks protocol version %" PRIu32 ", expected %d", rd.version,
			  PROTO_VERSION);
		ready_report(sv,
			     "err 125 guest agent speaks protocol version %" PRIu32
			     ", expected %d (rebuild with 'make')",
			     rd.version, PROTO_VERSION);
		kill_now(sv, "crashed");
		return;
	}
	sv->kernel_ns = rd.kernel_ns;
	log_info("agent up: kernel %.1f ms, agent %.1f ms after guest boot",
		 (double)rd.kernel_ns / 1e6, (double)rd.ready_ns / 1e6);
	configure_guest(sv);
}

static void start_main(struct sv *sv);

static void on_configured(struct sv *sv, const struct proto_frame *f)
{
	if (sv->state != ST_CONFIGURING ||
	    proto_u64_decode(f->payload, f->len, &sv->configured_ns) < 0) {
		violation(sv, "unexpected CONFIGURED");
		return;
	}
	sv->state = ST_RUNNING;
	timer_set(sv, T_STATE, 0);
	log_info("sandbox ready: %.1f ms after guest boot", (double)sv->configured_ns / 1e6);
	exec_log_system(sv, "--- sandbox started ---");
	record_ready(sv);
	if (sv->spec.max_duration_ms)
		timer_set(sv, T_MAX, sv->spec.max_duration_ms);
	if (sv->spec.idle_timeout_ms)
		timer_set(sv, T_IDLE, sv->spec.idle_timeout_ms);
	if (!ready_report(sv, "ok %" PRIu64 " %" PRIu64 " %s", sv->kernel_ns, sv->configured_ns,
			  vm_accel_name(sv->accel)) &&
	    sv->attached) {
		log_info("the process that started the sandbox is gone");
		stop(sv, 0, "killed");
		return;
	}
	if (sv->attached && !sv->owner_seen)
		timer_set(sv, T_OWNER, OWNER_CONNECT_MS);
	if (sv->run_main)
		start_main(sv);
}

/* The guest could not become this sandbox: that is the boot's failure. */
static void on_config_error(struct sv *sv, const char *msg)
{
	log_error("guest: %s", msg);
	ready_report(sv, "err 125 sandbox %s: %s", sv->spec.name, msg);
	kill_now(sv, "crashed");
}

/* Guest output for a session: within its window, to its client or acknowledged if orphaned. */
static bool on_output(struct sv *sv, struct route *r, const struct proto_frame *f)
{
	struct client *c;

	if (f->len == 0)
		return violation(sv, "empty output frame for session %" PRIu32, f->sid);
	if (f->len > PROTO_WINDOW - r->out_inflight)
		return violation(sv, "session %" PRIu32 " sent output beyond its window", f->sid);
	exec_log_output(sv, r, f->type, f->payload, f->len);
	if (r->client < 0) {
		/* Nobody reads an orphan's output; keep its window open so it can end. */
		r->ack_guest += f->len;
		sv->acks_owed = true;
		return true;
	}
	c = &sv->clients[r->client];
	r->out_inflight += f->len;
	if (client_put(c, f->type, r->csid, f->payload, f->len) < 0) {
		client_drop(sv, c, "out of memory");
		return true;
	}
	if (buf_size(&c->conn.tx) > CLIENT_TX_MAX) {
		client_drop(sv, c, "client not reading while the guest floods tiny frames");
		return true;
	}
	client_flush(sv, c);
	return true;
}

/* run -d: the spec's command runs as the main session, owned by the supervisor itself. */
static void start_main(struct sv *sv)
{
	char *none[] = { NULL };
	struct proto_exec e = { .flags = sv->spec.workdir ? PROTO_EXEC_MKCWD : 0,
				.user = sv->spec.user ? sv->spec.user : "",
				.cwd = sv->spec.workdir ? sv->spec.workdir : "",
				.argv = sv->spec.command,
				.env = sv->spec.env ? sv->spec.env : none };
	struct route *r;

	if (!sv->spec.command || !sv->spec.command[0]) {
		log_warn("no command to run as the main session");
		return;
	}
	if (sbx_exec_rlimits(sv->spec.rlimits, NULL, 0, e.rlimits, &e.nrlimits) < 0) {
		log_error("the main command's --rlimit values are invalid");
		stop(sv, 0, "crashed");
		return;
	}
	r = route_new(sv, -1, 0);
	if (!r || proto_exec_encode(&sv->agent.tx, r->gsid, &e) < 0 ||
	    proto_put_frame(&sv->agent.tx, PROTO_STDIN, r->gsid, NULL, 0) < 0) {
		log_error("cannot start the main command");
		if (r)
			route_free(sv, r);
		stop(sv, 0, "crashed");
		return;
	}
	r->main = true;
	sv->main_gsid = r->gsid;
	/* msb run -d --timeout: nobody else is there to keep it. */
	if (sv->spec.main_timeout_ms)
		timer_set(sv, T_MAIN, sv->spec.main_timeout_ms);
	agent_flush(sv);
}

/* run -d --timeout: the main command is killed, as an attached msb run kills it. */
void main_timed_out(struct sv *sv)
{
	struct route *r = sv->main_gsid ? route_by_gsid(sv, sv->main_gsid) : NULL;
	char d[32], line[80];

	if (!r || !r->main || sv->state != ST_RUNNING)
		return;
	format_duration(sv->spec.main_timeout_ms, d, sizeof(d));
	log_info("the main command timed out after %s; killing it", d);
	snprintf(line, sizeof(line), "--- command timed out after %s and was killed ---", d);
	exec_log_system(sv, line);
	if (proto_u32_encode(&sv->agent.tx, PROTO_SIGNAL, r->gsid, SIGKILL) < 0) {
		stop(sv, 0, "crashed");
		return;
	}
	agent_flush(sv);
}

/* A session is over; the main one takes the sandbox with it. */
static void session_end(struct sv *sv, struct route *r, const struct proto_frame *f)
{
	struct proto_exited x;
	struct proto_failed fl;
	bool main = r->main;

	exec_log_flush(sv, r);
	if (main) {
		if (f->type == PROTO_EXITED && proto_exited_decode(f->payload, f->len, &x) == 0) {
			sv->main_exit = x.code;
		} else if (f->type == PROTO_FAILED &&
			   proto_failed_decode(f->payload, f->len, &fl) == 0) {
			sv->main_exit = fl.kind == PROTO_FAIL_NOT_FOUND	       ? 127
					: fl.kind == PROTO_FAIL_NOT_EXECUTABLE ? 126
									       : 125;
			exec_log_system(sv, fl.msg);
		}
	}
	route_free(sv, r);
	if (main) {
		log_info("main command ended (exit %d); stopping", sv->main_exit);
		stop(sv, 0, "completed");
	}
}

/* Return: false when the guest broke the protocol (the VM is then being killed). */

static bool on_agent_frame(struct sv *sv, const struct proto_frame *f)
{
	struct route *r;
	struct client *c;
	char msg[256];
	uint32_t v;

	switch (f->type) {
	case PROTO_READY:
		on_ready(sv, f);
		return true;
	case PROTO_CONFIGURED:
		on_configured(sv, f);
		return true;
	case PROTO_QUIESCED:
		if (sv->snap.client < 0 || !sv->quiescing)
			return violation(sv, "unexpected QUIESCED");
		snapshot_take(sv);
		return true;
	case PROTO_STATS:
		on_stats(sv, f);
		return true;
	case PROTO_EXEC:
	case PROTO_STDIN:
	case PROTO_RESIZE:
	case PROTO_SIGNAL:
	case PROTO_SHUTDOWN:
	case PROTO_CONFIG:
	case PROTO_STATS_REQ:
	case PROTO_INFO:
	case PROTO_KILL:
	case PROTO_DETACH:
	case PROTO_QUIESCE:
	case PROTO_CTL:
		return violation(sv, "%s frame from the guest", proto_type_name(f->type));
	default:
		break;
	}
	if (f->sid == 0) {
		if (f->type == PROTO_ERROR &&
		    proto_error_decode(f->payload, f->len, msg, sizeof(msg)) == 0) {
			if (sv->state == ST_CONFIGURING)
				on_config_error(sv, msg);
			else
				log_warn_rl("agent: %s", msg);
			return true;
		}
		return violation(sv, "%s frame on the control session", proto_type_name(f->type));
	}
	if (sv->state <= ST_CONFIGURING)
		return violation(sv, "session frame before the sandbox was ready");
	r = route_by_gsid(sv, f->sid);
	if (!r) {
		log_debug_rl("agent frame %s for unknown session %" PRIu32 " dropped",
			     proto_type_name(f->type), f->sid);
		return true;
	}
	c = r->client >= 0 ? &sv->clients[r->client] : NULL;
	switch (f->type) {
	case PROTO_STDOUT:
	case PROTO_STDERR:
		return on_output(sv, r, f);
	case PROTO_STARTED:
		if (r->started)
			return violation(sv, "session %" PRIu32 " started twice", f->sid);
		r->started = true;
		break;
	case PROTO_ACK:
		if (proto_u32_decode(f->payload, f->len, &v) < 0 || v == 0 || v > r->in_inflight)
			return violation(sv, "session %" PRIu32 " acknowledged input never sent",
					 f->sid);
		r->in_inflight -= v;
		if (c) {
			r->ack_client += v;
			c->credit = true;
			client_pump(sv, c);
			client_flush(sv, c);
		}
		return true;
	case PROTO_ERROR:
		if (r->error_sent) {
			log_warn_rl("agent: repeated error for session %" PRIu32, f->sid);
			return true;
		}
		r->error_sent = true;
		break;
	default: /* EXITED, FAILED */
		break;
	}
	if (c) {
		if (client_put(c, f->type, r->csid, f->payload, f->len) < 0)
			client_drop(sv, c, "out of memory");
		else
			client_flush(sv, c);
	}
	if (f->type == PROTO_EXITED || f->type == PROTO_FAILED)
		session_end(sv, r, f);
	return true;
}

/*
 * A guest restored from a saved state may have been halfway through a frame
 * for the supervisor it was saved from: everything up to the marker it was
 * sent with its new configuration is dropped. Return: false if the loop should
 * stop reading (still looking, or a violation).
 */
static bool resync_skip(struct sv *sv)
{
	const uint8_t *p = buf_head(&sv->agent.rx);
	size_t n = buf_size(&sv->agent.rx), drop;
	const uint8_t *m = memmem(p, n, sv->resync, sizeof(sv->resync));

	if (m) {
		drop = (size_t)(m - p) + sizeof(sv->resync);
		sv->resyncing = false;
		if (drop > sizeof(sv->resync))
			log_info("restored guest: %zu byte(s) meant for the saved sandbox's "
				 "supervisor skipped",
				 drop - sizeof(sv->resync));
	} else {
		/* The marker may be arriving in pieces: keep what could be its start. */
		drop = n > sizeof(sv->resync) - 1 ? n - (sizeof(sv->resync) - 1) : 0;
	}
	conn_consume(&sv->agent, drop);
	sv->resync_skipped += drop;
	if (sv->resyncing && sv->resync_skipped > RESYNC_MAX) {
		violation(sv, "restored guest sent %" PRIu64 " bytes without its resync marker",
			  sv->resync_skipped);
		return false;
	}
	if (sv->resyncing) {
		agent_rearm(sv);
		return false;
	}
	return true;
}

void agent_read(struct sv *sv)
{
	struct proto_frame f;
	int r;

	if (sv->state >= ST_QUITTING)
		return;
	if (conn_fill(&sv->agent, READ_BUDGET) < 0) {
		agent_rearm(sv);
		return;
	}
	if (sv->resyncing && !resync_skip(sv))
		return;
	while ((r = proto_parse(&sv->agent.rx, &f)) > 0) {
		if (!on_agent_frame(sv, &f))
			return;
		conn_consume(&sv->agent, PROTO_HDR_SIZE + f.len);
	}
	if (r < 0) {
		violation(sv, "malformed frame: %s", strerror(-r));
		return;
	}
	if (sv->agent.eof) {
		/* The VM is going away; SIGCHLD follows. */
		if (sv->agent.ev)
			epoll_ctl(sv->ep, EPOLL_CTL_DEL, sv->agent.fd, NULL);
		sv->agent.ev = 0;
		return;
	}
	agent_pump(sv);
	agent_flush(sv);
}

void agent_write(struct sv *sv)
{
	agent_pump(sv);
	agent_flush(sv);
}
