"""A synthetic NetReach round of N nodes, judged by the real report writer: what the series-count
test and bench/signals feed the real store and exporter.

Each node probes K peers on a ring (IPv4 and IPv6, endpoint and nodePort: 4 targets per pair)
plus the ClusterIP of both families; one node (``node-8``) is broken: every pair from and to it
fails. The digests are built directly (one real HDR histogram per shape, shared), which is what a
node would send, so a 1,000-node round is made in a second instead of a minute.
"""

from __future__ import annotations

import random

from kdoctor.reports.merge import assemble_report
from kdoctor.specs.latency import Latency
from kdoctor.specs.results import GeneratorStats, GroupDigest, NodeDigest, NodeResult, PairDigest, Report
from kdoctor.specs.rounds import RoundState

BROKEN = 7  # index of the node whose row and column fail: node-8


def _histogram(rng: random.Random, scale: float) -> Latency:
    latency = Latency()
    for _ in range(200):
        latency.record(rng.lognormvariate(-7.5, 0.5) * scale)
    return latency


def synthetic_round(n: int, peers: int = 10, *, job: str = "synthetic", number: int = 1, broken: bool = True
                    ) -> tuple[RoundState, Report, dict[str, NodeDigest]]:
    """The plan, the report's shell and the judged digests of a NetReach round of ``n`` nodes
    (``broken``: node-8, or the last node of a smaller round, fails every pair from and to it)."""
    rng = random.Random(1)
    faulty = min(BROKEN, n - 1) if broken else -1
    good, bad = _histogram(rng, 1), _histogram(rng, 40)
    good_blob, bad_blob = good.encode(), bad.encode()
    names = [f"node-{i}" for i in range(1, n + 1)]
    digests = {}
    coverage = []
    for i, source in enumerate(names):
        cells, total = [], Latency()
        for k in range(1, min(peers, n - 1) + 1):
            j = (i + k) % n
            ok = faulty not in (i, j)
            coverage.append([source, names[j]])
            cells.append(PairDigest(destination=names[j], targets=4, failed=0 if ok else 4, requests=200,
                                    successes=200 if ok else 80, p99_ms=(good if ok else bad).percentile_ms(99),
                                    histogram=good_blob if ok else bad_blob))
            total.merge(good if ok else bad)
        groups = [GroupDigest(kind=kind, family=family, targets=len(cells) if kind != "clusterIP" else 1,
                              failed=sum(c.failed > 0 for c in cells) if kind != "clusterIP" else 0,
                              requests=50 * len(cells), successes=sum(c.successes for c in cells) // 4,
                              latency_ms=good.summary(), histogram=good_blob)
                  for kind in ("clusterIP", "endpoint", "nodePort") for family in (4, 6)]
        failed = any(c.failed for c in cells)
        digests[source] = NodeDigest(
            node=source, status="failed" if failed else "passed", cells=cells,
            paths={"clusterIP/ipv4": False, "clusterIP/ipv6": False},
            requests=sum(c.requests for c in cells), successes=sum(c.successes for c in cells),
            latency_ms=total.summary(), histogram=total.encode(), groups=groups,
            generator=GeneratorStats(cpu_percent=12.0, saturated=False))
    state = RoundState(round_id=f"{job}-r{number}", job=job, round=number, kind="NetReach", name="synthetic",
                       spec={"kind": "NetReach", "spec": {}}, expected=names, published=names, planned=1.0,
                       start_at=1.0, deadline=20.0, coverage=coverage)
    judged: dict[str, NodeDigest] = {}
    # The nodes' results are spliced into the report text (parsed only for the nodes the blame
    # restates): minimal results stand in for them here.
    raw = {n: NodeResult(node=n, status=d.status).model_dump_json(by_alias=True) for n, d in digests.items()}
    shell, _ = assemble_report(state, digests, raw, judged=judged)
    return state, shell, judged
