# SPDX-License-Identifier: Apache-2.0
# Assertions and isolation for end-to-end tests: each test file gets its own MSB_HOME.
# shellcheck shell=bash

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$E2E_ROOT/build}
MSB=$BUILD/msb
FIX=$BUILD/fixtures
export MSB_HOME=${MSB_HOME_OVERRIDE:-$(mktemp -d /tmp/msb-e2e.XXXXXX)}
TMP=$(mktemp -d /tmp/msb-e2e-tmp.XXXXXX)
export MSB_LIB_DIR=$BUILD

_failed=0  # failures in the current test
_skipped="" # why the current test was skipped, if it was

# skip REASON: the current test cannot run here (reported as TAP "# SKIP", never as ok).
# The caller returns right after.
skip() {
  _skipped=$*
}

fail() {
  echo "    FAIL: $*"
  _failed=$((_failed + 1))
}

# expect_eq DESC ACTUAL EXPECTED
expect_eq() {
  if [ "$2" != "$3" ]; then
    fail "$1"
    printf '      expected: %q\n      actual:   %q\n' "$3" "$2"
  fi
}

# expect_match DESC ACTUAL EXTENDED-REGEX
expect_match() {
  if ! [[ "$2" =~ $3 ]]; then
    fail "$1"
    printf '      expected to match: %s\n      actual: %q\n' "$3" "$2"
  fi
}

# expect_one_error_line STDERR-TEXT REGEX: msb's failures are one line starting "msb: ".
expect_one_error_line() {
  local lines
  lines=$(printf '%s' "$1" | grep -c '' || true)
  expect_eq "stderr is one line" "$lines" "1"
  expect_match "stderr names the problem" "$1" "^msb: $2"
}

# running PID: is PID alive (a zombie is not)?
running() {
  local st
  st=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2> /dev/null)
  [ -n "$st" ] && [ "$st" != Z ]
}

# wait_until SECONDS CMD...: runs CMD until it succeeds; returns 1 when SECONDS pass first.
wait_until() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.2
  done
}

# wait_for FILE REGEX SECONDS: until FILE has a line matching REGEX; 1 if SECONDS pass first.
wait_for() {
  local end=$((SECONDS + $3))
  until grep -Eq "$2" "$1" 2> /dev/null; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.1
  done
}

# wait_exit PID SECONDS: waits for background job PID; its status, or 124 (and it is
# killed) if it still runs after SECONDS, so a missing behaviour fails instead of hanging.
wait_exit() {
  local end=$((SECONDS + $2))
  while running "$1"; do
    if [ $SECONDS -ge $end ]; then
      fail "pid $1 still running after $2 s; killed"
      kill -KILL "$1" 2> /dev/null
      wait "$1" 2> /dev/null
      return 124
    fi
    sleep 0.1
  done
  wait "$1"
}

# partitioned_disk IMG DIR: a 64 MiB raw disk, an MBR and one ext4 partition (at 1 MiB)
# holding DIR's tree.
partitioned_disk() {
  truncate -s 64M "$1"
  python3 - "$1" << 'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    mbr = bytearray(512)
    start = 2048
    size = 64 * 1024 * 1024 // 512 - start
    mbr[446:462] = bytes([0, 0xfe, 0xff, 0xff, 0x83, 0xfe, 0xff, 0xff]) + struct.pack('<II', start, size)
    mbr[510:512] = b'\x55\xaa'
    f.write(mbr)
PY
  mkfs.ext4 -q -F -E offset=1048576 -d "$2" "$1" 63M
}

