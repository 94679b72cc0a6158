"""A virtual clock and a scripted client for the pressure driver: exact, instant, deterministic.

:class:`VirtualClock` is a discrete-event clock: time only moves when the driver sleeps or waits,
and it moves from one scheduled event to the next, so every completion happens at exactly the
instant the client scheduled it. :class:`ScriptedClient` is a server and a client in one: it has
``capacity`` slots (connections), answers each request after ``service(sent)`` seconds and keeps a
log of every request, so a test can compare what the driver measured with what really happened.
With ``batch``, it reads replies as the UDP DNS client does: each is recorded
(:meth:`Driver.record`) and the freed slots are refilled (:meth:`Driver.refill`) after ``batch``
replies, and after the last reply of an instant (the socket would be drained there).
One clock drives one driver (two drivers would both advance it).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from kdoctor.probes.pressure import Driver


class VirtualClock:
    """Seconds that pass only when someone sleeps or waits."""

    def __init__(self, start: float = 1024.0) -> None:
        self.t = start
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), fn))

    def _advance(self, end: float, stop: Callable[[], bool] | None = None) -> None:
        while self._timers and self._timers[0][0] <= end:
            when, _, fn = heapq.heappop(self._timers)
            self.t = max(self.t, when)
            fn()
            if stop is not None and stop():
                return
        self.t = max(self.t, end)

    async def sleep(self, delay: float) -> None:
        self._advance(self.t + max(delay, 0.0))
        await asyncio.sleep(0)

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        if not event.is_set():
            self._advance(self.t + timeout, event.is_set)
        await asyncio.sleep(0)


@dataclass
class Sent:
    """One request as the server saw it."""

    due: float
    sent: float
    done: float


@dataclass
class ScriptedClient:
    """``capacity`` slots; each request is answered ``service(sent)`` seconds after it is sent,
    or fails with ``timeout`` when that is longer than ``timeout``."""

    clock: VirtualClock
    capacity: int
    service: Callable[[float], float]
    timeout: float = 1.0
    driver: Driver | None = None
    log: list[Sent] = field(default_factory=list)
    busy: int = 0
    most_busy: int = 0
    batch: int = 0
    refills: list[int] = field(default_factory=list)
    """How many requests each refill sent (batching only)."""
    sends: int = 0
    held: int = 0
    """Requests taken since the last flush: none may be left when the next event happens."""
    _read: int = 0

    def flush(self) -> None:
        self.held = 0

    def _check_flushed(self) -> None:
        # A client may hold what try_send took until flush (the UDP client does): the driver must
        # have flushed before any other event happens, or those requests would sit unsent.
        assert self.held == 0, f"{self.held} request(s) taken by try_send and never flushed"

    def try_send(self, due: float, now: float) -> bool:
        if self.busy >= self.capacity:
            return False
        self.busy += 1
        self.sends += 1
        self.held += 1
        self.most_busy = max(self.most_busy, self.busy)
        took = self.service(now)
        if took > self.timeout:
            self.clock.call_at(now + self.timeout, lambda: self._done(due, now, None, "timeout"))
        else:
            self.clock.call_at(now + took, lambda: self._done(due, now, "200", None))
        return True

    def _done(self, due: float, sent: float, code: str | None, error: str | None) -> None:
        self._check_flushed()
        self.busy -= 1
        self.log.append(Sent(due, sent, self.clock.t))
        assert self.driver is not None
        if not self.batch:
            self.driver.complete(due, sent, code is not None, code, error, 100 if code else 0)
            return
        self.driver.record(due, sent, code is not None, code, error, 100 if code else 0)
        self._read += 1
        if self._read == 1:
            # Runs after every event already due at this instant: the end of the burst.
            self.clock.call_at(self.clock.t, self._drained)
        if self._read == self.batch:
            self._refill()

    def _drained(self) -> None:
        if self._read:
            self._refill()

    def _refill(self) -> None:
        self._read = 0
        assert self.driver is not None
        before = self.sends
        self.driver.refill()
        self.refills.append(self.sends - before)

    def sweep(self, now: float) -> None:
        """Timeouts are scheduled on the clock; nothing to sweep."""
        self._check_flushed()

    def in_flight(self) -> int:
        return self.busy

    async def aclose(self) -> None:
        self._check_flushed()
