#!/usr/bin/env bash
# The `make bench` driver: CareBridge's live stream (GET /api/v1/events) against the peers in
# ../shared/bench (nginx + nchan, the seed's Express design), on this machine, in one run.
#
#   1. builds ssefan (../shared/bench/ssefan) into target/ssefan; if a PostgreSQL backend is
#      measured, starts one private PostgreSQL for the whole bench (scripts/lib/postgres.sh: a
#      temporary directory, a Unix socket, no TCP port; PostgreSQL's default settings, fsync and
#      synchronous_commit on), pinned to SERVER_CPU, stopped at the end whatever happens;
#   2. for each N in $NS and scenario in $SCENARIOS, ROUNDS times in turn: nchan, the seed, then
#      CareBridge on each of $BACKENDS (ABCDE...), each freshly started and pinned to CPU 0, with
#      ssefan pinned to CPU 1: N subscribers on the event stream, publishes (for the node:
#      bookings, signed in as reception); then the slow-subscriber scenario (maxstall: STALL_N
#      subscribers + 50 that never read, STALL_MAX_S s) in the same alternation. CareBridge's
#      servers, each seeded by `demo --prepare-only` (one process) and served by `serve` (others):
#        carebridge          one node on SQLCipher, a fresh data dir;
#        carebridge-pg       one node on PostgreSQL, a fresh database (vacuumed, analysed and
#                            checkpointed after seeding, before serving);
#        carebridge-cluster  three node processes on one fresh PostgreSQL database behind nginx
#                            (docs/cluster/nginx.conf with the bench's ports, one worker, and the
#                            nchan peer's connection limits), the subscribers and publishers all
#                            going through nginx (least_conn spreads them over the processes);
#        carebridge-pg-proxied  the same with one node process (BACKENDS' "proxied"): what
#                            nginx's hop costs, apart from what three processes cost;
#   3. during every run samples the server's RSS (VmRSS summed over its processes, every SAMPLE_S
#      s) from ssefan's start until 2 s after it exited, so the peak while the stalled subscribers
#      are attached and the value at their end are known, not only ssefan's before/after
#      readings. The server's processes (RSS and CPU, here and in ssefan's figures): nginx's
#      master and worker; the seed's node; the node process; for the cluster the three node
#      processes and nginx's master and worker. PostgreSQL is not in them (its memory is shared
#      buffers and per-connection backends that do not grow with subscribers); its CPU time over
#      the run and its PSS at the end are recorded beside them (the JSON line's "postgres");
#   4. after every run prints its own lost, duplicated and other faults (ssefan's JSON lines go to
#      target/bench/peers.jsonl and carebridge.jsonl with the round and the sampled memory added);
#   5. prints the medians per label (../shared/bench/summarize.py), each run's deliveries and the
#      slow-subscriber memory run by run (scripts/bench/fanout-report.py); if no run had a fault,
#      writes them, with the machine it ran on, into docs/performance.md between
#      <!-- bench:begin --> and <!-- bench:end -->.
# Exit status 1 if any run lost, duplicated or refused anything (or a server or ssefan failed):
# the tables are still printed, the page is left alone.
#
# Knobs (environment): NS="1000 5000", SCENARIOS="rate20 max" (maxstall also accepted),
# ROUNDS=3 (alternations per (N, scenario); summarize.py reports medians over them),
# PEERS="nchan express-seed" (empty: no peers), BACKENDS="sqlite postgres cluster proxied" (CareBridge's
# servers, in this order; empty: none), MAX_S=10, RATE_S=15 (rate20's duration), STALL=1 (0: no
# stall runs), STALL_N=100, STALL_MAX_S=30, CAREBRIDGE=1 (0: peers only, whatever BACKENDS says),
# DEMO_ARGS="--doctors 5 --days 30 --patients 1000 --bench --durability full" (the demo's size),
# WARMUP=500 (bookings made before each CareBridge run, then ANALYZE on PostgreSQL; 0: none),
# SERVER_CPU=0, TOOL_CPU=1, SAMPLE_S=0.5, NCHAN_PORT=18081, EXPRESS_PORT=18082, CLUSTER_PORT=18083
# (the cluster's nginx; its node processes take free ports),
# APPEND=0 (1: keep the JSON lines of earlier runs; the medians then span them), DOC=1 (0: leave
# docs/performance.md alone), SHARED_BENCH (default ../shared/bench), START_TIMEOUT_S=120,
# STOP_TIMEOUT_S=30, CARGO_TARGET_DIR (where carebridge-node was built). Loopback only.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
SHARED=${SHARED_BENCH:-$REPO/../shared/bench}

