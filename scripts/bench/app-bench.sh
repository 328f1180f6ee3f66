#!/usr/bin/env bash
# The desktop app's benchmark (`make bench` runs it last), under Xvfb on a private session bus:
#
#   1. start-up: from spawn to the first interactive screen (the staff sign-in form asking for
#      its data; the empty app's page calling its first command), RUNS times each, median;
#   2. memory after start: PSS (/proc/PID/smaps_rollup) summed over the app and its WebKit
#      processes, 3 s after it became interactive, median of the same runs;
#      both next to the floor, an empty one-window Tauri app with the same Tauri (scripts/bench/
#      empty-app), built in the same release profile and measured in the same run;
#   3. the live loop: kiosk click on Book → booking drawn in the doctor's window, over
#      LOOP_BOOKINGS bookings (benches/live_loop.rs, through tauri-driver): p50 and p99 (a p99
#      needs at least 100 samples; with fewer the table shows the maximum, labelled so), and
#      each hop on the way from the marks the node, both apps and the doctor's window leave
#      (CAREBRIDGE_TIMELINE; the files stay in target/bench-app);
#   4. writes the table, with the machine and date, into docs/performance.md between
#      <!-- app-bench:begin --> and <!-- app-bench:end --> (DOC=0 leaves the page alone).
#
# Knobs: RUNS=7, LOOP_BOOKINGS=200 (the live loop; at most 250), DOC=1, LIVE_ONLY=0 (1: the live
# loop alone, printed, the page left alone), CARGO_TARGET_DIR.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
RUNS=${RUNS:-7}
DOC=${DOC:-1}
LIVE_ONLY=${LIVE_ONLY:-0}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
WORK=$REPO/target/bench-app
PERF_DOC=$REPO/docs/performance.md

die() { echo "app-bench: $*" >&2; exit 1; }
log() { echo "app-bench: $*" >&2; }
for tool in cargo Xvfb dbus-run-session python3; do
    command -v "$tool" >/dev/null || die "$tool not found (make deps installs what is missing)"
