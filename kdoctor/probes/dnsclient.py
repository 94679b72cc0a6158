"""A fast DNS-over-UDP client for the pressure driver, and the query table shared with TCP/DoT.

================================  ===============================================================
What                              How
================================  ===============================================================
queries                           pre-built per (domain, type); ID prefixed per query (dnswire)
in-flight queries                 flat per-ID arrays (due, sent, serial), no object per query
IDs                               a serial counter; ID = serial mod 65536, skipping busy IDs: an ID
                                  comes back only 65,536 queries later, so a reply arriving after
                                  its query timed out is counted as stray, not as a new answer
sockets                           ``connections`` connected UDP sockets, non-blocking, queries
                                  given to them round-robin (no transport layer)
sending                           the queries of one burst (what the driver sends before it
                                  calls ``flush``) in one ``sendmsg`` per socket and query size,
                                  split by the kernel into one datagram each (UDP segmentation);
                                  one ``send`` each where the kernel refuses that
receiving                         one reader callback per socket drains every queued datagram
                                  (``recv`` until EAGAIN) instead of one callback per datagram; the
                                  replies come first, before the loop sends more (see ``_readable``)
refilling                         replies are recorded as read; their slots are refilled once per
                                  burst (``batch`` replies, and at EAGAIN), so queries leave in
                                  bursts and the server is woken once per burst, not per reply
replies                           header only: ID, RCODE, ANCOUNT; full parse on a sample when
                                  ``expect.answers`` is set
timeouts                          a FIFO of serials in send order (one timeout for all), swept
                                  by the driver
ICMP errors                       on a connected socket the kernel reports "port unreachable" on
                                  the next ``recv``: counted, reading goes on, and the queries that
                                  then time out are reported as ``refused``
receive buffer                    room for every reply in flight (``SO_RCVBUFFORCE`` where allowed,
                                  else what ``net.core.rmem_max`` lets ``SO_RCVBUF`` have); replies
                                  the socket still drops are counted from the kernel's own counter
                                  (:meth:`UdpClient.dropped`) and reported as the generator's, since
                                  their queries time out as if the server had lost them
================================  ===============================================================
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import sys
from collections import Counter, deque
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdoctor.probes.dnswire import ID_PREFIX, RCODE_NAMES, QuerySet, answer_matches

if TYPE_CHECKING:
    from kdoctor.probes.pressure import Driver

__all__ = ["SEGMENTATION_OFF", "QueryTable", "UdpClient", "drops_by_inode", "socket_drops"]

log = logging.getLogger(__name__)

# The answer check parses every reply up to this many, then one in SAMPLE_EVERY: enough to catch a
# wrong answer at once without paying dnspython's parse on every reply at full speed.
SAMPLE_FIRST = 200
SAMPLE_EVERY = 50
SOCKET_BUFFER = 4 * 1024 * 1024
# A small reply takes about 830 bytes of receive buffer on Linux (measured: its skb's truesize);
# the buffer asked for holds every reply in flight, between SOCKET_BUFFER and this.
REPLY_TRUESIZE = 1024
MAX_RECEIVE_BUFFER = 64 * 1024 * 1024
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux's value, where Python lacks the name
# Replies read before their slots are refilled, at most (UdpClient.batch).
BATCH = 32
# UDP segmentation (GSO, Linux 4.18+): one sendmsg carries a burst of equal-sized queries and
# the kernel splits it into datagrams. At most 64 segments per call (the kernel's limit before
# 6.x raised it), and the whole under the 64 KiB datagram limit.
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # Linux's value, where Python lacks the name
MAX_SEGMENTS = 64
MAX_SEGMENTED_BYTES = 60_000
# What a kernel or device says when it cannot segment: unknown option (before 4.18), no
# checksum offload on the route's device (EIO), checksums turned off on the socket (EINVAL).
SEGMENTATION_REFUSED = frozenset({errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EIO, errno.EINVAL})
SEGMENTATION_OFF = "udp-segmentation-refused"
"""The event a client notes when the kernel refused to segment its bursts (it then sends one by one)."""
RECV_SIZE = 65535


class QueryTable:
    """The in-flight queries of one target, matched by ID; reports each completion to the driver."""

    def __init__(
        self,
        queries: QuerySet,
        *,
        timeout: float,
        max_in_flight: int,
        accept: Collection[int] = (0,),
        answer_nonempty: bool = False,
        expected: Collection[str] | None = None,
    ) -> None:
        if max_in_flight > 60000:
            raise ValueError("at most 60,000 DNS queries can be in flight per target (16-bit IDs)")
        self.tails = queries.tails
        self._count = len(self.tails)
        self._next_question = 0
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.accept = tuple(code in accept for code in range(16))
        self.answer_nonempty = answer_nonempty
        self.expected = frozenset(expected) if expected else None
        self._checks = answer_nonempty or self.expected is not None
        self.due = [0.0] * 65536
        self.sent = [0.0] * 65536
        self.serials = [-1] * 65536  # -1: free
        self.fifo: deque[int] = deque()
        self._serial = 0
        self.busy = 0
        self._driver: Driver | None = None
        self._report: Callable[..., object] = _no_driver
        self.replies = 0
        """Accepted replies seen by the answer check (it samples by this count)."""
        self.timeouts = 0
        self.answers_checked = 0
        self.answer_failures = 0
        self.empty_answers = 0
        self.stray = 0
        self.notes: Counter[str] = Counter()
        """Events not tied to one query: ICMP errors, malformed or stray datagrams."""
        self.timeout_label = "timeout"

    batches = False
    """Whether this client refills slots in bursts (:meth:`Driver.refill`) rather than one
    per reply: replies are then only recorded as they are read."""

    @property
    def driver(self) -> Driver | None:
        """The driver this table reports completions to."""
        return self._driver

    @driver.setter
    def driver(self, driver: Driver | None) -> None:
        self._driver = driver
        if driver is None:
            self._report = _no_driver
        else:
            self._report = driver.record if self.batches else driver.complete

    def refill_slots(self) -> None:
        """Send into the slots of the replies just read (:meth:`Driver.refill`): once per burst
        (the reader of a client that :attr:`batches` calls it)."""
        if self._driver is not None:
            self._driver.refill()

    def take(self, due: float, now: float) -> tuple[int, bytes]:
        """Register one query sent now; returns its serial and its wire form (without framing)."""
        serials = self.serials
        serial = self._serial + 1
        while serials[serial & 0xFFFF] >= 0:  # ID still in flight: skip it
            serial += 1
        self._serial = serial
        qid = serial & 0xFFFF
        serials[qid] = serial
        self.due[qid] = due
        self.sent[qid] = now
        self.fifo.append(serial)
        self.busy += 1
        index = self._next_question
        self._next_question = index + 1 if index + 1 < self._count else 0
        return serial, ID_PREFIX[qid] + self.tails[index]

    def on_reply(self, data: bytes) -> None:
        """Judge one reply from its header (and, on a sample, its answer) and report it."""
        if len(data) < 12:
            self.notes["malformed"] += 1
            return
        qid = data[0] << 8 | data[1]
        serials = self.serials
        if serials[qid] < 0:
            self.stray += 1  # a reply after its query timed out, or a duplicate
            return
        serials[qid] = -1
        self.busy -= 1
        rcode = data[3] & 15
        ok = self.accept[rcode]
        error = None
        if ok and self._checks:
            error = self._check(data)
            ok = error is None
        self._report(self.due[qid], self.sent[qid], ok, RCODE_NAMES[rcode], error, len(data))

    def _check(self, data: bytes) -> str | None:
        """The answer checks of an accepted reply: the failure's name, or ``None``."""
        if self.answer_nonempty and not (data[6] or data[7]):
            self.empty_answers += 1
            return "empty-answer"
        if self.expected is not None:
            self.replies += 1
            if self.replies <= SAMPLE_FIRST or self.replies % SAMPLE_EVERY == 0:
                self.answers_checked += 1
                if not answer_matches(data, self.expected):
                    self.answer_failures += 1
                    return "wrong-answer"
        return None

    def fail(self, serial: int, error: str) -> None:
        """Fail one query, if it is still in flight."""
        qid = serial & 0xFFFF
        if self.serials[qid] != serial:
            return
        self.serials[qid] = -1
        self.busy -= 1
        assert self._driver is not None
        # Always complete: a failure is reported outside a burst of replies (sweep, close).
        self._driver.complete(self.due[qid], self.sent[qid], False, None, error, 0)

    def sweep(self, now: float) -> None:
        """Fail every query older than the timeout (the FIFO is in send order)."""
        fifo, serials, sent = self.fifo, self.serials, self.sent
        limit = now - self.timeout
        while fifo:
            serial = fifo[0]
            qid = serial & 0xFFFF
            if serials[qid] != serial:
                fifo.popleft()  # answered already
                continue
            if sent[qid] > limit:
                return
            fifo.popleft()
            self.timeouts += 1
            self.fail(serial, self.timeout_label)

    def fail_all(self, error: str) -> None:
        """Fail every query in flight (the client is closing)."""
        while self.fifo:
            self.fail(self.fifo.popleft(), error)

    def tally(self) -> dict[str, Any]:
        """The figures this table counted beyond the driver's (timeouts, answer checks, stray
        replies, events), to be added to another process's table by :meth:`absorb`."""
        return {"timeouts": self.timeouts, "answers_checked": self.answers_checked,
                "answer_failures": self.answer_failures, "empty_answers": self.empty_answers,
                "stray": self.stray, "notes": dict(self.notes)}

    def absorb(self, tally: dict[str, Any]) -> None:
        """Add another table's :meth:`tally` (the same target pressed from another process)."""
        self.timeouts += tally["timeouts"]
        self.answers_checked += tally["answers_checked"]
        self.answer_failures += tally["answer_failures"]
        self.empty_answers += tally["empty_answers"]
        self.stray += tally["stray"]
        self.notes.update(tally["notes"])


