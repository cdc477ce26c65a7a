#!/usr/bin/env python3
"""Turn the TSVs written by bench/run into docs/benchmarks.md and a PNG chart of the ratios.

    python3 bench/report.py --results DIR --scenarios bench/scenarios.tsv --md docs/benchmarks.md --png docs/benchmarks.png

DIR holds results.tsv (one row per wrk measurement), memory.tsv, meta.tsv and functional.tsv. Every statistic is
a median over rounds with its min–max; a ratio to a peer is computed pair by pair within one round (same
concurrency), and the report gives the median of those per-round ratios. Without matplotlib the chart is skipped.
"""
import argparse
import csv
import os
import statistics
import sys
from collections import defaultdict

GROUPS = [
    ("passthrough", "Pass-through (one backend, 1 KB JSON)"),
    ("aggregation", "3-way aggregation (three 1 KB JSON backends, merged)"),
    ("slow20ms", "3-way aggregation over 20 ms backends"),
    ("edge", "Full edge pipeline vs bare composition"),
    ("ratelimit", "Rate limiting"),
    ("tls", "TLS: termination (keep-alive, and a new handshake per request) and an HTTPS backend"),
    ("coalescing", "Identical concurrent requests: coalescing and caching (a feature, not proxy cost)"),
]

# a row is valid when its measured backend calls per client request are within this share of the expected
CALLS_TOLERANCE = 0.05


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def read_scenarios(path):
    out = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split(None, 8)
            if len(parts) < 9:
                continue
            tid, group, server, tpath, auth, conc, calls, vs, label = parts
            out.append(dict(id=tid, group=group, server=server, path=tpath, auth=auth,
                            conc=[int(c) for c in conc.split(",")],
                            calls=None if calls == "-" else float(calls),
                            vs=[] if vs == "-" else vs.split(","), label=label.strip()))
    return out


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def fmt_range(xs, digits=0, unit=""):
    if not xs:
        return "–"
    m = med(xs)
    if len(xs) == 1:
        return f"{fmt(m, digits)}{unit}"
    return f"{fmt(m, digits)}{unit} ({fmt(min(xs), digits)}–{fmt(max(xs), digits)})"


def fmt_ratio(xs):
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:.2f}×"
    return f"{med(xs):.2f}× ({min(xs):.2f}–{max(xs):.2f})"


def fmt_delta(xs):
    if not xs:
        return "–"
    s = lambda v: f"{v:+.2f}"
    if len(xs) == 1:
        return f"{s(xs[0])} ms"
    return f"{s(med(xs))} ms ({s(min(xs))}…{s(max(xs))})"


class Data:
    def __init__(self, rows):
        # (id, conc) -> round -> row
        self.by = defaultdict(dict)
        for r in rows:
            for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "cpu_us_per_req", "srv_cpu_pct", "backend_cpu_pct",
                      "wrk_cpu_pct", "machine_busy_pct", "other_busy_pct", "calls_per_req"):
                try:
                    r[k] = float(r[k])
                except (ValueError, KeyError):
                    r[k] = None
            for k in ("requests", "non2xx", "sock_err", "rss_kb", "hwm_kb", "conc", "round", "backend_calls"):
                r[k] = int(float(r[k])) if r.get(k) not in (None, "", "NA") else 0
            self.by[(r["id"], r["conc"])][r["round"]] = r

    def values(self, tid, conc, key):
        return [r[key] for r in self.by.get((tid, conc), {}).values() if r[key] is not None]

    def has(self, tid, conc):
        return (tid, conc) in self.by

    def paired(self, a, b, conc, fn):
        ra, rb = self.by.get((a, conc), {}), self.by.get((b, conc), {})
        out = []
        for rnd in sorted(set(ra) & set(rb)):
            try:
                v = fn(ra[rnd], rb[rnd])
            except (TypeError, ZeroDivisionError):
                v = None
            if v is not None:
                out.append(v)
        return out

    def ratio(self, a, b, conc, key):
        return self.paired(a, b, conc, lambda x, y: x[key] / y[key] if y[key] else None)

    def delta(self, a, b, conc, key):
        return self.paired(a, b, conc, lambda x, y: x[key] - y[key])


