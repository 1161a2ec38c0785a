/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host <-> guest wire protocol, compiled into msb and agentd alike.
 * docs/protocol.md is the prose description; this header is the ABI.
 */
#ifndef MSB_PROTO_H
#define MSB_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define PROTO_VERSION 3

/* Every frame: this header, little-endian, then @len payload bytes. */
struct proto_wire_hdr {
	uint32_t len;
	uint32_t sid;
	uint16_t type;
	uint16_t flags;
} __attribute__((packed));

#define PROTO_HDR_SIZE 12
_Static_assert(sizeof(struct proto_wire_hdr) == PROTO_HDR_SIZE, "wire header is 12 bytes");

/* Limits a peer must respect; anything larger is a protocol error. */
#define PROTO_MAX_PAYLOAD (1u << 20)
#define PROTO_MAX_STRV	  4096 /* entries in argv or env */
#define PROTO_MAX_STR	  (256u << 10)
#define PROTO_MAX_RLIMITS 16
/* Largest stdin/stdout/stderr chunk a sender puts in one frame. */
#define PROTO_DATA_CHUNK (64u << 10)
/* Unacknowledged stream bytes a sender may have in flight per session. */
#define PROTO_WINDOW (512u << 10)

enum proto_type {
	PROTO_READY = 1,  /* agent -> host, sid 0 */
	PROTO_EXEC,	  /* host -> agent: start a session */
	PROTO_STARTED,	  /* agent -> host: the process runs */
	PROTO_STDIN,	  /* host -> agent: bytes; empty payload = EOF */
	PROTO_STDOUT,	  /* agent -> host */
	PROTO_STDERR,	  /* agent -> host */
	PROTO_ACK,	  /* either way: stream bytes consumed (window credit) */
	PROTO_RESIZE,	  /* host -> agent: terminal size */
	PROTO_SIGNAL,	  /* host -> agent: deliver a signal */
	PROTO_EXITED,	  /* agent -> host: final status */
	PROTO_FAILED,	  /* agent -> host: the session could not start */
	PROTO_SHUTDOWN,	  /* host -> agent, sid 0: stop everything, power off */
	PROTO_ERROR,	  /* either way: protocol-level complaint */
	PROTO_CONFIG,	  /* host -> agent, sid 0: the sandbox's configuration, once, after READY */
	PROTO_CONFIGURED, /* agent -> host, sid 0: the root is assembled; sessions may start */
	PROTO_STATS_REQ,  /* host -> agent, sid 0: report resource use */
	PROTO_STATS,	  /* agent -> host, sid 0: resource use */
	PROTO_INFO,   /* client <-> supervisor only, sid 0: ask / answer (JSON) about the sandbox */
	PROTO_KILL,   /* client -> supervisor only, sid 0: stop the VM now */
	PROTO_DETACH, /* client -> supervisor only: leave the session running without this client */
	/*
	 * host -> agent, sid 0: a snapshot is about to be taken; flush the
	 * disks and answer QUIESCED. The host sends nothing more until it is done.
	 */
	PROTO_QUIESCE,
	PROTO_QUIESCED, /* agent -> host, sid 0 */
	/* client <-> supervisor only, sid 0: a request (JSON {"op":...}) and its answer (JSON) */
	PROTO_CTL,
	PROTO_TYPE_MAX
};

/* Where a frame type is allowed: on the control session (0) or a session. */
bool proto_type_is_control(uint16_t type);

/* EXEC flags */
#define PROTO_EXEC_TTY	     0x1u
#define PROTO_EXEC_MKCWD     0x2u /* create the working directory if missing */
#define PROTO_EXEC_FLAGS_ALL (PROTO_EXEC_TTY | PROTO_EXEC_MKCWD)
/*
 * Client -> supervisor only (stripped before the guest sees the request):
 * this session is the sandbox's main command; when it ends, the sandbox ends.
 */
#define PROTO_EXEC_MAIN 0x100u

/* FAILED kinds: why a session did not start. */
enum proto_fail {
	PROTO_FAIL_INTERNAL = 1,
	PROTO_FAIL_NOT_FOUND,	   /* argv[0] not found (exit 127) */
	PROTO_FAIL_NOT_EXECUTABLE, /* found but not executable (exit 126) */
	PROTO_FAIL_USER,	   /* unknown user or group */
	PROTO_FAIL_CWD,		   /* working directory unusable */
	PROTO_FAIL_INVALID,	   /* bad request (rlimit, env...) */
	PROTO_FAIL_MAX
};

/* A decoded frame header plus a view of its payload (not owned). */
struct proto_frame {
	uint32_t sid;
	uint16_t type;
	uint16_t flags;
	uint32_t len;
	const uint8_t *payload;
};

