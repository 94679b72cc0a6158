"""Reports in Redis: each report, its head (what listings read) and the index by finish time (key
layout: :mod:`kdoctor.store.keys`).

A report is stored as zlib-compressed JSON, base64-armoured (``z1:`` prefix) so it travels
through kdoctor's text-mode Redis client; reports stored as plain JSON by earlier versions still
read. Retention is enforced on every write: reports older than the retention are deleted, and so
are the oldest ones while all of them together exceed the size cap.

Nothing read from Redis is trusted: an id that cannot be a report id is "not found", and a
stored value that does not parse is :class:`~kdoctor.errors.ReportUnreadable`, never a traceback.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import zlib
from typing import Any

import redis
from pydantic import ValidationError

from kdoctor.errors import ReportNotFound, ReportUnreadable
from kdoctor.specs.results import Report, ReportHead
from kdoctor.store import keys

log = logging.getLogger(__name__)

_COMPRESSED = "z1:"
# Report ids are round ids, <task name>-<yyyymmdd>-<hhmmss>-<hex>-r<n>: letters, digits, '-', '.'
# and '_' only, so no id can reach another key (``<id>:head``) or pattern.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,299}$")


def encode(report: Report, text: str | None = None) -> str:
    """The stored form of a report (``text``: its JSON, when already made)."""
    raw = (text if text is not None else report.model_dump_json(by_alias=True)).encode()
    # Level 1: a 1,000-node report (25 MB of JSON) compresses 4:1 in a fraction of a second; the
    # default level gains 15 % more for four times the CPU, on the path to the report.
    return _COMPRESSED + base64.b64encode(zlib.compress(raw, 1)).decode("ascii")


def _decode(stored: str) -> Any:
    if stored.startswith(_COMPRESSED):
        return json.loads(zlib.decompress(base64.b64decode(stored[len(_COMPRESSED):], validate=True)))
    return json.loads(stored)


def save_into(pipe: Any, report: Report, retention_seconds: int, text: str | None = None) -> None:
    """Queue the commands that store and index ``report`` on a pipeline (the caller executes it).
    ``text``: the whole report as JSON when ``report`` is only its shell (no nodes)."""
    stored = encode(report, text)
    pipe.set(keys.report(report.id), stored, ex=retention_seconds)
    pipe.set(keys.report_head(report.id), report.head().model_dump_json(by_alias=True), ex=retention_seconds)
    pipe.zadd(keys.REPORTS_INDEX, {report.id: report.finished.timestamp()})
    pipe.hset(keys.REPORTS_BYTES, report.id, len(stored))


def save(client: redis.Redis, report: Report, retention_seconds: int, cap_bytes: int = 0) -> None:
    """Store a report and index it, then enforce the retention."""
    pipe = client.pipeline()
    save_into(pipe, report, retention_seconds)
    pipe.execute()
    enforce_retention(client, retention_seconds, cap_bytes)


def enforce_retention(client: redis.Redis, retention_seconds: int, cap_bytes: int = 0) -> list[str]:
    """Delete reports older than the retention, then the oldest while the stored reports exceed
    ``cap_bytes`` (0: no cap); returns the ids deleted."""
    newest = client.zrevrange(keys.REPORTS_INDEX, 0, 0, withscores=True)
    if not newest:
        return []
    horizon = float(newest[0][1]) - retention_seconds
    gone = [str(r) for r in client.zrangebyscore(keys.REPORTS_INDEX, "-inf", f"({horizon}")]
    if cap_bytes > 0:
        sizes = {str(k): int(v) for k, v in client.hgetall(keys.REPORTS_BYTES).items()}
        total = sum(size for rid, size in sizes.items() if rid not in gone)
        for rid in (str(r) for r in client.zrange(keys.REPORTS_INDEX, 0, -1)):
            if total <= cap_bytes:
                break
            if rid not in gone:
                gone.append(rid)
                total -= sizes.get(rid, 0)
    if gone:
        pipe = client.pipeline()
        for rid in gone:
            pipe.delete(keys.report(rid), keys.report_head(rid), keys.report_signals(rid))
        pipe.zrem(keys.REPORTS_INDEX, *gone)
        pipe.hdel(keys.REPORTS_BYTES, *gone)
        pipe.execute()
    return gone


def load(client: redis.Redis, report_id: str) -> Report:
    """The report with that id.

    Raises:
        ReportNotFound: no report under that id (or the id cannot be one).
        ReportUnreadable: something is stored under it that is not a readable report.
    """
    if not _ID_RE.match(report_id):
        raise ReportNotFound(f"no report {_shown(report_id)}: report ids look like <task>-<date>-<time>-<hex>-r<n> "
                             "(`kdoctor reports` lists them)")
    raw = client.get(keys.report(report_id))
    if raw is None:
        raise ReportNotFound(
            f"no report {report_id!r}: it was never written, or it is older than the retention "
            "(KDOCTOR_REPORT_RETENTION_DAYS). `kdoctor reports` lists the ones kept."
        )
    try:
        return Report.model_validate(_decode(str(raw)))
    except (ValueError, ValidationError, zlib.error) as exc:
        raise ReportUnreadable(f"stored report {report_id!r} is unreadable ({type(exc).__name__}); "
                               "delete it with `redis-cli DEL` or let the retention remove it") from None


def exists(client: redis.Redis, report_id: str) -> bool:
    return bool(client.exists(keys.report(report_id)))


def latest(client: redis.Redis, *, limit: int = 20, job: str | None = None, kind: str | None = None,
           name: str | None = None, unreadable: list[str] | None = None) -> list[ReportHead]:
    """The heads of the newest reports first, optionally only those of one job, kind or task name
    (:func:`load` gives a whole report). Unreadable entries are skipped and their ids appended to
    ``unreadable`` when given."""
    found: list[ReportHead] = []
    start = 0
    batch = max(limit, 50)
    while len(found) < limit:
        ids = [str(i) for i in client.zrevrange(keys.REPORTS_INDEX, start, start + batch - 1)]
        if not ids:
            break
        start += batch
        for report_id, raw in zip(ids, client.mget([keys.report_head(i) for i in ids]), strict=True):
            try:
                head = _head(client, report_id, raw)
            except (ValueError, ValidationError, zlib.error):
                log.warning("stored report %s is unreadable; skipped", report_id)
                if unreadable is not None:
                    unreadable.append(report_id)
                continue
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
    return None if whole is None else Report.model_validate(_decode(str(whole))).head()


def _shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text)} characters)"
