#!/usr/bin/env python3
"""The fan-out bench's own bookkeeping, next to ../shared/bench/summarize.py (which merges runs
by median and so cannot show one run's faults). Used by scripts/bench/node-bench.sh.

  fanout-report.py sample INTERVAL_S PID...
      prints "unix_time rss_kib" (VmRSS summed over the PIDs) every INTERVAL_S until killed or
      every PID is gone.
  fanout-report.py merge RUN.json SAMPLES T_START T_EXIT ROUND OUT.jsonl
      adds the run's round and its sampled memory to ssefan's JSON line, appends it to
      OUT.jsonl, prints one line with the run's faults; exit status 1 if it had any.
  fanout-report.py tables FILE.jsonl...
      markdown: each run's faults (lost, duplicated, ...) and, for the slow-subscriber runs,
      memory while the stalled subscribers were attached, run by run.
"""
import json
import os
import statistics
import sys
import time


def sample(interval, pids):
    paths = [f"/proc/{p}/status" for p in pids]
    while True:
        total, alive = 0, False
        for path in paths:
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
                            alive = True
                            break
            except OSError:
                pass
        if not alive:
            return
        print(f"{time.time():.3f} {total}", flush=True)
        time.sleep(interval)


def get(d, path, default=None):
    for k in path.split("."):
        if not isinstance(d, dict) or d.get(k) is None:
            return default
        d = d[k]
    return d


def faults(r):
    """What went wrong in one run, as (name, count) for each non-zero count."""
    checks = [
        ("lost", get(r, "delivery.lost", 0)),
        ("duplicated", get(r, "delivery.duplicates", 0)),
        ("unexpected", get(r, "delivery.unexpected", 0)),
        ("subscribers refused", get(r, "subs.failed", 0)),
        ("subscribers disconnected", get(r, "subs.disconnected_during_run", 0)),
        ("publishes failed", get(r, "publish.failed", 0)),
        ("publishes not sent", get(r, "publish.not_sent", 0)),
    ]
    return [(name, n) for name, n in checks if n]


def merge(run_json, samples_path, t_start, t_exit, round_no, out):
    lines = [l for l in open(run_json).read().splitlines() if l.startswith("{")]
    if len(lines) != 1:
        sys.exit(f"fanout-report: {run_json}: expected one JSON line from ssefan, found {len(lines)}")
    r = json.loads(lines[0])
    samples = []
    for line in open(samples_path).read().splitlines():
        parts = line.split()
        if len(parts) == 2:
            samples.append((float(parts[0]), int(parts[1])))
    # The stalled subscribers attach once the normal ones are connected and stay until ssefan
    # exits; "attached" is that window, "after" the samples once ssefan was gone.
    attached_from = t_start + (get(r, "subs.connect_s", 0.0) or 0.0)
    attached = [kib for t, kib in samples if attached_from <= t <= t_exit]
    after = [kib for t, kib in samples if t > t_exit]
    r["round"] = round_no
    r["rss_sampled"] = {
        "interval_samples": len(samples),
        "attached_samples": len(attached),
        "peak_attached_kb": max(attached) if attached else None,
        "end_attached_kb": attached[-1] if attached else None,
        "after_kb": after[-1] if after else None,
        "peak_kb": max((kib for _, kib in samples), default=None),
    }
    with open(out, "a") as f:
        f.write(json.dumps(r, separators=(",", ":")) + "\n")
    bad = faults(r)
    verdict = "FAULTS: " + ", ".join(f"{n} {name}" for name, n in bad) if bad else "ok"
    mib = lambda kb: f"{kb / 1024:.1f}" if kb is not None else "-"
    s = r["rss_sampled"]
    print(
        f"{r.get('label', '?')} (round {round_no}): {get(r, 'publish.ok', 0)} publishes, "
        f"{get(r, 'delivery.received', 0)}/{get(r, 'delivery.expected', 0)} deliveries, "
        f"lost {get(r, 'delivery.lost', 0)}, dup {get(r, 'delivery.duplicates', 0)}; "
        f"RSS peak {mib(s['peak_kb'])} MiB -> {verdict}"
    )
    return 1 if bad else 0


