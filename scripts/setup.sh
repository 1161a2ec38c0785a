#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs msb for the current user, who needs no root: ~/.microsandbox/bin/msb and
# ~/.microsandbox/lib/{vmlinux,initrd.cpio} ($MSB_HOME instead of ~/.microsandbox when
# set), links into releases/ (below), and that bin directory on PATH in the shells'
# configuration.
#
#   scripts/setup.sh                  build this source tree (make) and install the result
#   scripts/setup.sh --tarball FILE   install a release tarball (make dist); checked
#                                     against FILE.sha256 when that file exists
#
# Each shell configuration file gets one block between the lines "# >>> msb >>>" and
# "# <<< msb <<<"; a second run changes nothing, and deleting the block undoes it.
set -euo pipefail

die() {
  echo "setup: $*" >&2
  exit 1
}
say() { echo "setup: $*"; }
warn() { echo "setup: warning: $*" >&2; }

usage() {
  echo "usage: $0 [--tarball FILE]" >&2
  exit 2
}

tarball=
while [ $# -gt 0 ]; do
  case $1 in
    --tarball)
      [ $# -ge 2 ] || usage
      tarball=$2
      shift 2
      ;;
    --tarball=*)
      tarball=${1#--tarball=}
      shift
      ;;
    -h | --help) usage ;;
    *) usage ;;
  esac
done

