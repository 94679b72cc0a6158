"""The source × destination matrix as a colour grid for the terminal."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from kdoctor.reports.matrix import shown_nodes
from kdoctor.reports.scale import BAD, BANDS, band
from kdoctor.specs.results import Matrix

WIDE_UP_TO = 8
# Beyond this many nodes a grid no longer fits a terminal: only the nodes of bad cells are shown.
GRID_MAX_NODES = 40


# Green far inside the latency budget, through yellow and amber, to orange past it; red: failed.
_BAND_STYLES = ("black on #56d364", "black on #aff5b4", "black on #e3d26f", "black on #f0b72f",
                "black on #fb8f44", "bold white on red")


def _cell_text(rate: float | None, p99: float | None, bad: bool, wide: bool, limit: float | None) -> Text:
    shown = "-" if rate is None else f"{rate:.0%}"
    if p99 is not None and wide:
        shown += f" {p99:.0f}ms" if p99 >= 10 else f" {p99:.1f}ms"
    graded = band(p99, limit, bad)
    return Text(shown, style="black on green" if graded is None else _BAND_STYLES[graded])


def legend(limit: tuple[float, str] | None) -> Text:
    """What the colours mean, with the limit they grade against."""
    if limit is None:
        return Text("green: passed, red: failed", style="dim")
    value, field = limit
    parts: list[tuple[str, str] | str] = [f"p99 against expect.{field} {value:g} ms: "]
    bounds = ["<10%", "<25%", "<50%", "≤100%", "over"]
    for index, label in enumerate(bounds):
        parts += [(f" {label} ", _BAND_STYLES[index]), " "]
    parts.append((" failed ", _BAND_STYLES[BAD]))
    assert len(bounds) == len(BANDS) + 1
    return Text.assemble(*parts)


def matrix_grid(matrix: Matrix, limit: tuple[float, str] | None = None) -> Group:
    """Rows are sources, columns destinations; a cell shows success rate and p99 (beyond
    ``WIDE_UP_TO`` nodes only the rate: the JSON has both), coloured by its p99 against
    ``limit`` (:mod:`kdoctor.reports.scale`; without one green), red when bad; ``·`` marks a pair
    this round did not probe."""
    cells = {(c.source, c.destination): c for c in matrix.cells}
    nodes, note = shown_nodes(matrix, GRID_MAX_NODES)
    if not nodes:
        return Group(Text(note, style="dim"))
    wide = len(nodes) <= WIDE_UP_TO
    title = "source → destination (success, p99)" if wide else "source → destination (success)"
    table = Table(title=title, header_style="bold", show_lines=False)
    table.add_column("from \\ to")
    for name in nodes:
        table.add_column(name, justify="center")
    for src in nodes:
        row: list[Text | str] = [src]
        for dst in nodes:
            cell = cells.get((src, dst))
            row.append(Text("·", style="dim") if cell is None
                       else _cell_text(cell.success_rate, cell.p99_ms, cell.bad, wide, limit[0] if limit else None))
        table.add_row(*row)
    covered = len({(a, b) for a, b in matrix.covered if a != b})
    n = len(matrix.nodes)
    foot = Text(f"{covered} of {n * (n - 1)} ordered pairs probed this round" + (f"; {note}" if note else ""),
                style="dim")
    # The suspects are not repeated here: they lead the report's reasons, printed above.
    return Group(table, legend(limit), foot)
