#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a guest that takes over its QEMU finds, as root and as an ordinary user:
# msb's own seccomp filter and the capabilities left (a stand-in VMM, run by msb
# in the real jail, tries the calls); no set-id file, foreign owner or device
# node planted on the host through a share (real VMs); and, as root, a uid of
# each VMM's own that no other process shares, on a QEMU that dies with its supervisor.
source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs
USER_NAME=msb-e2e
ID_FIRST=1879048192 # the default range, docs/security.md
ID_COUNT=65536

need_root() {
  [ "$(id -u)" = 0 ] || { skip "needs root"; return 1; }
}

# The stand-in VMM, built in a directory everyone can read (the jail binds it in).
build_probe() {
  PROBE_DIR=$(mktemp -d /tmp/msb-e2e-probe.XXXXXX)
  chmod 755 "$PROBE_DIR"
  cc -O1 -o "$PROBE_DIR/jail_probe" "$E2E_ROOT/tests/e2e/jail_probe.c" ||
    { fail "cannot build the stand-in VMM"; return 1; }
  PROBE=$PROBE_DIR/jail_probe
}

# result_of NAME: what the stand-in got for NAME ("EPERM", "OK", ...).
result_of() {
  awk -v n="$1" '$1 == n {print $2; exit}' "$TMP/share/result"
}

# --- item: msb's seccomp filter and capabilities, seen by a stand-in VMM ---------------

test_a_stand_in_vmm_finds_the_filter_and_no_way_out_as_root() {
  need_root || return
  build_probe || return
  local secret root_h secret_h c st
  secret="s3cret-$RANDOM$RANDOM"
  mkdir -p "$TMP/share" "$TMP/private"
  printf '%s\n' "$secret" > "$TMP/private/secret"
  chmod 600 "$TMP/private/secret"
  # Positive control, outside msb: the probe works, file handles reach the host's root and the secret.
  root_h=$("$PROBE" --handle /) || fail "control: name_to_handle_at of / failed outside the jail"
  secret_h=$("$PROBE" --handle "$TMP/private/secret")
  expect_match "control: the host's root opened by handle" "$("$PROBE" --open-handle "$root_h")" " usr "
  expect_eq "control: the secret read by handle" "$("$PROBE" --open-handle "$secret_h")" "$secret"
  echo "$root_h" > "$TMP/share/root.handle"
  echo "$secret_h" > "$TMP/share/secret.handle"
  # A volume: as root, the VMM keeps uid 0 and the file capabilities (the case of the finding).
  MSB_WARM=0 MSB_QEMU=$PROBE timeout 120 "$MSB" run --rootfs "$SQFS" -v "$TMP/share:/v" -- true \
    > "$TMP/probe.out" 2>&1
  [ -f "$TMP/share/result" ] || { fail "the stand-in never ran in the jail"; sed 's/^/      /' "$TMP/probe.out"; return; }
  expect_eq "the stand-in finished" "$(tail -1 "$TMP/share/result")" done
  st=$(grep '^status' "$TMP/share/result")
  expect_match "a seccomp filter is on" "$st" $'Seccomp:\t2'
  expect_match "no_new_privs" "$st" $'NoNewPrivs:\t1'
  # DAC_OVERRIDE (1) and FOWNER (3) only: 0xa.
  expect_match "bounding set: DAC_OVERRIDE and FOWNER only" "$st" $'CapBnd:\t000000000000000a'
  expect_match "effective: DAC_OVERRIDE and FOWNER only" "$st" $'CapEff:\t000000000000000a'
  expect_match "no inheritable capabilities" "$st" $'CapInh:\t0000000000000000'
  expect_match "no ambient capabilities" "$st" $'CapAmb:\t0000000000000000'
  expect_eq "open_by_handle_at of the host's root" "$(result_of open_by_handle_at)" EPERM
  expect_eq "open_by_handle_at of a 0600 file outside the binds" "$(result_of open_by_handle_at_secret)" EPERM
  grep -q "$secret" "$TMP/share/result" && fail "the stand-in read the secret"
  grep -q " lost+found\| home " "$TMP/share/result" && fail "the stand-in listed the host's root"
  for c in name_to_handle_at mount umount2 pivot_root chroot move_mount open_tree fsopen fsmount \
    fsconfig fspick unshare setns ptrace process_vm_readv process_vm_writev bpf perf_event_open \
    userfaultfd keyctl add_key request_key init_module finit_module delete_module kexec_load \
    kexec_file_load reboot swapon swapoff acct syslog personality_bsd clone_newuser x32_getpid; do
    expect_eq "$c" "$(result_of "$c")" EPERM
  done
  # Allowed: what QEMU itself and its libraries need, and the fallbacks.
  expect_eq "personality query" "$(result_of personality_query)" OK
  expect_eq "personality(PER_LINUX)" "$(result_of personality_linux)" OK
  expect_eq "clone3 falls back" "$(result_of clone3)" ENOSYS
  expect_eq "io_uring falls back" "$(result_of io_uring_setup)" ENOSYS
  # Files in the share: plain modes work, set-id modes and devices do not; nobody else's owner.
  expect_eq "create 0644" "$(result_of create_0644)" OK
  expect_eq "chmod 0755" "$(result_of chmod_0755)" OK
  expect_eq "chmod 4755" "$(result_of chmod_4755)" EPERM
  expect_eq "chmod 2755" "$(result_of chmod_2755)" EPERM
  expect_eq "create 4755" "$(result_of create_4755)" EPERM
  expect_eq "mknod of a device" "$(result_of mknod_char)" EPERM
  expect_eq "mkfifo (QEMU would refuse to open it: refused up front)" "$(result_of mknod_fifo)" EPERM
  expect_eq "chown to another uid" "$(result_of chown_other)" EPERM
  expect_eq "host: the file's mode" "$(stat -c '%a %u' "$TMP/share/created")" "755 0"
  [ ! -e "$TMP/share/created-suid" ] || fail "a set-uid file was created"
  [ ! -e "$TMP/share/null" ] || fail "a device node was created"
  rm -rf "$PROBE_DIR"
  expect_no_leftovers
}

