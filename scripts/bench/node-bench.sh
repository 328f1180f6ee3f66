#!/usr/bin/env bash
# The `make bench` driver: CareBridge's live stream (GET /api/v1/events) against the peers in
# ../shared/bench (nginx + nchan, the seed's Express design), on this machine, in one run.
#
#   1. builds ssefan (../shared/bench/ssefan) into target/ssefan;
#   2. for each N in $NS and scenario in $SCENARIOS, ROUNDS times in turn: nchan, the seed, the
#      node (ABAB...), each freshly started and pinned to CPU 0 (the node: a fresh demo data dir
#      seeded by `demo --prepare-only`, then `serve`d by a process of its own, signed in as
#      reception), with ssefan pinned to CPU 1: N subscribers on the event stream,
#      publishes (for the node: bookings); then the slow-subscriber scenario (maxstall: STALL_N
#      subscribers + 50 that never read, STALL_MAX_S s) in the same alternation;
#   3. during every run samples the server's RSS (VmRSS of its processes, every SAMPLE_S s) from
#      ssefan's start until 2 s after it exited, so the peak while the stalled subscribers are
#      attached and the value at their end are known, not only ssefan's before/after readings;
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
# PEERS="nchan express-seed" (empty: no peers), MAX_S=10, RATE_S=15 (rate20's duration),
# STALL=1 (0: no stall runs), STALL_N=100, STALL_MAX_S=30, CAREBRIDGE=1 (0: peers only),
# DEMO_ARGS="--doctors 5 --days 30 --patients 1000 --bench --durability full" (the demo's size),
# SERVER_CPU=0, TOOL_CPU=1, SAMPLE_S=0.5, NCHAN_PORT=18081, EXPRESS_PORT=18082,
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
APPEND=${APPEND:-0}
DOC=${DOC:-1}
DEMO_ARGS=${DEMO_ARGS:-"--doctors 5 --days 30 --patients 1000 --bench --durability full"}
read -r -a demo_args <<<"$DEMO_ARGS"
START_TIMEOUT_S=${START_TIMEOUT_S:-120} # the demo seeds a year of slots for 5 doctors first
STOP_TIMEOUT_S=${STOP_TIMEOUT_S:-30}
# How long the sampler goes on after ssefan exited (the stalled subscribers' sockets closed).
AFTER_S=2

BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/carebridge-node
SSEFAN_TARGET=$REPO/target/ssefan
SSEFAN=$SSEFAN_TARGET/release/ssefan
REPORT=$REPO/scripts/bench/fanout-report.py
OUT_DIR=$REPO/target/bench
PEERS_OUT=$OUT_DIR/peers.jsonl
NODE_OUT=$OUT_DIR/carebridge.jsonl
PERF_DOC=$REPO/docs/performance.md

die() { echo "node-bench: $*" >&2; exit 1; }
log() { echo "node-bench: $*" >&2; }

for tool in cargo curl jq python3 taskset; do
    command -v "$tool" >/dev/null || die "$tool not found (make bench-deps installs what is missing)"
done
[ -d "$SHARED" ] || die "$SHARED not found: the shared bench folder must sit next to the repository"
if [ "$CAREBRIDGE" = 1 ] && [ ! -x "$BIN" ]; then
    die "$BIN not found: build it first (make build)"
fi
for peer in $PEERS; do
    case "$peer" in
    nchan) command -v nginx >/dev/null || die "nginx not found (make bench-deps installs it)" ;;
    express-seed) [ -d "$SHARED/peers/express-seed/node_modules" ] || die "the seed's node_modules are missing (make bench-deps)" ;;
    *) die "unknown peer $peer" ;;
    esac
done
[ "$ROUNDS" -ge 1 ] 2>/dev/null || die "ROUNDS must be a number >= 1"

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

