"""An HTTP/2 test server on the h2 library: h2c prior knowledge, or TLS with ALPN ``h2``.

Answers every request 200 with the request body echoed (or ``ok``); ``count`` and ``requests``
record what arrived, with the pseudo-headers.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, StreamEnded

from tests.servers.base import ThreadedServer
from tests.servers.http1 import Received


class _Proto(asyncio.Protocol):
    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Received] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.h2.initiate_connection()
        self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, RequestReceived):
                headers = {str(k): str(v) for k, v in event.headers}
                self.streams[event.stream_id] = Received(headers.get(":method", ""), headers.get(":path", ""),
                                                         headers)
            elif isinstance(event, DataReceived):
                self.streams[event.stream_id].body += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                req = self.streams.pop(event.stream_id)
                self.server.count += 1
                self.server.requests.append(req)
                body = req.body or b"ok\n"
                self.h2.send_headers(event.stream_id, [(":status", "200"), ("content-length", str(len(body)))])
                self.h2.send_data(event.stream_id, body, end_stream=True)
        if self.transport is not None:
            self.transport.write(self.h2.data_to_send())


class H2Server(ThreadedServer):
    """See the module docstring."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2"])
        super().__init__(ssl_context)
        self.count = 0
        self.requests: deque[Received] = deque(maxlen=100)

    def protocol(self) -> asyncio.Protocol:
        return _Proto(self)