NS=${NS:-"1000 5000"}
SCENARIOS=${SCENARIOS:-"rate20 max"}
ROUNDS=${ROUNDS:-3}
PEERS=${PEERS-"nchan express-seed"}
BACKENDS=${BACKENDS-"sqlite postgres cluster proxied"}
MAX_S=${MAX_S:-10}
RATE_S=${RATE_S:-15}
STALL=${STALL:-1}
STALL_N=${STALL_N:-100}
STALL_MAX_S=${STALL_MAX_S:-30}
CAREBRIDGE=${CAREBRIDGE:-1}
SERVER_CPU=${SERVER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
SAMPLE_S=${SAMPLE_S:-0.5}
NCHAN_PORT=${NCHAN_PORT:-18081}
EXPRESS_PORT=${EXPRESS_PORT:-18082}
CLUSTER_PORT=${CLUSTER_PORT:-18083}
APPEND=${APPEND:-0}
DOC=${DOC:-1}
DEMO_ARGS=${DEMO_ARGS:-"--doctors 5 --days 30 --patients 1000 --bench --durability full"}
read -r -a demo_args <<<"$DEMO_ARGS"
WARMUP=${WARMUP:-500}
START_TIMEOUT_S=${START_TIMEOUT_S:-120} # the demo seeds a year of slots for 5 doctors first
STOP_TIMEOUT_S=${STOP_TIMEOUT_S:-30}
# How long the sampler goes on after ssefan exited (the stalled subscribers' sockets closed).
AFTER_S=2
# The cluster's node processes (the issue's three; the label says "cluster", not how many).
CLUSTER_PROCESSES=3

BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/carebridge-node
SSEFAN_TARGET=$REPO/target/ssefan
SSEFAN=$SSEFAN_TARGET/release/ssefan
REPORT=$REPO/scripts/bench/fanout-report.py
OUT_DIR=$REPO/target/bench
PEERS_OUT=$OUT_DIR/peers.jsonl
NODE_OUT=$OUT_DIR/carebridge.jsonl
PERF_DOC=$REPO/docs/performance.md
CLUSTER_NGINX_CONF=$REPO/docs/cluster/nginx.conf

die() { echo "node-bench: $*" >&2; exit 1; }
log() { echo "node-bench: $*" >&2; }

# shellcheck source=../lib/postgres.sh
. "$REPO/scripts/lib/postgres.sh"

for tool in cargo curl jq python3 taskset; do
    command -v "$tool" >/dev/null || die "$tool not found (make bench-deps installs what is missing)"
done
[ -d "$SHARED" ] || die "$SHARED not found: the shared bench folder must sit next to the repository"
for peer in $PEERS; do
    case "$peer" in
    nchan) command -v nginx >/dev/null || die "nginx not found (make bench-deps installs it)" ;;
    express-seed) [ -d "$SHARED/peers/express-seed/node_modules" ] || die "the seed's node_modules are missing (make bench-deps)" ;;
    *) die "unknown peer $peer" ;;
    esac
done
[ "$CAREBRIDGE" = 1 ] || BACKENDS=""
need_pg=0
for backend in $BACKENDS; do
    case "$backend" in
    sqlite) ;;
    postgres) need_pg=1 ;;
    cluster | proxied)
        need_pg=1
        command -v nginx >/dev/null || die "nginx not found (make bench-deps installs it)"
        [ -f "$CLUSTER_NGINX_CONF" ] || die "$CLUSTER_NGINX_CONF not found"
        ;;
    *) die "unknown backend $backend (BACKENDS takes sqlite, postgres, cluster, proxied)" ;;
    esac
done
if [ -n "$BACKENDS" ] && [ ! -x "$BIN" ]; then
    die "$BIN not found: build it first (make build)"
fi
if [ "$need_pg" = 1 ]; then
    PG_BIN=$(pg_bin) || die "PostgreSQL's server is not installed (make bench-deps installs it)"
fi
[ "$ROUNDS" -ge 1 ] 2>/dev/null || die "ROUNDS must be a number >= 1"
[ "$WARMUP" -ge 0 ] 2>/dev/null || die "WARMUP must be a number >= 0"

