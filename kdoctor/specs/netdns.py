"""``Netdns``: a DNS server at a fixed QPS from every node.

kdoctor's fields (``target.targetUser``/``targetDns``, ``request.domain``, ``request.protocol``)
load unchanged. Ours in addition: several domains, an explicit query type, several sockets or
connections, a CA for DNS over TLS, and an answer check. kdoctor counts any reply, NXDOMAIN
included, as success; we require one of ``expect.replyCodes`` (default NOERROR) and a passing
answer check.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from kdoctor.specs.common import DocumentBase, Model, NetExpect, Request, SpecBase
from kdoctor.specs.selector import LabelSelector

QUERY_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "CAA", "HTTPS", "SVCB", "ANY")
DNS_NAMESPACE, DNS_SERVICE = "kube-system", "kube-dns"
"""The cluster DNS Service ``targetDns`` queries when the spec names none (kdoctor's docs' names)."""
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
          "NXRRSET", "NOTAUTH", "NOTZONE")


_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class TargetUser(Model):
    """An explicit DNS server."""

    server: str = Field(description="The server's IPv4 or IPv6 address, or a host name each node resolves "
                        "(as kdoctor dials it) when the round starts.")
    port: int = Field(default=53, ge=1, le=65535)

    @field_validator("server")
    @classmethod
    def _address(cls, value: str) -> str:
        text = value.strip().strip("[]")
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            pass
        name = text.rstrip(".").lower()
        if name and len(name) <= 253 and all(_HOST_LABEL.match(label) for label in name.split(".")):
            return name
        raise ValueError("must be an IPv4 or IPv6 address such as 10.96.0.10 or fd00::10, or a host name "
                         f"such as dns.example.com; got {value[:80]!r}")

    @property
    def is_hostname(self) -> bool:
        """Whether ``server`` is a name to resolve rather than an address."""
        try:
            ipaddress.ip_address(self.server)
        except ValueError:
            return True
        return False


class TargetDns(Model):
    """The cluster DNS: with the ``kubernetes`` inventory the ClusterIPs of the Service
    ``serviceNamespace/serviceName`` (kdoctor's ``kube-system/kube-dns`` by default), as kdoctor
    queries them; with another inventory the node's resolv.conf nameservers
    (``KDOCTOR_RESOLV_CONF``), which in a pod with the ClusterFirst DNS policy are that Service's."""

    service_name: str | None = Field(default=None, description="The cluster DNS Service (default kube-dns).")
    service_namespace: str | None = Field(default=None, description="Its namespace (default kube-system).")
    test_ipv4: bool = Field(default=True, alias="testIPv4", description="Query A records (IPv4 servers).")
    test_ipv6: bool = Field(default=False, alias="testIPv6", description="Query AAAA records (IPv6 servers).")

    @property
    def service(self) -> tuple[str, str]:
        """``(namespace, name)`` of the cluster DNS Service."""
        return self.service_namespace or DNS_NAMESPACE, self.service_name or DNS_SERVICE


class NetdnsTarget(Model):
    """kdoctor's ``spec.target`` of Netdns: exactly one of ``targetUser`` and ``targetDns``."""

    target_user: TargetUser | None = None
    target_dns: TargetDns | None = None
    enable_latency_metric: bool = False
    tls_ca_file: str | None = Field(
        default=None, description="Ours: CA file on each node that verifies a tcp-tls server. "
        "Unset: the channel is encrypted but the server is not verified (as kdoctor)."
    )
    tls_server_name: str | None = Field(
        default=None, description="Ours: the name the tcp-tls server's certificate must carry. "
        "Unset: the server's address."
    )

    @model_validator(mode="after")
    def _one_target(self) -> NetdnsTarget:
        if self.target_user is not None and self.target_dns is not None:
            raise ValueError("set targetUser or targetDns, not both")
        if self.target_user is None and self.target_dns is None:
            raise ValueError("set targetUser {server, port} or targetDns {testIPv4, testIPv6}")
        if self.target_dns is not None and not (self.target_dns.test_ipv4 or self.target_dns.test_ipv6):
            raise ValueError("targetDns: testIPv4 and testIPv6 are both false: nothing to query")
        return self


class NetdnsRequest(Request):
    """kdoctor's ``spec.request`` of Netdns, plus ours."""

    domain: str = "kubernetes.default.svc.cluster.local"
    protocol: Literal["udp", "tcp", "tcp-tls"] = "udp"
    domains: list[str] = Field(
        default_factory=list, description="Ours: several names, queried in turn. Set: replaces `domain`."
    )
    query_type: str | None = Field(
        default=None, description=f"Ours: the record type to query ({', '.join(QUERY_TYPES)}). Unset: as "
        "kdoctor, A for an IPv4 server and AAAA for an IPv6 one (targetDns's testIPv6, a targetUser server "
        "of IPv6)."
    )
    connections: int = Field(
        default=1, ge=1, le=64,
        description="Ours: UDP sockets (source ports) or TCP/TLS connections per target, used in turn.",
    )

    @field_validator("query_type")
    @classmethod
    def _qtype(cls, value: str | None) -> str | None:
        if value is None:
            return None
        upper = value.strip().upper()
        if upper not in QUERY_TYPES:
            raise ValueError(f"unknown query type {value!r}; allowed: {', '.join(QUERY_TYPES)}")
        return upper

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.strip() or " " in name.strip() or len(name.strip().rstrip(".")) > 253:
                raise ValueError(f"{name[:80]!r} is not a domain name (at most 253 characters, no spaces)")
        return [name.strip() for name in value]

    @property
    def names(self) -> list[str]:
        """The names to query: ``domains``, or kdoctor's single ``domain``."""
        return self.domains or [self.domain]


class NetdnsExpect(NetExpect):
    """Netdns's success conditions: kdoctor's, plus the reply check (ours)."""

    reply_codes: list[str] = Field(
        default_factory=lambda: ["NOERROR"],
        description="Ours: reply codes that count as success (kdoctor counts any reply, NXDOMAIN included).",
    )
    answer_non_empty: bool = Field(
        default=False, description="Ours: a reply must carry at least one answer record (checked on every reply)."
    )
    answers: list[str] = Field(
        default_factory=list,
        description="Ours: every record in a reply's answer must be one of these (addresses, or record "
        "data as text), and there must be one. Checked on a sample of replies (all of the first 200).",
    )

    @field_validator("reply_codes")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"at least one reply code is needed; allowed: {', '.join(RCODES)}")
        codes = [code.strip().upper() for code in value]
        for code in codes:
            if code not in RCODES:
                raise ValueError(f"unknown reply code {code!r}; allowed: {', '.join(RCODES)}")
        return codes

    @field_validator("answers")
    @classmethod
    def _answers(cls, value: list[str]) -> list[str]:
        normalized = []
        for item in value:
            try:  # addresses compare in their canonical form (fd00:0::1 is fd00::1)
                normalized.append(str(ipaddress.ip_address(item.strip())))
            except ValueError:
                normalized.append(item.strip())
        return normalized


class NetdnsSpec(SpecBase):
    """``spec`` of a Netdns."""

    request: NetdnsRequest = Field(default_factory=NetdnsRequest)
    target: NetdnsTarget = Field(default_factory=lambda: NetdnsTarget(target_dns=TargetDns()))
    expect: NetdnsExpect = Field(default_factory=NetdnsExpect)
    source_agent_node_selector: LabelSelector | None = Field(
        default=None, description="kdoctor's: only the nodes whose labels match send queries (a Kubernetes "
        "label selector: matchLabels, matchExpressions). Unset: every node.")


class Netdns(DocumentBase):
    """A Netdns task file."""

    kind: Literal["Netdns"]
    spec: NetdnsSpec = Field(default_factory=NetdnsSpec)
