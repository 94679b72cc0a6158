"""Merge node results into a round's report and judge the round. Pure: no I/O.

The judging works on node digests (:class:`~kdoctor.specs.results.NodeDigest`: each node's
targets merged per destination and in total, made by the node itself), never on every target:
at 1,000 nodes a round has 40,000 targets, and decoding and validating them all took the
coordinator seconds. Two ways in, one judgement:

* :func:`build_report` takes node results as models (tests, tools) and returns a whole
  :class:`~kdoctor.specs.results.Report`;
* :func:`assemble_report` takes the digests and the nodes' results as the JSON they arrived in
  (the coordinator) and returns the report's shell (everything but ``nodes``, which is what
  listings, metrics and notifications read) and the whole report as JSON, the results spliced in
  unparsed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Mapping
from datetime import UTC, datetime

from kdoctor.reports.blame import blamed_statuses, describe
from kdoctor.reports.matrix import build_matrix, merged_latency
from kdoctor.specs.digest import digest_of
from kdoctor.specs.results import NodeDigest, NodeResult, NodeStatus, Report, RoundTiming, Summary, TaskRef
from kdoctor.specs.rounds import RoundState

__all__ = ["assemble_report", "build_report", "summarize"]

UNCONSUMED = ("its queue was not consumed: the probe message was still waiting at the round's end "
              "(the worker's consumer is stuck or not running); the message was removed")
NO_RESULT = ("no result by the round deadline (the worker died, hung or lost its broker connection while "
             "probing)")


def build_report(state: RoundState, results: Mapping[str, NodeResult], finished: datetime | None = None, *,
                 unconsumed: Collection[str] = ()) -> Report:
    """The report of one round.

    Every expected node appears exactly once: with its own result, as ``missing`` (not live at
    planning, never published to), or as ``timeout`` (published, no result by the deadline;
    ``unconsumed`` names those whose probe message was still in their queue: their consumer
    never took it). The round passes only when every expected node passed; the blame analysis's
    suspects lead the reasons. A live node the spec leaves out as a source (``state.idle``) is
    ``passed`` with the reason: it was probed only as a destination, where its column of the
    matrix judges it.
    """
    shell, stand_ins, changed = _judge(state, {n: digest_of(r) for n, r in results.items()}, finished, unconsumed)
    nodes = {name: _restated(results.get(name) or stand_ins[name], changed) for name in _order(state, results)}
    return shell.model_copy(update={"nodes": nodes})


def assemble_report(state: RoundState, digests: Mapping[str, NodeDigest], raw_results: Mapping[str, str],
                    finished: datetime | None = None, *, unconsumed: Collection[str] = (),
                    timing: RoundTiming | None = None,
                    judged: dict[str, NodeDigest] | None = None) -> tuple[Report, str]:
    """The report's shell (``nodes`` empty) and the whole report as JSON, from the nodes' digests
    and their results as JSON text (spliced in unparsed, so they must be what the nodes wrote).
    ``judged``, when given, receives the digest every node was judged by (stand-ins included,
    statuses as the blame analysis restates them): the node statuses the report carries, for
    :mod:`kdoctor.signals`."""
    shell, stand_ins, changed = _judge(state, digests, finished, unconsumed, judged)
    shell = shell.model_copy(update={"timing": timing})
    parts = []
    for name in _order(state, raw_results):
        raw = raw_results.get(name)
        if raw is not None and name in changed:  # the blame restates a few nodes: only those are parsed
            raw = _restated(NodeResult.model_validate_json(raw), changed).model_dump_json(by_alias=True)
        if raw is None:
            raw = _restated(stand_ins[name], changed).model_dump_json(by_alias=True)
        parts.append(f"{json.dumps(name)}:{raw}")
    text = shell.model_dump_json(by_alias=True, exclude={"nodes"})
    # JSON objects are unordered: the nodes go last, as one more member of the top-level object.
    return shell, f'{text[:-1]},"nodes":{{{",".join(parts)}}}}}'


def _restated(result: NodeResult, changed: Mapping[str, tuple[NodeStatus, str]]) -> NodeResult:
    if result.node not in changed:
        return result
    status, reason = changed[result.node]
    return result.model_copy(update={"status": status, "reason": reason})


def _order(state: RoundState, results: Mapping[str, object]) -> list[str]:
    return sorted(set(state.expected) | set(results))


def _judge(state: RoundState, digests: Mapping[str, NodeDigest], finished: datetime | None,
           unconsumed: Collection[str], judged: dict[str, NodeDigest] | None = None,
           ) -> tuple[Report, dict[str, NodeResult], dict[str, tuple[NodeStatus, str]]]:
    """The report without its nodes, the results the coordinator writes itself for the nodes that
    sent none (missing, idle, timeout), and the statuses the blame analysis restates
    (:func:`kdoctor.reports.blame.blamed_statuses`); ``judged`` receives the digests judged by."""
    end = finished or datetime.now(UTC)
    stand_ins: dict[str, NodeResult] = {}
    judged = {} if judged is None else judged
    for node in _order(state, digests):
        if node in digests:
            judged[node] = digests[node]
            continue
        if node in state.missing:
            stand_in = NodeResult(node=node, status="missing", reason=state.missing[node])
        elif node in state.idle:  # live, deliberately not a source: nothing of its own to judge
            stand_in = NodeResult(node=node, status="passed", reason=state.idle[node])
        else:
            stand_in = NodeResult(node=node, status="timeout", reason=UNCONSUMED if node in unconsumed else NO_RESULT)
        stand_ins[node] = stand_in
        judged[node] = digest_of(stand_in)
    matrix = build_matrix(judged, state.coverage)
    changed = blamed_statuses(judged, matrix.suspects if matrix else [])
    for name, (status, reason) in changed.items():  # in place: the caller's ``judged`` sees them
        judged[name] = judged[name].model_copy(update={"status": status, "reason": reason})
    # Blame first: "node-3 is broken" is what the reader needs before each node's own complaint.
    reasons = [describe(s) for s in (matrix.suspects if matrix else [])]
    # A suspect's own line would repeat its suspect line word for word: it is said once.
    reasons += [f"{name}: {d.status}: {d.reason}" if d.reason else f"{name}: {d.status}"
                for name, d in judged.items() if d.status != "passed" and d.reason not in reasons]
    if state.error:
        reasons.insert(0, f"the round could not be planned: {state.error}")
    elif not judged:
        reasons.append("no node is known: start a worker (`kdoctor worker --node NAME`) or give an inventory")
    warnings = list(dict.fromkeys([*state.warnings, *(w for d in judged.values() for w in d.warnings)]))
    if state.skipped:
        warnings.append(skipped_line(state.skipped))
    shell = Report(
        id=state.round_id,
        job=state.job,
        task=TaskRef(kind=state.kind, name=state.name),
        round=state.round,
        verdict="failed" if reasons else "passed",
        reasons=reasons,
        warnings=warnings,
        # A round that was refused, or published to no node, never reached its start instant
        # (still in the future when it was reported): it is over when it was planned.
        started=datetime.fromtimestamp(state.start_at if state.published and not state.error else state.planned, UTC),
        finished=end,
        deadline=datetime.fromtimestamp(state.deadline, UTC),
        spec=state.spec,
        nodes={},
        skipped=state.skipped,
        summary=summarize(judged),
        matrix=matrix,
    )
    return shell, stand_ins, changed


# A pool drained for maintenance can be many nodes: the line names the first few only (the
# report's `skipped` has them all).
SKIPPED_NAMED = 10


def skipped_line(skipped: dict[str, str]) -> str:
    """The report line for nodes left out on purpose: not inspected, not failed."""
    named = [f"{node} ({why})" for node, why in sorted(skipped.items())[:SKIPPED_NAMED]]
    more = f" and {len(skipped) - SKIPPED_NAMED} more" if len(skipped) > SKIPPED_NAMED else ""
    return f"skipped, not inspected: {', '.join(named)}{more}"


def summarize(nodes: Mapping[str, NodeDigest | NodeResult]) -> Summary:
    """Round totals; latency percentiles from the merged histograms of every target."""
    digests = [n if isinstance(n, NodeDigest) else digest_of(n) for n in nodes.values()]
    requests = sum(d.requests for d in digests)
    successes = sum(d.successes for d in digests)
    return Summary(
        nodes=dict(sorted(Counter(d.status for d in digests).items())),
        requests=requests,
        successes=successes,
        success_rate=round(successes / requests, 6) if requests else None,
        latency_ms=merged_latency(digests).summary(),
    )
