#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Secrets and TLS interception end to end (--secret, --tls-*), inside a network
# namespace this suite makes (unshare -n), as test_network.sh does: "the
# internet" is a second namespace joined by a veth pair. There 198.51.100.10
# (api.test), .11 (other.test) and .12 (an address api.test never resolves to)
# run tlsecho.py with a certificate of the suite's own test CA; .13 (bad.test)
# presents one from a CA nobody trusts; a DNS server of ours on .53 answers
# for *.test (every run passes --dns-nameserver). The guest image (tlsclient:
# curl, python3, openssl) comes from a registry on this namespace's 127.0.0.1.
# The guest only ever holds a placeholder; what really reached a server is in
# tlsecho's log, and what the guest saw is its output.
# shellcheck disable=SC2016 # the guest's scripts: their $VARIABLES expand in the guest

# The namespace first: the suite runs again inside it.
if [ "${MSB_E2E_NETNS:-}" != 1 ]; then
  if [ "$(id -u)" != 0 ] || ! unshare -n true 2> /dev/null; then
    echo "not ok - secrets: cannot make a network namespace (needs root and unshare -n)"
    echo fail >> "$E2E_RESULTS"
    exit 0
  fi
  exec env MSB_E2E_NETNS=1 unshare -n bash "$0" "$@"
fi

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs
USER_NAME=msb-e2e
NETSRV=$E2E_ROOT/tests/fixtures/netsrv.py
DNSD=$E2E_ROOT/tests/fixtures/dnsd.py
TLSECHO=$E2E_ROOT/tests/fixtures/tlsecho.py
PIDS=()

