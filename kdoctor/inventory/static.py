"""A static inventory: the expected nodes and the agent Service/Ingress addresses, from YAML.

For machines without Kubernetes (and the lab). ``kdoctor coordinator --inventory FILE`` or
``KDOCTOR_INVENTORY``; :class:`StaticSource` is the inventory source built on it::

    nodes:
      - name: node-1
        labels: {zone: a}
        ipv4: [10.213.0.11]           # the node's own addresses: NodePorts are probed here, and
        ipv6: ["fd6b:6c61:0::11"]     # so is its agent until its worker says where it listens
        agentPort: 5710
    services:
      port: 80                      # Service port of the agents (ClusterIP, LoadBalancer)
      clusterIP: [10.96.0.10, "fd6b:6c61:96::10"]
      nodePort: 30710
      loadBalancer: [10.97.0.10]
      ingress: ["http://10.213.0.250/kdoctoragent"]

The file is read when a round is planned, so edits apply from the next round on.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from kdoctor.errors import FieldProblem, SpecError
from kdoctor.inventory.registry import RegistrySource, judge
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import InventoryView, Services
from kdoctor.specs.reading import load_yaml, read_file


class _Strict(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class StaticNode(_Strict):
    """One expected node."""

    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    ipv4: list[str] = Field(default_factory=list)
    ipv6: list[str] = Field(default_factory=list)
    agent_port: int = Field(default=5710, ge=1, le=65535)

    @field_validator("ipv4", "ipv6")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for text in value:
            ipaddress.ip_address(text)  # ValueError names the bad address
        return value

    def info(self) -> NodeInfo:
        """The node as the registry would hold it, without a worker (never heard from)."""
        return NodeInfo(name=self.name, ipv4=self.ipv4, ipv6=self.ipv6, agent_port=self.agent_port,
                        labels=self.labels)


class StaticServices(_Strict):
    """Addresses of the agent Service and Ingress."""

    port: int | None = Field(default=None, ge=1, le=65535)
    cluster_ip: list[str] = Field(default_factory=list, alias="clusterIP")
    node_port: int | None = Field(default=None, ge=1, le=65535)
    load_balancer: list[str] = Field(default_factory=list)
    ingress: list[str] = Field(default_factory=list)


class StaticInventory(_Strict):
    """The whole file."""

    nodes: list[StaticNode] = Field(default_factory=list)
    services: StaticServices = Field(default_factory=StaticServices)

    def services_view(self) -> Services:
        """The services as the planner sees them."""
        s = self.services
        return Services(port=s.port, cluster_ip=s.cluster_ip, node_port=s.node_port,
                        load_balancer=s.load_balancer, ingress=s.ingress)


def load(path: str | Path) -> StaticInventory:
    """Read and check an inventory file; :class:`SpecError` lists every wrong field."""
    origin = str(path)
    data: Any = load_yaml(read_file(Path(path), "inventory"), origin, "inventory")
    try:
        inventory = StaticInventory.model_validate(data or {})
    except ValidationError as exc:
        problems = [FieldProblem(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
        raise SpecError(problems, origin, "inventory") from None
    names = [n.name for n in inventory.nodes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError([FieldProblem("nodes", f"node names must be unique; repeated: {', '.join(dupes)}")],
                        origin, "inventory")
    return inventory


def dump(inventory: StaticInventory) -> str:
    """The inventory as YAML (what the lab writes)."""
    return yaml.safe_dump(inventory.model_dump(mode="json", by_alias=True, exclude_defaults=False),
                          sort_keys=False)


class StaticSource:
    """Expected nodes and Service addresses from a file; liveness from the worker registry."""

    def __init__(self, path: str, registry: RegistrySource) -> None:
        self.path = path
        self.registry = registry
        self._cached: tuple[tuple[float, int], StaticInventory] | None = None

    @property
    def name(self) -> str:
        return f"static:{self.path}"

    def inventory(self) -> StaticInventory:
        """The file's content, read again whenever the file changed (edits apply from the next
        round on; a 1,000-node file is not parsed for every round)."""
        info = Path(self.path).stat()
        stamp = (info.st_mtime, info.st_size)
        if self._cached is None or self._cached[0] != stamp:
            self._cached = (stamp, load(self.path))
        return self._cached[1]

    def snapshot(self, now: float) -> InventoryView:
        inventory = self.inventory()
        expected = merge(inventory, self.registry.workers())
        return judge(expected, now, self.registry.settings.node_timeout_seconds, self.name,
                     inventory.services_view())

    def cluster_dns(self, namespace: str, name: str) -> list[str] | None:
        return None

    def config_map(self, namespace: str | None, name: str) -> dict[str, str] | None:
        return None

    def secret(self, namespace: str | None, name: str) -> dict[str, bytes] | None:
        return None


def merge(inventory: StaticInventory, workers: list[NodeInfo]) -> list[NodeInfo]:
    """The inventory's nodes, each replaced by its worker's entry when one registered.

    A worker's entry wins for the agent's addresses and port (it knows where its agent listens:
    in a pod, its pod IPs); the file's addresses stay the node's own, where NodePorts are probed
    (a worker's pod IPs must not turn a correct file into NodePort probes of pod IPs). A file
    node without addresses leaves both to the worker. The inventory's labels are added to the
    worker's. A node without a worker keeps a zero heartbeat, so it is reported ``missing``.
    Workers the file does not list are kept too: they run, so they are probed and reported
    rather than silently ignored.
    """
    by_name = {w.name: w for w in workers}
    merged: list[NodeInfo] = []
    for node in inventory.nodes:
        worker = by_name.pop(node.name, None)
        if worker is None:
            merged.append(node.info())
        else:
            own = [*node.ipv4, *node.ipv6] or worker.node_ips
            merged.append(worker.model_copy(update={"labels": {**node.labels, **worker.labels}, "node_ips": own}))
    return sorted([*merged, *by_name.values()], key=lambda n: n.name)