# ssefan is built from inside ../shared, where this repository's rust-toolchain.toml does not
# apply: pin the same toolchain so that the build finds ours up to date instead of redoing it.
if command -v rustup >/dev/null; then
    RUSTUP_TOOLCHAIN=$(rustup show active-toolchain | cut -d' ' -f1)
    export RUSTUP_TOOLCHAIN
fi

log "building ssefan"
CARGO_TARGET_DIR=$SSEFAN_TARGET cargo build --release --locked --quiet \
    --manifest-path "$SHARED/ssefan/Cargo.toml"

mkdir -p "$OUT_DIR"
if [ "$APPEND" != 1 ]; then
    rm -f "$PEERS_OUT" "$NODE_OUT"
    rm -rf "$OUT_DIR/logs"
fi
mkdir -p "$OUT_DIR/logs"

# ---- starting and stopping each server ------------------------------------------------------

node_pids=()    # the node processes of the server under test
nginx_pid=""    # the cluster's load balancer (master)
peer_stop=""
sampler_pid=""
pgdir=""        # the bench's PostgreSQL (one for the whole bench)
pg_pid=""       # its postmaster
pg_db=""        # the database of the run under way
pg_seq=0
work=$(mktemp -d "${TMPDIR:-/tmp}/carebridge-bench.XXXXXX")
nodelog=""
cleanup() {
    # Only the script itself: a background job that is signalled between its fork and its exec
    # (a server being started when the script fails) inherits these traps and would otherwise
    # clean up too, at the same time, racing this one (PostgreSQL's directory removed under
    # pg_ctl, the server left running).
    [ "$BASHPID" = "$$" ] || return 0
    if [ -n "$sampler_pid" ]; then kill "$sampler_pid" 2>/dev/null || true; fi
    if [ -n "$peer_stop" ]; then $peer_stop >/dev/null 2>&1 || true; fi
    stop_balancer || true
    stop_nodes || true
    if [ -n "$pgdir" ]; then
        # Not pg_stop: in an EXIT trap after a failed command, its pg_bin's bare `return` gives
        # that command's status, and pg_stop then returns without stopping anything.
        if [ -n "$pg_pid" ]; then
            pg_as_owner "$PG_BIN/pg_ctl" -D "$pgdir/data" -m fast stop >/dev/null 2>&1 || true
        fi
        pg_gone
        rm -rf -- "$pgdir"
    fi
    rm -rf -- "$work"
}

# pg_running: the postmaster exists and has not exited (pg_ctl leaves it to PID 1, which may
# take a while to reap it: a zombie has exited).
pg_running() {
    local state
    state=$(sed 's/^.*) //' "/proc/$pg_pid/stat" 2>/dev/null | cut -d' ' -f1) || true
    [ -n "$state" ] && [ "$state" != Z ]
}

