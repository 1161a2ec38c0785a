#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Snapshots (disk, and --full with memory and processes), --from-snapshot, branches, and
# pause/resume, on real VMs.
source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs

rlog() { cat "$MSB_HOME/sandboxes/$1/logs/runtime.log"; }
json_of() { "$MSB" snapshot inspect "$1" | python3 -c "import json,sys; j=json.load(sys.stdin); print($2)"; }

# A process that keeps a secret only in its memory and tells it when asked (/tmp/ask).
KEEPER='s=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d " \n"); echo "$s" > /root/told;
while :; do if [ -e /tmp/ask ]; then echo "$s" > /tmp/answer.new; mv /tmp/answer.new /tmp/answer; rm -f /tmp/ask; fi; sleep 0.1; done'

# Guest shell: asks the keeper and prints its answer (nothing if none came in 30 s).
ASK='rm -f /tmp/answer; touch /tmp/ask; i=0; while [ ! -s /tmp/answer ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; cat /tmp/answer 2>/dev/null'

# Guest shell: how many keepers run.
KEEPERS='echo "keepers $(ps | grep -c "[t]mp/ask")"'

# start_keeper SANDBOX: starts the keeper there and checks it answers; sets TOLD (its secret).
# The answer is removed again, so that only a running keeper can make the next one.
start_keeper() {
  local answer
  "$MSB" exec "$1" -- sh -c "setsid sh -c '$KEEPER' > /dev/null 2>&1 < /dev/null &" ||
    fail "starting the keeper in $1"
  answer=$("$MSB" exec "$1" -- sh -c "$ASK; rm -f /tmp/answer")
  TOLD=$("$MSB" exec "$1" -- cat /root/told)
  expect_match "$1: the keeper keeps a secret" "$TOLD" '^[0-9a-f]{16}$'
  expect_eq "$1: the keeper answers before the snapshot" "$answer" "$TOLD"
  expect_eq "$1: ps sees the keeper" "$("$MSB" exec "$1" -- sh -c "$KEEPERS")" "keepers 1"
}

test_full_snapshot_keeps_files_and_running_processes() {
  "$MSB" create --name src --rootfs "$SQFS" > /dev/null || fail "create src"
  "$MSB" exec src -- sh -c "echo kept > /root/file" || fail "write /root/file"
  start_keeper src
  msb_capture snapshot create full1 --from src --full
  expect_eq "snapshot create: exit code" "$RC" 0
  expect_eq "it prints the name" "$OUT" full1
  expect_match "the pause is reported" "$ERR" "sandbox paused [0-9]+ ms .*memory [0-9.]+ [KMG]iB"
  expect_eq "kind" "$(json_of full1 'j["kind"]')" full
  expect_eq "taken of" "$(json_of full1 'j["sandbox"]')" src
  expect_match "pause recorded" "$(json_of full1 'j["pause_ms"]')" "^[0-9]+$"
  expect_match "ls lists it" "$("$MSB" snapshot ls)" "full1 +full +src"
  # The source runs on, unchanged.
  msb_capture exec src -- cat /root/file
  expect_eq "the source still runs" "$OUT" kept
  local told=$TOLD
  msb_capture run --from-snapshot full1 -- sh -c "cat /root/file; $ASK; hostname"
  expect_eq "restored: exit code" "$RC" 0
  expect_eq "the file is there" "$(sed -n 1p <<< "$OUT")" kept
  expect_eq "the process answers with the secret it held in memory" "$(sed -n 2p <<< "$OUT")" "$told"
  expect_match "a sandbox of its own name" "$(sed -n 3p <<< "$OUT")" "^msb-"
  # A persistent one: its first start resumes the saved guest, later ones boot from its disk.
  "$MSB" create --name fromfull --from-snapshot full1 > /dev/null || fail "create --from-snapshot"
  expect_match "restored, not booted" "$(rlog fromfull)" "restored the saved guest in [0-9]+ ms"
  msb_capture exec fromfull -- cat /root/file
  expect_eq "its file" "$OUT" kept
  "$MSB" stop fromfull || fail "stop fromfull"
  "$MSB" start fromfull > /dev/null || fail "start fromfull"
  msb_capture exec fromfull -- sh -c 'cat /root/file; ls /tmp/answer 2>&1 | head -c 0; cat /root/told'
  expect_eq "after a restart the disk is the snapshot's" "$OUT" "kept
$told"
  "$MSB" rm -f src fromfull > /dev/null
  # The snapshot outlives its sandbox.
  msb_capture run --from-snapshot full1 -- cat /root/file
  expect_eq "a snapshot outlives its sandbox" "$OUT" kept
  msb_capture snapshot rm full1
  expect_eq "snapshot rm" "$RC" 0
  expect_eq "gone" "$("$MSB" snapshot ls -q)" ""
  expect_no_leftovers
}

