"""A node's digest (:class:`~kdoctor.specs.results.NodeDigest`): its targets merged per
destination and in total, so the coordinator never handles every target of a large round.

Pure. A node makes its own digest when its probe ends (its CPU is free then, and it already
has every histogram); the coordinator makes one only for the nodes it reports itself (missing,
timeout), which have no targets.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from kdoctor.specs.latency import Latency
from kdoctor.specs.results import DiskDigest, GroupDigest, NodeDigest, NodeResult, PairDigest, TargetResult

SERVICE_PATHS = frozenset({"clusterIP", "loadBalancer", "ingress", "url", "dns"})
"""Target kinds that name no destination node: judged across sources, not in the matrix."""


def digest_of(result: NodeResult) -> NodeDigest:
    """The digest of ``result`` (every target histogram decoded once)."""
    groups: dict[str, list[TargetResult]] = defaultdict(list)
    paths: dict[str, bool] = {}
    total = Latency()
    for target in result.targets:
        if target.destination:
            groups[target.destination].append(target)
        else:
            if target.kind in SERVICE_PATHS:
                paths[target.name] = paths.get(target.name, False) or target.verdict != "passed"
            if target.histogram:
                total.add_encoded(target.histogram, target.latency_ms)
    cells = []
    for destination, targets in sorted(groups.items()):
        part = Latency()
        for target in targets:
            if target.histogram:
                part.add_encoded(target.histogram, target.latency_ms)
        cells.append(PairDigest(
            destination=destination, targets=len(targets), failed=sum(t.verdict != "passed" for t in targets),
            requests=sum(t.requests for t in targets), successes=sum(t.successes for t in targets),
            p99_ms=part.percentile_ms(99) if part.count else None, histogram=part.encode()))
        total.merge(part)
    return NodeDigest(
        node=result.node, status=result.status, reason=result.reason, warnings=result.warnings, cells=cells,
        paths=paths, requests=sum(t.requests for t in result.targets),
        successes=sum(t.successes for t in result.targets), latency_ms=total.summary(),
        histogram=total.encode() if total.count else "",
        groups=_by_kind_and_family(result.targets), generator=result.generator,
        disk=[DiskDigest(name=p.name, profile=p.profile, mib_per_second=p.mib_per_second, iops=p.iops,
                         latency_of=p.latency_of, p99_ms=p.latency_ms.p99) for p in result.profiles],
    )


def _by_kind_and_family(targets: list[TargetResult]) -> list[GroupDigest]:
    """The targets merged per kind and family (at most a few groups per node: metrics per target
    kind stay independent of the number of pairs)."""
    groups: dict[tuple[str, Literal[4, 6] | None], list[TargetResult]] = defaultdict(list)
    for target in targets:
        groups[(target.kind, target.family)].append(target)
    found = []
    for (kind, family), members in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or 0)):
        latency = Latency()
        for target in members:
            if target.histogram:
                latency.add_encoded(target.histogram, target.latency_ms)
        found.append(GroupDigest(
            kind=kind, family=family, targets=len(members), failed=sum(t.verdict != "passed" for t in members),
            requests=sum(t.requests for t in members), successes=sum(t.successes for t in members),
            latency_ms=latency.summary(), histogram=latency.encode()))
    return found
