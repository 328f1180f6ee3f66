#!/usr/bin/env bash
# Packages what cargo built in PROFILE (release: what ships; debug: make package-test) as
# Debian packages in OUTDIR: carebridge-app through Tauri's bundler (deb), carebridge-node with
# node-deb.sh. Both programs go in without their debug information, as Debian's own do: a
# stripped copy of the app is bundled, so cargo's outputs stay as built.
# usage: scripts/package/build.sh debug|release OUTDIR
set -euo pipefail
umask 0022
profile=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
case $profile in
debug) bundle_flags=(--debug) ;;
release) bundle_flags=() ;;
*) echo "usage: $0 debug|release OUTDIR" >&2; exit 2 ;;
esac
mkdir -p "$out"
rm -f "$out"/*.deb

"$here/node-deb.sh" "$target/$profile/carebridge-node" "$out" >/dev/null

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/$profile"
objcopy --strip-debug "$target/$profile/carebridge-app" "$scratch/$profile/carebridge-app"
# Depends: tauri.conf.json's own (what is not a linked library) and the libraries the app links
# to, with the versions it was built against (Tauri's bundler knows WebKitGTK and GTK only).
depends=$(
	jq -r '.bundle.linux.deb.depends[]' "$repo/tauri.conf.json"
	"$here/shlibs-depends.sh" "$scratch/$profile/carebridge-app"
)
# The bundler names the package, its file and the staff app's desktop entry after productName;
# "CareBridge" would make the package care-bridge. The program itself is built already, with the
# name it shows.
config=$(jq -Rn '{productName: "carebridge-app", bundle: {linux: {deb: {depends: [inputs]}}}}' <<<"$depends")
# The bundler reads the program from the target directory cargo metadata names: the scratch one.
(cd "$repo" && CARGO_TARGET_DIR=$scratch ui/node_modules/.bin/tauri bundle "${bundle_flags[@]}" \
	--ci --bundles deb --config "$config")
for deb in "$scratch/$profile/bundle/deb/"*.deb; do
	f() { dpkg-deb --field "$deb" "$1"; }
	cp "$deb" "$out/$(f Package)_$(f Version)_$(f Architecture).deb"
done
ls "$out"/*.deb
