// SPDX-License-Identifier: Apache-2.0
/*
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
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "net/frame.h"
#include "proto/proto.h"
#include "sandbox/exec.h"
#include "sandbox/rootfs.h"
#include "sandbox/sbxnet.h"
#include "sandbox/volume.h"
#include "sandbox/warm.h"
#include "store/db.h"
#include "util/b64.h"
#include "util/cleanup.h"
#include "util/conn.h"
#include "util/fs.h"
#include "util/le.h"
#include "util/parse.h"
#include "util/rotlog.h"
#include "util/sock.h"
#include "util/strv.h"
#include "util/text.h"
#include "vm/layers.h"
#include "vm/vm.h"

#define BOOT_TIMEOUT_MS	     60000
#define OWNER_CONNECT_MS     30000
#define STOP_EXTRA_MS	     5000
#define QUIT_WAIT_MS	     3000
#define SIGNAL_STOP_GRACE_MS 10000
/* A template restore takes well under a second; past this it is given up for a cold boot. */
#define RESTORE_TIMEOUT_MS 10000
/* How long the last frames (output, the reason the sandbox ended) may take to reach clients. */
#define LINGER_MS 2000
/* pause, resume: QMP answers at once; a guest that does not quiesce for a snapshot in this long is
 * refused. */
#define CTL_VMM_MS	 5000
#define QUIESCE_MS	 10000
#define SNAP_SAVE_MS	 120000
#define STATE_RESTORE_MS 60000
/* A restored guest's stream is skipped up to the resync marker, but not further than this. */
#define RESYNC_MAX ((uint64_t)64 << 20)
/* A snapshot's memory, in the sandbox directory, restored at the next start. */
#define RESTORE_STATE "restore.state"

#define MAX_CLIENTS 128
#define MAX_ROUTES  1024
/* Largest frame plus one read: what a connection may hold unparsed. */
#define RX_MAX ((size_t)PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD + (64u << 10))
/* Bytes one event may read from one peer before the loop moves on. */
#define READ_BUDGET ((size_t)256 << 10)
/* Above this, clients' frames for the guest wait (agent queue high-water mark). */
#define AGENT_TX_HWM ((size_t)1 << 20)
/* Above this, credit for a client waits; see CLIENT_TX_MAX for the hard cap. */
#define CLIENT_TX_HWM ((size_t)256 << 10)
/*
 * A client's queue holds at most a window of output per session; only a
 * guest sending tiny frames of alternating streams to a client that does
 * not read gets near this, and then the client is dropped.
 */
#define CLIENT_TX_MAX ((size_t)8 << 20)

/* Logs: runtime.log and kernel.log, each capped and rotated. */
#define RUNTIME_LOG_MAX	 ((uint64_t)1 << 20)
#define RUNTIME_LOG_KEEP 2
#define KERNEL_LOG_MAX	 ((uint64_t)1 << 20)
#define KERNEL_LOG_KEEP	 1
/* The guest console is read at this average rate at most (bytes/s), with this burst. */
#define CONSOLE_RATE	 ((uint64_t)256 << 10)
#define CONSOLE_BURST	 ((uint64_t)1 << 20)
#define CONSOLE_PAUSE_MS 100
#define VMM_ERR_LINE_MAX 1024
/* exec.log: every session's output as JSON Lines (see docs/lifecycle.md). */
#define EXEC_LOG_MAX  ((uint64_t)10 << 20)
#define EXEC_LOG_KEEP 3
/* How long an INFO request waits for the guest's and the VMM's figures. */
#define INFO_WAIT_MS 1000

/* epoll payloads: a kind in the high half, a slot in the low half. */
enum kind { K_SIG = 1, K_LISTEN, K_AGENT, K_TIMER, K_CLIENT, K_CONSOLE, K_VMM_ERR, K_QMP, K_NET };
#define REF(k, i) ((uint64_t)(k) << 32 | (uint32_t)(i))

enum timer { T_STATE, T_OWNER, T_CONSOLE, T_IDLE, T_MAX, T_INFO, T_NET, T_SNAP, T_MAIN, T_COUNT };

struct client {
	struct conn conn;
	bool used;
	bool dead;   /* dropped during this batch; the slot is freed after it */
	bool owner;  /* the attached run's CLI: its leaving ends the sandbox */
	bool held;   /* frames wait in rx until the agent queue drains */
	bool credit; /* some route owes this client ACK credit */
	bool info;   /* asked for INFO, waiting for the answer */
	/* The last frame queued, while wholly unsent: output may be merged into it. */
	bool tail_ok;
	uint16_t tail_type;
	uint32_t tail_sid;
	uint32_t tail_len;
};

