"""The worker registry as an inventory source: every registered worker is an expected node.

Liveness is the heartbeat's age on the broker's clock (:mod:`kdoctor.store.nodes`); a node
silent for longer than ``node_forget_seconds`` is no longer expected (pruned from the registry),
nor is one forgotten by ``kdoctor nodes forget``. A node whose worker stopped cleanly is
``skipped`` unless ``stopped_nodes_expected`` (then ``missing``): in the registry, a clean stop is
an operator's decision, not a fault.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from kdoctor.settings import Settings
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import InventoryView, Services
from kdoctor.store import nodes as registry


class RegistrySource:
    """Expected nodes = registered workers; no Services, cluster DNS or API objects."""

    name = "registry"

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def workers(self) -> list[NodeInfo]:
        """Every registered worker not yet forgotten."""
        return registry.nodes(self.client, forget_after=self.settings.node_forget_seconds)

    def snapshot(self, now: float) -> InventoryView:
        workers = self.workers()
        if self.settings.stopped_nodes_expected:
            return judge(workers, now, self.settings.node_timeout_seconds, self.name)
        view = judge([n for n in workers if n.stopped is None], now, self.settings.node_timeout_seconds, self.name)
        stopped = [n for n in workers if n.stopped is not None]
        if not stopped:
            return view
        skipped = {n.name: f"{stopped_reason(n)}; not expected until it is back "
                           "(KDOCTOR_STOPPED_NODES_EXPECTED)" for n in stopped}
        return view.model_copy(update={"skipped": skipped, "skipped_nodes": stopped})

    def cluster_dns(self, namespace: str, name: str) -> list[str] | None:
        return None

    def config_map(self, namespace: str | None, name: str) -> dict[str, str] | None:
        return None

    def secret(self, namespace: str | None, name: str) -> dict[str, bytes] | None:
        return None


def judge(expected: list[NodeInfo], now: float, timeout: float, source: str,
          services: Services | None = None) -> InventoryView:
    """The view of ``expected`` nodes judged by their heartbeats at ``now``."""
    live = [n.name for n in expected if n.state(now, timeout) == "live"]
    alive = set(live)
    missing = {n.name: missing_reason(n, now, timeout) for n in expected if n.name not in alive}
    return InventoryView(expected=expected, live=live, missing=missing, source=source,
                         services=services or Services())


def missing_reason(node: NodeInfo, now: float, timeout: float) -> str:
    """Why a node is not live, in words an operator can act on."""
    if node.stopped is not None:
        return stopped_reason(node)
    if node.unhealthy and now - node.last_heartbeat <= timeout:
        return f"worker unhealthy: {node.unhealthy}"
    if node.last_heartbeat == 0:
        return "no worker has registered for this node"
    when = datetime.fromtimestamp(node.last_heartbeat, UTC)
    return (f"no heartbeat for {now - node.last_heartbeat:.0f} s (last {when:%H:%M:%S} UTC; "
            f"limit {timeout:g} s)")


def stopped_reason(node: NodeInfo) -> str:
    """When a node's worker said goodbye."""
    when = datetime.fromtimestamp(node.stopped or 0, UTC)
    return f"worker stopped at {when:%Y-%m-%d %H:%M:%S} UTC"
