"""The signals record (pure): statuses as the report gives them, a destination's figures from its
pairs' merged histograms, targets per kind and family, what the schedule promises; and the
exporter's credentials check."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from kdoctor.reports.merge import assemble_report
from kdoctor.signals.metrics import samples_of
from kdoctor.signals.record import build
from kdoctor.signals.server import Credentials
from kdoctor.specs.digest import digest_of
from kdoctor.specs.latency import Latency
from kdoctor.specs.results import NodeDigest, NodeResult, TargetResult
from kdoctor.specs.rounds import RoundState


def _target(destination: str, ms: float, ok: bool = True, kind: str = "endpoint", family: int = 4) -> TargetResult:
    latency = Latency()
    for _ in range(100):
        latency.record(ms / 1000)
    return TargetResult(name=f"{kind}/ipv{family}/{destination}", kind=kind, url="http://x/", destination=destination,
                        family=family, requests=100, successes=100 if ok else 0, latency_ms=latency.summary(),
                        histogram=latency.encode(), verdict="passed" if ok else "failed")  # type: ignore[arg-type]


def _round() -> tuple[RoundState, dict[str, NodeDigest]]:
    results = {
        "a": NodeResult(node="a", status="passed", targets=[_target("b", 1.0), _target("b", 3.0, family=6)]),
        "b": NodeResult(node="b", status="failed", targets=[_target("a", 2.0, ok=False)]),
    }
    state = RoundState(round_id="j-r3", job="j", round=3, kind="NetReach", name="mesh", planned=1.0, start_at=1.0,
                       deadline=9.0, expected=["a", "b", "c", "d", "e"], published=["a", "b", "d"],
                       missing={"c": "worker stopped"}, idle={"e": "not selected"},
                       spec={"spec": {"schedule": {"schedule": "*/5 * * * *", "roundNumber": -1}}})
    return state, {n: digest_of(r) for n, r in results.items()}


def _raw(digests: dict[str, NodeDigest]) -> dict[str, str]:
    """Minimal results for the report text (the blame parses those it restates)."""
    return {n: NodeResult(node=n, status=d.status).model_dump_json(by_alias=True) for n, d in digests.items()}


def test_statuses_are_the_reports_and_destinations_merge_their_pairs() -> None:
    state, digests = _round()
    judged: dict[str, NodeDigest] = {}
    shell, _ = assemble_report(state, digests, _raw(digests), datetime(2026, 1, 1, tzinfo=UTC),
                               judged=judged)
    record = build(state, shell, judged, scheduled=True, finalize_seconds=0.25)
    assert {n: s.status for n, s in record.nodes.items()} == {
        "a": "passed", "b": "failed", "c": "missing", "d": "timeout", "e": "passed"}
    assert record.ended_by_deadline  # d never answered
    b = record.nodes["b"]
    assert b.destination is not None and b.destination.requests == 200 and b.destination.successes == 200
    assert b.destination.p50_ms is not None and 0.99 <= b.destination.p50_ms <= 1.01
    assert b.destination.p99_ms is not None and 2.99 <= b.destination.p99_ms <= 3.01  # half the samples at 3 ms
    assert record.nodes["c"].source is None and record.nodes["c"].destination is None
    assert {(g.kind, g.family, g.targets, g.failed) for g in record.groups} == {
        ("endpoint", "ipv4", 2, 1), ("endpoint", "ipv6", 1, 0)}
    assert record.interval_seconds == 300 and not record.last_round
    samples = samples_of(record)
    states = {s.labels["status"]: s.value for s in samples["kdoctor_node_status"] if s.labels["node"] == "d"}
    assert states == {"passed": 0, "failed": 0, "missing": 0, "timeout": 1, "error": 0}
    assert "kdoctor_suspect" not in samples or all(s.labels["kind"] == "NetReach" for s in samples["kdoctor_suspect"])


def test_a_last_round_promises_no_more() -> None:
    state, digests = _round()
    state = state.model_copy(update={"spec": {"spec": {"schedule": {"schedule": "0s 10s", "roundNumber": 3}}}})
    judged: dict[str, NodeDigest] = {}
    shell, _ = assemble_report(state, digests, _raw(digests), judged=judged)
    record = build(state, shell, judged, scheduled=True)
    assert record.last_round and record.interval_seconds is None
    one_shot = build(state, shell, judged, scheduled=False)
    assert not one_shot.scheduled and one_shot.interval_seconds is None


def test_credentials_accept_only_what_was_configured() -> None:
    creds = Credentials(tokens=("tok",), users=(("u", "p:w"),))
    basic = "Basic " + base64.b64encode(b"u:p:w").decode()
    assert creds.accepts("Bearer tok") and creds.accepts(basic) and creds.accepts("bearer tok")
    for wrong in ("", "Bearer", "Bearer tok2", "Basic !!!", "Basic " + base64.b64encode(b"u:p").decode(),
                  "Token tok", "Basic " + base64.b64encode(b"up:w").decode()):
        assert not creds.accepts(wrong), wrong
