#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# msb run --rootfs: a real VM boots and runs the command; output, exit codes and errors as users see them.
source "$(dirname "$0")/lib.sh"
ROOTFS=$FIX/rootfs
SQFS=$FIX/rootfs.sqfs
# A VM boot under TCG beside other busy VMs can take a minute: waits that include one get
# minutes, and still end (and fail) if the condition never comes.
BOOT_S=180

test_echo_from_directory_rootfs() {
  msb_capture run --rootfs "$ROOTFS" -- echo hello from the sandbox
  expect_eq "exit code" "$RC" 0
  expect_eq "stdout" "$OUT" "hello from the sandbox"
  expect_eq "stderr" "$ERR" ""
  expect_no_leftovers
}

test_squashfs_rootfs_and_exit_codes() {
  local code
  for code in 0 1 42; do
    msb_capture run --rootfs "$SQFS" -- sh -c "echo ran; exit $code"
    expect_eq "exit code $code" "$RC" "$code"
    expect_eq "exit code $code: output" "$OUT|$ERR" "ran|"
  done
  expect_no_leftovers
}

test_stdout_and_stderr_stay_separate() {
  msb_capture run --rootfs "$SQFS" -- sh -c 'echo to-out; echo to-err >&2; echo more-out'
  expect_eq "stdout" "$OUT" $'to-out\nmore-out'
  expect_eq "stderr" "$ERR" "to-err"
  expect_no_leftovers
}

test_stdin_is_forwarded_and_closed() {
  local out
  out=$(printf 'a\nb\n' | "$MSB" run --rootfs "$SQFS" -- wc -l)
  expect_eq "exit code" "$?" 0
  expect_eq "wc -l of piped stdin" "$(echo $out)" "2"
  expect_no_leftovers
}

test_open_stdin_does_not_hang_a_command_that_ignores_it() {
  local writer pid
  # The writer keeps the pipe open until the test ends: a run that waits for stdin's EOF
  # never ends, and is stopped after a deadline that leaves room for a loaded boot.
  mkfifo "$TMP/stdin.fifo"
  (exec sleep 1000) > "$TMP/stdin.fifo" &
  writer=$!
  "$MSB" run --rootfs "$SQFS" -- echo "done" < "$TMP/stdin.fifo" > "$TMP/stdin.out" 2>&1 &
  pid=$!
  wait_exit "$pid" $BOOT_S
  expect_eq "exit code" "$?" 0
  expect_eq "stdout" "$(cat "$TMP/stdin.out")" "done"
  expect_eq "the writer still holds stdin open" "$(running "$writer" && echo yes)" yes
  kill "$writer"
  wait "$writer" 2> /dev/null
  rm -f "$TMP/stdin.fifo"
  expect_no_leftovers
}

test_ten_mib_of_stdout_arrives_intact() {
  local guest host
  # The guest prints its own checksum on stderr; the host checks what arrived.
  host=$(
    set -o pipefail
    "$MSB" run --rootfs "$SQFS" -- sh -c \
      'head -c 10485760 /dev/urandom > /tmp/blob; sha256sum < /tmp/blob >&2; cat /tmp/blob' \
      2> "$TMP/guest-sum" | sha256sum | cut -d' ' -f1
  )
  expect_eq "exit code" "$?" 0
  guest=$(cut -d' ' -f1 < "$TMP/guest-sum")
  expect_match "guest checksum" "$guest" '^[0-9a-f]{64}$'
  expect_eq "sha256 of 10 MiB stdout" "$host" "$guest"
  expect_no_leftovers
}

test_ten_mib_of_stdin_arrives_intact() {
  local guest host
  head -c 10485760 /dev/urandom > "$TMP/blob"
  host=$(sha256sum < "$TMP/blob" | cut -d' ' -f1)
  guest=$(
    set -o pipefail
    "$MSB" run --rootfs "$SQFS" -- sha256sum < "$TMP/blob" | cut -d' ' -f1
  )
  expect_eq "exit code" "$?" 0
  expect_eq "sha256 of 10 MiB stdin" "$guest" "$host"
  expect_no_leftovers
}

