#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Prints the version a release of this tree is called: a tag's name (v dropped) when
# there are tags, else MSB_VERSION from src/util/version.h with the commit appended
# (0.1.0-g96f71ea, -dirty for uncommitted changes); MSB_VERSION alone outside git.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
base=$(sed -n 's/^#define MSB_VERSION "\(.*\)"$/\1/p' "$root/src/util/version.h")
desc=$(git -C "$root" describe --tags --always --dirty 2>/dev/null) || desc=
case $desc in
  '') echo "$base" ;;
  v[0-9]*) echo "${desc#v}" ;;
  [0-9]*.*) echo "$desc" ;;
  *) echo "$base-g$desc" ;;
esac
