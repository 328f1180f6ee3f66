#!/usr/bin/env bash
# FHIR Bulk Data export of the core bench's seeded node (100,000 patients, 500,000 appointments):
# kick-off to manifest, then every file downloaded, ROUNDS times; resources per second and the
# node's peak RSS during each export (its high-water mark reset before each), beside its idle
# RSS. Target (issue 19): at least 50,000 resources/s with the node under 200 MiB.
#   ROUNDS=3 TYPES=Patient,Appointment scripts/bench/fhir-bench.sh
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
PATIENTS=${PATIENTS:-100000}
APPOINTMENTS=${APPOINTMENTS:-500000}
DOCTORS=${DOCTORS:-50}
ROUNDS=${ROUNDS:-3}
TYPES=${TYPES:-Patient,Appointment}
START_TIMEOUT_S=${START_TIMEOUT_S:-900}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
NODE=$TARGET/release/carebridge-node
WORK=$REPO/target/bench-core
OUT=$REPO/target/bench-fhir/results.jsonl

die() { echo "fhir-bench: $*" >&2; exit 1; }
log() { echo "fhir-bench: $*" >&2; }
for tool in cargo jq python3; do
    command -v "$tool" >/dev/null || die "$tool not found (make bench-deps installs what is missing)"
done

log "building carebridge-node (release)"
cargo build --release --locked --quiet -p carebridge-server --features demo --bin carebridge-node

mkdir -p "$WORK" "$(dirname "$OUT")"
data=$WORK/node
# shellcheck source=seeded-node.sh
. "$REPO/scripts/bench/seeded-node.sh"
forget_if_resized "$data"
trap stop_node EXIT
serve_node "$data" "$REPO/target/bench-fhir/node.log"
creds=$data/demo-credentials.json
log "exporting $TYPES from $size, $ROUNDS rounds"
python3 - "$url" "$(jq -r .admin.username "$creds")" "$(jq -r .admin.password "$creds")" \
    "$pid" "$ROUNDS" "$TYPES" <<'PY' | tee "$OUT"
import json, sys, time, urllib.request

url, user, password, pid, rounds, types = sys.argv[1:7]

def call(method, path, body=None, headers=None, token=None):
    req = urllib.request.Request(url + path, method=method, data=body)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    return urllib.request.urlopen(req, timeout=600)

def mib(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0

token = json.load(call("POST", "/api/v1/sessions", json.dumps({"username": user, "password": password}).encode(),
                       {"Content-Type": "application/json"}))["token"]
idle = mib("VmRSS")
for n in range(int(rounds)):
    # The high-water mark from here: this export's peak, not start-up's.
    open(f"/proc/{pid}/clear_refs", "w").write("5")
    t0 = time.monotonic()
    res = call("GET", f"/fhir/R4/$export?_type={types}", headers={"Prefer": "respond-async"}, token=token)
    status_url = res.headers["Content-Location"]
    status_path = status_url[status_url.index("/fhir/R4"):]
    while True:
        r = call("GET", status_path, token=token)
        if r.status == 200:
            manifest = json.load(r)
            break
        time.sleep(0.05)
    written = time.monotonic() - t0
    resources = 0
    size = 0
    for o in manifest["output"]:
        body = call("GET", o["url"][o["url"].index("/fhir/R4"):], token=token)
        lines = 0
        while chunk := body.read(1 << 20):
            lines += chunk.count(b"\n")
            size += len(chunk)
        if lines != o["count"]:
            sys.exit(f"{o['type']}: {lines} lines, the manifest says {o['count']}")
        resources += lines
    total = time.monotonic() - t0
    call("DELETE", status_path, token=token)
    print(json.dumps({"bench": "fhir-export", "round": n + 1, "types": types, "resources": resources,
                      "bytes": size, "written_s": round(written, 2), "total_s": round(total, 2),
                      "resources_per_s": round(resources / total), "peak_rss_mib": round(mib("VmHWM"), 1),
                      "idle_rss_mib": round(idle, 1)}), flush=True)
PY
stop_node
trap - EXIT