def verdict(ok):
    return "met" if ok else "**not met**"


def row_validity(d, s, conc):
    """None when the row declares no expected backend calls; else (valid, measured calls/request per round)."""
    if s is None or s.get("calls") is None or not d.has(s["id"], conc):
        return None
    xs = d.values(s["id"], conc, "calls_per_req")
    ok = bool(xs) and all(abs(x - s["calls"]) <= CALLS_TOLERANCE * s["calls"] for x in xs)
    return ok, xs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--scenarios", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--png", required=True)
    ap.add_argument("--notes", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md"))
    a = ap.parse_args()

    scen = read_scenarios(a.scenarios)
    sid = {s["id"]: s for s in scen}
    d = Data(read_tsv(os.path.join(a.results, "results.tsv")))
    mem = read_tsv(os.path.join(a.results, "memory.tsv"))
    meta = {r[0]: r[1] for r in (l.rstrip("\n").split("\t", 1) for l in open(os.path.join(a.results, "meta.tsv")))
            if len(r) == 2}
    C = int(meta.get("conn", 64))

    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    w(f"_Generated by `{meta.get('command', 'bench/run')}` on {meta.get('date', '?')} — do not edit by hand; "
      "run the command again. Raw data: `$BENCH_WORK/results/<stamp>/` (default `~/.cache/bff-bench`)._")
    w("")
    w("Our gateway (`bff-web`, configured from `bench/conf/bff.toml`) side by side with nginx, haproxy and "
      "nginx + Lua, same machine, same run, same backends and payloads, everything on 127.0.0.1. "
      "Each gateway gets the CPU budget of its peer: one tokio worker thread vs one nginx worker / one haproxy "
      "thread, and a 2-thread row vs 2 nginx workers.")
    w("")

    # ------------------------------------------------------------------ targets
    checks = []

    def rr(a_, b_, conc, key):
        return d.ratio(a_, b_, conc, key)

    def add_check(goal, measured, ok, note=""):
        checks.append((goal, measured, ok, note))

    def invalid(*ids_conc):
        """The ids (at their concurrency) whose backend-call count is off: a target over them is not judged."""
        bad = []
        for tid, conc in ids_conc:
            v = row_validity(d, sid.get(tid), conc)
            if v is not None and not v[0]:
                bad.append(f"`{tid}` c={conc}")
        return bad

    def judged(goal, measured, ok, rows, note=""):
        bad = invalid(*rows)
        if bad:
            add_check(goal, measured, None, "invalid row(s): " + ", ".join(bad) + " — backend calls per request "
                      "not as expected; " + note)
        else:
            add_check(goal, measured, ok, note)

    if d.has("pt.bff1", C) and d.has("pt.nginx", C):
        rows = [("pt.bff1", C), ("pt.nginx", C)]
        x = rr("pt.bff1", "pt.nginx", C, "rps")
        judged("pass-through: req/s ≥ 1.0× nginx", fmt_ratio(x), med(x) >= 1.0, rows)
        x = rr("pt.bff1", "pt.nginx", C, "cpu_us_per_req")
        cu = d.values("pt.bff1", C, "cpu_us_per_req"); cn = d.values("pt.nginx", C, "cpu_us_per_req")
        judged("pass-through: CPU/request ≤ 1.1× nginx's", f"{fmt_ratio(x)}; {fmt(med(cu), 1)} vs {fmt(med(cn), 1)} µs",
               med(x) <= 1.1, rows)
        x = rr("pt.bff1", "pt.nginx", C, "p99_ms")
        judged(f"pass-through: p99 vs nginx's (c={C}; no target, shown)", fmt_ratio(x), med(x) <= 1.0, rows)
        if d.has("pt.bff1", 1) and d.has("pt.nginx", 1):
            x = [v * 1000 for v in d.delta("pt.bff1", "pt.nginx", 1, "p50_ms")]
            judged("pass-through: p50 ≤ nginx's + 20 µs (c=1)", f"{fmt(med(x), 0)} µs over nginx "
                   f"({fmt(min(x), 0)}…{fmt(max(x), 0)})", med(x) <= 20, [("pt.bff1", 1), ("pt.nginx", 1)])
    for tid, mode in (("agg.bff1", "flatten"), ("agg.bff1nest", "nest")):
        if d.has(tid, C) and d.has("agg.lua", C):
            rows = [(tid, C), ("agg.lua", C)]
            x = rr(tid, "agg.lua", C, "rps")
            judged(f"3-way aggregation ({mode}): req/s ≥ 1.3× nginx+Lua", fmt_ratio(x), med(x) >= 1.3, rows)
            x = rr(tid, "agg.lua", C, "cpu_us_per_req")
            cu = d.values(tid, C, "cpu_us_per_req"); cn = d.values("agg.lua", C, "cpu_us_per_req")
            judged(f"3-way aggregation ({mode}): CPU/request ≤ 0.7× nginx+Lua",
                   f"{fmt_ratio(x)}; {fmt(med(cu), 1)} vs {fmt(med(cn), 1)} µs", med(x) <= 0.7, rows)
    for tid, bare, what in (("pt.bff1otel", "pt.bff1", "pass-through"), ("agg.bff1otel", "agg.bff1", "aggregation")):
        if d.has(tid, C) and d.has(bare, C):
            x = rr(tid, bare, C, "cpu_us_per_req")
            cu = d.values(tid, C, "cpu_us_per_req"); cb = d.values(bare, C, "cpu_us_per_req")
            judged(f"{what}: metrics + tracing on (10% sampling): CPU/request ≤ 1.05× the bare row",
                   f"{fmt_ratio(x)}; {fmt(med(cu), 1)} vs {fmt(med(cb), 1)} µs", med(x) <= 1.05,
                   [(tid, C), (bare, C)])
    if d.has("slow.bff1", C) and d.has("slow.direct", C):
        x = d.delta("slow.bff1", "slow.direct", C, "p50_ms")
        judged(f"20 ms backends: composed p50 ≤ slowest backend p50 + 1 ms (c={C})",
               f"{fmt_delta(x)} over the direct call", med(x) <= 1.0, [("slow.bff1", C), ("slow.direct", C)])
    if d.has("slow.bff1", C) and d.has("slow.lua", C):
        x = rr("slow.bff1", "slow.lua", C, "p99_ms")
        judged(f"20 ms backends: composed p99 ≤ nginx+Lua's (c={C})", fmt_ratio(x), med(x) <= 1.0,
               [("slow.bff1", C), ("slow.lua", C)])
    if d.has("slow.bff1", 1) and d.has("slow.direct", 1):
        x = d.delta("slow.bff1", "slow.direct", 1, "p50_ms")
        judged("20 ms backends: composed p50 ≤ slowest backend p50 + 1 ms (c=1; no target, shown)",
               f"{fmt_delta(x)} over the direct call", med(x) <= 1.0, [("slow.bff1", 1), ("slow.direct", 1)])
    if d.has("edge.jwt_rl", C) and d.has("agg.bff1", C):
        x = rr("edge.jwt_rl", "agg.bff1", C, "rps")
        judged("full edge pipeline (JWT + rate limit + composition): req/s ≥ 0.85× bare composition",
               fmt_ratio(x), med(x) >= 0.85, [("edge.jwt_rl", C), ("agg.bff1", C)], "aggregates have no shaping step")
    if d.has("rl.redis", C) and d.has("edge.jwt_rl", C):
        x = rr("rl.redis", "edge.jwt_rl", C, "rps")
        judged("Redis limiter: req/s ≥ 0.8× in-memory limiter", fmt_ratio(x), med(x) >= 0.8,
               [("rl.redis", C), ("edge.jwt_rl", C)])
    ours = [m for m in mem if m.get("target", "bff1") == "bff1"]
    peer = [m for m in mem if m.get("target") == "nginx"]
    idle = [int(m["rss_kb"]) for m in ours if m["conns"] == "0"]
    idle_n = [int(m["rss_kb"]) for m in peer if m["conns"] == "0"]
    if idle:
        add_check("idle RSS ≤ 10 MB", fmt_range([v / 1024 for v in idle], 1, " MB"), med(idle) / 1024 <= 10,
                  f"nginx (master + 1 worker): {fmt_range([v / 1024 for v in idle_n], 1, ' MB')}" if idle_n else "")
    m10 = [int(m["rss_kb"]) for m in ours if m["conns"] == "10000"]
    m10n = [int(m["rss_kb"]) for m in peer if m["conns"] == "10000"]
    if m10:
        add_check("10,000 idle keep-alive connections ≤ 100 MB", fmt_range([v / 1024 for v in m10], 1, " MB"),
                  med(m10) / 1024 <= 100,
                  f"nginx, same run: {fmt_range([v / 1024 for v in m10n], 1, ' MB')}" if m10n else "")

    w("## Targets (issue 11)")
    w("")
    w(f"Ratios are ours / peer, computed within each round, median (min–max) over {meta.get('rounds', '?')} rounds, "
      f"at c={C} unless stated. A target over a row whose backend calls per client request are not the "
      "expected ones (1 for pass-through, 3 for a 3-way aggregation; counted from the backend's `stub_status` "
      "during each measurement) is not judged: its verdict is _invalid_.")
    w("")
    w("| target | measured | verdict | note |")
    w("|---|---|---|---|")
    for goal, measured, ok, note in checks:
        w(f"| {goal} | {measured} | {'_invalid_' if ok is None else verdict(ok)} | {note} |")
    w("")
    w("![ratios](benchmarks.png)")
    w("")

    # ------------------------------------------------------------------ machine + method
    w("## Machine and method")
    w("")
    w(f"- CPU: {meta.get('cpu', '?')}, `nproc` = {meta.get('nproc', '?')}, {meta.get('mem_total', '?')} RAM; "
      f"kernel {meta.get('kernel', '?')}. Shared and noisy (load average {meta.get('loadavg_start', '?')} at "
      f"start, {meta.get('loadavg_end', '?')} at the end).")
    w(f"- Peers: nginx {meta.get('nginx', '?')}, {meta.get('haproxy', '?')}, {meta.get('wrk', '?')}; "
      f"ours built with {meta.get('rustc', '?')} (`--release`), tree {meta.get('git', '?')}; code layout: "
      f"{meta.get('order_file', '?')} symbols of `bff-web/link/startup.order` found in the binary; "
      f"`RUSTFLAGS`: `{meta.get('rustflags', '?')}` (`-Cprofile-use`: guided by the PGO profile, bench/README.md).")
    w(f"- Command: `{meta.get('command', '?')}` — {meta.get('rounds', '?')} rounds; each round measures every "
      f"target with `wrk -t1 -c{C} -d{meta.get('dur_s', '?')}s --latency`, then the c=1 rows with "
      f"`-d{meta.get('dur1_s', '?')}s`, in the order of `bench/scenarios.tsv` (reversed every other round), so "
      "ours and the peer alternate. One warm-up run per target first.")
    w("- Backends: one nginx (1 worker) serving 1 KB JSON documents on 19001-19003; `/slow/*` adds 20 ms "
      "(`ngx.sleep`). wrk, the backend and the gateway share the 2 cores.")
    w("- CPU µs/request: utime+stime of the gateway process (nginx: master + workers) from `/proc/PID/stat` "
      "before/after the run, divided by the requests wrk completed. Peak RSS: `VmHWM` (reset with "
      "`/proc/PID/clear_refs` before each run, summed over nginx's processes).")
    noisy = read_tsv(os.path.join(a.results, "noisy.tsv"))
    w(f"- Noise gate: before each measurement the harness waits (bounded) until other processes use < "
      f"{meta.get('quiet_pct', '?')}% of a core, and measures again once when they used > "
      f"{meta.get('redo_pct', '?')}% during it ({len(noisy)} measurement(s) redone this run). All benchmark "
      f"processes (servers, backends, wrk) run at nice {meta.get('nice', '?')}, ours and the peers alike.")
    busy = [r["other_busy_pct"] for k in d.by for r in d.by[k].values() if r["other_busy_pct"] is not None]
    if busy:
        w(f"- Noise: CPU used by processes outside the benchmark during the runs (machine busy − gateway − "
          f"backend − wrk, in % of one core): median {med(busy):.0f}%, max {max(busy):.0f}%. "
          "Differences under ~10% are noise; CPU per request is steadier than req/s.")
    w("")

    # ------------------------------------------------------------------ per-scenario tables
    w("## Results")
    w("")
    w("Median (min–max) over rounds. CPU % is of one core.")
    w("")
    chart = []
    for group, title in GROUPS:
        members = [s for s in scen if s["group"] == group]
        if not members:
            continue
        w(f"### {title}")
        w("")
        measured = [s for s in members if s["server"] != "pending"]
        if measured:
            w("| target | c | req/s | backend calls / req | p50 ms | p99 ms | CPU µs/req | CPU % | peak RSS MB | errors |")
            w("|---|---|---|---|---|---|---|---|---|---|")
            for s in measured:
                for conc in sorted(s["conc"], reverse=True):
                    c = C if conc == 64 else conc
                    if not d.has(s["id"], c):
                        continue
                    v = lambda k: d.values(s["id"], c, k)
                    errs = sum(v("non2xx")) + sum(v("sock_err"))
                    calls = fmt_range(v("calls_per_req"), 2)
                    val = row_validity(d, s, c)
                    if val is not None:
                        calls += f" (expected {s['calls']:g}{'' if val[0] else '; **invalid row**'})"
                    w(f"| {s['label']} (`{s['id']}`) | {c} | {fmt_range(v('rps'))} | {calls} | {fmt_range(v('p50_ms'), 2)} | "
                      f"{fmt_range(v('p99_ms'), 2)} | {fmt_range(v('cpu_us_per_req'), 1)} | "
                      f"{fmt_range(v('srv_cpu_pct'))} | {fmt_range([x / 1024 for x in v('hwm_kb')], 1)} | {errs} |")
            w("")
            pairs = [(s, b) for s in measured for b in s["vs"] if b in sid]
            if pairs:
                if group == "slow20ms":
                    w("| target | vs | c | p50 added | p50 − 20 ms | p99 ratio | req/s ratio |")
                    w("|---|---|---|---|---|---|---|")
                else:
                    w("| target | vs | c | req/s ratio | CPU/req ratio | p50 ratio | p99 ratio |")
                    w("|---|---|---|---|---|---|---|")
                for s, b in pairs:
                    for conc in sorted(s["conc"], reverse=True):
                        c = C if conc == 64 else conc
                        if not (d.has(s["id"], c) and d.has(b, c)):
                            continue
                        if group == "slow20ms":
                            w(f"| `{s['id']}` | `{b}` | {c} | {fmt_delta(d.delta(s['id'], b, c, 'p50_ms'))} | "
                              f"{fmt_delta([x - 20.0 for x in d.values(s['id'], c, 'p50_ms')])} | "
                              f"{fmt_ratio(d.ratio(s['id'], b, c, 'p99_ms'))} | "
                              f"{fmt_ratio(d.ratio(s['id'], b, c, 'rps'))} |")
                        else:
                            x_rps = d.ratio(s["id"], b, c, "rps")
                            x_cpu = d.ratio(s["id"], b, c, "cpu_us_per_req")
                            w(f"| `{s['id']}` | `{b}` | {c} | {fmt_ratio(x_rps)} | {fmt_ratio(x_cpu)} | "
                              f"{fmt_ratio(d.ratio(s['id'], b, c, 'p50_ms'))} | "
                              f"{fmt_ratio(d.ratio(s['id'], b, c, 'p99_ms'))} |")
                            if c == C and x_rps:
                                chart.append((f"{s['id']} / {b}", x_rps, x_cpu))
                w("")
        pend = [s for s in members if s["server"] == "pending"]
        if pend:
            w("| pending row | compared with | status |")
            w("|---|---|---|")
            for s in pend:
                w(f"| {s['label']} (`{s['id']}`) | {', '.join(f'`{b}`' for b in s['vs']) or '–'} | pending: rate "
                  "limiting is not implemented yet; the row is declared in `bench/scenarios.tsv` and runs once "
                  "its server is started in `bench/run` |")
            w("")
        if group == "slow20ms":
            w("_p50 added_ = the composed request's p50 minus the p50 of one 20 ms backend call made directly "
              "(`slow.direct`) at the same concurrency, per round. At c=64 every target is capped near "
              "64 / 21 ms ≈ 3k req/s, so req/s ratios say little here._")
            w("")

    # ------------------------------------------------------------------ memory
    if mem:
        w("### Memory (fresh process per measurement: bff-web with 1 worker thread; nginx proxy with 1 worker)")
        w("")
        w("| server | state | RSS MB | peak RSS MB | connections answered | open when read | set-up s |")
        w("|---|---|---|---|---|---|---|")
        by_n = defaultdict(list)
        for m in mem:
            by_n[(m.get("target") or "bff1", int(m["conns"]))].append(m)
        for (target, n) in sorted(by_n, key=lambda k: (k[1], k[0])):
            ms = by_n[(target, n)]
            label = "idle (after start + 1 request)" if n == 0 else f"holding {n:,} idle keep-alive connections"
            okc = "–" if n == 0 else f"{min(int(m['ok']) for m in ms):,}–{max(int(m['ok']) for m in ms):,} of {n:,}"
            setup = "–" if n == 0 else fmt_range([float(m["setup_s"]) for m in ms], 1)
            opn = "–" if n == 0 else f"{min(int(m.get('open') or 0) for m in ms):,}–{max(int(m.get('open') or 0) for m in ms):,}"
            name = "bff-web" if target == "bff1" else target
            w(f"| {name} | {label} | {fmt_range([int(m['rss_kb']) / 1024 for m in ms], 1)} | "
              f"{fmt_range([int(m['hwm_kb']) / 1024 for m in ms], 1)} | {okc} | {opn} | {setup} |")
        w("")
        w("Connections are opened by `bench/hold_conns.py` (Python asyncio): one `GET /data.json` each "
          "(a pass-through to the backend), then held open and idle while `VmRSS`/`VmHWM` are read from "
          "`/proc/PID/status` (nginx: master + worker) and the established connections are counted (`ss`). "
          "The memory is read 3 s after the last connection got its answer (`MEM_SETTLE_S`), for both servers: "
          "by then the gateway has parked every idle HTTP/1 connection outside hyper (`server.limits."
          "park_idle_after_ms`, 1 s), and it closes keep-alive connections only after 10 s idle (its HTTP/1 "
          "header read timeout); the 'open when read' column shows they were all still open.")
        w("")

    # ------------------------------------------------------------------ notes + raw
    if os.path.exists(a.notes):
        w(open(a.notes).read().rstrip())
        w("")
    w("<details><summary>Every measurement (per round)</summary>")
    w("")
    w("| round | target | c | req/s | p50 ms | p99 ms | CPU µs/req | CPU % | backend CPU % | wrk CPU % | "
      "other load % | peak RSS kB | backend calls / req | non-2xx | socket errors |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (tid, c), rounds in sorted(d.by.items(), key=lambda kv: ([s["id"] for s in scen].index(kv[0][0])
                                                                  if kv[0][0] in sid else 999, -kv[0][1])):
        for rnd in sorted(rounds):
            r = rounds[rnd]
            w(f"| {rnd} | `{tid}` | {c} | {fmt(r['rps'])} | {fmt(r['p50_ms'], 3)} | {fmt(r['p99_ms'], 3)} | "
              f"{fmt(r['cpu_us_per_req'], 1)} | {fmt(r['srv_cpu_pct'])} | {fmt(r['backend_cpu_pct'])} | "
              f"{fmt(r['wrk_cpu_pct'])} | {fmt(r['other_busy_pct'])} | {r['hwm_kb']} | "
              f"{fmt(r['calls_per_req'], 3)} | {r['non2xx']} | "
              f"{r['sock_err']} |")
    w("")
    w("</details>")
    w("")

    os.makedirs(os.path.dirname(os.path.abspath(a.md)), exist_ok=True)
    with open(a.md, "w") as f:
        f.write("\n".join(L))
    print(f"wrote {a.md}")
    make_chart(a.png, chart, d, C, meta)


