"""bench/disk: fio and kdoctor's DiskIO side by side, same directory, same parameters, one run.

Each round runs every measurement with fio and with kdoctor back to back (the order alternates
from round to round so that drift of a shared disk does not favour one side), and the ratio of a
round is ours / fio *of that round*. The summary gives, per measurement, the median of fio's and of
our figures and the median of the per-round ratios; never a ratio of figures from different rounds.

======================  ===========================================  =====================  ==========
measurement             fio                                          kdoctor                goal
======================  ===========================================  =====================  ==========
etcd p99 (in process)   --rw=write --ioengine=sync --fdatasync=1     etcd, diskio.run       0.9-1.1
                        --bs=2300 --size=22m (sync percentiles),
                        run before and after ours
etcd p99 (real round)   the same                                     etcd through a worker  0.9-1.1
seqWrite MiB/s          --rw=write --bs=1M --direct=1 psync          seqWrite               0.9-1.1
                        --end_fsync=1, run before and after ours
seqRead MiB/s           --rw=read --bs=1M --direct=1 --ioengine=psync seqRead               0.9-1.1
                        run before and after ours
randRead qd1 IOPS       --rw=randread --bs=4k --direct=1 psync       randRead qd 1          >= 0.8
randRead qd32           same with --ioengine=libaio --iodepth=32     randRead qd 32         >= 0.8
======================  ===========================================  =====================  ==========

The real round (:mod:`rounds`): a private redis-server, ``kdoctor coordinator`` and ``kdoctor
worker``, the spec submitted through ``kdoctor.api``. For both etcd figures fio runs just before
and just after ours (a p99 follows the machine's moment more than the tool) and ours is paired
with each, two ratios a round, whose median is the summary's. The sequential bandwidths the same
way: a 512 MiB pass takes a quarter of a second here, and one pass of either tool strays 10-25 %
from the next (12 bracketed rounds of seqWrite: fio after / fio before had quartiles 0.89 / 0.97
/ 1.14, ours / fio 0.92 / 1.02 / 1.13), so five single pairs could miss 0.9-1.1 on the disk's
moments alone. The summary prints fio against itself (after / before) as that yardstick.
Usage: ``.venv/bin/python bench/disk/bench.py [--quick] [--rounds N]
[--dir DIR] [--no-real]``. Installs nothing: fio comes from ./scripts/install.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kdoctor.probes import diskio, diskplace
from kdoctor.probes.kinds import NodeContext
from kdoctor.probes.measure import GeneratorMonitor
from kdoctor.specs.diskio import DiskIO
from kdoctor.specs.loading import validate
from kdoctor.specs.plan import Assignment
from kdoctor.specs.results import DiskProfileResult

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rounds as rounds_mod  # bench/disk/rounds.py, beside this file

MIB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    etcd_mib: int
    seq_mib: int
    rand_mib: int


FULL = Sizes(etcd_mib=22, seq_mib=512, rand_mib=128)
QUICK = Sizes(etcd_mib=8, seq_mib=128, rand_mib=32)


@dataclass(frozen=True)
class Figure:
    """One figure a workload yields, with the goal of its ratio (None: shown, not judged)."""

    name: str
    unit: str
    goal: Callable[[float], bool] | None
    goal_text: str


@dataclass(frozen=True)
class Workload:
    """One workload run by both tools; each returns its figures by name."""

    name: str
    figures: list[Figure]
    fio: Callable[[str, Sizes], dict[str, float]]
    ours: Callable[[str, Sizes], dict[str, float]]
    fio_params: str = ""
    our_params: str = ""
    bracket: bool = False
    """fio runs before and after ours, and ours is paired with each (two ratios a round)."""


ENGINES: dict[str, str] = {}
"""The engine each of our measurements ran (the DiskIO result's ``engine``), by profile name."""
WAITS: list[float] = []
"""cpuWaitMs of our measurements, the last one printed with its round's line."""
ROUNDS: list[Any] = []
"""The real node (:class:`rounds.Rounds`) when the bench runs real rounds."""


def fio(directory: str, *args: str) -> dict[str, Any]:
    name = f"fio-{os.getpid()}-{time.monotonic_ns()}"
    cmd = ["fio", f"--name={name}", f"--filename={os.path.join(directory, name)}", "--unlink=1",
           "--output-format=json", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    job: dict[str, Any] = json.loads(done.stdout[done.stdout.index("{"):])["jobs"][0]
    return job


def ours(directory: str, profile: str, size_mib: int, **request: Any) -> DiskProfileResult:
    spec = validate({"apiVersion": "kdoctor.io/v1beta1", "kind": "DiskIO", "metadata": {"name": "bench"},
                     "spec": {"target": {"profiles": [profile]},
                              "request": {"sizeInMiB": size_mib, "durationInSecond": 120,
                                          "freeSpaceMarginInMiB": 256, **request},
                              # Figures are compared, not judged: no verdict may stop the bench.
                              "expect": {"fdatasyncP99InMs": 3_600_000}}})
    assert isinstance(spec, DiskIO)
    assignment = Assignment(round_id="bench", job="bench", round=1, kind="DiskIO", name="bench", spec={},
                            node="bench", start_at=0, deadline=0)
    node = NodeContext(name="bench", data_dir=directory, resolv_conf="/etc/resolv.conf")
    result = asyncio.run(diskio.run(assignment, spec, time.perf_counter(), GeneratorMonitor(), node))
    if len(result.profiles) != 1:
        raise SystemExit(f"kdoctor {profile}: {result.status}: {result.reason}")
    ENGINES[result.profiles[0].name] = result.profiles[0].engine
    WAITS.append(result.profiles[0].cpu_wait_ms)
    return result.profiles[0]


def _fio_etcd(d: str, s: Sizes) -> dict[str, float]:
    pct = fio(d, "--rw=write", "--ioengine=sync", "--fdatasync=1", "--bs=2300",
              f"--size={s.etcd_mib}m")["sync"]["lat_ns"]["percentile"]
    return {"p99": pct["99.000000"] / 1e6, "p50": pct["50.000000"] / 1e6}


def _ours_etcd(d: str, s: Sizes) -> dict[str, float]:
    lat = ours(d, "etcd", s.etcd_mib).latency_ms
    return {"p99": float(lat.p99 or 0.0), "p50": float(lat.p50 or 0.0)}


def _real_etcd(d: str, s: Sizes) -> dict[str, float]:
    result = ROUNDS[0].run("etcd", s.etcd_mib)
    WAITS.append(result.cpu_wait_ms)
    lat = result.latency_ms
    return {"p99": float(lat.p99 or 0.0), "p50": float(lat.p50 or 0.0)}


def _fio_rand(depth: int) -> Callable[[str, Sizes], dict[str, float]]:
    engine = ["--ioengine=psync"] if depth == 1 else ["--ioengine=libaio", f"--iodepth={depth}"]
    return lambda d, s: {"iops": fio(d, "--rw=randread", "--bs=4k", "--direct=1", "--norandommap", *engine,
                                     f"--size={s.rand_mib}m")["read"]["iops"]}


def _ours_rand(depth: int) -> Callable[[str, Sizes], dict[str, float]]:
    return lambda d, s: {"iops": ours(d, "randRead", s.rand_mib, queueDepths=[depth]).iops}


_ETCD = "--rw=write --ioengine=sync --fdatasync=1 --bs=2300 --size={etcd}m"
_SEQ = "--rw={rw} --bs=1M --direct=1 --ioengine=psync --size={seq}m"
_RAND = "--rw=randread --bs=4k --direct=1 --norandommap --size={rand}m"
ETCD_GOAL = Figure("p99", "ms", lambda r: 0.9 <= r <= 1.1, "0.9-1.1")
BAND = Figure("bw", "MiB/s", lambda r: 0.9 <= r <= 1.1, "0.9-1.1")
WORKLOADS = [
    Workload("etcd fdatasync", [ETCD_GOAL, Figure("p50", "ms", None, "(shown)")], _fio_etcd, _ours_etcd,
             _ETCD + " (before and after)",
             "etcd: 2300 B pwrite + fdatasync, new file posix_fallocate'd to {etcd} MiB, in process",
             bracket=True),
    Workload("seqWrite 1 MiB", [BAND],
             lambda d, s: {"bw": fio(d, "--rw=write", "--bs=1M", "--direct=1", "--ioengine=psync", "--end_fsync=1",
                                     f"--size={s.seq_mib}m")["write"]["bw_bytes"] / MIB},
             lambda d, s: {"bw": ours(d, "seqWrite", s.seq_mib).mib_per_second},
             _SEQ.format(rw="write", seq="{seq}") + " --end_fsync=1 (before and after)",
             "seqWrite: 1 MiB O_DIRECT pwrite, new file posix_fallocate'd to {seq} MiB, fdatasync at the end "
             "inside the timing", bracket=True),
    Workload("seqRead 1 MiB", [BAND],
             lambda d, s: {"bw": fio(d, "--rw=read", "--bs=1M", "--direct=1", "--ioengine=psync",
                                     f"--size={s.seq_mib}m")["read"]["bw_bytes"] / MIB},
             lambda d, s: {"bw": ours(d, "seqRead", s.seq_mib).mib_per_second},
             _SEQ.format(rw="read", seq="{seq}") + " (before and after)",
             "seqRead: 1 MiB O_DIRECT preadv of a {seq} MiB file laid out first",
             bracket=True),
    Workload("randRead 4 KiB qd1", [Figure("iops", "IOPS", lambda r: r >= 0.8, ">= 0.8")],
             _fio_rand(1), _ours_rand(1), _RAND + " --ioengine=psync",
             "randRead queueDepths [1]: preadv of 4 KiB O_DIRECT at random offsets, {rand} MiB in all"),
    Workload("randRead 4 KiB qd32", [Figure("iops", "IOPS", lambda r: r >= 0.8, ">= 0.8")],
             _fio_rand(32), _ours_rand(32), _RAND + " --ioengine=libaio --iodepth=32",
             "randRead queueDepths [32]: engine auto (libaio where the kernel allows), {rand} MiB in all"),
]
REAL = Workload("etcd real round", [ETCD_GOAL, Figure("p50", "ms", None, "(shown)")], _fio_etcd, _real_etcd,
                _ETCD + " (before and after)", "etcd through kdoctor coordinator + worker (real round)",
                bracket=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller files, fewer rounds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 3)")
    parser.add_argument("--dir", default=None, help="directory to test (default: a new one under /var/tmp)")
    parser.add_argument("--no-real", action="store_true", help="skip the etcd profile through a real round")
    args = parser.parse_args()
    if shutil.which("fio") is None:
        print("fio is not installed: run ./scripts/install", file=sys.stderr)
        return 2
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or (3 if args.quick else 5)
    directory = args.dir or tempfile.mkdtemp(prefix="kdoctor-bench-disk-", dir="/var/tmp")
    place = diskplace.open_place(directory, ".")
    fs = place.filesystem
    place.close()
    print(f"directory {directory} ({fs}); {rounds} round(s); etcd {sizes.etcd_mib} MiB, seq "
          f"{sizes.seq_mib} MiB, random {sizes.rand_mib} MiB of 4 KiB I/O; {os.cpu_count()} CPUs")
    workloads = WORKLOADS if args.no_real else [WORKLOADS[0], REAL, *WORKLOADS[1:]]
    values = {"etcd": sizes.etcd_mib, "seq": sizes.seq_mib, "rand": sizes.rand_mib}
    print(f"\n{'measurement':22} {'fio':72} kdoctor")
    for work in workloads:
        print(f"{work.name:22} {work.fio_params.format(**values):72} {work.our_params.format(**values)}")
    print()
    rows = [(w, f) for w in workloads for f in w.figures]
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {(w.name, f.name): [] for w, f in rows}
    # fio against itself (after / before) where it runs twice a round: how far a ratio strays on
    # this machine with the same tool on both sides, the yardstick for ours / fio.
    itself: dict[tuple[str, str], list[float]] = {(w.name, f.name): [] for w, f in rows if w.bracket}
    stack = contextlib.ExitStack()
    try:
        if not args.no_real:
            ROUNDS.append(stack.enter_context(rounds_mod.real_node(directory)))
        for number in range(rounds):
            for work in workloads:
                # Alternate who goes first, so a drifting disk does not favour one side.
                if work.bracket:
                    # ours against each of the fio runs around it, one pair each: against their
                    # mean, fio's p99 would be spiked whenever either run was (twice as often as
                    # a single run's), and the median ratio would lean below 1 by that alone.
                    before = work.fio(directory, sizes)
                    mine = work.ours(directory, sizes)
                    after = work.fio(directory, sizes)
                    sides = [before, after]
                elif number % 2 == 0:
                    sides = [work.fio(directory, sizes)]
                    mine = work.ours(directory, sizes)
                else:
                    mine = work.ours(directory, sizes)
                    sides = [work.fio(directory, sizes)]
                for fig in work.figures:
                    figures[(work.name, fig.name)] += [(theirs[fig.name], mine[fig.name]) for theirs in sides]
                    if work.bracket and sides[0][fig.name]:
                        itself[(work.name, fig.name)].append(sides[1][fig.name] / sides[0][fig.name])
                    fios = " / ".join(f"{theirs[fig.name]:.2f}" for theirs in sides)
                    shown = " / ".join(f"{mine[fig.name] / theirs[fig.name]:.2f}" for theirs in sides)
                    print(f"  round {number + 1} {work.name + ' ' + fig.name:26} fio {fios:>13}  "
                          f"kdoctor {mine[fig.name]:10.2f} {fig.unit:5} ratio {shown}"
                          + (f"  (our I/O thread waited {WAITS[-1]:.1f} ms for a CPU)" if WAITS else ""),
                          flush=True)
                WAITS.clear()
    finally:
        stack.close()
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    print()
    print(f"{'measurement':26} {'unit':6} {'fio median':>11} {'ours median':>12} {'ratios':>30} "
          f"{'median ratio':>13}  goal")
    failed = 0
    for work, fig in rows:
        pairs = figures[(work.name, fig.name)]
        ratios = [mine / theirs for theirs, mine in pairs]
        ratio = statistics.median(ratios)
        verdict = ""
        if fig.goal is not None:
            ok = fig.goal(ratio)
            failed += not ok
            verdict = "ok" if ok else "MISSED"
        print(f"{work.name + ' ' + fig.name:26} {fig.unit:6} {statistics.median(p[0] for p in pairs):11.2f} "
              f"{statistics.median(p[1] for p in pairs):12.2f} {' '.join(f'{r:.2f}' for r in ratios):>30} "
              f"{ratio:13.2f}  {fig.goal_text} {verdict}")
    print("\nratio = kdoctor / fio of the same round (etcd and sequential: against fio before and after, two a "
          "round); median ratio = median of those ratios.")
    print("fio against itself (its run after ours / its run before), the spread a ratio has here with one tool "
          "on both sides:")
    for (name, figure), spread in itself.items():
        if spread:
            print(f"  {name + ' ' + figure:26} median {statistics.median(spread):.2f}, range "
                  f"{min(spread):.2f}-{max(spread):.2f}")
    print("kdoctor engines: " + ", ".join(f"{name} {engine}" for name, engine in sorted(ENGINES.items())))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
