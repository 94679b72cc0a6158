"""The inventory at the start of a round: expected nodes, live nodes, Service addresses."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import redis

from kdoctor.inventory import registry
from kdoctor.settings import Settings
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import InventoryView


def current_view(client: redis.Redis, settings: Settings) -> InventoryView:
    """Expected nodes are the registry's (minus those forgotten); live ones have a fresh heartbeat."""
    now = time.time()
    expected = registry.nodes(client, forget_after=settings.node_forget_seconds)
    live = [n.name for n in expected if n.state(now, settings.node_timeout_seconds) == "live"]
    return InventoryView(expected=expected, live=live, source="registry")


def missing_reason(node: NodeInfo, now: float, timeout: float) -> str:
    """Why a node is not live, in words an operator can act on."""
    if node.stopped is not None:
        when = datetime.fromtimestamp(node.stopped, UTC)
        return f"worker stopped at {when:%Y-%m-%d %H:%M:%S} UTC"
    if node.last_heartbeat == 0:
        return "no worker has registered for this node"
    when = datetime.fromtimestamp(node.last_heartbeat, UTC)
    return (f"no heartbeat for {now - node.last_heartbeat:.0f} s (last {when:%H:%M:%S} UTC; "
            f"limit {timeout:g} s)")
