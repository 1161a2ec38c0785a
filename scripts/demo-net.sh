#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The network part of the demo (scripts/demo.sh), in a network namespace of its own
# (unshare -n), so that no packet can leave this machine. "The internet" is a second
# namespace joined to it by a veth pair: a "public" web server on 198.51.100.10, a
# "private" one on 10.20.30.40 and a DNS server on 198.51.100.53 that knows both names.
# The image must already be in MSB_HOME's cache (the registry is outside).
#   scripts/demo-net.sh IMAGE
set -euo pipefail
cd "$(dirname "$0")/.."
img=${1:?usage: scripts/demo-net.sh IMAGE}
if [ -z "${MSB_DEMO_NETNS:-}" ]; then
  exec env MSB_DEMO_NETNS=1 unshare -n -- "$0" "$@"
fi
msb=build/msb
ip link set lo up
tmp=$(mktemp -d /tmp/msb-demo-net.XXXXXX)
pids=()
cleanup() {
  $msb rm -f net web > /dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
# The internet: a namespace held by a sleep that dies with this script.
unshare -n setpriv --pdeathsig KILL sleep infinity &
inet=$!
pids+=("$inet")
for _ in $(seq 100); do
  [ "$(readlink "/proc/$inet/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
  sleep 0.05
done
ip link add msb-demo0 type veth peer name msb-demo1 netns "$inet"
ip addr add 192.0.2.1/30 dev msb-demo0
ip link set msb-demo0 up
nsenter -t "$inet" -n sh -e -c '
  ip link set lo up
  ip addr add 192.0.2.2/30 dev msb-demo1
  ip link set msb-demo1 up
  for a in 198.51.100.10 198.51.100.53 10.20.30.40; do ip addr add "$a/32" dev lo; done'
for a in 198.51.100.10 198.51.100.53 10.20.30.40; do ip route add "$a/32" via 192.0.2.2; done
mkdir -p "$tmp/public" "$tmp/private"
echo "hello from a public server" > "$tmp/public/index.html"
echo "an internal secret" > "$tmp/private/index.html"
nsenter -t "$inet" -n setpriv --pdeathsig KILL python3 tests/fixtures/netsrv.py serve \
  --ready "$tmp/inet.ready" http,198.51.100.10,8080,"$tmp/public" \
  http,10.20.30.40,8080,"$tmp/private" &
pids+=($!)
# An HTTPS API that echoes what it receives (its own test CA; names api.test, other.test).
tests/fixtures/tlspki.sh "$tmp/pki"
nsenter -t "$inet" -n setpriv --pdeathsig KILL python3 tests/fixtures/tlsecho.py \
  --cert "$tmp/pki/server.pem" --key "$tmp/pki/server-key.pem" --bind 198.51.100.10 \
  --port 443 --port-file "$tmp/echo.ready" --log "$tmp/echo.log" &
pids+=($!)
nsenter -t "$inet" -n setpriv --pdeathsig KILL python3 tests/fixtures/dnsd.py \
  --listen 198.51.100.53:53 --port-file "$tmp/dns.port" --log "$tmp/dns.log" \
  --record api.demo.test=A:198.51.100.10 --record internal.demo.test=A:10.20.30.40 \
  --record api.test=A:198.51.100.10 --record other.test=A:198.51.100.10 &
pids+=($!)
dns=198.51.100.53:53
# Ready when they answer, through the routes.
for _ in $(seq 300); do
  [ -s "$tmp/dns.port" ] && [ -s "$tmp/inet.ready" ] && [ -s "$tmp/echo.ready" ] &&
    python3 -c 'import socket; socket.create_connection(("198.51.100.10", 8080), 1)' 2> /dev/null &&
    break
  sleep 0.1
done

fetch='import sys, urllib.request
for u in sys.argv[1:]:
    try:
        print("  %-34s %s" % (u, urllib.request.urlopen(u, timeout=5).read().decode().strip()))
    except Exception as e:
        print("  %-34s refused: %s" % (u, getattr(e, "reason", e)))'
urls=(http://api.demo.test:8080/ http://internal.demo.test:8080/ http://10.20.30.40:8080/)

echo "== the network: the default policy lets a sandbox reach public addresses only"
$msb create --name net -q --dns-nameserver "$dns" "$img"
$msb exec net -- python3 -c "$fetch" "${urls[@]}"
echo "== each denial is logged (destination, rule, reason), never the payload"
$msb logs --source system net | grep -E 'denied|NXDOMAIN|rebind' | sed 's/^/  /' || true
$msb rm -f net

echo "== a rule opens one private address and port: --net-rule allow@10.20.30.40:tcp:8080"
$msb run --dns-nameserver "$dns" --net-rule allow@10.20.30.40:tcp:8080 "$img" -- python3 -c "$fetch" "${urls[@]}"
echo "== --no-net: nothing at all"
$msb run --dns-nameserver "$dns" --no-net "$img" -- python3 -c "$fetch" "${urls[0]}"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "== a published port: -p $port:8000 (bound on 127.0.0.1)"
$msb run -d -q --name web -p "$port:8000" --dns-nameserver "$dns" "$img" -- \
  sh -c 'mkdir -p /srv && echo "served from inside the sandbox" > /srv/index.html && cd /srv && exec python3 -m http.server 8000'
for _ in $(seq 100); do
  out=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/', timeout=2).read().decode().strip())" 2> /dev/null) && break
  sleep 0.2
done
echo "  curl http://127.0.0.1:$port/ -> ${out:-nothing}"
$msb ps
$msb metrics web
$msb inspect --format json web | python3 -c '
import json, sys
n = json.load(sys.stdin)["network"]
print("  inspect: ipv4 %s (gateway %s), ipv6 %s, ports %s" % (n["ipv4"], n["gateway_ipv4"], n["ipv6"], ", ".join(n["ports"])))'
$msb rm -f web

echo "== a secret the guest never holds: --secret API_KEY@api.test (the value from msb's environment)"
API_KEY=sk-demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export API_KEY
call='import os, ssl, sys, urllib.request
print("  in the guest: API_KEY=%s" % os.environ["API_KEY"])
for u in sys.argv[1:]:
    r = urllib.request.Request(u, headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
    try:
        body = urllib.request.urlopen(r, timeout=10).read().decode()
        auth = [l for l in body.splitlines() if l.startswith("Authorization")]
        print("  %-26s 200, the server echoed: %s" % (u, auth[0] if auth else "?"))
    except Exception as e:
        print("  %-26s %s" % (u, getattr(e, "code", e)))'
$msb run -q --name secrets --dns-nameserver "$dns" --tls-upstream-ca-cert "$tmp/pki/ca.pem" \
  --secret API_KEY@api.test --tls-intercept "$img" -- python3 -c "$call" https://api.test/v1 https://other.test/v1
echo "  what api.test received: $(grep -m1 '^Authorization' "$tmp/echo.log")   (msb's value: $API_KEY)"
echo "  other.test received nothing: $(grep -c 'Host: other.test' "$tmp/echo.log" || true) requests"
echo "== each intercepted request is audited (never a value): msb logs --source net"
$msb logs --source net secrets | grep -E 'https|secret' | sed 's/^/  /' || true
$msb rm -f secrets
