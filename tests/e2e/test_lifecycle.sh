#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Persistent sandboxes: create, exec, stop, start, rm, run --name/-d/--replace, status,
# timers, crashes, and their errors, as users see them.
source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs

# json_get NAME PYTHON-EXPR: evaluates EXPR on `msb inspect --format json NAME` (bound to j).
json_get() {
  "$MSB" inspect --format json "$1" 2> /dev/null |
    python3 -c "import json, sys; j = json.load(sys.stdin); print($2)"
}
status_of() { json_get "$1" 'j["status"]'; }
reason_of() { json_get "$1" 'j["last_run"]["ended_because"]'; }
names() { "$MSB" ls -q | tr '\n' ' '; }

# Waits (up to $2 s, default 20) until NAME's status is $3.
wait_status() {
  local i
  for i in $(seq $((${3:-20} * 10))); do
    [ "$(status_of "$1")" = "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

lifecycle_round_trip() {
  local name=$1
  shift
  msb_capture create --name "$name" "$@"
  expect_eq "create: exit code" "$RC" 0
  expect_eq "create prints nothing" "$OUT$ERR" ""
  expect_eq "ls shows it running" "$("$MSB" ls --format json | python3 -c \
    "import json,sys; print([s['status'] for s in json.load(sys.stdin) if s['name'] == '$name'])")" \
    "['running']"
  msb_capture exec "$name" -- sh -c 'echo kept > /root/state; sync; echo written'
  expect_eq "exec: output" "$OUT" "written"
  expect_eq "exec: exit code" "$RC" 0
  msb_capture stop "$name"
  expect_eq "stop: exit code" "$RC" 0
  expect_eq "status after stop" "$(status_of "$name")" "stopped"
  expect_eq "why it stopped" "$(reason_of "$name")" "stopped"
  msb_capture start "$name"
  expect_eq "start: exit code" "$RC" 0
  expect_eq "status after start" "$(status_of "$name")" "running"
  msb_capture exec "$name" -- cat /root/state
  expect_eq "the file survived stop/start" "$OUT" "kept"
  msb_capture rm "$name"
  expect_eq "rm of a running sandbox is refused" "$RC" 125
  expect_one_error_line "$ERR" "sandbox $name is running \\(stop it first"
  msb_capture rm -f "$name"
  expect_eq "rm -f: exit code" "$RC" 0
  expect_eq "ls is empty" "$(names)" ""
  [ ! -e "$MSB_HOME/sandboxes/$name" ] || fail "sandboxes/$name is still there"
  expect_no_leftovers
}

test_lifecycle_with_a_rootfs() {
  lifecycle_round_trip dev --rootfs "$SQFS"
}

test_lifecycle_with_an_image() {
  local reg=$TMP/reg
  "$E2E_ROOT/tests/fixtures/registry.sh" start "$reg" > "$TMP/reg.log" 2>&1 || {
    fail "registry did not start"
    cat "$TMP/reg.log"
    return
  }
  # shellcheck disable=SC1091
  source "$reg/env"
  "$E2E_ROOT/tests/fixtures/images.sh" "$FIX/images" > /dev/null || fail "test images did not build"
  skopeo --policy "$reg/policy.json" copy -q --dest-tls-verify=false \
    "oci:$FIX/images/busybox:latest" "docker://$PLAIN/test/busybox:latest" > /dev/null ||
    fail "push test/busybox"
  echo "{\"registries\": {\"hosts\": {\"$PLAIN\": {\"insecure\": true}}}}" > "$MSB_HOME/config.json"
  lifecycle_round_trip img -q "$PLAIN/test/busybox:latest"
  "$E2E_ROOT/tests/fixtures/registry.sh" stop "$reg" > /dev/null 2>&1
  rm -f "$MSB_HOME/config.json"
}

test_run_with_a_name_keeps_the_sandbox() {
  msb_capture run --name keep --rootfs "$SQFS" -- sh -c 'echo v1 > /root/v; exit 3'
  expect_eq "exit code of the command" "$RC" 3
  expect_eq "status" "$(status_of keep)" "stopped"
  expect_eq "why" "$(reason_of keep)" "completed"
  expect_eq "its exit code is recorded" "$(json_get keep 'j["last_run"]["exit_code"]')" "3"
  msb_capture exec keep -- cat /root/v
  expect_eq "the file is there (exec started it)" "$OUT" "v1"
  expect_eq "exec on a stopped sandbox leaves it stopped" "$(status_of keep)" "stopped"
  msb_capture run --name keep --rootfs "$SQFS" -- true
  expect_eq "a second run with the name is refused" "$RC" 125
  expect_one_error_line "$ERR" "sandbox keep already exists \\(use --replace"
  msb_capture create --name keep --rootfs "$SQFS"
  expect_eq "create with the name: exit code" "$RC" 125
  expect_one_error_line "$ERR" "sandbox keep already exists \\(use --replace"
  "$MSB" start keep || fail "start keep"
  expect_eq "running before --replace" "$(status_of keep)" "running"
  msb_capture run --name keep --replace --rootfs "$SQFS" -- sh -c 'cat /root/v 2>&1 || echo fresh'
  expect_eq "--replace on a running sandbox: a fresh one" "$OUT" $'cat: can\'t open \'/root/v\': No such file or directory\nfresh'
  "$MSB" rm keep
  expect_no_leftovers
}

test_run_detached_prints_the_name_and_keeps_running() {
  local name
  name=$("$MSB" run -d --rootfs "$SQFS" -- sh -c 'echo started; sleep 3; echo finished')
  expect_match "prints a generated name" "$name" '^msb-[0-9a-f]{8}$'
  expect_eq "it runs in the background" "$(status_of "$name")" "running"
  for _ in $(seq 300); do [ -d "$MSB_HOME/sandboxes/$name" ] || break; sleep 0.1; done
  [ ! -d "$MSB_HOME/sandboxes/$name" ] || fail "an ephemeral detached sandbox outlived its command"
  name=$("$MSB" run -d --name bg --rootfs "$SQFS" -- sh -c 'echo started; exit 5')
  expect_eq "with --name it prints that name" "$name" "bg"
  wait_status bg stopped || fail "bg did not stop after its command"
  expect_eq "exit code recorded" "$(json_get bg 'j["last_run"]["exit_code"]')" "5"
  expect_eq "its output is in the log" "$("$MSB" logs bg)" "started"
  "$MSB" rm bg
  expect_no_leftovers
}

# Each client's command waits (up to 60 s) for the other two to have started: it
# finishes only if the three sessions really run at the same time.
test_two_clients_at_once() {
  local i pid out
  "$MSB" create --name two --rootfs "$SQFS" || fail "create two"
  local meet='i=0; while [ ! -e /tmp/a.up ] || [ ! -e /tmp/b.up ] || [ ! -s /tmp/victim.pid ]; do
    i=$((i+1)); [ $i -lt 600 ] || { echo never-met; exit 99; }; sleep 0.1; done'
  "$MSB" exec two -- sh -c "touch /tmp/a.up; $meet"'; for i in 1 2 3; do echo a$i; sleep 0.3; done; exit 11' > "$TMP/a" 2>&1 &
  local pa=$!
  "$MSB" exec two -- sh -c "touch /tmp/b.up; $meet"'; for i in 1 2 3; do echo b$i; sleep 0.2; done; exit 12' > "$TMP/b" 2>&1 &
  local pb=$!
  "$MSB" exec two -- sh -c 'echo $$ > /tmp/victim.pid.new; mv /tmp/victim.pid.new /tmp/victim.pid; exec sleep 100' > "$TMP/v" 2>&1 &
  local pv=$!
  wait $pa
  expect_eq "client A's exit code" "$?" 11
  wait $pb
  expect_eq "client B's exit code" "$?" 12
  expect_eq "client A's output" "$(cat "$TMP/a")" $'a1\na2\na3'
  expect_eq "client B's output" "$(cat "$TMP/b")" $'b1\nb2\nb3'
  # The victim really runs: its pid file names a live process, a sleep.
  pid=$("$MSB" exec two -- cat /tmp/victim.pid 2> /dev/null)
  expect_match "the victim wrote its pid" "$pid" '^[0-9]+$'
  out=$("$MSB" exec two -- sh -c "cat /proc/$pid/comm" 2>&1)
  expect_eq "the victim is alive before its client is killed" "$out" sleep
  kill -0 $pv 2> /dev/null || fail "the victim's client ended on its own: $(cat "$TMP/v")"
  kill -9 $pv
  wait $pv 2> /dev/null
  for i in $(seq 300); do
    out=$("$MSB" exec two -- sh -c "kill -0 $pid 2>/dev/null && echo alive || echo gone" 2>&1)
    [ "$out" = gone ] && break
    sleep 0.1
  done
  expect_eq "a client killed with SIGKILL takes its session with it" "$out" "gone"
  expect_eq "and only its own: the sandbox runs on" "$(status_of two)" "running"
  "$MSB" rm -f two
  expect_no_leftovers
}

test_timeout_kills_the_command_not_the_sandbox() {
  "$MSB" create --name to --rootfs "$SQFS"
  msb_capture exec --timeout 1s to -- sleep 30
  expect_eq "exit code" "$RC" 137
  expect_eq "the sandbox is still running" "$(status_of to)" "running"
  "$MSB" rm -f to
  expect_no_leftovers
}

test_max_duration_and_idle_timeout_end_the_sandbox() {
  "$MSB" create --name maxd --max-duration 3s --rootfs "$SQFS"
  "$MSB" create --name idle --idle-timeout 2s --rootfs "$SQFS"
  msb_capture exec idle -- sh -c 'sleep 3; echo busy-past-the-timeout'
  expect_eq "a session keeps an idle-timeout sandbox up" "$OUT" busy-past-the-timeout
  wait_status maxd stopped 20 || fail "maxd still $(status_of maxd)"
  wait_status idle stopped 20 || fail "idle still $(status_of idle)"
  expect_eq "maxd ended because" "$(reason_of maxd)" "max-duration"
  expect_eq "idle ended because" "$(reason_of idle)" "idle-timeout"
  "$MSB" rm maxd idle
  expect_no_leftovers
}

test_kill9_of_the_supervisor_is_a_crash_start_recovers() {
  local pid
  "$MSB" create --name crash --rootfs "$SQFS"
  "$MSB" exec crash -- sh -c 'echo synced > /root/s; sync'
  pid=$(json_get crash 'j["pid"]')
  expect_match "the supervisor's pid" "$pid" '^[0-9]+$'
  kill -9 "$pid"
  wait_status crash crashed 20 || fail "status after kill -9: $(status_of crash)"
  msb_capture exec crash -- true
  expect_eq "exec into a crashed sandbox" "$RC" 125
  expect_one_error_line "$ERR" "sandbox crash crashed \\(.*msb start crash"
  msb_capture start crash
  expect_eq "start recovers it" "$RC" 0
  msb_capture exec crash -- cat /root/s
  expect_eq "the synced file is there" "$OUT" "synced"
  "$MSB" rm -f crash
  expect_no_leftovers
}

test_two_starts_at_once() {
  local a b
  "$MSB" create --name race --rootfs "$SQFS"
  "$MSB" stop race
  "$MSB" start race 2> "$TMP/s1" &
  a=$!
  "$MSB" start race 2> "$TMP/s2" &
  b=$!
  wait $a
  local ra=$?
  wait $b
  local rb=$?
  expect_eq "one of them boots" "$((ra == 0 || rb == 0))" 1
  expect_eq "the other is refused" "$((ra + rb))" 125
  expect_match "with a reason" "$(cat "$TMP/s1" "$TMP/s2")" "msb: sandbox race is already running or starting"
  expect_eq "running" "$(status_of race)" "running"
  "$MSB" rm -f race
  expect_no_leftovers
}

test_bad_input_is_one_line() {
  "$MSB" create --name ok --rootfs "$SQFS"
  "$MSB" stop ok
  for args in "start nosuch" "stop nosuch" "rm nosuch" "exec nosuch -- true" "inspect nosuch" "logs nosuch"; do
    # shellcheck disable=SC2086
    msb_capture $args
    expect_eq "$args: exit code" "$RC" 125
    expect_one_error_line "$ERR" ".*nosuch.*not found"
  done
  for bad in "../x" "" "a/b" "-x" "$(printf 'x%.0s' $(seq 70))" "a b"; do
    msb_capture create --name "$bad" --rootfs "$SQFS"
    expect_eq "create --name '$bad': exit code" "$RC" 125
    expect_one_error_line "$ERR" "invalid sandbox name"
  done
  msb_capture stop ok
  expect_eq "stop of a stopped sandbox" "$RC" 0
  expect_eq "stop of a stopped sandbox is quiet" "$OUT$ERR" ""
  expect_eq "nothing changed" "$(status_of ok)" "stopped"
  expect_eq "only ok exists" "$(names)" "ok "
  "$MSB" rm ok
  expect_no_leftovers
}

test_sandbox_flags() {
  local bad
  msb_capture run --name flags -H myhost --tmpfs /scratch:16M --shell /bin/sh \
    --script 'greet=echo "hello\t$1"' --script-raw 'raw=#!/bin/sh
echo raw-ok' --rootfs "$SQFS" -- \
    sh -c 'hostname; df -k /scratch | awk "NR==2 {print \$2}"; greet you; raw; head -1 /.msb/scripts/greet'
  expect_eq "exit code" "$RC" 0
  expect_eq "hostname, tmpfs size, scripts on PATH with the shell's shebang" "$OUT" \
    $'myhost\n16384\nhello\tyou\nraw-ok\n#!/bin/sh'
  printf '#!/bin/sh\necho from-file\n' > "$TMP/script.sh"
  msb_capture run --script-path "fromfile:$TMP/script.sh" --rootfs "$SQFS" -- fromfile
  expect_eq "--script-path: exit code" "$RC" 0
  expect_eq "--script-path" "$OUT" "from-file"
  # The command may start before init has written its mark: it waits for it.
  msb_capture run --name flags --replace --init /bin/sh --init-arg -c \
    --init-arg 'echo "$MARK" > /tmp/init.mark.new; mv /tmp/init.mark.new /tmp/init.mark; exec sleep 1000' \
    --init-env MARK=pid1 --rootfs "$SQFS" -- \
    sh -c 'i=0; while [ ! -e /tmp/init.mark ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; cat /tmp/init.mark; cat /proc/1/comm'
  expect_eq "--init: exit code" "$RC" 0
  expect_eq "--init takes PID 1, with its env" "$OUT" $'pid1\nsleep'
  # Each bad value, with the message that names it (a regex after "msb: ").
  for bad in \
    '--tmpfs relative|invalid --tmpfs "relative" \(use PATH or PATH:SIZE, an absolute path' \
    '--tmpfs /x:nonsense|invalid --tmpfs "/x:nonsense" \(use PATH or PATH:SIZE' \
    '--script =x|invalid --script "=x" \(use NAME=BODY' \
    '--script a|invalid --script "a" \(use NAME=BODY' \
    '--init sh|invalid --init "sh" \(use an absolute path\)' \
    '--shell sh|invalid --shell "sh" \(use an absolute path\)' \
    '--max-duration 0|invalid --max-duration "0" \(use a duration like 30s' \
    '--idle-timeout soon|invalid --idle-timeout "soon" \(use a duration like 30s' \
    '-H bad_host|invalid --hostname "bad_host" \(letters, digits' \
    '--init-env NOEQUALS|invalid --init-env "NOEQUALS" \(use KEY=VALUE\)' \
    '--init-arg x|run: --init-arg needs --init$'; do
    # shellcheck disable=SC2086,SC2090
    msb_capture run ${bad%%|*} --rootfs "$SQFS" -- true
    expect_eq "run ${bad%%|*}: exit code" "$RC" 125
    expect_one_error_line "$ERR" "${bad#*|}"
  done
  "$MSB" rm flags
  expect_no_leftovers
}

test_eight_sandboxes_at_once() {
  local i pids=()
  for i in 1 2 3 4 5 6 7 8; do
    { "$MSB" create --name par$i --rootfs "$SQFS" && "$MSB" exec par$i -- echo hi-$i; } > "$TMP/par$i" 2>&1 &
    pids+=($!)
  done
  for i in 0 1 2 3 4 5 6 7; do
    wait "${pids[$i]}" || fail "sandbox par$((i + 1)) failed: $(cat "$TMP/par$((i + 1))")"
  done
  for i in 1 2 3 4 5 6 7 8; do
    expect_eq "par$i output" "$(cat "$TMP/par$i")" "hi-$i"
  done
  expect_eq "eight running" "$("$MSB" ps -q | wc -l)" 8
  "$MSB" rm -f par1 par2 par3 par4 par5 par6 par7 par8
  expect_no_leftovers
}

test_ls_ps_inspect_metrics_formats() {
  local out
  "$MSB" create --name fmt -c 2 -m 256M --rootfs "$SQFS"
  "$MSB" create --name other --rootfs "$SQFS"
  "$MSB" stop other
  expect_eq "ls columns" "$("$MSB" ls | head -1 | tr -s ' ')" "NAME IMAGE STATUS CREATED"
  expect_eq "ps columns" "$("$MSB" ps | head -1 | tr -s ' ')" "NAME IMAGE COMMAND CPUS MEM STATUS PORTS"
  expect_eq "ps shows running only" "$("$MSB" ps -q)" "fmt"
  expect_eq "ps -a shows all" "$("$MSB" ps -a -q | sort | tr '\n' ' ')" "fmt other "
  expect_eq "ls --running" "$("$MSB" ls --running -q)" "fmt"
  expect_eq "ls --stopped" "$("$MSB" ls --stopped -q)" "other"
  out=$("$MSB" ps --format json | python3 -c 'import json,sys; j=json.load(sys.stdin)[0]; print(sorted(j), j["cpus"], j["memory_mib"])')
  expect_eq "ps json" "$out" "['command', 'cpus', 'created_at', 'image', 'memory_mib', 'name', 'ports', 'status'] 2 256"
  out=$("$MSB" ls --format json | python3 -c 'import json,sys; print(sorted(json.load(sys.stdin)[0]))')
  expect_eq "ls json" "$out" "['created_at', 'image', 'name', 'status']"
  expect_eq "inspect: accelerator" "$(json_get fmt 'j["last_run"]["accelerator"]')" "tcg"
  expect_match "inspect: why" "$(json_get fmt 'j["last_run"]["accelerator_reason"]')" '.+'
  expect_match "inspect: boot timing" "$(json_get fmt 'j["last_run"]["boot_ready_ms"]')" '^[0-9.]+$'
  expect_match "inspect: supervisor pid" "$(json_get fmt 'j["pid"]')" '^[0-9]+$'
  expect_eq "inspect: config" "$(json_get fmt 'j["config"]["cpus"], j["config"]["memory_mib"]')" "2 256"
  out=$("$MSB" metrics --format json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(len(j), sorted(j[0]), j[0]["memory_limit_bytes"], j[0]["uptime_secs"] >= 0)')
  expect_eq "metrics json" "$out" "1 ['cpu_percent', 'disk_read_bytes', 'disk_write_bytes', 'memory_bytes', 'memory_limit_bytes', 'name', 'net_rx_bytes', 'net_tx_bytes', 'state', 'uptime_secs'] 268435456 True"
  expect_eq "metrics columns" "$("$MSB" metrics fmt | head -1 | tr -s ' ')" "NAME STATE CPU MEM DISK R/W NET RX/TX UPTIME"
  msb_capture metrics other
  expect_eq "metrics of a stopped sandbox: exit code" "$RC" 125
  expect_one_error_line "$ERR" "sandbox other is not running"
  "$MSB" rm -f fmt other
  expect_no_leftovers
}

test_logs_flags() {
  local t1 out
  "$MSB" create --name lg --rootfs "$SQFS"
  "$MSB" exec lg -- sh -c 'echo one; sleep 0.3; echo err-one >&2' > /dev/null 2>&1
  sleep 1.1
  t1=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
  sleep 0.1
  # One write, one frame: the text line and the binary one still become two records.
  "$MSB" exec lg -- sh -c 'printf "two\n\377\376raw\n"' > /dev/null 2>&1
  "$MSB" exec -t lg -- sh -c 'echo tty-line' > /dev/null 2>&1 < /dev/null
  expect_eq "default: stdout, stderr, output" "$("$MSB" logs lg 2>&1 | tr -d '\r')" \
    $'one\nerr-one\ntwo\n\xef\xbf\xbd\xef\xbf\xbdraw\ntty-line'
  expect_eq "stderr goes to stderr" "$("$MSB" logs lg 2>&1 > /dev/null)" "err-one"
  expect_eq "--source stdout" "$("$MSB" logs --source stdout lg | head -2)" $'one\ntwo'
  expect_eq "--source output" "$("$MSB" logs --source output lg | tr -d '\r')" "tty-line"
  expect_match "--source system" "$("$MSB" logs --source system lg)" "--- sandbox started ---"
  expect_eq "--tail 1" "$("$MSB" logs --tail 1 lg | tr -d '\r')" "tty-line"
  expect_eq "--since" "$("$MSB" logs --since "$t1" --source stdout lg)" $'two\n\xef\xbf\xbd\xef\xbf\xbdraw'
  expect_eq "--until" "$("$MSB" logs --until "$t1" --source stdout lg)" "one"
  expect_eq "--since relative" "$("$MSB" logs --since 1h --source stdout lg | head -1)" "one"
  expect_eq "--grep" "$("$MSB" logs --grep '^t[wt]' lg | tr -d '\r')" $'two\ntty-line'
  expect_eq "--raw gives the bytes back" "$("$MSB" logs --raw --source stdout --since "$t1" lg | od -An -tx1)" \
    "$(printf 'two\n\377\376raw\n' | od -An -tx1)"
  out=$("$MSB" logs --json --raw --source stdout lg | tail -1)
  expect_match "--json --raw: base64 for non-UTF-8" "$out" '"d":"//5yYXcK".*"b64":true'
  out=$("$MSB" logs --json lg | head -1)
  expect_match "--json: t, s, d, id" "$out" '^\{"t":"[0-9T:.-]+Z","s":"stdout","d":"one\\n","id":1\}$'
  expect_match "--timestamps" "$("$MSB" logs --timestamps --tail 1 lg)" '^20[0-9-]+T[0-9:.]+Z tty-line'
  expect_eq "--show-id" "$("$MSB" logs --show-id --source stdout lg | head -1)" "[id:1] one"
  expect_eq "--color-sessions --color always" "$("$MSB" logs --color-sessions --color always --source stdout lg | head -1 | od -c | head -1 | cut -c1-30)" \
    "$(printf '\033[32m[id:1]\033[0m one' | od -c | head -1 | cut -c1-30)"
  expect_eq "--no-color" "$("$MSB" logs --color-sessions --no-color --source stdout lg | head -1)" "[id:1] one"
  "$MSB" stop lg
  expect_eq "works on a stopped sandbox" "$("$MSB" logs --source stdout lg | head -1)" "one"
  msb_capture logs --since yesterday lg
  expect_one_error_line "$ERR" "logs: invalid --since"
  msb_capture logs --source nope lg
  expect_one_error_line "$ERR" "logs: invalid --source"
  "$MSB" rm lg
  expect_no_leftovers
}

test_logs_follow_sees_new_output_and_rotation() {
  "$MSB" create --name fl --rootfs "$SQFS"
  "$MSB" logs -f fl > "$TMP/follow" 2>&1 &
  local pf=$!
  "$MSB" exec fl -- sh -c 'echo first' > /dev/null
  # 12.6 MB of output: exec.log rotates at 10 MiB while being followed.
  "$MSB" exec fl -- sh -c 'yes $(printf "x%.0s" $(seq 1023)) | head -n 12300; echo last' > /dev/null
  # The follower catches up before the stop (which must end it).
  for _ in $(seq 600); do [ "$(tail -n 1 "$TMP/follow")" = last ] && break; sleep 0.1; done
  "$MSB" stop fl
  for _ in $(seq 50); do kill -0 $pf 2> /dev/null || break; sleep 0.2; done
  kill -0 $pf 2> /dev/null && { fail "logs -f did not end with the sandbox"; kill $pf; }
  expect_eq "first line" "$(head -1 "$TMP/follow")" "first"
  expect_eq "last line" "$(tail -1 "$TMP/follow")" "last"
  expect_eq "nothing lost across the rotation" "$(grep -c '^x\{1023\}$' "$TMP/follow")" 12300
  [ -e "$MSB_HOME/sandboxes/fl/logs/exec.log.1" ] || fail "exec.log did not rotate"
  "$MSB" rm fl
  expect_no_leftovers
}

test_shell_and_detach_keys() {
  local out
  "$MSB" create --name sh1 --shell /bin/sh --rootfs "$SQFS"
  tmux_run 80 24 "$MSB shell sh1"
  tmux_wait '#' > /dev/null
  tmux send-keys -t "$TMUX_SESSION" 'echo in-$((1+1))-shell; exit 7' Enter
  out=$(tmux_wait 'rc=')
  tmux_end
  expect_match "an interactive shell on a tty" "$out" 'in-2-shell'
  expect_match "its exit status" "$out" 'rc=7'
  tmux_run 80 24 "$MSB exec -t sh1 -- sh -c 'echo ready; sleep 3; echo done > /tmp/detached'"
  tmux_wait ready > /dev/null
  tmux send-keys -t "$TMUX_SESSION" C-]
  out=$(tmux_wait 'rc=')
  tmux_end
  expect_match "ctrl-] detaches" "$out" 'detached.*rc=0'
  for _ in $(seq 300); do
    out=$("$MSB" exec sh1 -- cat /tmp/detached 2> /dev/null)
    [ "$out" = done ] && break
    sleep 0.1
  done
  expect_eq "the command ran on" "$out" "done"
  "$MSB" rm -f sh1
  expect_no_leftovers
}

test_an_ordinary_user_lives_a_whole_lifecycle() {
  [ "$(id -u)" = 0 ] || { skip "needs root to create the test user"; return; }
  local user=msb-e2e udir out
  id "$user" > /dev/null 2>&1 || useradd -m -s /bin/bash "$user" 2> /dev/null ||
    { fail "cannot create the test user"; return; }
  udir=$(mktemp -d /tmp/msb-e2e-user.XXXXXX)
  cp "$MSB" "$BUILD/vmlinux" "$BUILD/initrd.cpio" "$SQFS" "$udir/"
  chmod 755 "$udir" "$udir"/*
  mkdir "$udir/home" && chown "$user" "$udir/home"
  u() {
    runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME="/home/$user" MSB_HOME="$udir/home" \
      MSB_LIB_DIR="$udir" "$udir/msb" "$@"
  }
  u create --name mine --rootfs "$udir/rootfs.sqfs" || fail "create as $user"
  out=$(u exec mine -- sh -c 'echo kept > /root/f; sync; id -u')
  expect_eq "exec as $user (root in the guest)" "$out" "0"
  u stop mine || fail "stop as $user"
  expect_eq "status as $user" "$(u ls -q --stopped)" "mine"
  u start mine || fail "start as $user"
  expect_eq "the file survived, as $user" "$(u exec mine -- cat /root/f)" "kept"
  expect_eq "logs as $user" "$(u logs mine | tail -1)" "kept"
  expect_match "inspect as $user" "$(u inspect mine)" "status: running"
  u rm -f mine || fail "rm as $user"
  expect_eq "nothing left for $user" "$(ls "$udir/home/sandboxes")" ""
  rm -rf "$udir"
}

run_tests
