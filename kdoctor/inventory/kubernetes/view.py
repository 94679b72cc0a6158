"""Nodes, agent pods, the agent Service and Ingress, and the worker registry joined into the
planner's :class:`~kdoctor.specs.plan.InventoryView`. Pure.

======================================  ====================================================
a Node (matching the node selector)     in the view
======================================  ====================================================
its worker beats (Redis heartbeat)      expected and live, probed
cordoned, no live worker                skipped, with the reason (not expected, not failed)
otherwise                               expected and ``missing``, with the API's reason
======================================  ====================================================

Workers are matched to Nodes by name: a worker's name is its pod's ``spec.nodeName`` (the
DaemonSet passes it down; its queue is named after it), and an agent pod belongs to the node in
its ``spec.nodeName`` (or, before it is scheduled, the node its DaemonSet affinity names). A
worker whose pod (its hostname) sits on a Node but that registered under another name is named
in that Node's reason. A registered worker whose Node
is gone is not expected any more: a deleted node leaves the next round. A node's agent addresses
are its pod's ``status.podIPs`` (the worker's own list while the pod is unknown), its NodePort
addresses the Node's InternalIPs, its labels the Node's (over any the worker adds).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from kdoctor.inventory.kubernetes.reasons import agent_pod, missing_reason
from kdoctor.inventory.kubernetes.records import IngressRecord, NodeRecord, PodRecord, ServiceRecord
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import InventoryView, Services

__all__ = ["CORDONED", "inventory_view", "services_view"]

CORDONED = "cordoned (spec.unschedulable) and no worker runs on it"


def _node_info(node: NodeRecord, pod: PodRecord | None, worker: NodeInfo | None) -> NodeInfo:
    base = worker or NodeInfo(name=node.name)  # never heard from: reported missing
    ips = list(pod.ips) if pod is not None and pod.ips else base.addresses
    return base.model_copy(update={
        "ipv4": [a for a in ips if ":" not in a], "ipv6": [a for a in ips if ":" in a],
        "node_ips": list(node.internal_ips) or base.node_ips, "labels": {**base.labels, **node.labels},
    })


def inventory_view(nodes: Iterable[NodeRecord], pods: Iterable[PodRecord], services: Services,
                   workers: Iterable[NodeInfo], now: float, timeout: float, *, source: str, agents: str,
                   warnings: list[str] | None = None) -> InventoryView:
    """The view at broker time ``now`` (``agents`` describes the agent pods, for reasons)."""
    pods_of: dict[str, list[PodRecord]] = defaultdict(list)
    for record in pods:
        pods_of[record.node].append(record)
    workers = list(workers)
    worker_of = {w.name: w for w in workers}
    in_pod = {w.hostname: w for w in workers if w.hostname}  # a worker's hostname is its pod's name
    expected: list[NodeInfo] = []
    live: list[str] = []
    missing: dict[str, str] = {}
    skipped: dict[str, str] = {}
    left_out: list[NodeInfo] = []
    for node in sorted(nodes, key=lambda n: n.name):
        worker = worker_of.get(node.name)
        beating = worker is not None and worker.state(now, timeout) == "live"
        pod = agent_pod(pods_of.get(node.name, []))
        if node.unschedulable and not beating:
            skipped[node.name] = CORDONED
            left_out.append(_node_info(node, pod, worker))
            continue
        expected.append(_node_info(node, pod, worker))
        if beating:
            live.append(node.name)
        elif pod is not None and (other := in_pod.get(pod.name)) is not None and other.name != node.name:
            missing[node.name] = (f"worker pod {pod.name} registered its worker as {other.name!r}, not as this "
                                  "Node's name: KDOCTOR_NODE_NAME must be the pod's spec.nodeName")
        else:
            missing[node.name] = missing_reason(node, pod, worker, now, timeout, agents)
    return InventoryView(expected=expected, live=live, missing=missing, services=services, source=source,
                         skipped=skipped, skipped_nodes=left_out, warnings=warnings or [])


def _url(scheme: str, host: str, path: str) -> str:
    bracketed = f"[{host}]" if ":" in host else host
    return f"{scheme}://{bracketed}{path if path.startswith('/') else '/' + path}"


def services_view(service: ServiceRecord | None, ingress: IngressRecord | None, service_ref: str,
                  ingress_ref: str) -> Services:
    """The agent Service's and Ingress's addresses, and why a path has none (naming the object)."""
    unknown: dict[str, str] = {}
    if service is None:
        for kind in ("clusterIP", "nodePort", "loadBalancer"):
            unknown[kind] = f"the agent Service {service_ref} does not exist"
        port = node_port = None
        cluster_ip: list[str] = []
        load_balancer: list[str] = []
    else:
        port, node_port = service.port, service.node_port
        cluster_ip, load_balancer = list(service.cluster_ips), list(service.load_balancer)
        if not cluster_ip:
            unknown["clusterIP"] = f"the agent Service {service.ref} has no ClusterIP (headless)"
        if node_port is None:
            unknown["nodePort"] = f"the agent Service {service.ref} is of type {service.type}: it has no NodePort"
        if not load_balancer:
            unknown["loadBalancer"] = (
                f"the agent Service {service.ref} has no LoadBalancer address yet (status.loadBalancer is empty)"
                if service.type == "LoadBalancer" else
                f"the agent Service {service.ref} is of type {service.type}, not LoadBalancer")
    urls: list[str] = []
    hosts: dict[str, str] = {}
    if ingress is None:
        unknown["ingress"] = f"the agent Ingress {ingress_ref} does not exist"
    elif not ingress.routes:
        unknown["ingress"] = f"the agent Ingress {ingress.ref} has no rule"
    else:
        # The first rule's first path, as kdoctor probes it, on every address the Ingress has.
        host, path = ingress.routes[0]
        scheme = "https" if host and host in ingress.tls_hosts else "http"
        for address in ingress.addresses or ((host,) if host else ()):
            url = _url(scheme, address, path)
            urls.append(url)
            if host:
                hosts[url] = host
        if not urls:
            unknown["ingress"] = f"the agent Ingress {ingress.ref} has no address yet (status.loadBalancer is empty)"
    return Services(port=port, cluster_ip=cluster_ip, node_port=node_port, load_balancer=load_balancer,
                    ingress=urls, ingress_hosts=hosts, unknown=unknown)
