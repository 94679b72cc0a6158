"""NetReach: from this node, HTTP GET to every other node's agent over every requested path.

================  ==============================================================  ===========
target kind       URL                                                             destination
================  ==============================================================  ===========
endpoint          ``http://<agent address>:<agent port>/`` of every other node    that node
clusterIP         ``http://<ClusterIP>:<service port>/``                          (any agent)
nodePort          ``http://<node address>:<nodePort>/`` on every node              that node
loadBalancer      ``http://<LB address>:<service port>/``                         (any agent)
ingress           the Ingress URL                                                 (any agent)
================  ==============================================================  ===========

Each target gets the full ``request.qps`` for ``request.durationInSecond``, open loop, through the
shared pressure driver. Success is a 2xx answer. Targets whose addresses the inventory does not
know are not silently skipped: the plan carries a warning that names them.
"""

from __future__ import annotations

from typing import Literal

from kdoctor.probes.http1 import Http1Pool, HttpTarget
from kdoctor.probes.measure import GeneratorMonitor, node_result
from kdoctor.probes.pressure import Driver, Pace, run_all
from kdoctor.specs.netreach import NetReach, NetReachTarget
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import Assignment, InventoryView, PlannedTarget
from kdoctor.specs.results import NodeResult


def _url(address: str, port: int, path: str = "/") -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}{path}"


def _family(address: str) -> Literal[4, 6]:
    return 6 if ":" in address else 4


def _families(target: NetReachTarget) -> set[int]:
    return {f for f, on in ((4, target.ipv4), (6, target.ipv6)) if on}


def plan(spec: NetReach, source: NodeInfo, view: InventoryView) -> tuple[list[PlannedTarget], list[str]]:
    """The targets ``source`` probes this round, and warnings for requested paths nobody knows."""
    target = spec.spec.target
    families = _families(target)
    peers = [n for n in view.live_nodes() if n.name != source.name]
    services = view.services
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
        _service_targets(targets, warnings, "clusterIP", services.cluster_ip, services.port, families)
    if target.load_balancer:
        _service_targets(targets, warnings, "loadBalancer", services.load_balancer, services.port, families)
    if target.node_port:
        if services.node_port is None:
            warnings.append("nodePort requested but the inventory knows no NodePort: not probed")
        else:
            for node in view.live_nodes():
                for address in node.addresses:
                    family = _family(address)
                    if family in families:
                        targets.append(PlannedTarget(
                            name=f"nodePort/ipv{family}/{node.name}", kind="nodePort",
                            url=_url(address, services.node_port), destination=node.name, family=family))
    if target.ingress:
        if not services.ingress:
            warnings.append("ingress requested but the inventory knows no Ingress: not probed")
        for url in services.ingress:
            targets.append(PlannedTarget(name=f"ingress/{url}", kind="ingress", url=url))
    if target.multus_interface:
        warnings.append("multusInterface is accepted for compatibility but Multus interfaces are not probed")
    return targets, warnings


def _service_targets(
    targets: list[PlannedTarget], warnings: list[str], kind: str, addresses: list[str],
    port: int | None, families: set[int],
) -> None:
    usable = [a for a in addresses if _family(a) in families]
    if not usable or port is None:
        warnings.append(f"{kind} requested but the inventory knows no {kind} address: not probed")
        return
    for address in usable:
        fam = _family(address)
        targets.append(PlannedTarget(
            name=f"{kind}/ipv{fam}", kind=kind, url=_url(address, port), family=fam))


async def run(assignment: Assignment, spec: NetReach, t0: float, monitor: GeneratorMonitor) -> NodeResult:
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
