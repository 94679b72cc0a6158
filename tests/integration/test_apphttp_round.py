"""A whole AppHttpHealthy round through real workers: three nodes press one nginx at once."""

from __future__ import annotations

from collections.abc import Callable

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.nginx import Nginx

QPS, DURATION = 30, 2


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
