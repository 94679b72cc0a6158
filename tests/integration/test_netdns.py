"""Netdns against real DNS servers: dnsmasq (UDP, TCP, query log), unbound (DoT, dropping queries),
and one round through three real workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import dns.exception
import dns.message
import pytest
import uvloop

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.dnsmasq import DOMAIN, HOSTS, Dnsmasq
from kdoctor.probes import netdns
from kdoctor.probes.dnsclient import SEGMENTATION_OFF, UdpClient, socket_drops
from kdoctor.probes.dnsstream import StreamClient, tls_context
from kdoctor.probes.dnswire import QuerySet
from kdoctor.probes.kinds import NodeContext
from kdoctor.probes.measure import GeneratorMonitor
from kdoctor.probes.pressure import Driver, DriverStats, Pace
from kdoctor.specs import load_spec, load_text
from kdoctor.specs.netdns import Netdns
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import Assignment, InventoryView, RoundContext
from kdoctor.specs.results import NodeResult
from tests.conftest import cli_env
from tests.servers.unbound import Unbound

WWW = f"www.{DOMAIN}"
SO_NO_CHECK = 11  # Linux: send UDP without checksums


@pytest.fixture(scope="module")
def dnsmasq() -> Iterator[Dnsmasq]:
    with Dnsmasq() as server:
        yield server


def spec(server: str, port: int, *, qps: int = 200, duration: int = 1, protocol: str = "udp",
         request: dict[str, Any] | None = None, expect: dict[str, Any] | None = None,
         target: dict[str, Any] | None = None) -> Netdns:
    document = {
        "apiVersion": "kdoctor.io/v1beta1", "kind": "Netdns", "metadata": {"name": "dns"},
        "spec": {
            "request": {"qps": qps, "durationInSecond": duration, "perRequestTimeoutInMS": 500,
                        "domain": WWW, "protocol": protocol, **(request or {})},
            "target": {"targetUser": {"server": server, "port": port}, **(target or {})},
            "expect": {"successRate": 1, "meanAccessDelayInMs": 200, **(expect or {})},
        },
    }
    loaded = load_spec(document)
    assert isinstance(loaded, Netdns)
    return loaded


def run_node(document: Netdns, resolv_conf: str = "/etc/resolv.conf") -> NodeResult:
    """Plan and run one node's Netdns probe in this process, as a worker would."""
    node = NodeInfo(name="node-1")
    targets, warnings = netdns.plan(document, node, RoundContext(InventoryView(expected=[node], live=["node-1"])))
    assignment = Assignment(round_id="r", job="j", round=1, kind="Netdns", name="dns",
                            spec=document.model_dump(mode="json", by_alias=True), node="node-1",
                            targets=targets, start_at=time.time(), deadline=time.time() + 60,
                            warnings=warnings)

    async def go() -> NodeResult:
        monitor = GeneratorMonitor()
        monitor.start()
        node_ctx = NodeContext(name="node-1", data_dir="/nonexistent", resolv_conf=resolv_conf)
        return await netdns.run(assignment, document, time.perf_counter(), monitor, node_ctx)

    return uvloop.run(go())


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_udp_and_tcp_pass_and_match_the_query_log(dnsmasq: Dnsmasq, protocol: str) -> None:
    before = dnsmasq.wait_quiet(0.1)
    result = run_node(spec("127.0.0.1", dnsmasq.port, protocol=protocol,
                           request={"domains": [WWW, f"api.{DOMAIN}"], "connections": 2},
                           expect={"answerNonEmpty": True, "answers": ["10.53.0.1", "10.53.0.2"]}))
    assert result.status == "passed", result.reason
    [target] = result.targets
    assert target.requests == 200 and target.successes == 200
    assert target.dns is not None and target.dns.rcodes == {"NOERROR": 200}
    assert target.dns.answers_checked == 200 and target.dns.answer_failures == 0
    assert target.achieved_qps == pytest.approx(200, rel=0.02)
    assert target.latency_ms.p99 is not None
    # What the server logged is exactly what the probe reports it sent.
    assert dnsmasq.wait_quiet(0.1) - before == target.requests


