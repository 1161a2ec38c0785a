#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What the spec promises a new user, as they meet it: logs --json sources, run -d with
# --timeout/--rlimit, disk images of every bootable format, a rootfs without a command,
# create with run's flags, inspect's live figures, and --init-arg.
source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs

# json_get NAME PYTHON-EXPR: evaluates EXPR on `msb inspect --format json NAME` (bound to j).
json_get() {
  "$MSB" inspect --format json "$1" 2> /dev/null |
    python3 -c "import json, sys; j = json.load(sys.stdin); j = j[0] if isinstance(j, list) else j; print($2)"
}

# Waits (up to $3 s) until NAME's status is $2.
wait_status() {
  local i
  for i in $(seq $(($3 * 10))); do
    [ "$(json_get "$1" 'j["status"]')" = "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

test_logs_json_names_every_source() {
  msb_capture create --name logsrc --rootfs "$SQFS"
  expect_eq "create" "$RC" 0
  msb_capture exec logsrc -- sh -c 'echo to-out; echo to-err >&2'
  expect_eq "a plain session" "$OUT|$ERR" "to-out|to-err"
  msb_capture exec -t logsrc -- echo on-tty
  expect_match "a tty session" "$OUT" "on-tty"
  # Each chunk's source, as --json names it, against the one exec.log keeps on disk.
  local got want
  got=$("$MSB" logs --json --source all logsrc | python3 -c '
import json, sys
seen = {}
for line in sys.stdin:
    e = json.loads(line)
    for word in ("to-out", "to-err", "on-tty", "sandbox started"):
        if word in e["d"]:
            seen[word] = e["s"]
print(" ".join(f"{k}={seen.get(k)}" for k in ("to-out", "to-err", "on-tty", "sandbox started")))')
  want=$(python3 -c '
import json, sys
seen = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    for word in ("to-out", "to-err", "on-tty", "sandbox started"):
        if word in e["d"]:
            seen[word] = e["s"]
print(" ".join(f"{k}={seen.get(k)}" for k in ("to-out", "to-err", "on-tty", "sandbox started")))' \
    "$MSB_HOME/sandboxes/logsrc/logs/exec.log")
  expect_eq "exec.log keeps each source" "$want" \
    "to-out=stdout to-err=stderr on-tty=output sandbox started=system"
  expect_eq "--json names each source as exec.log does" "$got" "$want"
  msb_capture rm -f logsrc
  expect_no_leftovers
}

test_detached_run_keeps_timeout_and_rlimit() {
  local start
  start=$SECONDS
  msb_capture run -d --name det --timeout 2s --rlimit nofile=99 --rootfs "$SQFS" -- \
    sh -c 'ulimit -n; echo started; exec sleep 60'
  expect_eq "run -d" "$RC|$OUT" "0|det"
  # The command is killed 2 s after it started: the sandbox ends well before its sleep would.
  wait_status det stopped 45 || fail "the detached command outlived its --timeout ($((SECONDS - start)) s)"
  expect_eq "killed: 128+SIGKILL" "$(json_get det 'j["last_run"]["exit_code"]')" 137
  msb_capture logs det
  expect_eq "the detached command had its --rlimit" "$OUT" $'99\nstarted'
  msb_capture logs --source system det
  expect_match "the log says why it ended" "$OUT" "command timed out after 2s and was killed"
  # Control: without the flags, the limit is the default and the command runs to its end.
  msb_capture run -d --name det2 --rootfs "$SQFS" -- sh -c 'ulimit -n; sleep 3; echo done'
  wait_status det2 stopped 60 || fail "det2 did not end"
  expect_eq "exit code without --timeout" "$(json_get det2 'j["last_run"]["exit_code"]')" 0
  msb_capture logs det2
  expect_eq "without --rlimit, the default limit" "$OUT" $'1024\ndone'
  msb_capture rm -f det det2
  expect_no_leftovers
}

# make_disk FILE: an unpartitioned ext4 image of the busybox tree.
make_disk() {
  mkfs.ext4 -q -F -d "$FIX/rootfs" "$1" 64M
}

test_disk_images_of_every_format_are_written() {
  local fmt img
  command -v qemu-img > /dev/null || { fail "qemu-img missing (qemu-utils)"; return; }
  make_disk "$TMP/base.raw" || { fail "cannot build the disk image"; return; }
  for fmt in raw qcow2 vmdk; do
    img=$TMP/disk.$fmt
    if [ "$fmt" = raw ]; then cp "$TMP/base.raw" "$img"; else qemu-img convert -O "$fmt" "$TMP/base.raw" "$img"; fi
    msb_capture run "$img" -- sh -c "echo kept-$fmt > /root/mark; sync; cat /root/mark"
    expect_eq "$fmt: boots read-write" "$RC|$OUT|$ERR" "0|kept-$fmt|"
    msb_capture run "$img" -- cat /root/mark
    expect_eq "$fmt: the write is in the image" "$OUT" "kept-$fmt"
    qemu-img convert -O raw "$img" "$TMP/check.raw"
    expect_eq "$fmt: the host reads it from the image" \
      "$(debugfs -R 'cat /root/mark' "$TMP/check.raw" 2> /dev/null)" "kept-$fmt"
    rm -f "$img" "$TMP/check.raw"
  done
  rm -f "$TMP/base.raw"
  expect_no_leftovers
}

test_rootfs_without_a_command_starts_the_shell() {
  msb_capture run --rootfs "$SQFS" <<< 'echo "in $0"; exit 7'
  expect_eq "the default shell reads the script on stdin" "$RC|$OUT|$ERR" "7|in /bin/sh|"
  # --shell chooses it: a shell of our own that says so, then is sh.
  msb_capture run --rootfs "$SQFS" --shell /.msb/scripts/mysh \
    --script-raw $'mysh=#!/bin/sh\necho my-shell\nexec /bin/sh "$@"' <<< 'echo "then $0"'
  expect_eq "--shell is the interactive shell" "$RC|$OUT" $'0|my-shell\nthen /bin/sh'
  # On a terminal it is interactive: a prompt, a command, its output.
  tmux_run 100 20 "$MSB run -t --rootfs $SQFS" || return
  tmux_wait '#$' > /dev/null
  tmux send-keys -t "$TMUX_SESSION" 'echo tty-$((6*7))' Enter
  expect_match "an interactive shell on the terminal" "$(tmux_wait tty-42)" "tty-42"
  tmux send-keys -t "$TMUX_SESSION" 'exit 3' Enter
  expect_match "its exit code is run's" "$(tmux_wait rc=)" "rc=3"
  tmux_end
  expect_no_leftovers
}

test_create_takes_the_flags_of_run() {
  msb_capture create --name crl --rlimit nofile=99 --rootfs "$SQFS"
  expect_eq "create --rlimit" "$RC|$ERR" "0|"
  msb_capture exec crl -- sh -c 'ulimit -n'
  expect_eq "every session gets the sandbox's --rlimit" "$OUT" 99
  msb_capture exec --rlimit nofile=50 crl -- sh -c 'ulimit -n'
  expect_eq "a session's own --rlimit wins" "$OUT" 50
  expect_eq "inspect shows it" "$(json_get crl 'j["config"]["rlimits"]')" "['nofile=99']"
  msb_capture stop crl
  msb_capture exec crl -- sh -c 'ulimit -n'
  expect_eq "it holds across stop and start" "$OUT" 99
  msb_capture rm -f crl
  msb_capture create --name crl0 --rootfs "$SQFS"
  msb_capture exec crl0 -- sh -c 'ulimit -n'
  expect_eq "control: without --rlimit, the default" "$OUT" 1024
  msb_capture rm -f crl0
  local flag name
  for flag in "--timeout 5s=--timeout" "-t=--tty" "--tty=--tty" "--detach-keys ctrl-a=--detach-keys"; do
    name=${flag#*=}
    # shellcheck disable=SC2086
    msb_capture create --name crx ${flag%=*} --rootfs "$SQFS"
    expect_eq "${flag%=*}: exit code" "$RC" 125
    expect_one_error_line "$ERR" "create: $name is for 'msb run' only \\(create runs no command; give it to 'msb exec'\\)$"
  done
  msb_capture create --name crx -d --rootfs "$SQFS"
  expect_one_error_line "$ERR" "create: --detach is for 'msb run' only \\(create always returns once the sandbox is up\\)$"
  expect_eq "nothing was made" "$("$MSB" ls -q)" ""
  expect_no_leftovers
}

test_inspect_live_figures_are_real_or_unknown() {
  local pid rss vm_rss
  msb_capture create --name live --rootfs "$SQFS"
  expect_eq "create" "$RC" 0
  pid=$(json_get live 'j["vmm_pid"]')
  rss=$(json_get live 'j["live"]["vmm_rss_bytes"]')
  vm_rss=$(awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$pid/status")
  expect_match "vmm_rss_bytes is a size" "$rss" '^[1-9][0-9]*$'
  # The same process, read twice: within a factor of two of what the kernel says.
  if [[ "$rss" =~ ^[0-9]+$ ]] && [[ "$vm_rss" =~ ^[0-9]+$ ]]; then
    [ "$rss" -gt $((vm_rss / 2)) ] && [ "$rss" -lt $((vm_rss * 2)) ] ||
      fail "vmm_rss_bytes $rss is not the VMM's RSS ($vm_rss)"
  else
    fail "no VmRSS for the VMM pid $pid"
  fi
  expect_match "cpu_ns is a time" "$(json_get live 'j["live"]["cpu_ns"]')" '^[1-9][0-9]*$'
  expect_match "guest memory is known while it runs" \
    "$(json_get live '"%s %s" % (j["live"]["mem_total_bytes"], j["live"]["guest_processes"] > 0)')" '^[1-9][0-9]* True$'
  msb_capture inspect live
  expect_match "text: no negative size" "$OUT" "live.vmm_rss_bytes: [1-9][0-9]*"
  # Paused, the guest cannot answer: its figures are unknown, not stale or zero.
  msb_capture pause live
  expect_eq "pause" "$RC" 0
  expect_eq "paused: the guest's figures are null" \
    "$(json_get live '[j["live"][k] for k in ("mem_total_bytes", "mem_available_bytes", "guest_processes")]')" \
    "[None, None, None]"
  msb_capture inspect live
  expect_match "text: unknown is '-'" "$OUT" "live.mem_total_bytes: -"
  msb_capture metrics --format json live
  expect_eq "metrics: unknown memory is null" \
    "$(printf '%s' "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["memory_bytes"])')" None
  msb_capture resume live
  expect_match "resumed: known again" "$(json_get live 'j["live"]["mem_total_bytes"]')" '^[1-9][0-9]*$'
  msb_capture rm -f live
  expect_no_leftovers
}

test_init_args_are_appended_to_the_init() {
  msb_capture run --init /bin/sh --init-arg -c \
    --init-arg 'echo "$0|$1" > /tmp/init.mark; exec sleep 1000' --init-arg zero --init-arg one \
    --rootfs "$SQFS" -- sh -c 'for i in $(seq 200); do [ -s /tmp/init.mark ] && break; sleep 0.1; done
      cat /tmp/init.mark; cat /proc/1/comm'
  expect_eq "argv is the init, then the --init-args" "$RC|$OUT|$ERR" $'0|zero|one\nsleep|'
  msb_capture create --name initok --init /bin/sh --init-arg -c --init-arg 'exec sleep 1000' --rootfs "$SQFS"
  expect_eq "create with --init-arg -c CMD" "$RC|$ERR" "0|"
  msb_capture exec initok -- sh -c "tr '\\0' ' ' < /proc/1/cmdline"
  expect_eq "PID 1 runs the command" "$OUT" "sleep 1000 "
  msb_capture rm -f initok
  # An init the guest cannot run fails create, says why, and leaves nothing.
  msb_capture create --name initbad --init /.msb/scripts/junk --script-raw 'junk=not a program' \
    --rootfs "$SQFS"
  expect_eq "create: exit code" "$RC" 125
  expect_one_error_line "$ERR" "sandbox initbad: config: init /.msb/scripts/junk: cannot run it: Exec format error$"
  expect_eq "nothing half-made is kept" "$("$MSB" ls -q)" ""
  expect_no_leftovers
}

run_tests
