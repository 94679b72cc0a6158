"""The planner: which nodes probe what, when they start, when the round ends. Pure, no I/O.

``plan(spec, inventory, now, settings, job=..., number=...)`` turns a validated spec and the
inventory's snapshot (expected nodes, which are live, Service addresses) into a
:class:`RoundPlan`: the round's state as it is stored and one assignment per node that probes.
The Celery task around it only loads, calls this and publishes.

=================  ==========================================================================
who                 what the plan says
=================  ==========================================================================
expected, live      probes (one assignment), unless the kind leaves it idle
expected, idle      no assignment; ``passed`` with the reason (e.g. not a selected source)
expected, not live  no assignment; ``missing`` with the inventory's reason
skipped             not expected (e.g. cordoned without a worker); listed with the reason
=================  ==========================================================================

Instants are on the broker's clock. Every node starts at ``start_at``: ``now`` plus the start
lead plus the time planning and publishing to every node take (``per_node_seconds``, which the
coordinator measures), or, when a node the round needs is still busy with another round, just
after that round ends: the report then says who it waited for (a node runs one probe at a time;
two rounds pressing one node at once would measure each other). Serial kinds stagger nodes by
their budget. The deadline is the start plus the budget plus the grace, never later than
``roundTimeoutMinute`` after ``now`` (serial kinds add their stagger to that bound); a round that
could not even start in that time is refused with the busy nodes named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kdoctor.probes import kinds
from kdoctor.settings import Settings
from kdoctor.specs import compat
from kdoctor.specs.loading import SpecModel, spec_json
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import Assignment, InventoryView, RoundContext
from kdoctor.specs.rounds import Busy, Job, RoundState, round_id

__all__ = ["BUSY_GAP_SECONDS", "PUBLISH_SECONDS_PER_NODE", "RoundPlan", "failed", "plan"]

# Planning and publishing cost about this much per node before the coordinator has measured it
# (it then plans with its own measurement, kdoctor.tasks.coordinator.Pacing).
PUBLISH_SECONDS_PER_NODE = 0.002
# A round that waits for a busy node starts this long after the other round's deadline: the
# other probe has stopped by its deadline, and its result is written meanwhile.
BUSY_GAP_SECONDS = 0.5


@dataclass(frozen=True)
class RoundPlan:
    """A planned round: its stored state and what to publish to each node."""

    state: RoundState
    assignments: list[Assignment] = field(default_factory=list)
    clock_offsets: dict[str, float] = field(default_factory=dict)
    """Each probing node's clock offset (broker minus node), to express expiry in its clock."""


def plan(spec: SpecModel, inventory: InventoryView, now: float, settings: Settings, *, job: str,
         number: int, rotation: int = 0, busy: Mapping[str, Busy] | None = None,
         per_node_seconds: float = PUBLISH_SECONDS_PER_NODE) -> RoundPlan:
    """Plan round ``number`` of ``job`` at broker time ``now``; ``busy``: nodes another round keeps
    busy, and until when."""
    kind = kinds.get(spec.kind)
    document = spec_json(spec)
    rid = round_id(job, number)
    alive = inventory.live_nodes()
    idle = {n.name: why for n in alive if (why := kind.idle(spec, n))}
    live = [n for n in alive if n.name not in idle]
    live_names = set(inventory.live)
    missing = {n.name: inventory.missing.get(n.name, "its worker is not live")
               for n in inventory.expected if n.name not in live_names}
    budget = kind.budget(spec)
    serial = kind.serial(spec)
    ready = now + settings.start_lead_seconds + per_node_seconds * len(live)
    waited_for = _blocking(live, busy or {}, ready)
    start_at = max([ready, *(b.until + BUSY_GAP_SECONDS for _, b in waited_for)])
    span = budget * len(live) if serial else budget
    limit = now + spec.spec.schedule.round_timeout_seconds + (span if serial else 0.0)
    deadline = min(start_at + span + settings.round_grace_seconds, limit)
    if waited_for and start_at + span > limit:
        error = (f"{_busy_names(waited_for)} busy until {max(b.until for _, b in waited_for) - now:.0f} s from now: "
                 "the round could not run within its roundTimeoutMinute; submit it again later or raise "
                 "spec.schedule.roundTimeoutMinute")
        return RoundPlan(failed_state(spec, document, job, number, now, error, inventory))
    ctx = RoundContext(inventory, rotation)
    assignments = []
    warnings: list[str] = [*inventory.warnings, *compat.ignored(spec, inventory.source)]
    for index, node in enumerate(live):
        targets, node_warnings = kind.plan(spec, node, ctx)
        warnings += [w for w in node_warnings if w not in warnings]
        assignments.append(Assignment(
            round_id=rid, job=job, round=number, kind=spec.kind, name=spec.name, spec=document,
            node=node.name, targets=targets,
            start_at=start_at + (index * budget if serial else 0.0), deadline=deadline,
        ))
    if waited_for:
        warnings.insert(0, f"waited {start_at - ready:.1f} s for {_busy_names(waited_for)} (a node runs one round "
                           "at a time)")
    state = RoundState(
        round_id=rid, job=job, round=number, kind=spec.kind, name=spec.name, spec=document,
        expected=[n.name for n in inventory.expected], published=[a.node for a in assignments],
        missing=missing, idle=idle, skipped=inventory.skipped, planned=now, start_at=start_at,
        deadline=deadline, warnings=warnings,
        inventory=inventory.source, error=_nothing_selected(idle, len(live)),
        coverage=[[a.node, d] for a in assignments
                  for d in dict.fromkeys(t.destination for t in a.targets if t.destination)],
    )
    return RoundPlan(state, assignments, {n.name: n.clock_offset for n in live})


def _blocking(live: list[NodeInfo], busy: Mapping[str, Busy], ready: float) -> list[tuple[str, Busy]]:
    """The probing nodes whose other round is still running at ``ready``, latest end first."""
    found = [(n.name, busy[n.name]) for n in live if n.name in busy and busy[n.name].until + BUSY_GAP_SECONDS > ready]
    return sorted(found, key=lambda item: -item[1].until)


def _busy_names(waited_for: list[tuple[str, Busy]]) -> str:
    """``node-2 busy with round R`` for the node that ends last, and how many more."""
    name, mark = waited_for[0]
    more = f" and {len(waited_for) - 1} more node(s)" if len(waited_for) > 1 else ""
    return f"{name} (busy with round {mark.round}){more}"


def failed_state(spec: SpecModel, document: dict[str, Any], job: str, number: int, now: float, error: str,
                 inventory: InventoryView) -> RoundState:
    """The state of a round refused at planning: nothing was probed, the error says why."""
    return RoundState(
        round_id=round_id(job, number), job=job, round=number, kind=spec.kind, name=spec.name, spec=document,
        planned=now, start_at=now, deadline=now, error=error, inventory=inventory.source)


def failed(job: Job | None, job_id: str, number: int, now: float, error: str) -> RoundState:
    """The state of a round that could not be planned: reported at once, with the reason."""
    return RoundState(
        round_id=round_id(job_id, number), job=job_id, round=number, kind=job.kind if job else "?",
        name=job.name if job else "?", spec=job.spec if job else {}, planned=now, start_at=now,
        deadline=now, error=error,
    )


def _nothing_selected(idle: dict[str, str], sources: int) -> str:
    """The planning error of a round whose source selection left no node to probe from."""
    if sources or not idle:
        return ""
    why = next(iter(idle.values())).split(":")[0]
    return (f"none of the {len(idle)} live node(s) is a source ({why}), so nothing was probed: "
            "fix the selector or the nodes' labels")
