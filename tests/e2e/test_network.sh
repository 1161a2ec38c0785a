#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The sandbox network end to end, inside a network namespace this suite makes
# (unshare -n): nothing here sends a packet anywhere but to addresses of that
# namespace. 198.51.100.x stand for public servers, 10.20.30.40 for a private
# one, 169.254.169.254 for a metadata service, 127.0.0.1 for the host; a
# DNS server of our own answers for *.test, and every run passes
# --dns-nameserver.

# The namespace first: the suite runs again inside it.
if [ "${MSB_E2E_NETNS:-}" != 1 ]; then
  if [ "$(id -u)" != 0 ] || ! unshare -n true 2> /dev/null; then
    echo "not ok - network: cannot make a network namespace (needs root and unshare -n)"
    echo fail >> "$E2E_RESULTS"
    exit 0
  fi
  exec env MSB_E2E_NETNS=1 unshare -n bash "$0" "$@"
fi

source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs
USER_NAME=msb-e2e
PIDS=()

ip link set lo up
for a in 198.51.100.10 198.51.100.11 10.20.30.40 169.254.169.254; do ip addr add "$a/32" dev lo; done
ip addr add 2001:db8::10/128 dev lo nodad
# Unprivileged ping sockets for everyone, in this namespace only.
sysctl -qw net.ipv4.ping_group_range="0 2147483647"

mkdir -p "$TMP/www" "$TMP/host" "$TMP/private" "$TMP/meta"
echo hello-public > "$TMP/www/index.html"
echo hello-host > "$TMP/host/index.html"
echo hello-private > "$TMP/private/index.html"
echo hello-metadata > "$TMP/meta/index.html"
head -c $((100 << 20)) /dev/urandom > "$TMP/www/big.bin"
BIG_SUM=$(sha256sum < "$TMP/www/big.bin" | cut -d' ' -f1)

serve() { # DIR ADDR PORT
  (cd "$1" && exec python3 -m http.server --bind "$2" "$3" > /dev/null 2>&1) &
  PIDS+=($!)
}
serve "$TMP/www" 198.51.100.10 8080
serve "$TMP/www" 2001:db8::10 8080
serve "$TMP/private" 10.20.30.40 8080
serve "$TMP/meta" 169.254.169.254 80
serve "$TMP/host" 127.0.0.1 8081
NETSRV=$E2E_ROOT/tests/fixtures/netsrv.py
python3 "$NETSRV" sink 198.51.100.10 9000 & PIDS+=($!)
python3 "$NETSRV" hold 198.51.100.10 9001 & PIDS+=($!)
python3 "$NETSRV" udpecho 198.51.100.10 9999 & PIDS+=($!)
python3 "$NETSRV" hold 198.51.100.10 853 & PIDS+=($!)
DNS_LOG=$TMP/dns.log
: > "$DNS_LOG"
python3 "$E2E_ROOT/tests/fixtures/dnsd.py" --listen 127.0.0.1:0 --port-file "$TMP/dns.port" \
  --log "$DNS_LOG" --ttl 60 \
  --record good.test=A:198.51.100.10 --record good.test=AAAA:2001:db8::10 \
  --record other.test=A:198.51.100.11 --record alias.test=CNAME:good.test \
  --record private.test=A:10.20.30.40 --record meta.test=A:169.254.169.254 \
  --record a.b.good.test=A:198.51.100.10 --record bad.test=A:198.51.100.11 \
  --record blocked.test=A:198.51.100.10 --record ads.blocked2.test=A:198.51.100.10 \
  --drop slow.test --big big.test & PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/dns.port" ] && break; sleep 0.05; done
DNS=127.0.0.1:$(cat "$TMP/dns.port")
# A port nothing listens on: a nameserver that refuses.
DEAD_DNS=127.0.0.1:9

suite_teardown() {
  "$MSB" rm -f web web6 keeper > /dev/null 2>&1
  for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null; done
  [ -z "${REG:-}" ] || "$E2E_ROOT/tests/fixtures/registry.sh" stop "$REG" > /dev/null 2>&1
}
trap suite_teardown EXIT

