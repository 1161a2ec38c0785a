#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# msb install / uninstall: an image's program as a host command, from a real
# registry (the fixture's, on 127.0.0.1): arguments, stdin, stdout, stderr,
# exit codes and the terminal pass through; persistent and --tmp sandboxes.
source "$(dirname "$0")/lib.sh"

REG=$TMP/reg
FIXTURES=$E2E_ROOT/tests/fixtures
"$FIXTURES/registry.sh" start "$REG" > "$TMP/registry-start.log" 2>&1 || {
  cat "$TMP/registry-start.log"
  exit 1
}
suite_teardown() {
  for n in $("$MSB" ls -q 2> /dev/null); do "$MSB" rm -f "$n" > /dev/null 2>&1; done
  "$FIXTURES/registry.sh" stop "$REG" > /dev/null 2>&1
}
trap suite_teardown EXIT
source "$REG/env"
"$FIXTURES/images.sh" "$FIX/images" > "$TMP/images.log" 2>&1 || {
  echo "the test images did not build: $(tail -n 3 "$TMP/images.log")"
  exit 1
}
# Only the two images used here (pushing every fixture image takes minutes).
for img in busybox:latest python:3.11; do
  skopeo --policy "$REG/policy.json" copy -q --dest-tls-verify=false \
    "oci:$FIX/images/${img%%:*}:${img#*:}" "docker://$PLAIN/test/$img" > "$TMP/push.log" 2>&1 || {
    echo "push test/$img: $(cat "$TMP/push.log")"
    exit 1
  }
done
echo "{\"registries\": {\"hosts\": {\"$PLAIN\": {\"insecure\": true}}}}" > "$MSB_HOME/config.json"
SQFS=$FIX/rootfs.sqfs
BB=$PLAIN/test/busybox:latest
PY=$PLAIN/test/python:3.11
BIN=$MSB_HOME/bin
export PATH=$BIN:$PATH

test_python_alias_passes_arguments_stdin_output_and_exit_code() {
  msb_capture install -n py "$PY"
  expect_eq "install exit code" "$RC" 0
  expect_eq "install prints the command's path" "$OUT" "$BIN/py"
  [ -x "$BIN/py" ] || fail "$BIN/py is not executable"
  expect_eq "print(1)" "$(py -c 'print(1)')" 1
  expect_eq "stdin" "$(echo x | py -c 'import sys; print(sys.stdin.read().strip())')" x
  py -c 'import sys; sys.exit(3)'
  expect_eq "the exit code" "$?" 3
  expect_eq "stderr is stderr" "$(py -c 'import sys; sys.stderr.write("to-err\n")' 2>&1 > /dev/null)" \
    "to-err"
  expect_eq "arguments with spaces and quotes" "$(py -c 'import sys; print(sys.argv[1:])' "a b" "it's")" \
    "['a b', \"it's\"]"
  "$MSB" uninstall py
  expect_no_leftovers
}

test_persistent_alias_keeps_files_and_takes_concurrent_calls() {
  "$MSB" install -n bb "$BB" > /dev/null || fail "install bb"
  # Two first calls at once: one sandbox is made, both run.
  bb -c 'echo one' > "$TMP/c1" 2>&1 &
  local p1=$!
  bb -c 'echo two' > "$TMP/c2" 2>&1 &
  local p2=$!
  wait "$p1" || fail "the first concurrent call failed: $(cat "$TMP/c1")"
  wait "$p2" || fail "the second concurrent call failed: $(cat "$TMP/c2")"
  expect_eq "first call" "$(cat "$TMP/c1")" one
  expect_eq "second call" "$(cat "$TMP/c2")" two
  expect_eq "one sandbox for the alias" "$("$MSB" ls -q | grep -cx alias-bb)" 1
  bb -c 'echo kept > /root/state'
  expect_eq "files persist between calls" "$(bb -c 'cat /root/state')" kept
  # Stopped, it is started again by the next call, files and all.
  "$MSB" stop alias-bb > /dev/null
  expect_eq "a stopped alias sandbox starts again" "$(bb -c 'cat /root/state')" kept
  "$MSB" uninstall bb
  expect_no_leftovers
}

