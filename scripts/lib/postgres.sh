# A PostgreSQL cluster of a script's own: sourced, not run (scripts/with-postgres.sh, the
# cluster demo). `pg_start DIR [EXTRA_SETTINGS…]` initialises and starts one in DIR (which must
# be empty: its data and its socket live there, no TCP port) and sets PG_URL to a superuser's
# URL for the `postgres` database; `pg_stop DIR` stops it, whatever state it is in.
#
# initdb and pg_ctl refuse to run as root: as root, the cluster runs as the `postgres` user
# (Debian's package creates it); otherwise as the caller.

pg_bin() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ]; then
			echo "$d"
			return 0
		fi
	done
	echo "no PostgreSQL server found under /usr/lib/postgresql (apt install postgresql)" >&2
	return 1
}

pg_as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_start() {
	local dir=$1
	shift
	local bin version
	bin=$(pg_bin)
	version=$("$bin/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)?.*/\1/')
	if [ "$version" -lt 15 ]; then
		echo "PostgreSQL $version found; 15 or later is needed" >&2
		return 1
	fi
	[ "$(id -u)" != 0 ] || chown postgres "$dir"
	chmod 700 "$dir"
	pg_as_owner "$bin/initdb" -D "$dir/data" -A trust -U carebridge -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; return 1; }
	local settings="-c listen_addresses='' -k $dir"
	local s
	for s in "$@"; do settings+=" -c $s"; done
	pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$settings" start >/dev/null ||
		{ cat "$dir/server.log" >&2; return 1; }
	PG_URL="postgres://carebridge@${dir//\//%2F}/postgres"
}

pg_stop() {
	local dir=$1 bin
	bin=$(pg_bin) || return 0
	[ -d "$dir/data" ] || return 0
	pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
}