# The sandboxes of this suite: the busybox rootfs, our DNS server.
nrun() {
  "$MSB" run --rootfs "$SQFS" --dns-nameserver "$DNS" "$@"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

runtime_log_of() {
  cat "$MSB_HOME/sandboxes/$1/logs/runtime.log" 2> /dev/null
}

# The python image, from a registry in this namespace (for what busybox cannot do).
PY_IMG=
python_image() {
  [ -n "$PY_IMG" ] && return 0
  REG=$TMP/reg
  "$E2E_ROOT/tests/fixtures/registry.sh" start "$REG" > "$TMP/reg.log" 2>&1 || {
    fail "registry did not start"
    cat "$TMP/reg.log"
    return 1
  }
  # shellcheck disable=SC1091
  source "$REG/env"
  "$E2E_ROOT/tests/fixtures/images.sh" "$FIX/images" > /dev/null || { fail "test images did not build"; return 1; }
  skopeo --policy "$REG/policy.json" copy -q --dest-tls-verify=false \
    "oci:$FIX/images/python:3.11" "docker://$PLAIN/test/python:3.11" > /dev/null ||
    { fail "push test/python"; return 1; }
  echo "{\"registries\": {\"hosts\": {\"$PLAIN\": {\"insecure\": true}}}}" > "$MSB_HOME/config.json"
  PY_IMG=$PLAIN/test/python:3.11
}

test_public_names_and_addresses_work() {
  : > "$DNS_LOG"
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" -- sh -c '
    wget -qO- http://good.test:8080/index.html
    wget -qO- http://198.51.100.10:8080/index.html
    wget -qO- "http://[2001:db8::10]:8080/index.html"
    wget -qO- http://alias.test:8080/index.html
    wget -qO- http://good.test:8080/big.bin | sha256sum
    ping -c1 -W5 198.51.100.10 > /dev/null && echo ping-ok
    gw=$(sed -n "1s/nameserver //p" /etc/resolv.conf)
    ping -c1 -W5 "$gw" > /dev/null && echo ping-gateway-ok'
  expect_eq "exit code" "$RC" 0
  expect_eq "output" "$OUT" "hello-public
hello-public
hello-public
hello-public
$BIG_SUM  -
ping-ok
ping-gateway-ok"
  expect_match "the names went to the nameserver" "$(cat "$DNS_LOG")" "good.test A"
  expect_no_leftovers
}

test_guest_network_setup() {
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" -H box -- sh -c '
    ip -4 addr show eth0 | grep -o "inet [0-9./]*"
    ip -6 addr show eth0 scope global | grep -o "inet6 [0-9a-f:/]*"
    ip route | grep default
    cat /etc/resolv.conf /etc/hosts'
  expect_eq "exit code" "$RC" 0
  expect_match "a /30 from 172.16.0.0/12" "$OUT" "inet 172\.(1[6-9]|2[0-9]|3[01])\.[0-9]+\.[0-9]+/30"
  expect_match "a /64 from fd42:6d73:62::/48" "$OUT" "inet6 fd42:6d73:62:[0-9a-f]*::2/64"
  expect_match "a default route through the gateway" "$OUT" "default via 172\."
  expect_match "the gateway answers DNS" "$OUT" "nameserver 172\."
  expect_match "the hostname resolves" "$OUT" $'\t''box'
  expect_match "host.microsandbox.internal names the gateway" "$OUT" $'\t''host.microsandbox.internal'
  expect_no_leftovers
}

test_default_policy_denies_private_metadata_and_host() {
  msb_capture run --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" -- sh -c '
    for u in http://10.20.30.40:8080/ http://169.254.169.254/ http://host.microsandbox.internal:8081/; do
      wget -qO- "$u" 2>&1 || echo "refused $u"
    done
    ping -c1 -W2 10.20.30.40 > /dev/null 2>&1 || echo "no ping to private"'
  expect_eq "exit code" "$RC" 0
  expect_match "private refused" "$OUT" "refused http://10.20.30.40:8080/"
  expect_match "metadata refused" "$OUT" "refused http://169.254.169.254/"
  expect_match "the host refused" "$OUT" "refused http://host.microsandbox.internal:8081/"
  expect_match "no ping to private" "$OUT" "no ping to private"
  local log
  log=$(runtime_log_of keeper)
  expect_match "runtime.log names the destination and the rule" "$log" \
    "denied egress to tcp 10\.20\.30\.40:8080: deny egress: private address"
  expect_match "metadata is logged as such" "$log" "denied egress to tcp 169\.254\.169\.254:80"
  expect_match "the host's loopback is logged" "$log" "denied egress to tcp 172\.[0-9.]+:8081"
  "$MSB" rm keeper > /dev/null
  expect_no_leftovers
}

test_dns_rebind_protection() {
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" -- sh -c '
    nslookup private.test 2>&1 | grep -q NXDOMAIN && echo private-nxdomain
    nslookup meta.test 2>&1 | grep -q NXDOMAIN && echo meta-nxdomain
    nslookup good.test > /dev/null 2>&1 && echo good-resolves'
  expect_eq "answers pointing inside are dropped" "$OUT" "private-nxdomain
meta-nxdomain
good-resolves"
  # Without it the name resolves, and a rule for the name lets the connection through.
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --no-dns-rebind-protection \
    --net-rule allow@private.test:tcp:8080 -- sh -c '
    nslookup private.test 2>&1 | grep -q "10.20.30.40" && echo private-resolves
    wget -qO- http://private.test:8080/index.html
    wget -qO- http://169.254.169.254/index.html 2> /dev/null || echo metadata-still-refused'
  expect_eq "--no-dns-rebind-protection" "$OUT" "private-resolves
hello-private
metadata-still-refused"
  expect_no_leftovers
}

test_no_net_allowlist_by_name_needs_our_answer() {
  : > "$DNS_LOG"
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --no-net \
    --net-rule allow@good.test:tcp:8080 -- sh -c '
    wget -qO- http://198.51.100.10:8080/index.html 2> /dev/null || echo ip-refused-before-the-name
    wget -qO- http://good.test:8080/index.html
    wget -qO- http://198.51.100.10:8080/index.html
    nslookup other.test 2>&1 | grep -q NXDOMAIN && echo other-nxdomain
    wget -qO- http://198.51.100.11:8080/index.html 2> /dev/null || echo other-refused'
  expect_eq "exit code" "$RC" 0
  expect_eq "output" "$OUT" "ip-refused-before-the-name
hello-public
hello-public
other-nxdomain
other-refused"
  expect_eq "a denied name never reaches the nameserver" "$(grep -c '^other.test' "$DNS_LOG")" 0
  expect_no_leftovers
}

# The issue's allowlist: deny by default, one name; wildcards match the apex and any depth.
test_deny_default_with_a_name_and_wildcards() {
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --net-default deny \
    --net-rule 'allow@good.test' -- sh -c '
    wget -qO- http://good.test:8080/index.html
    wget -qO- http://bad.test:8080/index.html 2> /dev/null || echo bad-refused
    wget -qO- http://198.51.100.11:8080/index.html 2> /dev/null || echo ip-refused
    wget -qO- http://a.b.good.test:8080/index.html 2> /dev/null || echo sub-refused'
  expect_eq "exit code" "$RC" 0
  expect_eq "only good.test" "$OUT" "hello-public
bad-refused
ip-refused
sub-refused"
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --net-default deny \
    --net-rule 'allow@*.good.test' -- sh -c '
    wget -qO- http://good.test:8080/index.html
    wget -qO- http://a.b.good.test:8080/index.html
    wget -qO- http://bad.test:8080/index.html 2> /dev/null || echo bad-refused'
  expect_eq "exit code" "$RC" 0
  expect_eq "*.good.test: the apex and any depth" "$OUT" "hello-public
hello-public
bad-refused"
  expect_no_leftovers
}

test_dns_block_domain_and_deny_rules() {
  : > "$DNS_LOG"
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --dns-block-domain blocked.test \
    --dns-block-domain '*.blocked2.test' --net-rule 'deny@198.51.100.10:tcp:9000' -- sh -c '
    nslookup blocked.test 2>&1 | grep -q NXDOMAIN && echo blocked
    nslookup ads.blocked2.test 2>&1 | grep -q NXDOMAIN && echo blocked-suffix
    wget -qO- http://good.test:8080/index.html
    echo x | nc 198.51.100.10 9000 2>&1 | grep -q refused && echo port-denied'
  expect_eq "output" "$OUT" "blocked
blocked-suffix
hello-public
port-denied"
  expect_eq "blocked names never leave" "$(grep -c 'blocked' "$DNS_LOG")" 0
  expect_no_leftovers
}

test_dns_over_tls_and_multicast_dns_are_refused() {
  msb_capture run --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" -- sh -c '
    nc 198.51.100.10 853 < /dev/null 2>&1 | grep -q refused && echo dot-refused; true'
  expect_eq "DoT refused" "$OUT" "dot-refused"
  expect_match "logged with the reason" "$(runtime_log_of keeper)" "DNS over TLS is refused"
  "$MSB" rm keeper > /dev/null
}

test_host_is_reachable_only_by_rule() {
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" \
    --net-rule allow@loopback:tcp:8081 -- sh -c '
    wget -qO- http://host.microsandbox.internal:8081/index.html
    wget -qO- http://10.20.30.40:8080/ 2> /dev/null || echo private-still-refused'
  expect_eq "output" "$OUT" "hello-host
private-still-refused"
  expect_no_leftovers
}

test_nameserver_failover_and_timeout() {
  local t0 t1
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DEAD_DNS" --dns-nameserver "$DNS" -- \
    wget -qO- http://good.test:8080/index.html
  expect_eq "the second nameserver answers when the first refuses" "$OUT" "hello-public"
  t0=$(date +%s%N)
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --dns-query-timeout-ms 300 -- sh -c '
    nslookup slow.test 2>&1 | grep -qi "SERVFAIL\|can.t find" && echo gave-up'
  t1=$(date +%s%N)
  expect_eq "a silent nameserver ends in SERVFAIL" "$OUT" "gave-up"
  [ $(((t1 - t0) / 1000000)) -lt 20000 ] || fail "the query timeout was not applied"
  expect_no_leftovers
}

# A guest that stops taking its frames (eth0 down: the virtio ring fills, QEMU stops
# reading the link) while a host peer floods a published UDP port: the supervisor drops
# what it cannot deliver instead of being woken for it again and again, and stays idle.
test_a_guest_that_stops_reading_its_link_costs_no_cpu() {
  local pu pid cpu0 cpu1 used
  pu=$(free_port)
  nrun -q -d --name web -p "$pu:7000/udp" -- sh -c 'ip link set eth0 down; echo down; sleep 600' > /dev/null
  for _ in $(seq 50); do "$MSB" logs web 2> /dev/null | grep -q down && break; sleep 0.1; done
  pid=$("$MSB" inspect web --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
  python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + 2
while time.monotonic() < end:
    for _ in range(200):
        s.sendto(b'x' * 1400, ('127.0.0.1', $pu))
    time.sleep(0.001)"
  sleep 0.5
  cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  sleep 2
  cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  used=$((cpu1 - cpu0))
  echo "    # supervisor CPU in 2 s after the flood: $used ticks"
  [ "$used" -le 30 ] || fail "the supervisor used $used ticks of CPU in 2 s of quiet"
  expect_match "the drops are counted" "$(runtime_log_of web)" "dropped"
  msb_capture stop -t 1 web
  expect_eq "the sandbox still stops" "$RC" 0
  "$MSB" rm -f web > /dev/null
  expect_no_leftovers
}

test_published_ports() {
  local p out
  p=$(free_port)
  msb_capture run -d --name web --rootfs "$SQFS" --dns-nameserver "$DNS" -p "$p:8000" -- sh -c '
    mkdir -p /tmp/w && echo hello-guest > /tmp/w/index.html && exec httpd -f -p 8000 -h /tmp/w'
  expect_eq "run -d" "$RC" 0
  out=""
  for _ in $(seq 50); do
    out=$(curl -s --max-time 5 "http://127.0.0.1:$p/index.html") && [ -n "$out" ] && break
    sleep 0.2
  done
  expect_eq "the host reaches the guest's port" "$out" "hello-guest"
  expect_match "ps shows the port" "$("$MSB" ps)" "127\.0\.0\.1:$p->8000/tcp"
  expect_match "inspect shows the port" "$("$MSB" inspect web)" "network\.ports\[0\]: 127\.0\.0\.1:$p->8000/tcp"
  expect_match "inspect shows the address" "$("$MSB" inspect web)" "network\.ipv4: 172\.[0-9.]+/30"
  # The same port again: a one-line error before any boot.
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" -p "$p:8000" -- true
  expect_eq "port in use: exit code" "$RC" 125
  expect_one_error_line "$ERR" ".*127\.0\.0\.1:$p/tcp: Address already in use \(choose another host port\)"
  "$MSB" rm -f web > /dev/null
  # Ingress denied by policy: the connection is refused, and logged.
  p=$(free_port)
  "$MSB" run -d --name web --rootfs "$SQFS" --dns-nameserver "$DNS" -p "$p:8000" \
    --net-default-ingress deny -- httpd -f -p 8000 -h /etc > /dev/null
  out=$(curl -s --max-time 5 "http://127.0.0.1:$p/hostname" 2>&1)
  expect_eq "ingress denied" "$out" ""
  expect_match "runtime.log says so" "$(runtime_log_of web)" "denied ingress from tcp 127\.0\.0\.1"
  "$MSB" rm -f web > /dev/null
  expect_no_leftovers
}

test_bind_address_and_pools() {
  local p out
  p=$(free_port)
  "$MSB" run -d -q --name web --rootfs "$SQFS" --dns-nameserver "$DNS" -p "127.0.0.2:$p:8000" \
    --net-ipv4-pool 10.99.0.0/30 -- sh -c '
    mkdir -p /tmp/w && echo hello-guest > /tmp/w/index.html && exec httpd -f -p 8000 -h /tmp/w' > /dev/null
  out=""
  for _ in $(seq 50); do
    out=$(curl -s --max-time 5 "http://127.0.0.2:$p/index.html") && [ -n "$out" ] && break
    sleep 0.2
  done
  expect_eq "the port on its bind address" "$out" "hello-guest"
  curl -s --max-time 2 "http://127.0.0.1:$p/index.html" > /dev/null
  expect_eq "not on another address" "$?" 7
  expect_match "its /30 from the pool" "$("$MSB" inspect web)" "network\.ipv4: 10\.99\.0\.2/30"
  # An overlapping pool with nothing left: a one-line error and nothing left behind.
  msb_capture create --name other --rootfs "$SQFS" --dns-nameserver "$DNS" --net-ipv4-pool 10.99.0.0/30
  expect_eq "exhausted pool: exit code" "$RC" 125
  expect_one_error_line "$ERR" "no free /30 subnet left in the pool 10\.99\.0\.0/30: other sandboxes hold them"
  expect_eq "no half-made sandbox" "$("$MSB" ls -q)" "web"
  # A larger pool that contains the first: the taken /30 is skipped.
  "$MSB" create --name other --rootfs "$SQFS" --dns-nameserver "$DNS" --net-ipv4-pool 10.99.0.0/29
  expect_match "the next /30" "$("$MSB" inspect other)" "network\.ipv4: 10\.99\.0\.6/30"
  "$MSB" rm -f web other > /dev/null
  expect_no_leftovers
}

test_python_published_udp_port() {
  local pu out
  python_image || return
  pu=$(free_port)
  "$MSB" run -q -d --name web --dns-nameserver "$DNS" -p "$pu:7000/udp" "$PY_IMG" -- python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 7000))
while True:
    d, peer = s.recvfrom(2048); s.sendto(b"guest:" + d, peer)' > /dev/null
  out=""
  for _ in $(seq 40); do
    out=$(python3 -c "
import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(0.5)
s.sendto(b'over-udp',('127.0.0.1',$pu))
try: print(s.recv(100).decode())
except OSError: pass")
    [ -n "$out" ] && break
  done
  expect_eq "a published UDP port" "$out" "guest:over-udp"
  "$MSB" rm -f web > /dev/null
  expect_no_leftovers
}

test_max_connections() {
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --max-connections 2 -- sh -c '
    nc 198.51.100.10 9001 > /tmp/a & nc 198.51.100.10 9001 > /tmp/b &
    sleep 2
    nc 198.51.100.10 9001 < /dev/null 2>&1 | grep -q refused && echo third-refused
    cat /tmp/a /tmp/b'
  expect_eq "the third connection is refused, not queued" "$OUT" "third-refused
held
held"
  expect_no_leftovers
}

test_metrics_count_the_traffic() {
  local j
  "$MSB" run -d --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" -- sleep 600 > /dev/null
  "$MSB" exec keeper -- sh -c 'wget -qO /dev/null http://198.51.100.10:8080/big.bin'
  j=$("$MSB" metrics keeper --format json)
  expect_match "net_rx_bytes counts the download" "$j" '"net_rx_bytes": *[0-9]{7,}'
  expect_match "net_tx_bytes is there" "$j" '"net_tx_bytes": *[1-9]'
  expect_match "the table has NET RX/TX" "$("$MSB" metrics keeper)" "NET RX/TX"
  "$MSB" rm -f keeper > /dev/null
}

test_python_uploads_udp_tcp_dns_and_truncation() {
  python_image || return
  msb_capture run -q --dns-nameserver "$DNS" "$PY_IMG" -- python3 -c '
import hashlib, os, socket, struct
data = os.urandom(100 << 20)
s = socket.create_connection(("198.51.100.10", 9000))
s.sendall(data); s.shutdown(socket.SHUT_WR)
got = s.makefile().read().split()
print("upload", got == [str(len(data)), hashlib.sha256(data).hexdigest()])
def q(name, qtype):
    n = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + n + struct.pack(">HH", qtype, 1)
gw = open("/etc/resolv.conf").read().split()[1]
t = socket.create_connection((gw, 53))
m = q("good.test", 1); t.sendall(struct.pack(">H", len(m)) + m)
ln = struct.unpack(">H", t.recv(2))[0]; r = b""
while len(r) < ln: r += t.recv(ln - len(r))
print("tcp-dns", r[:2] == b"\x12\x34" and socket.inet_aton("198.51.100.10") in r)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(10)
u.sendto(q("big.test", 16), (gw, 53)); r = u.recv(4096)
print("udp-truncated", bool(r[2] & 2))
m = q("big.test", 16); t.sendall(struct.pack(">H", len(m)) + m)
ln = struct.unpack(">H", t.recv(2))[0]; r = b""
while len(r) < ln: r += t.recv(ln - len(r))
print("tcp-big", struct.unpack(">H", r[6:8])[0])
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.settimeout(10)
e.sendto(b"udp", ("198.51.100.10", 9999)); print(e.recv(100).decode())'
  expect_eq "exit code" "$RC" 0
  expect_eq "output" "$OUT" "upload True
tcp-dns True
udp-truncated True
tcp-big 40
echo:udp"
  expect_no_leftovers
}

test_trust_host_cas() {
  printf -- '-----BEGIN CERTIFICATE-----\nMSBTESTCA\n-----END CERTIFICATE-----\n' > "$TMP/ca.pem"
  SSL_CERT_FILE="$TMP/ca.pem" msb_capture run --rootfs "$SQFS" \
    --dns-nameserver "$DNS" --trust-host-cas -- cat /etc/ssl/certs/ca-certificates.crt
  expect_eq "exit code" "$RC" 0
  expect_match "the host's CAs are in the guest's bundle" "$OUT" "MSBTESTCA"
  SSL_CERT_FILE="$TMP/nope.pem" msb_capture run --rootfs "$SQFS" \
    --dns-nameserver "$DNS" --trust-host-cas -- true
  expect_eq "a missing bundle fails the start" "$RC" 125
  expect_match "and says which" "$ERR" "nope.pem"
  expect_no_leftovers
}

test_bad_network_flags_are_one_line() {
  local args
  while IFS='|' read -r args want; do
    # shellcheck disable=SC2086
    msb_capture run --rootfs "$SQFS" $args -- true
    expect_eq "exit code for $args" "$RC" 125
    expect_one_error_line "$ERR" "$want"
  done << 'EOF'
--net-rule deny@*.com|invalid --net-rule token "deny@\*\.com": .*two labels
--net-rule allow@2001:db8::1|invalid --net-rule token .*brackets
--net-rule allow@10.0.0.1/8|invalid --net-rule token .*host bits set
--net-default maybe|invalid --net-default "maybe" \(use allow or deny\)
--net-default deny --net-default-egress allow|.*--net-default
-p 99999:80|-p 99999:80: ports are numbers from 1 to 65535
-p 8080|-p 8080: expected HOST:GUEST
-p 8080:80/sctp|-p 8080:80/sctp: the protocol must be tcp or udp
--dns-nameserver nowhere|--dns-nameserver nowhere: "nowhere" is not an IP address
--dns-query-timeout-ms 0|invalid --dns-query-timeout-ms "0"
--net-ipv4-pool 10.0.0.0/31|invalid --net-ipv4-pool 10.0.0.0/31
--max-connections none|invalid --max-connections "none"
--net-rule allow@suffix=local|invalid --net-rule token "allow@suffix=local": a suffix needs at least two labels
--net-rule permit@any|invalid --net-rule token "permit@any": unknown action "permit"
--net-rule allow:sideways@any|invalid --net-rule token "allow:sideways@any": unknown direction "sideways"
--net-rule allow@any:sctp|invalid --net-rule token "allow@any:sctp": unknown protocol "sctp"
--net-rule allow@any:tcp:0|invalid --net-rule token "allow@any:tcp:0": port 0 out of range
--net-rule allow@any:tcp:90-80|invalid --net-rule token "allow@any:tcp:90-80": port range 90-80 is reversed
--net-rule allow@any:tcp:1-99999|invalid --net-rule token "allow@any:tcp:1-99999": port 99999 out of range
--net-rule allow@good.test,deny@|invalid --net-rule token "deny@": missing target
--net-rule allow@[2001:db8::1|invalid --net-rule token "allow@\[2001:db8::1": missing "\]"
--net-rule allow@10.0.0.0/33|invalid --net-rule token "allow@10\.0\.0\.0/33": invalid prefix length
EOF
  expect_no_leftovers
}

test_an_ordinary_user_has_a_network() {
  id "$USER_NAME" > /dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME" 2> /dev/null
  local u
  u=$(mktemp -d /tmp/msb-e2e-user.XXXXXX)
  chmod 755 "$u"
  cp "$MSB" "$BUILD/vmlinux" "$BUILD/initrd.cpio" "$SQFS" "$u/"
  chmod 755 "$u"/*
  mkdir -p "$u/home" && chown "$USER_NAME" "$u/home"
  OUT=$(runuser -u "$USER_NAME" -- env -i PATH=/usr/bin:/bin HOME="/home/$USER_NAME" \
    MSB_HOME="$u/home" MSB_LIB_DIR="$u" "$u/msb" run --rootfs "$u/rootfs.sqfs" \
    --dns-nameserver "$DNS" -- sh -c 'wget -qO- http://good.test:8080/index.html; ping -c1 -W5 198.51.100.10 > /dev/null && echo ping-ok' 2> "$TMP/user.err")
  RC=$?
  expect_eq "exit code" "$RC" 0
  [ "$RC" = 0 ] || sed 's/^/      /' "$TMP/user.err"
  expect_eq "output" "$OUT" "hello-public
ping-ok"
  rm -rf "$u"
}

run_tests
