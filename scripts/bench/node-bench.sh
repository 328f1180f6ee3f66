#!/usr/bin/env bash
# The `make bench` driver: CareBridge's live stream (GET /api/v1/events) against the peers in
# ../shared/bench (nginx + nchan, the seed's Express design), on this machine, in one run.
#
#   1. builds ssefan (../shared/bench/ssefan) into target/ssefan;
#   2. runs the peers with ../shared/bench/run-peers.sh  -> target/bench/peers.jsonl;
#   3. for each N in $NS and scenario in $SCENARIOS starts a fresh demo node pinned to CPU 0
#      (fresh data dir), signs in as reception, and points ssefan (pinned to CPU 1) at it:
#      N subscribers on the event stream, bookings as publishes -> target/bench/carebridge.jsonl
#      (each node's output in target/bench/logs/);
#   4. the slow-subscriber run (maxstall: STALL_N subscribers + 50 that never read, STALL_MAX_S s),
#      for the peers and the node alike;
#   5. prints the combined table (../shared/bench/summarize.py) and writes it, with the machine it
#      ran on, into docs/performance.md between <!-- bench:begin --> and <!-- bench:end -->.
#
# Knobs (environment): NS="1000 5000", SCENARIOS="rate20 max" (maxstall also accepted),
# PEERS="nchan express-seed" (empty: no peers), MAX_S=10, STALL=1 (0: no stall runs), STALL_N=100,
# STALL_MAX_S=30, CAREBRIDGE=1 (0: peers only), DEMO_ARGS="--doctors 5 --days 30 --patients 1000 --bench --durability full"
# (the demo's size), SERVER_CPU=0, TOOL_CPU=1, APPEND=0 (1: keep the JSON lines of earlier runs;
# summarize.py then reports medians per label), DOC=1 (0: leave docs/performance.md alone),
# START_TIMEOUT_S=120, STOP_TIMEOUT_S=30, CARGO_TARGET_DIR (where carebridge-node was built).
# Loopback only.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
SHARED=$REPO/../shared/bench