/* A guest session and which client session it belongs to (client -1: orphaned). */
struct route {
	uint32_t gsid; /* 0: free slot */
	int client;
	uint32_t csid;
	uint32_t out_inflight; /* guest output not yet acknowledged to the guest */
	uint32_t ack_guest;    /* credit owed to the guest, not yet sent */
	uint32_t in_inflight;  /* client stdin the guest has not acknowledged */
	uint32_t ack_client;   /* credit owed to the client, not yet sent */
	bool started;
	bool error_sent;
	bool kill_owed; /* its client left during a snapshot: SIGKILL it after */
	bool tty;	/* its output is one terminal stream ("output" in exec.log) */
	bool main;	/* the sandbox's main command: the sandbox ends with it */
	uint32_t seq;	/* its number in exec.log */
	/* An incomplete UTF-8 sequence at the end of the last chunk, per stream. */
	uint8_t carry[2][4];
	uint8_t ncarry[2];
};

enum state { ST_BOOTING, ST_CONFIGURING, ST_RUNNING, ST_STOPPING, ST_QUITTING, ST_KILLING };

struct sv {
	struct sbx_spec spec;
	char *dir;
	int dirfd, ep, sigfd, listen_fd, timer_fd, ready_fd, lock_fd;
	struct conn agent, console, vmm_err;
	struct rotlog runtime_log, kernel_log, exec_log;
	struct client clients[MAX_CLIENTS];
	struct route routes[MAX_ROUTES];
	unsigned int nroutes;
	uint32_t gen;	/* advances guest sids so a slot's reuse gets a new id */
	bool acks_owed; /* some route owes the guest credit */
	uint64_t deadline[T_COUNT];
	uint64_t console_tokens, console_refill_ms;
	struct vm *vm;
	enum vm_accel accel;
	char accel_why[256];
	bool attached, owner_seen;
	enum state state;
	bool run_main;			   /* run the spec's command as the main session (run -d) */
	int64_t run_id;			   /* this run's row in the database */
	const char *reason;		   /* why the sandbox ends, once known */
	int main_exit;			   /* the main session's exit status, -1 while none */
	uint32_t main_gsid;		   /* run -d: the main session, for its --timeout */
	uint32_t seq;			   /* sessions started, for exec.log ids */
	uint64_t started_ms;		   /* monotonic, at setup */
	uint64_t kernel_ns, configured_ns; /* guest boot timings */
	/* INFO: the figures being gathered for the clients that asked. */
	bool info_busy, stats_wait, disk_wait;
	bool stats_ok, disk_ok; /* this request's answers came */
	struct proto_stats stats;
	uint64_t disk_rd, disk_wr;
	struct sbx_netrun net;
	struct vol_plan vols; /* volumes: shares, quota disks and their locks, for the run */
	int disk_lock;	      /* a disk image root's lock, held for the run */
	/* Warm start: this shape's template key ("" for none), and how this start went. */
	char warm_key[WARM_KEY_LEN];
	bool restored;	      /* the guest came from the template: no READY will come */
	struct buf exec_line; /* exec.log's line being built */
	/* msb pause / resume, and snapshots (CTL requests). */
	struct {
		uint64_t asked_ms;
		int client; /* who asked, -1 for none */
		int dirfd;
		bool gone; /* it left before the answer */
		bool full;
	} snap;
	uint64_t resync_skipped;
	/*
	 * from_state: the guest was restored from a sandbox's saved state: it has
	 * been configured once, and what it had half-sent is skipped up to the
	 * resync marker. quiescing: QUIESCE sent, nothing more goes to the guest
	 * until the snapshot.
	 */
	uint8_t resync[PROTO_RESYNC_SIZE];
	bool paused, quiescing, from_state, resyncing;
};

static void end_because(struct sv *sv, const char *reason);
static void on_ctl(struct sv *sv, struct client *c, const struct proto_frame *f);
static void snap_fail(struct sv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info_request(struct sv *sv, struct client *c);
static void info_reply(struct sv *sv);
static void on_stats(struct sv *sv, const struct proto_frame *f);

static uint64_t now_ms(void)
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
static void timer_set(struct sv *sv, enum timer t, uint64_t ms)
{
	sv->deadline[t] = ms ? now_ms() + ms : 0;
	timers_arm(sv);
}

/* The network's next deadline (absolute), when it moved. */
static void net_timer_update(struct sv *sv)
{
	uint64_t d = sv->net.net ? net_deadline(sv->net.net) : 0;

	if (d != sv->deadline[T_NET]) {
		sv->deadline[T_NET] = d;
		timers_arm(sv);
	}
}

static void watch_fd(struct sv *sv, int fd, uint64_t ref, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = ref };

	epoll_ctl(sv->ep, EPOLL_CTL_ADD, fd, &ev);
}

