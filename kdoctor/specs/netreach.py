"""``NetReach``: from every node, HTTP to every other node's agent over each path.

Fields and defaults are kdoctor's. ``multusInterface`` and ``enableLatencyMetric`` are accepted
for compatibility: Multus interfaces are not probed (a warning says so), and latency
percentiles are always measured, so the flag changes nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdoctor.specs.common import DocumentBase, Model, NetExpect, Request, SpecBase
from kdoctor.specs.mesh import Mesh
from kdoctor.specs.selector import NodeSelector


class NetReachTarget(Model):
    """Which paths to every agent are probed: kdoctor's ``spec.target`` of NetReach."""

    endpoint: bool = Field(default=True, description="Every agent's own address (pod IP).")
    cluster_ip: bool = Field(default=True, alias="clusterIP", description="The agent Service ClusterIP.")
    node_port: bool = Field(default=True, description="The agent Service NodePort on every node.")
    load_balancer: bool = Field(default=False, description="The agent Service LoadBalancer address.")
    ingress: bool = Field(default=False, description="The agent Ingress.")
    multus_interface: bool = Field(default=False, description="Accepted; Multus is not probed.")
    ipv4: bool = Field(default=True, description="Probe IPv4 addresses.")
    ipv6: bool = Field(default=False, description="Probe IPv6 addresses.")
    enable_latency_metric: bool = Field(
        default=False, description="Accepted; percentiles are always measured (HDR histogram)."
    )
    source_node_selector: NodeSelector = Field(
        default_factory=NodeSelector,
        description="Ours: only these nodes probe (every live node is still a destination).",
    )


class NetReachSpec(SpecBase):
    """``spec`` of a NetReach."""

    request: Request = Field(default_factory=lambda: Request.webhook_default(), description="Absent: kdoctor's "
                             "webhook default, 10 QPS for 2 s with a 500 ms timeout.")
    target: NetReachTarget = Field(default_factory=NetReachTarget)
    expect: NetExpect = Field(default_factory=NetExpect)
    mesh: Mesh = Field(default_factory=Mesh, description="Ours: full mesh or rotating ring of peers.")


class NetReach(DocumentBase):
    """A NetReach task file."""

    kind: Literal["NetReach"]
    spec: NetReachSpec = Field(default_factory=NetReachSpec)