# --- item: no set-id bit, foreign owner or device through a share (real VMs) ------------

# The guest's attempts; one line each, "name=exit code".
PLANT='cp /bin/busybox /v/s; chown 0:0 /v/s; chmod 4755 /v/s; echo suid=$?;
chmod 2755 /v/s; echo sgid=$?; touch /v/o; chown 1234:1234 /v/o; echo chown=$?;
mknod /v/null c 1 3; echo mknod=$?; mkfifo /v/fifo 2>/v/fifo.err; echo fifo=$?;
su -s /bin/sh nobody -c "echo x > /v/by-nobody" 2>/dev/null; echo nobody=$?;
echo x > /ro/new; echo ro=$?; echo done'

# check_planted DIR RO-DIR OWNER [sgid]: nothing a guest planted in DIR may give privileges on
# the host. "sgid": an ordinary user's guest may chmod g+s (setgid directories; the group is the
# user's own, docs/security.md).
check_planted() {
  local dir=$1 ro=$2 owner=$3 setid=/6000
  expect_match "guest chmod 4755 refused" "$OUT" $'suid=[1-9]\n'
  if [ "${4:-}" = sgid ]; then
    setid=/4000
    expect_eq "the user's own set-gid bit" "$(stat -c '%a %U %G' "$dir/s")" "2755 $USER_NAME $USER_NAME"
    chmod g-s "$dir/s"
  else
    expect_match "guest chmod 2755 refused" "$OUT" $'sgid=[1-9]\n'
  fi
  expect_match "guest chown to another uid refused" "$OUT" $'chown=[1-9]\n'
  expect_match "guest mknod refused" "$OUT" $'mknod=[1-9]\n'
  expect_match "a guest user may create files" "$OUT" $'nobody=0\n'
  expect_match "a read-only share refuses writes" "$OUT" $'ro=[1-9]\n'
  expect_match "the guest ran to the end" "$OUT" $'done$'
  expect_eq "no set-id file on the host" "$(find "$dir" -perm $setid)" ""
  expect_eq "no device node on the host" "$(find "$dir" -type b -o -type c)" ""
  expect_eq "every file is the invoking user's" "$(find "$dir" ! -uid "$owner" -printf '%p %U\n')" ""
  expect_eq "the copy keeps its plain mode" "$(stat -c %a "$dir/s")" 755
  [ ! -e "$ro/new" ] || fail "a file appeared in the read-only share"
  # mkfifo: QEMU 7.2 refuses to open special files it made (CVE-2023-2861), so it fails, clearly.
  expect_match "mkfifo refused" "$OUT" $'fifo=[1-9]\n'
  expect_match "mkfifo says why" "$(cat "$dir/fifo.err")" "Operation not permitted"
  [ ! -e "$dir/fifo" ] || fail "mkfifo failed yet left $dir/fifo"
}

# share_dirs PARENT [OWNER]: PARENT/v (writable by every guest user) and PARENT/ro.
share_dirs() {
  rm -rf "$1/v" "$1/ro"
  mkdir -p "$1/v" "$1/ro"
  chmod 777 "$1/v"
  [ -z "${2:-}" ] || chown "$2" "$1/v" "$1/ro"
}

test_a_guest_plants_no_set_id_file_through_a_share_as_root() {
  need_root || return
  share_dirs "$TMP"
  msb_capture run --rootfs "$SQFS" -v "$TMP/v:/v" -v "$TMP/ro:/ro:ro" -- sh -c "$PLANT"
  expect_eq "exit code" "$RC" 0
  check_planted "$TMP/v" "$TMP/ro" 0
  expect_no_leftovers
}

