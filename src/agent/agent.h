/* SPDX-License-Identifier: Apache-2.0 */
/* Shared declarations of agentd, the guest's PID 1. */
#ifndef MSB_AGENT_AGENT_H
#define MSB_AGENT_AGENT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/proto.h"

/* Where --script files live in the guest (and what is added to PATH for them). */
#define AGENT_SCRIPTS_DIR "/.msb/scripts"

/* Boot parameters the host puts on the kernel command line (msb.*). */
struct boot_params {
	bool poweroff; /* msb.poweroff: power off at once (boot benchmark) */
};

void alog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* agent_vline() - one line on stderr, after @prefix (or none). */
void agent_vline(const char *prefix, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* mount.c */
int boot_parse_cmdline(const char *cmdline, struct boot_params *bp);
int mount_early(void);
/* Assembles the overlay root (upper on the second disk or tmpfs) and switches into it. */
/* mount_root() - assemble the root @c asks for (layers, a disk, or a live share) and enter it. */
int mount_root(const struct proto_config *c);
/* mount_share_source() - a path to share @index, usable after the root changed. */
int mount_share_source(uint32_t index, char *out, size_t len);
/* mount_shares_done() - every share is bound: drop the device's own mount. */
void mount_shares_done(void);
/*
 * mount_shadow() - with a live host directory as the root, put a private
 * copy of @path over it, so that what agentd writes there (/etc/hosts, CA
 * bundles) never reaches the host. Return: 0 (also when there is no live
 * root), -ENOENT if @path is missing, -EINVAL if not a regular file, -errno.
 */
int mount_shadow(const char *path);
/* mount_live_root() - is the root a live host directory (--rootfs-bind)? */
bool mount_live_root(void);
/* mount_find_volume_disk() - the device of volume disk @index (by its serial). Return: 0 or
 * -ENODEV. */
int mount_find_volume_disk(uint32_t index, char *dev, size_t len);

/* config.c */
bool agent_valid_hostname(const char *s);
/*
 * agent_configure() - make this guest the sandbox @c describes. With an init,
 * returns in a child that goes on as agentd (PID 1 becomes the init).
 * Return: 0, or -errno with the reason in @why.
 */
int agent_configure(const struct proto_config *c, char *why, size_t len);
/* net.c: loopback up; eth0 configured when CONFIG carries a network. */
int agent_net_setup(const struct proto_config *c, char *why, size_t len);
/* agent_net_down() - take eth0 down: its IPv4 routes and IPv6 addresses go with it. */
void agent_net_down(void);
/*
 * agent_refresh() - a configured guest restored from a saved state becomes
 * the sandbox @c describes: new entropy, clock, hostname, network and files
 * (PROTO_CONFIG_REFRESH); its root and mounts stay. Return: 0 or -errno with @why.
 */
int agent_refresh(const struct proto_config *c, char *why, size_t len);

/* Flushes and quiesces the writable upper before power-off. */
void mount_quiesce(void);
/* agent_cp_main() - agentd run as PROTO_CP_TOOL: "out PATH" or "in DEST". Return: exit status. */
int agent_cp_main(int argc, char **argv);
/* mount_track_volume() - a volume disk mounted at @path: mount_quiesce() makes it clean too. */
void mount_track_volume(const char *path);

/* session.c */
/* Serves the host on the agent port until SHUTDOWN. Return: only on fatal error. */
int agent_serve(int port_fd, uint64_t kernel_ns);

/*
 * hostile.c (test builds only): agentd attacks the host on @port for the
 * session @sid as "__hostile MODE" (@argv) asks; returns when agentd should
 * go on serving.
 */
void hostile_run(int port, uint32_t sid, char **argv);
/* "__hostile no-quiesce": QUIESCE is ignored from then on (the host must give up). */
extern bool hostile_ignore_quiesce;

/* Powers the VM off (with -no-reboot, a reboot makes QEMU exit). */
void agent_poweroff(void) __attribute__((noreturn));

#endif