if [ -z "${HOME:-}" ] || [ ! -d "$HOME" ]; then die "HOME is not set to a directory"; fi
root=${MSB_HOME:-$HOME/.microsandbox}
case $root in
  /*) ;;
  *) root=$PWD/$root ;;
esac
# The directory goes into shell configuration files inside double quotes.
case $root in
  *[\"\$\`\\]* | *$'\n'*) die "$root: a directory with \", \$, \` or \\ in its name cannot go on PATH" ;;
esac
bindir=$root/bin
libdir=$root/lib
user=$(id -un 2> /dev/null || echo "${USER:-you}")

stage=
cleanup() {
  [ -z "$stage" ] || rm -rf "$stage"
}
trap cleanup EXIT

# What to install: NEW_BIN, NEW_KERNEL, NEW_INITRD.
if [ -n "$tarball" ]; then
  [ -f "$tarball" ] || die "$tarball: no such file"
  if [ -f "$tarball.sha256" ]; then
    want=$(awk 'NR == 1 { print $1 }' "$tarball.sha256")
    [[ $want =~ ^[0-9a-f]{64}$ ]] || die "$tarball.sha256: no sha256 in it; nothing installed"
    got=$(sha256sum < "$tarball" | cut -d' ' -f1)
    [ "$got" = "$want" ] ||
      die "$tarball: sha256 mismatch ($got, but $tarball.sha256 says $want); nothing installed"
    say "$tarball: sha256 verified"
  else
    warn "no $tarball.sha256 beside it: not verified"
  fi
  stage=$(mktemp -d "${TMPDIR:-/tmp}/msb-setup.XXXXXX") || die "cannot create a directory in ${TMPDIR:-/tmp}"
  tar -xzf "$tarball" -C "$stage" --no-same-owner 2> "$stage.err" || {
    e=$(grep -m 1 . "$stage.err" || true)
    rm -f "$stage.err"
    die "$tarball: cannot unpack it (${e:-tar failed}); nothing installed"
  }
  rm -f "$stage.err"
  # The release's one top directory (make dist), or the layout itself at the top.
  top=$stage
  [ -e "$top/bin/msb" ] || top=$(find "$stage" -mindepth 1 -maxdepth 1 -type d | head -n 1)
  for f in bin/msb lib/vmlinux lib/initrd.cpio; do
    if [ -z "$top" ] || [ ! -f "$top/$f" ] || [ -L "$top/$f" ]; then
      die "$tarball: no $f in it (not an msb release); nothing installed"
    fi
  done
  NEW_BIN=$top/bin/msb NEW_KERNEL=$top/lib/vmlinux NEW_INITRD=$top/lib/initrd.cpio
else
  src=$(cd "$(dirname "$0")/.." && pwd)
  if [ ! -f "$src/Makefile" ] || [ ! -x "$src/scripts/deps.sh" ]; then
    die "$src is not msb's source tree; use --tarball FILE"
  fi
  missing=$("$src/scripts/deps.sh" --list)
  if [ -n "$missing" ]; then
    echo "setup: building msb needs packages this system lacks; install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends $missing" >&2
    exit 1
  fi
  build=${BUILD:-build}
  case $build in
    /*) ;;
    *) build=$src/$build ;;
  esac
  say "building in $src (make BUILD=$build)"
  make -C "$src" --no-print-directory BUILD="$build" -j"$(nproc)" all ||
    die "the build failed (make in $src)"
  NEW_BIN=$build/msb NEW_KERNEL=$build/vmlinux NEW_INITRD=$build/initrd.cpio
fi

# The install is one directory per release, switched to by one rename (msb self
# update does the same): releases/VERSION-SHA12/{bin/msb,lib/vmlinux,lib/initrd.cpio},
# releases/current (and previous) linking to one; bin/msb and lib/'s files link through
# releases/current. Killed at any point, the msb installed before or this one is there.
reldir=$root/releases

# relink DIR NAME TARGET: DIR/NAME becomes a link to TARGET in one rename.
relink() {
  if ! ln -sfn "$3" "$1/.$2.tmp" || ! mv -fT "$1/.$2.tmp" "$1/$2"; then
    rm -f "$1/.$2.tmp"
    die "cannot link $1/$2"
  fi
}

mkdir -p "$bindir" "$libdir" "$reldir" || die "cannot create $bindir, $libdir and $reldir"
command -v flock > /dev/null || die "flock is missing (sudo apt-get install util-linux)"
exec 9> "$reldir/.lock"
flock -n 9 || die "another setup.sh or msb self update is installing msb here; wait for it"
version=$("$NEW_BIN" --version 2> /dev/null | sed -n '1s/^msb //p') || version=
if [ -z "$version" ] && [ -n "$tarball" ]; then
  version=$(basename "$tarball" | sed -n 's/^msb-\(.*\)-linux-[^-]*\.tar\.gz$/\1/p')
fi
version=${version:-unknown}
# The same name msb self update gives: the version and the tarball's digest (from a
# build: the digest of its three files, so a new kernel alone is a new release).
if [ -n "$tarball" ]; then
  name=$version-$(sha256sum < "$tarball" | cut -c1-12)
else
  name=$version-$(cat "$NEW_BIN" "$NEW_KERNEL" "$NEW_INITRD" | sha256sum | cut -c1-12)
fi
if [ ! -d "$reldir/$name" ]; then
  stage_rel=$(mktemp -d "$reldir/.new-XXXXXX") || die "cannot create a directory in $reldir"
  if ! chmod 755 "$stage_rel" || ! install -D -m 0755 "$NEW_BIN" "$stage_rel/bin/msb" ||
    ! install -D -m 0644 -t "$stage_rel/lib" "$NEW_KERNEL" "$NEW_INITRD" ||
    ! sync "$stage_rel/bin/msb" "$stage_rel/lib/vmlinux" "$stage_rel/lib/initrd.cpio" \
      "$stage_rel/bin" "$stage_rel/lib" "$stage_rel" ||
    ! mv -T "$stage_rel" "$reldir/$name"; then
    rm -rf "$stage_rel"
    die "cannot install $reldir/$name"
  fi
fi
old=$(readlink "$reldir/current" 2> /dev/null) || old=
if [ -n "$old" ] && [ "$old" != "$name" ]; then relink "$reldir" previous "$old"; fi
relink "$reldir" current "$name"
# bin/msb first: the msb it names finds its guest files in its own release.
relink "$bindir" msb ../releases/current/bin/msb
relink "$libdir" vmlinux ../releases/current/lib/vmlinux
relink "$libdir" initrd.cpio ../releases/current/lib/initrd.cpio
sync "$reldir" "$bindir" "$libdir" || true
# Kept: current and previous; leftovers of an install killed half-way go.
prev=$(readlink "$reldir/previous" 2> /dev/null) || prev=
for d in "$reldir"/* "$reldir"/.new-* "$reldir"/.dl-* "$reldir"/.*.tmp; do
  [ -e "$d" ] || [ -L "$d" ] || continue
  case ${d##*/} in
    current | previous | "$name" | "$prev") ;;
    *) rm -rf "$d" ;;
  esac
done
say "installed $libdir/vmlinux and $libdir/initrd.cpio"
if version=$("$bindir/msb" --version 2> /dev/null | head -n 1); then
  say "installed $bindir/msb ($version, in $reldir/$name)"
else
  say "installed $bindir/msb"
  libs=$(ldd "$bindir/msb" 2> /dev/null | awk '/not found/ { printf "%s%s", sep, $1; sep = " " }')
  warn "$bindir/msb does not run here${libs:+ (missing: $libs)}; its libraries: sudo apt-get install -y libjansson4 libcurl4 libarchive13 libsqlite3-0 libssl3 libnghttp2-14"
fi

# What msb runs: QEMU and the image tools (msb also looks in the sbin directories).
need=()
for c in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils tar2sqfs:squashfs-tools-ng mkfs.ext4:e2fsprogs; do
  PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin command -v "${c%%:*}" > /dev/null || need+=("${c#*:}")
