"""What the coordinator hands a node: its assignment for one round (the probe task's argument)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.results import ResultModel


class Services(ResultModel):
    """Addresses of the agent Service and Ingress, when the inventory knows them."""

    port: int | None = Field(default=None, description="Service port of the agents.")
    cluster_ip: list[str] = Field(default_factory=list, description="ClusterIPs, IPv4 and/or IPv6.")
    node_port: int | None = None
    load_balancer: list[str] = Field(default_factory=list)
    ingress: list[str] = Field(default_factory=list, description="Ingress URLs, e.g. http://10.0.0.9/kdoctoragent")


class InventoryView(ResultModel):
    """The inventory as the planner sees it at the start of a round."""

    expected: list[NodeInfo] = Field(default_factory=list)
    live: list[str] = Field(default_factory=list)
    services: Services = Field(default_factory=Services)
    source: str = "registry"
    rotation: int = Field(default=0, description="Round counter of this task: picks the ring peers.")

    def live_nodes(self) -> list[NodeInfo]:
        """Expected nodes that have a live worker, by name."""
        alive = set(self.live)
        return [n for n in self.expected if n.name in alive]


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
