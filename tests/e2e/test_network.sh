#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The sandbox network end to end, inside a network namespace this suite makes
# (unshare -n): nothing here sends a packet anywhere but to addresses of that
# namespace and of a second one it makes, "the internet", joined to it by a
# veth pair. There 198.51.100.x stand for public servers, 2001:db8::10 for a
# public IPv6 one, 10.20.30.40 for a private one, 169.254.169.254 for a
# metadata service, and a DNS server of our own on 198.51.100.53 answers for
# *.test (every run passes --dns-nameserver); 127.0.0.1 in the suite's own
# namespace is the host. msb's sockets leave from the suite's namespace, so
# its routes to the second one are what carry the sandboxes' traffic.

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
NETSRV=$E2E_ROOT/tests/fixtures/netsrv.py
DNSD=$E2E_ROOT/tests/fixtures/dnsd.py
PIDS=()

suite_teardown() {
  "$MSB" rm -f web web6 keeper > /dev/null 2>&1
  [ ${#PIDS[@]} -eq 0 ] || kill "${PIDS[@]}" 2> /dev/null
  wait 2> /dev/null
  PIDS=()
  [ -z "${REG:-}" ] || "$E2E_ROOT/tests/fixtures/registry.sh" stop "$REG" > /dev/null 2>&1
}
trap suite_teardown EXIT

# A fixture that does not come up ends the suite, saying which.
fixture_fail() {
  echo "not ok - network: $*"
  echo fail >> "$E2E_RESULTS"
  exit 0
}

ip link set lo up
# Unprivileged ping sockets for everyone, in this namespace only.
sysctl -qw net.ipv4.ping_group_range="0 2147483647"

# The internet: a namespace held by a sleep that dies with this shell (as do
# the servers in it: --pdeathsig), so nothing outlives the suite.
unshare -n setpriv --pdeathsig KILL sleep infinity &
INET=$!
PIDS+=("$INET")
inet_ns_made() { [ "$(readlink "/proc/$INET/ns/net")" != "$(readlink /proc/self/ns/net)" ]; }
wait_until 30 inet_ns_made || fixture_fail "the second network namespace was not made"
INET_NS=(nsenter -t "$INET" -n)
ip link add msb-e2e0 type veth peer name msb-e2e1 netns "$INET" ||
  fixture_fail "no veth pair to the second namespace"
ip addr add 192.0.2.1/30 dev msb-e2e0
ip addr add 2001:db8:ff::1/64 dev msb-e2e0 nodad
ip link set msb-e2e0 up
"${INET_NS[@]}" sh -e -c '
  ip link set lo up
  ip addr add 192.0.2.2/30 dev msb-e2e1
  ip addr add 2001:db8:ff::2/64 dev msb-e2e1 nodad
  ip link set msb-e2e1 up
  for a in 198.51.100.10 198.51.100.11 198.51.100.53 10.20.30.40 169.254.169.254; do
    ip addr add "$a/32" dev lo
  done
  ip addr add 2001:db8::10/128 dev lo nodad
  # A closed port answers at once, however often it is asked (the failover test).
  sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0' ||
  fixture_fail "the second namespace could not be set up"
# Routes to those addresses only: anything else is unreachable from here.
for a in 198.51.100.10 198.51.100.11 198.51.100.53 10.20.30.40 169.254.169.254; do
  ip route add "$a/32" via 192.0.2.2
done
ip -6 route add 2001:db8::10/128 via 2001:db8:ff::2

mkdir -p "$TMP/www" "$TMP/other" "$TMP/host" "$TMP/private" "$TMP/meta"
echo hello-public > "$TMP/www/index.html"
echo hello-other > "$TMP/other/index.html"
echo hello-host > "$TMP/host/index.html"
echo hello-private > "$TMP/private/index.html"
echo hello-metadata > "$TMP/meta/index.html"
head -c $((100 << 20)) /dev/urandom > "$TMP/www/big.bin"
BIG_SUM=$(sha256sum < "$TMP/www/big.bin" | cut -d' ' -f1)

# shellcheck disable=SC2054 # MODE,ADDR,PORT[,DIR]: the commas are netsrv.py's
INET_SERVICES=(http,198.51.100.10,8080,"$TMP/www" http,2001:db8::10,8080,"$TMP/www"
  http,198.51.100.11,8080,"$TMP/other" http,10.20.30.40,8080,"$TMP/private"
  http,169.254.169.254,80,"$TMP/meta" sink,198.51.100.10,9000 hold,198.51.100.10,9001
  udpecho,198.51.100.10,9999 hold,198.51.100.10,853)
"${INET_NS[@]}" setpriv --pdeathsig KILL python3 "$NETSRV" serve --ready "$TMP/inet.ready" \
  "${INET_SERVICES[@]}" &
PIDS+=($!)
INET_SRV=$!
setpriv --pdeathsig KILL python3 "$NETSRV" serve --ready "$TMP/host.ready" \
  http,127.0.0.1,8081,"$TMP/host" &
PIDS+=($!)
HOST_SRV=$!

DNS=198.51.100.53:53
DNS_LOG=$TMP/dns.log
: > "$DNS_LOG"
"${INET_NS[@]}" setpriv --pdeathsig KILL python3 "$DNSD" --listen "$DNS" --port-file "$TMP/dns.ready" \
  --log "$DNS_LOG" --ttl 60 \
  --record good.test=A:198.51.100.10 --record good.test=AAAA:2001:db8::10 \
  --record other.test=A:198.51.100.11 --record alias.test=CNAME:good.test \
  --record also.test=A:198.51.100.11 \
  --record private.test=A:10.20.30.40 --record meta.test=A:169.254.169.254 \
  --record a.b.good.test=A:198.51.100.10 --record bad.test=A:198.51.100.11 \
  --record blocked.test=A:198.51.100.10 --record ads.blocked2.test=A:198.51.100.10 \
  --drop slow.test --big big.test &
PIDS+=($!)
DNS_SRV=$!
# Two more on the same address for the multicast DNS test: one on mDNS's port
# (nothing may reach it), one on the next port (the same query gets there).
MDNS_LOG=$TMP/mdns.log
MDNS_CTL_LOG=$TMP/mdns-control.log
: > "$MDNS_LOG"
: > "$MDNS_CTL_LOG"
"${INET_NS[@]}" setpriv --pdeathsig KILL python3 "$DNSD" --listen 198.51.100.53:5353 \
  --port-file "$TMP/mdns.ready" --log "$MDNS_LOG" --record good.test=A:198.51.100.10 &
PIDS+=($!)
MDNS_SRV=$!
"${INET_NS[@]}" setpriv --pdeathsig KILL python3 "$DNSD" --listen 198.51.100.53:5354 \
  --port-file "$TMP/mdns-control.ready" --log "$MDNS_CTL_LOG" --record good.test=A:198.51.100.10 &
PIDS+=($!)
MDNS_CTL_SRV=$!
# A nameserver that refuses: a port nothing listens on, in the internet.
DEAD_DNS=198.51.100.53:9

# Each server up (its sockets listening; a crash ends the wait at once), then
# each one answering a real request from here, through the routes.
up_or_dead() { [ -s "$TMP/$1.ready" ] || ! kill -0 "$2" 2> /dev/null; }
await_start() { # NAME PID
  wait_until 60 up_or_dead "$1" "$2"
  [ -s "$TMP/$1.ready" ] || fixture_fail "the $1 server did not start"
}
await_start inet "$INET_SRV"
await_start host "$HOST_SRV"
await_start dns "$DNS_SRV"
await_start mdns "$MDNS_SRV"
await_start mdns-control "$MDNS_CTL_SRV"
probe_out=$(python3 "$NETSRV" probe --deadline 60 "${INET_SERVICES[@]%,/*}" http,127.0.0.1,8081 \
  dns,198.51.100.53,53 dns,198.51.100.53,5353 dns,198.51.100.53,5354 2>&1) ||
  fixture_fail "$probe_out"
: > "$DNS_LOG"
: > "$MDNS_LOG"
: > "$MDNS_CTL_LOG"

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

# await_http SECONDS URL: prints the body once URL answers 200 with one; 1 if it never does.
await_http() {
  local end=$((SECONDS + $1)) body
  while :; do
    body=$(curl -sf --max-time 5 "$2") && [ -n "$body" ] && {
      printf '%s\n' "$body"
      return 0
    }
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.2
  done
}

# In the guest: get URL prints the page, or "refused URL" when there is none.
# (And nslookup -type=a everywhere: one query. busybox asks for A and AAAA at
# once with ids from the clock, which in a TCG guest ticks in jiffies: both get
# the same id, the second answer is dropped and nslookup waits 5 s for it.)
GET='get() { wget -qO- "$1" 2> /dev/null || echo "refused $1"; }'

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
  local log script="$GET"'
    get http://10.20.30.40:8080/index.html
    get http://169.254.169.254/index.html
    get http://host.microsandbox.internal:8081/index.html
    ping -c1 -W3 10.20.30.40 > /dev/null 2>&1 && echo ping-private || echo no-ping-private'
  msb_capture run --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" -- sh -c "$script"
  expect_eq "exit code" "$RC" 0
  expect_eq "private, metadata, the host and a ping to private refused" "$OUT" \
    "refused http://10.20.30.40:8080/index.html
refused http://169.254.169.254/index.html
refused http://host.microsandbox.internal:8081/index.html
no-ping-private"
  log=$(runtime_log_of keeper)
  expect_match "runtime.log names the destination and the rule" "$log" \
    "denied egress to tcp 10\.20\.30\.40:8080: deny egress: private address"
  expect_match "metadata is logged as such" "$log" \
    "denied egress to tcp 169\.254\.169\.254:80: deny egress: [a-z_+]*metadata"
  expect_match "the host's loopback is logged" "$log" \
    "denied egress to tcp 172\.[0-9.]+:8081: deny egress: loopback address"
  expect_match "the ping is logged" "$log" "denied egress to icmp 10\.20\.30\.40: deny egress: private address"
  "$MSB" rm keeper > /dev/null
  # The control: the same requests, each allowed by a rule, all answer.
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" \
    --net-rule allow@10.20.30.40,allow@169.254.169.254:tcp:80,allow@loopback:tcp:8081 -- sh -c "$script"
  expect_eq "allowed by rules, the same requests answer" "$OUT" "hello-private
hello-metadata
hello-host
ping-private"
  expect_no_leftovers
}

test_dns_rebind_protection() {
  msb_capture run --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" -- sh -c '
    nslookup -type=a private.test 2>&1 | grep -q "can.t find private.test: NXDOMAIN" && echo private-nxdomain
    nslookup -type=a meta.test 2>&1 | grep -q "can.t find meta.test: NXDOMAIN" && echo meta-nxdomain
    nslookup -type=a good.test 2>&1 | grep -q "Address: 198.51.100.10" && echo good-resolves'
  expect_eq "answers pointing inside are dropped" "$OUT" "private-nxdomain
meta-nxdomain
good-resolves"
  expect_match "and logged" "$(runtime_log_of keeper)" \
    "dns: private\.test resolves to internal addresses only; answered NXDOMAIN \(rebind protection"
  "$MSB" rm keeper > /dev/null
  # Without it the names resolve, and a rule for a name lets its connections through
  # once the name is resolved, not before. A metadata address is the exception: a
  # name's answer never opens it (the zone chose it); only a rule naming metadata does.
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --no-dns-rebind-protection \
    --net-rule allow@private.test:tcp:8080,allow@meta.test:tcp:80 -- sh -c "$GET"'
    nslookup -type=a private.test 2>&1 | grep -q "Address: 10.20.30.40" && echo private-resolves
    get http://private.test:8080/index.html
    get http://169.254.169.254/index.html
    nslookup -type=a meta.test 2>&1 | grep -q "Address: 169.254.169.254" && echo meta-resolves
    get http://meta.test/index.html'
  expect_eq "--no-dns-rebind-protection" "$OUT" "private-resolves
hello-private
refused http://169.254.169.254/index.html
meta-resolves
refused http://meta.test/index.html"
  # The control: a rule that names metadata opens the same address and port.
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --no-dns-rebind-protection \
    --net-rule allow@metadata:tcp:80 -- sh -c "$GET"'
    nslookup -type=a meta.test 2>&1 | grep -q "Address: 169.254.169.254" && echo meta-resolves
    get http://meta.test/index.html'
  expect_eq "allow@metadata opens it" "$OUT" "meta-resolves
hello-metadata"
  expect_no_leftovers
}

test_no_net_allowlist_by_name_needs_our_answer() {
  local log
  : > "$DNS_LOG"
  msb_capture run --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" --no-net \
    --net-rule allow@good.test:tcp:8080,allow@also.test:tcp:8080 -- sh -c "$GET"'
    get http://198.51.100.10:8080/index.html
    get http://good.test:8080/index.html
    get http://198.51.100.10:8080/index.html
    nslookup -type=a other.test 2>&1 | grep -q "can.t find other.test: NXDOMAIN" && echo other-nxdomain
    get http://198.51.100.11:8080/index.html
    get http://also.test:8080/index.html
    get http://198.51.100.11:8080/index.html'
  expect_eq "exit code" "$RC" 0
  expect_eq "an address opens once an allowed name resolves to it, not before" "$OUT" \
    "refused http://198.51.100.10:8080/index.html
hello-public
hello-public
other-nxdomain
refused http://198.51.100.11:8080/index.html
hello-other
hello-other"
  expect_eq "a denied name never reaches the nameserver" "$(grep -c '^other.test' "$DNS_LOG")" 0
  log=$(runtime_log_of keeper)
  expect_match "the refused name is logged" "$log" "denied dns other\.test \(policy: the name may not resolve\)"
  expect_match "the refused address is logged" "$log" \
    "denied egress to tcp 198\.51\.100\.11:8080: deny egress \(default\)"
  "$MSB" rm keeper > /dev/null
  expect_no_leftovers
}

# The issue's allowlist: deny by default, one name; wildcards match the apex and any depth.
test_deny_default_with_a_name_and_wildcards() {
  local log script="$GET"'
    get http://good.test:8080/index.html
    get http://bad.test:8080/index.html
    get http://198.51.100.11:8080/index.html
    get http://a.b.good.test:8080/index.html'
  msb_capture run --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" --net-default deny \
    --net-rule 'allow@good.test' -- sh -c "$script"
  expect_eq "exit code" "$RC" 0
  expect_eq "only good.test" "$OUT" "hello-public
refused http://bad.test:8080/index.html
refused http://198.51.100.11:8080/index.html
refused http://a.b.good.test:8080/index.html"
  log=$(runtime_log_of keeper)
  expect_match "bad.test's refusal is logged" "$log" "denied dns bad\.test \(policy"
  expect_match "the address's refusal is logged" "$log" \
    "denied egress to tcp 198\.51\.100\.11:8080: deny egress \(default\)"
  expect_match "the subdomain's refusal is logged" "$log" "denied dns a\.b\.good\.test \(policy"
  "$MSB" rm keeper > /dev/null
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --net-default deny \
    --net-rule 'allow@*.good.test' -- sh -c "$script"
  expect_eq "exit code" "$RC" 0
  expect_eq "*.good.test: the apex and any depth" "$OUT" "hello-public
refused http://bad.test:8080/index.html
refused http://198.51.100.11:8080/index.html
hello-public"
  # The control: under the default policy every one of them answers.
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" -- sh -c "$script"
  expect_eq "without the deny, the same requests answer" "$OUT" "hello-public
hello-other
hello-other
hello-public"
  expect_no_leftovers
}

test_dns_block_domain_and_deny_rules() {
  local log sum
  sum=$(echo x | sha256sum | cut -d' ' -f1)
  : > "$DNS_LOG"
  msb_capture run --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" --dns-block-domain blocked.test \
    --dns-block-domain '*.blocked2.test' --net-rule 'deny@198.51.100.10:tcp:9000' -- sh -c '
    nslookup -type=a blocked.test 2>&1 | grep -q "can.t find blocked.test: NXDOMAIN" && echo blocked
    nslookup -type=a ads.blocked2.test 2>&1 | grep -q "can.t find ads.blocked2.test: NXDOMAIN" && echo blocked-suffix
    wget -qO- http://good.test:8080/index.html
    echo x | nc 198.51.100.10 9000 2>&1'
  expect_eq "output" "$OUT" "blocked
blocked-suffix
hello-public
nc: can't connect to remote host (198.51.100.10): Connection refused"
  expect_eq "blocked names never leave" "$(grep -c 'blocked' "$DNS_LOG")" 0
  log=$(runtime_log_of keeper)
  expect_match "the port's denial is logged with its rule" "$log" \
    "denied egress to tcp 198\.51\.100\.10:9000: deny egress 198\.51\.100\.10 tcp 9000 \(rule 3\)"
  expect_match "the blocked name is logged" "$log" "denied dns blocked\.test"
  "$MSB" rm keeper > /dev/null
  # The control: without the flags the names resolve and the port takes the upload.
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" -- sh -c '
    nslookup -type=a blocked.test 2>&1 | grep -q "Address: 198.51.100.10" && echo blocked-resolves
    nslookup -type=a ads.blocked2.test 2>&1 | grep -q "Address: 198.51.100.10" && echo suffix-resolves
    echo x | nc 198.51.100.10 9000 2>&1'
  expect_eq "without them, the same names and port answer" "$OUT" "blocked-resolves
suffix-resolves
2 $sum"
  expect_no_leftovers
}

# Resolvers around ours are refused whatever the policy: DNS over TLS (tcp 853) and
# multicast DNS (udp 5353, to the mDNS group or to any address). The same kind of
# connection or query to another port of the same host gets through.
test_dns_over_tls_and_multicast_dns_are_refused() {
  local log
  : > "$MDNS_LOG"
  : > "$MDNS_CTL_LOG"
  msb_capture run --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" -- sh -c '
    nc 198.51.100.10 853 < /dev/null 2>&1
    nc 198.51.100.10 9001 < /dev/null 2>&1
    # ask SERVER: "answer" when good.test is answered within 5 s, else "none".
    ask() {
      timeout 5 nslookup -type=a good.test "$1" 2>&1 | grep -q "Address: 198.51.100.10" &&
        echo "answer from $1" || echo "none from $1"
    }
    ask 224.0.0.251:5353 > /tmp/m1 &
    ask 198.51.100.53:5353 > /tmp/m2 &
    ask 198.51.100.53:5354
    wait
    cat /tmp/m1 /tmp/m2'
  expect_eq "exit code" "$RC" 0
  expect_eq "DoT and mDNS refused, the same host's other ports answer" "$OUT" \
    "nc: can't connect to remote host (198.51.100.10): Connection refused
held
answer from 198.51.100.53:5354
none from 224.0.0.251:5353
none from 198.51.100.53:5353"
  expect_eq "the server on 853 is there" "$(python3 "$NETSRV" connect 198.51.100.10 853)" "held"
  log=$(runtime_log_of keeper)
  expect_match "DoT is logged with the reason" "$log" \
    "denied egress to tcp 198\.51\.100\.10:853: DNS over TLS is refused"
  expect_match "the mDNS query is logged with the reason" "$log" \
    "denied egress to udp 224\.0\.0\.251:5353: multicast DNS is refused"
  expect_match "so is the one to a unicast address" "$log" \
    "denied egress to udp 198\.51\.100\.53:5353: multicast DNS is refused"
  expect_eq "nothing reached the server on 5353" "$(cat "$MDNS_LOG")" ""
  expect_match "the query reached the one on 5354" "$(cat "$MDNS_CTL_LOG")" "^good\.test A"
  "$MSB" rm keeper > /dev/null
  expect_no_leftovers
}

test_host_is_reachable_only_by_rule() {
  msb_capture run --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" \
    --net-rule allow@loopback:tcp:8081 -- sh -c "$GET"'
    get http://host.microsandbox.internal:8081/index.html
    get http://10.20.30.40:8080/index.html'
  expect_eq "output" "$OUT" "hello-host
refused http://10.20.30.40:8080/index.html"
  # Refused by the policy, not for want of a server: it answers here, and
  # test_default_policy_denies_private_metadata_and_host reaches it by a rule.
  expect_match "the private refusal is the policy's" "$(runtime_log_of keeper)" \
    "denied egress to tcp 10\.20\.30\.40:8080: deny egress: private address"
  expect_eq "the private server answers" "$(curl -s --max-time 5 http://10.20.30.40:8080/index.html)" \
    "hello-private"
  "$MSB" rm keeper > /dev/null
  expect_no_leftovers
}

test_nameserver_failover_and_timeout() {
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DEAD_DNS" --dns-nameserver "$DNS" -- \
    wget -qO- http://good.test:8080/index.html
  expect_eq "the second nameserver answers when the first refuses" "$OUT" "hello-public"
  # A nameserver that never answers: SERVFAIL once --dns-query-timeout-ms is
  # spent, timed in the guest (without the flag it takes the default 5 s).
  : > "$DNS_LOG"
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --dns-query-timeout-ms 300 -- sh -c '
    t0=$(cut -d" " -f1 /proc/uptime)
    nslookup -type=a slow.test > /tmp/out 2>&1
    t1=$(cut -d" " -f1 /proc/uptime)
    grep slow.test /tmp/out | sort -u
    awk -v a="$t0" -v b="$t1" "BEGIN { print int((b - a) * 1000) }"'
  expect_eq "exit code" "$RC" 0
  expect_eq "a silent nameserver ends in SERVFAIL" "$(sed -n 1p <<< "$OUT")" \
    "** server can't find slow.test: SERVFAIL"
  local ms
  ms=$(sed -n 2p <<< "$OUT")
  echo "    # nslookup of a silent name with --dns-query-timeout-ms 300: $ms ms"
  if ! [[ "$ms" =~ ^[0-9]+$ ]] || [ "$ms" -ge 4000 ]; then
    fail "the query took $ms ms: the 300 ms timeout was not applied (the default is 5000)"
  fi
  expect_match "the nameserver was asked" "$(cat "$DNS_LOG")" "slow\.test A"
  expect_no_leftovers
}

# A guest that stops taking its frames (eth0 down: the virtio ring fills, QEMU stops
# reading the link) while a host peer floods a published UDP port: the supervisor drops
# what it cannot deliver instead of being woken for it again and again, and stays idle.
test_a_guest_that_stops_reading_its_link_costs_no_cpu() {
  local pu pid npid cpu0 cpu1 used
  pu=$(free_port)
  nrun -q -d --name web -p "$pu:7000/udp" -- sh -c 'ip link set eth0 down; echo down; sleep 600' > /dev/null
  guest_link_down() { "$MSB" logs web 2> /dev/null | grep -q down; }
  wait_until 60 guest_link_down || fail "the guest did not take its link down"
  pid=$("$MSB" inspect web --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
  # The stack runs in the sandbox's network process, a child of the supervisor.
  npid=$(pgrep -P "$pid" -f '__net' | head -n 1)
  [ -n "$npid" ] || fail "no network process under the supervisor $pid"
  python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + 2
while time.monotonic() < end:
    for _ in range(200):
        s.sendto(b'x' * 1400, ('127.0.0.1', $pu))
    time.sleep(0.001)"
  sleep 0.5
  cpu0=$(awk '{s += $14 + $15} END {print s}' "/proc/$pid/stat" "/proc/$npid/stat")
  sleep 2
  cpu1=$(awk '{s += $14 + $15} END {print s}' "/proc/$pid/stat" "/proc/$npid/stat")
  used=$((cpu1 - cpu0))
  echo "    # supervisor + network process CPU in 2 s after the flood: $used ticks"
  [ "$used" -le 30 ] || fail "the supervisor and network process used $used ticks of CPU in 2 s of quiet"
  expect_match "the drops are counted" "$(runtime_log_of web)" "dropped"
  msb_capture stop -t 1 web
  expect_eq "the sandbox still stops" "$RC" 0
  "$MSB" rm -f web > /dev/null
  expect_no_leftovers
}

test_published_ports() {
  local p out rc
  p=$(free_port)
  msb_capture run -d --name web --rootfs "$SQFS" --dns-nameserver "$DNS" -p "$p:8000" -- sh -c '
    mkdir -p /tmp/w && echo hello-guest > /tmp/w/index.html && exec httpd -f -p 8000 -h /tmp/w'
  expect_eq "run -d" "$RC" 0
  out=$(await_http 60 "http://127.0.0.1:$p/index.html")
  expect_eq "the host reaches the guest's port" "$out" "hello-guest"
  expect_match "ps shows the port" "$("$MSB" ps)" "127\.0\.0\.1:$p->8000/tcp"
  expect_match "inspect shows the port" "$("$MSB" inspect web)" "network\.ports\[0\]: 127\.0\.0\.1:$p->8000/tcp"
  expect_match "inspect shows the address" "$("$MSB" inspect web)" "network\.ipv4: 172\.[0-9.]+/30"
  # The same port again: a one-line error before any boot.
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" -p "$p:8000" -- true
  expect_eq "port in use: exit code" "$RC" 125
  expect_one_error_line "$ERR" ".*127\.0\.0\.1:$p/tcp: Address already in use \(choose another host port\)"
  "$MSB" rm -f web > /dev/null
  # Ingress denied by policy: nothing comes back, and the denial is logged;
  # asked once the guest's own server answers inside the guest.
  p=$(free_port)
  "$MSB" run -d -q --name web --rootfs "$SQFS" --dns-nameserver "$DNS" -p "$p:8000" \
    --net-default-ingress deny -- httpd -f -p 8000 -h /etc > /dev/null
  guest_httpd_up() { "$MSB" exec web -- wget -qO /dev/null http://127.0.0.1:8000/hostname 2> /dev/null; }
  wait_until 60 guest_httpd_up ||
    fail "the guest's httpd did not answer inside the guest"
  out=$(curl -s --max-time 5 "http://127.0.0.1:$p/hostname")
  rc=$?
  expect_eq "ingress denied: no answer" "$out" ""
  [ "$rc" != 0 ] || fail "ingress denied: curl succeeded"
  expect_match "runtime.log says so" "$(runtime_log_of web)" \
    "denied ingress from tcp 127\.0\.0\.1:[0-9]+: deny ingress \(default\)"
  "$MSB" rm -f web > /dev/null
  # The control: the same port and server without --net-default-ingress deny answer.
  "$MSB" run -d -q --name web --rootfs "$SQFS" --dns-nameserver "$DNS" -p "$p:8000" \
    -- httpd -f -p 8000 -h /etc > /dev/null
  out=$(await_http 60 "http://127.0.0.1:$p/hostname")
  expect_eq "without the deny, the same port answers" "$out" "$("$MSB" exec web -- cat /etc/hostname)"
  "$MSB" rm -f web > /dev/null
  expect_no_leftovers
}

test_bind_address_and_pools() {
  local p out
  p=$(free_port)
  "$MSB" run -d -q --name web --rootfs "$SQFS" --dns-nameserver "$DNS" -p "127.0.0.2:$p:8000" \
    --net-ipv4-pool 10.99.0.0/30 -- sh -c '
    mkdir -p /tmp/w && echo hello-guest > /tmp/w/index.html && exec httpd -f -p 8000 -h /tmp/w' > /dev/null
  out=$(await_http 60 "http://127.0.0.2:$p/index.html")
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
  # Until the guest's server answers (90 s: the python image boots slowly under load).
  out=$(python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
end = time.monotonic() + 90
while time.monotonic() < end:
    s.sendto(b'over-udp', ('127.0.0.1', $pu))
    try:
        print(s.recv(100).decode())
        break
    except OSError:
        pass")
  expect_eq "a published UDP port" "$out" "guest:over-udp"
  "$MSB" rm -f web > /dev/null
  expect_no_leftovers
}

# Two connections held open (the server keeps each until its client is done):
# a third is refused, not queued; once one of the two ends, a new one gets in.
test_max_connections() {
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --max-connections 2 -- sh -c '
    # until N CMD: runs CMD every 0.1 s, N times at most.
    until_n() { n=$1; shift; until "$@"; do n=$((n - 1)); [ $n -gt 0 ] || return 1; sleep 0.1; done; }
    sleep 600 | nc 198.51.100.10 9001 > /tmp/a &
    first=$!
    sleep 600 | nc 198.51.100.10 9001 > /tmp/b &
    until_n 600 grep -q held /tmp/a && until_n 600 grep -q held /tmp/b || echo "not held"
    nc 198.51.100.10 9001 < /dev/null 2>&1
    kill $first
    third() { [ "$(nc 198.51.100.10 9001 < /dev/null 2>&1)" = held ]; }
    until_n 300 third && echo third-held-after-one-ended
    cat /tmp/a /tmp/b'
  expect_eq "the third connection is refused, not queued" "$OUT" \
    "nc: can't connect to remote host (198.51.100.10): Connection refused
third-held-after-one-ended
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

# The host's own addresses are the host, not "public" (issue 15, item 11): a
# wildcard listener of the host answers on every address of every interface,
# so an address on this namespace's lo from a public range is the host's.
test_the_hosts_own_addresses_are_the_host() {
  local srv out
  ip addr add 198.51.100.99/32 dev lo
  ip addr add 2001:db8:99::1/128 dev lo nodad
  mkdir -p "$TMP/own"
  echo hello-own-address > "$TMP/own/index.html"
  rm -f "$TMP/own.ready"
  setpriv --pdeathsig KILL python3 "$NETSRV" serve --ready "$TMP/own.ready" http,::,8082,"$TMP/own" &
  srv=$!
  wait_until 60 test -s "$TMP/own.ready" || fail "the wildcard listener did not start"
  # The control: the listener answers on both addresses.
  expect_eq "the wildcard listener answers on 198.51.100.99" \
    "$(curl -s --max-time 5 http://198.51.100.99:8082/index.html)" hello-own-address
  expect_eq "and on 2001:db8:99::1" \
    "$(curl -s --max-time 5 'http://[2001:db8:99::1]:8082/index.html')" hello-own-address
  msb_capture run --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" -- sh -c "$GET
    get http://198.51.100.99:8082/index.html; get 'http://[2001:db8:99::1]:8082/index.html'
    get http://198.51.100.10:8080/index.html"
  expect_eq "the default policy: both refused, the internet still answers" "$OUT" \
    "refused http://198.51.100.99:8082/index.html
refused http://[2001:db8:99::1]:8082/index.html
hello-public"
  expect_match "runtime.log says whose address it is" "$(runtime_log_of keeper)" \
    "denied egress to tcp 198\.51\.100\.99:8082: an address of the host itself, deny egress: loopback address"
  "$MSB" rm -f keeper > /dev/null
  # A rule for the host opens them, as it opens the host's loopback.
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --net-rule allow@loopback:tcp:8082 -- \
    sh -c "$GET
    get http://198.51.100.99:8082/index.html; get 'http://[2001:db8:99::1]:8082/index.html'"
  expect_eq "allow@loopback opens the host's own addresses" "$OUT" "hello-own-address
hello-own-address"
  # An address the host gains while a sandbox runs is the host's at once.
  "$MSB" run -d -q --name keeper --rootfs "$SQFS" --dns-nameserver "$DNS" -- sleep 600 > /dev/null
  msb_capture exec keeper -- sh -c "$GET; get http://198.51.100.98:8082/index.html"
  expect_eq "not yet an address of anything" "$OUT" "refused http://198.51.100.98:8082/index.html"
  ip addr add 198.51.100.98/32 dev lo
  expect_eq "the new address answers here" \
    "$(curl -s --max-time 5 http://198.51.100.98:8082/index.html)" hello-own-address
  msb_capture exec keeper -- sh -c "$GET; get http://198.51.100.98:8082/index.html"
  expect_eq "the guest is refused the new address" "$OUT" "refused http://198.51.100.98:8082/index.html"
  expect_match "as the host's" "$(runtime_log_of keeper)" \
    "denied egress to tcp 198\.51\.100\.98:8082: an address of the host itself"
  "$MSB" rm -f keeper > /dev/null
  kill "$srv" 2> /dev/null
  wait "$srv" 2> /dev/null
  ip addr del 198.51.100.99/32 dev lo
  ip addr del 198.51.100.98/32 dev lo
  ip addr del 2001:db8:99::1/128 dev lo
  expect_no_leftovers
}

# A guest with more flows than a desktop's descriptor limit (issue 15, item 8): they
# live in its network process, so the sandbox's control path answers as ever and
# nothing spins.
test_a_thousand_guest_flows_leave_the_sandbox_answering() {
  local pid npid t0 t1 cpu0 cpu1
  python_image || return
  "$MSB" run -q -d --name keeper --dns-nameserver "$DNS" --rlimit nofile=4096 "$PY_IMG" -- \
    python3 -c '
import socket, time
socks = []
for i in range(1100):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("198.51.100.10", 20000 + i))
    socks.append(s)
print("flows", len(socks), flush=True)
time.sleep(600)' > /dev/null
  guest_flows_open() { "$MSB" logs keeper 2> /dev/null | grep -q "flows 1100"; }
  wait_until 120 guest_flows_open || fail "the guest did not open its flows"
  t0=$(date +%s%N)
  msb_capture exec keeper -- echo alive
  t1=$(date +%s%N)
  expect_eq "exec still answers" "$OUT" alive
  echo "    # exec with 1100 guest flows open: $(((t1 - t0) / 1000000)) ms"
  [ $(((t1 - t0) / 1000000)) -lt 30000 ] || fail "exec took $(((t1 - t0) / 1000000)) ms"
  pid=$("$MSB" inspect keeper --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
  npid=$(pgrep -P "$pid" -f '__net' | head -n 1)
  expect_match "the flows are the network process's" "$(ls "/proc/$npid/fd" | wc -l)" "^[0-9]{4}$"
  expect_eq "the supervisor holds none of them" "$(($(ls "/proc/$pid/fd" | wc -l) < 100))" 1
  cpu0=$(awk '{s += $14 + $15} END {print s}' "/proc/$pid/stat" "/proc/$npid/stat")
  sleep 2
  cpu1=$(awk '{s += $14 + $15} END {print s}' "/proc/$pid/stat" "/proc/$npid/stat")
  [ $((cpu1 - cpu0)) -le 30 ] || fail "$((cpu1 - cpu0)) ticks of CPU in 2 s of quiet"
  "$MSB" rm -f keeper > /dev/null
  expect_no_leftovers
}

run_tests
