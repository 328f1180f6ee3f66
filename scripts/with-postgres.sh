#!/usr/bin/env bash
# Runs a command with a throw-away PostgreSQL cluster: `scripts/with-postgres.sh CMD ARGS…`.
#
# The cluster lives in a fresh temporary directory, listens only on a Unix socket there (no TCP
# port to collide with another run or the system's own PostgreSQL), and is stopped and removed
# when the command ends, whatever its outcome. The command gets its address as
# TEST_POSTGRES_URL, a URL for a superuser that may create a database per test.
#
# initdb and pg_ctl refuse to run as root: as root, the cluster runs as the `postgres` user
# (Debian's package creates it); otherwise as the caller.
set -euo pipefail

bin=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
	if [ -x "$d/initdb" ]; then
		bin=$d
		break
	fi
done
if [ -z "$bin" ]; then
	echo "with-postgres: no PostgreSQL server found under /usr/lib/postgresql (apt install postgresql)" >&2
	exit 1
fi
version=$("$bin/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)?.*/\1/')
if [ "$version" -lt 15 ]; then
	echo "with-postgres: PostgreSQL $version found; 15 or later is needed" >&2
	exit 1
fi

as_owner=()
dir=$(mktemp -d /tmp/carebridge-pg.XXXXXX)
if [ "$(id -u)" = 0 ]; then
	as_owner=(runuser -u postgres --)
	chown postgres "$dir"
fi
chmod 700 "$dir"

stop() {
	"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap stop EXIT

"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -A trust -U carebridge -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; exit 1; }
# fsync off: a test cluster that is thrown away need not survive a power cut, and the tests
# measure nothing. Room for one database per concurrent test.
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
	-o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
	start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }

# Not CAREBRIDGE_…: the node reads every such variable as its own configuration.
export TEST_POSTGRES_URL="postgres://carebridge@%2F${dir//\//%2F}/postgres"
"$@"
