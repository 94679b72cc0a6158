"""What a worker's heartbeat vouches for: its Celery consumer is running and its agent answers.

A heartbeat thread that only proves that a thread runs would keep a node "live" while its
consumer is wedged or its agent is dead, and every round would blame that node without saying
why. So the consumer ticks (:class:`ConsumerTick`, a timer in Celery's own consumer loop) and the
heartbeat checks the tick's age and the agent's answer before it calls the node live.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import bootsteps

from kdoctor.workers.healthfile import Health, read_health, write_health

__all__ = ["ConsumerTick", "Health", "Vitals", "consumer_verdict", "install", "read_health", "write_health"]

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0


class Vitals:
    """When the consumer last ran its loop (``time.monotonic``); 0 before it first did."""

    consumer_tick = 0.0

    @classmethod
    def consumer_silence(cls) -> float:
        """Seconds since the consumer's loop last ran (infinite before it started)."""
        return time.monotonic() - cls.consumer_tick if cls.consumer_tick else float("inf")


class ConsumerTick(bootsteps.StartStopStep):  # type: ignore[misc]
    """A timer in the consumer's event loop: it runs only while the consumer does."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.tref: Any = None

    def start(self, c: Any) -> None:
        _tick()
        self.tref = c.timer.call_repeatedly(TICK_SECONDS, _tick)
        c.timer.call_after(IDLE_TRIM_SECONDS, _close_idle_connections, (c,))

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            c.timer.cancel(self.tref)
            self.tref = None


def _tick() -> None:
    Vitals.consumer_tick = time.monotonic()


# Once the consumer has declared its queues, the Redis connections kombu opened for that (one per
# channel's command pool) sit idle for good: closed, they are opened again if ever needed. What
# stays: the queue's BRPOP, remote control's subscription, and kdoctor's own heartbeat client.
IDLE_TRIM_SECONDS = 5.0


def _close_idle_connections(c: Any) -> None:
    transport = getattr(c.connection, "transport", None)
    channels = list(getattr(transport, "channels", None) or [])
    pidbox = getattr(getattr(c, "pidbox_node", None), "channel", None)
    if pidbox is not None and pidbox not in channels:
        channels.append(pidbox)
    for channel in channels:
        for pool in (getattr(channel, "_pool", None), getattr(channel, "_async_pool", None)):
            if pool is None:
                continue
            try:
                pool.disconnect(inuse_connections=False)
            except Exception as exc:  # best effort: an open idle connection is harmless
                log.debug("could not close idle Redis connections: %s", exc)


def install(app: Any) -> None:
    """Make ``app``'s workers tick (and close the connections they no longer need)."""
    app.steps["consumer"].add(ConsumerTick)


def consumer_verdict(role: str, settings_stall: float, started: bool) -> Health:
    """A Celery role's health from its consumer's silence: not ready past ``stall`` seconds, not
    alive past twice that (then the role exits or is restarted; see :mod:`kdoctor.workers.node`)."""
    silence = Vitals.consumer_silence()
    if not started:
        return Health(role, alive=True, ready=False, why="starting")
    if silence > 2 * settings_stall:
        return Health(role, alive=False, ready=False, why=f"its Celery consumer has not run for {silence:.0f} s")
    if silence > settings_stall:
        return Health(role, alive=True, ready=False, why=f"its Celery consumer has not run for {silence:.0f} s")
    return Health(role, alive=True, ready=True)


