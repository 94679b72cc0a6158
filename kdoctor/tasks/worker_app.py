"""The Celery app of kdoctor's own processes (workers, coordinator), configured from the
environment, with every task registered. Flower and the ``celery`` CLI can load it:
``celery -A kdoctor.tasks.worker_app flower``.
"""

from __future__ import annotations

from functools import cache

import redis
from celery.signals import worker_process_init

from kdoctor.connections import redis_client
from kdoctor.settings import Settings
from kdoctor.tasks import coordinator, probe
from kdoctor.tasks.celery import create_app
from kdoctor.workers import lifetime

settings = Settings.from_env()
app = create_app(settings)


@cache
def _client() -> redis.Redis:
    return redis_client(settings)


probe.register(app)
coordinator.register(app, _client, settings)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _bind_child(**_: object) -> None:
    # A pool child must not outlive its worker: an orphan finishing a probe would report for a
    # node that is already dead.
    lifetime.die_with_parent()
