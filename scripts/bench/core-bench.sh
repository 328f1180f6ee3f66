#!/usr/bin/env bash
# The client core's benchmark (`make bench` runs it after the node's): a large hospital's view
# synced into the encrypted local store and, in the same run, into plain SQLite.
#
#   1. seeds a demo node with PATIENTS patients and APPOINTMENTS appointments and the benchmark
#      doctor (release build, durability normal; the data dir is kept in target/bench-core/node
#      and reused while the size stays the same) and serves it on loopback;
#   2. first sync as reception (who sees everything): encrypted, then plain, each in its own
#      process so each peak RSS is its own;
#   3. on each synced store: name-prefix and full-text search, 2,000 queries each, every one the
#      start of the name of a patient drawn uniformly from all of them;
#   4. live events through the real stream, each store on a fresh copy of the seeded node (its
#      bookings must not change what the other store or the next run's first sync meets): the
#      benchmark doctor's client (first sync,
#      then the core's sync engine with a notifier) while the kiosk books with that doctor
#      through the API: LIVE_BOOKINGS bookings at LIVE_RATE/s, each timed from its response to
#      the engine's change notice and to the notifier's notice; then LIVE_BURST bookings while
#      the engine is stopped, and the time it takes to catch up once started (encrypted, then
#      plain);
#   5. writes the table, with the machine and date, into docs/performance.md between
#      <!-- core-bench:begin --> and <!-- core-bench:end --> (DOC=0 leaves the page alone).
# Exit status 1 if a booking was not noticed exactly once (the table is printed, the page left
# alone).
#
# Knobs: PATIENTS=100000, APPOINTMENTS=500000, DOCTORS=50, LIVE_BOOKINGS=1000, LIVE_RATE=50,
# LIVE_BURST=10000, DOC=1, START_TIMEOUT_S=900, CARGO_TARGET_DIR (where the release binaries are
# built).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
PATIENTS=${PATIENTS:-100000}
APPOINTMENTS=${APPOINTMENTS:-500000}
DOCTORS=${DOCTORS:-50}
LIVE_BOOKINGS=${LIVE_BOOKINGS:-1000}
LIVE_RATE=${LIVE_RATE:-50}
LIVE_BURST=${LIVE_BURST:-10000}
DOC=${DOC:-1}
START_TIMEOUT_S=${START_TIMEOUT_S:-900}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
NODE=$TARGET/release/carebridge-node
BENCH=$TARGET/release/examples/local_store_bench
WORK=$REPO/target/bench-core
OUT=$WORK/results.jsonl
PERF_DOC=$REPO/docs/performance.md

die() { echo "core-bench: $*" >&2; exit 1; }
log() { echo "core-bench: $*" >&2; }
for tool in cargo curl jq python3; do
    command -v "$tool" >/dev/null || die "$tool not found (make bench-deps installs what is missing)"
done

log "building carebridge-node and the core's bench binary (release)"
cargo build --release --locked --quiet -p carebridge-server --features demo --bin carebridge-node
cargo build --release --locked --quiet -p carebridge-core --example local_store_bench

mkdir -p "$WORK"
data=$WORK/node
live_data=$WORK/node-live
# shellcheck source=seeded-node.sh
. "$REPO/scripts/bench/seeded-node.sh"
forget_if_resized "$data"
rm -rf "$live_data"
trap 'stop_node; rm -rf "$live_data"' EXIT

[ -d "$data" ] && log "serving the seeded node ($size)"
serve_node "$data" "$WORK/node.log"
creds=$data/demo-credentials.json
user=$(jq -r .reception.username "$creds")
pass=$(jq -r .reception.password "$creds")

rm -f "$OUT"
for variant in "" --plain; do
    store=$WORK/store${variant:+-plain}
    rm -rf "$store"
    log "first sync ${variant:-(encrypted)}"
    "$BENCH" first-sync "$url" "$user" "$pass" "$store" $variant | tee -a "$OUT"
    log "search ${variant:-(encrypted)}"
    "$BENCH" search "$store" $variant | tee -a "$OUT"
done
stop_node

# The live bookings go to a fresh copy of the seeded node for each store, so both stores meet the
# same node and the seeded one stays as it is for the next run.
live_ok=1
for variant in "" --plain; do
    store=$WORK/live-store${variant:+-plain}
    rm -rf "$store" "$live_data"
    cp -a "$data" "$live_data"
    serve_node "$live_data" "$WORK/node-live.log"
    log "live events ${variant:-(encrypted)}: $LIVE_BOOKINGS bookings at $LIVE_RATE/s, then $LIVE_BURST while the client is away"
    "$BENCH" live "$url" "$live_data/demo-credentials.json" "$store" $variant \
        --bookings "$LIVE_BOOKINGS" --rate "$LIVE_RATE" --burst "$LIVE_BURST" | tee -a "$OUT" || live_ok=0
    stop_node
done
rm -rf "$live_data"
trap - EXIT

