"""A report of a large cluster stays readable: the terminal and the page list what failed, and the
grid keeps the nodes of bad pairs."""

from __future__ import annotations

from rich.console import Console

from kdoctor.reports.html import to_html
from kdoctor.reports.merge import build_report
from kdoctor.reports.render import TABLE_MAX_ROWS, print_report
from kdoctor.specs.results import NodeResult, TargetResult
from kdoctor.specs.rounds import RoundState

N, K, BROKEN = 60, 10, "node-8"


def _report(broken: set[str]) -> tuple[RoundState, dict[str, NodeResult]]:
    names = [f"node-{i}" for i in range(1, N + 1)]
    nodes = {}
    for i, source in enumerate(names):
        targets = []
        for k in range(1, K + 1):
            dest = names[(i + k) % N]
            ok = not ({source, dest} & broken)
            for family in (4, 6):
                targets.append(TargetResult(
                    name=f"endpoint/ipv{family}/{dest}", kind="endpoint", url="http://x/", destination=dest,
                    requests=10, successes=10 if ok else 0, success_rate=1.0 if ok else 0.0,
                    verdict="passed" if ok else "failed", reason="" if ok else "success rate 0 < 1"))
        failed = any(t.verdict != "passed" for t in targets)
        nodes[source] = NodeResult(node=source, status="failed" if failed else "passed", targets=targets)
    state = RoundState(round_id="big-r1", job="big", round=1, kind="NetReach", name="big", spec={},
                       expected=names, published=names, planned=1.0, start_at=1.0, deadline=2.0)
    return state, nodes


def _text(broken: set[str]) -> tuple[str, str]:
    state, nodes = _report(broken)
    report = build_report(state, nodes)
    console = Console(record=True, width=400)
    print_report(report, console)
    return console.export_text(), to_html(report)


def test_a_large_round_lists_failed_targets_and_the_nodes_of_bad_pairs() -> None:
    text, page = _text({BROKEN})
    assert f"{N * K * 2} node × target rows: only failed targets are listed" in text
    assert "endpoint/ipv4/node-9" in text  # node-8's own failed target
    assert "endpoint/ipv4/node-30" not in text  # a healthy pair is not listed
    # node-8, the 10 nodes it probes and the 10 that probe it: 21 of 60 in the grid.
    assert "showing the 21 of 60 nodes that have a bad pair" in text
    assert text.count("\n") < TABLE_MAX_ROWS + 120
    assert "suspect node node-8" in text
    assert "showing the 21 of 60 nodes" not in page  # the page draws every node up to 100
    assert page.count('<td class="bad"') == 2 * K


def test_a_healthy_large_round_says_so_without_drawing_every_pair() -> None:
    text, _ = _text(set())
    assert "matrix of 60 nodes: every probed pair is good" in text
    assert "PASSED" in text
