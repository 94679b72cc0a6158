"""A background thread that runs a beat function every interval until stopped.

Failures (Redis restarting, a network blip) are logged and retried on the next beat: a worker
must keep probing through a broker hiccup, and its registry entry comes back with the next beat.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from kombu.exceptions import OperationalError

from kdoctor.workers.health import Vitals

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``beat`` now and every ``interval`` seconds in a daemon thread."""

    def __init__(self, beat: Callable[[], None], interval: float, name: str) -> None:
        self._beat = beat
        self._interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._failing = False

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> Heartbeat:
        if not self.started:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.started and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def beat_now(self) -> None:
        """Beat at once instead of at the end of the current interval."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._beat()
                if self._failing:
                    log.warning("%s: heartbeat recovered", self._thread.name)
                self._failing = False
                Vitals.broker_reachable()
            except Exception as exc:  # keep beating whatever a single beat hit
                if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OperationalError):
                    Vitals.broker_unreachable()  # the consumer's silence is then not its own
                if not self._failing:
                    log.warning("%s: heartbeat failed (%s); retrying every %.1f s",
                                self._thread.name, exc, self._interval)
                self._failing = True
            self._wake.wait(self._interval)
            self._wake.clear()
