"""One clock for a whole installation: the broker's (Redis ``TIME``).

Nodes' clocks drift apart when NTP breaks, and kdoctor compares times taken on different
machines: heartbeat ages, the common start instant, round deadlines, task expiry. Judging them
on each machine's own clock would report a live node with a slow clock as ``missing``, or start a
node with a fast clock before the others. So every such instant is an instant of the broker's
clock: coordinators and workers stamp heartbeats with it, plan with it, and a node converts it to
its own clock with the offset it measured (and reports that offset, so a bad clock is seen).
"""

from __future__ import annotations

import time

import redis


def broker_now(client: redis.Redis) -> float:
    """The broker's current time, seconds since the epoch."""
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1e6


def offset(client: redis.Redis, samples: int = 3) -> float:
    """Broker time minus this machine's time, in seconds (local + offset = broker).

    The sample with the shortest round trip wins; the broker's reading is taken to lie halfway
    through it, so the error is at most half that round trip (well under a millisecond on a LAN).
    """
    best: tuple[float, float] | None = None
    for _ in range(max(1, samples)):
        before = time.time()
        remote = broker_now(client)
        after = time.time()
        rtt = after - before
        if best is None or rtt < best[0]:
            best = (rtt, remote - (before + after) / 2)
    assert best is not None
    return best[1]