done
[ ${#need[@]} -eq 0 ] ||
  warn "msb runs programs this system lacks; install them with: sudo apt-get install -y ${need[*]}"

# PATH in the shells' configuration. $HOME stays a variable in the block when it can.
case $bindir in
  "$HOME"/*) path_expr="\$HOME/${bindir#"$HOME"/}" ;;
  *) path_expr=$bindir ;;
esac
begin='# >>> msb >>>'
end='# <<< msb <<<'
sh_block="$begin
# msb (scripts/setup.sh): its bin directory on PATH. Delete this block to undo.
case \":\${PATH}:\" in *\":$path_expr:\"*) ;; *) export PATH=\"$path_expr:\$PATH\" ;; esac
$end"
fish_block="$begin
# msb (scripts/setup.sh): its bin directory on PATH. Delete this block to undo.
if not contains -- \"$path_expr\" \$PATH
    set -gx PATH \"$path_expr\" \$PATH
end
$end"

# add_block FILE BLOCK: FILE ends up with BLOCK once (a block already there is
# replaced in place, so a second run changes nothing); the rest of FILE is kept.
add_block() {
  local f=$1 block=$2 show=$1 nb ne new
  case $f in "$HOME"/*) show='~'/${f#"$HOME"/} ;; esac
  if [ ! -e "$f" ]; then
    if ! { mkdir -p "$(dirname "$f")" && printf '%s\n' "$block" > "$f"; }; then
      warn "cannot write $show; add $bindir to PATH yourself"
      return 0
    fi
    say "PATH: created $show"
    return 0
  fi
  if [ ! -w "$f" ]; then
    warn "$show is not writable; add $bindir to PATH yourself"
    return 0
  fi
  nb=$(grep -cxF "$begin" "$f" || true)
  ne=$(grep -cxF "$end" "$f" || true)
  if [ "$nb" != "$ne" ]; then
    warn "$show has a '$begin' line without its '$end' (or the reverse); left alone"
    return 0
  fi
  if [ "$nb" = 0 ]; then
    # A file whose last line has no newline gets one first.
    if [ -s "$f" ] && [ -n "$(tail -c 1 "$f")" ]; then echo >> "$f"; fi
    printf '%s\n' "$block" >> "$f"
    say "PATH: added to $show"
    return 0
  fi
  new=$(B=$begin E=$end BLOCK=$block awk '
    $0 == ENVIRON["B"] { skip = 1; if (!done) print ENVIRON["BLOCK"]; done = 1; next }
    skip && $0 == ENVIRON["E"] { skip = 0; next }
    !skip { print }' "$f")
  if [ "$new" = "$(cat "$f")" ]; then
    say "PATH: $show already has it"
  else
    # Written through, not renamed over: a symlinked dotfile stays a symlink.
    printf '%s\n' "$new" > "$f"
    say "PATH: updated the block in $show"
  fi
}

login_shell=$(getent passwd "$user" 2> /dev/null | cut -d: -f7)
login_shell=$(basename "${login_shell:-${SHELL:-/bin/sh}}")

add_block "$HOME/.bashrc" "$sh_block"
add_block "$HOME/.profile" "$sh_block"
# A bash login shell reads the first of these that exists instead of ~/.profile.
for f in "$HOME/.bash_profile" "$HOME/.bash_login"; do
  if [ -e "$f" ]; then
    add_block "$f" "$sh_block"
    break
  fi
done
zshrc=${ZDOTDIR:-$HOME}/.zshrc
if [ "$login_shell" = zsh ] || [ -e "$zshrc" ]; then add_block "$zshrc" "$sh_block"; fi
fish_config=${XDG_CONFIG_HOME:-$HOME/.config}/fish/config.fish
if [ "$login_shell" = fish ] || [ -e "$fish_config" ]; then add_block "$fish_config" "$fish_block"; fi

# Without KVM msb still works, emulated (TCG): correct, but many times slower.
if [ ! -e /dev/kvm ]; then
  warn "/dev/kvm does not exist: no hardware virtualization here (enable it, or load kvm_intel/kvm_amd); msb falls back to TCG emulation, which is much slower"
elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  warn "/dev/kvm is not accessible to $user; fix: sudo usermod -aG kvm $user (then log in again); until then msb falls back to TCG emulation, which is much slower"
fi

if [ "$login_shell" = fish ]; then
  say "done; open a new shell or run: set -gx PATH \"$bindir\" \$PATH"
else
  say "done; open a new shell or run: export PATH=\"$bindir:\$PATH\""
fi
