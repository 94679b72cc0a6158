"""``kdoctor.plan`` and ``kdoctor.finalize``: decide who probes what, then write the one report.

Plan publishes one probe per live node, on that node's queue, with ``expires`` at the round
deadline, as the header of a chord whose body is ``kdoctor.finalize``. The chord is only the fast
path: a header that never runs (a dead node) would keep the body from ever firing, so the
coordinator's sweeper also finalizes every round whose deadline has passed. Whichever comes
first claims the round in Redis and writes the report; the other does nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery, chord

from kdoctor.clock import broker_now
from kdoctor.inventory.view import current_view, missing_reason
from kdoctor.probes import kinds
from kdoctor.reports import rounds, store
from kdoctor.reports.merge import build_report
from kdoctor.settings import Settings
from kdoctor.specs.loading import validate
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import Assignment
from kdoctor.tasks import schedules
from kdoctor.tasks.celery import FINALIZE, FIRE, PLAN, PROBE
from kdoctor.workers.queues import COORDINATOR_QUEUE, node_queue

log = logging.getLogger(__name__)

# Publishing one probe costs about 1-2 ms of coordinator CPU; the start instant leaves room for it.
PUBLISH_SECONDS_PER_NODE = 0.002


def plan_round(app: Celery, client: redis.Redis, settings: Settings, job_id: str, number: int) -> str:
    """Plan round ``number`` of ``job_id`` and publish it; returns the round id."""
    job = rounds.load_job(client, job_id)
    rid = rounds.round_id(job_id, number)
    if job is None:
        raise LookupError(f"job {job_id} is unknown or expired")
    if rounds.load_round(client, rid) is not None:
        log.warning("round %s is already planned; not publishing it twice", rid)
        return rid
    spec = validate(job.spec)
    kind = kinds.get(spec.kind)
    view = current_view(client, settings)
    view = view.model_copy(update={"rotation": rounds.next_rotation(client, spec.kind, spec.name)})
    now = broker_now(client)  # every instant of a round is on the broker's clock (kdoctor.clock)
    idle = {n.name: why for n in view.live_nodes() if (why := kind.idle(spec, n))}
    live = [n for n in view.live_nodes() if n.name not in idle]
    missing = {n.name: missing_reason(n, now, settings.node_timeout_seconds)
               for n in view.expected if n.name not in view.live}
    budget = kind.budget(spec)
    serial = kind.serial(spec)
    start_at = now + settings.start_lead_seconds + PUBLISH_SECONDS_PER_NODE * len(live)
    span = budget * len(live) if serial else budget
    deadline = min(start_at + span + settings.round_grace_seconds,
                   now + spec.spec.schedule.round_timeout_seconds + (span if serial else 0.0))
    assignments = []
    warnings: list[str] = []
    for index, node in enumerate(live):
        targets, node_warnings = kind.plan(spec, node, view)
        warnings += [w for w in node_warnings if w not in warnings]
        assignments.append(Assignment(
            round_id=rid, job=job_id, round=number, kind=spec.kind, name=spec.name, spec=job.spec,
            node=node.name, targets=targets,
            start_at=start_at + (index * budget if serial else 0.0), deadline=deadline,
        ))
    ttl = int(settings.report_retention_days * 86400)
    state = rounds.RoundState(
        round_id=rid, job=job_id, round=number, kind=spec.kind, name=spec.name, spec=job.spec,
        expected=[n.name for n in view.expected], published=[a.node for a in assignments],
        missing=missing, idle=idle, planned=now, start_at=start_at, deadline=deadline, warnings=warnings,
        inventory=view.source, error=_nothing_selected(idle, live),
        coverage=[[a.node, d] for a in assignments
                  for d in dict.fromkeys(t.destination for t in a.targets if t.destination)],
    )
    rounds.open_round(client, state, ttl)
    if not assignments:
        finalize_round(client, settings, rid)
        return rid
    offsets = {n.name: n.clock_offset for n in live}
    header = [
        app.signature(
            PROBE, args=(a.to_json(),), queue=node_queue(a.node),
            # Celery checks expiry on the worker's own clock: the deadline in that clock.
            expires=datetime.fromtimestamp(deadline - offsets.get(a.node, 0.0), UTC),
            task_id=f"{rid}.{a.node}",
            # Backstop only: the probe cuts itself short before the deadline.
            soft_time_limit=max(1, int(deadline - now) + 5), time_limit=max(2, int(deadline - now) + 15),
        )
        for a in assignments
    ]
    body = app.signature(FINALIZE, args=(rid,), queue=COORDINATOR_QUEUE, immutable=True)
    chord(header)(body)
    log.info("round %s: published to %d node(s), %d missing, deadline in %.1f s",
             rid, len(assignments), len(missing), deadline - now)
    return rid


def _nothing_selected(idle: dict[str, str], sources: list[NodeInfo]) -> str:
    """The planning error of a round whose source selection left no node to probe from."""
    if sources or not idle:
        return ""
    why = next(iter(idle.values())).split(":")[0]
    return (f"none of the {len(idle)} live node(s) is a source ({why}), so nothing was probed: "
            "fix the selector or the nodes' labels")


def fail_round(client: redis.Redis, settings: Settings, job_id: str, number: int, error: str) -> str:
    """Report a round that could not be planned, with the reason."""
    rid = rounds.round_id(job_id, number)
    job = rounds.load_job(client, job_id)
    now = broker_now(client)
    state = rounds.RoundState(
        round_id=rid, job=job_id, round=number, kind=job.kind if job else "?", name=job.name if job else "?",
        spec=job.spec if job else {}, planned=now, start_at=now, deadline=now, error=error,
    )
    rounds.open_round(client, state, int(settings.report_retention_days * 86400))
    finalize_round(client, settings, rid)
    return rid


def finalize_round(client: redis.Redis, settings: Settings, rid: str) -> bool:
    """Write the round's report if nobody has; ``True`` when this call wrote it."""
    ttl = int(settings.report_retention_days * 86400)
    if not rounds.claim(client, rid, ttl):
        rounds.close_round(client, rid)
        return False
    state = rounds.load_round(client, rid)
    if state is None:
        log.error("round %s has no plan (expired?); cannot report it", rid)
        rounds.close_round(client, rid)
        return False
    report = build_report(state, rounds.results(client, rid), datetime.fromtimestamp(broker_now(client), UTC))
    store.save(client, report, ttl)
    rounds.close_round(client, rid)
    log.info("round %s: %s", rid, report.verdict)
    return True


