#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a disk image or a guest can make msb open on the host: a disk image's
# backing files, data files and vmdk extents are vetted (only files beside the
# image, or named with --allow-backing), and a volume source that has become a
# symlink since create is refused, never followed. Real VMs, real host files.
source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs

# make_disk OUT MARK: a raw disk, MBR and one ext4 partition: the fixture rootfs with /root/marker = MARK.
make_disk() {
  rm -rf "$TMP/mkroot"
  cp -a "$FIX/rootfs" "$TMP/mkroot" && mkdir -p "$TMP/mkroot/root" && echo "$2" > "$TMP/mkroot/root/marker" || return 1
  partitioned_disk "$1" "$TMP/mkroot"
  rm -rf "$TMP/mkroot"
}

# overlay OUT BACKING FMT: a qcow2 naming BACKING (any string) as its backing file; qemu-img opens nothing.
overlay() {
  qemu-img create -q -f qcow2 -u -F "$3" -b "$2" "$1" 64M
}

# vmdk_with_extent OUT NAME: a sparse vmdk with capacity 0, whose embedded descriptor
# makes QEMU open NAME (64 MiB, flat) as its extent.
vmdk_with_extent() {
  python3 - "$1" "$2" << 'PY'
import struct, sys
h = bytearray(2048)
h[0:4] = b'KDMV'
struct.pack_into('<IIQQQQ', h, 4, 1, 3, 0, 128, 1, 2)  # version, flags, capacity 0, grain, desc at sector 1
d = ('# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n'
     'RW 131072 FLAT "%s" 0\n' % sys.argv[2]).encode()
h[512:512 + len(d)] = d
open(sys.argv[1], 'wb').write(h)
PY
}

# refused IMAGE NAME WHAT [flags]: `msb run` refuses IMAGE, naming NAME; nothing is made.
refused() {
  local img=$1 name=$2 what=$3
  shift 3
  msb_capture run "$@" "$img" -- cat /root/marker
  expect_eq "$name: exit code" "$RC" 125
  expect_eq "$name: the guest never ran" "$OUT" ""
  expect_one_error_line "$ERR" "$(printf '%s' "$(realpath "$img"): $what" | sed 's/[][\\.*^$(){}+?|]/\\&/g')"
}

test_backing_files_outside_the_image_are_refused() {
  local out img
  mkdir -p "$TMP/outside" "$TMP/img"
  make_disk "$TMP/outside/base.raw" outside-data || { fail "cannot build the disk image"; return; }
  out=$(realpath "$TMP/outside/base.raw")
  img=$TMP/img
  overlay "$img/abs.qcow2" "$out" raw
  overlay "$img/rel.qcow2" ../outside/base.raw raw
  ln -s ../outside/base.raw "$img/link.raw"
  overlay "$img/link.qcow2" link.raw raw
  overlay "$img/json.qcow2" "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$out\"}}" raw

  refused "$img/abs.qcow2" absolute "backing file \"$out\" is outside the image's directory (msb follows only files beside the image; if you trust it, add --allow-backing $out)"
  refused "$img/abs.qcow2" "absolute, --disk-snapshot" "backing file \"$out\" is outside the image's directory" --disk-snapshot
  refused "$img/rel.qcow2" "../" "backing file \"../outside/base.raw\" is outside the image's directory (msb follows only files beside the image; if you trust it, add --allow-backing $out)"
  refused "$img/link.qcow2" "a symlink out of the directory" "backing file \"link.raw\" is outside the image's directory (msb follows only files beside the image; if you trust it, add --allow-backing $out)" --disk-snapshot
  refused "$img/json.qcow2" json: "backing file \"json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$out\"}}\" is not a file name (msb follows no json: or protocol names; give the disk a plain file name)"
  msb_capture create --name halfmade "$img/rel.qcow2"
  expect_eq "create: exit code" "$RC" 125
  msb_capture ls -q
  expect_eq "create: no sandbox made" "$OUT" ""
  expect_no_leftovers

  # Positive control: the same images, with the file named by the user.
  msb_capture run --allow-backing "$TMP/outside/base.raw" "$img/rel.qcow2" -- cat /root/marker
  expect_eq "--allow-backing admits the file named" "$RC:$OUT" "0:outside-data"
  msb_capture run --disk-snapshot --allow-backing "$out" "$img/abs.qcow2" -- cat /root/marker
  expect_eq "--allow-backing with --disk-snapshot" "$RC:$OUT" "0:outside-data"
  msb_capture run --allow-backing "$TMP/nonexistent" "$img/abs.qcow2" -- true
  expect_one_error_line "$ERR" "--allow-backing $TMP/nonexistent: No such file or directory"
  msb_capture run --allow-backing "$out" --rootfs "$SQFS" -- true
  expect_one_error_line "$ERR" "--allow-backing needs a disk image"
  rm -rf "$TMP/outside" "$TMP/img"
  expect_no_leftovers
}

test_a_chain_beside_the_image_boots() {
  local d=$TMP/chain
  mkdir -p "$d"
  make_disk "$d/base.raw" base-data || { fail "cannot build the disk image"; return; }
  qemu-img convert -O qcow2 "$d/base.raw" "$d/base.qcow2" && rm "$d/base.raw"
  qemu-img create -q -f qcow2 -F qcow2 -b base.qcow2 "$d/top.qcow2"
  local before
  before=$(md5sum < "$d/base.qcow2")
  msb_capture run "$d/top.qcow2" -- sh -c 'cat /root/marker; echo top > /root/w; sync; cat /root/w'
  expect_eq "base <- top boots, the guest reads the base's data" "$RC:$OUT" $'0:base-data\ntop'
  msb_capture run --disk-snapshot "$d/top.qcow2" -- sh -c 'cat /root/marker /root/w'
  expect_eq "--disk-snapshot of the chain: base and top" "$RC:$OUT" $'0:base-data\ntop'
  expect_eq "the base is only read" "$(md5sum < "$d/base.qcow2")" "$before"
  rm -rf "$d"
  expect_no_leftovers
}

