"""Reports in Redis: ``kdoctor:report:<id>`` (JSON), its head ``kdoctor:report:<id>:head`` (what
listings read) and the index ``kdoctor:reports`` (by finish time)."""

from __future__ import annotations

import json

import redis

from kdoctor.errors import ReportNotFound
from kdoctor.specs.results import Report, ReportHead

INDEX_KEY = "kdoctor:reports"


def report_key(report_id: str) -> str:
    return f"kdoctor:report:{report_id}"


def head_key(report_id: str) -> str:
    return f"kdoctor:report:{report_id}:head"


def save(client: redis.Redis, report: Report, retention_seconds: int) -> None:
    """Store a report and index it; reports older than the retention fall out of the index."""
    pipe = client.pipeline()
    pipe.set(report_key(report.id), report.model_dump_json(by_alias=True), ex=retention_seconds)
    pipe.set(head_key(report.id), report.head().model_dump_json(by_alias=True), ex=retention_seconds)
    pipe.zadd(INDEX_KEY, {report.id: report.finished.timestamp()})
    pipe.zremrangebyscore(INDEX_KEY, "-inf", report.finished.timestamp() - retention_seconds)
    pipe.execute()


def load(client: redis.Redis, report_id: str) -> Report:
    raw = client.get(report_key(report_id))
    if raw is None:
        raise ReportNotFound(
            f"no report {report_id!r}: it was never written, or it is older than the retention "
            "(KDOCTOR_REPORT_RETENTION_DAYS). `kdoctor reports` lists the ones kept."
        )
    return Report.model_validate(json.loads(raw))


def exists(client: redis.Redis, report_id: str) -> bool:
    return bool(client.exists(report_key(report_id)))


def latest(client: redis.Redis, *, limit: int = 20, job: str | None = None, kind: str | None = None,
           name: str | None = None) -> list[ReportHead]:
    """The heads of the newest reports first, optionally only those of one job, kind or task name
    (:func:`load` gives a whole report)."""
    found: list[ReportHead] = []
    start = 0
    batch = max(limit, 50)
    while len(found) < limit:
        ids = [str(i) for i in client.zrevrange(INDEX_KEY, start, start + batch - 1)]
        if not ids:
            break
        start += batch
        for report_id, raw in zip(ids, client.mget([head_key(i) for i in ids]), strict=True):
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
    whole = client.get(report_key(report_id))
    return None if whole is None else Report.model_validate(json.loads(whole)).head()
