#!/usr/bin/env bash
# The Debian packages as an operator installs them (`make package-test`, part of `make test`):
# both installed with dpkg into a fresh root, their files, permissions, dependencies, service
# unit and desktop entries checked, the maintainer scripts run against that root (DPKG_ROOT),
# then the installed node initialised as the README says and served until /healthz answers,
# and the installed app started from each desktop entry under Xvfb until its window is drawn
# (screenshots in OUTDIR). Both packages are purged at the end, keeping the node's data.
# Every wait has a deadline (PACKAGE_TEST_DEADLINE seconds); everything started is stopped and
# the root removed on exit, whatever happened.
# usage: scripts/package/test.sh APP_DEB NODE_DEB OUTDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
app_deb=$(realpath "$1")
node_deb=$(realpath "$2")
out=$3
deadline_s=${PACKAGE_TEST_DEADLINE:-60}
mkdir -p "$out"
out=$(realpath "$out")
rm -f "$out"/*.png
# The node reads its options from CAREBRIDGE_* too: none of the caller's.
for v in $(compgen -e | grep '^CAREBRIDGE_' || true); do unset "$v"; done
[ "$(id -u)" = 0 ] || { echo "run as root: dpkg installs into the root with owners, the node runs as its own user" >&2; exit 1; }

for tool in dpkg dpkg-deb dpkg-shlibdeps systemd-analyze desktop-file-validate setpriv Xvfb \
	dbus-daemon xwininfo import convert curl jq objcopy; do
	command -v "$tool" >/dev/null || { echo "$tool is missing: run make deps" >&2; exit 1; }
done

passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() {
	echo "FAILED: $*" >&2
	for log in "$work"/*.log; do
		[ -s "$log" ] && { echo "--- ${log##*/}:" >&2; tail -n 20 "$log" >&2; }
	done
	echo "package-test: $passed passed, 1 failed"
	exit 1
}
# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
# quiet COMMAND...: its output only when it fails.
quiet() {
	local log
	log=$(mktemp)
	"$@" >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; return 1; }
	rm -f "$log"
}
# within DESCRIPTION COMMAND...: waits for the command to succeed, until the deadline.
within() {
	local what=$1 end=$((SECONDS + deadline_s))
	shift
	until "$@"; do
		((SECONDS < end)) || fail "$what (not within ${deadline_s}s)"
		sleep 0.1
	done
	ok "$what"
}

