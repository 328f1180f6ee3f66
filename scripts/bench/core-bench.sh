#!/usr/bin/env bash
# The client core's benchmark (`make bench` runs it after the node's): a large hospital's view
# synced into the encrypted local store and, in the same run, into plain SQLite.
#
#   1. seeds a demo node with PATIENTS patients and APPOINTMENTS appointments (release build,
#      durability normal; the data dir is kept in target/bench-core/node and reused while
#      PATIENTS/APPOINTMENTS stay the same) and serves it on loopback;
#   2. first sync as reception (who sees everything): encrypted, then plain, each in its own
#      process so each peak RSS is its own;
#   3. on each synced store: 10,000 live events applied, name-prefix and full-text search;
#   4. writes the table, with the machine and date, into docs/performance.md between
#      <!-- core-bench:begin --> and <!-- core-bench:end --> (DOC=0 leaves the page alone).
#
# Knobs: PATIENTS=100000, APPOINTMENTS=500000, DOCTORS=50, DOC=1, START_TIMEOUT_S=900,
# CARGO_TARGET_DIR (where the release binaries are built).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
PATIENTS=${PATIENTS:-100000}
APPOINTMENTS=${APPOINTMENTS:-500000}
DOCTORS=${DOCTORS:-50}
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
size="$DOCTORS doctors, $PATIENTS patients, $APPOINTMENTS appointments"
if [ "$(cat "$data/.size" 2>/dev/null)" != "$size" ]; then
    rm -rf "$data"
fi
nodelog=$WORK/node.log
if [ -d "$data" ]; then
    log "serving the seeded node ($size)"
    "$NODE" serve --data-dir "$data" --listen 127.0.0.1:0 >"$nodelog" 2>&1 &
else
    log "seeding $size (a few minutes)"
    "$NODE" demo --data-dir "$data" --listen 127.0.0.1:0 --durability normal \
        --doctors "$DOCTORS" --patients "$PATIENTS" --appointments "$APPOINTMENTS" >"$nodelog" 2>&1 &
fi
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
deadline=$((SECONDS + START_TIMEOUT_S))
url=""
while [ -z "$url" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$nodelog" >&2; die "carebridge-node exited before listening"; }
    [ "$SECONDS" -lt "$deadline" ] || die "carebridge-node not listening after ${START_TIMEOUT_S}s"
    url=$(sed -n 's|^.*carebridge-node listening on \(http://[^[:space:]]*\).*$|\1|p' "$nodelog" | head -n1)
    [ -n "$url" ] || sleep 1
done
echo "$size" >"$data/.size"
creds=$data/demo-credentials.json
user=$(jq -r .reception.username "$creds")
pass=$(jq -r .reception.password "$creds")

rm -f "$OUT"
for variant in "" --plain; do
    store=$WORK/store${variant:+-plain}
    rm -rf "$store"
    log "first sync ${variant:-(encrypted)}"
    "$BENCH" first-sync "$url" "$user" "$pass" "$store" $variant | tee -a "$OUT"
    log "live events and search ${variant:-(encrypted)}"
    "$BENCH" local "$store" $variant | tee -a "$OUT"
done
kill "$pid"
wait "$pid" 2>/dev/null || true
trap - EXIT

table=$(python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def get(bench, variant, **kw):
    for r in rows:
        if r["bench"] == bench and r["variant"] == variant and all(r.get(k) == v for k, v in kw.items()):
            return r
    raise SystemExit(f"missing {bench} {variant} {kw}")
E, P = "SQLCipher", "plain SQLite"
out = ["| measurement | target | SQLCipher | plain SQLite | cost of encryption |", "| --- | --- | --- | --- | --- |"]
e, p = get("first-sync", E), get("first-sync", P)
out.append(f"| first sync, {e['records']:,} records | < 10 s | {e['secs']:.2f} s | {p['secs']:.2f} s | {e['secs']/p['secs']:.2f}× |")
out.append(f"| client peak RSS during the first sync | < 200 MB | {e['peak_rss_mib']:.1f} MiB | {p['peak_rss_mib']:.1f} MiB | |")
for batch, label in [(256, "10,000 live events, batches of ≤ 256 (as the follower applies them)"), (1, "10,000 live events, one transaction each")]:
    e, p = get("apply-events", E, batch=batch), get("apply-events", P, batch=batch)
    out.append(f"| {label} | > 5,000/s | {e['events_per_s']:,.0f}/s | {p['events_per_s']:,.0f}/s | {p['events_per_s']/e['events_per_s']:.2f}× |")
for kind, label in [("name-prefix", "patient search by name prefix"), ("full-text", "full-text search")]:
    e, p = get("search", E, kind=kind), get("search", P, kind=kind)
    out.append(f"| {label} over {e['patients']:,} patients, p50 / p99 of {e['queries']:,} | p99 < 5 ms | {e['p50_ms']:.2f} / {e['p99_ms']:.2f} ms | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} ms | {e['p99_ms']/p['p99_ms']:.2f}× (p99) |")
print("\n".join(out))
PY
)
echo "$table"
if [ "$DOC" = 1 ]; then
    machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)"
    block=$(printf '%s\n\nMeasured %s on %s; %s, release build.\n' "$table" "$(date -u +%Y-%m-%d)" "$machine" "$size")
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
