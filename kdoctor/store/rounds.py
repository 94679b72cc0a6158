"""Jobs, round plans, node results and the end of a round in Redis (key layout: :mod:`kdoctor.store.keys`).

A round's life in Redis:

1. :func:`open_round` (coordinator) writes the plan, a small progress hash for waiting clients, the
   count of results still expected, the round's deadline in the open set, and which nodes it keeps
   busy until when.
2. :func:`add_result` (each worker) stores its node's result, atomically with counting it: the
   result that leaves none pending makes the round due now, so the coordinator's sweeper reports
   it at once instead of at the deadline. A result for a round already reported is dropped.
3. :func:`finish` (the coordinator holding the round's :func:`lease`) writes the report and deletes
   every key of the round in one transaction: afterwards Redis holds the report and its head only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

import redis

from kdoctor.specs.results import NodeDigest, NodeResult, Report
from kdoctor.specs.rounds import Busy, Job, RoundState
from kdoctor.store import keys
from kdoctor.store import reports as report_store

# Stores a node's result and digest once and counts it; the last one expected makes the round
# due now. KEYS: plan, results, digests, pending, open set; ARGV: node, result, digest, round id.
_ADD_RESULT = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
if redis.call('DECR', KEYS[4]) <= 0 then
  redis.call('ZADD', KEYS[5], 'XX', 0, ARGV[4])
  return 2
end
return 1
"""

# Clears a node's busy mark only if it is still this round's.
# KEYS: busy hash; ARGV: round id, nodes...
_RELEASE_BUSY = """
for i = 2, #ARGV do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  if held and cjson.decode(held)['round'] == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 0
"""

LEASE_SECONDS = 120
"""How long a coordinator may take to write a report before another one may try (it died)."""


def save_job(client: redis.Redis, job: Job, ttl: int) -> None:
    client.set(keys.job(job.job), json.dumps(job.to_json()), ex=ttl)


def load_job(client: redis.Redis, job: str) -> Job | None:
    raw = client.get(keys.job(job))
    return Job.model_validate(json.loads(raw)) if raw else None


def open_round(client: redis.Redis, state: RoundState, ttl: int) -> None:
    """Record the plan, what clients poll, the results expected, the deadline and the busy nodes."""
    rid = state.round_id
    pipe = client.pipeline()
    pipe.set(keys.round_plan(rid), json.dumps(state.to_json()), ex=ttl)
    pipe.hset(keys.round_progress(rid), mapping={
        "published": len(state.published), "expected": len(state.expected), "startAt": state.start_at,
        "deadline": state.deadline})
    pipe.expire(keys.round_progress(rid), ttl)
    pipe.set(keys.round_pending(rid), len(state.published), ex=ttl)
    pipe.zadd(keys.OPEN_ROUNDS, {rid: state.deadline})
    if state.published:
        busy = json.dumps(Busy(round=rid, until=state.deadline).to_json())
        pipe.hset(keys.BUSY, mapping=dict.fromkeys(state.published, busy))
    pipe.execute()


def load_round(client: redis.Redis, rid: str) -> RoundState | None:
    raw = client.get(keys.round_plan(rid))
    return RoundState.model_validate(json.loads(raw)) if raw else None


def is_open(client: redis.Redis, rid: str) -> bool:
    """Whether the round is planned and not yet reported."""
    return bool(client.exists(keys.round_plan(rid)))


def add_result(client: redis.Redis, rid: str, result: NodeResult, digest: NodeDigest) -> bool:
    """Store one node's result and its digest; ``False`` when it was not stored (a second result
    for the node, or the round is already reported)."""
    return add_raw_result(client, rid, result.node, result.model_dump_json(by_alias=True),
                          digest.model_dump_json(by_alias=True))


def add_raw_result(client: redis.Redis, rid: str, node: str, result: str, digest: str) -> bool:
    """:func:`add_result` with the result and digest already as JSON."""
    stored = client.eval(_ADD_RESULT, 5, keys.round_plan(rid), keys.round_results(rid), keys.round_digests(rid),
                         keys.round_pending(rid), keys.OPEN_ROUNDS, node, result, digest, rid)
    return int(stored) > 0


def record_publish(client: redis.Redis, rid: str, plan_seconds: float, publish_seconds: float,
                   published_at: float) -> None:
    """What planning and publishing the round cost (the report's ``timing``)."""
    client.hset(keys.round_progress(rid), mapping={
        "planSeconds": round(plan_seconds, 4), "publishSeconds": round(publish_seconds, 4),
        "publishedAt": published_at})


