#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Prints an Ed25519 public key (PEM) as the C initialiser of its 32 raw bytes, for
# release.c. Anything else is an error: a build must never trust a key it misread.
set -eu
key=${1:?usage: keybytes.sh PUBLIC-KEY.pem}
hex=$(openssl pkey -pubin -in "$key" -outform DER 2> /dev/null | od -An -v -tx1 | tr -d ' \n') ||
  hex=
# An Ed25519 SubjectPublicKeyInfo: this 12-byte prefix, then the key's 32 bytes.
case $hex in
  302a300506032b6570032100????????????????????????????????????????????????????????????????) ;;
  *)
    echo "keybytes.sh: $key is not an Ed25519 public key in PEM (is openssl installed?)" >&2
    exit 1
    ;;
esac
raw=${hex#302a300506032b6570032100}
[ "$raw" != 0000000000000000000000000000000000000000000000000000000000000000 ] ||
  { echo "keybytes.sh: $key is all zeros" >&2; exit 1; }
echo "$raw" | sed 's/\(..\)/0x\1,/g'
