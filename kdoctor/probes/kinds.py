"""The registry of probe kinds: ``kind`` → how to plan it and how to run it on a node.

Every kind provides ``plan(spec, source, view) -> (targets, warnings)`` (pure, runs on the
coordinator) and ``async run(assignment, spec, t0, monitor) -> NodeResult`` (runs on the node);
optionally ``idle(spec, node)``, why a live node is left out as a source.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kdoctor.errors import SetupError
from kdoctor.probes import apphttp, diskio, netdns, netreach
from kdoctor.probes.measure import GeneratorMonitor
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import Assignment, InventoryView, PlannedTarget
from kdoctor.specs.results import NodeResult

PlanFn = Callable[[Any, NodeInfo, InventoryView], tuple[list[PlannedTarget], list[str]]]
RunFn = Callable[[Assignment, Any, float, GeneratorMonitor], Awaitable[NodeResult]]


@dataclass(frozen=True)
class ProbeKind:
    """How one ``kind`` is planned and run."""

    name: str
    plan: PlanFn
    run: RunFn
    budget: Callable[[Any], float] = lambda spec: float(
        spec.spec.request.duration_in_second + spec.spec.request.timeout_seconds
    )
    """Seconds one node needs for the spec, from the start instant to its last answer."""
    serial: Callable[[Any], bool] = lambda spec: False
    """Whether a spec asks for its nodes to run one after another instead of all at once."""
    idle: Callable[[Any, NodeInfo], str | None] = lambda spec, node: None
    """Why a live node sends nothing this round (not published to), or ``None`` when it probes."""


KINDS: dict[str, ProbeKind] = {
    "NetReach": ProbeKind("NetReach", netreach.plan, netreach.run, idle=netreach.idle),
    "AppHttpHealthy": ProbeKind("AppHttpHealthy", apphttp.plan, apphttp.run),
    "Netdns": ProbeKind("Netdns", netdns.plan, netdns.run),
    "DiskIO": ProbeKind("DiskIO", diskio.plan, diskio.run, diskio.budget, diskio.serial),
}


def get(kind: str) -> ProbeKind:
    """The probe kind called ``kind``; :class:`SetupError` says which kinds this build runs."""
    try:
        return KINDS[kind]
    except KeyError:
        hint = difflib.get_close_matches(kind, list(KINDS), n=1)
        maybe = f" Did you mean {hint[0]}?" if hint else ""
        raise SetupError(
            f"this kdoctor build cannot run {kind!r} probes yet; it runs: {', '.join(KINDS)}.{maybe}"
        ) from None