suite_teardown() {
  "$MSB" rm -f keeper mem cs term > /dev/null 2>&1
  [ ${#PIDS[@]} -eq 0 ] || kill "${PIDS[@]}" 2> /dev/null
  wait 2> /dev/null
  PIDS=()
  [ -z "${REG:-}" ] || "$E2E_ROOT/tests/fixtures/registry.sh" stop "$REG" > /dev/null 2>&1
}
trap suite_teardown EXIT

fixture_fail() {
  echo "not ok - secrets: $*"
  echo fail >> "$E2E_RESULTS"
  exit 0
}

ip link set lo up

# The test PKI (made once per run, in this suite's TMP).
PKI=$TMP/pki
"$E2E_ROOT/tests/fixtures/tlspki.sh" "$PKI" || fixture_fail "the test PKI could not be made"

# The internet: a namespace held by a sleep that dies with this shell.
unshare -n setpriv --pdeathsig KILL sleep infinity &
INET=$!
PIDS+=("$INET")
inet_ns_made() { [ "$(readlink "/proc/$INET/ns/net")" != "$(readlink /proc/self/ns/net)" ]; }
wait_until 30 inet_ns_made || fixture_fail "the second network namespace was not made"
INET_NS=(nsenter -t "$INET" -n)
ip link add msb-e2e0 type veth peer name msb-e2e1 netns "$INET" ||
  fixture_fail "no veth pair to the second namespace"
ip addr add 192.0.2.1/30 dev msb-e2e0
ip link set msb-e2e0 up
INET_ADDRS=(198.51.100.10 198.51.100.11 198.51.100.12 198.51.100.13 198.51.100.14 198.51.100.20
  198.51.100.53)
"${INET_NS[@]}" sh -e -c '
  ip link set lo up
  ip addr add 192.0.2.2/30 dev msb-e2e1
  ip link set msb-e2e1 up
  for a in "$@"; do ip addr add "$a/32" dev lo; done' sh "${INET_ADDRS[@]}" ||
  fixture_fail "the second namespace could not be set up"
for a in "${INET_ADDRS[@]}"; do ip route add "$a/32" via 192.0.2.2; done

# The servers: tlsecho on .10-.12 (443 and plain 80, the test CA's certificate
# for api.test, other.test, *.api.test), tlsecho on .13 (bad.test, the rogue CA's),
# UDP echoes on .10:443 (QUIC's port) and .10:9999, the DNS server on .53.
ECHO_LOG=$TMP/echo.log
BAD_LOG=$TMP/bad.log
: > "$ECHO_LOG"
: > "$BAD_LOG"
"${INET_NS[@]}" setpriv --pdeathsig KILL python3 "$TLSECHO" --cert "$PKI/server.pem" \
  --key "$PKI/server-key.pem" --bind 198.51.100.10 --bind 198.51.100.11 --bind 198.51.100.12 \
  --port 443 --plain-port 80 --port-file "$TMP/echo.ready" --log "$ECHO_LOG" &
PIDS+=($!)
ECHO_SRV=$!
"${INET_NS[@]}" setpriv --pdeathsig KILL python3 "$TLSECHO" --cert "$PKI/bad.pem" \
  --key "$PKI/bad-key.pem" --bind 198.51.100.13 --port 443 --port-file "$TMP/bad.ready" \
  --log "$BAD_LOG" &
PIDS+=($!)
BAD_SRV=$!
# An HTTP/2 tlsecho on .14 (h2.api.test), with Debian's python3-h2 (not pyenv's python).
H2_LOG=$TMP/h2.log
: > "$H2_LOG"
H2_SRV=
if /usr/bin/python3 -c 'import h2' 2> /dev/null; then
  "${INET_NS[@]}" setpriv --pdeathsig KILL /usr/bin/python3 "$TLSECHO" --h2 \
    --cert "$PKI/server.pem" --key "$PKI/server-key.pem" --bind 198.51.100.14 --port 443 \
    --port-file "$TMP/h2.ready" --log "$H2_LOG" &
  PIDS+=($!)
  H2_SRV=$!
fi
"${INET_NS[@]}" setpriv --pdeathsig KILL python3 "$NETSRV" serve --ready "$TMP/udp.ready" \
  udpecho,198.51.100.10,443 udpecho,198.51.100.10,9999 &
PIDS+=($!)
UDP_SRV=$!
# An HTTPS_PROXY on .20:3128 (CONNECT only; names from its own map, never DNS).
PROXY_LOG=$TMP/proxy.log
: > "$PROXY_LOG"
"${INET_NS[@]}" setpriv --pdeathsig KILL python3 "$E2E_ROOT/tests/fixtures/connproxy.py" \
  --bind 198.51.100.20 --port 3128 --port-file "$TMP/proxy.ready" --log "$PROXY_LOG" \
  --map api.test=198.51.100.10 --map other.test=198.51.100.11 &
PIDS+=($!)
PROXY_SRV=$!
DNS=198.51.100.53:53
DNS_LOG=$TMP/dns.log
"${INET_NS[@]}" setpriv --pdeathsig KILL python3 "$DNSD" --listen "$DNS" --port-file "$TMP/dns.ready" \
  --log "$DNS_LOG" --ttl 60 \
  --record api.test=A:198.51.100.10 --record sub.api.test=A:198.51.100.10 \
  --record other.test=A:198.51.100.11 --record bad.test=A:198.51.100.13 \
  --record direct.test=A:198.51.100.10 --record proxy.test=A:198.51.100.20 \
  --record h2.api.test=A:198.51.100.14 &
PIDS+=($!)
DNS_SRV=$!

up_or_dead() { [ -s "$TMP/$1.ready" ] || ! kill -0 "$2" 2> /dev/null; }
await_start() { # NAME PID
  wait_until 60 up_or_dead "$1" "$2"
  [ -s "$TMP/$1.ready" ] || fixture_fail "the $1 server did not start"
}
await_start echo "$ECHO_SRV"
await_start bad "$BAD_SRV"
[ -z "$H2_SRV" ] || await_start h2 "$H2_SRV"
await_start udp "$UDP_SRV"
await_start dns "$DNS_SRV"
await_start proxy "$PROXY_SRV"
# Each one answering a real request from here, through the routes.
probe_https() { # NAME ADDR
  curl -sf --max-time 5 --cacert "$PKI/ca.pem" --resolve "$1:443:$2" "https://$1/probe" > /dev/null
}
for a in 198.51.100.10 198.51.100.11 198.51.100.12; do
  wait_until 60 probe_https api.test "$a" || fixture_fail "tlsecho on $a does not answer"
done
probe_bad() { curl -sf --max-time 5 --cacert "$PKI/rogue-ca.pem" --resolve bad.test:443:198.51.100.13 https://bad.test/probe > /dev/null; }
wait_until 60 probe_bad || fixture_fail "tlsecho on 198.51.100.13 does not answer"
probe_h2() {
  [ "$(curl -s --http2 --max-time 5 --cacert "$PKI/ca.pem" --resolve h2.api.test:443:198.51.100.14 \
    -o /dev/null -w '%{http_version}' https://h2.api.test/probe)" = 2 ]
}
[ -z "$H2_SRV" ] || wait_until 60 probe_h2 || fixture_fail "tlsecho --h2 on 198.51.100.14 does not answer"
probe_out=$(python3 "$NETSRV" probe --deadline 60 dns,198.51.100.53,53 2>&1) || fixture_fail "$probe_out"
: > "$ECHO_LOG"
: > "$BAD_LOG"
: > "$H2_LOG"

# The secret of every test: random per run, so that finding it anywhere means it leaked.
VALUE=sk-e2e-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
PH_RE='msb-secret-[0-9a-f]{32}'

runtime_log_of() {
  cat "$MSB_HOME/sandboxes/$1/logs/runtime.log" 2> /dev/null
}
json_get() {
  "$MSB" inspect --format json "$1" 2> /dev/null |
    python3 -c "import json, sys; j = json.load(sys.stdin); print($2)"
}
status_of() { json_get "$1" 'j["status"]'; }

# received PATH [LOG]: the requests tlsecho got whose request line has PATH (with its "# to" line).
received() {
  awk -v p=" $1" 'BEGIN { RS = "\n----\n" } index($0, p) { print $0; print "----" }' "${2:-$ECHO_LOG}"
}

# leaks: every file under MSB_HOME, but the secrets store, that holds VALUE (none may).
leaks() {
  grep -rlF --exclude-dir=secrets -e "$VALUE" "$MSB_HOME" 2> /dev/null
}

# The guest image, from a registry in this namespace.
IMG=
tls_image() {
  [ -n "$IMG" ] && return 0
  if ! "$E2E_ROOT/tests/fixtures/images.sh" "$FIX/images" tlsclient > "$TMP/img.log" 2>&1; then
    skip "the tlsclient image cannot be built here: $(tail -n 1 "$TMP/img.log")"
    return 1
  fi
  if [ -z "${REG:-}" ]; then
    REG=$TMP/reg
    "$E2E_ROOT/tests/fixtures/registry.sh" start "$REG" > "$TMP/reg.log" 2>&1 || {
      fail "registry did not start"
      cat "$TMP/reg.log"
      REG=
      return 1
    }
  fi
  # shellcheck disable=SC1091
  source "$REG/env"
  skopeo --policy "$REG/policy.json" copy -q --dest-tls-verify=false \
    "oci:$FIX/images/tlsclient:1" "docker://$PLAIN/test/tlsclient:1" > /dev/null ||
    { fail "push test/tlsclient"; return 1; }
  echo "{\"registries\": {\"hosts\": {\"$PLAIN\": {\"insecure\": true}}}}" > "$MSB_HOME/config.json"
  IMG=$PLAIN/test/tlsclient:1
}

# srun ARGS... -- CMD: msb run of the image with our DNS and the test CA trusted upstream.
srun() {
  local args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  msb_capture run -q --dns-nameserver "$DNS" --tls-upstream-ca-cert "$PKI/ca.pem" "${args[@]}" \
    "$IMG" -- "$@"
}
SECRET=(--secret "KEY=$VALUE@api.test")

# In the guest: code STATUS-LINE for one request: "HTTP-STATUS BODY" on one line.
REQ='req() { curl -s --max-time 30 -o /tmp/body -w "%{http_code}" "$@"; echo " $(tr "\n" " " < /tmp/body)"; }'

test_env_shows_the_placeholder() {
  tls_image || return
  srun "${SECRET[@]}" -- sh -c 'echo "$KEY"; env | grep -c "'"$VALUE"'"; cat /proc/self/environ | tr "\0" "\n" | grep -c "^KEY="'
  expect_eq "exit code" "$RC" 0
  expect_match "the guest sees a placeholder, not the value" "$OUT" "^$PH_RE
0
1$"
  # The control: the same variable given with -e is the value itself.
  srun -e "KEY=$VALUE" -- sh -c 'echo "$KEY"'
  expect_eq "-e KEY=VALUE is the value (the check can see it)" "$OUT" "$VALUE"
  expect_no_leftovers
}

test_the_guest_trusts_msbs_ca() {
  tls_image || return
  srun "${SECRET[@]}" -- sh -c 'echo "$SSL_CERT_FILE|$REQUESTS_CA_BUNDLE|$CURL_CA_BUNDLE|$NODE_EXTRA_CA_CERTS"
    openssl s_client -connect api.test:443 -servername api.test < /dev/null 2> /dev/null | openssl x509 -noout -issuer
    grep -c "BEGIN CERTIFICATE" "$SSL_CERT_FILE" /etc/ssl/certs/ca-certificates.crt'
  expect_eq "exit code" "$RC" 0
  expect_match "every client's variable names a bundle" "$OUT" "^/[^|]+\|/[^|]+\|/[^|]+\|/[^|]+
"
  expect_match "api.test's certificate is msb's, not the server's" "$OUT" $'\nissuer=.*\n'
  [[ "$OUT" == *"msb-e2e test CA"* ]] && fail "the guest saw the server's own certificate"
  [ -s "$MSB_HOME/tls/ca.pem" ] || fail "no CA in \$MSB_HOME/tls/ca.pem"
  local subject
  subject=$(openssl x509 -in "$MSB_HOME/tls/ca.pem" -noout -subject 2> /dev/null | sed 's/^subject=//')
  expect_match "the issuer is msb's CA" "$OUT" "issuer=${subject//./\\.}"
  # The image's own bundle has msb's CA added to Mozilla's.
  expect_match "both bundles hold certificates" "$OUT" ":[0-9]{2,}
.*ca-certificates.crt:[0-9]{2,}$"
  expect_no_leftovers
}

test_curl_http1_substitutes_in_header_query_basic_and_json() {
  local got log basic ph sent
  tls_image || return
  : > "$ECHO_LOG"
  srun --name keeper "${SECRET[@]}" -- sh -c "$REQ"'
    req --http1.1 -H "Authorization: Bearer $KEY" "https://api.test/h1/header"
    req --http1.1 "https://api.test/h1/query?key=$KEY&q=querymarker"
    req --http1.1 -u "user:$KEY" "https://api.test/h1/basic"
    req --http1.1 -H "Content-Type: application/json" -d "{\"key\": \"$KEY\"}" "https://api.test/h1/json"'
  expect_eq "exit code" "$RC" 0
  got=$(received /h1/)
  expect_match "the header arrived with the value" "$got" "Authorization: Bearer $VALUE"
  expect_match "the query arrived with the value" "$got" "GET /h1/query\?key=$VALUE&q=querymarker HTTP/1.1"
  basic=$(printf 'user:%s' "$VALUE" | base64 -w0)
  expect_match "Basic auth arrived with the value" "$got" "Authorization: Basic $basic"
  expect_match "the JSON body arrived with the value" "$got" "\{\"key\": \"$VALUE\"\}"
  [[ "$got" == *msb-secret-* ]] && fail "a placeholder reached the server"
  # What the guest saw: the echo, with the value put back to the placeholder.
  expect_match "the guest's echoes: 200, the placeholder back" "$OUT" \
    "^200 GET /h1/header HTTP/1.1 .*Authorization: Bearer $PH_RE .*
200 GET /h1/query\?key=$PH_RE&q=querymarker .*
200 POST /h1/basic|200 GET /h1/basic .*
200 POST /h1/json .*\{\"key\": \"$PH_RE\"\}"
  [[ "$OUT" == *"$VALUE"* ]] && fail "the value reached the guest"
  # The echoed Basic credential is the guest's own text, not base64 of the value.
  ph=$(grep -oE "Authorization: Bearer $PH_RE" <<< "$OUT" | head -1)
  ph=${ph#Authorization: Bearer }
  sent=$(printf 'user:%s' "$ph" | base64 -w0)
  [[ -n "$ph" && "$(grep -F "GET /h1/basic " <<< "$OUT")" == *"Authorization: Basic $sent"* ]] ||
    fail "the guest's Basic echo is not the credential it sent (user:$ph, $sent): $OUT"
  [[ "$OUT" == *"$basic"* ]] && fail "base64 of user:value reached the guest"
  # One audit line per request, the path without its query, no value.
  log=$(runtime_log_of keeper)
  expect_match "an audit line for the query's request" "$log" "GET[^[:cntrl:]]*api\.test[^[:cntrl:]]*/h1/query[^[:cntrl:]]*200[^[:cntrl:]]*KEY"
  expect_eq "four audit lines" "$(grep -Ec '/h1/(header|query|basic|json)' <<< "$log")" 4
  [[ "$log" == *querymarker* ]] && fail "the audit line has the query"
  [[ "$log" == *"$VALUE"* ]] && fail "the runtime log has the value"
  "$MSB" rm keeper > /dev/null
  expect_no_leftovers
}

# The encoded forms of the placeholder: percent-encoded in a query, \u-escaped in JSON.
test_curl_substitutes_percent_encoded_and_json_escaped_forms() {
  local got
  tls_image || return
  : > "$ECHO_LOG"
  srun "${SECRET[@]}" -- sh -c "$REQ"'
    pct=$(printf %s "$KEY" | od -An -tx1 | tr -d " \n" | sed "s/../%&/g")
    req "https://api.test/enc/pct?key=$pct"
    esc=$(printf %s "$KEY" | sed "s/^m/\\\\u006d/")
    req -H "Content-Type: application/json" -d "{\"key\": \"$esc\"}" "https://api.test/enc/json"'
  expect_eq "exit code" "$RC" 0
  got=$(received /enc/)
  expect_match "the percent-encoded placeholder became the value" "$got" "GET /enc/pct\?key=(%[0-9a-fA-F]{2})*$VALUE|GET /enc/pct\?key=[%0-9a-fA-F]+ "
  [[ "$got" == *"%6d%73%62%2d"* || "$got" == *"%6D%73%62%2D"* ]] && fail "the encoded placeholder arrived unchanged"
  expect_match "the escaped placeholder in JSON became the value" "$got" "\{\"key\": \"$VALUE\"\}"
  expect_no_leftovers
}

test_curl_http2_flag_still_works() {
  local got
  tls_image || return
  : > "$ECHO_LOG"
  srun "${SECRET[@]}" -- sh -c "$REQ"'
    req --http2 -H "Authorization: Bearer $KEY" "https://api.test/h2/a"
    curl -s --http2 -H "Authorization: Bearer $KEY" -o /dev/null -o /dev/null -w "%{http_code}\n" \
      "https://api.test/h2/b" "https://api.test/h2/c"'
  expect_eq "exit code" "$RC" 0
  got=$(received /h2/)
  expect_eq "three requests arrived with the value" "$(grep -c "^Authorization: Bearer $VALUE" <<< "$got")" 3
  expect_match "each answered" "$OUT" "^200 GET /h2/a HTTP/1.1 .*
200
200$"
  [[ "$OUT" == *"$VALUE"* ]] && fail "the value reached the guest"
  expect_no_leftovers
}

H2SECRET=(--secret "KEY=$VALUE@h2.api.test")
need_h2() {
  [ -n "$H2_SRV" ] && return 0
  skip "no HTTP/2 test server: Debian's python3-h2 is not installed"
  return 1
}

# HTTP/2 both ways: the guest and the server speak it, msb substitutes per stream.
test_curl_http2_is_intercepted_as_http2() {
  local got log basic
  need_h2 || return
  tls_image || return
  : > "$H2_LOG"
  srun --name h2k "${H2SECRET[@]}" -- sh -c "$REQ"'
    req --http2 -H "Authorization: Bearer $KEY" "https://h2.api.test/h2/header"
    req --http2 "https://h2.api.test/h2/query?key=$KEY&q=querymarker"
    req --http2 -u "user:$KEY" "https://h2.api.test/h2/basic"
    req --http2 -H "Content-Type: application/json" -d "{\"key\": \"$KEY\"}" "https://h2.api.test/h2/json"
    curl -s --http2 -H "X-Key: $KEY" -o /dev/null -o /dev/null \
      -w "%{http_version} %{http_code} %{num_connects}\n" "https://h2.api.test/h2/m1" "https://h2.api.test/h2/m2"'
  expect_eq "exit code" "$RC" 0
  got=$(received /h2/ "$H2_LOG")
  expect_match "the header arrived with the value, over HTTP/2" "$got" "GET /h2/header HTTP/2
(.*
)*authorization: Bearer $VALUE"
  expect_match "the query arrived with the value" "$got" "GET /h2/query\?key=$VALUE&q=querymarker HTTP/2"
  basic=$(printf 'user:%s' "$VALUE" | base64 -w0)
  expect_match "Basic auth arrived with the value" "$got" "authorization: Basic $basic"
  expect_match "the JSON body arrived with the value (new length)" "$got" "content-length: $((11 + ${#VALUE}))
(.*
)*\{\"key\": \"$VALUE\"\}"
  expect_eq "both multiplexed requests carried it" "$(grep -c "^x-key: $VALUE$" <<< "$got")" 2
  [[ "$got" == *msb-secret-* ]] && fail "a placeholder reached the server"
  expect_match "the guest's echoes: HTTP/2, the placeholder back" "$OUT" \
    "^200 GET /h2/header HTTP/2 .*authorization: Bearer $PH_RE .*
200 GET /h2/query\?key=$PH_RE&q=querymarker .*
200 GET /h2/basic .*
200 POST /h2/json .*\{\"key\": \"$PH_RE\"\}.*
2 200 1
2 200 0$"
  [[ "$OUT" == *"$VALUE"* ]] && fail "the value reached the guest"
  [[ "$OUT" == *"$basic"* ]] && fail "base64 of user:value reached the guest"
  log=$(runtime_log_of h2k)
  expect_eq "an audit line per stream" "$(grep -Ec 'https (GET|POST) h2\.api\.test /h2/(header|query|basic|json|m1|m2) -> 200.*KEY' <<< "$log")" 6
  [[ "$log" == *"$VALUE"* ]] && fail "the runtime log has the value"
  "$MSB" rm h2k > /dev/null
  expect_no_leftovers
}

test_http2_violation_is_a_403_and_nothing_goes_up() {
  need_h2 || return
  tls_image || return
  : > "$H2_LOG"
  srun "${H2SECRET[@]}" -- sh -c "$REQ"'
    req --http2 -H "Host: other.test" -H "Authorization: Bearer $KEY" "https://h2.api.test/h2/wronghost"
    req --http2 -H "Authorization: Bearer $KEY" "https://h2.api.test/h2/fine"'
  expect_eq "exit code" "$RC" 0
  expect_match "the :authority that is not the SNI is refused" "$OUT" \
    "^403 msb: secret KEY blocked: Host header other\.test differs from the TLS name h2\.api\.test ?
200 GET /h2/fine HTTP/2"
  [ -z "$(received /h2/wronghost "$H2_LOG")" ] || fail "the refused request reached the server"
  expect_no_leftovers
}

test_python_urllib_and_http_client_substitute() {
  local got
  tls_image || return
  : > "$ECHO_LOG"
  srun "${SECRET[@]}" -- python3 -c '
import http.client, json, os, urllib.request
k = os.environ["KEY"]
r = urllib.request.urlopen(urllib.request.Request("https://api.test/py/urllib?key=" + k,
                                                  headers={"X-Api-Key": k}), timeout=30)
print(r.status, k in r.read().decode())
c = http.client.HTTPSConnection("api.test", timeout=30)
for i in range(2):  # one kept-alive connection, two requests
    c.request("POST", "/py/client%d" % i, body=json.dumps({"key": k}),
              headers={"Content-Type": "application/json", "Authorization": "Bearer " + k})
    r = c.getresponse()
    print(r.status, k in r.read().decode())'
  expect_eq "exit code" "$RC" 0
  expect_eq "each answered, the placeholder echoed back" "$OUT" "200 True
200 True
200 True"
  got=$(received /py/)
  expect_match "urllib's query and header" "$got" "GET /py/urllib\?key=$VALUE HTTP/1.1.*X-Api-Key: $VALUE"
  expect_eq "http.client's two requests" "$(grep -c "^{\"key\": \"$VALUE\"}" <<< "$got")" 2
  [[ "$got" == *msb-secret-* ]] && fail "a placeholder reached the server"
  expect_no_leftovers
}

# A WebSocket through interception: the handshake is an HTTP/1.1 request like
# any other (its secret substituted, its echo hidden); after the 101 the
# frames pass both ways unchanged (a placeholder inside one stays as it is).
test_websocket_upgrade_passes_frames_after_the_handshake() {
  local got
  tls_image || return
  : > "$ECHO_LOG"
  srun "${SECRET[@]}" -- python3 -c '
import base64, os, socket, ssl
s = ssl.create_default_context().wrap_socket(socket.create_connection(("api.test", 443), timeout=30),
                                             server_hostname="api.test")
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /ws/chat HTTP/1.1\r\nHost: api.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n"
           "Authorization: Bearer " + os.environ["KEY"] + "\r\n\r\n").encode())
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
head, buf = buf.split(b"\r\n\r\n", 1)
print(head.split(b"\r\n")[0].decode())
for word in ("hello", "key=" + os.environ["KEY"]):
    msg, mask = word.encode(), os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(msg)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))
    while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F):
        buf += s.recv(4096)
    n = buf[1] & 0x7F
    print(buf[2:2 + n].decode())
    buf = buf[2 + n:]
s.sendall(bytes([0x88, 0x80]) + os.urandom(4))'
  expect_eq "exit code" "$RC" 0
  got=$(received /ws/chat)
  expect_match "the handshake carried the value" "$got" "GET /ws/chat HTTP/1.1
(.*
)*Authorization: Bearer $VALUE"
  expect_match "the frames went through, the placeholder in one unchanged" "$got" "WSFRAME /ws/chat hello
(.*
)*WSFRAME /ws/chat key=$PH_RE"
  expect_match "the guest: the 101, then both echoes" "$OUT" "^HTTP/1.1 101 Switching Protocols
echo:hello
echo:key=$PH_RE$"
  [[ "$OUT" == *"$VALUE"* ]] && fail "the value reached the guest"
  expect_no_leftovers
}

test_the_value_never_reaches_the_guest_memory() {
  local mark snap
  tls_image || return
  mark=msb-e2e-mark-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  "$MSB" run -d -q --name mem --dns-nameserver "$DNS" --tls-upstream-ca-cert "$PKI/ca.pem" \
    "${SECRET[@]}" "$IMG" -- sleep 600 > /dev/null || { fail "run -d mem"; return; }
  # The value comes back in a body and a header, many times, and stays in a file
  # and in a process's memory; the mark is held the same way (the control).
  msb_capture exec mem -- sh -c '
    for i in 1 2 3 4 5; do curl -s -D /tmp/head$i -o /tmp/body$i "https://api.test/reflect?v=$KEY"; done
    cat /tmp/body1; echo; grep -i "^x-reflect" /tmp/head1 | tr -d "\r"
    setsid python3 -c "import time, sys; held = open(\"/tmp/body1\").read() + sys.argv[1]; time.sleep(600)" \
      '"$mark"' < /dev/null > /dev/null 2>&1 &
    echo started'
  expect_match "the guest got the placeholder back" "$OUT" "^$PH_RE
[Xx]-[Rr]eflect: $PH_RE
started$"
  expect_eq "the server reflected the value" "$(received /reflect | grep -c "^GET /reflect?v=$VALUE ")" 5
  msb_capture snapshot create memsnap --from mem --full
  expect_eq "snapshot create: exit code" "$RC" 0
  snap=$MSB_HOME/snapshots/memsnap
  [ -s "$snap/memory.state" ] || fail "no memory.state in $snap"
  expect_match "the control: the mark is in the memory" "$(grep -rlF -e "$mark" "$snap")" "memory.state"
  expect_eq "the value is nowhere in the snapshot" "$(grep -rlF -e "$VALUE" "$snap")" ""
  "$MSB" rm -f mem > /dev/null
  "$MSB" snapshot rm memsnap > /dev/null 2>&1
  expect_eq "no file holds the value" "$(leaks)" ""
  expect_no_leftovers
}

# VIOLATIONS: the four ways a placeholder heads where its secret may not go, with
# the control (the same request to api.test, resolved, over TLS) in the same guest.
# The suites run them with --tls-intercept: without it only the secret's own hosts
# are intercepted, and TLS to other.test is end to end (msb cannot see inside).
VIOLATIONS="$REQ"'
  nslookup -type=a api.test > /dev/null 2>&1
  req -H "Authorization: Bearer $KEY" https://api.test/v/control
  req -H "Authorization: Bearer $KEY" https://other.test/v/other-host
  req -H "Authorization: Bearer $KEY" http://api.test/v/plain-http
  req -H "Authorization: Bearer $KEY" -H "Host: other.test" https://api.test/v/host-differs
  req -H "Authorization: Bearer $KEY" --resolve api.test:443:198.51.100.10 https://api.test/v/resolved-ip
  req -H "Authorization: Bearer $KEY" --resolve api.test:443:198.51.100.12 https://api.test/v/unresolved-ip'

test_violations_are_blocked() {
  local got
  tls_image || return
  : > "$ECHO_LOG"
  srun "${SECRET[@]}" --tls-intercept -- sh -c "$VIOLATIONS"
  expect_eq "exit code" "$RC" 0
  expect_match "403 naming the secret for each violation; the controls answer" "$OUT" \
    "^200 GET /v/control [^
]*
403 [^
]*KEY[^
]*
403 [^
]*KEY[^
]*
403 [^
]*KEY[^
]*
200 GET /v/resolved-ip [^
]*
403 [^
]*KEY[^
]*$"
  got=$(received /v/)
  expect_match "the controls arrived with the value" "$got" "GET /v/control .*Bearer $VALUE.*GET /v/resolved-ip .*Bearer $VALUE"
  expect_eq "no violation reached a server" "$(grep -Ec '/v/(other-host|plain-http|host-differs|unresolved-ip)' <<< "$got")" 0
  expect_no_leftovers
}

test_violations_block_and_log() {
  local got log
  tls_image || return
  : > "$ECHO_LOG"
  srun --name keeper "${SECRET[@]}" --tls-intercept --on-secret-violation block-and-log -- sh -c "$VIOLATIONS"
  expect_eq "exit code" "$RC" 0
  expect_eq "403 for the four violations" "$(grep -c '^403 .*KEY' <<< "$OUT")" 4
  got=$(received /v/)
  expect_eq "no violation reached a server" "$(grep -Ec '/v/(other-host|plain-http|host-differs|unresolved-ip)' <<< "$got")" 0
  log=$(runtime_log_of keeper)
  expect_match "other.test's violation is logged with the secret's name" "$log" "KEY[^
]*other\.test|other\.test[^
]*KEY"
  expect_match "the unresolved address is logged" "$log" "KEY[^
]*198\.51\.100\.12|198\.51\.100\.12[^
]*KEY"
  expect_match "the Host that differs from SNI is logged with both" "$log" "api\.test[^
]*other\.test|other\.test[^
]*api\.test"
  expect_match "msb logs --source net shows them" "$("$MSB" logs --source net keeper 2>&1)" "KEY[^
]*other\.test|other\.test[^
]*KEY"
  expect_eq "no file holds the value" "$(leaks)" ""
  "$MSB" rm keeper > /dev/null
  expect_no_leftovers
}

