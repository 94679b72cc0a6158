"""DNS pressure: kdoctor's Netdns engine against dnsperf, side by side, on one dnsmasq on loopback.

    .venv/bin/python bench/dns/bench_dns.py [--quick]

1. Max QPS. dnsperf: one thread, one client, 100 queries outstanding (its defaults), for D
   seconds: replies per second. Ours, like for like: the driver offered 1.5 x that rate with at
   most 100 queries in flight, replies per second of the run. And stricter: the highest fixed
   rate the open-loop driver sustains (nothing unsent, achieved rate and replies >= 99 % of it).
   The server is dnsmasq without a query log.
2. Fixed rates 1k, 10k, 30k QPS with dnsmasq's query log on: achieved / target for ours and for
   dnsperf -Q, and each one's reported count against the count in dnsmasq's log.
3. CPU seconds per 1,000 queries, ours / dnsperf, at each fixed rate and at max.
4. A real round: a private Redis, a real ``kdoctor coordinator`` and one ``kdoctor worker``
   (``bench/rounds.py``) run a Netdns round (UDP, qps 200 k, 5 s: more than any client here
   sends, so the generator runs flat out and spreads over the node's processes,
   ``KDOCTOR_GENERATOR_PROCESSES``), interleaved with ``dnsperf -c1 -q100`` on the same server.
   dnsmasq is single-threaded and, on 2 cores, the limit of both; the server here is unbound
   with 2 threads on one SO_REUSEPORT port, no query log: dnsperf with two clients and threads
   gets more from it than with one, so it is no limit for ``dnsperf -c1 -q100`` (printed).
   Like for like, the round keeps dnsperf's 100 queries in flight (``concurrency: 100``, 50 per
   process); a round with the default bound (60,000 in flight) is printed beside it: it floods
   the server, which drops what it cannot take (timeouts in the report). Printed: the report's
   achieved rate (queries sent per second), its replies per second and dnsperf's, their
   ratios, the generator processes that ran.

Installs nothing: dnsmasq and dnsperf come from ./scripts/install. The machine is shared: absolute
numbers move between runs; the ratios within one run are what to read.
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kdoctor.local.dnsmasq import DOMAIN, Dnsmasq, ServerProcess, binary, free_dns_port, unbound_records, wait_udp  # noqa: E402
from kdoctor.probes.dnsclient import UdpClient  # noqa: E402
from kdoctor.probes.dnswire import QuerySet  # noqa: E402
from kdoctor.probes.pressure import Driver, Pace  # noqa: E402

NAME = f"www.{DOMAIN}"
OUTSTANDING = 100
IN_FLIGHT = 30001  # what Netdns allows at 30k QPS with a 1 s timeout: qps × timeout + 1
ROUND_QPS, ROUND_SECONDS = 200_000, 5


class Unbound(ServerProcess):
    """unbound answering ``HOSTS`` over UDP on a free loopback port with ``threads`` threads on one
    SO_REUSEPORT port, without a query log: a server faster than dnsmasq (one thread)."""

    def __init__(self, threads: int = 2) -> None:
        self.port = free_dns_port()
        self.dir = Path(tempfile.mkdtemp(prefix="kdoctor-bench-unbound-"))
        self.log = self.dir / "unbound.log"
        records = unbound_records()
        conf = self.dir / "unbound.conf"
        conf.write_text(
            f"server:\n  interface: 127.0.0.1@{self.port}\n  do-daemonize: no\n  username: \"\"\n"
            f"  chroot: \"\"\n  directory: \"{self.dir}\"\n  pidfile: \"\"\n  use-syslog: no\n"
            f"  logfile: \"{self.log}\"\n  verbosity: 0\n  module-config: \"iterator\"\n"
            f"  num-threads: {threads}\n  so-reuseport: yes\n  so-rcvbuf: 4m\n"
            f"  access-control: 127.0.0.0/8 allow\n  local-zone: \"{DOMAIN}.\" static\n{records}"
            "remote-control:\n  control-enable: no\n")
        self.process = subprocess.Popen([binary("unbound"), "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_udp(self.port, self.process, "unbound", self.log)
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Unbound:
        return self


@dataclass
class Run:
    """One load run: what was sent and answered, in how long, for how much CPU."""

    sent: int
    answered: int
    seconds: float
    cpu: float
    unsent: int = 0
    elapsed: float = 0.0
    """Wall time from the first due query to the last reply or timeout."""

    @property
    def qps(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def throughput(self) -> float:
        """Replies per second of the whole run, as dnsperf counts its "queries per second"."""
        return self.answered / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_per_1k(self) -> float:
        return 1000.0 * self.cpu / self.sent if self.sent else 0.0


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def ours(port: int, qps: float, duration: float, in_flight: int) -> Run:
    """The Netdns engine (UDP client + pressure driver) at ``qps`` for ``duration`` seconds."""

    async def go() -> Run:
        client = UdpClient("127.0.0.1", port, QuerySet([NAME], "A"), timeout=1.0, max_in_flight=in_flight)
        pace = Pace(qps=qps, duration=duration, timeout=1.0)
        driver = Driver(client, pace)
        client.driver = driver
        cpu0 = _cpu(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        stats = await driver.run(t0)
        cpu = _cpu(resource.RUSAGE_SELF) - cpu0
        await client.aclose()
        window = stats.achieved_qps(qps)
        seconds = stats.sent / window if window else duration
        return Run(stats.sent, stats.successes, seconds, cpu, stats.unsent, stats.end - stats.start)

    return uvloop.run(go())


def dnsperf(port: int, duration: float, qps: float | None, data: Path) -> Run:
    """dnsperf, one thread and one client, ``OUTSTANDING`` queries outstanding, optionally rate-capped."""
    args = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(data), "-l", str(duration),
            "-c", "1", "-T", "1", "-q", str(OUTSTANDING)]
    if qps is not None:
        args += ["-Q", str(int(qps))]
    cpu0 = _cpu(resource.RUSAGE_CHILDREN)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu0

    def figure(label: str) -> float:
        match = re.search(rf"{label}:\s+([0-9.]+)", out)
        if match is None:
            raise RuntimeError(f"dnsperf printed no {label!r}:\n{out}")
        return float(match.group(1))

    sent = int(figure("Queries sent"))
    seconds = figure("Run time \\(s\\)")
    return Run(sent, int(figure("Queries completed")), seconds, cpu, elapsed=seconds)


def rcvbuf_errors() -> int:
    """UDP datagrams the kernel dropped because a receiver's socket buffer was full (system-wide,
    IPv4): where queries go when dnsmasq falls behind."""
    lines = Path("/proc/net/snmp").read_text().splitlines()
    names, values = [line.split() for line in lines if line.startswith("Udp:")][:2]
    return int(values[names.index("RcvbufErrors")])


def max_ours(port: int, start: float, duration: float) -> tuple[float, Run]:
    """The highest rate the driver sustains, searched upwards from ``start`` in 15 % steps then
    refined by bisection."""

    def sustained(rate: float) -> tuple[bool, Run]:
        run = ours(port, rate, duration, OUTSTANDING)
        intended = round(rate * duration)
        on_time = run.seconds > 0 and run.sent / run.seconds >= 0.99 * rate
        return run.unsent == 0 and run.answered >= 0.99 * intended and on_time, run

    good_rate, good_run = 0.0, Run(0, 0, 0.0, 0.0)
    rate = start
    bad = None
    for _ in range(12):
        ok, run = sustained(rate)
        if not ok:
            bad = rate
            break
        good_rate, good_run = rate, run
        rate *= 1.15
    if good_rate == 0.0:  # not even the start: search downwards
        bad, rate = start, start
        while good_rate == 0.0 and rate > 1000:
            rate *= 0.8
            ok, run = sustained(rate)
            if ok:
                good_rate, good_run = rate, run
    if bad is not None:
        for _ in range(3):
            middle = (good_rate + bad) / 2
            ok, run = sustained(middle)
            if ok:
                good_rate, good_run = middle, run
            else:
                bad = middle
    return good_rate, good_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 40 s in all)")
    parser.add_argument("--real-round-only", action="store_true", help="only the real round")
    options = parser.parse_args()
    for tool in ("dnsmasq", "dnsperf"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} is not installed: run ./scripts/install", file=sys.stderr)
            return 2
    duration = 2.0 if options.quick else 4.0
    fixed_duration = 2.0 if options.quick else 3.0
    data = Path(tempfile.mkdtemp(prefix="kdoctor-bench-dns-")) / "queries.txt"
    data.write_text(f"{NAME} A\n")
    print(f"bench/dns: dnsmasq on loopback, query {NAME} A, {OUTSTANDING} outstanding; "
          f"{'quick' if options.quick else 'full'} run. Shared machine: read the ratios.\n")

    if not options.real_round_only:
        dnsmasq_sections(data, duration, fixed_duration)
    real_round_section(data, 1 if options.quick else 3)
    shutil.rmtree(data.parent, ignore_errors=True)
    return 0


def dnsmasq_sections(data: Path, duration: float, fixed_duration: float) -> None:
    """Sections 1 to 3: the engine in this process against dnsmasq, and dnsperf."""
    with Dnsmasq(log_queries=False, cache_size=1000) as server:
        perf = dnsperf(server.port, duration, None, data)
        # Like for like with dnsperf: offered more than the server takes, 100 in flight, replies
        # per second of the run (the driver then runs closed loop at the server's pace; tokens it
        # cannot send within the lateness bound are dropped as unsent, never burst later).
        saturated = ours(server.port, 1.5 * perf.throughput, duration, OUTSTANDING)
        rate, mine = max_ours(server.port, max(5000.0, 0.8 * perf.throughput), duration)
    print("max QPS (dnsmasq without query log), replies per second")
    print(f"  {'':34} {'QPS':>8} {'CPU s/1k q':>11}")
    print(f"  {'dnsperf (100 outstanding)':34} {perf.throughput:8.0f} {perf.cpu_per_1k:11.4f}")
    print(f"  {'ours saturated (100 in flight)':34} {saturated.throughput:8.0f} {saturated.cpu_per_1k:11.4f}")
    print(f"  {'ours highest rate sustained':34} {rate:8.0f} {mine.cpu_per_1k:11.4f}   (open loop, on time)")
    print(f"  ours / dnsperf: saturated QPS {saturated.throughput / perf.throughput:.2f} (goal >= 0.9), "
          f"sustained open-loop rate {rate / perf.throughput:.2f}, "
          f"CPU per query {saturated.cpu_per_1k / perf.cpu_per_1k:.2f}\n")

    print(f"fixed rates, {fixed_duration:g} s each (dnsmasq with query log)")
    print(f"  {'target':>7} | {'ours achieved/target':>20} {'sent':>7} {'replies':>7} {'log':>7} "
          f"{'drops':>6} {'CPU s/1k':>8} | {'dnsperf achieved/target':>23} {'sent':>7} {'log':>7} "
          f"{'drops':>6} {'CPU s/1k':>8} | CPU ours/dnsperf")
    with Dnsmasq(log_queries=True) as server:
        for target in (1000, 10000, 30000):
            before, drops = server.wait_quiet(0.2), rcvbuf_errors()
            run = ours(server.port, target, fixed_duration, IN_FLIGHT)
            logged = server.wait_quiet(0.2) - before
            ours_drops, drops = rcvbuf_errors() - drops, rcvbuf_errors()
            ratio = run.sent / run.seconds / target if run.seconds else 0.0
            ref = dnsperf(server.port, fixed_duration, target, data)
            ref_logged = server.wait_quiet(0.2) - before - logged
            ref_drops = rcvbuf_errors() - drops
            ref_ratio = ref.sent / ref.seconds / target if ref.seconds else 0.0
            print(f"  {target:7d} | {ratio:20.4f} {run.sent:7d} {run.answered:7d} {logged:7d} {ours_drops:6d} "
                  f"{run.cpu_per_1k:8.4f} | {ref_ratio:23.4f} {ref.sent:7d} {ref_logged:7d} {ref_drops:6d} "
                  f"{ref.cpu_per_1k:8.4f} | {run.cpu_per_1k / ref.cpu_per_1k:.2f}")
    print("  (log: queries in dnsmasq's query log; drops: datagrams the kernel dropped at a full socket\n"
          "   buffer meanwhile, system-wide. sent = log + drops when the server, not the client, lost them.)")
    print("\n30k QPS against dnsmasq without query log, counted by its own statistics (SIGUSR1)")
    with Dnsmasq(log_queries=False) as server:
        before = server.answered_count()
        run = ours(server.port, 30000, fixed_duration, IN_FLIGHT)
        answered = server.answered_count() - before
        ref = dnsperf(server.port, fixed_duration, 30000, data)
        ref_answered = server.answered_count() - before - answered
        ratio = run.sent / run.seconds / 30000 if run.seconds else 0.0
        ref_ratio = ref.sent / ref.seconds / 30000 if ref.seconds else 0.0
        print(f"  ours:    achieved/target {ratio:.4f}, sent {run.sent}, replies {run.answered}, "
              f"server answered {answered}, CPU s/1k {run.cpu_per_1k:.4f}")
        print(f"  dnsperf: achieved/target {ref_ratio:.4f}, sent {ref.sent}, replies {ref.answered}, "
              f"server answered {ref_answered}, CPU s/1k {ref.cpu_per_1k:.4f}")


def real_round(rounds: Any, port: int, concurrency: int | None) -> dict[str, Any]:
    """One real Netdns round through coordinator and worker: the report's figures.
    ``concurrency``: the spec's bound on queries in flight, ``None`` for its default."""
    from bench.rounds import only_target
    from kdoctor.probes.netdns import DROPPED_REPLIES

    request: dict[str, Any] = {"qps": ROUND_QPS, "durationInSecond": ROUND_SECONDS, "perRequestTimeoutInMS": 1000,
                               "domain": NAME}
    if concurrency is not None:
        request["concurrency"] = concurrency
    report = rounds.run({
        "apiVersion": "kdoctor.io/v1beta1", "kind": "Netdns", "metadata": {"name": "bench-dns"},
        "spec": {"request": request,
                 "target": {"targetUser": {"server": "127.0.0.1", "port": port}}, "expect": {"successRate": 0}},
    })
    node, target = only_target(report)
    return {"achieved": target.achieved_qps, "sent": target.requests, "ok": target.successes,
            # replies over the same window as the achieved rate (sent / window)
            "replies": target.successes * target.achieved_qps / target.requests if target.requests else 0.0,
            "unsent": target.unsent,
            "timeouts": target.dns.timeouts if target.dns else 0, "processes": target.generator_processes,
            # replies the generator's own sockets dropped (receive buffer full): timeouts of ours
            "dropped": target.dns.events.get(DROPPED_REPLIES, 0) if target.dns else 0,
            "cpu": node.generator.cpu_percent if node.generator else 0.0}


