"""``kdoctor coordinator``: plans rounds, reports them, and enforces every round's deadline.

A Celery worker on the ``kdoctor.coordinator`` queue (thread pool: planning is short and
I/O-bound) plus a heartbeat thread, so clients refuse to submit when no coordinator runs, and the
sweeper: four times a second it looks for rounds that are due (past their deadline, or answered by
every node) and hands each to a small pool of report writers, so building a 1,000-node report
never delays another round's deadline. Several coordinators may run; a round's lease in Redis
keeps its report unique, and a writer that dies only delays it by the lease.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import redis
from celery.signals import worker_ready

from kdoctor import __version__
from kdoctor.settings import Settings
from kdoctor.store import nodes as registry
from kdoctor.store import rounds
from kdoctor.store.clock import broker_now
from kdoctor.store.connection import ping, redis_client
from kdoctor.store.keys import COORDINATOR_QUEUE
from kdoctor.tasks import coordinator
from kdoctor.tasks.app import build_app
from kdoctor.workers import health
from kdoctor.workers.heartbeat import Heartbeat

log = logging.getLogger(__name__)

# How often the sweeper looks for rounds past their deadline (s): bounds how late a report of a
# round with a dead node can be.
SWEEP_INTERVAL = 0.25
# Reports written at once by one coordinator; more would only share its CPU.
REPORT_WRITERS = 2


class Sweeper:
    """Finds due rounds and has them reported off the sweeping thread, each round once at a time."""

    def __init__(self, client: redis.Redis, settings: Settings, ident: str) -> None:
        self.client = client
        self.settings = settings
        self.ident = ident
        self._writers = ThreadPoolExecutor(REPORT_WRITERS, thread_name_prefix="kdoctor-report")
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def silence(self) -> float:
        """Seconds since the sweeper last looked for due rounds."""
        return time.monotonic() - self._swept

    def sweep(self) -> None:
        self._swept = time.monotonic()
        for rid in rounds.due_rounds(self.client, broker_now(self.client)):
            with self._lock:
                if rid in self._busy:
                    continue
                self._busy.add(rid)
            future = self._writers.submit(coordinator.finalize_round, self.client, self.settings, rid, self.ident)
            future.add_done_callback(functools.partial(self._done, rid))

    def _done(self, rid: str, future: Future[bool]) -> None:
        with self._lock:
            self._busy.discard(rid)
        if future.exception() is not None:
            log.error("could not report round %s (retrying at the next sweep): %s", rid, future.exception())

    def close(self) -> None:
        self._writers.shutdown(wait=True, cancel_futures=True)


def run_coordinator(settings: Settings, concurrency: int = 4) -> int:
    """Run the coordinator until stopped; returns the process exit code."""
    client = redis_client(settings)
    ping(client, settings)
    ident = f"{socket.gethostname()}-{os.getpid()}"
    info: dict[str, object] = {"id": ident, "host": socket.gethostname(), "pid": os.getpid(),
                               "version": __version__}
    ready = threading.Event()

    def beat() -> None:
        vitals = health.consumer_verdict("coordinator", settings.stall_seconds, ready.is_set())
        if vitals.alive and reporter.silence() > settings.stall_seconds:
            vitals = health.Health("coordinator", alive=False, ready=False,
                                   why=f"its deadline sweeper has not run for {reporter.silence():.0f} s")
        health.write_health(settings.health_file, vitals)
        if not vitals.alive:
            log.critical("coordinator %s: %s: exiting for a restart", ident, vitals.why)
            os._exit(70)
        registry.coordinator_beat(client, ident, info)

    app = build_app(settings, "coordinator")
    health.install(app)
    worker_ready.connect(lambda **_: ready.set(), weak=False)
    reporter = Sweeper(client, settings, ident)
    beat_thread = Heartbeat(beat, settings.heartbeat_seconds, "coordinator-heartbeat").start()
    sweeper = Heartbeat(reporter.sweep, SWEEP_INTERVAL, "deadline-sweeper").start()
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
        reporter.close()
        beat_thread.stop()
        try:
            registry.coordinator_gone(client, ident)
        except Exception as exc:
            log.warning("could not deregister coordinator %s: %s", ident, exc)
    return int(code or 0)


__all__ = ["run_coordinator"]