test_violations_block_and_terminate() {
  local got
  tls_image || return
  : > "$ECHO_LOG"
  "$MSB" run -d -q --name term --dns-nameserver "$DNS" --tls-upstream-ca-cert "$PKI/ca.pem" \
    "${SECRET[@]}" --tls-intercept --on-secret-violation block-and-terminate "$IMG" -- sleep 600 > /dev/null ||
    { fail "run -d term"; return; }
  msb_capture exec term -- sh -c "$REQ"'; req -H "Authorization: Bearer $KEY" https://api.test/t/control'
  expect_match "the control answers" "$OUT" "^200 GET /t/control"
  expect_eq "still running after the control" "$(status_of term)" running
  msb_capture exec term -- sh -c "$REQ"'; req -H "Authorization: Bearer $KEY" https://other.test/t/violation'
  # shellcheck disable=SC2317 # called by wait_until
  term_stopped() { [ "$(status_of term)" = stopped ]; }
  wait_until 60 term_stopped || {
    fail "the sandbox still runs after the violation: $(status_of term)"
    runtime_log_of term | tail -n 8 | sed 's/^/    # /'
  }
  got=$(received /t/)
  expect_eq "the violation did not reach the server" "$(grep -c '/t/violation' <<< "$got")" 0
  expect_match "the log says why it stopped" "$(runtime_log_of term)" "KEY[^
]*other\.test|other\.test[^
]*KEY"
  "$MSB" rm -f term > /dev/null
  expect_no_leftovers
}

