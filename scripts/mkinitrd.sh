#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Packs agentd into the guest initramfs as /init (newc cpio, uncompressed: faster to boot).
set -euo pipefail
agent=${1:?usage: mkinitrd.sh AGENTD OUT}
out=${2:?usage: mkinitrd.sh AGENTD OUT}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,run,newroot}
install -m 0755 "$agent" "$stage/init"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$out.tmp"
mv -f "$out.tmp" "$out"
