#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The command line as a new user meets it: help everywhere, flags that agree
# with each other, messages that say why, tables that line up.
source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs

# The commands `msb --help` lists, and the subcommands `msb CMD --help` lists.
commands() { "$MSB" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF {print $1}'; }
subcommands() { "$MSB" "$1" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF {print $1}'; }

# The usage line a command's help starts with (aliases show what they stand for).
usage_of() {
  case $1 in
    images) echo "msb image ls" ;;
    rmi) echo "msb image rm" ;;
    status) echo "msb ps" ;;
    volumes) echo "msb volume" ;;
    snapshots) echo "msb snapshot" ;;
    *) echo "msb $1" ;;
  esac
}

# check_help DESC EXPECTED-USAGE ARGS...: help on stdout, exit 0, nothing on stderr.
check_help() {
  local desc=$1 want=$2
  shift 2
  msb_capture "$@"
  expect_eq "$desc: exit code" "$RC" 0
  expect_eq "$desc: stderr" "$ERR" ""
  expect_match "$desc: usage line" "$(printf '%s\n' "$OUT" | head -1)" "^Usage: $want( |\$)"
}

test_help_for_every_command_and_subcommand() {
  local cmds c s subs n=0
  cmds=$(commands)
  expect_match "status is listed" "$cmds" $'(^|\n)status($|\n)'
  for c in $cmds; do
    n=$((n + 1))
    check_help "msb $c --help" "$(usage_of "$c")" "$c" --help
    check_help "msb $c -h" "$(usage_of "$c")" "$c" -h
    check_help "msb help $c" "$(usage_of "$c")" help "$c"
    expect_eq "msb help $c is msb $c --help" "$("$MSB" help "$c")" "$("$MSB" "$c" --help)"
    subs=$(subcommands "$c")
    for s in $subs; do
      n=$((n + 1))
      check_help "msb $c $s --help" "$(usage_of "$c") $s" "$c" "$s" --help
      check_help "msb $c $s -h" "$(usage_of "$c") $s" "$c" "$s" -h
      check_help "msb help $c $s" "$(usage_of "$c") $s" help "$c" "$s"
    done
  done
  [ "$n" -ge 30 ] || fail "only $n commands and subcommands found in the help"
  # --help after an argument is help too, and does nothing.
  check_help "registry logout HOST --help" "msb registry logout" registry logout ghcr.io --help
  check_help "snapshot rm NAME --help" "msb snapshot rm" snapshot rm nosuch --help
  check_help "pause NAME --help" "msb pause" pause nosuch --help
  msb_capture help nosuch
  expect_eq "help of an unknown command: exit code" "$RC" 125
  expect_one_error_line "$ERR" "help: unknown command \"nosuch\""
  msb_capture help __supervise
  expect_eq "help does not show msb's internal command" "$RC" 125
  # Publishing binds 127.0.0.1, not docker's 0.0.0.0: the -p line says so.
  expect_match "run --help: -p binds 127.0.0.1" \
    "$("$MSB" run --help | grep -A1 -- '-p, --port')" "127\.0\.0\.1.*docker's 0\.0\.0\.0"
  expect_match "volume rm --help: running sandboxes keep their volumes even with -f" \
    "$("$MSB" volume rm --help | tr '\n' ' ')" "running sandbox uses is kept even with -f"
}

test_contradicting_network_defaults_are_refused() {
  local order
  for order in "--no-net --net-default allow" "--net-default allow --no-net" \
    "--no-network --net-default allow"; do
    # shellcheck disable=SC2086
    msb_capture run $order --rootfs "$SQFS" -- true
    expect_eq "$order: exit code" "$RC" 125
    expect_one_error_line "$ERR" "run: --no-net cannot be combined with --net-default allow"
    expect_eq "$order: stdout" "$OUT" ""
  done
  # As --net-default-egress always was.
  msb_capture run --no-net --net-default-egress allow --rootfs "$SQFS" -- true
  expect_eq "--no-net --net-default-egress allow: exit code" "$RC" 125
  # Positive control: --no-net with what it means runs.
  msb_capture run --no-net --net-default deny --rootfs "$SQFS" -- echo ran
  expect_eq "--no-net --net-default deny: exit code" "$RC" 0
  expect_eq "--no-net --net-default deny: output" "$OUT" "ran"
  expect_no_leftovers
}

