/* SPDX-License-Identifier: Apache-2.0 */
/* Shared declarations of agentd, the guest's PID 1. */
#ifndef MSB_AGENT_AGENT_H
#define MSB_AGENT_AGENT_H

#include <stdbool.h>
#include <stdint.h>

/* Boot parameters the host puts on the kernel command line (msb.*). */
struct boot_params {
	bool upper_disk;   /* msb.upper=disk: ext4 on the second disk */
	char hostname[65]; /* msb.hostname= */
	bool poweroff;	   /* msb.poweroff: power off at once (boot benchmark) */
};

void alog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mount.c */
int boot_parse_cmdline(const char *cmdline, struct boot_params *bp);
int mount_early(void);
/* Assembles the overlay root and switches into it. Return: 0 or -errno. */
int mount_root(const struct boot_params *bp);
/* Flushes and quiesces the writable upper before power-off. */
void mount_quiesce(void);

/* session.c */
/* Serves the host on the agent port until SHUTDOWN. Return: only on fatal error. */
int agent_serve(int port_fd, uint64_t kernel_ns);

/*
 * hostile.c (test builds only): agentd attacks the host on @port for the
 * session @sid as "__hostile MODE" (@argv) asks; returns when agentd should
 * go on serving.
 */
void hostile_run(int port, uint32_t sid, char **argv);

/* Powers the VM off (with -no-reboot, a reboot makes QEMU exit). */
void agent_poweroff(void) __attribute__((noreturn));

#endif
