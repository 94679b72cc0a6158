"""The agent server: the small HTTP endpoint on every node that other nodes probe (NetReach).

It runs in its own process (own interpreter, own event loop), so a probe running on the same
node never slows the answers other nodes measure, and the Celery worker's threads never share a
GIL with it.

=======================  ===================================================================
``GET /``                ``{"node": ..., "ok": true}``: what NetReach requests
``GET /?delay=MS``       the same after MS milliseconds (reproduces a slow node)
``GET /healthz``         ``ok``
``GET /kdoctor/stats``   probe requests served since start, in total and per client address
any other method         answered like GET (so kdoctor's POST/PUT/... tests work against it)
=======================  ===================================================================

Keep-alive HTTP/1.1 on uvloop with the llhttp parser; every response is a handful of bytes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import cast
from urllib.parse import parse_qs, urlsplit

import httptools

from kdoctor.workers import lifetime

__all__ = ["AgentStats", "serve"]


class AgentStats:
    """Counters the agent keeps; small and flat so the stats answer is cheap."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.requests = 0
        self.by_peer: Counter[str] = Counter()

    def body(self) -> bytes:
        return json.dumps(
            {"node": self.node, "requests": self.requests, "byPeer": dict(self.by_peer)}
        ).encode()


class _AgentProtocol(asyncio.Protocol):
    __slots__ = ("ok_body", "parser", "peer", "stats", "transport", "url")

    def __init__(self, stats: AgentStats, ok_body: bytes) -> None:
        self.stats = stats
        self.ok_body = ok_body
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only look-alikes.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(400, b"bad request\n", keep_alive=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        url, self.url = self.url, b""
        keep = self.parser.should_keep_alive()
        path = url.split(b"?", 1)[0]
        if path == b"/healthz":
            self._write(200, b"ok\n", keep)
        elif path == b"/kdoctor/stats":
            self._write(200, self.stats.body(), keep)
        else:
            # Only probe traffic is counted, so the counts compare exactly with what probes sent.
            self.stats.requests += 1
            self.stats.by_peer[self.peer] += 1
            delay = _delay_of(url)
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self._write, 200, self.ok_body, keep)
            else:
                self._write(200, self.ok_body, keep)

    def _write(self, status: int, body: bytes, keep_alive: bool) -> None:
        if self.transport is None:
            return
        reason = b"OK" if status == 200 else b"Bad Request"
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
            status, reason, len(body))
        if not keep_alive:
            head += b"Connection: close\r\n"
        self.transport.write(head + b"\r\n" + body)
        if not keep_alive:
            self.transport.close()


def _delay_of(url: bytes) -> float:
    if b"delay=" not in url:
        return 0.0
    query = parse_qs(urlsplit(url.decode("latin-1")).query)
    try:
        return max(0.0, float(query.get("delay", ["0"])[0]) / 1000.0)
    except ValueError:
        return 0.0


async def start_servers(
    node: str, addresses: Sequence[str], port: int
) -> tuple[list[asyncio.Server], int, AgentStats]:
    """Listen on every address, on one port (chosen by the first bind when ``port`` is 0)."""
    loop = asyncio.get_running_loop()
    stats = AgentStats(node)
    ok_body = json.dumps({"node": node, "ok": True}).encode()
    servers = []
    for address in addresses:
        server = await loop.create_server(
            lambda: _AgentProtocol(stats, ok_body), host=address, port=port, reuse_address=True,
            backlog=4096,
        )
        servers.append(server)
        if port == 0:
            port = int(server.sockets[0].getsockname()[1])
    return servers, port, stats


def serve(node: str, addresses: Sequence[str], port: int, ready: Connection | None = None) -> None:
    """Process entry point: serve until SIGTERM or until the parent process dies.

    Sends ``("ready", port)`` or ``("error", message)`` through ``ready``.
    """
    lifetime.die_with_parent()
    import uvloop

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        try:
            servers, bound, _ = await start_servers(node, addresses, port)
        except OSError as exc:
            if ready is not None:
                ready.send(("error", f"agent cannot listen on {list(addresses)} port {port}: {exc}"))
            return
        if ready is not None:
            ready.send(("ready", bound))
        await stop.wait()
        for server in servers:
            server.close()

    uvloop.run(main())
    sys.exit(0)