node_pid=""
peer_stop=""
sampler_pid=""
work=$(mktemp -d "${TMPDIR:-/tmp}/carebridge-bench.XXXXXX")
nodelog=""
cleanup() {
    if [ -n "$sampler_pid" ]; then kill "$sampler_pid" 2>/dev/null || true; fi
    if [ -n "$peer_stop" ]; then $peer_stop >/dev/null 2>&1 || true; fi
    if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
    fi
    rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_node: a fresh demo node on CPU $SERVER_CPU with its own data dir under $work, output to
# $nodelog. Sets node_pid, addr, token, body (the booking template file). The data is seeded by
# one process (`demo --prepare-only`) and served by another (`serve`), as a hospital's node is
# started: the serving process's memory then holds nothing left over from seeding.
start_node() {
    local data=$work/data creds=$work/data/demo-credentials.json port
    rm -rf -- "$data"
    # A free port for node.toml (--prepare-only writes a fixed one).
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    taskset -c "$SERVER_CPU" "$BIN" demo --prepare-only --data-dir "$data" \
        --listen "127.0.0.1:$port" "${demo_args[@]}" >"$nodelog" 2>&1 </dev/null ||
        { cat "$nodelog" >&2; die "seeding the demo node failed (log above)"; }
    # The connection cap (4096 by default) raised past the largest N, as a hospital with that
    # many workstations would set it.
    CAREBRIDGE_MAX_CONNECTIONS=16000 taskset -c "$SERVER_CPU" "$BIN" serve --data-dir "$data" \
        >>"$nodelog" 2>&1 </dev/null &
    node_pid=$!

    # Wait for "carebridge-node listening on http://ADDR", polling with a deadline.
    addr=""
    local deadline=$((SECONDS + START_TIMEOUT_S))
    while [ -z "$addr" ]; do
        if ! kill -0 "$node_pid" 2>/dev/null; then
            wait "$node_pid" || true
            node_pid=""
            cat "$nodelog" >&2
            die "carebridge-node exited before listening (log above)"
        fi
        addr=$(sed -n 's|^.*carebridge-node listening on http://\([^/[:space:]]*\).*$|\1|p' "$nodelog" | head -n1)
        if [ -z "$addr" ]; then
            [ "$SECONDS" -lt "$deadline" ] || { cat "$nodelog" >&2; die "carebridge-node not listening after ${START_TIMEOUT_S}s"; }
            sleep 0.05 # poll interval
        fi
    done
    [ -f "$creds" ] || die "$creds missing although the node is listening"

    # One reception session for every subscriber and the publishers.
    local user pass
    user=$(jq -er .reception.username "$creds")
    pass=$(jq -er .reception.password "$creds")
    token=$(jq -n --arg u "$user" --arg p "$pass" '{username: $u, password: $p}' |
        curl -sS --fail-with-body --max-time 10 -X POST "http://$addr/api/v1/sessions" \
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
}

# stop_node: SIGTERM, then wait for it (SIGKILL after STOP_TIMEOUT_S, and say so).
stop_node() {
    [ -n "$node_pid" ] || return 0
    kill -TERM "$node_pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT_S))
    while kill -0 "$node_pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "carebridge-node (pid $node_pid) still running ${STOP_TIMEOUT_S}s after SIGTERM: killing it"
            kill -KILL "$node_pid" 2>/dev/null || true
            break
        fi
        sleep 0.05 # poll interval
    done
    local rc=0
    wait "$node_pid" 2>/dev/null || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 143 ] || log "carebridge-node exited with status $rc (log: $nodelog)"
    node_pid=""
}

# ---- one run ----------------------------------------------------------------------------------

faulty=0

# run_one SERVER N SCENARIO MAX_SECONDS ROUND: a freshly started SERVER (nchan, express-seed or
# carebridge) under one ssefan run, its memory sampled throughout; appends the run's JSON line to
# the peers' or the node's file and counts it in $faulty if it had any fault.
run_one() {
    local server=$1 n=$2 sc=$3 max_s=$4 round=$5 label_sc load sub=() pub=() pids=() out
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
    carebridge)
        out=$NODE_OUT
        nodelog=$OUT_DIR/logs/carebridge-n$n-$label_sc-r$round.log
        start_node
        pids=("$node_pid")
        sub=(--sub-url "http://$addr/api/v1/events" --sub-header "Authorization: Bearer $token")
        pub=(--pub-url "http://$addr/api/v1/appointments" --pub-method POST
            --pub-header "Authorization: Bearer $token" --pub-header 'Content-Type: application/json'
            --pub-header 'Idempotency-Key: {uuid}' --pub-body-file "$body")
        ;;
    nchan | express-seed)
        out=$PEERS_OUT
        local port master w
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
    local samples=$work/samples.txt run_json=$work/run.json
    : >"$run_json"
    taskset -c "$TOOL_CPU" python3 "$REPORT" sample "$SAMPLE_S" "${pids[@]}" >"$samples" &
    sampler_pid=$!

    log "$label, round $round of $ROUNDS (pid ${pids[*]})"
    local rc=0 t_start t_exit
    t_start=$(date +%s.%N)
    taskset -c "$TOOL_CPU" "$SSEFAN" "${sub[@]}" -n "$n" "${pub[@]}" "${load[@]}" "${pid_args[@]}" \
        --label "$label" --json-out "$run_json" -q >/dev/null || rc=$?
    t_exit=$(date +%s.%N)
    sleep "$AFTER_S" # the sampler's readings once the stalled subscribers' sockets are closed
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=""

    if [ "$server" = carebridge ]; then
        stop_node
    else
        $peer_stop >/dev/null
        peer_stop=""
    fi
    if [ "$rc" != 0 ] || [ ! -s "$run_json" ]; then
        log "FAULT: ssefan exited $rc ($label, round $round)"
        faulty=$((faulty + 1))
    else
        python3 "$REPORT" merge "$run_json" "$samples" "$t_start" "$t_exit" "$round" "$out" >&2 ||
            faulty=$((faulty + 1))
    fi
    sleep 1 # as run-peers.sh: let the last server's sockets close
}

servers=()
for peer in $PEERS; do servers+=("$peer"); done
if [ "$CAREBRIDGE" = 1 ]; then servers+=(carebridge); fi
[ "${#servers[@]}" -gt 0 ] || die "nothing to measure: PEERS is empty and CAREBRIDGE=0"

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
    echo "Knobs: NS=\"$NS\" SCENARIOS=\"$SCENARIOS\" ROUNDS=$ROUNDS MAX_S=$MAX_S RATE_S=$RATE_S PEERS=\"$PEERS\" STALL=$STALL (n=$STALL_N, ${STALL_MAX_S}s); servers alternated in each round, on CPU $SERVER_CPU; ssefan on CPU $TOOL_CPU."
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
