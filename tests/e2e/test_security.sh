#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The VMM's confinement, checked from the host while a sandbox runs: seccomp,
# no_new_privs, no capabilities, its own namespaces, and a root that shows none
# of the caller's files; as root and as an ordinary user.
source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs
USER_NAME=msb-e2e

# The QEMU process of a sandbox under MSB_HOME $1 (its working directory is the sandbox's).
qemu_of() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = qemu-system-x86 ] || continue
    case "$(readlink "$p/cwd" 2>/dev/null)" in "$1"/sandboxes/*) echo "${p#/proc/}"; return;; esac
  done
}

# Starts a run that sleeps; sets QEMU_PID (and RUN_PID). Uses $1 to run msb (a prefix command).
start_sleeper() {
  local i
  "$@" run --rootfs "$SQFS_RUN" -- sleep 30 > "$TMP/sleeper.out" 2>&1 &
  RUN_PID=$!
  QEMU_PID=
  for i in $(seq 600); do
    QEMU_PID=$(qemu_of "$MSB_HOME_RUN")
    [ -n "$QEMU_PID" ] && grep -q "sandbox ready" "$MSB_HOME_RUN"/sandboxes/*/logs/runtime.log 2>/dev/null && break
    sleep 0.1
  done
  [ -n "$QEMU_PID" ] || { fail "no QEMU process found"; sed 's/^/      /' "$TMP/sleeper.out"; }
}

# Two Ctrl-Cs to msb itself (runuser does not pass signals on): msb returns at once.
stop_sleeper() {
  pkill -INT -f "msb run --rootfs $SQFS_RUN -- sleep 30"
  sleep 0.3
  pkill -INT -f "msb run --rootfs $SQFS_RUN -- sleep 30"
  wait "$RUN_PID" 2>/dev/null
}

# The checks that hold whoever runs msb. $1: the uid QEMU must run as.
check_confined() {
  local want_uid=$1 st root_list
  st=$(cat "/proc/$QEMU_PID/status")
  expect_match "seccomp filter on" "$st" $'\nSeccomp:\t2\n'
  expect_match "no_new_privs" "$st" $'\nNoNewPrivs:\t1\n'
  expect_match "no effective capabilities" "$st" $'\nCapEff:\t0000000000000000\n'
  expect_match "no permitted capabilities" "$st" $'\nCapPrm:\t0000000000000000\n'
  expect_match "runs as uid $want_uid" "$st" $'\nUid:\t'"$want_uid"$'\t'"$want_uid"$'\t'
  for ns in mnt pid net ipc uts; do
    [ "$(readlink "/proc/$QEMU_PID/ns/$ns")" != "$(readlink "/proc/self/ns/$ns")" ] ||
      fail "QEMU shares the caller's $ns namespace"
  done
  root_list=$(cd "/proc/$QEMU_PID/root" && find . -xdev -maxdepth 8 -not -path './usr*' | sort)
  # Only system paths, and the first components of where the sandbox and the kernel live.
  local allowed="bin dev etc lib lib32 lib64 libx32 sbin usr $(echo "$MSB_HOME_RUN" | cut -d/ -f2) $(echo "$KERNEL_DIR" | cut -d/ -f2)"
  for e in $(ls "/proc/$QEMU_PID/root"); do
    [[ " $allowed " == *" $e "* ]] || fail "unexpected /$e in QEMU's root"
  done
  expect_eq "QEMU's /dev" "$(ls "/proc/$QEMU_PID/root/dev" | tr '\n' ' ')" "null random urandom zero "
  [ ! -e "/proc/$QEMU_PID/root/proc/self" ] || fail "QEMU sees a /proc"
  [ ! -e "/proc/$QEMU_PID/root/sys/kernel" ] || fail "QEMU sees /sys"
  [ ! -e "/proc/$QEMU_PID/root/etc/passwd" ] || fail "QEMU sees /etc/passwd"
  [ ! -e "/proc/$QEMU_PID/root/home" ] || fail "QEMU sees /home"
  [ ! -e "/proc/$QEMU_PID/root/root" ] || fail "QEMU sees /root"
  [ ! -e "/proc/$QEMU_PID/root$MSB_HOME_RUN/db" ] || fail "QEMU sees the msb database"
  [ ! -e "/proc/$QEMU_PID/root$MSB_HOME_RUN/config.json" ] || fail "QEMU sees config.json"
  if printf '%s\n' "$root_list" | grep -E '/(config\.json|relay\.sock|lock|logs)$'; then
    fail "QEMU sees the sandbox's own state files"
  fi
  printf '%s\n' "$root_list" | grep -q '/upper.ext4$\|/layers.vmdk$' || fail "QEMU's disks are not visible to it"
  expect_match "no file size beyond its disks" "$(cat "/proc/$QEMU_PID/limits")" 'Max core file size +0 +0'
  expect_eq "network interfaces in QEMU's namespace" \
    "$(awk 'NR > 2 {print $1}' "/proc/$QEMU_PID/net/dev" | tr '\n' ' ')" "lo: "
}

