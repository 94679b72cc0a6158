"""``kdoctor.plan``, ``kdoctor.fire`` and ``kdoctor.finalize``: load, plan, publish; then write the
one report.

Plan loads the job and the inventory's snapshot, asks the pure planner
(:mod:`kdoctor.planning.planner`) and publishes one probe per node that probes, on that node's
queue, with ``expires`` at the round deadline, as the header of a chord whose body is
``kdoctor.finalize``. The chord is only the fast path: a header that never runs (a dead node)
would keep the body from ever firing, so the coordinator's sweeper also finalizes every round
whose deadline has passed. Whichever comes first claims the round in Redis and writes the report;
the other does nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from celery import Celery, chord

from kdoctor.inventory import references
from kdoctor.inventory.source import InventorySource, open_source
from kdoctor.planning import planner
from kdoctor.reports.merge import build_report
from kdoctor.settings import Settings
from kdoctor.specs.loading import validate
from kdoctor.specs.rounds import round_id
from kdoctor.store import keys, reports, rounds
from kdoctor.store.clock import broker_now
from kdoctor.tasks import schedules
from kdoctor.tasks.names import FINALIZE, FIRE, PLAN, PROBE

log = logging.getLogger(__name__)


def plan_round(app: Celery, client: redis.Redis, settings: Settings, source: InventorySource,
               job_id: str, number: int) -> str:
    """Plan round ``number`` of ``job_id`` and publish it; returns the round id."""
    job = rounds.load_job(client, job_id)
    rid = round_id(job_id, number)
    if job is None:
        raise LookupError(f"job {job_id} is unknown or expired")
    if rounds.is_planned(client, rid):
        log.warning("round %s is already planned; not publishing it twice", rid)
        return rid
    spec = validate(job.spec)
    ttl = _retention(settings)
    rotation = rounds.next_rotation(client, spec.kind, spec.name, ttl)
    now = broker_now(client)  # every instant of a round is on the broker's clock (kdoctor.store.clock)
    inventory = references.resolve(source, spec, source.snapshot(now))  # + the DNS Service a spec names
    planned = planner.plan(spec, inventory, now, settings, job=job_id, number=number, rotation=rotation)
    rounds.open_round(client, planned.state, ttl)
    if not planned.assignments:
        finalize_round(client, settings, rid)
        return rid
    _publish(app, planned, now)
    log.info("round %s: published to %d node(s), %d missing, deadline in %.1f s", rid,
             len(planned.assignments), len(planned.state.missing), planned.state.deadline - now)
    return rid


def _publish(app: Celery, planned: planner.RoundPlan, now: float) -> None:
    deadline = planned.state.deadline
    header = [
        app.signature(
            PROBE, args=(a.to_json(),), queue=keys.node_queue(a.node),
            # Celery checks expiry on the worker's own clock: the deadline in that clock.
            expires=datetime.fromtimestamp(deadline - planned.clock_offsets.get(a.node, 0.0), UTC),
            task_id=f"{a.round_id}.{a.node}",
            # Backstop only: the probe cuts itself short before the deadline.
            soft_time_limit=max(1, int(deadline - now) + 5), time_limit=max(2, int(deadline - now) + 15),
        )
        for a in planned.assignments
    ]
    body = app.signature(FINALIZE, args=(planned.state.round_id,), queue=keys.COORDINATOR_QUEUE, immutable=True)
    chord(header)(body)


def fail_round(client: redis.Redis, settings: Settings, job_id: str, number: int, error: str) -> str:
    """Report a round that could not be planned, with the reason."""
    state = planner.failed(rounds.load_job(client, job_id), job_id, number, broker_now(client), error)
    rounds.open_round(client, state, _retention(settings))
    finalize_round(client, settings, state.round_id)
    return state.round_id


def finalize_round(client: redis.Redis, settings: Settings, rid: str) -> bool:
    """Write the round's report if nobody has; ``True`` when this call wrote it."""
    ttl = _retention(settings)
    if not rounds.claim(client, rid, ttl):
        rounds.close_round(client, rid)
        return False
    state = rounds.load_round(client, rid)
    if state is None:
        log.error("round %s has no plan (expired?); cannot report it", rid)
        rounds.close_round(client, rid)
        return False
    report = build_report(state, rounds.results(client, rid), datetime.fromtimestamp(broker_now(client), UTC))
    reports.save(client, report, ttl)
    rounds.close_round(client, rid)
    log.info("round %s: %s", rid, report.verdict)
    return True


def sweep(client: redis.Redis, settings: Settings) -> int:
    """Finalize every open round past its deadline; returns how many reports this call wrote."""
    return sum(finalize_round(client, settings, rid) for rid in rounds.due_rounds(client, broker_now(client)))


def _retention(settings: Settings) -> int:
    return int(settings.report_retention_days * 86400)


def register(app: Celery, clients: Callable[[], redis.Redis], settings: Settings) -> None:
    """Register ``kdoctor.plan``, ``kdoctor.fire`` and ``kdoctor.finalize`` on ``app``."""
    lock = threading.Lock()
    opened: list[InventorySource] = []

    def source() -> InventorySource:
        # One inventory source per coordinator process, made on first use (a cache lives in it).
        with lock:
            if not opened:
                opened.append(open_source(settings, clients(), cache=True))
            return opened[0]

    def plan_or_fail(job_id: str, number: int) -> str:
        client = clients()
        try:
            return plan_round(app, client, settings, source(), job_id, number)
        except Exception as exc:
            # A job must end in a report even when it cannot be planned, or its waiter hangs.
            log.exception("cannot plan round %d of %s", number, job_id)
            return fail_round(client, settings, job_id, number, str(exc))

    @app.task(name=PLAN)  # type: ignore[untyped-decorator]
    def plan(job_id: str, number: int) -> str:
        return plan_or_fail(job_id, number)

    @app.task(name=FIRE)  # type: ignore[untyped-decorator]
    def fire(job_id: str) -> str | None:
        number = schedules.next_round(app, clients(), job_id)
        return None if number is None else plan_or_fail(job_id, number)

    @app.task(name=FINALIZE)  # type: ignore[untyped-decorator]
    def finalize(rid: str) -> bool:
        return finalize_round(clients(), settings, rid)
