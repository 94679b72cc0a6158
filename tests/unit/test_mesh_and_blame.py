"""The peer ring, NetReach planning from an inventory, blame analysis and the static inventory."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from kdoctor.errors import SpecError
from kdoctor.inventory import static
from kdoctor.probes import netreach
from kdoctor.reports.blame import describe, suspects
from kdoctor.reports.matrix import build_matrix
from kdoctor.specs.loading import validate
from kdoctor.specs.mesh import Mesh, peers, rounds_to_cover
from kdoctor.specs.netreach import NetReach
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import InventoryView, RoundContext, Services
from kdoctor.specs.results import MatrixCell, NodeResult, TargetResult


def _names(n: int) -> list[str]:
    return [f"node-{i:02d}" for i in range(1, n + 1)]


@pytest.mark.parametrize(("n", "k"), [(12, 3), (25, 10), (21, 4), (50, 7)])
def test_ring_gives_every_node_exactly_k_peers_both_ways_and_covers_all_pairs(n: int, k: int) -> None:
    mesh = Mesh(full_mesh_max_nodes=min(n - 1, 20), peers=k)
    names = _names(n)
    covered: set[tuple[str, str]] = set()
    rounds = rounds_to_cover(n, mesh)
    assert rounds == math.ceil((n - 1) / k)
    for rotation in range(rounds):
        probed_by: Counter[str] = Counter()
        for source in names:
            chosen = peers(names, source, mesh, rotation)
            assert len(chosen) == len(set(chosen)) == k
            assert source not in chosen
            probed_by.update(chosen)
            covered.update((source, d) for d in chosen)
        assert set(probed_by.values()) == {k}
    assert covered == {(a, b) for a in names for b in names if a != b}


def test_twelve_nodes_k3_four_rounds_cover_every_pair() -> None:
    mesh = Mesh(full_mesh_max_nodes=4, peers=3)
    names = _names(12)
    covered = {(s, d) for r in range(4) for s in names for d in peers(names, s, mesh, r)}
    assert len(covered) == 12 * 11
    assert {(s, d) for r in range(3) for s in names for d in peers(names, s, mesh, r)} != covered


def test_full_mesh_at_or_below_the_limit() -> None:
    names = _names(20)
    assert all(len(peers(names, s, Mesh(), 7)) == 19 for s in names)
    assert all(len(peers(_names(21), s, Mesh(), 0)) == 10 for s in _names(21))


def _view(n: int, rotation: int = 0) -> RoundContext:
    nodes = [NodeInfo(name=f"node-{i}", ipv4=[f"10.0.0.{i}"], ipv6=[f"fd00::{i}"], agent_port=5710,
                      labels={"zone": "a" if i % 2 else "b"}) for i in range(1, n + 1)]
    services = Services(port=80, cluster_ip=["10.96.0.10", "fd00:96::10"], node_port=30710,
                        load_balancer=["10.97.0.10"], ingress=["http://10.0.0.250/x", "http://[fd00::fa]/x"])
    return RoundContext(InventoryView(expected=nodes, live=[n.name for n in nodes], services=services), rotation)


def _spec(target: dict[str, object], mesh: dict[str, int] | None = None) -> NetReach:
    spec = validate({"apiVersion": "kdoctor.io/v1beta1", "kind": "NetReach", "metadata": {"name": "t"},
                     "spec": {"target": target, **({"mesh": mesh} if mesh else {})}})
    assert isinstance(spec, NetReach)
    return spec


def test_plan_has_every_target_kind_in_both_families() -> None:
    v = _view(3)
    spec = _spec({"endpoint": True, "clusterIP": True, "nodePort": True, "loadBalancer": True,
                  "ingress": True, "ipv4": True, "ipv6": True})
    targets, warnings = netreach.plan(spec, v.inventory.expected[0], v)
    names = {t.name for t in targets}
    assert {"endpoint/ipv4/node-2", "endpoint/ipv6/node-3", "clusterIP/ipv4", "clusterIP/ipv6",
            "loadBalancer/ipv4", "ingress/ipv4", "ingress/ipv6", "nodePort/ipv4/node-1",
            "nodePort/ipv6/node-3"} <= names
    assert not any(t.destination == "node-1" and t.kind == "endpoint" for t in targets)
    assert any("loadBalancer" in w for w in warnings) is False  # the IPv4 address suffices
    only_v6, _ = netreach.plan(_spec({"ingress": True, "ipv4": False, "ipv6": True}), v.inventory.expected[0], v)
    assert {t.name for t in only_v6 if t.kind == "ingress"} == {"ingress/ipv6"}


def test_plan_follows_the_ring_and_the_source_selector() -> None:
    v = _view(12, rotation=2)
    spec = _spec({"endpoint": True, "nodePort": False, "clusterIP": False}, {"fullMeshMaxNodes": 5, "peers": 3})
    dests = {t.destination for t in netreach.plan(spec, v.inventory.expected[0], v)[0]}
    assert len(dests) == 3
    selected = _spec({"sourceNodeSelector": {"matchLabels": {"zone": "a"}}})
    assert netreach.plan(selected, v.inventory.expected[1], v) == ([], [])  # node-2 is zone b
    assert netreach.plan(selected, v.inventory.expected[0], v)[0]
    by_name = _spec({"sourceNodeSelector": {"names": ["node-2"]}})
    assert netreach.plan(by_name, v.inventory.expected[1], v)[0]
    assert netreach.plan(by_name, v.inventory.expected[0], v) == ([], [])


def _cells(n: int, bad: set[tuple[int, int]]) -> list[MatrixCell]:
    return [MatrixCell(source=f"n{a}", destination=f"n{b}", targets=2, bad=(a, b) in bad, requests=10)
            for a in range(1, n + 1) for b in range(1, n + 1)]


def test_blame_names_a_node_a_pair_a_source_and_a_destination() -> None:
    node = {(2, b) for b in (1, 3, 4)} | {(a, 2) for a in (1, 3, 4)}
    assert [(s.kind, s.node) for s in suspects(_cells(4, node))] == [("node", "n2")]
    assert [(s.kind, s.source, s.destination) for s in suspects(_cells(4, {(1, 3)}))] == [("pair", "n1", "n3")]
    row = {(3, b) for b in (1, 2, 4)}
    assert [(s.kind, s.node) for s in suspects(_cells(4, row))] == [("source", "n3")]
    col = {(a, 4) for a in (1, 2, 3)} | {(1, 2)}
    found = [(s.kind, s.node or f"{s.source}>{s.destination}") for s in suspects(_cells(4, col))]
    assert found == [("destination", "n4"), ("pair", "n1>n2")]
    assert suspects(_cells(4, set())) == []


def _node(name: str, bad_paths: set[str]) -> NodeResult:
    targets = [TargetResult(name=path, kind=path.split("/")[0], url="http://x", requests=10,
                            successes=0 if path in bad_paths else 10,
                            verdict="failed" if path in bad_paths else "passed")
               for path in ("clusterIP/ipv4", "loadBalancer/ipv4", "ingress/ipv6")]
    return NodeResult(node=name, status="failed" if bad_paths else "passed", targets=targets)


def test_service_paths_blame_the_service_or_the_one_source() -> None:
    # clusterIP fails from every node: the Service path; loadBalancer only from node-3: its path.
    nodes = {f"node-{i}": _node(f"node-{i}", {"clusterIP/ipv4"} | ({"loadBalancer/ipv4"} if i == 3 else set()))
             for i in range(1, 5)}
    matrix = build_matrix(nodes, [])
    assert matrix is not None and matrix.cells == []
    assert [(s.kind, s.target or s.node) for s in matrix.suspects] == [
        ("service", "clusterIP/ipv4"), ("source", "node-3")]
    assert describe(matrix.suspects[0]) == "suspect service clusterIP/ipv4: fails from 4/4 sources"
    assert "loadBalancer/ipv4 fails from it (1/4 sources)" in matrix.suspects[1].reason
    # All healthy, or a single source (it cannot tell its path from the Service): no cells, no
    # suspects, no matrix.
    assert build_matrix({f"n{i}": _node(f"n{i}", set()) for i in range(3)}, []) is None
    assert build_matrix({"n1": _node("n1", {"clusterIP/ipv4"})}, []) is None


def test_an_application_url_failing_from_one_node_blames_that_node() -> None:
    def app(name: str, ok: bool) -> NodeResult:
        target = TargetResult(name="https://orders/", kind="url", url="https://orders/", requests=10,
                              successes=10 if ok else 2, verdict="passed" if ok else "failed")
        return NodeResult(node=name, status="passed" if ok else "failed", targets=[target])

    matrix = build_matrix({"a": app("a", True), "b": app("b", False), "c": app("c", True)}, [])
    assert matrix is not None and matrix.cells == []
    assert [(s.kind, s.node) for s in matrix.suspects] == [("source", "b")]
    down = build_matrix({n: app(n, False) for n in "abc"}, [])
    assert down is not None and [(s.kind, s.target) for s in down.suspects] == [("service", "https://orders/")]


def test_static_inventory_loads_merges_and_reports_missing(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("nodes:\n  - name: a\n    ipv4: [10.0.0.1]\n    labels: {zone: x}\n  - name: b\n"
                    "services:\n  port: 80\n  clusterIP: [10.96.0.1]\n  nodePort: 30000\n")
    inv = static.load(path)
    worker = NodeInfo(name="a", ipv4=["10.0.0.9"], agent_port=1234, last_heartbeat=1.0)
    extra = NodeInfo(name="c", last_heartbeat=1.0)
    merged = {n.name: n for n in static.merge(inv, [worker, extra])}
    assert merged["a"].ipv4 == ["10.0.0.9"] and merged["a"].labels == {"zone": "x"}
    assert merged["b"].last_heartbeat == 0  # no worker: missing
    assert set(merged) == {"a", "b", "c"}
    assert inv.services_view().node_port == 30000
    path.write_text("nodes:\n  - name: a\n    ipv4: [not-an-ip]\n    agentPort: 0\n  - {name: a}\nbogus: 1\n")
    with pytest.raises(SpecError) as err:
        static.load(path)
    text = str(err.value)
    assert text.startswith(f"invalid inventory in {path}: ")
    assert "nodes.0.ipv4" in text and "nodes.0.agentPort" in text and "bogus" in text
