"""The few fields of Nodes, agent Pods, the agent Service and Ingress that kdoctor uses.

API objects arrive as JSON (lists and watch events) and are cut down here, on arrival, to small
frozen records: a Node object with its image list is 10-50 KB, its record a few hundred bytes,
so the cache of a 1,000-node cluster stays well under a megabyte. Pure functions of the JSON
(``kubectl get -o json`` shapes), no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

__all__ = ["IngressRecord", "NodeRecord", "PodRecord", "ServiceRecord", "ingress", "node", "pod", "service"]

Raw = dict[str, Any]


def _meta(obj: Raw) -> Raw:
    meta: Raw = obj.get("metadata") or {}
    return meta


def _ips(values: list[str]) -> tuple[str, ...]:
    """Valid addresses only, IPv4 first (the order every inventory uses)."""
    found = []
    for value in values:
        try:
            found.append(ipaddress.ip_address(value))
        except ValueError:
            continue
    return tuple(str(a) for a in sorted(found, key=lambda a: a.version))


@dataclass(frozen=True)
class Condition:
    """One condition of a Node or Pod."""

    status: str
    reason: str = ""
    message: str = ""
    since: str = ""
    """lastTransitionTime, as the API wrote it (RFC 3339)."""


def _conditions(obj: Raw, wanted: tuple[str, ...]) -> dict[str, Condition]:
    found = {}
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") in wanted:
            found[item["type"]] = Condition(str(item.get("status", "Unknown")), item.get("reason") or "",
                                            (item.get("message") or "").strip(), item.get("lastTransitionTime") or "")
    return found


@dataclass(frozen=True)
class NodeRecord:
    """A Node: identity, labels, whether it takes pods, its own addresses and readiness."""

    name: str
    labels: dict[str, str]
    unschedulable: bool
    internal_ips: tuple[str, ...]
    """status.addresses of type InternalIP, both families: where NodePorts listen."""
    ready: Condition


def node(obj: Raw) -> NodeRecord:
    """The record of a Node object."""
    status = obj.get("status") or {}
    internal = [a.get("address", "") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"]
    ready = _conditions(obj, ("Ready",)).get("Ready", Condition("Unknown", "", "the Node has no Ready condition"))
    return NodeRecord(name=_meta(obj)["name"], labels=dict(_meta(obj).get("labels") or {}),
                      unschedulable=bool((obj.get("spec") or {}).get("unschedulable")),
                      internal_ips=_ips(internal), ready=ready)


@dataclass(frozen=True)
class ContainerProblem:
    """Why one container of an agent pod does not run, as its status says."""

    container: str
    reason: str
    message: str = ""
    restarts: int = 0
    last_exit: str = ""
    """How it last ended (``Error, exit code 2``), for a container in CrashLoopBackOff."""


@dataclass(frozen=True)
class PodRecord:
    """An agent pod: where it runs (or should), its phase, its addresses and what is wrong."""

    name: str
    node: str
    """``spec.nodeName``; for a DaemonSet pod not scheduled yet, the node its affinity names."""
    phase: str
    ips: tuple[str, ...]
    """status.podIPs (both families): the agent's addresses."""
    deleting: bool
    ready: Condition
    scheduled: Condition
    problems: tuple[ContainerProblem, ...] = ()


def _affinity_node(spec: Raw) -> str:
    """The node a DaemonSet pod is pinned to by its required node affinity (``matchFields``
    ``metadata.name In [node]``): set before the pod is scheduled, unlike ``spec.nodeName``."""
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            values = field.get("values") or []
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return ""


def _problems(status: Raw) -> tuple[ContainerProblem, ...]:
    found = []
    for item in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state = item.get("state") or {}
        last = (item.get("lastState") or {}).get("terminated") or {}
        last_exit = f"{last.get('reason') or 'exited'}, exit code {last.get('exitCode')}" if last else ""
        if "waiting" in state:
            waiting = state["waiting"] or {}
            found.append(ContainerProblem(item.get("name", "?"), waiting.get("reason") or "Waiting",
                                          (waiting.get("message") or "").strip(), int(item.get("restartCount") or 0),
                                          last_exit))
        elif "terminated" in state:
            ended = state["terminated"] or {}
            found.append(ContainerProblem(item.get("name", "?"), ended.get("reason") or "Terminated",
                                          f"exit code {ended.get('exitCode')}", int(item.get("restartCount") or 0)))
    return tuple(found)


def pod(obj: Raw) -> PodRecord:
    """The record of an agent Pod object."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ips = [p.get("ip", "") for p in status.get("podIPs") or []] or [status.get("podIP") or ""]
    conditions = _conditions(obj, ("Ready", "PodScheduled"))
    return PodRecord(
        name=_meta(obj)["name"], node=spec.get("nodeName") or _affinity_node(spec),
        phase=status.get("phase") or "Pending", ips=_ips(ips),
        deleting=bool(_meta(obj).get("deletionTimestamp")),
        ready=conditions.get("Ready", Condition("False")),
        scheduled=conditions.get("PodScheduled", Condition("Unknown")),
        problems=_problems(status),
    )


def _lb(status: Raw) -> tuple[str, ...]:
    """``status.loadBalancer.ingress``: IPs (IPv4 first), then host names."""
    entries = (status.get("loadBalancer") or {}).get("ingress") or []
    ips = _ips([e.get("ip", "") for e in entries if e.get("ip")])
    return (*ips, *(e["hostname"] for e in entries if e.get("hostname") and not e.get("ip")))


@dataclass(frozen=True)
class ServiceRecord:
    """A Service: its ClusterIPs, the agent port, its NodePort and LoadBalancer addresses."""

    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]
    port: int | None
    node_port: int | None
    load_balancer: tuple[str, ...]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def service(obj: Raw, port_name: str = "agent") -> ServiceRecord:
    """The record of a Service; its port is the one named ``port_name``, else its first."""
    spec, meta = obj.get("spec") or {}, _meta(obj)
    ports = spec.get("ports") or []
    chosen = next((p for p in ports if p.get("name") == port_name), ports[0] if ports else {})
    ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP") or ""] if ip != "None"]
    return ServiceRecord(
        namespace=meta.get("namespace", ""), name=meta["name"], type=spec.get("type") or "ClusterIP",
        cluster_ips=_ips(ips), port=chosen.get("port"), node_port=chosen.get("nodePort"),
        load_balancer=_lb(obj.get("status") or {}),
    )


@dataclass(frozen=True)
class IngressRecord:
    """An Ingress (``networking.k8s.io/v1``): its routes and the addresses it is served on."""

    namespace: str
    name: str
    routes: tuple[tuple[str, str], ...]
    """(host, path) of every rule path; host is empty for a rule of any host."""
    addresses: tuple[str, ...]
    """status.loadBalancer.ingress: IPs (IPv4 first), then host names."""
    tls_hosts: frozenset[str]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def ingress(obj: Raw) -> IngressRecord:
    """The record of an Ingress object."""
    spec, meta = obj.get("spec") or {}, _meta(obj)
    routes = []
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            routes.append((rule.get("host") or "", path.get("path") or "/"))
    tls = frozenset(h for entry in spec.get("tls") or [] for h in entry.get("hosts") or [])
    return IngressRecord(namespace=meta.get("namespace", ""), name=meta["name"], routes=tuple(routes),
                         addresses=_lb(obj.get("status") or {}), tls_hosts=tls)
