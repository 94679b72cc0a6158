"""A report as one self-contained HTML page: to attach to a ticket or publish from a cron job.

No script, no external stylesheet, font or image: the page renders the same offline and in a
mail client. Every value from the report is escaped (a node name, URL or error text comes from
the cluster, not from us).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from kdoctor import __version__
from kdoctor.reports.matrix import shown_nodes
from kdoctor.reports.scale import BAD, band, latency_limit
from kdoctor.specs.results import DiskProfileResult, LatencyMs, Matrix, NodeResult, Report, TargetResult

# Past these sizes (a 1,000-node round) the page keeps what failed: it must still open in a browser.
PAGE_MAX_ROWS = 2000
PAGE_MAX_NODES = 100

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1b1f24}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .5em}
.sub{color:#57606a}.badge{padding:.1em .5em;border-radius:.3em;color:#fff;font-weight:600}
.passed{background:#1a7f37}.failed,.error{background:#cf222e}.missing{background:#9a6700}
.timeout{background:#8250df}
table{border-collapse:collapse;margin:.3em 0}th,td{border:1px solid #d0d7de;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td.t{color:#cf222e;font-weight:600}ul.reasons li{color:#cf222e}ul.warnings li{color:#9a6700}
td.ok{background:#dafbe1;text-align:center}td.bad{background:#cf222e;color:#fff;text-align:center;font-weight:600}
td.l0{background:#56d364}td.l1{background:#aff5b4}td.l2{background:#e3d26f}td.l3{background:#f0b72f}
td.l4{background:#fb8f44}td.l0,td.l1,td.l2,td.l3,td.l4{text-align:center}span.key{padding:0 .4em;margin-right:.3em}
td.none{color:#8c959f;text-align:center}footer{margin-top:2em;color:#57606a;font-size:.9em}
"""


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _td(value: object, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f"<td{cls}>{escape(str(value))}</td>"


def _row(cells: Iterable[str], bad: bool) -> str:
    return ('<tr class="bad">' if bad else "<tr>") + "".join(cells) + "</tr>"


def _head(names: Iterable[str]) -> str:
    return "<tr>" + "".join(f"<th>{escape(n)}</th>" for n in names) + "</tr>"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}×{v}" for k, v in counts.items())


def _latency(lat: LatencyMs) -> list[str]:
    return [_td(_ms(v), "n") for v in (lat.p50, lat.p90, lat.p99, lat.p999, lat.max)]


def _target_row(lead: list[str], target: TargetResult) -> str:
    errors = " ".join(x for x in (_counts(target.errors), f"unsent×{target.unsent}" if target.unsent else "") if x)
    return _row([
        *lead, _td(target.name, "t"), _td(target.url), _td(target.requests, "n"),
        _td(f"{target.success_rate:.2%}", "n"), _td(f"{target.intended_qps:g} / {target.achieved_qps:.1f}", "n"),
        _td(target.late, "n"), *_latency(target.latency_ms), _td(_counts(target.status_codes)), _td(errors),
        _td(target.reason or target.verdict),
    ], target.verdict != "passed")


def _profile_row(lead: list[str], prof: DiskProfileResult) -> str:
    return _row([
        *lead, _td(prof.name, "t"), _td(f"{prof.filesystem} {'direct' if prof.direct_io else 'buffered'}"),
        _td(f"{prof.mib_per_second:.1f}", "n"), _td(f"{prof.iops:.0f}", "n"), _td(prof.latency_of),
        *_latency(prof.latency_ms), _td(prof.bytes_written, "n"), _td(prof.bytes_read, "n"),
        _td(prof.reason or prof.verdict),
    ], prof.verdict != "passed")


_TARGET_COLUMNS = ["node", "status", "target", "url", "requests", "success", "qps intended / achieved", "late",
                   "p50 ms", "p90 ms", "p99 ms", "p999 ms", "max ms", "status codes", "errors", "verdict"]
_PROFILE_COLUMNS = ["node", "status", "profile", "fs / io", "MiB/s", "IOPS", "latency of", "p50 ms", "p90 ms",
                    "p99 ms", "p999 ms", "max ms", "bytes written", "bytes read", "verdict"]


def _nodes_table(nodes: dict[str, NodeResult]) -> str:
    disk = any(n.profiles for n in nodes.values())
    columns = _PROFILE_COLUMNS if disk else _TARGET_COLUMNS
    rows = [_head(columns)]
    total = sum(max(1, len(n.profiles if disk else n.targets)) for n in nodes.values())
    only_failed = total > PAGE_MAX_ROWS
    for name, node in nodes.items():
        status = f'<td><span class="badge {escape(node.status)}">{escape(node.status)}</span></td>'
        items: Sequence[DiskProfileResult | TargetResult] = node.profiles if disk else node.targets
        if only_failed:
            items = [i for i in items if i.verdict != "passed"]
            if not items and node.status == "passed":
                continue
        if not items:
            rows.append(f'<tr>{_td(name)}{status}<td colspan="{len(columns) - 2}">'
                        f'{escape(node.reason or "-")}</td></tr>')
            continue
        for index, item in enumerate(items):
            lead = [_td(name), status] if index == 0 else [_td(""), _td("")]
            rows.append(_profile_row(lead, item) if isinstance(item, DiskProfileResult)
                        else _target_row(lead, item))
    note = (f'<p class="sub">{total} rows: only failed targets and nodes are listed; -o json has them '
            "all</p>") if only_failed else ""
    return f"<table>{''.join(rows)}</table>{note}"


