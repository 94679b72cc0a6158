"""When to notify: a task's round failed after it passed (``failed``), or passed after it failed
(``recovered``); never on every passed round, and once per round however many exporters run.

The decision compares a task's newest report with what was last notified about it, kept in Redis
(:data:`kdoctor.store.keys.SIGNALS_NOTIFIED`: the round id and verdict). Moving that state is a
compare-and-set, and only the caller that moved it sends, so a round is notified once even by
two exporters, and never again after a restart. What was *told* matters, not what happened
meanwhile: an exporter that was down while a task failed and recovered says nothing (nobody was
told it failed); one that starts while a task is failing says so once.

Receivers of type ``webhook`` and ``slack`` get the two events. Alertmanager gets alerts
(:func:`kdoctor.signals.messages.alerts`): posted when a task fails, re-posted for every failing
round (a new suspect fires, one no longer named is resolved) and every ``resend_seconds`` while
the task fails (an alert not refreshed expires at its ``endsAt``, as Prometheus's do), resolved
when the task recovers or is gone.

Deliveries run on one thread per receiver (in order for that receiver; a slow one delays no
other), with the timeouts and bounded retries of :mod:`kdoctor.signals.delivery`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from kdoctor.signals import messages, tasks
from kdoctor.signals.delivery import Delivery
from kdoctor.signals.receivers import NotifyConfig, Receiver
from kdoctor.signals.record import Signals
from kdoctor.store import signals as store
from kdoctor.store.clock import broker_now

log = logging.getLogger(__name__)

__all__ = ["RESEND_SECONDS", "Notifier"]

RESEND_SECONDS = 60.0
"""How often firing alerts are re-posted to Alertmanager (Prometheus's default)."""
ALERTS_PATH = "/api/v2/alerts"


class Notifier:
    """Decides and sends notifications; call :meth:`poll` every few seconds."""

    def __init__(self, client: Callable[[], redis.Redis], config: NotifyConfig, delivery: Delivery, *,
                 oneshot_seconds: float, resend_seconds: float = RESEND_SECONDS) -> None:
        self._client = client
        self._config = config
        self._delivery = delivery
        self._oneshot = oneshot_seconds
        self._resend = resend_seconds
        self._resent = 0.0
        self._firing: dict[str, Signals] = {}  # task → its newest failed record, posted to Alertmanager
        self._lanes = {r.name: ThreadPoolExecutor(1, thread_name_prefix=f"notify-{r.name}")
                       for r in config.receivers}

    def poll(self) -> None:
        """Notify what changed since the last poll (and re-post firing alerts when due)."""
        client = self._client()
        now = broker_now(client)
        current = tasks.current(client, now, self._oneshot)
        told = store.notified(client)
        for task, entry in sorted(current.items()):
            seen_raw = told.get(task, "")
            seen = _parse(seen_raw)
            if seen.get("id") == entry.id:
                continue
            state = json.dumps({"id": entry.id, "verdict": entry.verdict})
            if store.claim_notification(client, task, seen_raw, state):
                self._changed(client, task, seen, entry.id, now)
        for task in [t for t in self._firing if t not in current]:  # removed while failing
            self._post_alerts(self._firing.pop(task), ends=now)
        if now - self._resent >= self._resend:
            self._resent = now
            for task, entry in current.items():
                if entry.verdict == "failed" and _parse(told.get(task, "")).get("id") == entry.id:
                    record = self._firing.get(task) or _load(client, entry.id)
                    if record is not None:
                        self._firing[task] = record
                        self._post_alerts(record, ends=now + 4 * self._resend)

    def _changed(self, client: redis.Redis, task: str, seen: dict[str, Any], report: str, now: float) -> None:
        record = _load(client, report)
        if record is None:
            return
        was_failing = seen.get("verdict") == "failed"
        before = self._firing.pop(task, None) or (_load(client, str(seen["id"])) if was_failing else None)
        if record.verdict == "failed":
            if not was_failing:
                self._tell("failed", record)
            if before is not None:  # resolve what this round no longer names
                fired = {_key(a) for a in messages.alerts(record, "", ends=now)}
                gone = [a for a in messages.alerts(before, "", ends=now) if _key(a) not in fired]
                if gone:
                    self._send_alerts(record.task, gone)
            self._firing[task] = record
            self._post_alerts(record, ends=now + 4 * self._resend)
        elif was_failing:
            self._tell("recovered", record)
            if before is not None:
                self._post_alerts(before, ends=now)

    def _tell(self, event: str, record: Signals) -> None:
        link = self._config.link(record.id)
        for receiver in self._wanting(record.task, ("webhook", "slack")):
            payload = messages.webhook(event, record, link) if receiver.type == "webhook" else \
                messages.slack(event, record, link)
            self._lanes[receiver.name].submit(self._delivery.post, receiver, event, payload)

    def _post_alerts(self, record: Signals, *, ends: float) -> None:
        self._send_alerts(record.task, messages.alerts(record, self._config.link(record.id), ends=ends))

    def _send_alerts(self, task: str, alerts: list[dict[str, Any]]) -> None:
        for receiver in self._wanting(task, ("alertmanager",)):
            self._lanes[receiver.name].submit(self._delivery.post, receiver, "alerts", alerts, ALERTS_PATH)

    def _wanting(self, task: str, types: tuple[str, ...]) -> list[Receiver]:
        return [r for r in self._config.receivers if r.type in types and r.wants(task)]

    def flush(self) -> None:
        """Wait for every delivery queued so far (tests, and a clean stop)."""
        for lane in self._lanes.values():
            lane.submit(lambda: None).result()

    def close(self) -> None:
        for lane in self._lanes.values():
            lane.shutdown(wait=True, cancel_futures=False)
        self._delivery.close()


def _key(alert: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(alert["labels"].items()))


def _parse(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _load(client: redis.Redis, report: str) -> Signals | None:
    text = store.records(client, [report])[0]
    if text is None:
        return None
    try:
        return Signals.model_validate_json(text)
    except ValueError:
        log.warning("the signals record of %s does not read; not notified", report)
        return None
