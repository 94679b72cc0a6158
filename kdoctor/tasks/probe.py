"""``kdoctor.probe``: run one node's assignment in a process of its own and store its result (runs
on that node)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery

from kdoctor.errors import KdoctorError
from kdoctor.inventory import references
from kdoctor.inventory.source import InventorySource, open_source
from kdoctor.probes.isolation import run_isolated
from kdoctor.probes.kinds import ApiObjects, NodeContext
from kdoctor.settings import Settings
from kdoctor.specs.digest import digest_of
from kdoctor.specs.loading import validate
from kdoctor.specs.plan import Assignment
from kdoctor.specs.results import NodeDigest, NodeResult
from kdoctor.store import clock, rounds
from kdoctor.tasks.names import PROBE

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5


def execute(client: redis.Redis, settings: Settings, assignment: Assignment,
            source: InventorySource | None = None) -> NodeResult:
    """Run the assignment unless it is misrouted or its round is already over; store the result."""
    local = settings.node_name
    if local and assignment.node != local:
        # A message for another node reached this one: probing from here would blame the wrong node.
        result = NodeResult(node=assignment.node, status="error",
                            reason=f"assignment for {assignment.node} was delivered to node {local}")
        digest = digest_of(result)
    elif not rounds.is_open(client, assignment.round_id):
        return NodeResult(node=assignment.node, status="timeout", reason="round already reported")
    else:
        node = NodeContext(name=assignment.node, data_dir=settings.data_dir, resolv_conf=settings.resolv_conf,
                           objects=_objects(source, assignment), disk_engine=settings.disk_engine,
                           generator_processes=settings.generator_processes,
                           generator_loop_qps=settings.generator_loop_qps)
        # The objects were read here, before the fork: the probe's process gets them in memory.
        result, digest = run_isolated(assignment, node, clock.offset(client), _progress(client, assignment))
    store_result(client, assignment, result, digest)
    return result


def _progress(client: redis.Redis, assignment: Assignment) -> Callable[[int], None]:
    """What the probe's progress does: add the requests sent since its last word to the round's
    count. Best effort: a Redis hiccup costs a display figure, never the probe."""
    told = 0

    def tell(sent: int) -> None:
        nonlocal told
        try:
            rounds.add_sent(client, assignment.round_id, sent - told)
            told = sent
        except redis.RedisError as exc:
            log.debug("progress of round %s not stored: %s", assignment.round_id, exc)

    return tell


def store_result(client: redis.Redis, assignment: Assignment, result: NodeResult, digest: NodeDigest) -> None:
    """Store the node's result, riding out a Redis outage until the round's deadline (a result
    that arrives later is not in the report anyway)."""
    while True:
        try:
            if not rounds.add_result(client, assignment.round_id, result, digest):
                log.warning("round %s was reported before node %s's result arrived", assignment.round_id,
                            assignment.node)
            return
        except redis.ConnectionError as exc:
            if time.time() + RETRY_SECONDS > assignment.deadline:  # roughly: our clock is near the broker's
                log.error("could not store node %s's result of round %s: %s", assignment.node,
                          assignment.round_id, exc)
                return
            time.sleep(RETRY_SECONDS)


def _objects(source: InventorySource | None, assignment: Assignment) -> ApiObjects | None:
    """What the spec names, read now from ``source``: before the common start instant, so the
    API's answer time never delays the pressure."""
    if source is None:
        return None
    try:
        spec = validate(assignment.spec)
    except KdoctorError:
        return source  # the probe reports the bad spec itself
    return references.prefetch(source, spec)


def register(app: Celery, clients: Callable[[], redis.Redis], settings: Settings) -> None:
    """Register ``kdoctor.probe`` on ``app``."""
    opened: list[InventorySource] = []

    def objects() -> InventorySource:
        # Where the ConfigMaps and Secrets a spec names are read from this node: the inventory
        # source (the kubernetes one reads them from the API), made once per pool process.
        if not opened:
            opened.append(open_source(settings, clients()))
        return opened[0]

    @app.task(name=PROBE, ignore_result=True)  # type: ignore[untyped-decorator]
    def probe(assignment: dict[str, Any]) -> dict[str, str]:
        result = execute(clients(), settings, Assignment.model_validate(assignment), objects())
        return {"node": result.node, "status": result.status}
