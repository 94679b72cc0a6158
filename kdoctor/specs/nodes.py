"""Nodes as the inventory knows them: identity, addresses, liveness."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdoctor.specs.results import ResultModel

NodeState = Literal["live", "stale", "stopped", "unhealthy"]


class NodeInfo(ResultModel):
    """One node's registry entry, written by its worker and refreshed by heartbeats."""

    name: str
    ipv4: list[str] = Field(default_factory=list)
    ipv6: list[str] = Field(default_factory=list)
    agent_port: int = 0
    node_ips: list[str] = Field(
        default_factory=list, description="The node's own addresses, where NodePorts listen (Kubernetes: the "
        "Node's InternalIPs). Empty: the agent addresses (ipv4, ipv6) are the node's.")
    labels: dict[str, str] = Field(default_factory=dict)
    hostname: str = ""
    pid: int = 0
    version: str = ""
    started: float = 0.0
    last_heartbeat: float = 0.0
    stopped: float | None = Field(default=None, description="When the worker stopped cleanly.")
    unhealthy: str | None = Field(
        default=None, description="Why the worker cannot take work although it beats (starting, its consumer "
                                  "stalled, its agent down); None when it can.")
    clock_offset: float = Field(
        default=0.0, description="Broker clock minus this node's clock (s), measured at the last heartbeat.")

    def state(self, now: float, timeout: float) -> NodeState:
        """``live`` (heartbeat within ``timeout``, nothing wrong), ``unhealthy`` (beats but says it
        cannot work), ``stopped`` (said goodbye) or ``stale``."""
        if self.stopped is not None:
            return "stopped"
        if now - self.last_heartbeat > timeout:
            return "stale"
        return "unhealthy" if self.unhealthy else "live"

    @property
    def addresses(self) -> list[str]:
        """Every advertised address, IPv4 first."""
        return [*self.ipv4, *self.ipv6]

    @property
    def node_port_addresses(self) -> list[str]:
        """Where this node's NodePorts are probed: its own addresses, else its agent's."""
        return self.node_ips or self.addresses


# Above this (seconds) a node's clock is worth a warning in the report: kdoctor corrects for it
# (every round instant is on the broker's clock, kdoctor.store.clock), but other software on that
# node will not.
SKEW_WARNING_SECONDS = 0.5


def skew_warning(node: str, seconds: float) -> str | None:
    """A report warning for a node whose clock is ``seconds`` off the broker's, if that is a lot."""
    if abs(seconds) <= SKEW_WARNING_SECONDS:
        return None
    direction = "behind" if seconds > 0 else "ahead of"
    return (f"{node}: its clock is {abs(seconds):.1f} s {direction} the broker's; kdoctor corrected its start "
            "and deadline, but fix NTP on that node")
