"""bench/report: how the coordinator's merge scales with the cluster.

Builds the node results of a NetReach round on a ring of N nodes (K peers, IPv4 and IPv6,
endpoint and nodePort: 4·K targets per node, each with a real HDR histogram), with one broken
node, then times ``build_report`` (merge, matrix, blame) and the JSON encoding, and prints the
report's size and this process's peak RSS. There is no reference tool for this step; the figures
say what finalizing a round costs at 100 to 1,000 nodes.

    .venv/bin/python bench/report/bench_report.py [--nodes 100 300 1000] [--peers 10]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time

from kdoctor.reports.merge import build_report
from kdoctor.specs.latency import Latency
from kdoctor.specs.results import NodeResult, TargetResult
from kdoctor.specs.rounds import RoundState

BROKEN = 7  # index of the node whose row and column fail


def node_results(n: int, peers: int, rng: random.Random) -> dict[str, NodeResult]:
    names = [f"node-{i}" for i in range(1, n + 1)]
    nodes = {}
    for i, source in enumerate(names):
        targets = []
        for k in range(1, min(peers, n - 1) + 1):
            j = (i + k) % n
            ok = BROKEN not in (i, j)
            for family in (4, 6):
                for kind in ("endpoint", "nodePort"):
                    lat = Latency()
                    for _ in range(50):
                        lat.record(rng.lognormvariate(-7.5, 0.5) * (1 if ok else 40))
                    targets.append(TargetResult(
                        name=f"{kind}/ipv{family}/{names[j]}", kind=kind, url=f"http://10.0.{i // 250}.{i % 250}:5710/",
                        destination=names[j], family=family, requests=50, successes=50 if ok else 20,
                        success_rate=1.0 if ok else 0.4, intended_qps=10, achieved_qps=10,
                        latency_ms=lat.summary(), histogram=lat.encode(), verdict="passed" if ok else "failed"))
        nodes[source] = NodeResult(node=source, status="passed", targets=targets)
    return nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--peers", type=int, default=10)
    args = parser.parse_args()
    rng = random.Random(1)
    print(f"bench/report: build_report of a NetReach round, ring of K={args.peers} peers, 4 targets per pair")
    print(f"{'nodes':>6} {'targets':>8} {'cells':>6} {'build s':>8} {'json s':>7} {'report MB':>10} "
          f"{'peak RSS MB':>12}  suspects")
    for n in args.nodes:
        nodes = node_results(n, args.peers, rng)
        names = list(nodes)
        state = RoundState(round_id="bench-r1", job="bench", round=1, kind="NetReach", name="bench", spec={},
                           expected=names, published=names, planned=1.0, start_at=1.0, deadline=2.0)
        t0 = time.perf_counter()
        report = build_report(state, nodes)
        t1 = time.perf_counter()
        text = json.dumps(report.to_json())
        t2 = time.perf_counter()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        targets = sum(len(r.targets) for r in nodes.values())
        cells = len(report.matrix.cells) if report.matrix else 0
        named = ", ".join(f"{s.kind} {s.node or s.source}" for s in (report.matrix.suspects if report.matrix else []))
        print(f"{n:>6} {targets:>8} {cells:>6} {t1 - t0:>8.2f} {t2 - t1:>7.2f} {len(text) / 1e6:>10.1f} "
              f"{rss:>12.0f}  {named}")


if __name__ == "__main__":
    main()