test_stop_takes_durations_and_stopping_a_stopped_sandbox_succeeds() {
  "$MSB" create --name st --rootfs "$SQFS" || { fail "create"; return; }
  msb_capture stop -t 2s st
  expect_eq "stop -t 2s: exit code" "$RC" 0
  expect_eq "stop -t 2s: output" "$OUT$ERR" ""
  expect_eq "stopped" "$("$MSB" ls --stopped -q)" "st"
  msb_capture stop st
  expect_eq "stop of a stopped sandbox: exit code" "$RC" 0
  expect_eq "stop of a stopped sandbox: quiet" "$OUT$ERR" ""
  msb_capture stop -t 500ms -f st
  expect_eq "stop -t 500ms -f of a stopped sandbox: exit code" "$RC" 0
  # metrics of a stopped sandbox: the error alone, no table before it.
  msb_capture metrics st
  expect_eq "metrics of a stopped sandbox: exit code" "$RC" 125
  expect_eq "metrics of a stopped sandbox: no table" "$OUT" ""
  expect_one_error_line "$ERR" "sandbox st is not running"
  msb_capture metrics --format json st
  expect_eq "metrics --format json of a stopped sandbox: no []" "$OUT" ""
  expect_one_error_line "$ERR" "sandbox st is not running"
  msb_capture metrics nosuch
  expect_eq "metrics of an unknown sandbox: no table" "$OUT" ""
  expect_one_error_line "$ERR" "sandbox nosuch: not found"
  # A bare number is still seconds.
  "$MSB" start st || fail "start"
  msb_capture metrics st
  expect_eq "metrics of a running sandbox: the table (positive control)" \
    "$(printf '%s\n' "$OUT" | head -1 | tr -s ' ')" "NAME STATE CPU MEM DISK R/W NET RX/TX UPTIME"
  msb_capture stop -t 1 st
  expect_eq "stop -t 1: exit code" "$RC" 0
  expect_eq "stopped again" "$("$MSB" ls --stopped -q)" "st"
  for bad in soon -1 25h; do
    msb_capture stop -t "$bad" st
    expect_eq "stop -t $bad: exit code" "$RC" 125
    expect_one_error_line "$ERR" "invalid --timeout \"$bad\""
  done
  msb_capture stop nosuch
  expect_eq "stop of an unknown sandbox: exit code" "$RC" 125
  expect_one_error_line "$ERR" "sandbox nosuch: not found"
  "$MSB" rm st
  expect_no_leftovers
}

test_max_duration_says_why_the_sandbox_stopped() {
  msb_capture run --max-duration 4s --rootfs "$SQFS" -- sh -c 'echo started; sleep 120'
  expect_eq "exit code: the command's, killed by SIGTERM" "$RC" 143
  expect_eq "output" "$OUT" "started"
  expect_one_error_line "$ERR" "sandbox [^ ]+ reached its --max-duration of 4s and was stopped\$"
  msb_capture run --name md --max-duration 3s --rootfs "$SQFS" -- sleep 120
  expect_eq "named: exit code" "$RC" 143
  expect_eq "named: the message names it" "$ERR" \
    "msb: sandbox md reached its --max-duration of 3s and was stopped"
  # Positive control: a command that ends in time hears nothing of it.
  msb_capture run --max-duration 1h --rootfs "$SQFS" -- echo quick
  expect_eq "in time: exit code" "$RC" 0
  expect_eq "in time: nothing on stderr" "$ERR" ""
  "$MSB" rm md
  expect_no_leftovers
}

test_script_takes_the_quick_reference_file_form() {
  printf '#!/bin/sh\necho set up from a file\n' > "$TMP/setup.sh"
  msb_capture run --script "setup:$TMP/setup.sh" --rootfs "$SQFS" -- setup
  expect_eq "--script NAME:FILE: exit code" "$RC" 0
  expect_eq "--script NAME:FILE: the file's script runs" "$OUT" "set up from a file"
  # Positive control: NAME=BODY is still a body, even with a colon in it.
  msb_capture run --script 'say=echo a:b' --rootfs "$SQFS" -- say
  expect_eq "--script NAME=BODY" "$OUT" "a:b"
  msb_capture run --script "setup:$TMP/missing.sh" --rootfs "$SQFS" -- setup
  expect_eq "--script NAME:MISSING: exit code" "$RC" 125
  expect_one_error_line "$ERR" "invalid --script \"setup:.*\" \\(use NAME=BODY, or NAME:PATH with an existing file, as --script-path NAME:PATH\\)"
  expect_no_leftovers
}