def test_ipv6_server_and_other_query_types(dnsmasq: Dnsmasq) -> None:
    result = run_node(spec("::1", dnsmasq.port, qps=50, request={"queryType": "AAAA"},
                           expect={"answers": [HOSTS[WWW][1]]}))
    assert result.status == "passed", result.reason
    assert result.targets[0].family == 6 and result.targets[0].url == f"udp://[::1]:{dnsmasq.port}"
    for qtype, name in (("SRV", f"_http._tcp.www.{DOMAIN}"), ("TXT", f"txt.{DOMAIN}"),
                        ("PTR", "1.0.53.10.in-addr.arpa")):
        result = run_node(spec("127.0.0.1", dnsmasq.port, qps=20,
                               request={"queryType": qtype, "domain": name}, expect={"answerNonEmpty": True}))
        assert result.status == "passed", (qtype, result.reason)


def test_nxdomain_is_a_failure(dnsmasq: Dnsmasq) -> None:
    result = run_node(spec("127.0.0.1", dnsmasq.port, qps=50,
                           request={"domains": [WWW, f"missing.{DOMAIN}"]}))
    assert result.status == "failed"
    [target] = result.targets
    assert target.dns is not None and target.dns.rcodes == {"NOERROR": 25, "NXDOMAIN": 25}
    assert target.successes == 25 and "NXDOMAIN 25" in target.reason
    # ... unless the spec says NXDOMAIN is what it expects (kdoctor's behaviour, asked for).
    relaxed = run_node(spec("127.0.0.1", dnsmasq.port, qps=50, request={"domain": f"missing.{DOMAIN}"},
                            expect={"replyCodes": ["NOERROR", "NXDOMAIN"]}))
    assert relaxed.status == "passed", relaxed.reason


def test_a_wrong_answer_is_caught(dnsmasq: Dnsmasq) -> None:
    result = run_node(spec("127.0.0.1", dnsmasq.port, qps=50, request={"domain": f"multi.{DOMAIN}"},
                           expect={"answers": ["10.53.0.3"]}))
    assert result.status == "failed"
    [target] = result.targets
    assert target.dns is not None and target.dns.answer_failures == 50
    assert target.errors == {"wrong-answer": 50} and "wrong-answer 50" in target.reason


def test_dns_over_tls_verified_by_ca() -> None:
    with Unbound() as unbound:
        verified = run_node(spec("127.0.0.1", unbound.port, qps=100, protocol="tcp-tls",
                                 target={"tlsCaFile": unbound.ca_file, "tlsServerName": unbound.server_name},
                                 expect={"answers": ["10.53.0.1"]}))
        assert verified.status == "passed", verified.reason
        assert verified.targets[0].successes == 100
        assert verified.targets[0].url == f"tls://127.0.0.1:{unbound.port}"
        # The wrong name fails verification: counted as TLS errors, not answered.
        wrong = run_node(spec("127.0.0.1", unbound.port, qps=20, protocol="tcp-tls",
                              target={"tlsCaFile": unbound.ca_file, "tlsServerName": "other.example"}))
        assert wrong.status == "failed"
        assert wrong.targets[0].successes == 0 and "tls" in wrong.targets[0].errors
        # Without a CA the channel is encrypted but the server not verified (kdoctor's behaviour).
        unverified = run_node(spec("127.0.0.1", unbound.port, qps=20, protocol="tcp-tls"))
        assert unverified.status == "passed", unverified.reason


async def closed_loop(client: UdpClient | StreamClient, seconds: float,
                      server: QueryCounter | None = None) -> tuple[DriverStats, int]:
    """Run ``client`` closed loop for ``seconds`` (against ``server``, answered on this loop, when
    given), then close it: its figures and the queries still in flight when the run ended."""
    loop = asyncio.get_running_loop()
    if server is not None:
        server.sock.setblocking(False)

        def readable() -> None:
            with contextlib.suppress(BlockingIOError):
                while True:
                    server.answer(*server.sock.recvfrom(4096))

        loop.add_reader(server.sock.fileno(), readable)
    driver = Driver(client, Pace(qps=0, duration=seconds, timeout=1.0))
    client.driver = driver
    try:
        return await driver.run(time.perf_counter()), client.in_flight()
    finally:
        if server is not None:
            loop.remove_reader(server.sock.fileno())
        await client.aclose()


