"""``kdoctor.plan`` and ``kdoctor.fire``: load, plan, publish; and the writing of the one report.

Plan loads the job and the inventory's snapshot, asks the pure planner
(:mod:`kdoctor.planning.planner`) under a short Redis lock (two coordinators must not both give
a busy node a round), records the round (:func:`kdoctor.store.rounds.open_round`) and pushes one
probe per probing node onto that node's queue in one pipeline (:mod:`kdoctor.tasks.publish`).

A round is reported by :func:`finalize_round`, called by the coordinator's sweeper
(:mod:`kdoctor.workers.coordinator`) for every round that is due: past its deadline, or answered
by every node (the worker storing the last result makes it due at once). No Celery chord and no
Celery result is involved: a node that never answers cannot hold a round, and nothing is left in
Redis but the report. The coordinator holding the round's lease writes it; a lease whose holder
dies expires, and another coordinator writes the report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from celery import Celery

from kdoctor.inventory import references
from kdoctor.inventory.source import InventorySource, open_source
from kdoctor.planning import planner
from kdoctor.reports.merge import assemble_report
from kdoctor.settings import Settings
from kdoctor.signals import recorder
from kdoctor.specs.loading import validate
from kdoctor.specs.results import NodeDigest, RoundTiming
from kdoctor.specs.rounds import RoundState, round_id
from kdoctor.store import keys, reports, rounds
from kdoctor.store.clock import broker_now
from kdoctor.tasks import schedules
from kdoctor.tasks.names import FIRE, PLAN
from kdoctor.tasks.publish import publish_probes

log = logging.getLogger(__name__)

# Planning holds the plan lock for well under a second, even at 1,000 nodes.
PLAN_LOCK_SECONDS = 10.0


class Pacing:
    """What planning and publishing one node's probe cost this coordinator, measured.

    The start instant leaves room for publishing to every node (so they all start together),
    from this figure: the slowest of the recent rounds, per node, with a margin of half again.
    """

    def __init__(self, initial: float = planner.PUBLISH_SECONDS_PER_NODE) -> None:
        self._recent: list[float] = [initial]
        self._lock = threading.Lock()

    @property
    def per_node(self) -> float:
        with self._lock:
            return 1.5 * max(self._recent)

    def observe(self, nodes: int, seconds: float) -> None:
        if nodes < 10:  # too few to say anything about the cost per node
            return
        with self._lock:
            self._recent = [*self._recent[-4:], seconds / nodes]


def plan_round(app: Celery, client: redis.Redis, settings: Settings, source: InventorySource, pacing: Pacing,
               job_id: str, number: int) -> str:
    """Plan round ``number`` of ``job_id`` and publish it; returns the round id."""
    job = rounds.load_job(client, job_id)
    rid = round_id(job_id, number)
    if job is None:
        raise LookupError(f"job {job_id} is unknown or expired")
    if rounds.is_open(client, rid) or reports.exists(client, rid):
        log.warning("round %s is already planned; not publishing it twice", rid)
        return rid
    spec = validate(job.spec)
    ttl = _retention(settings)
    started = time.perf_counter()
    # The inventory (and the DNS Service a spec names: a GET of the API) is read before the plan
    # lock is taken, so a slow API server holds up this round only, not every coordinator's.
    inventory = references.resolve(source, spec, source.snapshot(broker_now(client)))
    with client.lock(keys.PLAN_LOCK, timeout=PLAN_LOCK_SECONDS, blocking_timeout=PLAN_LOCK_SECONDS * 3):
        rotation = rounds.next_rotation(client, spec.kind, spec.name, ttl)
        now = broker_now(client)  # every instant of a round is on the broker's clock (kdoctor.store.clock)
        planned = planner.plan(spec, inventory, now, settings, job=job_id, number=number,
                               rotation=rotation, busy=rounds.busy(client, now), per_node_seconds=pacing.per_node)
        rounds.open_round(client, planned.state, ttl)
    if not planned.assignments:
        recorder.count_plan(client, time.perf_counter() - started)
        finalize_round(client, settings, rid)
        return rid
    deadline = planned.state.deadline
    # Celery checks expiry on the worker's own clock: the deadline in that clock.
    expires = {node: datetime.fromtimestamp(deadline - offset, UTC) for node, offset in planned.clock_offsets.items()}
    planned_in = time.perf_counter() - started
    published = publish_probes(app, client, planned.assignments, expires)
    pacing.observe(len(planned.assignments), time.perf_counter() - started)
    recorder.count_plan(client, time.perf_counter() - started)
    published_at = broker_now(client)
    rounds.record_publish(client, rid, planned_in, published.seconds, published_at)
    if published_at > planned.state.start_at:
        log.warning("round %s: published %.2f s after its start instant", rid, published_at - planned.state.start_at)
    log.info("round %s: published to %d node(s) in %.3f s, %d missing, deadline in %.1f s", rid,
             published.messages, published.seconds, len(planned.state.missing), deadline - now)
    return rid


def fail_round(client: redis.Redis, settings: Settings, job_id: str, number: int, error: str) -> str:
    """Report a round that could not be planned, with the reason."""
    state = planner.failed(rounds.load_job(client, job_id), job_id, number, broker_now(client), error)
    rounds.open_round(client, state, _retention(settings))
    finalize_round(client, settings, state.round_id)
    return state.round_id


def finalize_round(client: redis.Redis, settings: Settings, rid: str, holder: str = "") -> bool:
    """Write the round's report if no other coordinator is; ``True`` when this call wrote it."""
    if not rounds.lease(client, rid, holder or "coordinator"):
        return False
    started = time.perf_counter()
    try:
        state = rounds.load_round(client, rid)
        if state is None:  # reported meanwhile, or its plan expired
            rounds.forget_round(client, rid)
            rounds.release(client, rid)
            return False
        building = time.perf_counter()
        digests = rounds.digests(client, rid)
        raw = rounds.raw_results(client, rid)
        stuck = rounds.unconsumed(client, rid, (n for n in state.published if n not in digests))
        figures = rounds.timing(client, rid)
        judged: dict[str, NodeDigest] = {}
        report, text = assemble_report(state, digests, {n: r for n, r in raw.items() if n in digests},
                                       datetime.fromtimestamp(broker_now(client), UTC), unconsumed=stuck,
                                       timing=_timing(state, figures, time.perf_counter() - building),
                                       judged=judged)
        job = rounds.load_job(client, state.job)
        rounds.finish(client, state, report, _retention(settings), drop_job=job is not None and not job.scheduled,
                      report_cap_bytes=int(settings.report_retention_mb * 1024 * 1024), text=text)
    except BaseException:
        rounds.release(client, rid)  # let the next sweep (here or on another coordinator) try again
        raise
    log.info("round %s: %s", rid, report.verdict)
    # Metrics and notifications read this record, never the report (kdoctor.signals.record).
    recorder.record_round(client, state, report, judged, scheduled=job is not None and job.scheduled,
                          finalize_seconds=time.perf_counter() - started, retention=_retention(settings))
    return True