test_disk_snapshot_of_a_running_and_a_stopped_sandbox() {
  "$MSB" create --name d --rootfs "$SQFS" > /dev/null || fail "create d"
  "$MSB" exec d -- sh -c "echo one > /root/v" || fail "write /root/v"
  # A running process, so that "no processes" after the restore means something.
  start_keeper d
  msb_capture snapshot create disk1 --from d
  expect_eq "disk snapshot of a running sandbox" "$RC" 0
  expect_eq "kind" "$(json_of disk1 'j["kind"]')" disk
  "$MSB" exec d -- sh -c 'echo two > /root/v' || fail "write two"
  "$MSB" stop d || fail "stop d"
  msb_capture snapshot create disk2 --from d
  expect_eq "disk snapshot of a stopped sandbox" "$RC" 0
  expect_match "said so" "$ERR" "stopped sandbox's disk"
  msb_capture run --from-snapshot disk1 -- sh -c "cat /root/v; $KEEPERS"
  expect_eq "disk1: the file as it was, no processes" "$OUT" "one
keepers 0"
  msb_capture run --from-snapshot disk2 -- cat /root/v
  expect_eq "disk2: the later file" "$OUT" two
  # An ephemeral sandbox keeps its writes in memory: only --full can take them.
  "$MSB" run -d --rootfs "$SQFS" -- sleep 600 > "$TMP/eph"
  msb_capture snapshot create e1 --from "$(cat "$TMP/eph")"
  expect_eq "disk snapshot of an ephemeral sandbox: refused" "$RC" 125
  expect_one_error_line "$ERR" "sandbox msb-[0-9a-f]+ keeps its writes in memory .*--full"
  msb_capture snapshot create e1 --from "$(cat "$TMP/eph")" --full
  expect_eq "--full of an ephemeral sandbox" "$RC" 0
  "$MSB" snapshot rm e1 > /dev/null || fail "snapshot rm e1"
  "$MSB" rm -f "$(cat "$TMP/eph")" d > /dev/null
  "$MSB" snapshot rm disk1 disk2 > /dev/null
  expect_no_leftovers
}

test_branch_runs_on_independently() {
  local p c
  "$MSB" create --name parent --rootfs "$SQFS" > /dev/null
  "$MSB" exec parent -- sh -c 'echo before > /root/f'
  msb_capture branch parent child
  expect_eq "branch: exit code" "$RC" 0
  expect_eq "it prints the new name" "$OUT" child
  expect_match "the parent's pause is reported" "$ERR" "sandbox paused [0-9]+ ms"
  expect_eq "both run" "$("$MSB" ls --running -q 2> /dev/null | sort | tr '\n' ' ')" "child parent "
  "$MSB" exec child -- sh -c 'echo child > /root/f; echo only-child > /root/c'
  "$MSB" exec parent -- sh -c 'echo parent > /root/f'
  p=$("$MSB" exec parent -- sh -c 'cat /root/f; ls /root; hostname; cat /sys/class/net/eth0/address; head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n"')
  c=$("$MSB" exec child -- sh -c 'cat /root/f; ls /root; hostname; cat /sys/class/net/eth0/address; head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n"')
  expect_eq "the parent's files" "$(sed -n 1,2p <<< "$p" | tr '\n' ' ')" "parent f "
  expect_eq "the child's files" "$(sed -n 1,3p <<< "$c" | tr '\n' ' ')" "child c f "
  expect_eq "hostnames" "$(tail -n 3 <<< "$p" | head -n 1) $(tail -n 3 <<< "$c" | head -n 1)" "parent child"
  [ "$(tail -n 2 <<< "$p" | head -n 1)" != "$(tail -n 2 <<< "$c" | head -n 1)" ] || fail "same MAC in parent and child"
  [ "$(tail -n 1 <<< "$p")" != "$(tail -n 1 <<< "$c")" ] || fail "same random bytes in parent and child"
  # Bad input: one line each, exit 125.
  msb_capture branch nosuch other
  expect_eq "branch of an unknown sandbox" "$RC" 125
  expect_one_error_line "$ERR" "sandbox nosuch: not found"
  msb_capture branch parent child
  expect_eq "branch onto an existing name" "$RC" 125
  expect_one_error_line "$ERR" "sandbox child already exists"
  "$MSB" stop child || fail "stop child"
  msb_capture branch child grandchild
  expect_eq "branch of a stopped sandbox" "$RC" 125
  expect_one_error_line "$ERR" "sandbox child is not running"
  "$MSB" rm -f parent child > /dev/null
  expect_no_leftovers
}