def sweep(client: redis.Redis, settings: Settings) -> int:
    """Finalize every open round past its deadline; returns how many reports this call wrote."""
    return sum(finalize_round(client, settings, rid) for rid in rounds.due_rounds(client, broker_now(client)))


def register(app: Celery, client_factory: Any, settings: Settings) -> None:
    """Register ``kdoctor.plan`` and ``kdoctor.finalize`` on ``app``."""

    @app.task(name=PLAN)  # type: ignore[untyped-decorator]
    def plan(job_id: str, number: int) -> str:
        client = client_factory()
        try:
            return plan_round(app, client, settings, job_id, number)
        except Exception as exc:
            # A job must end in a report even when it cannot be planned, or its waiter hangs.
            log.exception("cannot plan round %d of %s", number, job_id)
            return fail_round(client, settings, job_id, number, str(exc))

    @app.task(name=FIRE)  # type: ignore[untyped-decorator]
    def fire(job_id: str) -> str | None:
        client = client_factory()
        number = schedules.next_round(app, client, job_id)
        if number is None:
            return None
        try:
            return plan_round(app, client, settings, job_id, number)
        except Exception as exc:
            log.exception("cannot plan round %d of %s", number, job_id)
            return fail_round(client, settings, job_id, number, str(exc))

    @app.task(name=FINALIZE)  # type: ignore[untyped-decorator]
    def finalize(rid: str) -> bool:
        return finalize_round(client_factory(), settings, rid)
