#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installing msb: make install (the FHS tree), make dist (a release tarball and its
# .sha256), and scripts/setup.sh as an ordinary user, whose next login shell finds
# msb on PATH and boots a sandbox with it. Every install runs without MSB_LIB_DIR.
source "$(dirname "$0")/lib.sh"
SQFS=$FIX/rootfs.sqfs
USER_NAME=msb-e2e-inst
BEGIN='# >>> msb >>>'

# make from inside `make e2e`: the parent's jobserver and flags are not this one's.
unset MAKEFLAGS MFLAGS MAKELEVEL

remove_user() {
  if dpkg-query -W -f='${Status}' msb 2> /dev/null | grep -q 'ok installed'; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y msb > /dev/null 2>&1
  fi
  if id "$USER_NAME" > /dev/null 2>&1; then userdel -r -f "$USER_NAME" > /dev/null 2>&1; fi
  return 0
}
trap remove_user EXIT
suite_teardown() { remove_user; }

# The user's homes live under $TMP, which they must be able to walk through.
chmod 711 "$TMP"
mkdir -p "$TMP/users" && chmod 755 "$TMP/users"
UHOME=$TMP/users/$USER_NAME

# need_user: as root, the ordinary user (created once, home $UHOME); else a skip.
need_user() {
  if [ "$(id -u)" != 0 ]; then
    skip "needs root to create an ordinary user"
    return 1
  fi
  id "$USER_NAME" > /dev/null 2>&1 && return 0
  useradd -m -d "$UHOME" -s /bin/bash "$USER_NAME" 2> "$TMP/useradd.err" ||
    { fail "cannot create the test user: $(cat "$TMP/useradd.err")"; return 1; }
}

# as_user HOME CMD...: CMD with a bare environment and HOME, as the test user when
# running as root (need_user first), else as whoever runs the suite.
as_user() {
  local home=$1
  shift
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$USER_NAME" -- env -i HOME="$home" PATH=/usr/bin:/bin "$@"
  else
    env -i HOME="$home" PATH=/usr/bin:/bin "$@"
  fi
}

# new_home DIR: an empty home for as_user.
new_home() {
  rm -rf "$1" && mkdir -p "$1"
  if [ "$(id -u)" = 0 ]; then chown "$USER_NAME:" "$1"; fi
}

# The release tarball, made once for the suite: DIST_TAR (its .sha256 beside it).
DIST_TAR=
make_dist() {
  [ -z "$DIST_TAR" ] || return 0
  local out
  # shellcheck disable=SC2086 # $MAKE_SAN: a word or nothing
  out=$(make -s -C "$E2E_ROOT" BUILD="$BUILD" $MAKE_SAN DISTDIR="$TMP/dist" dist 2> "$TMP/dist.err") ||
    { fail "make dist failed: $(cat "$TMP/dist.err")"; return 1; }
  DIST_TAR=$(printf '%s\n' "$out" | tail -n 1)
  [ -f "$DIST_TAR" ] || { fail "make dist printed no tarball: $out"; DIST_TAR=; return 1; }
}

# user_copy FILE...: into $UHOME, the user's own.
user_copy() {
  local f
  for f in "$@"; do
    cp "$f" "$UHOME/" && chown "$USER_NAME:" "$UHOME/${f##*/}"
  done
}

# blocks FILE: how many msb blocks FILE has.
blocks() { grep -cxF "$BEGIN" "$1" || true; }

# without_blocks FILE: FILE as it was before setup.sh (what an uninstall removes).
without_blocks() { sed '/^# >>> msb >>>$/,/^# <<< msb <<<$/d' "$1"; }

test_make_install_fhs_tree_and_the_installed_msb_finds_its_kernel() {
  local d=$TMP/root before want f
  before=$(stat -c %y "$MSB")
  # shellcheck disable=SC2086 # $MAKE_SAN: a word or nothing
  make -s -C "$E2E_ROOT" BUILD="$BUILD" $MAKE_SAN DESTDIR="$d" PREFIX=/usr install > "$TMP/out" 2>&1
  expect_eq "make install" "$?" 0
  expect_eq "make install output" "$(cat "$TMP/out")" ""
  expect_eq "the build is reused, not relinked" "$(stat -c %y "$MSB")" "$before"
  want=$(
    echo "755 ./usr/bin/msb"
    echo "644 ./usr/lib/msb/initrd.cpio"
    echo "644 ./usr/lib/msb/vmlinux"
    echo "644 ./usr/share/doc/msb/README.md"
    for f in "$E2E_ROOT"/docs/*.md; do echo "644 ./usr/share/doc/msb/docs/${f##*/}"; done
    echo "644 ./usr/share/man/man1/msb.1"
    echo "644 ./usr/share/bash-completion/completions/msb"
    echo "644 ./usr/share/zsh/vendor-completions/_msb"
    echo "644 ./usr/share/fish/vendor_completions.d/msb.fish"
  )
  expect_eq "the FHS tree" "$(cd "$d" && find . -type f -printf '%m %p\n' | sort -k2)" "$(sort -k2 <<< "$want")"
  cmp -s "$d/usr/bin/msb" "$MSB" || fail "bin/msb is the build's"
  # The manual is msb's own --help texts: every command's usage line is in it.
  for c in $("$MSB" --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }'); do
    grep -q "^\.SS msb $c\$" "$d/usr/share/man/man1/msb.1" || fail "msb.1 has no section for $c"
    grep -qF "$("$MSB" "$c" --help | head -n 1 | sed 's/\\/\\e/g')" "$d/usr/share/man/man1/msb.1" ||
      fail "msb.1 does not have msb $c --help's first line"
  done
  if command -v groff > /dev/null; then
    expect_eq "msb.1 renders without warnings" "$(groff -man -Tutf8 -ww -z "$d/usr/share/man/man1/msb.1" 2>&1)" ""
  fi
  cmp -s "$d/usr/lib/msb/vmlinux" "$BUILD/vmlinux" || fail "lib/msb/vmlinux is the build's"
  cmp -s "$d/usr/lib/msb/initrd.cpio" "$BUILD/initrd.cpio" || fail "lib/msb/initrd.cpio is the build's"

  # Nothing beside it and an empty MSB_HOME: only ../lib/msb/ can give it a kernel.
  OUT=$(env -u MSB_LIB_DIR MSB_HOME="$TMP/fhs-home" "$d/usr/bin/msb" run --rootfs "$SQFS" -- echo hi 2> "$TMP/err")
  expect_eq "the installed msb boots a guest" "$OUT$(cat "$TMP/err")" hi
  mv "$d/usr/lib/msb/initrd.cpio" "$TMP/initrd.away"
  OUT=$(env -u MSB_LIB_DIR MSB_HOME="$TMP/fhs-home" "$d/usr/bin/msb" run --rootfs "$SQFS" -- echo hi 2> "$TMP/err")
  expect_one_error_line "$(cat "$TMP/err")" "guest initrd.cpio not found"
  mv "$TMP/initrd.away" "$d/usr/lib/msb/initrd.cpio"

  # shellcheck disable=SC2086 # $MAKE_SAN: a word or nothing
  make -s -C "$E2E_ROOT" BUILD="$BUILD" $MAKE_SAN DESTDIR="$d" PREFIX=/usr uninstall > "$TMP/out" 2>&1
  expect_eq "make uninstall" "$?" 0
  expect_eq "make uninstall leaves no file" "$(find "$d" -type f)" ""
  rm -rf "$d" "$TMP/fhs-home"
}