def split_label(label):
    parts = label.split(" ")
    if len(parts) == 3 and parts[1].startswith("n="):
        return parts[0], parts[1][2:], parts[2]
    return label, "", ""


def tables(paths):
    runs = []
    for path in paths:
        for line in open(path):
            if line.startswith("{"):
                runs.append(json.loads(line))
    # In the order run (the peers and the node are in separate files).
    runs.sort(key=lambda r: r.get("unix_time", 0))
    by_label = {}
    for r in runs:
        by_label.setdefault(r.get("label", ""), []).append(r)

    print("Each run's deliveries, in the order run (one number per round; any non-zero fails the bench):")
    print()
    print("| peer | N | scenario | lost | duplicated | other faults |")
    print("|---|---|---|---|---|---|")
    for label, rs in by_label.items():
        peer, n, sc = split_label(label)
        lost = ", ".join(str(get(r, "delivery.lost", 0)) for r in rs)
        dup = ", ".join(str(get(r, "delivery.duplicates", 0)) for r in rs)
        other = []
        for r in rs:
            f = [f"{c} {name}" for name, c in faults(r) if name not in ("lost", "duplicated")]
            other.append("; ".join(f) if f else "0")
        print(f"| {peer} | {n} | {sc} | {lost} | {dup} | {', '.join(other)} |")

    mib = lambda kb: f"{kb / 1024:.0f}" if kb is not None else "-"
    median = lambda xs: statistics.median(xs) if xs else None
    print()
    print("Memory, median over the rounds: the server's RSS (MiB) when idle (started, its data "
          "loaded, before anyone connected), with the N subscribers connected, and the growth per "
          "subscriber (KiB).")
    print()
    print("| peer | N | scenario | idle | connected | growth / N (KiB) |")
    print("|---|---|---|---|---|---|")
    for label, rs in by_label.items():
        peer, n, sc = split_label(label)
        if not n:
            continue
        idle = median([v for r in rs if (v := get(r, "server.rss_kb.before")) is not None])
        conn = median([v for r in rs if (v := get(r, "server.rss_kb.connected")) is not None])
        per = None if idle is None or conn is None else (conn - idle) / int(n)
        print(f"| {peer} | {n} | {sc} | {mib(idle)} | {mib(conn)} | {'-' if per is None else f'{per:.1f}'} |")

    stall = [r for r in runs if (get(r, "config.stall", 0) or 0) > 0]
    if not stall:
        return
    num = lambda v: "-" if v is None else f"{v:.3g}" if v < 100 else f"{v:.0f}"
    print()
    print("Slow subscribers, run by run: server RSS (MiB) sampled every 0.5 s while the stalled "
          "subscribers were attached, and 2 s after they left.")
    print()
    print("| peer | N + stalled | round | pub/s | p99 ms (normal subscribers) | RSS connected | peak while stalled | end, still stalled | 2 s after they left |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in stall:
        peer, n, _ = split_label(r.get("label", ""))
        s = r.get("rss_sampled") or {}
        print(
            f"| {peer} | {n} + {get(r, 'config.stall')} | {r.get('round', '-')} | {num(get(r, 'publish.rate_per_s'))} "
            f"| {num(get(r, 'delivery.latency_ms.p99'))} | {mib(get(r, 'server.rss_kb.connected'))} "
            f"| {mib(s.get('peak_attached_kb'))} | {mib(s.get('end_attached_kb'))} | {mib(s.get('after_kb'))} |"
        )


def main(argv):
    if len(argv) >= 3 and argv[0] == "sample":
        sample(float(argv[1]), [int(p) for p in argv[2:]])
        return 0
    if len(argv) == 7 and argv[0] == "merge":
        return merge(argv[1], argv[2], float(argv[3]), float(argv[4]), int(argv[5]), argv[6])
    if len(argv) >= 2 and argv[0] == "tables":
        tables(argv[1:])
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        os._exit(1)
