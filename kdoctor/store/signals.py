"""Signals in Redis: each round's signals record, the index of every task's newest report, the
coordinators' health counters and what the exporter last notified (key layout: :mod:`kdoctor.store.keys`).

The record is stored beside the report's head with the report's retention (and deleted with it
when the size cap trims the report). The index (one small entry per task) is what an exporter
reads on every scrape; records are read only when an entry names a report it has not seen.

Health counters are Redis counters (``HINCRBY``), not per-process metrics: several coordinators
plan and report rounds, and the one exporter must count all of them once; a coordinator that
restarts loses nothing. A histogram is one field per bucket (the count of observations that fell
in it, not cumulative), plus its sum and count.
"""

from __future__ import annotations

import base64
import bisect
import json
import zlib
from typing import Any

import redis

from kdoctor.store import keys

PLAN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (s) of the plan histogram: a few ms for 3 nodes, about a second for 1,000."""
FINALIZE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds (s) of the finalize histogram: a 1,000-node NetReach report takes seconds."""

_COMPRESSED = "z1:"

# Keep a task's index entry on the newest report only (two coordinators may finish two rounds of
# one task out of order). KEYS: index; ARGV: task, entry JSON, its finish time.
_INDEX = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and tonumber(cjson.decode(old)['finished']) > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# Set a hash field only if it still holds what the caller saw (compare and set).
# KEYS: hash; ARGV: field, expected ('' = absent), new value ('' = delete).
_SWAP = """
local old = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if old ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
"""


def encode(text: str) -> str:
    """The stored form of a record: zlib (level 1) and base64, as reports."""
    return _COMPRESSED + base64.b64encode(zlib.compress(text.encode(), 1)).decode("ascii")


def decode(stored: str) -> str:
    """The JSON text of a stored record."""
    if stored.startswith(_COMPRESSED):
        return zlib.decompress(base64.b64decode(stored[len(_COMPRESSED):], validate=True)).decode()
    return stored


def _bucket(bounds: tuple[float, ...], seconds: float) -> str:
    index = bisect.bisect_left(bounds, seconds)
    return "+Inf" if index == len(bounds) else repr(bounds[index])


def save(client: redis.Redis, *, report_id: str, task: str, entry: dict[str, Any], text: str, retention: int,
         ended_by_deadline: bool, finalize_seconds: float) -> None:
    """Store a round's record, point the task's index entry at it (unless a newer round is there)
    and count the report, in one transaction. ``entry``: the index entry (JSON-ready; its
    ``finished`` orders rounds, its ``verdict`` is counted)."""
    finished, verdict = float(entry["finished"]), str(entry["verdict"])
    entry = {**entry, "id": report_id}
    pipe = client.pipeline()
    pipe.set(keys.report_signals(report_id), encode(text), ex=retention)
    pipe.eval(_INDEX, 1, keys.SIGNALS_TASKS, task, json.dumps(entry), repr(finished))
    pipe.hincrby(keys.SIGNALS_HEALTH, "written", 1)
    pipe.hincrby(keys.SIGNALS_HEALTH, f"written:{verdict}", 1)
    if ended_by_deadline:
        pipe.hincrby(keys.SIGNALS_HEALTH, "deadline", 1)
    _observe(pipe, "finalize", FINALIZE_BUCKETS, finalize_seconds)
    pipe.execute()


def count_plan(client: redis.Redis, seconds: float) -> None:
    """Count a planned round and what planning it took."""
    pipe = client.pipeline()
    pipe.hincrby(keys.SIGNALS_HEALTH, "planned", 1)
    _observe(pipe, "plan", PLAN_BUCKETS, seconds)
    pipe.execute()


def _observe(pipe: Any, name: str, bounds: tuple[float, ...], seconds: float) -> None:
    pipe.hincrby(keys.SIGNALS_HEALTH, f"{name}:le:{_bucket(bounds, seconds)}", 1)
    pipe.hincrbyfloat(keys.SIGNALS_HEALTH, f"{name}:sum", seconds)
    pipe.hincrby(keys.SIGNALS_HEALTH, f"{name}:count", 1)


def health(client: redis.Redis) -> dict[str, float]:
    """Every health counter (field → value)."""
    found = {}
    for field, value in client.hgetall(keys.SIGNALS_HEALTH).items():
        try:
            found[str(field)] = float(value)
        except ValueError:
            continue
    return found


def records(client: redis.Redis, report_ids: list[str]) -> list[str | None]:
    """The records (JSON text) of these reports, ``None`` for those that are gone or unreadable."""
    if not report_ids:
        return []
    found: list[str | None] = []
    for stored in client.mget([keys.report_signals(r) for r in report_ids]):
        try:
            found.append(None if stored is None else decode(str(stored)))
        except (ValueError, zlib.error):
            found.append(None)
    return found


def schedules_alive(client: redis.Redis, rounds: list[tuple[str, int]]) -> list[bool]:
    """For each (job, round): whether the job's schedule is still installed, or its next round is
    already planned (the beat removes the entry when it fires the last round)."""
    pipe = client.pipeline(transaction=False)
    for job, number in rounds:
        pipe.exists(keys.beat_entry(job), keys.round_plan(f"{job}-r{number + 1}"))
    return [bool(n) for n in pipe.execute()]


def forget_task(client: redis.Redis, task: str, entry: str) -> bool:
    """Remove a task's index entry (and its notification state) if it is still ``entry`` (the raw
    JSON the caller read): its report is gone or its schedule was removed."""
    removed = bool(client.eval(_SWAP, 1, keys.SIGNALS_TASKS, task, entry, ""))
    if removed:
        client.hdel(keys.SIGNALS_NOTIFIED, task)
    return removed


def raw_tasks(client: redis.Redis) -> dict[str, str]:
    """The index as stored (task → entry JSON), for :func:`forget_task`."""
    return {str(k): str(v) for k, v in client.hgetall(keys.SIGNALS_TASKS).items()}


def notified(client: redis.Redis) -> dict[str, str]:
    """Task → what was last notified about it (JSON as stored)."""
    return {str(k): str(v) for k, v in client.hgetall(keys.SIGNALS_NOTIFIED).items()}


def claim_notification(client: redis.Redis, task: str, seen: str, new: str) -> bool:
    """Move a task's notification state from ``seen`` ('' = none) to ``new``; ``True`` for the one
    caller that did (so a round is notified once, even by two exporters)."""
    return bool(client.eval(_SWAP, 1, keys.SIGNALS_NOTIFIED, task, seen, new))
