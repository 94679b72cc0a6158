"""Why a Node's worker is not live, in the API's own words. Pure.

The first thing that explains it wins, from the node up: the Node is NotReady; no worker pod is
on it; the pod is terminating, Pending (unschedulable, image pull, ...), failed, crash-looping or
not Ready; the pod runs but its worker never registered in Redis or stopped beating.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kdoctor.inventory.kubernetes.records import Condition, NodeRecord, PodRecord
from kdoctor.inventory.registry import missing_reason as heartbeat_reason
from kdoctor.specs.nodes import NodeInfo

__all__ = ["agent_pod", "missing_reason"]


def _when(stamp: str) -> str:
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return stamp
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _said(condition: Condition) -> str:
    """A condition's reason and message, as one phrase."""
    return ": ".join(part for part in (condition.reason, condition.message) if part)


def agent_pod(pods: list[PodRecord]) -> PodRecord | None:
    """The pod that speaks for a node: a live one before one being deleted, Running before the
    rest (during a rollout a node briefly has two)."""
    if not pods:
        return None
    return min(pods, key=lambda p: (p.deleting, p.phase != "Running", p.ready.status != "True", p.name))


def missing_reason(node: NodeRecord, pod: PodRecord | None, worker: NodeInfo | None, now: float,
                   timeout: float, agents: str) -> str:
    """Why ``node`` has no live worker (``agents`` describes the agent pods, for the no-pod case)."""
    if node.ready.status != "True":
        since = f" since {_when(node.ready.since)}" if node.ready.since else ""
        said = _said(node.ready)
        return f"node NotReady{since}" + (f": {said}" if said else "")
    if pod is None:
        return f"no kdoctor worker pod on this node ({agents}): the DaemonSet has not scheduled one here"
    name = f"worker pod {pod.name}"
    if pod.deleting:
        return f"{name} is terminating"
    if pod.phase == "Pending":
        if pod.scheduled.status == "False":
            return f"{name} is Pending, not scheduled: {_said(pod.scheduled)}"
        problem = next(iter(pod.problems), None)
        if problem is not None:
            detail = f": {problem.message}" if problem.message else ""
            return f"{name} is Pending: container {problem.container}: {problem.reason}{detail}"
        return f"{name} is Pending" + (f": {_said(pod.ready)}" if _said(pod.ready) else "")
    if pod.phase in ("Failed", "Succeeded"):
        problem = next(iter(pod.problems), None)
        detail = f": container {problem.container}: {problem.reason} ({problem.message})" if problem else ""
        return f"{name} has {pod.phase.lower()}{detail}"
    for problem in pod.problems:
        restarts = f", restarted {problem.restarts} times" if problem.restarts else ""
        last = f", last {problem.last_exit}" if problem.last_exit else ""
        detail = f": {problem.message}" if problem.message else ""
        return f"{name}: container {problem.container} is in {problem.reason}{restarts}{last}{detail}"
    if pod.ready.status != "True":
        said = _said(pod.ready)
        return f"{name} is {pod.phase} but not Ready" + (f" ({said})" if said else "")
    if worker is None:
        return (f"{name} is Running and Ready, but its worker never registered in Redis (is it on another "
                "broker, or refused by it?)")
    return f"{name} is Running, but {heartbeat_reason(worker, now, timeout)}"
