"""The source × destination matrix of a round. Pure: no I/O.

Only targets that name a destination node (``endpoint``, ``nodePort``) enter the matrix; a cell
merges every such target of one ordered pair (both families, both kinds) and is bad when any of
them failed its expectation. Targets that name no destination (Service paths, an application's
URL, a DNS server) are gathered per path and source. Who is to blame for the bad ones is
:mod:`kdoctor.reports.blame`'s call.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from kdoctor.reports.blame import path_suspects, suspects
from kdoctor.specs.latency import Latency
from kdoctor.specs.mesh import node_order
from kdoctor.specs.results import Matrix, MatrixCell, NodeResult, TargetResult

SERVICE_PATHS = frozenset({"clusterIP", "loadBalancer", "ingress", "url", "dns"})


@dataclass
class LatencyDigest:
    """What a report needs of its targets' histograms: p99 per (source, destination) pair and the
    merge of them all."""

    p99_ms: dict[tuple[str, str], float | None]
    total: Latency


def digest(nodes: dict[str, NodeResult]) -> LatencyDigest:
    """Decode every target's histogram once, merging pair by pair.

    A 1,000-node round has tens of thousands of targets and an HDR histogram takes ~180 KB in
    memory: keeping one per pair would take gigabytes, so each pair's histogram lives only until
    its p99 is read and it is added to the total.
    """
    groups: dict[tuple[str, str | None], list[TargetResult]] = defaultdict(list)
    for source, result in nodes.items():
        for target in result.targets:
            if target.histogram:
                groups[(source, target.destination)].append(target)
    total = Latency()
    p99: dict[tuple[str, str], float | None] = {}
    for (source, destination), targets in groups.items():
        part = Latency()
        for target in targets:
            part.add_encoded(target.histogram, target.latency_ms)
        if destination is not None:
            p99[(source, destination)] = part.percentile_ms(99) if part.count else None
        total.merge(part)
    return LatencyDigest(p99_ms=p99, total=total)


def build_matrix(nodes: dict[str, NodeResult], covered: list[list[str]],
                 latencies: LatencyDigest | None = None) -> Matrix | None:
    """The matrix of a round, or ``None`` when no target names a destination node or a Service path.

    ``latencies``: the :func:`digest` of ``nodes``, when the caller has it already.
    """
    latencies = digest(nodes) if latencies is None else latencies
    grouped: dict[tuple[str, str], list[TargetResult]] = defaultdict(list)
    paths: dict[str, dict[str, bool]] = defaultdict(dict)  # path → source → bad
    for source, result in nodes.items():
        for target in result.targets:
            if target.destination:
                grouped[(source, target.destination)].append(target)
            elif target.kind in SERVICE_PATHS:
                paths[target.name][source] = paths[target.name].get(source, False) or target.verdict != "passed"
    if not grouped and not paths:
        return None
    cells = [_cell(src, dst, targets, latencies.p99_ms.get((src, dst)))
             for (src, dst), targets in sorted(grouped.items())]
    names = sorted({c.source for c in cells} | {c.destination for c in cells} | set(nodes), key=node_order)
    pairs = covered or [[c.source, c.destination] for c in cells]
    found = suspects(cells)
    found += path_suspects(paths, found)
    if not cells and not found:
        return None
    return Matrix(nodes=names, cells=cells, covered=pairs, suspects=found)


def _cell(source: str, destination: str, targets: list[TargetResult], p99_ms: float | None) -> MatrixCell:
    requests = sum(t.requests for t in targets)
    successes = sum(t.successes for t in targets)
    failed = sum(t.verdict != "passed" for t in targets)
    return MatrixCell(
        source=source, destination=destination, targets=len(targets), failed_targets=failed,
        requests=requests, successes=successes,
        success_rate=round(successes / requests, 6) if requests else None,
        p99_ms=p99_ms, bad=failed > 0,
    )


def shown_nodes(matrix: Matrix, limit: int) -> tuple[list[str], str]:
    """The nodes a grid of at most ``limit`` nodes shows, and a note when that is not all of them.

    A large cluster's grid keeps the nodes that sent or received a bad cell (the ones worth
    looking at); when even those are too many, no grid is drawn and the note says where to look.
    """
    if len(matrix.nodes) <= limit:
        return matrix.nodes, ""
    involved = {n for c in matrix.cells if c.bad for n in (c.source, c.destination)}
    bad = sum(c.bad for c in matrix.cells)
    if not involved:
        return [], f"matrix of {len(matrix.nodes)} nodes: every probed pair is good"
    if len(involved) > limit:
        return [], (f"matrix of {len(matrix.nodes)} nodes: {bad} bad pairs among {len(involved)} nodes, too many "
                    "to draw; the suspects above name them, -o html or -o json has every cell")
    return [n for n in matrix.nodes if n in involved], (
        f"showing the {len(involved)} of {len(matrix.nodes)} nodes that have a bad pair ({bad} bad pairs)")