def _timing(state: RoundState, figures: dict[str, float], report_seconds: float) -> RoundTiming:
    published_at = figures.get("publishedAt")
    return RoundTiming(
        plan_seconds=figures.get("planSeconds"), publish_seconds=figures.get("publishSeconds"),
        start_slack_seconds=round(state.start_at - published_at, 4) if published_at else None,
        report_seconds=round(report_seconds, 4))


def _retention(settings: Settings) -> int:
    return int(settings.report_retention_days * 86400)


def register(app: Celery, clients: Callable[[], redis.Redis], settings: Settings) -> None:
    """Register ``kdoctor.plan`` and ``kdoctor.fire`` on ``app``."""
    lock = threading.Lock()
    opened: list[InventorySource] = []
    pacing = Pacing()

    def source() -> InventorySource:
        # One inventory source per coordinator process, made on first use (a cache lives in it).
        with lock:
            if not opened:
                opened.append(open_source(settings, clients(), cache=True))
            return opened[0]

    def plan_or_fail(job_id: str, number: int) -> str:
        client = clients()
        try:
            return plan_round(app, client, settings, source(), pacing, job_id, number)
        except Exception as exc:
            # A job must end in a report even when it cannot be planned, or its waiter hangs.
            log.exception("cannot plan round %d of %s", number, job_id)
            return fail_round(client, settings, job_id, number, str(exc))

    @app.task(name=PLAN, ignore_result=True)  # type: ignore[untyped-decorator]
    def plan(job_id: str, number: int) -> str:
        return plan_or_fail(job_id, number)

    @app.task(name=FIRE, ignore_result=True)  # type: ignore[untyped-decorator]
    def fire(job_id: str) -> str | None:
        number = schedules.next_round(app, clients(), job_id)
        return None if number is None else plan_or_fail(job_id, number)
