#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The workloads of bench/volumes, run by busybox sh on both sides so that every
# side pays the same per-file process costs: on the host as
# `busybox sh volumes-guest.sh DIR SEQ_MIB SIDE` (PATH: busybox applets, git),
# in the guest as /init of the benchmark's initramfs, where it mounts the share
# named by the kernel command line (vol_fs=9p|virtiofs vol_mo=OPTIONS
# vol_seq=MIB vol_side=SIDE arrive as environment variables), runs the same
# workloads on /mnt and reboots (with -no-reboot, QEMU exits). Each workload is bracketed
# by `BEGIN name` and `END name` lines, which bench/volumes stamps with the
# host's clock as they arrive (the guest's clock is jiffies under TCG: 4 ms
# steps, and it loses ticks when the host is busy).
set -e
if [ $$ = 1 ]; then
	export PATH=/bin:/usr/bin HOME=/tmp
	mount -t proc proc /proc
	mount -t sysfs sys /sys
	mount -t devtmpfs dev /dev
	exec < /dev/console > /dev/console 2>&1
	trap 'echo "ERROR workloads failed"; reboot -f' EXIT
	if [ -n "${vol_mo:-}" ]; then
		mount -t "${vol_fs:?}" -o "$vol_mo" share /mnt
	else
		mount -t "${vol_fs:?}" share /mnt
	fi
	dir=/mnt seq_mib=${vol_seq:-256} side=${vol_side:?} guest=1
else
	dir=${1:?usage: volumes-guest.sh DIR SEQ_MIB SIDE} seq_mib=${2:?} side=${3:?} guest=0
fi
# Each side has its own copy of the index (bench/volumes says why).
export GIT_CONFIG_NOSYSTEM=1 GIT_INDEX_FILE="$dir/repo/.git/index.$side"

t() {
	echo "BEGIN $1"
	"$2"
	echo "END $1"
}

s=$(printf '%01023d' 0) # echo adds the newline: 1 KiB a file
# The same loop as small-create, into /dev/null: what the shell itself costs
# on this side (under TCG this shows the emulation overhead every row carries).
noop_loop() {
	i=0
	while [ $i -lt 2000 ]; do
		echo "$s" > /dev/null
		i=$((i + 1))
	done
}
# Fork + exec cost (find, xargs, git and dd are one process each per run).
noop_exec() {
	i=0
	while [ $i -lt 50 ]; do
		/bin/true
		i=$((i + 1))
	done
}
# 2000 files of 1 KiB in one new directory, shell builtins only (no fork a file).
small_create() {
	mkdir "$dir/create"
	i=0
	while [ $i -lt 2000 ]; do
		echo "$s" > "$dir/create/f$i"
		i=$((i + 1))
	done
}
small_stat() { ls -lnR "$dir/repo/tree" > /dev/null; }
small_read() { find "$dir/repo/tree" -type f -print0 | xargs -0 cat > /dev/null; }
git_status() {
	out=$(git -c safe.directory='*' -C "$dir/repo" status --porcelain)
	[ -z "$out" ] || { echo "git status not clean: $out" | head -5; return 1; }
}
seq_write() { dd if=/dev/zero of="$dir/seq" bs=1M count="$seq_mib" conv=fsync 2> /dev/null; }
seq_read() { dd if="$dir/seq" of=/dev/null bs=1M 2> /dev/null; }

t noop-loop noop_loop
t noop-exec noop_exec
t small-create small_create
t small-stat small_stat
t small-read small_read
# git status refreshes the index when the stat data it holds differ from what
# this side sees (inode numbers under multidevs=remap, say) and writes it back;
# one untimed run first, so the timed one is the steady state a user sees on
# the second and later runs, on every side alike.
git_status
t git-status git_status
t seq-write seq_write
# The guest's page cache is dropped before the read, so the data cross the
# transport; the host's page cache stays warm (dropping it needs root and
# disturbs the whole machine), so the host row is a memory copy.
[ $guest = 0 ] || { sync && echo 3 > /proc/sys/vm/drop_caches; }
t seq-read seq_read
if [ $guest = 1 ]; then
	umount /mnt
	trap - EXIT
	echo DONE
	reboot -f
fi