# Only while the round is open: a late word after the report must not recreate its key (forever).
_ADD_SENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'sent', ARGV[1]) end
"""


def add_sent(client: redis.Redis, rid: str, requests: int) -> None:
    """Count ``requests`` more sent by a node of the round (the waiting client's live figure)."""
    client.eval(_ADD_SENT, 1, keys.round_progress(rid), requests)


def timing(client: redis.Redis, rid: str) -> dict[str, float]:
    """The planning figures :func:`record_publish` stored (empty when none were)."""
    fields = client.hmget(keys.round_progress(rid), ["planSeconds", "publishSeconds", "publishedAt"])
    return {name: float(value) for name, value in zip(("planSeconds", "publishSeconds", "publishedAt"), fields,
                                                       strict=True) if value is not None}


def raw_results(client: redis.Redis, rid: str) -> dict[str, str]:
    """Every node's result as the JSON it stored (the report embeds it as it is)."""
    return {str(node): str(raw) for node, raw in client.hgetall(keys.round_results(rid)).items()}


def digests(client: redis.Redis, rid: str) -> dict[str, NodeDigest]:
    """Every node's digest; a node whose digest does not read is left out (its result is still
    in the report; the round then judges it as having sent none)."""
    found = {}
    for node, raw in client.hgetall(keys.round_digests(rid)).items():
        try:
            found[str(node)] = NodeDigest.model_validate_json(raw)
        except ValueError:
            continue
    return found


def results(client: redis.Redis, rid: str) -> dict[str, NodeResult]:
    """Every node's result as a model (for tools and tests; the coordinator reads digests)."""
    return {node: NodeResult.model_validate_json(raw) for node, raw in raw_results(client, rid).items()}


def progress(client: redis.Redis, rid: str) -> tuple[bool, dict[str, str], int, float]:
    """What a waiting client needs, in one round trip: whether the report exists, the progress
    hash (empty before the round is planned), how many nodes have answered, the broker's time."""
    pipe = client.pipeline(transaction=False)
    pipe.exists(keys.report(rid))
    pipe.hgetall(keys.round_progress(rid))
    pipe.hlen(keys.round_results(rid))
    pipe.time()
    done, fields, answered, (seconds, micros) = pipe.execute()
    return bool(done), dict(fields), int(answered), float(seconds) + float(micros) / 1e6


def due_rounds(client: redis.Redis, now: float | None = None) -> list[str]:
    """Open rounds whose deadline has passed, or that every node has answered."""
    when = time.time() if now is None else now
    return [str(r) for r in client.zrangebyscore(keys.OPEN_ROUNDS, "-inf", when)]


def lease(client: redis.Redis, rid: str, holder: str) -> bool:
    """Take the right to write the round's report for a while; one caller at a time gets ``True``."""
    return bool(client.set(keys.round_lease(rid), holder, nx=True, ex=LEASE_SECONDS))


def release(client: redis.Redis, rid: str) -> None:
    """Give a lease back without a report (nothing to report, or the writer failed)."""
    client.delete(keys.round_lease(rid))


def forget_round(client: redis.Redis, rid: str) -> None:
    """Stop watching a round whose plan is gone (expired, or Redis lost it)."""
    client.zrem(keys.OPEN_ROUNDS, rid)


def unconsumed(client: redis.Redis, rid: str, nodes: Iterable[str]) -> set[str]:
    """Remove this round's probe messages that are still queued for ``nodes`` (their consumer never
    took them); returns the nodes that had one."""
    nodes = list(nodes)
    if not nodes:
        return set()
    pipe = client.pipeline(transaction=False)
    for node in nodes:
        pipe.lrange(keys.node_queue(node), 0, -1)
    found: dict[str, list[str]] = {}
    for node, messages in zip(nodes, pipe.execute(), strict=True):
        wanted = f"{rid}.{node}"
        found[node] = [raw for raw in messages if _message_id(raw) == wanted]
    pipe = client.pipeline(transaction=False)
    for node, messages in found.items():
        for raw in messages:
            pipe.lrem(keys.node_queue(node), 1, raw)
    pipe.execute()
    return {node for node, messages in found.items() if messages}


def _message_id(raw: str) -> str | None:
    try:
        headers = json.loads(raw).get("headers") or {}
    except (ValueError, AttributeError):
        return None
    return str(headers.get("id")) if isinstance(headers, dict) else None


def finish(client: redis.Redis, state: RoundState, report: Report, retention: int, *,
           drop_job: bool, report_cap_bytes: int = 0, text: str | None = None) -> None:
    """Write the report and delete every key of the round, in one transaction (the lease goes
    too), and free its nodes. ``drop_job``: the job was a single round; its record goes with it.
    ``text``: the whole report as JSON when ``report`` is only its shell."""
    rid = state.round_id
    pipe = client.pipeline()
    report_store.save_into(pipe, report, retention, text)
    pipe.delete(*keys.round_keys(rid))
    pipe.zrem(keys.OPEN_ROUNDS, rid)
    if drop_job:
        pipe.delete(keys.job(state.job))
    pipe.execute()
    if state.published:
        client.eval(_RELEASE_BUSY, 1, keys.BUSY, rid, *state.published)
    report_store.enforce_retention(client, retention, report_cap_bytes)


def busy(client: redis.Redis, now: float) -> dict[str, Busy]:
    """Nodes a round keeps busy after ``now`` (marks of rounds past their end are ignored)."""
    found = {}
    for node, raw in client.hgetall(keys.BUSY).items():
        try:
            mark = Busy.model_validate(json.loads(raw))
        except ValueError:
            continue
        if mark.until > now:
            found[str(node)] = mark
    return found


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
