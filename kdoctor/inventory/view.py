"""The inventory at the start of a round: expected nodes, live nodes, Service addresses."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from kdoctor.clock import broker_now
from kdoctor.inventory import registry, static
from kdoctor.settings import Settings
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import InventoryView


def current_view(client: redis.Redis, settings: Settings) -> InventoryView:
    """Expected nodes and live ones (with a fresh heartbeat).

    Without ``settings.inventory`` the registry's nodes (minus those forgotten) are expected. With
    it, the file's nodes are expected and its Service addresses used; live workers are matched to
    them by name (see :func:`merge`).
    """
    now = broker_now(client)
    found = registry.nodes(client, forget_after=settings.node_forget_seconds)
    if settings.inventory:
        inventory = static.load(settings.inventory)
        expected = merge(inventory, found)
        services = inventory.services_view()
        source = f"static:{settings.inventory}"
    else:
        expected, services, source = found, InventoryView().services, "registry"
    live = [n.name for n in expected if n.state(now, settings.node_timeout_seconds) == "live"]
    return InventoryView(expected=expected, live=live, services=services, source=source)


def merge(inventory: static.StaticInventory, workers: list[NodeInfo]) -> list[NodeInfo]:
    """The inventory's nodes, each replaced by its worker's entry when one registered.

    A worker's entry wins for addresses and port (it knows where its agent listens); the
    inventory's labels are added to the worker's. A node without a worker keeps a zero heartbeat,
    so it is reported ``missing``. Workers the file does not list are kept too: they run, so they
    are probed and reported rather than silently ignored.
    """
    by_name = {w.name: w for w in workers}
    merged: list[NodeInfo] = []
    for node in inventory.nodes:
        worker = by_name.pop(node.name, None)
        if worker is None:
            merged.append(node.info())
        else:
            merged.append(worker.model_copy(update={"labels": {**node.labels, **worker.labels}}))
    return sorted([*merged, *by_name.values()], key=lambda n: n.name)


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
