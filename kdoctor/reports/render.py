"""Reports for people: a terminal table (rich) and pretty JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from kdoctor.specs.nodes import SKEW_WARNING_SECONDS, NodeInfo
from kdoctor.specs.results import LatencyMs, Report, ReportHead

_STYLE = {"passed": "green", "failed": "red", "missing": "yellow", "timeout": "magenta", "error": "red"}
# A terminal report of a large cluster lists only what failed, and at most this many rows/lines.
TABLE_MAX_ROWS = 300
LINES_MAX = 30


def to_json(report: Report) -> str:
    """The report as indented JSON (the stable, versioned format)."""
    return json.dumps(report.to_json(), indent=2)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _latency(lat: LatencyMs) -> str:
    return f"{_ms(lat.p50)} / {_ms(lat.p99)} / {_ms(lat.max)}"


def report_table(report: Report) -> Group:
    """A header, one row per node × target, reasons and warnings."""
    verdict = Text(report.verdict.upper(), style="bold " + _STYLE[report.verdict])
    head = Text.assemble(
        ("report ", "bold"), report.id, "  ", verdict,
        f"\n{report.task.kind} {report.task.name!r}, round {report.round}, "
        f"{report.started:%Y-%m-%d %H:%M:%S} → {report.finished:%H:%M:%S} UTC",
    )
    table = Table(show_lines=False, header_style="bold")
    for col in ("node", "status", "target", "requests", "success", "qps", "p50 / p99 / max ms", "errors"):
        table.add_column(col, justify="right" if col in ("requests", "success", "qps") else "left")
    total = sum(max(1, len(n.targets)) for n in report.nodes.values())
    only_failed = total > TABLE_MAX_ROWS  # 1,000 nodes × 40 targets is no table to read
    rows = 0
    for name, node in report.nodes.items():
        if rows >= TABLE_MAX_ROWS:
            break
        status = Text(node.status, style=_STYLE[node.status])
        if not node.targets:
            if not only_failed or node.status != "passed":
                table.add_row(name, status, Text(node.reason or "-", style="dim"), "", "", "", "", "")
                rows += 1
            continue
        targets = [t for t in node.targets if t.verdict != "passed"] if only_failed else node.targets
        for index, target in enumerate(targets[:TABLE_MAX_ROWS - rows]):
            rows += 1
            errors = ", ".join(f"{k}×{v}" for k, v in target.errors.items())
            if target.unsent:
                errors = ", ".join(x for x in (errors, f"unsent×{target.unsent}") if x)
            table.add_row(
                name if index == 0 else "",
                status if index == 0 else "",
                Text(target.name, style="" if target.verdict == "passed" else "red"),
                str(target.requests),
                f"{target.success_rate:.2%}",
                f"{target.achieved_qps:.1f}",
                _latency(target.latency_ms),
                errors,
            )
    summary = report.summary
    rate = "-" if summary.success_rate is None else f"{summary.success_rate:.4%}"
    foot = Text(
        f"{summary.requests} requests, success {rate}, latency p50/p99/max "
        f"{_latency(summary.latency_ms)} ms; nodes: "
        + ", ".join(f"{k} {v}" for k, v in summary.nodes.items())
    )
    parts: list[Text | Table | Group] = [head, table, foot]
    if only_failed:
        parts.append(Text(f"{total} node × target rows: only failed targets are listed (at most "
                          f"{TABLE_MAX_ROWS}); -o html or -o json has them all", style="dim"))
    if any(node.profiles for node in report.nodes.values()):
        nodes = ", ".join(f"{k} {v}" for k, v in summary.nodes.items())
        parts = [head, disk_table(report), Text(f"nodes: {nodes}")]
    parts += _capped(report.reasons, "✗ ", "red") + _capped(report.warnings, "! ", "yellow")
    if report.matrix is not None and report.matrix.cells:
        from kdoctor.reports.grid import matrix_grid
        from kdoctor.reports.scale import latency_limit

        parts.append(matrix_grid(report.matrix, latency_limit(report.spec)))
    return Group(*parts)


def _capped(lines: list[str], mark: str, style: str) -> list[Text]:
    shown = [Text(mark + line, style=style) for line in lines[:LINES_MAX]]
    if len(lines) > LINES_MAX:
        shown.append(Text(f"{mark}… and {len(lines) - LINES_MAX} more (-o json)", style=style))
    return shown


def _size(count: int) -> str:
    return f"{count / 1048576:.1f} MiB" if count else "-"


def disk_table(report: Report) -> Table:
    """DiskIO: one row per node × profile with bandwidth, IOPS and latency."""
    table = Table(header_style="bold")
    for col in ("node", "status", "profile", "fs / io", "MiB/s", "IOPS", "latency", "p50 / p99 / max ms",
                "written / read", "verdict"):
        table.add_column(col, justify="right" if col in ("MiB/s", "IOPS") else "left")
    for name, node in report.nodes.items():
        status = Text(node.status, style=_STYLE[node.status])
        if not node.profiles:
            table.add_row(name, status, Text(node.reason or "-", style="dim"), *[""] * 7)
            continue
        for index, prof in enumerate(node.profiles):
            verdict = Text(prof.verdict + (f": {prof.reason}" if prof.reason else ""),
                           style="" if prof.verdict == "passed" else "red")
            table.add_row(
                name if index == 0 else "", status if index == 0 else "", prof.name,
                f"{prof.filesystem} {'direct' if prof.direct_io else 'buffered'}",
                f"{prof.mib_per_second:.1f}", f"{prof.iops:.0f}", prof.latency_of, _latency(prof.latency_ms),
                f"{_size(prof.bytes_written)} / {_size(prof.bytes_read)}", verdict,
            )
    return table


def reports_table(reports: Iterable[ReportHead]) -> Table:
    """One line per report, newest first."""
    table = Table(header_style="bold")
    for col in ("id", "kind", "name", "round", "verdict", "finished (UTC)", "nodes"):
        table.add_column(col)
    for report in reports:
        table.add_row(
            report.id, report.task.kind, report.task.name, str(report.round),
            Text(report.verdict, style=_STYLE[report.verdict]),
            f"{report.finished:%Y-%m-%d %H:%M:%S}",
            ", ".join(f"{k} {v}" for k, v in report.summary.nodes.items()),
        )
    return table


def node_state(node: NodeInfo, now: float, timeout: float, skipped: Mapping[str, str] | None = None) -> str:
    """``live``, ``unhealthy``, ``stale``, ``stopped``, ``skipped`` (the inventory leaves it out on
    purpose: ``skipped`` maps it to why), or ``missing`` for an inventory node no worker ever
    served."""
    if skipped and node.name in skipped:
        return "skipped"
    if node.last_heartbeat == 0 and node.stopped is None:
        return "missing"
    return node.state(now, timeout)


def nodes_table(nodes: Iterable[NodeInfo], now: float, timeout: float,
                skipped: Mapping[str, str] | None = None) -> Table:
    """One line per registered (or inventory) node with its liveness and how far its clock is
    from the broker's (red beyond what the report warns about); ``skipped``: the nodes the
    inventory leaves out, with why."""
    table = Table(header_style="bold")
    for col in ("node", "state", "addresses", "agent port", "last heartbeat", "clock", "labels"):
        table.add_column(col)
    for node in nodes:
        state = node_state(node, now, timeout, skipped)
        style = {"live": "green", "unhealthy": "red", "stale": "red", "stopped": "yellow", "missing": "yellow",
                 "skipped": "dim"}[state]
        why = {"unhealthy": node.unhealthy, "skipped": (skipped or {}).get(node.name)}.get(state)
        shown = Text(f"{state}: {why}" if why else state, style=style)
        # clockOffset is broker minus node: a positive offset is a node clock running behind.
        skewed = abs(node.clock_offset) > SKEW_WARNING_SECONDS
        clock = Text(f"{-node.clock_offset:+.3f} s" if node.last_heartbeat else "-", style="red" if skewed else "")
        table.add_row(
            node.name, shown, " ".join(node.addresses), str(node.agent_port),
            f"{now - node.last_heartbeat:.0f} s ago" if node.last_heartbeat else "never", clock,
            ",".join(f"{k}={v}" for k, v in node.labels.items()),
        )
    return table


def print_report(report: Report, console: Console | None = None) -> None:
    (console or Console()).print(report_table(report))