test_tmp_alias_keeps_nothing() {
  "$MSB" install --tmp -n bbt "$BB" > /dev/null || fail "install --tmp"
  bbt -c 'echo x > /root/state'
  expect_eq "a fresh sandbox each call" "$(bbt -c 'cat /root/state 2>&1 || echo none')" \
    "cat: can't open '/root/state': No such file or directory
none"
  bbt -c 'exit 7'
  expect_eq "the exit code" "$?" 7
  [ -z "$("$MSB" ls -q)" ] || fail "a --tmp call left a sandbox: $("$MSB" ls -q)"
  "$MSB" uninstall bbt
  expect_no_leftovers
}

test_options_are_applied() {
  mkdir -p "$TMP/share"
  echo from-host > "$TMP/share/x"
  # A relative host path is made absolute: the alias is called from anywhere.
  (cd "$TMP" && "$MSB" install -n bbo -e FOO=bar -w /tmp -m 256M -c 1 -v ./share:/data "$BB" > /dev/null) ||
    fail "install with options"
  expect_eq "env, workdir, volume" "$(bbo -c 'echo $FOO; pwd; cat /data/x')" "bar
/tmp
from-host"
  expect_match "memory" "$(bbo -c 'cat /proc/meminfo' | head -1)" "MemTotal: +2[0-9]{5} kB"
  msb_capture install --list
  expect_match "--list: name, image, kind, options" "$OUT" \
    "bbo +$PLAIN/test/busybox:latest +persistent +--env FOO=bar --workdir /tmp --memory 256M --cpus 1 --volume $TMP/share:/data"
  "$MSB" uninstall bbo
  expect_no_leftovers
}

test_list_and_uninstall_remove_only_the_alias() {
  "$MSB" install -n bbu "$BB" > /dev/null || fail "install bbu"
  "$MSB" install --tmp -n bbv "$BB" > /dev/null || fail "install bbv"
  bbu -c true
  "$MSB" create --name keeper --rootfs "$SQFS" > /dev/null 2>&1 || fail "create keeper"
  msb_capture install -l
  expect_match "listed: persistent" "$OUT" "bbu +$PLAIN/test/busybox:latest +persistent"
  expect_match "listed: tmp" "$OUT" "bbv +$PLAIN/test/busybox:latest +tmp"
  msb_capture uninstall bbu bbv
  expect_eq "uninstall exit code" "$RC" 0
  [ -e "$BIN/bbu" ] && fail "$BIN/bbu is still there"
  [ -e "$BIN/bbv" ] && fail "$BIN/bbv is still there"
  [[ "$("$MSB" ls -q)" == *alias-bbu* ]] && fail "the alias's sandbox is still there"
  [[ "$("$MSB" ls -q)" == *keeper* ]] || fail "uninstall removed another sandbox"
  [[ "$("$MSB" images -q)" == *test/busybox* ]] || fail "uninstall removed the image"
  msb_capture uninstall bbu
  expect_eq "a second uninstall" "$RC" 125
  expect_one_error_line "$ERR" "no installed command bbu"
  "$MSB" rm -f keeper > /dev/null
  expect_no_leftovers
}

test_names_shadowing_and_force() {
  # The default name is the repository's: busybox, which is a host command here.
  msb_capture install "$BB"
  expect_eq "shadowing a host command needs -f" "$RC" 125
  expect_one_error_line "$ERR" "install: busybox would shadow /.*busybox \(use -f"
  [ -e "$BIN/busybox" ] && fail "a refused install wrote $BIN/busybox"
  "$MSB" install -n bbf "$BB" > /dev/null || fail "install bbf"
  msb_capture install -n bbf "$BB"
  expect_eq "an existing alias needs -f" "$RC" 125
  expect_one_error_line "$ERR" "install: $BIN/bbf already exists \(use -f"
  msb_capture install -f --tmp -n bbf "$BB"
  expect_eq "-f replaces it" "$RC" 0
  expect_match "now --tmp" "$("$MSB" install -l)" "bbf .* tmp"
  "$MSB" uninstall bbf
}

