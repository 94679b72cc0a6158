"""Delivering a notification: one HTTP POST of JSON, with a timeout per attempt and bounded
retries with exponential backoff.

A timeout, a refused connection, a 5xx or a 429 is retried (``retries`` times, waiting 0.5 s,
1 s, 2 s, ... at most 5 s between attempts); another 4xx is not (the request itself is wrong,
and repeating it cannot help). A delivery that still fails is logged (without the URL, which may
carry a token) and counted in ``kdoctor_notification_failures_total``; it never raises to its
caller, and a round is never affected (its report is written before anyone is told).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests
from prometheus_client import Counter
from prometheus_client.registry import CollectorRegistry

from kdoctor.signals.receivers import Receiver

log = logging.getLogger(__name__)

__all__ = ["Delivery"]

BACKOFF_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 5.0


class Delivery:
    """Posts payloads to receivers and counts the outcome (metrics in ``registry``)."""

    def __init__(self, registry: CollectorRegistry, *, sleep: Callable[[float], None] = time.sleep) -> None:
        labels = ("receiver", "type", "event")
        self.sent = Counter("kdoctor_notifications", "Notifications delivered.", labels, registry=registry)
        self.failed = Counter("kdoctor_notification_failures",
                              "Notifications given up on after their retries.", labels, registry=registry)
        self._sleep = sleep
        self._session = requests.Session()

    def post(self, receiver: Receiver, event: str, payload: Any, path: str = "") -> bool:
        """POST ``payload`` as JSON to the receiver's URL (+ ``path``); ``True`` when delivered."""
        labels = (receiver.name, receiver.type, event)
        try:
            url = receiver.resolved_url()
            if path and not url.rstrip("/").endswith(path):
                url = url.rstrip("/") + path
            headers = {"User-Agent": "kdoctor"}
            token = receiver.token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
        except Exception as exc:  # a rotated Secret that went missing: say so, count it, go on
            log.error("notification to %s (%s) not sent: %s", receiver.name, event, exc)
            self.failed.labels(*labels).inc()
            return False
        problem = ""
        for attempt in range(receiver.retries + 1):
            if attempt:
                self._sleep(min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2 ** (attempt - 1)))
            try:
                answer = self._session.post(url, json=payload, headers=headers, timeout=receiver.timeout_seconds,
                                            allow_redirects=False)
            except requests.RequestException as exc:
                problem = type(exc).__name__  # never the message: it may quote the URL and its token
                continue
            if answer.status_code < 300:
                self.sent.labels(*labels).inc()
                return True
            problem = f"HTTP {answer.status_code}"
            if answer.status_code < 500 and answer.status_code != 429:
                break
        log.error("notification to %s (%s) failed after %d attempt(s): %s", receiver.name, event, attempt + 1,
                  problem)
        self.failed.labels(*labels).inc()
        return False

    def close(self) -> None:
        self._session.close()
