"""Netdns: from this node, DNS queries at a fixed QPS to a DNS server, checked reply by reply.

=================  ==================================================================  ==========
target             servers                                                             query type
=================  ==================================================================  ==========
``targetUser``     ``server:port``                                                     queryType, else A
``targetDns``      the cluster DNS Service's ClusterIPs (``kubernetes`` inventory:      queryType, else A
                   ``serviceNamespace/serviceName``, default kube-system/kube-dns), or  (IPv4) / AAAA (IPv6)
                   every ``nameserver`` of the node's resolv.conf (other inventories:
                   the worker's ``resolv_conf`` setting), port 53 (853 for tcp-tls),
                   per testIPv4 / testIPv6
=================  ==================================================================  ==========

Each target gets the full ``request.qps`` for ``request.durationInSecond``, open loop, through the
shared pressure driver, over UDP (:mod:`dnsclient`), TCP or DNS over TLS (:mod:`dnsstream`). A
query succeeds when its reply's RCODE is one of ``expect.replyCodes`` (NOERROR by default) and the
answer check passes (``answerNonEmpty``, ``answers``). The resolv.conf nameservers are read on the
node, since the coordinator cannot know them; the Service's ClusterIPs are the coordinator's
(:attr:`~kdoctor.specs.plan.InventoryView.cluster_dns`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from kdoctor.probes import spread
from kdoctor.probes.dnsclient import QueryTable, UdpClient, drops_by_inode
from kdoctor.probes.dnsstream import StreamClient, tls_context
from kdoctor.probes.dnswire import QuerySet, rcode_value
from kdoctor.probes.http1 import classify_error
from kdoctor.probes.judge import judge_target, node_verdict
from kdoctor.probes.kinds import Kind, NodeContext, request_budget
from kdoctor.probes.measure import GeneratorMonitor, saturation_notes, target_result
from kdoctor.probes.pressure import Driver, DriverStats, Pace
from kdoctor.probes.spread import ALONE, Share
from kdoctor.specs.netdns import Netdns
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import Assignment, PlannedTarget, RoundContext
from kdoctor.specs.results import DnsFigures, NodeResult, TargetResult

__all__ = ["KIND", "plan", "read_nameservers", "run"]

RESOLV_CONF = "resolv.conf"
MAX_IN_FLIGHT = 60000  # 16-bit query IDs, with room to skip busy ones
# The event under which a UDP client notes the replies its own sockets dropped (DnsFigures.events).
DROPPED_REPLIES = "generator-dropped-replies"
SCHEMES = {"udp": "udp", "tcp": "tcp", "tcp-tls": "tls"}
# Queries per second one process (one uvloop event loop) is trusted to hold: about half of what
# one saturates at on a 2-vCPU VM (UDP ~140 k/s); above it the node's generator spreads over
# processes (kdoctor.probes.spread). KDOCTOR_GENERATOR_LOOP_QPS overrides both.
UDP_LOOP_QPS = 70_000.0
STREAM_LOOP_QPS = 30_000.0


def _family(address: str) -> Literal[4, 6]:
    return 6 if ipaddress.ip_address(address).version == 6 else 4


def _url(protocol: str, server: str, port: int) -> str:
    host = f"[{server}]" if ":" in server else server
    return f"{SCHEMES[protocol]}://{host}:{port}"


def _target(protocol: str, server: str, port: int, qtype: str, family: Literal[4, 6] | None = None) -> PlannedTarget:
    return PlannedTarget(
        name=f"{protocol}/{qtype}/{_url(protocol, server, port).split('://')[1]}", kind="dns",
        url=_url(protocol, server, port), family=family or _family(server),
        extra={"server": server, "port": port, "queryType": qtype},
    )


def idle(spec: Netdns, node: NodeInfo) -> str | None:
    """Why ``node`` sends no query this round (``sourceAgentNodeSelector``), else ``None``."""
    selector = spec.spec.source_agent_node_selector
    if selector is None or selector.empty or selector.matches(node):
        return None
    return "not selected by spec.sourceAgentNodeSelector: sent no query this round"


def _qtype(spec: Netdns, family: int) -> str:
    """The record type: ``queryType``, else kdoctor's choice by the server's family."""
    return spec.spec.request.query_type or ("AAAA" if family == 6 else "A")


def plan(spec: Netdns, source: NodeInfo, ctx: RoundContext) -> tuple[list[PlannedTarget], list[str]]:
    """The DNS targets of ``source``: the same for every node. ``targetDns`` is the cluster DNS
    Service's ClusterIPs when the inventory knows them, else resolved on the node (resolv.conf);
    a ``targetUser`` host name is resolved on the node too, as kdoctor dials it."""
    request, target = spec.spec.request, spec.spec.target
    warnings: list[str] = []
    if target.target_user is not None:
        user = target.target_user
        if user.is_hostname:
            # The record type follows the address the name resolves to on each node, unless set.
            shown = f"{request.query_type}/" if request.query_type else ""
            return [PlannedTarget(
                name=f"{request.protocol}/{shown}{user.server}:{user.port}", kind="dns",
                url=_url(request.protocol, user.server, user.port),
                extra={"hostname": user.server, "port": user.port})], warnings
        return [_target(request.protocol, user.server, user.port, _qtype(spec, _family(user.server)))], warnings
    dns = target.target_dns
    assert dns is not None  # the spec demands one of the two
    namespace, name = dns.service
    cluster_ips = ctx.inventory.cluster_dns.get(f"{namespace}/{name}")
    if cluster_ips is not None:
        return _service_targets(spec, namespace, name, cluster_ips)
    if dns.service_name or dns.service_namespace:
        warnings.append("targetDns.serviceName/serviceNamespace are not used by this inventory (only the "
                        "kubernetes one reads Services): each node queries the nameservers of its resolv.conf")
    targets = []
    for family, wanted in ((4, dns.test_ipv4), (6, dns.test_ipv6)):
        if wanted:
            qtype = _qtype(spec, family)
            targets.append(PlannedTarget(
                name=f"{request.protocol}/{qtype}/{RESOLV_CONF}", kind="dns", url=RESOLV_CONF,
                family=family, extra={"resolvConf": True, "queryType": qtype}))
    return targets, warnings


def _service_targets(spec: Netdns, namespace: str, name: str,
                     cluster_ips: list[str]) -> tuple[list[PlannedTarget], list[str]]:
    """The cluster DNS Service's ClusterIPs on port 53 (853 for tcp-tls), as kdoctor queries them:
    IPv4 ones with A records when ``testIPv4``, IPv6 ones with AAAA when ``testIPv6``."""
    request, dns = spec.spec.request, spec.spec.target.target_dns
    assert dns is not None
    port = 853 if request.protocol == "tcp-tls" else 53
    targets, warnings = [], []
    for family, wanted in ((4, dns.test_ipv4), (6, dns.test_ipv6)):
        if not wanted:
            continue
        servers = [ip for ip in cluster_ips if _family(ip) == family]
        if not servers:
            warnings.append(f"targetDns: Service {namespace}/{name} has no IPv{family} ClusterIP: "
                            f"testIPv{family} not probed")
        qtype = _qtype(spec, family)
        targets += [_target(request.protocol, server, port, qtype) for server in servers]
    return targets, warnings


def read_nameservers(path: str) -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf, in order; a link-local address keeps its
    zone (``fe80::1%eth0``): without it the kernel cannot tell which link the server is on."""
    servers = []
    for line in Path(path).read_text().splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                servers.append(str(ipaddress.ip_address(fields[1])))
            except ValueError:
                continue
    return servers


