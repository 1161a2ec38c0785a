#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite: installs what a fresh Debian 12 lacks, builds, and runs
# unit tests, fuzz corpus replay and end-to-end tests (real VMs), first with the
# normal build and then with ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
jobs=$(nproc)
make -j"$jobs" check
make -j"$jobs" SANITIZE=1 check
echo "test.sh: all suites passed"
