"""Histograms merge exactly; reports take merged percentiles, list every node once, and judge."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest

from kdoctor.probes.judge import judge_target, node_verdict
from kdoctor.reports.merge import build_report
from kdoctor.specs.common import Expect
from kdoctor.specs.latency import Latency
from kdoctor.specs.results import LatencyMs, NodeResult, TargetResult
from kdoctor.specs.rounds import RoundState


def _latency(samples: list[float]) -> Latency:
    rec = Latency()
    for s in samples:
        rec.record(s)
    return rec


def test_merged_histogram_equals_recording_everything_together() -> None:
    rng = random.Random(7)
    fast = [rng.uniform(0.0001, 0.001) for _ in range(5000)]
    slow = [rng.uniform(0.1, 0.2) for _ in range(100)]
    together = _latency(fast + slow).summary()
    merged = Latency.decode(_latency(fast).encode(), _latency(fast).summary())
    other = _latency(slow)
    merged.merge(Latency.decode(other.encode(), other.summary()))
    got = merged.summary()
    assert got.count == together.count == 5100
    assert got.p99 == together.p99 and got.p50 == together.p50
    assert got.min == together.min and got.max == together.max
    # Averaging the two p99s would have said ~100 ms; the merged truth is the slow tail.
    assert got.p99 is not None and got.p99 > 100


def test_percentiles_are_ordered_and_microsecond_resolution() -> None:
    s = _latency([0.000123, 0.000456, 0.000789]).summary()
    assert s.min == 0.123 and s.max == 0.789
    assert s.min <= s.p50 <= s.p99 <= s.max  # type: ignore[operator]


def _target(**kw: object) -> TargetResult:
    base: dict[str, object] = {"name": "t", "kind": "endpoint", "url": "http://x", "requests": 100,
                               "successes": 100, "success_rate": 1.0}
    base.update(kw)
    return TargetResult.model_validate(base)


@pytest.mark.parametrize("seed", range(5))
def test_one_pass_percentiles_equal_hdrh(seed: int) -> None:
    rng = random.Random(seed)
    lat = _latency([rng.lognormvariate(-7, 1.5) for _ in range(rng.randrange(1, 5000))])
    decoded = Latency.decode(lat.encode(), lat.summary())  # the path reports take
    pcts = [0, 1, 25, 50, 90, 95, 99, 99.9, 99.99, 100]
    for rec in (lat, decoded):
        rec.flush()
        assert rec.percentiles_us(pcts) == [rec.hist.get_value_at_percentile(p) for p in pcts]


@pytest.mark.parametrize("seed", range(3))
def test_a_run_recorded_at_once_equals_recording_each_value(seed: int) -> None:
    rng = random.Random(seed)
    ones, runs, fell_back = Latency(), Latency(), 0
    for _ in range(3000):
        top = rng.choice([rng.randint(1, 3000), rng.randint(3000, 2_000_000)])
        values = sorted((max(1, top - rng.randint(0, 600)) for _ in range(rng.randint(1, 40))), reverse=True)
        for us in values:
            ones.record_us(us)
        if not runs.record_run_us(values[0], values[-1], len(values), sum(values)):
            fell_back += 1
            for us in values:
                runs.record_us(us)
    assert 0 < fell_back < 3000  # both paths taken
    ones.flush()
    runs.flush()
    assert list(runs.hist.counts) == list(ones.hist.counts)
    assert (runs.count, runs.sum_us, runs.min_us, runs.max_us) == (ones.count, ones.sum_us, ones.min_us, ones.max_us)


def test_judge_names_every_failed_condition() -> None:
    expect = Expect(success_rate=0.99, mean_access_delay_in_ms=10, p99_access_delay_in_ms=50)
    assert judge_target(_target(latency_ms=LatencyMs(count=1, mean=1, p99=2)), expect) == ("passed", "")
    verdict, reason = judge_target(
        _target(successes=90, success_rate=0.9, unsent=3, latency_ms=LatencyMs(count=1, mean=20, p99=80)),
        expect)
    assert verdict == "failed"
    for part in ("success rate 0.9 < 0.99", "mean latency 20.000 ms > 10 ms", "p99 latency 80.000 ms > 50 ms",
                 "3 request(s) could not be sent"):
        assert part in reason
    assert judge_target(_target(requests=0, successes=0, success_rate=0.0), expect)[0] == "failed"


def test_node_verdict_lists_failed_targets() -> None:
    ok = _target(verdict="passed")
    bad = _target(name="endpoint/ipv4/node-3", verdict="failed", reason="success rate 0 < 1")
    assert node_verdict([ok]) == ("passed", "")
    verdict, reason = node_verdict([ok, bad])
    assert verdict == "failed" and "1 of 2" in reason and "endpoint/ipv4/node-3" in reason


def test_report_lists_each_expected_node_once_with_the_right_status() -> None:
    state = RoundState(round_id="j-r1", job="j", round=1, kind="NetReach", name="n", spec={},
                       expected=["a", "b", "c", "d"], published=["a", "b", "c"],
                       missing={"d": "worker stopped"}, planned=1.0, start_at=2.0, deadline=10.0)
    lat = _latency([0.001, 0.002])
    results = {
        "a": NodeResult(node="a", status="passed", targets=[_target(
            verdict="passed", histogram=lat.encode(), latency_ms=lat.summary())]),
        "b": NodeResult(node="b", status="failed", reason="1 of 1 target(s) failed"),
    }
    report = build_report(state, results)
    assert list(report.nodes) == ["a", "b", "c", "d"]
    assert [n.status for n in report.nodes.values()] == ["passed", "failed", "timeout", "missing"]
    assert report.verdict == "failed"
    assert any(r.startswith("c: timeout") for r in report.reasons)
    assert any("d: missing: worker stopped" in r for r in report.reasons)
    assert report.summary.nodes == {"failed": 1, "missing": 1, "passed": 1, "timeout": 1}
    assert report.summary.latency_ms.count == 2


def test_a_node_left_out_as_source_passes_with_the_reason_and_suspects_lead() -> None:
    state = RoundState(round_id="j-r1", job="j", round=1, kind="NetReach", name="n", spec={},
                       expected=["a", "b", "c"], published=["a", "b"], idle={"c": "not selected by X"},
                       planned=1.0, start_at=1.0, deadline=2.0)
    lat = _latency([0.001])

    def to(dest: str, ok: bool) -> TargetResult:
        return _target(name=f"endpoint/ipv4/{dest}", destination=dest, verdict="passed" if ok else "failed",
                       histogram=lat.encode(), latency_ms=lat.summary())

    results = {"a": NodeResult(node="a", status="failed", targets=[to("b", True), to("c", False)]),
               "b": NodeResult(node="b", status="failed", targets=[to("a", True), to("c", False)])}
    report = build_report(state, results)
    # c probed no one, but every pair to it is bad: the blame makes it the failed node, and the
    # sources whose only failures are towards it pass (issue 15).
    assert report.nodes["c"].status == "failed" and report.nodes["c"].reason.startswith("suspect destination c")
    assert [report.nodes[n].status for n in ("a", "b")] == ["passed", "passed"]
    assert report.verdict == "failed"
    assert report.matrix is not None and report.matrix.nodes == ["a", "b", "c"]
    assert report.reasons[0].startswith("suspect destination c: 2/2 pairs to it bad")
    assert report.reasons[1:] == []  # c's own line would repeat its suspect line


def test_all_passed_is_passed_and_empty_is_failed() -> None:
    state = RoundState(round_id="j-r1", job="j", round=1, kind="NetReach", name="n", spec={},
                       expected=["a"], published=["a"], planned=1.0, start_at=1.0, deadline=2.0)
    assert build_report(state, {"a": NodeResult(node="a", status="passed")}).verdict == "passed"
    empty = build_report(state.model_copy(update={"expected": []}), {})
    assert empty.verdict == "failed" and "no node is known" in empty.reasons[0]


@pytest.mark.parametrize(("qps", "lag", "saturated"), [
    (10, 0.050, False),   # 50 ms late, but each request left long before the next was due (100 ms)
    (10, 0.0005, False),
    (10, 0.150, True),    # later than the next request was due: requests piled up
    (200, 0.050, True),   # ten intervals behind
    (200, 0.004, False),  # within an interval of 5 ms
    (2000, 0.004, False),  # eight intervals, but under the 10 ms floor: timer jitter, not saturation
])
def test_saturation_is_send_lag_relative_to_the_interval(qps: int, lag: float, saturated: bool) -> None:
    from kdoctor.probes.measure import GeneratorMonitor, node_result
    from kdoctor.probes.pressure import DriverStats, Pace
    from kdoctor.specs.plan import PlannedTarget

    monitor = GeneratorMonitor()
    monitor.start()
    stats = DriverStats(sent=100, successes=100)
    for _ in range(100):
        stats.lag.record(lag)
    time.sleep(0.1)  # an idle pressure window: only the send lag can mark a generator saturated
    planned = PlannedTarget(name="endpoint-n2-v4", kind="endpoint", url="http://n2/")
    result = node_result("n1", [(planned, stats, Pace(qps=qps, duration=1, timeout=1))], Expect(), monitor)
    assert result.generator is not None and result.generator.saturated is saturated
    if not saturated:
        assert result.warnings == []
        return
    (warning,) = result.warnings
    assert warning.startswith(f"n1: load generator saturated (p99 send lag {lag * 1000:.1f} ms on endpoint-n2-v4, "
                              f"whose requests are due every {1000 / qps:.3g} ms)")


def test_a_round_that_never_started_ends_when_it_was_planned() -> None:
    # The selector matched no node: planned at t, its start instant t + 1 s never came.
    planned = datetime(2026, 12, 1, 20, 17, 27, tzinfo=UTC).timestamp()
    state = RoundState(round_id="j-r1", job="j", round=1, kind="NetReach", name="n", spec={}, expected=["a"],
                       idle={"a": "not selected"}, planned=planned, start_at=planned + 1.5, deadline=planned + 10,
                       error="none of the 1 live node(s) is a source")
    report = build_report(state, {}, finished=datetime.fromtimestamp(planned + 0.2, UTC))
    assert report.started <= report.finished
    assert f"{report.started:%H:%M:%S} → {report.finished:%H:%M:%S}" == "20:17:27 → 20:17:27"
