"""Scheduled inspections: ``spec.schedule`` driven by celery beat with a Redis-backed scheduler.

A schedule is a job whose rounds are fired by beat. Each entry lives in Redis (celery-redbeat),
so schedules are added and removed at run time by any client, and redbeat's lock makes sure two
beats never both fire: a second ``kdoctor beat`` waits as a hot standby.

Beat fires ``kdoctor.fire`` (coordinator queue) with the job id. ``fire`` takes the next round
number from a Redis counter (``INCR``, so even a duplicate fire cannot plan a round twice), plans
it, and removes the entry once ``roundNumber`` rounds have fired (-1: never).

=================  =========================================================================
``"M N"``           first round M minutes after the schedule was added, then every N minutes
``"Ms Ns"``         the same in seconds (ours, for tests and demos)
cron (5 fields)     celery crontab, UTC
=================  =========================================================================
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from celery import Celery
from celery.schedules import crontab
from celery.schedules import schedule as every
from redbeat import RedBeatSchedulerEntry
from redbeat.schedulers import ensure_conf

from kdoctor.specs import schedule as schedule_forms
from kdoctor.specs.loading import SpecModel
from kdoctor.specs.rounds import Job, round_id
from kdoctor.store import keys, rounds
from kdoctor.tasks.names import FIRE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule as ``kdoctor schedule list`` shows it."""

    job: str
    kind: str
    name: str
    schedule: str
    rounds: int
    fired: int
    next_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job, "kind": self.kind, "name": self.name, "schedule": self.schedule,
                "roundNumber": self.rounds, "fired": self.fired,
                "next": self.next_at.isoformat() if self.next_at else None}


def _celery_schedule(text: str, added: datetime) -> tuple[Any, datetime | None]:
    """The celery schedule object and the ``last_run_at`` that puts the first round in place."""
    parsed = schedule_forms.parse(text)
    if isinstance(parsed, schedule_forms.Interval):
        period = timedelta(seconds=parsed.every_seconds)
        # celery runs an interval entry at last_run_at + period: pretend the previous run was
        # `period - delay` ago so that the first one falls `delay` after the schedule is added.
        return every(run_every=period), added + timedelta(seconds=parsed.delay_seconds) - period
    minute, hour, day, month, weekday = parsed.expression.split()
    return crontab(minute=minute, hour=hour, day_of_month=day, month_of_year=month,
                   day_of_week=weekday), added


def add(app: Celery, client: redis.Redis, job: Job, spec: SpecModel) -> None:
    """Install the beat entry of a scheduled job."""
    ensure_conf(app)
    now = datetime.now(UTC)
    sched, last_run_at = _celery_schedule(spec.spec.schedule.schedule, now)
    entry = RedBeatSchedulerEntry(job.job, FIRE, sched, args=[job.job], app=app,
                                  options={"queue": keys.COORDINATOR_QUEUE})
    entry.last_run_at = last_run_at
    entry.save()


def remove(app: Celery, client: redis.Redis, job: str) -> bool:
    """Delete a schedule; ``False`` when there was none."""
    ensure_conf(app)
    try:
        RedBeatSchedulerEntry.from_key(RedBeatSchedulerEntry.generate_key(app, job), app=app).delete()
    except KeyError:
        return False
    return True


def list_all(app: Celery, client: redis.Redis) -> list[ScheduleInfo]:
    """Every installed schedule, soonest first."""
    ensure_conf(app)
    found = []
    for key in client.zrange(keys.BEAT_SCHEDULE, 0, -1):
        try:
            entry = RedBeatSchedulerEntry.from_key(str(key), app=app)
        except KeyError:
            continue
        job = rounds.load_job(client, entry.name)
        if job is None:
            continue
        spec_schedule = job.spec.get("spec", {}).get("schedule", {})
        due = entry.due_at
        found.append(ScheduleInfo(
            job=job.job, kind=job.kind, name=job.name, schedule=str(spec_schedule.get("schedule", "")),
            rounds=int(spec_schedule.get("roundNumber", 1)), fired=rounds.fired(client, job.job),
            next_at=due.astimezone(UTC) if due else None))
    return sorted(found, key=lambda s: s.next_at or datetime.max.replace(tzinfo=UTC))


def next_round(app: Celery, client: redis.Redis, job_id: str) -> int | None:
    """The number of the round to plan now, or ``None`` when the schedule is used up or gone, or
    when its previous round has not ended yet.

    A schedule never overlaps itself: a fire that finds the previous round still running (or still
    waiting for busy nodes) is skipped and logged, as cron skips a job that is still running;
    otherwise a schedule faster than its rounds would queue rounds without end. Removes the entry
    when this is the last round.
    """
    job = rounds.load_job(client, job_id)
    if job is None:
        remove(app, client, job_id)
        return None
    previous = rounds.fired(client, job_id)
    if previous and rounds.is_open(client, round_id(job_id, previous)):
        log.warning("schedule %s: round %d has not ended; this fire is skipped", job_id, previous)
        return None
    limit = int(job.spec.get("spec", {}).get("schedule", {}).get("roundNumber", 1))
    number = rounds.next_fire(client, job_id)
    if limit != -1 and number >= limit:
        remove(app, client, job_id)
    if limit != -1 and number > limit:
        return None
    return number


def summary_json(infos: list[ScheduleInfo]) -> str:
    return json.dumps([i.to_json() for i in infos], indent=2)