# pg_gone: after pg_ctl stop, makes sure that the postmaster has exited (pg_ctl's output is not
# shown): SIGINT (a fast shutdown), then SIGKILL after STOP_TIMEOUT_S.
pg_gone() {
    [ -n "$pg_pid" ] || return 0
    local deadline=$((SECONDS + STOP_TIMEOUT_S)) signal=INT
    while pg_running; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            [ "$signal" = INT ] || break
            signal=KILL
            deadline=$((SECONDS + 5))
        fi
        log "PostgreSQL (pid $pg_pid) still running after pg_ctl stop: SIG$signal"
        kill -"$signal" "$pg_pid" 2>/dev/null || true
        sleep 1
    done
    pg_pid=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# pg_up: the bench's PostgreSQL, in a directory of its own (not under $work: as root the server
# runs as `postgres`, which cannot enter $work), pinned to SERVER_CPU with everything it forks.
pg_up() {
    pgdir=$(mktemp -d /tmp/carebridge-bench-pg.XXXXXX)
    pg_start "$pgdir" || die "PostgreSQL did not start (log above)"
    pg_pid=$(head -n1 "$pgdir/data/postmaster.pid")
    # The postmaster and the processes it has started; the backends it forks later inherit it.
    taskset -apc "$SERVER_CPU" "$pg_pid" >/dev/null || die "could not pin PostgreSQL to CPU $SERVER_CPU"
    local p
    for p in $(pgrep -P "$pg_pid" || true); do
        taskset -apc "$SERVER_CPU" "$p" >/dev/null 2>&1 || true # gone already: nothing to pin
    done
    log "$("$PG_BIN/postgres" --version) in $pgdir (postmaster $pg_pid), on CPU $SERVER_CPU"
}

# pg_fresh_db: a new empty database for one run; sets pg_db and db_url.
pg_fresh_db() {
    pg_seq=$((pg_seq + 1))
    pg_db=bench_$pg_seq
    "$PG_BIN/createdb" -h "$pgdir" -U carebridge "$pg_db" || die "createdb $pg_db failed"
    db_url=${PG_URL%/postgres}/$pg_db
}

# pg_settle: after seeding, before serving: the planner's statistics taken and the seed's pages
# written out now, rather than by autovacuum or a checkpoint in the middle of the measurement.
pg_settle() {
    "$PG_BIN/psql" -h "$pgdir" -U carebridge -d "$pg_db" -qAtX -v ON_ERROR_STOP=1 \
        -c 'VACUUM (ANALYZE)' -c 'CHECKPOINT' >/dev/null || die "VACUUM/CHECKPOINT on $pg_db failed"
}

# pg_drop: the run's database, once its node processes have stopped.
pg_drop() {
    [ -n "$pg_db" ] || return 0
    "$PG_BIN/dropdb" -h "$pgdir" -U carebridge --if-exists "$pg_db" || log "dropdb $pg_db failed"
    pg_db=""
}

# seed_demo DIR LISTEN [ARG...]: `demo --prepare-only` into DIR on CPU $SERVER_CPU (ARG: e.g.
# --database-url URL), output to $nodelog.
seed_demo() {
    local data=$1 listen=$2
    shift 2
    rm -rf -- "$data"
    taskset -c "$SERVER_CPU" "$BIN" demo --prepare-only --data-dir "$data" --listen "$listen" \
        "$@" "${demo_args[@]}" >"$nodelog" 2>&1 </dev/null ||
        { cat "$nodelog" >&2; die "seeding the demo node failed (log above)"; }
}

# serve_node DIR LOG [ARG...]: `serve --data-dir DIR ARG...` on CPU $SERVER_CPU in the
# background, output appended to LOG; adds its pid to node_pids and waits until it listens,
# then sets addr to the address it printed. The connection cap (4096 by default) is raised past
# the largest N, as a hospital with that many workstations would set it.
serve_node() {
    local data=$1 out=$2 pid
    shift 2
    CAREBRIDGE_MAX_CONNECTIONS=16000 taskset -c "$SERVER_CPU" "$BIN" serve --data-dir "$data" "$@" \
        >>"$out" 2>&1 </dev/null &
    pid=$!
    node_pids+=("$pid")
    touch "$out" # read below, perhaps before the process has opened it

    # Wait for "carebridge-node listening on http://ADDR", polling with a deadline.
    addr=""
    local deadline=$((SECONDS + START_TIMEOUT_S))
    while [ -z "$addr" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$out" >&2
            die "carebridge-node exited before listening (log above)"
        fi
        addr=$(sed -n 's|^.*carebridge-node listening on http://\([^/[:space:]]*\).*$|\1|p' "$out" | head -n1)
        if [ -z "$addr" ]; then
            [ "$SECONDS" -lt "$deadline" ] || { cat "$out" >&2; die "carebridge-node not listening after ${START_TIMEOUT_S}s"; }
            sleep 0.05 # poll interval
        fi
    done
}

# start_balancer PORT...: nginx on CLUSTER_PORT in front of the node processes on PORT...,
# pinned to SERVER_CPU; sets nginx_pid. Its configuration is the reference one
# (docs/cluster/nginx.conf) with the bench's ports, one worker process (one CPU) and the nchan
# peer's limits: 20,000 connections (each subscriber holds two: client and node) and keep-alive
# connections that are not closed after 1,000 requests (the publishers are 4 busy clients).
start_balancer() {
    local dir=$work/nginx
    rm -rf -- "$dir"
    mkdir -p "$dir/logs" "$dir/temp"
    python3 - "$CLUSTER_NGINX_CONF" "$dir/nginx.conf" "$CLUSTER_PORT" "$@" <<'PY' ||
import re, sys
src, dst, lb, ports = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
text = open(src, encoding="utf-8").read()
servers = re.findall(r"^( *)server 127\.0\.0\.1:\d+( .*)?;\n", text, re.M)
if not servers:
    sys.exit(f"{src}: no upstream server lines")
indent, options = servers[0]
lines = "".join(f"{indent}server 127.0.0.1:{p}{options or ''};\n" for p in ports)
text, n_up = re.subn(r"(?:^ *server 127\.0\.0\.1:\d+.*;\n)+", lambda _: lines, text, count=1, flags=re.M)
for pattern, repl in [
    (r"^worker_processes \w+;", "worker_processes 1;\nworker_rlimit_nofile 20000;"),
    (r"worker_connections \d+;", "worker_connections 20000;"),
    (r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{lb};"),
    (r"^( *)access_log off;", r"\g<0>\n\1keepalive_requests 10000000;"),
]:
    text, n = re.subn(pattern, repl, text, flags=re.M)
    if n != 1:
        sys.exit(f"{src}: expected one match of {pattern!r}, found {n}")
open(dst, "w", encoding="utf-8").write(text)
PY
        die "could not derive the cluster's nginx.conf from $CLUSTER_NGINX_CONF"
    taskset -c "$SERVER_CPU" nginx -p "$dir/" -c "$dir/nginx.conf" -g 'daemon off;' \
        >"$dir/stdout.log" 2>&1 </dev/null &
    nginx_pid=$!
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until curl -sf -o /dev/null "http://127.0.0.1:$CLUSTER_PORT/healthz"; do
        kill -0 "$nginx_pid" 2>/dev/null || { cat "$dir/stdout.log" "$dir/logs/error.log" >&2 || true; die "nginx exited (log above)"; }
        [ "$SECONDS" -lt "$deadline" ] || die "nginx does not answer on 127.0.0.1:$CLUSTER_PORT (see $dir/logs/error.log)"
        sleep 0.05 # poll interval
    done
}

stop_balancer() {
    [ -n "$nginx_pid" ] || return 0
    kill -TERM "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=""
}

# start_carebridge SERVER: a fresh CareBridge server (carebridge, carebridge-pg,
# carebridge-cluster or carebridge-pg-proxied) on CPU $SERVER_CPU, its data seeded by one process (`demo --prepare-only`)
# and served by others (`serve`), as a hospital's node is started: the serving processes' memory
# then holds nothing left over from seeding. Output to $nodelog (the cluster: the seeding's
# there, each process's in $nodelog less .log plus -nodeK.log). Sets node_pids, nginx_pid (the
# cluster), url, token, body (the booking template file).
start_carebridge() {
    local server=$1 creds i ports=()
    case "$server" in
    carebridge)
        # A free port for node.toml (--prepare-only writes a fixed one).
        seed_demo "$work/data" "127.0.0.1:$(free_port)"
        serve_node "$work/data" "$nodelog"
        url=http://$addr
        creds=$work/data/demo-credentials.json
        ;;
    carebridge-pg)
        pg_fresh_db
        seed_demo "$work/data" "127.0.0.1:$(free_port)" --database-url "$db_url"
        pg_settle
        serve_node "$work/data" "$nodelog"
        url=http://$addr
        creds=$work/data/demo-credentials.json
        ;;
    carebridge-cluster | carebridge-pg-proxied)
        # carebridge-pg-proxied: the same with one process, so that the cluster's figures can
        # be told apart from nginx's hop (what clustering costs, what the proxy costs).
        local processes=$CLUSTER_PROCESSES
        [ "$server" = carebridge-cluster ] || processes=1
        # As scripts/cluster-demo.sh: one prepared data dir (its credentials name the balancer),
        # its key and node.toml copied to the others; each process listens where it is told.
        pg_fresh_db
        seed_demo "$work/node-1" "127.0.0.1:$CLUSTER_PORT" --database-url "$db_url"
        for i in $(seq 2 "$processes"); do
            rm -rf -- "$work/node-$i"
            mkdir -p "$work/node-$i"
            cp "$work/node-1/db.key" "$work/node-1/node.toml" "$work/node-$i/"
            chmod 600 "$work/node-$i/db.key"
        done
        pg_settle
        local base=${nodelog%.log}
        for i in $(seq "$processes"); do
            serve_node "$work/node-$i" "$base-node$i.log" --listen 127.0.0.1:0
            ports+=("${addr##*:}")
        done
        start_balancer "${ports[@]}"
        url=http://127.0.0.1:$CLUSTER_PORT
        creds=$work/node-1/demo-credentials.json
        ;;
    *) die "unknown server $server" ;;
    esac
    [ -f "$creds" ] || die "$creds missing although the node is listening"

    # One reception session for every subscriber and the publishers (the cluster: signed in
    # through nginx, valid on every process).
    local user pass
    user=$(jq -er .reception.username "$creds")
    pass=$(jq -er .reception.password "$creds")
    token=$(jq -n --arg u "$user" --arg p "$pass" '{username: $u, password: $p}' |
        curl -sS --fail-with-body --max-time 10 -X POST "$url/api/v1/sessions" \
            -H 'Content-Type: application/json' \
            --data-binary @- | jq -er .token) || die "sign-in as $user failed"

    # The booking template: {seq} and {uuid} are filled in by ssefan per request. Each booking
    # takes the bench doctor's next free slot, so none is refused as a double booking.
    body=$work/booking.json
    jq -n --arg patient "$(jq -er .bench.patient_id "$creds")" \
        --arg practitioner "$(jq -er .bench.practitioner_id "$creds")" \
        --arg from "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        '{patient_id: $patient, practitioner_id: $practitioner, next_available_from: $from,
          reason: "seq-{seq} bench {uuid}"}' >"$body"

    # A node in service, not one started a second ago: WARMUP bookings with another doctor
    # (one subscriber) before the measured run, then, on PostgreSQL, the ANALYZE that
    # autovacuum would run within the node's first minute. Without it the measured run is a
    # new database's first seconds: the node's prepared statements keep the plans PostgreSQL
    # made when their tables (events, audit, idempotency) were nearly empty, sequential scans
    # that grow with every booking until autovacuum analyses the tables. Another doctor, so
    # that the measured bookings look as far ahead for a free slot as without the warm-up.
    if [ "$WARMUP" -gt 0 ]; then
        local bench_doctor warm_doctor
        bench_doctor=$(jq -er .bench.practitioner_id "$creds")
        warm_doctor=$(jq -er --arg b "$bench_doctor" '[.doctors[].id | select(. != $b)][0]' "$creds") ||
            die "the warm-up needs a doctor besides the bench doctor (DEMO_ARGS' --doctors)"
        jq --arg d "$warm_doctor" '.practitioner_id = $d' "$body" >"$work/warmup-booking.json"
        taskset -c "$TOOL_CPU" "$SSEFAN" --sub-url "$url/api/v1/events" \
            --sub-header "Authorization: Bearer $token" -n 1 \
            --pub-url "$url/api/v1/appointments" --pub-method POST \
            --pub-header "Authorization: Bearer $token" --pub-header 'Content-Type: application/json' \
            --pub-header 'Idempotency-Key: {uuid}' --pub-body-file "$work/warmup-booking.json" \
            --events "$WARMUP" --publishers 4 --seq-start 1000000000 -q >"$work/warmup.json" ||
            die "the warm-up bookings failed"
        jq -e '.publish.failed == 0 and .delivery.lost == 0' "$work/warmup.json" >/dev/null ||
            die "the warm-up lost or refused bookings: $(cat "$work/warmup.json")"
        if [ "$server" != carebridge ]; then
            "$PG_BIN/psql" -h "$pgdir" -U carebridge -d "$pg_db" -qAtX -v ON_ERROR_STOP=1 \
                -c 'ANALYZE' >/dev/null || die "ANALYZE on $pg_db failed"
        fi
    fi
}

