#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Volumes: host directories and files, named volumes (directories and quota disks),
# tmpfs, and the escapes a guest may try through a mount. Real VMs, real host files.
source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs
USER_NAME=msb-e2e-vol

# A fresh source directory with one file, and a host file beside it that no test may touch.
fresh_src() {
  rm -rf "$TMP/src" "$TMP/outside"
  mkdir -p "$TMP/src/sub" "$TMP/outside"
  echo from-host > "$TMP/src/a.txt"
  echo untouched > "$TMP/outside/secret"
}

expect_outside_untouched() {
  expect_eq "$1: the host file outside the source" "$(cat "$TMP/outside/secret")" untouched
  expect_eq "$1: nothing new outside the source" "$(ls -A "$TMP/outside")" secret
}

test_bind_dir_rw_both_ways() {
  fresh_src
  msb_capture run --rootfs "$SQFS" -v "$TMP/src:/app" -- sh -c \
    'cat /app/a.txt; echo from-guest > /app/g.txt; mkdir /app/d; printf "#!/bin/sh\necho ran\n" > /app/d/x.sh; chmod 755 /app/d/x.sh; /app/d/x.sh'
  expect_eq "exit code" "$RC" 0
  expect_eq "guest reads host, runs what it wrote" "$OUT" $'from-host\nran'
  expect_eq "host sees the guest's file" "$(cat "$TMP/src/g.txt")" from-guest
  [ -x "$TMP/src/d/x.sh" ] || fail "the exec bit reached the host"
  expect_eq "owned by the user who ran msb" "$(stat -c %u "$TMP/src/g.txt")" "$(id -u)"
  expect_no_leftovers
}

test_bind_ro_holds_even_for_guest_root() {
  fresh_src
  rm -rf "$TMP/rw" && mkdir -p "$TMP/rw" && echo from-host > "$TMP/rw/a.txt"
  # The same writes through a read-write mount of the same guest are the control.
  msb_capture run --rootfs "$SQFS" -v "$TMP/src:/ro:ro" -v "$TMP/rw:/rw" -- sh -c \
    'cat /ro/a.txt; echo x > /ro/a.txt || echo refused; mount -o remount,rw /ro && echo remounted; echo y > /ro/new 2>&1 || echo refused-again; rm /ro/a.txt 2>/dev/null || echo kept
     echo x > /rw/a.txt && echo y > /rw/new && rm /rw/a.txt && echo rw-took-them'
  expect_eq "exit code" "$RC" 0
  expect_match "writes refused, also after a guest remount" "$OUT" \
    $'^from-host\nrefused\n(remounted\n)?refused-again\nkept\nrw-took-them$'
  expect_eq "host file unchanged" "$(cat "$TMP/src/a.txt")" from-host
  [ ! -e "$TMP/src/new" ] || fail "a file appeared in the read-only source"
  expect_eq "the read-write mount took the same writes" "$(ls "$TMP/rw")" new
  expect_no_leftovers
}

test_single_file_mount_and_noexec() {
  fresh_src
  printf '#!/bin/sh\necho ran\n' > "$TMP/src/tool.sh"
  chmod 755 "$TMP/src/tool.sh"
  echo config-v1 > "$TMP/conf"
  # The same tool through a mount without noexec runs: the control.
  msb_capture run --rootfs "$SQFS" -v "$TMP/conf:/etc/app.conf:ro" -v "$TMP/src:/bin2:noexec" \
    -v "$TMP/src:/bin3" -- sh -c 'cat /etc/app.conf; /bin2/tool.sh 2>/dev/null || echo noexec-held; /bin3/tool.sh; ls /etc/app.conf'
  expect_eq "exit code" "$RC" 0
  expect_eq "file mount read, noexec holds" "$OUT" $'config-v1\nnoexec-held\nran\n/etc/app.conf'
  expect_no_leftovers
}

