#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# msb prune and msb image prune: what goes (leftovers of a killed run, unused images and
# layers, downloads, stale templates), what stays (named sandboxes, volumes, snapshots,
# what they and aliases use, what a pull holds), and msb df agreeing. Three VM boots.
source "$(dirname "$0")/lib.sh"

REG=$TMP/reg
FIXTURES=$E2E_ROOT/tests/fixtures
"$FIXTURES/registry.sh" start "$REG" > "$TMP/registry-start.log" 2>&1 || {
  cat "$TMP/registry-start.log"
  exit 1
}
suite_teardown() {
  "$FIXTURES/registry.sh" stop "$REG" > /dev/null 2>&1
  [ -z "${HOLD_PID:-}" ] || kill "$HOLD_PID" 2> /dev/null
}
trap suite_teardown EXIT
export MSB REG_PASS TLS
"$FIXTURES/registry.sh" push "$REG" "$BUILD/fixtures/images" > "$TMP/registry-push.log" 2>&1 || {
  cat "$TMP/registry-push.log"
  exit 1
}
# shellcheck disable=SC1091
source "$REG/env"
cat > "$MSB_HOME/config.json" << JSON
{"registries": {"hosts": {"$PLAIN": {"insecure": true}}}}
JSON
# Templates would cost a boot each; the suite makes its own (fake) ones.
export MSB_WARM=0
BOOT_S=180

# layers_of REF: the image's diff_ids, one a line.
layers_of() {
  "$MSB" image inspect --format json "$1" | python3 -c '
import json, sys
for l in json.load(sys.stdin)["layers"]:
    print(l["diff_id"])'
}
# has_layer DIFF_ID: is its layer image in the cache?
has_layer() { [ -f "$MSB_HOME/cache/layers/${1#sha256:}.sqfs" ]; }
reclaimable() {
  "$MSB" df --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["reclaimable"])'
}
# The state prune may change, to compare before and after.
state() {
  (cd "$MSB_HOME" && find sandboxes cache templates snapshots volumes aliases 2> /dev/null | sort)
  "$MSB" image ls -q
}

A=$PLAIN/test/shared-a:1
B=$PLAIN/test/shared-b:1
LAYERED=$PLAIN/test/layered:v1
BUSYBOX=$PLAIN/test/busybox
MULTI=$PLAIN/test/multiplatform

# No terminal and no -f: refused before anything is looked at; nothing goes.
test_no_terminal_without_f_is_refused() {
  local before hex
  hex=$(printf 'c%.0s' $(seq 64))
  mkdir -p "$MSB_HOME/cache/blobs"
  echo partial > "$MSB_HOME/cache/blobs/$hex-$hex.partial"
  before=$(state)
  msb_capture prune < /dev/null
  expect_eq "exit code" "$RC" 125
  expect_one_error_line "$ERR" "prune: no terminal to confirm on \(use -f to remove without asking\)$"
  expect_eq "nothing on stdout" "$OUT" ""
  msb_capture image prune < /dev/null
  expect_eq "image prune: exit code" "$RC" 125
  expect_one_error_line "$ERR" "image prune: no terminal to confirm on \(use -f to remove without asking\)$"
  expect_eq "nothing removed" "$(state)" "$before"
  # The positive control: with -f the same download goes.
  msb_capture prune -f < /dev/null
  expect_eq "prune -f: exit code" "$RC" 0
  expect_eq "prune -f: output" "$OUT" "Removed download $hex-$hex.partial (4.0 KiB)
Total reclaimed space: 4.0 KiB"
  [ -e "$MSB_HOME/cache/blobs/$hex-$hex.partial" ] && fail "the download is still there"
  msb_capture prune --bogus
  expect_eq "unknown flag: exit code" "$RC" 125
}

