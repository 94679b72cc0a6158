"""The Celery app factory: JSON only, explicit queues, settings for long probes on many nodes.

:func:`build_app` is the one way every process gets its app (client, worker, coordinator, beat,
Flower): the settings are an argument, every task is registered with them bound, and nothing is
read from the environment. A prefork pool child inherits the app, settings included, by fork;
Redis clients are made again in each process (:class:`kdoctor.store.connection.PerProcess`).
"""

from __future__ import annotations

from celery import Celery

from kdoctor.settings import Settings
from kdoctor.store import keys
from kdoctor.store.connection import PerProcess, celery_ssl_options
from kdoctor.tasks import coordinator, probe
from kdoctor.tasks.names import FINALIZE, FIRE, PLAN

__all__ = ["build_app"]


def build_app(settings: Settings) -> Celery:
    """kdoctor's Celery app for ``settings``, with every task registered."""
    app = _configured(settings)
    clients = PerProcess(settings)
    probe.register(app, clients, settings)
    coordinator.register(app, clients, settings)
    return app


def _configured(settings: Settings) -> Celery:
    """A Celery app talking to ``settings.broker_url``, without tasks."""
    app = Celery("kdoctor", broker=settings.broker_url, backend=settings.broker_url, set_as_current=False)
    retention = int(settings.report_retention_days * 86400)
    transport = {
        # Above the longest round: a probe message is never redelivered while it runs.
        "visibility_timeout": 6 * 3600,
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        "health_check_interval": 25,
    }
    app.conf.update(
        # JSON only: a pickle payload from anyone who can write to Redis would be code execution.
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_default_queue=keys.COORDINATOR_QUEUE,
        task_routes={name: {"queue": keys.COORDINATOR_QUEUE} for name in (PLAN, FINALIZE, FIRE)},
        # Probes are bound to a deadline: a redelivered probe would measure the wrong moment.
        task_acks_late=False,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        result_backend_always_retry=True,
        redis_backend_health_check_interval=25,
        result_expires=min(retention, 7 * 86400),
        enable_utc=True,
        timezone="UTC",
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # Schedules: celery beat with redbeat, entries in Redis under our own prefix.
        beat_scheduler="redbeat.RedBeatScheduler",
        redbeat_redis_url=settings.broker_url,
        redbeat_redis_options={"retry_period": 60},
        redbeat_key_prefix=keys.BEAT_PREFIX,
        redbeat_lock_key=keys.BEAT_LOCK,
        # Beat wakes at least once a second so a seconds schedule fires on time; its lock expires
        # 10 s after a beat dies, when a standby beat takes over.
        beat_max_loop_interval=1,
        redbeat_lock_timeout=10,
    )
    ssl_options = celery_ssl_options(settings)
    if ssl_options is not None:
        app.conf.broker_use_ssl = ssl_options
        app.conf.redis_backend_use_ssl = ssl_options
        app.conf.redbeat_redis_use_ssl = ssl_options
    return app
