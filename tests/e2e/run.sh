#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the end-to-end suites (tests/e2e/test_*.sh, or those named) and summarises.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$root/build}
export BUILD

"$root/tests/fixtures/busybox-rootfs.sh" "$BUILD/fixtures" || exit 1

# E2E_LOAD=N (make e2e LOAD=N): N busy loops run for the whole suite, the way
# CI's two cores are loaded by other work; every test must still pass.
load_pids=()
for _ in $(seq "${E2E_LOAD:-0}"); do
  (while :; do :; done) &
  load_pids+=($!)
done
[ ${#load_pids[@]} -eq 0 ] || echo "# e2e under load: ${#load_pids[@]} busy loops"
trap '[ ${#load_pids[@]} -eq 0 ] || kill "${load_pids[@]}" 2> /dev/null' EXIT

results=$(mktemp)
export E2E_RESULTS=$results
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=("$here"/test_*.sh)
for s in "${suites[@]}"; do
  [ -f "$s" ] || s=$here/test_$s.sh
  name=$(basename "$s" .sh)
  # A suite that dies before or between its tests (a fixture that did not
  # start) is a failure, not a smaller count of passes.
  if ! E2E_SUITE=${name#test_} bash "$s"; then
    echo "not ok - ${name#test_}: the suite did not finish"
    echo fail >> "$results"
  fi
done
pass=$(grep -c pass "$results")
fail=$(grep -c fail "$results")
skipped=$(grep -c skip "$results")
rm -f "$results"
echo "e2e: $pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