/*
 * proto_parse() - find one complete frame at the head of @in.
 * Validates the length (<= PROTO_MAX_PAYLOAD), the type, the flags and the
 * session-id rule for the type. On success @f->payload points into @in;
 * drop the frame afterwards with buf_consume(in, PROTO_HDR_SIZE + f->len).
 * Return: 1 frame ready, 0 need more bytes, -EMSGSIZE too long,
 * -EPROTO unknown type / bad flags / wrong session for the type.
 */
int proto_parse(const struct buf *in, struct proto_frame *f);

/* proto_put_frame() - append a whole frame. Return: 0, -EMSGSIZE or -ENOMEM. */
int proto_put_frame(struct buf *out, uint16_t type, uint32_t sid, const void *payload, size_t len);

/* --- payloads --------------------------------------------------------- */

#define PROTO_MAX_TMPFS	  64
#define PROTO_MAX_SCRIPTS 64
#define PROTO_MAX_FILES	  16
#define PROTO_MAX_MOUNTS  64
#define PROTO_SEED_SIZE	  64
#define PROTO_MAX_FILE	  (768u << 10) /* bytes of one file (a CA bundle fits) */
/* CONFIG flags */
#define PROTO_CONFIG_UPPER_DISK 0x1u /* the writable layer is ext4 on the second disk */
#define PROTO_CONFIG_NET	0x2u /* eth0 gets the addresses of @net */
/* The root is the disk with serial PROTO_ROOT_SERIAL (a user's disk image), not layers. */
#define PROTO_CONFIG_DISK_ROOT 0x4u
/* The root is share 0 of the shared-files device: a host directory, live (--rootfs-bind). */
#define PROTO_CONFIG_SHARE_ROOT 0x8u
/*
 * The guest is a configured sandbox restored from a saved state (a snapshot,
 * a branch): it takes the new identity only (entropy, clock, hostname,
 * network, files), leaves its sessions' processes running unattended, and
 * writes @resync raw before its CONFIGURED, so the host can skip whatever
 * the saved guest had half-sent.
 */
#define PROTO_CONFIG_REFRESH 0x10u
#define PROTO_CONFIG_FLAGS_ALL                                                                     \
	(PROTO_CONFIG_UPPER_DISK | PROTO_CONFIG_NET | PROTO_CONFIG_DISK_ROOT |                     \
	 PROTO_CONFIG_SHARE_ROOT | PROTO_CONFIG_REFRESH)
#define PROTO_RESYNC_SIZE 16
#define PROTO_ROOT_SERIAL "msbroot"

/* The guest's interface: addresses in network byte order. */
struct proto_net {
	uint8_t mac[6]; /* eth0's address (a restored guest still has its template's) */
	uint8_t addr4[4], gw4[4];
	uint32_t prefix4;
	uint8_t addr6[16], gw6[16];
	uint32_t prefix6;
	uint32_t mtu;
};

/* File flags */
#define PROTO_FILE_CA_BUNDLE 0x1u /* appended to the guest's CA bundles; @path unused */
#define PROTO_FILE_FLAGS_ALL PROTO_FILE_CA_BUNDLE

/* A file agentd writes into the root once it is assembled (/etc/hosts, ...). */
struct proto_file {
	char *path; /* absolute */
	uint32_t mode;
	uint32_t flags;
	uint8_t *data;
	uint32_t len;
};

struct proto_tmpfs {
	char *path;
	uint64_t size; /* bytes; 0 = the kernel's default (half the memory) */
};

/* Mount flags */
#define PROTO_MOUNT_RO	      0x1u /* read-only (the host enforces it too) */
#define PROTO_MOUNT_NOEXEC    0x2u
#define PROTO_MOUNT_DISK      0x4u /* @index is the disk with serial PROTO_VOLUME_SERIAL<index> */
#define PROTO_MOUNT_FLAGS_ALL (PROTO_MOUNT_RO | PROTO_MOUNT_NOEXEC | PROTO_MOUNT_DISK)

/* argv[0] of an exec that runs agentd itself as msb cp's guest half (src/agent/cp.c). */
#define PROTO_CP_TOOL "__msb-cp"
/* The mount tag of the one virtio-9p device that carries every shared host path. */
#define PROTO_SHARE_TAG "msbshare"
/* The serial number of a volume's disk, followed by its index: the guest finds it by that. */
#define PROTO_VOLUME_SERIAL "msbvol"

/*
 * A volume: share @index of the shared-files device (a directory or a single
 * file), or with PROTO_MOUNT_DISK an ext4 disk, mounted at @path.
 */
struct proto_mount {
	char *path; /* absolute */
	uint32_t index;
	uint32_t flags;
};

struct proto_script {
	char *name;
	uint8_t *body; /* any bytes */
	uint32_t len;
};

/*
 * struct proto_config - what makes a booted guest this sandbox. Sent once,
 * after READY, so a guest can be booted (or restored) before it knows which
 * sandbox it will be. After proto_config_decode() the struct owns its
 * strings: release with proto_config_free().
 */