done
driver=$(command -v tauri-driver || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver")
[ -x "$driver" ] || die "tauri-driver not found (make deps installs it)"

if [ "${APP_BENCH_INSIDE:-}" != 1 ]; then
    log "building the app, the empty app and the node (release)"
    (cd ui && npm run build >/dev/null)
    cargo build --release --locked --quiet -p carebridge-app -p carebridge-bench-empty-app \
        -p carebridge-server --bin carebridge-app --bin carebridge-bench-empty-app --bin carebridge-node
    # The live loop's binary, built now so that its run measures nothing but the loop.
    live_bin=$(cargo bench --locked --no-run --quiet -p carebridge-app --bench live_loop --message-format=json |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "live_loop" and m.get("executable"):
        print(m["executable"])')
    [ -x "$live_bin" ] || die "the live loop's binary was not built"
    rm -rf "$WORK" && mkdir -p "$WORK"
    display=$(for n in $(seq 120 220); do [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ] || { echo "$n"; break; }; done)
    Xvfb ":$display" -screen 0 1440x900x24 -nolisten tcp >/dev/null 2>&1 &
    xvfb=$!
    trap 'kill "$xvfb" 2>/dev/null || true' EXIT
    for _ in $(seq 200); do [ -e "/tmp/.X11-unix/X$display" ] && break; sleep 0.05; done
    DISPLAY=":$display" APP_BENCH_INSIDE=1 HOME="$WORK/home" XDG_RUNTIME_DIR="$WORK/home" \
        XDG_CONFIG_HOME="$WORK/home/config" XDG_DATA_HOME="$WORK/home/data" \
        E2E_TAURI_DRIVER="$driver" CARGO_TARGET_DIR="$TARGET" LIVE_BIN="$live_bin" \
        dbus-run-session -- "$0"
    exit $?
fi

# Inside the bus and the display from here on.
mkdir -p "$HOME"
dunst >/dev/null 2>&1 &
export CAREBRIDGE_PASSPHRASE=bench CAREBRIDGE_REPORT_INTERACTIVE=1 CAREBRIDGE_LOG=warn
results=$WORK/results.tsv
: >"$results"

# PSS in KiB of a process and all its descendants.
pss_tree() {
    local pids=("$1") all=() p
    while ((${#pids[@]})); do
        p=${pids[0]}; pids=("${pids[@]:1}"); all+=("$p")
        for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do pids+=("$c"); done
    done
    local sum=0 v
    for p in "${all[@]}"; do
        v=$(awk '/^Pss:/ {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# One launch: ms from spawn to interactive, and PSS (KiB) 3 s later.
measure() {
    local name=$1 bin=$2 out="$WORK/$1.out"
    rm -rf "$XDG_DATA_HOME"
    local start pid line at
    start=$(date +%s%3N)
    "$bin" >"$out" 2>"$WORK/$name.err" &
    pid=$!
    for _ in $(seq 600); do
        line=$(grep -m1 '^interactive at ' "$out" || true)
        [ -n "$line" ] && break
        sleep 0.05
    done
    [ -n "$line" ] || { kill "$pid" 2>/dev/null || true; die "$name never became interactive (see $WORK/$name.err)"; }
    at=${line#interactive at }
    # Memory after start: once the first screen settled.
    sleep 3
    printf '%s\t%s\t%s\n' "$name" "$((at - start))" "$(pss_tree "$pid")" >>"$results"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # WebKit's children linger a moment after the app.
    for _ in $(seq 100); do pgrep -f WebKitWebProcess >/dev/null || break; sleep 0.05; done
}

[ "$LIVE_ONLY" = 1 ] && RUNS=0 DOC=0
for i in $(seq "$RUNS"); do
    log "start-up and memory, run $i of $RUNS"
    measure empty "$TARGET/release/carebridge-bench-empty-app"
    measure carebridge "$TARGET/release/carebridge-app"
done

log "the live loop: ${LOOP_BOOKINGS:-200} bookings from the kiosk to the doctor's window"
rm -f "$WORK"/timeline*.jsonl
loop_out=$(BENCH_NODE="$TARGET/release/carebridge-node" CAREBRIDGE_TIMELINE="$WORK/timeline.jsonl" \
    "$LIVE_BIN" --bench 2>"$WORK/live.err" || true)
live=$(grep '^live-loop ' <<<"$loop_out" || true)
hops=$(grep '^live-loop-hop ' <<<"$loop_out" || true)
[ -n "$live" ] || die "the live loop failed: $(tail -5 "$WORK/live.err")"
log "$live"
hop_table=$(HOPS="$hops" python3 - <<'PY'
import os
rows = [dict(kv.split("=", 1) for kv in l.split()[1:]) for l in os.environ["HOPS"].splitlines() if l.strip()]
what = {
    "click→stored": "kiosk: click → the booking stored in its outbox (the command, its IPC, one SQLCipher transaction)",
    "stored→node-committed": "kiosk's outbox → node committed it (the POST, the node's transaction and fsync)",
    "node-committed→streamed": "node: commit → written to the doctor's stream",
    "streamed→applied": "stream → the doctor's core applied it (SSE, JSON, one SQLCipher transaction)",
    "applied→changed": "doctor's core → the app emits `changed`",
    "changed→heard": "`changed` → heard in the doctor's window (Tauri event)",
    "heard→read": "window: the screens' reads answered (IPC, queries on the local store)",
    "read→drawn": "window: the answer drawn (React, layout, paint)",
}
print("| hop | bookings | p50 | p99 | max |")
print("|---|---|---|---|---|")
slowest = None
for r in rows:
    if r.get("n", "0") == "0":
        print(f"| {what.get(r['hop'], r['hop'])} | 0 | – | – | – |")
        continue
    p99 = float(r["p99_ms"])
    if slowest is None or p99 > slowest[1]:
        slowest = (r["hop"], p99)
    print(f"| {what.get(r['hop'], r['hop'])} | {r['n']} | {float(r['p50_ms']):.1f} ms | {p99:.1f} ms | {float(r['max_ms']):.1f} ms |")
if slowest:
    print(f"\nThe slowest hop at p99: {what.get(slowest[0], slowest[0])}, {slowest[1]:.1f} ms.")
PY
)
echo "$hop_table"
if [ "$LIVE_ONLY" = 1 ]; then
    exit 0
fi

table=$(LIVE="$live" python3 - "$results" <<'PY'
import os, statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
def med(name, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == name)
e_ms, c_ms = med("empty", 1), med("carebridge", 1)
e_kib, c_kib = med("empty", 2), med("carebridge", 2)
live = dict(kv.split("=") for kv in os.environ["LIVE"].split()[1:])
mib = lambda k: f"{k / 1024:.0f} MiB"
ok = lambda good: "met" if good else "not met"
print("| measure | CareBridge staff app | empty Tauri app (floor) | ratio | target |")
print("|---|---|---|---|---|")
print(f"| launch to first interactive screen (median) | {c_ms:.0f} ms | {e_ms:.0f} ms | {c_ms / e_ms:.2f}× | ≤ 1.5× — {ok(c_ms <= 1.5 * e_ms)} |")
print(f"| memory after start, PSS app + WebKit (median) | {mib(c_kib)} | {mib(e_kib)} | {c_kib / e_kib:.2f}× | ≤ 1.25× — {ok(c_kib <= 1.25 * e_kib)} |")
n, p50, p99, top = int(live["n"]), float(live["p50_ms"]), float(live["p99_ms"]), float(live["max_ms"])
# Below 100 samples the 99th percentile is the maximum (or near it) under another name: show the
# maximum, and judge the target by it (stricter), saying so.
if n >= 100:
    shown, verdict = f"p50 {p50:.0f} ms, p99 {p99:.0f} ms (max {top:.0f} ms)", ok(p99 < 100)
else:
    shown = f"p50 {p50:.0f} ms, max {top:.0f} ms (too few for a p99)"
    verdict = f"met by all {n}" if top < 100 else f"not shown: the max of {n} is {top:.0f} ms; a p99 needs ≥ 100 bookings"
print(f"| live loop, kiosk click → drawn in the doctor's window ({n} bookings) | {shown} | | | p99 < 100 ms — {verdict} |")
PY
)
echo "$table"

if [ "$DOC" = 1 ]; then
    machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)"
    block=$(printf '%s\n\nThe live loop, hop by hop (each booking timed at both ends of a hop on the machine'"'"'s clock; p50/p99 per hop do not add up to the whole):\n\n%s\n\nMeasured %s on %s; release builds under Xvfb, %s launches each, fresh profile each launch.\n' \
        "$table" "$hop_table" "$(date -u +%Y-%m-%d)" "$machine" "$RUNS")
    BLOCK="$block" python3 - "$PERF_DOC" <<'PY'
import os, re, sys
path = sys.argv[1]
text = open(path).read()
block = "<!-- app-bench:begin -->\n" + os.environ["BLOCK"].strip() + "\n<!-- app-bench:end -->"
pat = re.compile(r"<!-- app-bench:begin -->.*?<!-- app-bench:end -->", re.S)
if not pat.search(text):
    raise SystemExit(f"{path} has no <!-- app-bench:begin/end --> markers")
open(path, "w").write(pat.sub(lambda _: block, text))
PY
    log "wrote the table into docs/performance.md"
fi
