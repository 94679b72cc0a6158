"""Celery events only while someone watches: a worker sends none until Flower asks for them.

A Celery worker normally sends a heartbeat event every 2 s (and, with ``-E``, one per task
state): at 1,000 nodes that is 500 messages a second that nobody reads unless Flower runs. Here
the worker disables its event dispatcher once it has started, and the ``enable_events`` remote
control command (which Flower sends every 5 s while it runs) turns it on, heartbeats and task
events together; when nobody has asked for :data:`EVENTS_IDLE_SECONDS`, it is turned off again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import bootsteps
from celery.worker.control import Panel, ok

log = logging.getLogger(__name__)

EVENTS_IDLE_SECONDS = 30.0
"""Events stop this long after the last ``enable_events`` (Flower repeats it every 5 s)."""


class _Demand:
    asked = float("-inf")


def _wanted() -> bool:
    return time.monotonic() - _Demand.asked < EVENTS_IDLE_SECONDS


def enable_events(state: Any) -> dict[str, str]:
    """Send worker and task events (heartbeats included) for the next while."""
    _Demand.asked = time.monotonic()
    dispatcher = state.consumer.event_dispatcher
    if dispatcher is None:
        return {"error": "event dispatcher unavailable"}
    if dispatcher.groups is not None:
        dispatcher.groups.add("task")
    if not dispatcher.enabled:
        dispatcher.enable()  # starts Celery's heartbeat timer too (it listens for this)
        log.info("events enabled on request")
    return ok("events enabled")  # type: ignore[no-any-return]


class OnDemandEvents(bootsteps.StartStopStep):  # type: ignore[misc]
    """Keeps the consumer's event dispatcher off unless events were asked for recently."""

    requires = ("celery.worker.consumer.heart:Heart",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.tref: Any = None

    def start(self, c: Any) -> None:
        self._settle(c)
        self.tref = c.timer.call_repeatedly(5.0, self._settle, (c,))

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            c.timer.cancel(self.tref)
            self.tref = None

    def _settle(self, c: Any) -> None:
        dispatcher = c.event_dispatcher
        if dispatcher is not None and dispatcher.enabled and not _wanted():
            if dispatcher.groups is not None:
                dispatcher.groups.discard("task")
            dispatcher.disable()
            if dispatcher.connection is not None:
                # Its Redis connection too: enabling publishes on a fresh one.
                try:
                    dispatcher.connection.release()
                except Exception as exc:  # an idle connection left open is harmless
                    log.debug("could not close the events connection: %s", exc)


def install(app: Any) -> None:
    """Make ``app``'s workers send events on demand only."""
    Panel.register(enable_events, type="control", name="enable_events")
    app.steps["consumer"].add(OnDemandEvents)