def resolve_server(name: str, port: int) -> str:
    """The address a server's host name resolves to on this node (the first the resolver gives,
    as a dialer tries first); :class:`OSError` when it does not resolve."""
    found = socket.getaddrinfo(name, port, type=socket.SOCK_DGRAM)
    return str(found[0][4][0])


def _resolve(planned: Sequence[PlannedTarget], protocol: str, path: str,
             query_type: str | None = None) -> tuple[list[PlannedTarget], list[TargetResult]]:
    """Replace resolv.conf placeholders by one target per nameserver of the resolver file
    ``path``, and a server's host name by the address it resolves to here; failures become
    results."""
    concrete: list[PlannedTarget] = []
    failed: list[TargetResult] = []
    port = 853 if protocol == "tcp-tls" else 53
    for item in planned:
        if (name := item.extra.get("hostname")) is not None:
            try:
                address = resolve_server(str(name), int(item.extra["port"]))
            except OSError as exc:
                failed.append(_failed(item, f"spec.target.targetUser.server: {name!r} does not resolve on this "
                                            f"node: {getattr(exc, 'strerror', None) or exc}"))
                continue
            family = _family(address)
            resolved = _target(protocol, address, int(item.extra["port"]),
                               query_type or ("AAAA" if family == 6 else "A"))
            concrete.append(resolved.model_copy(update={"name": item.name, "url": item.url,
                                                        "extra": {**resolved.extra, "hostname": name}}))
            continue
        if not item.extra.get("resolvConf"):
            concrete.append(item)
            continue
        try:
            servers = read_nameservers(path)
        except OSError as exc:
            failed.append(_failed(item, f"cannot read {path}: {exc.strerror or exc}"))
            continue
        if not servers:
            failed.append(_failed(item, f"{path} names no nameserver"))
        for server in servers:
            concrete.append(_target(protocol, server, port, str(item.extra["queryType"]), item.family))
    return concrete, failed