def real_round_section(data: Path, rounds: int) -> None:
    from bench.rounds import RealRounds

    # The in-flight bounds of the rounds: dnsperf's 100 (like for like), 2,000 (enough to cover
    # the server's queue on this machine without flooding it), the spec's default (qps x
    # timeout, at most 60,000: a flood, the server drops what it cannot take: timeouts).
    bounds: list[int | None] = [OUTSTANDING, 2000, None]
    names = [f"{b} in flight" if b else "default bound" for b in bounds]
    print(f"\nreal Netdns round (UDP, qps {ROUND_QPS:,}, {ROUND_SECONDS} s) vs dnsperf -c1 -q{OUTSTANDING}, "
          f"unbound with 2 threads (no query log), {rounds} interleaved round(s); ours: the report's achieved "
          "rate (sent/s) / replies per second, and replies / dnsperf")
    print(f"  {'round':>5} | {'dnsperf QPS':>11} | " + " | ".join(f"{n:>30}" for n in names)
          + " | procs | busiest CPU % | timeouts / replies our sockets dropped (default bound)")
    table: list[list[float]] = []
    with Unbound(threads=2) as server, RealRounds() as real:
        twos = []
        for index in range(rounds):
            twos.append(dnsperf_clients(server.port, ROUND_SECONDS, data))
            ref = dnsperf(server.port, ROUND_SECONDS, None, data)
            runs = [real_round(real, server.port, bound) for bound in bounds]
            table.append([ref.throughput] + [r["replies"] for r in runs] + [r["achieved"] for r in runs])
            cells = [f"{r['achieved']:8.0f} / {r['replies']:8.0f} {r['replies'] / ref.throughput:9.2f}" for r in runs]
            print(f"  {index + 1:5d} | {ref.throughput:11.0f} | " + " | ".join(f"{c:>30}" for c in cells)
                  + f" | {runs[0]['processes']:5d} | {runs[0]['cpu']:13.0f} | "
                  + f"{runs[-1]['timeouts']} / {runs[-1]['dropped']}", flush=True)
    # Each round's figures against the dnsperf run of that round, then the median of those
    # ratios: never a ratio of medians taken from different rounds.
    ratios = [statistics.median(row[i] / row[0] for row in table) for i in range(1, len(table[0]))]
    replies, achieved = ratios[:len(bounds)], ratios[len(bounds):]
    perf = statistics.median(row[0] for row in table)
    two = statistics.median(twos)
    print(f"  is the server a limit for dnsperf -c1? dnsperf -c2 -T2 -q200 got {two:.0f} QPS from it "
          f"(median, {two / perf:.2f} x -c1)")
    print(f"  real round / dnsperf -c1 -q{OUTSTANDING} (median of the per-round ratios; goal >= 1.0), replies "
          "per second: " + ", ".join(f"{n} {r:.2f}" for n, r in zip(names, replies, strict=True))
          + "; achieved rate: " + ", ".join(f"{n} {a:.2f}" for n, a in zip(names, achieved, strict=True)))

def dnsperf_clients(port: int, duration: float, data: Path) -> float:
    """dnsperf with two clients on two threads: what the server gives more than one client."""
    args = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(data), "-l", str(duration), "-c2", "-T2",
            f"-q{2 * OUTSTANDING}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Queries per second:\s+([0-9.]+)", out)
    if match is None:
        raise RuntimeError(f"dnsperf printed no rate:\n{out}")
    return float(match.group(1))


if __name__ == "__main__":
    sys.exit(main())
