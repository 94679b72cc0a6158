"""The open-loop pressure driver on a virtual clock: exact counts, latency from the due time
(coordinated omission), late and unsent accounting, bounded concurrency, closed loop.

Numbers are binary fractions (qps 128, service times of 1/2ⁿ s) so that the virtual clock adds
them exactly and every count below is exact, not approximate.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from kdoctor.probes.pressure import TIMER_SLACK, Driver, DriverStats, Pace
from kdoctor.specs.latency import Latency
from tests.unit.virtual import ScriptedClient, VirtualClock

T0 = 1024.5  # the clock starts at 1024.0: the driver waits half a second for its start


def drive(pace: Pace, capacity: int, service: Callable[[float], float],
          timeout: float = 1.0, batch: int = 0) -> tuple[DriverStats, ScriptedClient]:
    clock = VirtualClock()
    client = ScriptedClient(clock, capacity, service, timeout, batch=batch)
    driver = Driver(client, pace, clock)
    client.driver = driver
    stats = asyncio.run(driver.run(T0))
    return stats, client


def samples_over(stats: DriverStats, threshold_s: float) -> int:
    """How many recorded latencies exceed ``threshold_s`` (read from the HDR histogram)."""
    stats.latency.flush()
    return sum(item.count_added_in_this_iter_step for item in stats.latency.hist.get_recorded_iterator()
               if item.value_iterated_to > threshold_s * 1e6)


def test_every_due_request_is_sent_once_on_time_and_measured() -> None:
    stats, client = drive(Pace(qps=128, duration=2, timeout=1.0), capacity=4, service=lambda _: 1 / 256)
    assert stats.intended == 256 == stats.sent == stats.successes == len(client.log)
    assert stats.unsent == 0 and stats.late == 0 and not stats.errors
    dues = [s.due for s in sorted(client.log, key=lambda s: s.due)]
    assert dues == [T0 + i / 128 for i in range(256)]  # exactly the schedule, nothing twice
    assert all(abs(s.sent - s.due) < 1e-6 for s in client.log)
    # Every latency is the service time, to the microsecond.
    assert stats.latency.count == 256
    assert stats.latency.min_us == stats.latency.max_us == int(1e6 / 256)
    assert stats.achieved_qps(128) == 128
    assert client.most_busy == 1  # 3.9 ms of service every 7.8 ms needs one slot


def test_phase_shifts_the_schedule() -> None:
    _, client = drive(Pace(qps=128, duration=1, timeout=1.0, phase=0.5), capacity=1, service=lambda _: 1 / 512)
    assert min(s.due for s in client.log) == T0 + 0.5 / 128


def test_latency_counts_from_the_due_time_not_the_send() -> None:
    stall_at = T0 + 1.0

    def service(sent: float) -> float:
        # One request stalls the only connection for 250 ms; every other is answered in 2 ms.
        return 0.25 if stall_at <= sent < stall_at + 1 / 256 else 1 / 512

    stats, client = drive(Pace(qps=128, duration=2, timeout=1.0), capacity=1, service=service)
    assert stats.sent == 256 and stats.unsent == 0
    # Measured from the send, as a closed-loop client does, only the stalled request is slow...
    assert sum(1 for s in client.log if s.done - s.sent > 0.05) == 1
    # ... but the 31 requests due during the stall waited for it, and the report says so.
    waited = [s for s in client.log if s.done - s.due - TIMER_SLACK > 0.05]
    assert len(waited) > 20
    assert not any(abs(s.done - s.due - TIMER_SLACK - 0.05) < 0.001 for s in client.log)  # none on the edge
    assert samples_over(stats, 0.05) == len(waited)
    assert stats.latency.max_us >= 245_000
    assert stats.late == len([s for s in client.log if s.sent - s.due > 0.010])


def test_tokens_that_cannot_go_out_in_time_are_unsent_never_burst() -> None:
    # One connection answering in 31.25 ms carries 32 requests/s; 128/s are due. Tokens wait for
    # it at most the lateness bound (the timeout, 250 ms), then count as unsent.
    pace = Pace(qps=128, duration=1, timeout=0.25)
    stats, client = drive(pace, capacity=1, service=lambda _: 1 / 32, timeout=0.25)
    assert stats.sent + stats.unsent == stats.intended == 128
    assert stats.sent == len(client.log) and stats.unsent > 60
    assert client.most_busy == 1  # the client's bound holds: nothing sent while the slot is busy
    assert all(s.sent - s.due <= pace.lateness_bound + 1e-9 for s in client.log)
    assert stats.late == sum(1 for s in client.log if s.sent - s.due > pace.late_threshold) > 0
    # Sends are spaced by the server, never bunched after a backlog.
    sends = sorted(s.sent for s in client.log)
    assert min(b - a for a, b in itertools.pairwise(sends)) >= 1 / 32 - 1e-9
    assert stats.achieved_qps(128) < 64


def test_concurrency_is_bounded_by_the_client() -> None:
    stats, client = drive(Pace(qps=128, duration=1, timeout=1.0), capacity=5, service=lambda _: 1 / 8)
    # 125 ms of service at 128/s wants 16 requests in flight; the client allows 5.
    assert client.most_busy == 5
    assert stats.sent + stats.unsent == 128 and stats.sent == len(client.log)
    # 5 slots answering 8 requests/s each carry 40/s: tokens wait in the backlog for a free slot,
    # at most the lateness bound (1 s), so 80 go out in the 2 s window and the rest are unsent.
    assert stats.sent == 80 and stats.unsent == 48
    assert max(s.sent - s.due for s in client.log) <= 1.0


def test_timeouts_are_errors_without_latency() -> None:
    stats, client = drive(Pace(qps=128, duration=1, timeout=0.125), capacity=64, service=lambda _: 0.5,
                          timeout=0.125)
    assert stats.sent == 128 and stats.successes == 0
    assert stats.errors == {"timeout": 128}
    assert stats.latency.count == 0
    assert all(abs(s.done - s.sent - 0.125) < 1e-9 for s in client.log)


def test_closed_loop_keeps_every_slot_busy_for_the_duration() -> None:
    stats, client = drive(Pace(qps=0, duration=1, timeout=1.0), capacity=4, service=lambda _: 1 / 64)
    assert client.most_busy == 4
    assert stats.sent == stats.intended == 4 * 64 == len(client.log)
    assert all(s.sent < T0 + 1 for s in client.log)
    assert stats.latency.min_us == stats.latency.max_us == int(1e6 / 64)



def test_closed_loop_refilled_in_bursts_keeps_the_counts_and_drains() -> None:
    # 8 slots answered together every 1/64 s; the client records each reply and refills the
    # freed slots once per 3 replies and at the end of the instant, as the UDP DNS client does.
    stats, client = drive(Pace(qps=0, duration=1, timeout=1.0), capacity=8, service=lambda _: 1 / 64, batch=3)
    assert client.most_busy == 8
    assert stats.sent == stats.successes == stats.intended == 8 * 64 == len(client.log)
    assert all(s.sent < T0 + 1 for s in client.log)
    assert stats.latency.min_us == stats.latency.max_us == int(1e6 / 64)
    # 8 replies per instant: refills after the 3rd and the 6th, then the last 2 at the drain;
    # each sends as many as it freed, until the duration is over (the last 64th's refills send 0).
    assert client.refills == [3, 3, 2] * 63 + [0, 0, 0]
    assert client.busy == 0


def test_open_loop_backlog_refilled_in_bursts_is_sent_or_unsent_exactly() -> None:
    # As test_concurrency_is_bounded_by_the_client, the client refilling once per 2 replies:
    # the counts and the bound are the same, since a burst only defers sends within an instant.
    stats, client = drive(Pace(qps=128, duration=1, timeout=1.0), capacity=5, service=lambda _: 1 / 8, batch=2)
    assert client.most_busy == 5
    assert stats.sent == 80 and stats.unsent == 48 and stats.sent == len(client.log) == stats.successes
    assert max(s.sent - s.due for s in client.log) <= 1.0
    dues = [s.due for s in sorted(client.log, key=lambda s: s.sent)]
    assert dues == sorted(dues)  # the backlog still leaves in schedule order


def test_open_loop_refilled_in_bursts_below_capacity_is_the_schedule() -> None:
    stats, client = drive(Pace(qps=128, duration=2, timeout=1.0), capacity=4, service=lambda _: 1 / 256, batch=32)
    assert stats.intended == 256 == stats.sent == stats.successes == len(client.log)
    assert stats.unsent == 0 and stats.late == 0
    assert all(abs(s.sent - s.due) < 1e-6 for s in client.log)


@pytest.mark.parametrize("batch", [0, 4, 16])
def test_send_lag_of_a_backlog_is_every_request_s_own(batch: int) -> None:
    # A backlog leaves in runs (up to ``batch`` tokens at one instant, 15 µs of schedule apart),
    # their lags recorded a run at a time where they share a bucket: the histogram, count, sum,
    # min and max are those of every request's own lag.
    stats, client = drive(Pace(qps=65536, duration=0.25, timeout=1.0), capacity=16, service=lambda _: 1 / 64,
                          batch=batch)
    assert stats.unsent > 0 and stats.sent > 100  # a backlog at the lateness bound: lags up to 1 s
    expected = Latency()
    for s in client.log:
        expected.record_us(max(1, int((s.sent - s.due) * 1_000_000)))
    stats.lag.flush()
    expected.flush()
    assert list(stats.lag.hist.counts) == list(expected.hist.counts)
    assert (stats.lag.count, stats.lag.sum_us, stats.lag.min_us, stats.lag.max_us) == (
        expected.count, expected.sum_us, expected.min_us, expected.max_us)
    assert stats.late == sum(1 for s in client.log if s.sent - s.due > 0.010)


def test_a_stall_longer_than_the_bound_drops_only_issued_tokens() -> None:
    # After a stall (the process descheduled for longer than the lateness bound), tokens past the
    # bound include some the run loop has not issued yet. A freed slot may drop only the backlog
    # (head .. issued): the unissued ones are counted when the loop issues them, exactly once.
    pace = Pace(qps=128, duration=4, timeout=1.0)
    clock = VirtualClock()
    driver = Driver(ScriptedClient(clock, 1, lambda _: 1 / 8, 1.0), pace, clock)
    driver._t0, driver._head, driver._next = T0, 10, 20  # tokens 10..19 issued, not yet sent
    now = T0 + 3.0  # tokens due before T0 + 2 s (the first 256) are past the 1 s bound
    assert driver._drop(now, 10, 20) == 20
    assert driver.stats.unsent == 10 and driver._head == 20
