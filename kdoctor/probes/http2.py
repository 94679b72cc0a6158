"""A fast HTTP/2 client for the pressure driver: our own framing, requests encoded once.

============================  ==========================================================
What                          How
============================  ==========================================================
framing                       ours: :mod:`~kdoctor.probes.h2wire` (frames, HPACK) and
                              :mod:`~kdoctor.probes.h2conn` (a connection's frame loop); one
                              ``struct`` unpack per frame header; on the hot path only HEADERS
                              (``:status``), DATA (length, END_STREAM) and flow control
HPACK                         requests: one block per target, static table and literals
                              without indexing (stateless, reused on every stream);
                              responses: ``SETTINGS_HEADER_TABLE_SIZE=0`` so they decode
                              without state; ``:status`` from its one-byte static index, or
                              ``hpack``'s decoder for anything else (literal status, 1xx)
connections                   ``connections`` multiplexed connections (default 1), opened
                              lazily; requests are streams on them
concurrency                   at most ``max_streams`` requests in flight over all connections,
                              and never more than the server's SETTINGS_MAX_CONCURRENT_STREAMS
                              on one connection (followed when the server changes it)
writes                        frames are gathered in a buffer and written once per batch
                              (one ``data_received``, or one scheduler tick), not per request
flow control                  our windows are large (1 MiB per stream, 16 MiB for the
                              connection) and WINDOW_UPDATE is sent as DATA is consumed;
                              request bodies respect the server's windows and frame size
GOAWAY                        streams up to the last-stream-id finish on the old connection;
                              those above it were not processed (RFC 9113 §6.8) and are sent
                              once more on a new connection, else counted ``goaway``
TLS                           ALPN must select ``h2``; a server that picks anything else is
                              counted as error class ``alpn``
cleartext                     h2c with prior knowledge (the client preface straight away; no
                              HTTP/1.1 Upgrade dance)
timeouts                      a FIFO of deadlines swept by the driver; a timed-out stream is
                              reset with CANCEL, the connection stays up
bytes received                DATA payload bytes (frames, padding and headers are not counted)
============================  ==========================================================

Options measured (closed loop, 1 connection x 50 streams, GET of nginx's 600-byte page over h2c,
nginx with one worker, 2 vCPUs shared by client and server; three interleaved rounds of 4 s,
``h2load -c1 -m50`` in the same rounds as the reference; req/s and client CPU per request):

* h2load (nghttp2, C), the reference: 39.0-43.3 k req/s, 13-18 µs;
* the ``h2`` state machine (this module's previous implementation, header validation off):
  4.7-7.1 k req/s, 141-202 µs; ours / h2load 0.12-0.16;
* ``h2`` over 2 or 4 connections sharing the 50 streams: 4.7-6.6 k req/s, 150-210 µs, no
  better: the cost is Python work per frame, not waiting;
* ``ngh2`` 0.3.0, a binding of libnghttp2 (a scratch client on its event API): 39.7-50.5 k
  req/s, 18-21 µs; 1.02-1.17;
* this module: 39.5-43.8 k req/s, 19 µs; 1.00-1.01.

With the hot path down to a few operations per frame and one write per batch, both this module
and ``ngh2`` hit nginx's ceiling, as h2load does. ``ngh2`` was not taken: it is alpha (its API
may change), it would be a new compiled dependency, and it measured no better here.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kdoctor.probes import h2conn
from kdoctor.probes import h2wire as w
from kdoctor.probes.httpreq import Dialer, HttpTarget, classify_error, default_success, tls_context

if TYPE_CHECKING:
    from kdoctor.probes.pressure import Driver

__all__ = ["Http2Pool"]


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
        self.head_frames = w.RequestHeaders(w.encode_block(headers), end_stream=not target.body)
        self.body = target.body
        self.timeout = timeout
        self.max_streams = max_streams
        self.connections = max(1, connections)
        self.success = success
        self.conns: list[h2conn.Connection] = []
        """Connections that take new streams."""
        self.deadlines: deque[h2conn.Request] = deque()
        self.driver: Driver | None = None
        self.opened = 0
        """Connections opened so far (more than ``connections`` shows a server sending GOAWAY)."""
        self._busy = 0
        self._retired: set[h2conn.Connection] = set()
        self._dialing: set[asyncio.Task[Any]] = set()

    # -- Client protocol ---------------------------------------------------------------------
    def flush(self) -> None:
        """Nothing to do: ``try_send`` writes at once."""

    def try_send(self, due: float, now: float) -> bool:
        """Start one request as a new stream; ``False`` when no stream can be opened now."""
        if self._busy >= self.max_streams:
            return False
        conns = self.conns
        if len(conns) == 1 == self.connections and conns[0].capacity() > 0:  # the usual case
            conn = conns[0]
        else:
            picked = self._pick()
            if picked is None:
                return False
            conn = picked
        req = h2conn.Request(conn, due, now, now + self.timeout)
        self._busy += 1
        self.deadlines.append(req)
        conn.start(req)
        return True

    def sweep(self, now: float) -> None:
        """Cancel every request whose timeout has passed."""
        deadlines = self.deadlines
        while deadlines and deadlines[0].deadline <= now:
            req = deadlines.popleft()
            if not req.done:
                req.conn.cancel(req, "timeout")

    def in_flight(self) -> int:
        """Requests sent and not yet answered, failed or timed out."""
        return self._busy

    async def aclose(self) -> None:
        """Close every connection."""
        for task in list(self._dialing):
            task.cancel()
        for conn in [*self.conns, *self._retired]:
            conn.close()
        self.conns.clear()
        self._retired.clear()

    # -- called by connections ----------------------------------------------------------------
    def done(self, req: h2conn.Request, ok: bool, code: str | None, error: str | None) -> None:
        """Report one finished request to the driver (once, whatever happens after)."""
        if req.done:
            return
        req.done = True
        self._busy -= 1
        assert self.driver is not None
        self.driver.complete(req.due, req.sent, ok, code, error, req.nbytes)

    def reroute(self, req: h2conn.Request, error: str, *, retry: bool = True) -> None:
        """Start ``req`` again on another connection: one the server never processed (above a
        GOAWAY's last-stream-id, once per request when ``retry``) or never sent (queued on a
        connection that stopped taking streams). Counted as ``error`` when that cannot be."""
        if req.done:
            return
        if retry:
            if req.retried:
                self.done(req, False, None, error)
                return
            req.retried = True
        conn = self._pick(force=True)
        if conn is None:
            self.done(req, False, None, error)
            return
        req.sid = 0
        req.status = 0
        req.nbytes = 0
        req.recv = 0
        req.body_at = 0
        req.conn = conn
        conn.start(req)

    def retire(self, conn: h2conn.Connection) -> None:
        """``conn`` takes no new streams (GOAWAY); it is closed when its streams are done."""
        if conn in self.conns:
            self.conns.remove(conn)
            self._retired.add(conn)

    def forget(self, conn: h2conn.Connection) -> None:
        """``conn`` is closed."""
        if conn in self.conns:
            self.conns.remove(conn)
        self._retired.discard(conn)

    # -- internals ------------------------------------------------------------------------------
    def _pick(self, *, force: bool = False) -> h2conn.Connection | None:
        """The least busy connection with room; a new one while fewer than ``connections`` are
        open. ``force``: any live connection, room or not (a rerouted request queues there)."""
        best: h2conn.Connection | None = None
        for conn in self.conns:
            if (conn.capacity() > 0 or (force and not conn.dead)) and (
                    best is None or len(conn.streams) < len(best.streams)):
                best = conn
        if len(self.conns) < self.connections:  # open every allowed connection before sharing
            conn = h2conn.Connection(self)
            self.conns.append(conn)
            self.opened += 1
            task = asyncio.get_running_loop().create_task(self._dial(conn))
            self._dialing.add(task)
            task.add_done_callback(self._dialing.discard)
            return conn
        return best

    async def _dial(self, conn: h2conn.Connection) -> None:
        try:
            await self.dialer.dial(lambda: conn)
        except asyncio.CancelledError:
            conn.fail("timeout")
            raise
        except Exception as exc:  # every failure to connect is a counted result
            conn.fail(classify_error(exc))
