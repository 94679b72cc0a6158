"""``kdoctor beat``: celery beat with the Redis-backed scheduler that fires scheduled rounds.

Run one or more: only the beat holding the Redis lock fires; the others wait and take over
within the lock timeout (10 s) if it dies.
"""

from __future__ import annotations

import os
import tempfile

from kdoctor.settings import Settings
from kdoctor.store.connection import ping, redis_client
from kdoctor.tasks.app import build_app


def run_beat(settings: Settings) -> int:
    """Run beat until stopped; returns the exit code."""
    ping(redis_client(settings), settings)
    app = build_app(settings, "beat")

    # Beat wants a pid/schedule file location even though redbeat keeps its state in Redis.
    workdir = tempfile.mkdtemp(prefix="kdoctor-beat-")
    code = app.start(argv=[
        "beat",
        "--scheduler", "redbeat.RedBeatScheduler",
        "--max-interval", "1",
        "--schedule", os.path.join(workdir, "unused-schedule"),
        "--loglevel", settings.log_level,
    ])
    return int(code or 0)
