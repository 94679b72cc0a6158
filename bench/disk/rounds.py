"""Real DiskIO rounds for bench/disk: a private redis-server, a ``kdoctor coordinator`` and one
``kdoctor worker`` (node ``bench``) whose data directory is the bench's directory; a spec goes in
through :class:`kdoctor.api.Client` and the node's profiles come back from the stored report,
exactly as a user's round (the probe in its isolated child process, the worker's heartbeat and
Celery threads around it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.redisserver import RedisServer
from kdoctor.settings import Settings
from kdoctor.specs.results import DiskProfileResult

NODE = "bench"


class Rounds:
    """Submit one-profile DiskIO rounds to the running worker."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def run(self, profile: str, size_mib: int, **request: Any) -> DiskProfileResult:
        spec = {"apiVersion": "kdoctor.io/v1beta1", "kind": "DiskIO", "metadata": {"name": f"bench-{profile}"},
                "spec": {"target": {"directory": ".", "profiles": [profile]},
                         "request": {"sizeInMiB": size_mib, "durationInSecond": 120,
                                     "freeSpaceMarginInMiB": 256, **request},
                         "expect": {"fdatasyncP99InMs": 3_600_000}}}
        report = self.client.submit(spec).wait(timeout=300)
        node = report.nodes[NODE]
        if len(node.profiles) != 1:
            raise SystemExit(f"real round {profile}: {node.status}: {node.reason}")
        return node.profiles[0]


@contextlib.contextmanager
def real_node(directory: str, env: dict[str, str] | None = None) -> Iterator[Rounds]:
    """A coordinator and a worker on a private redis-server, stopped on exit."""
    server = RedisServer()
    cluster = LocalCluster(Settings.from_env({**(env or {}), "KDOCTOR_BROKER_URL": server.url(0)}))
    try:
        cluster.start_coordinator()
        cluster.start_worker(NODE, data_dir=directory)
        cluster.wait_ready([NODE])
        with Client(settings=cluster.settings) as client:
            yield Rounds(client)
    finally:
        cluster.close()
        server.down()