test_make_dist_tarball_sha256_and_an_unpacked_release_runs_anywhere() {
  local before name top listing sum
  before=$(stat -c %y "$MSB")
  make_dist || return
  expect_eq "the build is reused, not relinked" "$(stat -c %y "$MSB")" "$before"
  name=msb-$("$E2E_ROOT/scripts/version.sh")-linux-$(uname -m)
  expect_eq "versioned name" "$DIST_TAR" "$TMP/dist/$name.tar.gz"
  expect_match "a version" "$name" '^msb-[0-9]+\.[0-9]+\.[0-9]+'
  (cd "$TMP/dist" && sha256sum -c --quiet "$name.tar.gz.sha256") > "$TMP/out" 2>&1
  expect_eq "sha256sum -c accepts its .sha256" "$?$(cat "$TMP/out")" 0
  expect_match ".sha256 names the tarball" "$(cat "$DIST_TAR.sha256")" "^[0-9a-f]{64}  $name\.tar\.gz$"
  listing=$(tar -tvzf "$DIST_TAR" | awk '{ print $1, $2, $6 }')
  expect_eq "contents: one directory, the ~/.microsandbox layout" "$listing" \
    "drwxr-xr-x 0/0 $name/
-rw-r--r-- 0/0 $name/README.md
drwxr-xr-x 0/0 $name/bin/
-rwxr-xr-x 0/0 $name/bin/msb
drwxr-xr-x 0/0 $name/lib/
-rw-r--r-- 0/0 $name/lib/initrd.cpio
-rw-r--r-- 0/0 $name/lib/vmlinux"

  # Made again from the same build: the same bytes.
  sum=$(cut -d' ' -f1 "$DIST_TAR.sha256")
  rm -f "$DIST_TAR" "$DIST_TAR.sha256"
  # shellcheck disable=SC2086 # $MAKE_SAN: a word or nothing
  make -s -C "$E2E_ROOT" BUILD="$BUILD" $MAKE_SAN DISTDIR="$TMP/dist" dist > /dev/null 2>&1
  expect_eq "reproducible" "$(sha256sum < "$DIST_TAR" | cut -d' ' -f1)" "$sum"

  # Unpacked anywhere, with MSB_HOME elsewhere: bin/msb finds ../lib/.
  mkdir -p "$TMP/unpacked" && tar -xzf "$DIST_TAR" -C "$TMP/unpacked"
  top=$TMP/unpacked/$name
  cmp -s "$top/bin/msb" "$MSB" || fail "bin/msb is the build's"
  OUT=$(env -u MSB_LIB_DIR MSB_HOME="$TMP/elsewhere" "$top/bin/msb" run --rootfs "$SQFS" -- echo hi 2> "$TMP/err")
  expect_eq "the unpacked release boots a guest" "$OUT$(cat "$TMP/err")" hi
  rm -rf "$TMP/unpacked" "$TMP/elsewhere"
}

