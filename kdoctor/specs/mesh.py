"""Who probes whom: a full mesh for small clusters, a rotating ring above ``fullMeshMaxNodes``.

With ``N`` nodes sorted by name (digits as numbers) and ``K`` peers, round ``r`` uses the ``K`` ring offsets
``1 + ((r·K + j) mod (N−1))`` for ``j = 0..K−1``; node ``i`` probes nodes ``i + offset (mod N)``.
The offsets are distinct, so every node probes exactly ``K`` others and is probed by exactly ``K``
others (load per node stays constant as the cluster grows), and ⌈(N−1)/K⌉ consecutive rounds use
every offset ``1..N−1``, that is cover every ordered pair. Pure: the round counter comes from the
caller (the coordinator keeps it in Redis).
"""

from __future__ import annotations

import math
import re

from pydantic import Field

from kdoctor.specs.common import Model


class Mesh(Model):
    """``spec.mesh`` of a NetReach (ours): how many peers each node probes."""

    full_mesh_max_nodes: int = Field(
        default=20, ge=1, description="Up to this many nodes every node probes every other node."
    )
    peers: int = Field(default=10, ge=1, description="Above it, each node probes this many peers per round.")


def node_order(name: str) -> tuple[tuple[int, str], ...]:
    """Sort key that puts ``node-2`` before ``node-10`` (digits compare as numbers)."""
    return tuple((int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", name) if part)


def offsets(n: int, k: int, rotation: int) -> list[int]:
    """Ring offsets used in round ``rotation`` (all of ``1..n−1`` when ``k >= n−1``)."""
    if n < 2:
        return []
    if k >= n - 1:
        return list(range(1, n))
    return [1 + ((rotation * k + j) % (n - 1)) for j in range(k)]


class Ring:
    """Nodes in ring order, sorted once per round: each source's peers are then O(K), so planning a
    round of N nodes is O(N log N) rather than a sort per source."""

    def __init__(self, nodes: list[str]) -> None:
        self.nodes = sorted(nodes, key=node_order)
        self._index = {name: i for i, name in enumerate(self.nodes)}

    def peers(self, source: str, mesh: Mesh, rotation: int) -> list[str]:
        """The nodes ``source`` probes this round, in ring order (none when it is not in the ring)."""
        index = self._index.get(source)
        if index is None:
            return []
        n = len(self.nodes)
        k = n - 1 if n <= mesh.full_mesh_max_nodes else mesh.peers
        return [self.nodes[(index + d) % n] for d in offsets(n, k, rotation)]


def peers(nodes: list[str], source: str, mesh: Mesh, rotation: int) -> list[str]:
    """The nodes ``source`` probes this round, in ring order (``nodes`` in any order)."""
    return Ring(nodes).peers(source, mesh, rotation)


def rounds_to_cover(n: int, mesh: Mesh) -> int:
    """How many consecutive rounds cover every ordered pair of ``n`` nodes."""
    if n < 2:
        return 1
    if n <= mesh.full_mesh_max_nodes or mesh.peers >= n - 1:
        return 1
    return math.ceil((n - 1) / mesh.peers)


def is_full(n: int, mesh: Mesh) -> bool:
    """Whether ``n`` nodes are probed as a full mesh."""
    return n <= mesh.full_mesh_max_nodes or mesh.peers >= n - 1
