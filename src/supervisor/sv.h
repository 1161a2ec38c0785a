/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The supervisor's own header: its state (struct sv), its constants, and the
 * functions its files share. Not for use outside src/supervisor/.
 */
#ifndef MSB_SUPERVISOR_SV_H
#define MSB_SUPERVISOR_SV_H

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
#include "sandbox/diskchain.h"
#include "sandbox/rootfs.h"
#include "sandbox/secrets.h"
#include "supervisor/netproc.h"
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

enum timer { T_STATE, T_OWNER, T_CONSOLE, T_IDLE, T_MAX, T_INFO, T_SNAP, T_MAIN, T_COUNT };

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
	/*
	 * The values of spec.net.secrets, same count and order, and their
	 * lengths: from the CLI through SBX_SECRETS_FD at startup, wiped at
	 * teardown. NULL when the sandbox has no secrets.
	 */
	char **secret_values;
	size_t *secret_lens;
	size_t nsecret_values;
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
	int seq_fd;			   /* SEQ_FILE: the last id, kept across runs */
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
	struct dchain disk_chain; /* a disk image root's vetted chain of files */
	struct vm_disk_node disk_nodes[DCHAIN_MAX_DEPTH + 2];
};

/* main.c */
void end_because(struct sv *sv, const char *reason);
void kill_now(struct sv *sv, const char *reason);
uint64_t now_ms(void);
bool ready_report(struct sv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void stop(struct sv *sv, uint32_t grace_ms, const char *reason);
void timer_set(struct sv *sv, enum timer t, uint64_t ms);

/* agent.c */
void agent_flush(struct sv *sv);
void agent_pump(struct sv *sv);
void agent_read(struct sv *sv);
void agent_rearm(struct sv *sv);
void agent_write(struct sv *sv);
void configure_guest(struct sv *sv);
void main_timed_out(struct sv *sv);
void record_end(struct sv *sv);

/* clients.c */
void broadcast(struct sv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bury(struct sv *sv);
void notify_sessions(struct sv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void seq_load(struct sv *sv);
void client_drop(struct sv *sv, struct client *c, const char *why);
void client_error(struct sv *sv, struct client *c, uint32_t sid, const char *msg);
void client_flush(struct sv *sv, struct client *c);
void client_pump(struct sv *sv, struct client *c);
int client_put(struct client *c, uint16_t type, uint32_t sid, const void *p, size_t n);
void client_read(struct sv *sv, struct client *c);
void clients_resume(struct sv *sv);
void on_accept(struct sv *sv);
struct route *route_by_gsid(struct sv *sv, uint32_t gsid);
void route_free(struct sv *sv, struct route *r);
struct route *route_new(struct sv *sv, int client, uint32_t csid);

/* execlog.c */
void exec_log_flush(struct sv *sv, struct route *r);
void exec_log_output(struct sv *sv, struct route *r, uint16_t type, const uint8_t *p, size_t n);
void exec_log_system(struct sv *sv, const char *text);

/* ctl.c */
void info_reply(struct sv *sv);
void info_request(struct sv *sv, struct client *c);
void on_ctl(struct sv *sv, struct client *c, const struct proto_frame *f);
void on_stats(struct sv *sv, const struct proto_frame *f);
void snap_fail(struct sv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void snapshot_take(struct sv *sv);

/* start.c */
int disk_root(struct sv *sv, struct vm_disk *d, char ***files, struct msb_err **err);
int state_restore(struct sv *sv, struct vm_config *cfg, struct msb_err **err);
void warm_start(struct sv *sv, struct vm_config *cfg);

#endif
