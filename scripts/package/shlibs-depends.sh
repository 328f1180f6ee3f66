#!/usr/bin/env bash
# Prints the Debian packages (with minimum versions) whose shared libraries BINARY links to, one
# a line, as dpkg-shlibdeps works them out for a package's ${shlibs:Depends}: from the host's
# installed packages, so the package depends on what it was built against.
# usage: scripts/package/shlibs-depends.sh BINARY
set -euo pipefail
umask 0022
bin=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# dpkg-shlibdeps wants a source package's debian/control beside it; any will do.
mkdir "$work/debian"
printf 'Source: carebridge\n\nPackage: carebridge\nArchitecture: any\n' >"$work/debian/control"
# It warns that the binary is not under debian/<package>/: it is not meant to be.
line=$(cd "$work" && dpkg-shlibdeps -O -e "$bin" 2> >(grep -v 'should already be installed' >&2))
sed -e 's/^shlibs:Depends=//' -e 's/, /\n/g' <<<"$line"
