/* SPDX-License-Identifier: Apache-2.0 */
/*
 * msb's own seccomp filter for the VMM, stacked under QEMU's `-sandbox on`
 * (the kernel applies every filter; the strictest answer wins). It denies
 * what no VMM of msb needs and what would take a compromised QEMU out of its
 * jail: file handles, mounts, namespaces, ptrace, BPF, keys, modules, set-id
 * modes and device nodes on files it creates. docs/security.md lists it.
 */
#ifndef MSB_VM_SECCOMP_H
#define MSB_VM_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>

/*
 * vmm_seccomp_install() - install the filter on the calling thread; it is
 * inherited across execve. Sets no_new_privs (needed without
 * CAP_SYS_ADMIN). Meant for spawn()'s child just before exec.
 *
 * Set-uid modes are refused everywhere, set-gid modes on every file created
 * (open, creat, mknod). With @setgid_dirs, chmod and mkdir may set the
 * set-gid bit: a directory needs it to pass its group on, and the filter
 * cannot tell a directory from a file; only for a VMM whose groups are the
 * ordinary user's own (docs/security.md). Return: 0 or -errno.
 */
int vmm_seccomp_install(bool setgid_dirs);

/*
 * vmm_seccomp_denied() - the names of the system calls the filter answers
 * with EPERM whatever their arguments, for tests and documentation.
 * Sets *@n. Return: a static array.
 */
const char *const *vmm_seccomp_denied(size_t *n);

#endif
