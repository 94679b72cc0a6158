"""A 4-node lab: every NetReach target kind over IPv4 and IPv6, and faults the report must blame
on the right node or pair. Runs as root (see conftest)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from kdoctor.lab import lab, processes
from kdoctor.specs.results import Report
from kdoctor.store import nodes as registry
from tests.lab.conftest import Lab

pytestmark = pytest.mark.lab

ALL = {"endpoint": True, "clusterIP": True, "nodePort": True, "loadBalancer": True, "ingress": True,
       "ipv4": True, "ipv6": True}
PER_NODE = {"endpoint": True, "nodePort": True, "clusterIP": False, "loadBalancer": False, "ingress": False,
            "ipv4": True, "ipv6": True}


def _bad_cells(report: Report) -> set[tuple[str, str]]:
    assert report.matrix is not None
    return {(c.source, c.destination) for c in report.matrix.cells if c.bad}


def test_round_passes_with_all_target_kinds_ipv4_and_ipv6(lab4: Lab) -> None:
    report = lab4.run("lab-all", ALL)
    assert report.verdict == "passed", report.reasons
    assert set(report.nodes) == {"node-1", "node-2", "node-3", "node-4"}
    for result in report.nodes.values():
        seen = {(t.kind, t.family) for t in result.targets}
        assert seen == {(k, f) for k in ("endpoint", "clusterIP", "nodePort", "loadBalancer", "ingress")
                        for f in (4, 6)}
        assert all(t.requests > 0 and t.success_rate == 1.0 for t in result.targets)
    assert report.matrix is not None
    assert len({(a, b) for a, b in report.matrix.covered if a != b}) == 12
    assert report.matrix.suspects == []


def test_loss_on_one_node_fails_its_row_and_column_and_names_only_it(lab4: Lab) -> None:
    assert "node-2: loss 30%" in lab4.cli("fault", "node-2", "--loss", "30%")
    try:
        report = lab4.run("lab-loss", PER_NODE, qps=10, duration=2)
    finally:
        lab4.cli("fault", "--clear")
    assert report.verdict == "failed"
    involved = {(s, d) for s in report.nodes for d in report.nodes if s != d and "node-2" in (s, d)}
    assert _bad_cells(report) - {("node-2", "node-2")} == involved
    assert report.matrix is not None
    assert [(s.kind, s.node) for s in report.matrix.suspects] == [("node", "node-2")]
    assert report.reasons[0].startswith("suspect node node-2: ")  # blame leads the reasons


def test_one_way_drop_fails_only_that_pair_and_names_it(lab4: Lab) -> None:
    lab4.cli("fault", "--drop-from", "node-1", "--to", "node-3")
    assert '"node-1": [' in lab4.cli("status")
    try:
        report = lab4.run("lab-drop", PER_NODE, qps=5, duration=1)
    finally:
        lab4.fault(None, clear=True)
    assert _bad_cells(report) == {("node-1", "node-3")}
    assert report.matrix is not None
    assert [(s.kind, s.source, s.destination) for s in report.matrix.suspects] == [("pair", "node-1", "node-3")]
    assert report.reasons[0].startswith("suspect pair node-1 → node-3: ")
    assert report.nodes["node-3"].status == "passed"  # node-3 → node-1 still works: one way only


def test_slow_node_is_named_by_its_latency(lab4: Lab) -> None:
    # 64 kbit/s is about a third of what node-2 must send here (requests and answers): its queue
    # grows for the whole round, so its latency reaches seconds while every other path stays fast.
    assert "node-2: slow 64kbit" in lab4.cli("fault", "node-2", "--slow", "64kbit")
    try:
        report = lab4.run("lab-slow", PER_NODE, qps=5, duration=2,
                          expect={"successRate": 0.5, "meanAccessDelayInMs": 500})
    finally:
        lab4.cli("fault", "--clear")
    involved = {(s, d) for s in report.nodes for d in report.nodes if s != d and "node-2" in (s, d)}
    assert _bad_cells(report) - {("node-2", "node-2")} == involved
    assert report.matrix is not None
    assert [(s.kind, s.node) for s in report.matrix.suspects] == [("node", "node-2")]


def test_broken_service_path_on_one_node_names_that_source(lab4: Lab) -> None:
    assert "node-3: no Service path" in lab4.cli("fault", "node-3", "--no-service")
    try:
        report = lab4.run("lab-svc", ALL, qps=5, duration=1)
    finally:
        lab4.fault(None, clear=True)
    assert _bad_cells(report) == set()  # agents stay reachable directly and by NodePort
    failed = {(name, t.name) for name, node in report.nodes.items() for t in node.targets if t.verdict != "passed"}
    assert failed == {("node-3", f"{kind}/ipv{f}") for kind in ("clusterIP", "loadBalancer") for f in (4, 6)}
    assert report.matrix is not None
    assert [(s.kind, s.node) for s in report.matrix.suspects] == [("source", "node-3")]
    assert report.reasons[0].startswith("suspect source node-3: clusterIP/ipv4 fails from it (1/4 sources)")


def test_node_down_is_missing_and_the_others_are_intact(lab4: Lab) -> None:
    lab4.fault("node-4", down_=True)
    client = redis.Redis.from_url(lab4.state.broker_url, decode_responses=True)
    limit = time.monotonic() + 15
    while time.monotonic() < limit:
        node = {n.name: n for n in registry.nodes(client)}["node-4"]
        if node.state(time.time(), lab4.settings.node_timeout_seconds) != "live":
            break
        time.sleep(0.2)
    report = lab4.run("lab-down", PER_NODE)
    assert report.nodes["node-4"].status in ("missing", "timeout")
    for name in ("node-1", "node-2", "node-3"):
        assert report.nodes[name].status == "passed", report.nodes[name].reason
        assert report.nodes[name].targets


def test_lab_down_leaves_nothing_behind_even_without_its_state(lab4: Lab) -> None:
    assert lab.leftovers(lab4.config)
    # As after a crash that lost the state file: processes are found by namespace and command line.
    lab.state_path(lab4.config).unlink()
    lab.down(lab4.config)
    assert lab.leftovers(lab4.config) == []
    survivors = {name: Path(f"/proc/{pid}/cmdline").read_bytes()[:200] for name, pid in lab4.state.pids.items()
                 if processes.alive(pid)}
    assert survivors == {}
