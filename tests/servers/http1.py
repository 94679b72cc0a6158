"""An HTTP/1.1 test server that records what it receives and misbehaves on request.

* ``/status/NNN`` answers NNN; ``/sleep/MS`` answers after MS milliseconds; anything else 200.
* :meth:`Http1Server.stall_at` makes the server answer nothing for a while: every response due
  in ``[start, start + seconds)`` is held until the stall ends (a GC pause, a stuck backend).
* ``count`` is the server's own count of complete requests, ``body_bytes`` of their bodies' bytes;
  ``requests`` keeps the last ones.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass, field

import httptools

from tests.servers.base import ThreadedServer


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _Proto(asyncio.Protocol):
    def __init__(self, server: Http1Server) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current = Received("", "")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.current = Received("", url.decode())

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.current.body += body

    def on_message_complete(self) -> None:
        req = self.current
        req.method = self.parser.get_method().decode()
        server = self.server
        server.count += 1
        server.body_bytes += len(req.body)
        server.requests.append(req)
        status, delay = 200, 0.0
        if req.path.startswith("/status/"):
            status = int(req.path.rsplit("/", 1)[1])
        elif req.path.startswith("/sleep/"):
            delay = int(req.path.rsplit("/", 1)[1]) / 1000.0
        now = time.monotonic()
        if server.stall_start <= now < server.stall_end:
            delay = max(delay, server.stall_end - now)
        body = b"ok\n"
        payload = (f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        if delay:
            asyncio.get_running_loop().call_later(delay, self._write, payload)
        else:
            self._write(payload)

    def _write(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)


class Http1Server(ThreadedServer):
    """See the module docstring."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(ssl_context, host)
        self.count = 0
        self.body_bytes = 0
        """Request body bytes received, over every request (``requests`` keeps the last 100)."""
        self.requests: deque[Received] = deque(maxlen=100)
        self.stall_start = float("inf")
        self.stall_end = float("inf")

    def protocol(self) -> asyncio.Protocol:
        return _Proto(self)

    def stall_at(self, delay: float, seconds: float) -> None:
        """Stall every response for ``seconds``, starting ``delay`` seconds from now."""
        self.stall_start = time.monotonic() + delay
        self.stall_end = self.stall_start + seconds