static bool ready_report(struct sv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Tells the process that started us how boot went; only the first report
 * counts. Return: false if nobody was there to hear it.
 */
static bool ready_report(struct sv *sv, const char *fmt, ...)
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

static void agent_rearm(struct sv *sv)
{
	conn_watch(&sv->agent, sv->ep, REF(K_AGENT, 0), sv->state <= ST_STOPPING);
}

static void client_rearm(struct sv *sv, struct client *c)
{
	conn_watch(&c->conn, sv->ep, REF(K_CLIENT, c - sv->clients), !c->held && !c->dead);
}

static void client_flush(struct sv *sv, struct client *c);

/*
 * Tells every client why the sandbox is going away (an ERROR on the control
 * session), so the user reads the reason in one line instead of a lost connection.
 */
static void broadcast(struct sv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void broadcast(struct sv *sv, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &sv->clients[i];

		if (!c->used || c->dead || proto_error_encode(&c->conn.tx, 0, msg) < 0)
			continue;
		c->tail_ok = false;
		client_flush(sv, c);
	}
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

static void agent_flush(struct sv *sv)
{
	if (conn_flush(&sv->agent) < 0)
		log_debug("agent link: %s", strerror(-sv->agent.error));
	agent_rearm(sv);
}

/* Sends the window credit owed to the guest, as far as the agent queue allows. */
static void agent_pump(struct sv *sv)
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

/* Records why the sandbox ends; the first reason given wins. */
static void end_because(struct sv *sv, const char *reason)
{
	if (!sv->reason)
		sv->reason = reason;
}

static void stop(struct sv *sv, uint32_t grace_ms, const char *reason)
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
static void kill_now(struct sv *sv, const char *reason)
{
	end_because(sv, reason);
	if (sv->state >= ST_KILLING)
		return;
	log_info("stopping: killing the VM (%s)", reason);
	vm_kill(sv->vm);
	sv->state = ST_KILLING;
}

static struct route *route_by_gsid(struct sv *sv, uint32_t gsid)
{
	struct route *r;

	if (!gsid)
		return NULL;
	r = &sv->routes[(gsid - 1) % MAX_ROUTES];
	return r->gsid == gsid ? r : NULL;
}

static struct route *route_by_client(struct sv *sv, int client, uint32_t csid)
{
	for (unsigned int i = 0; i < MAX_ROUTES; i++) {
		struct route *r = &sv->routes[i];

		if (r->gsid && r->client == client && r->csid == csid)
			return r;
	}
	return NULL;
}

static struct route *route_new(struct sv *sv, int client, uint32_t csid)
{
	for (unsigned int i = 0; i < MAX_ROUTES; i++) {
		struct route *r = &sv->routes[i];

		if (r->gsid)
			continue;
		/* gsid - 1 is the slot modulo MAX_ROUTES; the generation keeps ids fresh. */
		sv->gen++;
		*r = (struct route){ .gsid = (uint32_t)(sv->gen % (UINT32_MAX / MAX_ROUTES)) *
						     MAX_ROUTES +
					     i + 1,
				     .client = client,
				     .csid = csid,
				     .seq = ++sv->seq };
		sv->nroutes++;
		timer_set(sv, T_IDLE, 0);
		return r;
	}
	return NULL;
}

static void route_free(struct sv *sv, struct route *r)
{
	memset(r, 0, sizeof(*r));
	sv->nroutes--;
	/* Idle: no session for --idle-timeout. */
	if (!sv->nroutes && sv->spec.idle_timeout_ms && sv->state == ST_RUNNING)
		timer_set(sv, T_IDLE, sv->spec.idle_timeout_ms);
}

/* Queues a whole frame for a client; output is merged into the previous frame where possible. */
static int client_put(struct client *c, uint16_t type, uint32_t sid, const void *p, size_t n)
{
	struct buf *tx = &c->conn.tx;
	bool data = type == PROTO_STDOUT || type == PROTO_STDERR;
	int r;

	if (data && c->tail_ok && c->tail_type == type && c->tail_sid == sid &&
	    buf_size(tx) >= PROTO_HDR_SIZE + (size_t)c->tail_len &&
	    (size_t)c->tail_len + n <= PROTO_DATA_CHUNK) {
		uint8_t *hdr;

		r = buf_append(tx, p, n);
		if (r < 0)
			return r;
		/* Found after the append, which may have moved the data. */
		hdr = tx->data + tx->len - n - PROTO_HDR_SIZE - c->tail_len;
		c->tail_len += (uint32_t)n;
		put_le32(hdr, c->tail_len);
		return 0;
	}
	r = proto_put_frame(tx, type, sid, p, n);
	c->tail_ok = r == 0 && data;
	c->tail_type = type;
	c->tail_sid = sid;
	c->tail_len = (uint32_t)n;
	return r;
}

static void client_drop(struct sv *sv, struct client *c, const char *why);

static void client_flush(struct sv *sv, struct client *c)
{
	if (c->dead)
		return;
	if (conn_flush(&c->conn) < 0) {
		client_drop(sv, c, NULL);
		return;
	}
	if (buf_size(&c->conn.tx) < PROTO_HDR_SIZE + (size_t)c->tail_len)
		c->tail_ok = false; /* partly sent: no more merging into it */
	client_rearm(sv, c);
}

/* Sends the stdin credit owed to a client, as far as its queue allows. */
static void client_pump(struct sv *sv, struct client *c)
{
	int ci = (int)(c - sv->clients);

	if (!c->credit || c->dead)
		return;
	c->credit = false;
	for (unsigned int i = 0; i < MAX_ROUTES; i++) {
		struct route *r = &sv->routes[i];

		if (!r->gsid || r->client != ci || !r->ack_client)
			continue;
		if (conn_tx_full(&c->conn) ||
		    proto_u32_encode(&c->conn.tx, PROTO_ACK, r->csid, r->ack_client) < 0) {
			c->credit = true;
			continue;
		}
		c->tail_ok = false;
		r->ack_client = 0;
	}
}

static void client_error(struct sv *sv, struct client *c, uint32_t sid, const char *msg)
{
	if (proto_error_encode(&c->conn.tx, sid, msg) < 0) {
		client_drop(sv, c, "out of memory");
		return;
	}
	c->tail_ok = false;
	client_flush(sv, c);
}

static void client_drop(struct sv *sv, struct client *c, const char *why)
{
	int ci = (int)(c - sv->clients);

	if (c->dead)
		return;
	if (why)
		log_warn_rl("dropping a client: %s", why);
	/* A client that goes away takes its sessions with it. */
	for (unsigned int i = 0; i < MAX_ROUTES; i++) {
		struct route *r = &sv->routes[i];

		if (!r->gsid || r->client != ci)
			continue;
		r->client = -1;
		/* Nobody will read what it already sent: give the guest that credit back. */
		r->ack_guest += r->out_inflight;
		r->out_inflight = 0;
		sv->acks_owed = true;
		/* One per session, once: exempt from the high-water mark. */
		if (sv->quiescing)
			r->kill_owed = true; /* sent with the credit once the snapshot is over */
		else
			proto_u32_encode(&sv->agent.tx, PROTO_SIGNAL, r->gsid, SIGKILL);
	}
	if (sv->snap.client == ci)
		sv->snap.gone = true;
	agent_pump(sv);
	agent_flush(sv);
	/* Events for @c may still be pending in this batch: the slot is reused only afterwards. */
	conn_close(&c->conn);
	c->dead = true;
	if (c->owner) {
		log_info("attached client left");
		stop(sv, 0, "killed");
	}
}

/*
 * Handles one client frame. Return: 1 done, 0 hold it (the agent queue is
 * full), -1 drop the client.
 */
static int on_client_frame(struct sv *sv, struct client *c, const struct proto_frame *f)
{
	int ci = (int)(c - sv->clients);
	struct route *r;
	uint32_t v;

	switch (f->type) {
	case PROTO_EXEC:
	case PROTO_STDIN:
	case PROTO_RESIZE:
	case PROTO_SIGNAL:
		if (conn_tx_full(&sv->agent) || sv->quiescing)
			return 0;
		break;
	default:
		break;
	}
	switch (f->type) {
	case PROTO_EXEC:
		if (sv->state != ST_RUNNING) {
			client_error(sv, c, f->sid, "sandbox is stopping");
			return 1;
		}
		if (sv->paused) {
			char msg[160];

			snprintf(msg, sizeof(msg), "sandbox %s is paused (msb resume %s)",
				 sv->spec.name, sv->spec.name);
			client_error(sv, c, f->sid, msg);
			return 1;
		}
		if (route_by_client(sv, ci, f->sid)) {
			client_error(sv, c, f->sid, "session id already in use");
			return 1;
		}
		if (f->len < 4) {
			client_error(sv, c, f->sid, "malformed exec request");
			return 1;
		}
		r = route_new(sv, ci, f->sid);
		if (!r) {
			client_error(sv, c, f->sid, "too many sessions in this sandbox");
			return 1;
		}
		v = get_le32(f->payload);
		r->tty = v & PROTO_EXEC_TTY;
		r->main = v & PROTO_EXEC_MAIN;
		if (proto_put_frame(&sv->agent.tx, f->type, r->gsid, f->payload, f->len) < 0) {
			route_free(sv, r);
			client_error(sv, c, f->sid, "out of memory");
			return 1;
		}
		/* MAIN is for the supervisor only: the guest sees a plain request. */
		put_le32(sv->agent.tx.data + sv->agent.tx.len - f->len, v & ~PROTO_EXEC_MAIN);
		return 1;
	case PROTO_STDIN:
	case PROTO_ACK:
	case PROTO_RESIZE:
	case PROTO_SIGNAL:
		r = route_by_client(sv, ci, f->sid);
		if (!r) {
			/* Harmless race with the session's end: stay quiet for those. */
			if (f->type != PROTO_ACK && f->type != PROTO_STDIN)
				client_error(sv, c, f->sid, "no such session");
			return 1;
		}
		if (f->type == PROTO_ACK) {
			if (proto_u32_decode(f->payload, f->len, &v) < 0)
				return -1;
			if (v > r->out_inflight)
				v = r->out_inflight;
			r->out_inflight -= v;
			r->ack_guest += v;
			sv->acks_owed = true;
			return 1;
		}
		if (f->type == PROTO_STDIN) {
			if (f->len > PROTO_WINDOW - r->in_inflight)
				return -1; /* the client ignored its window */
			r->in_inflight += f->len;
		}
		if (proto_put_frame(&sv->agent.tx, f->type, r->gsid, f->payload, f->len) < 0)
			return -1;
		return 1;
	case PROTO_SHUTDOWN:
		if (proto_u32_decode(f->payload, f->len, &v) < 0)
			v = 0;
		stop(sv, v, "stopped");
		return 1;
	case PROTO_KILL:
		kill_now(sv, "killed");
		return 1;
	case PROTO_INFO:
		info_request(sv, c);
		return 1;
	case PROTO_CTL:
		on_ctl(sv, c, f);
		return 1;
	case PROTO_DETACH:
		r = route_by_client(sv, ci, f->sid);
		if (r) {
			/* The session goes on; its output is still logged, and acknowledged here.
			 */
			r->client = -1;
			r->ack_guest += r->out_inflight;
			r->out_inflight = 0;
			sv->acks_owed = true;
		}
		if (c->owner) {
			log_info("attached client detached; the sandbox runs on");
			c->owner = false;
			sv->attached = false;
		}
		return 1;
	default:
		client_error(sv, c, f->sid, "unexpected frame type");
		return 1;
	}
}

/* Handles the frames a client has sent, until its rx is empty or a frame must wait. */
static void client_process(struct sv *sv, struct client *c)
{
	struct proto_frame f;
	int r = 0;

	c->held = false;
	while (!c->dead && (r = proto_parse(&c->conn.rx, &f)) > 0) {
		int done = on_client_frame(sv, c, &f);

		if (done < 0) {
			client_drop(sv, c, "protocol error");
			return;
		}
		if (done == 0) {
			c->held = true;
			break;
		}
		conn_consume(&c->conn, PROTO_HDR_SIZE + f.len);
	}
	if (c->dead)
		return;
	if (!c->held && r < 0) {
		client_drop(sv, c, "malformed frame");
		return;
	}
	if (!c->held && c->conn.eof) {
		client_drop(sv, c, NULL);
		return;
	}
	agent_pump(sv);
	agent_flush(sv);
	client_rearm(sv, c);
}

static void client_read(struct sv *sv, struct client *c)
{
	if (c->dead || c->held)
		return;
	if (conn_fill(&c->conn, READ_BUDGET) < 0) {
		client_drop(sv, c, NULL);
		return;
	}
	client_process(sv, c);
}

/* The agent queue drained below its mark: let held clients go on. */
static void clients_resume(struct sv *sv)
{
	for (int i = 0; i < MAX_CLIENTS && !conn_tx_full(&sv->agent); i++) {
		struct client *c = &sv->clients[i];

		if (c->used && !c->dead && c->held)
			client_process(sv, c);
	}
}

/* --- exec.log ------------------------------------------------------------ */

/* One JSON line: {"t":..., "s":..., "d":..., "id":N} (no id for system lines). */
/* @n bytes of UTF-8 as a JSON string, quotes included. Return: 0 or -ENOMEM. */
static int json_str_put(struct buf *b, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;
	int r = buf_append(b, "\"", 1);

	for (size_t i = 0; !r && i < n; i++) {
		uint8_t c = p[i];
		char esc[6] = { '\\', 0 };
		size_t elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		r = buf_append(b, p + run, i - run);
		run = i + 1;
		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		if (!r)
			r = buf_append(b, esc, elen);
	}
	if (!r)
		r = buf_append(b, p + run, n - run);
	return r ? r : buf_append(b, "\"", 1);
}

/*
 * One exec.log line, built by hand in a buffer kept for the purpose: output
 * arrives in frames as small as a byte, and a line must not cost a JSON tree.
 */
static void exec_log_line(struct sv *sv, const char *stream, uint32_t id, const void *p, size_t n,
			  bool b64)
{
	_cleanup_free_ char *enc = NULL;
	struct buf *b = &sv->exec_line;
	char ts[40], tail[48];
	int r;

	log_timestamp(ts, sizeof(ts));
	if (b64 && !(enc = b64_encode(p, n)))
		return;
	buf_clear(b);
	r = buf_append(b, "{\"t\":\"", 6);
	if (!r)
		r = buf_append(b, ts, strlen(ts));
	if (!r)
		r = buf_append(b, "\",\"s\":\"", 7);
	if (!r)
		r = buf_append(b, stream, strlen(stream));
	if (!r)
		r = buf_append(b, "\",\"d\":", 6);
	if (!r)
		r = json_str_put(b, enc ? (const uint8_t *)enc : p, enc ? strlen(enc) : n);
	snprintf(tail, sizeof(tail), "%s%.0" PRIu32 "%s}\n", id ? ",\"id\":" : "", id,
		 b64 ? ",\"b64\":true" : "");
	if (!r)
		r = buf_append(b, tail, strlen(tail));
	if (!r)
		rotlog_write(&sv->exec_log, buf_head(b), buf_size(b));
	/* A burst of big chunks may have grown it: do not keep that. */
	if (b->cap > (256u << 10))
		buf_free(b);
}

static void exec_log_system(struct sv *sv, const char *text)
{
	exec_log_line(sv, "system", 0, text, strlen(text), false);
}

/* Is line @p (@n bytes, the last of a chunk when @last) text? A cut character may end the last. */
static bool line_is_text(const uint8_t *p, size_t n, bool last)
{
	size_t tail = 0;

	return utf8_prefix(p, n, &tail) != (size_t)-1 && (last || !tail);
}

/*
 * Logs a session's output. Text stays text; lines that are not UTF-8 are
 * logged as base64 so that --raw can give the bytes back. A chunk becomes one
 * record per run of lines of one kind (a text line next to a binary one is
 * not swallowed by it, however the frames fell); a multi-byte character cut
 * at a chunk boundary is carried to the next chunk.
 */
static void exec_log_output(struct sv *sv, struct route *r, uint16_t type, const uint8_t *p,
			    size_t n)
{
	int k = type == PROTO_STDERR ? 1 : 0;
	const char *stream = r->tty ? "output" : k ? "stderr" : "stdout";
	uint8_t *buf = NULL;
	const uint8_t *d = p;
	size_t len = n, ok, tail;

	if (r->ncarry[k]) {
		buf = malloc(r->ncarry[k] + n);
		if (!buf)
			return;
		memcpy(buf, r->carry[k], r->ncarry[k]);
		memcpy(buf + r->ncarry[k], p, n);
		d = buf;
		len = r->ncarry[k] + n;
		r->ncarry[k] = 0;
	}
	for (size_t start = 0, i; start < len; start = i) {
		int kind = -1; /* of this run: 1 text, 0 binary */

		for (i = start; i < len;) {
			const uint8_t *nl = memchr(d + i, '\n', len - i);
			size_t end = nl ? (size_t)(nl - d) + 1 : len;
			int text = line_is_text(d + i, end - i, !nl);

			if (kind >= 0 && text != kind)
				break;
			kind = text;
			i = end;
		}
		if (!kind) {
			exec_log_line(sv, stream, r->seq, d + start, i - start, true);
			continue;
		}
		ok = utf8_prefix(d + start, i - start, &tail);
		if (ok)
			exec_log_line(sv, stream, r->seq, d + start, ok, false);
		if (i == len) { /* only the last line can end in a cut character */
			memcpy(r->carry[k], d + start + ok, tail);
			r->ncarry[k] = (uint8_t)tail;
		}
	}
	free(buf);
}

/* At a session's end: what was carried is not a character after all. */
static void exec_log_flush(struct sv *sv, struct route *r)
{
	for (int k = 0; k < 2; k++) {
		if (r->ncarry[k])
			exec_log_line(sv,
				      r->tty ? "output"
				      : k    ? "stderr"
					     : "stdout",
				      r->seq, r->carry[k], r->ncarry[k], true);
		r->ncarry[k] = 0;
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

static void record_end(struct sv *sv)
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
	if (!r && sv->net.net) {
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
static void configure_guest(struct sv *sv)
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
static void main_timed_out(struct sv *sv)
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

/* --- INFO: what inspect and metrics show ------------------------------------ */

/* A figure that could not be had this time is unknown (null), never 0 or a wrapped negative. */
static void set_known(json_t *o, const char *key, bool known, uint64_t v)
{
	json_object_set_new(o, key,
			    known && v <= INT64_MAX ? json_integer((json_int_t)v) : json_null());
}

static void info_reply(struct sv *sv)
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
	if (o && sv->net.net) {
		struct net_stats ns;
		char a4[IP_STRLEN], a6[IP_STRLEN];

		net_stats(sv->net.net, &ns);
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

static void on_stats(struct sv *sv, const struct proto_frame *f)
{
	sv->stats_ok = proto_stats_decode(f->payload, f->len, &sv->stats) == 0;
	if (!sv->stats_ok)
		log_warn_rl("agent: malformed STATS");
	sv->stats_wait = false;
	if (sv->info_busy && !sv->disk_wait)
		info_reply(sv);
}

/* A client asks about the sandbox: gather the guest's and the VMM's figures, then answer. */
static void info_request(struct sv *sv, struct client *c)
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

static void snap_fail(struct sv *sv, const char *fmt, ...)
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
static void snapshot_take(struct sv *sv)
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

static void on_ctl(struct sv *sv, struct client *c, const struct proto_frame *f)
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

static void agent_read(struct sv *sv)
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

static void agent_write(struct sv *sv)
{
	agent_pump(sv);
	agent_flush(sv);
}

static void on_accept(struct sv *sv)
{
	for (;;) {
		int fd = accept4(sv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client *c = NULL;

		if (fd < 0)
			return;
		for (int i = 0; i < MAX_CLIENTS && !c; i++)
			if (!sv->clients[i].used)
				c = &sv->clients[i];
		if (!c) {
			log_warn_rl("too many clients (%d); refusing one", MAX_CLIENTS);
			close(fd);
			continue;
		}
		*c = (struct client){ .used = true };
		conn_init(&c->conn, fd, CLIENT_TX_HWM, RX_MAX);
		if (sv->attached && !sv->owner_seen) {
			c->owner = true;
			sv->owner_seen = true;
			timer_set(sv, T_OWNER, 0);
		}
		client_rearm(sv, c);
	}
}

/* Frees the slots of clients dropped during the last batch of events. */
static void bury(struct sv *sv)
{
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (sv->clients[i].used && sv->clients[i].dead)
			sv->clients[i] = (struct client){ 0 };
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
		log_info("the sandbox reached its maximum duration; stopping");
		stop(sv, SIGNAL_STOP_GRACE_MS, "max-duration");
	}
	if (fired[T_INFO])
		info_reply(sv);
	if (fired[T_MAIN])
		main_timed_out(sv);
	if (fired[T_SNAP] && sv->snap.client >= 0)
		snap_fail(sv, "the guest did not flush its disks for the snapshot within %d s",
			  QUIESCE_MS / 1000);
	if (fired[T_NET] && sv->net.net) {
		net_timer(sv->net.net, now);
		net_timer_update(sv);
	}
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

/*
 * Starts the VM from this shape's template (sv->vm set, sv->restored),
 * making the template first if there is none; else leaves sv->vm NULL for a
 * cold boot. A template that fails is a line in runtime.log and a cold boot,
 * never a failed start.
 */
static void warm_start(struct sv *sv, struct vm_config *cfg)
{
	_cleanup_free_ char *qemu = vmm_binary(), *ram = NULL;
	struct warm_check *check = NULL;
	uint64_t t0 = now_ms();
	char why[512];
	int fd, r;

	sv->warm_key[0] = '\0';
	if (!qemu || !warm_wanted(cfg) || warm_key(cfg, qemu, sv->warm_key) < 0) {
		sv->warm_key[0] = '\0';
		return;
	}
	fd = warm_open(sv->warm_key, &ram, &check, why, sizeof(why));
	if (fd == -ENOENT) {
		/* The first start of this shape makes its template: a boot, and a save. */
		r = warm_make(cfg, sv->warm_key, why, sizeof(why));
		if (r < 0) {
			log_warn("warm start: making template %s failed (%s); booting cold",
				 sv->warm_key, why);
			return;
		}
		log_info("warm start: template %s made in %" PRIu64 " ms", sv->warm_key,
			 now_ms() - t0);
		fd = warm_open(sv->warm_key, &ram, &check, why, sizeof(why));
	}
	if (fd < 0) {
		log_warn("warm start: %s; booting cold", *why ? why : strerror(-fd));
		return;
	}
	t0 = now_ms();
	cfg->incoming = true;
	/* The template's RAM, mapped privately: what the guest does not write stays shared. */
	cfg->mem_file = ram;
	cfg->mem_shared = false;
	{
		struct msb_err *e = NULL;

		r = vm_start(cfg, &sv->vm, &e);
		if (r < 0)
			snprintf(why, sizeof(why), "%s", e ? e->msg : "cannot start the VMM");
		msb_err_free(e);
	}
	/* Checked while QEMU started; nothing of it reached the VM yet. */
	if (warm_verified(steal_ptr(check), why, sizeof(why)) < 0) {
		/* Removed: the next start makes it again. */
		r = -EBADMSG;
	} else if (r == 0) {
		r = vm_restore_wait(sv->vm, fd, ram ? VM_STATE_SHARED_RAM : 0, RESTORE_TIMEOUT_MS,
				    why, sizeof(why));
	}
	close(fd);
	cfg->incoming = false;
	cfg->mem_file = NULL;
	if (r < 0) {
		if (r == -EBADMSG)
			log_warn("warm start: %s; booting cold", why);
		else
			log_warn("warm start: restoring template %s failed (%s); booting cold",
				 sv->warm_key, why);
		vm_free(sv->vm);
		sv->vm = NULL;
		return;
	}
	sv->restored = true;
	log_info("warm start: restored template %s in %" PRIu64 " ms", sv->warm_key, now_ms() - t0);
}

/*
 * The sandbox was made from a snapshot with memory, or branched off a running
 * one: its first start resumes that guest where it was saved, and the
 * configuration that follows only gives it this sandbox's identity. The state
 * is used once; later starts boot from the disk.
 */
static int state_restore(struct sv *sv, struct vm_config *cfg, struct msb_err **err)
{
	_cleanup_close_ int fd = openat(sv->dirfd, RESTORE_STATE, O_RDONLY | O_CLOEXEC);
	uint64_t t0 = now_ms();
	char why[512];
	int r;

	if (fd < 0)
		return msb_err_sys(err, errno, "sandbox %s: %s", sv->spec.name, RESTORE_STATE);
	unlinkat(sv->dirfd, RESTORE_STATE, 0);
	cfg->incoming = true;
	r = vm_start(cfg, &sv->vm, err);
	cfg->incoming = false;
	if (r < 0)
		return -1;
	r = vm_restore_wait(sv->vm, fd, 0, STATE_RESTORE_MS, why, sizeof(why));
	if (r < 0) {
		vm_free(sv->vm);
		sv->vm = NULL;
		return msb_err_set(err, EIO,
				   "sandbox %s: its saved memory could not be restored (%s); its "
				   "disk is kept, and 'msb start %s' boots it afresh",
				   sv->spec.name, why, sv->spec.name);
	}
	sv->restored = true;
	sv->from_state = true;
	log_info("restored the saved guest in %" PRIu64 " ms", now_ms() - t0);
	return 0;
}

/*
 * A disk image as the root: the image itself (locked for this one writer) or,
 * with --disk-snapshot, the sandbox's qcow2 overlay of it (the image then only
 * read, by any number of sandboxes). The overlay's backing chain goes into
 * @files, for the VMM's jail.
 */
static int disk_root(struct sv *sv, struct vm_disk *d, char ***files, struct msb_err **err)
{
	const char *img = sv->spec.disk_image;
	char backing[1024], top[1024];
	struct strv chain = { 0 };
	bool snap = sv->spec.disk_snapshot;
	int r;

	sv->disk_lock = open(img, O_RDONLY | O_CLOEXEC);
	if (sv->disk_lock < 0)
		return msb_err_set(err, errno, "sandbox %s: disk image %s: %s", sv->spec.name, img,
				   strerror(errno));
	if (flock(sv->disk_lock, (snap ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0)
		return msb_err_set(err, EBUSY,
				   "sandbox %s: disk image %s is in use by another sandbox (give "
				   "each sandbox its own copy, or use --disk-snapshot)",
				   sv->spec.name, img);
	*d = (struct vm_disk){ .path = snap ? "disk.qcow2" : img,
			       .format = snap ? "qcow2" : sv->spec.disk_format,
			       .serial = PROTO_ROOT_SERIAL,
			       .readonly = false };
	snprintf(top, sizeof(top), "%s", d->path);
	for (int depth = 0; depth < 16; depth++) {
		r = qcow2_backing(top, backing, sizeof(backing));
		if (r < 0)
			return msb_err_set(err, -r, "sandbox %s: %s: unreadable backing file name",
					   sv->spec.name, top);
		if (r == 0)
			break;
		if (strv_push(&chain, backing) < 0) {
			strv_free(&chain);
			return msb_err_sys(err, ENOMEM, "disk");
		}
		snprintf(top, sizeof(top), "%s", backing);
	}
	*files = strv_steal(&chain);
	return *files ? 0 : msb_err_sys(err, ENOMEM, "disk");
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
	/* Before the VM: a published port already in use fails the start here. */
	if (sbx_netrun_start(&sv->spec, &sv->net, err) < 0)
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
	net_watch(sv->net.net, sv->ep, K_NET);
	net_timer_update(sv);

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
	rotlog_close(&sv->kernel_log);
	exec_log_system(sv, "--- sandbox stopped ---");
	rotlog_close(&sv->exec_log);
	buf_free(&sv->exec_line);
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
			case K_NET:
				if (sv->net.net) {
					net_handle(sv->net.net, idx, e);
					net_timer_update(sv);
				}
				break;
			}
		}
		if (!conn_tx_full(&sv->agent))
			clients_resume(sv);
		bury(sv);
		if (gone)
			return;
	}
}

int sbx_supervise(const char *name, int ready_fd, int lock_fd, bool attached, bool run_main)
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
			 .disk_lock = -1,
			 .snap = { .client = -1, .dirfd = -1 },
			 .net = { .vmm_fd = -1 } };

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
	sbx_spec_free(&sv.spec);
	free(sv.dir);
	if (sv.lock_fd >= 0)
		close(sv.lock_fd);
	return 0;
}
