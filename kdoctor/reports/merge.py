"""Merge node results into a round's report and judge the round. Pure: no I/O."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from kdoctor.reports.blame import describe
from kdoctor.reports.matrix import LatencyDigest, build_matrix, digest
from kdoctor.specs.results import NodeResult, Report, Summary, TaskRef
from kdoctor.specs.rounds import RoundState


def build_report(state: RoundState, results: dict[str, NodeResult], finished: datetime | None = None) -> Report:
    """The report of one round.

    Every expected node appears exactly once: with its own result, as ``missing`` (not live at
    planning, never published to), or as ``timeout`` (published, no result by the deadline).
    The round passes only when every expected node passed; the blame analysis's suspects lead
    the reasons. A live node the spec leaves out as a source (``state.idle``) is ``passed`` with
    the reason: it was probed only as a destination, where its column of the matrix judges it.
    """
    end = finished or datetime.now(UTC)
    nodes: dict[str, NodeResult] = {}
    for node in sorted(set(state.expected) | set(results)):
        if node in results:
            nodes[node] = results[node]
        elif node in state.missing:
            nodes[node] = NodeResult(node=node, status="missing", reason=state.missing[node])
        elif node in state.idle:  # live, deliberately not a source: nothing of its own to judge
            nodes[node] = NodeResult(node=node, status="passed", reason=state.idle[node])
        else:
            nodes[node] = NodeResult(
                node=node, status="timeout",
                reason="no result by the round deadline (the worker died, hung or lost its broker "
                       "connection while probing)")
    latencies = digest(nodes)
    matrix = build_matrix(nodes, state.coverage, latencies)
    # Blame first: "node-3 is broken" is what the reader needs before each node's own complaint.
    reasons = [describe(s) for s in (matrix.suspects if matrix else [])]
    reasons += [f"{name}: {res.status}: {res.reason}" if res.reason else f"{name}: {res.status}"
                for name, res in nodes.items() if res.status != "passed"]
    if state.error:
        reasons.insert(0, f"the round could not be planned: {state.error}")
    elif not nodes:
        reasons.append("no node is known: start a worker (`kdoctor worker --node NAME`) or give an inventory")
    warnings = list(dict.fromkeys([*state.warnings, *(w for r in nodes.values() for w in r.warnings)]))
    if state.skipped:
        warnings.append(skipped_line(state.skipped))
    return Report(
        id=state.round_id,
        job=state.job,
        task=TaskRef(kind=state.kind, name=state.name),
        round=state.round,
        verdict="failed" if reasons else "passed",
        reasons=reasons,
        warnings=warnings,
        started=datetime.fromtimestamp(state.start_at or state.planned, UTC),
        finished=end,
        deadline=datetime.fromtimestamp(state.deadline, UTC),
        spec=state.spec,
        nodes=nodes,
        skipped=state.skipped,
        summary=summarize(nodes, latencies),
        matrix=matrix,
    )


# A pool drained for maintenance can be many nodes: the line names the first few only (the
# report's `skipped` has them all).
SKIPPED_NAMED = 10


def skipped_line(skipped: dict[str, str]) -> str:
    """The report line for nodes left out on purpose: not inspected, not failed."""
    named = [f"{node} ({why})" for node, why in sorted(skipped.items())[:SKIPPED_NAMED]]
    more = f" and {len(skipped) - SKIPPED_NAMED} more" if len(skipped) > SKIPPED_NAMED else ""
    return f"skipped, not inspected: {', '.join(named)}{more}"


def summarize(nodes: dict[str, NodeResult], latencies: LatencyDigest | None = None) -> Summary:
    """Round totals; latency percentiles from the merged histograms of every target
    (``latencies``: the :func:`~kdoctor.reports.matrix.digest` of ``nodes``, if at hand)."""
    merged = (digest(nodes) if latencies is None else latencies).total
    requests = successes = 0
    for result in nodes.values():
        for target in result.targets:
            requests += target.requests
            successes += target.successes
    return Summary(
        nodes=dict(sorted(Counter(r.status for r in nodes.values()).items())),
        requests=requests,
        successes=successes,
        success_rate=round(successes / requests, 6) if requests else None,
        latency_ms=merged.summary(),
    )
