"""Signals end to end: real rounds with real workers, the real `kdoctor exporter` process scraped
by a real Prometheus (bearer token), notifications to local HTTP receivers, one of which fails."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.ports import free_port
from tests.integration.test_rounds import netreach
from tests.servers.hooks import HookServer
from tests.servers.prom import Prometheus

TOKEN = "prometheus-scrapes-with-this"
PER_NODE_BOUND = 14


def until(what: Callable[[], Any], timeout: float = 60.0) -> Any:
    """``what()`` once it is truthy (polled; the bound is a hang guard, not a measurement)."""
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        found = what()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture
def hooks() -> Iterator[tuple[HookServer, HookServer]]:
    good, flaky = HookServer(), HookServer(script=(500, "hang", "hang"))
    yield good, flaky
    good.stop()
    flaky.stop()


def test_prometheus_names_the_stopped_node_and_notifications_never_touch_the_round(
        make_cluster: Callable[..., LocalCluster], client: Client, tmp_path: Path,
        hooks: tuple[HookServer, HookServer]) -> None:
    good, flaky = hooks
    cluster = make_cluster(3)
    token = tmp_path / "token"
    token.write_text(TOKEN)
    receivers = tmp_path / "notify.yaml"
    receivers.write_text(json.dumps({"receivers": [
        {"name": "good", "type": "webhook", "url": good.url},
        {"name": "flaky", "type": "webhook", "url": flaky.url, "timeoutSeconds": 1, "retries": 2}]}))
    port = free_port()
    cluster.start_exporter({"KDOCTOR_METRICS_PORT": str(port), "KDOCTOR_METRICS_TOKEN_FILE": str(token),
                            "KDOCTOR_NOTIFY_FILE": str(receivers)})
    prometheus = Prometheus(f"127.0.0.1:{port}", str(token))
    try:
        until(lambda: [t for t in prometheus.targets() if t["health"] == "up"])
        first = client.submit(netreach("reach", duration=2)).wait(timeout=60)
        assert first.verdict == "passed", first.reasons

        # node-3 freezes (its worker, agent and heartbeat) just before the round is planned: it is
        # still live, gets its probe, and answers nobody.
        os.killpg(cluster.processes["node-3"].pid, signal.SIGSTOP)
        try:
            second = client.submit(netreach("reach", duration=2)).wait(timeout=90)
        finally:
            os.killpg(cluster.processes["node-3"].pid, signal.SIGCONT)
        assert second.verdict == "failed"
        assert second.matrix is not None and [s.node for s in second.matrix.suspects] == ["node-3"]

        until(lambda: prometheus.query('kdoctor_round_passed{task="reach"} == 0'))  # the second round's
        suspects = prometheus.query("kdoctor_suspect")
        assert [(s["metric"]["node"], s["metric"]["kind"], s["metric"]["task"]) for s in suspects] == [
            ("node-3", "NetReach", "reach")]
        status = {r["metric"]["node"]: r["metric"]["status"] for r in prometheus.query("kdoctor_node_status == 1")}
        assert status == {name: node.status for name, node in second.nodes.items()}  # what the report says

        # Notified once, as failed; the flaky receiver was tried three times and that is counted.
        until(lambda: good.bodies())
        assert [(b["event"], b["report"]) for b in good.bodies()] == [("failed", second.id)]
        failures = until(lambda: prometheus.query(
            'kdoctor_notification_failures_total{receiver="flaky",event="failed"} == 1'))
        assert failures and len(flaky.received) == 3
        assert client.report(second.id).verdict == "failed"  # the round's report is as it was written

        # Everything settled: the series Prometheus holds are what the exporter serves, within the bound.
        until(lambda: prometheus.query('kdoctor_notifications_total{receiver="good"}'))
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            served = [line for line in answer.read().decode().splitlines() if line.startswith("kdoctor_")]
        stored = prometheus.query('count({__name__=~"kdoctor_.+", job="kdoctor"})')
        per_node = prometheus.query('count({__name__=~"kdoctor_(node|disk)_.+", job="kdoctor"})')
        assert int(stored[0]["value"][1]) == len(served)
        assert int(per_node[0]["value"][1]) <= PER_NODE_BOUND * 3

    finally:
        prometheus.stop()
