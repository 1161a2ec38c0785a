// SPDX-License-Identifier: Apache-2.0
/* Accelerator choice: hardware KVM when it can run a normal guest, else TCG. */
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *vm_accel_name(enum vm_accel a)
{
	return a == VM_ACCEL_KVM ? "kvm" : "tcg";
}

/* Return: 0 if KVM is usable; otherwise -errno and a reason in @why. */
static int kvm_usable(char *why, size_t len)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;

		snprintf(why, len, "/dev/kvm: %s%s", strerror(e),
			 e == EACCES ? " (add your user to the kvm group)" : "");
		return -e;
	}
	close(fd);
	/* PVM and other paravirtual KVMs cannot run an unmodified guest kernel. */
	if (access("/sys/module/kvm_intel", F_OK) == 0 ||
	    access("/sys/module/kvm_amd", F_OK) == 0) {
		snprintf(why, len, "/dev/kvm backed by %s",
			 access("/sys/module/kvm_intel", F_OK) == 0 ? "kvm_intel" : "kvm_amd");
		return 0;
	}
	snprintf(why, len, "/dev/kvm is not backed by kvm_intel or kvm_amd%s",
		 access("/sys/module/kvm_pvm", F_OK) == 0 ? " (kvm_pvm cannot run a normal guest)"
							  : "");
	return -ENODEV;
}

int vm_accel_detect(enum vm_accel *out, char *why, size_t why_len, struct msb_err **err)
{
	const char *env = getenv("MSB_ACCEL");

	if (env && *env) {
		if (strcmp(env, "tcg") == 0) {
			*out = VM_ACCEL_TCG;
			snprintf(why, why_len, "MSB_ACCEL=tcg");
			return 0;
		}
		if (strcmp(env, "kvm") != 0)
			return msb_err_set(err, EINVAL, "MSB_ACCEL=%s: expected kvm or tcg", env);
		/* Forced: only insist that the device opens; the user knows the host. */
		int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

		if (fd < 0)
			return msb_err_sys(err, errno, "MSB_ACCEL=kvm: /dev/kvm");
		close(fd);
		*out = VM_ACCEL_KVM;
		snprintf(why, why_len, "MSB_ACCEL=kvm");
		return 0;
	}
	*out = kvm_usable(why, why_len) == 0 ? VM_ACCEL_KVM : VM_ACCEL_TCG;
	return 0;
}

static bool hardware_kvm(void)
{
	return access("/sys/module/kvm_intel", F_OK) == 0 ||
	       access("/sys/module/kvm_amd", F_OK) == 0;
}

void vm_accel_warn(enum vm_accel accel, const char *why)
{
	const char *env = getenv("MSB_ACCEL");
	int fd;

	(void)why;
	if (accel != VM_ACCEL_TCG || (env && *env) || !hardware_kvm())
		return;
	/* The only fallback the user can fix: hardware KVM this user may not open. */
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return;
	}
	if (errno == EACCES || errno == EPERM)
		fprintf(stderr,
			"msb: /dev/kvm: permission denied; running under software emulation, "
			"which is much slower (add your user to the kvm group)\n");
}
