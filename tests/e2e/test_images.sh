#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# OCI images end to end: real registries on loopback (plain, TLS + Basic, bearer tokens), real images, real VMs.
source "$(dirname "$0")/lib.sh"

REG=$TMP/reg
FIXTURES=$E2E_ROOT/tests/fixtures
"$FIXTURES/registry.sh" start "$REG" > "$TMP/registry-start.log" 2>&1 || {
  cat "$TMP/registry-start.log"
  exit 1
}
suite_teardown() {
  "$FIXTURES/registry.sh" stop "$REG" > /dev/null 2>&1
  [ -z "${BAD_PID:-}" ] || kill "$BAD_PID" 2> /dev/null
  BAD_PID=
}
trap suite_teardown EXIT
export MSB REG_PASS TLS
"$FIXTURES/registry.sh" push "$REG" "$BUILD/fixtures/images" > "$TMP/registry-push.log" 2>&1 || {
  cat "$TMP/registry-push.log"
  exit 1
}
# shellcheck disable=SC1091
source "$REG/env"
# shellcheck disable=SC1091
source "$REG/images.env"

# The bad registry decompresses its bombs before it listens: seconds idle, more beside
# busy VMs. It prints its port once it listens; wait for that (or its death), then for /v2/.
python3 "$FIXTURES/badregistry.py" > "$TMP/bad.port" 2> "$TMP/bad.log" &
BAD_PID=$!
start_deadline=$((SECONDS + 120))
until grep -qx '[0-9]\+' "$TMP/bad.port"; do
  running "$BAD_PID" || {
    echo "badregistry.py died before it listened: $(cat "$TMP/bad.log")"
    exit 1
  }
  [ $SECONDS -lt $start_deadline ] || {
    echo "badregistry.py did not listen within 120 s"
    exit 1
  }
  sleep 0.1
done
BAD=127.0.0.1:$(cat "$TMP/bad.port")
[ "$(curl -s -o /dev/null --max-time 60 -w '%{http_code}' "http://$BAD/v2/")" = 200 ] || {
  echo "badregistry.py on $BAD does not answer /v2/: $(cat "$TMP/bad.log")"
  exit 1
}

# A fresh msb home that knows the test registries (plain ones are insecure; the CA is added).
fresh_home() {
  MSB_HOME=$(mktemp -d "$TMP/home.XXXXXX")
  export MSB_HOME
  cat > "$MSB_HOME/config.json" << JSON
{"registries": {"ca_certs": "$CA",
  "hosts": {"$PLAIN": {"insecure": true}, "$TOKEN": {"insecure": true}, "$BAD": {"insecure": true}}}}
JSON
}
fresh_home

