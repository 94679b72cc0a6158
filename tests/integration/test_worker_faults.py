"""Workers that never wedge and rounds that say why they waited: Redis down for 20 s, an agent
killed, more rounds than the nodes can run at once."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator

import psutil
import pytest

from kdoctor.api import BrokerUnavailable, Client, WaitTimeout
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.redisserver import RedisServer
from kdoctor.settings import Settings
from tests.conftest import FAST_ENV
from tests.integration.test_rounds import netreach


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, since the test takes it down."""
    server = RedisServer()
    yield server
    server.stop()


def test_redis_down_20_s_mid_round_leaves_no_worker_wedged(own_redis: RedisServer) -> None:
    settings = Settings.from_env({**FAST_ENV, "KDOCTOR_BROKER_URL": own_redis.url(),
                                  "KDOCTOR_STALL_SECONDS": "15"})
    with LocalCluster(settings) as cluster, Client(settings=settings) as client:
        cluster.start(2)
        cluster.wait_ready(["node-1", "node-2"])
        workers = {name: cluster.processes[name].pid for name in ("node-1", "node-2")}
        job = client.submit(netreach(duration=3))
        while job.progress().phase in ("queued", "waiting"):
            time.sleep(0.1)
        own_redis.down()
        time.sleep(20)
        own_redis.up()  # empty: the round and everything else is gone
        with pytest.raises((WaitTimeout, BrokerUnavailable)):
            job.wait(timeout=30)
        # The same processes come back by themselves, register again and take the next round.
        cluster.wait_ready(["node-1", "node-2"], timeout=90)
        assert {name: cluster.processes[name].pid for name in workers} == workers
        assert all(cluster.processes[name].poll() is None for name in workers)
        report = client.submit(netreach(duration=1)).wait(timeout=60)
        assert report.verdict == "passed", report.reasons


def _agent_of(worker_pid: int) -> psutil.Process:
    (agent,) = [p for p in psutil.Process(worker_pid).children() if "kdoctor.workers.agent" in " ".join(p.cmdline())]
    return agent


def test_a_killed_agent_is_restarted_and_the_node_passes_again(
        make_cluster: Callable[..., LocalCluster], client: Client) -> None:
    cluster = make_cluster(2)
    agent = _agent_of(cluster.processes["node-2"].pid)
    port = next(n.agent_port for n in client.nodes() if n.name == "node-2")
    os.kill(agent.pid, signal.SIGKILL)
    limit = time.monotonic() + 30
    answered = False
    while time.monotonic() < limit and not answered:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                answered = answer.status == 200  # on the same port
        except OSError:
            time.sleep(0.2)
    assert answered and _agent_of(cluster.processes["node-2"].pid).pid != agent.pid
    assert "restarting the agent" in cluster.log_tail("node-2", 60)
    cluster.wait_ready(["node-1", "node-2"])
    report = client.submit(netreach(duration=1)).wait(timeout=60)
    assert report.verdict == "passed", report.reasons


def test_more_rounds_than_the_nodes_can_run_at_once_wait_and_say_so(
        make_cluster: Callable[..., LocalCluster], client: Client) -> None:
    # A node is busy until its round's deadline (a round is planned when it is submitted, so a
    # queued one starts after the deadline of the one before it, not after its early end): a short
    # grace and timeout keep these eight rounds short.
    make_cluster(3, env={"KDOCTOR_ROUND_GRACE_SECONDS": "1"})
    crowd = []
    for i in range(8):
        spec = netreach(f"crowd-{i}", duration=1)
        spec["spec"]["request"]["perRequestTimeoutInMS"] = 200  # type: ignore[index]
        crowd.append(spec)
    jobs = [client.submit(spec) for spec in crowd]
    reports = [job.wait(timeout=180) for job in jobs]
    for report in reports:
        assert report.verdict == "passed", report.reasons
        assert not all(n.status == "error" for n in report.nodes.values())
    waited = [r for r in reports if any(w.startswith("waited ") and "busy with round" in w for w in r.warnings)]
    assert len(waited) >= 6  # all but the first (two may be planned before a mark is seen: none here)
    starts = sorted(r.started.timestamp() for r in reports)
    finishes = sorted(r.finished.timestamp() for r in reports)
    # One at a time on these nodes: each round started after the one before it ended.
    assert all(start >= end - 0.5 for start, end in zip(starts[1:], finishes, strict=False))
    heads = client.reports(limit=8)
    assert {h.id for h in heads} == {r.id for r in reports}
    assert json.dumps([r.warnings for r in reports])  # the waits are in the reports' warnings
