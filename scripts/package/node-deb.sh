#!/usr/bin/env bash
# Builds carebridge-node's Debian package from a built binary: the files staged as they are
# installed, then dpkg-deb. Everything it ships is in packaging/node/ (unit, maintainer scripts,
# README.Debian); the binary's debug information is left out, as Debian's own packages do.
# usage: scripts/package/node-deb.sh BINARY OUTDIR   (prints the .deb's path)
set -euo pipefail
umask 0022
bin=$1
out=$2
repo=$(cd "$(dirname "$0")/../.." && pwd)
src=$repo/packaging/node

# `make build` puts a node with the demo (a seeder of made-up patients) at the same path.
if "$bin" demo --help >/dev/null 2>&1; then
	echo "$bin was built with the demo feature: build it with cargo build -p carebridge-server" >&2
	exit 1
fi

version=$(cargo metadata --no-deps --locked --format-version 1 --manifest-path "$repo/Cargo.toml" |
	jq -r '.packages[] | select(.name == "carebridge-server") | .version')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/carebridge-node

install -d -m 0755 "$pkg/usr/bin"
objcopy --strip-debug "$bin" "$pkg/usr/bin/carebridge-node"
chmod 0755 "$pkg/usr/bin/carebridge-node"
install -D -m 0644 "$src/carebridge-node.service" "$pkg/usr/lib/systemd/system/carebridge-node.service"
install -D -m 0644 "$src/README.Debian" "$pkg/usr/share/doc/carebridge-node/README.Debian"
install -D -m 0644 "$repo/packaging/copyright" "$pkg/usr/share/doc/carebridge-node/copyright"
install -d -m 0755 "$pkg/DEBIAN"
install -m 0755 "$src/postinst" "$src/prerm" "$src/postrm" "$pkg/DEBIAN/"

# The libraries it links to, passwd for useradd in postinst, the fonts reports are printed in.
depends=$("$repo/scripts/package/shlibs-depends.sh" "$pkg/usr/bin/carebridge-node" | paste -sd, | sed 's/,/, /g')
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: carebridge-node
Version: $version
Architecture: $arch
Maintainer: CareBridge <carebridge@localhost>
Section: net
Priority: optional
Depends: $depends, passwd, fonts-dejavu-core
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Description: CareBridge node: an organisation's CareBridge server
 The node of a hospital or an insurer: it keeps the organisation's records in an encrypted
 database, serves the CareBridge desktop apps over HTTP with live updates, keeps a hash-chained
 audit trail, and exchanges signed, sealed messages with partner nodes.
 .
 Runs as the systemd service carebridge-node, sandboxed, as the system user carebridge, once
 initialised: see /usr/share/doc/carebridge-node/README.Debian.
CONTROL

(cd "$pkg" && find usr -type f -exec md5sum {} + >DEBIAN/md5sums)

mkdir -p "$out"
deb=$out/carebridge-node_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null
echo "$deb"
