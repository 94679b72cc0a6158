"""Which tasks are current: the index of every task's newest report, and when a task is gone.

Each entry of the index (:data:`kdoctor.store.keys.SIGNALS_TASKS`) is a task's newest report:
its id, job, round, finish time, verdict and whether a schedule fired it. A task is *current*,
and so exported and notified about, while

* its schedule is installed (or its next round is already planned: the beat removes a finite
  schedule's entry when it fires the last round), for a scheduled round that is not the last; or
* otherwise (a ``kdoctor run``, a schedule's last round), for ``oneshot_seconds`` after its report.

A task that is not current, or whose report (and so its record) left Redis, has its index entry
and notification state removed, so its series disappear and nothing is said about it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from kdoctor.signals.record import Signals
from kdoctor.store import signals as store

__all__ = ["Entry", "current", "index_entry"]


def index_entry(record: Signals) -> dict[str, Any]:
    """The index entry of a round's record."""
    return {"id": record.id, "job": record.job, "round": record.round, "finished": record.finished,
            "verdict": record.verdict, "scheduled": record.scheduled and not record.last_round}


@dataclass(frozen=True)
class Entry:
    """A task's newest report, as the index holds it."""

    task: str
    raw: str
    id: str
    job: str
    round: int
    finished: float
    verdict: str
    scheduled: bool

    @classmethod
    def parse(cls, task: str, raw: str) -> Entry | None:
        try:
            data = json.loads(raw)
            return cls(task=task, raw=raw, id=str(data["id"]), job=str(data["job"]), round=int(data["round"]),
                       finished=float(data["finished"]), verdict=str(data["verdict"]),
                       scheduled=bool(data.get("scheduled")))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def current(client: redis.Redis, now: float, oneshot_seconds: float) -> dict[str, Entry]:
    """The current tasks (task → entry); forgets the others (see the module docstring)."""
    entries: dict[str, Entry] = {}
    for task, raw in store.raw_tasks(client).items():
        entry = Entry.parse(task, raw)
        if entry is None:
            store.forget_task(client, task, raw)
        else:
            entries[task] = entry
    scheduled = [e for e in entries.values() if e.scheduled]
    alive = dict(zip((e.task for e in scheduled), store.schedules_alive(client, [(e.job, e.round) for e in scheduled]),
                     strict=True))
    found = {}
    for task, entry in entries.items():
        if alive.get(task, False) if entry.scheduled else now - entry.finished <= oneshot_seconds:
            found[task] = entry
        else:
            store.forget_task(client, task, entry.raw)
    return found