test_violations_passthrough() {
  local got
  tls_image || return
  : > "$ECHO_LOG"
  srun --name keeper "${SECRET[@]}" --tls-intercept --on-secret-violation passthrough -- sh -c "$VIOLATIONS"
  expect_eq "exit code" "$RC" 0
  expect_eq "every request answered" "$(grep -c '^200 ' <<< "$OUT")" 6
  got=$(received /v/)
  local v
  for v in other-host plain-http host-differs unresolved-ip; do
    expect_match "$v arrived with the placeholder unchanged" "$got" "/v/$v HTTP/1.1
([^
]+
)*Authorization: Bearer $PH_RE"
  done
  expect_match "the control still got the value" "$got" "GET /v/control .*Bearer $VALUE"
  expect_match "passthrough is logged" "$(runtime_log_of keeper)" "KEY[^
]*other\.test|other\.test[^
]*KEY"
  expect_eq "no file holds the value" "$(leaks)" ""
  "$MSB" rm keeper > /dev/null
  expect_no_leftovers
}

# HTTPS_PROXY: the guest's CONNECT goes to the proxy as it was, and the TLS in the
# tunnel is intercepted when its name is the tunnel's; a ClientHello for another name
# than the CONNECT's is not looked into (end to end, so the value never goes in).
test_https_proxy_connect_is_intercepted() {
  local got
  tls_image || return
  : > "$ECHO_LOG"
  : > "$PROXY_LOG"
  srun "${SECRET[@]}" -- sh -c "$REQ"'
    export HTTPS_PROXY=http://proxy.test:3128
    req -H "Authorization: Bearer $KEY" https://api.test/px/through
    req -H "Authorization: Bearer $KEY" --connect-to api.test:443:other.test:443 https://api.test/px/mismatch'
  expect_match "through the proxy: answered, the echo with the placeholder" "$OUT" \
    "^200 GET /px/through HTTP/1.1 .*Bearer msb-secret-[0-9a-f]{32}"
  expect_match "a tunnel to another name: refused by the guest's own TLS check" \
    "$(sed -n 2p <<< "$OUT")" "^000 "
  expect_match "the proxy saw both tunnels" "$(cat "$PROXY_LOG")" "CONNECT api\.test:443
CONNECT other\.test:443"
  got=$(received /px/)
  expect_match "the server got the value through the tunnel" "$got" "GET /px/through .*Bearer $VALUE"
  expect_eq "the mismatched tunnel carried nothing to a server" "$(grep -c /px/mismatch <<< "$got")" 0
  expect_no_leftovers
}

