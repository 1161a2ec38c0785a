#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# msb image save / load: OCI archives and docker-archives, both ways with podman, hostile archives.
source "$(dirname "$0")/lib.sh"

IMAGES=$FIX/images
"$E2E_ROOT/tests/fixtures/images.sh" "$IMAGES" > "$TMP/images.log" 2>&1 || {
  cat "$TMP/images.log"
  exit 1
}
# podman with its own storage under $TMP: the host's images are never touched.
PODMAN=(podman --root "$TMP/podman-root" --runroot "$TMP/podman-run" --storage-driver vfs
  --cgroup-manager cgroupfs --runtime runc)
HAVE_PODMAN=
if command -v podman > /dev/null &&
  "${PODMAN[@]}" pull -q "oci:$IMAGES/busybox:latest" > "$TMP/podman.log" 2>&1 &&
  "${PODMAN[@]}" pull -q "oci:$IMAGES/layered:v1" >> "$TMP/podman.log" 2>&1 &&
  "${PODMAN[@]}" pull -q "oci:$IMAGES/shared-a:1" >> "$TMP/podman.log" 2>&1 &&
  "${PODMAN[@]}" tag "localhost$IMAGES/busybox:latest" localhost/bb:1 &&
  "${PODMAN[@]}" tag "localhost$IMAGES/layered:latest" localhost/layered:v1 &&
  "${PODMAN[@]}" tag "localhost$IMAGES/shared-a:latest" localhost/shared-a:1; then
  HAVE_PODMAN=1
fi

# bb.tar: the busybox fixture's layout as a tar. Its index names the image only "latest"
# (a bare tag, which names no image): it gets a full name here.
name_layout() {
tar -C "$IMAGES/busybox" -cf "$TMP/bb-layout.tar" . 2> /dev/null
# The fixture's layout names the image only "latest" (a bare tag): name it for msb.
python3 - "$TMP/bb-layout.tar" "$TMP/bb.tar" << 'PY'
import io, json, sys, tarfile
src, dst = tarfile.open(sys.argv[1]), tarfile.open(sys.argv[2], "w")
for m in src.getmembers():
  data = src.extractfile(m).read() if m.isfile() else None
  if m.name.lstrip("./") == "index.json":
      idx = json.loads(data)
      idx["manifests"][0].setdefault("annotations", {})["org.opencontainers.image.ref.name"] = "localhost/rt:1"
      data = json.dumps(idx).encode()
      m.size = len(data)
  dst.addfile(m, io.BytesIO(data) if data is not None else None)
dst.close()
PY
}
name_layout
# saved_archive: $TMP/saved.tar, msb's own OCI archive of localhost/rt:1 (made once).
saved_archive() {
  [ -f "$TMP/saved.tar" ] && return
  MSB_HOME=$TMP/home-saved "$MSB" image load -q -i "$TMP/bb.tar" &&
    MSB_HOME=$TMP/home-saved "$MSB" image save -o "$TMP/saved.tar" localhost/rt:1 || fail "saved_archive"
}

# fresh_home: an empty msb home for the next test.
fresh_home() {
  MSB_HOME=$(mktemp -d "$TMP/home.XXXXXX")
  export MSB_HOME
}
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
layer_files() { find "$MSB_HOME/cache/layers" -name '*.sqfs' 2> /dev/null | wc -l; }
cache_leftovers() { find "$MSB_HOME/cache/blobs" -mindepth 1 2> /dev/null | wc -l; }
# member_json TAR PATH: a JSON member of a tar, on stdout.
member_json() { tar -xOf "$1" "$2"; }
# oci_digest TAR: the first manifest digest of an OCI archive's index.json.
oci_digest() {
  member_json "$1" index.json | python3 -c 'import json, sys; print(json.load(sys.stdin)["manifests"][0]["digest"])'
}
# inspect_field IMAGE KEY: a top-level field of msb image inspect --format json.
inspect_field() {
  "$MSB" image inspect --format json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}
diff_ids() {
  "$MSB" image inspect --format json "$1" | python3 -c 'import json, sys; print(" ".join(l["diff_id"] for l in json.load(sys.stdin)["layers"]))'
}
podman_layers() { "${PODMAN[@]}" image inspect --format '{{range .RootFS.Layers}}{{.}} {{end}}' "$1" | sed 's/ $//'; }