test_qemu_is_confined_as_root() {
  [ "$(id -u)" = 0 ] || { skip "not root (the ordinary-user test covers a user)"; return; }
  MSB_HOME_RUN=$MSB_HOME SQFS_RUN=$SQFS KERNEL_DIR=$BUILD
  start_sleeper "$MSB"
  # An id of its own from the VMM range (1879048192 + 65536), never nobody's.
  local uid
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$QEMU_PID/status")
  [ "$uid" -ge 1879048192 ] && [ "$uid" -lt $((1879048192 + 65536)) ] ||
    fail "QEMU runs as uid $uid, not one of the VMM range"
  check_confined "$uid"
  stop_sleeper
  expect_no_leftovers
}

# An ordinary user: msb, the guest kernel and a fixture copied where that user can read them.
setup_user() {
  id "$USER_NAME" > /dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME" 2> /dev/null ||
    { fail "cannot create the test user $USER_NAME"; return 1; }
  UDIR=$(mktemp -d /tmp/msb-e2e-user.XXXXXX)
  chmod 755 "$UDIR"
  cp "$MSB" "$BUILD/vmlinux" "$BUILD/initrd.cpio" "$SQFS" "$UDIR/"
  chmod 755 "$UDIR"/*
  mkdir -p "$UDIR/home" && chown "$USER_NAME" "$UDIR/home"
}

as_user() {
  runuser -u "$USER_NAME" -- env -i PATH=/usr/bin:/bin HOME="/home/$USER_NAME" \
    MSB_HOME="$UDIR/home" MSB_LIB_DIR="$UDIR" "$@"
}

test_qemu_is_confined_for_an_ordinary_user() {
  [ "$(id -u)" = 0 ] || { skip "needs root to create the test user"; return; }
  setup_user || return
  local out rc
  out=$(as_user "$UDIR/msb" run --rootfs "$UDIR/rootfs.sqfs" -- sh -c 'echo hello; id -u')
  rc=$?
  expect_eq "run as an ordinary user" "$rc" 0
  expect_eq "output as an ordinary user" "$out" $'hello\n0'
  MSB_HOME_RUN=$UDIR/home SQFS_RUN=$UDIR/rootfs.sqfs KERNEL_DIR=$UDIR
  start_sleeper as_user "$UDIR/msb"
  check_confined "$(id -u "$USER_NAME")"
  [ "$(readlink "/proc/$QEMU_PID/ns/user")" != "$(readlink /proc/self/ns/user)" ] ||
    fail "an ordinary user's QEMU shares the host's user namespace"
  stop_sleeper
  [ -z "$(ls "$UDIR/home/sandboxes" 2>/dev/null)" ] || fail "sandbox left behind by the ordinary user"
  rm -rf "$UDIR"
}

test_unreadable_shared_rootfs_is_refused_as_root() {
  [ "$(id -u)" = 0 ] || { skip "not root: QEMU runs as the caller"; return; }
  cp "$SQFS" "$TMP/private.sqfs"
  chmod 600 "$TMP/private.sqfs"
  ln "$TMP/private.sqfs" "$TMP/private-link.sqfs"
  msb_capture run --rootfs "$TMP/private.sqfs" -- true
  expect_eq "exit code" "$RC" 125
  expect_one_error_line "$ERR" "rootfs .*private.sqfs: not readable by QEMU, which runs as an unprivileged uid of its own \(make it world-readable: chmod o\+r\)"
  expect_eq "the image keeps its owner" "$(stat -c %u "$TMP/private.sqfs")" 0
  expect_eq "and its mode" "$(stat -c %a "$TMP/private.sqfs")" 600
  # The control: the same file, once readable by all, runs.
  chmod 644 "$TMP/private.sqfs"
  msb_capture run --rootfs "$TMP/private.sqfs" -- echo readable
  expect_eq "readable: exit code" "$RC" 0
  expect_eq "readable: output" "$OUT" readable
  rm -f "$TMP/private.sqfs" "$TMP/private-link.sqfs"
  expect_no_leftovers
}

test_jail_off_is_logged() {
  local out
  MSB_JAIL=0 "$MSB" run --log-level debug --rootfs "$SQFS" -- true 2> "$TMP/err"
  expect_eq "exit code" "$?" 0
  expect_match "runtime.log says the VMM is not jailed" "$(cat "$TMP/err")" "without its namespaces"
  "$MSB" run --log-level debug --rootfs "$SQFS" -- true 2> "$TMP/err"
  expect_eq "exit code, jailed" "$?" 0
  [[ "$(cat "$TMP/err")" != *"without its namespaces"* ]] || fail "a jailed VMM is logged as not jailed"
  expect_match "runtime.log says the VMM is confined" "$(cat "$TMP/err")" "vmm confined: own namespaces"
  expect_no_leftovers
}

run_tests
