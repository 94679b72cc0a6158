"""Jobs, round plans, node results and report claims in Redis (key layout: :mod:`kdoctor.store.keys`).

Written by the coordinator (plans, claims), the workers (results) and clients (jobs); read by
clients for progress. Every key expires with the report retention, so nothing accumulates.
"""

from __future__ import annotations

import json
import time

import redis

from kdoctor.specs.results import NodeResult
from kdoctor.specs.rounds import Job, RoundState
from kdoctor.store import keys


def save_job(client: redis.Redis, job: Job, ttl: int) -> None:
    client.set(keys.job(job.job), json.dumps(job.to_json()), ex=ttl)


def load_job(client: redis.Redis, job: str) -> Job | None:
    raw = client.get(keys.job(job))
    return Job.model_validate(json.loads(raw)) if raw else None


def open_round(client: redis.Redis, state: RoundState, ttl: int) -> None:
    """Record the plan and start watching its deadline."""
    pipe = client.pipeline()
    pipe.set(keys.round_plan(state.round_id), json.dumps(state.to_json()), ex=ttl)
    pipe.zadd(keys.OPEN_ROUNDS, {state.round_id: state.deadline})
    pipe.execute()


def load_round(client: redis.Redis, rid: str) -> RoundState | None:
    raw = client.get(keys.round_plan(rid))
    return RoundState.model_validate(json.loads(raw)) if raw else None


def is_planned(client: redis.Redis, rid: str) -> bool:
    return bool(client.exists(keys.round_plan(rid)))


def add_result(client: redis.Redis, rid: str, result: NodeResult, ttl: int) -> bool:
    """Store one node's result; a second result for the same node is ignored."""
    key = keys.round_results(rid)
    pipe = client.pipeline()
    pipe.hsetnx(key, result.node, json.dumps(result.to_json()))
    pipe.expire(key, ttl)
    stored, _ = pipe.execute()
    return bool(stored)


def results(client: redis.Redis, rid: str) -> dict[str, NodeResult]:
    return {
        str(node): NodeResult.model_validate(json.loads(raw))
        for node, raw in client.hgetall(keys.round_results(rid)).items()
    }


def result_count(client: redis.Redis, rid: str) -> int:
    return int(client.hlen(keys.round_results(rid)))


def due_rounds(client: redis.Redis, now: float | None = None) -> list[str]:
    """Open rounds whose deadline has passed."""
    when = time.time() if now is None else now
    return [str(r) for r in client.zrangebyscore(keys.OPEN_ROUNDS, "-inf", when)]


def is_final(client: redis.Redis, rid: str) -> bool:
    return bool(client.exists(keys.round_claim(rid)))


def claim(client: redis.Redis, rid: str, ttl: int) -> bool:
    """Take the right to write the round's report; exactly one caller gets ``True``."""
    return bool(client.set(keys.round_claim(rid), str(time.time()), nx=True, ex=ttl))


def close_round(client: redis.Redis, rid: str) -> None:
    client.zrem(keys.OPEN_ROUNDS, rid)


def next_rotation(client: redis.Redis, kind: str, name: str, ttl: int) -> int:
    """The ring rotation for the next round of task ``kind``/``name`` (0, 1, 2, ...)."""
    pipe = client.pipeline()
    pipe.incr(keys.rotation(kind, name))
    pipe.expire(keys.rotation(kind, name), ttl)
    number, _ = pipe.execute()
    return int(number) - 1


def next_fire(client: redis.Redis, job: str) -> int:
    """The number of the round a schedule fires now (1, 2, ...): an ``INCR``, so even a duplicate
    fire never gets the same number twice."""
    pipe = client.pipeline()
    pipe.incr(keys.job_fired(job))
    pipe.expire(keys.job_fired(job), keys.SCHEDULE_TTL_SECONDS)
    number, _ = pipe.execute()
    return int(number)


def fired(client: redis.Redis, job: str) -> int:
    """How many rounds a schedule has fired."""
    return int(client.get(keys.job_fired(job)) or 0)
