#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Warm start: the first start of a machine shape makes its template, later starts restore
# it; restored guests are unique; damaged or outdated templates never fail a start.
source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs

# runtime.log of a named sandbox.
rlog() { cat "$MSB_HOME/sandboxes/$1/logs/runtime.log"; }

templates() { find "$MSB_HOME/templates" -name '*.state' 2> /dev/null | sort; }

test_first_start_makes_the_template_later_ones_restore_it() {
  rm -rf "$MSB_HOME/templates"
  msb_capture run --name wa --rootfs "$SQFS" -- echo first
  expect_eq "output of the start that made the template" "$OUT" first
  expect_match "it made the template" "$(rlog wa)" "warm start: template [0-9a-f]{16} made in [0-9]+ ms"
  expect_match "and restored it" "$(rlog wa)" "warm start: restored template"
  expect_eq "one template" "$(templates | wc -l)" 1
  msb_capture run --name wb --rootfs "$SQFS" -- echo second
  expect_eq "output of a warm start" "$OUT" second
  expect_match "restored" "$(rlog wb)" "warm start: restored template [0-9a-f]{16} in [0-9]+ ms"
  [[ "$(rlog wb)" != *"made in"* ]] || fail "a second template was made"
  msb_capture run --name wc --cold --rootfs "$SQFS" -- echo cold
  expect_eq "--cold output" "$OUT" cold
  expect_match "--cold booted" "$(rlog wc)" "sandbox ready: "
  [[ "$(rlog wc)" != *"warm start"* ]] || fail "--cold restored a template"
  msb_capture start wa
  expect_eq "start" "$RC" 0
  msb_capture exec wa -- echo started-again
  expect_eq "msb start restores too" "$OUT" started-again
  expect_eq "a restored start logs it" "$(rlog wa | grep -c 'restored template')" 2
  msb_capture rm -f wa wb wc
  expect_no_leftovers
}

# Seconds a restored guest's clock may be off the host's (date +%s rounds down on both sides).
CLOCK_TOLERANCE=3

test_restored_guests_are_unique() {
  local a b made t0 t1 i v t
  local probe='head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n"; echo; cat /proc/sys/kernel/random/boot_id; hostname; ip -4 -o addr show eth0 | awk "{print \$4}"; cat /sys/class/net/eth0/address; date +%s'
  rm -rf "$MSB_HOME/templates"
  msb_capture run --name u0 --rootfs "$SQFS" -- true # makes the template of the named shape
  expect_match "the template was made" "$(rlog u0)" "warm start: template [0-9a-f]{16} made"
  made=$(date +%s)
  # A restored guest wakes with the template's clock: with the template older than the
  # tolerance (and a margin for the guest's own seconds since restore), a clock that
  # nobody set is seen. A deliberate wait, not a readiness one.
  while [ $(($(date +%s) - made)) -lt $((CLOCK_TOLERANCE + 12)) ]; do sleep 1; done
  t0=$(date +%s)
  a=$("$MSB" run --name one -H one --rootfs "$SQFS" -- sh -c "$probe")
  b=$("$MSB" run --name two -H two --rootfs "$SQFS" -- sh -c "$probe")
  t1=$(date +%s)
  expect_match "the first guest was restored" "$(rlog one)" "warm start: restored template [0-9a-f]{16} in"
  expect_match "the second guest was restored" "$(rlog two)" "warm start: restored template [0-9a-f]{16} in"
  expect_match "random bytes" "$(sed -n 1p <<< "$a")" '^[0-9a-f]{32}$'
  expect_match "boot id" "$(sed -n 2p <<< "$a")" '^[0-9a-f-]{36}$'
  expect_match "MAC" "$(sed -n 5p <<< "$a")" '^([0-9a-f]{2}:){5}[0-9a-f]{2}$'
  for i in 1 2 3 5; do
    [ "$(sed -n ${i}p <<< "$a")" != "$(sed -n ${i}p <<< "$b")" ] ||
      fail "line $i is the same in two restored guests: $(sed -n ${i}p <<< "$a")"
  done
  expect_eq "hostnames" "$(sed -n 3p <<< "$a") $(sed -n 3p <<< "$b")" "one two"
  for v in "$a" "$b"; do
    t=$(sed -n 6p <<< "$v")
    [[ "$t" =~ ^[0-9]+$ ]] && [ "$t" -ge $((t0 - CLOCK_TOLERANCE)) ] &&
      [ "$t" -le $((t1 + CLOCK_TOLERANCE)) ] ||
      fail "guest clock $t, host $t0..$t1 (the template is $((t0 - made)) s old)"
  done
  "$MSB" rm -f u0 one two > /dev/null
  expect_no_leftovers
}

