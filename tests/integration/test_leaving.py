"""A node taken out on purpose (issue 15): a worker stopped cleanly is skipped, not failed, unless
KDOCTOR_STOPPED_NODES_EXPECTED; `kdoctor nodes forget` removes a node from the registry."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis

from kdoctor.api import Client, NodeNotFound, SetupError
from kdoctor.local.cluster import LocalCluster
from tests.integration.test_rounds import kdoctor, netreach


def _nothing_queued_for(broker_url: str, node: str) -> None:
    r = redis.Redis.from_url(broker_url)
    assert r.llen(f"kdoctor.node.{node}") == 0
    assert not any(node.encode() in v for v in r.hvals("unacked"))


def test_a_stopped_worker_is_skipped_until_forgotten(
        make_cluster: Callable[..., LocalCluster], client: Client, broker_url: str) -> None:
    cluster = make_cluster(3)
    cluster.stop("node-3")
    report = client.submit(netreach(duration=1)).wait(timeout=60)
    assert report.verdict == "passed", report.reasons
    assert sorted(report.nodes) == ["node-1", "node-2"]
    assert "worker stopped at" in report.skipped["node-3"]
    assert any(w.startswith("skipped, not inspected: node-3 (worker stopped at") for w in report.warnings)
    for name in ("node-1", "node-2"):
        assert {t.destination for t in report.nodes[name].targets} == {"node-1", "node-2"} - {name}
    _nothing_queued_for(broker_url, "node-3")

    listed = kdoctor(broker_url, "nodes", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    states = {n["name"]: n["state"] for n in json.loads(listed.stdout)}
    assert states == {"node-1": "live", "node-2": "live", "node-3": "skipped"}
    table = kdoctor(broker_url, "nodes")
    assert "skipped: worker stopped at" in " ".join(table.stdout.split())

    # A running worker cannot be forgotten (it would register again); nor can a name never seen.
    refused = kdoctor(broker_url, "nodes", "forget", "node-1")
    assert refused.returncode == 2 and "node-1's worker is running" in refused.stderr, refused.stderr
    with pytest.raises(NodeNotFound, match="no node named 'node-9'"):
        client.forget_node("node-9")
    forgot = kdoctor(broker_url, "nodes", "forget", "node-3")
    assert forgot.returncode == 0 and forgot.stdout.strip() == "forgot node-3", forgot.stderr
    assert [n.name for n in client.nodes()] == ["node-1", "node-2"]
    after = client.submit(netreach(duration=1)).wait(timeout=60)
    assert after.verdict == "passed" and after.skipped == {} and sorted(after.nodes) == ["node-1", "node-2"]


def test_a_stopped_worker_stays_expected_when_the_setting_says_so(
        make_cluster: Callable[..., LocalCluster], client: Client, broker_url: str) -> None:
    cluster = make_cluster(3, env={"KDOCTOR_STOPPED_NODES_EXPECTED": "true"})
    cluster.stop("node-3")
    report = client.submit(netreach(duration=1)).wait(timeout=60)
    assert report.nodes["node-3"].status == "missing", report.nodes["node-3"]
    assert "worker stopped" in report.nodes["node-3"].reason
    assert report.verdict == "failed" and report.skipped == {}
    for name in ("node-1", "node-2"):
        assert report.nodes[name].status == "passed"
    _nothing_queued_for(broker_url, "node-3")


def test_the_kubernetes_inventory_decides_what_is_forgotten(client: Client) -> None:
    import dataclasses

    k8s = Client(settings=dataclasses.replace(client.settings, inventory="kubernetes"))
    with k8s, pytest.raises(SetupError, match="kubectl delete node node-1"):
        k8s.forget_node("node-1")