work=$(mktemp -d)
# The node's user must reach its data directory inside the root.
chmod 0755 "$work"
root=$work/root
groups=() # process groups to end on exit (the app and its WebKit children; the node)
bus_pid=
xvfb_pid=
stop_group() { # PGID: TERM, KILL after 10 s, then wait up to 5 s more for the group to be gone
	local end=$((SECONDS + 10)) killed=
	kill -TERM -- "-$1" 2>/dev/null || return 0
	while kill -0 -- "-$1" 2>/dev/null; do
		if ((SECONDS >= end)); then
			[ -z "$killed" ] || { echo "process group $1 outlived KILL" >&2; return 0; }
			kill -KILL -- "-$1" 2>/dev/null || true
			killed=1
			end=$((SECONDS + 5))
		fi
		sleep 0.1
	done
}
cleanup() {
	for g in "${groups[@]}"; do stop_group "$g"; done
	[ -z "$bus_pid" ] || kill "$bus_pid" 2>/dev/null || true
	[ -z "$xvfb_pid" ] || kill "$xvfb_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

field() { dpkg-deb --field "$1" "$2"; }
app_pkg=$(field "$app_deb" Package)
node_pkg=$(field "$node_deb" Package)

# --- The packages themselves --------------------------------------------------------------
host_arch=$(dpkg --print-architecture)
for deb in "$app_deb" "$node_deb"; do
	name=$(field "$deb" Package)
	check "$name: built for this machine ($host_arch)" [ "$(field "$deb" Architecture)" = "$host_arch" ]
	# Every file root's, nothing writable by others: what dpkg will create on a workstation.
	check "$name: every file root:root, none writable by group or others" \
		bash -c '! dpkg-deb --contents "$1" | awk '\''($2 != "root/root" && $2 != "0/0") || substr($1, 6, 1) == "w" || substr($1, 9, 1) == "w"'\'' | grep .' _ "$deb"
done

# The root below has no libraries: the installed programs run against this machine's, so each
# dependency must be met here, at the version the package asks for.
depends_met() { # DEB
	local dep alt name op min have met
	while read -r dep; do
		met=
		while read -r alt; do
			read -r name op min <<<"$(sed -E 's/^ *([^ (]+) *(\(([<>=]+) *([^)]+)\))?.*$/\1 \3 \4/' <<<"$alt")"
			have=$(dpkg-query --show --showformat='${db:Status-Status} ${Version}' "$name" 2>/dev/null || true)
			[ "${have%% *}" = installed ] || continue
			if [ -z "$op" ] || dpkg --compare-versions "${have#* }" "$op" "$min"; then met=1; fi
		done < <(tr '|' '\n' <<<"$dep")
		[ -n "$met" ] || { echo "  not met on this machine: $dep" >&2; return 1; }
	done < <(field "$1" Depends | tr ',' '\n')
}
check "$app_pkg: Depends met on this machine ($(field "$app_deb" Depends))" depends_met "$app_deb"
check "$node_pkg: Depends met on this machine ($(field "$node_deb" Depends))" depends_met "$node_deb"

# --- Installed into a fresh root ----------------------------------------------------------
# An empty dpkg database, and the accounts base-passwd gives every Debian system (root alone).
mkdir -p "$root/etc" "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/log"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
printf 'root:*::\n' >"$root/etc/gshadow"
chmod 0640 "$root/etc/shadow" "$root/etc/gshadow"
host_accounts=$(cat /etc/passwd /etc/group | sha256sum)
# --force-depends: the dependencies are this machine's (checked above), not the root's.
# --force-script-chrootless: dpkg would otherwise chroot into the root to run the maintainer
# scripts, and the root has no shell; the scripts work on $DPKG_ROOT instead.
check "both packages install into a fresh root" \
	quiet dpkg --root="$root" --force-depends --force-script-chrootless --install "$app_deb" "$node_deb"
for p in "$app_pkg" "$node_pkg"; do
	check "$p: configured in the root" \
		[ "$(dpkg --root="$root" --status "$p" | sed -n 's/^Status: //p')" = "install ok installed" ]
done
check "the maintainer scripts left this machine's accounts alone" \
	[ "$(cat /etc/passwd /etc/group | sha256sum)" = "$host_accounts" ]

mode() { stat -c '%a %U:%G' "$1"; }
# Owners by number: the root's own accounts are not this machine's.
nmode() { stat -c '%a %u:%g' "$1"; }
for bin in carebridge-app carebridge-node; do
	check "/usr/bin/$bin: 0755 root:root" [ "$(mode "$root/usr/bin/$bin")" = "755 root:root" ]
done
check "the node runs: --version" bash -c '"$1" --version | grep -qx "carebridge-node $2"' _ \
	"$root/usr/bin/carebridge-node" "$(field "$node_deb" Version)"
check "the node is built without the demo" \
	bash -c '! "$1" --help | grep -qw demo && ! "$1" demo --help >/dev/null 2>&1' _ "$root/usr/bin/carebridge-node"
# Whatever the program links to is in Depends: the libraries' packages, as dpkg-shlibdeps finds
# them, and every library found on this machine.
links_covered() { # DEB BINARY
	local names pkg
	names=$(field "$1" Depends | tr ',|' '\n\n' | awk '{ print $1 }')
	! ldd "$2" | grep 'not found' >&2 || return 1
	while read -r pkg; do
		grep -Fqx "${pkg%% *}" <<<"$names" || { echo "  $2 needs $pkg, not in Depends" >&2; return 1; }
	done < <("$here/shlibs-depends.sh" "$2")
}
check "$app_pkg: Depends covers the libraries it links to" links_covered "$app_deb" "$root/usr/bin/carebridge-app"
check "$node_pkg: Depends covers the libraries it links to" links_covered "$node_deb" "$root/usr/bin/carebridge-node"

# The desktop entries: the staff app's (Tauri's, from packaging/app) and the kiosk's.
apps=$root/usr/share/applications
staff_entry=$(grep -lx 'Exec=carebridge-app' "$apps"/*.desktop || true)
kiosk_entry=$apps/carebridge-kiosk.desktop
check "a desktop entry starts the staff app: Exec=carebridge-app" [ -n "$staff_entry" ]
check "the kiosk's desktop entry: Exec=carebridge-app --kiosk" grep -qx 'Exec=carebridge-app --kiosk' "$kiosk_entry"
for entry in "$staff_entry" "$kiosk_entry"; do
	check "${entry#"$root"}: 0644 root:root, valid" \
		bash -c '[ "$(stat -c "%a %U:%G" "$1")" = "644 root:root" ] && desktop-file-validate "$1"' _ "$entry"
	icon=$(sed -n 's/^Icon=//p' "$entry")
	check "${entry#"$root"}: its icon $icon is installed (32, 128 and 256 px)" bash -c \
		'for s in 32x32 128x128 256x256@2; do [ "$(stat -c %a "$1/usr/share/icons/hicolor/$s/apps/$2.png")" = 644 ] || exit 1; done' \
		_ "$root" "$icon"
done

# The service unit.
unit=$root/usr/lib/systemd/system/carebridge-node.service
check "the unit file: 0644 root:root" [ "$(mode "$unit")" = "644 root:root" ]
setting() { sed -n "s/^$1=//p" "$unit"; }
check "ExecStart serves /etc/carebridge/node.toml" \
	[ "$(setting ExecStart)" = "/usr/bin/carebridge-node serve --config /etc/carebridge/node.toml" ]
for s in User=carebridge Group=carebridge ProtectSystem=strict NoNewPrivileges=yes \
	StateDirectory=carebridge ProtectHome=yes PrivateTmp=yes \
	ConditionPathExists=/etc/carebridge/node.toml; do
	check "the unit sets $s" [ "$(setting "${s%%=*}")" = "${s#*=}" ]
done
# The targets the unit names come with systemd, which the root lacks: this machine's.
mkdir -p "$root/lib/systemd/system"
cp -P /usr/lib/systemd/system/*.target "$root/lib/systemd/system/"
# verify exits 0 on unknown keys and bad values too: it must say nothing at all.
verified=$(systemd-analyze verify --root="$root" --man=no carebridge-node.service 2>&1) || verified+=" (failed)"
check "systemd-analyze verify: the unit is valid in the root${verified:+: $verified}" [ -z "$verified" ]
exposure=$(systemd-analyze security --offline=yes --root="$root" carebridge-node.service 2>/dev/null |
	sed -n 's/.*Overall exposure level for carebridge-node.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security: exposure $exposure, at most 2.0 (OK)" \
	awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }'

# What postinst made, in the root.
account=$(grep '^carebridge:' "$root/etc/passwd" || true)
IFS=: read -r _ _ uid gid _ home shell <<<"$account"
check "postinst: the system user carebridge ($account)" \
	bash -c '(($2 < 1000)) && [ "$3" = /var/lib/carebridge ] && [ "$4" = /usr/sbin/nologin ] && grep -q "^carebridge:x:$5:$" "$1/etc/group"' \
	_ "$root" "${uid:-1000}" "$home" "$shell" "$gid"
check "postinst: /var/lib/carebridge 0700 carebridge's" [ "$(nmode "$root/var/lib/carebridge")" = "700 $uid:$gid" ]
check "postinst: /etc/carebridge 0750 root:carebridge" [ "$(nmode "$root/etc/carebridge")" = "750 0:$gid" ]
check "the service is not enabled on install (it needs init first)" \
	bash -c '! ls "$1"/etc/systemd/system/*.wants/carebridge-node.service 2>/dev/null | grep -q .' _ "$root"

# --- The installed node, set up as README.Debian says -------------------------------------
as_node() { setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"; }
data=$root/var/lib/carebridge
conf=$root/etc/carebridge/node.toml
check "init as the user carebridge in its data directory" \
	quiet as_node env CAREBRIDGE_ADMIN_PASSWORD=package-test-admin-pass "$root/usr/bin/carebridge-node" init \
	--data-dir "$data" --name packages.test --time-zone Europe/Amsterdam
check "the key file: 0600 carebridge's" [ "$(nmode "$data/db.key")" = "600 $uid:$gid" ]
# README.Debian's steps, in the root (where /etc and /var/lib are under $root).
mv "$data/node.toml" "$conf"
sed -i '/^listen = /d' "$conf"
printf 'data_dir = "%s"\nlisten = "127.0.0.1:0"\n' "$data" >>"$conf"
chown "0:$gid" "$conf"
chmod 0640 "$conf"
# ExecStart, with the configuration's path in the root; as the service would run it.
read -r -a exec_start <<<"$(setting ExecStart)"
exec_start=("$root${exec_start[0]}" "${exec_start[@]:1}")
exec_start=("${exec_start[@]/#\/etc\/carebridge\//$root/etc/carebridge/}")
setsid setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs -- \
	"${exec_start[@]}" >"$work/node.out" 2>"$work/node.log" </dev/null &
groups+=($!)
within "the installed node listens" grep -q '^carebridge-node listening on ' "$work/node.out"
url=$(sed -n 's/^carebridge-node listening on //p' "$work/node.out")
health=$(curl -sf --max-time 5 "$url/healthz" || true)
check "/healthz answers ($health)" \
	[ "$(jq -r '.status + " " + .node' <<<"$health" 2>/dev/null)" = "ok packages.test" ]
# As systemd stops it: TERM, and the node ends by itself.
kill -TERM -- "-${groups[-1]}"
within "the node stops on TERM" bash -c '! kill -0 -- "-$1" 2>/dev/null' _ "${groups[-1]}"
unset 'groups[-1]'
# An upgrade (here the same version again) runs postinst with the user and directories there.
check "the node's package installs again over the initialised node" \
	quiet dpkg --root="$root" --force-depends --force-script-chrootless --install "$node_deb"
check "and keeps its user, data directory and configuration as they were" bash -c \
	'[ "$(grep -c "^carebridge:" "$1/etc/passwd")" = 1 ] && [ "$(stat -c "%a %u" "$1/var/lib/carebridge" "$1/var/lib/carebridge/db.key" "$1/etc/carebridge/node.toml" | paste -sd" ")" = "700 $2 600 $2 640 0" ]' \
	_ "$root" "$uid"

# --- The installed app, from each desktop entry, under Xvfb -------------------------------
mkfifo "$work/display"
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$work/display" >/dev/null 2>&1 &
xvfb_pid=$!
read -r -t "$deadline_s" display <"$work/display" || fail "Xvfb did not start"
# The session bus after DISPLAY, so that what it starts finds the display.
export DISPLAY=":$display" HOME=$work/home XDG_RUNTIME_DIR=$work/home
export XDG_CONFIG_HOME=$work/home/config XDG_DATA_HOME=$work/home/data XDG_CACHE_HOME=$work/home/cache
mkdir -p -m 0700 "$HOME"
unset CAREBRIDGE_PASSPHRASE
bus=$(dbus-daemon --session --fork --nopidfile --print-address=1 --print-pid=1)
export DBUS_SESSION_BUS_ADDRESS=${bus%%$'\n'*}
bus_pid=${bus##*$'\n'}

window=
window_shown() { # TITLE: a window of that name is mapped (its id in $window)
	local id
	for id in $(xwininfo -root -tree | awk -v t=" \"$1\": (" 'index($0, t) { print $1 }'); do
		if xwininfo -id "$id" | grep -q 'Map State: IsViewable'; then
			window=$id
			return 0
		fi
	done
	return 1
}
drawn() { # PNG: the window holds more than a blank page (text, a form)
	import -window "$window" "$1" 2>/dev/null &&
		awk -v s="$(convert "$1" -format '%[fx:standard_deviation]' info:)" 'BEGIN { exit !(s > 0.05) }'
}
for entry in "$staff_entry" "$kiosk_entry"; do
	name=$(sed -n 's/^Name=//p' "$entry")
	read -r -a argv <<<"$(sed -n 's/^Exec=//p' "$entry")"
	# The window's title is tauri.conf.json's, or tauri.kiosk.conf.json's with --kiosk.
	title=CareBridge
	[[ " ${argv[*]} " != *" --kiosk "* ]] || title="CareBridge Kiosk"
	shot=$out/$(basename "$entry" .desktop).png
	setsid "$root/usr/bin/${argv[0]}" "${argv[@]:1}" >"$work/app.log" 2>&1 </dev/null &
	groups+=($!)
	within "$name ($(basename "$entry")): its window \"$title\" appears" window_shown "$title"
	within "$name: its window is drawn ($shot)" drawn "$shot"
	stop_group "${groups[-1]}"
	unset 'groups[-1]'
done

# --- Purged -------------------------------------------------------------------------------
check "both packages purge from the root" \
	quiet dpkg --root="$root" --force-script-chrootless --purge "$app_pkg" "$node_pkg"
check "their programs, unit and desktop entries are gone" bash -c \
	'! [ -e "$1/usr/bin/carebridge-app" ] && ! [ -e "$1/usr/bin/carebridge-node" ] && ! [ -e "$2" ] && ! [ -e "$3" ] && ! [ -e "$4" ]' \
	_ "$root" "$unit" "$staff_entry" "$kiosk_entry"
check "the node's data, key and node.toml are kept, with the user that owns them" bash -c \
	'[ -e "$1/var/lib/carebridge/db.key" ] && [ -e "$1/etc/carebridge/node.toml" ] && grep -q "^carebridge:" "$1/etc/passwd"' _ "$root"

echo "package-test: $passed passed, 0 failed"
