"""The HTML report: complete, escaped, and carrying what the terminal table shows."""

from __future__ import annotations

from html.parser import HTMLParser

from kdoctor.reports.html import to_html
from kdoctor.reports.merge import build_report
from kdoctor.specs.results import DiskProfileResult, NodeResult, TargetResult
from kdoctor.specs.rounds import RoundState


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.classes: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.classes += [v or "" for k, v in attrs if k == "class"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Collect:
    parser = _Collect()
    parser.feed(page)
    return parser


def _target(dest: str | None, ok: bool, name: str = "") -> TargetResult:
    return TargetResult(name=name or f"endpoint/ipv4/{dest}", kind="endpoint" if dest else "clusterIP",
                        url=f"http://{dest}/", destination=dest, requests=10, successes=10 if ok else 0,
                        success_rate=1.0 if ok else 0.0, verdict="passed" if ok else "failed",
                        reason="" if ok else "success rate 0 < 1", errors={} if ok else {"timeout": 10})


def _state(nodes: list[str]) -> RoundState:
    return RoundState(round_id="j-r1", job="j", round=1, kind="NetReach", name="n", spec={}, expected=nodes,
                      published=nodes, planned=1.0, start_at=1.0, deadline=2.0)


def test_netreach_page_has_matrix_suspects_and_escapes_cluster_text() -> None:
    names = ["a", "b", "c"]
    nodes = {s: NodeResult(node=s, status="passed", targets=[_target(d, d != "c") for d in names if d != s])
             for s in names}
    # Text from the cluster (here a warning; node names, reasons and URLs alike) is escaped.
    state = _state(names).model_copy(update={"warnings": ["<script>alert(1)</script>"]})
    page = to_html(build_report(state, nodes))
    parsed = _parse(page)
    assert page.startswith("<!doctype html>") and "script" not in parsed.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert parsed.classes.count("bad") >= 2 and parsed.classes.count("ok") == 4  # c's column is bad
    text = " ".join(parsed.text)
    assert "suspect destination c" in text and "Why it failed" in text
    assert "timeout×10" in text and "http://c/" in text


def test_disk_page_lists_profiles_and_nodes_without_results() -> None:
    prof = DiskProfileResult(name="randRead/qd32", profile="randRead", queue_depth=32, filesystem="ext4",
                             direct_io=True, iops=35000.0, mib_per_second=136.7, verdict="passed")
    state = _state(["n1", "n2"]).model_copy(update={"kind": "DiskIO", "missing": {"n2": "worker stopped"}})
    page = to_html(build_report(state, {"n1": NodeResult(node="n1", status="passed", profiles=[prof])}))
    text = " ".join(_parse(page).text)
    assert "randRead/qd32" in text and "ext4 direct" in text and "35000" in text
    assert "worker stopped" in text and "missing" in text
