"""The inventory source interface the planner consumes, and the choice of source from settings.

================  ========================================================================
source            expected nodes / Services / cluster DNS / ConfigMaps and Secrets
================  ========================================================================
``registry``      the workers that registered in Redis (minus those silent for
                  ``node_forget_seconds``); no Service, Ingress or cluster DNS addresses;
                  no API objects (specs name local files instead)
``static:<path>`` the file's nodes and Service/Ingress addresses, live workers matched by name
================  ========================================================================

A source answers at the start of each round (:meth:`InventorySource.snapshot`), so a changed
file or a new worker counts from the next round. Whatever a source cannot know it says by
returning ``None``, never by guessing: the planner then warns that a path was not probed.
"""

from __future__ import annotations

from typing import Protocol

import redis

from kdoctor.settings import Settings
from kdoctor.specs.plan import InventoryView

__all__ = ["InventorySource", "open_source"]


class InventorySource(Protocol):
    """What the planner asks of an inventory."""

    @property
    def name(self) -> str:
        """Which source this is, as reports show it (``registry``, ``static:/path``)."""

    def snapshot(self, now: float) -> InventoryView:
        """Expected nodes (with labels and addresses), which are live and why the others are not,
        and the agent Service / Ingress addresses; ``now`` is the broker's clock."""

    def cluster_dns(self, namespace: str, name: str) -> list[str] | None:
        """The addresses of the cluster DNS Service ``namespace/name``; ``None`` when this source
        cannot know them (the node's resolv.conf is used instead)."""

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        """The data of ConfigMap ``namespace/name``; ``None`` when this source has no API objects
        (the spec's name is then a local file on each node)."""

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The data of Secret ``namespace/name``; ``None`` when this source has no API objects
        (the spec's name is then a local directory on each node)."""


def open_source(settings: Settings, client: redis.Redis) -> InventorySource:
    """The source ``settings.inventory`` names: a static file's path, or empty for the registry."""
    from kdoctor.inventory.registry import RegistrySource

    registry = RegistrySource(client, settings)
    if settings.inventory:
        from kdoctor.inventory.static import StaticSource

        return StaticSource(settings.inventory, registry)
    return registry