test_oci_upper_size_applies_or_is_refused() {
  local size
  # With --rootfs the writable layer is a disk of that size: it applies.
  size=$("$MSB" run --oci-upper-size 256M --rootfs "$SQFS" -- df -k / | awk 'NR == 2 {print $2}')
  if ! [[ "$size" =~ ^[0-9]+$ ]] || [ "$size" -le 200000 ] || [ "$size" -gt 262144 ]; then
    fail "--oci-upper-size 256M with --rootfs: / is $size KiB"
  fi
  mkdir -p "$TMP/rootdir"
  msb_capture run --oci-upper-size 256M --rootfs "$TMP/rootdir" --rootfs-bind -- true
  expect_eq "--oci-upper-size with --rootfs-bind: exit code" "$RC" 125
  expect_one_error_line "$ERR" "--oci-upper-size cannot be used with --rootfs-bind \\(the directory itself is the writable root\\)\$"
  expect_no_leftovers
}

test_volume_rm_force_never_takes_a_running_sandboxs_volume() {
  "$MSB" volume create -q vd || fail "volume create"
  "$MSB" create --name vu -v vd:/data --rootfs "$SQFS" || { fail "create"; return; }
  "$MSB" exec vu -- sh -c 'echo kept > /data/f' || fail "exec"
  msb_capture volume rm -f vd
  expect_eq "volume rm -f while running: exit code" "$RC" 125
  expect_one_error_line "$ERR" "volume vd is in use by running sandbox vu \\(stop it first\\)"
  expect_eq "the data is still there" "$("$MSB" exec vu -- cat /data/f)" "kept"
  "$MSB" stop vu
  msb_capture volume rm vd
  expect_eq "volume rm of a stopped sandbox's volume: exit code" "$RC" 125
  expect_one_error_line "$ERR" "volume vd is in use by sandbox vu \\(remove the sandbox first, or use -f\\)"
  msb_capture volume rm -f vd
  expect_eq "volume rm -f of a stopped sandbox's volume: exit code" "$RC" 0
  expect_eq "volume rm -f: output" "$OUT" "vd"
  "$MSB" rm vu
  expect_no_leftovers
}

test_session_ids_are_unique_over_a_sandboxs_life() {
  "$MSB" create --name ids --rootfs "$SQFS" || { fail "create"; return; }
  "$MSB" exec ids -- echo first > /dev/null
  "$MSB" exec ids -- echo second > /dev/null
  "$MSB" stop ids
  "$MSB" start ids
  "$MSB" exec ids -- echo third > /dev/null
  "$MSB" stop ids
  # exec starts a stopped sandbox, runs, and stops it: another boot.
  "$MSB" exec ids -- echo fourth > /dev/null
  msb_capture logs --show-id ids
  expect_eq "logs --show-id: one id per session, across boots" "$OUT" \
    $'[id:1] first\n[id:2] second\n[id:3] third\n[id:4] fourth'
  "$MSB" rm -f ids
  expect_no_leftovers
}

test_ps_shows_what_runs() {
  "$MSB" create --name idle --rootfs "$SQFS" -- sleep 1000 || { fail "create"; return; }
  "$MSB" run -d --name busy --rootfs "$SQFS" -- sleep 1000 > /dev/null || fail "run -d"
  msb_capture ps --format json
  expect_eq "ps json: a created sandbox runs nothing, run -d its command" "$(printf '%s' "$OUT" |
    python3 -c 'import json,sys; print(sorted((s["name"], s["command"]) for s in json.load(sys.stdin)))')" \
    "[('busy', 'sleep 1000'), ('idle', '-')]"
  expect_match "ps table: busy" "$("$MSB" ps | grep '^busy')" '^busy +[^ ]+ +sleep 1000 '
  expect_match "ps table: idle" "$("$MSB" ps | grep '^idle')" '^idle +[^ ]+ +- '
  "$MSB" rm -f idle busy
  expect_no_leftovers
}

