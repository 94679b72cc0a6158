"""A whole AppHttpHealthy round through real workers: three nodes press one nginx at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.nginx import Nginx

QPS, DURATION = 30, 2
SPREAD_SECONDS = 3  # progress is told once a second: long enough for two tellings


def test_three_nodes_press_nginx_and_counts_match(make_cluster: Callable[..., LocalCluster], client: Client) -> None:
    with Nginx() as nginx:
        make_cluster(3)
        report = client.submit({
            "apiVersion": "kdoctor.io/v1beta1", "kind": "AppHttpHealthy", "metadata": {"name": "web"},
            "spec": {
                "request": {"qps": QPS, "durationInSecond": DURATION, "perRequestTimeoutInMS": 2000},
                "target": {"host": nginx.url, "header": ["X-Check: a:b"]},
                "expect": {"successRate": 1, "meanAccessDelayInMs": 1000, "statusCode": "2xx"},
            },
        }).wait(timeout=60)
        received = nginx.settled_count()
    assert report.verdict == "passed", report.reasons
    assert set(report.nodes) == {"node-1", "node-2", "node-3"}
    for node in report.nodes.values():
        [target] = node.targets
        assert target.requests == QPS * DURATION == target.successes
        assert target.status_codes == {"200": QPS * DURATION}
        assert target.intended_qps == QPS
        assert node.generator is not None
    assert received == 3 * QPS * DURATION == report.summary.requests


def test_a_node_spreads_its_schedule_over_processes_and_counts_stay_exact(
        make_cluster: Callable[..., LocalCluster], client: Client) -> None:
    # One process is trusted with 20 req/s here, so 50 req/s need three: each sends its slice
    # (50 of the 150), the first merges them, and nginx received exactly the total.
    seen: list[int] = []
    with Nginx() as nginx:
        make_cluster(1, env={"KDOCTOR_GENERATOR_PROCESSES": "3", "KDOCTOR_GENERATOR_LOOP_QPS": "20"})
        report = client.submit({
            "apiVersion": "kdoctor.io/v1beta1", "kind": "AppHttpHealthy", "metadata": {"name": "spread"},
            "spec": {
                "request": {"qps": 50, "durationInSecond": SPREAD_SECONDS, "perRequestTimeoutInMS": 2000},
                "target": {"host": nginx.url},
                "expect": {"successRate": 1, "meanAccessDelayInMs": 1000},
            },
        }).wait(timeout=60, on_progress=lambda progress: seen.append(progress.sent))
        received = nginx.settled_count()
    # The progress counts every process's requests: the first alone never sends more than 50.
    assert max(seen) > 50
    assert report.verdict == "passed", report.reasons
    node = report.nodes["node-1"]
    [target] = node.targets
    assert target.generator_processes == 3 and node.generator is not None and node.generator.processes == 3
    assert target.requests == target.successes == 50 * SPREAD_SECONDS == received
    assert target.unsent == 0 and target.status_codes == {"200": 50 * SPREAD_SECONDS}
    assert target.latency_ms.count == 50 * SPREAD_SECONDS
    assert target.achieved_qps == pytest.approx(50, rel=0.02)
