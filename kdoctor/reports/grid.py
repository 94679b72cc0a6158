"""The source × destination matrix as a colour grid for the terminal."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from kdoctor.reports.matrix import shown_nodes
from kdoctor.specs.results import Matrix

WIDE_UP_TO = 8
# Beyond this many nodes a grid no longer fits a terminal: only the nodes of bad cells are shown.
GRID_MAX_NODES = 40


def _cell_text(rate: float | None, p99: float | None, bad: bool, wide: bool) -> Text:
    shown = "-" if rate is None else f"{rate:.0%}"
    if p99 is not None and wide:
        shown += f" {p99:.0f}ms" if p99 >= 10 else f" {p99:.1f}ms"
    return Text(shown, style="bold white on red" if bad else "black on green")


def matrix_grid(matrix: Matrix) -> Group:
    """Rows are sources, columns destinations; a cell shows success rate and p99 (beyond
    ``WIDE_UP_TO`` nodes only the rate: the JSON has both), red when bad; ``·`` marks a pair this
    round did not probe."""
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
                       else _cell_text(cell.success_rate, cell.p99_ms, cell.bad, wide))
        table.add_row(*row)
    covered = len({(a, b) for a, b in matrix.covered if a != b})
    n = len(matrix.nodes)
    foot = Text(f"{covered} of {n * (n - 1)} ordered pairs probed this round" + (f"; {note}" if note else ""),
                style="dim")
    # The suspects are not repeated here: they lead the report's reasons, printed above.
    return Group(table, foot)