test_image_ls_columns_hold_long_references() {
  local reg=$TMP/reg long header row col
  "$E2E_ROOT/tests/fixtures/registry.sh" start "$reg" > "$TMP/reg.log" 2>&1 || {
    fail "registry did not start"
    cat "$TMP/reg.log"
    return
  }
  # shellcheck disable=SC1091
  source "$reg/env"
  "$E2E_ROOT/tests/fixtures/images.sh" "$FIX/images" > /dev/null || fail "test images did not build"
  long=$PLAIN/a-rather-long/repository-name/for-column-widths:with-a-long-tag
  skopeo --policy "$reg/policy.json" copy -q --dest-tls-verify=false \
    "oci:$FIX/images/busybox:latest" "docker://$long" > /dev/null || fail "push $long"
  skopeo --policy "$reg/policy.json" copy -q --dest-tls-verify=false \
    "oci:$FIX/images/busybox:latest" "docker://$PLAIN/s:1" > /dev/null || fail "push s:1"
  echo "{\"registries\": {\"hosts\": {\"$PLAIN\": {\"insecure\": true}}}}" > "$MSB_HOME/config.json"
  "$MSB" pull -q "$long" > /dev/null || fail "pull $long"
  "$MSB" pull -q "$PLAIN/s:1" > /dev/null || fail "pull s:1"
  [ "${#long}" -gt 40 ] || fail "the reference is not long: $long"
  msb_capture image ls
  expect_eq "image ls: exit code" "$RC" 0
  header=$(printf '%s\n' "$OUT" | head -1)
  col=$(($(printf '%s' "$header" | grep -bo DIGEST | cut -d: -f1)))
  expect_eq "image ls: three lines" "$(printf '%s\n' "$OUT" | wc -l)" 3
  while IFS= read -r row; do
    expect_match "image ls: the digest column lines up: $row" "${row:$col}" '^sha256:'
    expect_match "image ls: the reference is whole: $row" "$row" "^($long|$PLAIN/s:1) "
  done < <(printf '%s\n' "$OUT" | tail -n +2)
  expect_match "image inspect: 1 layer" "$("$MSB" image inspect "$PLAIN/s:1" | grep '^Size:')" \
    '^Size: +.* in 1 layer$'
  # The image's Cmd is what an image sandbox would run; a created one runs none of it.
  "$MSB" create --name fromimg -q "$PLAIN/s:1" || fail "create from the image"
  expect_eq "ps: a created image sandbox runs nothing" \
    "$("$MSB" ps --format json | python3 -c 'import json,sys; print([s["command"] for s in json.load(sys.stdin)])')" \
    "['-']"
  "$MSB" rm -f fromimg
  "$E2E_ROOT/tests/fixtures/registry.sh" stop "$reg" > /dev/null 2>&1
  rm -f "$MSB_HOME/config.json"
  expect_no_leftovers
}