test_prune_keeps_what_is_used_and_removes_the_rest() {
  local a_layers b_layers lay_layers mp_layers base b_top dry real sv cli vmm dir stale fresh l img
  local hold exp before
  for img in "$A" "$B" "$LAYERED" "$BUSYBOX" "$MULTI"; do
    "$MSB" pull -q "$img" > /dev/null 2>&1 || fail "pull $img"
  done
  a_layers=$(layers_of "$A")
  b_layers=$(layers_of "$B")
  lay_layers=$(layers_of "$LAYERED")
  mp_layers=$(layers_of "$MULTI")
  base=$(head -n 1 <<< "$a_layers")
  b_top=$(tail -n 1 <<< "$b_layers")
  expect_eq "shared-a and shared-b share their base layer" "$(head -n 1 <<< "$b_layers")" "$base"

  # Boot 1: a named sandbox, then stopped; a snapshot of it; a volume; an alias.
  msb_capture create --name keep "$A"
  expect_eq "create keep" "$RC" 0
  msb_capture stop -t 2 keep
  expect_eq "stop keep" "$RC" 0
  msb_capture snapshot create snap1 --from keep
  expect_eq "snapshot create" "$RC" 0
  "$MSB" volume create vol1 > /dev/null || fail "volume create"
  msb_capture install --no-pull --name lay "$LAYERED"
  expect_eq "install (an alias of layered)" "$RC" 0

  # Boot 2: a run killed with its supervisor leaves its directory behind (it uses busybox).
  "$MSB" run "$BUSYBOX" -- sh -c 'echo up; sleep 300' > "$TMP/run.out" 2> "$TMP/run.err" < /dev/null &
  cli=$!
  for _ in $(seq 1200); do
    sv=$(pgrep -P "$cli" -f "msb __supervise .*--attached" | head -n 1)
    [ -n "$sv" ] && break
    sleep 0.05
  done
  [ -n "$sv" ] || fail "no supervisor"
  dir=$MSB_HOME/sandboxes/$(tr '\0' '\n' < "/proc/$sv/cmdline" | tail -n 1)
  vmm=$(pgrep -P "$sv" qemu | head -n 1)
  for _ in $(seq $((BOOT_S * 10))); do
    grep -q '^up$' "$TMP/run.out" && break
    sleep 0.1
  done
  grep -q '^up$' "$TMP/run.out" || fail "the killed run never started: $(cat "$TMP/run.err")"
  kill -9 "$cli" "$sv"
  wait "$cli" 2> /dev/null
  for _ in $(seq 300); do
    running "$sv" || { [ -n "$vmm" ] && running "$vmm"; } || break
    sleep 0.1
  done
  [ -d "$dir" ] || fail "the killed run left no directory ($dir)"

  # Templates: one unused for 30 days (stale), one used now.
  stale=$MSB_HOME/templates/0123456789abcdef
  fresh=$MSB_HOME/templates/fedcba9876543210
  mkdir -p "$stale" "$fresh"
  head -c 65536 /dev/urandom > "$stale/t.state"
  head -c 65536 /dev/urandom > "$fresh/t.state"
  touch -d '30 days ago' "$stale"

  # A pull converting multiplatform's own layer holds its lock: that image and layer stay.
  hold=$(tail -n 1 <<< "$mp_layers")
  # One process holding it (flock(1) would leave a child holding it after a kill).
  python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
time.sleep(300)' "$MSB_HOME/cache/layers/${hold#sha256:}.lock" &
  HOLD_PID=$!
  for _ in $(seq 100); do
    flock -n -x "$MSB_HOME/cache/layers/${hold#sha256:}.lock" true || break
    sleep 0.1
  done

  # What goes: the leftover, busybox (only the leftover used it), shared-b (its own top
  # layer, not the shared base), the stale template.
  exp="sandbox ${dir##*/}
image $BUSYBOX:latest
image $B
image $MULTI:latest
template 0123456789abcdef"
  # busybox's one layer is shared-a's base. multiplatform is listed: its lock is only
  # tried when removing.
  exp+=$'\n'"layer $b_top"$'\n'"layer $hold"
  exp=$(sort <<< "$exp")

  before=$(state)
  msb_capture prune --dry-run
  expect_eq "dry run: exit code" "$RC" 0
  dry=$(grep -v '^Total' <<< "$OUT" | sed -e 's/^Would remove //' -e 's/ (.*)$//' | sort)
  expect_eq "dry run: the list" "$dry" "$exp"
  expect_match "dry run: the total" "$OUT" "Total reclaimable space: [0-9.]+ (KiB|MiB)$"
  expect_eq "dry run: nothing removed" "$(state)" "$before"

  msb_capture prune -f
  expect_eq "prune -f: exit code" "$RC" 0
  expect_eq "prune -f: nothing on stderr" "$ERR" ""
  real=$(grep -v '^Total' <<< "$OUT" | sed -e 's/^Removed //' -e 's/ (.*)$//' | sort)
  # The dry run's list, less what the held lock kept (multiplatform and its own layer).
  expect_eq "removed: the dry run's list but the held image" "$real" \
    "$(grep -v -e multiplatform -e "$hold" <<< "$exp")"
  expect_match "prune -f: the total" "$OUT" "Total reclaimed space: [0-9.]+ (KiB|MiB)$"

  # What stays.
  msb_capture ls
  expect_match "the stopped named sandbox stays" "$OUT" "(^|
)keep +"
  [ -e "$dir" ] && fail "the leftover $dir is still there"
  expect_match "the snapshot stays" "$("$MSB" snapshot ls -q)" "^snap1$"
  expect_match "the volume stays" "$("$MSB" volume ls -q)" "^vol1$"
  expect_match "images kept" "$("$MSB" image ls -q | sort | tr '\n' ' ')" \
    "layered:v1 .*multiplatform:latest .*shared-a:1 $"
  for l in $a_layers $lay_layers $mp_layers; do has_layer "$l" || fail "layer $l of a kept image is gone"; done
  has_layer "$b_top" && fail "shared-b's own layer $b_top is still there"
  has_layer "$base" || fail "the base layer shared-a still uses is gone"
  [ -d "$fresh" ] || fail "the template in use was removed"
  [ -e "$stale" ] && fail "the stale template is still there"

  # The pull lets go: now multiplatform goes too, and nothing reclaimable is left.
  kill "$HOLD_PID" 2> /dev/null
  wait "$HOLD_PID" 2> /dev/null
  HOLD_PID=
  msb_capture image prune -f
  expect_eq "image prune -f: exit code" "$RC" 0
  expect_eq "image prune -f: what went" "$(grep -v '^Total' <<< "$OUT" | sed -e 's/^Removed //' -e 's/ (.*)$//' | sort)" \
    "$(grep -e multiplatform -e "$hold" <<< "$exp")"
  expect_eq "df: nothing reclaimable after prune" "$(reclaimable)" 0
  msb_capture prune -f
  expect_eq "a second prune: output" "$OUT" "Total reclaimed space: 0 B"

  # Boot 3: the kept image still runs.
  msb_capture run -q "$A"
  expect_eq "shared-a runs after prune: exit code" "$RC" 0
  expect_eq "shared-a runs after prune" "$OUT" "a"
  expect_eq "df: still nothing reclaimable" "$(reclaimable)" 0
  "$MSB" rm keep > /dev/null 2>&1
  expect_no_leftovers
}

run_tests
