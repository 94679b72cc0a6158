"""A thousand nodes against a real coordinator and Redis: one report with the right statuses, and
nothing left in Redis but the report."""

from __future__ import annotations

import dataclasses
from typing import Any

import redis

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.fleet import Fleet
from kdoctor.settings import Settings
from kdoctor.store import keys

NODES = 1000


def ring(name: str) -> dict[str, Any]:
    return {"apiVersion": "kdoctor.io/v1beta1", "kind": "NetReach", "metadata": {"name": name},
            "spec": {"request": {"qps": 10, "durationInSecond": 1, "perRequestTimeoutInMS": 500},
                     "target": {"endpoint": True, "clusterIP": False, "nodePort": False},
                     "mesh": {"peers": 10}}}


def test_a_thousand_nodes_some_silent_end_in_one_report_and_only_it_stays(settings: Settings,
                                                                          broker_url: str) -> None:
    unconsumed = frozenset({"sim-7", "sim-500"})
    silent = frozenset({"sim-3"})
    r = redis.Redis.from_url(broker_url, decode_responses=True)
    with LocalCluster(settings) as cluster, Fleet(settings, NODES, unconsumed=unconsumed, silent=silent) as fleet, \
            Client(settings=settings) as client:
        cluster.start_coordinator()
        cluster.wait_ready([])
        before = set(r.keys("*"))
        job = client.submit(ring("thousand"))
        report = job.wait(timeout=120)
        after = set(r.keys("*"))
    assert len(report.nodes) == NODES
    assert report.summary.nodes == {"passed": NODES - 3, "timeout": 3}
    for name in unconsumed:
        assert "its queue was not consumed" in report.nodes[name].reason
    assert "no result by the round deadline" in report.nodes["sim-3"].reason
    assert all(len(n.targets) == 10 for name, n in report.nodes.items() if n.status == "passed")
    assert report.timing is not None and report.timing.plan_seconds is not None
    assert len(fleet.arrivals_of(report.id)) == NODES - len(unconsumed)
    # Redis holds the report, its head, its signals record and their index entries (and the
    # coordinators' counters); nothing of the round, no Celery
    # result, no message left in the queues of the nodes that never consumed theirs. (kombu's
    # bindings of the coordinator's own queues appear when its consumer starts: per queue, once.)
    new = {k for k in after - before if not k.startswith("_kombu.binding")}
    assert new == {keys.report(report.id), keys.report_head(report.id), keys.REPORTS_INDEX,
                   keys.REPORTS_BYTES, keys.rotation("NetReach", "thousand"), keys.report_signals(report.id),
                   keys.SIGNALS_TASKS, keys.SIGNALS_HEALTH}
    kept = (keys.report(report.id), keys.report_head(report.id), keys.report_signals(report.id))
    assert not [k for k in after if job.id in k and k not in kept]
    assert not any(r.exists(keys.node_queue(n)) for n in unconsumed)
    assert not r.hlen(keys.BUSY) and not r.zcard(keys.OPEN_ROUNDS)


def test_a_node_whose_consumer_is_stopped_is_timeout_and_its_queue_emptied(make_cluster: Any, settings: Settings,
                                                                          broker_url: str) -> None:
    import os
    import signal
    import time

    cluster = make_cluster(3)
    r = redis.Redis.from_url(broker_url, decode_responses=True)
    stopped = cluster.processes["node-3"].pid
    # The worker is frozen: for a moment the coordinator still sees it live (its last heartbeat is
    # recent) and sends it a probe that nobody takes. The wait lets the BRPOP it had pending expire
    # (kombu's is 1 s): a frozen process with a BRPOP outstanding would take the message unread.
    os.kill(stopped, signal.SIGSTOP)
    time.sleep(1.2)
    try:
        with Client(settings=dataclasses.replace(settings)) as client:
            report = client.submit(ring("frozen")).wait(timeout=60)
        assert report.nodes["node-3"].status == "timeout"
        assert "its queue was not consumed" in report.nodes["node-3"].reason
        assert r.llen(keys.node_queue("node-3")) == 0
        assert {report.nodes[n].status for n in ("node-1", "node-2")} <= {"passed", "failed"}
    finally:
        os.kill(stopped, signal.SIGCONT)
