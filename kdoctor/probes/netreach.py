"""NetReach: from this node, HTTP GET to every other node's agent over every requested path.

================  ==============================================================  ===========
target kind       URL                                                             destination
================  ==============================================================  ===========
endpoint          ``http://<agent address>:<agent port>/`` of every peer          that node
clusterIP         ``http://<ClusterIP>:<service port>/``                          (any agent)
nodePort          ``http://<node address>:<nodePort>/`` on itself and every peer   that node
                  (the node's own addresses, never its agent's pod IPs)
loadBalancer      ``http://<LB address>:<service port>/``                         (any agent)
ingress           the Ingress URL                                                 (any agent)
================  ==============================================================  ===========

Each target gets the full ``request.qps`` for ``request.durationInSecond``, open loop, through the
shared pressure driver. Success is a 2xx answer. Targets whose addresses the inventory does not
know are not silently skipped: the plan carries a warning that names them. Peers are every other
live node up to ``spec.mesh.fullMeshMaxNodes``, else a rotating ring (:mod:`kdoctor.specs.mesh`);
``target.sourceNodeSelector`` limits which nodes probe.
"""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from kdoctor.probes.http1 import Http1Pool, HttpTarget
from kdoctor.probes.kinds import Kind, NodeContext, request_budget
from kdoctor.probes.measure import GeneratorMonitor, node_result
from kdoctor.probes.pressure import Driver, Pace, run_all
from kdoctor.specs.netreach import NetReach, NetReachTarget
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import Assignment, PlannedTarget, RoundContext, Services
from kdoctor.specs.results import NodeResult


def _url(address: str, port: int, path: str = "/") -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}{path}"


def _family(address: str) -> Literal[4, 6]:
    return 6 if ":" in address else 4


def _families(target: NetReachTarget) -> set[int]:
    return {f for f, on in ((4, target.ipv4), (6, target.ipv6)) if on}


def idle(spec: NetReach, node: NodeInfo) -> str | None:
    """Why ``node`` is not a source this round (``target.sourceNodeSelector``), else ``None``."""
    selector = spec.spec.target.source_node_selector
    if selector.empty or selector.matches(node):
        return None
    return "not selected by target.sourceNodeSelector: sent no probe this round, probed as a destination only"


def plan(spec: NetReach, source: NodeInfo, ctx: RoundContext) -> tuple[list[PlannedTarget], list[str]]:
    """The targets ``source`` probes this round, and warnings for requested paths nobody knows.

    Per-node paths (``endpoint``, ``nodePort``) go to the source's mesh peers (every other node up
    to ``mesh.fullMeshMaxNodes``, else ``mesh.peers`` of them on a rotating ring); ``nodePort``
    is also probed on the source's own address, as kube-proxy serves it there too.
    """
    target = spec.spec.target
    if idle(spec, source):
        return [], []
    families = _families(target)
    live = ctx.live
    peers = [live[name] for name in ctx.ring.peers(source.name, spec.spec.mesh, ctx.rotation)]
    services = ctx.inventory.services
    targets: list[PlannedTarget] = []
    warnings: list[str] = []

    if target.endpoint:
        for peer in peers:
            for address in peer.addresses:
                fam = _family(address)
                if fam in families:
                    targets.append(PlannedTarget(
                        name=f"endpoint/ipv{fam}/{peer.name}", kind="endpoint",
                        url=_url(address, peer.agent_port), destination=peer.name, family=fam))
            missing = families - {_family(a) for a in peer.addresses}
            warnings += [f"node {peer.name} advertises no IPv{f} address: endpoint/ipv{f} not probed"
                         for f in sorted(missing)]
    if target.cluster_ip:
        _service_targets(targets, warnings, "clusterIP", services.cluster_ip, services, families)
    if target.load_balancer:
        _service_targets(targets, warnings, "loadBalancer", services.load_balancer, services, families)
    if target.node_port:
        if services.node_port is None:
            warnings.append(f"nodePort requested but {_why(services, 'nodePort', 'NodePort')}: not probed")
        else:
            for node in [source, *peers] if source.name in live else peers:
                # The node's own addresses (Kubernetes: its InternalIPs), never its agent's pod IPs.
                for address in node.node_port_addresses:
                    family = _family(address)
                    if family in families:
                        targets.append(PlannedTarget(
                            name=f"nodePort/ipv{family}/{node.name}", kind="nodePort",
                            url=_url(address, services.node_port), destination=node.name, family=family))
    if target.ingress:
        urls = [u for u in services.ingress if _url_family(u) in families or _url_family(u) is None]
        if not urls:
            why = services.unknown.get("ingress") or "the inventory knows no Ingress of the requested families"
            warnings.append(f"ingress requested but {why}: not probed")
        for url in urls:
            url_family = _url_family(url)
            label = f"ipv{url_family}" if url_family else url
            targets.append(PlannedTarget(name=f"ingress/{label}", kind="ingress", url=url, family=url_family,
                                         host_header=services.ingress_hosts.get(url)))
    if target.multus_interface:
        warnings.append("multusInterface is accepted for compatibility but Multus interfaces are not probed")
    return targets, warnings


def _url_family(url: str) -> Literal[4, 6] | None:
    """The family of a URL's host when it is an IP address; ``None`` for a host name."""
    host = urlsplit(url).hostname or ""
    try:
        return 6 if ipaddress.ip_address(host).version == 6 else 4
    except ValueError:
        return None


def _why(services: Services, kind: str, what: str) -> str:
    """Why ``kind`` has no address: the inventory's words (naming the object), else generic ones."""
    return services.unknown.get(kind) or f"the inventory knows no {what}"


def _service_targets(
    targets: list[PlannedTarget], warnings: list[str], kind: str, addresses: list[str],
    services: Services, families: set[int],
) -> None:
    # A host name (a cloud LoadBalancer's) is probed whatever the families: it names no family.
    usable = [a for a in addresses if _url_family(_url(a, 1)) in (*families, None)]
    port = services.port
    if not usable or port is None:
        why = _why(services, kind, f"{kind} address")
        if addresses and port is not None:
            why = f"the {kind} addresses ({', '.join(addresses)}) are not of the requested families"
        warnings.append(f"{kind} requested but {why}: not probed")
        return
    for address in usable:
        fam = _url_family(_url(address, port))
        targets.append(PlannedTarget(
            name=f"{kind}/ipv{fam}" if fam else f"{kind}/{address}", kind=kind, url=_url(address, port),
            family=fam))


async def run(assignment: Assignment, spec: NetReach, t0: float, monitor: GeneratorMonitor,
              node: NodeContext) -> NodeResult:
    """Press every planned target at once, starting at ``t0`` (a ``perf_counter`` instant)."""
    request = spec.spec.request
    planned = assignment.targets
    paces, drivers = [], []
    for index, item in enumerate(planned):
        pace = Pace(
            qps=request.qps,
            duration=request.duration_in_second,
            timeout=request.timeout_seconds,
            phase=index / max(len(planned), 1),
        )
        pool = Http1Pool(
            HttpTarget(item.url, host_header=item.host_header),
            timeout=request.timeout_seconds,
            max_connections=request.effective_concurrency(),
        )
        driver = Driver(pool, pace)
        pool.driver = driver
        paces.append(pace)
        drivers.append(driver)
    all_stats = await run_all(drivers, t0)
    return node_result(assignment.node, list(zip(planned, all_stats, paces, strict=True)),
                       spec.spec.expect, monitor)


KIND: Kind[NetReach] = Kind("NetReach", plan, run, request_budget, idle=idle)