test_sixteen_mounts_in_one_sandbox() {
  local args=() i script=""
  for i in $(seq 1 17); do
    mkdir -p "$TMP/many/$i"
    echo "v$i" > "$TMP/many/$i/f"
    args+=(-v "$TMP/many/$i:/m/$i")
    script+="cat /m/$i/f; echo w$i > /m/$i/g; "
  done
  msb_capture run --rootfs "$SQFS" "${args[@]}" -- sh -c "$script"
  expect_eq "exit code" "$RC" 0
  expect_eq "every mount read" "$(echo $OUT)" "$(echo v{1..17})"
  expect_eq "every mount written" "$(cat "$TMP"/many/{1..17}/g | tr '\n' ' ')" "$(echo w{1..17}) "
  rm -rf "$TMP/many"
  expect_no_leftovers
}

test_live_visibility_while_running() {
  fresh_src
  msb_capture create --name live --rootfs "$SQFS" -v "$TMP/src:/app"
  expect_eq "create" "$RC" 0
  echo written-later > "$TMP/src/later.txt"
  msb_capture exec live -- cat /app/later.txt
  expect_eq "guest sees a host write at once" "$OUT" written-later
  msb_capture exec live -- sh -c 'echo guest-now > /app/now.txt'
  expect_eq "host sees a guest write at once" "$(cat "$TMP/src/now.txt")" guest-now
  msb_capture stop live
  expect_eq "stop" "$RC" 0
  msb_capture start live
  expect_eq "start" "$RC" 0
  msb_capture exec live -- cat /app/a.txt
  expect_eq "the mount comes back after stop and start" "$OUT" from-host
  msb_capture inspect --format json live
  expect_match "inspect shows the mount" "$OUT" "\"destination\": \"/app\""
  expect_match "inspect shows its host path" "$OUT" "\"host_path\": \"$TMP/src\""
  msb_capture rm -f live
  expect_eq "rm keeps the bind source" "$(cat "$TMP/src/a.txt")" from-host
  expect_no_leftovers
}

test_escape_dotdot_and_planted_symlinks() {
  fresh_src
  msb_capture run --rootfs "$SQFS" -v "$TMP/src:/app" -- sh -c "
    cat /app/../../$TMP/outside/secret 2>/dev/null && echo read-outside
    echo pwned > /app/../../$TMP/outside/secret 2>/dev/null
    ln -s $TMP/outside /app/link; echo pwned > /app/link/secret 2>/dev/null
    ln -s ../outside /app/rel; echo pwned > /app/rel/secret 2>/dev/null
    ln -s $TMP/outside/secret /app/filelink; echo pwned > /app/filelink 2>/dev/null
    cd /app/sub && cd ../.. && pwd
    true"
  expect_eq "exit code" "$RC" 0
  expect_eq "'..' leaves the mount into the guest's own root" "$OUT" "/"
  expect_outside_untouched "symlinks and .."
  expect_eq "the planted symlink is only a symlink on the host" "$(readlink "$TMP/src/link")" "$TMP/outside"
  expect_no_leftovers
}

test_escape_hardlinks_and_renames_across_mounts() {
  fresh_src
  mkdir -p "$TMP/src2"
  echo two > "$TMP/src2/b.txt"
  # Links and a rename inside one mount are the control.
  msb_capture run --rootfs "$SQFS" -v "$TMP/src:/a" -v "$TMP/src2:/b:ro" -- sh -c '
    ln /b/b.txt /a/hard 2>/dev/null && echo linked
    ln /etc/passwd /a/passwd 2>/dev/null && echo linked-passwd
    mv /a/a.txt /b/moved 2>/dev/null && echo moved
    rmdir /a 2>/dev/null && echo removed-root; mv /a /elsewhere 2>/dev/null && echo moved-root
    ln /a/a.txt /a/sub/hard-within && mv /a/sub/hard-within /a/renamed-within && echo within-ok
    cat /a/a.txt'
  expect_eq "exit code" "$RC" 0
  expect_eq "no links or moves across mounts; inside one they work" "$OUT" $'within-ok\nfrom-host'
  [ ! -e "$TMP/src/hard" ] && [ ! -e "$TMP/src/passwd" ] && [ ! -e "$TMP/src2/moved" ] ||
    fail "a link or a move crossed a mount"
  expect_eq "the link made inside the mount is a hard link on the host" \
    "$(stat -c %h "$TMP/src/renamed-within" 2>&1)" 2
  expect_eq "the other source untouched" "$(ls "$TMP/src2")" b.txt
  expect_no_leftovers
}