def _failed(item: PlannedTarget, reason: str) -> TargetResult:
    return TargetResult(name=item.name, kind=item.kind, url=item.url, family=item.family,
                        verdict="failed", reason=reason)


def _in_flight(spec: Netdns, share: Share = ALONE) -> int:
    """Queries in flight per target: ``request.concurrency``, else all that ``qps`` × timeout can
    leave outstanding. A query in flight costs a table slot, not a connection, so the common
    default's cap of 1,000 is not applied: with it, a burst of queries lost by the server would
    stall the generator for a whole timeout. With several processes, this one's part."""
    request = spec.spec.request
    if request.concurrency is not None:
        return share.part(request.concurrency)
    return max(1, min(MAX_IN_FLIGHT, share.part(int(request.qps * request.timeout_seconds) + 1)))


def _client(item: PlannedTarget, spec: Netdns, share: Share = ALONE) -> UdpClient | StreamClient:
    request, expect, target = spec.spec.request, spec.spec.expect, spec.spec.target
    queries = QuerySet(request.names, str(item.extra["queryType"]))
    server, port = str(item.extra["server"]), int(item.extra["port"])
    accept = [rcode_value(code) for code in expect.reply_codes]
    if request.protocol == "udp":
        return UdpClient(server, port, queries, timeout=request.timeout_seconds,
                         max_in_flight=_in_flight(spec, share), accept=accept,
                         answer_nonempty=expect.answer_non_empty, expected=expect.answers or None,
                         connections=request.connections)
    return StreamClient(server, port, queries, timeout=request.timeout_seconds,
                        max_in_flight=_in_flight(spec, share), accept=accept,
                        answer_nonempty=expect.answer_non_empty, expected=expect.answers or None,
                        connections=request.connections,
                        tls=tls_context(target.tls_ca_file) if request.protocol == "tcp-tls" else None,
                        server_name=target.tls_server_name)


def _figures(item: PlannedTarget, spec: Netdns, client: QueryTable, stats: DriverStats) -> DnsFigures:
    request = spec.spec.request
    return DnsFigures(
        server=str(item.extra["server"]), port=int(item.extra["port"]), protocol=request.protocol,
        query_type=str(item.extra["queryType"]), domains=request.names,
        rcodes=dict(sorted(stats.codes.items())), timeouts=client.timeouts,
        answers_checked=client.answers_checked, answer_failures=client.answer_failures,
        empty_answers=client.empty_answers, stray_replies=client.stray,
        events=dict(sorted(client.notes.items())),
    )


