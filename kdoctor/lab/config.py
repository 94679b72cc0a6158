"""A lab's names and addresses: everything derives from a prefix, a net index and a node count."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

AGENT_PORT = 5710
SERVICE_PORT = 80
NODE_PORT = 30710
INGRESS_PATH = "/kdoctoragent"
MAX_NODES = 200


def _v6(text: str) -> str:
    return str(ipaddress.ip_address(text))


class LabConfig(BaseModel):
    """What a lab is made of. ``prefix`` names its namespaces (``<prefix>-<i>``), ``net`` (0-255)
    picks its subnets and link names (``kdlab<net>-...``), so two labs can coexist."""

    prefix: str = "kdoctor-lab"
    net: int = Field(default=0, ge=0, le=255)
    nodes: int = Field(default=4, ge=1, le=MAX_NODES)
    lab_dir: str = "/run/kdoctor-lab"

    @property
    def dir(self) -> Path:
        """This lab's state directory."""
        return Path(self.lab_dir) / self.prefix

    @property
    def link_prefix(self) -> str:
        """Every host-side link of this lab starts with it."""
        return f"kdlab{self.net}-"

    @property
    def bridge(self) -> str:
        return f"{self.link_prefix}br"

    @property
    def bridge_v4(self) -> str:
        return f"10.213.{self.net}.1"

    @property
    def bridge_v6(self) -> str:
        return _v6(f"fd6b:6c61:{self.net:x}::1")

    def node_name(self, index: int) -> str:
        return f"node-{index}"

    def node_names(self) -> list[str]:
        return [self.node_name(i) for i in range(1, self.nodes + 1)]

    def namespace(self, index: int) -> str:
        return f"{self.prefix}-{index}"

    @property
    def ingress_namespace(self) -> str:
        return f"{self.prefix}-ingress"

    def host_link(self, index: int) -> str:
        """Host side of node ``index``'s veth pair (``0`` is the ingress)."""
        return f"{self.link_prefix}{index}" if index else f"{self.link_prefix}ing"

    def node_v4(self, index: int) -> str:
        return f"10.213.{self.net}.{10 + index}"

    def node_v6(self, index: int) -> str:
        return _v6(f"fd6b:6c61:{self.net:x}::{10 + index:x}")

    @property
    def ingress_v4(self) -> str:
        return f"10.213.{self.net}.250"

    @property
    def ingress_v6(self) -> str:
        return _v6(f"fd6b:6c61:{self.net:x}::fa")

    @property
    def cluster_ip(self) -> list[str]:
        return [f"10.214.{self.net}.10", _v6(f"fd6b:6c62:{self.net:x}::a")]

    @property
    def load_balancer(self) -> list[str]:
        return [f"10.215.{self.net}.10", _v6(f"fd6b:6c63:{self.net:x}::a")]

    @property
    def ingress_urls(self) -> list[str]:
        return [f"http://{self.ingress_v4}{INGRESS_PATH}", f"http://[{self.ingress_v6}]{INGRESS_PATH}"]

    def index_of(self, node: str) -> int:
        """Node index from ``node-3``, ``3`` or a namespace name; ``ValueError`` otherwise."""
        for candidate in (node, node.removeprefix("node-"), node.removeprefix(f"{self.prefix}-")):
            if candidate.isdigit() and 1 <= int(candidate) <= self.nodes:
                return int(candidate)
        raise ValueError(f"no node {node!r} in this lab: use node-1 .. node-{self.nodes}")


@dataclass
class Node:
    """One node's identity, for convenience."""

    index: int
    name: str
    namespace: str
    v4: str
    v6: str


def nodes_of(config: LabConfig) -> list[Node]:
    """Every node of the lab."""
    return [Node(i, config.node_name(i), config.namespace(i), config.node_v4(i), config.node_v6(i))
            for i in range(1, config.nodes + 1)]