test_pause_and_resume() {
  "$MSB" create --name pz --rootfs "$SQFS" > /dev/null
  "$MSB" exec pz -- sh -c 'date +%s > /root/t0'
  msb_capture pause pz
  expect_eq "pause: exit code" "$RC" 0
  expect_match "ls says paused" "$("$MSB" ls)" "pz +.* paused"
  msb_capture exec pz -- true
  expect_eq "exec on a paused sandbox" "$RC" 125
  expect_one_error_line "$ERR" "sandbox pz is paused \\(msb resume pz\\)"
  msb_capture pause pz
  expect_one_error_line "$ERR" "sandbox pz is already paused"
  msb_capture resume pz
  expect_eq "resume: exit code" "$RC" 0
  msb_capture exec pz -- echo back
  expect_eq "runs again" "$OUT" back
  msb_capture resume pz
  expect_one_error_line "$ERR" "sandbox pz is not paused"
  "$MSB" pause pz > /dev/null
  msb_capture stop pz
  expect_eq "a paused sandbox stops" "$RC" 0
  expect_match "stopped" "$("$MSB" ls)" "pz +.* stopped"
  msb_capture pause pz
  expect_eq "pause of a stopped sandbox" "$RC" 125
  expect_one_error_line "$ERR" "sandbox pz is not running"
  msb_capture pause nosuch
  expect_one_error_line "$ERR" "sandbox nosuch: not found"
  "$MSB" rm -f pz > /dev/null
  expect_no_leftovers
}

test_bad_input_is_one_line() {
  "$MSB" create --name b --rootfs "$SQFS" > /dev/null
  msb_capture snapshot create s1 --from nosuch
  expect_eq "unknown sandbox" "$RC" 125
  expect_one_error_line "$ERR" "sandbox nosuch: not found"
  msb_capture snapshot create 'bad name' --from b
  expect_eq "bad snapshot name" "$RC" 125
  expect_one_error_line "$ERR" "invalid snapshot name"
  msb_capture snapshot create s1
  expect_one_error_line "$ERR" "snapshot create: --from SANDBOX is required"
  "$MSB" snapshot create s1 --from b > /dev/null 2>&1 || fail "snapshot create s1"
  msb_capture snapshot create s1 --from b
  expect_eq "existing snapshot" "$RC" 125
  expect_one_error_line "$ERR" "snapshot s1 already exists"
  "$MSB" stop b || fail "stop b"
  msb_capture snapshot create s2 --from b --full
  expect_eq "--full of a stopped sandbox" "$RC" 125
  expect_one_error_line "$ERR" "sandbox b is not running: --full takes its memory"
  msb_capture run --from-snapshot nosuch -- true
  expect_eq "unknown snapshot" "$RC" 125
  expect_one_error_line "$ERR" "snapshot nosuch: not found"
  msb_capture run --from-snapshot s1 --cpus 2 -- true
  expect_eq "--cpus with --from-snapshot" "$RC" 125
  expect_one_error_line "$ERR" "run: --cpus cannot be used with --from-snapshot"
  msb_capture snapshot inspect nosuch
  expect_eq "inspect of an unknown snapshot" "$RC" 125
  expect_one_error_line "$ERR" "snapshot nosuch: not found"
  msb_capture snapshot rm nosuch
  expect_eq "rm of an unknown snapshot" "$RC" 125
  expect_one_error_line "$ERR" "snapshot nosuch: not found"
  expect_eq "nothing half-made is left" "$(ls -A "$MSB_HOME/snapshots")" s1
  "$MSB" snapshot rm s1 > /dev/null
  "$MSB" rm -f b > /dev/null
  expect_no_leftovers
}

