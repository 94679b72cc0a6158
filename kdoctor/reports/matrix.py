"""The source × destination matrix of a round. Pure: no I/O.

Only targets that name a destination node (``endpoint``, ``nodePort``) enter the matrix; a cell
merges every such target of one ordered pair (both families, both kinds) and is bad when any of
them failed its expectation. The cells come from the nodes' digests (each node merges its own
targets: :mod:`kdoctor.specs.digest`). Targets that name no destination (Service paths, an application's
URL, a DNS server) are gathered per path and source. Who is to blame for the bad ones is
:mod:`kdoctor.reports.blame`'s call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from kdoctor.reports.blame import path_suspects, suspects
from kdoctor.specs.digest import SERVICE_PATHS, digest_of
from kdoctor.specs.latency import Latency
from kdoctor.specs.mesh import node_order
from kdoctor.specs.results import Matrix, MatrixCell, NodeDigest, NodeResult, PairDigest

__all__ = ["SERVICE_PATHS", "build_matrix", "merged_latency", "shown_nodes"]


def merged_latency(digests: Iterable[NodeDigest]) -> Latency:
    """Every node's merged histogram, merged: the round's latency."""
    total = Latency()
    for digest in digests:
        if digest.histogram:
            total.add_encoded(digest.histogram, digest.latency_ms)
    return total


def build_matrix(nodes: Mapping[str, NodeDigest | NodeResult], covered: list[list[str]]) -> Matrix | None:
    """The matrix of a round, or ``None`` when no target names a destination node or a Service path."""
    digests = {name: n if isinstance(n, NodeDigest) else digest_of(n) for name, n in nodes.items()}
    cells: list[MatrixCell] = []
    paths: dict[str, dict[str, bool]] = defaultdict(dict)  # path → source → bad
    for source, digest in digests.items():
        cells += [_cell(source, pair) for pair in digest.cells]
        for path, bad in digest.paths.items():
            paths[path][source] = paths[path].get(source, False) or bad
    if not cells and not paths:
        return None
    cells.sort(key=lambda c: (c.source, c.destination))
    names = sorted({c.source for c in cells} | {c.destination for c in cells} | set(digests), key=node_order)
    pairs = covered or [[c.source, c.destination] for c in cells]
    found = suspects(cells)
    found += path_suspects(paths, found)
    if not cells and not found:
        return None
    return Matrix(nodes=names, cells=cells, covered=pairs, suspects=found)


def _cell(source: str, pair: PairDigest) -> MatrixCell:
    return MatrixCell(
        source=source, destination=pair.destination, targets=pair.targets, failed_targets=pair.failed,
        requests=pair.requests, successes=pair.successes,
        success_rate=round(pair.successes / pair.requests, 6) if pair.requests else None,
        p99_ms=pair.p99_ms, bad=pair.failed > 0,
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
