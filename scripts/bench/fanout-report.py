#!/usr/bin/env python3
"""The fan-out bench's own bookkeeping, next to ../shared/bench/summarize.py (which merges runs
by median and so cannot show one run's faults). Used by scripts/bench/node-bench.sh.

  fanout-report.py sample INTERVAL_S PID...
      prints "unix_time rss_kib" (VmRSS summed over the PIDs) every INTERVAL_S until killed or
      every PID is gone.
  fanout-report.py merge RUN.json SAMPLES T_START T_EXIT ROUND OUT.jsonl
      adds the run's round and its sampled memory to ssefan's JSON line, appends it to
      OUT.jsonl, prints one line with the run's faults; exit status 1 if it had any.
  fanout-report.py pgstat POSTMASTER_PID
      prints, as JSON, PostgreSQL's CPU time so far (the postmaster's own and its reaped
      children's, plus every live child's), the PSS summed over the postmaster and its children
      (shared buffers counted once, unlike summed RSS), and how many processes there are.
  fanout-report.py pgdiff RUN.json BEFORE.json AFTER.json T_START T_EXIT
      adds "postgres" (CPU seconds between the two pgstat readings, the same as cores over that
      wall time, PSS and processes at the second) to ssefan's JSON line in RUN.json.
  fanout-report.py tables FILE.jsonl...
      markdown: each run's faults (lost, duplicated, ...), memory, for the slow-subscriber runs
      memory while the stalled subscribers were attached, run by run, and PostgreSQL's CPU and
      memory beside the node where there was one.
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


def children(pid):
    """The live processes whose parent is pid (from /proc/*/stat)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def cpu_ticks(pid, reaped):
    """utime + stime of pid (+ cutime + cstime: its waited-for children's, when reaped)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    # after the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pgstat(postmaster):
    hz = os.sysconf("SC_CLK_TCK")
    # The backends that exited are in the postmaster's cutime/cstime (it waits for them).
    ticks = cpu_ticks(postmaster, reaped=True)
    pss = pss_kib(postmaster)
    kids = children(postmaster)
    for pid in kids:
        try:
            ticks += cpu_ticks(pid, reaped=False)
        except OSError:
            continue  # exited meanwhile (then counted by the postmaster next time)
        pss += pss_kib(pid)
    print(json.dumps({"cpu_s": ticks / hz, "pss_kb": pss, "processes": 1 + len(kids)}))


def pgdiff(run_json, before_path, after_path, t_start, t_exit):
    before = json.load(open(before_path))
    after = json.load(open(after_path))
    lines = open(run_json).read().splitlines()
    idx = [i for i, l in enumerate(lines) if l.startswith("{")]
    if len(idx) != 1:
        sys.exit(f"fanout-report: {run_json}: expected one JSON line from ssefan, found {len(idx)}")
    r = json.loads(lines[idx[0]])
    wall = max(t_exit - t_start, 1e-9)
    cpu = after["cpu_s"] - before["cpu_s"]
    r["postgres"] = {
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "cpu_util": round(cpu / wall, 4),
        "pss_kb_end": after["pss_kb"],
        "processes_end": after["processes"],
    }
    lines[idx[0]] = json.dumps(r, separators=(",", ":"))
    with open(run_json, "w") as f:
        f.write("\n".join(lines) + "\n")


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
    pg = r.get("postgres")
    pg_text = (
        f"; PostgreSQL {pg['cpu_util']:.2f} cores, PSS {mib(pg['pss_kb_end'])} MiB"
        if pg else ""
    )
    print(
        f"{r.get('label', '?')} (round {round_no}): {get(r, 'publish.ok', 0)} publishes, "
        f"{get(r, 'delivery.received', 0)}/{get(r, 'delivery.expected', 0)} deliveries, "
        f"lost {get(r, 'delivery.lost', 0)}, dup {get(r, 'delivery.duplicates', 0)}; "
        f"RSS peak {mib(s['peak_kb'])} MiB{pg_text} -> {verdict}"
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

    num = lambda v: "-" if v is None else f"{v:.3g}" if v < 100 else f"{v:.0f}"
    with_pg = {label: rs for label, rs in by_label.items() if any(r.get("postgres") for r in rs)}
    if with_pg:
        print()
        print("PostgreSQL beside the node (not in the server's figures above), median over the "
              "rounds: its CPU over ssefan's whole run (connecting, publishing, draining) in cores, "
              "the node's CPU while publishing (ssefan's server cpu) for comparison, and its PSS "
              "(MiB) at the end, summed over the postmaster and its backends.")
        print()
        print("| peer | N | scenario | PostgreSQL cpu | node cpu | PostgreSQL PSS end |")
        print("|---|---|---|---|---|---|")
        for label, rs in with_pg.items():
            peer, n, sc = split_label(label)
            pgs = [r["postgres"] for r in rs if r.get("postgres")]
            util = median([p["cpu_util"] for p in pgs])
            node = median([v for r in rs if (v := get(r, "server.cpu_util")) is not None])
            pss = median([p["pss_kb_end"] for p in pgs])
            print(f"| {peer} | {n} | {sc} | {num(util)} | {num(node)} | {mib(pss)} |")

    stall = [r for r in runs if (get(r, "config.stall", 0) or 0) > 0]
    if not stall:
        return
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
    if len(argv) == 2 and argv[0] == "pgstat":
        pgstat(int(argv[1]))
        return 0
    if len(argv) == 6 and argv[0] == "pgdiff":
        pgdiff(argv[1], argv[2], argv[3], float(argv[4]), float(argv[5]))
        return 0
    if len(argv) >= 2 and argv[0] == "tables":
        tables(argv[1:])
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        os._exit(1)