test_tls_bypass_keeps_end_to_end_tls() {
  local got pem
  tls_image || return
  pem=$(cat "$PKI/ca.pem")
  : > "$ECHO_LOG"
  srun "${SECRET[@]}" --tls-bypass api.test -- sh -c "printf '%s\n' '$pem' > /tmp/testca.pem"'
    openssl s_client -connect api.test:443 -servername api.test < /dev/null 2> /dev/null | openssl x509 -noout -issuer
    curl -s --cacert /tmp/testca.pem -H "Authorization: Bearer $KEY" https://api.test/bypass/a | head -n 1'
  expect_eq "exit code" "$RC" 0
  expect_eq "the guest sees the server's own certificate" "$OUT" "issuer=CN = msb-e2e test CA
GET /bypass/a HTTP/1.1"
  got=$(received /bypass/)
  expect_match "the placeholder arrives unsubstituted" "$got" "Authorization: Bearer $PH_RE"
  # The control: without --tls-bypass the same guest sees msb's certificate.
  srun "${SECRET[@]}" -- sh -c '
    openssl s_client -connect api.test:443 -servername api.test < /dev/null 2> /dev/null | openssl x509 -noout -issuer'
  expect_match "intercepted, the issuer is another" "$OUT" "^issuer="
  [[ "$OUT" == *"msb-e2e test CA"* ]] && fail "without --tls-bypass the guest still saw the server's certificate"
  expect_no_leftovers
}

