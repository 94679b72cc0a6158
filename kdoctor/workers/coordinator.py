"""``kdoctor coordinator``: plans rounds, finalizes them, and enforces every round's deadline.

A Celery worker on the ``kdoctor.coordinator`` queue (thread pool: planning and finalizing are
short and I/O-bound) plus two threads: a heartbeat, so clients refuse to submit when no
coordinator runs, and the sweeper, which finalizes every round whose deadline has passed.
Several coordinators may run; the round claim in Redis keeps reports unique.
"""

from __future__ import annotations

import logging
import os
import socket

from kdoctor import __version__
from kdoctor.settings import Settings
from kdoctor.store import nodes as registry
from kdoctor.store.connection import ping, redis_client
from kdoctor.store.keys import COORDINATOR_QUEUE
from kdoctor.tasks import coordinator
from kdoctor.tasks.app import build_app
from kdoctor.workers.heartbeat import Heartbeat

log = logging.getLogger(__name__)

# How often the sweeper looks for rounds past their deadline (s): bounds how late a report of a
# round with a dead node can be.
SWEEP_INTERVAL = 0.25


def run_coordinator(settings: Settings, concurrency: int = 4) -> int:
    """Run the coordinator until stopped; returns the process exit code."""
    client = redis_client(settings)
    ping(client, settings)
    ident = f"{socket.gethostname()}-{os.getpid()}"
    info: dict[str, object] = {"id": ident, "host": socket.gethostname(), "pid": os.getpid(),
                               "version": __version__}
    beat = Heartbeat(lambda: registry.coordinator_beat(client, ident, info), settings.heartbeat_seconds,
                     "coordinator-heartbeat").start()

    app = build_app(settings)

    def sweep() -> None:
        coordinator.sweep(client, settings)

    sweeper = Heartbeat(sweep, SWEEP_INTERVAL, "deadline-sweeper").start()
    try:
        code = app.start(argv=[
            "worker",
            "--hostname", f"coordinator@{ident}",
            "--queues", COORDINATOR_QUEUE,
            "--pool", "threads",
            "--concurrency", str(concurrency),
            "--prefetch-multiplier", "1",
            "--without-gossip",
            "--without-mingle",
            "--loglevel", settings.log_level,
        ])
    finally:
        sweeper.stop()
        beat.stop()
        try:
            registry.coordinator_gone(client, ident)
        except Exception as exc:
            log.warning("could not deregister coordinator %s: %s", ident, exc)
    return int(code or 0)


__all__ = ["run_coordinator"]