# stop_nodes: SIGTERM to every node process, then wait for each (SIGKILL after STOP_TIMEOUT_S,
# and say so).
stop_nodes() {
    [ "${#node_pids[@]}" -gt 0 ] || return 0
    local pid rc deadline=$((SECONDS + STOP_TIMEOUT_S))
    kill -TERM "${node_pids[@]}" 2>/dev/null || true
    for pid in "${node_pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                log "carebridge-node (pid $pid) still running ${STOP_TIMEOUT_S}s after SIGTERM: killing it"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.05 # poll interval
        done
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        [ "$rc" = 0 ] || [ "$rc" = 143 ] || log "carebridge-node (pid $pid) exited with status $rc (log: ${nodelog%.log}*)"
    done
    node_pids=()
}

# ---- one run ----------------------------------------------------------------------------------

faulty=0

# run_one SERVER N SCENARIO MAX_SECONDS ROUND: a freshly started SERVER (nchan, express-seed,
# carebridge, carebridge-pg, carebridge-cluster or carebridge-pg-proxied) under one ssefan run, its memory sampled
# throughout; appends the run's JSON line to the peers' or the node's file and counts it in
# $faulty if it had any fault.
run_one() {
    local server=$1 n=$2 sc=$3 max_s=$4 round=$5 label_sc load sub=() pub=() pids=() out w
    case "$sc" in
    rate20)   load=(--rate 20 --duration "$RATE_S" --publishers 4) ;;
    max)      load=(--duration "$max_s" --publishers 4) ;;
    maxstall) load=(--duration "$max_s" --publishers 4 --stall 50) ;;
    *) die "unknown scenario $sc" ;;
    esac
    # the same labels as ../shared/bench/run-peers.sh, so its figures line up with these
    label_sc=$sc
    if [ "$sc" = rate20 ] && [ "$RATE_S" != 15 ]; then label_sc="$sc-${RATE_S}s"; fi
    if [ "$sc" != rate20 ] && [ "$max_s" != 10 ]; then label_sc="$sc-${max_s}s"; fi
    local label="$server n=$n $label_sc"

    case "$server" in
    carebridge | carebridge-pg | carebridge-cluster | carebridge-pg-proxied)
        out=$NODE_OUT
        nodelog=$OUT_DIR/logs/$server-n$n-$label_sc-r$round.log
        start_carebridge "$server"
        pids=("${node_pids[@]}")
        if [ -n "$nginx_pid" ]; then
            pids+=("$nginx_pid")
            for w in $(pgrep -P "$nginx_pid" || true); do pids+=("$w"); done
        fi
        sub=(--sub-url "$url/api/v1/events" --sub-header "Authorization: Bearer $token")
        pub=(--pub-url "$url/api/v1/appointments" --pub-method POST
            --pub-header "Authorization: Bearer $token" --pub-header 'Content-Type: application/json'
            --pub-header 'Idempotency-Key: {uuid}' --pub-body-file "$body")
        ;;
    nchan | express-seed)
        out=$PEERS_OUT
        local port master
        if [ "$server" = nchan ]; then
            port=$NCHAN_PORT
            sub=(--sub-url "http://127.0.0.1:$port/sub")
            pub=(--pub-url "http://127.0.0.1:$port/pub")
        else
            port=$EXPRESS_PORT
            sub=(--sub-url "http://127.0.0.1:$port/api/appointments/stream")
            pub=(--pub-url "http://127.0.0.1:$port/api/appointments")
        fi
        pub+=(--pub-method POST --pub-header 'Content-Type: application/json'
            --pub-body-file "$SHARED/peers/booking.json")
        # As run-peers.sh starts them: pinned to SERVER_CPU, fresh state, nginx's workers too.
        master=$(taskset -c "$SERVER_CPU" "$SHARED/peers/$server/run.sh" start "$port") ||
            die "$server did not start"
        peer_stop="$SHARED/peers/$server/run.sh stop $port"
        pids=("$master")
        for w in $(pgrep -P "$master" || true); do pids+=("$w"); done
        sleep 0.5 # as run-peers.sh: let the workers settle before connecting
        ;;
    *) die "unknown server $server" ;;
    esac

    local pid_args=() p
    for p in "${pids[@]}"; do pid_args+=(--server-pid "$p"); done
    local samples=$work/samples.txt run_json=$work/run.json pg_before=$work/pg-before.json pg_after=$work/pg-after.json
    : >"$run_json"
    taskset -c "$TOOL_CPU" python3 "$REPORT" sample "$SAMPLE_S" "${pids[@]}" >"$samples" &
    sampler_pid=$!
    # PostgreSQL's CPU time and memory beside the node's (not in the server's figures).
    local with_pg=0
    case "$server" in carebridge-pg | carebridge-cluster | carebridge-pg-proxied) with_pg=1 ;; esac
    if [ "$with_pg" = 1 ]; then python3 "$REPORT" pgstat "$pg_pid" >"$pg_before"; fi

    log "$label, round $round of $ROUNDS (pid ${pids[*]})"
    local rc=0 t_start t_exit
    t_start=$(date +%s.%N)
    taskset -c "$TOOL_CPU" "$SSEFAN" "${sub[@]}" -n "$n" "${pub[@]}" "${load[@]}" "${pid_args[@]}" \
        --label "$label" --json-out "$run_json" -q >/dev/null || rc=$?
    t_exit=$(date +%s.%N)
    if [ "$with_pg" = 1 ]; then python3 "$REPORT" pgstat "$pg_pid" >"$pg_after"; fi
    sleep "$AFTER_S" # the sampler's readings once the stalled subscribers' sockets are closed
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=""

    case "$server" in
    carebridge*)
        stop_balancer
        stop_nodes
        pg_drop
        ;;
    *)
        $peer_stop >/dev/null
        peer_stop=""
        ;;
    esac
    if [ "$rc" != 0 ] || [ ! -s "$run_json" ]; then
        log "FAULT: ssefan exited $rc ($label, round $round)"
        faulty=$((faulty + 1))
    else
        if [ "$with_pg" = 1 ]; then
            python3 "$REPORT" pgdiff "$run_json" "$pg_before" "$pg_after" "$t_start" "$t_exit" ||
                die "could not add PostgreSQL's figures to $run_json"
        fi
        python3 "$REPORT" merge "$run_json" "$samples" "$t_start" "$t_exit" "$round" "$out" >&2 ||
            faulty=$((faulty + 1))
    fi
    sleep 1 # as run-peers.sh: let the last server's sockets close
}

