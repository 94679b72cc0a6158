"""Run one node's assignment: wait for the common start instant, press, return a NodeResult.

Everything that can go wrong on the node ends in a result: an unhealthy target is a ``failed``
target, a probe that could not run is an ``error`` node with the reason, and a probe still busy
when the round's deadline approaches is cut short and reported as an ``error`` too (the
coordinator would otherwise record a bare ``timeout``).

When the kind asks for several processes (:mod:`kdoctor.probes.spread`), they are forked here,
before any event loop and well before the start instant; each waits for that instant itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kdoctor.errors import KdoctorError
from kdoctor.probes import kinds
from kdoctor.probes.kinds import NodeContext
from kdoctor.probes.measure import GeneratorMonitor
from kdoctor.probes.pressure import sent_so_far
from kdoctor.probes.spread import Share, Team
from kdoctor.specs.loading import validate
from kdoctor.specs.nodes import skew_warning
from kdoctor.specs.plan import Assignment
from kdoctor.specs.results import NodeResult

log = logging.getLogger(__name__)

# The result must reach Redis before the deadline; this much is kept in hand for that.
DEADLINE_MARGIN = 0.5
# How often a running probe tells how many requests it has sent (for `run --wait`'s display).
PROGRESS_SECONDS = 1.0

Progress = Callable[[int], None]


def run_assignment(assignment: Assignment, node: NodeContext, clock_offset: float = 0.0,
                   progress: Progress | None = None) -> NodeResult:
    """Run ``assignment`` on ``node`` to completion on a fresh uvloop event loop (blocking).

    ``clock_offset``: broker time minus this node's time (:func:`kdoctor.store.clock.offset`). The
    assignment's start instant and deadline are broker instants; with the offset the node starts
    with the others and stops in time even when its own clock is wrong, and its reported times are
    comparable with the other nodes'.

    ``progress`` is called about once a second while the probe presses, with the requests sent
    so far (:func:`kdoctor.probes.pressure.sent_so_far`, summed over a team of processes).
    """
    import uvloop

    clock = _Clock(clock_offset)
    started = clock.now()

    def helper(share: Share) -> None:
        # A helper of the team: its figures go to the first process (spread.gather); the result
        # its kind builds from them is not used.
        uvloop.run(_run(assignment, dataclasses.replace(node, share=share), clock, share.tell))

    team = Team.fork(_processes(assignment, node), helper)
    lead = team.lead
    try:
        result = uvloop.run(_run(assignment, dataclasses.replace(node, share=lead), clock, progress,
                                 lambda: sent_so_far() + lead.helpers_sent()))
    except Exception as exc:  # the result must say why, whatever happened
        log.exception("probe of round %s failed to run", assignment.round_id)
        result = NodeResult(node=assignment.node, status="error", reason=f"probe could not run: {exc}")
    finally:
        team.close()
    finished = clock.now()
    skew = skew_warning(assignment.node, clock_offset)
    warnings = [*assignment.warnings, *result.warnings, *([skew] if skew else [])]
    return result.model_copy(update={"started": result.started or started, "finished": finished,
                                     "warnings": warnings})


@dataclass(frozen=True)
class _Clock:
    """This node's clock moved onto the broker's."""

    offset: float

    def time(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)


def _processes(assignment: Assignment, node: NodeContext) -> int:
    """How many processes the kind wants for this assignment (1 when the spec is bad: the probe
    reports that itself)."""
    try:
        return kinds.get(assignment.kind).spread(assignment, validate(assignment.spec), node)
    except KdoctorError:
        return 1


async def _tell_progress(progress: Progress, count: Callable[[], int]) -> None:
    last = -1
    while True:
        await asyncio.sleep(PROGRESS_SECONDS)
        sent = count()
        if sent != last:
            progress(sent)
            last = sent


async def _run(assignment: Assignment, node: NodeContext, clock: _Clock, progress: Progress | None,
               count: Callable[[], int] = sent_so_far) -> NodeResult:
    try:
        kind = kinds.get(assignment.kind)
        spec = validate(assignment.spec)
    except KdoctorError as exc:
        return NodeResult(node=assignment.node, status="error", reason=str(exc))
    # Sleep until the common start instant on the wall clock, then switch to the monotonic clock.
    delay = assignment.start_at - clock.time()
    if delay > 0:
        await asyncio.sleep(delay)
    started = clock.now()
    t0 = time.perf_counter()
    monitor = GeneratorMonitor()
    monitor.start()
    budget = assignment.deadline - clock.time() - DEADLINE_MARGIN
    if budget <= 0:
        return NodeResult(node=assignment.node, status="error", started=started,
                          reason="the round's deadline had passed before the probe could start")
    teller = asyncio.create_task(_tell_progress(progress, count)) if progress is not None else None
    try:
        result = await asyncio.wait_for(kind.run(assignment, spec, t0, monitor, node), budget)
    except TimeoutError:
        return NodeResult(node=assignment.node, status="error", started=started,
                          reason=f"probe still running {budget:.1f} s after start; cut at the round deadline")
    finally:
        if teller is not None:
            teller.cancel()
    return result.model_copy(update={"started": started})
