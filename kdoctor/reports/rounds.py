"""Round bookkeeping in Redis, shared by the coordinator (writes) and clients (progress).

====================================  ==================================================
key                                   holds
====================================  ==================================================
``kdoctor:job:<job>``                 the job: kind, name, normalized spec, rounds so far
``kdoctor:round:<round>``             the round's plan: expected, published, missing nodes,
                                      start instant and deadline
``kdoctor:round:<round>:results``     hash node → NodeResult JSON (first write wins)
``kdoctor:rounds:open``               sorted set round → deadline: what the sweeper watches
``kdoctor:round:<round>:final``       the claim: whoever sets it writes the one report
``kdoctor:rotation:<kind>:<name>``    round counter of a task: turns the NetReach peer ring
====================================  ==================================================

Every key expires with the report retention, so nothing accumulates.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import redis
from pydantic import Field

from kdoctor.specs.results import NodeResult, ResultModel

OPEN_KEY = "kdoctor:rounds:open"


def job_key(job: str) -> str:
    return f"kdoctor:job:{job}"


def round_key(round_id: str) -> str:
    return f"kdoctor:round:{round_id}"


def results_key(round_id: str) -> str:
    return f"kdoctor:round:{round_id}:results"


def claim_key(round_id: str) -> str:
    return f"kdoctor:round:{round_id}:final"


def new_job_id(name: str) -> str:
    """A readable, time-sortable job id: ``<name>-<yyyymmdd>-<hhmmss>-<4 hex>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{name[:40]}-{stamp}-{secrets.token_hex(2)}"


def round_id(job: str, number: int) -> str:
    """The id of round ``number`` of ``job``; reports carry the same id."""
    return f"{job}-r{number}"


class Job(ResultModel):
    """A submitted inspection."""

    job: str
    kind: str
    name: str
    spec: dict[str, Any]
    submitted: float
    source: str = Field(default="api", description="api, cli or schedule")


class RoundState(ResultModel):
    """The plan of one round, as the coordinator made it."""

    round_id: str
    job: str
    round: int
    kind: str
    name: str
    spec: dict[str, Any]
    expected: list[str] = Field(default_factory=list)
    published: list[str] = Field(default_factory=list)
    missing: dict[str, str] = Field(default_factory=dict, description="node → why it is missing")
    idle: dict[str, str] = Field(
        default_factory=dict, description="live node → why it was not asked to probe (not published to)")
    planned: float = 0.0
    start_at: float = 0.0
    deadline: float = 0.0
    warnings: list[str] = Field(default_factory=list)
    inventory: str = "registry"
    error: str = Field(default="", description="Why the round could not be planned, if it could not.")
    coverage: list[list[str]] = Field(
        default_factory=list, description="[source, destination] pairs planned (per-node targets).")


def save_job(client: redis.Redis, job: Job, ttl: int) -> None:
    client.set(job_key(job.job), json.dumps(job.to_json()), ex=ttl)


def load_job(client: redis.Redis, job: str) -> Job | None:
    raw = client.get(job_key(job))
    return Job.model_validate(json.loads(raw)) if raw else None


def open_round(client: redis.Redis, state: RoundState, ttl: int) -> None:
    """Record the plan and start watching its deadline."""
    pipe = client.pipeline()
    pipe.set(round_key(state.round_id), json.dumps(state.to_json()), ex=ttl)
    pipe.zadd(OPEN_KEY, {state.round_id: state.deadline})
    pipe.execute()


def load_round(client: redis.Redis, rid: str) -> RoundState | None:
    raw = client.get(round_key(rid))
    return RoundState.model_validate(json.loads(raw)) if raw else None


def add_result(client: redis.Redis, rid: str, result: NodeResult, ttl: int) -> bool:
    """Store one node's result; a second result for the same node is ignored."""
    key = results_key(rid)
    pipe = client.pipeline()
    pipe.hsetnx(key, result.node, json.dumps(result.to_json()))
    pipe.expire(key, ttl)
    stored, _ = pipe.execute()
    return bool(stored)


def results(client: redis.Redis, rid: str) -> dict[str, NodeResult]:
    return {
        str(node): NodeResult.model_validate(json.loads(raw))
        for node, raw in client.hgetall(results_key(rid)).items()
    }


def result_count(client: redis.Redis, rid: str) -> int:
    return int(client.hlen(results_key(rid)))


def due_rounds(client: redis.Redis, now: float | None = None) -> list[str]:
    """Open rounds whose deadline has passed."""
    when = time.time() if now is None else now
    return [str(r) for r in client.zrangebyscore(OPEN_KEY, "-inf", when)]


def is_final(client: redis.Redis, rid: str) -> bool:
    return bool(client.exists(claim_key(rid)))


def claim(client: redis.Redis, rid: str, ttl: int) -> bool:
    """Take the right to write the round's report; exactly one caller gets ``True``."""
    return bool(client.set(claim_key(rid), str(time.time()), nx=True, ex=ttl))


def close_round(client: redis.Redis, rid: str) -> None:
    client.zrem(OPEN_KEY, rid)


def next_rotation(client: redis.Redis, kind: str, name: str) -> int:
    """The ring rotation for the next round of task ``kind``/``name`` (0, 1, 2, ...)."""
    return int(client.incr(f"kdoctor:rotation:{kind}:{name}")) - 1