test_escape_rename_while_the_host_swaps_a_directory() {
  fresh_src
  mkdir -p "$TMP/src/d"
  # The host flips src/d between a real directory and a symlink to outside while the
  # guest creates and renames files in it: the server must never follow the link.
  # It swaps until the guest is done, however long the boot takes.
  rm -f "$TMP/swap.stop"
  (
    while [ ! -e "$TMP/swap.stop" ]; do
      mv "$TMP/src/d" "$TMP/src/d.real" 2> /dev/null && ln -sfn "$TMP/outside" "$TMP/src/d"
      rm -f "$TMP/src/d" && mv "$TMP/src/d.real" "$TMP/src/d" 2> /dev/null
    done
  ) &
  local swapper=$!
  msb_capture run --rootfs "$SQFS" -v "$TMP/src:/app" -- sh -c '
    i=0; while [ $i -lt 300 ]; do
      echo pwned > /app/d/f$i 2>/dev/null; mv /app/d/f$i /app/d/secret 2>/dev/null
      echo pwned > /app/d/secret 2>/dev/null; i=$((i+1)); done; echo done'
  touch "$TMP/swap.stop"
  wait "$swapper"
  expect_eq "exit code" "$RC" 0
  expect_eq "guest loop finished" "$OUT" done
  expect_outside_untouched "rename race"
  expect_no_leftovers
}

test_symlink_source_and_bad_input_are_one_line() {
  local bad
  fresh_src
  ln -sfn "$TMP/src" "$TMP/srclink"
  for bad in "$TMP/srclink:/app|is a symlink; give the path it points to \\($TMP/src\\)" \
    "$TMP/nope:/app|$TMP/nope: No such file or directory" \
    "$TMP/src:app|the destination must be an absolute path" \
    "$TMP/src:/|the destination must be an absolute path" \
    "$TMP/src:/app:rx|unknown option \"rx\"" \
    "nosuchvol:/data|no such volume: nosuchvol" \
    "$TMP/src|use SOURCE:DEST"; do
    msb_capture run --name badvol --rootfs "$SQFS" -v "${bad%%|*}" -- true
    expect_eq "exit code for -v ${bad%%|*}" "$RC" 125
    expect_one_error_line "$ERR" ".*${bad#*|}"
  done
  msb_capture run --rootfs "$SQFS" -v "$TMP/src:/x" -v "$TMP/src:/x" -- true
  expect_eq "exit code for a destination given twice" "$RC" 125
  expect_one_error_line "$ERR" ".*/x is already a mount destination"
  msb_capture ls -q
  expect_eq "nothing created" "$OUT" ""
  msb_capture volume create twice
  expect_eq "volume create" "$RC" 0
  msb_capture volume create twice
  expect_eq "volume name in use" "$RC" 125
  expect_one_error_line "$ERR" "volume twice already exists"
  for bad in "--size 12Q" "--size 0" "--size 1M"; do
    msb_capture volume create q-bad $bad
    expect_eq "exit code for $bad" "$RC" 125
    expect_one_error_line "$ERR" "(invalid --size|volume size .* is too small)"
  done
  msb_capture volume ls -q
  expect_eq "only the good volume exists" "$OUT" twice
  [ -z "$(find "$MSB_HOME/volumes" -maxdepth 1 -name '.*' -print -quit)" ] ||
    fail "a half-made volume was left"
  msb_capture volume rm twice
  expect_no_leftovers
}