NS=${NS:-"1000 5000"}
SCENARIOS=${SCENARIOS:-"rate20 max"}
PEERS=${PEERS-"nchan express-seed"}
MAX_S=${MAX_S:-10}
STALL=${STALL:-1}
STALL_N=${STALL_N:-100}
STALL_MAX_S=${STALL_MAX_S:-30}
CAREBRIDGE=${CAREBRIDGE:-1}
SERVER_CPU=${SERVER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
APPEND=${APPEND:-0}
DOC=${DOC:-1}
DEMO_ARGS=${DEMO_ARGS:-"--doctors 5 --days 30 --patients 1000 --bench --durability full"}
read -r -a demo_args <<<"$DEMO_ARGS"
START_TIMEOUT_S=${START_TIMEOUT_S:-120} # the demo seeds a year of slots for 5 doctors first
STOP_TIMEOUT_S=${STOP_TIMEOUT_S:-30}

BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/carebridge-node
SSEFAN_TARGET=$REPO/target/ssefan
SSEFAN=$SSEFAN_TARGET/release/ssefan
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

# run-peers.sh builds ssefan from inside ../shared, where this repository's rust-toolchain.toml
# does not apply: pin the same toolchain so that build finds ours up to date instead of redoing it.
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

# ---- the peers -----------------------------------------------------------------------------

if [ -n "$PEERS" ]; then
    log "peers: $PEERS"
    CARGO_TARGET_DIR=$SSEFAN_TARGET OUT=$PEERS_OUT PEERS=$PEERS NS=$NS SCENARIOS=$SCENARIOS \
        MAX_S=$MAX_S SERVER_CPU=$SERVER_CPU TOOL_CPU=$TOOL_CPU "$SHARED/run-peers.sh" >/dev/null
    if [ "$STALL" = 1 ]; then
        log "peers, slow subscribers: n=$STALL_N for ${STALL_MAX_S}s"
        CARGO_TARGET_DIR=$SSEFAN_TARGET OUT=$PEERS_OUT PEERS=$PEERS NS=$STALL_N SCENARIOS=maxstall \
            MAX_S=$STALL_MAX_S SERVER_CPU=$SERVER_CPU TOOL_CPU=$TOOL_CPU "$SHARED/run-peers.sh" >/dev/null
    fi
fi

# ---- CareBridge ----------------------------------------------------------------------------

node_pid=""
work=""
nodelog=""
cleanup() {
    if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
    fi
    if [ -n "$work" ]; then rm -rf -- "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_node: a fresh demo node on CPU $SERVER_CPU with its own data dir under $work, output to
# $nodelog. Sets node_pid, addr, token, body (the booking template file).
start_node() {
    local data=$work/data creds=$work/data/demo-credentials.json
    rm -rf -- "$data"
    taskset -c "$SERVER_CPU" "$BIN" demo --data-dir "$data" --listen 127.0.0.1:0 \
        "${demo_args[@]}" >"$nodelog" 2>&1 </dev/null &
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

# run_node N SCENARIO MAX_SECONDS: one ssefan run against a freshly started node.
run_node() {
    local n=$1 sc=$2 max_s=$3 label_sc load
    case "$sc" in
    rate20)   load=(--rate 20 --duration 15 --publishers 4) ;;
    max)      load=(--duration "$max_s" --publishers 4) ;;
    maxstall) load=(--duration "$max_s" --publishers 4 --stall 50) ;;
    *) die "unknown scenario $sc" ;;
    esac
    label_sc=$sc
    # the same labels as run-peers.sh, so summarize.py lines the rows up
    if [ "$sc" != rate20 ] && [ "$max_s" != 10 ]; then label_sc="$sc-${max_s}s"; fi

    nodelog=$OUT_DIR/logs/carebridge-n$n-$label_sc.log
    start_node
    log "carebridge n=$n $label_sc (node pid $node_pid on http://$addr)"
    local rc=0
    taskset -c "$TOOL_CPU" "$SSEFAN" \
        --sub-url "http://$addr/api/v1/events" -n "$n" \
        --sub-header "Authorization: Bearer $token" \
        --pub-url "http://$addr/api/v1/appointments" --pub-method POST \
        --pub-header "Authorization: Bearer $token" \
        --pub-header 'Content-Type: application/json' \
        --pub-header 'Idempotency-Key: {uuid}' \
        --pub-body-file "$body" \
        "${load[@]}" --server-pid "$node_pid" \
        --label "carebridge n=$n $label_sc" --json-out "$NODE_OUT" -q >/dev/null || rc=$?
    [ "$rc" = 0 ] || log "ssefan exited $rc (carebridge n=$n $label_sc; node log: $nodelog)"
    stop_node
}

if [ "$CAREBRIDGE" = 1 ]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/carebridge-bench.XXXXXX")
    mkdir -p "$OUT_DIR/logs"
    for n in $NS; do
        for sc in $SCENARIOS; do
            run_node "$n" "$sc" "$MAX_S"
        done
    done
    if [ "$STALL" = 1 ]; then
        run_node "$STALL_N" maxstall "$STALL_MAX_S"
    fi
    rm -rf -- "$work"
    work=""
fi

# ---- the table -----------------------------------------------------------------------------

files=()
for f in "$PEERS_OUT" "$NODE_OUT"; do
    if [ -s "$f" ]; then files+=("$f"); fi
done
[ "${#files[@]}" -gt 0 ] || die "no results were written"
table=$(python3 "$SHARED/summarize.py" "${files[@]}")
echo "$table"
log "JSON lines: ${files[*]}"

[ "$DOC" = 1 ] || exit 0
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
section=$(
    echo "Measured $(date -u +%F) by \`make bench\` on $(nproc) CPUs (${cpu:-unknown CPU}), kernel $(uname -sr)."
    echo "Knobs: NS=\"$NS\" SCENARIOS=\"$SCENARIOS\" MAX_S=$MAX_S PEERS=\"$PEERS\" STALL=$STALL (n=$STALL_N, ${STALL_MAX_S}s); server on CPU $SERVER_CPU, ssefan on CPU $TOOL_CPU."
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
