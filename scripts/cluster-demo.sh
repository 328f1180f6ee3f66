#!/usr/bin/env bash
# `make run-cluster`: the demo hospital on PostgreSQL, served by three node processes behind
# nginx, as a large hospital runs it (docs/postgresql.md):
#
#   1. wipes $CLUSTER_DIR (default target/cluster);
#   2. starts a PostgreSQL cluster of the demo's own (a temporary directory, a Unix socket, no
#      TCP port), stopped when the demo ends;
#   3. prepares the demo hospital st-marys.example in it (carebridge-node demo --prepare-only
#      --database-url), and gives two more data directories the same key and node.toml;
#   4. serves the three on 127.0.0.1:8091-8093 and nginx (docs/cluster/nginx.conf) on
#      127.0.0.1:8080 in front of them;
#   5. opens the staff app (reception) and a kiosk, both pointed at the load balancer; waits
#      until one closes or Ctrl-C, then stops everything it started.
#
# Environment: NODE_BIN (carebridge-node, required), APP_BIN (carebridge-app, required unless
# CLUSTER_NO_APP=1), CLUSTER_DIR, CLUSTER_NO_APP=1 (no windows: serve until Ctrl-C),
# START_TIMEOUT_S=60. Relative paths are from the repository's root.
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=${CLUSTER_DIR:-target/cluster}
NO_APP=${CLUSTER_NO_APP:-0}
START_TIMEOUT_S=${START_TIMEOUT_S:-60}
BALANCER=127.0.0.1:8080
NODES=(127.0.0.1:8091 127.0.0.1:8092 127.0.0.1:8093)

# shellcheck source=lib/demo.sh
. scripts/lib/demo.sh
# shellcheck source=lib/postgres.sh
. scripts/lib/postgres.sh
DEMO_NAME=cluster-demo

demo_checks run-cluster CLUSTER_DIR CLUSTER_NO_APP
command -v nginx >/dev/null || die "nginx not found (make run-cluster installs it)"

PGDIR=$(mktemp -d /tmp/carebridge-cluster-pg.XXXXXX)
nginx_dir=
on_exit() {
    local status=$?
    trap - EXIT INT TERM
    [ -z "$nginx_dir" ] || nginx -p "$nginx_dir/" -c "$PWD/docs/cluster/nginx.conf" -s stop 2>/dev/null || true
    if ((${#started[@]})); then
        log "stopping what was started"
        kill -TERM "${started[@]}" 2>/dev/null || true
        wait "${started[@]}" 2>/dev/null || true
    fi
    pg_stop "$PGDIR"
    rm -rf -- "$PGDIR"
    exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "wiping $DIR"
rm -rf -- "$DIR"
mkdir -p -- "$DIR"

log "PostgreSQL in $PGDIR"
pg_start "$PGDIR"
"$(pg_bin)/createdb" -h "$PGDIR" -U carebridge carebridge
url=${PG_URL%/postgres}/carebridge

log "preparing the demo hospital on PostgreSQL"
"$NODE_BIN" demo --prepare-only --data-dir "$DIR/node-1" --listen "$BALANCER" --database-url "$url" >&2
for i in 2 3; do
    mkdir -p "$DIR/node-$i"
    cp "$DIR/node-1/db.key" "$DIR/node-1/node.toml" "$DIR/node-$i/"
    chmod 600 "$DIR/node-$i/db.key"
done
for i in 1 2 3; do
    serve "node-$i" "$DIR/node-$i" "${NODES[$((i - 1))]}"
done

nginx_dir=$(realpath "$DIR")/nginx
mkdir -p "$nginx_dir/logs" "$nginx_dir/temp"
nginx -p "$nginx_dir/" -c "$PWD/docs/cluster/nginx.conf" -g 'daemon off;' 2>"$DIR/nginx.log" &
nginx_pid=$!
started+=("$nginx_pid")
deadline=$((SECONDS + START_TIMEOUT_S))
until curl -sf "http://$BALANCER/healthz" >/dev/null; do
    ((SECONDS < deadline)) || die "nginx does not answer on $BALANCER (see $DIR/nginx.log)"
    sleep 0.2
done
log "nginx on http://$BALANCER in front of ${NODES[*]}"

creds=$DIR/node-1/demo-credentials.json
reception_user=$(jq -r .reception.username "$creds")
reception_password=$(jq -r .reception.password "$creds")
staff_file "$DIR/reception.json" "http://$BALANCER" "$reception_user" "$reception_password"
cat >&2 <<TEXT
The demo hospital on PostgreSQL, three node processes behind http://$BALANCER.
  Sign-ins: $creds (reception: $reception_user / $reception_password).
  Each process's log: $DIR/node-N.log. Stop one and the others go on:
    pkill -f 'serve --data-dir $DIR/node-2'
TEXT

# A node process that stops is part of the demo (the others go on); nginx stopping ends it.
if [ "$NO_APP" = 1 ]; then
    log "serving until Ctrl-C"
    wait "$nginx_pid" || true
    die "nginx stopped (see $DIR/nginx.log)"
fi

# Without an OS keychain the profiles' keys come from this passphrase (a throw-away demo).
export CAREBRIDGE_PASSPHRASE="${CAREBRIDGE_PASSPHRASE:-carebridge-demo}"
"$APP_BIN" --staff-credentials "$DIR/reception.json" --half left &
staff=$!
started+=("$staff")
"$APP_BIN" --kiosk --windowed --kiosk-credentials "$creds" &
kiosk=$!
started+=("$kiosk")
log "two windows: the front desk and the kiosk, both through the load balancer; close one or press Ctrl-C to stop"
wait -n "$staff" "$kiosk" "$nginx_pid" || true
