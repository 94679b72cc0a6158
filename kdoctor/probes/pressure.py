"""The open-loop pressure driver shared by every request kind (HTTP, NetReach, DNS).

Request ``i`` is due at ``t0 + (i + phase) / qps``. Latency is measured from the *due* time, so a
stalled server cannot hide behind a client that politely waited for it: that is the
coordinated-omission correction of wrk2 and HdrHistogram. One refinement: event-loop timers have
millisecond resolution (libuv), so a token is routinely sent up to ~1 ms after its due time with
nothing wrong anywhere. Lateness up to ``TIMER_SLACK`` is therefore not charged to the target
(latency = service time + lateness beyond the slack); any real queueing, which is what coordinated
omission hides, is counted in full. The generator's own lateness is reported separately
(``sendLagP99Ms``), and a request sent early is measured from its actual send.

The scheduler wakes at most about once per ``TICK`` and then sends every token already due: a
timer shorter than a millisecond is a busy loop on uvloop (it spins instead of sleeping), so at
10 k QPS one wakeup sends about ten tokens instead of the loop waking ten thousand times a second.

``Pace(qps=0)`` is closed-loop mode for maximum-throughput benchmarks (what wrk does): every slot
of the client is kept busy for ``duration`` seconds and latency is measured from the actual send,
since there is no schedule to be late against.

Tokens that cannot be sent at once (no free connection or slot) wait in a FIFO backlog and are
sent as soon as capacity frees, as long as they are no later than ``max_lateness``; beyond that
they are counted as ``unsent`` and dropped, never burst later. Requests sent more than
``late_threshold`` after due are counted as ``late``. Concurrency is bounded by the client.

A client plugs in through :class:`Client`: ``try_send`` starts one request now (non-blocking),
``sweep`` fails requests past their timeout, and the client reports every completion by calling
:meth:`Driver.complete` (or, reading replies in bursts, :meth:`Driver.record` for each and
:meth:`Driver.refill` once per burst). No Task object is created per request: at 10 k QPS the per-request cost
is what decides whether the generator keeps up.

Time comes from a :class:`Clock` (default :class:`LoopClock`: ``perf_counter`` and event-loop
timers), so tests can drive a driver on a virtual clock and check exact counts and latencies
without a timing threshold.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from kdoctor.specs.latency import LOWEST_US, Latency

__all__ = ["Client", "Clock", "Driver", "DriverStats", "LoopClock", "Pace", "run_all"]

# A token within this much of its due time is sent now rather than sleeping for it: event-loop
# timers have millisecond granularity (libuv rounds), so sleeping for less only spins.
EARLY_WINDOW = 0.0002
# Lateness a token may have without it being charged to the target: one scheduler tick plus the
# event loop's timer resolution (libuv rounds timers to whole milliseconds).
TIMER_SLACK = 0.002
# The scheduler sleeps at least this long between wakeups (s): shorter timers spin on uvloop.
TICK = 0.001
# Timeouts are enforced by a sweep at least this often (s); it bounds their precision.
SWEEP_INTERVAL = 0.01


class Client(Protocol):
    """What the driver needs from a protocol client."""

    def try_send(self, due: float, now: float) -> bool:
        """Start one request now, if a connection or slot is free; ``False`` when none is. The
        client may hold it until :meth:`flush`, which the driver calls before it returns."""

    def flush(self) -> None:
        """Send what :meth:`try_send` holds. The driver calls it after every burst of sends, so
        a client may hand a burst to the kernel at once (DNS over UDP: one segmented datagram,
        :mod:`kdoctor.probes.dnsclient`); a client that sends in ``try_send`` does nothing."""

    def sweep(self, now: float) -> None:
        """Fail every request whose timeout has passed (report each through ``complete``)."""

    def in_flight(self) -> int:
        """How many requests are outstanding."""

    async def aclose(self) -> None:
        """Close every connection."""


class Clock(Protocol):
    """Where a driver reads the time and waits."""

    now: Callable[[], float]
    """Seconds on a monotonic clock (read on the hot path, so a plain function)."""

    async def sleep(self, delay: float) -> None:
        """Return after ``delay`` seconds."""

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Return when ``event`` is set or after ``timeout`` seconds, whichever comes first."""


