"""Reports in Redis: ``kdoctor:report:<id>`` (JSON) and the index ``kdoctor:reports`` (by finish time)."""

from __future__ import annotations

import json
import time

import redis

from kdoctor.errors import ReportNotFound
from kdoctor.specs.results import Report

INDEX_KEY = "kdoctor:reports"


def report_key(report_id: str) -> str:
    return f"kdoctor:report:{report_id}"


def save(client: redis.Redis, report: Report, retention_seconds: int) -> None:
    """Store a report and index it; reports older than the retention fall out of the index."""
    pipe = client.pipeline()
    pipe.set(report_key(report.id), report.model_dump_json(by_alias=True), ex=retention_seconds)
    pipe.zadd(INDEX_KEY, {report.id: report.finished.timestamp()})
    pipe.zremrangebyscore(INDEX_KEY, "-inf", time.time() - retention_seconds)
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
           name: str | None = None) -> list[Report]:
    """The newest reports first, optionally only those of one job, kind or task name."""
    found: list[Report] = []
    start = 0
    batch = max(limit, 50)
    while len(found) < limit:
        ids = client.zrevrange(INDEX_KEY, start, start + batch - 1)
        if not ids:
            break
        start += batch
        for raw in client.mget([report_key(str(i)) for i in ids]):
            if raw is None:
                continue
            report = Report.model_validate(json.loads(raw))
            if job and report.job != job:
                continue
            if kind and report.task.kind != kind:
                continue
            if name and report.task.name != name:
                continue
            found.append(report)
            if len(found) == limit:
                break
    return found