@pytest.mark.parametrize("in_flight", [1, 5, 128])
def test_udp_closed_loop_refills_in_bursts_and_every_query_is_answered(dnsmasq: Dnsmasq, in_flight: int) -> None:
    # The UDP client records replies as it reads them and refills their slots per burst
    # (UdpClient.batch: 1, 1 and 32 here): every query sent is answered, none is left behind. (This
    # dnsmasq answers about 190 at once and drops the rest: more in flight would time out.)
    async def go() -> tuple[DriverStats, int, int]:
        client = UdpClient("127.0.0.1", dnsmasq.port, QuerySet([WWW], "A"), timeout=1.0, max_in_flight=in_flight)
        return *await closed_loop(client, 0.3), client.batch

    stats, left, batch = uvloop.run(go())
    assert batch == max(1, min(32, in_flight // 4))
    assert stats.sent > in_flight and stats.sent == stats.successes == stats.codes["NOERROR"]
    assert not stats.errors and left == 0


class QueryCounter:
    """A UDP "server" on loopback that parses every datagram as exactly one DNS query (dnspython
    refuses trailing bytes) and answers it, counting queries by name."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.port = self.sock.getsockname()[1]
        self.names: Counter[str] = Counter()
        self.malformed = 0

    def answer(self, data: bytes, peer: Any) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            self.malformed += 1
            return
        self.names[query.question[0].name.to_text()] += 1
        self.sock.sendto(dns.message.make_response(query).to_wire(), peer)


@pytest.mark.parametrize("names, connections, host", [
    ([WWW], 1, "127.0.0.1"),
    ([WWW, f"a.{DOMAIN}", f"a-much-longer-name.{DOMAIN}"], 1, "127.0.0.1"),  # three query sizes
    ([WWW], 3, "127.0.0.1"),
    ([WWW], 1, "::1"),
])
def test_a_burst_leaves_as_one_datagram_per_query(names: list[str], connections: int, host: str) -> None:
    # Bursts of up to 100 queries go out as segmented datagrams (UDP_SEGMENT); the kernel splits
    # them: the server reads every query alone and whole, and each is answered.
    server = QueryCounter(host)

    async def go() -> tuple[DriverStats, int]:
        client = UdpClient(host, server.port, QuerySet(names, "A"), timeout=1.0, max_in_flight=100,
                           connections=connections)
        return (await closed_loop(client, 0.3, server))[0], client.segmented

    with server.sock:
        stats, segmented = uvloop.run(go())
    assert stats.sent > 1000 and stats.sent == stats.successes and not stats.errors
    assert server.malformed == 0 and sum(server.names.values()) == stats.sent
    assert set(server.names) == {f"{name}." for name in names}
    # Every name was asked in turn, so as often as the others, give or take one.
    assert max(server.names.values()) - min(server.names.values()) <= 1
    assert segmented > stats.sent // 2


def test_a_kernel_that_refuses_segmentation_gets_one_send_per_query() -> None:
    # With checksums off on the socket (SO_NO_CHECK) Linux refuses UDP segmentation (EINVAL): the
    # client notes it, sends the refused burst and every later one query by query, and loses none.
    server = QueryCounter()

    async def go() -> tuple[DriverStats, UdpClient]:
        client = UdpClient("127.0.0.1", server.port, QuerySet([WWW], "A"), timeout=1.0, max_in_flight=100)
        client.sockets[0].setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        return (await closed_loop(client, 0.2, server))[0], client

    with server.sock:
        stats, client = uvloop.run(go())
    assert stats.sent > 100 and stats.sent == stats.successes == sum(server.names.values())
    assert client.segmented == 0 and client.notes[SEGMENTATION_OFF] == 1


@pytest.mark.parametrize("connections", [1, 2])
def test_a_stream_closed_loop_writes_bursts_and_every_query_is_answered(connections: int) -> None:
    # Over TCP and TLS the replies of one read free their slots together and the burst that
    # refills them goes to each connection in one write (one TLS record): pipelined, every query
    # answered, none left behind. (DNS over TLS to unbound: dnsmasq resets TCP connections that
    # pipeline this many queries.)
    with Unbound() as unbound:
        client = StreamClient("127.0.0.1", unbound.port, QuerySet([WWW, f"api.{DOMAIN}"], "A"), timeout=1.0,
                              max_in_flight=100, connections=connections, tls=tls_context(None))
        stats, left = uvloop.run(closed_loop(client, 0.3))
    assert stats.sent > 1000 and stats.sent == stats.successes == stats.codes["NOERROR"]
    assert not stats.errors and left == 0


def test_the_kernel_s_count_of_a_socket_s_dropped_datagrams_is_read() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with receiver, sender:
        receiver.bind(("127.0.0.1", 0))
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        inode = os.fstat(receiver.fileno()).st_ino
        assert socket_drops([inode]) == 0
        for _ in range(200):
            sender.sendto(b"x" * 40, receiver.getsockname())
        receiver.setblocking(False)
        held = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                receiver.recv(100)
                held += 1
        assert 0 < held < 200
        assert socket_drops([inode]) == 200 - held  # loopback delivers at once: the rest was dropped
        assert socket_drops([inode + 1_000_000]) == 0


def test_a_probe_notes_each_udp_client_s_own_drops_from_one_read_of_the_table() -> None:
    # Two clients of one probe, one flooded past its 4 KiB buffer by its "server": the drops are
    # noted on that client only, as the kernel counted them.
    servers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]

    async def go() -> tuple[list[dict[str, int]], int | None]:
        clients = [UdpClient("127.0.0.1", server.getsockname()[1], QuerySet([WWW], "A"), timeout=1.0,
                             max_in_flight=4, receive_buffer=4096) for server in servers]
        try:
            for _ in range(200):
                servers[0].sendto(b"y" * 40, clients[0].sockets[0].getsockname())
            netdns._count_drops(clients)
            return [dict(client.notes) for client in clients], clients[0].dropped()
        finally:
            for client in clients:
                await client.aclose()

    with servers[0], servers[1]:
        for server in servers:
            server.bind(("127.0.0.1", 0))
        notes, dropped = uvloop.run(go())
    assert dropped is not None and dropped > 0
    assert notes[0] == {netdns.DROPPED_REPLIES: dropped} and notes[1] == {}


def test_replies_the_client_s_own_socket_drops_are_counted_as_its_own() -> None:
    # A receive buffer of a few replies, 400 queries sent at once: the server answers them all,
    # the client's socket keeps a few and drops the rest, whose queries then time out.
    with Unbound() as unbound:
        async def go() -> tuple[DriverStats, int | None]:
            client = UdpClient("127.0.0.1", unbound.port, QuerySet([WWW], "A"), timeout=0.3, max_in_flight=400,
                               receive_buffer=4096)
            driver = Driver(client, Pace(qps=0, duration=0.2, timeout=0.3))
            client.driver = driver
            try:
                return await driver.run(time.perf_counter()), client.dropped()
            finally:
                await client.aclose()

        stats, dropped = uvloop.run(go())
    assert dropped is not None and dropped > 0
    assert stats.errors["timeout"] >= dropped
    monitor = GeneratorMonitor()
    monitor.start()
    monitor.dropped_replies = dropped
    generator = monitor.finish(0)
    assert generator.saturated and f"dropped {dropped} repl(ies)" in generator.reason
    assert "not the server's" in generator.reason


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_a_server_that_drops_queries_times_out_counted(protocol: str) -> None:
    with Unbound(drop=True) as unbound:
        started = time.monotonic()
        result = run_node(spec("127.0.0.1", unbound.port, qps=50, protocol=protocol,
                               request={"perRequestTimeoutInMS": 200}))
        assert time.monotonic() - started < 5  # nothing hangs
    assert result.status == "failed"
    [target] = result.targets
    assert target.requests == 50 and target.successes == 0
    assert sum(target.errors.values()) == 50
    if protocol == "udp":
        assert target.dns is not None and target.dns.timeouts == 50


def test_a_closed_port_is_reported_refused() -> None:
    from kdoctor.local.dnsmasq import free_dns_port

    result = run_node(spec("127.0.0.1", free_dns_port(), qps=20, request={"perRequestTimeoutInMS": 100}))
    [target] = result.targets
    assert target.successes == 0 and set(target.errors) <= {"refused", "timeout"}
    assert target.errors.get("refused", 0) > 0


def test_resolv_conf_nameservers(tmp_path: Any) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nsearch svc.cluster.local\nnameserver 127.0.0.1\nnameserver fe80::1%eth0\n"
                      "nameserver not-an-address\noptions ndots:5\n")
    assert netdns.read_nameservers(str(resolv)) == ["127.0.0.1", "fe80::1%eth0"]
    document = load_spec({"apiVersion": "kdoctor.io/v1beta1", "kind": "Netdns", "metadata": {"name": "d"},
                          "spec": {"target": {"targetDns": {"testIPv4": True, "testIPv6": True,
                                                            "serviceName": "kube-dns"}}}})
    assert isinstance(document, Netdns)
    node = NodeInfo(name="n")
    targets, warnings = netdns.plan(document, node, RoundContext(InventoryView(expected=[node], live=["n"])))
    assert [(t.family, t.extra["queryType"]) for t in targets] == [(4, "A"), (6, "AAAA")]
    assert warnings and "serviceName" in warnings[0]
    empty = tmp_path / "empty.conf"
    empty.write_text("search x\n")
    result = run_node(document, resolv_conf=str(empty))
    assert result.status == "failed"
    assert all("names no nameserver" in t.reason for t in result.targets)


@pytest.fixture
def link_local() -> Iterator[str]:
    """A veth link carrying fe80::53 (no DAD wait); yields the interface name."""
    name = f"kdtdns{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"], check=True)
    try:
        for link in (name, f"{name}p"):
            subprocess.run(["ip", "link", "set", link, "up"], check=True)
        subprocess.run(["ip", "-6", "addr", "add", "fe80::53/64", "dev", name, "nodad"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


def test_link_local_server_keeps_its_zone(link_local: str) -> None:
    server_address = f"fe80::53%{link_local}"
    with Dnsmasq(also_listen=["fe80::53"]) as server:
        for protocol in ("udp", "tcp"):
            result = run_node(spec(server_address, server.port, qps=50, protocol=protocol))
            (target,) = result.targets
            assert result.status == "passed", result.reason
            assert target.dns is not None and target.dns.server == server_address
            assert target.successes == target.requests == 50
        assert server.query_count() == 100


def test_three_node_round(make_cluster: Callable[..., LocalCluster], client: Client, dnsmasq: Dnsmasq,
                          broker_url: str) -> None:
    make_cluster(3)
    before = dnsmasq.wait_quiet(0.1)
    # The packaged demo spec, pointed at this test's dnsmasq.
    document = load_text(resources.files("kdoctor.examples").joinpath("demo-netdns.yaml").read_text())
    assert isinstance(document, Netdns)
    raw = document.model_dump(mode="json", by_alias=True)
    raw["spec"]["target"]["targetUser"]["port"] = dnsmasq.port
    raw["spec"]["request"]["durationInSecond"] = 2
    report = client.submit(raw).wait(timeout=60)
    assert report.verdict == "passed", report.reasons
    assert set(report.nodes) == {"node-1", "node-2", "node-3"}
    sent = 0
    for node in report.nodes.values():
        [target] = node.targets
        assert target.requests == 200 and target.successes == 200 and target.dns is not None
        assert target.dns.rcodes == {"NOERROR": 200} and target.dns.answers_checked == 200
        sent += target.requests
    assert dnsmasq.wait_quiet(0.1) - before == sent == 600
    shown = subprocess.run([sys.executable, "-m", "kdoctor", "report", report.id], env=cli_env(broker_url),
                           text=True, capture_output=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"udp/A/127.0.0.1:{dnsmasq.port}" in shown.stdout


def test_a_node_spreads_its_queries_over_processes_and_counts_stay_exact(
        make_cluster: Callable[..., LocalCluster], client: Client, dnsmasq: Dnsmasq) -> None:
    # One process is trusted with 20 queries/s here, so 60/s need three; dnsmasq's log counts
    # exactly what the merged result says was sent.
    make_cluster(1, env={"KDOCTOR_GENERATOR_PROCESSES": "3", "KDOCTOR_GENERATOR_LOOP_QPS": "20"})
    before = dnsmasq.wait_quiet(0.1)
    report = client.submit(spec("127.0.0.1", dnsmasq.port, qps=60, duration=2).model_dump(
        mode="json", by_alias=True)).wait(timeout=60)
    assert report.verdict == "passed", report.reasons
    node = report.nodes["node-1"]
    [target] = node.targets
    assert target.generator_processes == 3 and node.generator is not None and node.generator.processes == 3
    assert target.requests == target.successes == 120 == dnsmasq.wait_quiet(0.1) - before
    assert target.dns is not None and target.dns.rcodes == {"NOERROR": 120} and target.dns.timeouts == 0
