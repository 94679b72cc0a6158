"""``kdoctor exporter``: kdoctor's results as Prometheus metrics, and notifications of failed
rounds and recoveries. One replica, reading Redis (why one process and not every coordinator:
:mod:`kdoctor.signals`).

It serves ``/metrics`` on ``KDOCTOR_METRICS_ADDRESS:KDOCTOR_METRICS_PORT`` behind a bearer token
or basic auth (refusing to start without one) unless the port is 0, and, with
``KDOCTOR_NOTIFY_FILE``, polls the index of task reports every :data:`POLL_SECONDS` and notifies
its receivers. Both read Redis only; a Redis that is away makes scrapes answer
``kdoctor_redis_up 0`` and polls retry, and nothing is lost (the state lives in Redis).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from kdoctor.errors import SetupError
from kdoctor.settings import Settings
from kdoctor.signals import receivers
from kdoctor.signals.delivery import Delivery
from kdoctor.signals.metrics import ResultsCollector, new_registry
from kdoctor.signals.notifier import Notifier
from kdoctor.signals.server import MetricsServer, load_credentials
from kdoctor.store.connection import PerProcess, ping
from kdoctor.workers.heartbeat import Heartbeat

log = logging.getLogger(__name__)

__all__ = ["POLL_SECONDS", "run_exporter"]

POLL_SECONDS = 2.0
"""How often the notifier looks for new reports: a failed round is told within about this."""


def run_exporter(settings: Settings, *, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); returns the exit code."""
    if settings.metrics_port == 0 and not settings.notify_file:
        raise SetupError("nothing to do: KDOCTOR_METRICS_PORT is 0 and KDOCTOR_NOTIFY_FILE is not set")
    credentials = load_credentials(settings.metrics_token_file, settings.metrics_basic_auth_file) \
        if settings.metrics_port else None
    config = receivers.load(settings.notify_file) if settings.notify_file else None
    clients = PerProcess(settings)
    ping(clients(), settings)
    registry = new_registry(ResultsCollector(clients, oneshot_seconds=settings.metrics_oneshot_seconds,
                                             node_timeout=settings.node_timeout_seconds,
                                             coordinator_timeout=settings.coordinator_timeout_seconds))
    delivery = Delivery(registry)
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    server = notifier = poller = None
    try:
        if credentials is not None:
            server = MetricsServer(registry, credentials, settings.metrics_address, settings.metrics_port).start()
            log.warning("kdoctor exporter: /metrics on %s:%d", settings.metrics_address, server.port)
        if config is not None:
            notifier = Notifier(clients, config, delivery, oneshot_seconds=settings.metrics_oneshot_seconds)
            poller = Heartbeat(notifier.poll, POLL_SECONDS, "notifier").start()
            log.warning("kdoctor exporter: notifying %d receiver(s)", len(config.receivers))
        stop.wait()
    finally:
        if poller is not None:
            poller.stop()
        if notifier is not None:
            notifier.close()
        if server is not None:
            server.close()
    return 0
