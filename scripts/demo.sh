#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job, end to end: install dependencies, build the kernel, agent and CLI,
# then run real commands in a microVM whose root filesystem is Debian's busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
make -j"$(nproc)" all
tests/fixtures/busybox-rootfs.sh build/fixtures
export MSB_HOME=${MSB_HOME:-$(mktemp -d /tmp/msb-demo.XXXXXX)}
msb=build/msb
echo "== msb run --rootfs build/fixtures/rootfs -- uname, os-release, id"
$msb run --rootfs build/fixtures/rootfs -- sh -c 'echo "hello from $(hostname)"; uname -sr; id; cat /etc/os-release'
echo "== stdin, exit code"
printf 'one\ntwo\nthree\n' | $msb run --rootfs build/fixtures/rootfs.sqfs -- wc -l
set +e
$msb run --rootfs build/fixtures/rootfs.sqfs -- sh -c 'exit 42'
echo "exit code: $?"
