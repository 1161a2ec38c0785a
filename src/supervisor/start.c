// SPDX-License-Identifier: Apache-2.0
/* How the VM starts: a warm template, a sandbox's saved memory, or a disk image as the root. */
#define _GNU_SOURCE
#include "supervisor/sv.h"

/*
 * Starts the VM from this shape's template (sv->vm set, sv->restored),
 * making the template first if there is none; else leaves sv->vm NULL for a
 * cold boot. A template that fails is a line in runtime.log and a cold boot,
 * never a failed start.
 */
void warm_start(struct sv *sv, struct vm_config *cfg)
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
int state_restore(struct sv *sv, struct vm_config *cfg, struct msb_err **err)
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
		/* Only a sandbox's first start restores memory, and a first start that fails
		 * leaves no sandbox behind (run and create discard it): say so. */
		return msb_err_set(err, EIO,
				   "sandbox %s: the memory of the snapshot it was made from could "
				   "not be restored (%s); the sandbox was not kept, and the "
				   "snapshot's memory is damaged (a snapshot without --full of the "
				   "same sandbox boots from its disk)",
				   sv->spec.name, why);
	}
	sv->restored = true;
	sv->from_state = true;
	log_info("restored the saved guest in %" PRIu64 " ms", now_ms() - t0);
	return 0;
}

/*
 * A disk image as the root: the image itself (locked for this one writer) or,
 * with --disk-snapshot, the sandbox's qcow2 overlay of it (the image then only
 * read, by any number of sandboxes). The image's chain is vetted again at
 * every start (diskchain.h): a name that has come to lead out of the image's
 * directory since create is refused. QEMU gets each node explicitly.
 */
int disk_root(struct sv *sv, struct vm_disk *d, char ***files, struct msb_err **err)
{
	const char *img = sv->spec.disk_image;
	bool snap = sv->spec.disk_snapshot;
	enum dimg_format f;
	size_t k = 0;

	*files = NULL; /* the chain's files come with @d */

	sv->disk_lock = open(img, O_RDONLY | O_CLOEXEC);
	if (sv->disk_lock < 0)
		return msb_err_set(err, errno, "sandbox %s: disk image %s: %s", sv->spec.name, img,
				   strerror(errno));
	if (flock(sv->disk_lock, (snap ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0)
		return msb_err_set(err, EBUSY,
				   "sandbox %s: disk image %s is in use by another sandbox (give "
				   "each sandbox its own copy, or use --disk-snapshot)",
				   sv->spec.name, img);
	if (dimg_format_parse(sv->spec.disk_format, &f) < 0)
		return msb_err_set(err, EINVAL, "sandbox %s: disk format %s", sv->spec.name,
				   sv->spec.disk_format);
	if (dchain_open(img, f, sv->spec.disk_allow, &sv->disk_chain, err) < 0)
		return msb_err_prefix(err, "sandbox %s", sv->spec.name);
	/* The overlay is msb's own; its backing is the image, whatever its header says. */
	if (snap)
		sv->disk_nodes[k++] =
			(struct vm_disk_node){ .path = "disk.qcow2", .format = "qcow2" };
	for (size_t i = 0; i < sv->disk_chain.n; i++, k++) {
		const struct dchain_node *n = &sv->disk_chain.node[i];

		sv->disk_nodes[k] = (struct vm_disk_node){
			.path = n->path,
			.format = dimg_format_name(n->format),
			.data_file = n->data_file,
			.extra = (const char *const *)n->extra,
		};
	}
	*d = (struct vm_disk){ .path = sv->disk_nodes[0].path,
			       .format = sv->disk_nodes[0].format,
			       .serial = PROTO_ROOT_SERIAL,
			       .readonly = false,
			       .chain = sv->disk_nodes,
			       .nchain = k };
	return 0;
}
