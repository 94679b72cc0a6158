"""The Celery app factory: JSON only, explicit queues, settings for long probes on many nodes.

:func:`build_app` is the one way every process gets its app (client, worker, coordinator, beat,
Flower): the settings are an argument, every task is registered with them bound, and nothing is
read from the environment. A prefork pool child inherits the app, settings included, by fork;
Redis clients are made again in each process (:class:`kdoctor.store.connection.PerProcess`).
"""

from __future__ import annotations

from typing import Any, Literal

from celery import Celery

from kdoctor.settings import Settings
from kdoctor.store import keys
from kdoctor.store.connection import PerProcess, broker, celery_ssl_options, sentinel_kwargs
from kdoctor.tasks.names import FIRE, PLAN

__all__ = ["Role", "build_app"]

Role = Literal["client", "worker", "coordinator", "beat", "flower"]


def build_app(settings: Settings, role: Role = "client") -> Celery:
    """kdoctor's Celery app for ``settings``, with the tasks ``role`` runs registered.

    A node's worker runs ``kdoctor.probe``, a coordinator ``kdoctor.plan`` and ``kdoctor.fire``;
    the others only send tasks by name. Each role imports only its own tasks' modules, which keeps
    a node's worker small (the planner and report code are not loaded there).
    """
    app = _configured(settings)
    clients = PerProcess(settings)
    if role == "worker":
        from kdoctor.tasks import probe

        probe.register(app, clients, settings)
    elif role == "coordinator":
        from kdoctor.tasks import coordinator

        coordinator.register(app, clients, settings)
    return app


def _configured(settings: Settings) -> Celery:
    """A Celery app talking to ``settings.broker_url``, without tasks."""
    # No result backend: results travel in kdoctor's own hash (kdoctor.store.rounds), so Celery
    # writes no celery-task-meta key that nobody would read.
    where = broker(settings)
    app = Celery("kdoctor", broker=where.kombu_url, backend=None, set_as_current=False)
    transport: dict[str, Any] = {
        # Above the longest round: a probe message is never redelivered while it runs.
        "visibility_timeout": 6 * 3600,
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        "health_check_interval": 25,
    }
    if where.sentinels:
        transport.update(master_name=settings.redis_sentinel_master, sentinel_kwargs=sentinel_kwargs(settings))
    app.conf.update(
        # JSON only: a pickle payload from anyone who can write to Redis would be code execution.
        task_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=keys.COORDINATOR_QUEUE,
        task_routes={name: {"queue": keys.COORDINATOR_QUEUE} for name in (PLAN, FIRE)},
        # Events only when someone watches (Flower asks for them; kdoctor.workers.events).
        worker_send_task_events=False,
        task_send_sent_event=False,
        # Probes are bound to a deadline: a redelivered probe would measure the wrong moment.
        task_acks_late=False,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        # Publishing connections are not kept open between uses: a node's worker publishes
        # nothing but the rare events, and idle pooled connections were half of its Redis
        # connections (a thousand nodes' worth of them on one Redis).
        broker_pool_limit=0,
        broker_transport_options=transport,
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
    if where.sentinels:
        # redbeat finds the master through the same sentinels (its own 'redis-sentinel' form).
        app.conf.redbeat_redis_url = "redis-sentinel://"
        app.conf.redbeat_redis_options = {
            "retry_period": 60, "sentinels": list(where.sentinels), "service_name": settings.redis_sentinel_master,
            "password": where.password, "db": where.db, "socket_timeout": 5,
            "sentinel_kwargs": sentinel_kwargs(settings)}
    ssl_options = celery_ssl_options(settings)
    if ssl_options is not None:
        app.conf.broker_use_ssl = ssl_options
        app.conf.redbeat_redis_use_ssl = ssl_options
    return app