test_podman_oci_archive_loads_and_runs() {
  [ -n "$HAVE_PODMAN" ] || { skip "podman cannot run here: $(tail -n 1 "$TMP/podman.log")"; return; }
  fresh_home
  "${PODMAN[@]}" save -q --format oci-archive -o "$TMP/p-oci.tar" localhost/bb:1 || fail "podman save"
  msb_capture image load -i "$TMP/p-oci.tar"
  expect_eq "load exit" "$RC" 0
  expect_eq "load output" "$OUT" "Loaded image: localhost/bb:1"
  expect_eq "config digest is podman's image id" "$(inspect_field localhost/bb:1 config_digest)" \
    "sha256:$("${PODMAN[@]}" image inspect --format '{{.Id}}' localhost/bb:1)"
  expect_eq "diff_ids are podman's" "$(diff_ids localhost/bb:1)" "$(podman_layers localhost/bb:1)"
  expect_eq "no temporary files left" "$(cache_leftovers)" 0
  msb_capture run -q --pull never localhost/bb:1 -- echo loaded-and-running
  expect_eq "run exit" "$RC" 0
  expect_eq "run output" "$OUT" "loaded-and-running"
}

test_podman_docker_archive_with_two_images_loads() {
  [ -n "$HAVE_PODMAN" ] || { skip "podman cannot run here"; return; }
  fresh_home
  "${PODMAN[@]}" save -q -m --format docker-archive -o "$TMP/p-docker.tar" localhost/bb:1 \
    localhost/shared-a:1 || fail "podman save"
  msb_capture image load -i "$TMP/p-docker.tar"
  expect_eq "load exit" "$RC" 0
  expect_eq "load output" "$OUT" "Loaded image: localhost/bb:1
Loaded image: localhost/shared-a:1"
  expect_eq "images" "$("$MSB" image ls -q | sort | tr '\n' ' ')" "localhost/bb:1 localhost/shared-a:1 "
  for img in localhost/bb:1 localhost/shared-a:1; do
    expect_eq "$img diff_ids are podman's" "$(diff_ids $img)" "$(podman_layers $img)"
    expect_eq "$img config digest is podman's image id" "$(inspect_field $img config_digest)" \
      "sha256:$("${PODMAN[@]}" image inspect --format '{{.Id}}' $img)"
  done
  # The two share their base layer: stored once.
  expect_eq "layers stored" "$(layer_files)" 2
}

# The paths of each layer of an image, as one sorted line per layer (whiteouts included).
layer_paths() {
  python3 - "$@" << 'PY'
import io, json, subprocess, sys, tarfile
def members(data):
    if data[:4] == b"\x28\xb5\x2f\xfd":
        data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return sorted(m.name.lstrip("./").rstrip("/") for m in t.getmembers() if m.name.strip("./"))
for layout in sys.argv[1:]:
    blob = lambda d: open(f"{layout}/blobs/sha256/{d[7:]}", "rb").read()
    idx = json.loads(open(f"{layout}/index.json").read())
    man = json.loads(blob(idx["manifests"][0]["digest"]))
    for l in man["layers"]:
        print(" ".join(members(blob(l["digest"]))))
PY
}

