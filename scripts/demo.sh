#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job, end to end: install dependencies, build the kernel, agent and CLI,
# build OCI images from Debian packages, serve them from a local OCI registry,
# then pull one and run real commands in a microVM made from it; a persistent
# sandbox, volumes and msb cp, an installed command, and the network (secrets,
# TLS interception over HTTP/1.1 and HTTP/2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
make -j"$(nproc)" all
tests/fixtures/busybox-rootfs.sh build/fixtures

state=$(mktemp -d /tmp/msb-demo-registry.XXXXXX)
export MSB_HOME=${MSB_HOME:-$(mktemp -d /tmp/msb-demo.XXXXXX)}
trap 'tests/fixtures/registry.sh stop "$state" > /dev/null 2>&1 || true' EXIT
echo "== building images from Debian packages and starting a local registry"
tests/fixtures/registry.sh start "$state" > /dev/null
tests/fixtures/registry.sh push "$state" build/fixtures/images > /dev/null
# shellcheck disable=SC1091
source "$state/env"
# the local registry speaks plain HTTP: mark it insecure, as users do
printf '{"registries": {"hosts": {"%s": {"insecure": true}}}}\n' "$PLAIN" > "$MSB_HOME/config.json"
msb=build/msb

echo "== msb pull $PLAIN/test/python:3.11"
$msb pull "$PLAIN/test/python:3.11"
echo "== msb images"
$msb images
echo "== msb run $PLAIN/test/python:3.11 -- python3 -c ..."
$msb run "$PLAIN/test/python:3.11" -- python3 -c 'import platform, sys, json; print(json.dumps({"python": sys.version.split()[0], "kernel": platform.release(), "machine": platform.machine()}))'
echo "== stdin and exit codes"
set +e
printf 'print(sum(range(101)))\nraise SystemExit(7)\n' | $msb run "$PLAIN/test/python:3.11" -- python3 -
echo "exit code: $?" || true
set -e

echo "== a persistent sandbox: create, exec, stop, start, logs"
$msb create --name demo -q --script 'hello=echo "hello from $(hostname)"' "$PLAIN/test/python:3.11"
$msb exec demo -- sh -c 'echo "kept across restarts" > /root/note; hello'
$msb ls
$msb stop demo
$msb start demo
$msb exec demo -- python3 -c 'print(open("/root/note").read().strip())'
$msb metrics demo
$msb logs --show-id demo
$msb inspect --format json demo | python3 -c 'import json,sys; j=json.load(sys.stdin); print("status:", j["status"], "| accelerator:", j["last_run"]["accelerator"], "(" + j["last_run"]["accelerator_reason"] + ")")'
$msb rm -f demo

echo "== warm starts, snapshots and branches"
$msb create --name counter -q "$PLAIN/test/python:3.11"
# A process that holds its state only in memory.
$msb exec counter -- sh -c 'setsid python3 -c "
import time
n = 0
while True:
    n += 1
    open(\"/tmp/count\", \"w\").write(str(n))
    time.sleep(0.2)
" > /dev/null 2>&1 < /dev/null &'
sleep 2
$msb snapshot create counted --from counter --full
$msb snapshot ls
$msb branch counter counter2
sleep 1
echo "parent counts on: $($msb exec counter -- cat /tmp/count), the branch too: $($msb exec counter2 -- cat /tmp/count)"
$msb pause counter
$msb ls
$msb resume counter
$msb run --from-snapshot counted -- sh -c 'sleep 1; echo "from the snapshot, the counter goes on from where it was saved: $(cat /tmp/count)"'
$msb rm -f counter counter2
$msb snapshot rm counted

echo "== volumes: a host directory, a named volume shared by two sandboxes, msb cp"
work=$(mktemp -d /tmp/msb-demo-project.XXXXXX)
printf 'import os\nprint("script from the host, sees", sorted(os.listdir("/app")))\nopen("/app/result.txt", "w").write("written in the VM\\n")\n' > "$work/script.py"
$msb run -v "$work:/app" "$PLAIN/test/python:3.11" -- python3 /app/script.py
echo "on the host: $(cat "$work/result.txt")"
$msb volume create demo-data
$msb run -v demo-data:/data "$PLAIN/test/python:3.11" -- sh -c 'echo "kept in a named volume" > /data/note'
$msb run -v demo-data:/data:ro "$PLAIN/test/python:3.11" -- cat /data/note
$msb volume ls
$msb create --name cpdemo -q "$PLAIN/test/python:3.11"
$msb cp "$work/script.py" cpdemo:/root/
$msb exec cpdemo -- sh -c 'wc -l /root/script.py; python3 -c "print(2**100)" > /root/big.txt'
$msb cp cpdemo:/root/big.txt "$work/"
echo "copied out: $(cat "$work/big.txt")"
$msb rm -f cpdemo
$msb volume rm demo-data
rm -rf "$work"

echo "== msb install: the image's python as a host command"
$msb install -n demo-python "$PLAIN/test/python:3.11"
$msb install --list
"$MSB_HOME/bin/demo-python" -c 'import sys; print("python", sys.version.split()[0], "from an installed alias, args:", sys.argv[1:])' a "b c"
echo 'print(6 * 7)' | "$MSB_HOME/bin/demo-python" -
set +e
"$MSB_HOME/bin/demo-python" -c 'raise SystemExit(3)'
echo "exit code: $?"
set -e
$msb uninstall demo-python

echo "== msb image save / load, msb df, msb prune"
arch=$(mktemp -d /tmp/msb-demo-archive.XXXXXX)
$msb pull -q "$PLAIN/test/busybox:latest"
$msb image save -o "$arch/busybox.tar" "$PLAIN/test/busybox:latest"
tar -tf "$arch/busybox.tar" | sed -n 1,4p
$msb rmi -q "$PLAIN/test/busybox:latest"
$msb image load -i "$arch/busybox.tar"
rm -rf "$arch"
$msb df
$msb prune --dry-run
$msb --version

# The network, in a network namespace of its own: no packet leaves this machine.
scripts/demo-net.sh "$PLAIN/test/python:3.11"
