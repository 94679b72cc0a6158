"""The live worker registry in Redis: who the nodes are, where their agents listen, who is alive;
and the coordinators' heartbeats.

One hash (:data:`kdoctor.store.keys.NODES`) maps node name to a JSON :class:`NodeInfo`. Each
worker is the only writer of its own entry (register, heartbeat, goodbye), so no locking is needed.
Times are the broker's (:mod:`kdoctor.store.clock`), so a node with a wrong clock is still judged
rightly. Readers decide liveness from the heartbeat age; entries silent for longer than
``node_forget_seconds`` are pruned, so a node removed from the cluster stops being expected.
"""

from __future__ import annotations

import json

import redis

from kdoctor.specs.nodes import NodeInfo
from kdoctor.store import keys
from kdoctor.store.clock import broker_now


def register(client: redis.Redis, info: NodeInfo) -> None:
    """Write (or overwrite) a node's entry."""
    client.hset(keys.NODES, info.name, json.dumps(info.to_json()))


def register_many(client: redis.Redis, infos: list[NodeInfo]) -> None:
    """Write many entries in one round trip (the local fleet of simulated nodes)."""
    if infos:
        client.hset(keys.NODES, mapping={info.name: json.dumps(info.to_json()) for info in infos})


def goodbye(client: redis.Redis, info: NodeInfo) -> None:
    """Mark a node stopped: it is never published to; the inventory decides whether it is still
    expected (:class:`~kdoctor.inventory.registry.RegistrySource`: skipped unless
    ``stopped_nodes_expected``)."""
    stopped = info.model_copy(update={"stopped": broker_now(client)})
    client.hset(keys.NODES, info.name, json.dumps(stopped.to_json()))


def forget(client: redis.Redis, name: str) -> bool:
    """Remove a node from the registry (it is no longer expected)."""
    return bool(client.hdel(keys.NODES, name))


def nodes(client: redis.Redis, *, forget_after: float | None = None) -> list[NodeInfo]:
    """Every registered node, sorted by name; prunes entries silent for ``forget_after`` seconds."""
    now = broker_now(client)
    found = []
    for name, raw in sorted(client.hgetall(keys.NODES).items()):
        info = NodeInfo.model_validate(json.loads(raw))
        if forget_after is not None and now - info.last_heartbeat > forget_after:
            client.hdel(keys.NODES, name)
            continue
        found.append(info)
    return found


def coordinator_beat(client: redis.Redis, ident: str, info: dict[str, object]) -> None:
    """Record that a coordinator is alive."""
    client.hset(keys.COORDINATORS, ident, json.dumps({**info, "lastHeartbeat": broker_now(client)}))


def coordinator_gone(client: redis.Redis, ident: str) -> None:
    """Remove a coordinator that stopped cleanly."""
    client.hdel(keys.COORDINATORS, ident)


def live_coordinators(client: redis.Redis, timeout: float) -> list[dict[str, object]]:
    """Coordinators whose heartbeat is younger than ``timeout`` seconds."""
    now = broker_now(client)
    alive = []
    for raw in client.hgetall(keys.COORDINATORS).values():
        info = json.loads(raw)
        if now - float(info.get("lastHeartbeat", 0)) <= timeout:
            alive.append(info)
    return alive