# msb doctor: every check, one line each, the fix with what is not ok; JSON too.
test_doctor_checks_the_host() {
  local j
  msb_capture doctor --format json
  expect_eq "doctor exit code (nothing fails here)" "$RC" 0
  j=$(python3 -c '
import json, sys
a = json.loads(sys.stdin.read())
assert all(c["status"] in ("ok", "warn", "fail") for c in a), a
assert all(c["fix"] for c in a if c["status"] != "ok"), a
print(" ".join(c["check"] + "=" + c["status"] for c in a))' <<< "$OUT" 2>&1)
  expect_match "every check, a status, a fix where not ok" "$j" \
    "^kvm=(ok|warn) qemu=ok guest=ok userns=ok seccomp=ok disk=(ok|warn) keyring=(ok|warn) ping=(ok|warn)$"
  msb_capture doctor
  expect_match "text: one line per check" "$OUT" "^(ok|warn) +kvm +.*
(.*
)*ok +qemu +QEMU [0-9]+\.[0-9]+"
  MSB_LIB_DIR=$TMP/nowhere msb_capture doctor
  expect_eq "a missing guest kernel fails" "$RC" 1
  expect_match "and says how to fix it" "$OUT" "fail +guest +.*vmlinux.*
 +fix: install msb with scripts/setup.sh"
  MSB_QEMU=$TMP/no-qemu msb_capture doctor
  expect_eq "no QEMU fails" "$RC" 1
  expect_match "and names the package" "$OUT" "fail +qemu .*
 +fix: .*qemu-system-x86"
  # An ordinary user gets the same checks (and the kvm group fix, where it applies).
  if [ "$(id -u)" = 0 ]; then
    OUT=$(setpriv --reuid=65534 --regid=65534 --clear-groups env MSB_HOME="$TMP/nobody" "$MSB" doctor 2>&1)
    expect_eq "doctor as an ordinary user" "$?" 0
    expect_match "as nobody: disk under its home" "$OUT" "disk +.*$TMP/nobody"
  fi
  msb_capture doctor --frobnicate
  expect_eq "bad flag" "$RC" 125
  expect_one_error_line "$ERR" "doctor: unknown option --frobnicate|.*--frobnicate"
}

# msb completion: the bash script, sourced, completes commands, subcommands,
# flags (from --help) and names from the store; zsh and fish parse.
test_completion_completes_commands_flags_and_names() {
  local bin=$TMP/compbin
  mkdir -p "$bin"
  ln -sf "$MSB" "$bin/msb"
  "$MSB" volume create comp-vol > /dev/null || fail "volume create"
  "$MSB" install --no-pull -n comp-alias example.test/tools/thing:1 > /dev/null 2>&1 ||
    fail "install --no-pull"
  "$MSB" create -q --name comp-box --rootfs "$SQFS" > /dev/null || fail "create comp-box"
  complete_words() { # WORD... (the last one is completed): COMPREPLY, one per line
    PATH=$bin:$PATH bash -c 'source <(msb completion bash)
      COMP_WORDS=(msb "$@"); COMP_CWORD=$#; _msb; printf "%s\n" "${COMPREPLY[@]}"' _ "$@"
  }
  expect_eq "commands" "$(complete_words sn)" "snapshot"
  expect_eq "subcommands" "$(complete_words volume i)" "inspect"
  expect_match "run's flags, from its --help" "$(complete_words run --no-)" "--no-net"
  expect_match "install's flags" "$(complete_words install --t)" "^--tmp$"
  expect_eq "a subcommand's flags" "$(complete_words snapshot create --fu)" "--full"
  expect_eq "sandbox names" "$(complete_words stop comp-)" "comp-box"
  expect_eq "volume names" "$(complete_words volume rm comp)" "comp-vol"
  expect_eq "installed commands" "$(complete_words uninstall comp)" "comp-alias"
  expect_eq "shells" "$(complete_words completion "")" "bash
zsh
fish"
  if command -v zsh > /dev/null; then
    "$MSB" completion zsh | zsh -n || fail "the zsh script does not parse"
  fi
  if command -v fish > /dev/null; then
    "$MSB" completion fish | fish -n || fail "the fish script does not parse"
  fi
  msb_capture completion tcsh
  expect_eq "an unknown shell" "$RC" 125
  expect_one_error_line "$ERR" "completion: unknown shell \"tcsh\""
  "$MSB" rm -f comp-box > /dev/null
  "$MSB" uninstall comp-alias > /dev/null
  "$MSB" volume rm comp-vol > /dev/null
  expect_no_leftovers
}

# A VMM that dies at once is reported at once, not after the boot timeout
# (the warm-start template's wait held its own end of the VMM's sockets).
test_a_vmm_that_exits_at_once_fails_fast() {
  local t0=$SECONDS
  MSB_QEMU=/bin/false msb_capture run --rootfs "$SQFS" -- echo hi
  expect_eq "exit code" "$RC" 125
  expect_one_error_line "$ERR" "sandbox msb-[0-9a-f]+: guest failed to boot"
  [ $((SECONDS - t0)) -lt 20 ] || fail "it took $((SECONDS - t0)) s to notice"
  expect_no_leftovers
}

# msb df: blocks on disk by kind; templates just used are not stale, so not reclaimable; totals add up.
test_df_shows_disk_use_by_kind() {
  local j
  "$MSB" volume create df-vol > /dev/null || fail "volume create"
  "$MSB" run --rootfs "$SQFS" -v df-vol:/data -- dd if=/dev/urandom of=/data/f bs=1M count=3 2> /dev/null ||
    fail "writing 3 MiB into the volume"
  msb_capture df --format json
  expect_eq "df exit code" "$RC" 0
  j=$(python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
k = {x["kind"]: x for x in d["kinds"]}
assert d["size"] == sum(x["size"] for x in d["kinds"]), d
assert d["reclaimable"] == sum(x["reclaimable"] for x in d["kinds"]), d
assert k["templates"]["reclaimable"] == 0, d
print(k["volumes"]["count"], k["volumes"]["size"] >= 3 << 20, k["sandboxes"]["count"])' <<< "$OUT" 2>&1)
  expect_eq "one volume holding 3 MiB, no sandbox left" "$j" "1 True 0"
  msb_capture df
  expect_match "the table" "$OUT" "^KIND +COUNT +SIZE +RECLAIMABLE
images .*
(.*
)*volumes +1 +3\.[0-9] MiB +0 B
(.*
)*total "
  msb_capture df extra
  expect_eq "an argument" "$RC" 125
  "$MSB" volume rm df-vol > /dev/null
}

run_tests