test_named_volume_shared_and_outlives_its_sandboxes() {
  msb_capture volume create shared
  expect_eq "create" "$RC" 0
  msb_capture create --name va --rootfs "$SQFS" -v shared:/data
  expect_eq "create va" "$RC" 0
  msb_capture create --name vb --rootfs "$SQFS" -v shared:/data
  expect_eq "create vb" "$RC" 0
  msb_capture exec va -- sh -c 'echo from-a > /data/a.txt'
  msb_capture exec vb -- cat /data/a.txt
  expect_eq "b sees a's write" "$OUT" from-a
  msb_capture volume inspect --format json shared
  expect_match "inspect names both users" "$(echo $OUT)" '"sandboxes": \[ "va", "vb" \]'
  msb_capture volume rm shared
  expect_eq "rm of a volume in use" "$RC" 125
  expect_one_error_line "$ERR" "volume shared is in use by running sandbox va \\(stop it first\\)"
  msb_capture volume rm -f shared
  expect_eq "rm -f of a volume in use" "$RC" 125
  expect_one_error_line "$ERR" "volume shared is in use by running sandbox va \\(stop it first\\)"
  msb_capture stop va vb
  expect_eq "stop" "$RC" 0
  msb_capture volume rm shared
  expect_eq "rm of a volume of stopped sandboxes" "$RC" 125
  expect_one_error_line "$ERR" "volume shared is in use by sandbox va and others \\(remove the sandbox first, or use -f\\)"
  msb_capture rm -f va vb
  msb_capture run --rootfs "$SQFS" -v shared:/d -- cat /d/a.txt
  expect_eq "data survives rm of both" "$OUT" from-a
  msb_capture volume ls
  expect_match "ls columns" "$OUT" $'^NAME +KIND +SIZE +CREATED\nshared +dir '
  msb_capture volume rm shared
  expect_eq "rm once unused" "$RC" 0
  [ ! -e "$MSB_HOME/volumes/shared" ] || fail "volume directory left"
  expect_no_leftovers
}

test_quota_volume_enospc_and_one_writer() {
  msb_capture volume create quota --size 16M
  expect_eq "create" "$RC" 0
  msb_capture run --rootfs "$SQFS" -v quota:/q -- sh -c \
    'dd if=/dev/zero of=/q/fits bs=1M count=4 2>/dev/null && echo fits; dd if=/dev/zero of=/q/big bs=1M count=32 2>&1 | grep -o "No space left on device" | head -1'
  expect_eq "4 MiB fits, 32 MiB is ENOSPC in the guest" "$OUT" $'fits\nNo space left on device'
  local host
  host=$(du -k "$MSB_HOME/volumes/quota/disk.ext4" | cut -f1)
  [ "$host" -le 16384 ] || fail "the host file grew past the quota: $host KiB"
  msb_capture create --name qw --rootfs "$SQFS" -v quota:/q
  expect_eq "the writer's create" "$RC" 0
  msb_capture run --rootfs "$SQFS" -v quota:/q -- true
  expect_eq "second writer refused" "$RC" 125
  expect_one_error_line "$ERR" ".*volume quota is being written by sandbox qw"
  msb_capture stop qw
  expect_eq "the writer stops" "$RC" 0
  msb_capture run --rootfs "$SQFS" -v quota:/q:ro -- ls /q
  expect_eq "a reader once the writer stopped: exit code" "$RC" 0
  expect_eq "a reader once the writer stopped" "$OUT" $'big\nfits\nlost+found'
  msb_capture rm -f qw
  msb_capture volume rm quota
  expect_no_leftovers
}

test_tmpfs_size_limit() {
  msb_capture run --rootfs "$SQFS" --tmpfs /scratch:4M -- sh -c \
    'dd if=/dev/zero of=/scratch/one bs=1M count=1 2>/dev/null && echo ok; dd if=/dev/zero of=/scratch/eight bs=1M count=8 2>&1 | grep -o "No space left on device" | head -1'
  expect_eq "1 MiB fits, 8 MiB does not" "$OUT" $'ok\nNo space left on device'
  expect_no_leftovers
}