table=$(python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def get(bench, variant, **kw):
    for r in rows:
        if r["bench"] == bench and r["variant"] == variant and all(r.get(k) == v for k, v in kw.items()):
            return r
    return None
E, P = "SQLCipher", "plain SQLite"
def ms(v):
    return "-" if v is None else f"{v:.2f}"
# A p99 needs 100 samples or more; below that the bench reports only the maximum.
def pct(s):
    if s["p99_ms"] is not None:
        return f"{ms(s['p50_ms'])} / {ms(s['p99_ms'])} ms"
    return f"{ms(s['p50_ms'])} / max {ms(s['max_ms'])} ms"
def pct_label(s):
    return "p50 / p99" if s["p99_ms"] is not None else "p50 / max (too few for a p99)"
out = ["| measurement | target | SQLCipher | plain SQLite | cost of encryption |", "| --- | --- | --- | --- | --- |"]
e, p = get("first-sync", E), get("first-sync", P)
out.append(f"| first sync as reception, {e['records']:,} records | < 10 s | {e['secs']:.2f} s | {p['secs']:.2f} s | {e['secs']/p['secs']:.2f}× |")
out.append(f"| client peak RSS during the first sync | < 200 MB | {e['peak_rss_mib']:.1f} MiB | {p['peak_rss_mib']:.1f} MiB | |")
for kind, label in [("name-prefix", "patient search by name prefix"), ("full-text", "full-text search")]:
    e, p = get("search", E, kind=kind), get("search", P, kind=kind)
    cost = f"{e['p99_ms'] / p['p99_ms']:.2f}× (p99)" if e["p99_ms"] and p["p99_ms"] else ""
    out.append(f"| {label} over {e['patients']:,} patients, {pct_label(e)} of {e['queries']:,} queries "
               f"({e['distinct_prefixes']} distinct prefixes) | p99 < 5 ms | {pct(e)} | {pct(p)} | {cost} |")
e, p = get("live-events", E), get("live-events", P)
if e and p:
    for key, what in [("response_to_change_ms", "from the node's response to the engine's change notice"),
                      ("response_to_notice_ms", "from the node's response to the notifier's notice"),
                      ("request_to_change_ms", "from the kiosk's request to the engine's change notice")]:
        out.append(f"| live: kiosk bookings reaching the doctor's client through the stream (SSE, JSON, local "
                   f"transaction with its full-text update), {what}, {pct_label(e[key])} of {e[key]['n']:,} at "
                   f"{e['rate_per_s']:.0f}/s | – | {pct(e[key])} | {pct(p[key])} | |")
else:
    out.append("| live events through the stream | – | failed: see the log | | |")
e, p = get("live-catch-up", E), get("live-catch-up", P)
if e and p and e["events_per_s"] and p["events_per_s"]:
    out.append(f"| live: {e['events']:,} bookings made while the doctor's client was away, caught up through "
               f"the stream (engine start → the last one's change notice) | > 5,000/s "
               f"| {e['events_per_s']:,.0f}/s ({e['secs']:.2f} s) | {p['events_per_s']:,.0f}/s ({p['secs']:.2f} s) "
               f"| {p['events_per_s'] / e['events_per_s']:.2f}× |")
else:
    out.append("| live events caught up through the stream | > 5,000/s | failed: see the log | | |")
e, p = get("live-events", E), get("live-events", P)
if e and p:
    out.append("")
    out.append(f"The node streams a booking's event as it answers: {e['changes_before_response']} of {e['bookings']:,} "
               f"change notices (SQLCipher) and {p['changes_before_response']} of {p['bookings']:,} (plain) came "
               f"before the booking's response and count as 0 ms from it.")
faults = [f"{r['variant']} {r['bench']}: {r['faults']}" for r in rows
          if any(v for v in (r.get("faults") or {}).values())]
if faults:
    out.append("")
    out.append("Faults (bookings not noticed exactly once): " + "; ".join(faults))
print("\n".join(out))
PY
)
echo "$table"
if [ "$live_ok" != 1 ]; then
    log "the live-events bench failed or some bookings were not noticed exactly once: docs/performance.md left alone"
    exit 1
fi
if [ "$DOC" = 1 ]; then
    machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)"
    block=$(printf '%s\n\nMeasured %s on %s; %s, release build; live events: %s bookings at %s/s, then %s while the client was away.\n' \
        "$table" "$(date -u +%Y-%m-%d)" "$machine" "$size" "$LIVE_BOOKINGS" "$LIVE_RATE" "$LIVE_BURST")
    BLOCK="$block" python3 - "$PERF_DOC" <<'PY'
import os, re, sys
path = sys.argv[1]
doc = open(path).read()
block = "<!-- core-bench:begin -->\n" + os.environ["BLOCK"].strip() + "\n<!-- core-bench:end -->"
pat = re.compile(r"<!-- core-bench:begin -->.*?<!-- core-bench:end -->", re.S)
if not pat.search(doc):
    raise SystemExit(f"{path} has no <!-- core-bench:begin/end --> markers")
open(path, "w").write(pat.sub(lambda _: block, doc))
PY
    log "wrote the table into docs/performance.md"
fi
