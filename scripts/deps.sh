#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages that building and testing msb need, when missing.
set -euo pipefail

build_pkgs=(
  make gcc libc6-dev pkg-config musl-tools
  libcurl4-openssl-dev libjansson-dev libarchive-dev libssl-dev libsqlite3-dev
  libslirp-dev libsquashfs-dev squashfs-tools-ng e2fsprogs libcmocka-dev libnghttp2-dev
  qemu-system-x86 qemu-utils openssl
  linux-source-6.1 bc bison flex libelf-dev cpio xz-utils
)
test_pkgs=(
  docker-registry skopeo busybox-static debootstrap openssl apache2-utils
  xfsprogs git tmux procps clang libclang-rt-14-dev curl python3 libarchive-tools zstd tar
  clang-format clang-tidy cppcheck
  gnome-keyring libsecret-tools dbus-daemon python3-h2 dpkg-dev man-db
)

# deps.sh [--test] [--list]: --list prints the missing packages (one line, none: empty)
# and installs nothing.
want=("${build_pkgs[@]}")
list=0
for a in "$@"; do
  case $a in
    --test) want+=("${test_pkgs[@]}") ;;
    --list) list=1 ;;
    *) echo "usage: $0 [--test] [--list]" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "$list" = 1 ]; then
  echo "${missing[*]}"
  exit 0
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "msb: missing packages: ${missing[*]} (run 'sudo $0 $*' or install them)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A stale package index is the usual reason for a failed install on a fresh machine.
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
