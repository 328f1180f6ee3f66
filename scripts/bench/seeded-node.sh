# Sourced by the benchmarks that read a big seeded node (core-bench.sh, fhir-bench.sh): seeds it
# once under target/bench-core/node and serves it. The sourcing script sets NODE (the release
# carebridge-node), DOCTORS, PATIENTS, APPOINTMENTS, START_TIMEOUT_S, and log() and die().
# shellcheck shell=bash

size="$DOCTORS doctors, $PATIENTS patients, $APPOINTMENTS appointments, the benchmark doctor"

pid=""
stop_node() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
    fi
}

# forget_if_resized DIR: a seeded node of another size is seeded again.
forget_if_resized() {
    if [ "$(cat "$1/.size" 2>/dev/null)" != "$size" ]; then
        rm -rf "$1"
    fi
}

# serve_node DIR LOG: serves the node in DIR (seeding it first if DIR is absent); sets pid, url.
# Seeding is a process of its own (`demo --prepare-only`), so that the node serving is the same
# kind of process in a cold run as in a later one.
serve_node() {
    local dir=$1 nodelog=$2 port
    : >"$nodelog" # this run's lines only: the address is read from it below
    if [ ! -d "$dir" ]; then
        log "seeding $size (a few minutes)"
        # --prepare-only writes a fixed port into node.toml; serve listens where it is told.
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        "$NODE" demo --prepare-only --data-dir "$dir" --listen "127.0.0.1:$port" --durability normal \
            --bench --doctors "$DOCTORS" --patients "$PATIENTS" --appointments "$APPOINTMENTS" \
            >>"$nodelog" 2>&1 || { cat "$nodelog" >&2; rm -rf "$dir"; die "seeding failed"; }
    fi
    "$NODE" serve --data-dir "$dir" --listen 127.0.0.1:0 >>"$nodelog" 2>&1 &
    pid=$!
    local deadline=$((SECONDS + START_TIMEOUT_S))
    url=""
    while [ -z "$url" ]; do
        kill -0 "$pid" 2>/dev/null || { cat "$nodelog" >&2; die "carebridge-node exited before listening"; }
        [ "$SECONDS" -lt "$deadline" ] || die "carebridge-node not listening after ${START_TIMEOUT_S}s"
        url=$(sed -n 's|^.*carebridge-node listening on \(http://[^[:space:]]*\).*$|\1|p' "$nodelog" | head -n1)
        [ -n "$url" ] || sleep 1
    done
    echo "$size" >"$dir/.size"
}
