"""What the coordinators hand to signals: a round's record when its report is written, and the
count of rounds planned. Never raises: a failure to record is logged, and the round's report
stands (metrics are worth less than the report they describe)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import redis

from kdoctor.signals.record import Signals, build
from kdoctor.signals.tasks import index_entry
from kdoctor.specs.results import NodeDigest, Report
from kdoctor.specs.rounds import RoundState
from kdoctor.store import signals as store

log = logging.getLogger(__name__)

__all__ = ["count_plan", "record_round"]


def record_round(client: redis.Redis, state: RoundState, shell: Report, judged: Mapping[str, NodeDigest], *,
                 scheduled: bool, finalize_seconds: float, retention: int) -> Signals | None:
    """Build and store the record of the round ``shell`` reports, and count the report; the
    record, or ``None`` when it could not be stored."""
    try:
        record = build(state, shell, judged, scheduled=scheduled, finalize_seconds=finalize_seconds)
        store.save(client, report_id=record.id, task=record.task, entry=index_entry(record),
                   text=record.model_dump_json(by_alias=True), retention=retention,
                   ended_by_deadline=record.ended_by_deadline, finalize_seconds=finalize_seconds)
    except Exception as exc:  # a Redis blip, a digest from another version: the report is written
        log.warning("round %s: its signals record was not stored (metrics skip it): %s", state.round_id, exc)
        return None
    return record


def count_plan(client: redis.Redis, seconds: float) -> None:
    """Count a planned round and the seconds planning and publishing it took."""
    try:
        store.count_plan(client, seconds)
    except redis.RedisError as exc:
        log.warning("could not count a planned round: %s", exc)