layer_count() { find "$MSB_HOME/cache/layers" -name '*.sqfs' | wc -l; }
now_ms() { date +%s%3N; }
# A VM boot under TCG beside other busy VMs can take a minute: waits that include one
# get minutes, and still end (and fail) if the condition never comes.
BOOT_S=180
# ms_since EPOCH-SECONDS: milliseconds from that moment (a fixture's clock is ours) to now.
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
# bad_log_mark; ...; slow_started PATH-REGEX: when the bad registry began a slow answer
# for that path since the mark (empty if it did not).
bad_log_mark() { BAD_LOG_MARK=$(wc -l < "$TMP/bad.log"); }
slow_started() { tail -n "+$((BAD_LOG_MARK + 1))" "$TMP/bad.log" | sed -n "s|^slow $1 started at ||p" | tail -n 1; }
# set_registries KEY JSON-VALUE: registries.KEY (or registries.hosts.HOST for KEY hosts.HOST)
# in this home's config.json; a null value deletes it.
set_registries() {
  python3 - "$MSB_HOME/config.json" "$1" "$2" << 'PY'
import json, sys
p, key, value = sys.argv[1:]
c = json.load(open(p))
obj = c["registries"]
if key.startswith("hosts."):
    obj, key = obj["hosts"], key[len("hosts."):]
if json.loads(value) is None:
    obj.pop(key, None)
else:
    obj[key] = json.loads(value)
json.dump(c, open(p, "w"))
PY
}
blob_path() { local d=${2#sha256:}; echo "$1/docker/registry/v2/blobs/sha256/${d:0:2}/$d/data"; }
nth() { echo "$1" | tr ' ' '\n' | sed -n "$2p"; }

test_pull_then_run_layered_image_has_exactly_the_right_files() {
  fresh_home
  msb_capture pull -q "$PLAIN/test/layered:v1"
  expect_eq "pull exit code" "$RC" 0
  expect_eq "pull -q prints nothing" "$OUT$ERR" ""
  msb_capture run -q --entrypoint /bin/sh "$PLAIN/test/layered:v1" -- -c '
    for p in /data /data/keep.txt /opaque /opaque/new.txt /links/target.txt /links/hardlink \
             /links/symlink /links/dangling /dev-null-copy /fifo /usr/local/bin/suid-busybox \
             /xattr-file /old-mtime /root-only.txt /work/owned-by-app.txt \
             /etc/os-release /data/remove-me.txt /data/gone-dir /opaque/old-1.txt /opaque/sub; do
      if [ -L $p ]; then echo "$p link $(readlink $p)"
      elif [ -d $p ]; then echo "$p $(stat -c "%F %a %u:%g" $p)"
      elif [ -e $p ] || [ -p $p ]; then echo "$p $(stat -c "%F %a %u:%g %h" $p)"
      else echo "$p absent"; fi
    done
    cat /data/keep.txt /opaque/new.txt /links/hardlink
    stat -c %Y /old-mtime
    find / -xdev -name ".wh.*" | wc -l'
  expect_eq "exit code" "$RC" 0
  expect_eq "merged file system" "$OUT" "/data directory 755 0:0
/data/keep.txt regular file 644 0:0 1
/opaque directory 755 0:0
/opaque/new.txt regular file 644 0:0 1
/links/target.txt regular file 644 0:0 2
/links/hardlink regular file 644 0:0 2
/links/symlink link target.txt
/links/dangling link /nonexistent
/dev-null-copy character special file 666 0:0 1
/fifo fifo 644 0:0 1
/usr/local/bin/suid-busybox regular file 4755 0:0 1
/xattr-file regular file 644 0:0 1
/old-mtime regular file 644 0:0 1
/root-only.txt regular file 600 0:0 1
/work/owned-by-app.txt regular file 640 1000:1000 1
/etc/os-release absent
/data/remove-me.txt absent
/data/gone-dir absent
/opaque/old-1.txt absent
/opaque/sub absent
keep
new
linked
981173106
0"
  # xattrs as stored in the cached layer images (busybox has no getfattr)
  local top
  top=$(nth "$LAYERED_DIFF_IDS" 4)
  expect_eq "user xattr kept" "$(rdsquashfs -x /xattr-file "$MSB_HOME/cache/layers/${top#sha256:}.sqfs")" "user.msb=hello"
  top=$(nth "$LAYERED_DIFF_IDS" 3)
  expect_eq "opaque directory" "$(rdsquashfs -x /opaque "$MSB_HOME/cache/layers/${top#sha256:}.sqfs")" "trusted.overlay.opaque=y"
  expect_no_leftovers
}

test_image_config_applies_like_docker() {
  msb_capture run -q "$PLAIN/test/layered:v1"
  expect_eq "entrypoint + cmd" "$OUT" "entry default-cmd"
  msb_capture run -q "$PLAIN/test/layered:v1" -- one two
  expect_eq "command replaces Cmd, keeps Entrypoint" "$OUT" "entry one two"
  msb_capture run -q --entrypoint /bin/sh "$PLAIN/test/layered:v1" -- -c 'pwd; id -u; echo $FOO'
  expect_eq "WorkingDir, User, Env from the image" "$OUT" $'/work\n1000\nfrom-image'
  msb_capture run -q --entrypoint /bin/sh -e FOO=mine -w /tmp -u root "$PLAIN/test/layered:v1" -- -c 'pwd; id -u; echo $FOO'
  expect_eq "-e, -w, -u override" "$OUT" $'/tmp\n0\nmine'
  # echo with no arguments prints one empty line; with the image's Cmd kept it would print
  # "default-cmd", and an entrypoint that did not run prints nothing at all.
  msb_capture run -q --entrypoint /bin/echo "$PLAIN/test/layered:v1"
  expect_eq "--entrypoint clears Cmd: exit code" "$RC" 0
  expect_eq "--entrypoint clears Cmd: stderr" "$ERR" ""
  expect_eq "--entrypoint clears Cmd: stdout is one newline" "$(od -An -tx1 "$TMP/out" | tr -d ' ')" "0a"
  msb_capture run -q --entrypoint /no/such-entrypoint "$PLAIN/test/layered:v1"
  expect_eq "missing entrypoint: exit code" "$RC" 127
  expect_eq "missing entrypoint: stdout" "$OUT" ""
  expect_one_error_line "$ERR" 'exec: "/no/such-entrypoint": No such file or directory$'
  OUT=$(echo 'echo from-sh; exit 3' | "$MSB" run -q --entrypoint '' "$PLAIN/test/busybox")
  expect_eq "no entrypoint, no cmd: /bin/sh reads stdin" "$OUT|$?" "from-sh|3"
  expect_no_leftovers
}

test_shared_base_layer_is_stored_once() {
  fresh_home
  msb_capture pull "$PLAIN/test/shared-a:1"
  expect_eq "first pull" "$RC" 0
  msb_capture pull "$PLAIN/test/shared-b:1"
  expect_eq "second pull" "$RC" 0
  expect_match "base layer reused" "$OUT" "layer 1/2 [0-9a-f]{12}: already present"
  expect_eq "three layer images for four layers" "$(layer_count)" 3
  msb_capture run -q "$PLAIN/test/shared-a:1"
  expect_eq "shared-a" "$OUT" "a"
  msb_capture run -q "$PLAIN/test/shared-b:1"
  expect_eq "shared-b" "$OUT" "b"
  expect_no_leftovers
}

test_multiplatform_index_and_docker_schema2() {
  msb_capture run -q "$PLAIN/test/multiplatform"
  expect_eq "amd64 half chosen" "$OUT" "amd64"
  msb_capture image inspect "$PLAIN/test/multiplatform"
  expect_match "platform manifest recorded" "$OUT" "Digest: +$MULTIPLATFORM_AMD64_DIGEST"
  expect_match "index recorded" "$OUT" "Index: +$MULTIPLATFORM_DIGEST"
  msb_capture run -q "$PLAIN/test/docker-v2" -- cat /etc/hostname
  expect_eq "docker schema 2 image" "$OUT" "msb-fixture"
  expect_no_leftovers
}

test_python_from_debian_packages_runs() {
  msb_capture run -q "$PLAIN/test/python:3.11" -- python3 -c 'import json, sqlite3, hashlib; print(json.dumps({"sum": sum(range(10)), "sha": hashlib.sha256(b"msb").hexdigest()[:8]}))'
  expect_eq "exit code" "$RC" 0
  expect_eq "python output" "$OUT" '{"sum": 45, "sha": "b59be1bb"}'
  expect_no_leftovers
}

test_corrupted_blob_is_refused_and_not_cached() {
  fresh_home
  local layer diff blob
  layer=$(nth "$SHARED_A_LAYERS" 2)
  diff=$(nth "$SHARED_A_DIFF_IDS" 2)
  blob=$(blob_path "$PLAIN_STORAGE" "$layer")
  "$MSB" pull -q "$PLAIN/test/busybox" # the shared base layer, so only the bad one is fetched
  cp "$blob" "$TMP/blob.orig"
  printf 'X' | dd of="$blob" bs=1 seek=20 conv=notrunc 2> /dev/null
  msb_capture pull "$PLAIN/test/shared-a:1"
  cp "$TMP/blob.orig" "$blob"
  expect_eq "exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $PLAIN/test/shared-a:1: blob $layer: digest mismatch \\(got sha256:[0-9a-f]{64}\\)"
  expect_eq "no layer image for the bad blob" "$(ls "$MSB_HOME/cache/layers/${diff#sha256:}.sqfs" 2> /dev/null)" ""
  expect_eq "no partial download kept" "$(find "$MSB_HOME/cache" -name '*.partial' -o -name '*.tmp' | wc -l)" 0
  expect_eq "image not recorded" "$("$MSB" images -q)" "$PLAIN/test/busybox:latest"
  msb_capture pull -q "$PLAIN/test/shared-a:1"
  expect_eq "a later pull of the repaired blob works" "$RC" 0
}

test_registry_errors_are_one_line() {
  msb_capture pull 127.0.0.1:1/test/busybox
  expect_eq "down: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull 127.0.0.1:1/test/busybox: registry 127.0.0.1:1 is unreachable"
  msb_capture pull "$PLAIN/test/busybox:no-such-tag"
  expect_eq "no such tag: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $PLAIN/test/busybox:no-such-tag: manifest test/busybox:no-such-tag in $PLAIN not found \\(MANIFEST_UNKNOWN"
  msb_capture pull "$TLS/test/busybox"
  expect_eq "no credentials: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $TLS/test/busybox: registry $TLS: authentication required \\(log in with 'msb registry login $TLS'\\)"
  msb_capture pull "$TOKEN/test/busybox"
  expect_eq "no token: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $TOKEN/test/busybox: registry $TOKEN: authentication required \\(log in with 'msb registry login $TOKEN'\\)$"
  MSB_HOME=$TMP/no-ca-home msb_capture pull "$TLS/test/busybox"
  expect_eq "untrusted: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $TLS/test/busybox: registry $TLS: TLS certificate not trusted: .* \\(add its CA with registries.ca_certs in config.json\\)"
  # The roots are OpenSSL's, and its SSL_CERT_FILE says where they are: TLS works, auth is next.
  SSL_CERT_FILE=$CA MSB_HOME=$TMP/no-ca-home msb_capture pull "$TLS/test/busybox"
  expect_eq "SSL_CERT_FILE: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $TLS/test/busybox: registry $TLS: authentication required \\(log in with 'msb registry login $TLS'\\)$"
  # registries.ca_certs adds to those roots, wherever they are.
  SSL_CERT_FILE=/nonexistent msb_capture pull "$TLS/test/busybox"
  expect_eq "ca_certs: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $TLS/test/busybox: registry $TLS: authentication required \\(log in with 'msb registry login $TLS'\\)$"
  msb_capture pull 'Bad/Name'
  expect_eq "bad name: exit code" "$RC" 125
  expect_one_error_line "$ERR" 'invalid reference "Bad/Name": repository name must be lowercase'
  msb_capture run --pull never "$PLAIN/test/never-pulled:1" -- true
  expect_eq "pull never: exit code" "$RC" 125
  expect_one_error_line "$ERR" "image $PLAIN/test/never-pulled:1 is not in the local cache \\(pull it with 'msb pull $PLAIN/test/never-pulled:1', or drop --pull never\\)"
  expect_no_leftovers
}

test_malformed_manifests_are_rejected() {
  local c
  fresh_home
  for c in notjson:"malformed manifest" schema1:"unsupported manifest: schema version 1" \
    badlayers:"malformed manifest" huge:"response larger than" \
    baddigest:"malformed manifest: missing or unsupported digest" \
    bigblob:"is larger than its 10-byte descriptor" \
    badconfig:"malformed image config" badlayertype:"unsupported layer type" \
    hugeconfig:"image config sha256:[0-9a-f]{64} is 1073741824 bytes, more than the 16 MiB msb accepts"; do
    msb_capture pull "$BAD/bad/${c%%:*}:1"
    expect_eq "${c%%:*}: exit code" "$RC" 125
    expect_one_error_line "$ERR" "pull $BAD/bad/${c%%:*}:1: .*${c#*:}"
  done
  msb_capture pull "$BAD/bad/mismatch@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  expect_eq "mismatch: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $BAD/bad/mismatch@sha256:0{64}: manifest digest mismatch: asked for sha256:0{64}, got sha256:"
  expect_eq "nothing cached" "$(find "$MSB_HOME/cache" -name '*.sqfs' 2> /dev/null | wc -l)" 0
}

test_layers_whose_paths_escape_are_rejected() {
  fresh_home
  local c
  for c in 'dotdot:layer path "../../etc/shadow" escapes the root \(..\)' \
    'absolute:layer contains an absolute path "/etc/shadow"' \
    'symlink:layer path "etc/shadow" goes through the symlink "etc"' \
    'hardlink:layer path "../../etc/shadow" escapes the root'; do
    msb_capture pull "$BAD/bad/${c%%:*}:1"
    expect_eq "${c%%:*}: exit code" "$RC" 125
    expect_one_error_line "$ERR" "pull $BAD/bad/${c%%:*}:1: layer sha256:[0-9a-f]{64}: ${c#*:}"
  done
  expect_eq "nothing cached, nothing half-written" "$(find "$MSB_HOME/cache" -type f ! -name '*.lock' | wc -l)" 0
}

test_image_rm_keeps_shared_layers_and_refuses_images_in_use() {
  fresh_home
  "$MSB" pull -q "$PLAIN/test/shared-a:1" && "$MSB" pull -q "$PLAIN/test/shared-b:1"
  local a_top base
  a_top=$(nth "$SHARED_A_DIFF_IDS" 2)
  base=$(nth "$SHARED_A_DIFF_IDS" 1)
  msb_capture rmi "$PLAIN/test/shared-a:1"
  expect_eq "rmi output" "$OUT" "Deleted layer $a_top
Removed $PLAIN/test/shared-a:1"
  expect_eq "base layer kept" "$(ls "$MSB_HOME/cache/layers/${base#sha256:}.sqfs" 2> /dev/null | wc -l)" 1
  expect_eq "images" "$("$MSB" images -q)" "$PLAIN/test/shared-b:1"
  # in use by a running sandbox: refused without -f
  "$MSB" run -q "$PLAIN/test/shared-b:1" -- sh -c 'echo up; exec sleep 300' > "$TMP/bg.out" 2>&1 &
  local pid=$!
  wait_for "$TMP/bg.out" '^up$' $BOOT_S || fail "the sandbox never started: $(cat "$TMP/bg.out")"
  msb_capture image rm "$PLAIN/test/shared-b:1"
  expect_eq "in use: exit code" "$RC" 125
  expect_one_error_line "$ERR" "image $PLAIN/test/shared-b:1 is used by 1 sandbox \\(remove it first, or use -f\\)"
  expect_eq "still listed" "$("$MSB" images -q)" "$PLAIN/test/shared-b:1"
  msb_capture image rm -f -q "$PLAIN/test/shared-b:1"
  expect_eq "-f removes it" "$RC|$OUT|$("$MSB" images -q)" "0||"
  expect_eq "no layer images left" "$(layer_count)" 0
  kill -INT $pid
  wait_exit $pid 60
  expect_eq "the sandbox ends on SIGINT" "$?" 130
  msb_capture rmi "$PLAIN/test/shared-b:1"
  expect_eq "gone: exit code" "$RC" 125
  expect_one_error_line "$ERR" "image $PLAIN/test/shared-b:1 not found \\(see 'msb image ls'\\)$"
  expect_no_leftovers
}

test_image_ls_and_inspect_formats() {
  "$MSB" pull -q "$PLAIN/test/layered:v1"
  msb_capture image ls
  expect_match "table header" "$OUT" "^REFERENCE +DIGEST +SIZE +CREATED"
  expect_match "row" "$OUT" "$PLAIN/test/layered:v1 +${LAYERED_DIGEST:0:19} +[0-9.]+ (KiB|MiB) +[0-9]+ (months|years) ago"
  msb_capture images --format json
  expect_eq "json" "$(echo "$OUT" | python3 -c 'import json,sys; d=[i for i in json.load(sys.stdin) if i["reference"].endswith("layered:v1")][0]; print(d["digest"], d["layers"])')" "$LAYERED_DIGEST 4"
  msb_capture image inspect --format json "$PLAIN/test/layered:v1"
  expect_eq "inspect json" "$(echo "$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["config"]["config"]["Entrypoint"], len(d["layers"]), d["layers"][2]["media_type"])')" "['/bin/echo', 'entry'] 4 application/vnd.oci.image.layer.v1.tar+zstd"
  msb_capture image inspect "$PLAIN/test/layered:v1"
  expect_match "inspect text" "$OUT" $'Entrypoint +\\["/bin/echo", "entry"\\].*Cmd +\\["default-cmd"\\].*WorkingDir +/work.*User +app'
  msb_capture image inspect "${LAYERED_DIGEST:7:12}"
  expect_eq "by digest prefix" "$RC" 0
}

test_registry_login_logout_ls_round_trip() {
  fresh_home
  msb_capture registry login "$TLS" --username tester --password-stdin <<< "wrong-pass"
  expect_eq "wrong password: exit code" "$RC" 125
  expect_one_error_line "$ERR" "registry $TLS: login failed for user tester: wrong username or password"
  msb_capture registry login "$TLS" --username tester --password-stdin <<< "$REG_PASS"
  expect_eq "login" "$OUT" "Login succeeded: $TLS as tester (secret in the file store)"
  msb_capture registry ls
  expect_match "ls" "$OUT" "$TLS +tester +file"
  if grep -q "$REG_PASS" "$MSB_HOME/config.json"; then fail "the password is in config.json"; fi
  expect_eq "secret file mode" "$(stat -c %a "$MSB_HOME"/secrets/registries/*)" 600
  msb_capture pull -q "$TLS/test/busybox"
  expect_eq "pull with stored credentials" "$RC" 0
  msb_capture registry logout "$TLS"
  expect_eq "logout" "$OUT" "Logged out of $TLS"
  expect_eq "secret removed" "$(ls "$MSB_HOME/secrets/registries" | wc -l)" 0
  msb_capture registry ls
  expect_eq "ls after logout" "$OUT" "$(printf '%-32s %-20s %s\n' REGISTRY USERNAME SOURCE
    for h in $(printf '%s\n' "$BAD" "$PLAIN" "$TOKEN" | sort); do
      printf '%-32s %-20s %s\n' "$h" - "anonymous (insecure)"
    done)"
  msb_capture pull -q "$TLS/test/shared-a:1"
  expect_eq "pull after logout: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $TLS/test/shared-a:1: registry $TLS: authentication required \\(log in with 'msb registry login $TLS'\\)$"
  msb_capture registry logout "$TLS"
  expect_eq "second logout: exit code" "$RC" 125
  expect_one_error_line "$ERR" "not logged in to $TLS$"
}

test_login_uses_the_secret_service_keyring_when_one_runs() {
  fresh_home
  # A real Secret Service (gnome-keyring) in a private D-Bus session.
  XDG_DATA_HOME=$TMP/xdg-keyring dbus-run-session -- bash -c '
    printf test-keyring-pw | gnome-keyring-daemon --unlock --components=secrets > /dev/null 2>&1
    printf "%s\n" "$REG_PASS" | "$MSB" registry login "$TLS" --username tester --password-stdin
    "$MSB" pull -q "$TLS/test/busybox" && echo pulled
    secret-tool lookup service microsandbox-registry registry "$TLS" && echo
    "$MSB" registry logout "$TLS"
    secret-tool lookup service microsandbox-registry registry "$TLS" || echo cleared
  ' > "$TMP/keyring.out" 2> "$TMP/keyring.err"
  expect_eq "keyring round trip" "$(cat "$TMP/keyring.out")" "Login succeeded: $TLS as tester (secret in the keyring store)
pulled
$REG_PASS
Logged out of $TLS
cleared"
  expect_eq "no secret file" "$(ls "$MSB_HOME/secrets/registries" 2> /dev/null | wc -l)" 0
}

test_bearer_token_flow() {
  fresh_home
  msb_capture registry login "$TOKEN" --username tester --password-stdin <<< "$REG_PASS"
  expect_eq "login to the token registry" "$RC" 0
  msb_capture run -q "$TOKEN/test/shared-b:1"
  expect_eq "pull + run through bearer tokens" "$RC|$OUT" "0|b"
  expect_match "the token was scoped to the repository" "$(cat "$REG/token-server.log")" "sub='tester' scopes=\\['repository:test/shared-b:pull'\\]"
}

test_credentials_from_config_and_docker() {
  fresh_home
  python3 - "$MSB_HOME/config.json" "$TLS" << 'PY'
import json, sys
p, host = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["registries"]["hosts"][host] = {"auth": {"username": "tester", "password_env": "MSB_TEST_REG_PASS"}}
json.dump(c, open(p, "w"))
PY
  MSB_TEST_REG_PASS=$REG_PASS msb_capture pull -q "$TLS/test/busybox"
  expect_eq "password_env" "$RC" 0
  MSB_TEST_REG_PASS=nope msb_capture pull -q "$TLS/test/shared-a:1"
  expect_eq "wrong password: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $TLS/test/shared-a:1: registry $TLS: authentication failed for user tester \\(credentials from env:MSB_TEST_REG_PASS"
  msb_capture pull -q "$TLS/test/shared-a:1"
  expect_eq "unset password_env: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $TLS/test/shared-a:1: config.json: credentials for $TLS come from \\\$MSB_TEST_REG_PASS, which is not set"
  # secret_name: a 0600 file under secrets/registries/
  sed -i 's/"password_env": "MSB_TEST_REG_PASS"/"secret_name": "tls-test"/' "$MSB_HOME/config.json"
  mkdir -p "$MSB_HOME/secrets/registries"
  printf '%s\n' "$REG_PASS" > "$MSB_HOME/secrets/registries/tls-test"
  chmod 644 "$MSB_HOME/secrets/registries/tls-test"
  msb_capture pull -q "$TLS/test/shared-a:1"
  expect_eq "secret readable by others: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $TLS/test/shared-a:1: $MSB_HOME/secrets/registries/tls-test: readable by others \\(chmod 600 it\\)"
  chmod 600 "$MSB_HOME/secrets/registries/tls-test"
  msb_capture pull -q "$TLS/test/shared-a:1"
  expect_eq "secret_name" "$RC" 0
  # Docker's config: auths, then a credential helper
  fresh_home
  mkdir -p "$TMP/docker"
  printf '{"auths": {"%s": {"auth": "%s"}}}' "$TLS" "$(printf 'tester:%s' "$REG_PASS" | base64)" > "$TMP/docker/config.json"
  DOCKER_CONFIG=$TMP/docker msb_capture pull -q "$TLS/test/busybox"
  expect_eq "docker auths" "$RC" 0
  mkdir -p "$TMP/bin"
  cat > "$TMP/bin/docker-credential-msbtest" << SH
#!/bin/sh
read -r host
[ "\$1" = get ] && [ "\$host" = "$TLS" ] || exit 1
printf '{"ServerURL": "%s", "Username": "tester", "Secret": "%s"}' "\$host" "$REG_PASS"
SH
  chmod +x "$TMP/bin/docker-credential-msbtest"
  printf '{"credHelpers": {"%s": "msbtest"}}' "$TLS" > "$TMP/docker/config.json"
  PATH=$TMP/bin:$PATH DOCKER_CONFIG=$TMP/docker msb_capture pull -q "$TLS/test/shared-a:1"
  expect_eq "docker credential helper" "$RC" 0
  DOCKER_CONFIG=$TMP/docker msb_capture registry ls
  expect_match "ls names the helper, no secret" "$OUT" "$TLS +- +docker-credential-msbtest"
}

test_concurrent_pulls_of_the_same_image() {
  fresh_home
  "$MSB" pull "$PLAIN/test/python:3.11" > "$TMP/p1" 2>&1 &
  local a=$!
  "$MSB" pull "$PLAIN/test/python:3.11" > "$TMP/p2" 2>&1 &
  local b=$!
  wait $a
  expect_eq "first pull" "$?" 0
  wait $b
  expect_eq "second pull" "$?" 0
  expect_eq "one image per layer" "$(layer_count)" 3
  expect_eq "no leftovers in the cache" "$(find "$MSB_HOME/cache" -name '*.partial' -o -name '*.tmp' | wc -l)" 0
  msb_capture run -q "$PLAIN/test/python:3.11" -- python3 -c 'print(6*7)'
  expect_eq "the image works" "$OUT" "42"
}

test_interrupted_download_resumes() {
  fresh_home
  local layer diff blob half
  layer=$(nth "$PYTHON_LAYERS" 3)
  diff=$(nth "$PYTHON_DIFF_IDS" 3)
  blob=$(blob_path "$PLAIN_STORAGE" "$layer")
  half=$(($(stat -c %s "$blob") / 2))
  mkdir -p "$MSB_HOME/cache/blobs"
  # Keyed like the layer's lock: diff_id, then the blob's digest.
  head -c "$half" "$blob" > "$MSB_HOME/cache/blobs/${diff#sha256:}-${layer#sha256:}.partial"
  msb_capture pull "$PLAIN/test/python:3.11"
  expect_eq "exit code" "$RC" 0
  expect_match "resumed where it stopped" "$OUT" "layer 3/3 ${layer:7:12}: resuming at [0-9.]+ MiB of [0-9.]+ MiB"
  expect_match "and verified" "$OUT" "layer 3/3 ${layer:7:12}: verified"
}

test_pull_always_follows_a_moved_tag() {
  fresh_home
  local dst="docker://$PLAIN/test/moving:1"
  skopeo copy -q --dest-tls-verify=false "oci:$IMAGES/shared-a:1" "$dst" > /dev/null 2>&1 ||
    skopeo copy -q --dest-tls-verify=false "docker://$PLAIN/test/shared-a:1" "$dst" --src-tls-verify=false
  msb_capture run -q "$PLAIN/test/moving:1"
  expect_eq "first content" "$OUT" "a"
  skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$PLAIN/test/shared-b:1" "$dst"
  msb_capture run -q "$PLAIN/test/moving:1"
  expect_eq "if-missing keeps the cached image" "$OUT" "a"
  msb_capture run -q --pull always "$PLAIN/test/moving:1"
  expect_eq "always re-resolves the tag" "$OUT" "b"
}

test_run_records_the_manifest_digest() {
  "$MSB" run -q "$PLAIN/test/shared-b:1" -- sh -c 'echo up; exec sleep 300' > "$TMP/rec.out" 2>&1 &
  local pid=$!
  wait_for "$TMP/rec.out" '^up$' $BOOT_S || fail "the sandbox never started: $(cat "$TMP/rec.out")"
  expect_match "sandbox config pins the digest" "$(cat "$MSB_HOME"/sandboxes/*/config.json)" "\"image_digest\": \"$SHARED_B_DIGEST\""
  kill -INT $pid
  wait_exit $pid 60
  expect_eq "the sandbox ends on SIGINT" "$?" 130
  expect_no_leftovers
}

test_progress_bars_on_a_terminal() {
  fresh_home
  tmux_run 200 30 "MSB_HOME=$MSB_HOME $MSB pull $PLAIN/test/python:3.11"
  local out
  out=$(tmux_wait 'rc=' 120)
  tmux_end
  expect_match "one bar line per layer, then a summary" "$out" "[0-9a-f]{12}: Done.*[0-9a-f]{12}: Done.*[0-9a-f]{12}: Done.*pulled $PYTHON_DIGEST \\(3 layers, [0-9.]+ MiB downloaded in [0-9.]+s\\).*rc=0"
}

# How fast is measured in CPU time (user + system, the converters included): the work a
# bomb costs, which a loaded machine does not stretch as it stretches wall time.
# timed CMD...: runs CMD; CPU_MS is the CPU time it took, WALL_MS the wall time.
timed() {
  local TIMEFORMAT='%3R %3U %3S'
  { time "$@"; } 2> "$TMP/time"
  read -r WALL_MS CPU_MS < <(awk '{ printf "%d %d\n", $1 * 1000, ($2 + $3) * 1000 }' "$TMP/time")
}

test_layer_bombs_are_refused_fast() {
  fresh_home
  local c
  for c in 'dirs:layer holds more than 64 MiB of directory and link metadata' \
    'xattrs:layer entry "f" has more than 48 KiB of xattrs' \
    "sparse:layer entry \"bomb\" is sparse beyond what msb expands \\(more than 64 MiB of holes and 16 times the layer's data\\)" \
    'sparsemap:layer has a tar header over 2 MiB'; do
    timed msb_capture pull "$BAD/bad/bomb-${c%%:*}:1"
    echo "    # bomb-${c%%:*}: refused after ${CPU_MS} ms of CPU, ${WALL_MS} ms"
    expect_eq "bomb-${c%%:*}: exit code" "$RC" 125
    expect_one_error_line "$ERR" "pull $BAD/bad/bomb-${c%%:*}:1: layer sha256:[0-9a-f]{64}: ${c#*:}$"
    expect_eq "bomb-${c%%:*}: refused after ${CPU_MS} ms of CPU, under 5 s" "$((CPU_MS < 5000))" 1
    expect_eq "bomb-${c%%:*}: refused after ${WALL_MS} ms, under 60 s" "$((WALL_MS < 60000))" 1
  done
  # Deep paths and names that collided in the old hash: fine layers, converted in linear time.
  for c in paths flood; do
    timed msb_capture pull -q "$BAD/bad/bomb-$c:1"
    echo "    # bomb-$c: converted in ${CPU_MS} ms of CPU, ${WALL_MS} ms"
    expect_eq "bomb-$c: exit code" "$RC|$ERR" "0|"
    expect_eq "bomb-$c: converted in ${CPU_MS} ms of CPU, under 5 s" "$((CPU_MS < 5000))" 1
    expect_eq "bomb-$c: converted in ${WALL_MS} ms, under 60 s" "$((WALL_MS < 60000))" 1
  done
  expect_eq "nothing half-written" "$(find "$MSB_HOME/cache" -name '*.tmp' -o -name '*.partial' | wc -l)" 0
}

# The bad registry's drips run for minutes (1 byte/s; the slow manifest, 1 MiB at 5 KiB/s,
# for 200 s): only the stall checks end them this early, and only they print these lines.
# Times are from when the registry began the slow answer, which a loaded machine does not
# stretch: the pull's start-up, manifest and config come before it.
test_stalled_transfers_end_with_one_line() {
  fresh_home
  local c t0 took started path
  set_registries stall_timeout '"2s"'
  for c in drip dripmanifest; do
    bad_log_mark
    t0=$(now_ms)
    msb_capture pull "$BAD/bad/$c:1"
    took=$(($(now_ms) - t0))
    expect_eq "$c: exit code" "$RC" 125
    expect_one_error_line "$ERR" "pull $BAD/bad/$c:1: registry $BAD: transfer stalled \\(less than 1 KiB/s for 2s\\)$"
    expect_eq "$c: the pull took ${took} ms: not less than one stall window" "$((took >= 2000))" 1
    path=/v2/bad/drip/blobs/sha256:[0-9a-f]*
    [ $c = dripmanifest ] && path=/v2/bad/dripmanifest/manifests/1
    started=$(slow_started "$path")
    if [ -z "$started" ]; then
      fail "$c: the registry never began the slow answer"
      continue
    fi
    took=$(ms_since "$started")
    echo "    # $c: ended $took ms after the drip began"
    expect_eq "$c: ended ${took} ms after the drip began: within 3 stall windows" "$((took < 6000))" 1
  done
  # 5 KiB/s is no stall, but a manifest must arrive within 4 stall windows.
  set_registries stall_timeout '"1s"'
  bad_log_mark
  t0=$(now_ms)
  msb_capture pull "$BAD/bad/slowmanifest:1"
  took=$(($(now_ms) - t0))
  expect_eq "slowmanifest: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $BAD/bad/slowmanifest:1: registry $BAD: request not done after 4s \\(the limit for manifests, configs and tokens: 4 stall windows\\)$"
  expect_eq "slowmanifest: the pull took ${took} ms: not less than 4 s" "$((took >= 4000))" 1
  started=$(slow_started /v2/bad/slowmanifest/manifests/1)
  if [ -z "$started" ]; then
    fail "slowmanifest: the registry never began the slow answer"
  else
    took=$(ms_since "$started")
    echo "    # slowmanifest: ended $took ms after the manifest began"
    expect_eq "slowmanifest: ended ${took} ms after the manifest began: 4 windows, not 8" "$((took < 8000))" 1
  fi
  set_registries stall_timeout '"soon"'
  msb_capture pull "$BAD/bad/drip:1"
  expect_eq "bad stall_timeout: exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $BAD/bad/drip:1: config.json: registries.stall_timeout must be a duration of at least 1s, like \"30s\" or \"2m\"$"
  set_registries stall_timeout null
}

test_interrupted_pull_stops_at_once_and_cleanly() {
  fresh_home
  local sig pid rc t0 took
  for sig in INT TERM; do
    rm -rf "$MSB_HOME/cache"
    "$MSB" pull "$BAD/bad/drip:1" > "$TMP/int.out" 2> "$TMP/int.err" &
    pid=$!
    # Interrupted mid-download: once the first bytes reached the partial file.
    local end=$((SECONDS + 60))
    until [ -n "$(find "$MSB_HOME/cache/blobs" -name '*.partial' -size +0c 2> /dev/null)" ]; do
      [ $SECONDS -lt $end ] && running "$pid" || break
      sleep 0.05
    done
    expect_match "SIG$sig: downloading" "$(cat "$TMP/int.out")" "downloading"
    t0=$(now_ms)
    kill -$sig $pid
    # Without the handler the drip would go on for minutes.
    wait_exit "$pid" 60
    rc=$?
    took=$(($(now_ms) - t0))
    expect_eq "SIG$sig: exit code" "$rc" 130
    expect_eq "SIG$sig: stopped in ${took} ms, under 5 s" "$((took < 5000))" 1
    expect_one_error_line "$(cat "$TMP/int.err")" "pull $BAD/bad/drip:1: interrupted$"
    expect_eq "SIG$sig: no layer image, half-written or not" "$(find "$MSB_HOME/cache" -name '*.sqfs*' | wc -l)" 0
    expect_eq "SIG$sig: the download stays, to be resumed" "$(find "$MSB_HOME/cache/blobs" -name '*.partial' -size +0c | wc -l)" 1
    expect_eq "SIG$sig: the layer's lock file exists" "$(find "$MSB_HOME/cache/layers" -name '*.lock' | wc -l)" 1
    for i in "$MSB_HOME"/cache/layers/*.lock; do
      flock -n -x "$i" true || fail "SIG$sig: $i is still locked"
    done
  done
  # While the manifest itself drips (no download started yet).
  bad_log_mark
  "$MSB" pull -q "$BAD/bad/dripmanifest:1" 2> "$TMP/int.err" &
  pid=$!
  local end=$((SECONDS + 60))
  until [ -n "$(slow_started /v2/bad/dripmanifest/manifests/1)" ]; do
    [ $SECONDS -lt $end ] && running "$pid" || break
    sleep 0.05
  done
  expect_match "the manifest began to drip" "$(slow_started /v2/bad/dripmanifest/manifests/1)" '^[0-9.]+$'
  kill -INT $pid
  wait_exit "$pid" 60
  expect_eq "manifest: exit code" "$?" 130
  expect_one_error_line "$(cat "$TMP/int.err")" "pull $BAD/bad/dripmanifest:1: interrupted$"
  expect_eq "not recorded" "$("$MSB" images -q)" ""
}

test_registry_strings_cannot_drive_the_terminal() {
  fresh_home
  local args
  msb_capture pull -q "$BAD/bad/nasty:1"
  expect_eq "pull" "$RC|$ERR" "0|"
  for args in "image inspect $BAD/bad/nasty:1" "image inspect --format json $BAD/bad/nasty:1" \
    "images" "images --format json"; do
    # shellcheck disable=SC2086
    "$MSB" $args > "$TMP/nasty.out" 2>&1
    expect_eq "$args: exit code" "$?" 0
    expect_eq "$args: no C0 control or DEL (ESC, BEL...)" "$(LC_ALL=C grep -c $'[\x01-\x08\x0b-\x1f\x7f]' "$TMP/nasty.out")" 0
    expect_eq "$args: no C1 control (U+009B is CSI)" "$(LC_ALL=C grep -cP '\xc2[\x80-\x9f]' "$TMP/nasty.out")" 0
  done
  msb_capture image inspect "$BAD/bad/nasty:1"
  expect_match "shown, defused" "$OUT" 'Platform: +linux\?\]0;owned\?\?\[2J\?\?31m/amd64\?\]0;owned.*Created: +2024-01-01T00:00:00Z\?\]0;owned\?\?\[2J\?\?31m.*Cmd +\["echo", "\?\]0;owned\?\?\[2J\?\?31m"\].*User +u\?\]0;owned.*Labels +\["l\?\]0;owned\?\?\[2J\?\?31m=v\?\]0;owned'
  msb_capture image inspect --format json "$BAD/bad/nasty:1"
  expect_eq "json keeps the strings, escaped" "$(echo "$OUT" | python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["config"]["config"]["User"]))')" "'u\\x1b]0;owned\\x07\\x1b[2J\\x9b31m'"
}

test_credentials_stay_away_from_foreign_plain_http_realms() {
  fresh_home
  # The token registry by another name: its realm (http://127.0.0.1:...) is then another host.
  local lh=localhost:${TOKEN##*:} before
  set_registries "hosts.$lh" '{"insecure": true, "auth": {"username": "tester", "password_env": "MSB_TEST_REG_PASS"}}'
  before=$(grep -c "sub='tester'" "$REG/token-server.log")
  MSB_TEST_REG_PASS=$REG_PASS msb_capture pull "$lh/test/busybox"
  expect_eq "exit code" "$RC" 125
  expect_one_error_line "$ERR" "pull $lh/test/busybox: registry $lh: authentication required, and the credentials of tester were not sent to its token service $TOKEN_REALM \\(plain HTTP on 127.0.0.1, not the registry's host\\)$"
  expect_eq "the token service never saw them" "$(grep -c "sub='tester'" "$REG/token-server.log")" "$before"
  expect_match "it was asked anonymously" "$(tail -n 3 "$REG/token-server.log")" "sub='' scopes=\\['repository:test/busybox:pull'\\]"
  msb_capture registry login "$lh" --username tester --password-stdin <<< "$REG_PASS"
  expect_one_error_line "$ERR" "registry $lh: cannot check the credentials: msb does not send them to the token service $TOKEN_REALM \\(plain HTTP on 127.0.0.1, not the registry's host\\)$"
}

test_registries_of_the_wrong_type_in_config() {
  fresh_home
  echo '{"registries": []}' > "$MSB_HOME/config.json"
  msb_capture registry logout "$PLAIN"
  expect_eq "exit code" "$RC" 125
  expect_one_error_line "$ERR" "config.json: registries is not an object$"
  echo '{"registries": {"hosts": ["x"]}}' > "$MSB_HOME/config.json"
  msb_capture registry logout "$PLAIN"
  expect_one_error_line "$ERR" "config.json: registries.hosts is not an object$"
  expect_eq "config.json untouched" "$(cat "$MSB_HOME/config.json")" '{"registries": {"hosts": ["x"]}}'
  fresh_home # later tests share the home
}

test_image_rm_waits_for_a_sandbox_holding_the_layers() {
  fresh_home
  "$MSB" pull -q "$PLAIN/test/shared-a:1"
  local top lock ino holder rmi rc
  top=$(nth "$SHARED_A_DIFF_IDS" 2)
  lock=$MSB_HOME/cache/layers/${top#sha256:}.lock
  # The lock is msb's own file, made by the pull: flock(1) would create any name it is given.
  [ -f "$lock" ] || {
    fail "the pull made no $lock"
    return
  }
  ino=$(stat -c %i "$lock")
  # flock(1) plays a sandbox between resolving the image and linking its layers: it holds
  # the layer's lock shared until the test lets go.
  flock -s "$lock" sh -c 'echo held > "$1"; until [ -e "$2" ]; do sleep 0.05; done' sh \
    "$TMP/held" "$TMP/release" &
  holder=$!
  wait_for "$TMP/held" '^held$' 60 || fail "flock(1) never took $lock"
  "$MSB" rmi "$PLAIN/test/shared-a:1" > "$TMP/rmi.out" 2>&1 &
  rmi=$!
  # rmi waits in flock(2) on that very file: /proc/locks lists it as blocked ("->") there.
  local end=$((SECONDS + 60)) waiting=
  while [ $SECONDS -lt $end ] && running "$rmi"; do
    awk -v pid="$rmi" -v ino="$ino" '$2 == "->" && $3 == "FLOCK" && $5 == "WRITE" &&
      $6 == pid && $7 ~ (":" ino "$") { found = 1 } END { exit !found }' /proc/locks &&
      waiting=yes && break
    sleep 0.05
  done
  expect_eq "rmi waits for an exclusive lock on $lock" "$waiting" yes
  expect_eq "rmi is still running" "$(running "$rmi" && echo yes)" yes
  expect_eq "the layer is still there" "$(test -e "$MSB_HOME/cache/layers/${top#sha256:}.sqfs" && echo yes)" yes
  touch "$TMP/release"
  wait "$holder"
  wait_exit "$rmi" 60
  rc=$?
  expect_eq "then it deletes" "$rc|$(layer_count)" "0|0"
  expect_match "and says so" "$(cat "$TMP/rmi.out")" "Deleted layer $top"
}

run_tests
