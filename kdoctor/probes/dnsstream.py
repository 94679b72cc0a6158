"""DNS over TCP and over TLS (DoT, RFC 7858) for the pressure driver.

Connections are opened lazily (``connections`` of them, default 1), kept and reused for every
query, and pipelined: many queries are in flight on one connection, each framed by its 2-byte
length (RFC 7766 §6.2.1.1) and matched to its reply by ID, so replies may arrive out of order. A
connection that fails or is closed by the server fails the queries in flight on it (counted by
error class) and is reopened on the next query. With TLS the server is verified against
``tlsCaFile`` when one is given (host name ``tlsServerName``, else the server address); without a
CA the channel is encrypted but not authenticated, as kdoctor does.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
from collections.abc import Collection
from typing import cast

from kdoctor.probes.dnsclient import QueryTable
from kdoctor.probes.dnswire import QuerySet
from kdoctor.probes.http1 import classify_error

__all__ = ["StreamClient", "tls_context"]


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context: verifying against ``ca_file`` when given, else not verifying."""
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def connect_scoped(server: str, port: int) -> socket.socket:
    """A TCP socket connected to a zoned address such as ``fe80::1%eth0``.

    uvloop's ``create_connection`` and ``sock_connect`` lose the scope id of such an address (the
    connect hangs or fails with EINVAL), so the socket is connected here, without blocking, with
    the address ``getaddrinfo`` gives, and handed over already connected.
    """
    loop = asyncio.get_running_loop()
    family, kind, proto, _, address = socket.getaddrinfo(
        server, port, socket.AF_INET6, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        error = sock.connect_ex(address)
        if error == errno.EINPROGRESS:
            writable: asyncio.Future[None] = loop.create_future()

            def ready() -> None:
                if not writable.done():
                    writable.set_result(None)

            loop.add_writer(sock.fileno(), ready)
            try:
                await writable
            finally:
                loop.remove_writer(sock.fileno())
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))
    except BaseException:
        sock.close()
        raise
    return sock


class _Conn(asyncio.Protocol):
    """One kept-alive, pipelined DNS stream."""

    def __init__(self, client: StreamClient, index: int) -> None:
        self.client = client
        self.index = index
        self.transport: asyncio.Transport | None = None
        self.connecting = False
        self.pending: list[bytes] = []
        """Frames written before the connection was up, sent when it is."""
        self.held: list[bytes] = []
        """Frames taken since the driver's last flush."""
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connecting = False
        if self.pending:
            self.transport.write(b"".join(self.pending))
            self.pending.clear()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        start, size = 0, len(buffer)
        on_reply = self.client.on_reply
        while size - start >= 2:
            length = buffer[start] << 8 | buffer[start + 1]
            if size - start - 2 < length:
                break
            on_reply(bytes(buffer[start + 2:start + 2 + length]))
            start += 2 + length
        if start:
            del buffer[:start]
            self.client.refill_slots()  # the replies of this read free their slots at once

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.connecting = False
        self.buffer.clear()
        self.client.lost(self, classify_error(exc) if exc else "closed")

    def send(self, wire: bytes) -> None:
        if self.transport is not None:
            self.transport.write(wire)
        else:
            self.pending.append(wire)


class StreamClient(QueryTable):
    """DNS over TCP (``tls=None``) or TLS to one server: the driver's
    :class:`~kdoctor.probes.pressure.Client`.

    The replies of one read are recorded as they are parsed and their slots refilled together
    (:meth:`Driver.refill`), and the queries of one burst go to each connection in one write at
    :meth:`flush`: one TCP segment (one TLS record) for the burst instead of one per query."""

    batches = True

    def __init__(
        self,
        server: str,
        port: int,
        queries: QuerySet,
        *,
        timeout: float,
        max_in_flight: int,
        accept: Collection[int] = (0,),
        answer_nonempty: bool = False,
        expected: Collection[str] | None = None,
        connections: int = 1,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        super().__init__(queries, timeout=timeout, max_in_flight=max_in_flight, accept=accept,
                         answer_nonempty=answer_nonempty, expected=expected)
        self.server = server
        self.port = port
        self.tls = tls
        # A certificate names an address without its zone (fe80::1, not fe80::1%eth0).
        self.server_name = (server_name or server.split("%", 1)[0]) if tls is not None else None
        self.conns = [_Conn(self, i) for i in range(max(1, connections))]
        self.conn_of = bytearray(65536)  # ID → index of the connection it was sent on
        # The 2-byte length of each question's query, made once like the queries themselves.
        self.framing = tuple((len(tail) + 2).to_bytes(2, "big") for tail in queries.tails)
        self._turn = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- Client protocol ---------------------------------------------------------------------
    def flush(self) -> None:
        """Write the frames each connection was given since the last flush, in one write."""
        for conn in self.conns:
            held = conn.held
            if held:
                conn.send(held[0] if len(held) == 1 else b"".join(held))
                held.clear()

    def try_send(self, due: float, now: float) -> bool:
        if self.busy >= self.max_in_flight:
            return False
        question = self._next_question
        serial, wire = self.take(due, now)
        turn = self._turn
        self._turn = turn + 1 if turn + 1 < len(self.conns) else 0
        conn = self.conns[turn]
        self.conn_of[serial & 0xFFFF] = turn
        if conn.transport is None and not conn.connecting:
            self._open(conn)
        conn.held.append(self.framing[question] + wire)
        return True

    def in_flight(self) -> int:
        return self.busy

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.fail_all("closed")
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.close()

    # -- called by connections ---------------------------------------------------------------
    def lost(self, conn: _Conn, error: str) -> None:
        """Fail the queries in flight on ``conn``, which has closed or failed."""
        conn.pending.clear()
        conn.held.clear()
        serials, conn_of = self.serials, self.conn_of
        for serial in list(self.fifo):
            qid = serial & 0xFFFF
            if serials[qid] == serial and conn_of[qid] == conn.index:
                self.fail(serial, error)

    def _open(self, conn: _Conn) -> None:
        conn.connecting = True
        task = asyncio.get_running_loop().create_task(self._connect(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: _Conn) -> None:
        loop = asyncio.get_running_loop()
        try:
            if "%" in self.server:  # a link-local server: uvloop would drop the zone
                sock = await connect_scoped(self.server, self.port)
                await loop.create_connection(lambda: conn, sock=sock, ssl=self.tls,
                                             server_hostname=self.server_name)
            else:
                await loop.create_connection(lambda: conn, self.server, self.port, ssl=self.tls,
                                             server_hostname=self.server_name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure to connect is counted on the queries it fails
            conn.connecting = False
            self.lost(conn, classify_error(exc))
