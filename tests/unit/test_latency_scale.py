"""The matrix's colour scale (issue 15): 0.4 ms and 3.5 ms no longer look the same, a failed cell
says it had no answer, and the suspect line is printed once."""

from __future__ import annotations

import pytest
from rich.console import Console

from kdoctor.reports.grid import matrix_grid
from kdoctor.reports.html import to_html
from kdoctor.reports.merge import build_report
from kdoctor.reports.render import report_table
from kdoctor.reports.scale import BAD, band, latency_limit
from kdoctor.specs.latency import Latency
from kdoctor.specs.results import NodeResult, Report, TargetResult
from kdoctor.specs.rounds import RoundState


@pytest.mark.parametrize(("p99", "limit", "bad", "expected"), [
    (0.4, 5.0, False, 0), (1.0, 5.0, False, 1), (2.0, 5.0, False, 2), (3.5, 5.0, False, 3),
    (5.0, 5.0, False, 4), (9.0, 5.0, False, 4), (0.1, 5.0, True, BAD), (None, 5.0, False, None),
    (1.0, None, False, None), (None, None, True, BAD),
])
def test_bands(p99: float | None, limit: float | None, bad: bool, expected: int | None) -> None:
    assert band(p99, limit, bad) == expected


def test_the_limit_is_the_p99_expectation_else_the_mean_one() -> None:
    assert latency_limit({"spec": {"expect": {"meanAccessDelayInMs": 5, "p99AccessDelayInMs": 20}}}) == (
        20.0, "p99AccessDelayInMs")
    assert latency_limit({"spec": {"expect": {"meanAccessDelayInMs": 5}}}) == (5.0, "meanAccessDelayInMs")
    assert latency_limit({"spec": {}}) is None and latency_limit({}) is None


def _report() -> Report:
    """a → b answers in 0.4 ms, a → c in 3.5 ms, b → c in 0.4 ms; nothing answers from c."""
    def target(dest: str, ms: float | None) -> TargetResult:
        lat = Latency()
        if ms is not None:
            for _ in range(10):
                lat.record(ms / 1000)
        ok = ms is not None
        return TargetResult(name=f"endpoint/ipv4/{dest}", kind="endpoint", url=f"http://{dest}/", destination=dest,
                            requests=10, successes=10 if ok else 0, success_rate=1.0 if ok else 0.0,
                            verdict="passed" if ok else "failed", histogram=lat.encode(), latency_ms=lat.summary(),
                            errors={} if ok else {"timeout": 10})
    nodes = {"a": NodeResult(node="a", status="passed", targets=[target("b", 0.4), target("c", 3.5)]),
             "b": NodeResult(node="b", status="passed", targets=[target("a", 0.4), target("c", 0.4)]),
             "c": NodeResult(node="c", status="failed", targets=[target("a", None), target("b", None)])}
    state = RoundState(round_id="j-r1", job="j", round=1, kind="NetReach", name="n",
                       spec={"spec": {"expect": {"meanAccessDelayInMs": 5}}}, expected=["a", "b", "c"],
                       published=["a", "b", "c"], planned=1.0, start_at=1.0, deadline=2.0)
    return build_report(state, nodes)


def test_the_html_grid_grades_latency_and_says_no_answer() -> None:
    report = _report()
    page = to_html(report)
    grid = page[page.index("Source → destination"):page.index("<h2>Nodes")]
    assert 'class="l0" title="a → b' in grid and 'class="l3" title="a → c' in grid  # 0.4 ms vs 3.5 ms of 5
    assert 'class="bad" title="c → a' in grid and "0.0%<br>no answer" in grid and "- ms" not in grid
    assert "p99 against expect.meanAccessDelayInMs 5 ms" in grid
    suspect = report.reasons[0]
    assert suspect.startswith("suspect source c") and page.count(suspect) == 1


def test_the_terminal_grid_grades_latency() -> None:
    report = _report()
    assert report.matrix is not None
    console = Console(record=True, width=120, color_system="truecolor")
    console.print(matrix_grid(report.matrix, latency_limit(report.spec)))
    styled = console.export_html(inline_styles=True, clear=False)
    # The 0.4 ms cell and the 3.5 ms cell have different backgrounds, the failed one red.
    assert "background-color: #56d364" in styled and "background-color: #f0b72f" in styled
    assert "p99 against expect.meanAccessDelayInMs 5 ms" in console.export_text()
    whole = Console(record=True, width=160)
    whole.print(report_table(report))
    assert whole.export_text().count(report.reasons[0]) == 1