test_an_ordinary_user_binds_a_directory() {
  [ "$(id -u)" = 0 ] || { skip "needs root to create the test user"; return; }
  id "$USER_NAME" > /dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME" 2> /dev/null ||
    { fail "cannot create the test user $USER_NAME"; return; }
  local udir
  udir=$(mktemp -d /tmp/msb-e2e-vol.XXXXXX)
  chmod 755 "$udir"
  cp "$MSB" "$BUILD/vmlinux" "$BUILD/initrd.cpio" "$SQFS" "$udir/"
  chmod 755 "$udir"/*
  mkdir -p "$udir/home" "$udir/src" "$udir/outside"
  echo untouched > "$udir/outside/secret"
  chown "$USER_NAME" "$udir/home" "$udir/src"
  OUT=$(runuser -u "$USER_NAME" -- env -i PATH=/usr/bin:/bin HOME="/home/$USER_NAME" \
    MSB_HOME="$udir/home" MSB_LIB_DIR="$udir" "$udir/msb" run --rootfs "$udir/rootfs.sqfs" \
    -v "$udir/src:/app" -- sh -c 'id -u; echo hi > /app/f; chmod 755 /app/f; mkdir /app/sticky; chmod 1777 /app/sticky; mkdir /app/sg; chmod 2775 /app/sg; mkdir /app/sg/inner; ln -s ../outside /app/l; { echo pwned > /app/l/secret; } 2>/dev/null; true' 2>&1)
  expect_eq "guest root writes" "$OUT" 0
  expect_eq "owned by the ordinary user" "$(stat -c %U "$udir/src/f")" "$USER_NAME"
  expect_eq "mode kept" "$(stat -c %a "$udir/src/f")" 755
  expect_eq "sticky directory" "$(stat -c %a "$udir/src/sticky")" 1777
  expect_eq "setgid directory" "$(stat -c %a "$udir/src/sg")" 2775
  expect_eq "setgid passed on to a new directory" "$(stat -c %a "$udir/src/sg/inner")" 2755
  expect_eq "outside untouched" "$(cat "$udir/outside/secret")" untouched
  mkdir -p "$udir/private" && chmod 700 "$udir/private"
  OUT=$(runuser -u "$USER_NAME" -- env -i PATH=/usr/bin:/bin HOME="/home/$USER_NAME" \
    MSB_HOME="$udir/home" MSB_LIB_DIR="$udir" "$udir/msb" run --rootfs "$udir/rootfs.sqfs" \
    -v "$udir/private:/p" -- true 2>&1)
  expect_match "a source the user cannot read is refused up front" "$OUT" \
    "^msb: invalid -v .*private: Permission denied \(msb runs as uid [0-9]+\)$"
  rm -rf "$udir"
}

# --- msb cp -------------------------------------------------------------------

test_cp_both_ways_on_running_and_stopped_sandboxes() {
  rm -rf "$TMP/tree" "$TMP/back"
  mkdir -p "$TMP/tree/sub" "$TMP/back"
  echo one > "$TMP/tree/a"
  printf '#!/bin/sh\necho ran\n' > "$TMP/tree/sub/run.sh"
  chmod 750 "$TMP/tree/sub/run.sh"
  ln -s a "$TMP/tree/link"
  msb_capture create --name cpbox --rootfs "$SQFS"
  msb_capture cp "$TMP/tree" cpbox:/root/
  expect_eq "cp in (running)" "$RC" 0
  msb_capture exec cpbox -- sh -c 'cat /root/tree/a; /root/tree/sub/run.sh; stat -c %a /root/tree/sub/run.sh; readlink /root/tree/link'
  expect_eq "tree, modes and links inside" "$OUT" $'one\nran\n750\na'
  msb_capture exec cpbox -- sh -c 'echo made-inside > /root/tree/new; chmod 640 /root/tree/new'
  expect_eq "exec" "$RC" 0
  msb_capture stop cpbox
  expect_eq "stop" "$RC" 0
  msb_capture cp cpbox:/root/tree "$TMP/back/copy"
  expect_eq "cp out (stopped: started and stopped again)" "$RC" 0
  expect_eq "new file came out" "$(cat "$TMP/back/copy/new")" made-inside
  expect_eq "its mode" "$(stat -c %a "$TMP/back/copy/new")" 640
  expect_eq "exec bit kept" "$(stat -c %a "$TMP/back/copy/sub/run.sh")" 750
  expect_eq "link kept" "$(readlink "$TMP/back/copy/link")" a
  msb_capture ls --format json
  expect_match "the stopped sandbox is stopped again" "$OUT" '"status": "stopped"'
  msb_capture cp cpbox:/root/tree/a "$TMP/back/"
  expect_eq "a single file into a directory" "$(cat "$TMP/back/a")" one
  msb_capture cp "$TMP/tree/a" cpbox:/root/renamed
  msb_capture exec cpbox -- cat /root/renamed
  expect_eq "a single file as a new name" "$OUT" one
  msb_capture cp cpbox:/root/../etc/passwd "$TMP/back/"
  expect_eq "a path with .. is refused" "$RC" 125
  expect_one_error_line "$ERR" "cp: cpbox:/root/../etc/passwd: use an absolute path inside the sandbox, without '..'"
  msb_capture cp cpbox:/nonexistent "$TMP/back/"
  expect_eq "missing source" "$RC" 125
  expect_one_error_line "$ERR" "cp: /nonexistent: No such file or directory"
  msb_capture cp "$TMP/tree" "$TMP/elsewhere"
  expect_eq "no sandbox side" "$RC" 125
  expect_one_error_line "$ERR" "cp: exactly one of SRC and DEST must be SANDBOX:PATH"
  msb_capture rm -f cpbox
  expect_no_leftovers
}

# --- root filesystems: disk images and a live directory --------------------------

# make_disk OUT: a raw disk with an MBR and one ext4 partition holding the fixture rootfs.
make_disk() {
  partitioned_disk "$1" "$FIX/rootfs"
}

test_disk_images_boot_write_stop_start() {
  local fmt img
  make_disk "$TMP/disk.raw" || { fail "cannot build the disk image"; return; }
  qemu-img convert -O qcow2 "$TMP/disk.raw" "$TMP/disk.qcow2"
  for fmt in raw qcow2; do
    img=$TMP/disk.$fmt
    msb_capture create --name "d$fmt" "$img"
    expect_eq "$fmt: create" "$RC" 0
    msb_capture exec "d$fmt" -- sh -c "grep ' / ' /proc/mounts | cut -d' ' -f1,3; echo kept-$fmt > /root/mark"
    expect_eq "$fmt: the first partition is the root" "$OUT" "/dev/vda1 ext4"
    msb_capture run "$img" -- true
    expect_eq "$fmt: a second writer is refused" "$RC" 125
    expect_one_error_line "$ERR" ".*is in use by another sandbox \\(give each sandbox its own copy, or use --disk-snapshot\\)"
    msb_capture stop "d$fmt"
    expect_eq "$fmt: stop" "$RC" 0
    msb_capture start "d$fmt"
    expect_eq "$fmt: start" "$RC" 0
    msb_capture exec "d$fmt" -- cat /root/mark
    expect_eq "$fmt: written, stopped, started" "$OUT" "kept-$fmt"
    msb_capture rm -f "d$fmt"
    expect_eq "$fmt: rm" "$RC" 0
    # The control for the refusal: with the first sandbox gone, the same run works.
    msb_capture run "$img" -- cat /root/mark
    expect_eq "$fmt: a writer once the first is gone: exit code" "$RC" 0
    expect_eq "$fmt: a writer once the first is gone" "$OUT" "kept-$fmt"
  done
  command -v debugfs > /dev/null || { fail "debugfs missing (e2fsprogs)"; return; }
  expect_eq "the image itself holds the write" \
    "$(debugfs -R 'cat /root/mark' "$TMP/disk.raw?offset=1048576" 2> /dev/null)" kept-raw
  rm -f "$TMP/disk.raw" "$TMP/disk.qcow2"
  expect_no_leftovers
}

test_disk_snapshot_keeps_the_image_untouched() {
  make_disk "$TMP/snap.raw" || { fail "cannot build the disk image"; return; }
  qemu-img convert -O vmdk "$TMP/snap.raw" "$TMP/snap.vmdk"
  local before
  before=$(md5sum < "$TMP/snap.vmdk")
  msb_capture run --disk-snapshot "$TMP/snap.vmdk" -- sh -c 'echo scratch > /root/x; cat /root/x'
  expect_eq "vmdk boots, the snapshot takes writes" "$OUT" scratch
  msb_capture run --disk-snapshot "$TMP/snap.vmdk" -- sh -c 'cat /root/x 2>/dev/null || echo fresh'
  expect_eq "each snapshot starts from the image" "$OUT" fresh
  expect_eq "the image is untouched" "$(md5sum < "$TMP/snap.vmdk")" "$before"
  # The flag may follow the image; a raw image is kept as it was too.
  before=$(md5sum < "$TMP/snap.raw")
  msb_capture run "$TMP/snap.raw" --disk-snapshot -- sh -c 'echo scratch > /root/x; cat /root/x'
  expect_eq "raw, flag after the image: exit code" "$RC" 0
  expect_eq "raw, flag after the image: the snapshot takes writes" "$OUT" scratch
  expect_eq "the raw image is untouched" "$(md5sum < "$TMP/snap.raw")" "$before"
  msb_capture run --disk-snapshot --rootfs "$SQFS" -- true
  expect_eq "--disk-snapshot with a rootfs: exit code" "$RC" 125
  expect_one_error_line "$ERR" "--disk-snapshot needs a disk image"
  echo "not a disk" > "$TMP/bogus.img"
  msb_capture run "$TMP/bogus.img" -- true
  expect_eq "not a disk image: exit code" "$RC" 125
  expect_one_error_line "$ERR" ".*bogus.img is not a disk image msb can boot"
  rm -f "$TMP/snap.raw" "$TMP/snap.vmdk"
  expect_no_leftovers
}

test_xfs_disk_image() {
  command -v mkfs.xfs > /dev/null || { fail "mkfs.xfs missing (xfsprogs)"; return; }
  printf '/dev/null\n0 0\nd--755 0 0\nbin d--755 0 0\nbusybox ---755 0 0 %s\nsh l--777 0 0 busybox\ncat l--777 0 0 busybox\ngrep l--777 0 0 busybox\n$\n$\n' \
    "$FIX/rootfs/bin/busybox" > "$TMP/proto"
  truncate -s 300M "$TMP/xfs.img"
  mkfs.xfs -q -f -p "$TMP/proto" "$TMP/xfs.img" || { fail "mkfs.xfs"; return; }
  msb_capture run "$TMP/xfs.img" -- sh -c "echo on-xfs > /f; cat /f; grep ' / ' /proc/mounts | cut -d' ' -f3"
  expect_eq "an xfs disk (no partition table) boots" "$OUT" $'on-xfs\nxfs'
  rm -f "$TMP/xfs.img"
  expect_no_leftovers
}

test_rootfs_bind_is_live_and_keeps_host_files() {
  rm -rf "$TMP/live"
  cp -a "$FIX/rootfs" "$TMP/live"
  echo "127.0.0.1 mine" > "$TMP/live/etc/hosts"
  msb_capture create --name livebox --rootfs "$TMP/live" --rootfs-bind
  expect_eq "create" "$RC" 0
  msb_capture exec livebox -- sh -c 'echo from-guest > /root/g; grep -c mine /etc/hosts; grep -c livebox /etc/hosts'
  expect_match "the guest gets its own /etc/hosts" "$OUT" $'^0\n[1-9]$'
  expect_eq "the guest's write is in the directory" "$(cat "$TMP/live/root/g")" from-guest
  expect_eq "the host's /etc/hosts is untouched" "$(cat "$TMP/live/etc/hosts")" "127.0.0.1 mine"
  echo from-host > "$TMP/live/root/h"
  msb_capture exec livebox -- cat /root/h
  expect_eq "a host write is seen at once" "$OUT" from-host
  [ ! -e "$TMP/live/init" ] && [ ! -e "$TMP/live/agentd" ] || fail "agentd was copied into the directory"
  msb_capture rm -f livebox
  [ -d "$TMP/live/bin" ] || fail "rm touched the root directory"
  msb_capture run --rootfs-bind --rootfs "$SQFS" -- true
  expect_eq "--rootfs-bind with a file: exit code" "$RC" 125
  expect_one_error_line "$ERR" "--rootfs-bind needs --rootfs DIR \\(a directory\\)"
  expect_no_leftovers
}

run_tests
