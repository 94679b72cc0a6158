"""The agent survives the network: a real agent process flooded, stalled, starved and crowded over
real sockets keeps bounded memory, closes what it must, says so, and keeps answering probes."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import psutil
import pytest

from kdoctor.workers.agent_process import AgentProcess

LIMITS = ["--idle-seconds", "1", "--header-seconds", "1", "--max-delay-ms", "300", "--max-connections", "60"]


@pytest.fixture
def agent() -> Iterator[AgentProcess]:
    process = AgentProcess("node-x", ["127.0.0.1"], 0, LIMITS)
    process.start()
    yield process
    process.stop()


def stats(agent: AgentProcess) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{agent.port}/kdoctor/stats", timeout=10) as answer:
        found: dict[str, object] = json.load(answer)
    return found


def answers(agent: AgentProcess, path: str = "/") -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{agent.port}{path}", timeout=10) as answer:
        return int(answer.status)


def rss_mb(agent: AgentProcess) -> float:
    assert agent.process is not None
    return float(psutil.Process(agent.process.pid).memory_info().rss) / 2**20


def closed_by_peer(sock: socket.socket, wait: float = 10.0) -> bool:
    """Whether the agent closed ``sock`` (reads until EOF, discarding what was sent)."""
    sock.settimeout(wait)
    try:
        while sock.recv(65536):
            pass
    except (TimeoutError, OSError):
        return False
    return True


def test_pipelined_requests_never_read_do_not_grow_memory(agent: AgentProcess) -> None:
    before = rss_mb(agent)
    flood = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 20_000  # 540 KB per write
    sock = socket.create_connection(("127.0.0.1", agent.port))
    sock.settimeout(2.0)
    sent = 0
    with contextlib.suppress(TimeoutError, OSError):
        while sent < 40 * 2**20:  # the experiment's 40 MB; the agent stops reading long before
            sent += sock.send(flood)
    grown = rss_mb(agent) - before
    assert sent < 40 * 2**20, "the agent kept reading a connection whose answers nobody reads"
    assert grown < 30, f"agent RSS grew {grown:.0f} MB"
    assert answers(agent) == 200  # everyone else is still served
    assert any("reading paused" in why for why in stats(agent)["shed"])  # type: ignore[union-attr]
    sock.close()


def test_delays_are_capped_and_dropped_with_their_connection(agent: AgentProcess) -> None:
    assert answers(agent, "/?delay=1e308") == 200  # answered at all: capped (300 ms here, 60 s by default)
    with pytest.raises(urllib.error.HTTPError) as refused:
        answers(agent, "/?delay=nan")
    assert refused.value.code == 400
    before = rss_mb(agent)
    for _ in range(20):  # pipelined delayed requests, then the connection goes away
        sock = socket.create_connection(("127.0.0.1", agent.port))
        sock.sendall(b"GET /?delay=600000 HTTP/1.1\r\nHost: x\r\n\r\n" * 2000)
        sock.close()
    time.sleep(1)
    assert rss_mb(agent) - before < 20
    assert answers(agent) == 200


def test_idle_slow_and_oversized_connections_are_closed_and_counted(agent: AgentProcess) -> None:
    idle = [socket.create_connection(("127.0.0.1", agent.port)) for _ in range(20)]
    slow = [socket.create_connection(("127.0.0.1", agent.port)) for _ in range(20)]
    for sock in slow:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Slow: ")  # and never the rest: slowloris
    assert all(closed_by_peer(sock) for sock in idle + slow)
    long_url = socket.create_connection(("127.0.0.1", agent.port))
    long_url.sendall(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n")
    long_url.settimeout(10)
    assert long_url.recv(100).startswith(b"HTTP/1.1 414")
    shed = stats(agent)["shed"]
    assert isinstance(shed, dict)
    assert shed.get("idle for 1 s", 0) >= 20 and shed.get("request headers not complete after 1 s", 0) >= 20
    assert shed.get("URL too long") == 1
    for sock in [*idle, *slow, long_url]:
        sock.close()


def test_past_the_connection_cap_the_oldest_idle_connection_goes(agent: AgentProcess) -> None:
    crowd = [socket.create_connection(("127.0.0.1", agent.port)) for _ in range(80)]
    time.sleep(0.5)
    assert answers(agent) == 200  # a new connection is still served: an idle one made room
    assert sum(closed_by_peer(sock, wait=3.0) for sock in crowd[:30]) >= 20  # the oldest went first
    shed = stats(agent)["shed"]
    assert isinstance(shed, dict) and shed.get("over the connection cap: oldest idle connection closed", 0) >= 20
    for sock in crowd:
        sock.close()