def _count_drops(clients: Sequence[UdpClient | StreamClient]) -> None:
    """Note the replies each UDP client's own sockets dropped (receive buffer full): their queries
    timed out as if the server had lost them, so the report must say whose loss they were. The
    kernel's socket table is read once for every client (it lists every UDP socket of the node)."""
    udp = [(client, client.inodes()) for client in clients if isinstance(client, UdpClient)]
    drops = drops_by_inode([inode for _, inodes in udp for inode in inodes]) if udp else None
    for client, inodes in udp:
        dropped = sum(drops.get(inode, 0) for inode in inodes) if drops else 0
        if dropped:
            client.notes[DROPPED_REPLIES] += dropped


def _why(result: TargetResult, figures: DnsFigures, accepted: Sequence[str]) -> str:
    """What the failed queries got: unaccepted RCODEs, answer-check failures, errors."""
    parts = [f"{code} {n}" for code, n in figures.rcodes.items() if code not in accepted]
    parts += [f"{error} {n}" for error, n in result.errors.items()]
    return f" ({', '.join(parts)})" if parts else ""


async def run(assignment: Assignment, spec: Netdns, t0: float, monitor: GeneratorMonitor,
              node: NodeContext) -> NodeResult:
    """Query every target at once, starting at ``t0`` (a ``perf_counter`` instant); with several
    processes, this one's slice of every schedule (``node.share``)."""
    request = spec.spec.request
    share = node.share or ALONE
    planned, results = _resolve(assignment.targets, request.protocol, node.resolv_conf, request.query_type)
    drivers: list[tuple[PlannedTarget, Pace, UdpClient | StreamClient, Driver]] = []
    try:
        for index, item in enumerate(planned):
            pace = Pace(qps=request.qps, duration=request.duration_in_second,
                        timeout=request.timeout_seconds, phase=index / max(len(planned), 1))
            try:
                client = _client(item, spec, share)
            except OSError as exc:
                results.append(_failed(item, f"cannot open a socket to {item.url}: {classify_error(exc)}"))
                continue
            driver = Driver(client, share.pace(pace))
            client.driver = driver
            drivers.append((item, pace, client, driver))
        all_stats = await asyncio.gather(*(driver.run(t0) for *_, driver in drivers))
        _count_drops([client for _, _, client, _ in drivers])  # before gather: a team's counts travel in tallies
        await spread.gather(share, [(item.name, stats, driver.pace, client) for (item, _, client, driver), stats
                                    in zip(drivers, all_stats, strict=True)], monitor)
    finally:
        for _, _, client, _ in drivers:
            await client.aclose()
    unsent = 0
    for (item, pace, client, _), stats in zip(drivers, all_stats, strict=True):
        monitor.add_lag(stats, pace, item.name)
        monitor.dropped_replies += client.notes.get(DROPPED_REPLIES, 0)
        unsent += stats.unsent
        figures = _figures(item, spec, client, stats)
        result = target_result(item, stats, pace, monitor.processes).model_copy(update={"dns": figures})
        verdict, reason = judge_target(result, spec.spec.expect)
        if verdict == "failed":
            reason += _why(result, figures, spec.spec.expect.reply_codes)
        results.append(result.model_copy(update={"verdict": verdict, "reason": reason}))
    status, why = node_verdict(results)
    generator = monitor.finish(unsent)
    return NodeResult(node=assignment.node, status=status, reason=why, targets=results,
                      generator=generator, warnings=saturation_notes(assignment.node, generator))


def processes(assignment: Assignment, spec: Netdns, node: NodeContext) -> int:
    """How many processes query from this node: what its rate over all its targets needs
    (:data:`UDP_LOOP_QPS`, :data:`STREAM_LOOP_QPS` per process), at most
    ``node.generator_processes``. A resolv.conf target counts once, though it may name several
    servers."""
    request = spec.spec.request
    per_loop = node.generator_loop_qps or (UDP_LOOP_QPS if request.protocol == "udp" else STREAM_LOOP_QPS)
    return spread.processes(request.qps * len(assignment.targets), per_loop, node.generator_processes)


KIND: Kind[Netdns] = Kind("Netdns", plan, run, request_budget, idle=idle, spread=processes)
