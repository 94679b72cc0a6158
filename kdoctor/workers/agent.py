"""The agent server: the small HTTP endpoint on every node that other nodes probe (NetReach).

It runs in its own process (own interpreter, own event loop), so a probe running on the same
node never slows the answers other nodes measure, and the Celery worker's threads never share a
GIL with it. The worker starts it, asks it ``/healthz`` at every heartbeat and restarts it if it
dies (:mod:`kdoctor.workers.agent_process`).

=======================  ===================================================================
``GET /``                ``{"node": ..., "ok": true}``: what NetReach requests
``GET /?delay=MS``       the same after MS milliseconds (reproduces a slow node), at most
                         :data:`MAX_DELAY_MS`
``GET /healthz``         ``ok``
``GET /kdoctor/stats``   probe requests served since start, in total and per client address,
                         and the connections shed (``shed``: why, how many)
any other method         answered like GET (so kdoctor's POST/PUT/... tests work against it)
=======================  ===================================================================

Keep-alive HTTP/1.1 on uvloop with the llhttp parser; every response is a handful of bytes.

**Nobody can knock it over.** It is probed by every node, through Services and an Ingress, so it
must take whatever the network sends, and its memory and file descriptors are bounded:

==============================  ==============================================================
what a peer does                what the agent does
==============================  ==============================================================
pipelines requests and never    the write buffer is capped: past it the agent stops reading that
reads the answers               connection (TCP pushes back on the sender); a connection with more
                                than :data:`MAX_PIPELINED` answers owed is closed
asks for ``delay=1e308``        the delay is capped at :data:`MAX_DELAY_MS`; a non-number is 400
sends a URL or headers that     past :data:`MAX_URL_BYTES` / :data:`MAX_HEADER_BYTES`: 414 / 431,
never end                       closed
opens and goes quiet            closed after :data:`IDLE_SECONDS` idle; a request whose headers
(slowloris)                     are not complete :data:`HEADER_SECONDS` after it began: closed
opens more and more             past :data:`MAX_CONNECTIONS` the oldest idle one is closed for
                                each new one (the new one, when none is idle)
==============================  ==============================================================

Every shed connection is counted (``/kdoctor/stats``) and logged, one line per reason every
:data:`LOG_EVERY_SECONDS` at most.

**No authentication, on purpose.** Every node, every Service and the Ingress must reach it
exactly as they reach a workload, without credentials that would have to be spread to every
prober and through the Ingress; and it holds nothing worth protecting: it changes no state,
serves no secret, and reveals only the node name and request counts per peer address (addresses
the cluster network shows anyway). What must be protected (Redis, Flower, kdoctor serve) is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import resource
import signal
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qs, urlsplit

import httptools

from kdoctor import lifetime

__all__ = ["MAX_DELAY_MS", "AgentStats", "Limits", "main", "serve"]

log = logging.getLogger("kdoctor.agent")

MAX_DELAY_MS = 60_000
"""The longest ``?delay=`` honoured (ms): longer than any probe's timeout, short enough that a
flood of delayed requests is answered (and its memory freed) within a minute."""
MAX_PIPELINED = 64
"""Answers that may wait on one connection before the agent stops reading it."""
WRITE_BUFFER_BYTES = 64 * 1024
"""Unsent bytes one connection may hold before the agent stops reading it."""
MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
IDLE_SECONDS = 30.0
"""A keep-alive connection without a request for this long is closed (NetReach's are busy)."""
HEADER_SECONDS = 10.0
"""A request must have all its headers this long after its first byte."""
MAX_CONNECTIONS = 10_000
"""Open connections at most (fewer when the file descriptor limit is lower)."""
LOG_EVERY_SECONDS = 10.0
_SWEEP_SECONDS = 1.0


@dataclass(frozen=True)
class Limits:
    """The bounds above; the worker runs the agent with the defaults (tests shorten the times)."""

    max_delay_ms: float = MAX_DELAY_MS
    idle_seconds: float = IDLE_SECONDS
    header_seconds: float = HEADER_SECONDS
    max_connections: int = MAX_CONNECTIONS


class AgentStats:
    """Counters the agent keeps; small and flat so the stats answer is cheap."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.requests = 0
        self.by_peer: Counter[str] = Counter()
        self.shed: Counter[str] = Counter()
        self._logged: dict[str, tuple[float, int]] = {}

    def body(self) -> bytes:
        return json.dumps({"node": self.node, "requests": self.requests, "byPeer": dict(self.by_peer),
                           "shed": dict(self.shed)}).encode()

    def shed_one(self, why: str) -> None:
        """Count a connection shed for ``why`` and log it (rate-limited per reason)."""
        self.shed[why] += 1
        now = time.monotonic()
        last, count = self._logged.get(why, (-math.inf, 0))
        if now - last >= LOG_EVERY_SECONDS:
            log.warning("agent %s: shedding connections (%s): %d so far, %d since the last report",
                        self.node, why, self.shed[why], self.shed[why] - count)
            self._logged[why] = (now, self.shed[why])


class _Connections:
    """Every open connection in arrival order, for the idle sweep and the connection cap."""

    def __init__(self, stats: AgentStats, limits: Limits) -> None:
        self.stats = stats
        self.limits = limits
        self.limit = connection_limit(limits.max_connections)
        self.open: dict[_AgentProtocol, None] = {}  # insertion-ordered: oldest first

    def admit(self, conn: _AgentProtocol) -> bool:
        """Make room for ``conn``: ``False`` when it must be refused (nothing idle to close)."""
        if len(self.open) >= self.limit:
            victim = next((c for c in self.open if c.idle()), None)
            if victim is None:
                self.stats.shed_one("over the connection cap, none idle: new connection refused")
                return False
            self.stats.shed_one("over the connection cap: oldest idle connection closed")
            victim.abort()
        self.open[conn] = None
        return True

    def sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self.open):
            why = conn.overdue(now)
            if why:
                self.stats.shed_one(why)
                conn.abort()


class _Answer:
    """One answer owed on a connection: its bytes once ready (a delayed one waits for its timer)."""

    __slots__ = ("close", "data", "timer")

    def __init__(self, data: bytes | None, close: bool) -> None:
        self.data = data
        self.close = close
        self.timer: asyncio.TimerHandle | None = None


class _AgentProtocol(asyncio.Protocol):
    __slots__ = ("answers", "conns", "header_bytes", "last_active", "ok_body", "parser", "paused", "peer",
                 "request_started", "stats", "transport", "url", "writing_paused")

    def __init__(self, stats: AgentStats, ok_body: bytes, conns: _Connections) -> None:
        self.stats = stats
        self.ok_body = ok_body
        self.conns = conns
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.peer = ""
        self.header_bytes = 0
        self.request_started = 0.0  # when the request being parsed began; 0 between requests
        self.last_active = time.monotonic()
        self.answers: deque[_Answer] = deque()  # in request order (HTTP/1.1 pipelining)
        self.paused = False
        self.writing_paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only look-alikes.
        self.transport = cast(asyncio.Transport, transport)
        if not self.conns.admit(self):
            self.transport.abort()
            self.transport = None
            return
        self.transport.set_write_buffer_limits(high=WRITE_BUFFER_BYTES)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if not self.request_started:
            self.request_started = self.last_active
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(400, b"bad request\n")

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._flow()

    def connection_lost(self, exc: Exception | None) -> None:
        self.abort()  # delayed answers nobody will read: free them now

    # -- httptools callbacks ----------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL_BYTES:
            self.stats.shed_one("URL too long")
            self._fail(414, b"URL too long\n")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            self.stats.shed_one("headers too large")
            self._fail(431, b"headers too large\n")

    def on_headers_complete(self) -> None:
        self.request_started = 0.0  # the rest (a body) is not waited for

    def on_message_complete(self) -> None:
        url, self.url = self.url, b""
        self.header_bytes = 0
        self.request_started = 0.0
        if self.transport is None:
            return
        keep = self.parser.should_keep_alive()
        path = url.split(b"?", 1)[0]
        if path == b"/healthz":
            self._answer(200, b"ok\n", keep)
        elif path == b"/kdoctor/stats":
            self._answer(200, self.stats.body(), keep)
        else:
            delay = _delay_of(url, self.conns.limits.max_delay_ms)
            if delay is None:
                self._answer(400, b"delay must be a number of milliseconds\n", keep)
                return
            # Only probe traffic is counted, so the counts compare exactly with what probes sent.
            self.stats.requests += 1
            self.stats.by_peer[self.peer] += 1
            if len(self.answers) >= MAX_PIPELINED:
                # One read can carry thousands of pipelined requests; past the bound the peer is
                # not waiting for answers, it is flooding.
                self.stats.shed_one(f"more than {MAX_PIPELINED} requests unanswered on one connection: closed")
                self.abort()
                return
            if delay > 0:
                answer = _Answer(None, not keep)
                answer.timer = asyncio.get_running_loop().call_later(delay, self._ready, answer, keep)
                self.answers.append(answer)
                self._flow()
            else:
                self._answer(200, self.ok_body, keep)

    # -- answers ----------------------------------------------------------------------------
    def _ready(self, answer: _Answer, keep: bool) -> None:
        answer.data, answer.timer = _response(200, self.ok_body, keep), None
        self._drain()

    def _answer(self, status: int, body: bytes, keep: bool) -> None:
        self.answers.append(_Answer(_response(status, body, keep), not keep))
        self._drain()

    def _drain(self) -> None:
        """Write the answers that are ready, in request order; close after a ``Connection: close``."""
        while self.answers and self.answers[0].data is not None and self.transport is not None:
            answer = self.answers.popleft()
            assert answer.data is not None
            self.transport.write(answer.data)
            if answer.close:
                self.transport.close()
                return
        self._flow()

    def _flow(self) -> None:
        """Stop reading while too many answers wait or the peer does not read what was written."""
        if self.transport is None:
            return
        behind = len(self.answers) >= MAX_PIPELINED or self.writing_paused
        if behind and not self.paused:
            self.paused = True
            self.transport.pause_reading()
            self.stats.shed_one("reading paused: the peer does not read its answers")
        elif not behind and self.paused:
            self.paused = False
            self.transport.resume_reading()

    def _fail(self, status: int, body: bytes) -> None:
        if self.transport is None:
            return
        self.transport.write(_response(status, body, False))
        self.transport.close()
        self.transport = None

    # -- the sweeper's questions --------------------------------------------------------------
    def idle(self) -> bool:
        """No request in progress and nothing owed."""
        return not self.request_started and not self.answers

    def overdue(self, now: float) -> str:
        """Why this connection should be closed now, or ``""``."""
        limits = self.conns.limits
        if self.request_started and now - self.request_started > limits.header_seconds:
            return f"request headers not complete after {limits.header_seconds:g} s"
        if self.idle() and now - self.last_active > limits.idle_seconds:
            return f"idle for {limits.idle_seconds:g} s"
        return ""

    def abort(self) -> None:
        """Drop the connection now; what it still had queued or pipelined is dropped with it."""
        if self.transport is not None:
            self.transport.abort()
            self.transport = None  # the rest of a read being parsed is ignored
        self.conns.open.pop(self, None)
        for answer in self.answers:
            if answer.timer is not None:
                answer.timer.cancel()
        self.answers.clear()


def _response(status: int, body: bytes, keep_alive: bool) -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}
    head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        status, reason.get(status, b"Error"), len(body))
    if not keep_alive:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


def _delay_of(url: bytes, cap_ms: float) -> float | None:
    """The requested delay in seconds (0 without one, capped at ``cap_ms``); None if not a number."""
    if b"delay=" not in url:
        return 0.0
    query = parse_qs(urlsplit(url.decode("latin-1")).query)
    try:
        millis = float(query.get("delay", ["0"])[0])
    except ValueError:
        return None
    if math.isnan(millis):
        return None
    return min(max(0.0, millis), cap_ms) / 1000.0


def connection_limit(wanted: int) -> int:
    """``wanted``, or fewer when the file descriptor limit leaves less room."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - 64))


async def start_servers(
    node: str, addresses: Sequence[str], port: int, limits: Limits | None = None,
) -> tuple[list[asyncio.Server], int, AgentStats]:
    """Listen on every address, on one port (chosen by the first bind when ``port`` is 0)."""
    loop = asyncio.get_running_loop()
    stats = AgentStats(node)
    conns = _Connections(stats, limits or Limits())
    ok_body = json.dumps({"node": node, "ok": True}).encode()
    servers = []
    for address in addresses:
        server = await loop.create_server(
            lambda: _AgentProtocol(stats, ok_body, conns), host=address, port=port, reuse_address=True,
            backlog=4096,
        )
        servers.append(server)
        if port == 0:
            port = int(server.sockets[0].getsockname()[1])

    def sweep() -> None:
        conns.sweep()
        loop.call_later(_SWEEP_SECONDS, sweep)

    loop.call_later(_SWEEP_SECONDS, sweep)
    return servers, port, stats


def serve(node: str, addresses: Sequence[str], port: int, limits: Limits | None = None) -> int:
    """Process entry point: serve until SIGTERM or until the parent process dies.

    Prints ``ready PORT`` (or ``error MESSAGE``) on one line of standard output once it listens
    (or cannot), for the worker that started it; returns the exit code.
    """
    lifetime.die_with_parent()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvloop

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        try:
            servers, bound, _ = await start_servers(node, addresses, port, limits)
        except OSError as exc:
            print(f"error agent cannot listen on {list(addresses)} port {port}: {exc}", flush=True)
            return 2
        print(f"ready {bound}", flush=True)
        await stop.wait()
        for server in servers:
            server.close()
        return 0

    return uvloop.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kdoctor.workers.agent --node N --port P --address A [--address B]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="kdoctor-agent", description="kdoctor's agent server (started by a worker)")
    parser.add_argument("--node", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", action="append", required=True)
    defaults = Limits()
    # The worker passes none of these: they exist so that tests need not wait half a minute.
    parser.add_argument("--max-delay-ms", type=float, default=defaults.max_delay_ms)
    parser.add_argument("--idle-seconds", type=float, default=defaults.idle_seconds)
    parser.add_argument("--header-seconds", type=float, default=defaults.header_seconds)
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections)
    args = parser.parse_args(argv)
    limits = Limits(args.max_delay_ms, args.idle_seconds, args.header_seconds, args.max_connections)
    return serve(args.node, args.address, args.port, limits)


if __name__ == "__main__":
    sys.exit(main())