test_setup_tarball_as_an_ordinary_user_then_a_login_shell_runs_msb() {
  need_user || return
  make_dist || return
  local tb=${DIST_TAR##*/} bin=$UHOME/.microsandbox/bin out version
  user_copy "$DIST_TAR" "$DIST_TAR.sha256" "$SQFS" "$E2E_ROOT/scripts/setup.sh"
  out=$(su - "$USER_NAME" -c "bash ~/setup.sh --tarball ~/$tb" 2> "$TMP/err")
  expect_eq "setup.sh as the user" "$?" 0
  expect_match "it says what it did" "$out" "installed $bin/msb \(msb [0-9.]+[^,]*, in $UHOME/.microsandbox/releases/[^/]+-[0-9a-f]{12}\)"
  expect_match "the sha256 was checked" "$out" "sha256 verified"
  expect_match "bashrc and profile" "$out" "PATH: added to ~/.bashrc.*PATH: added to ~/.profile"
  expect_eq "the last line" "$(tail -n 1 <<< "$out")" \
    "setup: done; open a new shell or run: export PATH=\"$bin:\$PATH\""
  if runuser -u "$USER_NAME" -- test -r /dev/kvm -a -w /dev/kvm; then
    expect_eq "no warning with KVM" "$(cat "$TMP/err")" ""
  elif [ -e /dev/kvm ]; then
    expect_match "the fix for /dev/kvm" "$(cat "$TMP/err")" "sudo usermod -aG kvm $USER_NAME"
  else
    expect_match "no /dev/kvm: TCG, said once" "$(cat "$TMP/err")" "^setup: warning: /dev/kvm does not exist[^"$'\n'"]*TCG"
    expect_eq "one warning" "$(grep -c '' "$TMP/err")" 1
  fi
  expect_eq "the user's own files" \
    "$(stat -L -c '%U %a' "$bin/msb" "$UHOME/.microsandbox/lib/vmlinux" "$UHOME/.microsandbox/lib/initrd.cpio")" \
    "$USER_NAME 755
$USER_NAME 644
$USER_NAME 644"
  expect_eq "no temp files left beside them" \
    "$(cd "$UHOME/.microsandbox" && find . -type f -o -type l | sed 's,releases/[^/]*-[0-9a-f]\{12\}/,releases/REL/,' | sort | tr '\n' ' ')" \
    "./bin/msb ./lib/initrd.cpio ./lib/vmlinux ./releases/.lock ./releases/REL/bin/msb ./releases/REL/lib/initrd.cpio ./releases/REL/lib/vmlinux ./releases/current "

  # A new login shell: no MSB_LIB_DIR, the default MSB_HOME, PATH from ~/.profile.
  version=$("$MSB" --version | head -n 1)
  out=$(su - "$USER_NAME" -c 'command -v msb; msb --version | head -n 1; msb run --rootfs ~/rootfs.sqfs -- echo hi' 2>&1)
  expect_eq "a login shell finds msb and boots a guest" "$out" "$bin/msb
$version
hi"
  # An interactive shell that is not a login shell: ~/.bashrc.
  # shellcheck disable=SC2016 # the user's HOME, in the user's shell
  out=$(su - "$USER_NAME" -c 'env -i HOME="$HOME" TERM=dumb PATH=/usr/bin:/bin bash -i -c "command -v msb" 2>/dev/null')
  expect_eq "an interactive bash finds msb" "$out" "$bin/msb"
  wait_until 10 sh -c "! ps -u $USER_NAME -o pid= > /dev/null" ||
    fail "the user's processes outlived the sandbox: $(ps -u "$USER_NAME" -o pid=,args=)"
}

# A new user clones this tree and runs setup.sh in it. The clone gets a copy of this
# suite's build (newer than the clone's sources), so make only relinks what the
# commit changes instead of building a kernel for ten minutes; setup.sh's make, the
# install and the login shell are what a user would run.
test_setup_from_a_clean_clone_as_a_new_user_then_a_login_shell_runs_msb() {
  need_user || return
  if [ -n "$MAKE_SAN" ]; then
    skip "setup.sh builds without the sanitizers; the normal pass runs this"
    return
  fi
  git -C "$E2E_ROOT" rev-parse --git-dir > /dev/null 2>&1 || { skip "not a git checkout"; return; }
  local src=$UHOME/src bin=$UHOME/.microsandbox/bin out
  rm -rf "$src" "$UHOME/.microsandbox"
  git clone -q "$E2E_ROOT" "$src" 2> "$TMP/err" || { fail "git clone: $(cat "$TMP/err")"; return; }
  mkdir -p "$src/build"
  cp -r "$BUILD/obj" "$BUILD/agent-obj" "$BUILD/libmsb.a" "$BUILD/agentd" "$BUILD/initrd.cpio" \
    "$BUILD/vmlinux" "$BUILD/msb" "$src/build/"
  user_copy "$SQFS"
  chown -R "$USER_NAME:" "$src"
  out=$(su - "$USER_NAME" -c 'cd ~/src && bash scripts/setup.sh' 2> "$TMP/err")
  expect_eq "setup.sh in the clone, as the user$(tail -n 3 "$TMP/err")" "$?" 0
  expect_match "it built there and installed" "$out" "building in $src .*installed $bin/msb \(msb "
  out=$(su - "$USER_NAME" -c 'command -v msb; msb run --rootfs ~/rootfs.sqfs -- echo hi' 2>&1)
  expect_eq "a new login shell runs msb from PATH" "$out" "$bin/msb
hi"
  [ "$(readlink -f "$bin/msb")" != "$(readlink -f "$src/build/msb")" ] || fail "bin/msb is the clone's build, not a copy"
  # The user as they were: the next tests install into this home again.
  local f
  for f in "$UHOME/.bashrc" "$UHOME/.profile"; do
    without_blocks "$f" > "$TMP/rc" && cat "$TMP/rc" > "$f"
  done
  rm -rf "$src" "$UHOME/rootfs.sqfs" "$UHOME/.microsandbox"
}

test_setup_twice_leaves_one_block_per_rc_file() {
  need_user || return
  make_dist || return
  local h=$TMP/users/twice f
  new_home "$h"
  cp /etc/skel/.bashrc /etc/skel/.profile "$h/"
  printf 'echo bash-login\n' > "$h/.bash_profile"
  # A .zshrc with an old msb block in the middle and no newline at its end; fish's.
  printf 'export A=1\n%s\nold msb line\n# <<< msb <<<\nexport B=2' "$BEGIN" > "$h/.zshrc"
  mkdir -p "$h/.config/fish" && printf 'set -x C 3\n' > "$h/.config/fish/config.fish"
  if [ "$(id -u)" = 0 ]; then chown -R "$USER_NAME:" "$h"; fi
  for f in .bashrc .profile .bash_profile .config/fish/config.fish; do cp "$h/$f" "$TMP/orig.${f##*/}"; done

  as_user "$h" bash "$E2E_ROOT/scripts/setup.sh" --tarball "$DIST_TAR" > "$TMP/out1" 2> /dev/null
  expect_eq "first run" "$?" 0
  for f in .bashrc .profile .bash_profile .zshrc .config/fish/config.fish; do cp "$h/$f" "$TMP/first.${f##*/}"; done
  as_user "$h" bash "$E2E_ROOT/scripts/setup.sh" --tarball "$DIST_TAR" > "$TMP/out2" 2> /dev/null
  expect_eq "second run" "$?" 0
  expect_eq "the second run says so" "$(grep -c 'already has it' "$TMP/out2")" 5
  for f in .bashrc .profile .bash_profile .zshrc .config/fish/config.fish; do
    expect_eq "$f: one block" "$(blocks "$h/$f")" 1
    cmp -s "$h/$f" "$TMP/first.${f##*/}" || fail "$f: the second run changed it"
  done
  for f in .bashrc .profile .bash_profile .config/fish/config.fish; do
    expect_eq "$f: without the block, as it was" "$(without_blocks "$h/$f")" "$(cat "$TMP/orig.${f##*/}")"
  done
  expect_eq ".zshrc: the old block replaced in place" "$(without_blocks "$h/.zshrc")" $'export A=1\nexport B=2'
  expect_eq ".zshrc: the block where the old one was" "$(sed -n 2p "$h/.zshrc")" "$BEGIN"
  # shellcheck disable=SC2016 # literally $HOME and $PATH
  expect_match "fish: its own syntax" "$(cat "$h/.config/fish/config.fish")" \
    'if not contains -- "\$HOME/\.microsandbox/bin" \$PATH'

  # The blocks work in the shells: sh as a login shell, and zsh and fish where installed.
  expect_eq "sh reading .profile" "$(as_user "$h" sh -c '. ~/.profile; command -v msb')" "$h/.microsandbox/bin/msb"
  if command -v zsh > /dev/null; then
    expect_eq "zsh -i" "$(as_user "$h" zsh -i -c 'command -v msb' 2> /dev/null)" "$h/.microsandbox/bin/msb"
  fi
  if command -v fish > /dev/null; then
    expect_eq "fish" "$(as_user "$h" fish -c 'command -v msb' 2> /dev/null)" "$h/.microsandbox/bin/msb"
  fi
}

test_setup_refuses_a_corrupted_tarball_and_installs_nothing() {
  if [ "$(id -u)" = 0 ]; then need_user || return; fi
  make_dist || return
  local h=$TMP/users/corrupt tb=${DIST_TAR##*/}
  new_home "$h"
  touch "$TMP/before-corrupt"
  mkdir -p "$TMP/bad" && chmod 755 "$TMP/bad"
  cp "$DIST_TAR" "$DIST_TAR.sha256" "$TMP/bad/"
  chmod 644 "$TMP/bad"/*
  # The control: the same copy, intact, installs.
  new_home "$h-ok"
  as_user "$h-ok" bash "$E2E_ROOT/scripts/setup.sh" --tarball "$TMP/bad/$tb" > "$TMP/out" 2> /dev/null
  expect_eq "the intact copy installs" "$?" 0
  [ -x "$h-ok/.microsandbox/bin/msb" ] || fail "the intact copy installed msb"
  rm -rf "$h-ok"
  # One byte flipped (writing a fixed byte would change nothing where it already was).
  python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[4096] ^= 0xFF
open(p, "wb").write(b)' "$TMP/bad/$tb"
  chmod 644 "$TMP/bad"/*
  as_user "$h" bash "$E2E_ROOT/scripts/setup.sh" --tarball "$TMP/bad/$tb" > "$TMP/out" 2> "$TMP/err"
  expect_eq "refused" "$?" 1
  expect_eq "nothing on stdout" "$(cat "$TMP/out")" ""
  expect_eq "one line on stderr" "$(grep -c '' "$TMP/err")" 1
  expect_match "it names the mismatch" "$(cat "$TMP/err")" "^setup: $TMP/bad/$tb: sha256 mismatch .*; nothing installed$"
  expect_eq "nothing installed, no rc file touched" "$(ls -A "$h")" ""

  # Without a .sha256, a truncated tarball fails to unpack: nothing installed either.
  rm -f "$TMP/bad/$tb.sha256"
  head -c 100000 "$DIST_TAR" > "$TMP/bad/$tb"
  as_user "$h" bash "$E2E_ROOT/scripts/setup.sh" --tarball "$TMP/bad/$tb" > "$TMP/out" 2> "$TMP/err"
  expect_eq "a truncated tarball refused" "$?" 1
  expect_match "it says why" "$(tail -n 1 "$TMP/err")" "^setup: $TMP/bad/$tb: cannot unpack it \(.*\); nothing installed$"
  expect_eq "still nothing installed" "$(ls -A "$h")" ""
  expect_eq "no unpacked leftovers" "$(find /tmp -maxdepth 1 -name 'msb-setup.*' -newer "$TMP/before-corrupt")" ""
  rm -rf "$TMP/bad"
}

test_setup_from_source_prints_the_apt_line_for_missing_packages() {
  local t=$TMP/fake
  rm -rf "$t" && mkdir -p "$t/scripts"
  cp "$E2E_ROOT/scripts/setup.sh" "$t/scripts/"
  # shellcheck disable=SC2016 # a script's text
  printf '#!/bin/sh\n[ "$1" = --list ] && echo "libfoo-dev qemu-utils"\n' > "$t/scripts/deps.sh"
  printf 'all:\n\ttouch built\n' > "$t/Makefile"
  chmod 755 "$t/scripts/deps.sh"
  rm -rf "$TMP/fake-home" && mkdir "$TMP/fake-home"
  env -i HOME="$TMP/fake-home" PATH=/usr/bin:/bin bash "$t/scripts/setup.sh" > "$TMP/out" 2> "$TMP/err"
  expect_eq "refused" "$?" 1
  expect_match "the exact apt line" "$(cat "$TMP/err")" \
    $'\n  sudo apt-get install -y --no-install-recommends libfoo-dev qemu-utils$'
  [ ! -e "$t/built" ] || fail "make ran anyway"
  expect_eq "nothing installed" "$(ls -A "$TMP/fake-home")" ""
  rm -rf "$t" "$TMP/fake-home"
}

test_setup_from_source_installs_this_build() {
  local h=$TMP/src-home before
  before=$(stat -c %y "$MSB")
  rm -rf "$h" && mkdir -p "$h"
  env -i HOME="$h" PATH=/usr/bin:/bin BUILD="$BUILD" bash "$E2E_ROOT/scripts/setup.sh" > "$TMP/out" 2> "$TMP/err"
  expect_eq "setup.sh from the source tree" "$?" 0
  expect_eq "the build is reused, not relinked" "$(stat -c %y "$MSB")" "$before"
  cmp -s "$h/.microsandbox/bin/msb" "$MSB" || fail "bin/msb is the build's"
  cmp -s "$h/.microsandbox/lib/vmlinux" "$BUILD/vmlinux" || fail "lib/vmlinux is the build's"
  cmp -s "$h/.microsandbox/lib/initrd.cpio" "$BUILD/initrd.cpio" || fail "lib/initrd.cpio is the build's"
  expect_eq "rc files" "$(blocks "$h/.bashrc") $(blocks "$h/.profile")" "1 1"
  rm -rf "$h"
}


# self_home NAME: a new home for as_user with the shells' files a user might have
# (kept in $TMP/NAME.orig/ as they were), and msb installed there by setup.sh.
self_home() {
  local h=$TMP/users/$1 f
  new_home "$h"
  printf 'export A=1\n' > "$h/.bashrc"
  printf 'echo profile\n' > "$h/.profile"
  printf 'echo bash-login\n' > "$h/.bash_profile"
  printf 'export Z=1\n' > "$h/.zshrc"
  mkdir -p "$h/.config/fish" && printf 'set -x C 3\n' > "$h/.config/fish/config.fish"
  if [ "$(id -u)" = 0 ]; then chown -R "$USER_NAME:" "$h"; fi
  rm -rf "$TMP/$1.orig" && cp -a "$h" "$TMP/$1.orig"
  as_user "$h" bash "$E2E_ROOT/scripts/setup.sh" --tarball "$DIST_TAR" > /dev/null 2> "$TMP/err" ||
    { fail "setup.sh: $(cat "$TMP/err")"; return 1; }
  for f in .bashrc .profile .bash_profile .zshrc .config/fish/config.fish; do
    expect_eq "setup.sh gave $f a block" "$(blocks "$h/$f")" 1
  done
}

# same_rc_files NAME: the shells' files are byte for byte what they were before setup.sh.
same_rc_files() {
  local f
  for f in .bashrc .profile .bash_profile .zshrc .config/fish/config.fish; do
    cmp -s "$TMP/users/$1/$f" "$TMP/$1.orig/$f" || fail "$f is not as it was before setup.sh"
  done
}

test_self_uninstall_yes_removes_the_install_the_path_blocks_and_all_data() {
  if [ "$(id -u)" = 0 ]; then need_user || return; fi
  make_dist || return
  local h=$TMP/users/self-yes m out
  m=$h/.microsandbox
  self_home self-yes || return
  as_user "$h" "$m/bin/msb" install --no-pull -n someapp example.test/x:1 > /dev/null 2>&1
  expect_eq "msb install" "$?" 0
  { [ -x "$m/bin/someapp" ] && [ -f "$m/aliases/someapp.json" ]; } || fail "msb install made no command"
  as_user "$h" "$m/bin/msb" volume create v1 > /dev/null 2>&1 || fail "volume create"

  out=$(as_user "$h" "$m/bin/msb" self uninstall -y 2> "$TMP/err" < /dev/null)
  expect_eq "msb self uninstall -y" "$?" 0
  expect_eq "no warning" "$(cat "$TMP/err")" ""
  expect_eq "what it says it removed" "$out" "removed the PATH block from $h/.bashrc
removed the PATH block from $h/.profile
removed the PATH block from $h/.bash_profile
removed the PATH block from $h/.zshrc
removed the PATH block from $h/.config/fish/config.fish
removed command someapp ($m/bin/someapp)
removed $m/aliases
removed $m/lib/vmlinux
removed $m/lib/initrd.cpio
removed $m/bin/msb
removed $m/releases
removed $m (all sandboxes, images, volumes and snapshots)"
  same_rc_files self-yes
  [ ! -e "$m" ] || fail "$m is still there: $(find "$m" | head)"
  expect_eq "nothing else in the home changed" "$(diff -r "$h" "$TMP/self-yes.orig" 2>&1)" ""
  rm -rf "$h" "$TMP/self-yes.orig"
}

test_self_uninstall_keeps_the_data_with_keep_data_or_without_a_terminal() {
  if [ "$(id -u)" = 0 ]; then need_user || return; fi
  make_dist || return
  local h=$TMP/users/self-keep m out
  m=$h/.microsandbox
  self_home self-keep || return
  as_user "$h" "$m/bin/msb" volume create v1 > /dev/null 2>&1 || fail "volume create"
  as_user "$h" "$m/bin/msb" install --no-pull -n someapp example.test/x:1 > /dev/null 2>&1 ||
    fail "msb install"
  out=$(as_user "$h" "$m/bin/msb" self uninstall --keep-data 2> "$TMP/err" < /dev/null)
  expect_eq "msb self uninstall --keep-data" "$?" 0
  expect_eq "no warning" "$(cat "$TMP/err")" ""
  expect_match "the binary, then what it kept" "$out" \
    $'\nremoved '"$m"$'/bin/msb\nremoved '"$m"$'/releases\nkept '"$m"': sandboxes, images, volumes and snapshots \(to remove them: rm -rf '"$m"'\)$'
  same_rc_files self-keep
  expect_eq "the volume is kept, the install is gone" "$(cd "$m" && find . -maxdepth 2 | sort | tr '\n' ' ')" \
    ". ./volumes ./volumes/v1 "

  # Installed again: no -y, no --keep-data and no terminal to ask on: the data stays.
  as_user "$h" bash "$E2E_ROOT/scripts/setup.sh" --tarball "$DIST_TAR" > /dev/null 2>&1 ||
    fail "setup.sh again"
  as_user "$h" "$m/bin/msb" volume ls -q > "$TMP/out" 2>&1
  expect_eq "the reinstalled msb has the kept volume" "$(cat "$TMP/out")" v1
  as_user "$h" mkdir -p "$m/volumes/v2"
  out=$(as_user "$h" "$m/bin/msb" self uninstall 2> "$TMP/err" < /dev/null)
  expect_eq "msb self uninstall without a terminal" "$?" 0
  expect_match "it says why it kept the data" "$(tail -n 1 <<< "$out")" \
    "^kept $m: .*\(no terminal to ask on; to remove them too: rm -rf $m\)$"
  { [ -d "$m/volumes/v1" ] && [ -d "$m/volumes/v2" ]; } || fail "the data went without a yes"
  { [ ! -e "$m/bin/msb" ] && [ ! -e "$m/lib/vmlinux" ]; } || fail "the install is still there"
  rm -rf "$h" "$TMP/self-keep.orig"
}

test_self_uninstall_refuses_an_msb_it_did_not_install_and_bad_flags() {
  local h=$TMP/self-build
  rm -rf "$h" && mkdir -p "$h/.microsandbox/lib"
  printf 'export A=1\n%s\nexport PATH=x\n# <<< msb <<<\n' "$BEGIN" > "$h/.bashrc"
  touch "$h/.microsandbox/lib/vmlinux"
  cp -a "$h" "$TMP/self-build.orig"
  out=$(env -i HOME="$h" PATH=/usr/bin:/bin "$MSB" self uninstall -y 2> "$TMP/err")
  expect_eq "the build tree's msb is refused" "$?" 125
  expect_eq "nothing on stdout" "$out" ""
  expect_one_error_line "$(cat "$TMP/err")" \
    "msb self uninstall removes a setup.sh install; this msb is $(realpath "$MSB") \(remove it with your package manager / make uninstall\)$"
  expect_eq "nothing touched" "$(diff -r "$h" "$TMP/self-build.orig" 2>&1)" ""

  out=$(env -i HOME="$h" PATH=/usr/bin:/bin "$MSB" self uninstall --bogus 2> "$TMP/err")
  expect_eq "a bad flag" "$?" 125
  expect_one_error_line "$(cat "$TMP/err")" "self uninstall: unknown flag --bogus"
  out=$(env -i HOME="$h" PATH=/usr/bin:/bin "$MSB" self frobnicate 2> "$TMP/err")
  expect_eq "an unknown subcommand" "$?" 125
  expect_one_error_line "$(cat "$TMP/err")" "self: unknown command \"frobnicate\""
  expect_eq "still nothing touched" "$(diff -r "$h" "$TMP/self-build.orig" 2>&1)" ""
  rm -rf "$h" "$TMP/self-build.orig"
}

# --- make deb ---------------------------------------------------------------------
# The clean root is apt's view of a system with nothing installed (an empty dpkg
# status): apt must find every dependency in Debian's archive. Then the package is
# installed on this host with apt-get, which must fetch nothing more, and an ordinary
# user runs a sandbox with /usr/bin/msb, nothing else done.
test_make_deb_depends_right_and_apt_installs_it_to_run_a_sandbox() {
  if [ "$(id -u)" != 0 ]; then
    skip "installing a .deb needs root"
    return
  fi
  if [ -n "$MAKE_SAN" ]; then
    skip "a package holds the release build; the normal pass makes and installs it"
    return
  fi
  need_user || return
  if ! apt-cache policy qemu-system-x86 2> /dev/null | grep -q 'Candidate: [0-9]'; then
    skip "no apt package lists on this host (apt-get update)"
    return
  fi
  local deb depends lib pkg prog out
  # shellcheck disable=SC2086 # $MAKE_SAN: a word or nothing
  deb=$(make -s -C "$E2E_ROOT" BUILD="$BUILD" $MAKE_SAN DISTDIR="$TMP/deb" deb 2> "$TMP/err" | tail -n 1)
  [ -f "$deb" ] || { fail "make deb: $(cat "$TMP/err")"; return; }
  expect_match "its name" "${deb##*/}" "^msb_[0-9]+\.[0-9]+\.[0-9]+[^_]*_$(dpkg --print-architecture)\.deb$"
  depends=", $(dpkg-deb -f "$deb" Depends),"
  # Every library msb links, and every program it runs, comes with a package it names.
  for lib in $(readelf -d "$BUILD/msb" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
    pkg=$(dpkg -S "*/$lib" 2> /dev/null | grep -v -- '-dbg' | awk -F: 'NR == 1 { print $1 }')
    expect_match "$lib: its package in Depends" "$depends" ", $pkg( \([^)]*\))?,"
  done
  for prog in qemu-system-x86_64 qemu-img tar2sqfs mkfs.ext4; do
    pkg=$(dpkg -S "bin/$prog" 2> /dev/null | awk -F: 'NR == 1 { print $1 }')
    expect_match "$prog: its package in Depends" "$depends" ", $pkg( \([^)]*\))?,"
  done
  expect_match "QEMU new enough for microvm and -netdev stream" "$depends" ", qemu-system-x86 \(>= 1:7.2\),"

  : > "$TMP/empty-status"
  apt-get -s -o Dir::State::status="$TMP/empty-status" -o Debug::NoLocking=1 \
    -o APT::Install-Recommends=false install "$deb" > "$TMP/sim" 2>&1
  expect_eq "apt resolves it on a root with nothing installed$(tail -n 3 "$TMP/sim")" "$?" 0
  for pkg in msb qemu-system-x86 qemu-utils squashfs-tools-ng libcurl4 libarchive13; do
    grep -q "^Inst $pkg " "$TMP/sim" || fail "apt would not install $pkg on a clean root"
  done

  # This host has what it needs already (deps.sh): apt must install msb and fetch nothing.
  apt-get -s install "$deb" > "$TMP/sim" 2>&1
  expect_eq "here, apt installs msb alone" "$(grep '^Inst ' "$TMP/sim" | cut -d' ' -f2)" msb
  [ "$(grep -c '^Inst ' "$TMP/sim")" = 1 ] || return
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$deb" > "$TMP/apt" 2>&1 ||
    { fail "apt-get install ./$(basename "$deb"): $(tail -n 3 "$TMP/apt")"; return; }
  user_copy "$SQFS"
  out=$(runuser -u "$USER_NAME" -- env -i HOME="$UHOME" PATH=/usr/bin:/bin \
    sh -c 'command -v msb; msb --version | grep "^kernel:" | sed "s/.*(//"; msb run --rootfs ~/rootfs.sqfs -- echo hi' 2>&1)
  expect_eq "the package's msb, its kernel, a sandbox" "$out" "/usr/bin/msb
/usr/lib/msb/vmlinux)
hi"
  expect_match "man msb" "$(MANWIDTH=80 man -P cat msb 2> /dev/null | head -n 5)" "msb"
  DEBIAN_FRONTEND=noninteractive apt-get purge -y msb > "$TMP/apt" 2>&1 || fail "apt-get purge msb: $(tail -n 3 "$TMP/apt")"
  { [ ! -e /usr/bin/msb ] && [ ! -e /usr/lib/msb ]; } || fail "apt-get purge left files"
}

# --- msb self update ------------------------------------------------------------
# Releases 8.0.0, 9.0.0 and 9.1.0 of this build, each its own update channel, signed
# with the test key that only these releases trust (make_release).
CH=$TMP/channels
ARCH=$(uname -m)
channels() {
  local v
  for v in 8.0.0 9.0.0 9.1.0; do
    [ -f "$CH/$v/latest-linux-$ARCH.json.sig" ] || make_release "$v" "$CH/$v" > /dev/null || return 1
  done
  chmod -R a+rX "$CH"
}

# upd_home NAME [URL]: a new home with release 9.0.0 installed by setup.sh and its
# channel URL (default: 9.1.0's) in config.json. Sets H (the home) and M (its MSB_HOME).
upd_home() {
  H=$TMP/users/$1 M=$TMP/users/$1/.microsandbox
  new_home "$H"
  as_user "$H" bash "$E2E_ROOT/scripts/setup.sh" --tarball "$CH/9.0.0/msb-9.0.0-linux-$ARCH.tar.gz" \
    > /dev/null 2> "$TMP/err" || { fail "setup.sh 9.0.0: $(cat "$TMP/err")"; return 1; }
  upd_url "${2:-$CH/9.1.0}"
}
upd_url() { as_user "$H" sh -c "printf '{\"update\": {\"url\": \"%s\"}}\n' '$1' > '$M/config.json'"; }

# umsb ARGS...: the installed msb as the user, into OUT, ERR and RC.
umsb() {
  OUT=$(as_user "$H" "$M/bin/msb" "$@" 2> "$TMP/err" < /dev/null)
  RC=$?
  ERR=$(cat "$TMP/err")
}

# installed: the version the installed msb says it is, after checking that its kernel
# and initramfs are the ones of its own release.
installed() {
  local exe rel
  exe=$(readlink -f "$M/bin/msb") rel=${exe%/bin/msb}
  [ "$(readlink -f "$M/lib/vmlinux")" = "$rel/lib/vmlinux" ] || fail "lib/vmlinux is not $rel's"
  as_user "$H" "$M/bin/msb" --version 2>&1 | sed -n '1s/^msb //p; s/^kernel: Linux [^ ]* (\(.*\))$/kernel=\1/p' |
    sed "s,=$rel/lib/vmlinux$,=own," | tr '\n' ' '
}

# rels: what releases/ holds, release directories by version alone.
rels() { find "$M/releases" -mindepth 1 -maxdepth 1 -printf '%f\n' | sed 's/-[0-9a-f]\{12\}$//' | sort | tr '\n' ' '; }

# state: everything under releases/ and the links into it (nothing may change on a refusal).
state() { (cd "$M" && find bin lib releases -printf '%p %y %s %l\n' | sort); }

test_self_update_installs_the_new_release_then_says_up_to_date_and_reinstalls_with_f() {
  if [ "$(id -u)" = 0 ]; then need_user || return; fi
  channels || return
  upd_home upd-good || return
  expect_eq "9.0.0 installed" "$(installed)" "9.0.0 kernel=own "
  umsb self update
  expect_eq "self update" "$RC" 0
  expect_eq "what it says" "$OUT" "msb updated: 9.0.0 -> 9.1.0 ($M/releases/current; 'msb self update --rollback' goes back)"
  expect_eq "no warning" "$ERR" ""
  expect_eq "9.1.0 runs, with its own kernel" "$(installed)" "9.1.0 kernel=own "
  expect_match "the release's directory" "$(readlink "$M/releases/current")" '^9\.1\.0-[0-9a-f]{12}$'
  expect_match "the previous one is kept" "$(readlink "$M/releases/previous")" '^9\.0\.0-[0-9a-f]{12}$'
  expect_eq "two releases, no leftovers" "$(rels)" \
    ".lock 9.0.0 9.1.0 current previous "
  umsb self update
  expect_eq "again" "$RC$OUT$ERR" "0msb 9.1.0 is up to date (-f to install it again)"
  umsb self upgrade -f
  expect_eq "upgrade -f" "$RC$OUT$ERR" "0msb 9.1.0 reinstalled ($M/releases/current)"
  expect_eq "still 9.1.0" "$(installed)" "9.1.0 kernel=own "
  expect_eq "no leftovers of the reinstall" "$(rels)" \
    ".lock 9.0.0 9.1.0 current previous "
  rm -rf "$H"
}

test_self_update_over_http_from_a_local_server() {
  if [ "$(id -u)" = 0 ]; then need_user || return; fi
  channels || return
  local port pid
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 -m http.server --bind 127.0.0.1 --directory "$CH" "$port" > "$TMP/http.log" 2>&1 &
  pid=$!
  wait_until 30 curl -sf -o /dev/null "http://127.0.0.1:$port/9.1.0/latest-linux-$ARCH.json" ||
    { fail "the channel's HTTP server did not come up: $(cat "$TMP/http.log")"; kill "$pid"; return; }
  upd_home upd-http "http://127.0.0.1:$port/9.1.0" || { kill "$pid"; return; }
  umsb self update
  expect_eq "self update over http" "$RC$ERR" 0
  expect_eq "9.1.0 from the server" "$(installed)" "9.1.0 kernel=own "
  upd_url "http://127.0.0.1:$port/none"
  umsb self update
  expect_eq "a channel without a release" "$RC" 125
  expect_one_error_line "$ERR" "update channel: cannot fetch http://127.0.0.1:$port/none/latest-linux-$ARCH.json: The requested URL returned error: 404"
  kill "$pid"
  wait "$pid" 2> /dev/null
  rm -rf "$H"
}

test_self_update_refuses_a_bad_signature_or_digest_and_changes_nothing() {
  if [ "$(id -u)" = 0 ]; then need_user || return; fi
  channels || return
  local bad=$TMP/bad-ch before j=latest-linux-$ARCH.json
  upd_home upd-bad "$bad" || return
  before=$(state)

  # The manifest changed after signing (a bigger size).
  rm -rf "$bad" && cp -a "$CH/9.1.0" "$bad"
  sed -i 's/"size":\([0-9]\)/"size":9\1/' "$bad/$j"
  umsb self update
  expect_eq "a changed manifest" "$RC" 125
  expect_one_error_line "$ERR" "update channel $bad: the manifest's signature does not verify with msb's release key \(a damaged or forged release\); nothing changed"
  # Signed, but with another key.
  cp "$CH/9.1.0/$j" "$bad/$j"
  openssl pkeyutl -sign -inkey "$E2E_ROOT/tests/fixtures/update/other.key" -rawin -in "$bad/$j" -out "$bad/$j.sig"
  umsb self update
  expect_eq "another key's signature" "$RC" 125
  expect_match "the same refusal" "$ERR" "the manifest's signature does not verify"
  # A good manifest, another tarball of the same size under its name (a byte flipped).
  cp "$CH/9.1.0/$j.sig" "$bad/$j.sig"
  python3 -c 'import sys
f = open(sys.argv[1], "r+b"); f.seek(4096); b = f.read(1); f.seek(4096); f.write(bytes([b[0] ^ 255]))' \
    "$bad/msb-9.1.0-linux-$ARCH.tar.gz"
  umsb self update
  expect_eq "a tarball that is not the signed one" "$RC" 125
  expect_one_error_line "$ERR" "update channel: msb-9.1.0-linux-$ARCH.tar.gz does not match the signed manifest \(sha256:[0-9a-f]{64}, [0-9]+ bytes; the manifest says sha256:[0-9a-f]{64}, [0-9]+ bytes\); nothing changed"
  # A bigger tarball than the manifest says: cut off at the signed size.
  cat "$CH/9.1.0/msb-9.1.0-linux-$ARCH.tar.gz" "$CH/9.1.0/msb-9.1.0-linux-$ARCH.tar.gz" > "$bad/msb-9.1.0-linux-$ARCH.tar.gz"
  umsb self update
  expect_eq "a tarball bigger than signed" "$RC" 125
  expect_one_error_line "$ERR" "update channel: msb-9.1.0-linux-$ARCH.tar.gz is larger than the signed manifest says \([0-9]+ bytes\); nothing changed"
  expect_eq "nothing changed" "$(state)" "$before"
  expect_eq "still 9.0.0" "$(installed)" "9.0.0 kernel=own "

  # The positive control: the same home, the good channel.
  upd_url "$CH/9.1.0"
  umsb self update
  expect_eq "the good channel" "$RC$ERR" 0
  expect_eq "then 9.1.0" "$(installed)" "9.1.0 kernel=own "
  rm -rf "$H" "$bad"
}

test_self_update_refuses_an_older_release_unless_f_and_rolls_back() {
  if [ "$(id -u)" = 0 ]; then need_user || return; fi
  channels || return
  local before
  upd_home upd-old "$CH/8.0.0" || return
  umsb self update --rollback
  expect_eq "nothing to roll back to yet" "$RC" 125
  expect_one_error_line "$ERR" "self update --rollback: there is no previous version to go back to \(it is kept after an update\)"
  before=$(state)
  umsb self update
  expect_eq "an older release" "$RC" 125
  expect_one_error_line "$ERR" "self update: the channel's release 8.0.0 is older than this msb 9.0.0 \(-f installs it anyway; --rollback goes back to the version before\)"
  expect_eq "nothing changed" "$(state)" "$before"
  umsb self update -f
  expect_eq "-f" "$RC$OUT$ERR" "0msb downgraded: 9.0.0 -> 8.0.0 ($M/releases/current; 'msb self update --rollback' goes back)"
  expect_eq "8.0.0 runs" "$(installed)" "8.0.0 kernel=own "
  umsb self update --rollback
  expect_eq "--rollback" "$RC$OUT$ERR" "0msb rolled back: 8.0.0 -> 9.0.0 (again to undo)"
  expect_eq "9.0.0 again" "$(installed)" "9.0.0 kernel=own "
  umsb self update --rollback
  expect_eq "--rollback again undoes it" "$RC$OUT" "0msb rolled back: 9.0.0 -> 8.0.0 (again to undo)"
  expect_eq "8.0.0 again" "$(installed)" "8.0.0 kernel=own "

  # A release whose msb still runs is kept past its turn; then it goes.
  local old9 pid
  old9=$(basename "$(readlink -f "$M/releases/previous")")
  sleep 600 | as_user "$H" "$M/releases/$old9/bin/msb" image load -i - > /dev/null 2>&1 &
  pid=$!
  wait_until 20 pgrep -f "^$M/releases/$old9/bin/msb image load" > /dev/null || fail "the old msb did not start"
  upd_url "$CH/9.1.0"
  umsb self update
  expect_eq "an update while 9.0.0's msb runs" "$RC$ERR" 0
  [ -d "$M/releases/$old9" ] || fail "the running release was swept"
  pkill -f "^$M/releases/$old9/bin/msb image load"
  pkill -f "^sleep 600$" 2> /dev/null
  wait "$pid" 2> /dev/null
  umsb self update -f
  expect_eq "the next update" "$RC$ERR" 0
  [ ! -e "$M/releases/$old9" ] || fail "the release nothing runs any more was kept"

  # A build from a git checkout after a release is newer than that release.
  make_release 9.1.0-2-gabcdef1 "$CH/9.1.0-2-gabcdef1" > /dev/null || return
  upd_url "$CH/9.1.0-2-gabcdef1"
  umsb self update
  expect_eq "to a build after 9.1.0" "$RC$OUT" "0msb updated: 9.1.0 -> 9.1.0-2-gabcdef1 ($M/releases/current; 'msb self update --rollback' goes back)"
  upd_url "$CH/9.1.0"
  umsb self update
  expect_eq "9.1.0 is older than a build after it" "$RC" 125
  expect_one_error_line "$ERR" "self update: the channel's release 9.1.0 is older than this msb 9.1.0-2-gabcdef1 \\(-f installs it anyway; --rollback goes back to the version before\\)"
  rm -rf "$H"
}

test_self_update_killed_at_every_stage_leaves_a_working_msb() {
  if [ "$(id -u)" = 0 ]; then need_user || return; fi
  channels || return
  local s want got
  for s in downloaded unpacking unpacked checked placed previous switched linked-bin linked; do
    upd_home upd-kill || return
    OUT=$(as_user "$H" env MSB_TEST_UPDATE_KILL="$s" "$M/bin/msb" self update 2>&1)
    expect_eq "killed at $s" "$?" 137
    case $s in
      switched | linked-bin | linked) want=9.1.0 ;;
      *) want=9.0.0 ;;
    esac
    got=$(installed)
    expect_eq "after a kill at $s, a whole msb" "$got" "$want kernel=own "
    # The next update finishes the job and sweeps what the killed one left.
    umsb self update
    case $want in
      9.0.0) expect_eq "then the update ($s)" "$RC$ERR" 0 ;;
      *) expect_eq "then the update ($s)" "$RC$OUT$ERR" "0msb 9.1.0 is up to date (-f to install it again)" ;;
    esac
    expect_eq "9.1.0 at last ($s)" "$(installed)" "9.1.0 kernel=own "
    expect_eq "no leftovers ($s)" "$(rels)" ".lock 9.0.0 9.1.0 current previous "
  done

  # A real kill -9 from outside, while the download hangs (the tarball is a FIFO).
  upd_home upd-kill "$TMP/fifo-ch" || return
  rm -rf "$TMP/fifo-ch" && cp -a "$CH/9.1.0" "$TMP/fifo-ch"
  rm -f "$TMP/fifo-ch/msb-9.1.0-linux-$ARCH.tar.gz" && mkfifo "$TMP/fifo-ch/msb-9.1.0-linux-$ARCH.tar.gz"
  chmod a+rw "$TMP/fifo-ch/msb-9.1.0-linux-$ARCH.tar.gz"
  as_user "$H" "$M/bin/msb" self update > /dev/null 2>&1 &
  local pid=$!
  wait_until 30 sh -c "find '$M/releases' -name '.dl-*' | grep -q ." || fail "the update did not start downloading"
  pkill -9 -f "^$M/bin/msb self update" || fail "no msb self update to kill"
  wait "$pid" 2> /dev/null
  expect_eq "after kill -9 mid-download" "$(installed)" "9.0.0 kernel=own "
  upd_url "$CH/9.1.0"
  umsb self update
  expect_eq "the next update" "$RC$ERR" 0
  expect_eq "no leftover download" "$(rels)" ".lock 9.0.0 9.1.0 current previous "
  rm -rf "$H" "$TMP/fifo-ch"
}