test_changed_kernel_or_initramfs_makes_a_new_template() {
  local lib
  lib=$(mktemp -d /tmp/msb-e2e-lib.XXXXXX)
  cp "$BUILD/vmlinux" "$BUILD/initrd.cpio" "$lib/"
  # Templates of shapes unused for weeks go when a new one is made; recent ones stay.
  mkdir -p "$MSB_HOME/templates/0123456789abcdef" "$MSB_HOME/templates/fedcba9876543210"
  touch -d '30 days ago' "$MSB_HOME/templates/0123456789abcdef"
  MSB_LIB_DIR=$lib "$MSB" run --name k1 --rootfs "$SQFS" -- true
  expect_match "a template for this kernel" "$(rlog k1)" "template [0-9a-f]{16} made"
  expect_match "the stale one is pruned" "$(rlog k1)" "removed template 0123456789abcdef, unused for 30 days"
  [ ! -e "$MSB_HOME/templates/0123456789abcdef" ] || fail "a template unused for 30 days is still there"
  [ -d "$MSB_HOME/templates/fedcba9876543210" ] || fail "a recently used template was pruned"
  touch "$lib/initrd.cpio"
  MSB_LIB_DIR=$lib "$MSB" run --name k2 --rootfs "$SQFS" -- echo after-touch > "$TMP/out"
  expect_eq "output" "$(cat "$TMP/out")" after-touch
  expect_match "a new initramfs is a new template" "$(rlog k2)" "template [0-9a-f]{16} made"
  MSB_LIB_DIR=$lib "$MSB" run --name k3 --rootfs "$SQFS" -- true
  expect_match "then warm again" "$(rlog k3)" "restored template"
  [[ "$(rlog k3)" != *"made in"* ]] || fail "made a template again"
  "$MSB" rm -f k1 k2 k3 > /dev/null
  rm -rf "$lib"
  expect_no_leftovers
}

test_a_damaged_template_boots_cold() {
  local t
  rm -rf "$MSB_HOME/templates"
  msb_capture run --name dmg0 --rootfs "$SQFS" -- true # the shape of the named sandboxes below
  t=$(templates | head -n 1)
  [ -n "$t" ] || { fail "no template"; return; }
  printf 'damage' | dd of="$t" bs=1 seek=4096 conv=notrunc 2> /dev/null
  msb_capture run --name dmg --rootfs "$SQFS" -- echo still-runs
  expect_eq "exit code" "$RC" 0
  expect_eq "output" "$OUT" still-runs
  expect_match "one line says why" "$(rlog dmg)" "does not match its checksum; removed; booting cold"
  [ ! -e "$t" ] || fail "the damaged template was kept"
  msb_capture run --name dmg2 --rootfs "$SQFS" -- true
  expect_match "the next start makes it again" "$(rlog dmg2)" "template [0-9a-f]{16} made"
  msb_capture rm -f dmg0 dmg dmg2
  expect_no_leftovers
}

test_warm_start_with_volumes_and_a_disk() {
  mkdir -p "$TMP/vol"
  echo from-host > "$TMP/vol/f"
  msb_capture run --name wv --rootfs "$SQFS" -v "$TMP/vol:/v" -- cat /v/f
  expect_eq "a shape with shares" "$OUT" from-host
  msb_capture start wv
  expect_eq "start" "$RC" 0
  msb_capture exec wv -- sh -c 'echo kept > /root/k; cat /v/f'
  expect_eq "restored with the share and its upper disk" "$OUT" from-host
  expect_match "restored" "$(rlog wv)" "restored template"
  msb_capture stop wv
  expect_eq "stop" "$RC" 0
  msb_capture start wv
  expect_eq "start again" "$RC" 0
  msb_capture exec wv -- cat /root/k
  expect_eq "the writable disk is this sandbox's, not the template's" "$OUT" kept
  msb_capture rm -f wv
  expect_no_leftovers
}

run_tests
