"""End to end over a real redis-server and real `kdoctor worker` / `kdoctor coordinator` processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.specs import Report
from tests.conftest import DATA, cli_env

QPS, DURATION = 20, 3


def netreach(name: str = "reach", qps: int = QPS, duration: int = DURATION, ipv6: bool = False) -> dict[str, object]:
    return {
        "apiVersion": "kdoctor.io/v1beta1",
        "kind": "NetReach",
        "metadata": {"name": name},
        "spec": {
            "request": {"qps": qps, "durationInSecond": duration, "perRequestTimeoutInMS": 1000},
            "target": {"endpoint": True, "clusterIP": False, "nodePort": False, "ipv4": True, "ipv6": ipv6},
            "expect": {"successRate": 1, "meanAccessDelayInMs": 500},
        },
    }


def kdoctor(broker_url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kdoctor", *args], env=cli_env(broker_url), text=True,
                          capture_output=True, timeout=timeout)


def agent_counts(client: Client) -> dict[str, dict[str, int]]:
    """What every agent says it received, per client address."""
    counts = {}
    for node in client.nodes():
        with urllib.request.urlopen(f"http://{node.ipv4[0]}:{node.agent_port}/kdoctor/stats", timeout=5) as r:
            counts[node.name] = json.load(r)["byPeer"]
    return counts


def test_three_nodes_pass_with_exact_counts(make_cluster: Callable[..., LocalCluster], client: Client,
                                            broker_url: str) -> None:
    make_cluster(3)
    before = agent_counts(client)
    report = client.submit(netreach()).wait(timeout=60)
    assert report.verdict == "passed", report.reasons
    assert set(report.nodes) == {"node-1", "node-2", "node-3"}
    intended = QPS * DURATION
    received = {name: sum(c.values()) - sum(before[name].values()) for name, c in agent_counts(client).items()}
    sent_to: dict[str, int] = dict.fromkeys(received, 0)
    for name, node in report.nodes.items():
        assert node.status == "passed"
        destinations = sorted(t.destination or "" for t in node.targets)
        assert destinations == sorted(set(report.nodes) - {name})
        for target in node.targets:
            assert abs(target.requests - intended) <= 0.05 * intended
            assert target.successes == target.requests
            assert target.latency_ms.p99 is not None
            sent_to[target.destination or ""] += target.requests
        # A loaded CI host may saturate a generator; then the report must say so where it is read.
        assert node.generator is not None
        assert node.generator.saturated == any(w.startswith(f"{name}: load generator saturated")
                                               for w in report.warnings)
    # What the servers counted is exactly what the probes say they sent.
    assert received == sent_to

    # The same report through the CLI surfaces.
    shown = kdoctor(broker_url, "report", report.id, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert Report.model_validate(json.loads(shown.stdout)).id == report.id
    listed = kdoctor(broker_url, "reports", "-o", "json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [report.id]
    table = kdoctor(broker_url, "report", report.id)
    assert "PASSED" in table.stdout and "endpoint/ipv4/node-2" in table.stdout
    nodes = json.loads(kdoctor(broker_url, "nodes", "-o", "json").stdout)
    assert {n["name"]: n["state"] for n in nodes} == dict.fromkeys(("node-1", "node-2", "node-3"), "live")



def test_source_selector_leaves_nodes_out_as_sources_and_says_so(
        make_cluster: Callable[..., LocalCluster], client: Client) -> None:
    make_cluster(3)
    spec = netreach("selected", duration=1)
    spec["spec"]["target"]["sourceNodeSelector"] = {"names": ["node-1"]}  # type: ignore[index]
    report = client.submit(spec).wait(timeout=60)
    assert report.verdict == "passed", report.reasons
    assert sorted(t.destination or "" for t in report.nodes["node-1"].targets) == ["node-2", "node-3"]
    for other in ("node-2", "node-3"):
        assert report.nodes[other].status == "passed" and report.nodes[other].targets == []
        assert "not selected by target.sourceNodeSelector" in report.nodes[other].reason
    assert report.matrix is not None and sorted(map(tuple, report.matrix.covered)) == [
        ("node-1", "node-2"), ("node-1", "node-3")]

    # Selecting nobody probes nothing, and that is a failure, not an empty pass.
    spec["spec"]["target"]["sourceNodeSelector"] = {"names": ["node-9"]}  # type: ignore[index]
    nothing = client.submit(spec).wait(timeout=60)
    assert nothing.verdict == "failed"
    assert "none of the 3 live node(s) is a source" in nothing.reasons[0]
    assert nothing.summary.requests == 0

def test_killed_worker_times_out_by_the_deadline(make_cluster: Callable[..., LocalCluster], broker_url: str,
                                                 tmp_path: Path) -> None:
    cluster = make_cluster(3)
    spec = tmp_path / "reach.yaml"
    spec.write_text(json.dumps(netreach(duration=6)))
    run = subprocess.Popen([sys.executable, "-m", "kdoctor", "run", str(spec), "--wait", "-o", "json"],
                           env=cli_env(broker_url), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    r = redis.Redis.from_url(broker_url, decode_responses=True)
    # Wait until the round is pressing, then kill node-3 (its whole process group, like a node crash).
    limit = time.monotonic() + 30
    while not r.keys("kdoctor:round:*:progress") and time.monotonic() < limit:
        time.sleep(0.1)
    start_at = float(r.hget(r.keys("kdoctor:round:*:progress")[0], "startAt") or 0)
    time.sleep(max(0.0, start_at - time.time()) + 1.5)
    cluster.kill("node-3")
    out, err = run.communicate(timeout=60)
    assert run.returncode == 1, err
    report = Report.model_validate(json.loads(out))
    assert report.finished.timestamp() <= report.deadline.timestamp() + 2.0
    assert report.nodes["node-3"].status == "timeout"
    assert any(reason.startswith("node-3: timeout") for reason in report.reasons)
    for name in ("node-1", "node-2"):
        node = report.nodes[name]
        # Judged normally: the peer that stayed up passes, the one that died fails with errors.
        by_dest = {t.destination: t for t in node.targets}
        survivor = "node-2" if name == "node-1" else "node-1"
        assert by_dest[survivor].verdict == "passed"
        assert by_dest["node-3"].verdict == "failed"
        assert by_dest["node-3"].errors
        # Its only failures were towards the suspect: the node itself passed (issue 15's rule).
        assert node.status == "passed"
        assert node.reason == "1 target(s) failed, all to suspect node node-3"
    assert report.matrix is not None and [(s.kind, s.node) for s in report.matrix.suspects] == [
        ("destination", "node-3")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("kind: NetReech\nmetadata: {name: x}\n", "kind"),
        ("kind: NetReach\nmetadata: {name: x}\nspec: {request: {qps: -1}}\n", "spec.request.qps"),
        ("kind: NetReach\nmetadata: {name: x}\nspec: {request: {durationInSecond: [1]}}\n",
         "spec.request.durationInSecond"),
        ("kind: NetReach\nmetadata: {name: x}\nspec: {target: {podIP: true}}\n", "spec.target.podIP"),
    ],
)
def test_bad_spec_exits_2_names_the_field_and_publishes_nothing(broker_url: str, tmp_path: Path,
                                                                body: str, field: str) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("apiVersion: kdoctor.io/v1beta1\n" + body)
    for args in (("run", str(spec), "--wait"), ("validate", str(spec))):
        result = kdoctor(broker_url, *args)
        assert result.returncode == 2
        assert field in result.stderr
    assert redis.Redis.from_url(broker_url).dbsize() == 0


def test_kdoctor_docs_file_runs(make_cluster: Callable[..., LocalCluster], broker_url: str) -> None:
    make_cluster(3, addresses=("127.0.0.1", "::1"))
    result = kdoctor(broker_url, "run", str(DATA / "netreach-kdoctor-docs.yaml"), "--wait", "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = Report.model_validate(json.loads(result.stdout))
    assert report.verdict == "passed"
    families = {t.family for n in report.nodes.values() for t in n.targets}
    assert families == {4, 6}
    # Paths the registry cannot provide are named, not silently dropped.
    assert any("clusterIP" in w for w in report.warnings)
    assert any("ingress" in w for w in report.warnings)
    # The same report as a page, from the store.
    page = kdoctor(broker_url, "report", report.id, "-o", "html")
    assert page.returncode == 0, page.stderr
    assert page.stdout.startswith("<!doctype html>") and report.id in page.stdout
    assert len(re.findall(r'<td class="l[0-4]"', page.stdout)) == 6  # 3 nodes: 6 ordered pairs, all good


def test_unreachable_broker_and_missing_coordinator_exit_2(broker_url: str, tmp_path: Path) -> None:
    spec = tmp_path / "reach.yaml"
    spec.write_text(json.dumps(netreach()))
    down = kdoctor("redis://127.0.0.1:1/0", "run", str(spec), "--wait")
    assert down.returncode == 2 and "cannot reach Redis" in down.stderr
    nobody = kdoctor(broker_url, "run", str(spec), "--wait")
    assert nobody.returncode == 2 and "no kdoctor coordinator" in nobody.stderr
    assert redis.Redis.from_url(broker_url).llen("kdoctor.coordinator") == 0


def test_missing_report_is_a_clear_error(broker_url: str) -> None:
    result = kdoctor(broker_url, "report", "nope-r1")
    assert result.returncode == 2 and "no report 'nope-r1'" in result.stderr