class UdpClient(QueryTable):
    """DNS over UDP to one server (the driver's :class:`~kdoctor.probes.pressure.Client`)."""

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
        receive_buffer: int | None = None,
    ) -> None:
        """``receive_buffer``: bytes per socket (default: room for ``max_in_flight`` replies)."""
        super().__init__(queries, timeout=timeout, max_in_flight=max_in_flight, accept=accept,
                         answer_nonempty=answer_nonempty, expected=expected)
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        self.sockets: list[socket.socket] = []
        self._send: list[Callable[[bytes], int]] = []
        self._sendmsg: list[Callable[..., int]] = []
        self._failed: list[tuple[int, str]] = []
        self._loop = asyncio.get_running_loop()
        try:
            for _ in range(max(1, connections)):
                sock = socket.socket(family, socket.SOCK_DGRAM)
                self.sockets.append(sock)
                sock.setblocking(False)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
                _receive_buffer(sock, receive_buffer or min(MAX_RECEIVE_BUFFER, max(
                    SOCKET_BUFFER, max_in_flight * REPLY_TRUESIZE)))
                sock.connect(sockaddr(server, port, family))
                self._send.append(sock.send)
                self._sendmsg.append(sock.sendmsg)
                self._loop.add_reader(sock.fileno(), self._readable, sock)
        except BaseException:
            self._close_sockets()
            raise
        self._turn = 0
        # The queries taken since the last flush, per socket; with one socket, its list.
        self._held: list[list[bytes]] = [[] for _ in self.sockets]
        self._single: list[bytes] | None = self._held[0] if len(self._held) == 1 else None
        sizes = {len(ID_PREFIX[0] + tail) for tail in queries.tails}
        self._sizes = sizes.pop() if len(sizes) == 1 else None
        self._segmenting = hasattr(socket, "SOL_UDP")  # until the kernel refuses (_segmented)
        self.segmented = 0
        """Queries sent inside segmented datagrams (the rest went one ``send`` each)."""
        # Slots are refilled after this many replies: a fraction of the in-flight bound, so the
        # pipeline never runs dry while a burst is being read (a burst of 64 with 100 in flight
        # halved the rate measured here; 32 of 2,000 saved 12 % of CPU per query).
        self.batch = max(1, min(BATCH, max_in_flight // 4))

    # -- Client protocol ---------------------------------------------------------------------
    def try_send(self, due: float, now: float) -> bool:
        if self.busy >= self.max_in_flight:
            return False
        wire = self.take(due, now)[1]
        if self._single is not None:
            self._single.append(wire)
        else:
            turn = self._turn
            self._turn = turn + 1 if turn + 1 < len(self._held) else 0
            self._held[turn].append(wire)
        return True

    def flush(self) -> None:
        """Send the queries held since the last flush: one burst, at the instant they were taken."""
        for index, held in enumerate(self._held):
            if held:
                # Sending re-enters nothing (failures are deferred: _fail_later): clear after.
                if len(held) == 1 or not self._segmenting:
                    self._each(index, held)
                else:
                    self._segmented(index, held)
                held.clear()

    def in_flight(self) -> int:
        return self.busy

    def inodes(self) -> list[int]:
        """The inodes of this client's open sockets (how the kernel's socket tables name them)."""
        return [os.fstat(sock.fileno()).st_ino for sock in self.sockets if sock.fileno() >= 0]

    def dropped(self) -> int | None:
        """Replies this client's sockets dropped so far because their receive buffer was full
        (the kernel's per-socket counter, ``/proc/net/udp``); ``None`` where it cannot be read."""
        return socket_drops(self.inodes())

    async def aclose(self) -> None:
        self._flush_failed()
        self.fail_all("closed")
        self._close_sockets()

    # -- internals ---------------------------------------------------------------------------
    def _each(self, index: int, wires: list[bytes]) -> None:
        """One ``send`` per query."""
        send = self._send[index]
        for wire in wires:
            try:
                send(wire)
            except OSError as exc:
                self._fail_later([wire], exc)

    def _segmented(self, index: int, wires: list[bytes]) -> None:
        """The burst in as few ``sendmsg`` calls as UDP segmentation allows: queries of one size
        together, at most ``MAX_SEGMENTS`` and ``MAX_SEGMENTED_BYTES`` per call. The kernel
        splits each into one datagram per query (the server sees exactly what single sends
        give); on loopback this costs a fifth of the kernel time of a send per query (measured:
        0.9 against 4-6 us per datagram in bursts of 25), which on a node shared with its DNS
        server is CPU left to the server. A kernel or device that refuses it (no
        ``UDP_SEGMENT``, no checksum offload) turns it off for this client: queries are then
        sent one by one, as before."""
        sizes = self._sizes
        if sizes is None:  # queries of several sizes: one group per size
            groups: dict[int, list[bytes]] = {}
            for wire in wires:
                groups.setdefault(len(wire), []).append(wire)
        else:
            groups = {sizes: wires}
        sendmsg = self._sendmsg[index]
        for size, group in groups.items():
            step = min(MAX_SEGMENTS, MAX_SEGMENTED_BYTES // size)
            for start in range(0, len(group), step):
                chunk = group[start:start + step]
                if len(chunk) == 1 or not self._segmenting:
                    self._each(index, chunk)
                    continue
                try:
                    sendmsg([b"".join(chunk)], [(socket.SOL_UDP, UDP_SEGMENT, size.to_bytes(2, sys.byteorder))])
                except OSError as exc:
                    if exc.errno not in SEGMENTATION_REFUSED:
                        self._fail_later(chunk, exc)
                        continue
                    log.info("UDP segmentation refused (%s): sending DNS queries one by one",
                             errno.errorcode.get(exc.errno or 0, exc.errno))
                    self._segmenting = False
                    self.notes[SEGMENTATION_OFF] += 1  # the report says why this client cost more CPU
                    self._each(index, chunk)
                else:
                    self.segmented += len(chunk)

    def _fail_later(self, wires: list[bytes], exc: OSError) -> None:
        """Fail these unsent queries just after this call: failing them now would re-enter the
        driver while it is sending."""
        if not self._failed:
            self._loop.call_soon(self._flush_failed)
        error, serials = _send_error(exc), self.serials
        self._failed.extend((serials[wire[0] << 8 | wire[1]], error) for wire in wires)

    def _readable(self, sock: socket.socket) -> None:
        recv, on_reply, batch = sock.recv, self.on_reply, self.batch
        # Until EAGAIN, not a fixed number: while replies pour in, the event loop's timers (the
        # driver's schedule, the sweep) wait, and what they would send waits with them. Capped
        # at 1,024 datagrams per call, a flood (200 k QPS asked, 30,000 in flight per process)
        # collapsed: the sends between reads let replies wait past their timeout, freed slots
        # sent more, and the client's own socket dropped 215 k replies (17 k replies/s against
        # 89-103 k uncapped, measured in real rounds). The schedule's delay is not hidden: it is
        # the send lag the report gives, and tokens past the lateness bound are unsent.
        read = 0
        try:
            while True:
                try:
                    data = recv(RECV_SIZE)
                except BlockingIOError:
                    return
                except ConnectionRefusedError:
                    # ICMP port unreachable, reported once on this socket; keep reading.
                    self.notes["icmp-refused"] += 1
                    self.timeout_label = "refused"
                    continue
                except OSError as exc:
                    self.notes[_send_error(exc)] += 1
                    return
                on_reply(data)
                read += 1
                if read == batch:
                    self.refill_slots()
                    read = 0
        finally:
            if read:
                self.refill_slots()

    def _flush_failed(self) -> None:
        failed, self._failed = self._failed, []
        for serial, error in failed:
            self.fail(serial, error)

    def _close_sockets(self) -> None:
        for sock in self.sockets:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
                sock.close()
        self.sockets.clear()


def _receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for ``size`` bytes of receive buffer: past ``net.core.rmem_max`` with CAP_NET_ADMIN
    (``SO_RCVBUFFORCE``), else as much of it as ``SO_RCVBUF`` is allowed (the kernel caps it)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:  # EPERM without CAP_NET_ADMIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def socket_drops(inodes: Collection[int], tables: Collection[str] = ("/proc/net/udp", "/proc/net/udp6")) -> int | None:
    """The datagrams the UDP sockets with these inodes dropped, in all; ``None`` where none can be
    read (:func:`drops_by_inode`)."""
    drops = drops_by_inode(inodes, tables)
    return None if drops is None else sum(drops.values())


def drops_by_inode(inodes: Collection[int],
                   tables: Collection[str] = ("/proc/net/udp", "/proc/net/udp6")) -> dict[int, int] | None:
    """The datagrams each UDP socket with one of these inodes dropped (the last column of the
    kernel's socket tables, which are per network namespace: ours), read once for all of them;
    ``None`` where no table can be read."""
    wanted = set(inodes)
    drops: dict[int, int] = {}
    read = False
    for table in tables:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        read = True
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9].isdigit() and int(fields[9]) in wanted:
                drops[int(fields[9])] = drops.get(int(fields[9]), 0) + int(fields[-1])
    return drops if read else None


def _no_driver(*args: object) -> None:
    raise RuntimeError("a reply arrived before the client was given its driver")


def sockaddr(server: str, port: int, family: int) -> tuple[Any, ...]:
    """The socket address of a numeric ``server``; ``fe80::1%eth0`` becomes the 4-tuple with the
    interface's scope id, which ``connect((host, port))`` would refuse."""
    return socket.getaddrinfo(server, port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)[0][4]


def _send_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, BlockingIOError):
        return "send-buffer-full"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return f"os:{errno.errorcode.get(exc.errno or 0, exc.errno)}"
