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

__all__ = ["RECONNECTING", "ConsumerTick", "Health", "Vitals", "consumer_verdict", "install", "read_health",
           "write_health"]

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0


class Vitals:
    """When the consumer last ran its loop (``time.monotonic``); 0 before it first did. And when
    the broker was lost and came back, as the heartbeat saw it."""

    consumer_tick = 0.0
    consumer_up = False
    """Whether the consumer's steps are started: Celery stops them when it loses its broker connection
    and starts them again once it has reconnected and declared its queues. The heartbeat's own Redis
    client reconnects at once, Celery's consumer only after its back-off (seconds), and a node that
    beats "live" in between has its probe messages wait unconsumed for the whole round."""
    broker_lost = 0.0
    """When the heartbeat found Redis unreachable (0 while it is reachable)."""
    broker_back = 0.0
    """When Redis was reachable again after an outage (0 if it never was lost)."""

    @classmethod
    def consumer_silence(cls) -> float:
        """Seconds the consumer's loop has been silent through its own fault (infinite before it
        started). Without its broker a consumer cannot run: the time Redis was unreachable does
        not count, and after an outage the consumer's own reconnect (Celery backs off up to
        seconds between tries) starts a fresh count, so a Redis restart never makes a worker exit."""
        if not cls.consumer_tick:
            return float("inf")
        if cls.broker_lost:
            return max(0.0, cls.broker_lost - cls.consumer_tick)
        return time.monotonic() - max(cls.consumer_tick, cls.broker_back)

    @classmethod
    def broker_unreachable(cls) -> None:
        """The heartbeat could not reach Redis."""
        if not cls.broker_lost:
            cls.broker_lost = time.monotonic()

    @classmethod
    def broker_reachable(cls) -> None:
        """The heartbeat reached Redis."""
        if cls.broker_lost:
            cls.broker_lost = 0.0
            cls.broker_back = time.monotonic()


class ConsumerTick(bootsteps.StartStopStep):  # type: ignore[misc]
    """A timer in the consumer's event loop: it runs only while the consumer does."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.tref: Any = None

    def start(self, c: Any) -> None:
        _tick()
        Vitals.consumer_up = True
        self.tref = c.timer.call_repeatedly(TICK_SECONDS, _tick)
        c.timer.call_after(IDLE_TRIM_SECONDS, _close_idle_connections, (c,))

    def stop(self, c: Any) -> None:
        Vitals.consumer_up = False
        if self.tref is not None:
            c.timer.cancel(self.tref)
            self.tref = None


RECONNECTING = "its Celery consumer is reconnecting to Redis"


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
    if not Vitals.consumer_up:
        return Health(role, alive=True, ready=False, why=RECONNECTING)
    return Health(role, alive=True, ready=True)