test_env_workdir_and_user_apply() {
  msb_capture run --rootfs "$SQFS" -e FOO=bar -e "SPACED=a b" -w /work/dir -u app -- \
    sh -c 'echo "$FOO|$SPACED"; pwd; id -u; id -g; id -G; echo "$HOME"'
  expect_eq "exit code" "$RC" 0
  expect_eq "stdout" "$OUT" $'bar|a b\n/work/dir\n1000\n1000\n1000 50\n/home/app'
  msb_capture run --rootfs "$SQFS" -u 1234:4321 -- sh -c 'id -u; id -g'
  expect_eq "numeric uid:gid: exit code" "$RC" 0
  expect_eq "numeric uid:gid" "$OUT" $'1234\n4321'
  FROM_HOST=yes msb_capture run --rootfs "$SQFS" -e FROM_HOST -- sh -c 'echo $FROM_HOST'
  expect_eq "-e KEY copies the host value" "$OUT" "yes"
  expect_no_leftovers
}

test_guest_defaults() {
  msb_capture run --rootfs "$SQFS" -- sh -c 'echo $PATH; echo $HOME; pwd; hostname; cat /proc/1/comm; mount | grep -c " / "'
  expect_eq "exit code" "$RC" 0
  expect_match "default PATH, HOME, cwd, hostname" "$OUT" \
    $'^/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/root\n/\nmsb-[0-9a-f]{8}\ninit\n1$'
  expect_no_leftovers
}

test_cpus_and_memory_are_applied() {
  msb_capture run --rootfs "$SQFS" -c 2 -m 256M -- sh -c 'nproc; grep MemTotal /proc/meminfo'
  expect_eq "exit code" "$RC" 0
  expect_match "2 cpus, ~256 MiB" "$OUT" $'^2\nMemTotal: +2[0-9]{5} kB$'
  expect_no_leftovers
}

test_rlimit_applies() {
  msb_capture run --rootfs "$SQFS" --rlimit nofile=256:512 -- sh -c 'ulimit -n; ulimit -Hn'
  expect_eq "exit code" "$RC" 0
  expect_eq "nofile soft/hard" "$OUT" $'256\n512'
  expect_no_leftovers
}

test_disk_backed_upper_holds_more_than_memory() {
  # tmpfs upper: bounded by guest memory
  msb_capture run -m 128M --rootfs "$SQFS" -- sh -c 'dd if=/dev/zero of=/big bs=1M count=160 2>/dev/null; echo dd=$?'
  expect_eq "tmpfs upper fills up" "$RC|$OUT" "0|dd=1"
  # ext4 upper on a sparse disk: bounded by the disk
  msb_capture run -m 128M --oci-upper-size 1G --rootfs "$SQFS" -- \
    sh -c 'dd if=/dev/zero of=/big bs=1M count=160 2>/dev/null; echo dd=$?; wc -c < /big; df -m / | awk "NR==2 {print \$2}"'
  expect_eq "ext4 upper: exit code" "$RC" 0
  expect_match "ext4 upper takes 160 MiB; / is the 1G disk" "$OUT" $'^dd=0\n167772160\n(9[5-9][0-9]|10[0-2][0-9])$'
  msb_capture run --oci-upper-size 10M --rootfs "$SQFS" -- true
  expect_eq "too small an upper: exit code" "$RC" 125
  expect_one_error_line "$ERR" 'invalid --oci-upper-size "10M"'
  expect_no_leftovers
}

