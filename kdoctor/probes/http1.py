"""A fast HTTP/1.1 client for the pressure driver: keep-alive connections, llhttp parser.

============================  ==========================================================
What                          How
============================  ==========================================================
parsing                       httptools (llhttp, C), the parser uvicorn uses
connections                   opened lazily up to ``max_connections``; one request in flight
                              per connection (no pipelining); reused while keep-alive holds
request bytes                 encoded once per target; sending is one ``transport.write``
timeouts                      a FIFO of deadlines swept by the driver (every request of a
                              target has the same timeout, so the FIFO is in deadline order)
TLS                           an ``ssl.SSLContext`` from the caller (CA, mTLS or insecure)
a stale keep-alive socket     the request is retried once on a new connection when the
                              server closed a reused connection before answering anything
============================  ==========================================================
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import httptools

from kdoctor.probes.httpreq import Dialer, HttpTarget, classify_error, default_success

if TYPE_CHECKING:
    from kdoctor.probes.pressure import Driver

# At most this many connections are being opened at once. A server hiccup at 10 k QPS backlogs
# hundreds of tokens in a few ms; opening a connection for each at once costs more loop time
# than the hiccup did and deepens it. Tokens wait for a connection in the backlog instead.
MAX_CONNECTING = 16

__all__ = ["Http1Pool", "HttpTarget", "classify_error", "default_success"]

# The status codes as result keys, made once rather than per response.
_CODES = {code: str(code) for code in range(100, 600)}


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight."""

    __slots__ = (
        "busy",
        "dead",
        "due",
        "fresh",
        "nbytes",
        "parser",
        "pool",
        "sent",
        "seq",
        "status",
        "transport",
    )

    def __init__(self, pool: Http1Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False
        self.dead = False
        self.fresh = True
        self.seq = 0
        self.due = 0.0
        self.sent = 0.0
        self.nbytes = 0
        self.status = 0

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only look-alikes.
        tcp = cast(asyncio.Transport, transport)
        if self.dead:  # timed out while connecting: nobody wants this connection any more
            tcp.abort()
            return
        self.transport = tcp
        if self.busy:
            tcp.write(self.pool.payload)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            # Bytes nobody asked for (a server-side timeout notice): the connection is unusable.
            self.pool.drop(self)
            return
        self.nbytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish(False, "protocol", close=True)
        except httptools.HttpParserError:
            self._finish(False, "protocol", close=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.busy:
            retry = not self.fresh and self.nbytes == 0
            self._finish(False, classify_error(exc) if exc else "closed", close=True, retry=retry)
        self.pool.forget(self)

    # -- httptools callbacks (llhttp calls those the protocol has: no on_headers_complete here,
    # the status is read when the message is complete; _HeadConn has one) ----------------------
    def on_message_complete(self) -> None:
        pool = self.pool
        status = self.status = self.parser.get_status_code()  # read by _finish
        try:
            ok = pool.ok[status]  # llhttp's codes have three digits
        except IndexError:
            ok = pool.success(status)
        self._finish(ok, None, close=not (pool.head or self.parser.should_keep_alive()))

    # -- request lifecycle ------------------------------------------------------------------
    def start(self, due: float, sent: float, seq: int) -> None:
        self.busy = True
        self.due = due
        self.sent = sent
        self.seq = seq
        self.nbytes = 0
        self.status = 0
        if self.transport is not None:
            self.transport.write(self.pool.payload)

    def _finish(self, ok: bool, error: str | None, *, close: bool, retry: bool = False) -> None:
        if not self.busy:
            return
        self.busy = False
        code = (_CODES.get(self.status) or str(self.status)) if error is None else None
        due, sent, nbytes = self.due, self.sent, self.nbytes
        if close:
            self.pool.drop(self)
        else:
            self.fresh = False
            self.pool.idle.append(self)
        pool = self.pool
        if retry and pool.retry(due, sent):
            return
        pool._busy -= 1
        driver = pool.driver
        assert driver is not None
        driver.complete(due, sent, ok, code, error, nbytes)

    def timeout(self) -> None:
        self._finish(False, "timeout", close=True)


class _HeadConn(_Conn):
    """A connection for HEAD requests: the response ends with its headers."""

    __slots__ = ()

    def on_headers_complete(self) -> None:
        # A response to HEAD has no body whatever Content-Length says; llhttp cannot be told the
        # request method, so the message ends here and the parser starts afresh.
        self.on_message_complete()
        self.parser = httptools.HttpResponseParser(self)


class Http1Pool:
    """A pool of keep-alive connections to one target, driven by a :class:`Driver`."""

    def __init__(
        self,
        target: HttpTarget,
        *,
        timeout: float,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
        success: Callable[[int], bool] = default_success,
        connect_host: str | None = None,
    ) -> None:
        self.dialer = Dialer(target, ssl_context, connect_host)
        self.payload = target.encode()
        self.head = target.method == "HEAD"
        self.timeout = timeout
        self.max_connections = max_connections
        self.success = success
        self.ok = tuple(success(code) for code in range(1000))
        """``success`` of every three-digit status code, looked up once per response instead of called."""
        self._conn: type[_Conn] = _HeadConn if self.head else _Conn
        self.idle: list[_Conn] = []
        self.conns: set[_Conn] = set()
        self.deadlines: deque[tuple[float, _Conn, int]] = deque()
        self.driver: Driver | None = None
        self.opened = 0
        """Connections opened so far (a pool that keeps reopening shows a server closing them)."""
        self._seq = 0
        self._busy = 0
        self._connecting: set[asyncio.Task[None]] = set()

    # -- Client protocol ---------------------------------------------------------------------
    def flush(self) -> None:
        """Nothing to do: ``try_send`` writes at once."""

    def try_send(self, due: float, now: float) -> bool:
        if self.idle:
            conn = self.idle.pop()
        elif len(self.conns) < self.max_connections and len(self._connecting) < MAX_CONNECTING:
            conn = self._conn(self)
            self.conns.add(conn)
            self.opened += 1
            task = asyncio.get_running_loop().create_task(self._connect(conn))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
        else:
            return False
        self._seq += 1
        self._busy += 1
        conn.start(due, now, self._seq)
        self.deadlines.append((now + self.timeout, conn, self._seq))
        return True

    def sweep(self, now: float) -> None:
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _, conn, seq = deadlines.popleft()
            if conn.busy and conn.seq == seq:
                conn.timeout()

    def in_flight(self) -> int:
        return self._busy

    async def aclose(self) -> None:
        for task in list(self._connecting):
            task.cancel()
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.close()
        self.conns.clear()
        self.idle.clear()

    # -- called by connections ---------------------------------------------------------------
    def retry(self, due: float, sent: float) -> bool:
        """Resend a request whose reused connection turned out to be closed; ``False`` if no
        connection can be opened for it."""
        if len(self.conns) >= self.max_connections:
            return False
        conn = self._conn(self)
        self.conns.add(conn)
        self.opened += 1
        self._seq += 1
        conn.start(due, sent, self._seq)
        self.deadlines.append((sent + self.timeout, conn, self._seq))
        task = asyncio.get_running_loop().create_task(self._connect(conn))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)
        return True

    def drop(self, conn: _Conn) -> None:
        conn.dead = True
        if conn.transport is not None:
            conn.transport.abort()
        self.forget(conn)

    def forget(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    async def _connect(self, conn: _Conn) -> None:
        try:
            await self.dialer.dial(lambda: conn)
        except asyncio.CancelledError:
            conn._finish(False, "timeout", close=True)
            raise
        except Exception as exc:  # every failure to connect is a counted result
            conn._finish(False, classify_error(exc), close=True)
