"""Planning's models: the inventory as the planner sees it, a round's planning context, and what
the coordinator hands a node (its assignment for one round, the probe task's argument)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import Field

from kdoctor.specs.mesh import Ring
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.results import ResultModel


class Services(ResultModel):
    """Addresses of the agent Service and Ingress, when the inventory knows them."""

    port: int | None = Field(default=None, description="Service port of the agents.")
    cluster_ip: list[str] = Field(default_factory=list, description="ClusterIPs, IPv4 and/or IPv6.")
    node_port: int | None = None
    load_balancer: list[str] = Field(default_factory=list)
    ingress: list[str] = Field(default_factory=list, description="Ingress URLs, e.g. http://10.0.0.9/kdoctoragent")
    ingress_hosts: dict[str, str] = Field(
        default_factory=dict, description="Ingress URL → the Host header its rule routes on (rules with a host).")
    unknown: dict[str, str] = Field(
        default_factory=dict, description="Target kind (clusterIP, nodePort, loadBalancer, ingress) → why the "
        "inventory has no address for it, naming the object (e.g. the Service has no LoadBalancer address).")


class InventoryView(ResultModel):
    """The inventory as the planner sees it at the start of a round (an inventory source's
    snapshot, :mod:`kdoctor.inventory`)."""

    expected: list[NodeInfo] = Field(default_factory=list, description="Every node that should be inspected.")
    live: list[str] = Field(default_factory=list, description="Expected nodes whose worker can take work now.")
    missing: dict[str, str] = Field(
        default_factory=dict, description="Expected nodes that are not live → why, in words an operator acts on.")
    services: Services = Field(default_factory=Services)
    source: str = "registry"
    skipped: dict[str, str] = Field(
        default_factory=dict, description="Nodes left out on purpose (cordoned, no worker) → why; not expected.")
    skipped_nodes: list[NodeInfo] = Field(
        default_factory=list, description="What is known of the skipped nodes (registry entry, Node), for listings.")
    cluster_dns: dict[str, list[str]] = Field(
        default_factory=dict, description="'namespace/name' of a DNS Service a spec names → its ClusterIPs "
        "(filled before planning, for the Services the spec names; absent: the node's resolv.conf is used).")
    warnings: list[str] = Field(
        default_factory=list, description="What the round's report should say about the inventory itself "
        "(e.g. the Kubernetes API has not answered for a while).")

    def live_nodes(self) -> list[NodeInfo]:
        """Expected nodes that have a live worker, by name."""
        alive = set(self.live)
        return [n for n in self.expected if n.name in alive]


@dataclass(frozen=True)
class RoundContext:
    """What every node's plan of one round shares: the inventory and the task's ring rotation.

    The live nodes and their ring are computed once per round, not once per source.
    """

    inventory: InventoryView
    rotation: int = 0
    """Round counter of this task: picks the ring peers (:mod:`kdoctor.specs.mesh`)."""

    @cached_property
    def live(self) -> dict[str, NodeInfo]:
        """Live nodes by name."""
        return {n.name: n for n in self.inventory.live_nodes()}

    @cached_property
    def ring(self) -> Ring:
        """The live nodes in ring order."""
        return Ring(list(self.live))


class PlannedTarget(ResultModel):
    """One target a node must probe."""

    name: str
    kind: str
    url: str
    destination: str | None = None
    family: Literal[4, 6] | None = None
    host_header: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class Assignment(ResultModel):
    """One node's work for one round."""

    round_id: str
    job: str
    round: int
    kind: str
    name: str
    spec: dict[str, Any]
    node: str
    targets: list[PlannedTarget] = Field(default_factory=list)
    start_at: float = Field(description="Wall-clock instant (epoch s) at which every node starts.")
    deadline: float = Field(description="Wall-clock instant by which the result must be in.")
    warnings: list[str] = Field(default_factory=list)