test_snapshot_restores_only_onto_its_own_image() {
  local reg=$TMP/reg
  "$E2E_ROOT/tests/fixtures/registry.sh" start "$reg" > "$TMP/reg.log" 2>&1 || {
    fail "registry did not start"
    cat "$TMP/reg.log"
    return
  }
  # shellcheck disable=SC1091
  source "$reg/env"
  "$E2E_ROOT/tests/fixtures/images.sh" "$FIX/images" > /dev/null || fail "test images did not build"
  local img tag
  for img in busybox:latest layered:v1; do
    tag=${img#*:}
    img=${img%:*}
    skopeo --policy "$reg/policy.json" copy -q --dest-tls-verify=false \
      "oci:$FIX/images/$img:$tag" "docker://$PLAIN/test/$img:$tag" > /dev/null || fail "push $img"
  done
  echo "{\"registries\": {\"hosts\": {\"$PLAIN\": {\"insecure\": true}}}}" > "$MSB_HOME/config.json"
  "$MSB" create -q --name im "$PLAIN/test/busybox:latest" > /dev/null || fail "create from the image"
  "$MSB" exec im -- sh -c 'echo img > /root/f'
  "$MSB" snapshot create imsnap --from im --full > /dev/null 2>&1 || fail "snapshot of an image's sandbox"
  expect_match "the image digest is recorded" "$(json_of imsnap 'j["image_digest"]')" "^sha256:[0-9a-f]{64}$"
  msb_capture run -q --from-snapshot imsnap "$PLAIN/test/layered:v1" -- true
  expect_eq "onto another image: refused" "$RC" 125
  expect_one_error_line "$ERR" "snapshot imsnap was taken of .* not of .*layered.*restores only onto its own image"
  msb_capture run -q --from-snapshot imsnap "$PLAIN/test/busybox:latest" -- cat /root/f
  expect_eq "onto its own image" "$OUT" img
  "$MSB" rm -f im > /dev/null
  "$MSB" rmi -q "$PLAIN/test/busybox:latest" "$PLAIN/test/layered:v1" > /dev/null 2>&1
  msb_capture run --from-snapshot imsnap -- cat /root/f
  expect_eq "the snapshot keeps its layers when the image is gone" "$OUT" img
  "$MSB" snapshot rm imsnap > /dev/null
  "$E2E_ROOT/tests/fixtures/registry.sh" stop "$reg" > /dev/null 2>&1
  rm -f "$MSB_HOME/config.json"
  expect_no_leftovers
}

# Memory cannot be saved with a shared directory mounted (QEMU 7.2, 9p): refused before the
# guest is paused, with the reason; the disk snapshot of the same sandbox is the control.
test_shared_directories_refuse_memory_snapshots_before_pausing() {
  mkdir -p "$TMP/shared"
  "$MSB" create --name shr --rootfs "$SQFS" -v "$TMP/shared:/v" > /dev/null || fail "create shr"
  msb_capture snapshot create shfull --from shr --full
  expect_eq "--full with a share: exit code" "$RC" 125
  expect_one_error_line "$ERR" ".*sandbox shr shares host directories \(-v, --rootfs-bind\), and the memory of a VM with a shared directory cannot be saved; snapshot its disk without --full"
  msb_capture branch shr shr2
  expect_eq "branch with a share: exit code" "$RC" 125
  expect_match "branch: the same reason" "$ERR" "shares host directories"
  [[ "$(rlog shr)" != *"paused"* ]] || fail "the guest was paused before the refusal"
  msb_capture exec shr -- sh -c 'echo still > /v/f; cat /v/f'
  expect_eq "the sandbox runs on, its share too" "$OUT" still
  msb_capture snapshot create shdisk --from shr
  expect_eq "a disk snapshot of it works: exit code" "$RC" 0
  expect_eq "no half-made snapshots" "$("$MSB" snapshot ls -q | sort | tr '\n' ' ')" "shdisk "
  "$MSB" rm -f shr > /dev/null
  "$MSB" snapshot rm shdisk > /dev/null
  expect_no_leftovers
}

# A --full snapshot whose memory is damaged: the new sandbox is not kept, and the message
# says exactly that.
test_damaged_memory_fails_the_create_and_says_so() {
  "$MSB" create --name dsrc --rootfs "$SQFS" > /dev/null || fail "create dsrc"
  "$MSB" snapshot create dfull --from dsrc --full > /dev/null 2>&1 || fail "snapshot dfull"
  local mem=$MSB_HOME/snapshots/dfull/memory.state
  [ -s "$mem" ] || { fail "no memory.state"; return; }
  head -c 4096 /dev/urandom | dd of="$mem" bs=1 seek=0 conv=notrunc 2> /dev/null
  msb_capture create --name dnew --from-snapshot dfull
  expect_eq "exit code" "$RC" 125
  expect_match "one line that says the sandbox was not kept" "$ERR" \
    "^msb: .*sandbox dnew: the memory of the snapshot it was made from could not be restored .*the sandbox was not kept"
  expect_eq "and it was not" "$("$MSB" ls -q | grep -c '^dnew$')" 0
  "$MSB" rm -f dsrc > /dev/null
  "$MSB" snapshot rm dfull > /dev/null
  expect_no_leftovers
}

run_tests
