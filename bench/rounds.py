"""Real rounds for the benchmarks: a private Redis, a real coordinator and one real worker.

    with RealRounds() as rounds:
        report = rounds.run(spec)        # submitted through kdoctor.api, waited for

What a user's round goes through is measured: the coordinator plans and publishes, the worker
forks the probe's process (and, for a rate one event loop cannot hold, its helpers:
``KDOCTOR_GENERATOR_PROCESSES``), every process waits for the start instant and presses, the
result is stored and finalized into a report. The achieved rate is the report's. Nothing is
installed: redis-server comes from ./scripts/install.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kdoctor.api import Client  # noqa: E402
from kdoctor.local.cluster import LocalCluster  # noqa: E402
from kdoctor.local.redisserver import RedisServer  # noqa: E402
from kdoctor.settings import Settings  # noqa: E402
from kdoctor.specs.results import NodeResult, Report, TargetResult  # noqa: E402

__all__ = ["RealRounds", "only_target"]

NODE = "node-1"


class RealRounds:
    """A private redis-server on a free loopback port, ``kdoctor coordinator`` and one
    ``kdoctor worker`` (node ``node-1``), configured by ``env`` (``KDOCTOR_*`` variables)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = {"KDOCTOR_INVENTORY": "registry", "KDOCTOR_LOG_LEVEL": "WARNING", **(env or {})}
        self.server: RedisServer | None = None
        self.cluster: LocalCluster | None = None
        self.client: Client | None = None

    def __enter__(self) -> RealRounds:
        try:
            self.server = RedisServer()
            settings = Settings.from_env({**self.env, "KDOCTOR_BROKER_URL": self.server.url(0)})
            self.cluster = LocalCluster(settings)
            self.cluster.start_coordinator()
            self.cluster.start_worker(NODE)
            self.cluster.wait_ready([NODE])
            self.client = Client(settings=settings)
        except BaseException:
            self.close()
            raise
        return self

    def run(self, spec: dict[str, Any], timeout: float = 120.0) -> Report:
        """Submit ``spec`` and wait for its report."""
        assert self.client is not None, "use RealRounds as a context manager"
        return self.client.submit(spec).wait(timeout=timeout)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        if self.server is not None:
            self.server.stop()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def only_target(report: Report) -> tuple[NodeResult, TargetResult]:
    """The one node's result and its one target (the benches press one target from one node)."""
    node = report.nodes[NODE]
    if len(node.targets) != 1:
        raise RuntimeError(f"{NODE} reported {len(node.targets)} targets ({node.status}: {node.reason})")
    return node, node.targets[0]
