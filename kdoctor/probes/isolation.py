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
from collections.abc import Callable
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
# A frame from the child that is not its result (which is JSON, so starts with "{"): requests sent.
PROGRESS = b"P"


def run_isolated(assignment: Assignment, node: NodeContext, clock_offset: float = 0.0,
                 on_progress: Callable[[int], None] | None = None) -> tuple[NodeResult, NodeDigest]:
    """Run ``assignment`` in a forked process; returns its result and the result's digest, made
    in that process too (blocking).

    ``clock_offset``: broker time minus this machine's, as for
    :func:`kdoctor.probes.runner.run_assignment`. ``on_progress`` is called here (in this
    process) with the requests the probe has sent so far, about once a second.
    """
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(sender, assignment.to_json(), node, clock_offset,
                                               on_progress is not None),
                          name=f"kdoctor-probe-{assignment.round_id}", daemon=True)
    process.start()
    sender.close()
    limit = time.monotonic() + assignment.deadline - (time.time() + clock_offset) + KILL_GRACE_SECONDS
    try:
        while receiver.poll(max(limit - time.monotonic(), 0.1)):
            frame = receiver.recv_bytes()
            if frame.startswith(PROGRESS):  # the child's progress; the result comes after
                if on_progress is not None:
                    on_progress(int(frame[len(PROGRESS):]))
                continue
            result = NodeResult.model_validate_json(frame)
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


def _child(sender: Connection, assignment: dict[str, Any], node: NodeContext, clock_offset: float,
           progress: bool) -> None:
    from kdoctor.probes.runner import run_assignment

    die_with_parent()  # a probe must not outlive its worker (it would report for a dead node)

    def tell(sent: int) -> None:
        sender.send_bytes(PROGRESS + str(sent).encode())

    result = run_assignment(Assignment.model_validate(assignment), node, clock_offset, tell if progress else None)
    sender.send_bytes(result.model_dump_json(by_alias=True).encode())
    # The digest is made here, where the CPU is free now and the histograms are at hand.
    sender.send_bytes(digest_of(result).model_dump_json(by_alias=True).encode())
    sender.close()
