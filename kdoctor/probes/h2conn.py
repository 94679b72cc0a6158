"""One HTTP/2 connection of :class:`~kdoctor.probes.http2.Http2Pool`: the frame loop and stream states.

Reading is one pass over the bytes received: a frame header is one ``struct`` unpack; the usual
response is two frames (HEADERS whose first byte is an indexed ``:status``, then DATA with
END_STREAM) and touches nothing else. Everything else (CONTINUATION, padding, 1xx, trailers,
SETTINGS, WINDOW_UPDATE, RST_STREAM, PING, GOAWAY) takes the slower, complete path. Writing goes
to one buffer per connection, written once per ``data_received`` or once per event-loop turn.
A protocol error from the server is a connection error (GOAWAY PROTOCOL_ERROR, every stream
counted ``protocol``) unless it concerns one stream only (that stream is reset).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

from kdoctor.probes import h2wire as w
from kdoctor.probes.httpreq import Dialer, classify_error


class Pool(Protocol):
    """What a connection needs of its pool (:class:`kdoctor.probes.http2.Http2Pool`)."""

    dialer: Dialer
    head_frames: w.RequestHeaders
    body: bytes
    success: Callable[[int], bool]

    def done(self, req: Request, ok: bool, code: str | None, error: str | None) -> None: ...

    def reroute(self, req: Request, error: str, *, retry: bool = True) -> None: ...

    def retire(self, conn: Connection) -> None: ...

    def forget(self, conn: Connection) -> None: ...

__all__ = ["CONN_WINDOW", "STREAM_WINDOW", "Connection", "Request"]

# Streams queued on a connection that is still being opened (its SETTINGS are not known yet).
_PENDING_LIMIT = 100
# Our receive windows. Large, so that a server never waits for us on a LAN; each is topped up
# once half of it has been consumed (one WINDOW_UPDATE per 8 MiB of responses, not per frame).
STREAM_WINDOW = 1 << 20
CONN_WINDOW = 16 << 20
_STREAM_UPDATE_AT = STREAM_WINDOW // 2
_CONN_UPDATE_AT = CONN_WINDOW // 2

# The server reads these before our first HEADERS (frames are processed in order), so every
# response is encoded under a table size of 0: no need to wait for its ACK before streams open.
_SETTINGS = w.settings_payload([
    (w.HEADER_TABLE_SIZE, 0),  # the server's responses then decode without state
    (w.ENABLE_PUSH, 0),  # so no server-initiated streams either
    (w.INITIAL_WINDOW_SIZE, STREAM_WINDOW),
])
_CLIENT_START = (w.PREFACE + w.frame(w.SETTINGS, 0, 0, _SETTINGS)
                 + w.frame(w.WINDOW_UPDATE, 0, 0, w.U32.pack(CONN_WINDOW - w.DEFAULT_WINDOW)))
_SETTINGS_ACK = w.frame(w.SETTINGS, w.ACK, 0)
_CODES = {code: str(code) for code in range(100, 600)}


class Request:
    """One request: its schedule, its stream and what came back."""

    __slots__ = ("body_at", "conn", "deadline", "done", "due", "nbytes", "recv", "retried", "sent", "sid",
                 "status", "window")

    def __init__(self, conn: Connection, due: float, sent: float, deadline: float) -> None:
        self.conn = conn
        self.due = due
        self.sent = sent
        self.deadline = deadline
        self.sid = 0
        self.status = 0
        self.nbytes = 0
        self.recv = 0  # flow-controlled bytes received since our last WINDOW_UPDATE for the stream
        self.window = 0  # what the server lets us send on this stream (request bodies)
        self.body_at = 0
        self.done = False
        self.retried = False


class Connection(asyncio.Protocol):
    """One HTTP/2 connection carrying many streams."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.ready = False  # the server's SETTINGS have arrived
        self.dead = False
        self.draining = False  # GOAWAY received (or stream ids used up): no new streams
        self.goaway = False
        self.streams: dict[int, Request] = {}
        self.pending: deque[Request] = deque()
        self.blocked: list[Request] = []
        self.next_sid = 1
        self.limit = 0  # the server's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited by default)
        self.peer_window = w.DEFAULT_WINDOW  # the server's SETTINGS_INITIAL_WINDOW_SIZE
        self.send_window = w.DEFAULT_WINDOW  # connection-level window for our DATA
        self.peer_max_frame = w.DEFAULT_MAX_FRAME
        self.recv_used = 0  # DATA bytes received since our last connection WINDOW_UPDATE
        self.out = bytearray()
        self.buf = b""
        self.cont: tuple[int, int, bytearray] | None = None  # a header block awaiting CONTINUATION
        self.decoder = w.StatusDecoder()
        self._receiving = False
        self._flush_scheduled = False

    def capacity(self) -> int:
        """How many more streams this connection takes now."""
        if self.dead or self.draining:
            return 0
        if not self.ready:
            return _PENDING_LIMIT - len(self.pending)
        return self.limit - len(self.streams) - len(self.pending)

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only look-alikes.
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
        # Streams wait for the server's SETTINGS (its first frame): its stream limit may be
        # lower than what we would otherwise open at once.
        tcp.write(_CLIENT_START)

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        self._receiving = True
        try:
            at = self._frames(data)
        except w.WireError:
            self._receiving = False
            self.protocol_error()
            return
        self._receiving = False
        if at < len(data):
            self.buf = data[at:]
        if self.recv_used >= _CONN_UPDATE_AT:
            self.out += w.frame(w.WINDOW_UPDATE, 0, 0, w.U32.pack(self.recv_used))
            self.recv_used = 0
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.goaway:
            self.fail("goaway")
        else:
            self.fail(classify_error(exc) if exc else "closed")

    # -- reading --------------------------------------------------------------------------
    def _frames(self, data: bytes) -> int:
        """Handle every whole frame in ``data``; the offset of the first incomplete one."""
        unpack = w.FRAME_HEAD.unpack_from
        streams = self.streams
        status_by_byte = w.STATUS_BY_BYTE
        n = len(data)
        at = 0
        while n - at >= 9:
            hi, lo, ftype, flags, sid = unpack(data, at)
            length = hi << 16 | lo
            end = at + 9 + length
            if end > n:
                break
            if length > w.DEFAULT_MAX_FRAME:
                raise w.WireError("frame larger than our SETTINGS_MAX_FRAME_SIZE")
            sid &= w.MAX_STREAM_ID
            if self.cont is not None and ftype != w.CONTINUATION:
                raise w.WireError("a header block interrupted by another frame")
            if ftype == w.DATA:
                if sid == 0:
                    raise w.WireError("DATA on stream 0")
                self.recv_used += length  # the connection window counts every stream's DATA
                req = streams.get(sid)
                if req is not None:
                    size = length
                    if flags & w.PADDED:
                        if length == 0 or data[at + 9] >= length:
                            raise w.WireError("padding longer than the DATA frame")
                        size -= data[at + 9] + 1
                    req.nbytes += size
                    if not req.status:
                        self._stream_error(req, "protocol")  # DATA before any response headers
                    elif flags & w.END_STREAM:
                        del streams[sid]
                        self._finish(req)
                    else:
                        req.recv += length
                        if req.recv >= _STREAM_UPDATE_AT:
                            self.out += w.frame(w.WINDOW_UPDATE, 0, sid, w.U32.pack(req.recv))
                            req.recv = 0
            elif ftype == w.HEADERS:
                # The hot path: a whole, unpadded block whose first byte is an indexed :status.
                if (flags & 0x2C == w.END_HEADERS and length and (req := streams.get(sid)) is not None
                        and not req.status and (status := status_by_byte.get(data[at + 9], 0)) >= 200):
                    req.status = status
                    if flags & w.END_STREAM:
                        del streams[sid]
                        self._finish(req)
                else:
                    self._headers_frame(data, at + 9, end, flags, sid)
            elif ftype == w.CONTINUATION:
                cont = self.cont
                if cont is None or cont[0] != sid:
                    raise w.WireError("CONTINUATION without a header block to continue")
                cont[2].extend(data[at + 9:end])
                if flags & w.END_HEADERS:
                    self.cont = None
                    self._header_block(sid, cont[1], cont[2], 0, len(cont[2]))
            else:
                self._control(ftype, flags, sid, data[at + 9:end])
            at = end
        return at

    def _headers_frame(self, data: bytes, at: int, end: int, flags: int, sid: int) -> None:
        if sid == 0:
            raise w.WireError("HEADERS on stream 0")
        if flags & w.PADDED:
            if at >= end:
                raise w.WireError("padded HEADERS without a pad length")
            pad = data[at]
            at += 1
            end -= pad
        if flags & w.PRIORITY_FLAG:
            at += 5
        if at > end:
            raise w.WireError("HEADERS padding or priority longer than the frame")
        if flags & w.END_HEADERS:
            self._header_block(sid, flags, data, at, end)
        else:
            self.cont = (sid, flags, bytearray(data[at:end]))

    def _header_block(self, sid: int, flags: int, block: bytes | bytearray, at: int, end: int) -> None:
        """A complete header block (HEADERS plus any CONTINUATION) for stream ``sid``."""
        req = self.streams.get(sid)
        if req is None:
            return  # a stream we reset: with no dynamic table, skipping its block loses nothing
        if req.status:  # trailers: nothing in them is measured, only that they end the stream
            if not flags & w.END_STREAM:
                self._stream_error(req, "protocol")
                return
        else:
            at = w.skip_size_updates(block, at, end)
            status = w.STATUS_BY_BYTE.get(block[at], 0) if at < end else 0
            if not status:
                status = self.decoder.status(block[at:end]) or 0
            if status < 200:
                if status < 100 or flags & w.END_STREAM:  # no status, or a final 1xx
                    self._stream_error(req, "protocol")
                return  # an informational response (100, 103): the real one follows
            req.status = status
        if flags & w.END_STREAM:
            del self.streams[sid]
            self._finish(req)

    def _control(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        """Every frame type but DATA, HEADERS and CONTINUATION."""
        if ftype == w.SETTINGS:
            if sid:
                raise w.WireError("SETTINGS on a stream")
            if flags & w.ACK:
                return
            self._settings(w.parse_settings(payload))
        elif ftype == w.WINDOW_UPDATE:
            if len(payload) != 4:
                raise w.WireError("WINDOW_UPDATE of the wrong size")
            increment = w.U32.unpack(payload)[0] & w.MAX_WINDOW
            if sid == 0:
                if increment == 0:
                    raise w.WireError("WINDOW_UPDATE of 0 on the connection")
                self.send_window += increment
                if self.send_window > w.MAX_WINDOW:
                    raise w.WireError("connection window above 2^31-1")
            else:
                req = self.streams.get(sid)
                if req is not None:
                    req.window += increment
                    if increment == 0 or req.window > w.MAX_WINDOW:
                        self._stream_error(req, "protocol")
            if self.blocked:
                self._unblock()
        elif ftype == w.RST_STREAM:
            if sid == 0 or len(payload) != 4:
                raise w.WireError("malformed RST_STREAM")
            req = self.streams.pop(sid, None)
            if req is not None:
                self._forget_blocked(req)
                self.pool.done(req, False, None, "reset")
                self._drain_pending()
                self._close_if_idle()
        elif ftype == w.PING:
            if len(payload) != 8 or sid:
                raise w.WireError("malformed PING")
            if not flags & w.ACK:
                self.out += w.frame(w.PING, w.ACK, 0, payload)
        elif ftype == w.GOAWAY:
            if sid or len(payload) < 8:
                raise w.WireError("malformed GOAWAY")
            self._goaway(w.U32.unpack_from(payload)[0] & w.MAX_STREAM_ID)
        elif ftype == w.PUSH_PROMISE:
            raise w.WireError("PUSH_PROMISE although we disabled push")
        # PRIORITY and unknown frame types are ignored (RFC 9113 §4.1, §5.5).

    def _settings(self, settings: list[tuple[int, int]]) -> None:
        for ident, value in settings:
            if ident == w.MAX_CONCURRENT_STREAMS:
                self.limit = value
            elif ident == w.INITIAL_WINDOW_SIZE:
                if value > w.MAX_WINDOW:
                    raise w.WireError("SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
                delta = value - self.peer_window  # applies to every open stream (§6.9.2)
                self.peer_window = value
                for req in self.streams.values():
                    req.window += delta
            elif ident == w.MAX_FRAME_SIZE:
                if not w.DEFAULT_MAX_FRAME <= value <= 2**24 - 1:
                    raise w.WireError("SETTINGS_MAX_FRAME_SIZE out of range")
                self.peer_max_frame = value
        self.out += _SETTINGS_ACK
        if not self.ready:
            self.ready = True
            if not any(ident == w.MAX_CONCURRENT_STREAMS for ident, _ in settings):
                self.limit = w.MAX_STREAM_ID  # no limit given: unlimited (RFC 9113 §6.5.2)
        self._drain_pending()
        if self.blocked:
            self._unblock()

    def _goaway(self, last: int) -> None:
        """The server stops taking streams: those above ``last`` were never processed."""
        self.goaway = True
        self._drain()
        self._drain_pending()  # queued, never sent: they go to the new connection as they are
        for sid in [sid for sid in self.streams if sid > last]:
            req = self.streams.pop(sid)
            self._forget_blocked(req)
            self.pool.reroute(req, "goaway")
        self._close_if_idle()

    # -- requests -------------------------------------------------------------------------------
    def start(self, req: Request) -> None:
        """Send ``req`` now, or queue it until the connection is ready or a stream is free."""
        if self.ready and not self.pending and len(self.streams) < self.limit:
            self._open(req)
            if not self._receiving:
                self._schedule_flush()
        else:
            self.pending.append(req)

    def _open(self, req: Request) -> None:
        sid = self.next_sid
        if sid > w.MAX_STREAM_ID:  # stream ids used up: a new connection takes over
            self._drain()
            self.pool.reroute(req, "goaway", retry=False)
            return
        self.next_sid = sid + 2
        req.sid = sid
        req.conn = self
        self.streams[sid] = req
        pool = self.pool
        pool.head_frames.write(self.out, sid)
        if pool.body:
            req.window = self.peer_window
            self._send_body(req)

    def _send_body(self, req: Request) -> None:
        """Send as much of the body as both flow-control windows and the frame size allow."""
        body = self.pool.body
        size = len(body)
        out = self.out
        while req.body_at < size:
            chunk = min(size - req.body_at, req.window, self.send_window, self.peer_max_frame)
            if chunk <= 0:
                if req not in self.blocked:
                    self.blocked.append(req)
                return
            end = req.body_at + chunk
            out += w.FRAME_HEAD.pack(chunk >> 16, chunk & 0xFFFF, w.DATA,
                                     w.END_STREAM if end == size else 0, req.sid)
            out += body[req.body_at:end]
            req.body_at = end
            req.window -= chunk
            self.send_window -= chunk

    def _unblock(self) -> None:
        blocked, self.blocked = self.blocked, []
        for req in blocked:
            if not req.done and self.streams.get(req.sid) is req:
                self._send_body(req)
        if not self._receiving:
            self._schedule_flush()

    def _forget_blocked(self, req: Request) -> None:
        if self.blocked and req in self.blocked:
            self.blocked.remove(req)

    def _drain_pending(self) -> None:
        """Open queued requests while the server's stream limit allows."""
        pending = self.pending
        if self.draining:
            while pending:
                self.pool.reroute(pending.popleft(), "goaway", retry=False)
            return
        while pending and self.ready and len(self.streams) < self.limit:
            req = pending.popleft()
            if not req.done:
                self._open(req)
        if not self._receiving:
            self._schedule_flush()

    def _finish(self, req: Request) -> None:
        """The stream ended with a response (already removed from ``streams``)."""
        status = req.status
        self.pool.done(req, self.pool.success(status), _CODES.get(status) or str(status), None)
        if self.pending:
            self._drain_pending()
        elif self.draining:
            self._close_if_idle()

    def _stream_error(self, req: Request, error: str) -> None:
        """The server broke the protocol on one stream: reset it, count it, keep the connection."""
        if self.streams.pop(req.sid, None) is not None:
            self.out += w.frame(w.RST_STREAM, 0, req.sid, w.U32.pack(w.PROTOCOL_ERROR))
            self._forget_blocked(req)
        self.pool.done(req, False, None, error)
        self._drain_pending()
        self._close_if_idle()

    def cancel(self, req: Request, error: str) -> None:
        """Give up on one request (its timeout passed); the connection stays."""
        if req.sid and self.streams.pop(req.sid, None) is not None:
            self.out += w.frame(w.RST_STREAM, 0, req.sid, w.U32.pack(w.CANCEL))
            self._forget_blocked(req)
            self._schedule_flush()
        elif req in self.pending:
            self.pending.remove(req)
        self.pool.done(req, False, None, error)
        self._drain_pending()
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        """A connection that takes no new streams goes once its last stream is done."""
        if self.draining and not self.streams and self.transport is not None:
            self._flush()
            self.transport.close()

    def _drain(self) -> None:
        """Take no new streams; the pool opens another connection for them."""
        if not self.draining:
            self.draining = True
            self.pool.retire(self)

    # -- writing and closing --------------------------------------------------------------------
    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self.out:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.out and self.transport is not None:
            # Hand the buffer over rather than copy it: the transport may keep it queued.
            out, self.out = self.out, bytearray()
            self.transport.write(out)

    def protocol_error(self) -> None:
        """The server broke the protocol: say so with GOAWAY and drop the connection."""
        if self.transport is not None and not self.dead:
            self.out += w.frame(w.GOAWAY, 0, 0, w.U32.pack(0) + w.U32.pack(w.PROTOCOL_ERROR))
            self._flush()
        self.fail("protocol")

    def close(self) -> None:
        """Close politely: GOAWAY, then the socket."""
        if self.transport is not None and not self.dead:
            self.out += w.frame(w.GOAWAY, 0, 0, w.U32.pack(0) + w.U32.pack(w.NO_ERROR))
            self._flush()
            self.transport.close()

    def fail(self, error: str) -> None:
        """The connection is gone: every request on it fails with ``error``."""
        if not self.dead:
            self.dead = True
            if self.transport is not None:
                self.transport.close()
            self.pool.forget(self)
        reqs = [*self.pending, *self.streams.values()]
        self.pending.clear()
        self.streams.clear()
        self.blocked.clear()
        for req in reqs:
            self.pool.done(req, False, None, error)