test_timeout_kills_the_command() {
  local pid t0 t1 rc el
  # Timed from when the command runs (it says so), not from the start: a boot is no part of it.
  t0=$EPOCHREALTIME
  "$MSB" run --rootfs "$SQFS" --timeout 2s -- sh -c 'echo started; exec sleep 100' \
    > "$TMP/to.out" 2> "$TMP/to.err" &
  pid=$!
  wait_for "$TMP/to.out" '^started$' $BOOT_S || fail "the command never started"
  t1=$EPOCHREALTIME
  wait_exit "$pid" 60
  rc=$?
  expect_eq "exit code of a killed command" "$rc" 137
  expect_one_error_line "$(cat "$TMP/to.err")" "command timed out after 2s and was killed$"
  # Not before 2 s (even counting the boot), and long before sleep's 100 s would end.
  el=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print int(b - a) }')
  [ "$el" -ge 2 ] || fail "the run ended after $el s, before its timeout"
  el=$(awk -v a="$t1" -v b="$EPOCHREALTIME" 'BEGIN { print int(b - a) }')
  echo "    # timeout: exit $el s after the command started"
  [ "$el" -lt 15 ] || fail "timeout took $el s after the command started"
  expect_no_leftovers
}

test_sigint_is_forwarded_to_the_command() {
  "$MSB" run --rootfs "$SQFS" -- sh -c 'trap "echo got-int; exit 7" INT; echo ready; sleep 100 & wait' \
    > "$TMP/sig.out" 2>&1 &
  local pid=$!
  wait_for "$TMP/sig.out" '^ready$' $BOOT_S || fail "the command never started"
  kill -INT $pid
  wait_exit $pid 60
  expect_eq "exit code from the trap" "$?" 7
  expect_eq "output" "$(cat "$TMP/sig.out")" $'ready\ngot-int'
  expect_no_leftovers
}

