"""HTTP pressure: kdoctor's engine against wrk and hey, side by side, on one nginx on loopback.

    .venv/bin/python bench/http/bench_http.py [--quick]

1. Max throughput, closed loop, keep-alive, 50 connections (HTTP/2: streams) each: ours (``Pace(qps=0)``) against
   ``wrk -t1 -c50`` on the same nginx (1 worker, no access log), interleaved rounds, medians.
   CPU seconds per 1,000 requests for both (ours: the generator process over its run window;
   wrk: its rusage). HTTP/2 the same way against ``h2load -c1 -m50`` (nghttp2), on nginx with
   ``http2`` (h2c): one connection, 50 streams, for both; and ours over HTTP/2 as a fraction of
   ours over HTTP/1.1. Beside them the floor (``floor.py``: uvloop + httptools alone, nothing
   measured), so CPU per request splits into the runtime's (floor / wrk) and our engine's
   (ours / floor).
2. Fixed rates 1k, 5k and 10k QPS for 10 s (3 s with --quick), with nginx's access log on:
   achieved / target for ours and for ``hey -c50 -q rate/50``; ours against the access-log count;
   p50/p99 next to hey's. Our latencies are from the *due* time (coordinated-omission corrected);
   hey's are from its send.
3. Peak RSS of our generator over a 60 s run at 10k QPS (15 s with --quick), sampled every
   second: it must stay flat.
4. A real round: a private Redis, a real ``kdoctor coordinator`` and one ``kdoctor worker``
   (``bench/rounds.py``) run an AppHttpHealthy round (HTTP/1.1, qps 300 k, 5 s: more than any
   client here sends, so the generator runs flat out and spreads over the node's processes,
   ``KDOCTOR_GENERATOR_PROCESSES``) against nginx with 2 workers (2 cores: the server is no
   limit for wrk), interleaved with ``wrk -t2 -c50`` on the same nginx: the report's achieved
   rate against wrk's, how many generator processes ran, the busiest one's CPU. Like for like,
   the round has wrk's 50 connections (``concurrency: 50``, 25 per process as wrk's 25 per
   thread); a round with the default concurrency (1,000 connections at this rate) is printed
   beside it: a thousand sockets cost client and server about 2 µs more per request here. The
   floor (``floor.py``) runs beside wrk shaped as the round's team (2 processes x 25 connections):
   the runtime's part of the gap (floor / wrk) and our engine's (ours / floor).

Our generator runs in a child process of this script (``--child``), on uvloop, and reports its
own figures as JSON, so its CPU and memory are its own. Installs nothing: nginx, wrk, hey and
h2load come from ./scripts/install. The machine is shared (2 vCPUs, client and server on the same cores):
absolute numbers move between runs; read the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
ROUND_QPS, ROUND_SECONDS = 300_000, 5
CONNS = 50
TIMEOUT = 1.0
# At a fixed rate ours opens connections as it needs them, up to what AppHttpHealthy allows by
# default (qps × timeout, at most 1,000), so a server hiccup does not leave tokens waiting for
# one of 50 busy connections; the report shows how many it opened.
FIXED_MAX_CONNS = 1000


# -- the generator child -----------------------------------------------------------------------------
def child(url: str, qps: int, duration: float, http2: bool, conns: int) -> None:
    """Run one driver and print its figures as one JSON line."""
    import uvloop

    from kdoctor.probes.http1 import Http1Pool
    from kdoctor.probes.http2 import Http2Pool
    from kdoctor.probes.httpreq import HttpTarget
    from kdoctor.probes.pressure import Driver, Pace, run_all

    async def main() -> dict[str, Any]:
        pool: Http1Pool | Http2Pool
        if http2:
            pool = Http2Pool(HttpTarget(url), timeout=TIMEOUT, max_streams=conns)
        else:
            pool = Http1Pool(HttpTarget(url), timeout=TIMEOUT, max_connections=conns)
        pace = Pace(qps=qps, duration=duration, timeout=TIMEOUT)
        driver = Driver(pool, pace)
        pool.driver = driver
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter()
        [stats] = await run_all([driver], time.perf_counter() + 0.05)
        after = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - wall
        lat = stats.latency
        return {
            "sent": stats.sent, "ok": stats.successes, "unsent": stats.unsent, "late": stats.late,
            "errors": dict(stats.errors), "achieved": stats.achieved_qps(qps), "wall": wall,
            "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            "p50": lat.percentile_ms(50) if lat.count else None,
            "p99": lat.percentile_ms(99) if lat.count else None,
            "lag_p99": stats.lag.percentile_ms(99) if stats.lag.count else None,
            "conns": getattr(pool, "opened", 1),
        }

    print(json.dumps(uvloop.run(main())), flush=True)


def ours(url: str, qps: int, duration: float, *, http2: bool = False, sample_rss: bool = False,
         conns: int = CONNS) -> dict[str, Any]:
    """Run the generator child; with ``sample_rss``, its RSS every second (MiB)."""
    cmd = [sys.executable, __file__, "--child", url, str(qps), str(duration), "--conns", str(conns)]
    cmd += ["--h2"] if http2 else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    rss: list[float] = []
    if sample_rss:
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                rss.append(ps.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                break
            time.sleep(1.0)
    out, _ = proc.communicate()
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["rss"] = rss
    return result


# -- reference tools ---------------------------------------------------------------------------------
def floor(url: str, duration: float, processes: int = 1) -> dict[str, Any]:
    """The runtime's floor: uvloop + httptools alone, closed loop (``floor.py``), ``CONNS``
    connections over ``processes`` processes run together (as a round's team shares them)."""
    cmd = [sys.executable, str(Path(__file__).with_name("floor.py")), url, str(duration), str(CONNS // processes)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    parts = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    if any(proc.returncode for proc in procs):
        raise RuntimeError("bench/http/floor.py failed")
    return {"sent": sum(p["sent"] for p in parts), "cpu": sum(p["cpu"] for p in parts), "errors": 0,
            "achieved": sum(p["sent"] / p["seconds"] for p in parts)}


def timed(cmd: list[str]) -> tuple[str, float]:
    """Run a tool; its output and its CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def wrk(url: str, duration: float, threads: int = 1) -> dict[str, Any]:
    out, cpu = timed(["wrk", f"-t{threads}", f"-c{CONNS}", f"-d{int(duration)}s", url])
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"sent": requests, "achieved": rate, "cpu": cpu}


def h2load(url: str, duration: float) -> dict[str, Any]:
    """``h2load -c1 -m50``: one h2c connection (prior knowledge on an http:// URL), 50 streams."""
    out, cpu = timed(["h2load", "-c1", f"-m{CONNS}", "-D", str(int(duration)), url])
    rate = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                     r"(\d+) errored", out)
    assert done is not None, out
    return {"sent": int(done.group(1)), "ok": int(done.group(2)), "achieved": rate, "cpu": cpu,
            "errors": int(done.group(3)) + int(done.group(4))}


def hey(url: str, qps: int, duration: float) -> dict[str, Any]:
    out, cpu = timed(["hey", "-z", f"{int(duration)}s", "-c", str(CONNS), "-q", str(qps / CONNS), url])
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {int(p): float(s) * 1000 for p, s in re.findall(r"(\d+)% in ([\d.]+) secs", out)}
    codes = re.findall(r"\[(\d+)\]\s+(\d+) responses", out)
    return {"achieved": rate, "cpu": cpu, "p50": pct.get(50), "p99": pct.get(99),
            "sent": sum(int(n) for _, n in codes)}


def real_round(rounds: Any, url: str, concurrency: int | None) -> dict[str, Any]:
    """One real AppHttpHealthy round through coordinator and worker: the report's figures.
    ``concurrency``: the spec's in-flight bound (connections), ``None`` for its default."""
    from bench.rounds import only_target

    request: dict[str, Any] = {"qps": ROUND_QPS, "durationInSecond": ROUND_SECONDS, "perRequestTimeoutInMS": 1000}
    if concurrency is not None:
        request["concurrency"] = concurrency
    report = rounds.run({
        "apiVersion": "kdoctor.io/v1beta1", "kind": "AppHttpHealthy", "metadata": {"name": "bench-http"},
        "spec": {"request": request, "target": {"host": url}, "expect": {"successRate": 0}},
    })
    node, target = only_target(report)
    generator = node.generator
    return {"achieved": target.achieved_qps, "sent": target.requests, "ok": target.successes,
            "unsent": target.unsent, "errors": sum(target.errors.values()), "processes": target.generator_processes,
            "cpu": generator.cpu_percent if generator else 0.0,
            "us": 1e6 * generator.cpu_seconds / target.requests if generator and target.requests else None}


# -- the benchmark -----------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (about 1 minute in all)")
    parser.add_argument("--real-round-only", action="store_true", help="only section 4, the real round")
    parser.add_argument("--child", nargs=3, metavar=("URL", "QPS", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("--h2", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--conns", type=int, default=CONNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), float(args.child[2]), args.h2, args.conns)
        return
    rounds, max_s, fixed_s, rss_s = (1, 3, 3, 15) if args.quick else (3, 5, 10, 60)

    print(f"# HTTP pressure bench ({'quick' if args.quick else 'full'}); {CONNS} connections; "
          f"{psutil.cpu_count()} vCPUs shared by client and server\n")
    if not args.real_round_only:
        sections_1_to_3(rounds, max_s, fixed_s, rss_s)
    section_4(rounds)


def sections_1_to_3(rounds: int, max_s: float, fixed_s: float, rss_s: float) -> None:
    from kdoctor.local.nginx import Nginx

    # 1. max throughput
    runs: dict[str, list[dict[str, Any]]] = {"wrk": [], "ours": [], "floor": [], "h2load": [], "ours-h2": []}
    with Nginx(access_log=False) as web:
        for _ in range(rounds):
            runs["wrk"].append(wrk(web.url, max_s))
            runs["ours"].append(ours(web.url, 0, max_s))
            runs["floor"].append(floor(web.url, max_s))
    with Nginx(access_log=False, http2=True) as web2:
        for _ in range(rounds):
            runs["h2load"].append(h2load(web2.url, max_s))
            runs["ours-h2"].append(ours(web2.url, 0, max_s, http2=True))

    def med(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[name]))

    def cpu_per_k(name: str) -> float:
        return float(statistics.median(1000 * r["cpu"] / r["sent"] for r in runs[name] if r["sent"]))

    def errors(name: str) -> int:
        return sum(r["errors"] if isinstance(r["errors"], int) else sum(r["errors"].values()) for r in runs[name])

    ours_rate, wrk_rate = med("ours", "achieved"), med("wrk", "achieved")
    h2_rate, h2load_rate = med("ours-h2", "achieved"), med("h2load", "achieved")
    print(f"## 1. Max throughput, closed loop, {max_s} s x {rounds} round(s), medians")
    print("| client | req/s | CPU s per 1k req | errors |")
    print("|---|---|---|---|")
    print(f"| wrk -t1 -c{CONNS} | {fmt(wrk_rate, 0)} | {fmt(cpu_per_k('wrk'), 4)} | n/a |")
    print(f"| ours HTTP/1.1 | {fmt(ours_rate, 0)} | {fmt(cpu_per_k('ours'), 4)} | {errors('ours')} |")
    print(f"| floor: uvloop + httptools alone (bench/http/floor.py) | {fmt(med('floor', 'achieved'), 0)} | "
          f"{fmt(cpu_per_k('floor'), 4)} | n/a |")
    print(f"| h2load -c1 -m{CONNS} (h2c) | {fmt(h2load_rate, 0)} | {fmt(cpu_per_k('h2load'), 4)} | "
          f"{errors('h2load')} |")
    print(f"| ours HTTP/2 (h2c, 1 connection x {CONNS} streams) | {fmt(h2_rate, 0)} | "
          f"{fmt(cpu_per_k('ours-h2'), 4)} | {errors('ours-h2')} |")
    print(f"\nHTTP/1.1: throughput ours/wrk = **{ours_rate / wrk_rate:.2f}** (goal >= 0.9); "
          f"CPU per 1k ours/wrk = **{cpu_per_k('ours') / cpu_per_k('wrk'):.2f}** (goal <= 1.5)")
    # Where our CPU per request goes: the runtime (the floor against wrk) and our engine (ours
    # against the floor). On cores shared with the server, CPU per request decides a real round.
    us = {name: 1000 * cpu_per_k(name) for name in ("wrk", "floor", "ours")}
    print(f"HTTP/1.1 CPU per request: wrk {us['wrk']:.1f} us, the floor {us['floor']:.1f} us "
          f"({us['floor'] / us['wrk']:.2f} x wrk), ours {us['ours']:.1f} us "
          f"({us['ours'] / us['floor']:.2f} x the floor)")
    print(f"HTTP/2: throughput ours/h2load = **{h2_rate / h2load_rate:.2f}** (goal >= 0.5); "
          f"CPU per 1k ours/h2load = **{cpu_per_k('ours-h2') / cpu_per_k('h2load'):.2f}**; "
          f"HTTP/2 / HTTP/1.1 throughput (ours) = {h2_rate / ours_rate:.2f}\n")

    # 2. fixed rates
    print(f"## 2. Fixed rate, {fixed_s} s each, nginx access log on")
    print("| target QPS | ours achieved/target | hey achieved/target | ours sent | nginx logged | "
          "ours p50 / p99 ms (from due) | hey p50 / p99 ms | ours unsent | ours send-lag p99 ms | ours conns | "
          "ours CPU % | hey CPU % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with Nginx() as web:
        for qps in (1000, 5000, 10000):
            before = web.settled_count()
            mine = ours(web.url, qps, fixed_s, conns=FIXED_MAX_CONNS)
            logged = web.settled_count() - before  # nginx logs after it responds
            ref = hey(web.url, qps, fixed_s)
            print(f"| {qps:,} | {mine['achieved'] / qps:.4f} | {ref['achieved'] / qps:.4f} | {mine['sent']:,} | "
                  f"{logged:,} | {fmt(mine['p50'])} / {fmt(mine['p99'])} | {fmt(ref['p50'])} / {fmt(ref['p99'])} | "
                  f"{mine['unsent']} | {fmt(mine['lag_p99'])} | {mine['conns']} | "
                  f"{100 * mine['cpu'] / mine['wall']:.0f} | {100 * ref['cpu'] / fixed_s:.0f} |")
    print()

    # 3. memory
    with Nginx(access_log=False) as web:
        mem = ours(web.url, 10000, rss_s, sample_rss=True)
    rss = mem["rss"]
    if rss:
        marks = {f"{int(100 * i / (len(rss) - 1)) if len(rss) > 1 else 100}%": rss[i]
                 for i in sorted({1, len(rss) // 4, len(rss) // 2, 3 * len(rss) // 4, len(rss) - 1}) if i < len(rss)}
        print(f"## 3. Generator RSS over {rss_s} s at 10k QPS (sampled every second)")
        print("RSS MiB at " + ", ".join(f"{k}: {v:.1f}" for k, v in marks.items())
              + f"; peak {max(rss):.1f} MiB; growth from 25% to end {rss[-1] - rss[len(rss) // 4]:+.1f} MiB; "
              f"achieved {mem['achieved'] / 10000:.4f} of target, {mem['unsent']} unsent")


def section_4(rounds: int) -> None:
    from bench.rounds import RealRounds
    from kdoctor.local.nginx import Nginx

    print(f"\n## 4. A real AppHttpHealthy round (HTTP/1.1, qps {ROUND_QPS:,}, {ROUND_SECONDS} s) vs wrk -t2 -c{CONNS}, "
          f"nginx with 2 workers, {rounds} interleaved round(s)")
    print("| round | wrk -t2 req/s | floor, 2 processes x 25 connections | floor / wrk | "
          "ours req/s, 50 connections (report's achievedQps) | ours / wrk | "
          "ours req/s, default concurrency (1,000 connections) | ours / wrk | generator processes | "
          "busiest process CPU % | ours sent | ours ok | unsent | errors | "
          "CPU us per request: wrk / floor / ours |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    pairs: list[tuple[float, float, float, float]] = []
    costs: list[tuple[float, float, float | None]] = []
    with Nginx(workers=2, access_log=False) as web, RealRounds() as real:
        for index in range(rounds):
            ref = wrk(web.url, ROUND_SECONDS, threads=2)
            # The runtime alone, shaped as the round's team: what any uvloop + httptools
            # generator reaches here before it measures anything.
            base = floor(web.url, ROUND_SECONDS, processes=2)
            mine = real_round(real, web.url, CONNS)  # like for like: wrk's 50 connections
            wide = real_round(real, web.url, None)
            pairs.append((ref["achieved"], mine["achieved"], wide["achieved"], base["achieved"]))
            # Client CPU per request: on cores shared with the server it decides the rate.
            cpu_us = (1e6 * ref["cpu"] / ref["sent"], 1e6 * base["cpu"] / base["sent"], mine["us"])
            costs.append(cpu_us)
            print(f"| {index + 1} | {fmt(ref['achieved'], 0)} | {fmt(base['achieved'], 0)} | "
                  f"{base['achieved'] / ref['achieved']:.2f} | {fmt(mine['achieved'], 0)} | "
                  f"{mine['achieved'] / ref['achieved']:.2f} | {fmt(wide['achieved'], 0)} | "
                  f"{wide['achieved'] / ref['achieved']:.2f} | {mine['processes']} | {mine['cpu']:.0f} | "
                  f"{mine['sent']:,} | {mine['ok']:,} | {mine['unsent']:,} | {mine['errors']:,} | "
                  f"{cpu_us[0]:.1f} / {cpu_us[1]:.1f} / {fmt(cpu_us[2], 1)} |", flush=True)
    # The median of the per-round ratios (each against the wrk run just before it), never a ratio
    # of medians taken from different rounds: the machine's load moves both within a round alike.
    wrk_rate = float(statistics.median(p[0] for p in pairs))
    ours_rate = float(statistics.median(p[1] for p in pairs))
    ratio = float(statistics.median(p[1] / p[0] for p in pairs))
    wide_ratio = float(statistics.median(p[2] / p[0] for p in pairs))
    floor_ratio = float(statistics.median(p[3] / p[0] for p in pairs))
    engine = float(statistics.median(p[1] / p[3] for p in pairs))
    print(f"\nReal round, {CONNS} connections like wrk: ours / wrk -t2 -c{CONNS} = **{ratio:.2f}** "
          f"(median of the per-round ratios; medians {fmt(ours_rate, 0)} / {fmt(wrk_rate, 0)}; goal >= 1.0); with the "
          f"default concurrency (1,000 connections): {wide_ratio:.2f}. The floor (uvloop + httptools alone, the "
          f"round's 2 x 25 connections) / wrk = {floor_ratio:.2f}; ours / the floor = {engine:.2f}")
    # Where the cores go per request: the client's CPU (measured) and the rest (the machine's time
    # per request minus the client's: the server, the kernel's loopback work, the round's other
    # processes). When the rest is the same beside wrk and ours, the gap between the rates is the
    # gap between the clients' CPU per request.
    cores = psutil.cpu_count() or 1
    wrk_us = float(statistics.median(c[0] for c in costs))
    floor_us = float(statistics.median(c[1] for c in costs))
    ours_costs = [c[2] for c in costs if c[2] is not None]
    if ours_costs:
        ours_us = float(statistics.median(ours_costs))
        rest_wrk, rest_ours = 1e6 * cores / wrk_rate - wrk_us, 1e6 * cores / ours_rate - ours_us
        print(f"Client CPU per request (medians): wrk {wrk_us:.1f} us, the floor {floor_us:.1f} us, ours in the round "
              f"{ours_us:.1f} us ({ours_us / wrk_us:.2f} x wrk); the {cores} cores' time per request minus the "
              f"client's (server, kernel, the rest): {rest_wrk:.1f} us beside wrk, {rest_ours:.1f} us beside ours")

if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