def make_chart(path, chart, d, C, meta):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not available: chart skipped", file=sys.stderr)
        return
    goals_rps = {"pt.bff1 / pt.nginx": 1.0, "agg.bff1 / agg.lua": 1.3, "agg.bff1nest / agg.lua": 1.3,
                 "edge.jwt_rl / agg.bff1": 0.85, "rl.redis / edge.jwt_rl": 0.8}
    goals_cpu = {"pt.bff1 / pt.nginx": 1.1, "agg.bff1 / agg.lua": 0.7, "agg.bff1nest / agg.lua": 0.7}
    slow = []
    for conc in (1, C):
        for tid in ("slow.lua", "slow.bff1"):
            x = d.delta(tid, "slow.direct", conc, "p50_ms")
            if x:
                slow.append((f"{tid} c={conc}", x))
    ncols = 3 if slow else 2
    fig, axes = plt.subplots(1, ncols, figsize=(6.2 * ncols, 0.42 * max(len(chart), 4) + 1.8),
                             gridspec_kw={"width_ratios": [1, 1, 0.8][:ncols]})
    labels = [c[0] for c in chart][::-1]
    ys = range(len(labels))

    def panel(ax, idx, title, goals, better):
        meds, lo, hi = [], [], []
        for c in chart[::-1]:
            xs = c[idx]
            if xs:
                m = statistics.median(xs)
                meds.append(m); lo.append(m - min(xs)); hi.append(max(xs) - m)
            else:
                meds.append(0); lo.append(0); hi.append(0)
        colors = []
        for lab, m in zip(labels, meds):
            g = goals.get(lab)
            if g is None:
                colors.append("#8aa1b1")
            else:
                colors.append("#3a923a" if (m >= g if better == "higher" else m <= g) else "#c0392b")
        ax.barh(list(ys), meds, xerr=[lo, hi], color=colors, capsize=3, height=0.6)
        ax.axvline(1.0, color="black", lw=0.8)
        for i, lab in enumerate(labels):
            if lab in goals:
                ax.plot([goals[lab]], [i], marker="|", markersize=18, color="black", mew=2)
        ax.set_yticks(list(ys))
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_title(title, fontsize=10)
        for i, m in enumerate(meds):
            ax.text(m + hi[i], i + 0.3, f" {m:.2f}", va="center", fontsize=8)
        ax.grid(axis="x", alpha=0.3)

    panel(axes[0], 1, f"req/s, ours / peer (c={C}; higher is better)", goals_rps, "higher")
    panel(axes[1], 2, f"CPU µs per request, ours / peer (lower is better)", goals_cpu, "lower")
    axes[1].set_yticklabels([])
    if slow:
        ax = axes[2]
        labs = [s[0] for s in slow]
        meds = [statistics.median(s[1]) for s in slow]
        lo = [m - min(s[1]) for m, s in zip(meds, slow)]
        hi = [max(s[1]) - m for m, s in zip(meds, slow)]
        ax.barh(range(len(labs)), meds, xerr=[lo, hi], capsize=3, height=0.6,
                color=["#3a923a" if m <= 1.0 else "#c0392b" for m in meds])
        ax.axvline(1.0, color="black", lw=0.8, ls="--")
        ax.set_yticks(range(len(labs)))
        ax.set_yticklabels(labs, fontsize=8)
        for i, m in enumerate(meds):
            ax.text(max(m, 0) + hi[i], i + 0.3, f" {m:+.2f}", va="center", fontsize=8)
        ax.set_title("20 ms backends: p50 added over one\ndirect backend call, ms (goal ≤ 1)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"bff-web vs peers — {meta.get('cpu', '')}, {meta.get('nproc', '?')} cores, "
                 f"{meta.get('date', '')}; bars: median over rounds, whiskers min–max, | = target; "
                 "green = target met", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