servers=()
for peer in $PEERS; do servers+=("$peer"); done
for backend in $BACKENDS; do
    case "$backend" in
    sqlite) servers+=(carebridge) ;;
    postgres) servers+=(carebridge-pg) ;;
    cluster) servers+=(carebridge-cluster) ;;
    proxied) servers+=(carebridge-pg-proxied) ;;
    esac
done
[ "${#servers[@]}" -gt 0 ] || die "nothing to measure: PEERS and BACKENDS are empty (or CAREBRIDGE=0)"
if [ "$need_pg" = 1 ]; then pg_up; fi

# Alternated: every server once per round, so that a slow spell of the shared machine falls on
# all of them instead of on whichever went last.
for n in $NS; do
    for sc in $SCENARIOS; do
        for round in $(seq "$ROUNDS"); do
            for server in "${servers[@]}"; do
                run_one "$server" "$n" "$sc" "$MAX_S" "$round"
            done
        done
    done
done
if [ "$STALL" = 1 ]; then
    for round in $(seq "$ROUNDS"); do
        for server in "${servers[@]}"; do
            run_one "$server" "$STALL_N" maxstall "$STALL_MAX_S" "$round"
        done
    done
fi

# ---- the tables ----------------------------------------------------------------------------

files=()
for f in "$PEERS_OUT" "$NODE_OUT"; do
    if [ -s "$f" ]; then files+=("$f"); fi