struct proto_config {
	uint32_t flags;
	char *hostname;
	uint32_t ntmpfs;
	struct proto_tmpfs tmpfs[PROTO_MAX_TMPFS];
	uint32_t nscripts;
	struct proto_script scripts[PROTO_MAX_SCRIPTS];
	char *init;	      /* "" = agentd stays PID 1; else an absolute path */
	char **init_argv;     /* NULL-terminated; empty = { init } */
	char **init_env;      /* NULL-terminated KEY=VALUE */
	struct proto_net net; /* with PROTO_CONFIG_NET */
	uint32_t nfiles;
	struct proto_file files[PROTO_MAX_FILES];
	uint32_t nmounts;
	struct proto_mount mounts[PROTO_MAX_MOUNTS];
	/*
	 * What makes this guest unique even when it was restored from a
	 * template: host entropy to mix in and reseed the kernel's RNG with, and
	 * the host's wall clock (ns since the epoch) when CONFIG was sent.
	 */
	uint8_t seed[PROTO_SEED_SIZE];
	uint64_t wall_ns;
	uint8_t resync[PROTO_RESYNC_SIZE]; /* with PROTO_CONFIG_REFRESH */
};

/* What the agent reports on STATS_REQ. */
struct proto_stats {
	uint64_t mem_total;	/* bytes, as the guest kernel sees them */
	uint64_t mem_available; /* bytes */
	uint32_t procs;		/* processes in the guest */
	uint64_t uptime_ns;	/* CLOCK_BOOTTIME */
};

struct proto_ready {
	uint32_t version;
	uint64_t kernel_ns; /* CLOCK_BOOTTIME when agentd started */
	uint64_t ready_ns;  /* CLOCK_BOOTTIME when the agent was ready */
};

struct proto_rlimit {
	uint32_t resource;
	uint64_t soft;
	uint64_t hard;
};

/*
 * struct proto_exec - a session request. After proto_exec_decode() every
 * pointer refers into one allocation owned by the struct; release it with
 * proto_exec_free().
 */
struct proto_exec {
	uint32_t flags;
	uint16_t rows, cols;
	char *user;  /* "" = image default */
	char *cwd;   /* "" = image default */
	char **argv; /* NULL-terminated, at least one entry */
	char **env;  /* NULL-terminated, each "KEY=VALUE" */
	uint32_t nrlimits;
	struct proto_rlimit rlimits[PROTO_MAX_RLIMITS];
	void *storage_;
};

struct proto_exited {
	int32_t code;	 /* exit status, or 128 + signal */
	uint32_t signal; /* terminating signal, 0 if it exited */
};

struct proto_failed {
	uint32_t kind;
	int32_t err; /* errno in the guest, 0 if none */
	char msg[512];
};

int proto_ready_encode(struct buf *out, const struct proto_ready *r);
int proto_ready_decode(const uint8_t *p, size_t n, struct proto_ready *r);

int proto_exec_encode(struct buf *out, uint32_t sid, const struct proto_exec *e);
/* Return: 0, -EBADMSG (malformed), -E2BIG (limits) or -ENOMEM. */
int proto_exec_decode(const uint8_t *p, size_t n, struct proto_exec *e);
void proto_exec_free(struct proto_exec *e);

int proto_u32_encode(struct buf *out, uint16_t type, uint32_t sid, uint32_t v);
int proto_u32_decode(const uint8_t *p, size_t n, uint32_t *v);

int proto_resize_encode(struct buf *out, uint32_t sid, uint16_t rows, uint16_t cols);
int proto_resize_decode(const uint8_t *p, size_t n, uint16_t *rows, uint16_t *cols);

int proto_exited_encode(struct buf *out, uint32_t sid, const struct proto_exited *x);
int proto_exited_decode(const uint8_t *p, size_t n, struct proto_exited *x);

int proto_failed_encode(struct buf *out, uint32_t sid, uint32_t kind, int32_t err, const char *msg);
int proto_failed_decode(const uint8_t *p, size_t n, struct proto_failed *f);

/* ERROR frames carry one message string. */
int proto_error_encode(struct buf *out, uint32_t sid, const char *msg);
int proto_error_decode(const uint8_t *p, size_t n, char *msg, size_t cap);

/* Return: 0, -EINVAL (bad fields) or -ENOMEM. */
int proto_config_encode(struct buf *out, const struct proto_config *c);
/* Return: 0, -EBADMSG (malformed), -E2BIG (limits) or -ENOMEM. */
int proto_config_decode(const uint8_t *p, size_t n, struct proto_config *c);
void proto_config_free(struct proto_config *c);

int proto_stats_encode(struct buf *out, const struct proto_stats *s);
int proto_stats_decode(const uint8_t *p, size_t n, struct proto_stats *s);

/* CONFIGURED carries the guest clock (CLOCK_BOOTTIME ns) when the root was ready. */
int proto_u64_encode(struct buf *out, uint16_t type, uint32_t sid, uint64_t v);
int proto_u64_decode(const uint8_t *p, size_t n, uint64_t *v);

const char *proto_type_name(uint16_t type);

#endif