test_stopping_the_sandbox_is_graceful() {
  # SIGTERM to the sandbox (its supervisor) is `docker stop`: the command gets
  # SIGTERM, its last output and exit status still reach the user.
  "$MSB" run --rootfs "$SQFS" -- sh -c 'trap "echo got-term; exit 7" TERM; echo up; sleep 100 & wait' \
    > "$TMP/stop.out" 2>&1 &
  local pid=$! i sv=
  wait_for "$TMP/stop.out" '^up$' $BOOT_S || fail "the command never started"
  # This test's own supervisor: the one working in this suite's MSB_HOME.
  for i in $(pgrep -f "msb __supervise .*--attached"); do
    case "$(readlink "/proc/$i/cwd")" in "$MSB_HOME"/*) sv=$i ;; esac
  done
  if [ -z "$sv" ]; then
    fail "no supervisor found"
    kill -INT $pid
  else
    kill -TERM "$sv"
  fi
  wait_exit $pid 60
  expect_eq "exit status from the trap" "$?" 7
  expect_eq "output" "$(cat "$TMP/stop.out")" $'up\ngot-term'
  expect_no_leftovers
}

test_tty_mode_under_a_pty() {
  local out
  tmux_run 100 30 "$MSB run -t --rootfs $SQFS -- sh -c 'tty; stty size; echo \$TERM; echo err >&2'"
  out=$(tmux_wait 'rc=' $BOOT_S)
  expect_match "pty, size, TERM, merged stderr" "$out" $'/dev/pts/0\n30 100\nxterm\nerr\nrc=0'
  tmux_end
  expect_no_leftovers
}

test_tty_ctrl_c_interrupts_the_command() {
  local out
  tmux_run 80 24 "$MSB run -t --rootfs $SQFS -- sh -c 'trap \"echo got-int; exit 9\" INT; echo ready; while :; do sleep 1; done'"
  tmux_wait '^ready' $BOOT_S > /dev/null
  tmux send-keys -t "$TMUX_SESSION" C-c
  out=$(tmux_wait 'rc=' 60)
  tmux_end
  expect_match "trap ran and msb exited with its status" "$out" $'got-int.*rc=9'
  expect_no_leftovers
}

test_four_concurrent_runs() {
  local i pids=()
  for i in 1 2 3 4; do
    "$MSB" run --rootfs "$SQFS" -- sh -c "echo run-$i; exit $i" > "$TMP/c$i" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3 4; do
    wait "${pids[$((i - 1))]}"
    expect_eq "exit code of run $i" "$?" "$i"
    expect_eq "output of run $i" "$(cat "$TMP/c$i")" "run-$i"
  done
  expect_no_leftovers
}

# The sandbox is gone before a slow reader took the last output: all of it
# still arrives, and the exit code with it.
test_output_outlives_the_sandbox() {
  # The reader starts once the sandbox's directory came and went (the VM ended and was
  # cleaned up): what the pipe could not take then was still held by msb.
  "$MSB" run --rootfs "$SQFS" -- sh -c 'head -c 300000 /dev/zero; exit 3' 2> "$TMP/slow.err" |
    {
      end=$((SECONDS + BOOT_S))
      until [ -n "$(ls -A "$MSB_HOME/sandboxes" 2> /dev/null)" ] || [ $SECONDS -ge $end ]; do sleep 0.05; done
      until [ -z "$(ls -A "$MSB_HOME/sandboxes" 2> /dev/null)" ] || [ $SECONDS -ge $end ]; do sleep 0.05; done
      [ $SECONDS -lt $end ] && echo gone > "$TMP/slow.gone"
      wc -c
    } > "$TMP/slow.out"
  expect_eq "exit code" "${PIPESTATUS[0]}" 3
  expect_eq "the sandbox was gone before the reader read" "$(cat "$TMP/slow.gone" 2> /dev/null)" gone
  expect_eq "bytes" "$(tr -d ' ' < "$TMP/slow.out")" 300000
  expect_eq "stderr" "$(cat "$TMP/slow.err")" ""
  expect_no_leftovers
}

test_command_not_found_is_127() {
  msb_capture run --rootfs "$SQFS" -- no-such-command arg
  expect_eq "exit code" "$RC" 127
  expect_one_error_line "$ERR" 'exec: "no-such-command": executable file not found in \$PATH'
  expect_no_leftovers
}

test_not_executable_is_126() {
  msb_capture run --rootfs "$SQFS" -- /etc/passwd
  expect_eq "exit code" "$RC" 126
  expect_one_error_line "$ERR" 'exec: "/etc/passwd": Permission denied'
  expect_no_leftovers
}

test_bad_user_is_125() {
  msb_capture run --rootfs "$SQFS" -u nosuchuser -- id
  expect_eq "exit code" "$RC" 125
  expect_one_error_line "$ERR" 'unable to find user nosuchuser: no matching entries in passwd file'
  msb_capture run --rootfs "$SQFS" -u app:nosuchgroup -- id
  expect_eq "exit code (group)" "$RC" 125
  expect_one_error_line "$ERR" 'unable to find group nosuchgroup'
  expect_no_leftovers
}

test_missing_rootfs() {
  msb_capture run --rootfs "$TMP/does-not-exist" -- true
  expect_eq "exit code" "$RC" 125
  expect_one_error_line "$ERR" "rootfs $TMP/does-not-exist: No such file or directory"
  echo "not a filesystem" > "$TMP/junk.img"
  msb_capture run --rootfs "$TMP/junk.img" -- true
  expect_eq "exit code (junk file)" "$RC" 125
  expect_one_error_line "$ERR" "rootfs $TMP/junk.img: not a directory or a squashfs image"
  expect_no_leftovers
}

test_bad_flag_values() {
  msb_capture run --rootfs "$SQFS" -m 12X -- true
  expect_eq "exit code (memory)" "$RC" 125
  expect_one_error_line "$ERR" 'invalid memory size "12X" \(use a number with a unit, e.g. 512M or 1G\)'
  msb_capture run --rootfs "$SQFS" -m 10M -- true
  expect_eq "exit code (small memory)" "$RC" 125
  expect_one_error_line "$ERR" 'memory size 10M is too small \(the minimum is 64M\)$'
  msb_capture run --rootfs "$SQFS" -c 0 -- true
  expect_eq "exit code (cpus)" "$RC" 125
  expect_one_error_line "$ERR" 'invalid --cpus "0"'
  msb_capture run --rootfs "$SQFS" --timeout soon -- true
  expect_eq "exit code (timeout)" "$RC" 125
  expect_one_error_line "$ERR" 'invalid --timeout "soon"'
  msb_capture run --rootfs "$SQFS" --no-such-flag -- true
  expect_eq "exit code (unknown flag)" "$RC" 125
  expect_one_error_line "$ERR" 'run: unknown flag --no-such-flag'
  # The positive control: the same flags, with good values, run.
  msb_capture run --rootfs "$SQFS" -m 64M -c 1 --timeout 60s -- echo ok
  expect_eq "good values run" "$RC|$OUT|$ERR" "0|ok|"
  expect_no_leftovers
}

test_qemu_missing_from_path() {
  mkdir -p "$TMP/empty-path"
  PATH=$TMP/empty-path "$MSB" run --rootfs "$SQFS" -- true 2> "$TMP/err"
  expect_eq "exit code" "$?" 125
  expect_one_error_line "$(cat "$TMP/err")" 'qemu-system-x86_64 not found in PATH \(install qemu-system-x86\)'
  MSB_QEMU=$TMP/no-such-qemu msb_capture run --rootfs "$SQFS" -- true
  expect_eq "exit code (MSB_QEMU)" "$RC" 125
  # Today's line blames PATH although MSB_QEMU named the program (reported); one line, 125.
  expect_one_error_line "$ERR" 'qemu-system-x86_64 not found in PATH \(install qemu-system-x86\)$'
  expect_no_leftovers
}

test_no_state_left_after_runs() {
  # Runs ending every way a run ends must each leave MSB_HOME/sandboxes empty. The first
  # shows, while it runs, that its sandbox lives there: so the empty directory at the end
  # means the runs cleaned up, not that we looked in the wrong place (or at nothing).
  local pid dirs hold
  # The first run waits for a line on stdin: it runs until the test has looked.
  mkfifo "$TMP/state.fifo"
  "$MSB" run --rootfs "$SQFS" -- sh -c 'echo up; read line; echo "got $line"' > "$TMP/state.out" 2>&1 < "$TMP/state.fifo" &
  pid=$!
  exec {hold}> "$TMP/state.fifo"
  wait_for "$TMP/state.out" '^up$' $BOOT_S || fail "the command never started"
  dirs=$(find "$MSB_HOME/sandboxes" -mindepth 1 -maxdepth 1 2>/dev/null)
  expect_match "the running sandbox's directory" "$dirs" "^$MSB_HOME/sandboxes/msb-[0-9a-f]{8}$"
  [ -f "$dirs/config.json" ] && [ -f "$dirs/logs/runtime.log" ] || fail "$dirs is not a sandbox"
  echo go >&$hold
  exec {hold}>&-
  rm -f "$TMP/state.fifo"
  wait_exit $pid 60
  expect_eq "exit code (success)" "$?" 0
  expect_eq "output (success)" "$(cat "$TMP/state.out")" $'up\ngot go'
  msb_capture run --rootfs "$SQFS" -- sh -c 'exit 3'
  expect_eq "exit code (the command failed)" "$RC" 3
  msb_capture run --rootfs "$SQFS" -- no-such-command
  expect_eq "exit code (not found)" "$RC" 127
  msb_capture run --rootfs "$SQFS" -u nosuchuser -- true
  expect_eq "exit code (msb's own failure after boot)" "$RC" 125
  msb_capture run --rootfs "$SQFS" --timeout 1s -- sleep 100
  expect_eq "exit code (timeout)" "$RC" 137
  "$MSB" run --rootfs "$SQFS" -- sh -c 'echo up; sleep 100' > "$TMP/state.out" 2>&1 < /dev/null &
  pid=$!
  wait_for "$TMP/state.out" '^up$' $BOOT_S || fail "the command never started"
  kill -INT $pid
  wait_exit $pid 60
  expect_eq "exit code (interrupted)" "$?" 130
  [ -d "$MSB_HOME/sandboxes" ] || fail "$MSB_HOME/sandboxes is missing"
  expect_eq "sandboxes left" "$(ls -A "$MSB_HOME/sandboxes" 2>/dev/null)" ""
  expect_no_leftovers
}

run_tests
