"""Reports in Redis: each report (JSON), its head (what listings read) and the index by finish
time (key layout: :mod:`kdoctor.store.keys`)."""

from __future__ import annotations

import json

import redis

from kdoctor.errors import ReportNotFound
from kdoctor.specs.results import Report, ReportHead
from kdoctor.store import keys


def save(client: redis.Redis, report: Report, retention_seconds: int) -> None:
    """Store a report and index it; reports older than the retention fall out of the index."""
    pipe = client.pipeline()
    pipe.set(keys.report(report.id), report.model_dump_json(by_alias=True), ex=retention_seconds)
    pipe.set(keys.report_head(report.id), report.head().model_dump_json(by_alias=True), ex=retention_seconds)
    pipe.zadd(keys.REPORTS_INDEX, {report.id: report.finished.timestamp()})
    pipe.zremrangebyscore(keys.REPORTS_INDEX, "-inf", report.finished.timestamp() - retention_seconds)
    pipe.execute()


def load(client: redis.Redis, report_id: str) -> Report:
    raw = client.get(keys.report(report_id))
    if raw is None:
        raise ReportNotFound(
            f"no report {report_id!r}: it was never written, or it is older than the retention "
            "(KDOCTOR_REPORT_RETENTION_DAYS). `kdoctor reports` lists the ones kept."
        )
    return Report.model_validate(json.loads(raw))


def exists(client: redis.Redis, report_id: str) -> bool:
    return bool(client.exists(keys.report(report_id)))


def latest(client: redis.Redis, *, limit: int = 20, job: str | None = None, kind: str | None = None,
           name: str | None = None) -> list[ReportHead]:
    """The heads of the newest reports first, optionally only those of one job, kind or task name
    (:func:`load` gives a whole report)."""
    found: list[ReportHead] = []
    start = 0
    batch = max(limit, 50)
    while len(found) < limit:
        ids = [str(i) for i in client.zrevrange(keys.REPORTS_INDEX, start, start + batch - 1)]
        if not ids:
            break
        start += batch
        for report_id, raw in zip(ids, client.mget([keys.report_head(i) for i in ids]), strict=True):
            head = _head(client, report_id, raw)
            if head is None:
                continue
            if job and head.job != job:
                continue
            if kind and head.task.kind != kind:
                continue
            if name and head.task.name != name:
                continue
            found.append(head)
            if len(found) == limit:
                break
    return found


def _head(client: redis.Redis, report_id: str, raw: str | bytes | None) -> ReportHead | None:
    if raw is not None:
        return ReportHead.model_validate(json.loads(raw))
    # A report stored before heads existed: read it whole, once.
    whole = client.get(keys.report(report_id))
    return None if whole is None else Report.model_validate(json.loads(whole)).head()
