"""Node statuses follow the blame: the suspect is failed, a source whose only failures are towards
a suspect passes with a note, a pair keeps its source failed, a service blames no node."""

from __future__ import annotations

from datetime import UTC, datetime

from kdoctor.reports.merge import assemble_report, build_report
from kdoctor.specs.digest import digest_of
from kdoctor.specs.results import NodeResult, TargetResult
from kdoctor.specs.rounds import RoundState

NAMES = [f"node-{c}" for c in "abcd"]


def ring(broken_agent: str | None = None, bad_pairs: frozenset[tuple[str, str]] = frozenset(),
         bad_service: bool = False) -> dict[str, NodeResult]:
    """Full mesh of four nodes, endpoint targets (and a clusterIP path), failing where told."""
    nodes = {}
    for source in NAMES:
        targets = []
        for destination in NAMES:
            if destination == source:
                continue
            bad = destination == broken_agent or (source, destination) in bad_pairs
            targets.append(TargetResult(name=f"endpoint/ipv4/{destination}", kind="endpoint", url="http://x",
                                        destination=destination, requests=10, successes=0 if bad else 10,
                                        verdict="failed" if bad else "passed"))
        targets.append(TargetResult(name="clusterIP/ipv4", kind="clusterIP", url="http://svc", requests=10,
                                    successes=0 if bad_service else 10, verdict="failed" if bad_service else "passed"))
        failed = sum(t.verdict == "failed" for t in targets)
        nodes[source] = NodeResult(node=source, status="failed" if failed else "passed",
                                   reason=f"{failed} of {len(targets)} target(s) failed" if failed else "",
                                   targets=targets)
    return nodes


def state() -> RoundState:
    return RoundState(round_id="j-r1", job="j", round=1, kind="NetReach", name="t", spec={}, expected=NAMES,
                      published=NAMES, planned=1.0, start_at=1.0, deadline=2.0)


def test_a_broken_agent_fails_its_node_and_excuses_the_others() -> None:
    report = build_report(state(), ring(broken_agent="node-c"))
    statuses = {name: node.status for name, node in report.nodes.items()}
    assert statuses == {"node-a": "passed", "node-b": "passed", "node-c": "failed", "node-d": "passed"}
    assert report.nodes["node-c"].reason.startswith("suspect destination node-c: 3/3 pairs to it bad")
    assert report.nodes["node-a"].reason == "1 target(s) failed, all to suspect node node-c"
    assert report.summary.nodes == {"failed": 1, "passed": 3}
    assert report.verdict == "failed" and report.reasons[0].startswith("suspect destination node-c")
    # node-c's own line would repeat the suspect line word for word: the reasons say it once.
    assert report.reasons == [report.nodes["node-c"].reason]


def test_a_broken_pair_keeps_its_source_failed_only() -> None:
    report = build_report(state(), ring(bad_pairs=frozenset({("node-a", "node-b")})))
    statuses = {name: node.status for name, node in report.nodes.items()}
    assert statuses == {"node-a": "failed", "node-b": "passed", "node-c": "passed", "node-d": "passed"}


def test_a_broken_service_blames_no_node() -> None:
    report = build_report(state(), ring(bad_service=True))
    assert report.reasons[0] == "suspect service clusterIP/ipv4: fails from 4/4 sources"
    assert all(node.status == "passed" for node in report.nodes.values())
    assert report.nodes["node-a"].reason == "1 target(s) failed, all to suspect service clusterIP/ipv4"
    assert report.verdict == "failed"


def test_a_failure_beside_the_suspect_keeps_a_source_failed() -> None:
    report = build_report(state(), ring(broken_agent="node-c", bad_pairs=frozenset({("node-a", "node-d")})))
    assert report.nodes["node-a"].status == "failed"
    assert report.nodes["node-b"].status == "passed"


def test_the_coordinators_path_restates_the_same_nodes() -> None:
    results = ring(broken_agent="node-c")
    whole = build_report(state(), results, datetime(2026, 1, 1, tzinfo=UTC))
    shell, text = assemble_report(state(), {n: digest_of(r) for n, r in results.items()},
                                  {n: r.model_dump_json(by_alias=True) for n, r in results.items()},
                                  datetime(2026, 1, 1, tzinfo=UTC))
    from kdoctor.specs.results import Report

    spliced = Report.model_validate_json(text)
    assert spliced.nodes == whole.nodes and shell.summary == whole.summary