class LoopClock:
    """The real clock: ``time.perf_counter`` and the running event loop's timers."""

    now = staticmethod(time.perf_counter)

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        handle = loop.call_later(delay, _wake, fut)
        try:
            await fut
        finally:
            handle.cancel()

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


@dataclass(frozen=True)
class Pace:
    """The schedule of one driver."""

    qps: float
    """Tokens per second; 0 means closed loop: keep every slot busy for ``duration``."""
    duration: float
    timeout: float
    phase: float = 0.0
    """Offset of this target's tokens in units of 1/qps, so targets of one node do not fire in step."""
    max_lateness: float | None = None
    """Tokens later than this are dropped as ``unsent``. Default: the per-request timeout, at
    most 1 s: a request that late would measure the generator, not the target."""
    late_threshold: float = 0.010
    """Requests sent more than this after their due time count as ``late`` (s)."""
    tokens: int | None = None
    """The number of tokens, when not ``qps × duration`` (a slice of a schedule: :meth:`share`)."""

    @property
    def closed_loop(self) -> bool:
        """Whether this is a closed-loop (maximum throughput) run."""
        return self.qps <= 0

    @property
    def total(self) -> int:
        """Number of tokens: qps × duration, exactly (0 in closed-loop mode: not known ahead)."""
        if self.closed_loop:
            return 0
        if self.tokens is not None:
            return self.tokens
        return round(self.qps * self.duration)

    def share(self, index: int, count: int) -> Pace:
        """Slice ``index`` of ``count`` of this schedule, for one of ``count`` processes pressing
        one target together: token ``k`` of the whole schedule goes to slice ``k mod count``, at
        its own due time. The slices interleave, so together they are exactly this schedule
        (every token once, none moved) and their totals add up to :attr:`total`.

        Slice ``index`` runs at ``qps / count`` with its phase moved to its first token:
        its token ``m`` is token ``m × count + index`` of the whole, due at
        ``t0 + (m × count + index + phase) / qps``.
        """
        if not 0 <= index < count:
            raise ValueError(f"slice {index} of {count} does not exist")
        if count == 1 or self.closed_loop:
            return self
        total = self.total
        return replace(self, qps=self.qps / count, phase=(index + self.phase) / count,
                       tokens=max(0, (total - index + count - 1) // count))

    @property
    def lateness_bound(self) -> float:
        """The effective ``max_lateness``."""
        if self.max_lateness is not None:
            return self.max_lateness
        return min(self.timeout, 1.0)


@dataclass
class DriverStats:
    """What one driver measured."""

    intended: int = 0
    sent: int = 0
    successes: int = 0
    late: int = 0
    unsent: int = 0
    bytes: int = 0
    first_send: float = 0.0
    last_send: float = 0.0
    start: float = 0.0
    end: float = 0.0
    window: float = 0.0
    """The schedule window (s): ``duration``, stretched when the last send came after it."""
    latency: Latency = field(default_factory=Latency)
    lag: Latency = field(default_factory=Latency)
    codes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def merge(self, other: DriverStats) -> None:
        """Add what another driver measured: one target pressed by several processes, each
        with its slice of the schedule (:meth:`Pace.share`). Counts, histograms, status codes
        and errors add up; the window is the widest; the instants span both."""
        for name in ("intended", "sent", "successes", "late", "unsent", "bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.first_send and (not self.first_send or other.first_send < self.first_send):
            self.first_send = other.first_send
        self.last_send = max(self.last_send, other.last_send)
        if other.start and (not self.start or other.start < self.start):
            self.start = other.start
        self.end = max(self.end, other.end)
        self.window = max(self.window, other.window)
        self.latency.merge(other.latency)
        self.lag.merge(other.lag)
        self.codes.update(other.codes)
        self.errors.update(other.errors)

    def achieved_qps(self, qps: float) -> float:
        """Sent requests per second over the schedule window: ``qps`` exactly when every token
        went out on time, less when tokens were dropped or sent after the window."""
        if self.sent == 0:
            return 0.0
        window = self.window
        if window <= 0:  # stats not produced by Driver.run: fall back to the sending window
            window = self.last_send - self.start + (1.0 / qps if qps > 0 else 0.0)
        return self.sent / window if window > 0 else 0.0


# Every driver of this process, for progress displays (sent_so_far): read from outside the hot
# path, so counting progress costs the send loop nothing.
_DRIVERS: weakref.WeakSet[Driver] = weakref.WeakSet()


def sent_so_far() -> int:
    """Requests sent so far by the drivers of this process (a probe's process runs one round)."""
    return sum(driver.stats.sent for driver in list(_DRIVERS))


class Driver:
    """Runs one target's token schedule against one client, on ``clock`` (default: the real one)."""

    def __init__(self, client: Client, pace: Pace, clock: Clock | None = None) -> None:
        _DRIVERS.add(self)
        self.client = client
        self.pace = pace
        self.clock: Clock = clock or LoopClock()
        self._now = self.clock.now
        self.stats = DriverStats(intended=pace.total)
        # The backlog is the tokens ``_head`` to ``_next`` (issued, not yet sent or dropped): a
        # range of the schedule, not a queue of due times, since tokens leave it in order. At a
        # rate the generator cannot hold, hundreds of thousands of tokens a second are dropped;
        # as a range they are dropped in one step instead of one queue operation each.
        self._t0 = 0.0
        self._head = 0
        self._bound = pace.lateness_bound
        self._phase = pace.phase
        self._late_threshold = pace.late_threshold
        self._lag_us = self.stats.lag.record_us
        self._latency_us = self.stats.latency.record_us
        self._interval = 1.0 / pace.qps if pace.qps > 0 else 0.0
        self._next = 0
        self._drained = asyncio.Event()
        self._refill = False
        self._stop = 0.0

    def complete(self, due: float, sent: float, ok: bool, code: str | None, error: str | None,
                 nbytes: int) -> None:
        """Record one finished request and refill its slot (called by the client, once per
        request: HTTP's hot path). In closed loop the slot is used at once; otherwise the
        backlog's next token takes it. When nothing is left to send or in flight, the run loop
        is told."""
        now = self.record(due, sent, ok, code, error, nbytes)
        client = self.client
        if self._refill:
            if now < self._stop and client.try_send(now, now):
                client.flush()
                stats = self.stats
                stats.sent += 1
                stats.last_send = now
            elif client.in_flight() == 0:
                self._drained.set()
        elif self._head < self._next:
            self._pump_one(now)  # the run loop sends what these slots could not
        elif self._finished_sending and client.in_flight() == 0:
            self._drained.set()

    def record(self, due: float, sent: float, ok: bool, code: str | None, error: str | None,
               nbytes: int) -> float:
        """Record one finished request without refilling its slot; returns the instant it was
        recorded. A client that reads replies in bursts records each and then calls
        :meth:`refill` once: the freed slots are sent together, so the server is woken once per
        burst instead of once per reply (on loopback, waking it is the largest kernel cost)."""
        now = self._now()
        stats = self.stats
        if code is not None:
            codes = stats.codes
            codes[code] = codes[code] + 1  # a Counter's "+=" costs 1.6 x this (measured)
            # Latency counts every request that got an answer, whatever the answer: a 500 took
            # real time. Requests without one (timeout, refused, reset) are errors, not latencies.
            lateness = sent - due - TIMER_SLACK
            self._latency_us(int((now - sent + (lateness if lateness > 0 else 0.0)) * 1_000_000))
        if error is not None:
            stats.errors[error] += 1
        if ok:
            stats.successes += 1
        stats.bytes += nbytes
        return now

    def refill(self) -> None:
        """Send into every slot freed by the requests recorded (:meth:`record`) since the last
        refill: in closed loop until the client is full, otherwise from the backlog."""
        now = self._now()
        if self._refill:
            if now < self._stop:
                self._fill(now)
            if self.client.in_flight() == 0:
                self._drained.set()
        elif self._head < self._next:
            self._pump(now)
        elif self._finished_sending and self.client.in_flight() == 0:
            self._drained.set()

    @property
    def _finished_sending(self) -> bool:
        return self._head == self.pace.total

    def _pump(self, now: float) -> None:
        """Send backlogged tokens while capacity lasts; drop those past the lateness bound (one
        freed slot: :meth:`_pump_one`)."""
        head, issued = self._head, self._next
        if head == issued:
            return
        t0, phase, interval = self._t0, self._phase, self._interval
        due = t0 + (head + phase) * interval
        if now - due > self._bound:
            head = self._drop(now, head, issued)
            if head == issued:
                return
            due = t0 + (head + phase) * interval
        client, late_threshold = self.client, self._late_threshold
        first, late, lag_us, total = head, 0, 0, 0
        while client.try_send(due, now):
            head += 1  # clients never complete a request inside try_send: no re-entry here
            lag = now - due
            lag_us = int(lag * 1_000_000)  # as Latency.record would take it, for the run's sum
            if lag_us < LOWEST_US:
                lag_us = LOWEST_US
            total += lag_us
            if lag > late_threshold:
                late += 1
            if head == issued:
                break
            due = t0 + (head + phase) * interval
        self._head = head
        if head == first:
            return
        client.flush()
        # The counts once per pump, not per request: this loop is the hot path. The lags of
        # tokens first..head-1 fall from the first's to lag_us; recorded as one run when they
        # share a histogram bucket, else again one by one from their due times.
        stats = self.stats
        if head - first == 1:  # no run to speak of
            self._lag_us(lag_us)
        elif not stats.lag.record_run_us(max(LOWEST_US, int((now - (t0 + (first + phase) * interval)) * 1_000_000)),
                                         lag_us, head - first, total):
            record = self._lag_us
            for token in range(first, head):
                record(max(LOWEST_US, int((now - (t0 + (token + phase) * interval)) * 1_000_000)))
        if stats.sent == 0:
            stats.first_send = now
        stats.sent += head - first
        stats.last_send = now
        stats.late += late

    def _pump_one(self, now: float) -> None:
        """:meth:`_pump` for the one slot a finished request freed (HTTP's refill, once per
        response): the head token, or the first one not past the lateness bound. At a rate the
        generator cannot hold this runs for every request, so it is :meth:`_pump` without the
        loop and the run bookkeeping."""
        head, t0, phase, interval = self._head, self._t0, self._phase, self._interval
        due = t0 + (head + phase) * interval
        if now - due > self._bound:
            head = self._drop(now, head, self._next)
            if head == self._next:
                return
            due = t0 + (head + phase) * interval
        client = self.client
        if not client.try_send(due, now):
            return
        client.flush()
        self._head = head + 1
        lag = now - due
        self._lag_us(int(lag * 1_000_000))  # clamped to LOWEST_US there, as _pump does
        stats = self.stats
        if stats.sent == 0:
            stats.first_send = now
        stats.sent += 1
        stats.last_send = now
        if lag > self._late_threshold:
            stats.late += 1

    def _drop(self, now: float, head: int, issued: int) -> int:
        """Count the backlogged tokens past the lateness bound as unsent; returns the new head.
        Tokens are due in order, so those are a prefix of the backlog: its end is found
        arithmetically, then settled on the exact test of each token."""
        t0, phase, interval, bound = self._t0, self._phase, self._interval, self._bound
        first = int((now - bound - t0) / interval - phase)
        if first < head:  # not min() / max(): at a rate the generator cannot hold, this runs
            first = head  # once per request, and the builtins' calls are a third of its cost
        elif first > issued:
            first = issued
        while first > head and not now - (t0 + (first - 1 + phase) * interval) > bound:
            first -= 1
        while first < issued and now - (t0 + (first + phase) * interval) > bound:
            first += 1
        self.stats.unsent += first - head
        self._head = first
        return first

    def _fill(self, now: float) -> None:
        """Closed loop: start requests until the client has no free slot."""
        stats, client = self.stats, self.client
        while client.try_send(now, now):
            stats.sent += 1
            if stats.sent == 1:
                stats.first_send = now
            stats.last_send = now
        client.flush()

    async def _run_closed(self, t0: float) -> DriverStats:
        pace, stats, clock = self.pace, self.stats, self.clock
        self._stop = t0 + pace.duration
        delay = t0 - self._now()
        if delay > 0:
            await clock.sleep(delay)
        self._refill = True
        self._fill(self._now())
        while True:
            now = self._now()
            self.client.sweep(now)
            if now >= self._stop and self.client.in_flight() == 0:
                break
            if now < self._stop and self.client.in_flight() == 0:
                self._fill(now)  # every slot failed at once (e.g. refused): try again next tick
            self._drained.clear()
            await clock.wait(self._drained, SWEEP_INTERVAL)
        self._refill = False
        stats.end = self._now()
        stats.intended = stats.sent
        stats.window = pace.duration
        return stats

    async def run(self, t0: float) -> DriverStats:
        """Issue every token starting at ``t0`` (a ``time.perf_counter`` instant), then wait for
        the requests in flight to finish or time out."""
        pace, stats, clock, clock_now = self.pace, self.stats, self.clock, self._now
        stats.start = t0
        if pace.closed_loop:
            return await self._run_closed(t0)
        total, interval, phase = pace.total, self._interval, pace.phase
        self._t0 = t0
        self._next = self._head = 0
        last_sweep = 0.0
        while self._next < total:
            now = clock_now()
            horizon = now + EARLY_WINDOW
            # Issue every token due by the horizon: found arithmetically, settled on the exact test.
            issued = min(total, max(self._next, int((horizon - t0) / interval - phase)))
            while issued > self._next and t0 + (issued - 1 + phase) * interval > horizon:
                issued -= 1
            while issued < total and t0 + (issued + phase) * interval <= horizon:
                issued += 1
            self._next = issued
            self._pump(now)
            if now - last_sweep >= SWEEP_INTERVAL:
                self.client.sweep(now)
                last_sweep = now
            if self._next < total:
                wake = t0 + (self._next + phase) * interval
                delay = min(max(wake - clock_now(), TICK), SWEEP_INTERVAL)
                await clock.sleep(delay)
        # Every token is issued or backlogged: keep pumping and sweeping until nothing is left.
        while self._head < total or self.client.in_flight():
            now = clock_now()
            self._pump(now)
            self.client.sweep(now)
            if self._head == total and not self.client.in_flight():
                break
            self._drained.clear()
            await clock.wait(self._drained, SWEEP_INTERVAL)
        stats.end = clock_now()
        # The schedule spans exactly ``duration`` from the first token's due time; a last send
        # after that stretches the window, so a generator that fell behind shows a lower rate.
        first_due = t0 + phase * interval
        stats.window = max(pace.duration, stats.last_send - first_due + interval)
        return stats


async def run_all(drivers: Sequence[Driver], t0: float) -> list[DriverStats]:
    """Run several drivers together from ``t0`` and close every client afterwards, whatever
    happened (a cancelled probe must not leave sockets open)."""
    try:
        return list(await asyncio.gather(*(driver.run(t0) for driver in drivers)))
    finally:
        for driver in drivers:
            await driver.client.aclose()


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