test_a_guest_plants_no_set_id_file_through_a_share_as_an_ordinary_user() {
  need_root || return
  local udir
  id "$USER_NAME" > /dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME" 2> /dev/null ||
    { fail "cannot create the test user"; return; }
  udir=$(mktemp -d /tmp/msb-e2e-user.XXXXXX)
  cp "$MSB" "$BUILD/vmlinux" "$BUILD/initrd.cpio" "$SQFS" "$udir/"
  chmod 755 "$udir" "$udir"/*
  mkdir "$udir/home" && chown "$USER_NAME" "$udir/home"
  share_dirs "$udir" "$USER_NAME"
  runuser -u "$USER_NAME" -- env -i PATH=/usr/bin:/bin HOME="/home/$USER_NAME" \
    MSB_HOME="$udir/home" MSB_LIB_DIR="$udir" "$udir/msb" run --rootfs "$udir/rootfs.sqfs" \
    -v "$udir/v:/v" -v "$udir/ro:/ro:ro" -- sh -c "$PLANT" > "$TMP/out" 2> "$TMP/err"
  expect_eq "exit code" "$?" 0
  OUT=$(cat "$TMP/out")
  check_planted "$udir/v" "$udir/ro" "$(id -u "$USER_NAME")" sgid
  rm -rf "$udir"
}

# Not pass/fail: how fast a guest creates small files in a share (compare builds by hand),
# timed by the guest's clock (/proc/uptime, 10 ms steps) around 1000 creates.
test_share_small_file_speed() {
  rm -rf "$TMP/speed" && mkdir -p "$TMP/speed"
  msb_capture run --rootfs "$SQFS" -v "$TMP/speed:/v" -- sh -c \
    'read s _ < /proc/uptime; i=0; while [ $i -lt 1000 ]; do echo $i > /v/f$i; i=$((i+1)); done; read e _ < /proc/uptime; echo "$s $e"'
  expect_eq "exit code" "$RC" 0
  expect_eq "files created" "$(ls "$TMP/speed" | wc -l)" 1000
  echo "    # 1000 small-file creates in a share: $(echo "$OUT" | awk '{printf "%d ms", ($2 - $1) * 1000}')"
  expect_no_leftovers
}

# --- item: a uid of each VMM's own, dies with its supervisor ------------------------------------------

# The QEMU of sandbox $1 (under this MSB_HOME).
qemu_of() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = qemu-system-x86 ] || continue
    case "$(readlink "$p/cwd" 2>/dev/null)" in "$MSB_HOME/sandboxes/$1"*) echo "${p#/proc/}"; return;; esac
  done
}

# can_open_mem USER PID: can USER open /proc/PID/mem (ptrace access)?
can_open_mem() {
  runuser -u "$1" -- sh -c "exec 3< /proc/$2/mem" 2> /dev/null
}

# net_uid_of NAME: the real, effective, saved and filesystem uids of NAME's network process.
net_uid_of() {
  local sv np
  sv=$("$MSB" inspect "$1" --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
  np=$(pgrep -P "$sv" -f '__net' | head -n 1)
  [ -n "$np" ] && awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$np/status"
}

test_each_root_run_vmm_has_its_own_uid_and_dies_with_its_supervisor() {
  need_root || return
  local a b ua ub n ctl= rpid
  for n in ja jb; do
    msb_capture create --name "$n" --rootfs "$SQFS"
    expect_eq "create $n" "$RC" 0
    msb_capture exec "$n" -- echo up
    expect_eq "$n runs" "$OUT" up
  done
  a=$(qemu_of ja) b=$(qemu_of jb)
  [ -n "$a" ] && [ -n "$b" ] || { fail "no QEMU found ($a, $b)"; "$MSB" rm -f ja jb; return; }
  ua=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$a/status")
  ub=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$b/status")
  echo "    # VMM uids: $ua / $ub"
  expect_match "VMM a: one uid for all four" "$ua" '^([0-9]+) \1 \1 \1$'
  expect_match "VMM b: one uid for all four" "$ub" '^([0-9]+) \1 \1 \1$'
  ua=${ua%% *} ub=${ub%% *}
  [ "$ua" != "$ub" ] || fail "both VMMs run as uid $ua"
  [ "$ua" != 65534 ] && [ "$ub" != 65534 ] || fail "a VMM runs as nobody"
  for u in "$ua" "$ub"; do
    [ "$u" -ge "$ID_FIRST" ] && [ "$u" -lt $((ID_FIRST + ID_COUNT)) ] || fail "uid $u is not in the range"
    getent passwd "$u" > /dev/null && fail "uid $u has a passwd entry"
  done
  # Each network process has an id of its own as well, no VMM's: it confines itself
  # while its sandbox's VMM starts, and both picks are made under one lock.
  local na nb
  na=$(net_uid_of ja) nb=$(net_uid_of jb)
  echo "    # network process uids: $na / $nb"
  expect_match "network process a: one uid for all four" "$na" '^([0-9]+) \1 \1 \1$'
  expect_match "network process b: one uid for all four" "$nb" '^([0-9]+) \1 \1 \1$'
  na=${na%% *} nb=${nb%% *}
  [ "$(printf '%s\n' "$ua" "$ub" "$na" "$nb" | sort -u | wc -l)" = 4 ] ||
    fail "the VMMs and network processes share ids: $ua $ub $na $nb"
  for u in "$na" "$nb"; do
    [ "$u" -ge "$ID_FIRST" ] && [ "$u" -lt $((ID_FIRST + ID_COUNT)) ] || fail "uid $u is not in the range"
  done
  expect_match "VMM a: gid like its uid" "$(grep '^Gid:' "/proc/$a/status")" $'^Gid:\t'"$ua"$'\t'"$ua"$'\t'"$ua"$'\t'"$ua"'$'
  # No other process has its uid: nobody cannot open the memory.
  can_open_mem nobody "$a" && fail "nobody opened VMM a's memory"
  can_open_mem nobody "$b" && fail "nobody opened VMM b's memory"
  # Control: nobody can open the memory of a dumpable process of its own uid (the check works).
  runuser -u nobody -- sleep 30 2> /dev/null &
  rpid=$!
  for _ in $(seq 100); do
    ctl=$(pgrep -u nobody -P "$rpid" -x sleep) && break
    sleep 0.05
  done
  [ -n "$ctl" ] || fail "control: no sleep of nobody"
  can_open_mem nobody "$ctl" || fail "control: nobody could not open its own process's memory"
  kill "$ctl" 2> /dev/null
  wait "$rpid" 2> /dev/null
  # Its supervisor killed outright (as a CLI kills one that failed): QEMU goes with it.
  local sv
  sv=$("$MSB" inspect ja --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
  kill -9 "$sv"
  for _ in $(seq 100); do [ -d "/proc/$a" ] || break; sleep 0.1; done
  [ ! -d "/proc/$a" ] || fail "VMM a outlived its supervisor"
  [ -d "/proc/$b" ] || fail "VMM b went too"
  "$MSB" rm -f ja jb > /dev/null
  expect_no_leftovers
}

# A range of two ids: the network process (which starts first and confines itself while
# the VMM boots) and the VMM take one each. With one id the VMM finds none left and the
# start fails, saying so, with nothing left running.
test_the_network_process_and_the_vmm_never_share_an_id_as_root() {
  need_root || return
  local q n
  MSB_VMM_IDS="$ID_FIRST:2" msb_capture create --name pair --rootfs "$SQFS"
  expect_eq "create with two ids" "$RC" 0
  msb_capture exec pair -- echo up
  expect_eq "it runs" "$OUT" up
  q=$(qemu_of pair)
  q=$(awk '/^Uid:/ {print $2}' "/proc/$q/status")
  n=$(net_uid_of pair)
  n=${n%% *}
  echo "    # VMM $q, network process $n"
  [ -n "$q" ] && [ -n "$n" ] && [ "$q" != "$n" ] || fail "VMM ($q) and network process ($n) share an id"
  for u in "$q" "$n"; do
    [ "$u" -ge "$ID_FIRST" ] && [ "$u" -lt $((ID_FIRST + 2)) ] || fail "uid $u is not in the range of two"
  done
  "$MSB" rm -f pair > /dev/null
  MSB_VMM_IDS="$ID_FIRST:1" msb_capture run --rootfs "$SQFS" -- echo up
  expect_eq "one id for two processes: refused" "$RC" 125
  expect_match "the error names the range" "$ERR" "MSB_VMM_IDS|uid"
  expect_no_leftovers
}

test_a_vm_with_a_volume_and_a_disk_image_still_runs_as_root() {
  need_root || return
  partitioned_disk "$TMP/disk.raw" "$FIX/rootfs"
  rm -rf "$TMP/vol" && mkdir -p "$TMP/vol" && echo from-host > "$TMP/vol/in"
  msb_capture run "$TMP/disk.raw" -v "$TMP/vol:/v" -- sh -c 'cat /v/in; echo out > /v/out; echo disk > /root/d; cat /root/d'
  expect_eq "exit code" "$RC" 0
  expect_eq "the guest read, wrote and used its disk" "$OUT" $'from-host\ndisk'
  expect_eq "the host has the file, the user's own" "$(stat -c '%U %a' "$TMP/vol/out") $(cat "$TMP/vol/out")" "root 644 out"
  rm -f "$TMP/disk.raw"
  expect_no_leftovers
}

run_tests
