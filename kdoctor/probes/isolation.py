"""Every probe runs in a process of its own, forked for it, killed if it outlives its round.

The worker's Celery process stays small and responsive: it only receives assignments, forks,
waits and stores results. The probe's process has the CPU, the event loop and the engines
(uvloop, httptools, h2, dnspython are imported there, not in the worker) to itself, so its CPU
figures are its own, and ending it is always possible: a probe still running at its round's
deadline (a wedged disk, a runaway loop) is SIGKILLed and reported, and nothing of it stays
behind in the worker (the prefork pool's hard time limit, which this replaces, could corrupt the
pool's pipe and wedge the worker for good).

Forking from a process with threads is safe here because the child only runs the probe: it uses
none of the parent's locks or connections, and leaves with ``os._exit`` (via multiprocessing) so
no inherited exit handler runs.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

from kdoctor.lifetime import die_with_parent
from kdoctor.probes.kinds import NodeContext
from kdoctor.specs.digest import digest_of
from kdoctor.specs.plan import Assignment
from kdoctor.specs.results import NodeDigest, NodeResult

log = logging.getLogger(__name__)

# The probe cuts itself at its deadline (runner.DEADLINE_MARGIN before it); the process gets this
# much more before it is killed.
KILL_GRACE_SECONDS = 2.0


def run_isolated(assignment: Assignment, node: NodeContext,
                 clock_offset: float = 0.0) -> tuple[NodeResult, NodeDigest]:
    """Run ``assignment`` in a forked process; returns its result and the result's digest, made
    in that process too (blocking).

    ``clock_offset``: broker time minus this machine's, as for
    :func:`kdoctor.probes.runner.run_assignment`.
    """
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(sender, assignment.to_json(), node, clock_offset),
                          name=f"kdoctor-probe-{assignment.round_id}", daemon=True)
    process.start()
    sender.close()
    budget = assignment.deadline - (time.time() + clock_offset) + KILL_GRACE_SECONDS
    try:
        if receiver.poll(max(budget, 0.1)):
            result = NodeResult.model_validate_json(receiver.recv_bytes())
            return result, NodeDigest.model_validate_json(receiver.recv_bytes())
        log.error("probe of round %s still running at its deadline: killing its process", assignment.round_id)
        process.kill()
        failed = NodeResult(node=assignment.node, status="error",
                            reason="probe still running at the round deadline: its process was killed")
    except (EOFError, OSError, ValueError):
        process.join(5)
        failed = NodeResult(node=assignment.node, status="error",
                            reason=f"the probe's process died without a result (exit code {process.exitcode})")
    finally:
        receiver.close()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)
    return failed, digest_of(failed)


def _child(sender: Connection, assignment: dict[str, Any], node: NodeContext, clock_offset: float) -> None:
    from kdoctor.probes.runner import run_assignment

    die_with_parent()  # a probe must not outlive its worker (it would report for a dead node)
    result = run_assignment(Assignment.model_validate(assignment), node, clock_offset)
    sender.send_bytes(result.model_dump_json(by_alias=True).encode())
    # The digest is made here, where the CPU is free now and the histograms are at hand.
    sender.send_bytes(digest_of(result).model_dump_json(by_alias=True).encode())
    sender.close()
