#!/usr/bin/env bash
# Runs a command with a throw-away PostgreSQL cluster: `scripts/with-postgres.sh CMD ARGS…`.
#
# The cluster lives in a fresh temporary directory, listens only on a Unix socket there (no TCP
# port to collide with another run or the system's own PostgreSQL), and is stopped and removed
# when the command ends, whatever its outcome. The command gets its address as
# TEST_POSTGRES_URL, a URL for a superuser that may create a database per test.
set -euo pipefail

# shellcheck source=lib/postgres.sh
. "$(dirname "$0")/lib/postgres.sh"

dir=$(mktemp -d /tmp/carebridge-pg.XXXXXX)
stop() {
	pg_stop "$dir"
	rm -rf "$dir"
}
trap stop EXIT

# fsync off: a test cluster that is thrown away need not survive a power cut, and the tests
# measure nothing. Room for one database per concurrent test.
pg_start "$dir" fsync=off synchronous_commit=off full_page_writes=off max_connections=300

# Not CAREBRIDGE_…: the node reads every such variable as its own configuration.
export TEST_POSTGRES_URL=$PG_URL
"$@"