test_vmdk_extents_and_parents_outside_are_refused() {
  local out img=$TMP/vimg
  mkdir -p "$TMP/vout" "$img"
  make_disk "$TMP/vout/flat.raw" vmdk-outside || { fail "cannot build the disk image"; return; }
  out=$(realpath "$TMP/vout/flat.raw")
  vmdk_with_extent "$img/evil.vmdk" ../vout/flat.raw
  refused "$img/evil.vmdk" "vmdk extent" "extent \"../vout/flat.raw\" is outside the image's directory (msb follows only files beside the image; if you trust it, add --allow-backing $out)"
  vmdk_with_extent "$img/abs.vmdk" "$out"
  refused "$img/abs.vmdk" "vmdk extent, absolute" "extent \"$out\" is outside the image's directory" --disk-snapshot
  qemu-img create -q -f vmdk "$TMP/vout/parent.vmdk" 64M
  qemu-img create -q -f vmdk -F vmdk -b "$TMP/vout/parent.vmdk" "$img/child.vmdk"
  refused "$img/child.vmdk" "vmdk parentFileNameHint" "backing file \"$(realpath "$TMP/vout/parent.vmdk")\" is outside the image's directory"

  # Positive control: the same descriptor naming a file beside it boots, read-write.
  mv "$TMP/vout/flat.raw" "$img/flat.raw"
  vmdk_with_extent "$img/good.vmdk" flat.raw
  msb_capture run "$img/good.vmdk" -- sh -c 'cat /root/marker; echo w > /root/w'
  expect_eq "an extent beside the vmdk" "$RC:$OUT" "0:vmdk-outside"
  rm -rf "$TMP/vout" "$img"
  expect_no_leftovers
}

# --- volume sources: resolved once, never followed through a symlink ------------------

test_volume_source_swapped_for_a_symlink_is_refused_at_start() {
  local p=$TMP/p out=$TMP/vol-outside
  rm -rf "$p" "$out"
  mkdir -p "$p/cache" "$out"
  echo untouched > "$out/secret"
  msb_capture create --name swapv --rootfs "$SQFS" -v "$p:/app" -v "$p/cache:/cache"
  expect_eq "create" "$RC" 0
  msb_capture exec swapv -- sh -c 'echo one > /cache/c'
  expect_eq "the volume is written" "$(cat "$p/cache/c")" one
  # Positive control: an unchanged sandbox restarts with its volumes.
  msb_capture stop swapv
  msb_capture start swapv
  expect_eq "unchanged: restarts" "$RC" 0
  msb_capture exec swapv -- sh -c 'cat /cache/c /app/cache/c'
  expect_eq "unchanged: both volumes, as before" "$OUT" $'one\none'
  # The guest swaps a source of its own for a symlink to a host directory.
  msb_capture exec swapv -- sh -c "rm -rf /app/cache && ln -s $out /app/cache && echo swapped"
  expect_eq "the guest planted the symlink" "$OUT" swapped
  [ -L "$p/cache" ] || fail "the source is not a symlink on the host"
  msb_capture stop swapv
  msb_capture start swapv
  expect_eq "start: refused" "$RC" 125
  expect_one_error_line "$ERR" "sandbox swapv: volume source $(realpath "$p")/cache is now reached through a symlink; msb does not follow it \\(make it a directory again, or recreate the sandbox with the path it should use\\)"
  # Had it started, this is what the guest could do to the directory outside.
  [ "$RC" != 0 ] || msb_capture exec swapv -- sh -c 'echo leaked > /cache/leak'
  expect_eq "the outside directory is untouched" "$(ls -A "$out"):$(cat "$out/secret")" "secret:untouched"
  # Made a directory again: it starts.
  rm "$p/cache" && mkdir "$p/cache"
  msb_capture start swapv
  expect_eq "repaired: starts" "$RC" 0
  msb_capture exec swapv -- sh -c 'echo two > /cache/c'
  expect_eq "repaired: the source itself is written" "$(cat "$p/cache/c")" two
  expect_eq "repaired: still nothing outside" "$(ls -A "$out")" secret
  msb_capture rm -f swapv
  expect_no_leftovers
}

test_rootfs_bind_swapped_for_a_symlink_is_refused_at_start() {
  local live=$TMP/live out=$TMP/live-outside
  rm -rf "$live" "$out" "$live.real"
  cp -a "$FIX/rootfs" "$live"
  mkdir -p "$out"
  echo untouched > "$out/secret"
  msb_capture create --name swapr --rootfs "$live" --rootfs-bind
  expect_eq "create" "$RC" 0
  msb_capture stop swapr
  # What another sandbox sharing the parent directory could do.
  mv "$live" "$live.real" && ln -s "$out" "$live"
  msb_capture start swapr
  expect_eq "start: refused" "$RC" 125
  expect_one_error_line "$ERR" "sandbox swapr: root directory $(realpath -s "$live") is now reached through a symlink"
  [ "$RC" != 0 ] || msb_capture exec swapr -- sh -c 'echo leaked > /leak'
  expect_eq "the outside directory is untouched" "$(ls -A "$out")" secret
  rm "$live" && mv "$live.real" "$live"
  msb_capture rm -f swapr
  expect_no_leftovers
}

run_tests
