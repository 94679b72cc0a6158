"""An HTTP/2 client for the pressure driver, on the ``h2`` state machine (python-hyper).

============================  ==========================================================
What                          How
============================  ==========================================================
framing and HPACK             ``h2.connection.H2Connection`` (pure Python, maintained)
connections                   ``connections`` multiplexed connections (default 1), opened
                              lazily; requests are streams on them
concurrency                   at most ``max_streams`` requests in flight over all connections,
                              and never more than the server's SETTINGS_MAX_CONCURRENT_STREAMS
                              on one connection
TLS                           ALPN must select ``h2``; a server that picks anything else is
                              counted as error class ``alpn``
cleartext                     h2c with prior knowledge (the client preface straight away; no
                              HTTP/1.1 Upgrade dance)
timeouts                      a FIFO of deadlines swept by the driver; a timed-out stream is
                              reset with CANCEL, the connection stays up
bytes received                DATA payload bytes (frames and headers are not counted)
============================  ==========================================================

h2 does every frame in Python, so this client is several times slower per request than the
HTTP/1.1 one (bench/http measures how much); it exists for correctness at moderate rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error

from kdoctor.probes.httpreq import Dialer, HttpTarget, classify_error, default_success, tls_context

if TYPE_CHECKING:
    from kdoctor.probes.pressure import Driver

__all__ = ["Http2Pool"]

# Streams queued on a connection that is still being opened (its SETTINGS are not known yet).
_PENDING_LIMIT = 100


class _Req:
    """One request: its schedule, its stream and what came back."""

    __slots__ = ("body_at", "conn", "done", "due", "nbytes", "sent", "sid", "status")

    def __init__(self, conn: _H2Conn, due: float, sent: float) -> None:
        self.conn = conn
        self.due = due
        self.sent = sent
        self.sid = 0
        self.status = 0
        self.nbytes = 0
        self.body_at = 0
        self.done = False


class _H2Conn(asyncio.Protocol):
    """One HTTP/2 connection carrying many streams."""

    def __init__(self, pool: Http2Pool) -> None:
        self.pool = pool
        # Validating and normalizing every header in pure Python costs about a third of the CPU per
        # request; what is sent is built here and what is read is only :status.
        self.h2 = H2Connection(H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False, validate_inbound_headers=False, normalize_inbound_headers=False))
        self.transport: asyncio.Transport | None = None
        self.ready = False
        self.dead = False
        self.streams: dict[int, _Req] = {}
        self.pending: list[_Req] = []
        self.blocked: list[_Req] = []

    def capacity(self) -> int:
        """How many more streams this connection takes now."""
        if self.dead:
            return 0
        if not self.ready:
            return _PENDING_LIMIT - len(self.pending)
        limit = int(self.h2.remote_settings.max_concurrent_streams)
        return limit - len(self.streams) - len(self.pending)

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = cast(asyncio.Transport, transport)
        if self.dead:
            tcp.abort()
            return
        self.transport = tcp
        if self.pool.dialer.tls:
            sslobj = tcp.get_extra_info("ssl_object")
            chosen = sslobj.selected_alpn_protocol() if sslobj is not None else None
            if chosen != "h2":
                self.fail("alpn")
                return
        self.h2.initiate_connection()
        self.ready = True
        pending, self.pending = self.pending, []
        for req in pending:
            if not req.done:
                self._open(req)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except H2Error:
            self.fail("protocol")
            return
        for event in events:
            if isinstance(event, ResponseReceived):
                req = self.streams.get(event.stream_id)
                if req is not None:
                    for name, value in event.headers:
                        if name == b":status":
                            req.status = int(value)
                            break
            elif isinstance(event, DataReceived):
                req = self.streams.get(event.stream_id)
                if req is not None:
                    req.nbytes += len(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                req = self.streams.pop(event.stream_id, None)
                if req is not None:
                    if req.status:
                        self.pool.done(req, self.pool.success(req.status), str(req.status), None)
                    else:
                        self.pool.done(req, False, None, "protocol")
            elif isinstance(event, StreamReset):
                req = self.streams.pop(event.stream_id, None)
                if req is not None:
                    self.pool.done(req, False, None, "reset")
            elif isinstance(event, WindowUpdated):
                self._unblock()
            elif isinstance(event, ConnectionTerminated):
                self.fail("goaway")
                return
        if self.pending and self.ready:
            waiting, self.pending = self.pending, []
            for req in waiting:
                if not req.done:
                    self._open(req)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.fail(classify_error(exc) if exc else "closed")

    # -- requests -----------------------------------------------------------------------------
    def start(self, req: _Req) -> None:
        if self.ready:
            self._open(req)
            self._flush()
        else:
            self.pending.append(req)

    def _open(self, req: _Req) -> None:
        h2 = self.h2
        if h2.open_outbound_streams >= h2.remote_settings.max_concurrent_streams:
            # The server lowered its stream limit after we counted capacity: wait for a stream
            # to end (its deadline still runs).
            self.pending.append(req)
            return
        sid = self.h2.get_next_available_stream_id()
        req.sid = sid
        self.streams[sid] = req
        body = self.pool.body
        self.h2.send_headers(sid, self.pool.headers, end_stream=not body)
        if body:
            self._send_body(req)

    def _send_body(self, req: _Req) -> bool:
        """Send as much of the body as flow control allows; ``True`` once all of it is out."""
        body, h2 = self.pool.body, self.h2
        while req.body_at < len(body):
            window = min(h2.local_flow_control_window(req.sid), h2.max_outbound_frame_size)
            if window <= 0:
                self.blocked.append(req)
                return False
            end = min(len(body), req.body_at + window)
            h2.send_data(req.sid, body[req.body_at:end], end_stream=end == len(body))
            req.body_at = end
        return True

    def _unblock(self) -> None:
        blocked, self.blocked = self.blocked, []
        for req in blocked:
            if not req.done and req.sid in self.streams:
                self._send_body(req)

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def cancel(self, req: _Req, error: str) -> None:
        """Give up on one request (its timeout passed); the connection stays."""
        if req.sid and self.streams.pop(req.sid, None) is not None:
            with contextlib.suppress(H2Error):  # the stream closed meanwhile: nothing to cancel
                self.h2.reset_stream(req.sid, ErrorCodes.CANCEL)
            self._flush()
        self.pool.done(req, False, None, error)

    def fail(self, error: str) -> None:
        """The connection is gone: every request on it fails with ``error``."""
        if not self.dead:
            self.dead = True
            if self.transport is not None:
                self.transport.abort()
            self.pool.forget(self)
        reqs = [*self.pending, *self.streams.values()]
        self.pending.clear()
        self.streams.clear()
        for req in reqs:
            self.pool.done(req, False, None, error)


class Http2Pool:
    """HTTP/2 connections to one target, driven by a :class:`Driver`."""

    def __init__(
        self,
        target: HttpTarget,
        *,
        timeout: float,
        max_streams: int,
        ssl_context: ssl.SSLContext | None = None,
        success: Callable[[int], bool] = default_success,
        connect_host: str | None = None,
        connections: int = 1,
    ) -> None:
        scheme, _, _, path = target.parts
        if scheme == "https" and ssl_context is None:
            ssl_context = tls_context(alpn=("h2",))
        self.dialer = Dialer(target, ssl_context, connect_host)
        headers: list[tuple[bytes, bytes]] = [
            (b":method", target.method.encode()),
            (b":scheme", scheme.encode()),
            (b":authority", target.authority.encode("latin-1")),
            (b":path", path.encode("latin-1")),
        ]
        names = {name.lower() for name, _ in target.headers}
        if "user-agent" not in names:
            headers.append((b"user-agent", b"kdoctor"))
        # Connection-specific headers are forbidden in HTTP/2 (RFC 9113 §8.2.2); Host becomes
        # :authority above.
        skip = {"host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
                "content-length"}
        headers += [(name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in target.headers if name.lower() not in skip]
        if target.sends_length:
            headers.append((b"content-length", str(len(target.body)).encode()))
        self.headers = headers
        self.body = target.body
        self.timeout = timeout
        self.max_streams = max_streams
        self.connections = max(1, connections)
        self.success = success
        self.conns: list[_H2Conn] = []
        self.deadlines: deque[tuple[float, _Req]] = deque()
        self.driver: Driver | None = None
        self._busy = 0
        self._dialing: set[asyncio.Task[Any]] = set()

    # -- Client protocol ---------------------------------------------------------------------
    def try_send(self, due: float, now: float) -> bool:
        if self._busy >= self.max_streams:
            return False
        conn = self._pick()
        if conn is None:
            return False
        req = _Req(conn, due, now)
        self._busy += 1
        self.deadlines.append((now + self.timeout, req))
        conn.start(req)
        return True

    def sweep(self, now: float) -> None:
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _, req = deadlines.popleft()
            if not req.done:
                conn = req.conn
                if req in conn.pending:
                    conn.pending.remove(req)
                conn.cancel(req, "timeout")

    def in_flight(self) -> int:
        return self._busy

    async def aclose(self) -> None:
        for task in list(self._dialing):
            task.cancel()
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.close()
        self.conns.clear()

    # -- internals ------------------------------------------------------------------------------
    def _pick(self) -> _H2Conn | None:
        best: _H2Conn | None = None
        for conn in self.conns:
            if conn.capacity() > 0 and (best is None or len(conn.streams) < len(best.streams)):
                best = conn
        if len(self.conns) < self.connections:  # open every allowed connection before sharing
            conn = _H2Conn(self)
            self.conns.append(conn)
            task = asyncio.get_running_loop().create_task(self._dial(conn))
            self._dialing.add(task)
            task.add_done_callback(self._dialing.discard)
            return conn
        return best

    async def _dial(self, conn: _H2Conn) -> None:
        try:
            await self.dialer.dial(lambda: conn)
        except asyncio.CancelledError:
            conn.fail("timeout")
            raise
        except Exception as exc:  # every failure to connect is a counted result
            conn.fail(classify_error(exc))

    def done(self, req: _Req, ok: bool, code: str | None, error: str | None) -> None:
        if req.done:
            return
        req.done = True
        self._busy -= 1
        assert self.driver is not None
        self.driver.complete(req.due, req.sent, ok, code, error, req.nbytes)

    def forget(self, conn: _H2Conn) -> None:
        if conn in self.conns:
            self.conns.remove(conn)
