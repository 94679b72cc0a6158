"""``kdoctor beat``: celery beat with the Redis-backed scheduler that fires scheduled rounds.

Run one or more: only the beat holding the Redis lock fires; the others wait and take over
within the lock timeout (10 s) if it dies. A beat's health file says ``ready`` while it holds the
lock and ticks, ``alive`` but not ready while it stands by, and not alive when it held the lock
and its loop stopped ticking for twice ``stall_seconds``.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from redbeat import RedBeatScheduler

from kdoctor.settings import Settings
from kdoctor.store.connection import ping, redis_client
from kdoctor.tasks.app import build_app
from kdoctor.workers import health
from kdoctor.workers.heartbeat import Heartbeat


class _Ticks:
    last = 0.0  # time.monotonic() of the active beat's last tick; 0 while standing by


class TickingScheduler(RedBeatScheduler):  # type: ignore[misc]
    """redbeat's scheduler, noting each tick of the beat that holds the lock."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        _Ticks.last = time.monotonic()
        return float(super().tick(*args, **kwargs))


def verdict(stall: float, now: float | None = None) -> health.Health:
    """The beat's health from its ticks."""
    if not _Ticks.last:
        return health.Health("beat", alive=True, ready=False, why="standing by for the beat lock")
    silence = (time.monotonic() if now is None else now) - _Ticks.last
    if silence > 2 * stall:
        return health.Health("beat", alive=False, ready=False, why=f"its loop has not ticked for {silence:.0f} s")
    return health.Health("beat", alive=True, ready=silence <= stall,
                         why="" if silence <= stall else f"its loop has not ticked for {silence:.0f} s")


def run_beat(settings: Settings) -> int:
    """Run beat until stopped; returns the exit code."""
    ping(redis_client(settings), settings)
    app = build_app(settings, "beat")
    watch = Heartbeat(lambda: health.write_health(settings.health_file, verdict(settings.stall_seconds)),
                      settings.heartbeat_seconds, "beat-health")
    if settings.health_file:
        watch.start()
    # Beat wants a pid/schedule file location even though redbeat keeps its state in Redis.
    workdir = tempfile.mkdtemp(prefix="kdoctor-beat-")
    try:
        code = app.start(argv=[
            "beat",
            "--scheduler", f"{TickingScheduler.__module__}:{TickingScheduler.__name__}",
            "--max-interval", "1",
            "--schedule", os.path.join(workdir, "unused-schedule"),
            "--loglevel", settings.log_level,
        ])
    finally:
        watch.stop()
    return int(code or 0)