def _cell_class(p99: float | None, bad: bool, limit: float | None) -> str:
    graded = band(p99, limit, bad)
    return "ok" if graded is None else "bad" if graded == BAD else f"l{graded}"


def _legend(limit: tuple[float, str] | None) -> str:
    if limit is None:
        return ""
    value, field = limit
    keys = "".join(f'<span class="key" style="background:{c}">{label}</span>'
                   for c, label in zip(_BAND_COLOURS, ("&lt;10%", "&lt;25%", "&lt;50%", "≤100%", "over"), strict=True))
    return (f'<p class="sub">colour: p99 against expect.{escape(field)} {value:g} ms: {keys}'
            '<span class="key" style="background:#cf222e;color:#fff">failed</span></p>')


_BAND_COLOURS = ("#56d364", "#aff5b4", "#e3d26f", "#f0b72f", "#fb8f44")


def _matrix(matrix: Matrix, limit: tuple[float, str] | None = None) -> str:
    cells = {(c.source, c.destination): c for c in matrix.cells}
    nodes, note = shown_nodes(matrix, PAGE_MAX_NODES)
    if not nodes:
        return f'<p class="sub">{escape(note)}</p>'
    rows = [_head(["from \\ to", *nodes])]
    for src in nodes:
        tds = [f"<th>{escape(src)}</th>"]
        for dst in nodes:
            cell = cells.get((src, dst))
            if cell is None:
                tds.append('<td class="none">·</td>')
                continue
            rate = "-" if cell.success_rate is None else f"{cell.success_rate:.1%}"
            # A cell without an answer has no latency to show: it says so rather than "- ms".
            latency = f"{_ms(cell.p99_ms)} ms" if cell.p99_ms is not None else "no answer"
            title = (f"{src} → {dst}: {cell.requests} requests, success {rate}, p99 {latency}, "
                     f"{cell.failed_targets}/{cell.targets} targets failed")
            tds.append(f'<td class="{_cell_class(cell.p99_ms, cell.bad, limit[0] if limit else None)}" '
                       f'title="{escape(title)}">{escape(rate)}<br>{escape(latency)}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    covered = len({(a, b) for a, b in matrix.covered if a != b})
    n = len(matrix.nodes)
    return (f"<table>{''.join(rows)}</table>"
            f'<p class="sub">{covered} of {n * (n - 1)} ordered pairs probed this round; a cell shows '
            f"success rate and p99{'; ' + escape(note) if note else ''}</p>{_legend(limit)}")


def _list(items: Iterable[str], css: str) -> str:
    lines = "".join(f"<li>{escape(i)}</li>" for i in items)
    return f'<ul class="{css}">{lines}</ul>' if lines else ""


def to_html(report: Report) -> str:
    """The report as a complete HTML document."""
    summary = report.summary
    rate = "-" if summary.success_rate is None else f"{summary.success_rate:.4%}"
    lat = summary.latency_ms
    title = f"kdoctor {report.task.kind} {report.task.name}: {report.verdict} ({report.id})"
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f'<h1>{escape(report.task.kind)} {escape(report.task.name)} '
        f'<span class="badge {escape(report.verdict)}">{escape(report.verdict.upper())}</span></h1>',
        f'<p class="sub">report {escape(report.id)} · job {escape(report.job)} · round {report.round} · '
        f"{report.started:%Y-%m-%d %H:%M:%S} → {report.finished:%H:%M:%S} UTC</p>",
        f"<p>{summary.requests} requests, success {escape(rate)}, latency p50 / p99 / max "
        f"{_ms(lat.p50)} / {_ms(lat.p99)} / {_ms(lat.max)} ms; nodes: "
        f"{escape(', '.join(f'{k} {v}' for k, v in summary.nodes.items()))}</p>",
    ]
    if report.reasons:
        parts += ["<h2>Why it failed</h2>", _list(report.reasons, "reasons")]
    if report.warnings:
        parts += ["<h2>Warnings</h2>", _list(report.warnings, "warnings")]
    if report.matrix is not None and report.matrix.cells:
        # The suspects lead "Why it failed" above; they are not repeated under the grid.
        parts += ["<h2>Source → destination</h2>", _matrix(report.matrix, latency_limit(report.spec))]
    parts += ["<h2>Nodes</h2>", _nodes_table(report.nodes),
              f"<footer>kdoctor {escape(__version__)} · report format {report.report_version}</footer>",
              "</body></html>"]
    return "\n".join(parts)