done
[ "${#files[@]}" -gt 0 ] || die "no results were written"
table=$(
    python3 "$SHARED/summarize.py" "${files[@]}"
    echo
    python3 "$REPORT" tables "${files[@]}"
)
echo "$table"
log "JSON lines: ${files[*]}"

if [ "$faulty" -gt 0 ]; then
    log "$faulty run(s) had faults (lost, duplicated or unexpected deliveries, refused or dropped subscribers, failed publishes): see above; docs/performance.md left alone"
    exit 1
fi

[ "$DOC" = 1 ] || exit 0
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
section=$(
    echo "Measured $(date -u +%F) by \`make bench\` on $(nproc) CPUs (${cpu:-unknown CPU}), kernel $(uname -sr)."
    echo "Knobs: NS=\"$NS\" SCENARIOS=\"$SCENARIOS\" ROUNDS=$ROUNDS MAX_S=$MAX_S RATE_S=$RATE_S PEERS=\"$PEERS\" BACKENDS=\"$BACKENDS\" WARMUP=$WARMUP STALL=$STALL (n=$STALL_N, ${STALL_MAX_S}s); servers alternated in each round, on CPU $SERVER_CPU; ssefan on CPU $TOOL_CPU."
    echo
    echo "$table"
)
SECTION=$section python3 - "$PERF_DOC" <<'PY'
import os, sys
path = sys.argv[1]
begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
text = open(path, encoding="utf-8").read()
i, j = text.find(begin), text.find(end)
if i < 0 or j < i:
    sys.exit(f"node-bench: {path} lacks the markers {begin} ... {end}")
text = text[: i + len(begin)] + "\n" + os.environ["SECTION"].rstrip("\n") + "\n" + text[j:]
open(path, "w", encoding="utf-8").write(text)
PY
log "figures written to ${PERF_DOC#"$REPO"/}"