# Processes started by msb run in a sandbox directory under MSB_HOME.
leftover_processes() {
  local p cwd
  for p in /proc/[0-9]*; do
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    case "$cwd" in "$MSB_HOME"/*) echo "${p#/proc/} $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)";; esac
  done
}

expect_no_leftovers() {
  local procs dirs i
  # Teardown is synchronous in msb; the wait is only scheduling slack, which on
  # a loaded two-core machine can take seconds.
  for i in $(seq 100); do
    procs=$(leftover_processes)
    [ -z "$procs" ] && break
    sleep 0.1
  done
  expect_eq "no processes left behind" "$procs" ""
  dirs=$(find "$MSB_HOME/sandboxes" -mindepth 1 -maxdepth 1 2>/dev/null)
  expect_eq "no sandbox directories left behind" "$dirs" ""
}

# Runs msb with stdout/stderr captured: sets OUT, ERR, RC.
msb_capture() {
  "$MSB" "$@" > "$TMP/out" 2> "$TMP/err"
  RC=$?
  OUT=$(cat "$TMP/out")
  ERR=$(cat "$TMP/err")
}

# tmux_run COLS ROWS CMD: runs CMD on a real terminal; "rc=N" is printed when it ends.
tmux_run() {
  TMUX_SESSION=msb-e2e-$$-$RANDOM
  command -v tmux > /dev/null || { fail "tmux missing"; return 1; }
  tmux new-session -d -s "$TMUX_SESSION" -x "$1" -y "$2" \
    "export MSB_HOME=$MSB_HOME MSB_LIB_DIR=$MSB_LIB_DIR; $3; echo rc=\$?; sleep 60"
}

# tmux_wait TEXT [SECONDS]: waits (default 60 s) until the screen shows TEXT; prints the screen.
tmux_wait() {
  local end=$((SECONDS + ${2:-60}))
  until tmux capture-pane -p -t "$TMUX_SESSION" | grep -q "$1"; do
    [ $SECONDS -lt $end ] || break
    sleep 0.1
  done
  tmux capture-pane -p -t "$TMUX_SESSION" | sed -e '/^$/d'
}

tmux_end() {
  tmux kill-session -t "$TMUX_SESSION" 2> /dev/null
}

# make_release VERSION DIR: `make dist` of this build as release VERSION into DIR,
# signed with the test key that only such releases trust: DIR is an update channel
# (msb self update). Prints the tarball's path.
# MAKE_SAN: what `make` needs to link more of this build (SANITIZE=1 for build-san).
MAKE_SAN=
[ "${BUILD##*/}" != build-san ] || MAKE_SAN=SANITIZE=1
make_release() {
  # shellcheck disable=SC2086 # $MAKE_SAN: a word or nothing
  env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$E2E_ROOT" BUILD="$BUILD" $MAKE_SAN \
    DIST_VERSION="$1" DISTDIR="$2" DIST_GZIP=1 RELEASE_TESTING=1 TRUST_KEY=tests/fixtures/update/test-release.pub \
    SIGNING_KEY=tests/fixtures/update/test-release.key dist 2> "$TMP/make-release.err" | tail -n 1
  [ "${PIPESTATUS[0]}" = 0 ] || { fail "make dist $1: $(tail -n 3 "$TMP/make-release.err")"; return 1; }
}

# Runs every function named test_* in the calling file (E2E_ONLY=REGEX: only the
# tests whose names match); prints TAP-style lines.
run_tests() {
  local t n=0
  for t in $(declare -F | awk '{print $3}' | grep '^test_'); do
    [[ -z "${E2E_ONLY:-}" || "${t#test_}" =~ $E2E_ONLY ]] || continue
    n=$((n + 1))
    _failed=0
    _skipped=""
    local start=$SECONDS
    "$t"
    if [ -n "$_skipped" ] && [ "$_failed" -eq 0 ]; then
      echo "ok - ${E2E_SUITE:-e2e}: ${t#test_} # SKIP $_skipped"
      echo skip >> "$E2E_RESULTS"
    elif [ "$_failed" -eq 0 ]; then
      echo "ok - ${E2E_SUITE:-e2e}: ${t#test_} ($((SECONDS - start))s)"
      echo pass >> "$E2E_RESULTS"
    else
      echo "not ok - ${E2E_SUITE:-e2e}: ${t#test_}"
      echo fail >> "$E2E_RESULTS"
    fi
  done
  # A suite's own services go first: their state lives in $TMP.
  if declare -F suite_teardown > /dev/null; then suite_teardown; fi
  rm -rf "$TMP"
  [ -n "${MSB_HOME_OVERRIDE:-}" ] || rm -rf "$MSB_HOME"
}
