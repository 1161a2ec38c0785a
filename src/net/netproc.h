/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network process: one per sandbox, it runs the guest's network stack
 * (frames, TCP, UDP, ICMP, DNS, published ports) confined, so that the code
 * parsing the guest's bytes never runs with the user's rights. The
 * supervisor starts it (msb __net), sends it its configuration, and from
 * then on only asks it for counters and relays its log lines.
 *
 * The wire is a SOCK_SEQPACKET socket pair: one message = one datagram, a
 * one-byte type then the payload (below). Both sides treat the other's
 * messages as untrusted in size: a datagram longer than NP_MSG_MAX is cut
 * and refused.
 */
#ifndef MSB_NET_NETPROC_H
#define MSB_NET_NETPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/net.h"
#include "net/policy.h"

/* Message types. */
enum np_type {
	NP_CONFIG = 1,	  /* supervisor -> net: the configuration, JSON (netconf_to_json()) */
	NP_READY = 2,	  /* net -> supervisor: the stack runs (ports bound), confined */
	NP_ERROR = 3,	  /* net -> supervisor: one line, why it could not start; then it exits */
	NP_LOG = 4,	  /* net -> supervisor: a log line: level byte, then text */
	NP_STATS_REQ = 5, /* supervisor -> net: counters, please */
	NP_STATS = 6,	  /* net -> supervisor: struct np_stats_wire */
	/*
	 * After NP_CONFIG, when it has "tls": the CA (certificate PEM, a NUL, key
	 * PEM), the extra upstream CAs (PEM) if it says so, then one NP_SECRET per
	 * secret, in order, each the value's bytes. Values travel only here, never
	 * in the JSON (which may be logged when it is refused).
	 */
	NP_TLS_CA = 7,
	NP_TLS_UPSTREAM = 8,
	NP_SECRET = 9,
	NP_TERMINATE = 10, /* net -> supervisor: stop the sandbox (text: the secret and why) */
};

/* The most the extra upstream CAs may take together (one message). */
#define NP_UPSTREAM_MAX (128u << 10)

#define NP_MSG_MAX (256u << 10) /* the largest message either side accepts */

/* Counters on the wire: fixed-size little-endian fields, so both ends agree. */
struct np_stats_wire {
	uint64_t guest_tx_bytes;
	uint64_t guest_rx_bytes;
	uint64_t denied;
	uint64_t dropped;
	uint32_t tcp_flows;
	uint32_t udp_flows;
};
_Static_assert(sizeof(struct np_stats_wire) == 40, "np_stats_wire is a wire format");

/*
 * struct netconf - everything the network process needs, decoded: the stack's
 * configuration with the policy and ports it points at, and the identity it
 * takes when started as root.
 */
struct netconf {
	struct net_config cfg;
	struct net_policy policy;
	struct net_port ports[NET_MAX_PORTS];
	uid_t uid; /* as root: the unprivileged uid/gid to become; ignored otherwise */
	gid_t gid;
	struct net_tls tls; /* when cfg.tls points at it */
	bool upstream;	    /* NP_TLS_UPSTREAM follows */
};

/*
 * netconf_tls_send() - the messages after NP_CONFIG for @t (see enum np_type).
 * Return: 0 or -errno.
 */
int netconf_tls_send(int fd, const struct net_tls *t);

/*
 * netproc_terminate() - ask the supervisor to stop the sandbox because a
 * secret was about to leave where it may not (--on-secret-violation
 * block-and-terminate). Names only in @secret and @why.
 */
void netproc_terminate(const char *secret, const char *why);

/* netconf_to_json() - @c (its policy and ports included) and @uid/@gid as one JSON text. Caller
 * frees. */
char *netconf_to_json(const struct net_config *c, uid_t uid, gid_t gid);

/*
 * netconf_from_json() - decode @text into @nc (which it initialises; release
 * with netconf_free()). Return: 0, or -EINVAL with one line in @why.
 */
int netconf_from_json(const char *text, struct netconf *nc, char *why, size_t len);
void netconf_free(struct netconf *nc);

/*
 * np_send() - one message of @type with @len bytes of @data on @fd.
 * Return: 0, or -errno (-EAGAIN when the socket is full and @fd non-blocking).
 */
int np_send(int fd, uint8_t type, const void *data, size_t len);

/*
 * np_recv() - one message from @fd into @buf (@cap bytes, at least 2): its
 * type in *@type, its payload length in *@len (the payload starts at @buf + 1).
 * Return: 1 for a message, 0 at end of stream, or -errno (-EMSGSIZE for a
 * message longer than @cap, which is dropped).
 */
int np_recv(int fd, uint8_t *buf, size_t cap, uint8_t *type, size_t *len);

/*
 * netproc_main() - the network process's whole life: the configuration from
 * @ctl_fd, the stack on @link_fd (the guest's frames), READY or ERROR, then
 * confinement (netproc_confine()) and the event loop, until @ctl_fd closes.
 * Takes ownership of both descriptors. Return: the exit status.
 */
int netproc_main(int ctl_fd, int link_fd);

/*
 * netproc_confine() - confine the calling process the way passt confines
 * itself: as root, become @uid/@gid with no supplementary groups; a new user
 * namespace (own ids only), new mount, IPC and UTS namespaces; an empty
 * read-only tmpfs as its root with the old one detached; no capabilities;
 * RLIMIT_FSIZE, RLIMIT_NPROC and RLIMIT_CORE 0; not dumpable;
 * no_new_privs; and the seccomp allowlist (netproc_seccomp()). Where the
 * host forbids user namespaces the namespaces are skipped (logged; the rest
 * holds). Return: 0, or -errno with @why (the process must not go on).
 */
int netproc_confine(uid_t uid, gid_t gid, char *why, size_t len);

/*
 * netproc_seccomp() - install the allowlist: the system calls the stack's
 * event loop makes and nothing else (no open, exec, fork, ptrace, kill,
 * mount...); socket() only for AF_INET/AF_INET6 streams and datagrams
 * (TCP, UDP, ICMP echo); mmap/mprotect never executable. A call outside it
 * kills the process (SIGSYS), or with @trap raises SIGSYS to a handler that
 * reports the call's number (debugging). Return: 0 or -errno.
 */
int netproc_seccomp(bool trap);

/* netproc_set_sigsys_fd() - where the debugging SIGSYS handler reports (the control socket). */
void netproc_set_sigsys_fd(int fd);

#endif
