"""The Kubernetes API as an inventory source: expected nodes, every NetReach path, the cluster
DNS Service, and the ConfigMaps and Secrets specs name.

A coordinator keeps four list-then-watch caches (:mod:`.reflector`): the Nodes (cluster-wide,
``KDOCTOR_KUBERNETES_NODE_SELECTOR``), the agent pods and the agent Service and Ingress (in
kdoctor's namespace, by label selector and by ``metadata.name``). A round's snapshot reads them
and the worker registry and makes no API request at all. One-shot users (``kdoctor nodes``,
``kdoctor run``'s checks, a worker reading a Secret) open the source without a cache: a
snapshot then lists each of the four collections once, and the single objects (a DNS Service,
a ConfigMap, a Secret) are one GET each, never cached (a watch of Secrets would hold every
Secret of a namespace in memory).
"""

from __future__ import annotations

import base64
import binascii
import threading
from typing import Any

from kdoctor.errors import SetupError
from kdoctor.inventory.kubernetes import records
from kdoctor.inventory.kubernetes.api import Api, Resource, open_api
from kdoctor.inventory.kubernetes.reflector import Reflector
from kdoctor.inventory.kubernetes.view import inventory_view, services_view
from kdoctor.inventory.registry import RegistrySource
from kdoctor.settings import Settings
from kdoctor.specs.plan import InventoryView

__all__ = ["STALE_AFTER_SECONDS", "KubernetesSource"]

# A watch failing for longer than this (s) makes the report say the inventory may be stale: long
# enough that an API server restart or a control-plane failover (seconds) stays silent.
STALE_AFTER_SECONDS = 30.0


class KubernetesSource:
    """Expected nodes and targets from the API; liveness from the worker registry."""

    def __init__(self, settings: Settings, registry: RegistrySource, *, cache: bool = False) -> None:
        self.settings = settings
        self.registry = registry
        self.cache = cache
        self._api: Api | None = None
        self._reflectors: dict[str, Reflector[Any]] = {}
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()

    @property
    def api(self) -> Api:
        """The API connection, made on first use (:class:`SetupError` without credentials)."""
        with self._lock:
            if self._api is None:
                self._api = open_api(self.settings)
            return self._api

    @property
    def name(self) -> str:
        return f"kubernetes:{self._api.server}" if self._api is not None else "kubernetes"

    @property
    def namespace(self) -> str:
        """kdoctor's namespace (agent pods, Service, Ingress; default of ConfigMaps and Secrets)."""
        return self.api.namespace

    def close(self) -> None:
        """Stop the watches and release connections."""
        for reflector in self._reflectors.values():
            reflector.stop()
        if self._api is not None:
            self._api.close()

    # -- the snapshot ------------------------------------------------------------------------

    def _collections(self) -> dict[str, Reflector[Any]]:
        api, s = self.api, self.settings
        by_name = f"metadata.name={s.kubernetes_agent_service}"
        return {
            "nodes": Reflector(api, Resource.NODES, records.node, label_selector=s.kubernetes_node_selector),
            "pods": Reflector(api, Resource.PODS, records.pod, namespace=api.namespace,
                              label_selector=s.kubernetes_agent_selector),
            "service": Reflector(api, Resource.SERVICES, records.service, namespace=api.namespace,
                                 field_selector=by_name),
            "ingress": Reflector(api, Resource.INGRESSES, records.ingress, namespace=api.namespace,
                                 field_selector=by_name),
        }

    def _current(self) -> tuple[dict[str, list[Any]], list[str]]:
        """Every collection's records, and warnings about caches that may be stale."""
        if not self.cache:
            found: dict[str, list[Any]] = {}
            for key, reflector in self._collections().items():
                reflector.list()
                found[key] = reflector.items()
            return found, []
        with self._start_lock:
            if not self._reflectors:
                started: dict[str, Reflector[Any]] = {}
                try:
                    for key, reflector in self._collections().items():
                        started[key] = reflector.start()  # lists first: the round fails with the reason
                except SetupError:
                    for reflector in started.values():
                        reflector.stop()
                    raise
                self._reflectors = started
        warnings = [f"the inventory may be stale: {t}" for r in self._reflectors.values()
                    if (t := r.trouble(STALE_AFTER_SECONDS))]
        return {key: r.items() for key, r in self._reflectors.items()}, warnings

    def snapshot(self, now: float) -> InventoryView:
        current, warnings = self._current()
        namespace, agent = self.api.namespace, self.settings.kubernetes_agent_service
        services = services_view(next(iter(current["service"]), None), next(iter(current["ingress"]), None),
                                 f"{namespace}/{agent}", f"{namespace}/{agent}")
        return inventory_view(
            current["nodes"], current["pods"], services, self.registry.workers(), now,
            self.settings.node_timeout_seconds, source=self.name, warnings=warnings,
            agents=f"pods {self.settings.kubernetes_agent_selector} in namespace {namespace}")

    # -- single objects ----------------------------------------------------------------------

    def _get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        where = namespace or self.api.namespace
        found = self.api.get(resource, where, name)
        if found is None:
            raise LookupError(f"{resource.kind} {where}/{name} does not exist")
        return found

    def cluster_dns(self, namespace: str, name: str) -> list[str] | None:
        return list(records.service(self._get(Resource.SERVICES, namespace, name)).cluster_ips)

    def config_map(self, namespace: str | None, name: str) -> dict[str, str] | None:
        data = self._get(Resource.CONFIGMAPS, namespace, name).get("data") or {}
        return {str(k): str(v) for k, v in data.items()}

    def secret(self, namespace: str | None, name: str) -> dict[str, bytes] | None:
        data = self._get(Resource.SECRETS, namespace, name).get("data") or {}
        try:
            return {str(k): base64.b64decode(v, validate=True) for k, v in data.items()}
        except (binascii.Error, TypeError, ValueError):
            # Say which Secret; its content (even malformed) never goes into a message.
            raise SetupError(f"Secret {namespace or self.api.namespace}/{name}: its data is not "
                             "valid base64") from None
