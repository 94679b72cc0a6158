"""Twelve lab nodes probing K = 3 peers: constant load per node, every pair within 4 rounds."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.lab.conftest import Lab

pytestmark = pytest.mark.lab


def test_twelve_nodes_k3_each_probes_and_is_probed_by_three_and_four_rounds_cover_all(lab12: Lab) -> None:
    target = {"endpoint": True, "clusterIP": False, "nodePort": False, "ipv4": True, "ipv6": False}
    covered: set[tuple[str, str]] = set()
    for _ in range(4):
        report = lab12.run("lab-ring", target, mesh={"fullMeshMaxNodes": 4, "peers": 3})
        assert report.verdict == "passed", report.reasons
        assert report.matrix is not None
        pairs = [(a, b) for a, b in report.matrix.covered]
        assert set(Counter(a for a, _ in pairs).values()) == {3}
        assert set(Counter(b for _, b in pairs).values()) == {3}
        assert len(Counter(a for a, _ in pairs)) == len(Counter(b for _, b in pairs)) == 12
        assert {(c.source, c.destination) for c in report.matrix.cells} == set(pairs)
        covered.update(pairs)
    assert len(covered) == 12 * 11
