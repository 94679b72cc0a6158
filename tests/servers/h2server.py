"""An HTTP/2 test server on the h2 library: h2c prior knowledge, or TLS with ALPN ``h2``.

Answers every request 200 with the request body echoed (or ``ok``), except on these paths:

* ``/status/NNN`` answers NNN (a status outside HPACK's static table, such as 201, goes out as a
  literal); ``/sleep/MS`` answers after MS milliseconds; ``/big/N`` answers N bytes, sent as the
  client's flow-control windows allow; ``/trailers`` ends the response with a trailer block;
  ``/bigheaders`` sends a 17 KB header, so the block spans HEADERS + CONTINUATION; ``/early``
  sends a 103 before the 200; ``/reset`` resets the stream (INTERNAL_ERROR).

Misbehaviour of the connection, chosen per server:

* ``initial_window``: the SETTINGS_INITIAL_WINDOW_SIZE the server gives the client (its request
  bodies then wait for the server's WINDOW_UPDATEs);
* ``goaway_after``: after that many requests on a connection, GOAWAY with the last-stream-id of
  the last of them, *then* its response; later streams are ignored (never processed), and the
  connection is half-closed once answered; 0: GOAWAY with last-stream-id 0 as soon as it opens;
* ``lower_streams``: ``(after, limit)``: once ``after`` requests arrived on a connection, lower
  SETTINGS_MAX_CONCURRENT_STREAMS to ``limit``; ``max_open_after_lower`` is the most streams the
  client had open at once after acknowledging it, ``violations`` the streams beyond the limit;
* ``ping``: send a PING when a connection opens; ``pings_acked`` counts the answers.

``count`` and ``requests`` record what was processed, with the pseudo-headers; ``resets`` the
error codes of the client's RST_STREAM frames; ``connections`` the connections accepted.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    DataReceived,
    PingAckReceived,
    RequestReceived,
    SettingsAcknowledged,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from tests.servers.base import ThreadedServer
from tests.servers.http1 import Received

BIG_HEADER = "X" * 17_000  # 8-bit Huffman codes: 17 KB, past one 16 KiB frame (hpack codes it slowly)


class _Proto(asyncio.Protocol):
    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Received] = {}
        self.outgoing: dict[int, tuple[bytes, int, list[tuple[str, str]] | None]] = {}
        self.processed = 0
        self.last_sid: int | None = None  # set once GOAWAY went out
        self.hung_up = False
        self.open = 0
        self.lowered = False
        self.lowered_acked = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections += 1
        if self.server.initial_window is not None:
            # In the server preface itself (update_settings would send a second SETTINGS frame).
            self.h2.local_settings = Settings(client=False, initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                SettingCodes.INITIAL_WINDOW_SIZE: self.server.initial_window})
        self.h2.initiate_connection()
        if self.server.ping:
            self.h2.ping(b"kdoctor!")
        self.flush()
        if self.server.goaway_after == 0:  # refuse everything: GOAWAY before any stream
            self.goaway(0)
            self.hang_up()

    def hang_up(self) -> None:
        """Half-close after GOAWAY and go on reading: a full close with the client's frames
        unread would reset the connection and could destroy the GOAWAY before it is read."""
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()
        elif self.transport is not None:
            self.transport.close()

    def goaway(self, last: int) -> None:
        """Send GOAWAY behind h2's back, so that h2 still lets us answer streams up to ``last``."""
        self.flush()
        frame = GoAwayFrame(0)
        frame.last_stream_id = last
        frame.error_code = 0
        if self.transport is not None:
            self.transport.write(frame.serialize())
        self.last_sid = last

    def flush(self) -> None:
        if self.transport is not None:
            self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        if self.hung_up:
            return
        try:
            events = self.h2.receive_data(data)
        except ProtocolError:
            self.server.violations += 1
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            sid = getattr(event, "stream_id", 0)
            if self.last_sid is not None and sid > self.last_sid:
                continue  # after our GOAWAY: never processed, as promised
            if isinstance(event, RequestReceived):
                headers = {str(k): str(v) for k, v in event.headers}
                self.streams[sid] = Received(headers.get(":method", ""), headers.get(":path", ""), headers)
                self.open += 1
                if self.lowered_acked:
                    limit = self.server.lower_streams[1] if self.server.lower_streams else 0
                    self.server.max_open_after_lower = max(self.server.max_open_after_lower, self.open)
                    if self.open > limit:
                        self.server.violations += 1
            elif isinstance(event, DataReceived):
                self.streams[sid].body += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, sid)
            elif isinstance(event, StreamEnded):
                self.request_done(sid)
            elif isinstance(event, StreamReset):
                self.server.resets.append(int(event.error_code))
                if self.streams.pop(sid, None) is not None or self.outgoing.pop(sid, None) is not None:
                    self.open -= 1
            elif isinstance(event, WindowUpdated):
                for stream in list(self.outgoing):
                    self.send_more(stream)
            elif isinstance(event, SettingsAcknowledged) and self.lowered:
                self.lowered_acked = True
            elif isinstance(event, PingAckReceived):
                self.server.pings_acked += 1
        self.flush()
        if self.last_sid is not None and not self.outgoing and not self.hung_up:
            self.hung_up = True
            self.hang_up()

    def request_done(self, sid: int) -> None:
        req = self.streams[sid]
        self.server.count += 1
        self.server.requests.append(req)
        self.processed += 1
        server = self.server
        if server.lower_streams and self.processed == server.lower_streams[0]:
            self.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: server.lower_streams[1]})
            self.lowered = True
        if server.goaway_after is not None and self.processed == server.goaway_after:
            # GOAWAY first, the response after it: the client must still finish this stream.
            self.goaway(sid)
        path = req.path
        if path.startswith("/sleep/"):
            asyncio.get_running_loop().call_later(int(path.split("/")[2]) / 1000, self.respond, sid)
        else:
            self.respond(sid)

    def respond(self, sid: int) -> None:
        req = self.streams.pop(sid, None)
        if req is None:
            return  # reset by the client meanwhile
        path = req.path
        status = "200"
        body = req.body or b"ok\n"
        headers = [("content-length", "")]
        trailers: list[tuple[str, str]] | None = None
        try:
            if path.startswith("/status/"):
                status = path.split("/")[2]
            elif path.startswith("/big/"):
                body = b"b" * int(path.split("/")[2])
            elif path == "/trailers":
                trailers = [("x-checksum", "42")]
                headers = []
            elif path == "/bigheaders":
                headers.append(("x-big", BIG_HEADER))
            elif path == "/early":
                self.h2.send_headers(sid, [(":status", "103"), ("link", "</style.css>; rel=preload")])
            elif path == "/reset":
                self.h2.reset_stream(sid, ErrorCodes.INTERNAL_ERROR)
                self.open -= 1
                self.flush()
                return
            headers = [(":status", status), *((k, str(len(body)) if k == "content-length" else v)
                                              for k, v in headers)]
            self.h2.send_headers(sid, headers)
        except StreamClosedError:
            return
        self.outgoing[sid] = (body, 0, trailers)
        self.send_more(sid)
        self.flush()

    def send_more(self, sid: int) -> None:
        """Send as much of a response body as the client's windows allow."""
        body, at, trailers = self.outgoing[sid]
        try:
            while at < len(body):
                chunk = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size,
                            len(body) - at)
                if chunk <= 0:
                    self.outgoing[sid] = (body, at, trailers)
                    return
                end = at + chunk
                self.h2.send_data(sid, body[at:end], end_stream=end == len(body) and trailers is None)
                at = end
            if trailers is not None:
                self.h2.send_headers(sid, trailers, end_stream=True)
        except StreamClosedError:
            pass
        del self.outgoing[sid]
        self.open -= 1


class H2Server(ThreadedServer):
    """See the module docstring."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, *, initial_window: int | None = None,
                 goaway_after: int | None = None, lower_streams: tuple[int, int] | None = None,
                 ping: bool = False) -> None:
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2"])
        super().__init__(ssl_context)
        self.initial_window = initial_window
        self.goaway_after = goaway_after
        self.lower_streams = lower_streams
        self.ping = ping
        self.count = 0
        self.requests: deque[Received] = deque(maxlen=100)
        self.resets: list[int] = []
        self.connections = 0
        self.max_open_after_lower = 0
        self.violations = 0
        self.pings_acked = 0

    def protocol(self) -> asyncio.Protocol:
        return _Proto(self)
