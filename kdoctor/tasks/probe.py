"""``kdoctor.probe``: run one node's assignment and store its result (runs on that node)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery

from kdoctor.errors import KdoctorError
from kdoctor.inventory import references
from kdoctor.inventory.source import InventorySource, open_source
from kdoctor.probes.kinds import ApiObjects, NodeContext
from kdoctor.probes.runner import run_assignment
from kdoctor.settings import Settings
from kdoctor.specs.loading import validate
from kdoctor.specs.plan import Assignment
from kdoctor.specs.results import NodeResult
from kdoctor.store import clock, rounds
from kdoctor.tasks.names import PROBE

log = logging.getLogger(__name__)


def execute(client: redis.Redis, settings: Settings, assignment: Assignment,
            source: InventorySource | None = None) -> NodeResult:
    """Run the assignment unless it is misrouted or its round is already over; store the result."""
    ttl = int(settings.report_retention_days * 86400)
    local = settings.node_name
    if local and assignment.node != local:
        # A message for another node reached this one: probing from here would blame the wrong node.
        result = NodeResult(node=assignment.node, status="error",
                            reason=f"assignment for {assignment.node} was delivered to node {local}")
    elif rounds.is_final(client, assignment.round_id):
        return NodeResult(node=assignment.node, status="timeout", reason="round already reported")
    else:
        node = NodeContext(name=assignment.node, data_dir=settings.data_dir, resolv_conf=settings.resolv_conf,
                           objects=_objects(source, assignment))
        result = run_assignment(assignment, node, clock.offset(client))
    rounds.add_result(client, assignment.round_id, result, ttl)
    return result


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

    @app.task(name=PROBE, ignore_result=False)  # type: ignore[untyped-decorator]
    def probe(assignment: dict[str, Any]) -> dict[str, str]:
        result = execute(clients(), settings, Assignment.model_validate(assignment), objects())
        # The full result travels through kdoctor's own hash; the chord only needs to know it ended.
        return {"node": result.node, "status": result.status}