test_tls_intercept_all_and_custom_ca() {
  tls_image || return
  : > "$ECHO_LOG"
  srun --tls-intercept --tls-intercept-ca-cert "$PKI/icept-ca.pem" --tls-intercept-ca-key "$PKI/icept-ca-key.pem" -- sh -c '
    for h in api.test other.test; do
      openssl s_client -connect $h:443 -servername $h < /dev/null 2> /dev/null | openssl x509 -noout -issuer
    done
    curl -s https://other.test/icept | head -n 1'
  expect_eq "exit code" "$RC" 0
  expect_eq "every name's certificate is from the given CA, and the guest trusts it" "$OUT" \
    "issuer=CN = msb-e2e intercept CA
issuer=CN = msb-e2e intercept CA
GET /icept HTTP/1.1"
  expect_no_leftovers
}

test_quic_blocked_and_allowed() {
  tls_image || return
  local script='python3 -c "
import socket
for port in (443, 9999):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
    try:
        s.sendto(b\"quic\", (\"api.test\", port)); print(port, s.recv(100).decode())
    except socket.timeout:
        print(port, \"no-answer\")
    except ConnectionRefusedError:
        print(port, \"refused\")"'
  srun --tls-intercept -- sh -c "$script"
  expect_eq "exit code" "$RC" 0
  expect_match "with interception, UDP 443 gets nothing; another port answers" "$OUT" "^443 (no-answer|refused)
9999 echo:quic$"
  srun --tls-intercept --no-block-quic -- sh -c "$script"
  expect_eq "--no-block-quic: UDP 443 answers" "$OUT" "443 echo:quic
9999 echo:quic"
  srun -- sh -c "$script"
  expect_eq "without interception: UDP 443 answers" "$OUT" "443 echo:quic
9999 echo:quic"
  expect_no_leftovers
}

test_upstream_verification_failure_is_a_502() {
  local log
  tls_image || return
  : > "$BAD_LOG"
  srun --name keeper --secret "KEY=$VALUE@api.test,bad.test" -- sh -c "$REQ"'
    req -H "Authorization: Bearer $KEY" https://bad.test/upstream
    req -H "Authorization: Bearer $KEY" https://api.test/upstream-control'
  expect_eq "exit code" "$RC" 0
  expect_match "bad.test: 502 with the reason; api.test answers" "$OUT" \
    "^502 [^
]*(verif|certificate|issuer)[^
]*
200 GET /upstream-control "
  expect_eq "nothing reached bad.test's server" "$(grep -c '/upstream' "$BAD_LOG")" 0
  log=$(runtime_log_of keeper)
  expect_match "and it is logged" "$log" "bad\.test[^
]*(verif|certificate|issuer)"
  "$MSB" rm keeper > /dev/null
  expect_no_leftovers
}

test_create_stop_start_keeps_substitution_and_config_has_no_value() {
  tls_image || return
  : > "$ECHO_LOG"
  msb_capture create --name cs -q --dns-nameserver "$DNS" --tls-upstream-ca-cert "$PKI/ca.pem" \
    "${SECRET[@]}" "$IMG"
  expect_eq "create: exit code" "$RC" 0
  msb_capture exec cs -- sh -c 'curl -s -H "Authorization: Bearer $KEY" https://api.test/cs/one | head -n 1'
  expect_eq "first run" "$OUT" "GET /cs/one HTTP/1.1"
  msb_capture stop cs
  expect_eq "stop: exit code" "$RC" 0
  expect_eq "config.json has no value" "$(grep -cF -e "$VALUE" "$MSB_HOME/sandboxes/cs/config.json")" 0
  expect_match "config.json keeps the secret's name" "$(cat "$MSB_HOME/sandboxes/cs/config.json")" "KEY"
  expect_eq "no file but the secrets store holds the value" "$(leaks)" ""
  msb_capture start cs
  expect_eq "start: exit code" "$RC" 0
  msb_capture exec cs -- sh -c 'echo "$KEY"; curl -s -H "Authorization: Bearer $KEY" https://api.test/cs/two | head -n 1'
  expect_match "after start, still a placeholder and substitution" "$OUT" "^$PH_RE
GET /cs/two HTTP/1.1$"
  expect_eq "both requests arrived with the value" "$(received /cs/ | grep -c "^Authorization: Bearer $VALUE")" 2
  "$MSB" rm -f cs > /dev/null
  expect_eq "after rm, no file holds the value (the store included)" \
    "$(grep -rlF -e "$VALUE" "$MSB_HOME" 2> /dev/null)" ""
  expect_no_leftovers
}

test_an_ordinary_user_can_use_it() {
  tls_image || return
  id "$USER_NAME" > /dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME" 2> /dev/null
  local u
  u=$(mktemp -d /tmp/msb-e2e-user.XXXXXX)
  chmod 755 "$u"
  cp "$MSB" "$BUILD/vmlinux" "$BUILD/initrd.cpio" "$PKI/ca.pem" "$u/"
  chmod 755 "$u"/*
  mkdir -p "$u/home" && cp "$MSB_HOME/config.json" "$u/home/" && chown -R "$USER_NAME" "$u/home"
  : > "$ECHO_LOG"
  # ENV@HOST: the value comes from msb's own environment.
  OUT=$(runuser -u "$USER_NAME" -- env -i PATH=/usr/bin:/bin HOME="/home/$USER_NAME" \
    MSB_HOME="$u/home" MSB_LIB_DIR="$u" KEY="$VALUE" "$u/msb" run -q --dns-nameserver "$DNS" \
    --tls-upstream-ca-cert "$u/ca.pem" --secret KEY@api.test "$IMG" -- \
    sh -c 'echo "$KEY"; curl -s -H "Authorization: Bearer $KEY" https://api.test/user | head -n 1' 2> "$TMP/user.err")
  RC=$?
  expect_eq "exit code" "$RC" 0
  [ "$RC" = 0 ] || sed 's/^/      /' "$TMP/user.err"
  expect_match "output" "$OUT" "^$PH_RE
GET /user HTTP/1.1$"
  expect_match "the value arrived" "$(received /user)" "Authorization: Bearer $VALUE"
  [ -s "$u/home/tls/ca.pem" ] || fail "the user's own CA is not in their MSB_HOME"
  expect_eq "no file of the user's but the store holds the value" \
    "$(grep -rlF --exclude-dir=secrets -e "$VALUE" "$u/home")" ""
  rm -rf "$u"
}

test_bad_input_is_one_line() {
  local args want
  printf 'not a certificate\n' > "$TMP/garbage.pem"
  while IFS='|' read -r args want; do
    # shellcheck disable=SC2086
    msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" $args -- true
    expect_eq "exit code for $args" "$RC" 125
    expect_one_error_line "$ERR" "$want"
    [[ "$ERR" == *s3cr3t-v4lue* ]] && fail "the error for $args shows the value"
    expect_eq "nothing created by $args" "$("$MSB" ls -q)" ""
  done << EOF
--secret KEY=s3cr3t-v4lue|.*--secret.*KEY.*@
--secret KEY=@api.test|.*--secret.*KEY.*(empty|value)
--secret 1KEY=s3cr3t-v4lue@api.test|.*--secret.*1KEY
--secret K-E-Y=s3cr3t-v4lue@api.test|.*--secret.*K-E-Y
--secret KEY=s3cr3t-v4lue@bad_host!|.*--secret.*bad_host!
--secret KEY=s3cr3t-v4lue@|.*--secret.*KEY.*host
--secret KEY=s3cr3t-v4lue@*.|.*--secret.*\*\.
--secret UNSET_E2E_VAR@api.test|.*UNSET_E2E_VAR.*(not set|unset|environment)
--secret KEY=s3cr3t-v4lue@api.test --no-net|.*api\.test
--secret KEY=s3cr3t-v4lue@api.test --on-secret-violation maybe|.*--on-secret-violation.*maybe
--tls-intercept --tls-intercept-port 99999|.*--tls-intercept-port.*99999
--tls-intercept --tls-intercept-ca-cert $TMP/nope.pem --tls-intercept-ca-key $PKI/icept-ca-key.pem|.*nope\.pem
--tls-intercept --tls-intercept-ca-cert $TMP/garbage.pem --tls-intercept-ca-key $PKI/icept-ca-key.pem|.*garbage\.pem
--tls-intercept --tls-intercept-ca-cert $PKI/icept-ca.pem --tls-intercept-ca-key $PKI/other-key.pem|.*(match|other-key\.pem)
--tls-intercept --tls-intercept-ca-cert $PKI/icept-ca.pem|.*--tls-intercept-ca-key
--tls-intercept --tls-upstream-ca-cert $TMP/nope.pem|.*nope\.pem
--tls-bypass api.test|.*--tls-bypass.*--tls-intercept
--tls-intercept-port 8443|.*--tls-intercept-port.*--tls-intercept
--no-block-quic|.*--no-block-quic.*--tls-intercept
EOF
  # A carriage return in the value: never a header's line break upstream.
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --secret $'KEY=s3cr3t\r\nX-Evil: 1@api.test' -- true
  expect_eq "exit code for CR LF in the value" "$RC" 125
  expect_one_error_line "$ERR" ".*--secret.*KEY"
  [[ "$ERR" == *s3cr3t* ]] && fail "the error shows the value"
  expect_eq "nothing created" "$("$MSB" ls -q)" ""
  # The controls: the same flags, well formed, start.
  msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" --secret "KEY=s3cr3t-v4lue@api.test" \
    --on-secret-violation block-and-log --tls-intercept --tls-intercept-port 8443 \
    --tls-intercept-ca-cert "$PKI/icept-ca.pem" --tls-intercept-ca-key "$PKI/icept-ca-key.pem" \
    --tls-upstream-ca-cert "$PKI/ca.pem" -- true
  expect_eq "well formed, the same flags start" "$RC" 0
  expect_eq "and say nothing" "$ERR" ""
  E2E_SECRET_VAR=s3cr3t-v4lue msb_capture run --rootfs "$SQFS" --dns-nameserver "$DNS" \
    --secret "E2E_SECRET_VAR@api.test,*.api.test" --no-net --net-rule allow@api.test -- true
  expect_eq "ENV@HOST with the variable set, --no-net with a rule for the host" "$RC" 0
  expect_no_leftovers
}

run_tests
