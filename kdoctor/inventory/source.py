"""The inventory source interface the planner consumes, and the choice of source from settings.

==================  ======================================================================
source              expected nodes / Services / cluster DNS / ConfigMaps and Secrets
==================  ======================================================================
``kubernetes``      the API's Nodes (labels, InternalIPs; cordoned ones skipped), agent pods
                    (podIPs; why a node has no worker), the agent Service and Ingress, the
                    DNS Service a Netdns names, ConfigMaps and Secrets; live = the worker's
                    heartbeat (:mod:`kdoctor.inventory.kubernetes`)
``registry``        the workers that registered in Redis (minus those silent for
                    ``node_forget_seconds``); no Service, Ingress or cluster DNS addresses;
                    no API objects (specs name local files instead)
``static:<path>``   the file's nodes and Service/Ingress addresses, live workers matched by name
==================  ======================================================================

``settings.inventory`` chooses: ``kubernetes``, ``registry``, a file's path, or empty for
``kubernetes`` inside a pod with a service account and ``registry`` elsewhere.

A source answers at the start of each round (:meth:`InventorySource.snapshot`), so a changed
file, a new worker or a new Node counts from the next round. Whatever a source cannot know it
says by returning ``None``, never by guessing: the planner then warns that a path was not probed.
"""

from __future__ import annotations

from typing import Protocol

import redis

from kdoctor.settings import Settings
from kdoctor.specs.plan import InventoryView

__all__ = ["InventorySource", "check_setup", "kind_of", "open_source"]


class InventorySource(Protocol):
    """What the planner asks of an inventory."""

    @property
    def name(self) -> str:
        """Which source this is, as reports show it (``registry``, ``static:/path``)."""

    def snapshot(self, now: float) -> InventoryView:
        """Expected nodes (with labels and addresses), which are live and why the others are not,
        and the agent Service / Ingress addresses; ``now`` is the broker's clock."""

    def cluster_dns(self, namespace: str, name: str) -> list[str] | None:
        """The ClusterIPs of the cluster DNS Service ``namespace/name``; ``None`` when this source
        cannot know them (the node's resolv.conf is used instead). Raises ``LookupError`` when
        the Service does not exist."""

    def config_map(self, namespace: str | None, name: str) -> dict[str, str] | None:
        """The data of ConfigMap ``namespace/name`` (``None`` namespace: kdoctor's own); ``None``
        when this source has no API objects (the spec's name is then a local file on each node).
        Raises ``LookupError`` when the ConfigMap does not exist."""

    def secret(self, namespace: str | None, name: str) -> dict[str, bytes] | None:
        """The data of Secret ``namespace/name`` (``None`` namespace: kdoctor's own); ``None``
        when this source has no API objects (the spec's name is then a local directory on each
        node). Raises ``LookupError`` when the Secret does not exist."""


def kind_of(settings: Settings) -> str:
    """``kubernetes``, ``registry`` or ``static``: which source ``settings.inventory`` means."""
    if settings.inventory in ("kubernetes", "registry"):
        return settings.inventory
    if settings.inventory:
        return "static"
    from kdoctor.inventory.kubernetes.detect import in_cluster

    return "kubernetes" if in_cluster(settings) else "registry"


def open_source(settings: Settings, client: redis.Redis, *, cache: bool = False) -> InventorySource:
    """The source ``settings.inventory`` names (see the module docstring).

    ``cache``: a long-lived process (the coordinator) keeps list-then-watch caches of the
    Kubernetes API; without it every snapshot lists again (one-shot commands).
    """
    from kdoctor.inventory.registry import RegistrySource

    registry = RegistrySource(client, settings)
    kind = kind_of(settings)
    if kind == "kubernetes":
        from kdoctor.inventory.kubernetes.source import KubernetesSource

        return KubernetesSource(settings, registry, cache=cache)
    if kind == "static":
        from kdoctor.inventory.static import StaticSource

        return StaticSource(settings.inventory, registry)
    return registry


def check_setup(settings: Settings) -> None:
    """Refuse, now, an inventory that could never work (a bad static file, no Kubernetes
    credentials), rather than fail every round; an API that is down for now is not refused."""
    kind = kind_of(settings)
    if kind == "static":
        from kdoctor.inventory.static import load

        load(settings.inventory)
    elif kind == "kubernetes":
        from kdoctor.inventory.kubernetes.api import open_api

        open_api(settings).close()
