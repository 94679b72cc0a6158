"""``Netdns``: a DNS server at a fixed QPS from every node.

kdoctor's fields; kdoctor counts any reply, NXDOMAIN included, as success, we require NOERROR.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from kdoctor.specs.common import DocumentBase, Expect, Model, Request, SpecBase


class TargetUser(Model):
    """An explicit DNS server."""

    server: str
    port: int = Field(default=53, ge=1, le=65535)


class TargetDns(Model):
    """The cluster DNS Service (in Kubernetes) or the node's resolv.conf nameservers (outside)."""

    service_name: str | None = None
    service_namespace: str | None = None
    test_ipv4: bool = Field(default=True, alias="testIPv4")
    test_ipv6: bool = Field(default=False, alias="testIPv6")


class NetdnsTarget(Model):
    """kdoctor's ``spec.target`` of Netdns: exactly one of ``targetUser`` and ``targetDns``."""

    target_user: TargetUser | None = None
    target_dns: TargetDns | None = None
    enable_latency_metric: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> NetdnsTarget:
        if self.target_user is not None and self.target_dns is not None:
            raise ValueError("set targetUser or targetDns, not both")
        return self


class NetdnsRequest(Request):
    """kdoctor's ``spec.request`` of Netdns."""

    domain: str = "kubernetes.default.svc.cluster.local"
    protocol: Literal["udp", "tcp", "tcp-tls"] = "udp"


class NetdnsSpec(SpecBase):
    """``spec`` of a Netdns."""

    request: NetdnsRequest = Field(default_factory=NetdnsRequest)
    target: NetdnsTarget = Field(default_factory=lambda: NetdnsTarget(target_dns=TargetDns()))
    expect: Expect = Field(default_factory=Expect)
    source_agent_node_selector: dict[str, Any] | None = None


class Netdns(DocumentBase):
    """A Netdns task file."""

    kind: Literal["Netdns"]
    spec: NetdnsSpec = Field(default_factory=NetdnsSpec)