test_self_update_bad_input_is_one_line_and_a_build_tree_msb_is_refused() {
  if [ "$(id -u)" = 0 ]; then need_user || return; fi
  channels || return
  upd_home upd-input || return
  umsb self update --bogus
  expect_eq "an unknown flag" "$RC" 125
  expect_one_error_line "$ERR" "self update: unknown flag --bogus \(see 'msb self update --help'\)"
  umsb self update now
  expect_eq "an argument" "$RC" 125
  expect_one_error_line "$ERR" "self update: unexpected argument \"now\" \(it takes only flags\)"
  umsb self update --rollback -f
  expect_eq "--rollback -f" "$RC" 125
  expect_one_error_line "$ERR" "self update: --rollback and -f do not go together \(pick one\)"
  upd_url "channels/9.1.0"
  umsb self update
  expect_eq "a relative url" "$RC" 125
  expect_one_error_line "$ERR" "config.json: update.url \"channels/9.1.0\" is neither an absolute directory nor a file://, http:// or https:// URL"
  as_user "$H" sh -c "echo '{\"update\": {\"url\": 7}}' > '$M/config.json'"
  umsb self update
  expect_one_error_line "$ERR" "config.json: update.url must be a string \(a directory, or an http\(s\):// URL\)"
  OUT=$(env -i HOME="$H" PATH=/usr/bin:/bin "$MSB" self update 2> "$TMP/err")
  expect_eq "the build tree's msb" "$?" 125
  expect_one_error_line "$(cat "$TMP/err")" "msb self update updates a setup.sh install; this msb is $(realpath "$MSB") \(run the installed one instead; update it with your package manager, or git pull and make\)"
  rm -rf "$H"
}

run_tests