test_msb_save_loads_into_podman_both_formats() {
  [ -n "$HAVE_PODMAN" ] || { skip "podman cannot run here"; return; }
  fresh_home
  "${PODMAN[@]}" save -q --format oci-archive -o "$TMP/layered.tar" localhost/layered:v1 || fail "podman save"
  msb_capture image load -q -i "$TMP/layered.tar"
  expect_eq "load exit" "$RC" 0
  for fmt in oci-archive docker-archive; do
    msb_capture image save --format $fmt -o "$TMP/m-$fmt.tar" localhost/layered:v1
    expect_eq "$fmt save exit" "$RC" 0
    expect_eq "$fmt save is silent" "$OUT$ERR" ""
    "${PODMAN[@]}" rmi -f localhost/layered:v1 > /dev/null 2>&1
    "${PODMAN[@]}" load -q -i "$TMP/m-$fmt.tar" > "$TMP/podman-load.out" 2>&1 || fail "podman load $fmt: $(cat "$TMP/podman-load.out")"
    expect_eq "$fmt podman names it" "$("${PODMAN[@]}" image ls --format '{{.Repository}}:{{.Tag}}' localhost/layered:v1)" \
      "localhost/layered:v1"
    expect_eq "$fmt podman's layers are the saved ones" "$(podman_layers localhost/layered:v1)" \
      "$(tar -xOf "$TMP/m-$fmt.tar" "$(tar -tf "$TMP/m-$fmt.tar" | grep -m1 -E '^(blobs/sha256/|[0-9a-f]{64}\.json$)' | head -1)" > /dev/null 2>&1; \
        python3 - "$TMP/m-$fmt.tar" << 'PY'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
if "index.json" in t.getnames():
    idx = json.load(t.extractfile("index.json"))
    man = json.load(t.extractfile("blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
    cfg = json.load(t.extractfile("blobs/sha256/" + man["config"]["digest"][7:]))
else:
    cfg = json.load(t.extractfile(json.load(t.extractfile("manifest.json"))[0]["Config"]))
print(" ".join(cfg["rootfs"]["diff_ids"]))
PY
)"
  done
  # Whiteouts and opaque directories survive squashfs and back: the same paths in every layer.
  mkdir -p "$TMP/orig" "$TMP/saved"
  tar -xf "$TMP/layered.tar" -C "$TMP/orig"
  tar -xf "$TMP/m-oci-archive.tar" -C "$TMP/saved"
  expect_eq "layer paths" "$(layer_paths "$TMP/saved")" "$(layer_paths "$TMP/orig")"
  expect_match "the fixture has whiteouts" "$(layer_paths "$TMP/orig")" '\.wh\.\.wh\.\.opq'
}

test_round_trip_keeps_the_digest() {
  fresh_home
  msb_capture image load -i "$TMP/bb.tar"
  expect_eq "load exit" "$RC" 0
  expect_eq "load output" "$OUT" "Loaded image: localhost/rt:1"
  msb_capture image save -o "$TMP/rt1.tar" localhost/rt:1
  expect_eq "save exit" "$RC" 0
  d1=$(oci_digest "$TMP/rt1.tar")
  "$MSB" image rm -q localhost/rt:1
  expect_eq "removed" "$(layer_files)" 0
  msb_capture image load -i "$TMP/rt1.tar"
  expect_eq "reload exit" "$RC" 0
  expect_eq "reload output" "$OUT" "Loaded image: localhost/rt:1"
  expect_eq "digest after the round trip" "$(inspect_field localhost/rt:1 digest)" "$d1"
  msb_capture image save -o "$TMP/rt2.tar" localhost/rt:1
  expect_eq "second save exit" "$RC" 0
  cmp -s "$TMP/rt1.tar" "$TMP/rt2.tar" || fail "a second save differs from the first"
  # stdout and stdin work the same.
  "$MSB" image save -o - localhost/rt:1 > "$TMP/rt3.tar"
  cmp -s "$TMP/rt1.tar" "$TMP/rt3.tar" || fail "save -o - differs from save -o FILE"
  # What a killed load left (no lock on it) goes with the next load.
  mkdir -p "$MSB_HOME/cache/blobs/load-stale1/x"
  msb_capture image load -i - < "$TMP/rt3.tar"
  expect_eq "load from stdin" "$RC:$OUT" "0:Loaded image: localhost/rt:1"
  expect_eq "no temporary files left" "$(cache_leftovers)" 0
}

# rewrite_tar IN OUT PYTHON: copies a tar, with PYTHON run on each (m, data) first (it may
# change data, or set skip = True).
rewrite_tar() {
  python3 - "$1" "$2" "$3" << 'PY'
import io, sys, tarfile
src, dst = tarfile.open(sys.argv[1]), tarfile.open(sys.argv[2], "w", format=tarfile.PAX_FORMAT)
for m in src.getmembers():
    data = src.extractfile(m).read() if m.isfile() else None
    skip = False
    exec(sys.argv[3])
    if skip:
        continue
    if data is not None:
        m.size = len(data)
    dst.addfile(m, io.BytesIO(data) if data is not None else None)
dst.close()
PY
}

test_tampered_blob_is_refused_and_nothing_stays() {
  fresh_home
  saved_archive
  layer=$(tar -tf "$TMP/saved.tar" | awk -F/ '/^blobs\/sha256\/./ { f = $3 } END { print f }')
  rewrite_tar "$TMP/saved.tar" "$TMP/tampered.tar" "
if m.name == 'blobs/sha256/$layer':
    data = data[:600] + bytes([data[600] ^ 1]) + data[601:]"
  got=$(tar -xOf "$TMP/tampered.tar" "blobs/sha256/$layer" | sha256sum | cut -d' ' -f1)
  msb_capture image load -i "$TMP/tampered.tar"
  expect_eq "exit" "$RC" 125
  expect_one_error_line "$ERR" "load $TMP/tampered.tar: blob sha256:$layer: digest mismatch \\(got sha256:$got\\)$"
  expect_eq "no image" "$("$MSB" image ls -q)" ""
  expect_eq "no layer" "$(layer_files)" 0
  expect_eq "no temporary files left" "$(cache_leftovers)" 0
  # Positive control: the untouched archive loads into the same home.
  msb_capture image load -i "$TMP/saved.tar"
  expect_eq "untouched archive loads" "$RC:$OUT" "0:Loaded image: localhost/rt:1"
}

test_wrong_diff_id_removes_the_converted_layer() {
  [ -n "$HAVE_PODMAN" ] || { skip "podman cannot run here"; return; }
  fresh_home
  "${PODMAN[@]}" save -q --format docker-archive -o "$TMP/d.tar" localhost/bb:1 || fail "podman save"
  cfg=$(member_json "$TMP/d.tar" manifest.json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Config"])')
  bad=sha256:$(printf '%064d' 0)
  rewrite_tar "$TMP/d.tar" "$TMP/d-bad.tar" "
import json
if m.name == '$cfg':
    c = json.loads(data); c['rootfs']['diff_ids'] = ['$bad']; data = json.dumps(c).encode()"
  msb_capture image load -i "$TMP/d-bad.tar"
  expect_eq "exit" "$RC" 125
  expect_one_error_line "$ERR" "load $TMP/d-bad.tar: layer sha256:[0-9a-f]{64}: .*$bad"
  expect_eq "no image" "$("$MSB" image ls -q)" ""
  expect_eq "no layer" "$(layer_files)" 0
  expect_eq "no temporary files left" "$(cache_leftovers)" 0
  msb_capture image load -i "$TMP/d.tar"
  expect_eq "untouched archive loads" "$RC:$OUT" "0:Loaded image: localhost/bb:1"
}

test_member_paths_never_escape() {
  fresh_home
  saved_archive
  for evil in ../evil /tmp/evil-abs blobs/../../evil; do
    rewrite_tar "$TMP/saved.tar" "$TMP/evil.tar" "
if m.name == 'oci-layout':
    e = tarfile.TarInfo('$evil'); e.size = 4; dst.addfile(e, io.BytesIO(b'evil'))"
    msb_capture image load -i "$TMP/evil.tar"
    expect_eq "$evil: exit" "$RC" 125
    expect_one_error_line "$ERR" "load $TMP/evil.tar: member \"$evil\" has an unsafe path \\(absolute, empty or with \"\\.\\.\"\\)$"
  done
  expect_eq "nothing written outside" "$(ls "$TMP/evil" /tmp/evil-abs "$MSB_HOME/cache/evil" 2> /dev/null)" ""
  expect_eq "no image" "$("$MSB" image ls -q)" ""
  expect_eq "no temporary files left" "$(cache_leftovers)" 0
  # Positive control: the same archive with a harmless extra member loads.
  rewrite_tar "$TMP/saved.tar" "$TMP/extra.tar" "
if m.name == 'oci-layout':
    e = tarfile.TarInfo('extra/file'); e.size = 4; dst.addfile(e, io.BytesIO(b'fine'))"
  msb_capture image load -i "$TMP/extra.tar"
  expect_eq "harmless extra member" "$RC:$OUT" "0:Loaded image: localhost/rt:1"
}

test_interrupted_load_leaves_nothing() {
  fresh_home
  saved_archive
  # A load reading a stalled pipe: Ctrl-C must not wait for the pipe.
  mkfifo "$TMP/fifo"
  "$MSB" image load -i - < "$TMP/fifo" > "$TMP/int.out" 2> "$TMP/int.err" &
  local pid=$! feeder
  (head -c 300000 "$TMP/saved.tar" && exec sleep 120) > "$TMP/fifo" &
  feeder=$!
  wait_until 60 compgen -G "$MSB_HOME/cache/blobs/load-*/0" > /dev/null || fail "the load did not start"
  kill -INT "$pid"
  local t0=$EPOCHREALTIME
  wait "$pid"
  RC=$?
  local ms
  ms=$(ms_since "$t0")
  kill "$feeder" 2> /dev/null
  expect_eq "exit" "$RC" 130
  expect_one_error_line "$(cat "$TMP/int.err")" 'load \(stdin\): interrupted$'
  [ "$ms" -lt 5000 ] || fail "the load took $ms ms to stop"
  expect_eq "no image" "$("$MSB" image ls -q)" ""
  expect_eq "no temporary files left" "$(cache_leftovers)" 0
  # Positive control: the whole archive through stdin loads.
  msb_capture image load -i - < "$TMP/saved.tar"
  expect_eq "the whole archive loads" "$RC:$OUT" "0:Loaded image: localhost/rt:1"
}

test_bad_usage_and_inputs() {
  fresh_home
  saved_archive
  "$MSB" image load -q -i "$TMP/saved.tar" || fail "load"
  msb_capture image save --format tarball -o "$TMP/x.tar" localhost/rt:1
  expect_eq "unknown format exit" "$RC" 125
  expect_one_error_line "$ERR" 'image save: unknown format "tarball" \(use oci-archive or docker-archive\)$'
  msb_capture image save localhost/rt:1
  expect_eq "missing -o exit" "$RC" 125
  expect_one_error_line "$ERR" 'image save: missing -o FILE \(where to write the archive, or -o - for stdout\)$'
  msb_capture image load
  expect_eq "missing -i exit" "$RC" 125
  expect_one_error_line "$ERR" 'image load: missing -i FILE \(the archive to load, or -i - for stdin\)$'
  msb_capture image save -o "$TMP/x.tar" localhost/rt:1 no-such:image
  expect_eq "unknown image exit" "$RC" 125
  expect_one_error_line "$ERR" 'image no-such:image not found \(see .msb image ls.\)$'
  expect_eq "no archive written" "$(ls "$TMP"/x.tar* 2> /dev/null)" ""
  echo "just some text, long enough to be read as a header by nobody at all" > "$TMP/text"
  msb_capture image load -i "$TMP/text"
  expect_eq "not an archive exit" "$RC" 125
  expect_one_error_line "$ERR" "load $TMP/text: not a tar archive \\(.*\\)$"
  tar -C "$TMP" -cf "$TMP/notimage.tar" text
  msb_capture image load -i "$TMP/notimage.tar"
  expect_eq "tar without an index exit" "$RC" 125
  expect_one_error_line "$ERR" "load $TMP/notimage.tar: not an image archive \\(no oci-layout and index.json, nor manifest.json; make it with 'msb image save' or 'podman save'\\)$"
  # Positive control: the same save with the flags right writes the archive.
  msb_capture image save --format docker-archive -o "$TMP/x.tar" localhost/rt:1
  expect_eq "save exit" "$RC" 0
  expect_eq "archive written, nothing beside it" "$(cd "$TMP" && ls x.tar*)" "x.tar"
}

# A name pinned to a digest (name@sha256:...) is what `msb run name@sha256:...` trusts: an
# archive may give one only with the image's own digest.
test_pinned_name_must_be_the_images_digest() {
  fresh_home
  saved_archive
  local d wrong
  d=$(oci_digest "$TMP/saved.tar")
  wrong=sha256:$(printf '%064d' 0)
  for name in "localhost/rt:1@$wrong" "localhost/rt@$wrong"; do
    rewrite_tar "$TMP/saved.tar" "$TMP/pin.tar" "
import json
if m.name == 'index.json':
    idx = json.loads(data)
    for e in idx['manifests']:
        e['annotations'] = {'org.opencontainers.image.ref.name': '$name'}
    data = json.dumps(idx).encode()"
    msb_capture image load -i "$TMP/pin.tar"
    expect_eq "$name: exit" "$RC" 125
    expect_one_error_line "$ERR" "load $TMP/pin.tar: image 1: name \"$name\" pins $wrong, but the image is $d$"
  done
  # docker-archive: RepoTags.
  MSB_HOME=$TMP/home-saved "$MSB" image save --format docker-archive -o "$TMP/saved-d.tar" localhost/rt:1 ||
    fail "docker-archive save"
  rewrite_tar "$TMP/saved-d.tar" "$TMP/pin-d.tar" "
import json
if m.name == 'manifest.json':
    man = json.loads(data); man[0]['RepoTags'] = ['localhost/rt:1@$wrong']; data = json.dumps(man).encode()"
  msb_capture image load -i "$TMP/pin-d.tar"
  expect_eq "docker-archive: exit" "$RC" 125
  expect_one_error_line "$ERR" "load $TMP/pin-d.tar: image 1: name \"localhost/rt:1@$wrong\" pins $wrong, but the image is sha256:[0-9a-f]{64}$"
  expect_eq "no image" "$("$MSB" image ls -q)" ""
  expect_eq "no layer" "$(layer_files)" 0
  expect_eq "no temporary files left" "$(cache_leftovers)" 0
  # Positive control: the same archive pinned to its own digest loads under that name.
  rewrite_tar "$TMP/saved.tar" "$TMP/pin-ok.tar" "
import json
if m.name == 'index.json':
    idx = json.loads(data)
    idx['manifests'][0]['annotations'] = {'org.opencontainers.image.ref.name': 'localhost/rt@$d'}
    data = json.dumps(idx).encode()"
  msb_capture image load -i "$TMP/pin-ok.tar"
  expect_eq "own digest loads" "$RC:$OUT" "0:Loaded image: localhost/rt@$d"
  expect_eq "recorded under it" "$(inspect_field "localhost/rt@$d" digest)" "$d"
}

# A sparse member would be written out in full (a few KiB of tar, terabytes of zeros): refused.
test_sparse_member_is_refused() {
  fresh_home
  saved_archive
  mkdir -p "$TMP/sparse"
  truncate -s 4M "$TMP/sparse/hole"
  printf x | dd of="$TMP/sparse/hole" bs=1 seek=2000000 conv=notrunc 2> /dev/null
  tar -C "$TMP/sparse" -S -cf "$TMP/sparse-only.tar" hole
  cp "$TMP/saved.tar" "$TMP/with-sparse.tar"
  tar -Af "$TMP/with-sparse.tar" "$TMP/sparse-only.tar" || fail "tar -A"
  msb_capture image load -i "$TMP/with-sparse.tar"
  expect_eq "exit" "$RC" 125
  expect_one_error_line "$ERR" "load $TMP/with-sparse.tar: member hole is a sparse file$"
  expect_eq "no image" "$("$MSB" image ls -q)" ""
  expect_eq "no temporary files left" "$(cache_leftovers)" 0
  # Positive control: the same file, stored whole, loads.
  tar -C "$TMP/sparse" -cf "$TMP/whole-only.tar" hole
  cp "$TMP/saved.tar" "$TMP/with-whole.tar"
  tar -Af "$TMP/with-whole.tar" "$TMP/whole-only.tar" || fail "tar -A"
  msb_capture image load -i "$TMP/with-whole.tar"
  expect_eq "the same file stored whole" "$RC:$OUT" "0:Loaded image: localhost/rt:1"
}

# Two loads at once of the same layers: neither waits for the other forever, both record.
test_concurrent_loads_both_finish() {
  fresh_home
  saved_archive
  local p1 p2 r1 r2
  timeout 120 "$MSB" image load -q -i "$TMP/saved.tar" > "$TMP/c1.out" 2>&1 &
  p1=$!
  timeout 120 "$MSB" image load -q -i "$TMP/saved.tar" > "$TMP/c2.out" 2>&1 &
  p2=$!
  wait "$p1"
  r1=$?
  wait "$p2"
  r2=$?
  expect_eq "both loads" "$r1:$r2" "0:0"
  expect_eq "one layer, stored once" "$(layer_files)" 1
  expect_eq "no temporary files left" "$(cache_leftovers)" 0
}

# A path over 1024 bytes in a layer is saved, not dropped (the limit is PATH_MAX).
test_long_layer_path_is_saved() {
  fresh_home
  local long
  long=$(python3 -c 'print("/".join(["d%d" % i + "x" * 195 for i in range(7)]))')
  cat > "$TMP/long.json" << EOF
{"tag": "localhost/long:1", "layers": [{"compression": "none", "entries": [{"path": "$long/file", "content": "deep\n"}]}]}
EOF
  python3 "$E2E_ROOT/tests/fixtures/mkimage.py" "$TMP/long.json" "$TMP/long" > /dev/null || fail "mkimage"
  tar -C "$TMP/long" -cf "$TMP/long.tar" .
  msb_capture image load -i "$TMP/long.tar"
  expect_eq "load" "$RC:$OUT" "0:Loaded image: localhost/long:1"
  msb_capture image save -o "$TMP/long-saved.tar" localhost/long:1
  expect_eq "save exit" "$RC" 0
  expect_eq "save is silent" "$ERR" ""
  mkdir -p "$TMP/long-out"
  tar -xf "$TMP/long-saved.tar" -C "$TMP/long-out"
  expect_match "the saved layer has the long path" "$(layer_paths "$TMP/long-out")" " $long/file( |$)"
  # Positive control: the original layer has it too, by the same check.
  expect_match "the original has it" "$(layer_paths "$TMP/long")" " $long/file( |$)"
}

run_tests
