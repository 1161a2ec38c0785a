#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the guest kernel from Debian's linux-source-6.1 with kernel/msb.config,
# cached outside the work tree by a hash of (source version, fragment, this script).
# Usage: kernel/build.sh OUT_DIR   -> OUT_DIR/vmlinux (PVH ELF) and OUT_DIR/bzImage
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: kernel/build.sh OUT_DIR}
frag=$here/msb.config
tarball=/usr/src/linux-source-6.1.tar.xz
[ -f "$tarball" ] || { echo "msb: $tarball missing (apt-get install linux-source-6.1)" >&2; exit 1; }

# This build is its own job: it must not inherit a parent make's jobserver
# (make -jN would otherwise run it at -j1, "jobserver unavailable").
unset MAKEFLAGS MFLAGS MAKELEVEL
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { echo "$srcver"; cat "$frag" "$0"; } | sha256sum | cut -c1-16)
cache=${MSB_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/msb-build}/kernel
dir=$cache/$key
mkdir -p "$cache" "$out"

install_from_cache() {
  cp -f "$dir/vmlinux" "$out/vmlinux.tmp" && mv -f "$out/vmlinux.tmp" "$out/vmlinux"
  cp -f "$dir/bzImage" "$out/bzImage.tmp" && mv -f "$out/bzImage.tmp" "$out/bzImage"
  echo "$key" > "$out/kernel.key"
}

if [ -f "$dir/done" ]; then install_from_cache; exit 0; fi

# One build per key at a time; a second caller waits and then reuses the result.
exec 9>"$cache/$key.lock"
flock 9
if [ -f "$dir/done" ]; then install_from_cache; exit 0; fi

echo "kernel: building linux $srcver (key $key) in $dir; this runs once per machine" >&2
rm -rf "$dir" && mkdir -p "$dir"
src=$dir/src
mkdir -p "$src"
tar -xf "$tarball" -C "$src" --strip-components=1
jobs=$(nproc)
make -s -C "$src" KCONFIG_ALLCONFIG="$frag" allnoconfig >/dev/null
make -s -C "$src" olddefconfig >/dev/null

# Kconfig silently drops options whose dependencies are unmet: insist on every one.
bad=0
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*)
      opt=${line%%=*}; val=${line#*=}
      if [ "$val" = n ]; then
        grep -qx "$opt=y" "$src/.config" && { echo "kernel: $opt should be off" >&2; bad=1; }
      else
        grep -qxF "$line" "$src/.config" || { echo "kernel: $opt=$val did not survive olddefconfig" >&2; bad=1; }
      fi ;;
  esac
done < "$frag"
[ "$bad" -eq 0 ] || exit 1

make -s -C "$src" -j"$jobs" vmlinux bzImage >"$dir/build.log" 2>&1 || {
  tail -n 30 "$dir/build.log" >&2; exit 1; }
cp "$src/vmlinux" "$dir/vmlinux"
strip --strip-debug "$dir/vmlinux" 2>/dev/null || true
cp "$src/arch/x86/boot/bzImage" "$dir/bzImage"
cp "$src/.config" "$dir/config"
rm -rf "$src"
touch "$dir/done"
install_from_cache
