#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# mkman.sh MSB OUT: msb(1), made from msb's own --help texts (the top level,
# every command, every subcommand), so the manual cannot drift from them.
set -euo pipefail
msb=${1:?usage: mkman.sh MSB OUT}
out=${2:?usage: mkman.sh MSB OUT}
here=$(cd "$(dirname "$0")" && pwd)
version=$("$here/version.sh" 2> /dev/null || "$msb" --version | awk '{print $2}')
date=$(date -u -d "@$(git -C "$here/.." log -1 --format=%ct 2> /dev/null || date +%s)" +%Y-%m-%d)

# roff: backslashes escaped, a line starting with . or ' protected.
roff() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
# The words under "Commands:" in a --help text.
commands_of() { awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1; next } { on = 0 }'; }

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
  printf '.TH MSB 1 "%s" "msb %s" "User Commands"\n' "$date" "$version"
  printf '.SH NAME\nmsb \\- run OCI images and root filesystems as hardware-isolated microVMs\n'
  printf '.SH SYNOPSIS\n.B msb\n.I COMMAND\n.RI [ OPTIONS ]\n'
  printf '.SH DESCRIPTION\n.nf\n'
  "$msb" --help | roff
  printf '.fi\n.SH COMMANDS\n'
  for c in $("$msb" --help | commands_of); do
    printf '.SS msb %s\n.nf\n' "$c"
    help=$("$msb" "$c" --help)
    printf '%s\n' "$help" | roff
    printf '.fi\n'
    for s in $(printf '%s\n' "$help" | commands_of); do
      printf '.SS msb %s %s\n.nf\n' "$c" "$s"
      "$msb" "$c" "$s" --help | roff
      printf '.fi\n'
    done
  done
  cat << 'EOF'
.SH ENVIRONMENT
.TP
.B MSB_HOME
Where msb keeps everything (default \fI~/.microsandbox\fR).
.TP
.B MSB_LIB_DIR
The directory holding the guest kernel and initramfs (default: beside msb, \fI../lib/msb\fR, \fI../lib\fR, then \fI$MSB_HOME/lib\fR).
.TP
.B MSB_ACCEL
\fBkvm\fR or \fBtcg\fR: force the accelerator (default: hardware KVM when usable).
.TP
.B MSB_QEMU
The QEMU binary (default: qemu-system-x86_64 from PATH).
.SH FILES
.TP
.I ~/.microsandbox/bin/
msb and the commands \fBmsb install\fR makes.
.TP
.I ~/.microsandbox/config.json
Registries, credentials helpers and defaults.
.TP
.I ~/.microsandbox/sandboxes/NAME/
A sandbox: its config.json, disk and logs.
.SH EXIT STATUS
The command's own status for run and exec; 125 when msb itself refuses
(bad input, with a one-line message naming the fix); 1 from \fBmsb doctor\fR
when a check failed.
.SH SEE ALSO
\fBqemu-system-x86_64\fR(1), \fBpodman\fR(1)
EOF
} > "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