test_a_terminal_passes_through() {
  "$MSB" install -n bbt2 "$BB" > /dev/null || fail "install"
  tmux_run 80 24 "PATH=$BIN:\$PATH; bbt2 -c 'test -t 0 && test -t 1 && echo TTY-YES'" || return
  expect_match "the alias got a terminal" "$(tmux_wait rc=0)" "TTY-YES"
  tmux_end
  expect_eq "without one, none" "$(bbt2 -c 'test -t 0 && echo TTY || echo NO-TTY' < /dev/null)" NO-TTY
  "$MSB" uninstall bbt2
  expect_no_leftovers
}

test_no_pull_learns_the_command_on_first_use() {
  local h=$MSB_HOME
  MSB_HOME=$(mktemp -d "$TMP/home.XXXXXX")
  cp "$h/config.json" "$MSB_HOME/"
  "$MSB" install --no-pull --tmp -n late "$PY" > /dev/null || fail "install --no-pull"
  [ -z "$("$MSB" images -q)" ] || fail "--no-pull pulled"
  expect_eq "the first call pulls and runs" "$("$MSB_HOME/bin/late" -c 'print(6*7)' 2> /dev/null)" 42
  MSB_HOME=$h
}

test_an_alias_keeps_working_after_self_update_and_rollback() {
  local ch=$TMP/channels arch m=$MSB_HOME/bin/msb alias_file=$BIN/bbup
  arch=$(uname -m)
  make_release 9.0.0 "$ch/9.0.0" > /dev/null && make_release 9.1.0 "$ch/9.1.0" > /dev/null || return
  # msb installed into this MSB_HOME (its images and registry settings) by setup.sh;
  # HOME elsewhere, so the shells' files it edits are the test's own.
  mkdir -p "$TMP/upd-home"
  HOME=$TMP/upd-home bash "$E2E_ROOT/scripts/setup.sh" --tarball "$ch/9.0.0/msb-9.0.0-linux-$arch.tar.gz" \
    > /dev/null 2> "$TMP/err" || { fail "setup.sh: $(cat "$TMP/err")"; return; }
  python3 - "$MSB_HOME/config.json" "$ch/9.1.0" << 'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["update"] = {"url": sys.argv[2]}
json.dump(c, open(sys.argv[1], "w"))
EOF
  env -u MSB_LIB_DIR "$m" install -n bbup "$BB" > /dev/null || fail "install bbup"
  expect_match "the alias runs the installed msb by its stable path" "$(cat "$alias_file")" \
    "exec '$m' __alias 'bbup'"
  expect_eq "the alias, before" "$(env -u MSB_LIB_DIR bbup -c 'echo kept > /root/f; echo before')" before
  OUT=$(env -u MSB_LIB_DIR "$m" self update 2>&1)
  expect_eq "self update" "$?$OUT" "0msb updated: 9.0.0 -> 9.1.0 ($MSB_HOME/releases/current; 'msb self update --rollback' goes back)"
  expect_eq "the alias, after the update: its sandbox and files" \
    "$(env -u MSB_LIB_DIR bbup -c 'cat /root/f; echo after')" "kept
after"
  env -u MSB_LIB_DIR "$m" self update --rollback > /dev/null 2>&1 || fail "rollback"
  expect_eq "the alias, after the rollback" "$(env -u MSB_LIB_DIR bbup -c 'echo back')" back
  env -u MSB_LIB_DIR "$m" uninstall bbup > /dev/null 2>&1 || fail "uninstall bbup"
  rm -rf "$MSB_HOME/releases" "$m" "$MSB_HOME/lib" "$TMP/upd-home"
}

test_bad_input_is_one_line() {
  local args want
  while IFS='|' read -r args want; do
    # shellcheck disable=SC2086
    msb_capture install $args
    expect_eq "exit code for: install $args" "$RC" 125
    expect_one_error_line "$ERR" "$want"
  done << EOF
|install: no image given
-n bad/name $BB|install: invalid command name "bad/name"
-n msb $BB|install: invalid command name "msb"
-n ok -m lots $BB|invalid memory size "lots"
-n ok -c 0 $BB|.*--cpus.*0
-n ok -v nocolon $BB|invalid -v "nocolon"
-n ok --frobnicate $BB|.*--frobnicate
-l extra|install: --list takes no image
EOF
  [ -e "$BIN/ok" ] && fail "a refused install wrote $BIN/ok"
  msb_capture uninstall
  expect_eq "uninstall with no name" "$RC" 125
  expect_one_error_line "$ERR" "uninstall: no command given"
}

run_tests
