/* SPDX-License-Identifier: Apache-2.0 */
/* The supervisor's side of a sandbox's network: the lease, the network process it starts and talks
 * to, and what the guest is told. */
#ifndef MSB_SUPERVISOR_NETPROC_H
#define MSB_SUPERVISOR_NETPROC_H

#include "net/net.h"
#include "proto/proto.h"
#include "sandbox/sandbox.h"
#include "util/err.h"

/*
 * Where a sandbox's network stands while it runs. The stack itself runs in
 * the network process (net/netproc.h): the supervisor never parses a byte of
 * the guest's network traffic; it holds the process's control socket.
 */
struct sbx_netrun {
	pid_t pid; /* the network process, 0 when none */
	int ctl;   /* its control socket (SOCK_SEQPACKET), -1 when none */
	struct net_config cfg;
	int vmm_fd; /* QEMU's end of the link, until handed over */
	char *ca;   /* the host's CA bundle (--trust-host-cas), read at start */
	struct net_tls
		tls; /* interception and secrets: names alias the spec, values the caller's */
	char *ica;   /* the interception CA's certificate, for the guest to trust */
	size_t ica_len;
	char terminate[400]; /* why the process asked for the sandbox to stop, or "" */
	int id_lock;	     /* as root, the VMM id range's lock until the process runs, or -1 */
	bool pending;	     /* started, READY not yet seen (sbx_netrun_ready()) */
	size_t ca_len;
};

/*
 * sbx_netrun_start() - lease the sandbox's addresses, find its nameservers
 * and start its network process, which binds the published ports and
 * confines itself while the VM starts. @values (@lens bytes each) are the
 * secrets' values in the spec's order; they go to the process and nowhere
 * else. Return: 0 with @run->vmm_fd for the VMM, or -1 with @err.
 */
int sbx_netrun_start(const struct sbx_spec *spec, struct sbx_netrun *run, char *const *values,
		     const size_t *lens, struct msb_err **err);

/*
 * sbx_netrun_ready() - wait until the network process runs confined with
 * its ports bound (a port in use fails here). As root, VMM ids picked before
 * this never take the process's. Return: 0, or -1 with @err (the process is
 * gone then).
 */
int sbx_netrun_ready(const struct sbx_spec *spec, struct sbx_netrun *run, struct msb_err **err);
void sbx_netrun_free(struct sbx_netrun *run);

/*
 * sbx_netrun_event() - the control socket is readable: relay the process's
 * log lines. Return: 0; 1 when it asks for the sandbox to stop (a secret's
 * block-and-terminate; why in @run->terminate); -1 once the socket has ended
 * (the process is gone; the caller stops watching it).
 */
int sbx_netrun_event(struct sbx_netrun *run);

/*
 * sbx_netrun_stats() - the network's counters, asked of the process (it
 * answers at once; a bounded wait). Return: 0, or -1 when it cannot answer.
 */
int sbx_netrun_stats(struct sbx_netrun *run, struct net_stats *s);

/*
 * sbx_netrun_reaped() - @pid exited with @status: if it was the network
 * process, say so in runtime.log. Return: true if it was.
 */
bool sbx_netrun_reaped(struct sbx_netrun *run, pid_t pid, int status);

/*
 * sbx_netrun_config() - put the interface and the files the guest needs
 * (/etc/hosts, /etc/resolv.conf, the host's CA bundle with --trust-host-cas)
 * into @c. Release with sbx_netrun_config_free(). Return: 0 or -errno with @why.
 */
int sbx_netrun_config(const struct sbx_spec *spec, const struct sbx_netrun *run,
		      struct proto_config *c, char *why, size_t len);
void sbx_netrun_config_free(struct proto_config *c);

#endif
